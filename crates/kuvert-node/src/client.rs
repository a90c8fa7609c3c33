//! The client side of the node API, for contributors and recipients.
//!
//! A contributor validates and shares its table on its own machine
//! ([`kuvert_data::share_table`]) and sends each node only that node's
//! shares; a recipient fetches every node's result shares and reconstructs
//! locally. No cleartext value ever leaves the client.

use std::io::{BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuvert_data::share::{ColumnShares, ShareKind};
use kuvert_data::{ColumnType, Table};
use kuvert_net::tls;
use rustls::{ClientConfig, ClientConnection};

use kuvert_sql::output::{ResultShares, ResultTable};

use crate::wire::{self, GovState, JobState, JobStats, Program, Progress, Request, Response};

/// One node's answer to a status request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub state: JobState,
    /// A running query's progress (operators done of total).
    pub progress: Option<Progress>,
    /// A finished job's costs on this node.
    pub stats: Option<JobStats>,
}

/// Errors a client sees; every variant names the node it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("node {node} ({addr}) is unreachable: {detail}")]
    Unreachable {
        node: usize,
        addr: SocketAddr,
        detail: String,
    },
    #[error("node {node} refused: {message}")]
    Refused { node: usize, message: String },
    #[error("node {node} answered something unexpected: {detail}")]
    Protocol { node: usize, detail: String },
    #[error("job {job:?} failed on node {node}: {reason}. Nothing was released; fix the cause and run the job again")]
    JobFailed {
        job: String,
        node: usize,
        reason: String,
    },
    #[error("node {node} cannot run the query of job {job:?} on these inputs: {reason}. Nothing was released; change the query")]
    QueryRefused {
        job: String,
        node: usize,
        reason: String,
    },
    #[error("job {job:?} ran a query: its result is a table; fetch it with Nodes::fetch_table")]
    IsTable { job: String },
    #[error("{0}")]
    Local(String),
}

type Stream = BufReader<rustls::StreamOwned<ClientConnection, std::net::TcpStream>>;

/// A party's connection to one node.
pub struct NodeConn {
    node: usize,
    stream: Stream,
}

impl std::fmt::Debug for NodeConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeConn {{ node: {} }}", self.node)
    }
}

/// The three nodes as a party sees them.
#[derive(Clone)]
pub struct Nodes {
    pub addrs: [SocketAddr; 3],
    config: Arc<ClientConfig>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nodes {{ addrs: {:?} }}", self.addrs)
    }
}

impl Nodes {
    /// Party `name`'s view of the deployment in `pki_dir`.
    pub fn new(pki_dir: &Path, name: &str, addrs: [SocketAddr; 3]) -> Result<Nodes, ClientError> {
        let config = tls::party_client_config(pki_dir, name).map_err(|e| {
            ClientError::Local(format!("cannot load party {name:?}'s TLS identity: {e}"))
        })?;
        Ok(Nodes {
            addrs,
            config,
            timeout: Duration::from_secs(10),
        })
    }

    /// Party `name`'s view of an analysis's three nodes: node `j` is
    /// reached only if it presents the key `pins[j]` (from the approved
    /// spec's `[[nodes]]`), whoever supplied `addrs`. The party's client
    /// certificate is `pki_dir/party-<name>.crt` (and `.key`).
    pub fn pinned(
        pki_dir: &Path,
        name: &str,
        addrs: [SocketAddr; 3],
        pins: [String; 3],
        what: &str,
    ) -> Result<Nodes, ClientError> {
        let identity = kuvert_net::Identity::load_party(pki_dir, name).map_err(|e| {
            ClientError::Local(format!("cannot load party {name:?}'s TLS identity: {e}"))
        })?;
        let config = tls::pinned_client_config(pins, what, &identity)
            .map_err(|e| ClientError::Local(e.to_string()))?;
        Ok(Nodes {
            addrs,
            config,
            timeout: Duration::from_secs(10),
        })
    }

