//! `kuvert node`, `kuvert upload`, `kuvert job`, `kuvert fetch`: running a
//! compute node, and the contributor's and recipient's commands.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use kuvert_data::{CsvOptions, Schema};
use kuvert_node::client::Nodes;
use kuvert_node::config::NodeConfig;
use kuvert_node::wire::{JobState, Program};

/// `kuvert node --config node.toml`
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's configuration (see docs/deployment.md for every key).
    #[arg(long)]
    config: PathBuf,
    /// Exit when standard input closes: `kuvert run` starts its local nodes
    /// with this, so that they end with it even if it is killed outright.
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

/// Who the client is and where the nodes are.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The deployment PKI directory holding ca.crt and this party's
    /// certificate and key (from `kuvert pki init`).
    #[arg(long)]
    pki: PathBuf,
    /// This party's name (its certificate's name in the PKI).
    #[arg(long = "as")]
    party: String,
    /// The three nodes' client addresses, in node order.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<SocketAddr>,
}

impl ClientArgs {
    fn nodes(&self) -> anyhow::Result<Nodes> {
        let addrs: [SocketAddr; 3] = self
            .nodes
            .clone()
            .try_into()
            .map_err(|_| anyhow!("--nodes needs three addresses"))?;
        Ok(Nodes::new(&self.pki, &self.party, addrs)?)
    }
}

/// `kuvert upload`
#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The analysis id (governed service): the spec is fetched from the
    /// coordinator and checked against this id, each table is validated
    /// against the spec's schema, shared on this machine, and each node gets
    /// only its shares, signed with --key.
    #[arg(conflicts_with_all = ["job", "schema", "nodes"])]
    id: Option<String>,
    /// NAME=PATH.csv: the table's name (in the spec, or in the job) and the
    /// CSV file. Repeat for several tables.
    #[arg(long, required = true)]
    table: Vec<String>,
    /// Your key file (from `kuvert keygen`); it signs the shares.
    #[arg(long, required_unless_present = "job")]
    key: Option<PathBuf>,
    #[command(flatten)]
    coord: crate::service::CoordArgs,
    /// The deployment PKI directory with ca.crt and this party's TLS
    /// certificate and key.
    #[arg(long, env = "KUVERT_PKI")]
    pki: PathBuf,
    /// This party's name in the PKI (default with --key: the key's name).
    #[arg(long = "as", required_unless_present = "key")]
    party: Option<String>,
    /// Without a coordinator: the job the table belongs to.
    #[arg(long, requires_all = ["schema", "nodes"])]
    job: Option<String>,
    /// Without a coordinator: the declared schema, e.g.
    /// "pnr:idnr,fran:date,till:date,belopp:int" (types: int, date, bool,
    /// idnr, text).
    #[arg(long)]
    schema: Option<String>,
    /// Without a coordinator: the three nodes' client addresses, in order.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<SocketAddr>,
    /// CSV field delimiter (use ';' for Swedish spreadsheet exports).
    #[arg(long, default_value = ",")]
    delimiter: char,
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Start a program on all three nodes and wait for it.
    Run {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        job: String,
        /// sum:TABLE.COLUMN | count-below:TABLE.COLUMN:LIMIT |
        /// noisy-sum:TABLE.COLUMN:LO:HI:EPSILON:DELTA (DP noise added inside
        /// the MPC by the nodes) | soak:ROUNDS:N | query:SQL (a SQL query
        /// over the job's tables, see docs/sql.md; `kuvert fetch` prints
        /// its answer as CSV)
        #[arg(long)]
        program: String,
        /// The party that may fetch the result.
        #[arg(long)]
        recipient: String,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Show the job's state on each node.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        job: String,
    },
}

/// `kuvert fetch`
#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[arg(long)]
    job: String,
}

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let cfg = NodeConfig::load(&args.config).map_err(|e| anyhow!(e))?;
    if args.exit_with_parent {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            eprintln!("standard input closed: the starting process is gone; exiting");
            std::process::exit(0);
        });
    }
    let node = kuvert_node::server::Node::new(cfg).map_err(|e| anyhow!(e))?;
    node.serve().map_err(|e| anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}

