//! Three compute nodes on this machine, for `kuvert run` and the
//! benchmarks: a throw-away deployment PKI in a temporary directory, three
//! `kuvert node` processes on free loopback ports talking TLS 1.3, and the
//! contributor's and recipient's client sides.
//!
//! ```text
//!  LocalCluster::start(exe)
//!    temp dir: pki/ (CA, node-0..2, parties "contributor" and "recipient")
//!              node{i}.toml (dev_mode = true: the ungoverned job API),
//!              node{i}/ (shares), node{i}.log (stderr)
//!    exe node --config node{i}.toml   × 3, children of this process
//!  run_query(cluster, tables, sql)
//!    contributor: validate + share each table locally, upload (client.rs)
//!    recipient:   start the query, poll status, fetch shares, reconstruct
//!  drop / abort_all(): kill the three nodes, delete the temp dir
//! ```
//!
//! The nodes are real processes with real TLS, so what runs here is what
//! runs between three organisations, only on one machine: the same data
//! leaves the "contributor" only as shares, and only the "recipient"
//! reconstructs. (On one machine the operator of course sees everything;
//! this is for trying queries and for measuring.)

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kuvert_data::Table;
use kuvert_sql::output::ResultTable;

use crate::client::{ClientError, NodeStatus, Nodes};
use crate::wire::{check_name, JobState, JobStats};

/// The party that uploads the tables.
pub const CONTRIBUTOR: &str = "contributor";
/// The party that receives the answer.
pub const RECIPIENT: &str = "recipient";

/// Why a local cluster could not start or a local run failed. Failures
/// after the start carry the tail of every node's log.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot prepare the local nodes: {0}")]
    Setup(String),
    #[error("node {node} did not start: {reason}\n{logs}")]
    NodeStart {
        node: usize,
        reason: String,
        logs: String,
    },
    #[error("table name {name:?}: {reason}")]
    BadTableName { name: String, reason: String },
    /// The query cannot run on these inputs (bad input, like a planning
    /// error; the nodes' logs add nothing).
    #[error("{0}")]
    QueryRefused(ClientError),
    #[error("{error}\n{logs}")]
    Client { error: ClientError, logs: String },
}

/// Live clusters' children and directories, so that Ctrl-C can end them
/// ([`abort_all`]) from the signal-handling thread.
struct Registered {
    children: Vec<Child>,
    dir: PathBuf,
}

static LIVE: Mutex<BTreeMap<u64, Registered>> = Mutex::new(BTreeMap::new());
static NEXT_ID: Mutex<u64> = Mutex::new(0);

/// Kill every local node this process started and delete their temporary
/// directories. For a Ctrl-C handler; the clusters' own `Drop` does the
/// same on every normal or error exit.
pub fn abort_all() {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for (_, mut r) in std::mem::take(&mut *live) {
        for c in &mut r.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&r.dir);
    }
}

