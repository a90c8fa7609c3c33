//! Local releases: plan a query (sensitivity, mechanism, noise, expected
//! error, EXPLAIN) from the query, the declared bounds and the schema only;
//! check the budget; then compute and add exact noise.
//!
//! Neighbouring datasets differ in one *person* and all of that person's
//! rows. With `--person-col` and `--max-rows-per-person K` each person keeps
//! at most K rows (a uniformly random subset, drawn from the CSPRNG); without
//! a person column each row is a person (K = 1). `SUM`/`AVG` values are
//! clamped to declared bounds [lo, hi], so one row moves a sum by at most
//! B = max(|lo|, |hi|) and one person by K·B. Histograms (GROUP BY) have
//! declared, public keys; a person's K rows can fall in one group, so both
//! the ℓ₁ and the ℓ₂ sensitivity of the whole histogram are K·B.
//!
//! The ε (or ρ) of a release is split equally over its measurements
//! (`AVG` is two: a sum and a count), composed by basic composition (pure)
//! or zCDP / RDP addition (Gaussian, Skellam).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use rand_core::{CryptoRng, RngCore};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::accounting::{skellam_variances_for, zcdp_for_epsilon_delta, RdpCurve};
use crate::ledger::{Budget, DatasetKey, LedgerStore, ReleaseCost, ReleaseMeta};
use crate::sample::{self, Rational, MAX_POISSON_MEAN};
use crate::sql::{self, AggKind, Output, Query};
use crate::table::{parse_value, ColumnType, Schema, Table, Value};
use crate::DpError;

/// Which noise to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MechanismChoice {
    /// Discrete Laplace when δ = 0, discrete Gaussian when δ > 0.
    Auto,
    /// Discrete Laplace (pure ε-DP).
    Laplace,
    /// Discrete Gaussian (zCDP, needs δ > 0).
    Gaussian,
    /// Skellam (RDP, needs δ > 0): the mechanism of distributed noise.
    Skellam,
}

/// The mechanism actually used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// Discrete Laplace.
    DiscreteLaplace,
    /// Discrete Gaussian.
    DiscreteGaussian,
    /// Skellam.
    Skellam,
}

impl Mechanism {
    /// Name used in JSON and the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::DiscreteLaplace => "discrete_laplace",
            Mechanism::DiscreteGaussian => "discrete_gaussian",
            Mechanism::Skellam => "skellam",
        }
    }
}

/// Everything the user declares about a release.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSpec {
    /// Name of the table in FROM.
    pub table_name: String,
    /// The query.
    pub sql: String,
    /// Total ε of the release.
    pub epsilon: f64,
    /// Total δ (0: pure).
    pub delta: f64,
    /// Mechanism.
    pub mechanism: MechanismChoice,
    /// Clamping bounds per column (name → (lo, hi)).
    pub bounds: BTreeMap<String, (i64, i64)>,
    /// Column identifying the person.
    pub person_column: Option<String>,
    /// K: rows kept per person.
    pub max_rows_per_person: u32,
    /// Declared public group keys: (column, values as written).
    pub keys: Option<(String, Vec<String>)>,
}

/// Noise of one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Noise {
    /// Discrete Laplace with this scale b.
    Laplace {
        /// Scale.
        scale: f64,
    },
    /// Discrete Gaussian with this σ².
    Gaussian {
        /// σ² parameter.
        sigma2: f64,
    },
    /// Skellam with this variance.
    Skellam {
        /// Variance.
        variance: f64,
    },
}

impl Noise {
    /// Draws one noise value, exactly.
    pub fn sample<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> Result<i128, DpError> {
        match *self {
            Noise::Laplace { scale } => sample::discrete_laplace(rng, &Rational::from_f64(scale)?),
            Noise::Gaussian { sigma2 } => {
                sample::discrete_gaussian(rng, &Rational::from_f64(sigma2)?)
            }
            Noise::Skellam { variance } => sample::skellam(rng, &Rational::from_f64(variance)?),
        }
    }

