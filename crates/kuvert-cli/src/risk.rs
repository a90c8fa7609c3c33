//! `kuvert risk ...`: re-identification risk and attack tests. Flags are
//! parsed here; the work is in the `kuvert-deid` crate.

use clap::Args;
use kuvert_deid::attacks::{run_attacks, AttackParams, AttackResult};
use kuvert_deid::report::{render, ReportContext};
use kuvert_deid::risk::reid_risk;
use kuvert_deid::table::Table;
use kuvert_deid::DeidError;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Measure the re-identification risk of a released (de-identified or
/// synthetic) table against the original, and run attack tests.
///
/// Prints prosecutor, journalist and marketer risk, sample and population
/// uniqueness, and the singling-out, linkability, attribute-inference and
/// membership-inference attacks, each with a baseline and a confidence
/// interval. Give a control set (--control: records of the same kind NOT
/// used for the release) so that the attack risks measure the leak rather
/// than what the data teach about everyone.
///
/// Example: kuvert risk --original in.csv --released out.csv --quasi
/// age,postcode,sex --sensitive diagnosis --control holdout.csv --json
/// --report risk.html
#[derive(Args, Debug)]
pub struct RiskArgs {
    /// The original table (.csv, .tsv or .parquet).
    #[arg(long)]
    original: PathBuf,
    /// The released table (de-identified or synthetic).
    #[arg(long)]
    released: PathBuf,
    /// Quasi-identifier columns (what an attacker knows), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    quasi: Vec<String>,
    /// Sensitive column (what an attacker wants to learn): enables the inference attack.
    #[arg(long)]
    sensitive: Option<String>,
    /// Held-out control records, not used for the release (same columns as the original).
    #[arg(long)]
    control: Option<PathBuf>,
    /// The deid.toml used for the release: its hierarchies let generalised labels be matched to original values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Attacks per test.
    #[arg(long, default_value_t = 500)]
    attacks: usize,
    /// Columns per singling-out query.
    #[arg(long, default_value_t = 3)]
    query_columns: usize,
    /// Risk threshold for "records at risk" (0.2 = classes smaller than 5).
    #[arg(long, default_value_t = 0.2)]
    threshold: f64,
    /// Share of the population in the release, for the population-uniqueness estimate (default: released/original rows).
    #[arg(long)]
    sampling_fraction: Option<f64>,
    /// Seed of the attacks' random choices (fixed by default so reports are reproducible).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the attack tests (risk measures only).
    #[arg(long)]
    no_attacks: bool,
}

fn fail(e: &DeidError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

fn attack_json(a: &AttackResult) -> serde_json::Value {
    serde_json::to_value(a).unwrap_or(serde_json::Value::Null)
}

/// Run `kuvert risk`.
pub fn run(a: RiskArgs) -> anyhow::Result<ExitCode> {
    if !(a.threshold > 0.0 && a.threshold <= 1.0) {
        eprintln!("error: --threshold must be in (0, 1]");
        return Ok(ExitCode::from(2));
    }
    if a.attacks == 0 {
        eprintln!("error: --attacks must be at least 1");
        return Ok(ExitCode::from(2));
    }
    let read = |p: &PathBuf| Table::read(p);
    let original = match read(&a.original) {
        Ok(t) => t,
        Err(e) => return Ok(fail(&e)),
    };
    let released = match read(&a.released) {
        Ok(t) => t,
        Err(e) => return Ok(fail(&e)),
    };
    let control = match &a.control {
        Some(p) => match read(p) {
            Ok(t) => Some(t),
            Err(e) => return Ok(fail(&e)),
        },
        None => None,
    };
    let cfg = match &a.config {
        Some(p) => match kuvert_deid::config::Config::load(p) {
            Ok(c) => Some(c),
            Err(e) => return Ok(fail(&e)),
        },
        None => None,
    };
    let t0 = std::time::Instant::now();
    let risk = match reid_risk(
        &original,
        &released,
        &a.quasi,
        a.sampling_fraction,
        a.threshold,
        cfg.as_ref(),
    ) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
    };
    let risk_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let attacks = if a.no_attacks {
        None
    } else {
        let params = AttackParams {
            n_attacks: a.attacks,
            n_cols: a.query_columns,
            seed: a.seed,
            ..AttackParams::default()
        };
        // A spinner on stderr while the attacks run (hidden when stderr is not a terminal).
        let spinner =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        spinner
            .set_message("running attack tests (singling out, linkability, inference, membership)");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let r = run_attacks(
            &original,
            &released,
            control.as_ref(),
            &a.quasi,
            a.sensitive.as_deref(),
            &params,
        );
        spinner.finish_and_clear();
        match r {
            Ok(r) => Some(r),
            Err(e) => return Ok(fail(&e)),
        }
    };
    let attack_s = t1.elapsed().as_secs_f64();
    // Human-readable summary.
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let mut lines = vec![
        format!(
            "released {} records in {} classes; original {} records",
            risk.records, risk.classes, risk.population_records
        ),
        format!(
            "prosecutor risk: max {}, avg {}, records at risk {}",
            pct(risk.prosecutor.max),
            pct(risk.prosecutor.avg),
            pct(risk.prosecutor.records_at_risk)
        ),
        format!(
            "journalist risk: max {}, avg {}, records at risk {}",
            pct(risk.journalist.max),
            pct(risk.journalist.avg),
            pct(risk.journalist.records_at_risk)
        ),
        format!("marketer risk: {}", pct(risk.marketer)),
        format!(
            "sample uniques: {} ({}); population uniques: {} ({}); model estimate {:.1} ({}) at sampling fraction {:.3}",
            risk.sample_uniques,
            pct(risk.sample_uniqueness),
            risk.population_uniques,
            pct(risk.population_uniqueness),
            risk.population_uniques_estimate,
            pct(risk.population_uniqueness_estimate),
            risk.sampling_fraction
        ),
    ];
    for n in &risk.notes {
        lines.push(format!("note: {n}"));
    }
    if let Some(at) = &attacks {
        let fmt = |name: &str, r: &AttackResult| {
            format!(
                "{name}: risk {} [{}, {}] (attack {}, {}baseline {}; {} attacks)",
                pct(r.risk),
                pct(r.risk_ci.0),
                pct(r.risk_ci.1),
                pct(r.attack_rate.value),
                r.control_rate
                    .map(|c| format!("control {}, ", pct(c.value)))
                    .unwrap_or_default(),
                pct(r.baseline_rate.value),
                r.n_attacks
            )
        };
        lines.push(fmt("singling out", &at.singling_out));
        if let Some(l) = &at.linkability {
            lines.push(fmt("linkability", l));
        }
        if let Some(i) = &at.inference {
            lines.push(fmt("inference", i));
        }
        let m = &at.membership;
        lines.push(match (m.auc, m.risk) {
            (Some(auc), Some(r)) => format!(
                "membership inference (DCR): AUC {}, advantage {}; exact copies: members {}, non-members {}",
                pct(auc),
                pct(r),
                pct(m.exact_copies_members),
                pct(m.exact_copies_non_members.unwrap_or(0.0))
            ),
            _ => format!(
                "membership inference (DCR): exact copies of original records in the release {} (advantage needs --control)",
                pct(m.exact_copies_members)
            ),
        });
        if !at.control {
            lines.push(
                "note: no --control set; attack risks are raw success rates (upper bounds)"
                    .to_string(),
            );
        }
    }
    lines.push(format!("time: risk {risk_s:.2} s, attacks {attack_s:.2} s"));
    for l in &lines {
        if a.json {
            eprintln!("{l}");
        } else {
            println!("{l}");
        }
    }
    if let Some(p) = &a.report {
        if let Some(at) = &attacks {
            let ctx = ReportContext {
                original: a.original.display().to_string(),
                released: a.released.display().to_string(),
                control: a.control.as_ref().map(|c| c.display().to_string()),
                quasi: a.quasi.clone(),
                sensitive: a.sensitive.clone(),
            };
            std::fs::write(p, render(&ctx, &risk, at))?;
            eprintln!("wrote report {}", p.display());
        } else {
            eprintln!("error: --report needs the attack tests; drop --no-attacks");
            return Ok(ExitCode::from(2));
        }
    }
    if a.json {
        let at = attacks.as_ref();
        let v = json!({
            "records": risk.records,
            "population_records": risk.population_records,
            "classes": risk.classes,
            "threshold": risk.threshold,
            "prosecutor_risk_max": risk.prosecutor.max,
            "prosecutor_risk_avg": risk.prosecutor.avg,
            "prosecutor_records_at_risk": risk.prosecutor.records_at_risk,
            "journalist_risk_max": risk.journalist.max,
            "journalist_risk_avg": risk.journalist.avg,
            "journalist_records_at_risk": risk.journalist.records_at_risk,
            "marketer_risk": risk.marketer,
            "sample_uniques": risk.sample_uniques,
            "sample_uniqueness": risk.sample_uniqueness,
            "population_uniques": risk.population_uniques,
            "population_uniqueness": risk.population_uniqueness,
            "population_uniques_estimate": risk.population_uniques_estimate,
            "population_uniqueness_estimate": risk.population_uniqueness_estimate,
            "sampling_fraction": risk.sampling_fraction,
            "singling_out_risk": at.map(|x| x.singling_out.risk),
            "linkability_risk": at.and_then(|x| x.linkability.as_ref().map(|l| l.risk)),
            "inference_risk": at.and_then(|x| x.inference.as_ref().map(|l| l.risk)),
            "membership_risk": at.and_then(|x| x.membership.risk),
            "control": at.map(|x| x.control),
            "singling_out": at.map(|x| attack_json(&x.singling_out)),
            "linkability": at.and_then(|x| x.linkability.as_ref().map(attack_json)),
            "inference": at.and_then(|x| x.inference.as_ref().map(attack_json)),
            "membership": at.map(|x| serde_json::to_value(&x.membership).unwrap_or_default()),
            "class_size_histogram": risk.class_size_histogram,
            "records_without_match": risk.records_without_match,
            "notes": risk.notes,
            "seconds": {"risk": risk_s, "attacks": attack_s},
        });
        println!("{v}");
    }
    Ok(ExitCode::SUCCESS)
}
