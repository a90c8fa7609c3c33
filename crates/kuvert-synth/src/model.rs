//! Fitting (the whole mechanism, one release) and the model file.

use std::path::Path;
use std::time::Instant;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use kuvert_deid::table::{Column, ColumnBuilder, Table};
use kuvert_dp::accounting::{check_eps_delta, zcdp_for_epsilon_delta, RdpCurve};
use kuvert_dp::ledger::ReleaseCost;

use crate::domain::{self, Bins, ColumnDomain};
use crate::error::{config, Result, SynthError};
use crate::mst;
use crate::pgm::{Measurement, TreeModel};
use crate::schema::{infer_kind, ColumnSpec, SchemaConfig, DEFAULT_MAX_BINS};

/// Format tag of the model file.
pub const MODEL_FORMAT: &str = "kuvert-synth-model/1";

/// Share of ρ spent on estimating undeclared domains (when there are any).
pub const DOMAIN_SHARE: f64 = 0.1;
/// Share of δ reserved for partition selection of undeclared categories.
pub const PARTITION_DELTA_SHARE: f64 = 0.1;

/// The synthesis method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// MST: 1-way marginals, a privately selected spanning tree of 2-way
    /// marginals, Private-PGM on the tree.
    #[default]
    Mst,
    /// AIM: 1-way marginals, then rounds of privately selected 1- and
    /// 2-way marginals with budget annealing, Private-PGM on a junction
    /// tree.
    Aim,
}

impl Method {
    /// The mechanism name recorded in the budget ledger.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Method::Mst => "synth-mst",
            Method::Aim => "synth-aim",
        }
    }
}

/// What to fit.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// ε of the whole release.
    pub epsilon: f64,
    /// δ of the whole release (> 0: the mechanism is zCDP).
    pub delta: f64,
    /// The method.
    pub method: Method,
    /// Declared column kinds and domains.
    pub schema: SchemaConfig,
    /// Mirror-descent iterations of the estimation.
    pub iters: usize,
}

impl FitOptions {
    /// Defaults: MST, no schema (everything inferred), 1500 iterations.
    pub fn new(epsilon: f64, delta: f64) -> FitOptions {
        FitOptions {
            epsilon,
            delta,
            method: Method::Mst,
            schema: SchemaConfig::default(),
            iters: 1500,
        }
    }
}

/// Progress of a fit, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// What is being done.
    pub stage: &'static str,
    /// Steps done.
    pub done: u64,
    /// Steps in this stage.
    pub total: u64,
}

/// The privacy parameters of a fit, fixed before any data is read (from the
/// header and the schema only).
#[derive(Clone, Debug)]
pub struct BudgetPlan {
    /// zCDP budget of the measurements.
    pub rho: f64,
    /// δ reserved for partition selection (0 when every categorical
    /// domain is declared).
    pub delta_partition: f64,
    /// What the ledger is charged.
    pub cost: ReleaseCost,
}

/// Decides ρ and the cost from the header and the schema (no data). When a
/// categorical domain may need estimating (an undeclared column, or a
/// categorical one without `categories`), a tenth of δ goes to partition
/// selection; the release is then (ε, δ)-DP but not ρ-zCDP, and is charged
/// by (ε, δ) alone (no Rényi curve). Otherwise it is ρ-zCDP and the ledger
/// gets the curve.
pub fn plan_budget(
    headers: &[String],
    schema: &SchemaConfig,
    epsilon: f64,
    delta: f64,
) -> Result<BudgetPlan> {
    check_eps_delta(epsilon, delta)?;
    if delta <= 0.0 {
        return Err(config(
            "the synthesizer needs --delta > 0 (Gaussian noise under zCDP); the default is 1e-6",
        ));
    }
    let partition = headers.iter().any(|h| {
        matches!(
            schema.columns.get(h),
            None | Some(ColumnSpec::Categorical { categories: None })
        )
    });
    let (rho, delta_partition) = if partition {
        let dp = delta * PARTITION_DELTA_SHARE;
        (zcdp_for_epsilon_delta(epsilon, delta - dp)?, dp)
    } else {
        (zcdp_for_epsilon_delta(epsilon, delta)?, 0.0)
    };
    let cost = ReleaseCost {
        epsilon,
        delta,
        rho: Some(rho),
        rdp: if partition {
            Vec::new()
        } else {
            vec![RdpCurve::Zcdp { rho }]
        },
    };
    Ok(BudgetPlan {
        rho,
        delta_partition,
        cost,
    })
}

