//! `kuvert coordinator`: the service operator's coordinator (API, console,
//! scheduler). The logic is in kuvert-coord; this only parses flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// `kuvert coordinator`
#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// Directory for the SQLite database (coordinator.db, unless
    /// --database-url) and the audit log audit-coordinator.log. Created if
    /// missing.
    #[arg(long)]
    data_dir: PathBuf,
    /// HTTP address of the API (/api/..., /openapi.json) and the web
    /// console (/). It has no login of its own: keep it on loopback or
    /// behind the operator's authenticating proxy.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// postgres://USER:PASS@HOST/DB to store in PostgreSQL instead of
    /// SQLite (tables are created on start).
    #[arg(long, env = "KUVERT_DATABASE_URL")]
    database_url: Option<String>,
    /// The deployment PKI directory (from `kuvert pki init`); the
    /// coordinator talks to the nodes as party "coordinator"
    /// (party-coordinator.crt/.key).
    #[arg(long, env = "KUVERT_PKI", default_value = "pki")]
    pki: PathBuf,
    /// The three nodes' client addresses, in node order.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<SocketAddr>,
    /// Scheduler period in milliseconds (how often node states are polled).
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// A running job fails when a node stays silent this many seconds.
    #[arg(long, default_value_t = 60)]
    node_timeout_secs: u64,
    /// The differential-privacy budget of each dataset account (a
    /// contributor organisation's table name) when it is first charged:
    /// EPSILON or EPSILON,DELTA. Analyses whose DP outputs would exceed it
    /// are refused before anything is registered at the nodes; see
    /// GET /api/budgets.
    #[arg(long, default_value = "10,1e-6", value_parser = parse_budget)]
    dp_budget: kuvert_dp::ledger::Budget,
    /// Exit when standard input closes: `kuvert demo` starts its
    /// coordinator with this, so that it ends with the demo even if the
    /// demo is killed outright.
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

pub fn run(a: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let Ok(nodes) = <[SocketAddr; 3]>::try_from(a.nodes.clone()) else {
        eprintln!(
            "error: --nodes needs exactly three addresses (node 0, 1, 2), got {}",
            a.nodes.len()
        );
        return Ok(ExitCode::from(2));
    };
    crate::node::init_logging();
    if a.exit_with_parent {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            eprintln!("standard input closed: the starting process is gone; exiting");
            std::process::exit(0);
        });
    }
    let mut config = kuvert_coord::Config::new(a.data_dir, a.pki, nodes);
    config.listen = a.listen;
    config.database_url = a.database_url;
    config.poll_ms = a.poll_ms;
    config.node_timeout_secs = a.node_timeout_secs;
    config.dp_budget = a.dp_budget;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(kuvert_coord::serve(config));
    // Do not wait for a node call still blocked in its connect timeout.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match served {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_user_error() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

fn parse_budget(s: &str) -> Result<kuvert_dp::ledger::Budget, String> {
    let (e, d) = s.split_once(',').unwrap_or((s, "0"));
    let num = |x: &str, what: &str| {
        x.trim()
            .parse::<f64>()
            .map_err(|_| format!("{what} {x:?} is not a number (give EPSILON or EPSILON,DELTA)"))
    };
    let (epsilon, delta) = (num(e, "ε")?, num(d, "δ")?);
    kuvert_dp::accounting::check_eps_delta(epsilon, delta).map_err(|e| e.to_string())?;
    Ok(kuvert_dp::ledger::Budget { epsilon, delta })
}
