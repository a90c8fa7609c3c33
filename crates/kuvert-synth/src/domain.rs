//! Domains of the modelled attributes: declared, or estimated with
//! differential privacy; encoding of the input into attribute codes and
//! decoding of sampled codes back into values.
//!
//! Attributes per column kind (codes are `u32`):
//!
//! | kind        | attributes | codes |
//! |-------------|------------|-------|
//! | categorical | 1          | one per category, plus `(other)` when the domain was estimated |
//! | integer     | 1          | 0 = empty cell, 1..=bins equal-width bins |
//! | date        | 1          | 0 = empty cell, 1..=bins equal-width day ranges |
//! | idnr        | 2          | birth date (0 = empty, 1..=bins), sex (0 = female, 1 = male) |

use rand::RngCore;
use serde::{Deserialize, Serialize};

use kuvert_dp::sample::{discrete_gaussian, Rational};

use crate::error::{config, Result, SynthError};

/// The value an `(other)` code decodes to: a category too rare to be
/// released by the DP domain estimation.
pub const OTHER: &str = "(other)";

/// Days since 1970-01-01 of `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<i64> {
    let (y, m, d) = kuvert_deid::date::parse_ymd(s)?;
    Some(kuvert_deid::date::days_from_civil(y, m, d))
}

/// `YYYY-MM-DD` of a day number.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = kuvert_deid::date::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses an identity number: (birth day number, male?).
pub fn parse_idnr(s: &str) -> std::result::Result<(i64, bool), kuvert_data::idnr::IdnrError> {
    let today = kuvert_data::Date::today_utc();
    let n = kuvert_data::idnr::parse(s, today)?;
    // n = YYYYMMDDNNNC
    let c = n % 10;
    let _ = c;
    let serial = (n / 10) % 1000;
    let day_written = (n / 10_000) % 100;
    let month = (n / 1_000_000) % 100;
    let year = n / 100_000_000;
    let day = if day_written > 60 {
        day_written - 60
    } else {
        day_written
    };
    let days = kuvert_deid::date::days_from_civil(year, month as u32, day as u32);
    Ok((days, serial % 2 == 1))
}

/// Equal-width bins over the inclusive range `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Smallest value (inclusive).
    pub lo: i64,
    /// Largest value (inclusive).
    pub hi: i64,
    /// Width of each bin (the last one may be narrower).
    pub width: i64,
    /// Number of bins.
    pub bins: usize,
}

impl Bins {
    /// At most `max_bins` bins over `[lo, hi]`.
    pub fn new(lo: i64, hi: i64, max_bins: usize) -> Bins {
        let span = (hi as i128 - lo as i128 + 1).max(1);
        let width = ((span + max_bins as i128 - 1) / max_bins as i128).max(1);
        let bins = ((span + width - 1) / width) as usize;
        Bins {
            lo,
            hi,
            width: width.min(i64::MAX as i128) as i64,
            bins,
        }
    }
    /// The bin (0-based) of `v`, clamped into the range.
    pub fn bin(&self, v: i64) -> usize {
        let v = v.clamp(self.lo, self.hi);
        (((v as i128 - self.lo as i128) / self.width as i128) as usize).min(self.bins - 1)
    }
    /// Inclusive range of bin `b`.
    pub fn range(&self, b: usize) -> (i64, i64) {
        let lo = self.lo as i128 + b as i128 * self.width as i128;
        let hi = (lo + self.width as i128 - 1).min(self.hi as i128);
        (lo as i64, hi as i64)
    }
    /// A uniform value within bin `b`.
    pub fn draw<R: rand::Rng + ?Sized>(&self, b: usize, rng: &mut R) -> i64 {
        let (lo, hi) = self.range(b);
        rng.gen_range(lo..=hi)
    }
}

/// The resolved domain of one column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnDomain {
    /// Categories (declared, or released by DP partition selection, sorted).
    Categorical {
        /// The categories, in code order.
        categories: Vec<String>,
        /// Whether a last code stands for every other (rare) value.
        other: bool,
    },
    /// Integer bins.
    Integer {
        /// The bins.
        bins: Bins,
    },
    /// Date bins, in days since 1970-01-01.
    Date {
        /// The bins.
        bins: Bins,
    },
    /// Identity number: birth-date bins (days) and sex.
    Idnr {
        /// The birth-date bins.
        bins: Bins,
    },
}