    /// Standard deviation and 95 % half-width (smallest m with P(|X| ≤ m) ≥ 0.95),
    /// and whether the half-width is a normal approximation.
    pub fn error(&self) -> (f64, f64, bool) {
        match *self {
            Noise::Laplace { scale } => {
                let q = (-1.0 / scale).exp();
                let one_minus_q = -(-1.0 / scale).exp_m1(); // accurate for large scales
                let var = 2.0 * q / (one_minus_q * one_minus_q);
                // P(|X| > m) = 2 q^{m+1} / (1 + q)
                let m = ((0.025 * (1.0 + q)).ln() / q.ln()).ceil() - 1.0;
                (var.sqrt(), m.max(0.0), false)
            }
            Noise::Gaussian { sigma2 } => {
                let s = sigma2.sqrt();
                if s > 2000.0 {
                    return (s, (1.959_964 * s).ceil(), true);
                }
                let w = (12.0 * s + 10.0).ceil() as i64;
                let pmf: Vec<f64> = (0..=w)
                    .map(|k| (-(k * k) as f64 / (2.0 * sigma2)).exp())
                    .collect();
                symmetric_error(&pmf)
            }
            Noise::Skellam { variance } => {
                if variance > 1.0e4 {
                    let s = variance.sqrt();
                    return (s, (1.959_964 * s).ceil(), true);
                }
                symmetric_error(&skellam_pmf_half(variance))
            }
        }
    }
}

/// Unnormalised pmf on 0..=w of a symmetric distribution → (std, ci95, false).
fn symmetric_error(half: &[f64]) -> (f64, f64, bool) {
    let total: f64 = half[0] + 2.0 * half[1..].iter().sum::<f64>();
    let var: f64 = half
        .iter()
        .enumerate()
        .map(|(k, p)| 2.0 * (k * k) as f64 * p / total)
        .sum();
    let mut inside = half[0] / total;
    let mut m = 0usize;
    while inside < 0.95 && m + 1 < half.len() {
        m += 1;
        inside += 2.0 * half[m] / total;
    }
    (var.sqrt(), m as f64, false)
}

/// Skellam pmf (variance μ) on 0..=w, by convolving Poisson(μ/2) pmfs.
fn skellam_pmf_half(variance: f64) -> Vec<f64> {
    let lam = variance / 2.0;
    let n = (lam + 12.0 * lam.sqrt() + 30.0).ceil() as usize;
    let mut pois = vec![0.0f64; n];
    // log-space start to avoid underflow of e^{-λ} for larger λ
    for (k, slot) in pois.iter_mut().enumerate() {
        let lg = k as f64 * lam.ln() - lam - ln_factorial(k);
        *slot = lg.exp();
    }
    (0..n)
        .map(|d| (0..n - d).map(|y| pois[y + d] * pois[y]).sum())
        .collect()
}

fn ln_factorial(k: usize) -> f64 {
    (1..=k).map(|i| (i as f64).ln()).sum()
}

/// Which value a measurement measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The output itself (COUNT, SUM).
    Whole,
    /// The sum half of an AVG.
    AvgSum,
    /// The count half of an AVG.
    AvgCount,
}

/// One noisy measurement (a scalar, or one value per declared group).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// Display name, e.g. `n` or `avg_amount.sum`.
    pub name: String,
    /// Index into the query's outputs.
    pub output: usize,
    /// Which part of the output.
    pub part: Part,
    /// The aggregate's SQL text, e.g. `SUM(amount)`.
    pub describe: String,
    /// Column read (index), none for COUNT(*).
    #[serde(skip)]
    pub column: Option<usize>,
    /// Whether values are summed (else counted).
    pub sums: bool,
    /// Clamping bounds when summing.
    pub bounds: Option<(i64, i64)>,
    /// Per-row bound B.
    pub per_row: f64,
    /// ℓ₁ sensitivity (K·B).
    pub l1: f64,
    /// ℓ₂ sensitivity (K·B).
    pub l2: f64,
    /// The noise.
    pub noise: Noise,
    /// Standard deviation of the noise.
    pub std: f64,
    /// 95 % half-width of the noise.
    pub ci95: f64,
    /// Whether `ci95` is a normal approximation.
    pub ci95_approx: bool,
}

