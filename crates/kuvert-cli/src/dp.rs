//! `kuvert dp ...`: differentially private releases of a contributor's own
//! table, planning of ε, error curves, budget ledgers. The work is in the
//! `kuvert-dp` crate; this module parses flags and maps errors to exit codes
//! (2: bad input, 3: the privacy budget would be exceeded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use kuvert_dp::distributed::DistributedSkellam;
use kuvert_dp::ledger::{Budget, DatasetKey, FileLedger};
use kuvert_dp::release::{self, Account, MechanismChoice, ReleaseSpec};
use kuvert_dp::{collect, plot, table, DpError};

#[derive(Subcommand, Debug)]
pub enum DpCommand {
    /// Release a noisy answer to an aggregate query over your own CSV table.
    ///
    /// The budget is checked before any value is aggregated or any noise is
    /// drawn (the file is read once, to infer column types); the ledger is
    /// charged only after a successful release. Exit code 3: the ledger's budget would
    /// be exceeded (the message says how much ε is left); 2: bad input.
    Release(Box<ReleaseArgs>),
    /// Show EXPLAIN (sensitivity, mechanism, noise) and the expected error of
    /// each output at the given ε, without releasing anything.
    Plan(Box<QueryArgs>),
    /// Plot the expected error of each output against ε (.svg, .html or .png).
    Curve(Box<CurveArgs>),
    /// Noise overhead of distributed Skellam noise (added by the MPC nodes,
    /// any `honest` of them suffice) versus central noise.
    Distributed(DistributedArgs),
    /// Randomized response for collection (local DP): replace each row's
    /// answer in one column by a randomized one, exactly sampled.
    Randomize(RrArgs),
    /// Estimate category shares from randomized answers (unbiased, with
    /// standard errors).
    Estimate(RrEstimateArgs),
    /// Show the accounts of a budget ledger file: budget, spent, remaining.
    Ledger {
        /// The ledger file.
        #[arg(long)]
        ledger: PathBuf,
        /// Print a JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum MechanismArg {
    /// Discrete Laplace without --delta, discrete Gaussian with it.
    Auto,
    /// Discrete Laplace (pure ε-DP).
    Laplace,
    /// Discrete Gaussian (zCDP; needs --delta).
    Gaussian,
    /// Skellam (Rényi DP; needs --delta): the noise used inside the MPC.
    Skellam,
}

#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    /// The table as NAME=PATH (a CSV file with a header row); NAME is the
    /// table name used in FROM.
    #[arg(long, value_name = "NAME=PATH")]
    table: String,
    /// The query: SELECT [col,] COUNT(*)|COUNT(col)|SUM(col)|AVG(col) [AS alias], ...
    /// FROM NAME [WHERE ...] [GROUP BY col].
    #[arg(long)]
    sql: String,
    /// Total ε of the release (split equally over its measurements).
    #[arg(long)]
    epsilon: f64,
    /// Total δ; with δ > 0 the default mechanism is the discrete Gaussian.
    #[arg(long, default_value_t = 0.0)]
    delta: f64,
    /// Noise mechanism.
    #[arg(long, value_enum, default_value_t = MechanismArg::Auto)]
    mechanism: MechanismArg,
    /// Clamping bounds COL=LO:HI for SUM/AVG columns (repeatable). Values are
    /// clamped into [LO, HI]; one row then moves a sum by at most max(|LO|, |HI|).
    #[arg(long = "bounds", value_name = "COL=LO:HI")]
    bounds: Vec<String>,
    /// Column identifying the person (neighbouring datasets differ by one person).
    #[arg(long = "person-col", value_name = "COL")]
    person_col: Option<String>,
    /// At most K rows per person are used (a random subset); sensitivity is K × bound.
    #[arg(long = "max-rows-per-person", value_name = "K", default_value_t = 1)]
    max_rows_per_person: u32,
    /// Public group keys COL=a,b,c for GROUP BY COL: every key is released,
    /// rows with other values are dropped. Required with GROUP BY.
    #[arg(long, value_name = "COL=a,b,c")]
    keys: Option<String>,
    /// Print a JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Budget ledger file (JSON); created when missing.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Total ε budget of the dataset's account (sets it when the account is new).
    #[arg(long, requires = "ledger")]
    budget: Option<f64>,
    /// Total δ budget of the account (default 0: pure-ε budget).
    #[arg(long = "budget-delta", requires = "budget", default_value_t = 0.0)]
    budget_delta: f64,
    /// Account name in the ledger (default: the table NAME).
    #[arg(long, requires = "ledger")]
    dataset: Option<String>,
    /// Contributor whose account is charged (per-contributor budgets).
    #[arg(long, requires = "ledger")]
    contributor: Option<String>,
}

