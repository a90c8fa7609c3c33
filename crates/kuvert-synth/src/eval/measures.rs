//! The statistical measures: total variation distance of marginals,
//! association (Pearson, Cramér's V) and coverage. Pure functions on bin
//! codes, hand-checked in the unit tests.

use std::collections::HashMap;

/// Histogram of bin codes.
pub fn histogram(codes: &[u32], bins: usize) -> Vec<u64> {
    let mut h = vec![0u64; bins];
    for &c in codes {
        h[c as usize] += 1;
    }
    h
}

/// Total variation distance `½ Σ_b |p(b) − q(b)|` of two histograms over the
/// same bins (normalised by their own totals). 0 when both are empty; 1
/// when exactly one is.
pub fn tvd(p: &[u64], q: &[u64]) -> f64 {
    let (np, nq) = (p.iter().sum::<u64>() as f64, q.iter().sum::<u64>() as f64);
    if np == 0.0 || nq == 0.0 {
        return if np == nq { 0.0 } else { 1.0 };
    }
    let n = p.len().max(q.len());
    let mut s = 0.0;
    for i in 0..n {
        let a = p.get(i).copied().unwrap_or(0) as f64 / np;
        let b = q.get(i).copied().unwrap_or(0) as f64 / nq;
        s += (a - b).abs();
    }
    0.5 * s
}

/// A two-way contingency table (sparse: key `a * nb + b`).
#[derive(Debug, Default, Clone)]
pub struct Joint {
    /// Cell counts.
    pub cells: HashMap<u64, u64>,
    /// Row margins (by `a`).
    pub rows: HashMap<u32, u64>,
    /// Column margins (by `b`).
    pub cols: HashMap<u32, u64>,
    /// Records.
    pub n: u64,
}

/// Contingency table of two code columns. Dense counting when the grid is
/// small, hashing otherwise.
pub fn joint(a: &[u32], b: &[u32], na: usize, nb: usize) -> Joint {
    let mut j = Joint {
        n: a.len() as u64,
        ..Joint::default()
    };
    if na * nb <= 1 << 20 {
        let mut dense = vec![0u64; na * nb];
        for (&x, &y) in a.iter().zip(b) {
            dense[x as usize * nb + y as usize] += 1;
        }
        for (k, &c) in dense.iter().enumerate() {
            if c > 0 {
                j.cells.insert(k as u64, c);
            }
        }
    } else {
        for (&x, &y) in a.iter().zip(b) {
            *j.cells.entry(x as u64 * nb as u64 + y as u64).or_insert(0) += 1;
        }
    }
    for (&k, &c) in &j.cells {
        *j.rows.entry((k / nb as u64) as u32).or_insert(0) += c;
        *j.cols.entry((k % nb as u64) as u32).or_insert(0) += c;
    }
    j
}

/// TVD of two contingency tables over the same grid.
pub fn tvd_joint(p: &Joint, q: &Joint) -> f64 {
    if p.n == 0 || q.n == 0 {
        return if p.n == q.n { 0.0 } else { 1.0 };
    }
    let (np, nq) = (p.n as f64, q.n as f64);
    let mut terms: Vec<(u64, f64)> = p
        .cells
        .iter()
        .map(|(k, &c)| {
            let d = q.cells.get(k).copied().unwrap_or(0) as f64 / nq;
            (*k, (c as f64 / np - d).abs())
        })
        .chain(
            q.cells
                .iter()
                .filter(|(k, _)| !p.cells.contains_key(k))
                .map(|(k, &c)| (*k, c as f64 / nq)),
        )
        .collect();
    // Summed in key order: reproducible to the last bit.
    terms.sort_unstable_by_key(|t| t.0);
    0.5 * terms.iter().map(|t| t.1).sum::<f64>()
}

/// Cramér's V of a contingency table: `sqrt(χ² / (n · (min(R, C) − 1)))`
/// with `R`, `C` the non-empty rows and columns; 0 when either is 1.
/// Uses `χ² = n (Σ O_ij² / (r_i c_j) − 1)`.
pub fn cramers_v(j: &Joint, nb: usize) -> f64 {
    let k = j.rows.len().min(j.cols.len());
    if k <= 1 || j.n == 0 {
        return 0.0;
    }
    // Summed in key order, so that equal tables give bit-equal results.
    let mut cells: Vec<(u64, u64)> = j.cells.iter().map(|(&k, &o)| (k, o)).collect();
    cells.sort_unstable();
    let mut s = 0.0;
    for (key, o) in cells {
        let r = j.rows[&((key / nb as u64) as u32)] as f64;
        let c = j.cols[&((key % nb as u64) as u32)] as f64;
        s += (o as f64) * (o as f64) / (r * c);
    }
    let phi2 = (s - 1.0).max(0.0);
    (phi2 / (k as f64 - 1.0)).sqrt().min(1.0)
}

