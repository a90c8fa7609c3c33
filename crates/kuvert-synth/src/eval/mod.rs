//! Evaluation of synthetic data against the real data: quality measures,
//! acceptance criteria and the privacy report.
//!
//! [`evaluate`] compares the synthetic table with the real rows the
//! synthesizer was fitted on (*train*) and, when given, real rows that were
//! held out of the fit (*holdout*):
//!
//! * **Marginals**: total variation distance (TVD) of every 1-way and 2-way
//!   marginal, on categories or on bins fitted to the real data
//!   ([`columns`]), with the holdout's TVD to the train set as a yardstick
//!   of sampling noise.
//! * **Correlations**: the difference between real and synthetic
//!   association of every pair: Pearson's r for two numeric/date columns,
//!   Cramér's V (on categories and bins) for every other pair.
//! * **ML efficacy**: a logistic-regression classifier ([`ml`]) trained on
//!   synthetic and tested on real holdout rows, against the same classifier
//!   trained on the real training rows.
//! * **Coverage**: share of real categories and of the real range that the
//!   synthetic data cover, and synthetic values the real data never had.
//! * **Identity numbers**: validity of synthetic personnummer and whether any
//!   equals a real one.
//! * **Privacy**: the attack tests of `kuvert risk`
//!   ([`kuvert_deid::attacks::run_attacks`]) with the synthetic table as the
//!   release and the holdout as the control set, and exact copies.
//!
//! # Not differentially private
//!
//! The evaluation reads the real data without noise, and the [`Evaluation`]
//! (JSON and HTML) contains statistics of it: category shares, real minima
//! and maxima (values of single people), correlations. It is for the
//! controller's acceptance decision. Publishing it spends privacy that the
//! synthesizer's ε does not account for; review it before it leaves the
//! controller.

pub mod columns;
pub mod criteria;
pub mod html;
pub mod measures;
pub mod ml;

pub use columns::{Binning, ColumnKind};
pub use criteria::{ColumnCriteria, Criteria};
pub use html::render_html;

use columns::{encode, infer_kind, require_columns, Encoded};
use kuvert_deid::attacks::{run_attacks, AttackParams, AttackReport};
use kuvert_deid::table::Table;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Errors of the evaluation. All are the user's to fix (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The criteria file is not valid TOML or has an unknown key or a wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Config {
        /// File.
        path: String,
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Inconsistent input or settings (unknown column, missing column, bad value).
    #[error("{0}")]
    Invalid(String),
    /// Reading or checking a table failed.
    #[error(transparent)]
    Data(#[from] kuvert_deid::DeidError),
}

/// Result alias of the evaluation.
pub type Result<T> = std::result::Result<T, EvalError>;

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Acceptance criteria (and settings from the criteria file).
    pub criteria: Criteria,
    /// Column kind overrides (win over `[columns.X] kind` and inference).
    pub kinds: BTreeMap<String, ColumnKind>,
    /// Target of the ML efficacy test (default: the criteria's `target`,
    /// else the last categorical column).
    pub target: Option<String>,
    /// Columns the attacker knows (default: the criteria's, else all evaluated columns but the sensitive one).
    pub quasi: Option<Vec<String>>,
    /// Column the attacker wants to learn (default: the criteria's, else the ML target).
    pub sensitive: Option<String>,
    /// Attacks per test; 0 skips the privacy tests.
    pub n_attacks: usize,
    /// Conditions per singling-out query.
    pub attack_query_columns: usize,
    /// Seed of the attacks, the train/test split and the classifier.
    pub seed: u64,
    /// Bins per numeric/date column.
    pub bins: usize,
    /// Bin edges: quantiles or equal width.
    pub binning: Binning,
    /// Classifier epochs.
    pub ml_epochs: usize,
    /// Share of the train set used as the ML test set when there is no holdout.
    pub test_fraction: f64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            criteria: Criteria::default(),
            kinds: BTreeMap::new(),
            target: None,
            quasi: None,
            sensitive: None,
            n_attacks: 500,
            attack_query_columns: 3,
            seed: 1,
            bins: 20,
            binning: Binning::Quantile,
            ml_epochs: 8,
            test_fraction: 0.2,
        }
    }
}

impl EvalOptions {
    /// Options from criteria: the criteria's settings (`bins`, `binning`,
    /// `attacks`, `seed`, `target`, `quasi`, `sensitive`) replace the defaults.
    pub fn with_criteria(criteria: Criteria) -> EvalOptions {
        let d = EvalOptions::default();
        EvalOptions {
            target: criteria.target.clone(),
            quasi: criteria.quasi.clone(),
            sensitive: criteria.sensitive.clone(),
            n_attacks: criteria.attacks.unwrap_or(d.n_attacks),
            seed: criteria.seed.unwrap_or(d.seed),
            bins: criteria.bins.unwrap_or(d.bins),
            binning: criteria.binning.unwrap_or(d.binning),
            criteria,
            ..d
        }
    }
}

/// The inputs, as the report names them.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    /// Real rows the synthesizer was fitted on.
    pub train: String,
    /// Their number.
    pub train_rows: usize,
    /// Real rows held out of the fit.
    pub holdout: Option<String>,
    /// Their number.
    pub holdout_rows: usize,
    /// The synthetic table.
    pub synthetic: String,
    /// Its rows.
    pub synthetic_rows: usize,
}

/// One bar pair of a column's chart: shares of a bin in real and synthetic data.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    /// Category or bin.
    pub label: String,
    /// Share of real (train) records.
    pub real: f64,
    /// Share of synthetic records.
    pub synthetic: f64,
}

