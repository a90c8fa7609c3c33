//! The node daemon: a TLS server for contributors and recipients, and the
//! job runner that joins the other two nodes for each computation.
//!
//! Threads: one accept loop, one thread per client connection, one worker
//! per running job. Jobs run one at a time per node (the MPC listener is
//! the node's single `nodes[id]` address).
//!
//! Without `dev_mode` (the default) a node serves governed analyses only:
//! the ungoverned job requests (`Upload`, `Run`, `Status`, `Fetch`) are
//! refused and logged. Client connections are capped per IP address and in
//! all, and closed after `client_idle_timeout_secs` without a byte.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, BufWriter};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuvert_data::Schema;
use kuvert_mpc::{AShare, Party, Security};
use kuvert_net::pki::PeerIdentity;
use kuvert_net::{NetConfig, NodeTls, TlsTransport};

use crate::config::NodeConfig;
use crate::exec::{self, StoredTable};
use crate::gov::{Gov, MpcLink};
use crate::wire::{
    self, bytes_to_words, check_name, JobState, JobStats, Program, Progress, Request, Response,
};

/// A finished job's result, kept for the recipient only.
enum Output {
    /// Values (one word each) of the fixed programs.
    Values(AShare),
    /// A query's answer.
    Table(kuvert_sql::output::ResultShares),
}

impl Output {
    fn len(&self) -> usize {
        match self {
            Output::Values(v) => v.len(),
            Output::Table(t) => t.rows,
        }
    }
}

/// Everything a node knows about one job.
#[derive(Default)]
struct Job {
    tables: BTreeMap<String, StoredTable>,
    state: Option<JobState>,
    result: Option<(String, Output)>,
    /// A running query's progress.
    progress: Option<Progress>,
    /// The last finished run's costs.
    stats: Option<JobStats>,
}

/// Shared state of a running node.
pub struct Node {
    cfg: NodeConfig,
    tls: NodeTls,
    jobs: Mutex<BTreeMap<String, Job>>,
    /// Held while a job talks to the other nodes.
    mpc: Arc<Mutex<()>>,
    /// The governed analyses (docs/service.md, "Nodes").
    gov: Arc<Gov>,
    /// Set by [`Node::shutdown`].
    stop: AtomicBool,
    /// Where [`Node::serve_on`] listens.
    bound: Mutex<Option<std::net::SocketAddr>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node {{ id: {} }}", self.cfg.id)
    }
}