#[derive(Args, Debug)]
pub struct CurveArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// Output file: .svg, .html (self-contained, inline SVG, with a table of
    /// the numbers and the EXPLAIN text) or .png (1520x880 pixels, the same
    /// plot; drawn with a built-in bitmap font, no system fonts needed).
    #[arg(long)]
    out: PathBuf,
    /// Smallest ε plotted.
    #[arg(long = "eps-min", default_value_t = 0.01)]
    eps_min: f64,
    /// Largest ε plotted.
    #[arg(long = "eps-max", default_value_t = 20.0)]
    eps_max: f64,
    /// Number of ε values (log-spaced).
    #[arg(long, default_value_t = 40)]
    points: usize,
}

#[derive(Args, Debug)]
pub struct RrCommon {
    /// The column holding the answer.
    #[arg(long)]
    column: String,
    /// Every possible answer, comma-separated (public).
    #[arg(long, value_delimiter = ',')]
    categories: Vec<String>,
    /// ε per answer: the true answer is kept with probability e^ε/(e^ε + k − 1).
    #[arg(long)]
    epsilon: f64,
}

#[derive(Args, Debug)]
pub struct RrArgs {
    /// Input CSV file with a header row.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output CSV file (written atomically; other columns are copied unchanged).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    rr: RrCommon,
}

#[derive(Args, Debug)]
pub struct RrEstimateArgs {
    /// CSV file of randomized answers.
    #[arg(long = "in")]
    input: PathBuf,
    #[command(flatten)]
    rr: RrCommon,
    /// Print a JSON object as the last line.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct DistributedArgs {
    /// ε of the release.
    #[arg(long)]
    epsilon: f64,
    /// δ of the release (> 0).
    #[arg(long)]
    delta: f64,
    /// Sensitivity (ℓ₁ = ℓ₂) of the scalar query.
    #[arg(long, default_value_t = 1.0)]
    sensitivity: f64,
    /// Number of nodes adding noise.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Number of honest nodes whose noise alone must suffice.
    #[arg(long, default_value_t = 2)]
    honest: u32,
    /// Print a JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// Bad input: exit 2 with this message.
#[derive(Debug)]
struct BadInput(String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

fn split_table(s: &str) -> anyhow::Result<(String, PathBuf)> {
    let (n, p) = s
        .split_once('=')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "--table '{s}': expected NAME=PATH, e.g. --table t=data.csv"
            ))
        })?;
    Ok((n.to_string(), PathBuf::from(p)))
}

fn spec_of(q: &QueryArgs) -> anyhow::Result<(ReleaseSpec, PathBuf)> {
    let (name, path) = split_table(&q.table)?;
    let mut bounds = BTreeMap::new();
    for b in &q.bounds {
        let parsed = b.split_once('=').and_then(|(c, r)| {
            let (lo, hi) = r.split_once(':')?;
            Some((
                c.to_string(),
                lo.trim().parse::<i64>().ok()?,
                hi.trim().parse::<i64>().ok()?,
            ))
        });
        let (c, lo, hi) = parsed.ok_or_else(|| {
            bad(format!(
                "--bounds '{b}': expected COL=LO:HI with integers, e.g. amount=0:10000"
            ))
        })?;
        bounds.insert(c, (lo, hi));
    }
    let keys = match &q.keys {
        None => None,
        Some(k) => {
            let (c, vals) = k
                .split_once('=')
                .ok_or_else(|| bad(format!("--keys '{k}': expected COL=a,b,c")))?;
            Some((
                c.to_string(),
                vals.split(',').map(|v| v.trim().to_string()).collect(),
            ))
        }
    };
    let mechanism = match q.mechanism {
        MechanismArg::Auto => MechanismChoice::Auto,
        MechanismArg::Laplace => MechanismChoice::Laplace,
        MechanismArg::Gaussian => MechanismChoice::Gaussian,
        MechanismArg::Skellam => MechanismChoice::Skellam,
    };
    Ok((
        ReleaseSpec {
            table_name: name,
            sql: q.sql.clone(),
            epsilon: q.epsilon,
            delta: q.delta,
            mechanism,
            bounds,
            person_column: q.person_col.clone(),
            max_rows_per_person: q.max_rows_per_person,
            keys,
        },
        path,
    ))
}

fn schema_of(path: &Path) -> Result<table::Schema, DpError> {
    table::read_schema(path)
}