impl ColumnDomain {
    /// Sizes of the column's attributes.
    pub fn attribute_sizes(&self) -> Vec<usize> {
        match self {
            ColumnDomain::Categorical { categories, other } => {
                vec![categories.len() + usize::from(*other)]
            }
            ColumnDomain::Integer { bins } | ColumnDomain::Date { bins } => vec![bins.bins + 1],
            ColumnDomain::Idnr { bins } => vec![bins.bins + 1, 2],
        }
    }
    /// Names of the column's attributes.
    pub fn attribute_names(&self, column: &str) -> Vec<String> {
        match self {
            ColumnDomain::Idnr { .. } => vec![format!("{column}.birth"), format!("{column}.sex")],
            _ => vec![column.to_string()],
        }
    }
}

/// Noisy count with the exact discrete Gaussian of variance `sigma2`.
pub(crate) fn noisy<R: RngCore + ?Sized>(
    rng: &mut R,
    count: u64,
    sigma2: &Rational,
) -> Result<f64> {
    Ok(count as f64 + discrete_gaussian(rng, sigma2)? as f64)
}

/// DP partition selection: each observed value's count plus discrete
/// Gaussian noise of variance σ² is kept when it reaches the threshold
/// `1 + ⌈σ √(2 ln(1/δ))⌉`; a value held by one person passes with
/// probability at most δ (sub-Gaussian tail of the discrete Gaussian). The
/// histogram part is (1/(2σ²))-zCDP. Returned sorted (the order of first
/// appearance in the file would leak).
pub fn select_categories<R: RngCore + ?Sized>(
    values: &[(String, u64)],
    sigma2: f64,
    delta: f64,
    rng: &mut R,
) -> Result<Vec<String>> {
    let s2 = Rational::from_f64(sigma2)?;
    let threshold = 1.0 + (sigma2.sqrt() * (2.0 * (1.0 / delta).ln()).sqrt()).ceil();
    let mut out = Vec::new();
    for (v, c) in values {
        if *c == 0 {
            continue;
        }
        if noisy(rng, *c, &s2)? >= threshold {
            out.push(v.clone());
        }
    }
    out.sort();
    Ok(out)
}

/// Lower edges of the non-negative magnitude buckets: exact below 16, then
/// eight buckets per octave.
fn magnitude_edges() -> Vec<i64> {
    let mut v: Vec<i64> = (0..16).collect();
    let mut k = 1;
    loop {
        let e = (16.0 * 2f64.powf(k as f64 / 8.0)).ceil();
        if e >= 9.0e18 {
            break;
        }
        let e = (e as i64).max(v[v.len() - 1] + 1);
        v.push(e);
        k += 1;
    }
    v
}

/// A DP estimate of the bounds of an integer column: a histogram over
/// logarithmic buckets (signed magnitudes, eight per octave), noised with
/// the discrete Gaussian (ρ = 1/(2σ²)); counts below σ√(2 ln(100·buckets))
/// are set to zero,
/// and the bounds are the edges of the 0.5 % and 99.5 % noisy quantiles.
pub fn estimate_integer_bounds<R: RngCore + ?Sized>(
    values: &[(i64, u64)],
    sigma2: f64,
    rng: &mut R,
) -> Result<Option<(i64, i64)>> {
    let edges = magnitude_edges();
    let npos = edges.len();
    let bucket = |m: i64| -> usize { edges.partition_point(|&e| e <= m) - 1 };
    let upper = |b: usize| -> i64 {
        if b + 1 < npos {
            edges[b + 1] - 1
        } else {
            i64::MAX
        }
    };
    // index: npos + b for x ≥ 0 (b = bucket(x)), npos - b for x < 0.
    let mut hist = vec![0u64; 2 * npos + 1];
    for &(x, c) in values {
        let idx = if x >= 0 {
            npos + bucket(x)
        } else {
            npos - bucket(x.checked_neg().unwrap_or(i64::MAX))
        };
        hist[idx] += c;
    }
    let lower_edge = |idx: usize| -> i64 {
        if idx >= npos {
            edges[idx - npos]
        } else {
            -upper(npos - idx)
        }
    };
    let upper_edge = |idx: usize| -> i64 {
        if idx >= npos {
            upper(idx - npos)
        } else {
            -edges[npos - idx]
        }
    };
    let noisy_hist = noisy_threshold(&hist, sigma2, rng)?;
    Ok(quantile_range(&noisy_hist).map(|(a, b)| (lower_edge(a), upper_edge(b))))
}

