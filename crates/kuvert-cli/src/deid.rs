//! `kuvert deid ...`: de-identification. Flags are parsed here; the work is
//! in the `kuvert-deid` crate.

use clap::{Args, Subcommand, ValueEnum};
use kuvert_deid::config::{Config, IdnrMode, PseudoSpec, SuppressedRows};
use kuvert_deid::deid::{self as lib, RunOptions};
use kuvert_deid::models::{LKind, TDistance};
use kuvert_deid::pseudo::{Keys, Method};
use kuvert_deid::search::{LossMetric, Progress};
use kuvert_deid::table::Table;
use kuvert_deid::DeidError;
use std::path::PathBuf;
use std::process::ExitCode;

/// De-identify a CSV table.
///
/// Pseudonymises identifier columns with a key from a separate key file,
/// removes columns, cells or records, adds noise or swaps values, and
/// generalises the quasi-identifiers (with the least information loss) until
/// k-anonymity, l-diversity and t-closeness hold, suppressing at most the
/// allowed fraction of records. Writes OUT and a summary on stderr.
///
/// Exit codes: 0 done; 2 bad input or configuration; 3 no generalisation
/// satisfies the models within the suppression limit.
///
/// Example: kuvert deid --input in.csv --out out.csv --quasi age,postcode,sex
/// --sensitive diagnosis --k 5 --l 2 --pseudonymize pnr --key-file deid.key
/// --max-suppression 0.02
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeidArgs {
    #[command(subcommand)]
    sub: Option<DeidSub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum DeidSub {
    /// Create a new random key file for pseudonymisation (never overwrites).
    Keygen {
        /// Where to write the key (mode 0600). Keep it apart from the data.
        #[arg(long)]
        out: PathBuf,
    },
    /// Decrypt reversible (`siv`) pseudonyms back to the original values.
    Reidentify {
        /// Table with pseudonyms.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the table with the original values.
        #[arg(long)]
        out: PathBuf,
        /// Column(s) holding SIV pseudonyms.
        #[arg(long, value_delimiter = ',', required = true)]
        column: Vec<String>,
        /// The key file used for pseudonymisation.
        #[arg(long)]
        key_file: PathBuf,
        /// Domain string used when pseudonymising.
        #[arg(long, default_value = "")]
        domain: String,
    },
    /// Write a synthetic Adult-like test table (and a matching deid.toml).
    Gen {
        /// Rows.
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        /// Output CSV.
        #[arg(long)]
        out: PathBuf,
        /// Also write a configuration with hierarchies for the ten quasi-identifiers here.
        #[arg(long)]
        config_out: Option<PathBuf>,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Time the k-anonymity search on generated data (in memory).
    Bench {
        /// Rows.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Quasi-identifiers (1..=10).
        #[arg(long, default_value_t = 10)]
        qis: usize,
        /// k of k-anonymity.
        #[arg(long, default_value_t = 5)]
        k: u64,
        /// Largest fraction of records to suppress.
        #[arg(long, default_value_t = 0.02)]
        max_suppression: f64,
        /// Stop proving optimality after this many seconds.
        #[arg(long, default_value_t = 40.0)]
        max_search_seconds: f64,
        /// Print a JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LKindArg {
    Distinct,
    Entropy,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TDistArg {
    Auto,
    Equal,
    Ordered,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LossArg {
    Entropy,
    Discernibility,
    Precision,
    /// ARX's monotonic non-uniform entropy (suppressed records not penalised).
    MonotonicEntropy,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MethodArg {
    /// Keyed HMAC-SHA-256, irreversible.
    Hmac,
    /// AES-SIV deterministic encryption, reversible with the key.
    Siv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum IdnrArg {
    Auto,
    Yes,
    No,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SuppressedArg {
    Remove,
    Mask,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Input table (.csv, .tsv or .parquet; the format follows the extension).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output CSV.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Configuration file (TOML, see docs/deid.md). Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Quasi-identifier columns, comma separated.
    #[arg(long, value_delimiter = ',')]
    quasi: Vec<String>,
    /// Sensitive column (for l-diversity and t-closeness).
    #[arg(long)]
    sensitive: Option<String>,
    /// k of k-anonymity: every combination of quasi-identifiers is shared by at least k records.
    #[arg(long)]
    k: Option<u64>,
    /// l of l-diversity: every class has l well-represented sensitive values.
    #[arg(long)]
    l: Option<f64>,
    /// Which l-diversity: distinct values or entropy.
    #[arg(long, value_enum)]
    l_kind: Option<LKindArg>,
    /// t of t-closeness: each class's sensitive distribution within EMD t of the whole table's.
    #[arg(long)]
    t: Option<f64>,
    /// Ground distance of t-closeness.
    #[arg(long, value_enum)]
    t_distance: Option<TDistArg>,
    /// Columns to pseudonymise (comma separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pseudonymize: Vec<String>,
    /// Pseudonymisation method for --pseudonymize columns.
    #[arg(long, value_enum, default_value = "hmac")]
    method: MethodArg,
    /// Whether --pseudonymize columns hold identity numbers to validate and normalise first.
    #[arg(long, value_enum, default_value = "auto")]
    idnr: IdnrArg,
    /// Key file from `kuvert deid keygen`.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Largest fraction of records the search may suppress (0..1).
    #[arg(long)]
    max_suppression: Option<f64>,
    /// Columns to remove (comma separated).
    #[arg(long, value_delimiter = ',')]
    drop: Vec<String>,
    /// Information-loss measure to minimise.
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// Remove suppressed records, or keep them with quasi-identifiers `*`.
    #[arg(long, value_enum)]
    suppressed_rows: Option<SuppressedArg>,
    /// Stop proving optimality after this many seconds and use the best node found.
    #[arg(long)]
    max_search_seconds: Option<f64>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Hold out this fraction of rows (before anything else) as a control set for `kuvert risk --control`.
    #[arg(long, default_value_t = 0.0)]
    holdout_fraction: f64,
    /// Where to write the held-out rows (needed with --holdout-fraction).
    #[arg(long)]
    holdout: Option<PathBuf>,
    /// Seed for noise, swapping and hold-out; for reproducible tests only.
    #[arg(long, hide = true)]
    seed: Option<u64>,
}

fn fail(e: &DeidError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn progress_bar(label: &str) -> (indicatif::ProgressBar, impl FnMut(Progress)) {
    let pb =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} nodes ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(label.to_string());
    let p2 = pb.clone();
    (pb, move |p: Progress| {
        p2.set_length(p.total);
        p2.set_position(p.resolved);
    })
}

/// Run `kuvert deid`.
pub fn run(a: DeidArgs) -> anyhow::Result<ExitCode> {
    match a.sub {
        Some(DeidSub::Keygen { out }) => match Keys::generate(&out) {
            Ok(()) => {
                eprintln!(
                    "wrote a new key to {} (keep it secret and apart from the data)",
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(fail(&e)),
        },
        Some(DeidSub::Reidentify {
            input,
            out,
            column,
            key_file,
            domain,
        }) => {
            let r = (|| {
                let keys = Keys::load(&key_file)?;
                let mut t = Table::read(&input)?;
                for c in &column {
                    lib::reidentify(&mut t, c, &domain, &keys)?;
                }
                t.write_csv(&out)?;
                Ok::<_, DeidError>(t.nrows())
            })();
            match r {
                Ok(n) => {
                    eprintln!(
                        "wrote {n} rows with decrypted {} to {}",
                        column.join(", "),
                        out.display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail(&e)),
            }
        }
        Some(DeidSub::Gen {
            rows,
            out,
            config_out,
            seed,
        }) => {
            let t = kuvert_deid::gen::adult_like(rows, seed);
            if let Err(e) = t.write_csv(&out) {
                return Ok(fail(&e));
            }
            if let Some(c) = config_out {
                let cfg = kuvert_deid::gen::config(10, 5, 0.02);
                std::fs::write(&c, toml::to_string(&cfg)?)?;
            }
            eprintln!("wrote {rows} generated rows to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(DeidSub::Bench {
            rows,
            qis,
            k,
            max_suppression,
            max_search_seconds,
            json,
        }) => {
            if !(1..=10).contains(&qis) {
                return Ok(usage("--qis must be between 1 and 10"));
            }
            let t0 = std::time::Instant::now();
            let t = kuvert_deid::gen::adult_like(rows, 1);
            let gen_s = t0.elapsed().as_secs_f64();
            let mut cfg = kuvert_deid::gen::config(qis, k, max_suppression);
            cfg.max_search_seconds = max_search_seconds;
            let (pb, mut cb) = progress_bar("lattice search");
            let t1 = std::time::Instant::now();
            let r = lib::run(
                t,
                &cfg,
                RunOptions {
                    keys: None,
                    holdout_fraction: 0.0,
                    progress: &mut cb,
                },
            );
            pb.finish_and_clear();
            let total_s = t1.elapsed().as_secs_f64();
            match r {
                Ok(o) => {
                    let rep = &o.report;
                    eprintln!(
                        "rows {rows}, quasi-identifiers {qis}, k {k}: search {:.2} s (whole pipeline {total_s:.2} s, generation {gen_s:.2} s); lattice {} nodes, {} evaluated, {} more rolled up; levels {:?}; suppressed {}; optimal proven: {}",
                        rep.search_seconds,
                        rep.lattice_size,
                        rep.nodes_evaluated,
                        rep.nodes_rolled_up,
                        rep.generalisation.iter().map(|g| g.level).collect::<Vec<_>>(),
                        rep.records_suppressed,
                        rep.optimal_guaranteed
                    );
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "rows": rows, "quasi_identifiers": qis, "k": k,
                                "search_seconds": rep.search_seconds, "pipeline_seconds": total_s,
                                "lattice_size": rep.lattice_size, "nodes_evaluated": rep.nodes_evaluated,
                                "nodes_rolled_up": rep.nodes_rolled_up,
                                "levels": rep.generalisation.iter().map(|g| g.level).collect::<Vec<_>>(),
                                "suppressed": rep.records_suppressed, "loss": rep.loss,
                                "optimal_proven": rep.optimal_guaranteed,
                            })
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(fail(&e)),
            }
        }
        None => run_deid(a.run),
    }
}

fn run_deid(a: RunArgs) -> anyhow::Result<ExitCode> {
    let (Some(input), Some(out)) = (a.input.clone(), a.out.clone()) else {
        return Ok(usage("`kuvert deid` needs --input IN.csv and --out OUT.csv (or a subcommand: keygen, reidentify, gen, bench); see --help"));
    };
    let mut cfg = match &a.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => return Ok(fail(&e)),
        },
        None => Config::default(),
    };
    if !a.quasi.is_empty() {
        cfg.quasi = a.quasi.clone();
    }
    if a.sensitive.is_some() {
        cfg.sensitive = a.sensitive.clone();
    }
    if let Some(k) = a.k {
        cfg.models.k = k;
    }
    if a.l.is_some() {
        cfg.models.l = a.l;
    }
    if let Some(x) = a.l_kind {
        cfg.models.l_kind = match x {
            LKindArg::Distinct => LKind::Distinct,
            LKindArg::Entropy => LKind::Entropy,
        };
    }
    if a.t.is_some() {
        cfg.models.t = a.t;
    }
    if let Some(x) = a.t_distance {
        cfg.models.t_distance = match x {
            TDistArg::Auto => TDistance::Auto,
            TDistArg::Equal => TDistance::Equal,
            TDistArg::Ordered => TDistance::Ordered,
        };
    }
    if let Some(s) = a.max_search_seconds {
        cfg.max_search_seconds = s;
    }
    if let Some(m) = a.max_suppression {
        cfg.max_suppression = m;
    }
    if let Some(x) = a.loss {
        cfg.loss = match x {
            LossArg::Entropy => LossMetric::Entropy,
            LossArg::Discernibility => LossMetric::Discernibility,
            LossArg::Precision => LossMetric::Precision,
            LossArg::MonotonicEntropy => LossMetric::MonotonicEntropy,
        };
    }
    if let Some(x) = a.suppressed_rows {
        cfg.suppressed_rows = match x {
            SuppressedArg::Remove => SuppressedRows::Remove,
            SuppressedArg::Mask => SuppressedRows::Mask,
        };
    }
    cfg.drop.extend(a.drop.iter().cloned());
    for c in &a.pseudonymize {
        cfg.pseudonymize.retain(|p| &p.column != c);
        cfg.pseudonymize.push(PseudoSpec {
            column: c.clone(),
            method: match a.method {
                MethodArg::Hmac => Method::Hmac,
                MethodArg::Siv => Method::Siv,
            },
            domain: String::new(),
            idnr: match a.idnr {
                IdnrArg::Auto => IdnrMode::Auto,
                IdnrArg::Yes => IdnrMode::Yes,
                IdnrArg::No => IdnrMode::No,
            },
        });
    }
    if a.key_file.is_some() {
        cfg.key_file = a.key_file.clone();
    }
    if a.seed.is_some() {
        cfg.seed = a.seed;
    }
    if a.holdout_fraction > 0.0 && a.holdout.is_none() {
        return Ok(usage(
            "--holdout-fraction needs --holdout FILE to write the held-out rows to",
        ));
    }
    let keys = match (&cfg.key_file, cfg.pseudonymize.is_empty()) {
        (Some(p), false) => match Keys::load(p) {
            Ok(k) => Some(k),
            Err(e) => return Ok(fail(&e)),
        },
        (None, false) => {
            return Ok(usage(
                "pseudonymisation needs --key-file FILE; create one with `kuvert deid keygen --out FILE`",
            ))
        }
        _ => None,
    };
    let table = match Table::read(&input) {
        Ok(t) => t,
        Err(e) => return Ok(fail(&e)),
    };
    let (pb, mut cb) = progress_bar("lattice search");
    let r = lib::run(
        table,
        &cfg,
        RunOptions {
            keys: keys.as_ref(),
            holdout_fraction: a.holdout_fraction,
            progress: &mut cb,
        },
    );
    pb.finish_and_clear();
    let o = match r {
        Ok(o) => o,
        Err(e) => return Ok(fail(&e)),
    };
    if let Err(e) = o.table.write_csv(&out) {
        return Ok(fail(&e));
    }
    if let (Some(h), Some(p)) = (&o.holdout, &a.holdout) {
        if let Err(e) = h.write_csv(p) {
            return Ok(fail(&e));
        }
    }
    let rep = &o.report;
    eprintln!(
        "deid: {} rows in, {} rows out to {}",
        rep.rows_in,
        rep.rows_out,
        out.display()
    );
    if rep.rows_held_out > 0 {
        eprintln!("  held out {} rows as control set", rep.rows_held_out);
    }
    if !rep.generalisation.is_empty() {
        let m = &rep.models;
        let mut models = format!("k={}", m.k);
        if let Some(l) = m.l {
            models += &format!(", l={l} ({:?})", m.l_kind).to_lowercase();
        }
        if let Some(t) = m.t {
            models += &format!(", t={t}");
        }
        eprintln!(
            "  models: {models}; suppressed {} records (limit {:.1}%); {} classes",
            rep.records_suppressed,
            rep.max_suppression * 100.0,
            rep.classes
        );
        for g in &rep.generalisation {
            eprintln!(
                "  {}: level {}/{} ({} distinct, e.g. {})",
                g.column,
                g.level,
                g.max_level,
                g.distinct_values,
                g.examples.join(", ")
            );
        }
        if let Some(l) = &rep.loss {
            eprintln!(
                "  information loss: non-uniform entropy {:.0} bits ({:.1}% of all), discernibility {:.0}, precision {:.3}, average class size {:.1}",
                l.non_uniform_entropy,
                l.non_uniform_entropy_relative * 100.0,
                l.discernibility,
                l.precision,
                l.avg_class_size
            );
        }
        eprintln!(
            "  search: {} of {} lattice nodes evaluated ({} more rolled up from them) in {:.2} s{}",
            rep.nodes_evaluated,
            rep.lattice_size,
            rep.nodes_rolled_up,
            rep.search_seconds,
            if rep.optimal_guaranteed {
                ""
            } else if rep.search_stopped_early {
                " (stopped at the time budget, --max-search-seconds: the result satisfies the models but is not proven optimal)"
            } else {
                " (entropy l-diversity/t-closeness are not monotone: the result satisfies the models but may not be the global optimum)"
            }
        );
    }
    for (c, m) in &rep.pseudonymized {
        let how = match m {
            Method::Hmac => "HMAC-SHA-256, irreversible",
            Method::Siv => "AES-SIV, reversible with the key",
        };
        eprintln!("  pseudonymised {c} ({how})");
    }
    if let Some(p) = &a.report_json {
        std::fs::write(p, serde_json::to_string_pretty(rep)? + "\n")?;
    }
    Ok(ExitCode::SUCCESS)
}