pub fn upload(args: UploadArgs) -> anyhow::Result<ExitCode> {
    if let Some(id) = &args.id {
        let key = args.key.as_deref().expect("clap requires --key");
        let tls = crate::service::PartyTlsArgs {
            pki: args.pki.clone(),
            party: args.party.clone(),
        };
        return crate::service::upload(id, &args.table, key, args.delimiter, &args.coord, &tls);
    }
    let (Some(job), Some(schema), Some(party)) = (&args.job, &args.schema, &args.party) else {
        bail!("give an analysis id (governed service), or --job, --schema, --as and --nodes");
    };
    let [table] = args.table.as_slice() else {
        bail!("without an analysis id, upload one --table at a time");
    };
    let (name, path) = table
        .split_once('=')
        .ok_or_else(|| anyhow!("--table must be NAME=PATH.csv, got {table:?}"))?;
    let schema =
        Schema::parse_compact(schema).with_context(|| format!("bad --schema {schema:?}"))?;
    let opts = CsvOptions {
        delimiter: args.delimiter as u8,
        ..CsvOptions::default()
    };
    let table = match kuvert_data::read_csv_file(std::path::Path::new(path), &schema, &opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}\nNothing was sent. Fix the file and upload again.");
            return Ok(ExitCode::from(2));
        }
    };
    let client = ClientArgs {
        pki: args.pki.clone(),
        party: party.clone(),
        nodes: args.nodes.clone(),
    };
    let nodes = client.nodes()?;
    for m in nodes.upload(job, name, &table)? {
        println!("{m}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn job(cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Run {
            client,
            job,
            program,
            recipient,
            timeout,
        } => {
            let program = parse_program(&program)?;
            let nodes = client.nodes()?;
            nodes.run(&job, &program, &recipient)?;
            let spinner = std::io::stderr().is_terminal().then(|| {
                let s = indicatif::ProgressBar::new_spinner();
                s.enable_steady_tick(Duration::from_millis(120));
                s
            });
            let r = nodes.wait(&job, Duration::from_secs(timeout), |states| {
                if let Some(s) = &spinner {
                    s.set_message(summary(states));
                }
            });
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            r?;
            println!(
                "job {job} done on all three nodes; the recipient {recipient} can fetch the result"
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Status { client, job } => {
            let nodes = client.nodes()?;
            for i in 0..3 {
                match nodes.status(i, &job) {
                    Ok(s) => println!("node {i}: {}", describe(&s)),
                    Err(e) => println!("node {i}: {e}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let nodes = args.client.nodes()?;
    let values = match nodes.fetch(&args.job) {
        Err(kuvert_node::client::ClientError::IsTable { .. }) => {
            let table = nodes.fetch_table(&args.job)?;
            table.write_csv(std::io::stdout().lock())?;
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    println!("value");
    for v in values {
        println!("{}", v as i64);
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_program(s: &str) -> anyhow::Result<Program> {
    if let Some(sql) = s.strip_prefix("query:") {
        return Ok(Program::Query {
            sql: sql.to_string(),
            malicious: false,
        });
    }
    let parts: Vec<&str> = s.split(':').collect();
    let tc = |x: &str| -> anyhow::Result<(String, String)> {
        let (t, c) = x
            .split_once('.')
            .ok_or_else(|| anyhow!("expected TABLE.COLUMN, got {x:?}"))?;
        Ok((t.to_string(), c.to_string()))
    };
    Ok(match parts.as_slice() {
        ["sum", x] => {
            let (table, column) = tc(x)?;
            Program::Sum { table, column }
        }
        ["count-below", x, limit] => {
            let (table, column) = tc(x)?;
            let limit = limit
                .parse()
                .with_context(|| format!("limit {limit:?} is not an integer"))?;
            Program::CountBelow {
                table,
                column,
                limit,
            }
        }
        ["noisy-sum", x, lo, hi, eps, delta] => {
            let (table, column) = tc(x)?;
            Program::NoisySum {
                table,
                column,
                lo: lo.parse().with_context(|| format!("lower bound {lo:?}"))?,
                hi: hi.parse().with_context(|| format!("upper bound {hi:?}"))?,
                epsilon: eps.parse().with_context(|| format!("epsilon {eps:?}"))?,
                delta: delta.parse().with_context(|| format!("delta {delta:?}"))?,
            }
        }
        ["soak", rounds, n] => Program::Soak {
            rounds: rounds.parse().context("soak rounds")?,
            n: n.parse().context("soak size")?,
        },
        _ => bail!(
            "unknown program {s:?}: use sum:TABLE.COLUMN, count-below:TABLE.COLUMN:LIMIT, \
             noisy-sum:TABLE.COLUMN:LO:HI:EPSILON:DELTA, soak:ROUNDS:N or query:SQL"
        ),
    })
}

fn describe(s: &JobState) -> String {
    match s {
        JobState::Waiting { tables } => format!("waiting (tables: {})", tables.join(", ")),
        JobState::Running => "running".into(),
        JobState::Done { recipient, outputs } => {
            format!("done ({outputs} outputs for {recipient})")
        }
        JobState::Failed { reason, .. } => format!("failed: {reason}"),
        JobState::Unknown => "unknown job".into(),
    }
}

fn summary(states: &[JobState]) -> String {
    states
        .iter()
        .enumerate()
        .map(|(i, s)| format!("node {i}: {}", describe(s)))
        .collect::<Vec<_>>()
        .join(" | ")
}

pub(crate) fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("KUVERT_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