    /// Open a verified TLS connection to node `i`.
    pub fn connect(&self, i: usize) -> Result<NodeConn, ClientError> {
        let addr = self.addrs[i];
        let un = |detail: String| ClientError::Unreachable {
            node: i,
            addr,
            detail,
        };
        let tcp = std::net::TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| un(e.to_string()))?;
        let (conn, tcp) = tls::connect(tcp, &self.config, tls::node_server_name(i), self.timeout)
            .map_err(|e| un(e.to_string()))?;
        Ok(NodeConn {
            node: i,
            stream: BufReader::with_capacity(1 << 20, rustls::StreamOwned::new(conn, tcp)),
        })
    }

    /// Send `req` to node `i` and read its answer.
    fn ask(
        &self,
        i: usize,
        req: &Request,
        payload: &[u8],
    ) -> Result<(Response, Vec<u8>), ClientError> {
        self.connect(i)?.ask(req, payload)
    }

    /// Share `table` locally and send each node its shares.
    pub fn upload(&self, job: &str, name: &str, table: &Table) -> Result<Vec<String>, ClientError> {
        let shares = kuvert_data::share_table(table, ShareKind::Arithmetic, &mut rand_core::OsRng);
        let mut msgs = Vec::new();
        for (i, s) in shares.iter().enumerate() {
            let req = Request::Upload {
                job: job.into(),
                table: name.into(),
                schema: s.schema.to_compact(),
                rows: s.rows as u64,
            };
            let mut payload = Vec::new();
            for c in &s.columns {
                payload.extend(wire::words_to_bytes(&c.a));
                payload.extend(wire::words_to_bytes(&c.b));
            }
            match self.ask(i, &req, &payload)?.0 {
                Response::Ok { message } => msgs.push(message),
                Response::Error { message } => {
                    return Err(ClientError::Refused { node: i, message })
                }
                other => return Err(proto(i, &other)),
            }
        }
        Ok(msgs)
    }

    /// Ask all three nodes to run `program` for `recipient`.
    pub fn run(&self, job: &str, program: &Program, recipient: &str) -> Result<(), ClientError> {
        let req = Request::Run {
            job: job.into(),
            program: program.clone(),
            recipient: recipient.into(),
        };
        for i in 0..3 {
            match self.ask(i, &req, &[])?.0 {
                Response::Ok { .. } => {}
                Response::Error { message } => {
                    return Err(ClientError::Refused { node: i, message })
                }
                other => return Err(proto(i, &other)),
            }
        }
        Ok(())
    }

    /// The job's state on node `i`.
    pub fn status(&self, i: usize, job: &str) -> Result<JobState, ClientError> {
        Ok(self.status_of(i, job)?.state)
    }

    /// The job's state on node `i`, with a running query's progress and a
    /// finished job's costs.
    pub fn status_of(&self, i: usize, job: &str) -> Result<NodeStatus, ClientError> {
        match self.ask(i, &Request::Status { job: job.into() }, &[])?.0 {
            Response::Status {
                state,
                progress,
                stats,
                ..
            } => Ok(NodeStatus {
                state,
                progress,
                stats,
            }),
            Response::Error { message } => Err(ClientError::Refused { node: i, message }),
            other => Err(proto(i, &other)),
        }
    }

    /// Poll until every node is done; any failure (or an unreachable
    /// node) ends the wait with an error naming the node.
    pub fn wait(
        &self,
        job: &str,
        limit: Duration,
        mut progress: impl FnMut(&[JobState]),
    ) -> Result<(), ClientError> {
        self.wait_with(job, limit, Duration::from_millis(100), |st| {
            let states: Vec<JobState> = st.iter().map(|s| s.state.clone()).collect();
            progress(&states)
        })
        .map(drop)
    }

    /// [`Nodes::wait`], polling every `every`, with the nodes' full
    /// status; returns the three nodes' last status (with their job costs).
    pub fn wait_with(
        &self,
        job: &str,
        limit: Duration,
        every: Duration,
        mut progress: impl FnMut(&[NodeStatus]),
    ) -> Result<Vec<NodeStatus>, ClientError> {
        let start = Instant::now();
        loop {
            let all = (0..3)
                .map(|i| self.status_of(i, job))
                .collect::<Result<Vec<_>, _>>()?;
            progress(&all);
            let states: Vec<&JobState> = all.iter().map(|s| &s.state).collect();
            for (i, s) in states.iter().enumerate() {
                if let JobState::Failed { reason, refused } = s {
                    let (job, node, reason) = (job.into(), i, reason.clone());
                    return Err(if *refused {
                        ClientError::QueryRefused { job, node, reason }
                    } else {
                        ClientError::JobFailed { job, node, reason }
                    });
                }
            }
            if states.iter().all(|s| matches!(s, JobState::Done { .. })) {
                return Ok(all);
            }
            if start.elapsed() > limit {
                return Err(ClientError::Local(format!(
                    "job {job:?} did not finish within {limit:?}"
                )));
            }
            std::thread::sleep(every);
        }
    }

    /// Fetch every node's result shares and reconstruct (with all three,
    /// every component is checked against its replica). Returns the output
    /// words; signed integers are their two's complement.
    pub fn fetch(&self, job: &str) -> Result<Vec<u64>, ClientError> {
        let mut shares = Vec::new();
        for i in 0..3 {
            let (resp, payload) = self.ask(i, &Request::Fetch { job: job.into() }, &[])?;
            match resp {
                Response::Result { node, outputs } if node == i => {
                    let w = wire::bytes_to_words(&payload)
                        .filter(|w| w.len() as u64 == 2 * outputs)
                        .ok_or_else(|| ClientError::Protocol {
                            node: i,
                            detail: "result payload has the wrong size".into(),
                        })?;
                    let (a, b) = w.split_at(outputs as usize);
                    shares.push(ColumnShares {
                        name: "result".into(),
                        ty: ColumnType::Int,
                        kind: ShareKind::Arithmetic,
                        party: i,
                        a: a.to_vec(),
                        b: b.to_vec(),
                    });
                }
                Response::QueryResult { .. } => {
                    return Err(ClientError::IsTable { job: job.into() })
                }
                Response::Error { message } => {
                    return Err(ClientError::Refused { node: i, message })
                }
                other => return Err(proto(i, &other)),
            }
        }
        let refs: Vec<&ColumnShares> = shares.iter().collect();
        kuvert_data::share::reconstruct(&refs)
            .map_err(|e| ClientError::Local(format!("cannot reconstruct the result: {e}")))
    }
}