/// Per-column results.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnReport {
    /// Column name.
    pub name: String,
    /// Kind used.
    pub kind: ColumnKind,
    /// Whether the kind was inferred (false: overridden).
    pub kind_inferred: bool,
    /// Number of bins (categories, or intervals plus missing/below/above).
    pub bins: usize,
    /// 1-way TVD real vs synthetic.
    pub tvd: f64,
    /// 1-way TVD real train vs real holdout (sampling-noise yardstick).
    pub tvd_holdout: Option<f64>,
    /// Share of empty (or unparsable) values, real.
    pub missing_real: f64,
    /// Same, synthetic.
    pub missing_synthetic: f64,
    /// Category coverage (categorical) or range coverage (numeric/date).
    pub coverage: f64,
    /// `"category"` or `"range"`.
    pub coverage_kind: String,
    /// Distinct real categories (categorical) or real bins (numeric/date).
    pub real_categories: usize,
    /// Of these, how many appear in the synthetic data.
    pub real_categories_covered: usize,
    /// Distinct synthetic values never seen in the real data (categorical).
    pub synthetic_only_values: usize,
    /// Share of synthetic records with a value never seen in the real data
    /// (categorical) or outside the real range (numeric/date).
    pub synthetic_only_share: f64,
    /// Real minimum (numeric/date).
    pub real_min: Option<String>,
    /// Real maximum.
    pub real_max: Option<String>,
    /// Synthetic minimum.
    pub synthetic_min: Option<String>,
    /// Synthetic maximum.
    pub synthetic_max: Option<String>,
    /// Synthetic cells that do not parse as the column's kind.
    pub synthetic_unparsable: u64,
    /// Shares per bin for the chart (at most 30 bins, the rest pooled as "(other)").
    pub bars: Vec<Bar>,
}

/// Per-pair results.
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    /// First column.
    pub a: String,
    /// Second column.
    pub b: String,
    /// 2-way TVD real vs synthetic.
    pub tvd: f64,
    /// 2-way TVD train vs holdout.
    pub tvd_holdout: Option<f64>,
    /// `"pearson"` (both numeric/date) or `"cramers_v"`.
    pub measure: String,
    /// Association in the real data.
    pub real: f64,
    /// Association in the synthetic data.
    pub synthetic: f64,
    /// `|real − synthetic|`.
    pub diff: f64,
}

/// Accuracy and macro-F1 of a classifier on the real test rows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scores {
    /// Share of test rows predicted right.
    pub accuracy: f64,
    /// Mean F1 over the classes in the test rows.
    pub macro_f1: f64,
}

/// ML efficacy.
#[derive(Debug, Clone, Serialize)]
pub struct MlReport {
    /// Target column.
    pub target: String,
    /// Whether the target was chosen by default.
    pub target_default: bool,
    /// `"holdout"` or `"split of the train set"`.
    pub test_set: String,
    /// Test rows (real).
    pub test_rows: usize,
    /// Rows the real-trained model learned from.
    pub train_rows_real: usize,
    /// Rows the synthetic-trained model learned from.
    pub train_rows_synthetic: usize,
    /// Target classes.
    pub classes: usize,
    /// Features (one-hot and standardised).
    pub features: usize,
    /// Trained on real, tested on real.
    pub real: Scores,
    /// Trained on synthetic, tested on real.
    pub synthetic: Scores,
    /// Always predicting the most frequent real class.
    pub majority: Scores,
    /// `synthetic.accuracy / real.accuracy`.
    pub accuracy_ratio: f64,
    /// ML efficacy: `synthetic.macro_f1 / real.macro_f1`.
    pub efficacy: f64,
    /// Things the reader must know.
    pub notes: Vec<String>,
}

/// Identity-number checks of one column.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityReport {
    /// Column.
    pub name: String,
    /// Non-empty synthetic values.
    pub synthetic_values: u64,
    /// Share of them that are valid identity numbers (date, check digit).
    pub valid_share: f64,
    /// Synthetic values equal to a real one (train or holdout, after normalisation).
    pub equal_real: u64,
    /// Their share.
    pub equal_real_share: f64,
}

/// The privacy tests.
#[derive(Debug, Clone, Serialize)]
pub struct PrivacyReport {
    /// Columns the attacker knows.
    pub quasi: Vec<String>,
    /// Whether they were chosen by default.
    pub quasi_default: bool,
    /// Column the attacker wants to learn.
    pub sensitive: Option<String>,
    /// Attacks per test.
    pub n_attacks: usize,
    /// Seed.
    pub seed: u64,
    /// The results of `kuvert risk`'s attacks.
    pub attacks: AttackReport,
}

/// One acceptance criterion's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CriterionResult {
    /// Key in ACCEPT.toml.
    pub name: String,
    /// Column, for per-column criteria.
    pub column: Option<String>,
    /// What it asks, in plain English.
    pub description: String,
    /// `"<="` or `">="`.
    pub comparison: String,
    /// Threshold.
    pub threshold: f64,
    /// Measured value (`None`: could not be measured, which fails).
    pub value: Option<f64>,
    /// Whether it is met.
    pub passed: bool,
    /// Where the value comes from (worst column or pair, interval end, ...).
    pub detail: String,
}

/// The whole evaluation (the JSON report).
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Always false: the evaluation itself is not differentially private.
    pub differentially_private: bool,
    /// What publishing this report discloses.
    pub disclosure: String,
    /// Inputs.
    pub inputs: Inputs,
    /// Acceptance criteria results.
    pub criteria: Vec<CriterionResult>,
    /// Whether every criterion passed (true when there are none).
    pub passed: bool,
    /// Largest 1-way TVD.
    pub tvd_1way_max: f64,
    /// Its column.
    pub tvd_1way_max_column: Option<String>,
    /// Mean 1-way TVD.
    pub tvd_1way_mean: f64,
    /// Largest 2-way TVD.
    pub tvd_2way_max: f64,
    /// Its pair.
    pub tvd_2way_max_pair: Option<(String, String)>,
    /// Mean 2-way TVD.
    pub tvd_2way_mean: f64,
    /// Largest association difference.
    pub corr_diff_max: f64,
    /// Its pair.
    pub corr_diff_max_pair: Option<(String, String)>,
    /// Mean association difference.
    pub corr_diff_mean: f64,
    /// Smallest category coverage over categorical columns.
    pub category_coverage_min: Option<f64>,
    /// Smallest range coverage over numeric/date columns.
    pub range_coverage_min: Option<f64>,
    /// Share of synthetic records identical to a real training record (all evaluated columns).
    pub exact_copies: f64,
    /// Same for the holdout (natural duplicates; the yardstick).
    pub exact_copies_holdout: Option<f64>,
    /// Per column.
    pub columns: Vec<ColumnReport>,
    /// Per pair.
    pub pairs: Vec<PairReport>,
    /// ML efficacy (absent when no column can be a target).
    pub ml: Option<MlReport>,
    /// Identity-number columns.
    pub identity: Vec<IdentityReport>,
    /// Columns left out (kind `ignore`).
    pub ignored_columns: Vec<String>,
    /// Privacy tests (absent with 0 attacks).
    pub privacy: Option<PrivacyReport>,
    /// Things the reader must know.
    pub notes: Vec<String>,
    /// Wall time of the evaluation in seconds.
    pub seconds: f64,
}

