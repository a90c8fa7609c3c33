//! # kuvert-coord: the coordinator of the governed service
//!
//! ```text
//!   contributors, recipients, legal officers          operator's machine
//!   ---------------------------------------          ------------------------------
//!   POST /api/analyses (spec TOML)        ----->      kuvert-coord
//!   POST /api/analyses/{id}/approvals     ----->        storage: SQLite file or PostgreSQL
//!   GET  /api/analyses/{id}, console /    <-----        scheduler (tokio task, every poll_ms)
//!                                                       audit-coordinator.log (hash chain)
//!                                                             |  Register, GovRun, GovStatus
//!                                                             v  (TLS, party "coordinator")
//!   kuvert upload / kuvert result  ---------------->  node 0   node 1   node 2
//!   (directly to the nodes; never via the coordinator)
//! ```
//!
//! The coordinator keeps the catalogue of analyses (their spec TOML exactly
//! as submitted, id = the spec's canonical hash), collects and checks the
//! contributors' approvals, registers an approved analysis at the three
//! nodes, starts the run when every node holds every table, and shows where
//! each analysis stands: approvals, per-node job state, deletion receipts,
//! the audit trail. It serves a JSON API (documented in `/openapi.json`) and
//! a server-rendered web console in Swedish and English.
//!
//! Entry points: [`serve`] (what `kuvert coordinator` runs), [`start`] (bind,
//! serve and schedule in-process; tests and `kuvert demo`), and
//! [`Coordinator`] (the router and one scheduler round, for tests that
//! drive the state machine by hand with a fake [`NodeApi`]).
//!
//! # Security
//! - The coordinator is the service operator's, a processor: it **never
//!   holds keys, shares or results**. Uploads and result fetches go from the
//!   parties straight to the nodes; the coordinator only sends `Register`,
//!   `GovRun` and `GovStatus` to them (TLS, PKI party `coordinator`).
//! - It is **not trusted** for the approvals: it checks each approval's
//!   signature when it arrives (to give an early, clear error), but every
//!   node verifies the spec's hash and every approval itself before it
//!   accepts a share. A coordinator that alters a spec or forges an
//!   approval is refused by the nodes (kuvert-node's tests).
//! - Everything it stores is public within the agreement: spec text,
//!   approvals (signatures), node states (names and row counts), deletion
//!   receipts (signed by the nodes) and the audit log (sizes and names,
//!   never values).
//! - It speaks **only HTTPS** (TLS 1.3, [`https`]) and every route but
//!   `/api/health`, `/openapi.json` and the login page needs a principal:
//!   a verified client certificate (its party name), a bearer token from
//!   the access file, or a console session. Roles (submitter, contributor,
//!   recipient, auditor, operator) decide what each may do ([`auth`],
//!   [`api::ROUTES`]); a missing role is a 403 that changes nothing. Even
//!   a principal with every role cannot make a node accept an analysis its
//!   contributors did not sign.
//! - All user text (spec fields, form values) is HTML-escaped in the
//!   console; no page runs scripts.
//! - Never hangs on a node: each node call is bounded by a timeout; a node
//!   silent for longer than `node_timeout_secs` fails a running job with a
//!   message that says which node and what to do.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_gov::{AuditEvent, AuditLog};
use tokio::sync::{watch, Notify};

pub mod api;
pub mod auth;
pub mod budgets;
pub mod console;
pub mod https;
pub mod nodes;
pub mod openapi;
pub mod sched;
pub mod store;

pub use nodes::{BoxFut, NodeApi, NodeError, TlsNodes};
pub use store::{State, Store};