/// A planned release: everything decided without reading data.
#[derive(Clone, Debug)]
pub struct ReleasePlan {
    /// The parsed query.
    pub query: Query,
    /// The declaration.
    pub spec: ReleaseSpec,
    /// The mechanism.
    pub mechanism: Mechanism,
    /// Measurements.
    pub measurements: Vec<Measurement>,
    /// Declared group keys, typed.
    pub group_keys: Option<Vec<Value>>,
    /// Person column index.
    pub person: Option<usize>,
    /// The cost to charge.
    pub cost: ReleaseCost,
    /// SHA-256 of the query and parameters.
    pub query_sha256: String,
}

fn bad(msg: impl Into<String>) -> DpError {
    DpError::InvalidParameter(msg.into())
}

/// Plans a release from the query, the declarations and the schema.
pub fn plan(spec: &ReleaseSpec, schema: &Schema) -> Result<ReleasePlan, DpError> {
    crate::accounting::check_eps_delta(spec.epsilon, spec.delta)?;
    let query = sql::parse(&spec.sql, &spec.table_name, schema)?;
    for col in spec.bounds.keys() {
        if schema.find(col).is_none() {
            return Err(bad(format!("--bounds names unknown column '{col}'")));
        }
    }
    if spec.max_rows_per_person == 0 {
        return Err(bad("--max-rows-per-person must be at least 1"));
    }
    let person = match &spec.person_column {
        Some(p) => Some(
            schema
                .find(p)
                .ok_or_else(|| bad(format!("--person-col names unknown column '{p}'")))?
                .0,
        ),
        None if spec.max_rows_per_person != 1 => {
            return Err(bad(
                "--max-rows-per-person needs --person-col (which column names the person?)",
            ))
        }
        None => None,
    };
    let k = spec.max_rows_per_person as f64;

    let group_keys = match (&query.group_by, &spec.keys) {
        (None, None) => None,
        (None, Some(_)) => return Err(bad("--keys given but the query has no GROUP BY")),
        (Some((_, g)), None) => {
            return Err(bad(format!(
                "GROUP BY {g} needs its group keys declared with --keys {g}=a,b,c: releasing the \
                 keys found in the data would itself leak (a key present once reveals a person). \
                 Declare the public list of possible values; undeclared values are dropped"
            )))
        }
        (Some((gi, g)), Some((kc, vals))) => {
            if !kc.eq_ignore_ascii_case(g) {
                return Err(bad(format!(
                    "--keys is for column '{kc}' but the query groups by '{g}'"
                )));
            }
            let ty = schema.columns[*gi].1;
            let mut typed = Vec::new();
            for v in vals {
                let tv = parse_value(v, ty)
                    .filter(|x| *x != Value::Null)
                    .ok_or_else(|| bad(format!("--keys value '{v}' is not a {ty}")))?;
                if typed.contains(&tv) {
                    return Err(bad(format!("--keys lists '{v}' twice")));
                }
                typed.push(tv);
            }
            if typed.is_empty() {
                return Err(bad("--keys lists no values"));
            }
            Some(typed)
        }
    };

    // Measurements with sensitivities.
    let mut ms: Vec<Measurement> = Vec::new();
    for (oi, o) in query.outputs.iter().enumerate() {
        let Output::Agg {
            alias,
            kind,
            column,
            ..
        } = o
        else {
            continue;
        };
        let col_bounds = |c: &(usize, String)| -> Result<(i64, i64), DpError> {
            let found = spec
                .bounds
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&c.1))
                .map(|(_, b)| *b);
            match (found, schema.columns[c.0].1) {
                (Some((lo, hi)), _) if lo <= hi => Ok((lo, hi)),
                (Some((lo, hi)), _) => Err(bad(format!("--bounds {}={lo}:{hi}: lower bound above upper", c.1))),
                (None, ColumnType::Boolean) => Ok((0, 1)),
                (None, _) => Err(bad(format!(
                    "{alias}: {kind:?}({}) needs clamping bounds: add --bounds {}=LO:HI \
                     (values are clamped into [LO, HI]; the sensitivity is max(|LO|, |HI|) per row)",
                    c.1, c.1
                ).replace("Sum", "SUM").replace("Avg", "AVG"))),
            }
        };
        let mk = |name: String,
                  part: Part,
                  describe: String,
                  column: Option<usize>,
                  bounds: Option<(i64, i64)>| {
            let per_row = bounds
                .map(|(lo, hi)| lo.unsigned_abs().max(hi.unsigned_abs()) as f64)
                .unwrap_or(1.0);
            Measurement {
                name,
                output: oi,
                part,
                describe,
                column,
                sums: bounds.is_some(),
                bounds,
                per_row,
                l1: k * per_row,
                l2: k * per_row,
                noise: Noise::Laplace { scale: 1.0 },
                std: 0.0,
                ci95: 0.0,
                ci95_approx: false,
            }
        };
        match (kind, column) {
            (AggKind::CountStar, _) => ms.push(mk(
                alias.clone(),
                Part::Whole,
                "COUNT(*)".into(),
                None,
                None,
            )),
            (AggKind::Count, Some(c)) => ms.push(mk(
                alias.clone(),
                Part::Whole,
                format!("COUNT({})", c.1),
                Some(c.0),
                None,
            )),
            (AggKind::Sum, Some(c)) => {
                let b = col_bounds(c)?;
                ms.push(mk(
                    alias.clone(),
                    Part::Whole,
                    format!("SUM({})", c.1),
                    Some(c.0),
                    Some(b),
                ))
            }
            (AggKind::Avg, Some(c)) => {
                let b = col_bounds(c)?;
                ms.push(mk(
                    format!("{alias}.sum"),
                    Part::AvgSum,
                    format!("SUM({})", c.1),
                    Some(c.0),
                    Some(b),
                ));
                ms.push(mk(
                    format!("{alias}.count"),
                    Part::AvgCount,
                    format!("COUNT({})", c.1),
                    Some(c.0),
                    None,
                ));
            }
            _ => return Err(bad("internal: aggregate without column")),
        }
    }
    if let Some(m) = ms.iter().find(|m| m.l1 == 0.0) {
        return Err(bad(format!(
            "{}: bounds [0, 0] give zero sensitivity; nothing to protect or release",
            m.name
        )));
    }

    // Mechanism and calibration.
    let mechanism = match (spec.mechanism, spec.delta > 0.0) {
        (MechanismChoice::Auto, false) | (MechanismChoice::Laplace, _) => {
            Mechanism::DiscreteLaplace
        }
        (MechanismChoice::Auto, true) | (MechanismChoice::Gaussian, true) => {
            Mechanism::DiscreteGaussian
        }
        (MechanismChoice::Skellam, true) => Mechanism::Skellam,
        (MechanismChoice::Gaussian | MechanismChoice::Skellam, false) => {
            return Err(bad("the Gaussian and Skellam mechanisms need --delta > 0"))
        }
    };
    let m = ms.len() as f64;
    let cost = match mechanism {
        Mechanism::DiscreteLaplace => {
            let eps_each = spec.epsilon / m;
            for x in ms.iter_mut() {
                x.noise = Noise::Laplace {
                    scale: x.l1 / eps_each,
                };
            }
            ReleaseCost {
                epsilon: spec.epsilon,
                delta: 0.0,
                rho: None,
                rdp: ms
                    .iter()
                    .map(|_| RdpCurve::Pure { epsilon: eps_each })
                    .collect(),
            }
        }
        Mechanism::DiscreteGaussian => {
            let rho = zcdp_for_epsilon_delta(spec.epsilon, spec.delta)?;
            let rho_each = rho / m;
            for x in ms.iter_mut() {
                // A hair more noise than needed keeps float rounding on the safe side.
                x.noise = Noise::Gaussian {
                    sigma2: x.l2 * x.l2 / (2.0 * rho_each) * (1.0 + 1e-9),
                };
            }
            ReleaseCost {
                epsilon: spec.epsilon,
                delta: spec.delta,
                rho: Some(rho),
                rdp: vec![RdpCurve::Zcdp { rho }],
            }
        }
        Mechanism::Skellam => {
            let sens: Vec<(f64, f64)> = ms.iter().map(|x| (x.l1, x.l2)).collect();
            let vars = skellam_variances_for(spec.epsilon, spec.delta, &sens)?;
            let mut rdp = Vec::with_capacity(ms.len());
            for (x, v) in ms.iter_mut().zip(&vars) {
                if *v / 2.0 > MAX_POISSON_MEAN as f64 {
                    return Err(bad(format!(
                        "{}: Skellam variance {v:.3e} exceeds the exact sampler's limit {:.3e}; \
                         use --mechanism gaussian, a larger ε, or tighter bounds",
                        x.name,
                        2.0 * MAX_POISSON_MEAN as f64
                    )));
                }
                x.noise = Noise::Skellam { variance: *v };
                rdp.push(RdpCurve::Skellam {
                    variance: *v,
                    l1: x.l1,
                    l2: x.l2,
                });
            }
            ReleaseCost {
                epsilon: spec.epsilon,
                delta: spec.delta,
                rho: None,
                rdp,
            }
        }
    };
    for x in ms.iter_mut() {
        let (std, ci, approx) = x.noise.error();
        x.std = std;
        x.ci95 = ci;
        x.ci95_approx = approx;
    }
    let query_sha256 = {
        let mut h = Sha256::new();
        let canon = serde_json::json!({
            "sql": query.normalized,
            "epsilon": spec.epsilon,
            "delta": spec.delta,
            "mechanism": mechanism.name(),
            "bounds": spec.bounds,
            "person_column": spec.person_column,
            "max_rows_per_person": spec.max_rows_per_person,
            "keys": spec.keys,
        });
        h.update(canon.to_string().as_bytes());
        h.finalize().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    Ok(ReleasePlan {
        query,
        spec: spec.clone(),
        mechanism,
        measurements: ms,
        group_keys,
        person,
        cost,
        query_sha256,
    })
}

