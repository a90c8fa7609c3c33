//! `kuvert synth ...`: differentially private synthetic data (MST:
//! marginals selected and measured under zCDP, a graphical model fitted to
//! them, rows sampled from it). The work is in the `kuvert-synth` crate;
//! this module parses flags, draws progress bars and maps errors to exit
//! codes (2: bad input or configuration, 3: the privacy budget would be
//! exceeded).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use kuvert_deid::table::Table;
use kuvert_dp::ledger::{Budget, DatasetKey, FileLedger};
use kuvert_synth::{FitOptions, Fitted, Method, Model, Progress, SchemaConfig, SynthError};
use rand::SeedableRng;

const AFTER_HELP: &str = "\
What ε means: the synthetic data (and the model file) change so little when one \
person is added to or removed from the input that nobody can tell, up to a factor \
e^ε in probability (plus a chance δ of more). Smaller ε = more privacy, noisier \
statistics. ε = 1 is a common choice; ε ≥ 10 protects little.

Examples:
  kuvert synth --input people.csv --epsilon 1 --rows 10000 --out synthetic.csv
  kuvert synth fit --input people.csv --epsilon 1 --schema synth.toml --model people.model \\
      --ledger budget.json --budget 3
  kuvert synth sample --model people.model --rows 100000 --out synthetic.csv
  kuvert synth bench --rows 100000 --cols 15 --epsilon 1

The schema file (TOML) declares column kinds and public domains; see docs/synth.md.
Exit codes: 0 ok, 2 bad input or configuration, 3 privacy budget exceeded.";

/// Synthetic data with differential privacy.
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_long_help = AFTER_HELP
)]
pub struct SynthArgs {
    #[command(subcommand)]
    command: Option<SynthCommand>,
    /// Fit and sample in one go (`kuvert synth --input IN --epsilon E --rows N --out SYN.csv`).
    #[command(flatten)]
    both: BothArgs,
}

#[derive(Subcommand, Debug)]
pub enum SynthCommand {
    /// Fit a model to a table (the one step that reads the data and spends ε).
    ///
    /// The model file contains only differentially private outputs and
    /// declared parameters; it can be shared, and sampled any number of times
    /// without further privacy cost.
    #[command(after_long_help = AFTER_HELP)]
    Fit(Box<FitArgs>),
    /// Sample synthetic rows from a model (no privacy cost: post-processing).
    #[command(after_long_help = AFTER_HELP)]
    Sample(SampleArgs),
    /// Generate Adult-like data, fit and sample it, and print time, memory
    /// and the mean 1-way and 2-way total variation distance.
    Bench(BenchArgs),
    /// Compare synthetic data with the real data: 1-way and 2-way marginal
    /// distances, correlations, ML efficacy, coverage, acceptance criteria
    /// and the privacy attacks of `kuvert risk`.
    ///
    /// The report compares with the real data and is itself not
    /// differentially private: it is for the controller's acceptance decision.
    Evaluate(Box<crate::synth_eval::EvaluateArgs>),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum MethodArg {
    /// MST: 1-way marginals, a privately selected maximum spanning tree of
    /// 2-way marginals, Private-PGM estimation on the tree.
    Mst,
    /// AIM: 1-way marginals, then adaptive rounds that select (exponential
    /// mechanism) and measure the worst-fitted 1- or 2-way marginal, with
    /// budget annealing; Private-PGM on a junction tree. Slower than MST.
    Aim,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Mst => Method::Mst,
            MethodArg::Aim => Method::Aim,
        }
    }
}