/// Errors of the coordinator. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("{path}: {message}; check that the directory exists and is writable")]
    Io { path: PathBuf, message: String },
    #[error("cannot open the database {url}: {message}; check --database-url (and that the server runs and the user may create tables)")]
    Connect { url: String, message: String },
    #[error("database migration failed: {0}; was the database written by a newer kuvert?")]
    Migrate(String),
    #[error("database error: {0}")]
    Db(String),
    #[error("audit log: {0}")]
    Audit(#[from] kuvert_gov::GovError),
    #[error(
        "cannot listen on {addr}: {message}; choose another --listen address or stop what uses it"
    )]
    Bind { addr: SocketAddr, message: String },
    #[error("cannot reach the nodes as party \"coordinator\": {0}; create the party's TLS identity in the PKI directory (kuvert pki init ... with a party named coordinator) and give it with --pki DIR")]
    Pki(String),
    #[error("the HTTP server failed: {0}")]
    Serve(String),
    #[error("HTTPS: {0}")]
    Tls(String),
    #[error("{0}; fix the access file (docs/service.md#principals-and-roles) and start again")]
    Access(String),
}

impl CoordError {
    /// True when the operator's input (a flag: the PKI directory, the
    /// database URL, the listen address) is at fault: the CLI exits 2.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            CoordError::Pki(_)
                | CoordError::Connect { .. }
                | CoordError::Bind { .. }
                | CoordError::Tls(_)
                | CoordError::Access(_)
        )
    }
}

/// The coordinator's configuration (`kuvert coordinator` flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `coordinator.db` (SQLite, unless `database_url`) and
    /// `audit-coordinator.log`.
    pub data_dir: PathBuf,
    /// HTTPS listen address (API and console).
    pub listen: SocketAddr,
    /// The server certificate (PEM, chain) and its key. Required by
    /// [`start`]: the coordinator serves only HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to; empty:
    /// the deployment CA `pki_dir/ca.crt`, if it exists.
    pub client_ca: Vec<PathBuf>,
    /// The access file: principals' and tokens' roles. None: no global
    /// roles (only those the specs imply).
    pub access: Option<PathBuf>,
    /// `postgres://user:pass@host/db` or `sqlite://FILE`; default
    /// `sqlite://DATA_DIR/coordinator.db` (created).
    pub database_url: Option<String>,
    /// The deployment's PKI directory (`party-coordinator.crt/.key`).
    pub pki_dir: PathBuf,
    /// The federation file: the coordinator reaches node `i` only if it
    /// presents the key the federation lists for it. `None` only for a
    /// development cluster (nodes verified against `pki_dir/ca.crt`).
    pub federation: Option<PathBuf>,
    /// The three nodes' client API addresses.
    pub nodes: [SocketAddr; 3],
    /// Scheduler period in milliseconds.
    pub poll_ms: u64,
    /// A running job whose node stays silent this long fails. Each single
    /// node call also times out after min(this, 10) seconds.
    pub node_timeout_secs: u64,
}

impl Config {
    /// Defaults for everything but the data dir, the PKI and the nodes.
    pub fn new(data_dir: PathBuf, pki_dir: PathBuf, nodes: [SocketAddr; 3]) -> Config {
        Config {
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            client_ca: Vec::new(),
            access: None,
            database_url: None,
            pki_dir,
            federation: None,
            nodes,
            poll_ms: 1000,
            node_timeout_secs: 60,
        }
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("coordinator.db").display()
            ),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) nodes: Arc<dyn NodeApi>,
    pub(crate) audit: Mutex<AuditLog>,
    pub(crate) audit_path: PathBuf,
    pub(crate) node_addrs: [SocketAddr; 3],
    pub(crate) node_timeout_secs: u64,
    pub(crate) poll: Duration,
    pub(crate) wake: Notify,
    /// Each node's receipt-signing key from the PKI directory
    /// (`node-<i>.gov.pub`), when present.
    pub(crate) receipt_keys: [Option<ed25519_dalek::VerifyingKey>; 3],
    pub(crate) auth: auth::AuthState,
    /// The federation's three nodes as a spec names them (`[[nodes]]`),
    /// filled into specs made from templates in the console.
    pub(crate) spec_nodes: Option<Vec<kuvert_gov::spec::SpecNode>>,
}

/// A coordinator: storage, node access and audit log. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Coordinator {{ nodes: {:?} }}", self.inner.node_addrs)
    }
}