impl Nodes {
    /// Start `sql` as job `job` on all three nodes for `recipient`. A query
    /// the nodes cannot plan is refused by each node before any protocol
    /// step, with the planner's message.
    pub fn run_query(&self, job: &str, sql: &str, recipient: &str) -> Result<(), ClientError> {
        self.run_query_secure(job, sql, recipient, false)
    }

    /// [`Nodes::run_query`], with `malicious`: secure against one
    /// malicious node (see [`Program::Query`]).
    pub fn run_query_secure(
        &self,
        job: &str,
        sql: &str,
        recipient: &str,
        malicious: bool,
    ) -> Result<(), ClientError> {
        self.run(
            job,
            &Program::Query {
                sql: sql.to_string(),
                malicious,
            },
            recipient,
        )
    }

    /// Fetch and decode the three nodes' shares of a query's answer (this
    /// party must be the job's recipient).
    pub fn fetch_query(&self, job: &str) -> Result<Vec<ResultShares>, ClientError> {
        let mut out = Vec::with_capacity(3);
        for i in 0..3 {
            let (resp, payload) = self.ask(i, &Request::Fetch { job: job.into() }, &[])?;
            match resp {
                Response::QueryResult { node } if node == i => {
                    let s = ResultShares::from_bytes(&payload, &i.to_string()).map_err(|e| {
                        ClientError::Protocol {
                            node: i,
                            detail: e.to_string(),
                        }
                    })?;
                    if s.party != i {
                        return Err(ClientError::Protocol {
                            node: i,
                            detail: format!("sent the shares of node {}", s.party),
                        });
                    }
                    out.push(s);
                }
                Response::Error { message } => {
                    return Err(ClientError::Refused { node: i, message })
                }
                other => return Err(proto(i, &other)),
            }
        }
        Ok(out)
    }