#[derive(Args, Debug)]
pub struct FitCommon {
    /// Input table (.csv, .tsv or .parquet) with a header row.
    #[arg(long, value_name = "IN.csv", required = true)]
    input: Option<PathBuf>,
    /// Privacy loss ε of the whole fit (all selections and measurements).
    #[arg(long, required = true)]
    epsilon: Option<f64>,
    /// δ: the (tiny) chance that the ε guarantee fails. Must be below 1/rows.
    #[arg(long, default_value_t = 1e-6)]
    delta: f64,
    /// Schema configuration (TOML): column kinds, bounds, bins, categories.
    /// Undeclared columns get their kind from the format of their values and
    /// their domain estimated with DP (spending part of ε).
    #[arg(long, value_name = "synth.toml")]
    schema: Option<PathBuf>,
    /// The synthesis method.
    #[arg(long, value_enum, default_value_t = MethodArg::Mst)]
    method: MethodArg,
    /// Mirror-descent iterations of the estimation.
    #[arg(long, default_value_t = 1500)]
    iters: usize,
    /// Share of input rows (chosen at random) left out of the fit and
    /// written unchanged to --holdout (a control set for evaluation).
    #[arg(long = "holdout-fraction", default_value_t = 0.0, requires = "holdout")]
    holdout_fraction: f64,
    /// Where the holdout rows go (CSV).
    #[arg(long, value_name = "FILE")]
    holdout: Option<PathBuf>,
    /// Budget ledger file (JSON); created when missing.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Account name in the ledger (default: the input file's stem).
    #[arg(long, requires = "ledger")]
    dataset: Option<String>,
    /// Contributor whose account is charged (per-contributor budgets).
    #[arg(long, requires = "ledger")]
    contributor: Option<String>,
    /// Total ε budget of the account (sets it when the account is new).
    #[arg(long, requires = "ledger")]
    budget: Option<f64>,
    /// Total δ budget of the account.
    #[arg(long = "budget-delta", requires = "budget", default_value_t = 1e-5)]
    budget_delta: f64,
    /// Print a JSON summary as the last line of stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    accept: crate::synth_eval::AcceptArgs,
    /// TESTS ONLY: seed the privacy noise (makes the release reproducible
    /// and therefore NOT private).
    #[arg(long = "insecure-noise-seed", hide = true)]
    insecure_noise_seed: Option<u64>,
}

