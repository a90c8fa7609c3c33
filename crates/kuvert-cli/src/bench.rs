//! `kuvert bench ...`: measurements of rounds, bytes per party and time.

use std::io::IsTerminal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use kuvert_mpc::bench::{
    combine, micro_inproc_secure, micro_party, OpMeasure, OpReport, MICRO_OPS,
};
use kuvert_mpc::Security;
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
    ///
    /// With --malicious the same operations run first semi-honest and then
    /// secure against one malicious party (every AND gate proven, every
    /// product and shuffle pass MAC-checked, every open verified; the
    /// checks are timed with the operation), and a third table gives the
    /// ratios; the JSON line holds the malicious run.
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
        /// Also run the operations secure against one malicious party, next
        /// to the semi-honest baseline of the same run.
        #[arg(long)]
        malicious: bool,
    },
    /// Whole SQL queries through three local node processes (TLS on
    /// 127.0.0.1, fresh nodes per workload), next to the same query in
    /// SQLite (in memory) on the same generated data.
    ///
    /// Workloads (N rows per input table, seeded data, valid identity
    /// numbers):
    ///   psi       the intersection of two identity tables, half
    ///             overlapping, revealed to the recipient
    ///   psi-card  only the size of that intersection
    ///   join      join + GROUP BY sum over a pre-aggregated table
    ///   overlap   persons with overlapping benefit periods (EXISTS with
    ///             interval overlap), count and sum
    ///   sort      ORDER BY of N 64-bit keys
    ///   population (only when named) a 10.5·N-row population register
    ///             (Sweden's 10.5M people at N = 1M) against an N-row
    ///             table: count and sum of the rows whose person is in
    ///             the register (semi-join); for peak memory per node
    ///
    /// Prints per workload: the query's time as the recipient sees it
    /// (upload excluded), rounds, bytes sent per node (the busiest), each
    /// node's peak RSS, SQLite's time and the ratio, and whether the
    /// answers agree. With --json: one JSON object instead.
    ///
    /// With --malicious every workload runs twice on fresh nodes, first
    /// semi-honest, then secure against one malicious node (the same
    /// query, `kuvert run --malicious`), and the ratios of time, bytes and
    /// peak RSS are printed (the issue-17 targets: time at most 3x, RSS at
    /// most 1.5x).
    #[command(verbatim_doc_comment)]
    Query {
        /// Rows per input table.
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        /// Only these workloads (comma-separated): psi, psi-card, join,
        /// overlap, sort, population. SQLite gets an index on every pnr
        /// column.
        #[arg(long, value_delimiter = ',')]
        workloads: Option<Vec<String>>,
        /// Seed of the generated data (the data is not secret; the nodes'
        /// randomness still comes from the OS).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Also run every workload secure against one malicious node, next
        /// to its semi-honest run, and print the ratios.
        #[arg(long)]
        malicious: bool,
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
        #[arg(long)]
        malicious: bool,
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
            malicious,
        } => {
            let ops = select_ops(ops)?;
            let net = "three node processes, TLS 1.3 over 127.0.0.1";
            let (reports, rss) = micro_net(n, &ops, Security::SemiHonest)?;
            print_table(net, n, &reports, &format!("per node {rss}"));
            let mut last = reports.clone();
            if malicious {
                let (mal, rss) = micro_net(n, &ops, Security::Malicious)?;
                println!();
                print_table(
                    &format!("{net}, malicious security"),
                    n,
                    &mal,
                    &format!("per node {rss}"),
                );
                println!();
                print_ratios(&reports, &mal);
                last = mal;
            }
            if !no_compare {
                let local = micro_inproc_secure(n, &ops, Security::SemiHonest, |_| {})
                    .context("the in-process comparison run failed")?;
                println!();
                print_table(
                    "in-process (3 threads), semi-honest, for comparison",
                    n,
                    &local,
                    &format!("{} for all three", peak_rss()),
                );
                println!();
                for (r, l) in reports.iter().zip(&local) {
                    println!(
                        "{:<15} network / in-process throughput: {:>5.1}%",
                        r.op,
                        100.0 * r.per_sec() / l.per_sec()
                    );
                }
            }
            if json {
                println!("{}", to_json(&last));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        BenchCommand::MicroParty {
            party,
            pki,
            nodes,
            n,
            ops,
            malicious,
        } => {
            let security = if malicious {
                Security::Malicious
            } else {
                Security::SemiHonest
            };
            micro_party_process(party, &pki, &nodes, n, &select_ops(Some(ops))?, security)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        BenchCommand::Query {
            rows,
            workloads,
            seed,
            json,
            malicious,
        } => query::run(rows, workloads, seed, json, malicious),
        BenchCommand::Micro {
            n,
            ops,
            json,
            malicious,
            ..
        } => {
            let ops = select_ops(ops)?;
            let modes: &[Security] = if malicious {
                &[Security::SemiHonest, Security::Malicious]
            } else {
                &[Security::SemiHonest]
            };
            let bar = progress_bar((ops.len() * modes.len()) as u64);
            let mut runs = Vec::new();
            for &security in modes {
                let reports = micro_inproc_secure(n, &ops, security, |op| {
                    bar.set_message(format!("{op} ({})", mode_name(security)));
                    bar.inc(1);
                })
                .with_context(|| {
                    format!(
                        "the in-process micro benchmark failed ({})",
                        mode_name(security)
                    )
                })?;
                // The process's peak so far: after the semi-honest run, its
                // own; after the malicious run, the larger of the two.
                runs.push((reports, peak_rss()));
            }
            bar.finish_and_clear();
            for (k, (&security, (reports, rss))) in modes.iter().zip(&runs).enumerate() {
                if k > 0 {
                    println!();
                }
                let rss = if k > 0 {
                    format!("{rss} for all three, over both runs")
                } else {
                    format!("{rss} for all three")
                };
                print_table(
                    &format!("in-process (3 threads), {}", mode_name(security)),
                    n,
                    reports,
                    &rss,
                );
            }
            if malicious {
                println!();
                print_ratios(&runs[0].0, &runs[1].0);
            }
            if json {
                println!("{}", to_json(&runs.last().expect("one run at least").0));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn mode_name(s: Security) -> &'static str {
    match s {
        Security::SemiHonest => "semi-honest",
        Security::Malicious => "malicious security",
    }
}

/// Malicious next to semi-honest, operation by operation.
fn print_ratios(semi: &[OpReport], mal: &[OpReport]) {
    println!(
        "{:<15} {:>22} {:>22}",
        "op", "malicious/semi time", "malicious/semi bytes"
    );
    for (s, m) in semi.iter().zip(mal) {
        println!(
            "{:<15} {:>21.2}x {:>21.3}x",
            s.op,
            m.elapsed.as_secs_f64() / s.elapsed.as_secs_f64().max(1e-9),
            m.bytes_per_elem / s.bytes_per_elem.max(1e-9)
        );
    }
}

/// The operations to measure (every one runs in both modes).
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
        "{:<15} {:>14} {:>10} {:>7} {:>16} {:>16}",
        "op", "elements/s", "time", "rounds", "bytes/elem/party", "max bytes/elem"
    );
    for r in reports {
        println!(
            "{:<15} {:>14.0} {:>9.3}s {:>7} {:>16.1} {:>16.1}",
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
fn micro_net(
    n: usize,
    ops: &[&'static str],
    security: Security,
) -> anyhow::Result<(Vec<OpReport>, String)> {
    let dir = tempfile::Builder::new()
        .prefix("kuvert-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let pki = dir.path().join("pki");
    kuvert_net::pki::init(&pki, &kuvert_net::pki::InitOptions::default())
        .context("cannot create the benchmark PKI")?;
    // Free ports on loopback, below the ephemeral range.
    let nodes: Vec<SocketAddr> = (0..3)
        .map(|_| {
            kuvert_node::local::free_loopback_port().context("cannot find a free port on 127.0.0.1")
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
            .args((security == Security::Malicious).then_some("--malicious"))
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
    security: Security,
) -> anyhow::Result<()> {
    let nodes: [SocketAddr; 3] = nodes
        .try_into()
        .map_err(|_| anyhow::anyhow!("--nodes needs exactly three addresses"))?;
    let tls =
        kuvert_net::NodeTls::load(pki, party).context("cannot load this node's TLS identity")?;
    let transport =
        kuvert_net::TlsTransport::connect(kuvert_net::NetConfig::new(party, nodes, tls))
            .context("cannot connect to the other nodes")?;
    let mut p = Party::setup_with(Box::new(transport), &mut rand_core::OsRng, security)
        .context("session setup failed")?;
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

/// `kuvert bench query`: generated data, fresh local nodes per workload,
/// SQLite beside.
mod query {
    use std::collections::HashSet;
    use std::process::ExitCode;
    use std::time::{Duration, Instant};

    use anyhow::{bail, Context};
    use kuvert_data::value::ymd_from_days;
    use kuvert_node::local::LocalCluster;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;
    use rusqlite::types::Value;

    pub const WORKLOADS: [&str; 5] = ["psi", "psi-card", "join", "overlap", "sort"];
    /// Run only when named: the population-scale memory check.
    pub const EXTRA_WORKLOADS: [&str; 1] = ["population"];

    /// A generated cell.
    #[derive(Clone)]
    enum Cell {
        Int(i64),
        /// 12-digit normalised identity number.
        Idnr(i64),
        /// Days since 1970-01-01.
        Date(i64),
        Text(&'static str),
    }

    impl Cell {
        fn csv(&self) -> String {
            match self {
                Cell::Int(v) => v.to_string(),
                Cell::Idnr(v) => format!("{v:012}"),
                Cell::Date(d) => date(*d),
                Cell::Text(t) => t.to_string(),
            }
        }
        fn sqlite(&self) -> Value {
            match self {
                Cell::Int(v) | Cell::Idnr(v) => Value::Integer(*v),
                Cell::Date(d) => Value::Text(date(*d)),
                Cell::Text(t) => Value::Text(t.to_string()),
            }
        }
    }

    fn date(d: i64) -> String {
        let (y, m, dd) = ymd_from_days(d);
        format!("{y:04}-{m:02}-{dd:02}")
    }

    struct GenTable {
        name: &'static str,
        /// kuvert schema (compact form); SQLite gets INTEGER for int and
        /// idnr, TEXT for date (ISO dates compare correctly as text) and text.
        schema: &'static str,
        rows: Vec<Vec<Cell>>,
    }

    struct Workload {
        name: &'static str,
        sql: &'static str,
        tables: Vec<GenTable>,
    }

    /// `count` distinct valid identity numbers (born 1940-2005), random order.
    fn idnrs(rng: &mut ChaCha20Rng, count: usize) -> Vec<i64> {
        let mut seen = HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let y: i64 = rng.gen_range(1940..=2005);
            let m: i64 = rng.gen_range(1..=12);
            let d: i64 = rng.gen_range(1..=28);
            let n: i64 = rng.gen_range(0..1000);
            let nine = ((y % 100) * 10_000 + m * 100 + d) * 1000 + n;
            let mut digits = [0u8; 9];
            for (i, x) in digits.iter_mut().enumerate() {
                *x = ((nine / 10i64.pow(8 - i as u32)) % 10) as u8;
            }
            let c = kuvert_data::idnr::luhn_check_digit(&digits) as i64;
            let v = ((y * 10_000 + m * 100 + d) * 1000 + n) * 10 + c;
            if seen.insert(v) {
                out.push(v);
            }
        }
        out
    }

    fn workload(name: &'static str, n: usize, rng: &mut ChaCha20Rng) -> Workload {
        let day0 = kuvert_data::value::days_from_ymd(2024, 1, 1);
        match name {
            "psi" | "psi-card" => {
                let pool = idnrs(rng, n + n / 2);
                let a = pool[..n].iter().map(|&p| vec![Cell::Idnr(p)]).collect();
                let mut b: Vec<Vec<Cell>> =
                    pool[n / 2..].iter().map(|&p| vec![Cell::Idnr(p)]).collect();
                b.reverse();
                Workload {
                    name,
                    sql: if name == "psi" {
                        "SELECT a.pnr FROM a WHERE a.pnr IN (SELECT pnr FROM b)"
                    } else {
                        "SELECT COUNT(*) AS n FROM a WHERE a.pnr IN (SELECT pnr FROM b)"
                    },
                    tables: vec![
                        GenTable {
                            name: "a",
                            schema: "pnr:idnr",
                            rows: a,
                        },
                        GenTable {
                            name: "b",
                            schema: "pnr:idnr",
                            rows: b,
                        },
                    ],
                }
            }
            "join" => {
                let pool = idnrs(rng, n + n / 2);
                let a = pool[..n]
                    .iter()
                    .map(|&p| vec![Cell::Idnr(p), Cell::Int(rng.gen_range(0..10))])
                    .collect();
                // b: n rows over the persons pool[n/2..3n/2): about two
                // rows per person, half of them in a.
                let b = (0..n)
                    .map(|_| {
                        let p = pool[rng.gen_range(n / 2..pool.len())];
                        vec![Cell::Idnr(p), Cell::Int(rng.gen_range(-1000..100_000))]
                    })
                    .collect();
                Workload {
                    name,
                    sql: "SELECT a.g, SUM(b.x) AS s FROM a JOIN (SELECT pnr, SUM(x) AS x FROM b GROUP BY pnr) b ON a.pnr = b.pnr GROUP BY a.g",
                    tables: vec![
                        GenTable { name: "a", schema: "pnr:idnr,g:int", rows: a },
                        GenTable { name: "b", schema: "pnr:idnr,x:int", rows: b },
                    ],
                }
            }
            "overlap" => {
                // n/2 persons with benefits, n/2 with assistance, half of
                // each in both; about two periods per person in 2024.
                let pool = idnrs(rng, (n / 2).max(1) + n / 4 + 1);
                let half = (n / 2).max(1);
                let formaner = ["sjukpenning", "foraldrapenning", "aktivitetsersattning"];
                let fk = (0..n)
                    .map(|_| {
                        let p = pool[rng.gen_range(0..half)];
                        let from = day0 + rng.gen_range(0..366);
                        vec![
                            Cell::Idnr(p),
                            Cell::Text(formaner[rng.gen_range(0..3)]),
                            Cell::Date(from),
                            Cell::Date(from + rng.gen_range(0..60)),
                            Cell::Int(rng.gen_range(100..20_000)),
                        ]
                    })
                    .collect();
                let ek = (0..n)
                    .map(|_| {
                        let p = pool[rng.gen_range(n / 4..pool.len())];
                        let from = day0 + rng.gen_range(0..366);
                        vec![
                            Cell::Idnr(p),
                            Cell::Date(from),
                            Cell::Date(from + rng.gen_range(0..31)),
                            Cell::Int(rng.gen_range(500..15_000)),
                        ]
                    })
                    .collect();
                Workload {
                    name,
                    sql: "SELECT COUNT(DISTINCT f.pnr) AS personer, SUM(f.belopp) AS fk_belopp FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till)",
                    tables: vec![
                        GenTable {
                            name: "fk",
                            schema: "pnr:idnr,forman:text,fran:date,till:date,belopp:int",
                            rows: fk,
                        },
                        GenTable {
                            name: "ek",
                            schema: "pnr:idnr,fran:date,till:date,belopp:int",
                            rows: ek,
                        },
                    ],
                }
            }
            "population" => {
                // 10.5 N people in the register; the N-row table names
                // N/2 of them twice (one row per person and period).
                let people = n * 21 / 2;
                let all = idnrs(rng, people + n / 10 + 1);
                let (pool, outsiders) = all.split_at(people);
                let pop = pool
                    .iter()
                    .map(|&p| vec![Cell::Idnr(p), Cell::Int(rng.gen_range(1..=290))])
                    .collect();
                let t = (0..n)
                    .map(|_| {
                        let p = if rng.gen_bool(0.9) {
                            pool[rng.gen_range(0..pool.len())]
                        } else {
                            // not in the register
                            outsiders[rng.gen_range(0..outsiders.len())]
                        };
                        vec![Cell::Idnr(p), Cell::Int(rng.gen_range(0..50_000))]
                    })
                    .collect();
                Workload {
                    name,
                    sql: "SELECT COUNT(*) AS n, SUM(t.x) AS s FROM t WHERE t.pnr IN (SELECT pnr FROM pop)",
                    tables: vec![
                        GenTable { name: "pop", schema: "pnr:idnr,kommun:int", rows: pop },
                        GenTable { name: "t", schema: "pnr:idnr,x:int", rows: t },
                    ],
                }
            }
            _ => {
                let t = (0..n).map(|_| vec![Cell::Int(rng.gen::<i64>())]).collect();
                Workload {
                    name: "sort",
                    // LIMIT N keeps every row; the SQL is fixed text, so the
                    // limit is filled in by `sql_of`.
                    sql: "SELECT k FROM t ORDER BY k LIMIT {N}",
                    tables: vec![GenTable {
                        name: "t",
                        schema: "k:int",
                        rows: t,
                    }],
                }
            }
        }
    }

    fn sql_of(w: &Workload, n: usize) -> String {
        w.sql.replace("{N}", &n.to_string())
    }

    fn to_table(t: &GenTable) -> anyhow::Result<kuvert_data::Table> {
        let schema: kuvert_data::Schema = t.schema.parse()?;
        let mut csv = schema
            .columns()
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(",");
        csv.push('\n');
        for r in &t.rows {
            csv.push_str(&r.iter().map(Cell::csv).collect::<Vec<_>>().join(","));
            csv.push('\n');
        }
        Ok(kuvert_data::read_csv(
            csv.as_bytes(),
            t.name,
            &schema,
            &kuvert_data::CsvOptions::default(),
        )?)
    }

    /// The same query in SQLite (in memory, an index on every `pnr`
    /// column); returns the time of the query alone and its rows
    /// as CSV lines.
    fn sqlite(w: &Workload, sql: &str) -> anyhow::Result<(Duration, Vec<String>)> {
        let db = rusqlite::Connection::open_in_memory()?;
        for t in &w.tables {
            let schema: kuvert_data::Schema = t.schema.parse()?;
            let cols = schema
                .columns()
                .iter()
                .map(|c| {
                    let ty = match c.ty {
                        kuvert_data::ColumnType::Int | kuvert_data::ColumnType::Idnr => "INTEGER",
                        _ => "TEXT",
                    };
                    format!("{} {ty}", c.name)
                })
                .collect::<Vec<_>>()
                .join(", ");
            db.execute_batch(&format!("CREATE TABLE {} ({cols})", t.name))?;
            let marks = vec!["?"; schema.len()].join(",");
            let tx = db.unchecked_transaction()?;
            {
                let mut ins = tx.prepare(&format!("INSERT INTO {} VALUES ({marks})", t.name))?;
                for r in &t.rows {
                    ins.execute(rusqlite::params_from_iter(r.iter().map(Cell::sqlite)))?;
                }
            }
            tx.commit()?;
            // An index on the identity number, as an analyst would make
            // (without it SQLite runs the correlated EXISTS of `overlap`
            // as a nested loop: 372 s at 100 000 rows).
            if schema.index_of("pnr").is_some() {
                db.execute_batch(&format!("CREATE INDEX {0}_pnr ON {0} (pnr)", t.name))?;
            }
        }
        let start = Instant::now();
        let mut stmt = db.prepare(sql)?;
        let width = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                let mut cells = Vec::with_capacity(width);
                for i in 0..width {
                    cells.push(match row.get::<_, Value>(i)? {
                        Value::Null => String::new(),
                        Value::Integer(v) => v.to_string(),
                        Value::Real(v) => v.to_string(),
                        Value::Text(t) => t,
                        Value::Blob(_) => "<blob>".into(),
                    });
                }
                Ok(cells.join(","))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((start.elapsed(), rows))
    }

    struct Report {
        name: &'static str,
        rows_out: usize,
        seconds: f64,
        compute_seconds: f64,
        rounds: u64,
        max_bytes_sent: u64,
        max_bytes_received: u64,
        rss_kib: Vec<Option<u64>>,
        sqlite_seconds: f64,
        agrees: bool,
    }

    fn measure(
        w: &Workload,
        n: usize,
        exe: &std::path::Path,
        malicious: bool,
    ) -> anyhow::Result<Report> {
        let sql = sql_of(w, n);
        let tables = w
            .tables
            .iter()
            .map(|t| Ok((t.name.to_string(), to_table(t)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let cluster = LocalCluster::start(exe)?;
        cluster.upload("bench", &tables)?;
        drop(tables);
        let bar = super::progress_bar(0);
        bar.set_message(format!(
            "{}: computing{}",
            w.name,
            if malicious {
                " (malicious security)"
            } else {
                ""
            }
        ));
        let run = cluster.query_secure("bench", &sql, malicious, |st| {
            if let Some(p) = st.iter().filter_map(|s| s.progress).min_by_key(|p| p.done) {
                bar.set_length(p.total);
                bar.set_position(p.done);
            }
        })?;
        bar.finish_and_clear();
        drop(cluster);
        let stats: Vec<_> = run.stats.iter().flatten().collect();
        if stats.len() != 3 {
            bail!("{}: not every node reported its costs", w.name);
        }
        let mut mpc: Vec<String> = run
            .answer
            .to_csv_string()?
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect();
        let (sqlite_time, mut lite) =
            sqlite(w, &sql).with_context(|| format!("{}: SQLite failed", w.name))?;
        let rows_out = mpc.len();
        mpc.sort();
        lite.sort();
        Ok(Report {
            name: w.name,
            rows_out,
            seconds: run.elapsed.as_secs_f64(),
            compute_seconds: stats.iter().map(|s| s.compute_millis).max().unwrap_or(0) as f64
                / 1000.0,
            rounds: stats.iter().map(|s| s.rounds).max().unwrap_or(0),
            max_bytes_sent: stats.iter().map(|s| s.bytes_sent).max().unwrap_or(0),
            max_bytes_received: stats.iter().map(|s| s.bytes_received).max().unwrap_or(0),
            rss_kib: run
                .stats
                .iter()
                .map(|s| s.and_then(|s| s.peak_rss_kib))
                .collect(),
            sqlite_seconds: sqlite_time.as_secs_f64(),
            agrees: mpc == lite,
        })
    }

    pub fn run(
        n: usize,
        workloads: Option<Vec<String>>,
        seed: u64,
        json: bool,
        malicious: bool,
    ) -> anyhow::Result<ExitCode> {
        let chosen: Vec<&'static str> = match workloads {
            None => WORKLOADS.to_vec(),
            Some(ws) => ws
                .iter()
                .map(|w| {
                    WORKLOADS
                        .iter()
                        .chain(EXTRA_WORKLOADS.iter())
                        .find(|x| **x == w.as_str())
                        .copied()
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "unknown workload {w:?}; choose from {}, {}",
                                WORKLOADS.join(", "),
                                EXTRA_WORKLOADS.join(", ")
                            )
                        })
                })
                .collect::<anyhow::Result<_>>()?,
        };
        if n == 0 {
            bail!("--rows must be at least 1");
        }
        let _ = ctrlc::set_handler(|| {
            kuvert_node::local::abort_all();
            std::process::exit(130);
        });
        let exe = std::env::current_exe().context("cannot find the kuvert executable")?;
        let modes: &[bool] = if malicious { &[false, true] } else { &[false] };
        // Per mode: the reports and the failures.
        let mut runs: Vec<(Vec<Report>, Failures)> = Vec::new();
        for &m in modes {
            let (mut reports, mut failures) = (Vec::new(), Vec::new());
            for name in &chosen {
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                let w = workload(name, n, &mut rng);
                match measure(&w, n, &exe, m) {
                    Ok(r) => reports.push(r),
                    Err(e) => failures.push((*name, format!("{e:#}"))),
                }
            }
            runs.push((reports, failures));
        }
        if json {
            let mut m = serde_json::Map::new();
            let (semi, _) = &runs[0];
            for r in semi {
                let mut o = report_json(r);
                if let Some((mal, _)) = runs.get(1) {
                    if let Some(x) = mal.iter().find(|x| x.name == r.name) {
                        o["malicious"] = report_json(x);
                        o["malicious_over_semi_honest"] = serde_json::json!(ratios(r, x));
                    }
                }
                m.insert(r.name.to_string(), o);
            }
            for (mode, (_, failures)) in runs.iter().enumerate() {
                for (name, e) in failures {
                    let key = if mode == 0 {
                        "error"
                    } else {
                        "malicious_error"
                    };
                    let entry = m.entry(name.to_string()).or_insert(serde_json::json!({}));
                    entry[key] = serde_json::json!(e);
                }
            }
            println!(
                "{}",
                serde_json::json!({ "rows": n, "seed": seed, "workloads": m })
            );
        } else {
            for (mode, (reports, failures)) in runs.iter().enumerate() {
                let security = if mode == 0 {
                    "semi-honest"
                } else {
                    "malicious security"
                };
                if mode > 0 {
                    println!();
                }
                print_table(n, security, reports, failures);
            }
            if let [(semi, _), (mal, _)] = &runs[..] {
                println!();
                println!("malicious / semi-honest, same run (targets: time at most 3x, peak RSS at most 1.5x)");
                println!(
                    "{:<9} {:>8} {:>8} {:>8} {:>8}",
                    "workload", "time", "rounds", "bytes", "RSS"
                );
                for r in semi {
                    if let Some(x) = mal.iter().find(|x| x.name == r.name) {
                        let q = ratios(r, x);
                        println!(
                            "{:<9} {:>7.2}x {:>7.1}x {:>7.2}x {:>7.2}x",
                            r.name, q.time, q.rounds, q.bytes, q.rss
                        );
                    }
                }
            }
        }
        let bad = runs
            .iter()
            .any(|(r, f)| !f.is_empty() || r.iter().any(|r| !r.agrees));
        if bad {
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Workloads that failed, with the error.
    type Failures = Vec<(&'static str, String)>;

    fn report_json(r: &Report) -> serde_json::Value {
        serde_json::json!({
            "seconds": r.seconds,
            "compute_seconds": r.compute_seconds,
            "rounds": r.rounds,
            "max_bytes_sent_per_node": r.max_bytes_sent,
            "max_bytes_received_per_node": r.max_bytes_received,
            "peak_rss_kib_per_node": r.rss_kib,
            "sqlite_seconds": r.sqlite_seconds,
            "ratio": r.seconds / r.sqlite_seconds.max(1e-9),
            "rows_out": r.rows_out,
            "agrees_with_sqlite": r.agrees,
        })
    }

    /// Malicious over semi-honest, of one workload.
    #[derive(serde::Serialize)]
    struct Ratios {
        time: f64,
        rounds: f64,
        bytes: f64,
        /// Of the largest peak RSS of the three nodes.
        rss: f64,
    }

    fn ratios(semi: &Report, mal: &Report) -> Ratios {
        let rss = |r: &Report| r.rss_kib.iter().flatten().copied().max().unwrap_or(0) as f64;
        Ratios {
            time: mal.seconds / semi.seconds.max(1e-9),
            rounds: mal.rounds as f64 / (semi.rounds.max(1)) as f64,
            bytes: mal.max_bytes_sent as f64 / (semi.max_bytes_sent.max(1)) as f64,
            rss: rss(mal) / rss(semi).max(1.0),
        }
    }

    fn print_table(
        n: usize,
        security: &str,
        reports: &[Report],
        failures: &[(&'static str, String)],
    ) {
        println!(
            "kuvert bench query: {n} rows per table, {security}, three node processes, TLS 1.3 over 127.0.0.1, fresh nodes per workload"
        );
        println!(
            "{:<9} {:>9} {:>9} {:>7} {:>14} {:>26} {:>10} {:>9} {:>8} {:>6}",
            "workload",
            "time",
            "compute",
            "rounds",
            "max sent/node",
            "peak RSS per node (MiB)",
            "SQLite",
            "ratio",
            "rows out",
            "agree"
        );
        for r in reports {
            let rss = r
                .rss_kib
                .iter()
                .map(|k| k.map_or("?".to_string(), |k| format!("{:.0}", k as f64 / 1024.0)))
                .collect::<Vec<_>>()
                .join(" / ");
            println!(
                "{:<9} {:>8.3}s {:>8.3}s {:>7} {:>14} {:>26} {:>9.4}s {:>8.0}x {:>8} {:>6}",
                r.name,
                r.seconds,
                r.compute_seconds,
                r.rounds,
                human_bytes(r.max_bytes_sent),
                rss,
                r.sqlite_seconds,
                r.seconds / r.sqlite_seconds.max(1e-9),
                r.rows_out,
                if r.agrees { "yes" } else { "NO" }
            );
        }
        for (name, e) in failures {
            println!("{name:<9} failed: {e}");
        }
    }

    fn human_bytes(b: u64) -> String {
        let b = b as f64;
        if b >= 1e9 {
            format!("{:.2} GB", b / 1e9)
        } else if b >= 1e6 {
            format!("{:.2} MB", b / 1e6)
        } else if b >= 1e3 {
            format!("{:.1} kB", b / 1e3)
        } else {
            format!("{b:.0} B")
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn generated_identity_numbers_are_valid_and_distinct() {
            let mut rng = ChaCha20Rng::seed_from_u64(7);
            let v = idnrs(&mut rng, 500);
            let today = kuvert_data::Date {
                year: 2026,
                month: 11,
                day: 23,
            };
            let set: HashSet<i64> = v.iter().copied().collect();
            assert_eq!(set.len(), 500);
            for p in v {
                assert_eq!(kuvert_data::idnr::parse(&format!("{p:012}"), today), Ok(p));
            }
        }

        #[test]
        fn workloads_have_the_promised_shape_and_sqlite_answers_them() {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let w = workload("psi-card", 40, &mut rng);
            let (_, rows) = sqlite(&w, &sql_of(&w, 40)).unwrap();
            // Half of a's 40 persons are in b.
            assert_eq!(rows, vec!["20".to_string()]);
            for name in WORKLOADS {
                let mut rng = ChaCha20Rng::seed_from_u64(2);
                let w = workload(name, 30, &mut rng);
                for t in &w.tables {
                    assert_eq!(to_table(t).unwrap().rows(), 30, "{name}");
                }
                sqlite(&w, &sql_of(&w, 30)).unwrap();
            }
        }
    }
}