/// Pearson correlation over the rows where both values are present (not
/// NaN). 0 when either is constant or fewer than two rows remain.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        if !a.is_nan() && !b.is_nan() {
            n += 1.0;
            sx += a;
            sy += b;
        }
    }
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        if !a.is_nan() && !b.is_nan() {
            let (da, db) = (a - mx, b - my);
            sxy += da * db;
            sxx += da * da;
            syy += db * db;
        }
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return 0.0;
    }
    (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)
}

/// Share of the real range `[lo, hi]` that the synthetic range covers:
/// `|[lo, hi] ∩ [slo, shi]| / (hi − lo)`. For a constant real column, 1 if
/// the synthetic range contains the value, else 0.
pub fn range_coverage(real: (f64, f64), synthetic: Option<(f64, f64)>) -> f64 {
    let Some((slo, shi)) = synthetic else {
        return 0.0;
    };
    let (lo, hi) = real;
    if hi <= lo {
        return if slo <= lo && lo <= shi { 1.0 } else { 0.0 };
    }
    ((shi.min(hi) - slo.max(lo)) / (hi - lo)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tvd_by_hand() {
        // p = (0.5, 0.5, 0), q = (0.25, 0.25, 0.5): ½(0.25 + 0.25 + 0.5) = 0.5.
        assert!((tvd(&[2, 2, 0], &[1, 1, 2]) - 0.5).abs() < 1e-12);
        assert_eq!(tvd(&[3, 1], &[6, 2]), 0.0);
        assert_eq!(tvd(&[1, 0], &[0, 1]), 1.0);
        assert_eq!(tvd(&[0, 0], &[0, 0]), 0.0);
        assert_eq!(tvd(&[1], &[0]), 1.0);
    }

    #[test]
    fn joint_tvd_and_cramers_v_by_hand() {
        // Perfect association: a = b.
        let a = [0, 0, 1, 1];
        let p = joint(&a, &a, 2, 2);
        assert!((cramers_v(&p, 2) - 1.0).abs() < 1e-12);
        // Independence: all four cells equal.
        let (x, y) = ([0, 0, 1, 1], [0, 1, 0, 1]);
        let q = joint(&x, &y, 2, 2);
        assert!(cramers_v(&q, 2).abs() < 1e-12);
        // p has mass on (0,0),(1,1) with ½ each; q ¼ everywhere: ½(4·¼) = 0.5.
        assert!((tvd_joint(&p, &q) - 0.5).abs() < 1e-12);
        // Table [[3,1],[1,3]]: phi² = (Σ O²/(r c)) − 1 = (9+1+1+9)/16 − 1 = 0.25, V = 0.5.
        let a = [0, 0, 0, 0, 1, 1, 1, 1];
        let b = [0, 0, 0, 1, 0, 1, 1, 1];
        let j = joint(&a, &b, 2, 2);
        assert!((cramers_v(&j, 2) - 0.5).abs() < 1e-12);
        // The sparse path gives the same.
        let big = joint(&a, &b, 2, 1 << 20);
        assert!((cramers_v(&big, 1 << 20) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn pearson_by_hand() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // x = (1,2,3,4), y = (1,3,2,4): r = 0.8.
        assert!((pearson(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
        // Missing values are dropped pairwise.
        assert!((pearson(&[1.0, f64::NAN, 2.0, 3.0], &[2.0, 9.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn range_coverage_by_hand() {
        assert_eq!(range_coverage((0.0, 10.0), Some((5.0, 20.0))), 0.5);
        assert_eq!(range_coverage((0.0, 10.0), Some((-5.0, 20.0))), 1.0);
        assert_eq!(range_coverage((0.0, 10.0), Some((11.0, 20.0))), 0.0);
        assert_eq!(range_coverage((0.0, 10.0), None), 0.0);
        assert_eq!(range_coverage((3.0, 3.0), Some((1.0, 4.0))), 1.0);
    }
}