/// How ρ was split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetSplit {
    /// Estimating undeclared domains.
    pub domains: f64,
    /// The 1-way measurements.
    pub one_way: f64,
    /// Selecting the marginals.
    pub select: f64,
    /// The 2-way measurements.
    pub two_way: f64,
}

/// One modelled column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnModel {
    /// Header name.
    pub name: String,
    /// The domain.
    pub domain: ColumnDomain,
    /// Whether the domain was estimated with DP (else declared).
    pub estimated: bool,
    /// Whether the kind was inferred from the format (else declared).
    pub inferred_kind: bool,
}

/// One attribute of the graphical model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    /// Name (`col`, or `col.birth` / `col.sex` for identity numbers).
    pub name: String,
    /// Domain size.
    pub size: usize,
}

/// The model file: DP outputs and declared parameters only (see the crate
/// docs, `# Security`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// [`MODEL_FORMAT`].
    pub format: String,
    /// The method.
    pub method: Method,
    /// ε of the release.
    pub epsilon: f64,
    /// δ of the release.
    pub delta: f64,
    /// zCDP ρ of the measurements.
    pub rho: f64,
    /// δ spent on partition selection.
    pub delta_partition: f64,
    /// The split of ρ.
    pub split: BudgetSplit,
    /// Output columns, in order.
    pub columns: Vec<ColumnModel>,
    /// Attributes of the model, column by column.
    pub attributes: Vec<Attribute>,
    /// The selected marginals (pairs of attribute names).
    pub selected: Vec<(String, String)>,
    /// The noisy measurements.
    pub measurements: Vec<Measurement>,
    /// The fitted graphical model (MST; for AIM an empty forest).
    pub model: TreeModel,
    /// The fitted junction-tree model (AIM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub junction: Option<crate::jtree::JtModel>,
    /// ε of each selection round (AIM; DP outputs: the schedule depends on
    /// the data only through the noisy measurements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selection_epsilons: Vec<f64>,
}

/// What a fit prints: the model plus facts for the data owner (these may
/// include true quantities and are never written to the model file).
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Rows used for the fit.
    pub rows: usize,
    /// Seconds spent.
    pub seconds: f64,
    /// Final estimation loss.
    pub loss: f64,
}

/// The result of [`fit`].
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The model (safe to publish).
    pub model: Model,
    /// The report (for the data owner).
    pub report: FitReport,
}