/// The public fallback range of a date column whose DP bounds estimate
/// found no year with a clearly positive count (small data, small ε):
/// 1900-01-01 to 2100-12-31.
pub const DEFAULT_DATE_RANGE: (i64, i64) = (-25_567, 47_846);
/// The fallback range of birth dates of identity numbers: 1900-01-01 to
/// 2099-12-31 (cut at today when used).
pub const DEFAULT_BIRTH_RANGE: (i64, i64) = (-25_567, 47_481);

/// First calendar year of the date-bound histogram.
pub const YEAR_MIN: i64 = 1800;
/// Last calendar year of the date-bound histogram.
pub const YEAR_MAX: i64 = 2200;

/// A DP estimate of the bounds of a date column: a histogram by calendar
/// year (1800–2200, dates outside are clamped), noised as for integers; the
/// bounds are 1 January and 31 December of the 0.5 % and 99.5 % quantiles.
pub fn estimate_date_bounds<R: RngCore + ?Sized>(
    days: &[(i64, u64)],
    sigma2: f64,
    rng: &mut R,
) -> Result<Option<(i64, i64)>> {
    let n = (YEAR_MAX - YEAR_MIN + 1) as usize;
    let mut hist = vec![0u64; n];
    for &(d, c) in days {
        let (y, _, _) = kuvert_deid::date::civil_from_days(d);
        hist[(y.clamp(YEAR_MIN, YEAR_MAX) - YEAR_MIN) as usize] += c;
    }
    let noisy_hist = noisy_threshold(&hist, sigma2, rng)?;
    Ok(quantile_range(&noisy_hist).map(|(a, b)| {
        (
            kuvert_deid::date::days_from_civil(YEAR_MIN + a as i64, 1, 1),
            kuvert_deid::date::days_from_civil(YEAR_MIN + b as i64, 12, 31),
        )
    }))
}

fn noisy_threshold<R: RngCore + ?Sized>(
    hist: &[u64],
    sigma2: f64,
    rng: &mut R,
) -> Result<Vec<f64>> {
    let s2 = Rational::from_f64(sigma2)?;
    // Zero every count below σ√(2 ln(100·buckets)): an empty bucket passes
    // with probability ≤ 1/(100·buckets), so ≤ 1 % chance of any false one.
    let cut = sigma2.sqrt() * (2.0 * (100.0 * hist.len() as f64).ln()).sqrt();
    hist.iter()
        .map(|&c| noisy(rng, c, &s2).map(|x| if x >= cut { x } else { 0.0 }))
        .collect()
}

fn quantile_range(h: &[f64]) -> Option<(usize, usize)> {
    let total: f64 = h.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let q = 0.005 * total;
    let mut acc = 0.0;
    let mut lo = 0;
    for (i, &x) in h.iter().enumerate() {
        acc += x;
        if acc > q {
            lo = i;
            break;
        }
    }
    acc = 0.0;
    let mut hi = h.len() - 1;
    for (i, &x) in h.iter().enumerate().rev() {
        acc += x;
        if acc > q {
            hi = i;
            break;
        }
    }
    Some((lo, hi.max(lo)))
}