impl Coordinator {
    /// Open the data dir, the database (running migrations) and the audit
    /// log; talk to the nodes through `nodes`.
    pub async fn open(config: &Config, nodes: Arc<dyn NodeApi>) -> Result<Coordinator, CoordError> {
        let access = match &config.access {
            Some(p) => auth::Access::load(p).map_err(CoordError::Access)?,
            None => auth::Access::empty(),
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|e| CoordError::Io {
            path: config.data_dir.clone(),
            message: e.to_string(),
        })?;
        let federation = match &config.federation {
            Some(f) => Some(
                kuvert_net::Federation::load_verified(f)
                    .map_err(|e| CoordError::Pki(e.to_string()))?,
            ),
            None => None,
        };
        let store = Store::open(&config.database_url()).await?;
        let audit_path = config.data_dir.join("audit-coordinator.log");
        let audit = AuditLog::open(&audit_path)?;
        Ok(Coordinator {
            inner: Arc::new(Inner {
                store,
                nodes,
                audit: Mutex::new(audit),
                audit_path,
                node_addrs: config.nodes,
                node_timeout_secs: config.node_timeout_secs.max(1),
                poll: Duration::from_millis(config.poll_ms.max(10)),
                wake: Notify::new(),
                receipt_keys: match &federation {
                    // The federation lists each node's receipt key.
                    Some(f) => {
                        [0, 1, 2].map(|i| kuvert_gov::spec::parse_ed25519(&f.nodes[i].signing_key))
                    }
                    None => [0, 1, 2].map(|i| receipt_key(&config.pki_dir, i)),
                },
                spec_nodes: federation.as_ref().map(kuvert_node::operators::spec_nodes),
                auth: auth::AuthState::new(access),
            }),
        })
    }

    /// The storage (tests look inside).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The audit log file.
    pub fn audit_path(&self) -> &std::path::Path {
        &self.inner.audit_path
    }

    /// The coordinator's audit head: records so far and the last hash.
    pub(crate) fn audit_head(&self) -> Result<kuvert_gov::receipt::AuditHead, CoordError> {
        let log = self
            .inner
            .audit
            .lock()
            .map_err(|_| CoordError::Db("audit log lock poisoned".into()))?;
        let (records, hash) = log.head();
        Ok(kuvert_gov::receipt::AuditHead {
            records,
            hash: hash.to_string(),
        })
    }

    pub(crate) fn audit(&self, ev: AuditEvent) -> Result<(), CoordError> {
        let mut log = self
            .inner
            .audit
            .lock()
            .map_err(|_| CoordError::Db("audit log lock poisoned".into()))?;
        log.append(ev)?;
        Ok(())
    }

    /// Make the scheduler run a round now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The scheduler loop: a round every `poll_ms` (or when woken) until
    /// `stop` turns true.
    pub async fn run_scheduler(&self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            if let Err(e) = self.tick().await {
                tracing::warn!("scheduler round: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.inner.poll) => {}
                _ = self.inner.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// A coordinator serving on a bound address, with its scheduler.
pub struct Running {
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    pub coordinator: Coordinator,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    scheduler: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Running {{ addr: {} }}", self.addr)
    }
}

impl Running {
    /// Stop serving and scheduling; wait for both to end and close the
    /// database.
    pub async fn stop(self) -> Result<(), CoordError> {
        let _ = self.stop.send(true);
        let _ = self.scheduler.await;
        let r = self.server.await;
        self.coordinator.inner.store.close().await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CoordError::Serve(e.to_string())),
            Err(e) => Err(CoordError::Serve(e.to_string())),
        }
    }

    /// Wait until the server ends (it ends only when stopped or failed).
    pub async fn wait(&mut self) -> Result<(), CoordError> {
        match (&mut self.server).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CoordError::Serve(e.to_string())),
            Err(e) => Err(CoordError::Serve(e.to_string())),
        }
    }
}