fn dict_values<T>(
    t: &Table,
    c: usize,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<(T, u64)>> {
    let counts = t.columns[c].counts();
    let mut out = Vec::new();
    for (i, v) in t.columns[c].dict.iter().enumerate() {
        let s = v.trim();
        if s.is_empty() || counts[i] == 0 {
            continue;
        }
        match parse(s) {
            Some(x) => out.push((x, counts[i])),
            None => return Err(domain::bad_cell(t, c, i, format!("{v:?} is not {what}"))),
        }
    }
    Ok(out)
}

/// Fits a model to `table` (the whole mechanism; one release of
/// `opts.epsilon`, `opts.delta`). `rng` is the noise source: use
/// `kuvert_dp::secure_rng()` for real releases.
pub fn fit<R: RngCore>(
    table: &Table,
    opts: &FitOptions,
    rng: &mut R,
    progress: &mut dyn FnMut(Progress),
) -> Result<Fitted> {
    let start = Instant::now();
    let schema = &opts.schema;
    schema.check_columns(&table.headers)?;
    let plan = plan_budget(&table.headers, schema, opts.epsilon, opts.delta)?;
    let rho = plan.rho;
    let max_bins = schema.max_bins.unwrap_or(DEFAULT_MAX_BINS);
    // Kinds.
    let mut specs = Vec::new();
    for (c, name) in table.headers.iter().enumerate() {
        let (spec, inferred) = match schema.columns.get(name) {
            Some(s) => (s.clone(), false),
            None => (infer_kind(&table.columns[c].dict), true),
        };
        if spec != ColumnSpec::Drop {
            specs.push((c, spec, inferred));
        }
    }
    if specs.is_empty() {
        return Err(config("no column to model (all are dropped)"));
    }
    let needs_estimate = |s: &ColumnSpec| match s {
        ColumnSpec::Categorical { categories } => categories.is_none(),
        ColumnSpec::Integer { bounds, .. } => bounds.is_none(),
        ColumnSpec::Date { bounds, .. } => bounds.is_none(),
        ColumnSpec::Idnr { birth_bounds, .. } => birth_bounds.is_none(),
        ColumnSpec::Drop => false,
    };
    let n_est = specs.iter().filter(|(_, s, _)| needs_estimate(s)).count();
    let n_cat_est = specs
        .iter()
        .filter(|(_, s, _)| matches!(s, ColumnSpec::Categorical { categories: None }))
        .count();
    let rho_dom = if n_est > 0 { DOMAIN_SHARE * rho } else { 0.0 };
    let sigma2_dom = if n_est > 0 {
        n_est as f64 / (2.0 * rho_dom)
    } else {
        0.0
    };
    let delta_col = if n_cat_est > 0 {
        plan.delta_partition / n_cat_est as f64
    } else {
        0.0
    };
    // Domains.
    let mut columns = Vec::new();
    for (i, (c, spec, inferred)) in specs.iter().enumerate() {
        progress(Progress {
            stage: "domains",
            done: i as u64,
            total: specs.len() as u64,
        });
        let c = *c;
        let name = &table.headers[c];
        let bins_of = |b: &Option<usize>| b.unwrap_or(max_bins);
        let dom = match spec {
            ColumnSpec::Categorical {
                categories: Some(cats),
            } => ColumnDomain::Categorical {
                categories: cats.clone(),
                other: false,
            },
            ColumnSpec::Categorical { categories: None } => {
                let counts = table.columns[c].counts();
                let vals: Vec<(String, u64)> =
                    table.columns[c].dict.iter().cloned().zip(counts).collect();
                ColumnDomain::Categorical {
                    categories: domain::select_categories(&vals, sigma2_dom, delta_col, rng)?,
                    other: true,
                }
            }
            ColumnSpec::Integer { bounds, bins } => {
                let (lo, hi) = match bounds {
                    Some([lo, hi]) => (*lo, *hi),
                    None => {
                        let vals = dict_values(table, c, |s| s.parse::<i64>().ok(), "an integer")?;
                        domain::estimate_integer_bounds(&vals, sigma2_dom, rng)?
                            .ok_or_else(|| domain::no_bounds(name))?
                    }
                };
                ColumnDomain::Integer {
                    bins: Bins::new(lo, hi, bins_of(bins)),
                }
            }
            ColumnSpec::Date { bounds, bins } => {
                let (lo, hi) = match bounds {
                    Some([lo, hi]) => (
                        domain::parse_date(lo).expect("checked"),
                        domain::parse_date(hi).expect("checked"),
                    ),
                    None => {
                        let vals = dict_values(table, c, domain::parse_date, "a date YYYY-MM-DD")?;
                        domain::estimate_date_bounds(&vals, sigma2_dom, rng)?
                            .unwrap_or(domain::DEFAULT_DATE_RANGE)
                    }
                };
                ColumnDomain::Date {
                    bins: Bins::new(lo, hi, bins_of(bins)),
                }
            }
            ColumnSpec::Idnr { birth_bounds, bins } => {
                let (lo, hi) = match birth_bounds {
                    Some([lo, hi]) => (
                        domain::parse_date(lo).expect("checked"),
                        domain::parse_date(hi).expect("checked"),
                    ),
                    None => {
                        let vals = dict_values(
                            table,
                            c,
                            |s| domain::parse_idnr(s).ok().map(|x| x.0),
                            "a valid identity number",
                        )?;
                        domain::estimate_date_bounds(&vals, sigma2_dom, rng)?
                            .unwrap_or(domain::DEFAULT_BIRTH_RANGE)
                    }
                };
                let today = kuvert_data::Date::today_utc();
                let today =
                    kuvert_deid::date::days_from_civil(today.year as i64, today.month, today.day);
                ColumnDomain::Idnr {
                    bins: Bins::new(lo, hi.min(today).max(lo), bins_of(bins)),
                }
            }
            ColumnSpec::Drop => unreachable!("dropped above"),
        };
        columns.push(ColumnModel {
            name: name.clone(),
            domain: dom,
            estimated: needs_estimate(spec),
            inferred_kind: *inferred,
        });
    }
    // Encoding.
    let mut data: Vec<Vec<u32>> = Vec::new();
    let mut attributes = Vec::new();
    for ((c, _, _), cm) in specs.iter().zip(&columns) {
        let per_dict = domain::encode_dict(&cm.domain, &table.columns[*c].dict)
            .map_err(|(i, msg)| domain::bad_cell(table, *c, i, msg))?;
        for ((map, name), size) in per_dict
            .iter()
            .zip(cm.domain.attribute_names(&cm.name))
            .zip(cm.domain.attribute_sizes())
        {
            data.push(
                table.columns[*c]
                    .codes
                    .iter()
                    .map(|&k| map[k as usize])
                    .collect(),
            );
            attributes.push(Attribute { name, size });
        }
    }
    let sizes: Vec<usize> = attributes.iter().map(|a| a.size).collect();
    let d = sizes.len();
    let rho_rest = rho - rho_dom;
    if opts.method == Method::Aim {
        let aim_opts = crate::aim::AimOptions {
            final_iters: opts.iters,
            ..Default::default()
        };
        let run = crate::aim::run(&data, &sizes, rho_rest, &aim_opts, rng, &mut |f| {
            progress(Progress {
                stage: "AIM rounds (share of budget spent, %)",
                done: (f * 100.0) as u64,
                total: 100,
            })
        })?;
        let (one_way, select, two_way) = run.accounted(d);
        let selected = run
            .rounds
            .iter()
            .filter(|r| r.attrs.len() == 2)
            .map(|r| {
                (
                    attributes[r.attrs[0]].name.clone(),
                    attributes[r.attrs[1]].name.clone(),
                )
            })
            .collect();
        let model = Model {
            format: MODEL_FORMAT.to_string(),
            method: opts.method,
            epsilon: opts.epsilon,
            delta: opts.delta,
            rho,
            delta_partition: plan.delta_partition,
            split: BudgetSplit {
                domains: rho_dom,
                one_way,
                select,
                two_way,
            },
            columns,
            attributes,
            selected,
            measurements: run.measurements,
            model: TreeModel::uniform(Vec::new(), Vec::new()),
            junction: Some(run.model),
            selection_epsilons: run.rounds.iter().map(|r| r.epsilon).collect(),
        };
        return Ok(Fitted {
            model,
            report: FitReport {
                rows: table.nrows(),
                seconds: start.elapsed().as_secs_f64(),
                loss: run.loss,
            },
        });
    }
    let split = if d >= 2 {
        BudgetSplit {
            domains: rho_dom,
            one_way: rho_rest / 3.0,
            select: rho_rest / 3.0,
            two_way: rho_rest / 3.0,
        }
    } else {
        BudgetSplit {
            domains: rho_dom,
            one_way: rho_rest,
            select: 0.0,
            two_way: 0.0,
        }
    };
    // 1-way measurements.
    let sigma2_1 = d as f64 / (2.0 * split.one_way);
    let mut measurements = Vec::new();
    for a in 0..d {
        progress(Progress {
            stage: "1-way marginals",
            done: a as u64,
            total: d as u64,
        });
        measurements.push(mst::measure(&data, &sizes, &[a], sigma2_1, rng)?);
    }
    // Selection.
    let mut edges = Vec::new();
    if d >= 2 {
        progress(Progress {
            stage: "selecting marginals",
            done: 0,
            total: 1,
        });
        let mut indep = TreeModel::uniform(sizes.clone(), Vec::new());
        indep.fit(&measurements, 200, |_| {});
        let weights = mst::pair_errors(&data, &sizes, &indep);
        edges = mst::select_tree(d, &weights, split.select, rng)?;
        let sigma2_2 = edges.len() as f64 / (2.0 * split.two_way);
        for (i, &(a, b)) in edges.iter().enumerate() {
            progress(Progress {
                stage: "2-way marginals",
                done: i as u64,
                total: edges.len() as u64,
            });
            measurements.push(mst::measure(&data, &sizes, &[a, b], sigma2_2, rng)?);
        }
    }
    // Estimation.
    let mut tree = TreeModel::uniform(sizes.clone(), edges.clone());
    let iters = opts.iters;
    let loss = tree.fit(&measurements, iters, |i| {
        if i % 25 == 0 {
            progress(Progress {
                stage: "estimating (Private-PGM)",
                done: i as u64,
                total: iters as u64,
            })
        }
    });
    let selected = edges
        .iter()
        .map(|&(a, b)| (attributes[a].name.clone(), attributes[b].name.clone()))
        .collect();
    let model = Model {
        format: MODEL_FORMAT.to_string(),
        method: opts.method,
        epsilon: opts.epsilon,
        delta: opts.delta,
        rho,
        delta_partition: plan.delta_partition,
        split,
        columns,
        attributes,
        selected,
        measurements,
        model: tree,
        junction: None,
        selection_epsilons: Vec::new(),
    };
    Ok(Fitted {
        model,
        report: FitReport {
            rows: table.nrows(),
            seconds: start.elapsed().as_secs_f64(),
            loss,
        },
    })
}

/// Splits off a uniformly random share `fraction` of the rows (the
/// holdout, returned second) from the rest (returned first).
pub fn split_holdout<R: Rng + ?Sized>(
    table: &Table,
    fraction: f64,
    rng: &mut R,
) -> Result<(Table, Table)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(config(format!(
            "--holdout-fraction must be in [0, 1), got {fraction}"
        )));
    }
    let keep: Vec<bool> = (0..table.nrows())
        .map(|_| rng.gen::<f64>() >= fraction)
        .collect();
    let mut train = table.clone();
    train.filter_rows(&keep);
    let mut hold = table.clone();
    let inv: Vec<bool> = keep.iter().map(|k| !k).collect();
    hold.filter_rows(&inv);
    Ok((train, hold))
}

