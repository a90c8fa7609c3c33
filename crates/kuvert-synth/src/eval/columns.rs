//! Column kinds and the encoding of every evaluated column into small
//! integer *bins* shared by the real and the synthetic table.
//!
//! * Categorical: one bin per distinct value. Real categories come first
//!   (most frequent first), then values seen only in the synthetic (or
//!   holdout) data. The empty value is a category of its own.
//! * Numeric and date (days since 1970-01-01): bins are fitted on the real
//!   training data only. Bin 0 holds missing (empty or unparsable) values,
//!   bin 1 values below the real minimum, the last bin values above the
//!   real maximum; in between, `bins` intervals `[e_i, e_{i+1})` (the last
//!   one closed) whose edges are quantiles of the real values
//!   ([`Binning::Quantile`], the default, so every interval holds about the
//!   same share of real records) or equally spaced on `[min, max]`
//!   ([`Binning::EqualWidth`]). A column with at most `bins` distinct real
//!   values gets one bin per distinct value instead (exact).
//! * Identity numbers (personnummer, samordningsnummer) are not binned: they
//!   only get the validity and copy checks.

use crate::eval::{EvalError, Result};
use kuvert_deid::table::{Column, Table};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How a column is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Distinct values are categories.
    Categorical,
    /// Numbers (binned for marginals, Pearson for correlations).
    Numeric,
    /// Dates `YYYY-MM-DD` (as days; binned like numbers).
    Date,
    /// Swedish identity numbers: validity and copy checks only.
    Identity,
    /// Left out of the evaluation.
    Ignore,
}

impl ColumnKind {
    /// Name as written in the configuration and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Categorical => "categorical",
            ColumnKind::Numeric => "numeric",
            ColumnKind::Date => "date",
            ColumnKind::Identity => "identity",
            ColumnKind::Ignore => "ignore",
        }
    }
    /// Whether the column takes part in marginals, correlations and ML.
    pub fn is_binned(self) -> bool {
        matches!(
            self,
            ColumnKind::Categorical | ColumnKind::Numeric | ColumnKind::Date
        )
    }
    /// Numeric or date.
    pub fn is_ordered(self) -> bool {
        matches!(self, ColumnKind::Numeric | ColumnKind::Date)
    }
}

/// How numeric and date columns are cut into bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Binning {
    /// Edges at quantiles of the real values (equal real mass per bin).
    #[default]
    Quantile,
    /// Equally spaced edges on the real `[min, max]`.
    EqualWidth,
}

pub(crate) fn is_missing(s: &str) -> bool {
    s.trim().is_empty()
}

pub(crate) fn parse_num(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

pub(crate) fn parse_date(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.len() != 10 {
        return None;
    }
    kuvert_deid::date::parse_ymd(t)
        .map(|(y, m, d)| kuvert_deid::date::days_from_civil(y, m, d) as f64)
}

/// Infer the kind of a column from its distinct values (in the real data).
pub fn infer_kind(col: &Column) -> ColumnKind {
    let present: Vec<&str> = col
        .dict
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !is_missing(s))
        .collect();
    if present.is_empty() {
        return ColumnKind::Categorical;
    }
    if present.iter().all(|s| kuvert_deid::idnr::looks_like(s)) {
        let valid = present
            .iter()
            .filter(|s| kuvert_deid::idnr::parse(s).is_ok())
            .count();
        if valid as f64 >= 0.9 * present.len() as f64 {
            return ColumnKind::Identity;
        }
    }
    if present.iter().all(|s| parse_num(s).is_some()) {
        return ColumnKind::Numeric;
    }
    if present.iter().all(|s| parse_date(s).is_some()) {
        return ColumnKind::Date;
    }
    ColumnKind::Categorical
}

/// A column encoded into bins for the three tables.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub name: String,
    pub kind: ColumnKind,
    pub inferred: bool,
    /// Label of each bin.
    pub labels: Vec<String>,
    /// Bins per table: 0 train, 1 synthetic, 2 holdout (empty without one).
    pub codes: [Vec<u32>; 3],
    /// Values (numeric/date), NaN when missing.
    pub values: Option<[Vec<f64>; 3]>,
    /// Real (train) range of numeric/date values.
    pub real_range: Option<(f64, f64)>,
    /// Synthetic range.
    pub synthetic_range: Option<(f64, f64)>,
    /// Synthetic cells that could not be parsed as the column's kind (counted as missing).
    pub synthetic_unparsable: u64,
    /// Number of bins that real categories occupy (categorical: the real
    /// categories; ordered: all bins but missing/below/above).
    pub real_categories: usize,
}

fn fmt_num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub(crate) fn fmt_value(kind: ColumnKind, x: f64) -> String {
    if kind == ColumnKind::Date {
        let (y, m, d) = kuvert_deid::date::civil_from_days(x.floor() as i64);
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        fmt_num(x)
    }
}