#[derive(Args, Debug)]
pub struct FitArgs {
    #[command(flatten)]
    common: FitCommon,
    /// Where to write the model (JSON).
    #[arg(long, value_name = "OUT.model")]
    model: PathBuf,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A model written by `kuvert synth fit`.
    #[arg(long, value_name = "M.model")]
    model: PathBuf,
    /// Number of synthetic rows.
    #[arg(long)]
    rows: usize,
    /// Output CSV file.
    #[arg(long, value_name = "SYN.csv")]
    out: PathBuf,
    /// Seed of the sampling (reproducible output; sampling is
    /// post-processing, so a seed costs no privacy).
    #[arg(long)]
    seed: Option<u64>,
    /// Never emit an identity number that occurs in this table (e.g. the
    /// input). Outside the DP guarantee: a number seen in the output is then
    /// known not to be in that table. See docs/synth.md.
    #[arg(long = "exclude-idnr-from", value_name = "FILE")]
    exclude_idnr_from: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BothArgs {
    #[command(flatten)]
    common: FitCommon,
    /// Number of synthetic rows.
    #[arg(long, required = true)]
    rows: Option<usize>,
    /// Output CSV file.
    #[arg(long, value_name = "SYN.csv", required = true)]
    out: Option<PathBuf>,
    /// Also write the model here.
    #[arg(long, value_name = "M.model")]
    model: Option<PathBuf>,
    /// Seed of the sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Never emit an identity number of the input (outside the DP
    /// guarantee: a number seen in the output is then known not to be in
    /// the input). See docs/synth.md.
    #[arg(long = "exclude-input-idnr")]
    exclude_input_idnr: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Rows of generated data.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Columns (1 to 15).
    #[arg(long, default_value_t = 15)]
    cols: usize,
    /// ε of the fit.
    #[arg(long, default_value_t = 1.0)]
    epsilon: f64,
    /// δ of the fit.
    #[arg(long, default_value_t = 1e-6)]
    delta: f64,
    /// The synthesis method.
    #[arg(long, value_enum, default_value_t = MethodArg::Mst)]
    method: MethodArg,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the generated data here (to run other synthesizers on the same input).
    #[arg(long)]
    save_input: Option<PathBuf>,
    /// Print a JSON summary as the last line.
    #[arg(long)]
    json: bool,
}

/// Runs a `kuvert synth` command.
pub fn run(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let r = match args.command {
        Some(SynthCommand::Evaluate(e)) => return crate::synth_eval::run(*e),
        Some(SynthCommand::Fit(f)) => cmd_fit(*f),
        Some(SynthCommand::Sample(s)) => cmd_sample(s).map(|()| ExitCode::SUCCESS),
        Some(SynthCommand::Bench(b)) => cmd_bench(b).map(|()| ExitCode::SUCCESS),
        None => cmd_both(args.both),
    };
    match r {
        Ok(code) => Ok(code),
        Err(e) => {
            if let SynthError::Dp(kuvert_dp::DpError::BudgetExceeded(b)) = &e {
                eprintln!("error: {b}");
                eprintln!("remaining budget: ε = {:.6}", b.remaining);
            } else {
                eprintln!("error: {e}");
            }
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

fn bar() -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(1);
    b.set_style(
        indicatif::ProgressStyle::with_template("{msg:28} [{bar:40}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

fn progress_fn(b: &indicatif::ProgressBar) -> impl FnMut(Progress) + '_ {
    let mut stage = "";
    move |p: Progress| {
        if p.stage != stage {
            stage = p.stage;
            b.set_message(p.stage);
            b.set_length(p.total.max(1));
        }
        b.set_position(p.done);
    }
}

fn read_table(path: &Path) -> Result<Table, SynthError> {
    let sp = spinner(format!("reading {}", path.display()));
    let t = Table::read(path)?;
    sp.finish_and_clear();
    Ok(t)
}

fn spinner(msg: String) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let s = indicatif::ProgressBar::new_spinner();
    s.set_message(msg);
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    s
}

fn write_table(t: &Table, path: &Path) -> Result<(), SynthError> {
    t.write_csv(path)?;
    Ok(())
}

/// What a fit leaves for the acceptance check: the model, the rows it was
/// fitted on and the holdout.
struct FitOutcome {
    fitted: Fitted,
    train: Table,
    holdout: Option<Table>,
    eval: Option<kuvert_synth::eval::EvalOptions>,
}

fn do_fit(
    c: &FitCommon,
    publish: impl FnOnce(&Fitted) -> Result<(), SynthError>,
) -> Result<FitOutcome, SynthError> {
    if c.budget.is_none() && c.ledger.is_some() && c.budget_delta != 1e-5 {
        return Err(SynthError::Config("--budget-delta needs --budget".into()));
    }
    let schema = match &c.schema {
        Some(p) => SchemaConfig::read(p)?,
        None => SchemaConfig::default(),
    };
    let (Some(input), Some(epsilon)) = (&c.input, c.epsilon) else {
        return Err(SynthError::Config(
            "--input and --epsilon are required; see kuvert synth --help".into(),
        ));
    };
    // The acceptance criteria are read before anything is fitted, so that a
    // mistake in them costs no ε.
    let eval = if c.accept.wanted() {
        Some(c.accept.options().map_err(SynthError::Config)?)
    } else {
        None
    };
    let mut opts = FitOptions::new(epsilon, c.delta);
    opts.schema = schema;
    opts.method = c.method.into();
    opts.iters = c.iters;
    let mut table = read_table(input)?;
    // The whole plan (ρ, the cost) depends on the header and schema only.
    kuvert_synth::plan_budget(&table.headers, &opts.schema, opts.epsilon, opts.delta)?;
    opts.schema.check_columns(&table.headers)?;
    let mut rng: rand_chacha::ChaCha20Rng = match c.insecure_noise_seed {
        Some(s) => {
            eprintln!("warning: --insecure-noise-seed makes the noise predictable: this release is NOT private");
            rand_chacha::ChaCha20Rng::seed_from_u64(s)
        }
        None => kuvert_dp::secure_rng()?,
    };
    let mut holdout = None;
    if let Some(h) = &c.holdout {
        let (train, hold) = kuvert_synth::split_holdout(&table, c.holdout_fraction, &mut rng)?;
        write_table(&hold, h)?;
        eprintln!(
            "holdout: {} of {} rows written unchanged to {} and left out of the fit",
            hold.nrows(),
            table.nrows(),
            h.display()
        );
        table = train;
        holdout = Some(hold);
    }
    let mut store = match &c.ledger {
        Some(p) => Some(FileLedger::open_file(p)?),
        None => None,
    };
    let account = store.as_mut().map(|s| kuvert_synth::Account {
        store: s,
        key: DatasetKey {
            dataset: c.dataset.clone().unwrap_or_else(|| {
                input
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "dataset".into())
            }),
            contributor: c.contributor.clone(),
        },
        budget: c.budget.map(|epsilon| Budget {
            epsilon,
            delta: c.budget_delta,
        }),
    });
    let b = bar();
    let (fitted, remaining) = {
        let mut pf = progress_fn(&b);
        kuvert_synth::fit_charged(&table, &opts, account, &mut rng, &mut pf, publish)?
    };
    b.finish_and_clear();
    print_summary(&fitted, remaining, c.json);
    Ok(FitOutcome {
        fitted,
        train: table,
        holdout,
        eval,
    })
}

/// The acceptance check after a fit, when one was asked for.
fn check_acceptance(c: &FitCommon, o: &FitOutcome, synthetic: &Table) -> ExitCode {
    let Some(opts) = &o.eval else {
        return ExitCode::SUCCESS;
    };
    let name = c
        .input
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::synth_eval::accept_after_fit(
        &c.accept,
        opts,
        &o.train,
        o.holdout.as_ref(),
        synthetic,
        &format!("Synthetic data evaluation: {name}"),
    )
}

fn print_summary(f: &Fitted, remaining: Option<f64>, json: bool) {
    let m = &f.model;
    println!(
        "fitted {} model on {} rows in {:.2} s: ε = {}, δ = {}, ρ = {:.6} (domains {:.6}, 1-way {:.6}, selection {:.6}, 2-way {:.6})",
        m.method.mechanism_name(),
        f.report.rows,
        f.report.seconds,
        m.epsilon,
        m.delta,
        m.rho,
        m.split.domains,
        m.split.one_way,
        m.split.select,
        m.split.two_way
    );
    for c in &m.columns {
        let kind = match &c.domain {
            kuvert_synth::domain::ColumnDomain::Categorical { categories, other } => format!(
                "categorical, {} categories{}",
                categories.len(),
                if *other { " + (other)" } else { "" }
            ),
            kuvert_synth::domain::ColumnDomain::Integer { bins } => {
                format!("integer {}..{}, {} bins", bins.lo, bins.hi, bins.bins)
            }
            kuvert_synth::domain::ColumnDomain::Date { bins } => format!(
                "date {}..{}, {} bins",
                kuvert_synth::domain::format_date(bins.lo),
                kuvert_synth::domain::format_date(bins.hi),
                bins.bins
            ),
            kuvert_synth::domain::ColumnDomain::Idnr { bins } => format!(
                "identity number: birth {}..{} in {} bins, sex",
                kuvert_synth::domain::format_date(bins.lo),
                kuvert_synth::domain::format_date(bins.hi),
                bins.bins
            ),
        };
        println!(
            "  {:<24} {kind} ({}{})",
            c.name,
            if c.inferred_kind {
                "kind inferred"
            } else {
                "declared"
            },
            if c.estimated {
                ", domain estimated with DP"
            } else {
                ""
            }
        );
    }
    let sel: Vec<String> = m.selected.iter().map(|(a, b)| format!("{a}×{b}")).collect();
    println!("selected 2-way marginals: {}", sel.join(", "));
    if let Some(r) = remaining {
        println!("remaining budget ε = {r:.6}");
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "method": m.method,
                "epsilon": m.epsilon,
                "delta": m.delta,
                "rho": m.rho,
                "rows": f.report.rows,
                "seconds": f.report.seconds,
                "selected": m.selected,
                "remaining_epsilon": remaining,
            })
        );
    }
}

