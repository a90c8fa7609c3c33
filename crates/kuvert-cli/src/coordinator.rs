//! `kuvert coordinator`: the service's coordinator (catalogue, approvals,
//! scheduling, status, web console). It holds no keys, shares or results.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Args;

/// `kuvert coordinator --data-dir DIR --pki DIR --nodes A,B,C`
#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// Where the coordinator keeps its SQLite database (coordinator.db, when
    /// no --database-url is given) and its audit log (audit-coordinator.log).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address of the HTTP API and the web console.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PostgreSQL instead of SQLite, e.g. postgres://user:pass@host/db.
    #[arg(long, env = "KUVERT_DATABASE_URL")]
    database_url: Option<String>,
    /// The deployment PKI directory with ca.crt and the coordinator's client
    /// certificate party-coordinator.crt/.key (it talks TLS to the nodes).
    #[arg(long, env = "KUVERT_PKI")]
    pki: PathBuf,
    /// The three nodes' client addresses, in node order.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<SocketAddr>,
    /// How often the scheduler asks the nodes where jobs stand (ms).
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// A running job whose node has not answered for this long fails
    /// (with a clear status) instead of waiting forever.
    #[arg(long, default_value_t = 120)]
    node_timeout_secs: u64,
    /// Exit when standard input closes (used by `kuvert demo`).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

pub fn run(a: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    crate::node::init_logging();
    let nodes: [SocketAddr; 3] = a
        .nodes
        .clone()
        .try_into()
        .map_err(|_| anyhow!("--nodes needs exactly three addresses, in node order"))?;
    if a.exit_with_parent {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            eprintln!("standard input closed: the starting process is gone; exiting");
            std::process::exit(0);
        });
    }
    let config = kuvert_coord::Config {
        data_dir: a.data_dir,
        listen: a.listen,
        database_url: a.database_url,
        pki_dir: a.pki,
        nodes,
        poll_ms: a.poll_ms,
        node_timeout_secs: a.node_timeout_secs,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(kuvert_coord::serve(config))?;
    Ok(ExitCode::SUCCESS)
}