/// Three nodes on 127.0.0.1 with a fresh PKI. Killed, and their directory
/// deleted, when dropped.
pub struct LocalCluster {
    id: u64,
    dir: Option<tempfile::TempDir>,
    client: [SocketAddr; 3],
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalCluster {{ client: {:?} }}", self.client)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let r = LIVE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        if let Some(mut r) = r {
            for c in &mut r.children {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

fn free_port() -> Result<SocketAddr, LocalError> {
    free_loopback_port()
        .map_err(|e| LocalError::Setup(format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// A free port on 127.0.0.1 below Linux's ephemeral range (32768 and up),
/// so that no outgoing connection (of this or a parallel process) takes it
/// as its source port between this check and the node binding it — a node
/// binds its MPC port only when a job starts, long after the check.
pub fn free_loopback_port() -> std::io::Result<SocketAddr> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() % 997) * 12;
    let mut last = None;
    for _ in 0..2_000 {
        let port = 20_000 + (base + NEXT.fetch_add(1, Ordering::SeqCst)) % 12_000;
        match TcpListener::bind(("127.0.0.1", port as u16)) {
            Ok(l) => return l.local_addr(),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port in 20000..32000")))
}

impl LocalCluster {
    /// Generate a PKI and start three `exe node --config ...` processes
    /// (`exe` is the `kuvert` binary, usually `std::env::current_exe()`).
    /// Returns once every node accepts connections.
    pub fn start(exe: &Path) -> Result<LocalCluster, LocalError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| LocalError::Setup(format!("{what}: {e}"));
        let dir = tempfile::Builder::new()
            .prefix("kuvert-run-")
            .tempdir()
            .map_err(|e| setup("cannot create a temporary directory", &e))?;
        let pki = dir.path().join("pki");
        kuvert_net::pki::init(
            &pki,
            &kuvert_net::pki::InitOptions {
                parties: vec![CONTRIBUTOR.into(), RECIPIENT.into()],
                validity_days: 1,
                ..Default::default()
            },
        )
        .map_err(|e| setup("cannot create the PKI", &e))?;
        let client = [free_port()?, free_port()?, free_port()?];
        let mpc = [free_port()?, free_port()?, free_port()?];
        let id = {
            let mut n = NEXT_ID.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            Registered {
                children: Vec::new(),
                dir: dir.path().to_path_buf(),
            },
        );
        let cluster = LocalCluster {
            id,
            dir: Some(dir),
            client,
        };
        for (i, listen) in client.iter().enumerate() {
            // A long local step between two rounds must not look like a
            // dead peer; a killed node closes its sockets and is noticed at
            // once anyway.
            let cfg = format!(
                "id = {i}\nlisten = \"{listen}\"\nnodes = [\"{}\", \"{}\", \"{}\"]\npki_dir = \"pki\"\ndata_dir = \"node{i}\"\nio_timeout_secs = 60\nconnect_timeout_secs = 20\ndev_mode = true\n",
                mpc[0], mpc[1], mpc[2]
            );
            let path = cluster.path(&format!("node{i}.toml"));
            std::fs::write(&path, cfg).map_err(|e| setup("cannot write a node config", &e))?;
            let log = std::fs::File::create(cluster.path(&format!("node{i}.log")))
                .map_err(|e| setup("cannot create a node log", &e))?;
            let child = Command::new(exe)
                .args(["node", "--exit-with-parent", "--config"])
                .arg(&path)
                .env(
                    "KUVERT_LOG",
                    std::env::var("KUVERT_LOG").unwrap_or("info".into()),
                )
                // The pipe's write end lives in the `Child` kept in LIVE;
                // if this process dies, even by SIGKILL, it closes and the
                // node exits (`--exit-with-parent`).
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| LocalError::NodeStart {
                    node: i,
                    reason: format!("cannot run {}: {e}", exe.display()),
                    logs: String::new(),
                })?;
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&id)
                .ok_or_else(|| LocalError::Setup("interrupted".into()))?
                .children
                .push(child);
        }
        for i in 0..3 {
            cluster.wait_ready(i)?;
        }
        Ok(cluster)
    }

    fn path(&self, p: &str) -> PathBuf {
        match &self.dir {
            Some(d) => d.path().join(p),
            None => PathBuf::from(p),
        }
    }

    /// Wait until node `i` answers a status request over TLS (or has
    /// exited).
    fn wait_ready(&self, i: usize) -> Result<(), LocalError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut probe = self.nodes(RECIPIENT)?;
        probe.timeout = Duration::from_secs(2);
        loop {
            match probe.status(i, "ready-probe") {
                Ok(_) => return Ok(()),
                Err(ClientError::Unreachable { .. }) => {}
                Err(e) => return Err(self.client_err(e)),
            }
            let exited = {
                let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
                match live.get_mut(&self.id).and_then(|r| r.children.get_mut(i)) {
                    Some(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
                    None => Some("interrupted".into()),
                }
            };
            if let Some(status) = exited {
                return Err(LocalError::NodeStart {
                    node: i,
                    reason: format!("it exited ({status})"),
                    logs: self.logs(),
                });
            }
            if Instant::now() > deadline {
                return Err(LocalError::NodeStart {
                    node: i,
                    reason: "it did not accept connections within 20 seconds".into(),
                    logs: self.logs(),
                });
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The last lines of every node's log, for error messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..3 {
            let text =
                std::fs::read_to_string(self.path(&format!("node{i}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!(
                "--- node {i} log (last {} lines) ---\n",
                tail.len()
            ));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Party `name`'s client ([`CONTRIBUTOR`] or [`RECIPIENT`]).
    pub fn nodes(&self, name: &str) -> Result<Nodes, LocalError> {
        let mut n =
            Nodes::new(&self.path("pki"), name, self.client).map_err(|e| self.client_err(e))?;
        n.timeout = Duration::from_secs(60);
        Ok(n)
    }

    fn client_err(&self, error: ClientError) -> LocalError {
        match error {
            e @ ClientError::QueryRefused { .. } => LocalError::QueryRefused(e),
            error => LocalError::Client {
                error,
                logs: self.logs(),
            },
        }
    }

    /// The contributor shares and uploads each table (name, table) to job
    /// `job`.
    pub fn upload(&self, job: &str, tables: &[(String, Table)]) -> Result<(), LocalError> {
        let nodes = self.nodes(CONTRIBUTOR)?;
        for (name, table) in tables {
            check_name("table name", name).map_err(|reason| LocalError::BadTableName {
                name: name.clone(),
                reason,
            })?;
            nodes
                .upload(job, name, table)
                .map_err(|e| self.client_err(e))?;
        }
        Ok(())
    }

    /// The recipient starts `sql` on job `job`, waits (calling `progress`
    /// with the nodes' status every poll), fetches the three nodes' shares
    /// and reconstructs. Returns the answer and each node's job costs.
    pub fn query(
        &self,
        job: &str,
        sql: &str,
        progress: impl FnMut(&[NodeStatus]),
    ) -> Result<QueryRun, LocalError> {
        self.query_secure(job, sql, false, progress)
    }

    /// [`LocalCluster::query`], with `malicious`: secure against one
    /// malicious node (see [`crate::wire::Program::Query`]).
    pub fn query_secure(
        &self,
        job: &str,
        sql: &str,
        malicious: bool,
        mut progress: impl FnMut(&[NodeStatus]),
    ) -> Result<QueryRun, LocalError> {
        let nodes = self.nodes(RECIPIENT)?;
        let started = Instant::now();
        nodes
            .run_query_secure(job, sql, RECIPIENT, malicious)
            .map_err(|e| self.client_err(e))?;
        let last = nodes
            .wait_with(
                job,
                Duration::from_secs(7 * 24 * 3600),
                Duration::from_millis(20),
                &mut progress,
            )
            .map_err(|e| self.client_err(e))?;
        let elapsed = started.elapsed();
        let answer = nodes.fetch_table(job).map_err(|e| self.client_err(e))?;
        let stats = last
            .iter()
            .map(|s| match (&s.state, s.stats) {
                (JobState::Done { .. }, Some(st)) => Some(st),
                _ => None,
            })
            .collect();
        Ok(QueryRun {
            answer,
            elapsed,
            stats,
        })
    }
}

/// What [`LocalCluster::query`] returns.
#[derive(Debug)]
pub struct QueryRun {
    pub answer: ResultTable,
    /// From the recipient's request to the last node's "done", as the
    /// recipient saw it (polled every 20 ms).
    pub elapsed: Duration,
    /// Each node's costs of the job (None where a node did not report).
    pub stats: Vec<Option<JobStats>>,
}