/// Encode one column of the three tables.
pub(crate) fn encode(
    name: &str,
    kind: ColumnKind,
    inferred: bool,
    cols: [Option<&Column>; 3],
    bins: usize,
    binning: Binning,
) -> Encoded {
    if kind.is_ordered() {
        encode_ordered(name, kind, inferred, cols, bins.max(1), binning)
    } else {
        encode_categorical(name, kind, inferred, cols)
    }
}

fn encode_categorical(
    name: &str,
    kind: ColumnKind,
    inferred: bool,
    cols: [Option<&Column>; 3],
) -> Encoded {
    let mut labels: Vec<String> = Vec::new();
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut real_categories = 0;
    // Real categories by descending frequency, then the others'.
    for (t, c) in cols.iter().enumerate() {
        let Some(c) = c else { continue };
        let counts = c.counts();
        let mut order: Vec<usize> = (0..c.dict.len()).filter(|&i| counts[i] > 0).collect();
        order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
        for i in order {
            let v = c.dict[i].as_str();
            if !index.contains_key(v) {
                index.insert(v, labels.len() as u32);
                labels.push(v.to_string());
            }
        }
        if t == 0 {
            real_categories = labels.len();
        }
    }
    let codes: [Vec<u32>; 3] = std::array::from_fn(|t| match cols[t] {
        Some(c) => {
            let map: Vec<u32> = c.dict.iter().map(|v| index[v.as_str()]).collect();
            c.codes.iter().map(|&x| map[x as usize]).collect()
        }
        None => Vec::new(),
    });
    Encoded {
        name: name.to_string(),
        kind,
        inferred,
        labels,
        codes,
        values: None,
        real_range: None,
        synthetic_range: None,
        synthetic_unparsable: 0,
        real_categories,
    }
}

/// Bin edges: `edges[0]` is the real minimum; bin `i` is `[edges[i], edges[i+1])`,
/// the last bin `[edges[last], max]`.
fn fit_edges(sorted: &[(f64, u64)], bins: usize, binning: Binning) -> Vec<f64> {
    let (min, max) = (sorted[0].0, sorted[sorted.len() - 1].0);
    if sorted.len() <= bins {
        return sorted.iter().map(|x| x.0).collect();
    }
    let mut edges = vec![min];
    match binning {
        Binning::EqualWidth => {
            for i in 1..bins {
                edges.push(min + (max - min) * i as f64 / bins as f64);
            }
        }
        Binning::Quantile => {
            let n: u64 = sorted.iter().map(|x| x.1).sum();
            let mut cum = 0u64;
            let mut next = 1usize;
            for &(v, c) in sorted {
                // The value where the cumulative count first reaches i*n/bins
                // starts the next bin (ties stay in one bin).
                while next < bins && cum as f64 >= next as f64 * n as f64 / bins as f64 {
                    if v > *edges.last().expect("non-empty") {
                        edges.push(v);
                    }
                    next += 1;
                }
                cum += c;
            }
        }
    }
    edges.dedup();
    edges
}