impl Evaluation {
    /// Whether every acceptance criterion passed.
    pub fn passed(&self) -> bool {
        self.passed
    }
}

/// The statement every report carries.
pub const DISCLOSURE: &str = "This evaluation compares the synthetic data with the real data and is itself NOT differentially private: it contains statistics of the real data (category shares, the real minimum and maximum of each number, which are values of single people, correlations, attack results). It is for the controller's acceptance decision. Publish it only after review, and treat it as derived from personal data until then.";

fn bars(e: &Encoded, hr: &[u64], hs: &[u64]) -> Vec<Bar> {
    let (nr, ns) = (
        hr.iter().sum::<u64>().max(1) as f64,
        hs.iter().sum::<u64>().max(1) as f64,
    );
    let all: Vec<Bar> = e
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| Bar {
            label: l.clone(),
            real: hr[i] as f64 / nr,
            synthetic: hs[i] as f64 / ns,
        })
        .filter(|b| !(e.kind.is_ordered() && b.real == 0.0 && b.synthetic == 0.0))
        .collect();
    const MAX: usize = 30;
    if all.len() <= MAX {
        return all;
    }
    // Categorical labels come in real-frequency order: keep the first, pool the rest.
    let mut out: Vec<Bar> = all[..MAX - 1].to_vec();
    let rest = &all[MAX - 1..];
    out.push(Bar {
        label: format!("(other: {} values)", rest.len()),
        real: rest.iter().map(|b| b.real).sum(),
        synthetic: rest.iter().map(|b| b.synthetic).sum(),
    });
    out
}

fn column_report(e: &Encoded, has_holdout: bool) -> ColumnReport {
    let nb = e.labels.len();
    let hr = measures::histogram(&e.codes[0], nb);
    let hs = measures::histogram(&e.codes[1], nb);
    let tvd_holdout =
        has_holdout.then(|| measures::tvd(&hr, &measures::histogram(&e.codes[2], nb)));
    let (nr, ns) = (
        e.codes[0].len().max(1) as f64,
        e.codes[1].len().max(1) as f64,
    );
    let (
        missing_real,
        missing_synthetic,
        coverage,
        coverage_kind,
        covered,
        real_cats,
        only_vals,
        only_share,
    );
    let fmt = |x: f64| columns::fmt_value(e.kind, x);
    if e.kind.is_ordered() {
        missing_real = hr[0] as f64 / nr;
        missing_synthetic = hs[0] as f64 / ns;
        coverage = e
            .real_range
            .map(|r| measures::range_coverage(r, e.synthetic_range))
            .unwrap_or(1.0);
        coverage_kind = "range";
        real_cats = e.real_categories;
        covered = (2..2 + e.real_categories).filter(|&b| hs[b] > 0).count();
        only_vals = 0;
        only_share = (hs[1] + hs[nb - 1]) as f64 / ns;
    } else {
        let empty = e.labels.iter().position(|l| columns::is_missing(l));
        missing_real = empty.map(|i| hr[i] as f64 / nr).unwrap_or(0.0);
        missing_synthetic = empty.map(|i| hs[i] as f64 / ns).unwrap_or(0.0);
        real_cats = e.real_categories;
        covered = (0..e.real_categories).filter(|&b| hs[b] > 0).count();
        coverage = if real_cats == 0 {
            1.0
        } else {
            covered as f64 / real_cats as f64
        };
        coverage_kind = "category";
        only_vals = (e.real_categories..nb).filter(|&b| hs[b] > 0).count();
        only_share = hs[e.real_categories..].iter().sum::<u64>() as f64 / ns;
    }
    ColumnReport {
        name: e.name.clone(),
        kind: e.kind,
        kind_inferred: e.inferred,
        bins: nb,
        tvd: measures::tvd(&hr, &hs),
        tvd_holdout,
        missing_real,
        missing_synthetic,
        coverage,
        coverage_kind: coverage_kind.to_string(),
        real_categories: real_cats,
        real_categories_covered: covered,
        synthetic_only_values: only_vals,
        synthetic_only_share: only_share,
        real_min: e.real_range.map(|r| fmt(r.0)),
        real_max: e.real_range.map(|r| fmt(r.1)),
        synthetic_min: e.synthetic_range.map(|r| fmt(r.0)),
        synthetic_max: e.synthetic_range.map(|r| fmt(r.1)),
        synthetic_unparsable: e.synthetic_unparsable,
        bars: bars(e, &hr, &hs),
    }
}

fn pair_report(a: &Encoded, b: &Encoded, has_holdout: bool) -> PairReport {
    let (na, nb) = (a.labels.len(), b.labels.len());
    let jr = measures::joint(&a.codes[0], &b.codes[0], na, nb);
    let js = measures::joint(&a.codes[1], &b.codes[1], na, nb);
    let tvd_holdout = has_holdout.then(|| {
        let jh = measures::joint(&a.codes[2], &b.codes[2], na, nb);
        measures::tvd_joint(&jr, &jh)
    });
    let (measure, real, synthetic) = match (&a.values, &b.values) {
        (Some(va), Some(vb)) => (
            "pearson",
            measures::pearson(&va[0], &vb[0]),
            measures::pearson(&va[1], &vb[1]),
        ),
        _ => (
            "cramers_v",
            measures::cramers_v(&jr, nb),
            measures::cramers_v(&js, nb),
        ),
    };
    PairReport {
        a: a.name.clone(),
        b: b.name.clone(),
        tvd: measures::tvd_joint(&jr, &js),
        tvd_holdout,
        measure: measure.to_string(),
        real,
        synthetic,
        diff: (real - synthetic).abs(),
    }
}

