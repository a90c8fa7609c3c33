//! Attack tests on released or synthetic data, in the manner of Anonymeter
//! (Giomi et al., PoPETs 2023), which follows the Article 29 Working
//! Party's three criteria for anonymisation (WP216): singling out,
//! linkability and inference. Plus membership inference by distance to the
//! closest record (DCR).
//!
//! Each attack is run three times: against the **original** records (the
//! ones the release was made from), against a **control** set of records
//! from the same source that were *not* used for the release, and as a
//! **baseline** attacker who guesses at random. The privacy risk is the
//! attack's success on the original in excess of its success on the
//! control, normalised: `(attack - control) / (1 - control)`. What the
//! attacker achieves on the control is what the data teach about people in
//! general; only the excess is a leak about the individuals in the
//! original. Without a control set the risk is the raw attack success rate,
//! an upper bound. Success rates carry Wilson score intervals; the risk
//! interval propagates both.
//!
//! Attacker assumptions (stated in the report): the attacker holds the
//! released table and, for each target, the target's true values of the
//! quasi-identifiers (linkability: half of them from one source, half from
//! another); the attacker wants to pick out a single person (singling
//! out), join the two sources (linkability), learn the sensitive value
//! (inference) or tell whether the person was in the original data
//! (membership).

use crate::error::{DeidError, Result};
use crate::risk::label_matches;
use crate::table::Table;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

/// Parameters of the attacks.
#[derive(Debug, Clone)]
pub struct AttackParams {
    /// Attacks (targets or queries) per test.
    pub n_attacks: usize,
    /// Columns per singling-out query.
    pub n_cols: usize,
    /// Seed of the attack randomness (not secret; fixed for reproducible reports).
    pub seed: u64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Relative tolerance for a numeric inference guess to count as right.
    pub tolerance: f64,
}

impl Default for AttackParams {
    fn default() -> Self {
        AttackParams {
            n_attacks: 500,
            n_cols: 3,
            seed: 1,
            confidence: 0.95,
            tolerance: 0.05,
        }
    }
}

/// A success rate with its error bound (Wilson score).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Rate {
    /// Point estimate.
    pub value: f64,
    /// Half-width of the interval.
    pub error: f64,
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
#[allow(clippy::excessive_precision)]
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let pl = 0.02425;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < pl {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - pl {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -probit(1.0 - p)
    }
}

/// Wilson score estimate of a success rate.
pub fn success_rate(n_total: f64, n_success: f64, confidence: f64) -> Rate {
    let z = probit(0.5 * (1.0 + confidence));
    let z2 = z * z;
    if n_total <= 0.0 {
        return Rate {
            value: 0.5,
            error: 0.5,
        };
    }
    let var = n_success * (n_total - n_success) / n_total;
    let denom = n_total + z2;
    Rate {
        value: (n_success + 0.5 * z2) / denom,
        error: (z / denom) * (var.max(0.0) + 0.25 * z2).sqrt(),
    }
}

/// Result of one attack.
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    /// Attacks made.
    pub n_attacks: usize,
    /// Successes against the original records.
    pub n_success: usize,
    /// Successes of the random-guessing baseline.
    pub n_baseline: usize,
    /// Successes against the control records (size-corrected), if a control set was given.
    pub n_control: Option<f64>,
    /// Success rate against the original.
    pub attack_rate: Rate,
    /// Success rate of the baseline.
    pub baseline_rate: Rate,
    /// Success rate against the control.
    pub control_rate: Option<Rate>,
    /// Privacy risk (0..1).
    pub risk: f64,
    /// Confidence interval of the risk.
    pub risk_ci: (f64, f64),
    /// `"control"` when the risk is relative to the control set, `"none"` when it is the raw success rate.
    pub reference: String,
    /// Things the reader must know (e.g. attack no better than baseline).
    pub warnings: Vec<String>,
}

