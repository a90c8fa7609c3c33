//! The node daemon: a TLS server for contributors and recipients, and the
//! job runner that joins the other two nodes for each computation.
//!
//! Threads: one accept loop, one thread per client connection, one worker
//! per running job. Jobs run one at a time per node (the MPC listener is
//! the node's single `nodes[id]` address).

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuvert_data::Schema;
use kuvert_mpc::{AShare, Party};
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
        let tls = NodeTls::load(&cfg.pki_dir, cfg.id).map_err(|e| {
            format!(
                "cannot load node {}'s TLS identity from {}: {e}",
                cfg.id,
                cfg.pki_dir.display()
            )
        })?;
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
        let gov = Gov::open(
            cfg.id,
            &cfg.data_dir,
            &key,
            explicit,
            cfg.trusted_keys.as_deref(),
        )
        .map_err(|e| format!("node {}: {e}", cfg.id))?;
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
    pub fn serve_on(self: &Arc<Node>, listener: TcpListener) -> Result<(), String> {
        tracing::info!(node = self.cfg.id, listen = %self.cfg.listen, "node ready");
        *self.bound.lock().unwrap_or_else(|e| e.into_inner()) = listener.local_addr().ok();
        for tcp in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(tcp) = tcp else { continue };
            let node = Arc::clone(self);
            std::thread::spawn(move || node.client(tcp));
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

    fn client(self: Arc<Node>, tcp: TcpStream) {
        let (conn, tcp, who) =
            match kuvert_net::tls::accept(tcp, &self.tls.server, Duration::from_secs(10)) {
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
        let stream = rustls::StreamOwned::new(conn, tcp);
        let mut stream = BufReader::with_capacity(1 << 20, stream);
        loop {
            let (req, payload): (Request, Vec<u8>) = match wire::read_msg(
                &mut stream,
                self.cfg.max_upload_bytes,
            ) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
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
            Request::GovRun { analysis } => ok_or(self.gov.run(party, &analysis)),
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
        let mut party = Party::setup(Box::new(transport), &mut rand_core::OsRng)
            .map_err(|e| (e.to_string(), false))?;
        // Take the tables out while computing, so clients are not blocked.
        let tables = {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            std::mem::take(&mut jobs.entry(job.to_string()).or_default().tables)
        };
        let mut tables = tables;
        let compute_start = Instant::now();
        let out = match program {
            Program::Query { sql } => {
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
                    .map(Output::Table)
                    .map_err(|e| match e {
                        exec::QueryFailure::Refused(m) => (m, true),
                        exec::QueryFailure::Failed(m) => (m, false),
                    })
            }
            _ => exec::run(&mut party, program, &tables)
                .map(Output::Values)
                .map_err(|m| (m, false)),
        };
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