impl Node {
    /// Load the node's TLS identity and prepare its data directory.
    pub fn new(cfg: NodeConfig) -> Result<Arc<Node>, String> {
        let tls = cfg.tls().map_err(|e| {
            format!(
                "cannot set up node {}'s TLS from {}: {e}",
                cfg.id,
                cfg.pki_dir.display()
            )
        })?;
        let federation = cfg.load_federation()?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            format!(
                "cannot create the data directory {}: {e}",
                cfg.data_dir.display()
            )
        })?;
        let (key, explicit) = match &cfg.signing_key {
            Some(k) => (k.clone(), true),
            None => (crate::gov::signing_key_path(&cfg.pki_dir, cfg.id), false),
        };
        let own_cert = kuvert_net::pki::load_certs(cfg.cert.as_ref().expect("set by load"))
            .map_err(|e| e.to_string())?;
        let own = kuvert_net::pki::spki_fingerprint(&own_cert[0]).map_err(|e| e.to_string())?;
        let pins = crate::gov::NodePins {
            own,
            federation: federation
                .as_ref()
                .map(|f| [0, 1, 2].map(|j| f.nodes[j].fingerprint.clone())),
        };
        let gov = Gov::open(
            cfg.id,
            &cfg.data_dir,
            &key,
            explicit,
            cfg.trusted_keys.as_deref(),
            pins,
        )
        .map_err(|e| format!("node {}: {e}", cfg.id))?;
        if let Some(fed) = &federation {
            let listed = &fed.nodes[cfg.id].signing_key;
            let mine = gov.public_signing_key_hex();
            if *listed != mine {
                return Err(format!(
                    "node {}: its receipt-signing key {} is {mine}, but federation {:?} lists {listed} \
                     for node {}: use the key the federation was made with",
                    cfg.id,
                    key.display(),
                    fed.name,
                    cfg.id
                ));
            }
        }
        // The three nodes' receipt keys, for the signed agreement on a
        // malicious-mode job's outcome: from the federation, or else from
        // the PKI directory (development PKIs hold all three).
        let node_keys: Option<[ed25519_dalek::VerifyingKey; 3]> = match &federation {
            Some(fed) => {
                let keys: Vec<_> = fed
                    .nodes
                    .iter()
                    .filter_map(|n| kuvert_gov::spec::parse_ed25519(&n.signing_key))
                    .collect();
                keys.try_into().ok()
            }
            None => (0..3)
                .map(|j| crate::gov::node_public_key(&cfg.pki_dir, j).ok())
                .collect::<Option<Vec<_>>>()
                .and_then(|v| v.try_into().ok()),
        };
        if let Some(keys) = node_keys {
            if let Err(e) = gov.set_node_keys(keys) {
                if federation.is_some() {
                    return Err(e);
                }
                tracing::warn!(node = cfg.id, error = %e, "the pki_dir's node receipt keys do not include this node's own; malicious-mode analyses will be refused");
            }
        }
        tracing::info!(
            node = cfg.id,
            federation = federation
                .as_ref()
                .map(|f| f.hash_hex())
                .unwrap_or_else(|| "none (dev_mode)".into()),
            "node identity pinned"
        );
        let gov = Arc::new(gov);
        let mpc = Arc::new(Mutex::new(()));
        let link = MpcLink {
            nodes: cfg.nodes,
            tls: tls.clone(),
            io_timeout: Duration::from_secs(cfg.io_timeout_secs),
            connect_timeout: Duration::from_secs(cfg.connect_timeout_secs),
            busy: Arc::clone(&mpc),
        };
        let sweep = Duration::from_secs(cfg.sweep_secs);
        let node = Arc::new(Node {
            cfg,
            tls,
            jobs: Mutex::new(BTreeMap::new()),
            mpc,
            gov: Arc::clone(&gov),
            stop: AtomicBool::new(false),
            bound: Mutex::new(None),
        });
        node.reload()?;
        let g = Arc::clone(&gov);
        std::thread::spawn(move || g.worker(link));
        std::thread::spawn(move || gov.sweeper(sweep));
        Ok(node)
    }

    /// Load the shares stored by earlier runs, so that a restarted node can
    /// take part in a job again without new uploads.
    fn reload(&self) -> Result<(), String> {
        let root = self.cfg.data_dir.join("jobs");
        let Ok(dirs) = std::fs::read_dir(&root) else {
            return Ok(());
        };
        let mut jobs = self.jobs.lock().expect("jobs lock");
        for d in dirs.flatten() {
            let job = d.file_name().to_string_lossy().to_string();
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                let Some(table) = name.strip_suffix(".shares") else {
                    continue;
                };
                if name.starts_with('.') {
                    continue; // an interrupted write; never half-read
                }
                match load_table(&f.path()) {
                    Ok(t) => {
                        tracing::info!(node = self.cfg.id, %job, table, rows = t.rows, "reloaded stored shares");
                        jobs.entry(job.clone())
                            .or_default()
                            .tables
                            .insert(table.to_string(), t);
                    }
                    Err(e) => {
                        tracing::warn!(node = self.cfg.id, file = %f.path().display(), error = %e, "skipping unreadable share file")
                    }
                }
            }
        }
        Ok(())
    }

    /// Serve clients forever.
    pub fn serve(self: &Arc<Node>) -> Result<(), String> {
        let listener = TcpListener::bind(self.cfg.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", self.cfg.listen))?;
        self.serve_on(listener)
    }

    /// Serve clients on an already bound listener, until [`Node::shutdown`].
    ///
    /// One thread per connection, so a slow TLS handshake or a silent
    /// client holds only its own thread. Connections over
    /// `max_connections_per_peer` from one IP address, or over
    /// `max_connections` in all, are closed before the handshake.
    pub fn serve_on(self: &Arc<Node>, listener: TcpListener) -> Result<(), String> {
        if self.cfg.dev_mode {
            tracing::warn!(
                node = self.cfg.id,
                listen = %self.cfg.listen,
                dev_mode = true,
                "node ready in dev mode: it also serves the ungoverned job API (upload, run, \
                 status, fetch by job id) to any party certificate; for throw-away local clusters only"
            );
        } else {
            tracing::info!(
                node = self.cfg.id,
                listen = %self.cfg.listen,
                dev_mode = false,
                "node ready: serves governed analyses only"
            );
        }
        *self.bound.lock().unwrap_or_else(|e| e.into_inner()) = listener.local_addr().ok();
        let limits = Arc::new(ConnLimits::new(
            self.cfg.max_connections_per_peer,
            self.cfg.max_connections,
        ));
        let handshakes = Arc::new(Handshakes::default());
        {
            // Ends once this loop and every client thread are gone.
            let hs = Arc::clone(&handshakes);
            let reaper = std::thread::Builder::new()
                .name(format!("node{}-handshakes", self.cfg.id))
                .spawn(move || {
                    while Arc::strong_count(&hs) > 1 {
                        std::thread::sleep(Duration::from_millis(250));
                        hs.reap();
                    }
                });
            reaper.map_err(|e| format!("cannot start the handshake watchdog: {e}"))?;
        }
        for tcp in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(tcp) = tcp else { continue };
            let Ok(peer) = tcp.peer_addr() else { continue };
            let slot = match limits.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(cap) => {
                    drop(tcp); // closed before any TLS work
                    if let Some(refused) = limits.report_refusal() {
                        tracing::warn!(
                            node = self.cfg.id,
                            peer = %peer,
                            cap,
                            refused,
                            "too many client connections; closed before the handshake \
                             (count: refusals since the last such message)"
                        );
                    }
                    continue;
                }
            };
            let node = Arc::clone(self);
            let hs = Arc::clone(&handshakes);
            let spawned = std::thread::Builder::new()
                .name(format!("node{}-client", self.cfg.id))
                .spawn(move || {
                    let _slot = slot;
                    node.client(tcp, &hs)
                });
            if let Err(e) = spawned {
                tracing::warn!(node = self.cfg.id, peer = %peer, error = %e, "cannot start a client thread; connection closed");
            }
        }
        Ok(())
    }

    /// Stop accepting clients and stop the governed worker and sweeper
    /// (connections already open are served until their clients close).
    /// Everything stored stays on disk; a new [`Node::new`] on the same
    /// configuration reloads it.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.gov.stop();
        let bound = *self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(addr) = bound {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }

    /// The governed side of this node (for tests and operators' tools).
    pub fn gov(&self) -> &Arc<Gov> {
        &self.gov
    }

    fn client(self: Arc<Node>, tcp: TcpStream, handshakes: &Handshakes) {
        let Some(watch) = handshakes.watch(&tcp) else {
            return;
        };
        let accepted = kuvert_net::tls::accept(tcp, &self.tls.server, HANDSHAKE_TIMEOUT);
        handshakes.done(watch);
        let (conn, tcp, who) = match accepted {
            Ok(x) => x,
            Err(_) => return, // refused and logged by accept()
        };
        let name = match who {
            PeerIdentity::Party(name) => name,
            PeerIdentity::Node(i) => {
                tracing::warn!(
                    node = self.cfg.id,
                    peer = i,
                    "a node connected to the client API; refused"
                );
                return;
            }
        };
        // A client that sends nothing (or reads nothing) for this long is
        // disconnected; a flowing upload resets the clock with every read.
        let idle = Duration::from_secs(self.cfg.client_idle_timeout_secs);
        if let Err(e) = kuvert_net::tls::set_timeouts(&tcp, Some(idle)) {
            tracing::warn!(node = self.cfg.id, party = %name, error = %e, "cannot set the idle timeout; closing");
            return;
        }
        let stream = rustls::StreamOwned::new(conn, tcp);
        let mut stream = BufReader::with_capacity(1 << 20, stream);
        loop {
            // Decided from the header alone: a production node refuses an
            // ungoverned request before it receives any payload.
            let dev = self.cfg.dev_mode;
            let max = self.cfg.max_upload_bytes;
            let (req, payload): (Request, Vec<u8>) = match wire::read_msg_checked(
                &mut stream,
                |req: &Request| match ungoverned_kind(req) {
                    Some(kind) if !dev => Err(format!(
                        "this node serves only governed analyses; the ungoverned {kind} request \
                         exists only on a throw-away local cluster (kuvert run, or dev_mode = true \
                         on loopback)"
                    )),
                    _ => Ok(max),
                },
            ) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
                Err(e) if is_timeout(&e) => {
                    tracing::info!(
                        node = self.cfg.id,
                        party = %name,
                        idle_secs = idle.as_secs(),
                        "client idle for too long; disconnected"
                    );
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    tracing::warn!(
                        node = self.cfg.id,
                        party = %name,
                        reason = %e,
                        "ungoverned request refused before its payload; closing"
                    );
                    let _ = wire::write_msg(
                        &mut BufWriter::new(stream.get_mut()),
                        &Response::Error {
                            message: format!("node {}: {e}", self.cfg.id),
                        },
                        &[],
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(node = self.cfg.id, party = %name, error = %e, "bad request; closing");
                    let _ = wire::write_msg(
                        &mut BufWriter::new(stream.get_mut()),
                        &Response::Error {
                            message: e.to_string(),
                        },
                        &[],
                    );
                    return;
                }
            };
            let (resp, out) = self.handle(&name, req, payload);
            if wire::write_msg(stream.get_mut(), &resp, &out).is_err() {
                return;
            }
        }
    }

    fn handle(
        self: &Arc<Node>,
        party: &str,
        req: Request,
        payload: Vec<u8>,
    ) -> (Response, Vec<u8>) {
        let err = |m: String| (Response::Error { message: m }, Vec::new());
        if let Some(kind) = ungoverned_kind(&req) {
            if !self.cfg.dev_mode {
                tracing::warn!(
                    node = self.cfg.id,
                    party,
                    request = kind,
                    "ungoverned request refused: this node serves governed analyses only"
                );
                return err(format!(
                    "node {} serves only governed analyses (register an approved analysis through \
                     the coordinator); the ungoverned job API ({kind} by job id) is for throw-away \
                     local clusters: use `kuvert run`, or dev_mode = true in node.toml of a \
                     loopback-only cluster",
                    self.cfg.id
                ));
            }
        }
        match req {
            Request::Register { spec, approvals } => {
                ok_or(self.gov.register(party, &spec, &approvals))
            }
            Request::GovUpload {
                analysis,
                contributor,
                table,
                schema,
                rows,
                signature,
            } => ok_or(self.gov.upload(
                party,
                &analysis,
                &contributor,
                &table,
                &schema,
                rows,
                &signature,
                payload,
            )),
            Request::GovRun {
                analysis,
                coordinator_head,
            } => ok_or(self.gov.run(party, &analysis, coordinator_head.as_ref())),
            Request::GovBudget { limit } => ok_or(self.gov.set_budget(party, &limit)),
            Request::GovLedger { contributor_key } => {
                let accounts = self.gov.ledger(contributor_key.as_deref());
                (
                    Response::Ledger {
                        node: self.cfg.id,
                        accounts: accounts.len() as u64,
                    },
                    serde_json::to_vec(&accounts).unwrap_or_default(),
                )
            }
            Request::GovStatus { analysis } => match self.gov.status(&analysis) {
                Ok(st) => (Response::GovStatus(Box::new(st)), Vec::new()),
                Err(e) => err(e.to_string()),
            },
            Request::GovFetch {
                analysis,
                recipient,
            } => match self.gov.fetch(party, &analysis, &recipient) {
                Ok(boxes) => (
                    Response::Sealed {
                        node: self.cfg.id,
                        outputs: boxes.len() as u64,
                    },
                    serde_json::to_vec(&boxes).unwrap_or_default(),
                ),
                Err(e) => {
                    tracing::warn!(node = self.cfg.id, party, error = %e, "sealed results refused");
                    err(e.to_string())
                }
            },
            Request::Upload {
                job,
                table,
                schema,
                rows,
            } => match self.upload(party, &job, &table, &schema, rows, payload) {
                Ok(m) => (Response::Ok { message: m }, Vec::new()),
                Err(m) => err(m),
            },
            Request::Run {
                job,
                program,
                recipient,
            } => match self.start(party, &job, program, recipient) {
                Ok(m) => (Response::Ok { message: m }, Vec::new()),
                Err(m) => err(m),
            },
            Request::Status { job } => {
                let jobs = self.jobs.lock().expect("jobs lock");
                let (state, progress, stats) = match jobs.get(&job) {
                    None => (JobState::Unknown, None, None),
                    Some(j) => (
                        j.state.clone().unwrap_or(JobState::Waiting {
                            tables: j.tables.keys().cloned().collect(),
                        }),
                        j.progress,
                        j.stats,
                    ),
                };
                (
                    Response::Status {
                        node: self.cfg.id,
                        job,
                        state,
                        progress,
                        stats,
                    },
                    Vec::new(),
                )
            }
            Request::Fetch { job } => {
                let jobs = self.jobs.lock().expect("jobs lock");
                match jobs.get(&job).and_then(|j| j.result.as_ref()) {
                    None => err(format!("job {job:?} has no result on node {}", self.cfg.id)),
                    Some((recipient, _)) if recipient != party => {
                        tracing::warn!(node = self.cfg.id, %job, party, "result requested by a party that is not the recipient; refused");
                        err(format!(
                            "party {party:?} is not the recipient of job {job:?}"
                        ))
                    }
                    Some((_, Output::Table(t))) => {
                        tracing::info!(node = self.cfg.id, %job, party, rows = t.rows, "query result shares released to the recipient");
                        (Response::QueryResult { node: self.cfg.id }, t.to_bytes())
                    }
                    Some((_, Output::Values(shares))) => {
                        let (a, b) = shares.components();
                        let mut out = wire::words_to_bytes(a);
                        out.extend(wire::words_to_bytes(b));
                        tracing::info!(node = self.cfg.id, %job, party, outputs = a.len(), "result shares released to the recipient");
                        (
                            Response::Result {
                                node: self.cfg.id,
                                outputs: a.len() as u64,
                            },
                            out,
                        )
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn upload(
        &self,
        party: &str,
        job: &str,
        table: &str,
        schema: &str,
        rows: u64,
        payload: Vec<u8>,
    ) -> Result<String, String> {
        check_name("job id", job)?;
        check_name("table name", table)?;
        let schema = Schema::parse_compact(schema).map_err(|e| e.to_string())?;
        let rows = rows as usize;
        let words: usize = schema.columns().iter().map(|c| c.ty.words()).sum();
        let expect = rows
            .checked_mul(words)
            .and_then(|w| w.checked_mul(16))
            .ok_or("table too large")?;
        if payload.len() != expect {
            return Err(format!(
                "upload of {table:?} has {} bytes; {rows} rows of this schema need {expect}",
                payload.len()
            ));
        }
        let all = bytes_to_words(&payload).ok_or("payload is not whole words")?;
        drop(payload);
        self.persist(job, table, &schema, rows, &all)?;
        let columns = split_columns(&schema, rows, &all);
        let mut jobs = self.jobs.lock().expect("jobs lock");
        let j = jobs.entry(job.to_string()).or_default();
        if matches!(j.state, Some(JobState::Running)) {
            return Err(format!("job {job:?} is running; upload refused"));
        }
        j.tables.insert(
            table.to_string(),
            StoredTable {
                schema,
                rows,
                columns,
            },
        );
        tracing::info!(
            node = self.cfg.id,
            job,
            table,
            rows,
            party,
            "shares received"
        );
        Ok(format!(
            "node {} stored its shares of {table} ({rows} rows)",
            self.cfg.id
        ))
    }

    /// Write the shares under the data directory (temp file, then rename, so
    /// a crash never leaves a half-written table).
    fn persist(
        &self,
        job: &str,
        table: &str,
        schema: &Schema,
        rows: usize,
        words: &[u64],
    ) -> Result<(), String> {
        let dir: PathBuf = self.cfg.data_dir.join("jobs").join(job);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot store shares: {e}"))?;
        let tmp = dir.join(format!(".{table}.shares.tmp"));
        let fin = dir.join(format!("{table}.shares"));
        let mut bytes = format!("{} {rows}\n", schema.to_compact()).into_bytes();
        bytes.extend(wire::words_to_bytes(words));
        std::fs::write(&tmp, &bytes)
            .and_then(|_| std::fs::rename(&tmp, &fin))
            .map_err(|e| format!("cannot store shares: {e}"))
    }

    fn start(
        self: &Arc<Node>,
        party: &str,
        job: &str,
        program: Program,
        recipient: String,
    ) -> Result<String, String> {
        check_name("job id", job)?;
        {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            let j = jobs.entry(job.to_string()).or_default();
            if matches!(j.state, Some(JobState::Running)) {
                return Err(format!(
                    "job {job:?} is already running on node {}",
                    self.cfg.id
                ));
            }
            exec::check(&program, &j.tables)?;
            j.state = Some(JobState::Running);
            j.result = None;
            j.progress = None;
            j.stats = None;
        }
        tracing::info!(node = self.cfg.id, job, party, ?program, %recipient, "job started");
        let node = Arc::clone(self);
        let job = job.to_string();
        std::thread::spawn(move || node.work(job, program, recipient));
        Ok(format!("node {} started the job", self.cfg.id))
    }

    fn work(self: Arc<Node>, job: String, program: Program, recipient: String) {
        let _one_at_a_time = self.mpc.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = self.compute(&job, &program);
        let mut jobs = self.jobs.lock().expect("jobs lock");
        let j = jobs.entry(job.clone()).or_default();
        j.progress = None;
        match outcome {
            Ok((shares, stats)) => {
                tracing::info!(
                    node = self.cfg.id,
                    %job,
                    outputs = shares.len(),
                    rounds = stats.rounds,
                    bytes_sent = stats.bytes_sent,
                    millis = stats.millis,
                    "job done"
                );
                j.state = Some(JobState::Done {
                    recipient: recipient.clone(),
                    outputs: shares.len() as u64,
                });
                j.stats = Some(stats);
                j.result = Some((recipient, shares));
            }
            Err((reason, refused)) => {
                tracing::error!(node = self.cfg.id, %job, %reason, refused, "job failed; nothing released");
                j.state = Some(JobState::Failed { reason, refused });
                j.result = None;
            }
        }
    }

    /// Run the job; the error is the reason and whether the query was
    /// refused (cannot run on these inputs) rather than failed.
    fn compute(&self, job: &str, program: &Program) -> Result<(Output, JobStats), (String, bool)> {
        let started = Instant::now();
        let mut cfg = NetConfig::new(self.cfg.id, self.cfg.nodes, self.tls.clone());
        cfg.io_timeout = Duration::from_secs(self.cfg.io_timeout_secs);
        cfg.connect_timeout = Duration::from_secs(self.cfg.connect_timeout_secs);
        let transport = TlsTransport::connect(cfg)
            .map_err(|e| (format!("cannot reach the other nodes: {e}"), false))?;
        let security = match program {
            Program::Query {
                malicious: true, ..
            } => Security::Malicious,
            _ => Security::SemiHonest,
        };
        let transport: Box<dyn kuvert_mpc::Transport> =
            match dev_tamper(self.cfg.dev_mode, self.cfg.id) {
                Some(injection) => {
                    tracing::warn!(
                        "{DEV_TAMPER} is set: this dev_mode node deviates from the protocol \
                     (flips a bit of one message), to test that the others detect it"
                    );
                    Box::new(kuvert_mpc::faulty::FaultyTransport::new(
                        transport,
                        vec![injection],
                    ))
                }
                None => Box::new(transport),
            };
        let mut party = Party::setup_with(transport, &mut rand_core::OsRng, security)
            .map_err(|e| (e.to_string(), false))?;
        // Take the tables out while computing, so clients are not blocked.
        let tables = {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            std::mem::take(&mut jobs.entry(job.to_string()).or_default().tables)
        };
        let mut tables = tables;
        let compute_start = Instant::now();
        // Malicious mode: every uploaded share component must be the same
        // at the two nodes that hold it (kuvert_mpc::consistency), as in
        // governed runs; otherwise the nodes would compute on different
        // inputs. 2 rounds, 34 bytes per node, nothing revealed.
        let inputs_agree = if security == Security::Malicious {
            let columns: Vec<&kuvert_mpc::AShare> =
                tables.values().flat_map(|t| t.columns.iter()).collect();
            party.check_consistent_a(&columns).map_err(|err| {
                (
                    format!(
                        "the input shares do not agree between the nodes ({err}); nothing was \
                         computed or released. A contributor's shares were inconsistent or a \
                         node altered its copy: upload again and run again"
                    ),
                    false,
                )
            })
        } else {
            Ok(())
        };
        let out = inputs_agree.and_then(|()| match program {
            Program::Query { sql, .. } => {
                let mut progress = |done: usize, total: usize| {
                    let mut jobs = self.jobs.lock().expect("jobs lock");
                    if let Some(j) = jobs.get_mut(job) {
                        j.progress = Some(Progress {
                            done: done as u64,
                            total: total as u64,
                        });
                    }
                };
                exec::run_query(&mut party, sql, &mut tables, &mut progress)
                    .map(|v| Output::Table(v.into_inner()))
                    .map_err(|e| match e {
                        exec::QueryFailure::Refused(m) => (m, true),
                        exec::QueryFailure::Failed(m) => (m, false),
                    })
            }
            // Both vouched for by every check of the session's mode
            // (kuvert_mpc::Verified): in malicious mode no result share is
            // kept before every pending check passed.
            _ => exec::run(&mut party, program, &tables)
                .map(|v| Output::Values(v.into_inner()))
                .map_err(|m| (m, false)),
        });
        let compute_millis = compute_start.elapsed().as_millis() as u64;
        self.jobs
            .lock()
            .expect("jobs lock")
            .entry(job.to_string())
            .or_default()
            .tables = tables;
        let s = party.stats();
        let stats = JobStats {
            rounds: s.rounds,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            millis: started.elapsed().as_millis() as u64,
            compute_millis,
            peak_rss_kib: peak_rss_kib(),
        };
        out.map(|o| (o, stats))
    }
}

/// The name of an ungoverned job request (served only in dev mode), or
/// `None` for the governed ones.
fn ungoverned_kind(req: &Request) -> Option<&'static str> {
    match req {
        Request::Upload { .. } => Some("upload"),
        Request::Run { .. } => Some("run"),
        Request::Status { .. } => Some("status"),
        Request::Fetch { .. } => Some("fetch"),
        Request::Register { .. }
        | Request::GovUpload { .. }
        | Request::GovRun { .. }
        | Request::GovStatus { .. }
        | Request::GovFetch { .. }
        | Request::GovBudget { .. }
        | Request::GovLedger { .. } => None,
    }
}

/// A socket read or write that ran into its timeout.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The caps on open client connections: per IP address and in all.
struct ConnLimits {
    per_peer: usize,
    total: usize,
    open: Mutex<ConnCount>,
}

#[derive(Default)]
struct ConnCount {
    all: usize,
    by_ip: HashMap<IpAddr, usize>,
    /// Refusals not yet reported in the log.
    unreported: u64,
    last_report: Option<Instant>,
}

/// How often refusals over the caps are logged (at most).
const REFUSAL_REPORT: Duration = Duration::from_secs(10);

/// How long a client may take for its whole TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client TLS handshakes in progress, with their deadlines. The
/// handshake's own timeout is per read, so a client that trickles bytes
/// would keep it going; the watchdog thread of [`Node::serve_on`] closes
/// the socket of every handshake past its deadline ([`Handshakes::reap`]).
#[derive(Default)]
struct Handshakes {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, (Instant, TcpStream)>>,
}

impl Handshakes {
    fn open(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (Instant, TcpStream)>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start the clock on a handshake over `tcp`; `None` (logged) when the
    /// socket cannot be watched, and then it must not be served.
    fn watch(&self, tcp: &TcpStream) -> Option<u64> {
        match tcp.try_clone() {
            Ok(clone) => {
                let key = self.next.fetch_add(1, Ordering::SeqCst);
                self.open()
                    .insert(key, (Instant::now() + HANDSHAKE_TIMEOUT, clone));
                Some(key)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch a client handshake; connection closed");
                None
            }
        }
    }

    /// The handshake `key` ended (either way).
    fn done(&self, key: u64) {
        self.open().remove(&key);
    }

    /// Close every handshake past its deadline; returns how many.
    fn reap(&self) -> usize {
        let now = Instant::now();
        let mut open = self.open();
        let late: Vec<u64> = open
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in &late {
            if let Some((_, tcp)) = open.remove(k) {
                let peer = tcp
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "unknown address".into());
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                tracing::warn!(%peer, secs = HANDSHAKE_TIMEOUT.as_secs(),
                    "client TLS handshake not finished in time; connection closed");
            }
        }
        late.len()
    }
}

/// One admitted connection; gives its place back when dropped.
struct ConnSlot {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    fn new(per_peer: usize, total: usize) -> ConnLimits {
        ConnLimits {
            per_peer,
            total,
            open: Mutex::new(ConnCount::default()),
        }
    }

    fn count(&self) -> std::sync::MutexGuard<'_, ConnCount> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more connection from `ip`, or the name of the cap
    /// it would exceed.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, &'static str> {
        let ip = ip.to_canonical();
        let mut c = self.count();
        if c.all >= self.total {
            return Err("max_connections");
        }
        let n = c.by_ip.entry(ip).or_insert(0);
        if *n >= self.per_peer {
            return Err("max_connections_per_peer");
        }
        *n += 1;
        c.all += 1;
        Ok(ConnSlot {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// Count a refusal; `Some(refusals)` when it is time to log them (the
    /// first one, then at most once per [`REFUSAL_REPORT`]).
    fn report_refusal(&self) -> Option<u64> {
        let mut c = self.count();
        c.unreported += 1;
        let due = c.last_report.is_none_or(|t| t.elapsed() >= REFUSAL_REPORT);
        if !due {
            return None;
        }
        c.last_report = Some(Instant::now());
        Some(std::mem::take(&mut c.unreported))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self.limits.count();
        c.all = c.all.saturating_sub(1);
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

/// A governed request's answer: `Ok` with the node's message, or the
/// refusal's message.
fn ok_or(r: Result<String, crate::gov::NodeGovError>) -> (Response, Vec<u8>) {
    match r {
        Ok(message) => (Response::Ok { message }, Vec::new()),
        Err(e) => (
            Response::Error {
                message: e.to_string(),
            },
            Vec::new(),
        ),
    }
}

/// This process's peak resident memory in KiB (VmHWM in
/// `/proc/self/status`; `None` where there is no such file).
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Per column, this node's components from the upload layout (for every
/// column: component `a` then `b`, `rows × words` each).
pub(crate) fn split_columns(schema: &Schema, rows: usize, all: &[u64]) -> Vec<AShare> {
    let mut columns = Vec::new();
    let mut at = 0;
    for c in schema.columns() {
        let len = rows * c.ty.words();
        let a = all[at..at + len].to_vec();
        let b = all[at + len..at + 2 * len].to_vec();
        at += 2 * len;
        columns.push(AShare::from_components(a, b).expect("equal lengths"));
    }
    columns
}

/// Read a share file written by `Node::persist`.
pub(crate) fn load_table(path: &std::path::Path) -> Result<StoredTable, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let head = std::str::from_utf8(&bytes[..nl]).map_err(|e| e.to_string())?;
    let (schema, rows) = head.rsplit_once(' ').ok_or("bad header")?;
    let schema = Schema::parse_compact(schema).map_err(|e| e.to_string())?;
    let rows: usize = rows.parse().map_err(|_| "bad row count")?;
    let all = bytes_to_words(&bytes[nl + 1..]).ok_or("not whole words")?;
    let words: usize = schema.columns().iter().map(|c| c.ty.words()).sum();
    if all.len() != 2 * rows * words {
        return Err("share file has the wrong size".into());
    }
    let columns = split_columns(&schema, rows, &all);
    Ok(StoredTable {
        schema,
        rows,
        columns,
    })
}

/// Environment variable that makes a `dev_mode` node play a malicious party,
/// for tests of the checks through real node processes:
/// `PARTY:PEER:ROUND` makes node `PARTY` flip the lowest bit of the
/// message it sends to node `PEER` in round `ROUND` (1 = the first after
/// the session setup). Ignored without `dev_mode` (a governed node never
/// reads it).
pub const DEV_TAMPER: &str = "KUVERT_DEV_TAMPER";

/// The injection [`DEV_TAMPER`] asks of node `me`, if any (dev_mode only).
fn dev_tamper(dev_mode: bool, me: usize) -> Option<kuvert_mpc::faulty::Injection> {
    if !dev_mode {
        return None;
    }
    let v = std::env::var(DEV_TAMPER).ok()?;
    let parts: Vec<u64> = v.split(':').filter_map(|p| p.trim().parse().ok()).collect();
    let [party, peer, round] = parts[..] else {
        tracing::warn!("{DEV_TAMPER}={v:?} is not PARTY:PEER:ROUND; ignored");
        return None;
    };
    (party as usize == me && peer < 3 && round >= 1).then(|| kuvert_mpc::faulty::Injection {
        rounds: round..round + 1,
        peer: peer as usize,
        fault: kuvert_mpc::faulty::Fault::FlipBit { bit: 0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps_per_address_and_in_all() {
        let limits = Arc::new(ConnLimits::new(2, 3));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        // An IPv4-mapped IPv6 address is the same peer.
        let a6: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let s1 = limits.admit(a).unwrap();
        let s2 = limits.admit(a6).unwrap();
        assert_eq!(limits.admit(a).err(), Some("max_connections_per_peer"));
        let s3 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some("max_connections"));
        drop(s1);
        let s4 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(b).err(), Some("max_connections"));
        drop((s2, s3, s4));
        let c = limits.count();
        assert_eq!((c.all, c.by_ip.len()), (0, 0));
    }

    #[test]
    fn handshakes_past_their_deadline_are_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let hs = Handshakes::default();
        let k = hs.watch(&server).unwrap();
        assert_eq!(hs.reap(), 0);
        let k2 = hs.watch(&server).unwrap();
        hs.done(k2);
        hs.open().get_mut(&k).unwrap().0 = Instant::now();
        assert_eq!(hs.reap(), 1);
        assert!(hs.open().is_empty());
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        let n = std::io::Read::read(&mut client, &mut b).unwrap_or(0);
        assert_eq!(n, 0, "the server side was shut down");
    }

    #[test]
    fn refusals_are_logged_first_then_at_most_every_ten_seconds() {
        let limits = ConnLimits::new(1, 1);
        assert_eq!(limits.report_refusal(), Some(1));
        assert_eq!(limits.report_refusal(), None);
        assert_eq!(limits.report_refusal(), None);
        limits.count().last_report = Some(Instant::now() - REFUSAL_REPORT);
        assert_eq!(limits.report_refusal(), Some(3));
    }

    #[test]
    fn the_ungoverned_requests_are_exactly_the_job_api() {
        let job = || "j".to_string();
        let ungoverned = [
            Request::Upload {
                job: job(),
                table: "t".into(),
                schema: "a:int".into(),
                rows: 0,
            },
            Request::Run {
                job: job(),
                program: Program::Soak { rounds: 1, n: 1 },
                recipient: "r".into(),
            },
            Request::Status { job: job() },
            Request::Fetch { job: job() },
        ];
        let kinds: Vec<_> = ungoverned.iter().map(ungoverned_kind).collect();
        assert_eq!(
            kinds,
            [Some("upload"), Some("run"), Some("status"), Some("fetch")]
        );
        for r in [
            Request::GovRun {
                analysis: job(),
                coordinator_head: None,
            },
            Request::GovStatus { analysis: job() },
            Request::GovFetch {
                analysis: job(),
                recipient: "r".into(),
            },
        ] {
            assert_eq!(ungoverned_kind(&r), None);
        }
    }
}