impl Model {
    /// Writes the model as JSON (atomically: temporary file, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |e| SynthError::Io {
            path: path.display().to_string(),
            cause: e,
        };
        let text = serde_json::to_string(self).map_err(|e| config(e.to_string()))?;
        let tmp = path.with_extension("model.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Reads a model file, checking its format tag.
    pub fn load(path: &Path) -> Result<Model> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SynthError::Io {
            path: p.clone(),
            cause: e,
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| SynthError::BadModel {
                path: p.clone(),
                message: format!("line {} column {}: {e}", e.line(), e.column()),
            })?;
        let fmt = v.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if fmt != MODEL_FORMAT {
            return Err(SynthError::BadModel {
                path: p,
                message: format!(
                    "format is '{fmt}', expected '{MODEL_FORMAT}'; is this a model written by `kuvert synth fit`?"
                ),
            });
        }
        serde_json::from_value(v).map_err(|e| SynthError::BadModel {
            path: p,
            message: e.to_string(),
        })
    }

    /// Output column names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Samples `rows` synthetic rows (post-processing of the model; any RNG).
    pub fn sample<R: Rng + ?Sized>(&self, rows: usize, rng: &mut R) -> Table {
        self.sample_excluding(rows, rng, &std::collections::HashSet::new())
    }

    /// The identity numbers (12-digit normal form) in `table`'s columns that
    /// the model treats as identity numbers, for [`Model::sample_excluding`].
    pub fn identity_numbers_in(&self, table: &Table) -> std::collections::HashSet<String> {
        let today = kuvert_data::Date::today_utc();
        let mut out = std::collections::HashSet::new();
        for cm in &self.columns {
            if !matches!(cm.domain, ColumnDomain::Idnr { .. }) {
                continue;
            }
            if let Ok(c) = table.col_index(&cm.name) {
                for v in &table.columns[c].dict {
                    if let Ok(n) = kuvert_data::idnr::parse(v, today) {
                        out.insert(kuvert_data::idnr::format(n));
                    }
                }
            }
        }
        out
    }

    /// [`Model::sample`], redrawing the serial digits of any generated
    /// identity number that is in `exclude` (e.g. every number of the input).
    ///
    /// Leakage: this is *outside* the DP guarantee. Seeing number X in the
    /// output then proves that X is not in `exclude`. Use it when a real
    /// input number in the synthetic file would be unacceptable, and do not
    /// publish the output as DP otherwise.
    pub fn sample_excluding<R: Rng + ?Sized>(
        &self,
        rows: usize,
        rng: &mut R,
        exclude: &std::collections::HashSet<String>,
    ) -> Table {
        let codes = match &self.junction {
            Some(j) => j.sample(rows, rng),
            None => self.model.sample(rows, rng),
        };
        let mut cols = Vec::new();
        let mut a = 0;
        let today = kuvert_data::Date::today_utc();
        let today = kuvert_deid::date::days_from_civil(today.year as i64, today.month, today.day);
        for cm in &self.columns {
            let col = match &cm.domain {
                ColumnDomain::Categorical { categories, other } => {
                    let mut dict = categories.clone();
                    if *other {
                        dict.push(domain::OTHER.to_string());
                    }
                    Column {
                        dict,
                        codes: codes[a].clone(),
                    }
                }
                ColumnDomain::Integer { bins } => {
                    let mut b = ColumnBuilder::default();
                    for &k in &codes[a] {
                        if k == 0 {
                            b.push("");
                        } else {
                            b.push(&bins.draw(k as usize - 1, rng).to_string());
                        }
                    }
                    b.finish()
                }
                ColumnDomain::Date { bins } => {
                    let mut b = ColumnBuilder::default();
                    for &k in &codes[a] {
                        if k == 0 {
                            b.push("");
                        } else {
                            b.push(&domain::format_date(bins.draw(k as usize - 1, rng)));
                        }
                    }
                    b.finish()
                }
                ColumnDomain::Idnr { bins } => {
                    let mut b = ColumnBuilder::default();
                    for (&k, &s) in codes[a].iter().zip(&codes[a + 1]) {
                        if k == 0 {
                            b.push("");
                        } else {
                            let (lo, hi) = bins.range(k as usize - 1);
                            let hi = hi.min(today).max(lo);
                            let day = rng.gen_range(lo..=hi).min(today);
                            let mut v = crate::idgen::synthetic_personnummer(day, s == 1, rng);
                            for _ in 0..1000 {
                                if !exclude.contains(&v) {
                                    break;
                                }
                                v = crate::idgen::synthetic_personnummer(day, s == 1, rng);
                            }
                            b.push(&v);
                        }
                    }
                    b.finish()
                }
            };
            a += cm.domain.attribute_sizes().len();
            cols.push(col);
        }
        Table {
            source: "synthetic".to_string(),
            headers: self.column_names(),
            columns: cols,
            lines: (0..rows as u64).map(|i| i + 2).collect(),
        }
    }
}