fn sample_rng(seed: Option<u64>) -> Result<rand_chacha::ChaCha20Rng, SynthError> {
    Ok(match seed {
        Some(s) => rand_chacha::ChaCha20Rng::seed_from_u64(s),
        None => kuvert_dp::secure_rng()?,
    })
}

fn do_sample(
    m: &Model,
    rows: usize,
    out: &Path,
    seed: Option<u64>,
    exclude: &std::collections::HashSet<String>,
) -> Result<Table, SynthError> {
    let t0 = Instant::now();
    let sp = spinner(format!("sampling {rows} rows"));
    let mut rng = sample_rng(seed)?;
    let t = m.sample_excluding(rows, &mut rng, exclude);
    write_table(&t, out)?;
    sp.finish_and_clear();
    eprintln!(
        "wrote {rows} synthetic rows to {} in {:.2} s",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(t)
}

fn cmd_fit(f: FitArgs) -> Result<ExitCode, SynthError> {
    let path = f.model.clone();
    let o = do_fit(&f.common, |fitted| fitted.model.save(&path))?;
    eprintln!("wrote model {}", f.model.display());
    if o.eval.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    // As many synthetic rows as were fitted, drawn afresh (post-processing).
    let mut rng = sample_rng(None)?;
    let synthetic = o.fitted.model.sample(o.train.nrows(), &mut rng);
    Ok(check_acceptance(&f.common, &o, &synthetic))
}

fn cmd_sample(s: SampleArgs) -> Result<(), SynthError> {
    let m = Model::load(&s.model)?;
    let exclude = match &s.exclude_idnr_from {
        Some(p) => m.identity_numbers_in(&read_table(p)?),
        None => Default::default(),
    };
    do_sample(&m, s.rows, &s.out, s.seed, &exclude).map(|_| ())
}

fn cmd_both(b: BothArgs) -> Result<ExitCode, SynthError> {
    let model_path = b.model.clone();
    let (Some(out), Some(rows), Some(input)) = (b.out.clone(), b.rows, b.common.input.clone())
    else {
        return Err(SynthError::Config(
            "say what to do: `kuvert synth fit ...`, `kuvert synth sample ...`, or \
             `kuvert synth --input IN.csv --epsilon E --rows N --out SYN.csv`; see --help"
                .into(),
        ));
    };
    let seed = b.seed;
    let exclude_input = b.exclude_input_idnr;
    let mut written = None;
    let o = do_fit(&b.common, |fitted| {
        if let Some(p) = &model_path {
            fitted.model.save(p)?;
        }
        let exclude = if exclude_input {
            fitted.model.identity_numbers_in(&read_table(&input)?)
        } else {
            Default::default()
        };
        written = Some(do_sample(&fitted.model, rows, &out, seed, &exclude)?);
        Ok(())
    })?;
    // The acceptance check judges the rows that were written.
    match &written {
        Some(synthetic) => Ok(check_acceptance(&b.common, &o, synthetic)),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cmd_bench(b: BenchArgs) -> Result<(), SynthError> {
    if !(1..=15).contains(&b.cols) {
        return Err(SynthError::Config("--cols must be between 1 and 15".into()));
    }
    let t0 = Instant::now();
    let table = kuvert_synth::bench::adult15(b.rows, b.cols, b.seed);
    let gen_s = t0.elapsed().as_secs_f64();
    if let Some(p) = &b.save_input {
        write_table(&table, p)?;
    }
    let mut opts = FitOptions::new(b.epsilon, b.delta);
    opts.method = b.method.into();
    let mut rng = kuvert_dp::secure_rng()?;
    let bar = bar();
    let t1 = Instant::now();
    let fitted = {
        let mut pf = progress_fn(&bar);
        kuvert_synth::fit(&table, &opts, &mut rng, &mut pf)?
    };
    bar.finish_and_clear();
    let fit_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let syn = fitted.model.sample(b.rows, &mut rng);
    let sample_s = t2.elapsed().as_secs_f64();
    let (tvd1, tvd2) = kuvert_synth::bench::mean_tvd(&table, &syn, 32, 5000);
    let rss = peak_rss();
    println!(
        "kuvert synth bench: {} rows × {} columns, {} at ε = {}, δ = {}",
        b.rows,
        table.headers.len(),
        fitted.model.method.mechanism_name(),
        b.epsilon,
        b.delta
    );
    println!("  generate  {gen_s:8.2} s");
    println!("  fit       {fit_s:8.2} s");
    println!("  sample    {sample_s:8.2} s");
    println!("  total     {:8.2} s (fit + sample)", fit_s + sample_s);
    println!("  peak RSS  {rss}");
    println!("  mean 1-way TVD {tvd1:.4}, mean 2-way TVD {tvd2:.4} (numeric columns in 32 bins)");
    if b.json {
        println!(
            "{}",
            serde_json::json!({
                "rows": b.rows, "cols": table.headers.len(), "epsilon": b.epsilon,
                "delta": b.delta, "method": fitted.model.method,
                "fit_s": fit_s, "sample_s": sample_s, "peak_rss": rss,
                "tvd_1way": tvd1, "tvd_2way": tvd2,
            })
        );
    }
    Ok(())
}