    /// Fetch the three nodes' result shares and reconstruct the answer on
    /// this machine (every component is checked against its replica).
    pub fn fetch_table(&self, job: &str) -> Result<ResultTable, ClientError> {
        let shares = self.fetch_query(job)?;
        kuvert_sql::output::reconstruct(&shares)
            .map_err(|e| ClientError::Local(format!("cannot reconstruct the answer: {e}")))
    }
}

impl NodeConn {
    /// One request, one answer.
    pub fn ask(
        &mut self,
        req: &Request,
        payload: &[u8],
    ) -> Result<(Response, Vec<u8>), ClientError> {
        let i = self.node;
        let io = |e: std::io::Error| ClientError::Protocol {
            node: i,
            detail: e.to_string(),
        };
        {
            let mut w = BufWriter::with_capacity(1 << 20, self.stream.get_mut());
            wire::write_msg(&mut w, req, payload).map_err(io)?;
            w.flush().map_err(io)?;
        }
        wire::read_msg(&mut self.stream, 1 << 32).map_err(io)
    }
}

fn proto(node: usize, r: &Response) -> ClientError {
    ClientError::Protocol {
        node,
        detail: format!("{r:?}"),
    }
}

/// The governed service (docs/service.md, "Nodes"): registering approved
/// analyses, signed uploads, runs, status and sealed results.
impl Nodes {
    /// Register an approved analysis at all three nodes (each verifies the
    /// approvals itself). Returns each node's message.
    pub fn register(
        &self,
        spec_toml: &str,
        approvals: &[kuvert_gov::Approval],
    ) -> Result<Vec<String>, ClientError> {
        let req = Request::Register {
            spec: spec_toml.to_string(),
            approvals: approvals.to_vec(),
        };
        (0..3).map(|i| self.ok(i, &req, &[])).collect()
    }

    /// Share `table` locally (OS CSPRNG) and send each node its shares,
    /// signed by `contributor`'s key over [`wire::upload_message`].
    pub fn gov_upload(
        &self,
        id: &kuvert_gov::AnalysisId,
        contributor: &str,
        key: &kuvert_gov::PartyKey,
        table_name: &str,
        table: &Table,
    ) -> Result<Vec<String>, ClientError> {
        use sha2::Digest;
        // Authenticate all three nodes (their pinned keys) before any share
        // is made or sent: a wrong node anywhere stops the upload with
        // nothing sent to any node.
        let mut conns = (0..3)
            .map(|i| self.connect(i))
            .collect::<Result<Vec<_>, _>>()?;
        // Every node must still accept tables for this analysis: one that
        // has not registered it, ran it, failed it or let it expire stops
        // the upload before any share is made, so no node is left holding
        // a table the others refused.
        for (i, c) in conns.iter_mut().enumerate() {
            let req = Request::GovStatus {
                analysis: id.to_hex(),
            };
            match c.ask(&req, &[])?.0 {
                Response::GovStatus(st) => match &st.state {
                    GovState::Waiting { .. } | GovState::Ready => {}
                    other => {
                        return Err(ClientError::Refused {
                            node: i,
                            message: format!(
                                "analysis {id} takes no uploads at node {i}: it is {}; nothing was sent",
                                gov_state_words(other)
                            ),
                        })
                    }
                },
                Response::Error { message } => {
                    return Err(ClientError::Refused { node: i, message })
                }
                other => return Err(proto(i, &other)),
            }
        }
        let shares = kuvert_data::share_table(table, ShareKind::Arithmetic, &mut rand_core::OsRng);
        let mut msgs = Vec::new();
        for (i, s) in shares.iter().enumerate() {
            let schema = s.schema.to_compact();
            let mut payload = zeroize::Zeroizing::new(Vec::new());
            for c in &s.columns {
                payload.extend(wire::words_to_bytes(&c.a));
                payload.extend(wire::words_to_bytes(&c.b));
            }
            let digest: [u8; 32] = sha2::Sha256::digest(&payload[..]).into();
            let msg = wire::upload_message(
                id,
                i as u8,
                contributor,
                table_name,
                &schema,
                s.rows as u64,
                &digest,
            );
            let sig = key
                .sign_upload(&msg)
                .map_err(|e| ClientError::Local(e.to_string()))?;
            let req = Request::GovUpload {
                analysis: id.to_hex(),
                contributor: contributor.into(),
                table: table_name.into(),
                schema,
                rows: s.rows as u64,
                signature: crate::gov::encode_hex(&sig.to_bytes()),
            };
            msgs.push(match conns[i].ask(&req, &payload)?.0 {
                Response::Ok { message } => message,
                Response::Error { message } => {
                    return Err(ClientError::Refused { node: i, message })
                }
                other => return Err(proto(i, &other)),
            });
        }
        Ok(msgs)
    }