/// The budget account a fit is charged to.
pub struct Account<'a> {
    /// Where accounts live.
    pub store: &'a mut dyn kuvert_dp::ledger::LedgerStore,
    /// Which account.
    pub key: kuvert_dp::ledger::DatasetKey,
    /// Budget for a new account.
    pub budget: Option<kuvert_dp::ledger::Budget>,
}

/// [`fit`] with the budget: checked (from the header and the options only)
/// before any value is used, charged after the fit *and* `publish` (which
/// writes the model) succeeded. Returns the fitted model and, with an
/// account, the ε remaining after the charge.
pub fn fit_charged<R: RngCore>(
    table: &Table,
    opts: &FitOptions,
    account: Option<Account<'_>>,
    rng: &mut R,
    progress: &mut dyn FnMut(Progress),
    publish: impl FnOnce(&Fitted) -> Result<()>,
) -> Result<(Fitted, Option<f64>)> {
    let plan = plan_budget(&table.headers, &opts.schema, opts.epsilon, opts.delta)?;
    let Some(acct) = account else {
        let f = fit(table, opts, rng, progress)?;
        publish(&f)?;
        return Ok((f, None));
    };
    let ledger = acct.store.open(&acct.key, acct.budget)?;
    let approval = ledger
        .check(plan.cost.clone())
        .map_err(|e| SynthError::Dp(kuvert_dp::DpError::BudgetExceeded(Box::new(e))))?;
    let remaining = approval.remaining_after();
    let f = fit(table, opts, rng, progress)?;
    publish(&f)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    acct.store.commit(
        approval,
        kuvert_dp::ledger::ReleaseMeta {
            time: kuvert_dp::table::format_rfc3339(now),
            query_sha256: release_hash(opts, &table.headers),
            mechanism: opts.method.mechanism_name().to_string(),
        },
    )?;
    Ok((f, Some(remaining)))
}

/// SHA-256 of the release's public parameters (method, ε, δ, schema, header).
pub fn release_hash(opts: &FitOptions, headers: &[String]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let canon = serde_json::json!({
        "synth": opts.method,
        "epsilon": opts.epsilon,
        "delta": opts.delta,
        "schema": opts.schema,
        "columns": headers,
    });
    Sha256::digest(canon.to_string().as_bytes())
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