impl ReleasePlan {
    /// Human-readable EXPLAIN: bounds, sensitivity, mechanism, noise, error.
    pub fn explain(&self) -> String {
        let mut s = String::new();
        let spec = &self.spec;
        let _ = writeln!(s, "EXPLAIN (differentially private release)");
        let _ = writeln!(s, "  query        {}", self.query.normalized);
        match &spec.person_column {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "  persons      column '{p}'; at most K = {} row(s) per person (a random subset is kept; \
                     rows with a NULL person are dropped)",
                    spec.max_rows_per_person
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  persons      none declared: each row is assumed to be a different person (K = 1); \
                     if not, declare --person-col and --max-rows-per-person"
                );
            }
        }
        let _ = writeln!(
            s,
            "  neighbours   add or remove one person with all their rows"
        );
        if let (Some((_, g)), Some(keys)) = (&self.query.group_by, &self.group_keys) {
            let shown: Vec<String> = keys.iter().map(|k| k.to_json().to_string()).collect();
            let _ = writeln!(
                s,
                "  groups       {g} ∈ {{{}}} (declared public keys; every key is released, rows with other keys are dropped)",
                shown.join(", ")
            );
        }
        let n = self.measurements.len();
        let split = match self.mechanism {
            Mechanism::DiscreteLaplace => format!(
                "discrete Laplace, pure ε-DP: ε = {} split equally, ε = {:.6} per measurement ({n} measurement(s))",
                spec.epsilon,
                spec.epsilon / n as f64
            ),
            Mechanism::DiscreteGaussian => format!(
                "discrete Gaussian, zCDP: (ε = {}, δ = {}) ⇔ ρ = {:.6}, split equally, ρ = {:.6} per measurement",
                spec.epsilon,
                spec.delta,
                self.cost.rho.unwrap_or(0.0),
                self.cost.rho.unwrap_or(0.0) / n as f64
            ),
            Mechanism::Skellam => format!(
                "Skellam, Rényi DP: (ε = {}, δ = {}) over {n} measurement(s), equal noise multiplier",
                spec.epsilon, spec.delta
            ),
        };
        let _ = writeln!(s, "  mechanism    {split}");
        let _ = writeln!(s, "  sampling     exact (integer arithmetic, CSPRNG bits)");
        for m in &self.measurements {
            let clamp = match m.bounds {
                Some((lo, hi)) => format!(" clamped to [{lo}, {hi}], B = {}", m.per_row),
                None => " counts 1 per row, B = 1".into(),
            };
            let noise = match m.noise {
                Noise::Laplace { scale } => format!("discrete Laplace scale {scale:.4}"),
                Noise::Gaussian { sigma2 } => format!("discrete Gaussian σ = {:.4}", sigma2.sqrt()),
                Noise::Skellam { variance } => format!("Skellam variance {variance:.4}"),
            };
            let _ = writeln!(
                s,
                "  measurement  {} = {}{clamp}; sensitivity Δ₁ = Δ₂ = K·B = {}; {noise}; noise std {:.3}; 95% of noise within ±{}{}",
                m.name,
                m.describe,
                m.l1,
                m.std,
                m.ci95,
                if m.ci95_approx { " (normal approximation)" } else { "" }
            );
        }
        if self.measurements.iter().any(|m| m.part != Part::Whole) {
            let _ = writeln!(
                s,
                "  note         AVG = noisy sum / noisy count, clamped to the bounds; its error ≈ \
                 sqrt(std_sum² + avg²·std_count²) / n, so it shrinks with the (unknown) count n"
            );
        }
        let _ = writeln!(s, "  query hash   {}", self.query_sha256);
        s
    }
}