/// Runs a `kuvert dp` command and maps errors to exit codes.
pub fn run(cmd: DpCommand) -> anyhow::Result<ExitCode> {
    let json = match &cmd {
        DpCommand::Release(r) => r.query.json,
        DpCommand::Plan(q) => q.json,
        DpCommand::Curve(c) => c.query.json,
        DpCommand::Distributed(d) => d.json,
        DpCommand::Randomize(_) => false,
        DpCommand::Estimate(e) => e.json,
        DpCommand::Ledger { json, .. } => *json,
    };
    match run_inner(cmd) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            if let Some(DpError::BudgetExceeded(b)) = e.downcast_ref::<DpError>() {
                eprintln!("error: {b}");
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "error": "budget_exceeded",
                            "remaining_epsilon": b.remaining,
                            "spent_epsilon": b.spent,
                            "budget_epsilon": b.budget_epsilon,
                            "requested_epsilon": b.requested_epsilon,
                        })
                    );
                }
                return Ok(ExitCode::from(3));
            }
            let is_bad = e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<DpError>()
                    .is_some_and(DpError::is_bad_input);
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(if is_bad { 2 } else { 1 }))
        }
    }
}

fn run_inner(cmd: DpCommand) -> anyhow::Result<()> {
    match cmd {
        DpCommand::Release(r) => cmd_release(*r),
        DpCommand::Plan(q) => cmd_plan(*q),
        DpCommand::Curve(c) => cmd_curve(*c),
        DpCommand::Distributed(d) => cmd_distributed(d),
        DpCommand::Randomize(r) => {
            let spec = rr_spec(&r.rr);
            let mut rng = kuvert_dp::secure_rng()?;
            let n = collect::randomize_csv(&r.input, &r.out, &spec, &mut rng)?;
            eprintln!(
                "randomized {n} answers in column '{}' at ε = {} each; wrote {}",
                spec.column,
                spec.epsilon,
                r.out.display()
            );
            Ok(())
        }
        DpCommand::Estimate(e) => {
            let spec = rr_spec(&e.rr);
            let est = collect::estimate_csv(&e.input, &spec)?;
            for x in &est {
                println!(
                    "{:<20} observed {:>8}  estimated share {:>7.4} ± {:.4} (95%)",
                    x.category,
                    x.observed,
                    x.share,
                    1.96 * x.std_error
                );
            }
            if e.json {
                println!("{}", serde_json::json!({ "estimates": est }));
            }
            Ok(())
        }
        DpCommand::Ledger { ledger, json } => cmd_ledger(&ledger, json),
    }
}

fn rr_spec(r: &RrCommon) -> collect::RrSpec {
    collect::RrSpec {
        column: r.column.clone(),
        categories: r.categories.iter().map(|c| c.trim().to_string()).collect(),
        epsilon: r.epsilon,
    }
}

fn cmd_release(r: ReleaseArgs) -> anyhow::Result<()> {
    let (spec, path) = spec_of(&r.query)?;
    if r.budget.is_none() && r.budget_delta != 0.0 {
        return Err(bad("--budget-delta needs --budget"));
    }
    // One read of the file: types are inferred from it, then the plan and the
    // budget check use the schema only, before any value is aggregated.
    let loaded = table::load(&path)?;
    let schema = loaded.schema.clone();
    let mut rng = kuvert_dp::secure_rng()?;
    let load = move || Ok(loaded);
    let out = match &r.ledger {
        None => release::release(&spec, &schema, load, None, &mut rng)?,
        Some(lpath) => {
            let mut store = FileLedger::open_file(lpath)?;
            let key = DatasetKey {
                dataset: r.dataset.clone().unwrap_or_else(|| spec.table_name.clone()),
                contributor: r.contributor.clone(),
            };
            let budget = r.budget.map(|epsilon| Budget {
                epsilon,
                delta: r.budget_delta,
            });
            release::release(
                &spec,
                &schema,
                load,
                Some(Account {
                    store: &mut store,
                    key,
                    budget,
                }),
                &mut rng,
            )?
        }
    };
    if r.query.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        for row in &out.values {
            let cells: Vec<String> = out
                .columns
                .iter()
                .map(|k| format!("{k} = {}", row.get(k).cloned().unwrap_or_default()))
                .collect();
            println!("{}", cells.join(", "));
        }
        println!(
            "mechanism {}, ε = {}, δ = {}, noise std {}",
            out.mechanism, out.epsilon, out.delta, out.noise_std
        );
        if let Some(left) = out.budget_remaining {
            println!("remaining budget ε = {left:.6}");
        }
    }
    Ok(())
}