fn identity_report(name: &str, tables: &[Option<&Table>; 3]) -> Result<IdentityReport> {
    let norm = |s: &str| {
        kuvert_deid::idnr::parse(s)
            .ok()
            .map(|n| n.as_str().to_string())
    };
    let mut real: HashSet<String> = HashSet::new();
    for t in [tables[0], tables[2]].into_iter().flatten() {
        let c = &t.columns[t.col_index(name)?];
        for v in &c.dict {
            if let Some(n) = norm(v) {
                real.insert(n);
            }
            real.insert(v.trim().to_string());
        }
    }
    let syn = tables[1].expect("synthetic");
    let c = &syn.columns[syn.col_index(name)?];
    let counts = c.counts();
    let (mut values, mut valid, mut equal) = (0u64, 0u64, 0u64);
    for (v, &n) in c.dict.iter().zip(&counts) {
        if n == 0 || columns::is_missing(v) {
            continue;
        }
        values += n;
        let nv = norm(v);
        if nv.is_some() {
            valid += n;
        }
        if real.contains(v.trim()) || nv.map(|x| real.contains(&x)).unwrap_or(false) {
            equal += n;
        }
    }
    let share = |x: u64| {
        if values == 0 {
            0.0
        } else {
            x as f64 / values as f64
        }
    };
    Ok(IdentityReport {
        name: name.to_string(),
        synthetic_values: values,
        valid_share: share(valid),
        equal_real: equal,
        equal_real_share: share(equal),
    })
}

/// Row keys over the evaluated columns (exact values) for the copy check.
fn row_keys(enc: &[Encoded], t: usize) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    let n = enc.first().map(|e| e.codes[t].len()).unwrap_or(0);
    (0..n)
        .into_par_iter()
        .map(|r| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for e in enc {
                match &e.values {
                    Some(v) => {
                        let x = v[t][r];
                        (if x.is_nan() { u64::MAX } else { x.to_bits() }).hash(&mut h);
                    }
                    None => e.codes[t][r].hash(&mut h),
                }
            }
            h.finish()
        })
        .collect()
}

fn copy_share(train: &HashSet<u64>, keys: &[u64]) -> f64 {
    if keys.is_empty() {
        return 0.0;
    }
    keys.iter().filter(|k| train.contains(k)).count() as f64 / keys.len() as f64
}

fn ratio(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        if a <= 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        a / b
    }
}

/// Build the design matrix of table `t` for the feature columns.
fn design(enc: &[&Encoded], t: usize, rows: &[usize], stats: &[(f64, f64)]) -> ml::Design {
    let mut offsets = Vec::with_capacity(enc.len());
    let mut nf = 1usize;
    for e in enc {
        offsets.push(nf);
        nf += e.labels.len().min(ml::MAX_LEVELS) + usize::from(e.values.is_some());
    }
    let slots = 1 + enc.len() + enc.iter().filter(|e| e.values.is_some()).count();
    let mut d = ml::Design {
        idx: Vec::with_capacity(rows.len() * slots),
        val: Vec::with_capacity(rows.len() * slots),
        slots,
        n_features: nf,
    };
    for &r in rows {
        d.idx.push(0);
        d.val.push(1.0);
        for (j, e) in enc.iter().enumerate() {
            let levels = e.labels.len().min(ml::MAX_LEVELS);
            let code = (e.codes[t][r] as usize).min(levels - 1);
            d.idx.push((offsets[j] + code) as u32);
            d.val.push(1.0);
            if let Some(v) = &e.values {
                let x = v[t][r];
                let (m, s) = stats[j];
                d.idx.push((offsets[j] + levels) as u32);
                d.val.push(if x.is_nan() {
                    0.0
                } else {
                    (((x - m) / s) as f32).clamp(-10.0, 10.0)
                });
            }
        }
    }
    d
}

#[allow(clippy::too_many_arguments)]
fn ml_efficacy(
    enc: &[Encoded],
    target: usize,
    target_default: bool,
    has_holdout: bool,
    opts: &EvalOptions,
) -> MlReport {
    let mut notes = Vec::new();
    let feats: Vec<&Encoded> = enc
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != target)
        .map(|(_, e)| e)
        .collect();
    let te = &enc[target];
    let classes = te.labels.len().min(ml::MAX_LEVELS);
    if te.labels.len() > ml::MAX_LEVELS {
        notes.push(format!(
            "the target has {} values; the {} most frequent real ones are kept as classes and the rest pooled into one",
            te.labels.len(),
            ml::MAX_LEVELS - 1
        ));
    }
    let label = |t: usize, r: usize| (te.codes[t][r] as usize).min(classes - 1) as u32;
    let n_train = te.codes[0].len();
    let (real_rows, test_rows, test_table): (Vec<usize>, Vec<usize>, usize) = if has_holdout {
        ((0..n_train).collect(), (0..te.codes[2].len()).collect(), 2)
    } else {
        let mut all: Vec<usize> = (0..n_train).collect();
        all.shuffle(&mut ChaCha20Rng::seed_from_u64(opts.seed ^ 0x5eed));
        let n_test =
            ((n_train as f64 * opts.test_fraction).round() as usize).clamp(1.min(n_train), n_train);
        let test = all[..n_test].to_vec();
        let rest = all[n_test..].to_vec();
        notes.push(format!(
            "no holdout: the real-trained model learned from {}% of the training rows and both models were tested on the other {}%; the synthesizer saw those test rows, so the synthetic model's score may be flattered",
            ((1.0 - opts.test_fraction) * 100.0).round(),
            (opts.test_fraction * 100.0).round()
        ));
        (rest, test, 0)
    };
    let mut syn_rows: Vec<usize> = (0..te.codes[1].len()).collect();
    let mut real_rows = real_rows;
    // Large tables: each model learns from a seeded random subset.
    for (rows, what, salt) in [
        (&mut real_rows, "real", 1u64),
        (&mut syn_rows, "synthetic", 2),
    ] {
        if rows.len() > MAX_TRAIN_ROWS {
            rows.shuffle(&mut ChaCha20Rng::seed_from_u64(opts.seed ^ salt));
            rows.truncate(MAX_TRAIN_ROWS);
            rows.sort_unstable();
            notes.push(format!(
                "the {what}-trained model learned from a random {MAX_TRAIN_ROWS} of the {what} training rows"
            ));
        }
    }
    // Standardisation with the real training rows' mean and deviation.
    let stats: Vec<(f64, f64)> = feats
        .iter()
        .map(|e| match &e.values {
            Some(v) => {
                let xs: Vec<f64> = real_rows
                    .iter()
                    .map(|&r| v[0][r])
                    .filter(|x| !x.is_nan())
                    .collect();
                let n = xs.len().max(1) as f64;
                let m = xs.iter().sum::<f64>() / n;
                let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
                (m, if var > 0.0 { var.sqrt() } else { 1.0 })
            }
            None => (0.0, 1.0),
        })
        .collect();
    let x_real = design(&feats, 0, &real_rows, &stats);
    let x_syn = design(&feats, 1, &syn_rows, &stats);
    let x_test = design(&feats, test_table, &test_rows, &stats);
    let y_real: Vec<u32> = real_rows.iter().map(|&r| label(0, r)).collect();
    let y_syn: Vec<u32> = syn_rows.iter().map(|&r| label(1, r)).collect();
    let y_test: Vec<u32> = test_rows.iter().map(|&r| label(test_table, r)).collect();
    let p = ml::TrainParams {
        epochs: opts.ml_epochs,
        seed: opts.seed,
        ..ml::TrainParams::default()
    };
    let (m_real, m_syn) = rayon::join(
        || ml::train(&x_real, &y_real, classes, &p),
        || ml::train(&x_syn, &y_syn, classes, &p),
    );
    let score = |m: &ml::Model| {
        let (accuracy, macro_f1) = ml::scores(&y_test, &m.predict(&x_test), classes);
        Scores { accuracy, macro_f1 }
    };
    let real = score(&m_real);
    let synthetic = score(&m_syn);
    let mut counts = vec![0u64; classes];
    for &y in &y_real {
        counts[y as usize] += 1;
    }
    let majority_class = (0..classes)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0) as u32;
    let (accuracy, macro_f1) = ml::scores(&y_test, &vec![majority_class; y_test.len()], classes);
    if real.macro_f1 <= macro_f1 + 1e-9 {
        notes.push("the model trained on real data does no better than always guessing the most frequent class: the target is hard to predict from the other columns, and the efficacy ratio says little".to_string());
    }
    MlReport {
        target: te.name.clone(),
        target_default,
        test_set: if has_holdout {
            "holdout"
        } else {
            "split of the train set"
        }
        .to_string(),
        test_rows: test_rows.len(),
        train_rows_real: real_rows.len(),
        train_rows_synthetic: syn_rows.len(),
        classes,
        features: x_real.n_features,
        real,
        synthetic,
        majority: Scores { accuracy, macro_f1 },
        accuracy_ratio: ratio(synthetic.accuracy, real.accuracy),
        efficacy: ratio(synthetic.macro_f1, real.macro_f1),
        notes,
    }
}