fn encode_ordered(
    name: &str,
    kind: ColumnKind,
    inferred: bool,
    cols: [Option<&Column>; 3],
    bins: usize,
    binning: Binning,
) -> Encoded {
    let parse = |s: &str| -> Option<f64> {
        if kind == ColumnKind::Date {
            parse_date(s)
        } else {
            parse_num(s)
        }
    };
    // Parsed value per dict entry; NaN for missing, None-as-NaN for unparsable (counted).
    let parsed: [Vec<f64>; 3] = std::array::from_fn(|t| match cols[t] {
        Some(c) => c
            .dict
            .iter()
            .map(|s| parse(s).unwrap_or(f64::NAN))
            .collect(),
        None => Vec::new(),
    });
    let real = cols[0].expect("train column");
    let counts = real.counts();
    let mut sorted: Vec<(f64, u64)> = parsed[0]
        .iter()
        .zip(&counts)
        .filter(|(v, &c)| !v.is_nan() && c > 0)
        .map(|(&v, &c)| (v, c))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Merge equal values (e.g. "1" and "1.0").
    let mut merged: Vec<(f64, u64)> = Vec::with_capacity(sorted.len());
    for (v, c) in sorted {
        match merged.last_mut() {
            Some(l) if l.0 == v => l.1 += c,
            _ => merged.push((v, c)),
        }
    }
    let (edges, range) = if merged.is_empty() {
        (Vec::new(), None)
    } else {
        let r = (merged[0].0, merged[merged.len() - 1].0);
        (fit_edges(&merged, bins, binning), Some(r))
    };
    let exact = !merged.is_empty() && merged.len() <= bins;
    let nb = edges.len();
    let mut labels = vec![
        "(missing)".to_string(),
        "(below the real minimum)".to_string(),
    ];
    for i in 0..nb {
        if exact {
            labels.push(fmt_value(kind, edges[i]));
        } else if i + 1 < nb {
            labels.push(format!(
                "[{}, {})",
                fmt_value(kind, edges[i]),
                fmt_value(kind, edges[i + 1])
            ));
        } else {
            let max = range.map(|r| r.1).unwrap_or(edges[i]);
            labels.push(format!(
                "[{}, {}]",
                fmt_value(kind, edges[i]),
                fmt_value(kind, max)
            ));
        }
    }
    labels.push("(above the real maximum)".to_string());
    let above = (nb + 2) as u32;
    let bin_of = |x: f64| -> u32 {
        let Some((lo, hi)) = range else {
            return if x.is_nan() { 0 } else { above };
        };
        if x.is_nan() {
            0
        } else if x < lo {
            1
        } else if x > hi {
            above
        } else {
            // Last edge <= x.
            let p = edges.partition_point(|&e| e <= x);
            (p - 1 + 2) as u32
        }
    };
    let mut unparsable = 0u64;
    let mut values: [Vec<f64>; 3] = Default::default();
    let mut codes: [Vec<u32>; 3] = Default::default();
    let mut syn_range: Option<(f64, f64)> = None;
    for t in 0..3 {
        let Some(c) = cols[t] else { continue };
        let bmap: Vec<u32> = parsed[t].iter().map(|&x| bin_of(x)).collect();
        codes[t] = c.codes.iter().map(|&x| bmap[x as usize]).collect();
        values[t] = c.codes.iter().map(|&x| parsed[t][x as usize]).collect();
        if t == 1 {
            let cnt = c.counts();
            for (i, s) in c.dict.iter().enumerate() {
                let v = parsed[1][i];
                if cnt[i] == 0 {
                    continue;
                }
                if v.is_nan() && !is_missing(s) {
                    unparsable += cnt[i];
                }
                if !v.is_nan() {
                    syn_range = Some(match syn_range {
                        None => (v, v),
                        Some((a, b)) => (a.min(v), b.max(v)),
                    });
                }
            }
        }
    }
    Encoded {
        name: name.to_string(),
        kind,
        inferred,
        labels,
        codes,
        values: Some(values),
        real_range: range,
        synthetic_range: syn_range,
        synthetic_unparsable: unparsable,
        real_categories: nb,
    }
}

/// Check that every named column exists in the table.
pub(crate) fn require_columns(t: &Table, names: &[&str], what: &str) -> Result<()> {
    for n in names {
        if !t.headers.iter().any(|h| h == n) {
            return Err(EvalError::Invalid(format!(
                "{}: no column named `{n}` ({what}); columns are: {}",
                t.source,
                t.headers.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[&str]) -> Column {
        Column::from_values(v)
    }

    #[test]
    fn kinds_are_inferred() {
        assert_eq!(infer_kind(&col(&["1", "2.5", ""])), ColumnKind::Numeric);
        assert_eq!(infer_kind(&col(&["2020-01-01", ""])), ColumnKind::Date);
        assert_eq!(infer_kind(&col(&["a", "1"])), ColumnKind::Categorical);
        assert_eq!(
            infer_kind(&col(&["198112189876", "19811218-9876"])),
            ColumnKind::Identity
        );
        // Twelve digits that are not valid identity numbers are numbers.
        assert_eq!(infer_kind(&col(&["123456789012"])), ColumnKind::Numeric);
    }

    #[test]
    fn quantile_edges_split_mass_evenly() {
        let v: Vec<(f64, u64)> = (0..100).map(|i| (i as f64, 1)).collect();
        let e = fit_edges(&v, 4, Binning::Quantile);
        assert_eq!(e, vec![0.0, 25.0, 50.0, 75.0]);
        let e = fit_edges(&v, 4, Binning::EqualWidth);
        assert_eq!(e, vec![0.0, 24.75, 49.5, 74.25]);
        // Few distinct values: one bin each.
        let v = vec![(1.0, 5), (2.0, 1)];
        assert_eq!(fit_edges(&v, 4, Binning::Quantile), vec![1.0, 2.0]);
    }

    #[test]
    fn ordered_encoding_has_missing_and_out_of_range_bins() {
        let r = col(&["1", "2", "3", ""]);
        let s = col(&["0", "3", "9", "x"]);
        let e = encode(
            "a",
            ColumnKind::Numeric,
            true,
            [Some(&r), Some(&s), None],
            10,
            Binning::Quantile,
        );
        // missing, below, 1, 2, 3, above
        assert_eq!(e.labels.len(), 6);
        assert_eq!(e.codes[0], vec![2, 3, 4, 0]);
        assert_eq!(e.codes[1], vec![1, 4, 5, 0]);
        assert_eq!(e.synthetic_unparsable, 1);
        assert_eq!(e.real_range, Some((1.0, 3.0)));
        assert_eq!(e.synthetic_range, Some((0.0, 9.0)));
    }
}