fn result(
    n_attacks: usize,
    n_success: usize,
    n_baseline: usize,
    n_control: Option<f64>,
    conf: f64,
) -> AttackResult {
    let n = n_attacks as f64;
    let attack = success_rate(n, n_success as f64, conf);
    let baseline = success_rate(n, n_baseline as f64, conf);
    let control = n_control.map(|c| success_rate(n, c.min(n), conf));
    let (value, error) = match control {
        None => (attack.value, attack.error),
        Some(c) => {
            let residual = (attack.value - c.value) / (1.0 - c.value);
            let d_attack = 1.0 / (1.0 - c.value).abs();
            let d_control = (attack.value - 1.0) / (1.0 - c.value).powi(2);
            let err = ((attack.error * d_attack).powi(2) + (c.error * d_control).powi(2)).sqrt();
            (residual, err)
        }
    };
    let clamp = |x: f64| x.clamp(0.0, 1.0);
    let mut warnings = Vec::new();
    if baseline.value >= attack.value {
        warnings.push(
            "the attack did no better than random guessing; its result says little".to_string(),
        );
    }
    if control.map(|c| c.value >= 0.999).unwrap_or(false) {
        warnings.push(
            "the attack succeeds on every control record; the residual risk cannot be measured"
                .to_string(),
        );
    }
    if n_control.is_none() {
        warnings.push("no control set: the risk is the raw attack success and overstates the leak (an upper bound); give --control with records not used for the release".to_string());
    }
    AttackResult {
        n_attacks,
        n_success,
        n_baseline,
        n_control,
        attack_rate: attack,
        baseline_rate: baseline,
        control_rate: control,
        risk: clamp(value),
        risk_ci: (clamp(value - error), clamp(value + error)),
        reference: if n_control.is_some() {
            "control"
        } else {
            "none"
        }
        .to_string(),
        warnings,
    }
}

/// Membership inference by distance to closest record.
#[derive(Debug, Clone, Serialize)]
pub struct MembershipResult {
    /// Member targets (from the original).
    pub members: usize,
    /// Non-member targets (from the control), if any.
    pub non_members: usize,
    /// Share of member targets with an exact copy (distance 0) in the release.
    pub exact_copies_members: f64,
    /// Same for non-members (what chance alone gives).
    pub exact_copies_non_members: Option<f64>,
    /// Median distance to the closest released record, members.
    pub median_dcr_members: f64,
    /// Median for non-members.
    pub median_dcr_non_members: Option<f64>,
    /// Probability that a member is closer than a non-member (0.5 = no signal), if a control set was given.
    pub auc: Option<f64>,
    /// Confidence interval of the AUC (Hanley-McNeil).
    pub auc_ci: Option<(f64, f64)>,
    /// Membership advantage `2*AUC - 1`, clamped at 0 (0 = none, 1 = certain).
    pub risk: Option<f64>,
}

/// All attack results.
#[derive(Debug, Clone, Serialize)]
pub struct AttackReport {
    /// Columns the attacker knows.
    pub attack_columns: Vec<String>,
    /// Singling out.
    pub singling_out: AttackResult,
    /// Linkability (needs two or more quasi-identifiers).
    pub linkability: Option<AttackResult>,
    /// Attribute inference (needs a sensitive column).
    pub inference: Option<AttackResult>,
    /// Membership inference.
    pub membership: MembershipResult,
    /// Whether a control set was given.
    pub control: bool,
    /// Confidence level.
    pub confidence: f64,
}

/// A column prepared for the attacks.
struct Col {
    /// Parsed number per dict entry of each table (None = not a number / missing).
    num: [Vec<Option<f64>>; 3],
    /// Numeric for nearest-neighbour distances.
    numeric: bool,
    /// Range for normalising numeric distances.
    range: f64,
    /// Whether released values are plain points (for >= / <= singling-out predicates).
    point: bool,
    /// Median of original values (numeric).
    median: f64,
}

