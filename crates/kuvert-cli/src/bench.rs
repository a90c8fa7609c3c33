//! `kuvert bench ...`: measurements of rounds, bytes per party and time.

use std::io::IsTerminal;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use kuvert_mpc::bench::{combine, micro_inproc, micro_party, OpMeasure, OpReport, MICRO_OPS};
use kuvert_mpc::{Party, Stats};

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
        /// Run the three parties as three node processes on 127.0.0.1,
        /// talking mutually authenticated TLS 1.3 (a throw-away PKI is
        /// generated), and compare with the in-process run.
        #[arg(long)]
        net: bool,
        /// With --net: skip the in-process comparison run.
        #[arg(long, requires = "net")]
        no_compare: bool,
    },
    /// One party of `micro --net` (started by it; not for direct use).
    #[command(hide = true)]
    MicroParty {
        #[arg(long)]
        party: usize,
        #[arg(long)]
        pki: PathBuf,
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<SocketAddr>,
        #[arg(long)]
        n: usize,
        #[arg(long, value_delimiter = ',')]
        ops: Vec<String>,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCommand::Micro {
            n,
            ops,
            json,
            net: true,
            no_compare,
        } => {
            let ops = select_ops(ops)?;
            let (reports, rss) = micro_net(n, &ops)?;
            print_table(
                "three node processes, TLS 1.3 over 127.0.0.1",
                n,
                &reports,
                &format!("per node {rss}"),
            );
            if !no_compare {
                let local = micro_inproc(n, &ops, |_| {})
                    .context("the in-process comparison run failed")?;
                println!();
                print_table(
                    "in-process (3 threads), for comparison",
                    n,
                    &local,
                    &format!("{} for all three", peak_rss()),
                );
                println!();
                for (r, l) in reports.iter().zip(&local) {
                    println!(
                        "{:<8} network / in-process throughput: {:>5.1}%",
                        r.op,
                        100.0 * r.per_sec() / l.per_sec()
                    );
                }
            }
            if json {
                println!("{}", to_json(&reports));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        BenchCommand::MicroParty {
            party,
            pki,
            nodes,
            n,
            ops,
        } => {
            micro_party_process(party, &pki, &nodes, n, &select_ops(Some(ops))?)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        BenchCommand::Micro { n, ops, json, .. } => {
            let ops = select_ops(ops)?;
            let bar = progress_bar(ops.len() as u64);
            let reports = micro_inproc(n, &ops, |op| {
                bar.set_message(op.to_string());
                bar.inc(1);
            })
            .context("the in-process micro benchmark failed")?;
            bar.finish_and_clear();
            print_table(
                "in-process (3 threads)",
                n,
                &reports,
                &format!("{} for all three", peak_rss()),
            );
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

fn print_table(setting: &str, n: usize, reports: &[OpReport], rss: &str) {
    println!("kuvert bench micro: n = {n}, {setting}, peak RSS {rss}");
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

/// `micro --net`: generate a PKI, start three party processes, collect their
/// measurements.
fn micro_net(n: usize, ops: &[&'static str]) -> anyhow::Result<(Vec<OpReport>, String)> {
    let dir = tempfile::Builder::new()
        .prefix("kuvert-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let pki = dir.path().join("pki");
    kuvert_net::pki::init(&pki, &kuvert_net::pki::InitOptions::default())
        .context("cannot create the benchmark PKI")?;
    // Free ports on loopback: bind to port 0, note the port, release it.
    let nodes: Vec<SocketAddr> = (0..3)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("cannot find a free port on 127.0.0.1")
        })
        .collect::<anyhow::Result<_>>()?;
    let exe = std::env::current_exe().context("cannot find the kuvert executable")?;
    let node_list = nodes
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    for party in 0..3 {
        let child = Command::new(&exe)
            .args(["bench", "micro-party", "--party", &party.to_string()])
            .arg("--pki")
            .arg(&pki)
            .args([
                "--nodes",
                &node_list,
                "--n",
                &n.to_string(),
                "--ops",
                &ops.join(","),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start party {party}"))?;
        children.push(child);
    }
    let bar = progress_bar(0);
    bar.set_message("three node processes running");
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut per_party = Vec::new();
    let mut rss = Vec::new();
    let mut failures = Vec::new();
    for (party, child) in children.into_iter().enumerate() {
        let out = child
            .wait_with_output()
            .with_context(|| format!("party {party} vanished"))?;
        if !out.status.success() {
            failures.push(format!(
                "party {party} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        per_party.push(
            parse_measures(last)
                .with_context(|| format!("party {party} printed no measurements"))?,
        );
        rss.push(
            serde_json::from_str::<serde_json::Value>(last)
                .ok()
                .and_then(|v| v["peak_rss"].as_str().map(str::to_string))
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    bar.finish_and_clear();
    if !failures.is_empty() {
        bail!(
            "the networked benchmark failed:\n  {}",
            failures.join("\n  ")
        );
    }
    Ok((combine(&per_party), rss.join(" / ")))
}

/// One party of `micro --net`: connect to the other two over TLS, run the
/// micro benchmark, print the measurements as one JSON line.
fn micro_party_process(
    party: usize,
    pki: &std::path::Path,
    nodes: &[SocketAddr],
    n: usize,
    ops: &[&'static str],
) -> anyhow::Result<()> {
    let nodes: [SocketAddr; 3] = nodes
        .try_into()
        .map_err(|_| anyhow::anyhow!("--nodes needs exactly three addresses"))?;
    let tls =
        kuvert_net::NodeTls::load(pki, party).context("cannot load this node's TLS identity")?;
    let transport =
        kuvert_net::TlsTransport::connect(kuvert_net::NetConfig::new(party, nodes, tls))
            .context("cannot connect to the other nodes")?;
    let mut p =
        Party::setup(Box::new(transport), &mut rand_core::OsRng).context("session setup failed")?;
    let measures = micro_party(&mut p, n, ops, |_| {}).context("benchmark failed")?;
    let rows: Vec<serde_json::Value> = measures
        .iter()
        .map(|m| {
            serde_json::json!({
                "op": m.op, "n": m.n, "seconds": m.elapsed.as_secs_f64(),
                "rounds": m.stats.rounds, "bytes_sent": m.stats.bytes_sent,
                "bytes_received": m.stats.bytes_received,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "party": party, "peak_rss": peak_rss(), "ops": rows })
    );
    Ok(())
}

fn parse_measures(line: &str) -> anyhow::Result<Vec<OpMeasure>> {
    let v: serde_json::Value = serde_json::from_str(line)?;
    let ops = v["ops"].as_array().context("no ops")?;
    ops.iter()
        .map(|o| {
            let name = o["op"].as_str().context("op name")?;
            let op = MICRO_OPS
                .iter()
                .find(|m| **m == name)
                .copied()
                .context("unknown op")?;
            Ok(OpMeasure {
                op,
                n: o["n"].as_u64().context("n")? as usize,
                elapsed: Duration::from_secs_f64(o["seconds"].as_f64().context("seconds")?),
                stats: Stats {
                    rounds: o["rounds"].as_u64().context("rounds")?,
                    bytes_sent: o["bytes_sent"].as_u64().context("bytes_sent")?,
                    bytes_received: o["bytes_received"].as_u64().context("bytes_received")?,
                },
            })
        })
        .collect()
}