/// The result of a release.
#[derive(Clone, Debug, Serialize)]
pub struct ReleaseOutput {
    /// Output column names in SELECT order.
    pub columns: Vec<String>,
    /// One object per output row.
    pub values: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Mechanism name.
    pub mechanism: String,
    /// ε charged.
    pub epsilon: f64,
    /// δ charged.
    pub delta: f64,
    /// Noise standard deviation: a number when the query has one output
    /// column, else an object keyed by output name.
    pub noise_std: serde_json::Value,
    /// Noise standard deviation per output name.
    pub noise_std_by_output: BTreeMap<String, f64>,
    /// Remaining ε of the ledger account, when one was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_remaining: Option<f64>,
}

fn bound_contributions<'a, R: RngCore + CryptoRng + ?Sized>(
    rows: Vec<&'a Vec<Value>>,
    person: Option<usize>,
    k: u32,
    rng: &mut R,
) -> Vec<&'a Vec<Value>> {
    let Some(p) = person else {
        return rows;
    };
    let mut by_person: HashMap<&Value, Vec<&Vec<Value>>> = HashMap::new();
    for r in rows {
        if r[p] != Value::Null {
            by_person.entry(&r[p]).or_default().push(r);
        }
    }
    let mut kept = Vec::new();
    // Iterate in a data-independent order of keys (sorted) so that the RNG
    // stream, and hence the result, does not depend on hash-map order.
    let mut people: Vec<_> = by_person.into_iter().collect();
    people.sort_by(|a, b| a.0.cmp(b.0));
    for (_, mut rs) in people {
        let k = k as usize;
        if rs.len() > k {
            // Partial Fisher–Yates: a uniformly random k-subset.
            for i in 0..k {
                let j = i + sample::uniform_u64(rng, (rs.len() - i) as u64) as usize;
                rs.swap(i, j);
            }
            rs.truncate(k);
        }
        kept.extend(rs);
    }
    kept
}