/// Open the coordinator, bind `config.listen` (port 0 picks a free port),
/// and serve the API and console over HTTPS and run the scheduler in the
/// background.
pub async fn start(config: &Config, nodes: Arc<dyn NodeApi>) -> Result<Running, CoordError> {
    let tls = https::server_config(config)?;
    let coordinator = Coordinator::open(config, nodes).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CoordError::Bind {
            addr: config.listen,
            message: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| CoordError::Bind {
        addr: config.listen,
        message: e.to_string(),
    })?;
    let (stop, rx) = watch::channel(false);
    let app = api::router(coordinator.clone());
    let server = tokio::spawn(https::serve(listener, tls, app, rx.clone()));
    let c = coordinator.clone();
    let scheduler = tokio::spawn(async move { c.run_scheduler(rx).await });
    Ok(Running {
        addr,
        coordinator,
        stop,
        server,
        scheduler,
    })
}

/// `kuvert coordinator`: serve with the real nodes until Ctrl-C.
pub async fn serve(config: Config) -> Result<(), CoordError> {
    // A round bounds each node call by min(node_timeout_secs, 10) s; a
    // third of that for each of connect, handshake and answer keeps the
    // per-node errors (which name the node) inside that bound.
    let per_stage = (config.node_timeout_secs.clamp(1, 10) / 3).max(1);
    let nodes = TlsNodes::new(
        &config.pki_dir,
        config.federation.as_deref(),
        config.nodes,
        Duration::from_secs(per_stage),
    )
    .map_err(CoordError::Pki)?;
    let mut running = start(&config, Arc::new(nodes)).await?;
    eprintln!(
        "kuvert coordinator: API and console on https://{} (database {}, audit log {})",
        running.addr,
        store::redact(&config.database_url()),
        running.coordinator.audit_path().display()
    );
    let cas = https::client_cas(&config);
    if cas.is_empty() {
        eprintln!("  client certificates: none accepted (no --client-ca, no PKI ca.crt); bearer tokens only");
    } else {
        let list: Vec<String> = cas.iter().map(|p| p.display().to_string()).collect();
        eprintln!("  client certificates: those issued by {}", list.join(", "));
    }
    match &config.access {
        Some(p) => eprintln!("  roles: {}", p.display()),
        None => eprintln!(
            "  roles: no --access file, so nobody may submit, audit or operate; parties have only \
             the roles their analyses' specs give them"
        ),
    }
    tokio::select! {
        r = running.wait() => r,
        _ = tokio::signal::ctrl_c() => running.stop().await,
    }
}

/// Node `i`'s deletion-receipt key: `pki_dir/node-<i>.gov.pub` (or
/// `node-<i>.gov.key.pub`), a kuvert-gov public key file.
fn receipt_key(pki_dir: &std::path::Path, i: usize) -> Option<ed25519_dalek::VerifyingKey> {
    [format!("node-{i}.gov.pub"), format!("node-{i}.gov.key.pub")]
        .iter()
        .map(|f| pki_dir.join(f))
        .find(|p| p.exists())
        .and_then(|p| kuvert_gov::PublicKeys::load(&p).ok())
        .and_then(|k| k.verifying_key().ok())
}

/// How a deletion receipt checks against the node's key in the PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptCheck {
    /// Signed by the node's key from `node-<i>.gov.pub`.
    Valid,
    /// Does not verify against that key: forged, altered, or a wrong key.
    Invalid,
    /// The PKI directory has no key for that node: not checked here.
    NoKey,
}

impl Coordinator {
    /// Check a receipt against its node's key from the PKI directory.
    pub fn check_receipt(&self, r: &kuvert_gov::DeletionReceipt) -> ReceiptCheck {
        match self
            .inner
            .receipt_keys
            .get(r.node as usize)
            .and_then(|k| k.as_ref())
        {
            None => ReceiptCheck::NoKey,
            Some(k) => {
                if r.verify(k).is_ok() {
                    ReceiptCheck::Valid
                } else {
                    ReceiptCheck::Invalid
                }
            }
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn fmt_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