    /// Ask all three nodes to run the analysis (each queues it; they run it
    /// together once all three are asked).
    pub fn gov_run(&self, id: &kuvert_gov::AnalysisId) -> Result<Vec<String>, ClientError> {
        let req = Request::GovRun {
            analysis: id.to_hex(),
            coordinator_head: None,
        };
        (0..3).map(|i| self.ok(i, &req, &[])).collect()
    }

    /// Send a contributor's signed budget limit to all three nodes; each
    /// node's answer (the account as it now stands there).
    pub fn gov_budget(&self, limit: &kuvert_gov::BudgetLimit) -> Result<Vec<String>, ClientError> {
        let req = Request::GovBudget {
            limit: limit.clone(),
        };
        (0..3).map(|i| self.ok(i, &req, &[])).collect()
    }

    /// Send a contributor's signed budget limit to node `i` only.
    pub fn gov_budget_at(
        &self,
        i: usize,
        limit: &kuvert_gov::BudgetLimit,
    ) -> Result<String, ClientError> {
        let req = Request::GovBudget {
            limit: limit.clone(),
        };
        self.ok(i, &req, &[])
    }

    /// Node `i`'s privacy-budget accounts (of `contributor_key`, when given).
    pub fn gov_ledger(
        &self,
        i: usize,
        contributor_key: Option<&str>,
    ) -> Result<Vec<crate::budget::Account>, ClientError> {
        let req = Request::GovLedger {
            contributor_key: contributor_key.map(str::to_string),
        };
        match self.ask(i, &req, &[])? {
            (Response::Ledger { node, accounts }, payload) if node == i => {
                let a: Vec<crate::budget::Account> =
                    serde_json::from_slice(&payload).map_err(|e| ClientError::Protocol {
                        node: i,
                        detail: format!("ledger: {e}"),
                    })?;
                if a.len() as u64 != accounts {
                    return Err(ClientError::Protocol {
                        node: i,
                        detail: "ledger account count differs from the header".into(),
                    });
                }
                Ok(a)
            }
            (Response::Error { message }, _) => Err(ClientError::Refused { node: i, message }),
            (other, _) => Err(proto(i, &other)),
        }
    }

    /// Where the analysis stands at node `i`.
    pub fn gov_status(
        &self,
        i: usize,
        id: &kuvert_gov::AnalysisId,
    ) -> Result<wire::GovStatus, ClientError> {
        let req = Request::GovStatus {
            analysis: id.to_hex(),
        };
        match self.ask(i, &req, &[])?.0 {
            Response::GovStatus(s) if s.node == i => Ok(*s),
            Response::Error { message } => Err(ClientError::Refused { node: i, message }),
            other => Err(proto(i, &other)),
        }
    }