/// Most rows a classifier learns from (a seeded random subset beyond).
pub const MAX_TRAIN_ROWS: usize = 50_000;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Evaluate synthetic data against the real rows it was fitted on (`train`)
/// and, when given, real rows held out of the fit (`holdout`, the ML test
/// set and the attacks' control set). `progress(stage, done, total)` is
/// called as the work advances.
pub fn evaluate(
    train: &Table,
    holdout: Option<&Table>,
    synthetic: &Table,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<Evaluation> {
    let t0 = std::time::Instant::now();
    let mut notes = Vec::new();
    if train.nrows() == 0 {
        return Err(EvalError::Invalid(format!(
            "{}: the real table has no rows",
            train.source
        )));
    }
    if synthetic.nrows() == 0 {
        return Err(EvalError::Invalid(format!(
            "{}: the synthetic table has no rows",
            synthetic.source
        )));
    }
    if let Some(h) = holdout {
        if h.nrows() == 0 {
            return Err(EvalError::Invalid(format!(
                "{}: the holdout table has no rows",
                h.source
            )));
        }
    }
    let crit = &opts.criteria;
    // Every column named in the configuration must exist.
    let unknown = |name: &str, key: &str| -> Result<()> {
        if train.headers.iter().any(|h| h == name) {
            Ok(())
        } else {
            let at = if key == "[columns]" { name } else { key };
            Err(EvalError::Invalid(format!(
                "{}{key} names column `{name}`, which is not in {} (columns are: {})",
                crit.locate(at),
                train.source,
                train.headers.join(", ")
            )))
        }
    };
    for name in crit.columns.keys() {
        unknown(name, "[columns]")?;
    }
    for name in opts.kinds.keys() {
        unknown(name, "a kind override")?;
    }
    let target_name = opts.target.clone().or_else(|| crit.target.clone());
    let sensitive_name = opts.sensitive.clone().or_else(|| crit.sensitive.clone());
    let quasi_names = opts.quasi.clone().or_else(|| crit.quasi.clone());
    if let Some(t) = &target_name {
        unknown(t, "target")?;
    }
    if let Some(s) = &sensitive_name {
        unknown(s, "sensitive")?;
    }
    for q in quasi_names.iter().flatten() {
        unknown(q, "quasi")?;
    }
    let names: Vec<&str> = train.headers.iter().map(String::as_str).collect();
    require_columns(
        synthetic,
        &names,
        "the real table has it; the synthetic table must have every real column",
    )?;
    if let Some(h) = holdout {
        require_columns(
            h,
            &names,
            "the real table has it; the holdout must have every real column",
        )?;
    }
    let extra: Vec<&String> = synthetic
        .headers
        .iter()
        .filter(|h| !train.headers.contains(h))
        .collect();
    if !extra.is_empty() {
        notes.push(format!(
            "synthetic columns not in the real data are not evaluated: {}",
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Kinds.
    let mut kinds: Vec<(ColumnKind, bool)> = Vec::new();
    for (i, h) in train.headers.iter().enumerate() {
        let k = opts
            .kinds
            .get(h)
            .copied()
            .or_else(|| crit.columns.get(h).and_then(|c| c.kind))
            .map(|k| (k, false))
            .unwrap_or_else(|| (infer_kind(&train.columns[i]), true));
        kinds.push(k);
    }
    progress("columns", 0, names.len() as u64);
    let idx = |t: &Table, name: &str| t.col_index(name).expect("checked");
    let binned: Vec<usize> = (0..names.len())
        .filter(|&i| kinds[i].0.is_binned())
        .collect();
    let enc: Vec<Encoded> = binned
        .par_iter()
        .map(|&i| {
            let name = names[i];
            let cols = [
                Some(&train.columns[i]),
                Some(&synthetic.columns[idx(synthetic, name)]),
                holdout.map(|h| &h.columns[idx(h, name)]),
            ];
            encode(name, kinds[i].0, kinds[i].1, cols, opts.bins, opts.binning)
        })
        .collect();
    progress("columns", names.len() as u64, names.len() as u64);
    for name in [&target_name, &sensitive_name]
        .into_iter()
        .flatten()
        .chain(quasi_names.iter().flatten())
    {
        if !enc.iter().any(|e| e.name == *name) {
            let k = kinds[train.col_index(name)?].0;
            return Err(EvalError::Invalid(format!(
                "{}column `{name}` is of kind `{}` and cannot be a target, quasi-identifier or sensitive column; give it another kind in [columns.{name}]",
                crit.locate(name),
                k.as_str()
            )));
        }
    }
    let has_holdout = holdout.is_some();
    let columns: Vec<ColumnReport> = enc
        .par_iter()
        .map(|e| column_report(e, has_holdout))
        .collect();
    // Pairs.
    let pairs_idx: Vec<(usize, usize)> = (0..enc.len())
        .flat_map(|a| (a + 1..enc.len()).map(move |b| (a, b)))
        .collect();
    let total = pairs_idx.len() as u64;
    let mut pairs: Vec<PairReport> = Vec::with_capacity(pairs_idx.len());
    progress("pairs", 0, total);
    for chunk in pairs_idx.chunks(16) {
        let r: Vec<PairReport> = chunk
            .par_iter()
            .map(|&(a, b)| pair_report(&enc[a], &enc[b], has_holdout))
            .collect();
        pairs.extend(r);
        progress("pairs", pairs.len() as u64, total);
    }
    let max_by = |v: &[(f64, String)]| -> (f64, Option<String>) {
        v.iter().fold((0.0, None), |acc, (x, n)| {
            if *x > acc.0 || acc.1.is_none() {
                (*x, Some(n.clone()))
            } else {
                acc
            }
        })
    };
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let (tvd_1way_max, tvd_1way_max_column) = max_by(
        &columns
            .iter()
            .map(|c| (c.tvd, c.name.clone()))
            .collect::<Vec<_>>(),
    );
    let tvd_1way_mean = mean(&columns.iter().map(|c| c.tvd).collect::<Vec<_>>());
    let pmax = |f: &dyn Fn(&PairReport) -> f64| -> (f64, Option<(String, String)>) {
        pairs.iter().fold((0.0, None), |acc, p| {
            if f(p) > acc.0 || acc.1.is_none() {
                (f(p), Some((p.a.clone(), p.b.clone())))
            } else {
                acc
            }
        })
    };
    let (tvd_2way_max, tvd_2way_max_pair) = pmax(&|p| p.tvd);
    let (corr_diff_max, corr_diff_max_pair) = pmax(&|p| p.diff);
    let tvd_2way_mean = mean(&pairs.iter().map(|p| p.tvd).collect::<Vec<_>>());
    let corr_diff_mean = mean(&pairs.iter().map(|p| p.diff).collect::<Vec<_>>());
    let minf = |it: &mut dyn Iterator<Item = f64>| {
        it.fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.min(x))))
    };
    let category_coverage_min = minf(
        &mut columns
            .iter()
            .filter(|c| c.coverage_kind == "category")
            .map(|c| c.coverage),
    );
    let range_coverage_min = minf(
        &mut columns
            .iter()
            .filter(|c| c.coverage_kind == "range")
            .map(|c| c.coverage),
    );
    // Exact copies.
    let train_keys: HashSet<u64> = row_keys(&enc, 0).into_iter().collect();
    let exact_copies = copy_share(&train_keys, &row_keys(&enc, 1));
    let exact_copies_holdout = has_holdout.then(|| copy_share(&train_keys, &row_keys(&enc, 2)));
    // Identity numbers.
    let tables = [Some(train), Some(synthetic), holdout];
    let identity: Vec<IdentityReport> = (0..names.len())
        .filter(|&i| kinds[i].0 == ColumnKind::Identity)
        .map(|i| identity_report(names[i], &tables))
        .collect::<Result<_>>()?;
    let ignored_columns: Vec<String> = (0..names.len())
        .filter(|&i| kinds[i].0 == ColumnKind::Ignore)
        .map(|i| names[i].to_string())
        .collect();
    // ML efficacy.
    progress("ml", 0, 1);
    let (target, target_default) = match &target_name {
        Some(t) => (enc.iter().position(|e| e.name == *t), false),
        None => (
            enc.iter()
                .rposition(|e| e.kind == ColumnKind::Categorical)
                .or(if enc.is_empty() {
                    None
                } else {
                    Some(enc.len() - 1)
                }),
            true,
        ),
    };
    let ml = match target {
        Some(t) if enc.len() >= 2 => {
            let mut m = ml_efficacy(&enc, t, target_default, has_holdout, opts);
            if target_default {
                m.notes.insert(
                    0,
                    format!(
                        "no target was given; the last categorical column, `{}`, was used (choose one with `target` or --target)",
                        m.target
                    ),
                );
            }
            Some(m)
        }
        _ => {
            notes.push("ML efficacy was not measured: it needs a target and at least one other evaluated column".to_string());
            None
        }
    };
    progress("ml", 1, 1);
    // Privacy.
    let privacy = if opts.n_attacks == 0 {
        notes.push("the privacy tests were skipped (0 attacks)".to_string());
        None
    } else if enc.is_empty() {
        notes.push("the privacy tests need at least one evaluated column".to_string());
        None
    } else {
        progress("attacks", 0, 1);
        let sensitive = sensitive_name
            .clone()
            .or_else(|| ml.as_ref().map(|m| m.target.clone()));
        let (quasi, quasi_default) = match &quasi_names {
            Some(q) => (q.clone(), false),
            None => {
                let q: Vec<String> = enc
                    .iter()
                    .map(|e| e.name.clone())
                    .filter(|n| Some(n) != sensitive.as_ref())
                    .collect();
                (
                    if q.is_empty() {
                        vec![enc[0].name.clone()]
                    } else {
                        q
                    },
                    true,
                )
            }
        };
        let params = AttackParams {
            n_attacks: opts.n_attacks,
            n_cols: opts.attack_query_columns.min(quasi.len()).max(1),
            seed: opts.seed,
            ..AttackParams::default()
        };
        let sens = sensitive
            .as_deref()
            .filter(|s| !quasi.iter().any(|q| q == s));
        let attacks = run_attacks(train, synthetic, holdout, &quasi, sens, &params)?;
        progress("attacks", 1, 1);
        if !has_holdout {
            notes.push("no holdout: the attack risks are raw success rates (upper bounds) and the membership test could not run; give real rows that were not used for the fit".to_string());
        }
        Some(PrivacyReport {
            quasi,
            quasi_default,
            sensitive: sens.map(str::to_string),
            n_attacks: opts.n_attacks,
            seed: opts.seed,
            attacks,
        })
    };
    let mut eval = Evaluation {
        differentially_private: false,
        disclosure: DISCLOSURE.to_string(),
        inputs: Inputs {
            train: train.source.clone(),
            train_rows: train.nrows(),
            holdout: holdout.map(|h| h.source.clone()),
            holdout_rows: holdout.map(|h| h.nrows()).unwrap_or(0),
            synthetic: synthetic.source.clone(),
            synthetic_rows: synthetic.nrows(),
        },
        criteria: Vec::new(),
        passed: true,
        tvd_1way_max,
        tvd_1way_max_column,
        tvd_1way_mean,
        tvd_2way_max,
        tvd_2way_max_pair,
        tvd_2way_mean,
        corr_diff_max,
        corr_diff_max_pair,
        corr_diff_mean,
        category_coverage_min,
        range_coverage_min,
        exact_copies,
        exact_copies_holdout,
        columns,
        pairs,
        ml,
        identity,
        ignored_columns,
        privacy,
        notes,
        seconds: 0.0,
    };
    eval.criteria = check_criteria(&eval, crit);
    eval.passed = eval.criteria.iter().all(|c| c.passed);
    eval.seconds = t0.elapsed().as_secs_f64();
    Ok(eval)
}

fn crit_row(
    name: &str,
    column: Option<&str>,
    description: String,
    max: bool,
    threshold: f64,
    value: Option<f64>,
    detail: String,
) -> CriterionResult {
    let passed = match value {
        Some(v) if v.is_finite() || !max => {
            if max {
                v <= threshold + 1e-12
            } else {
                v >= threshold - 1e-12
            }
        }
        _ => false,
    };
    CriterionResult {
        name: name.to_string(),
        column: column.map(str::to_string),
        description,
        comparison: if max { "<=" } else { ">=" }.to_string(),
        threshold,
        value,
        passed,
        detail,
    }
}

fn check_criteria(e: &Evaluation, c: &Criteria) -> Vec<CriterionResult> {
    let mut out = Vec::new();
    let pair = |p: &Option<(String, String)>| {
        p.as_ref()
            .map(|(a, b)| format!("worst pair: {a} × {b}"))
            .unwrap_or_default()
    };
    let col_over = |name: &str| c.columns.get(name);
    if let Some(t) = c.max_tvd_1way {
        let cols: Vec<&ColumnReport> = e
            .columns
            .iter()
            .filter(|x| col_over(&x.name).and_then(|o| o.max_tvd_1way).is_none())
            .collect();
        let worst = cols.iter().max_by(|a, b| a.tvd.total_cmp(&b.tvd));
        out.push(crit_row(
            "max_tvd_1way",
            None,
            format!("In every column, the synthetic distribution differs from the real one by at most {} of records (total variation distance)", pct(t)),
            true,
            t,
            Some(worst.map(|w| w.tvd).unwrap_or(0.0)),
            worst.map(|w| format!("worst column: {}", w.name)).unwrap_or_default(),
        ));
    }
    for (name, o) in &c.columns {
        let Some(col) = e.columns.iter().find(|x| x.name == *name) else {
            continue;
        };
        if let Some(t) = o.max_tvd_1way {
            out.push(crit_row(
                "max_tvd_1way",
                Some(name),
                format!("Column {name}: the synthetic distribution differs from the real one by at most {} of records", pct(t)),
                true,
                t,
                Some(col.tvd),
                String::new(),
            ));
        }
        if let Some(t) = o.min_coverage {
            out.push(crit_row(
                "min_coverage",
                Some(name),
                format!(
                    "Column {name}: the synthetic data cover at least {} of the real {}",
                    pct(t),
                    if col.coverage_kind == "range" {
                        "range"
                    } else {
                        "categories"
                    }
                ),
                false,
                t,
                Some(col.coverage),
                col.coverage_kind.clone(),
            ));
        }
    }
    if let Some(t) = c.max_mean_tvd_1way {
        out.push(crit_row(
            "max_mean_tvd_1way",
            None,
            format!(
                "On average over the columns, the distributions differ by at most {}",
                pct(t)
            ),
            true,
            t,
            Some(e.tvd_1way_mean),
            String::new(),
        ));
    }
    if let Some(t) = c.max_tvd_2way {
        out.push(crit_row("max_tvd_2way", None, format!("For every pair of columns, the combined distribution differs by at most {} of records", pct(t)), true, t, Some(e.tvd_2way_max), pair(&e.tvd_2way_max_pair)));
    }
    if let Some(t) = c.max_mean_tvd_2way {
        out.push(crit_row("max_mean_tvd_2way", None, format!("On average over the pairs of columns, the combined distributions differ by at most {}", pct(t)), true, t, Some(e.tvd_2way_mean), String::new()));
    }
    if let Some(t) = c.max_corr_diff {
        out.push(crit_row("max_corr_diff", None, format!("For every pair of columns, the strength of their relationship (correlation or Cramér's V) differs by at most {t:.2}"), true, t, Some(e.corr_diff_max), pair(&e.corr_diff_max_pair)));
    }
    if let Some(t) = c.max_mean_corr_diff {
        out.push(crit_row("max_mean_corr_diff", None, format!("On average over the pairs, the strength of relationships differs by at most {t:.2}"), true, t, Some(e.corr_diff_mean), String::new()));
    }
    if let Some(t) = c.min_ml_efficacy {
        out.push(crit_row(
            "min_ml_efficacy",
            None,
            format!("A prediction model trained on the synthetic data does at least {} as well (macro-F1) on real data as one trained on the real data", pct(t)),
            false,
            t,
            e.ml.as_ref().map(|m| m.efficacy),
            e.ml.as_ref().map(|m| format!("target: {}", m.target)).unwrap_or_else(|| "not measured".into()),
        ));
    }
    if let Some(t) = c.min_ml_accuracy_ratio {
        out.push(crit_row(
            "min_ml_accuracy_ratio",
            None,
            format!(
                "The synthetic-trained model's accuracy is at least {} of the real-trained model's",
                pct(t)
            ),
            false,
            t,
            e.ml.as_ref().map(|m| m.accuracy_ratio),
            e.ml.as_ref()
                .map(|m| format!("target: {}", m.target))
                .unwrap_or_else(|| "not measured".into()),
        ));
    }
    let cov = |kind: &str| -> Option<&ColumnReport> {
        e.columns
            .iter()
            .filter(|x| {
                x.coverage_kind == kind && col_over(&x.name).and_then(|o| o.min_coverage).is_none()
            })
            .min_by(|a, b| a.coverage.total_cmp(&b.coverage))
    };
    if let Some(t) = c.min_category_coverage {
        let w = cov("category");
        out.push(crit_row("min_category_coverage", None, format!("In every categorical column, at least {} of the real categories occur in the synthetic data", pct(t)), false, t, Some(w.map(|w| w.coverage).unwrap_or(1.0)), w.map(|w| format!("worst column: {}", w.name)).unwrap_or_default()));
    }
    if let Some(t) = c.min_range_coverage {
        let w = cov("range");
        out.push(crit_row("min_range_coverage", None, format!("In every numeric or date column, the synthetic values span at least {} of the real range", pct(t)), false, t, Some(w.map(|w| w.coverage).unwrap_or(1.0)), w.map(|w| format!("worst column: {}", w.name)).unwrap_or_default()));
    }
    if !e.identity.is_empty() {
        // Not checked by default: generated numbers coincide with real ones
        // by chance (500 numbers per birth date and sex), independently of
        // the input; `kuvert synth --exclude-input-idnr` removes them.
        if let Some(t) = c.max_identity_copies {
            let w = e
                .identity
                .iter()
                .max_by(|a, b| a.equal_real_share.total_cmp(&b.equal_real_share))
                .expect("non-empty");
            out.push(crit_row(
                "max_identity_copies",
                None,
                format!(
                    "At most {} of the synthetic identity numbers equal a real person's",
                    pct(t)
                ),
                true,
                t,
                Some(w.equal_real_share),
                format!(
                    "{}: {} of {} values",
                    w.name, w.equal_real, w.synthetic_values
                ),
            ));
        }
        if let Some(t) = c.min_identity_validity {
            let w = e
                .identity
                .iter()
                .min_by(|a, b| a.valid_share.total_cmp(&b.valid_share))
                .expect("non-empty");
            out.push(crit_row("min_identity_validity", None, format!("At least {} of the synthetic identity numbers are valid (date and check digit)", pct(t)), false, t, Some(w.valid_share), format!("worst column: {}", w.name)));
        }
    }
    if let Some(t) = c.max_exact_copies {
        out.push(crit_row(
            "max_exact_copies",
            None,
            format!(
                "At most {} of the synthetic records are exact copies of a real record",
                pct(t)
            ),
            true,
            t,
            Some(e.exact_copies),
            e.exact_copies_holdout
                .map(|h| {
                    format!(
                        "holdout records that happen to equal a training record: {}",
                        pct(h)
                    )
                })
                .unwrap_or_default(),
        ));
    }
    let at = e.privacy.as_ref().map(|p| &p.attacks);
    let attack = |name: &str,
                  t: Option<f64>,
                  what: &str,
                  r: Option<&kuvert_deid::attacks::AttackResult>,
                  out: &mut Vec<CriterionResult>| {
        if let Some(t) = t {
            let value = r.map(|r| r.risk_ci.1);
            let detail = match (at, r) {
                (None, _) => "not measured: the privacy tests did not run".to_string(),
                (Some(_), None) => "not measured: the attack needs more columns (linkability: two quasi-identifiers; inference: a sensitive column)".to_string(),
                (Some(a), Some(r)) => format!(
                    "risk {} (95% interval {} to {}); judged on the upper end{}",
                    pct(r.risk),
                    pct(r.risk_ci.0),
                    pct(r.risk_ci.1),
                    if a.control { "" } else { "; no holdout, so this is the raw success rate (an upper bound)" }
                ),
            };
            out.push(crit_row(
                name,
                None,
                format!(
                    "{what} is at most {} (upper end of the 95% interval)",
                    pct(t)
                ),
                true,
                t,
                value,
                detail,
            ));
        }
    };
    attack(
        "max_singling_out_risk",
        c.max_singling_out_risk,
        "The risk that an attacker singles out a real person",
        at.map(|a| &a.singling_out),
        &mut out,
    );
    attack(
        "max_linkability_risk",
        c.max_linkability_risk,
        "The risk that an attacker links two sources about a real person",
        at.and_then(|a| a.linkability.as_ref()),
        &mut out,
    );
    attack(
        "max_inference_risk",
        c.max_inference_risk,
        "The risk that an attacker infers a real person's sensitive value",
        at.and_then(|a| a.inference.as_ref()),
        &mut out,
    );
    if let Some(t) = c.max_membership_advantage {
        let m = at.map(|a| &a.membership);
        let value = m.and_then(|m| m.auc_ci.map(|ci| (2.0 * ci.1 - 1.0).clamp(0.0, 1.0)));
        let detail = match m {
            None => "not measured: the privacy tests did not run".to_string(),
            Some(m) => match (m.risk, m.auc_ci) {
                (Some(r), Some(ci)) => format!(
                    "advantage {} (AUC {} to {}); judged on the upper end",
                    pct(r),
                    pct(ci.0),
                    pct(ci.1)
                ),
                _ => "not measured: needs a holdout (real rows not used for the fit)".to_string(),
            },
        };
        out.push(crit_row("max_membership_advantage", None, format!("An attacker's advantage in telling whether a person was in the real data is at most {} (upper end of the interval)", pct(t)), true, t, value, detail));
    }
    out
}
