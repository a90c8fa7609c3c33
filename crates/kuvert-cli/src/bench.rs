//! `kuvert bench ...`: measurements of rounds, bytes per party and time.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Subcommand;
use kuvert_mpc::bench::{micro_inproc, OpReport, MICRO_OPS};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Micro benchmark of the MPC primitives: mul, and, lt, eq, a2b, b2a,
    /// shuffle on whole columns, three parties as threads of this process.
    ///
    /// Prints, per operation: elements per second, communication rounds, and
    /// bytes sent per party per element (mean over the parties, and the
    /// busiest party). `and` counts one 64-bit word as one element. With
    /// --json the last line is one JSON object keyed by operation.
    #[command(verbatim_doc_comment)]
    Micro {
        /// Elements per operation (a column of this many 64-bit values).
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        /// Only these operations (comma-separated), e.g. --ops mul,lt.
        #[arg(long, value_delimiter = ',')]
        ops: Option<Vec<String>>,
        /// Print a JSON object as the last line of stdout.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCommand::Micro { n, ops, json } => {
            let ops = select_ops(ops)?;
            let bar = progress_bar(ops.len() as u64);
            let reports = micro_inproc(n, &ops, |op| {
                bar.set_message(op.to_string());
                bar.inc(1);
            })
            .context("the in-process micro benchmark failed")?;
            bar.finish_and_clear();
            print_table("in-process (3 threads)", n, &reports);
            if json {
                println!("{}", to_json(&reports));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn select_ops(ops: Option<Vec<String>>) -> anyhow::Result<Vec<&'static str>> {
    let Some(ops) = ops else {
        return Ok(MICRO_OPS.to_vec());
    };
    ops.iter()
        .map(|o| {
            MICRO_OPS
                .iter()
                .find(|m| **m == o.as_str())
                .copied()
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown operation {o:?}; choose from {}",
                        MICRO_OPS.join(", ")
                    )
                })
        })
        .collect()
}

pub(crate) fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
        )
        .expect("static template"),
    );
    bar
}

fn print_table(setting: &str, n: usize, reports: &[OpReport]) {
    println!(
        "kuvert bench micro: n = {n}, {setting}, peak RSS {}",
        peak_rss()
    );
    println!(
        "{:<8} {:>14} {:>10} {:>7} {:>16} {:>16}",
        "op", "elements/s", "time", "rounds", "bytes/elem/party", "max bytes/elem"
    );
    for r in reports {
        println!(
            "{:<8} {:>14.0} {:>9.3}s {:>7} {:>16.1} {:>16.1}",
            r.op,
            r.per_sec(),
            r.elapsed.as_secs_f64(),
            r.rounds,
            r.bytes_per_elem,
            r.max_bytes_per_elem
        );
    }
}

fn to_json(reports: &[OpReport]) -> String {
    let mut m = serde_json::Map::new();
    for r in reports {
        m.insert(
            r.op.to_string(),
            serde_json::json!({
                "per_sec": r.per_sec(),
                "rounds": r.rounds,
                "bytes_per_elem": r.bytes_per_elem,
                "max_bytes_per_elem": r.max_bytes_per_elem,
                "seconds": r.elapsed.as_secs_f64(),
                "n": r.n,
            }),
        );
    }
    serde_json::Value::Object(m).to_string()
}

/// Peak resident memory of this process (VmHWM), for the report.
pub(crate) fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