fn cmd_plan(q: QueryArgs) -> anyhow::Result<()> {
    let (spec, path) = spec_of(&q)?;
    let schema = schema_of(&path)?;
    let p = release::plan(&spec, &schema)?;
    print!("{}", p.explain());
    println!();
    println!("expected error of each output (noise only, before anything is released):");
    for m in &p.measurements {
        println!(
            "  {:<20} ±{} with 95% probability (std {:.3}){}",
            m.name,
            m.ci95,
            m.std,
            if m.ci95_approx {
                ", normal approximation"
            } else {
                ""
            }
        );
    }
    if q.json {
        println!(
            "{}",
            serde_json::json!({
                "mechanism": p.mechanism.name(),
                "epsilon": p.cost.epsilon,
                "delta": p.cost.delta,
                "rho": p.cost.rho,
                "measurements": p.measurements,
                "query_sha256": p.query_sha256,
            })
        );
    }
    Ok(())
}

fn cmd_curve(c: CurveArgs) -> anyhow::Result<()> {
    let ext = c
        .out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(ext.as_str(), "svg" | "html" | "png") {
        return Err(bad(format!(
            "--out {}: use a file ending in .svg, .html or .png",
            c.out.display()
        )));
    }
    if !(c.eps_min > 0.0 && c.eps_max > c.eps_min && (2..=1000).contains(&c.points)) {
        return Err(bad(
            "need 0 < --eps-min < --eps-max and 2 ≤ --points ≤ 1000",
        ));
    }
    let (spec, path) = spec_of(&c.query)?;
    let schema = schema_of(&path)?;
    let eps = release::log_space(c.eps_min, c.eps_max, c.points);
    let points = release::error_curve(&spec, &schema, &eps)?;
    let explain = release::plan(&spec, &schema)?.explain();
    let title = format!("Expected error vs ε: {}", spec.sql);
    let bytes = match ext.as_str() {
        "svg" => plot::svg(&points, &title).into_bytes(),
        "png" => plot::png(&points, &title)?,
        _ => plot::html(&points, &title, &explain).into_bytes(),
    };
    std::fs::write(&c.out, bytes).with_context(|| format!("writing {}", c.out.display()))?;
    eprintln!("wrote {}", c.out.display());
    if c.query.json {
        println!("{}", serde_json::json!({ "out": c.out, "points": points }));
    }
    Ok(())
}

fn cmd_distributed(d: DistributedArgs) -> anyhow::Result<()> {
    if !(d.sensitivity.is_finite() && d.sensitivity > 0.0) {
        return Err(bad("--sensitivity must be a positive number"));
    }
    let ds = DistributedSkellam::new(d.nodes, d.honest)?;
    let r = ds.overhead_vs_central_gaussian(d.epsilon, d.delta, d.sensitivity, d.sensitivity)?;
    if d.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} nodes each add Skellam noise of variance {:.4}; any {} honest nodes together add {:.4} \
             (the central Skellam variance for ε = {}, δ = {}, sensitivity {}).",
            d.nodes, r.per_node_variance, d.honest, r.central_skellam_variance, d.epsilon, d.delta, d.sensitivity
        );
        println!(
            "released noise variance {:.4} (std {:.4}); central discrete Gaussian variance {:.4} (std {:.4})",
            r.released_variance,
            r.released_variance.sqrt(),
            r.central_gaussian_variance,
            r.central_gaussian_variance.sqrt()
        );
        println!(
            "std overhead: ×{:.4} versus central Skellam, ×{:.4} versus central discrete Gaussian",
            r.std_overhead_vs_central_skellam, r.std_overhead_vs_central_gaussian
        );
    }
    Ok(())
}

fn cmd_ledger(path: &Path, json: bool) -> anyhow::Result<()> {
    if !path.exists() {
        return Err(bad(format!("ledger {} does not exist", path.display())));
    }
    let store = FileLedger::open_file(path)?;
    let mut out = Vec::new();
    for a in store.accounts() {
        let spent = a.spent();
        if !json {
            println!(
                "{}: budget ε = {} (δ = {}), {} release(s), spent ε = {:.6}, remaining ε = {:.6}",
                a.key,
                a.budget.epsilon,
                a.budget.delta,
                a.releases.len(),
                spent,
                a.remaining()
            );
        }
        out.push(serde_json::json!({
            "dataset": a.key.dataset,
            "contributor": a.key.contributor,
            "budget_epsilon": a.budget.epsilon,
            "budget_delta": a.budget.delta,
            "releases": a.releases.len(),
            "spent_epsilon": spent,
            "remaining_epsilon": a.remaining(),
        }));
    }
    if json {
        println!("{}", serde_json::json!({ "accounts": out }));
    }
    Ok(())
}