fn to_num(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.starts_with('[') && t.ends_with(')') {
        let (a, b) = t[1..t.len() - 1].split_once(',')?;
        let (a, b) = (a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?);
        return Some((a + b) / 2.0);
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn is_missing(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t == "*"
}

/// Tables: 0 original, 1 released, 2 control.
struct Data<'a> {
    t: [&'a Table; 3],
    cols: [Vec<usize>; 3],
    meta: Vec<Col>,
    /// Per (column, released code): per-original/control-dict match masks, cached.
    cache: HashMap<(usize, usize, u32), std::sync::Arc<Vec<bool>>>,
}

impl<'a> Data<'a> {
    fn new(
        original: &'a Table,
        released: &'a Table,
        control: Option<&'a Table>,
        names: &[String],
    ) -> Result<Data<'a>> {
        let control_t = control.unwrap_or(original);
        let idx = |t: &Table| {
            names
                .iter()
                .map(|n| t.col_index(n))
                .collect::<Result<Vec<_>>>()
        };
        let cols = [idx(original)?, idx(released)?, idx(control_t)?];
        let tabs = [original, released, control_t];
        let mut meta = Vec::new();
        #[allow(clippy::needless_range_loop)]
        for q in 0..names.len() {
            let num: [Vec<Option<f64>>; 3] = std::array::from_fn(|t| {
                tabs[t].columns[cols[t][q]]
                    .dict
                    .iter()
                    .map(|s| if is_missing(s) { None } else { to_num(s) })
                    .collect()
            });
            let numeric = (0..3).all(|t| {
                tabs[t].columns[cols[t][q]]
                    .dict
                    .iter()
                    .zip(&num[t])
                    .all(|(s, x)| is_missing(s) || x.is_some())
            });
            let point = numeric
                && tabs[1].columns[cols[1][q]]
                    .dict
                    .iter()
                    .all(|s| is_missing(s) || s.trim().parse::<f64>().is_ok());
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for nt in &num {
                for x in nt.iter().flatten() {
                    lo = lo.min(*x);
                    hi = hi.max(*x);
                }
            }
            let oc = &tabs[0].columns[cols[0][q]];
            let mut vals: Vec<f64> = oc
                .codes
                .iter()
                .filter_map(|&c| num[0][c as usize])
                .collect();
            let median = if vals.is_empty() {
                0.0
            } else {
                let m = vals.len() / 2;
                *vals.select_nth_unstable_by(m, |a, b| a.total_cmp(b)).1
            };
            meta.push(Col {
                num,
                numeric,
                range: if hi > lo { hi - lo } else { 1.0 },
                point,
                median,
            });
        }
        Ok(Data {
            t: tabs,
            cols,
            meta,
            cache: HashMap::new(),
        })
    }

    fn code(&self, t: usize, q: usize, r: usize) -> u32 {
        self.t[t].columns[self.cols[t][q]].codes[r]
    }

    fn dict(&self, t: usize, q: usize) -> &[String] {
        &self.t[t].columns[self.cols[t][q]].dict
    }

    /// Mask over table `t`'s dict of column `q`: values that released label `code` covers.
    fn cover_mask(&mut self, t: usize, q: usize, code: u32) -> std::sync::Arc<Vec<bool>> {
        if let Some(m) = self.cache.get(&(t, q, code)) {
            return m.clone();
        }
        let label = self.dict(1, q)[code as usize].clone();
        let m: Vec<bool> = if t == 1 {
            self.dict(1, q).iter().map(|v| *v == label).collect()
        } else {
            self.dict(t, q)
                .iter()
                .map(|v| label_matches(&label, v))
                .collect()
        };
        let m = std::sync::Arc::new(m);
        self.cache.insert((t, q, code), m.clone());
        m
    }
}

/// One predicate of a singling-out query.
#[derive(Clone, Debug)]
enum Pred {
    /// Value covered by the released label (or not, if negated).
    Cover { q: usize, code: u32, negate: bool },
    /// Numeric comparison.
    Cmp { q: usize, op: Op, value: f64 },
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Op {
    fn apply(self, x: f64, v: f64) -> bool {
        match self {
            Op::Eq => x == v,
            Op::Ne => x != v,
            Op::Lt => x < v,
            Op::Gt => x > v,
            Op::Le => x <= v,
            Op::Ge => x >= v,
        }
    }
}

/// Count rows of table `t` (restricted to `rows`) matching all predicates, stopping at 2.
fn count_matches(d: &mut Data<'_>, t: usize, rows: &[usize], query: &[Pred]) -> usize {
    let masks: Vec<(usize, Vec<bool>)> = query
        .iter()
        .map(|p| match p {
            Pred::Cover { q, code, negate } => {
                let m = d.cover_mask(t, *q, *code);
                (*q, m.iter().map(|&b| b != *negate).collect())
            }
            Pred::Cmp { q, op, value } => (
                *q,
                d.meta[*q].num[t]
                    .iter()
                    .map(|x| x.map(|x| op.apply(x, *value)).unwrap_or(false))
                    .collect(),
            ),
        })
        .collect();
    let mut count = 0;
    'rows: for &r in rows {
        for (q, m) in &masks {
            if !m[d.code(t, *q, r) as usize] {
                continue 'rows;
            }
        }
        count += 1;
        if count > 1 {
            break;
        }
    }
    count
}

/// Bitsets over the released rows, per column and value: equal to the
/// value, and (numeric columns) at least / at most the value.
struct RelIndex {
    eq: Vec<Vec<Vec<u64>>>,
    ge: Vec<Vec<Vec<u64>>>,
    le: Vec<Vec<Vec<u64>>>,
}

impl RelIndex {
    /// Build, unless it would take more than 512 MiB.
    fn build(d: &Data<'_>) -> Option<RelIndex> {
        let n = d.t[1].nrows();
        let words = n.div_ceil(64);
        let mut total = 0usize;
        for (q, m) in d.meta.iter().enumerate() {
            total += d.dict(1, q).len() * words * if m.point { 3 } else { 1 };
        }
        if total.saturating_mul(8) > 512 << 20 {
            return None;
        }
        let (mut eq, mut ge, mut le) = (Vec::new(), Vec::new(), Vec::new());
        for (q, m) in d.meta.iter().enumerate() {
            let dl = d.dict(1, q).len();
            let mut e = vec![vec![0u64; words]; dl];
            for r in 0..n {
                e[d.code(1, q, r) as usize][r / 64] |= 1u64 << (r % 64);
            }
            let (mut g, mut l) = (Vec::new(), Vec::new());
            if m.point {
                g = vec![vec![0u64; words]; dl];
                l = vec![vec![0u64; words]; dl];
                let mut order: Vec<(f64, usize)> = m.num[1]
                    .iter()
                    .enumerate()
                    .filter_map(|(c, x)| x.map(|x| (x, c)))
                    .collect();
                order.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut acc = vec![0u64; words];
                for &(_, c) in &order {
                    for (a, b) in acc.iter_mut().zip(&e[c]) {
                        *a |= b;
                    }
                    l[c].clone_from(&acc);
                }
                acc.iter_mut().for_each(|a| *a = 0);
                for &(_, c) in order.iter().rev() {
                    for (a, b) in acc.iter_mut().zip(&e[c]) {
                        *a |= b;
                    }
                    g[c].clone_from(&acc);
                }
            }
            eq.push(e);
            ge.push(g);
            le.push(l);
        }
        Some(RelIndex { eq, ge, le })
    }
}

/// Number of rows in the intersection of the bitsets, stopping above 1.
fn count_and(sets: &[&[u64]]) -> usize {
    let Some(first) = sets.first() else { return 0 };
    let mut count = 0usize;
    for (i, &w0) in first.iter().enumerate() {
        let mut w = w0;
        for s in &sets[1..] {
            w &= s[i];
            if w == 0 {
                break;
            }
        }
        count += w.count_ones() as usize;
        if count > 1 {
            return count;
        }
    }
    count
}

fn sample_rows(n: usize, k: usize, rng: &mut ChaCha20Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(rng);
    idx.truncate(k.min(n));
    idx
}

/// Index of the nearest released row to row `r` of table `t`, over columns `qs`; ties broken at random.
/// [`nearest`] for many targets, in parallel; ties are broken with a
/// generator seeded from `seed` and the target, so results do not depend on
/// the number of threads.
fn nearest_many(
    d: &Data<'_>,
    t: usize,
    rows: &[usize],
    qs: &[usize],
    seed: u64,
) -> Vec<(usize, f64)> {
    rows.par_iter()
        .map(|&r| {
            let mut rng =
                ChaCha20Rng::seed_from_u64(seed ^ (r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            nearest(d, t, r, qs, &mut rng)
        })
        .collect()
}

fn nearest(d: &Data<'_>, t: usize, r: usize, qs: &[usize], rng: &mut ChaCha20Rng) -> (usize, f64) {
    // Per-column distance to each released dict code.
    let per_col: Vec<(usize, Vec<f32>)> = qs
        .iter()
        .map(|&q| {
            let code = d.code(t, q, r) as usize;
            let rdict_len = d.dict(1, q).len();
            let m = &d.meta[q];
            let v: Vec<f32> = if m.numeric {
                match m.num[t][code] {
                    None => vec![1.0; rdict_len],
                    Some(x) => m.num[1]
                        .iter()
                        .map(|y| {
                            y.map(|y| ((x - y).abs() / m.range).min(1.0) as f32)
                                .unwrap_or(1.0)
                        })
                        .collect(),
                }
            } else {
                let value = d.dict(t, q)[code].clone();
                d.dict(1, q)
                    .iter()
                    .map(|l| {
                        if !is_missing(&value) && l != "*" && label_matches(l, &value) {
                            0.0
                        } else {
                            1.0
                        }
                    })
                    .collect()
            };
            (q, v)
        })
        .collect();
    let n = d.t[1].nrows();
    let mut best = f32::INFINITY;
    let mut best_idx = 0;
    let mut ties = 0u32;
    for rr in 0..n {
        let mut dist = 0f32;
        for (q, v) in &per_col {
            dist += v[d.code(1, *q, rr) as usize];
        }
        if dist < best - 1e-6 {
            best = dist;
            best_idx = rr;
            ties = 1;
        } else if (dist - best).abs() <= 1e-6 {
            ties += 1;
            if rng.gen_range(0..ties) == 0 {
                best_idx = rr;
            }
        }
    }
    (best_idx, best as f64)
}

fn singling_out(
    d: &mut Data<'_>,
    p: &AttackParams,
    control: bool,
    rng: &mut ChaCha20Rng,
) -> AttackResult {
    let nq = d.meta.len();
    let ncols = p.n_cols.clamp(1, nq);
    let rel_rows: Vec<usize> = (0..d.t[1].nrows()).collect();
    let (n_ori, n_ctl) = (d.t[0].nrows(), d.t[2].nrows());
    // Compare original and control at equal size.
    let m = if control { n_ori.min(n_ctl) } else { n_ori };
    let ori_rows = sample_rows(n_ori, m, rng);
    let ctl_rows = sample_rows(n_ctl, m, rng);
    let mut queries: Vec<Vec<Pred>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Bitsets over the released rows make each uniqueness check a few
    // thousand word operations; without them (too big) fall back to scans.
    let index = RelIndex::build(d);
    let max_attempts = p.n_attacks * if index.is_some() { 2000 } else { 50 };
    let started = std::time::Instant::now();
    let mut attempts = 0;
    while queries.len() < p.n_attacks
        && attempts < max_attempts
        && !rel_rows.is_empty()
        && started.elapsed().as_secs_f64() < 30.0
    {
        attempts += 1;
        let r = rng.gen_range(0..rel_rows.len());
        let mut qs: Vec<usize> = (0..nq).collect();
        qs.shuffle(rng);
        qs.truncate(ncols);
        qs.sort_unstable();
        let mut sets: Vec<&[u64]> = Vec::with_capacity(qs.len());
        let query: Vec<Pred> = qs
            .iter()
            .map(|&q| {
                let code = d.code(1, q, r);
                let meta = &d.meta[q];
                match (meta.point, meta.num[1][code as usize]) {
                    (true, Some(v)) => {
                        let op = if v > meta.median { Op::Ge } else { Op::Le };
                        if let Some(ix) = &index {
                            sets.push(if matches!(op, Op::Ge) {
                                &ix.ge[q][code as usize]
                            } else {
                                &ix.le[q][code as usize]
                            });
                        }
                        Pred::Cmp { q, op, value: v }
                    }
                    _ => {
                        if let Some(ix) = &index {
                            sets.push(&ix.eq[q][code as usize]);
                        }
                        Pred::Cover {
                            q,
                            code,
                            negate: false,
                        }
                    }
                }
            })
            .collect();
        let unique = match &index {
            Some(_) => count_and(&sets) == 1,
            None => false,
        };
        if index.is_some() && !unique {
            continue;
        }
        let key = format!("{query:?}");
        if seen.contains(&key) {
            continue;
        }
        if unique || count_matches(d, 1, &rel_rows, &query) == 1 {
            seen.insert(key);
            queries.push(query);
        }
    }
    let n_attacks = queries.len();
    let n_success = queries
        .iter()
        .filter(|q| count_matches(d, 0, &ori_rows, q) == 1)
        .count();
    let n_control = if control {
        Some(
            queries
                .iter()
                .filter(|q| count_matches(d, 2, &ctl_rows, q) == 1)
                .count() as f64,
        )
    } else {
        None
    };
    // Baseline: random values and operators.
    let mut n_baseline = 0;
    for _ in 0..n_attacks {
        let mut qs: Vec<usize> = (0..nq).collect();
        qs.shuffle(rng);
        qs.truncate(ncols);
        let query: Vec<Pred> = qs
            .iter()
            .map(|&q| {
                let dl = d.dict(1, q).len() as u32;
                let code = rng.gen_range(0..dl.max(1));
                match (
                    d.meta[q].point,
                    d.meta[q].num[1].get(code as usize).copied().flatten(),
                ) {
                    (true, Some(v)) => Pred::Cmp {
                        q,
                        op: [Op::Eq, Op::Ne, Op::Lt, Op::Gt, Op::Le, Op::Ge][rng.gen_range(0..6)],
                        value: v,
                    },
                    _ => Pred::Cover {
                        q,
                        code,
                        negate: rng.gen(),
                    },
                }
            })
            .collect();
        if count_matches(d, 0, &ori_rows, &query) == 1 {
            n_baseline += 1;
        }
    }
    let mut res = result(n_attacks, n_success, n_baseline, n_control, p.confidence);
    if n_attacks < p.n_attacks {
        res.warnings.push(format!(
            "only {n_attacks} of {} singling-out queries could be built from the release (it has few unique combinations); fewer attacks mean wider intervals",
            p.n_attacks
        ));
    }
    res
}

fn linkability(
    d: &mut Data<'_>,
    quasi_n: usize,
    p: &AttackParams,
    control: bool,
    rng: &mut ChaCha20Rng,
) -> Option<AttackResult> {
    if quasi_n < 2 {
        return None;
    }
    let a: Vec<usize> = (0..quasi_n / 2).collect();
    let b: Vec<usize> = (quasi_n / 2..quasi_n).collect();
    let n_rel = d.t[1].nrows();
    let targets = sample_rows(d.t[0].nrows(), p.n_attacks, rng);
    let n_attacks = targets.len();
    let na = nearest_many(d, 0, &targets, &a, rng.gen());
    let nb = nearest_many(d, 0, &targets, &b, rng.gen());
    let n_success = na.iter().zip(&nb).filter(|(x, y)| x.0 == y.0).count();
    let n_control = if control {
        let ct = sample_rows(d.t[2].nrows(), n_attacks, rng);
        let ca = nearest_many(d, 2, &ct, &a, rng.gen());
        let cb = nearest_many(d, 2, &ct, &b, rng.gen());
        let s = ca.iter().zip(&cb).filter(|(x, y)| x.0 == y.0).count();
        Some(s as f64 * n_attacks as f64 / ct.len().max(1) as f64)
    } else {
        None
    };
    let n_baseline = (0..n_attacks)
        .filter(|_| rng.gen_range(0..n_rel.max(1)) == rng.gen_range(0..n_rel.max(1)))
        .count();
    Some(result(
        n_attacks,
        n_success,
        n_baseline,
        n_control,
        p.confidence,
    ))
}

fn guess_right(d: &Data<'_>, s: usize, t: usize, r: usize, rel_code: u32, tol: f64) -> bool {
    let truth = &d.dict(t, s)[d.code(t, s, r) as usize];
    let guess = &d.dict(1, s)[rel_code as usize];
    if is_missing(guess) {
        return false;
    }
    if d.meta[s].point {
        if let (Some(x), Some(g)) = (to_num(truth), to_num(guess)) {
            return (g - x).abs() <= tol * x.abs().max(1e-12);
        }
    }
    label_matches(guess, truth)
}

fn inference(
    d: &mut Data<'_>,
    aux: &[usize],
    secret: usize,
    p: &AttackParams,
    control: bool,
    rng: &mut ChaCha20Rng,
) -> AttackResult {
    let targets = sample_rows(d.t[0].nrows(), p.n_attacks, rng);
    let n_attacks = targets.len();
    let n_rel = d.t[1].nrows();
    let mut n_success = 0;
    let mut n_baseline = 0;
    let found = nearest_many(d, 0, &targets, aux, rng.gen());
    for (&r, &(i, _)) in targets.iter().zip(&found) {
        let g = d.code(1, secret, i);
        n_success += usize::from(guess_right(d, secret, 0, r, g, p.tolerance));
        let rb = rng.gen_range(0..n_rel.max(1));
        let gb = d.code(1, secret, rb);
        n_baseline += usize::from(guess_right(d, secret, 0, r, gb, p.tolerance));
    }
    let n_control = if control {
        let ct = sample_rows(d.t[2].nrows(), n_attacks, rng);
        let found = nearest_many(d, 2, &ct, aux, rng.gen());
        let s = ct
            .iter()
            .zip(&found)
            .filter(|(&r, &(i, _))| guess_right(d, secret, 2, r, d.code(1, secret, i), p.tolerance))
            .count();
        Some(s as f64 * n_attacks as f64 / ct.len().max(1) as f64)
    } else {
        None
    };
    result(n_attacks, n_success, n_baseline, n_control, p.confidence)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn membership(
    d: &mut Data<'_>,
    all: &[usize],
    p: &AttackParams,
    control: bool,
    rng: &mut ChaCha20Rng,
) -> MembershipResult {
    let members = sample_rows(d.t[0].nrows(), p.n_attacks, rng);
    let mut dm: Vec<f64> = nearest_many(d, 0, &members, all, rng.gen())
        .into_iter()
        .map(|x| x.1)
        .collect();
    let exact_m = dm.iter().filter(|&&x| x <= 1e-9).count() as f64 / dm.len().max(1) as f64;
    let mut out = MembershipResult {
        members: dm.len(),
        non_members: 0,
        exact_copies_members: exact_m,
        exact_copies_non_members: None,
        median_dcr_members: 0.0,
        median_dcr_non_members: None,
        auc: None,
        auc_ci: None,
        risk: None,
    };
    if control {
        let nm = sample_rows(d.t[2].nrows(), p.n_attacks, rng);
        let mut dn: Vec<f64> = nearest_many(d, 2, &nm, all, rng.gen())
            .into_iter()
            .map(|x| x.1)
            .collect();
        // AUC = P(member closer) + P(tie)/2, by sorting.
        let mut wins = 0.0;
        let mut sorted_n = dn.clone();
        sorted_n.sort_by(|a, b| a.total_cmp(b));
        for &x in &dm {
            let greater = sorted_n.len() - sorted_n.partition_point(|&y| y <= x);
            let ties = sorted_n.partition_point(|&y| y <= x) - sorted_n.partition_point(|&y| y < x);
            wins += greater as f64 + 0.5 * ties as f64;
        }
        let (n1, n2) = (dm.len() as f64, dn.len() as f64);
        let auc = if n1 * n2 > 0.0 { wins / (n1 * n2) } else { 0.5 };
        // Hanley & McNeil (1982) standard error.
        let q1 = auc / (2.0 - auc);
        let q2 = 2.0 * auc * auc / (1.0 + auc);
        let se =
            ((auc * (1.0 - auc) + (n1 - 1.0) * (q1 - auc * auc) + (n2 - 1.0) * (q2 - auc * auc))
                / (n1 * n2).max(1.0))
            .max(0.0)
            .sqrt();
        let z = probit(0.5 * (1.0 + p.confidence));
        out.non_members = dn.len();
        out.exact_copies_non_members =
            Some(dn.iter().filter(|&&x| x <= 1e-9).count() as f64 / dn.len().max(1) as f64);
        out.median_dcr_non_members = Some(median(&mut dn));
        out.auc = Some(auc);
        out.auc_ci = Some(((auc - z * se).max(0.0), (auc + z * se).min(1.0)));
        out.risk = Some((2.0 * auc - 1.0).clamp(0.0, 1.0));
    }
    out.median_dcr_members = median(&mut dm);
    out
}

/// Run all attacks. `quasi` are the columns the attacker knows; `sensitive`
/// the one they want to infer.
pub fn run_attacks(
    original: &Table,
    released: &Table,
    control: Option<&Table>,
    quasi: &[String],
    sensitive: Option<&str>,
    p: &AttackParams,
) -> Result<AttackReport> {
    if quasi.is_empty() {
        return Err(DeidError::Config(
            "the attacks need at least one quasi-identifier (--quasi)".into(),
        ));
    }
    if released.nrows() == 0 {
        return Err(DeidError::Config(
            "the released table has no rows; nothing to attack".into(),
        ));
    }
    let mut names: Vec<String> = quasi.to_vec();
    if let Some(s) = sensitive {
        if !names.iter().any(|n| n == s) {
            names.push(s.to_string());
        }
    }
    let mut d = Data::new(original, released, control, &names)?;
    let mut rng = ChaCha20Rng::seed_from_u64(p.seed);
    let has_control = control.is_some();
    let all: Vec<usize> = (0..names.len()).collect();
    let so = singling_out(&mut d, p, has_control, &mut rng);
    let link = linkability(&mut d, quasi.len(), p, has_control, &mut rng);
    let inf = sensitive.map(|_| {
        let aux: Vec<usize> = (0..quasi.len()).collect();
        inference(&mut d, &aux, names.len() - 1, p, has_control, &mut rng)
    });
    let mem = membership(&mut d, &all, p, has_control, &mut rng);
    Ok(AttackReport {
        attack_columns: names,
        singling_out: so,
        linkability: link,
        inference: inf,
        membership: mem,
        control: has_control,
        confidence: p.confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_known_values() {
        assert!((probit(0.975) - 1.959963985).abs() < 1e-6);
        assert!((probit(0.5)).abs() < 1e-9);
        assert!((probit(0.01) + 2.326347874).abs() < 1e-6);
    }

    #[test]
    fn wilson_matches_hand_computation() {
        // n = 100, k = 20, z = 1.96: centre (20 + 1.9208)/103.8415 = 0.21110,
        // error 1.96/103.8415 * sqrt(16 + 0.9604) = 0.07775.
        let r = success_rate(100.0, 20.0, 0.95);
        assert!((r.value - 0.211100).abs() < 1e-4, "{r:?}");
        assert!((r.error - 0.077752).abs() < 1e-4, "{r:?}");
    }

    #[test]
    fn residual_risk_formula() {
        let r = result(100, 60, 5, Some(20.0), 0.95);
        let a = success_rate(100.0, 60.0, 0.95).value;
        let c = success_rate(100.0, 20.0, 0.95).value;
        assert!((r.risk - (a - c) / (1.0 - c)).abs() < 1e-12);
        assert!(r.risk_ci.0 < r.risk && r.risk < r.risk_ci.1);
    }
}