/// The code of every dictionary entry of a column, per attribute, or the
/// first entry that does not fit (its index and why).
pub(crate) fn encode_dict(
    domain: &ColumnDomain,
    dict: &[String],
) -> std::result::Result<Vec<Vec<u32>>, (usize, String)> {
    match domain {
        ColumnDomain::Categorical { categories, other } => {
            let index: std::collections::HashMap<&str, u32> = categories
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i as u32))
                .collect();
            let k = categories.len() as u32;
            let mut codes = Vec::with_capacity(dict.len());
            for (i, v) in dict.iter().enumerate() {
                match index.get(v.as_str()) {
                    Some(&c) => codes.push(c),
                    None if *other => codes.push(k),
                    None => {
                        return Err((
                            i,
                            format!(
                                "value {v:?} is not among the declared categories; add it to \
                                 `categories` in the schema (or drop the list to estimate the domain with DP)"
                            ),
                        ))
                    }
                }
            }
            Ok(vec![codes])
        }
        ColumnDomain::Integer { bins } => {
            let mut codes = Vec::with_capacity(dict.len());
            for (i, v) in dict.iter().enumerate() {
                let t = v.trim();
                if t.is_empty() {
                    codes.push(0);
                    continue;
                }
                match t.parse::<i64>() {
                    Ok(x) => codes.push(bins.bin(x) as u32 + 1),
                    Err(_) => {
                        return Err((
                            i,
                            format!(
                            "{v:?} is not an integer; declare the column categorical in the schema"
                        ),
                        ))
                    }
                }
            }
            Ok(vec![codes])
        }
        ColumnDomain::Date { bins } => {
            let mut codes = Vec::with_capacity(dict.len());
            for (i, v) in dict.iter().enumerate() {
                let t = v.trim();
                if t.is_empty() {
                    codes.push(0);
                    continue;
                }
                match parse_date(t) {
                    Some(x) => codes.push(bins.bin(x) as u32 + 1),
                    None => {
                        return Err((
                            i,
                            format!("{v:?} is not a date YYYY-MM-DD; declare the column categorical in the schema"),
                        ))
                    }
                }
            }
            Ok(vec![codes])
        }
        ColumnDomain::Idnr { bins } => {
            let mut birth = Vec::with_capacity(dict.len());
            let mut sex = Vec::with_capacity(dict.len());
            for (i, v) in dict.iter().enumerate() {
                let t = v.trim();
                if t.is_empty() {
                    birth.push(0);
                    sex.push(0);
                    continue;
                }
                match parse_idnr(t) {
                    Ok((d, male)) => {
                        birth.push(bins.bin(d) as u32 + 1);
                        sex.push(u32::from(male));
                    }
                    Err(e) => return Err((i, format!("not a valid identity number: {e}"))),
                }
            }
            Ok(vec![birth, sex])
        }
    }
}

/// Turns an encoding failure into an error at the first row holding the value.
pub(crate) fn bad_cell(
    t: &kuvert_deid::table::Table,
    col: usize,
    dict_index: usize,
    message: String,
) -> SynthError {
    let r = t.columns[col]
        .codes
        .iter()
        .position(|&c| c as usize == dict_index)
        .unwrap_or(0);
    SynthError::BadValue {
        path: t.source.clone(),
        line: t.lines.get(r).copied().unwrap_or(0),
        column: col + 1,
        message: format!("column `{}`: {message}", t.headers[col]),
    }
}

pub(crate) fn no_bounds(name: &str) -> SynthError {
    config(format!(
        "column `{name}`: too few rows to estimate its bounds with differential privacy at this ε; \
         declare `bounds` for it in --schema (or use a larger --epsilon)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_ranges_are_the_documented_dates() {
        assert_eq!(format_date(DEFAULT_DATE_RANGE.0), "1900-01-01");
        assert_eq!(format_date(DEFAULT_DATE_RANGE.1), "2100-12-31");
        assert_eq!(format_date(DEFAULT_BIRTH_RANGE.1), "2099-12-31");
    }

    #[test]
    fn bins_cover_the_range() {
        let b = Bins::new(17, 90, 16);
        assert_eq!(b.bin(17), 0);
        assert_eq!(b.bin(90), b.bins - 1);
        assert_eq!(b.bin(-5), 0);
        assert_eq!(b.bin(1000), b.bins - 1);
        assert_eq!(b.range(b.bins - 1).1, 90);
        for v in 17..=90 {
            let (lo, hi) = b.range(b.bin(v));
            assert!(lo <= v && v <= hi);
        }
    }

    #[test]
    fn integer_bounds_estimate_brackets_the_data() {
        use rand::SeedableRng;
        let mut r = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let vals: Vec<(i64, u64)> = (17..=90).map(|a| (a, 100)).collect();
        let (lo, hi) = estimate_integer_bounds(&vals, 100.0, &mut r)
            .unwrap()
            .unwrap();
        assert!(
            (14..=17).contains(&lo) && (90..=100).contains(&hi),
            "{lo} {hi}"
        );
        let neg: Vec<(i64, u64)> = (-500..=-100).map(|a| (a, 10)).collect();
        let (lo, hi) = estimate_integer_bounds(&neg, 100.0, &mut r)
            .unwrap()
            .unwrap();
        assert!(
            (-600..=-490).contains(&lo) && (-110..=-90).contains(&hi),
            "{lo} {hi}"
        );
        assert!(estimate_integer_bounds(&[(5, 1)], 1e4, &mut r)
            .unwrap()
            .is_none());
    }
}
