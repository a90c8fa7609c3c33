//! `kuvert synth evaluate ...`: compare synthetic data with the real data,
//! check acceptance criteria, write the quality and privacy report. Flags
//! are parsed here; the work is in `kuvert_synth::eval`. `kuvert synth
//! fit --accept` runs the same evaluation right after the fit.

use clap::Args;
use kuvert_deid::table::Table;
use kuvert_synth::eval::{
    evaluate, render_html, Binning, ColumnKind, Criteria, EvalOptions, Evaluation,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Evaluate synthetic data against the real data: quality, acceptance
/// criteria and privacy.
///
/// Compares every column (1-way) and every pair of columns (2-way) of the
/// synthetic table with the real rows it was made from (total variation
/// distance), the strength of relationships (Pearson / Cramér's V), the
/// usefulness for prediction (a classifier trained on synthetic and tested
/// on real rows, against one trained on real rows), the coverage of real
/// categories and ranges, the validity and novelty of identity numbers, and
/// runs the attack tests of `kuvert risk` (singling out, linkability,
/// inference, membership) with the synthetic table as the release.
///
/// Give --holdout: real rows of the same kind that were NOT used to fit the
/// synthesizer. They are the prediction test set and the attacks' control
/// set; without them the train set is split for prediction and the attack
/// risks are upper bounds.
///
/// With --accept ACCEPT.toml, each criterion is checked and printed as PASS
/// or FAIL (see docs/synth-eval.md for the keys). Exit codes: 0 every
/// criterion passed (or none was given), 4 a criterion failed, 2 bad input
/// or configuration.
///
/// The evaluation reads the real data without noise: its output (and the
/// report) is NOT differentially private. Review it before publishing.
///
/// Example: kuvert synth evaluate --real train.csv --holdout holdout.csv
/// --synthetic synthetic.csv --accept accept.toml --target diagnosis
/// --quasi age,sex,postcode --sensitive diagnosis --json eval.json --report
/// eval.html
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The real rows the synthesizer was fitted on (.csv, .tsv or .parquet).
    #[arg(long, value_name = "TRAIN")]
    pub real: PathBuf,
    /// Real rows NOT used for the fit (same columns): the ML test set and the attacks' control set.
    #[arg(long, value_name = "HOLDOUT")]
    pub holdout: Option<PathBuf>,
    /// The synthetic table (must have every column of the real table).
    #[arg(long, value_name = "SYN")]
    pub synthetic: PathBuf,
    #[command(flatten)]
    pub what: EvalWhat,
    /// Column kind override, repeatable: COL=categorical|numeric|date|identity|ignore.
    #[arg(long = "kind", value_name = "COL=KIND")]
    pub kinds: Vec<String>,
    /// Write the JSON report here ("-" for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Title of the HTML report.
    #[arg(long, default_value = "Synthetic data evaluation")]
    pub title: String,
    /// Bins per numeric/date column (default 20 or `bins` in --accept).
    #[arg(long, value_name = "N")]
    pub bins: Option<usize>,
    /// Bin edges at quantiles of the real data or equally spaced.
    #[arg(long, value_name = "quantile|equal-width")]
    pub binning: Option<String>,
    /// Seed of the attacks, the train/test split and the classifier (not secret; fixed for reproducible reports).
    #[arg(long)]
    pub seed: Option<u64>,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn parse_kind(s: &str) -> Option<ColumnKind> {
    Some(match s {
        "categorical" => ColumnKind::Categorical,
        "numeric" => ColumnKind::Numeric,
        "date" => ColumnKind::Date,
        "identity" => ColumnKind::Identity,
        "ignore" => ColumnKind::Ignore,
        _ => return None,
    })
}

fn pct(x: f64) -> String {
    if x.is_infinite() {
        "inf".to_string()
    } else {
        format!("{:.1}%", x * 100.0)
    }
}

fn summary(e: &Evaluation) -> Vec<String> {
    let mut l = Vec::new();
    l.push(format!(
        "synthetic {} rows vs real {} rows{}; {} columns evaluated, {} pairs",
        e.inputs.synthetic_rows,
        e.inputs.train_rows,
        e.inputs
            .holdout
            .as_ref()
            .map(|_| format!(", holdout {} rows", e.inputs.holdout_rows))
            .unwrap_or_default(),
        e.columns.len(),
        e.pairs.len()
    ));
    l.push(format!(
        "1-way TVD: max {} ({}), mean {}",
        pct(e.tvd_1way_max),
        e.tvd_1way_max_column.as_deref().unwrap_or("-"),
        pct(e.tvd_1way_mean)
    ));
    l.push(format!(
        "2-way TVD: max {} ({}), mean {}",
        pct(e.tvd_2way_max),
        e.tvd_2way_max_pair
            .as_ref()
            .map(|(a, b)| format!("{a} x {b}"))
            .unwrap_or_else(|| "-".into()),
        pct(e.tvd_2way_mean)
    ));
    l.push(format!(
        "association difference: max {:.3} ({}), mean {:.3}",
        e.corr_diff_max,
        e.corr_diff_max_pair
            .as_ref()
            .map(|(a, b)| format!("{a} x {b}"))
            .unwrap_or_else(|| "-".into()),
        e.corr_diff_mean
    ));
    if let Some(m) = &e.ml {
        l.push(format!(
            "ML efficacy ({}{}): {} (macro-F1 synthetic {:.3} / real {:.3}; accuracy {:.3} / {:.3}; majority {:.3})",
            m.target,
            if m.target_default { ", default target" } else { "" },
            pct(m.efficacy),
            m.synthetic.macro_f1,
            m.real.macro_f1,
            m.synthetic.accuracy,
            m.real.accuracy,
            m.majority.accuracy
        ));
    }
    if let Some(c) = e.category_coverage_min {
        l.push(format!("lowest category coverage: {}", pct(c)));
    }
    if let Some(c) = e.range_coverage_min {
        l.push(format!("lowest range coverage: {}", pct(c)));
    }
    l.push(format!(
        "synthetic rows identical to a real row: {}{}",
        pct(e.exact_copies),
        e.exact_copies_holdout
            .map(|h| format!(" (holdout rows identical to a training row: {})", pct(h)))
            .unwrap_or_default()
    ));
    for d in &e.identity {
        l.push(format!(
            "identity numbers in {}: {} valid, {} equal to a real one",
            d.name,
            pct(d.valid_share),
            d.equal_real
        ));
    }
    if let Some(p) = &e.privacy {
        let a = &p.attacks;
        let f = |name: &str, r: &kuvert_deid::attacks::AttackResult| {
            format!(
                "{name}: risk {} [{}, {}] ({} attacks)",
                pct(r.risk),
                pct(r.risk_ci.0),
                pct(r.risk_ci.1),
                r.n_attacks
            )
        };
        l.push(f("singling out", &a.singling_out));
        if let Some(x) = &a.linkability {
            l.push(f("linkability", x));
        }
        if let Some(x) = &a.inference {
            l.push(f("inference", x));
        }
        match a.membership.risk {
            Some(r) => l.push(format!(
                "membership advantage: {} (training rows with an exact copy: {})",
                pct(r),
                pct(a.membership.exact_copies_members)
            )),
            None => l.push("membership advantage: not measured (needs --holdout)".into()),
        }
    }
    for n in &e.notes {
        l.push(format!("note: {n}"));
    }
    if let Some(m) = &e.ml {
        for n in &m.notes {
            l.push(format!("note: {n}"));
        }
    }
    l.push(format!("time: {:.2} s", e.seconds));
    l.push(
        "the evaluation is NOT differentially private: review its output before publishing".into(),
    );
    l
}

/// What is judged and how, shared by `kuvert synth evaluate` and `kuvert
/// synth fit --accept`.
#[derive(Args, Debug)]
pub struct EvalWhat {
    /// Acceptance criteria and settings (TOML; see docs/synth-eval.md).
    /// With `kuvert synth fit` (and the combined form) the criteria are
    /// read before anything is fitted; after the fit a synthetic sample as
    /// large as the fitted table (the combined form: the rows it writes) is
    /// evaluated against the fitted rows, and exit 4 says a criterion
    /// failed (the model is written either way: its ε is spent). Add
    /// --holdout-fraction and --holdout so that the ML test and the attacks
    /// have real rows that were not fitted.
    #[arg(long, value_name = "ACCEPT.toml")]
    pub accept: Option<PathBuf>,
    /// Column to predict for ML efficacy (default: `target` in --accept, else the last categorical column).
    #[arg(long, value_name = "COL")]
    pub target: Option<String>,
    /// Columns the attacker knows, comma separated (default: every evaluated column but the sensitive one).
    #[arg(long, value_delimiter = ',', value_name = "COL,COL")]
    pub quasi: Option<Vec<String>>,
    /// Column the attacker wants to learn (default: the ML target).
    #[arg(long, value_name = "COL")]
    pub sensitive: Option<String>,
    /// Attacks per privacy test (0 skips the privacy tests; default 500 or `attacks` in --accept).
    #[arg(long, value_name = "N")]
    pub attacks: Option<usize>,
}

/// The evaluation flags of `kuvert synth fit` and of the combined form:
/// check acceptance criteria right after the fit.
#[derive(Args, Debug)]
pub struct AcceptArgs {
    #[command(flatten)]
    pub what: EvalWhat,
    /// Write the evaluation's HTML report here (runs the evaluation even
    /// without --accept). Not differentially private: review it before
    /// publishing.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Write the evaluation's JSON report here.
    #[arg(long = "report-json", value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

impl AcceptArgs {
    /// Whether any evaluation was asked for.
    pub fn wanted(&self) -> bool {
        self.what.accept.is_some() || self.report.is_some() || self.report_json.is_some()
    }

    /// Reads the criteria file and checks the flags, before anything is
    /// fitted (so that a typo costs no ε).
    pub fn options(&self) -> Result<EvalOptions, String> {
        options(&Flags {
            what: &self.what,
            bins: None,
            binning: None,
            seed: None,
            kinds: &[],
        })
    }
}

/// Evaluates `synthetic` against the fitted rows right after a fit and
/// reports as `kuvert synth evaluate` does. Returns the exit code.
pub fn accept_after_fit(
    a: &AcceptArgs,
    opts: &EvalOptions,
    train: &Table,
    holdout: Option<&Table>,
    synthetic: &Table,
    title: &str,
) -> ExitCode {
    if holdout.is_none() {
        eprintln!(
            "note: no --holdout: the ML test splits the fitted rows and the attack risks are \
             upper bounds; give --holdout-fraction 0.2 --holdout FILE for a control set"
        );
    }
    match evaluate_and_report(
        train,
        holdout,
        synthetic,
        opts,
        a.report_json.as_ref(),
        a.report.as_ref(),
        title,
    ) {
        Ok(code) => {
            if code != ExitCode::SUCCESS {
                eprintln!(
                    "the synthetic data failed the acceptance criteria: do not release it \
                     (the model was written; see the report)"
                );
            }
            code
        }
        Err(e) => usage(&e.to_string()),
    }
}

struct Flags<'a> {
    what: &'a EvalWhat,
    bins: Option<usize>,
    binning: Option<&'a str>,
    seed: Option<u64>,
    kinds: &'a [String],
}

fn options(a: &Flags) -> Result<EvalOptions, String> {
    let w = a.what;
    let criteria = match &w.accept {
        Some(p) => Criteria::from_toml_file(p).map_err(|e| e.to_string())?,
        None => Criteria::default(),
    };
    let mut opts = EvalOptions::with_criteria(criteria);
    if let Some(t) = &w.target {
        opts.target = Some(t.clone());
    }
    if let Some(q) = &w.quasi {
        if q.iter().any(|c| c.trim().is_empty()) {
            return Err("--quasi has an empty column name".into());
        }
        opts.quasi = Some(q.clone());
    }
    if let Some(s) = &w.sensitive {
        opts.sensitive = Some(s.clone());
    }
    if let Some(n) = w.attacks {
        opts.n_attacks = n;
    }
    if let Some(b) = a.bins {
        if b == 0 {
            return Err("--bins must be at least 1".into());
        }
        opts.bins = b;
    }
    if let Some(b) = a.binning {
        opts.binning = match b {
            "quantile" => Binning::Quantile,
            "equal-width" => Binning::EqualWidth,
            _ => return Err("--binning must be `quantile` or `equal-width`".into()),
        };
    }
    if let Some(s) = a.seed {
        opts.seed = s;
    }
    let mut kinds = BTreeMap::new();
    for k in a.kinds {
        let Some((col, kind)) = k.split_once('=') else {
            return Err(format!("--kind {k}: write COL=KIND"));
        };
        let Some(kind) = parse_kind(kind.trim()) else {
            return Err(format!(
                "--kind {k}: the kind must be categorical, numeric, date, identity or ignore"
            ));
        };
        kinds.insert(col.trim().to_string(), kind);
    }
    opts.kinds = kinds;
    Ok(opts)
}

/// Run `kuvert synth evaluate`.
pub fn run(a: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let opts = match options(&Flags {
        what: &a.what,
        bins: a.bins,
        binning: a.binning.as_deref(),
        seed: a.seed,
        kinds: &a.kinds,
    }) {
        Ok(o) => o,
        Err(e) => return Ok(usage(&e)),
    };
    let read = |p: &PathBuf| Table::read(p);
    let train = match read(&a.real) {
        Ok(t) => t,
        Err(e) => return Ok(usage(&e.to_string())),
    };
    let holdout = match &a.holdout {
        Some(p) => match read(p) {
            Ok(t) => Some(t),
            Err(e) => return Ok(usage(&e.to_string())),
        },
        None => None,
    };
    let synthetic = match read(&a.synthetic) {
        Ok(t) => t,
        Err(e) => return Ok(usage(&e.to_string())),
    };
    evaluate_and_report(
        &train,
        holdout.as_ref(),
        &synthetic,
        &opts,
        a.json.as_ref(),
        a.report.as_ref(),
        &a.title,
    )
}

/// Evaluates, prints the summary and the criteria, writes the reports;
/// exit 0 when every criterion passed, 4 when one failed, 2 for bad input.
fn evaluate_and_report(
    train: &Table,
    holdout: Option<&Table>,
    synthetic: &Table,
    opts: &EvalOptions,
    json: Option<&PathBuf>,
    report: Option<&PathBuf>,
    title: &str,
) -> anyhow::Result<ExitCode> {
    let bar = crate::bench::progress_bar(0);
    let b2 = bar.clone();
    let mut progress = move |stage: &str, done: u64, total: u64| {
        b2.set_message(match stage {
            "columns" => "encoding columns".to_string(),
            "pairs" => "2-way marginals and associations".to_string(),
            "ml" => "training the classifiers".to_string(),
            "attacks" => "privacy attacks".to_string(),
            s => s.to_string(),
        });
        b2.set_length(total);
        b2.set_position(done);
    };
    let result = evaluate(train, holdout, synthetic, opts, &mut progress);
    bar.finish_and_clear();
    let e = match result {
        Ok(e) => e,
        Err(e) => return Ok(usage(&e.to_string())),
    };
    let to_stdout = json.map(|p| p.as_os_str() == "-").unwrap_or(false);
    let say = |s: &str| {
        if to_stdout {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    for l in summary(&e) {
        say(&l);
    }
    if e.criteria.is_empty() {
        say("acceptance criteria: none given (use --accept ACCEPT.toml)");
    } else {
        say("acceptance criteria:");
        for c in &e.criteria {
            let v = c
                .value
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "not measured".into());
            let key = match &c.column {
                Some(col) => format!("{}[{col}]", c.name),
                None => c.name.clone(),
            };
            say(&format!(
                "  {}  {key:<28} {v:>12} {} {:<8} {}",
                if c.passed { "PASS" } else { "FAIL" },
                c.comparison,
                format!("{:.4}", c.threshold),
                c.detail
            ));
        }
        let failed = e.criteria.iter().filter(|c| !c.passed).count();
        say(&if failed == 0 {
            format!("PASSED: all {} criteria met", e.criteria.len())
        } else {
            format!("FAILED: {failed} of {} criteria not met", e.criteria.len())
        });
    }
    if let Some(p) = report {
        std::fs::write(p, render_html(&e, title))
            .map_err(|err| anyhow::anyhow!("{}: {err}", p.display()))?;
        eprintln!("wrote report {}", p.display());
    }
    if let Some(p) = json {
        let text = serde_json::to_string_pretty(&e)?;
        if to_stdout {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            std::fs::write(p, text + "\n")
                .map_err(|err| anyhow::anyhow!("{}: {err}", p.display()))?;
            eprintln!("wrote JSON {}", p.display());
        }
    }
    Ok(if e.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}