/// Runs a planned release on `table` (no budget check: see [`release`]).
pub fn execute<R: RngCore + CryptoRng + ?Sized>(
    plan: &ReleasePlan,
    table: &Table,
    rng: &mut R,
) -> Result<ReleaseOutput, DpError> {
    let filtered: Vec<&Vec<Value>> = table
        .rows
        .iter()
        .filter(|r| {
            plan.query
                .filter
                .as_ref()
                .is_none_or(|f| f.eval(r) == Some(true))
        })
        .collect();
    let rows = bound_contributions(filtered, plan.person, plan.spec.max_rows_per_person, rng);
    let ngroups = plan.group_keys.as_ref().map_or(1, |k| k.len());
    let group_of = |r: &Vec<Value>| -> Option<usize> {
        match (&plan.query.group_by, &plan.group_keys) {
            (Some((gi, _)), Some(keys)) => keys.iter().position(|k| *k == r[*gi]),
            _ => Some(0),
        }
    };
    // True values, then noise.
    let mut noisy: Vec<Vec<i128>> = Vec::with_capacity(plan.measurements.len());
    for m in &plan.measurements {
        let mut cells = vec![0i128; ngroups];
        for r in &rows {
            let Some(g) = group_of(r) else { continue };
            let v = m.column.map(|c| &r[c]);
            let add: i128 = match (m.sums, v) {
                (false, None) => 1,
                (false, Some(Value::Null)) | (true, Some(Value::Null)) => 0,
                (false, Some(_)) => 1,
                (true, Some(val)) => {
                    let (lo, hi) = m.bounds.unwrap_or((0, 0));
                    let x = match val {
                        Value::Int(i) => *i,
                        Value::Bool(b) => *b as i64,
                        _ => 0,
                    };
                    x.clamp(lo, hi) as i128
                }
                (true, None) => 0,
            };
            cells[g] += add;
        }
        for c in cells.iter_mut() {
            *c = c.saturating_add(m.noise.sample(rng)?);
        }
        noisy.push(cells);
    }
    // Assemble rows.
    let mut std_by: BTreeMap<String, f64> = BTreeMap::new();
    let mut values = Vec::with_capacity(ngroups);
    for g in 0..ngroups {
        let mut row = serde_json::Map::new();
        for (oi, o) in plan.query.outputs.iter().enumerate() {
            match o {
                Output::GroupKey { name } => {
                    let key = plan
                        .group_keys
                        .as_ref()
                        .map(|k| k[g].to_json())
                        .unwrap_or_default();
                    row.insert(name.clone(), key);
                }
                Output::Agg { alias, kind, .. } => {
                    let idx: Vec<usize> = (0..plan.measurements.len())
                        .filter(|&i| plan.measurements[i].output == oi)
                        .collect();
                    if *kind == AggKind::Avg {
                        let (si, ci) = (idx[0], idx[1]);
                        let s = noisy[si][g] as f64;
                        let c = (noisy[ci][g] as f64).max(1.0);
                        let (lo, hi) = plan.measurements[si].bounds.unwrap_or((0, 0));
                        let avg = (s / c).clamp(lo as f64, hi as f64);
                        let ms = &plan.measurements;
                        let sd = (ms[si].std.powi(2) + avg * avg * ms[ci].std.powi(2)).sqrt() / c;
                        let e = std_by.entry(alias.clone()).or_insert(0.0);
                        *e = e.max(sd);
                        row.insert(alias.clone(), serde_json::json!(avg));
                    } else {
                        let i = idx[0];
                        std_by.insert(alias.clone(), plan.measurements[i].std);
                        let v = noisy[i][g];
                        let j = i64::try_from(v)
                            .map(serde_json::Value::from)
                            .unwrap_or_else(|_| v.to_string().into());
                        row.insert(alias.clone(), j);
                    }
                }
            }
        }
        values.push(row);
    }
    let noise_std = if std_by.len() == 1 {
        serde_json::json!(std_by.values().next().copied().unwrap_or(0.0))
    } else {
        serde_json::json!(std_by)
    };
    let columns = plan
        .query
        .outputs
        .iter()
        .map(|o| match o {
            Output::GroupKey { name } => name.clone(),
            Output::Agg { alias, .. } => alias.clone(),
        })
        .collect();
    Ok(ReleaseOutput {
        columns,
        values,
        mechanism: plan.mechanism.name().into(),
        epsilon: plan.cost.epsilon,
        delta: plan.cost.delta,
        noise_std,
        noise_std_by_output: std_by,
        budget_remaining: None,
    })
}

