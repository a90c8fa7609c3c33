//! `kuvert coordinator`: the service operator's coordinator (API, console,
//! scheduler), over HTTPS with authenticated roles; `kuvert coordinator
//! token` mints a bearer token for the access file. The logic is in
//! kuvert-coord; this only parses flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// `kuvert coordinator`
#[derive(Args, Debug)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct CoordinatorArgs {
    #[command(subcommand)]
    command: Option<CoordinatorCommand>,
    /// Directory for the SQLite database (coordinator.db, unless
    /// --database-url) and the audit log audit-coordinator.log. Created if
    /// missing.
    #[arg(long, required = true)]
    data_dir: Option<PathBuf>,
    /// HTTPS address of the API (/api/..., /openapi.json) and the web
    /// console (/).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The coordinator's TLS server certificate (PEM, with any intermediate
    /// CAs), e.g. from `kuvert pki request --server` and `kuvert pki sign
    /// --server`. Required: the coordinator serves only HTTPS.
    #[arg(long, env = "KUVERT_COORDINATOR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, env = "KUVERT_COORDINATOR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A CA certificate (PEM) that issues the parties' client certificates;
    /// repeat for several. A verified certificate's party name (its CN) is
    /// the principal. Default: the PKI directory's ca.crt.
    #[arg(long)]
    client_ca: Vec<PathBuf>,
    /// The access file (TOML): the principals' ([[principal]], by client
    /// certificate party name) and the bearer tokens' ([[token]]) roles:
    /// submitter, contributor, recipient, auditor, operator. Without it
    /// nobody may submit, audit or operate; see docs/service.md.
    #[arg(long, env = "KUVERT_COORDINATOR_ACCESS")]
    access: Option<PathBuf>,
    /// postgres://USER:PASS@HOST/DB to store in PostgreSQL instead of
    /// SQLite (tables are created on start).
    #[arg(long, env = "KUVERT_DATABASE_URL")]
    database_url: Option<String>,
    /// The deployment PKI directory (from `kuvert pki init`); the
    /// coordinator talks to the nodes as party "coordinator"
    /// (party-coordinator.crt/.key).
    #[arg(long, env = "KUVERT_PKI", default_value = "pki")]
    pki: PathBuf,
    /// The federation file signed by the three node operators: the
    /// coordinator reaches node i only if it presents the key listed for
    /// it, and takes the nodes' addresses from it (unless --nodes).
    #[arg(long, env = "KUVERT_FEDERATION", required_unless_present = "nodes")]
    federation: Option<PathBuf>,
    /// The three nodes' client addresses, in node order (default: the
    /// federation's). Without --federation (a development cluster), the
    /// nodes are verified against the PKI's ca.crt instead.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<SocketAddr>,
    /// Scheduler period in milliseconds (how often node states are polled).
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// A running job fails when a node stays silent this many seconds.
    #[arg(long, default_value_t = 60)]
    node_timeout_secs: u64,
    /// Removed: privacy budgets are set by each contributor and kept by
    /// the nodes (`kuvert budget set`); given, the coordinator says so and
    /// stops.
    #[arg(long, hide = true)]
    dp_budget: Option<String>,
    /// Exit when standard input closes: `kuvert demo` starts its
    /// coordinator with this, so that it ends with the demo even if the
    /// demo is killed outright.
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

#[derive(Subcommand, Debug)]
enum CoordinatorCommand {
    /// Make a new bearer token: prints the token once (give it to its
    /// holder; it is not stored anywhere) and the [[token]] entry with its
    /// SHA-256 to add to the access file (then restart the coordinator).
    Token {
        /// The token's name: the principal it stands for (shown in the
        /// console and written to the audit log).
        #[arg(long)]
        name: String,
        /// Its roles, comma-separated: submitter, contributor, recipient,
        /// auditor, operator.
        #[arg(long, required = true)]
        roles: String,
    },
}

fn token(name: &str, roles: &str) -> anyhow::Result<ExitCode> {
    let roles = match kuvert_coord::auth::parse_roles(roles) {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            eprintln!("error: --roles names no role");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: --roles: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if name.trim().is_empty() || name.len() > 100 {
        eprintln!("error: --name needs 1 to 100 characters");
        return Ok(ExitCode::from(2));
    }
    let t = kuvert_coord::auth::new_token();
    println!("{t}");
    // As TOML comments, so that `2>>access.toml` appends a valid entry.
    eprintln!(
        "# The token is on standard output, printed only this once: give it to {name:?}\n\
         # (console login, or KUVERT_COORDINATOR_TOKEN for kuvert). Add this entry to the\n\
         # coordinator's access file and restart the coordinator:"
    );
    eprint!(
        "{}",
        kuvert_coord::auth::token_stanza(name.trim(), &roles, &t)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    if let Some(CoordinatorCommand::Token { name, roles }) = &a.command {
        return token(name, roles);
    }
    let Some(data_dir) = a.data_dir.clone() else {
        eprintln!("error: --data-dir is required");
        return Ok(ExitCode::from(2));
    };
    if a.tls_cert.is_none() || a.tls_key.is_none() {
        eprintln!(
            "error: the coordinator serves only HTTPS and needs --tls-cert and --tls-key.\n\
             To {}",
            kuvert_coord::https::MAKE_CERT_HELP
        );
        return Ok(ExitCode::from(2));
    }
    let from_federation = match (&a.federation, a.nodes.is_empty()) {
        (Some(f), true) => {
            let fed = kuvert_net::Federation::load_verified(f)?;
            fed.api_addrs()?.to_vec()
        }
        _ => a.nodes.clone(),
    };
    let Ok(nodes) = <[SocketAddr; 3]>::try_from(from_federation) else {
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
    let mut config = kuvert_coord::Config::new(data_dir, a.pki, nodes);
    config.tls_cert = a.tls_cert;
    config.tls_key = a.tls_key;
    config.client_ca = a.client_ca;
    config.access = a.access;
    config.federation = a.federation;
    config.listen = a.listen;
    config.database_url = a.database_url;
    config.poll_ms = a.poll_ms;
    config.node_timeout_secs = a.node_timeout_secs;
    if a.dp_budget.is_some() {
        anyhow::bail!(
            "--dp-budget is gone: the coordinator no longer sets or keeps privacy budgets. Each \
             contributor signs a limit per dataset (`kuvert budget set`) and the three nodes keep \
             and enforce it; GET /api/budgets shows what the nodes report"
        );
    }
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