    /// Fetch the recipient's sealed outputs from every node (this party's
    /// TLS identity must be `recipient`), open them with `key` and
    /// reconstruct each output. Outputs in node 0's order.
    pub fn gov_fetch(
        &self,
        id: &kuvert_gov::AnalysisId,
        recipient: &str,
        key: &kuvert_gov::PartyKey,
    ) -> Result<Vec<(String, ResultTable)>, ClientError> {
        let req = Request::GovFetch {
            analysis: id.to_hex(),
            recipient: recipient.into(),
        };
        let mut order: Vec<String> = Vec::new();
        let mut per_output: std::collections::BTreeMap<String, Vec<ResultShares>> =
            std::collections::BTreeMap::new();
        for i in 0..3 {
            let (resp, payload) = self.ask(i, &req, &[])?;
            let boxes: Vec<wire::SealedOutput> = match resp {
                Response::Sealed { node, outputs } if node == i => {
                    let b: Vec<wire::SealedOutput> =
                        serde_json::from_slice(&payload).map_err(|e| ClientError::Protocol {
                            node: i,
                            detail: format!("sealed outputs: {e}"),
                        })?;
                    if b.len() as u64 != outputs {
                        return Err(ClientError::Protocol {
                            node: i,
                            detail: "sealed output count differs from the header".into(),
                        });
                    }
                    b
                }
                Response::Error { message } => {
                    return Err(ClientError::Refused { node: i, message })
                }
                other => return Err(proto(i, &other)),
            };
            for b in boxes {
                let pt = kuvert_gov::seal::open_for(key, id, i as u8, &b.sealed).map_err(|e| {
                    ClientError::Protocol {
                        node: i,
                        detail: e.to_string(),
                    }
                })?;
                let bad = |d: &str| ClientError::Protocol {
                    node: i,
                    detail: format!("sealed output {:?}: {d}", b.output),
                };
                if pt.len() < 4 {
                    return Err(bad("too short"));
                }
                let n = u32::from_be_bytes([pt[0], pt[1], pt[2], pt[3]]) as usize;
                let name = pt
                    .get(4..4 + n)
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .ok_or_else(|| bad("bad name"))?;
                if name != b.output {
                    return Err(bad(&format!("the box holds output {name:?}")));
                }
                let s = ResultShares::from_bytes(&pt[4 + n..], &i.to_string()).map_err(|e| {
                    ClientError::Protocol {
                        node: i,
                        detail: e.to_string(),
                    }
                })?;
                if s.party != i {
                    return Err(bad(&format!("holds the shares of node {}", s.party)));
                }
                if i == 0 {
                    order.push(b.output.clone());
                }
                per_output.entry(b.output.clone()).or_default().push(s);
            }
        }
        let mut out = Vec::new();
        for name in order {
            let shares = per_output.remove(&name).unwrap_or_default();
            if shares.len() != 3 {
                return Err(ClientError::Local(format!(
                    "output {name:?}: only {} of the 3 nodes sent it",
                    shares.len()
                )));
            }
            let t = kuvert_sql::output::reconstruct(&shares).map_err(|e| {
                ClientError::Local(format!("cannot reconstruct output {name:?}: {e}"))
            })?;
            out.push((name, t));
        }
        Ok(out)
    }

    /// One request to node `i` whose answer is `Ok`.
    fn ok(&self, i: usize, req: &Request, payload: &[u8]) -> Result<String, ClientError> {
        match self.ask(i, req, payload)?.0 {
            Response::Ok { message } => Ok(message),
            Response::Error { message } => Err(ClientError::Refused { node: i, message }),
            other => Err(proto(i, &other)),
        }
    }
}

/// A governed state in words, for a client's message.
fn gov_state_words(s: &GovState) -> String {
    match s {
        GovState::Unknown => "not registered there (every contributor must approve first)".into(),
        GovState::Waiting { .. } => "waiting for tables".into(),
        GovState::Ready => "ready".into(),
        GovState::Running { .. } => "running".into(),
        GovState::Done { .. } => "already run".into(),
        GovState::Failed { reason, .. } => format!("failed ({reason})"),
        GovState::Expired => "expired (past its deadline; everything deleted)".into(),
    }
}