/// Where a release is charged.
pub struct Account<'a> {
    /// The store.
    pub store: &'a mut dyn LedgerStore,
    /// Which account.
    pub key: DatasetKey,
    /// Budget for a new account (must match an existing one).
    pub budget: Option<Budget>,
}

/// Plans, checks the budget (before reading any row), executes, and only
/// then charges the ledger. `load_table` is called only after the check.
pub fn release<R: RngCore + CryptoRng + ?Sized>(
    spec: &ReleaseSpec,
    schema: &Schema,
    load_table: impl FnOnce() -> Result<Table, DpError>,
    account: Option<Account<'_>>,
    rng: &mut R,
) -> Result<ReleaseOutput, DpError> {
    let plan = plan(spec, schema)?;
    match account {
        None => {
            let table = load_table()?;
            execute(&plan, &table, rng)
        }
        Some(acct) => {
            let ledger = acct.store.open(&acct.key, acct.budget)?;
            let approval = ledger.check(plan.cost.clone()).map_err(Box::new)?;
            let remaining = approval.remaining_after();
            let table = load_table()?;
            let mut out = execute(&plan, &table, rng)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            acct.store.commit(
                approval,
                ReleaseMeta {
                    time: crate::table::format_rfc3339(now),
                    query_sha256: plan.query_sha256.clone(),
                    mechanism: plan.mechanism.name().into(),
                },
            )?;
            out.budget_remaining = Some(remaining);
            Ok(out)
        }
    }
}

/// Expected error of every measurement over a range of ε (for `dp curve`).
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    /// ε of the release.
    pub epsilon: f64,
    /// (measurement name, noise std, 95 % half-width).
    pub errors: Vec<(String, f64, f64)>,
}

/// Plans the release at each ε in `epsilons` and reports the errors.
pub fn error_curve(
    spec: &ReleaseSpec,
    schema: &Schema,
    epsilons: &[f64],
) -> Result<Vec<CurvePoint>, DpError> {
    epsilons
        .iter()
        .map(|&e| {
            let mut s = spec.clone();
            s.epsilon = e;
            let p = plan(&s, schema)?;
            Ok(CurvePoint {
                epsilon: e,
                errors: p
                    .measurements
                    .iter()
                    .map(|m| (m.name.clone(), m.std, m.ci95))
                    .collect(),
            })
        })
        .collect()
}

/// `n` log-spaced values from `lo` to `hi`.
pub fn log_space(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![lo];
    }
    (0..n)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp())
        .collect()
}
