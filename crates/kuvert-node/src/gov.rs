//! The governed service at one node: approved analyses, signed uploads,
//! runs of every output, sealed results, deletion with signed receipts,
//! audit records, persistence and the deadline sweeper.
//!
//! ```text
//!  Register{spec, approvals}  parse (strict) -> id -> verify every approval (kuvert-gov)
//!                             -> trust list -> plan every output (kuvert-sql) -> store
//!                             -> privacy budget: every DP output's accounts can pay (budget.rs)
//!  GovBudget{limit}           a contributor's signed limit -> this node's ledger
//!  GovUpload{..} + shares     registered? contributor owns the table? schema = spec's?
//!                             size right? Ed25519 signature over upload_message(..)? -> store
//!  GovRun                     all tables in -> queue; the MPC worker agrees with the other
//!                             two nodes which queued analysis to run (pending-set exchange)
//!                             -> charge the DP outputs to this node's ledger (refused: nothing
//!                             runs; refunded only if the session fails before any share is used)
//!                             -> both holders of every uploaded share component agree
//!                             (kuvert_mpc::consistency; otherwise nothing runs)
//!                             -> run each distinct output -> seal per recipient (HPKE)
//!                             -> delete shares + state + session keys -> signed receipt
//!  GovStatus / GovFetch       state, sizes, receipt / the recipient's sealed boxes only
//!  sweeper                    past the deadline: delete sealed results (and shares) -> Expired;
//!                             never ran by the time fixed at registration: delete the
//!                             shares -> signed receipt -> Expired
//! ```
//!
//! On disk, under `data_dir/analyses/<id hex>/`: `spec.toml` (exactly as
//! approved), `approvals.json`, `state.json` (state, table sizes, deadline,
//! costs), `shares/<table>.shares` (this node's shares only, written to a
//! temporary file and renamed), `results/<recipient>.sealed.json` (HPKE
//! boxes), `receipt.json`. The privacy-budget ledger is
//! `data_dir/budget-ledger.json` ([`crate::budget`]). Audit records go to `data_dir/audit-node<id>.log`
//! (kuvert-gov's hash-chained log), with sizes and names, never values.
//!
//! Invariant: nothing here ever holds a cleartext input or result value.
//! Shares come in as shares, results leave sealed to the recipient's key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kuvert_data::Schema;
use kuvert_gov::spec::{Deadline, Validation};
use kuvert_gov::{
    audit::action, AnalysisId, AnalysisSpec, Approval, AuditEvent, AuditLog, Deleted,
    DeletionReceipt, GovError, PartyKey,
};
use kuvert_mpc::transport::{Incoming, Outgoing, Transport};
use kuvert_mpc::Party;
use kuvert_net::{NetConfig, NodeTls, TlsTransport};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::exec::{self, QueryFailure, StoredTable};
use crate::wire::{
    self, check_name, GovState, GovStatus, JobStats, Progress, SealedOutput, TableInfo,
};

/// Audit actions of the node beyond kuvert-gov's well-known ones.
pub mod actions {
    /// The node signed a deletion receipt. details: `node`, `receipt`
    /// (the signature, hex), `tables`.
    pub const RECEIPT_SIGNED: &str = "receipt_signed";
    /// A recipient fetched its sealed results. details: `recipient`, `outputs`.
    pub const RESULTS_FETCHED: &str = "results_fetched";
    /// The result deadline passed; sealed results (and any shares) deleted.
    pub const RESULTS_EXPIRED: &str = "results_expired";
    /// A refused request (what and why; never values).
    pub const REFUSED: &str = "request_refused";
    /// A contributor's signed budget limit was recorded. details:
    /// `contributor_key`, `dataset`, `epsilon`, `delta`, `version`.
    pub const BUDGET_LIMIT_SET: &str = "budget_limit_set";
    /// DP outputs were charged at the start of a computation. details:
    /// `batch`, `epsilon` (sum over outputs), `accounts`.
    pub const BUDGET_CHARGED: &str = "budget_charged";
    /// A charge was returned: the computation stopped before any share was
    /// used. details: `batch`, `reason`.
    pub const BUDGET_REFUNDED: &str = "budget_refunded";
    /// The coordinator's audit head, countersigned when it asked to run an
    /// analysis. details: `records`, `hash`, `signature` (this node's
    /// Ed25519 over `kuvert_gov::receipt::coordinator_head_message`).
    pub const COORDINATOR_HEAD: &str = "coordinator_head";
    /// A stored analysis no longer checks out at start (e.g. approved
    /// under another federation): it will not run; its shares are deleted
    /// at `delete_by`. details: `reason`, `delete_by`.
    pub const QUARANTINED: &str = "analysis_quarantined";
    /// The nodes' signed agreement on a malicious-mode job's outcome
    /// ([`crate::agree`]) ended. details: `node`, `commit` (true: the
    /// results are stored), `detail` (what each other node signed).
    pub const OUTCOME_AGREED: &str = "outcome_agreed";
}

/// The TLS party name of the service operator's coordinator.
pub const COORDINATOR_PARTY: &str = "coordinator";

/// Most analyses one node offers in one agreement round with the others.
const MAX_PENDING_OFFER: usize = 256;

/// The receipt signing key of node `i` in a PKI directory.
pub fn signing_key_path(pki_dir: &Path, i: usize) -> PathBuf {
    pki_dir.join(format!("node-{i}.gov.key"))
}

/// The public part of node `i`'s receipt signing key (kuvert-gov
/// `PublicKeys` JSON), which the parties use to verify its receipts.
pub fn signing_pub_path(pki_dir: &Path, i: usize) -> PathBuf {
    pki_dir.join(format!("node-{i}.gov.pub"))
}

/// Create the receipt signing keys of the three nodes in `pki_dir` where
/// they do not exist yet (`node-<i>.gov.key`, mode 0600, and
/// `node-<i>.gov.pub`). Returns the files written. Existing keys are kept.
pub fn ensure_signing_keys(pki_dir: &Path) -> Result<Vec<PathBuf>, NodeGovError> {
    let mut written = Vec::new();
    for i in 0..3 {
        let key = signing_key_path(pki_dir, i);
        if !key.exists() {
            written.extend(create_signing_key(&key, i)?);
        }
    }
    Ok(written)
}

/// Create node `i`'s receipt signing key in `dir` if it does not exist
/// yet (on the node's own machine; `node-<i>.gov.key` and `.gov.pub`).
pub fn ensure_signing_key(dir: &Path, i: usize) -> Result<Vec<PathBuf>, NodeGovError> {
    let key = signing_key_path(dir, i);
    if key.exists() {
        return Ok(Vec::new());
    }
    create_signing_key(&key, i)
}

/// Load node `i`'s public receipt key from `pki_dir/node-<i>.gov.pub`.
pub fn node_public_key(
    pki_dir: &Path,
    i: usize,
) -> Result<ed25519_dalek::VerifyingKey, NodeGovError> {
    let p = signing_pub_path(pki_dir, i);
    kuvert_gov::PublicKeys::load(&p)
        .and_then(|k| k.verifying_key())
        .map_err(NodeGovError::Gov)
}

fn create_signing_key(path: &Path, i: usize) -> Result<Vec<PathBuf>, NodeGovError> {
    let key = PartyKey::generate(&format!("node-{i}"));
    let written_pub = key.write(path).map_err(NodeGovError::Gov)?;
    let want = path.with_extension("pub");
    std::fs::rename(&written_pub, &want).map_err(|e| NodeGovError::Store {
        path: want.clone(),
        detail: e.to_string(),
    })?;
    Ok(vec![path.to_path_buf(), want])
}

/// Load the node's receipt key, creating it (and its `.pub`) when the
/// default path does not exist yet.
fn load_or_create_key(path: &Path, i: usize, explicit: bool) -> Result<PartyKey, NodeGovError> {
    if !path.exists() && !explicit {
        create_signing_key(path, i)?;
        tracing::info!(node = i, key = %path.display(), "created this node's deletion-receipt signing key; give its .pub file to the parties");
    }
    PartyKey::load(path).map_err(NodeGovError::Gov)
}

/// Why a node refused a governed request. Every message names the analysis
/// or the culprit and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeGovError {
    #[error("{given:?} is not an analysis id (64 hex digits): give the id printed by `kuvert analysis id`")]
    BadId { given: String },
    #[error("analysis {analysis} is not registered at node {node}: all contributors must approve first (the coordinator registers it then)")]
    NotRegistered { node: usize, analysis: String },
    #[error("node {node} refuses the spec: {source}")]
    Spec { node: usize, source: GovError },
    #[error("node {node} refuses the spec's [[nodes]]: {message}")]
    WrongNodes { node: usize, message: String },
    #[error("node {node} refuses the approvals of analysis {analysis}: {source}")]
    Approval {
        node: usize,
        analysis: String,
        source: GovError,
    },
    #[error("node {node} does not trust contributor {contributor:?}'s key {key}: its operator accepts only the keys in trusted_keys of node.toml; ask the operator to add it")]
    Untrusted {
        node: usize,
        contributor: String,
        key: String,
    },
    #[error("node {node} cannot run output {output:?} of the spec: {message}")]
    Output {
        node: usize,
        output: String,
        message: String,
    },
    #[error("node {node}: table name {table:?} cannot be stored: {message}; rename the table in the spec")]
    TableName {
        node: usize,
        table: String,
        message: String,
    },
    #[error(
        "{party:?} is not a contributor of analysis {analysis}; the contributors are: {known}"
    )]
    NotContributor {
        party: String,
        analysis: String,
        known: String,
    },
    #[error("analysis {analysis} has no table {table:?}; its tables are: {known}")]
    UnknownTable {
        analysis: String,
        table: String,
        known: String,
    },
    #[error(
        "table {table:?} of analysis {analysis} is contributed by {owner:?}, not by {party:?}"
    )]
    NotYourTable {
        analysis: String,
        table: String,
        owner: String,
        party: String,
    },
    #[error("table {table:?}: the spec says {spec}, the upload has {upload}; export the table with the agreed columns and types")]
    SchemaMismatch {
        table: String,
        spec: String,
        upload: String,
    },
    #[error("upload of {table:?} has {got} bytes, but {rows} rows of its schema need {want}; the upload is damaged, send it again")]
    BadSize {
        table: String,
        got: usize,
        rows: u64,
        want: usize,
    },
    #[error("the signature on {contributor:?}'s upload of {table:?} to node {node} does not verify against the key in the spec: sign with the key you approved with (`--key`), and do not alter the shares")]
    BadSignature {
        contributor: String,
        table: String,
        node: usize,
    },
    #[error("analysis {analysis} is {state} at node {node}: {what}")]
    WrongState {
        node: usize,
        analysis: String,
        state: String,
        what: String,
    },
    #[error("analysis {analysis} cannot run at node {node}: tables not uploaded yet: {}; each contributor runs `kuvert upload`", missing.join(", "))]
    MissingTables {
        node: usize,
        analysis: String,
        missing: Vec<String>,
    },
    #[error("{party:?} is not the recipient {recipient:?} of analysis {analysis}: only the recipient's own certificate may fetch its results")]
    NotRecipient {
        party: String,
        recipient: String,
        analysis: String,
    },
    #[error("{recipient:?} receives no output of analysis {analysis}")]
    NoOutputs { recipient: String, analysis: String },
    #[error("the results of analysis {analysis} expired at node {node} (deadline {deadline}) and were deleted; the analysis must be submitted and run again")]
    Expired {
        node: usize,
        analysis: String,
        deadline: String,
    },
    #[error("node storage {}: {detail}; check the data directory", path.display())]
    Store { path: PathBuf, detail: String },
    #[error("{0}")]
    Gov(GovError),
    #[error("node {node}: {source}")]
    Budget {
        node: usize,
        source: crate::budget::BudgetError,
    },
}

impl NodeGovError {
    fn store(path: &Path, e: impl std::fmt::Display) -> NodeGovError {
        NodeGovError::Store {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    }
}

/// What is persisted in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Persisted {
    state: GovState,
    /// Tables received (names and sizes; kept after deletion).
    tables: Vec<TableInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stats: Option<JobStats>,
    /// When this node deletes everything it holds of the analysis (RFC
    /// 3339, UTC). Fixed at registration by [`delete_by`]; when the job
    /// ends it becomes the result deadline. Missing only in state files
    /// written before it existed (fixed on reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delete_by: Option<String>,
}

/// One registered analysis at this node.
struct Entry {
    spec: AnalysisSpec,
    persisted: Persisted,
    /// This node's shares of the tables received.
    tables: BTreeMap<String, StoredTable>,
    progress: Option<Progress>,
    receipt: Option<DeletionReceipt>,
    /// When GovRun queued it (to give up on an agreement that never comes).
    queued_at: Option<Instant>,
    /// What its DP outputs charge (compiled once, from the spec).
    demands: Vec<crate::budget::Demand>,
}

impl Entry {
    fn missing(&self) -> Vec<String> {
        self.spec
            .contributors
            .iter()
            .flat_map(|c| c.tables.iter())
            .filter(|t| !self.tables.contains_key(&t.name))
            .map(|t| t.name.clone())
            .collect()
    }

    fn waiting_or_ready(&self) -> GovState {
        let missing = self.missing();
        if missing.is_empty() {
            GovState::Ready
        } else {
            GovState::Waiting { missing }
        }
    }

    /// The distinct outputs in spec order: (name, SQL).
    fn outputs(&self) -> Vec<(String, String)> {
        distinct_outputs(&self.spec)
    }
}

fn distinct_outputs(spec: &AnalysisSpec) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in &spec.recipients {
        for o in &r.outputs {
            if seen.insert(o.name.clone()) {
                out.push((o.name.clone(), o.sql.trim().to_string()));
            }
        }
    }
    out
}

fn state_name(s: &GovState) -> &'static str {
    match s {
        GovState::Unknown => "unknown",
        GovState::Waiting { .. } => "waiting for tables",
        GovState::Ready => "ready",
        GovState::Running { .. } => "running",
        GovState::Done { .. } => "done",
        GovState::Failed { .. } => "failed",
        GovState::Expired => "expired",
    }
}

/// One sealed output's sizes for the audit log: (output, rows, bytes).
type SealedSize = (String, u64, u64);

/// How this node reaches the other two for a run.
#[derive(Clone)]
pub struct MpcLink {
    pub nodes: [std::net::SocketAddr; 3],
    pub tls: NodeTls,
    pub io_timeout: Duration,
    pub connect_timeout: Duration,
    /// Held while this node talks to the other nodes (shared with the
    /// ungoverned jobs of `server.rs`).
    pub busy: Arc<Mutex<()>>,
}

/// Which node keys this node computes with: its own certificate's key
/// fingerprint, and (in a federation) all three nodes' in node order. A
/// spec is registered only if its `[[nodes]]` are exactly these, so an
/// approval binds who computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePins {
    pub own: String,
    pub federation: Option<[String; 3]>,
}

/// The governed side of one node.
pub struct Gov {
    /// Which node keys this node computes with: fixed at [`Gov::open`],
    /// before stored analyses are re-checked.
    pins: NodePins,
    node: usize,
    dir: PathBuf,
    key: PartyKey,
    trusted: Option<BTreeSet<[u8; 32]>>,
    audit: Mutex<AuditLog>,
    entries: Mutex<BTreeMap<AnalysisId, Entry>>,
    /// Analyses told to run and not yet agreed with the other nodes.
    pending: Mutex<BTreeSet<AnalysisId>>,
    wake: Condvar,
    stop: std::sync::atomic::AtomicBool,
    /// This node's privacy-budget ledger (its own; never the coordinator's).
    ledger: Mutex<crate::budget::Ledger>,
    /// Stored analyses that no longer check out at this node (e.g. approved
    /// under another federation): they never run here, but their shares
    /// are still deleted at their deletion time, with a receipt.
    quarantined: Mutex<BTreeMap<AnalysisId, time::OffsetDateTime>>,
    /// The three nodes' receipt-signing keys, for the signed agreement on
    /// a malicious-mode job's outcome ([`Gov::set_node_keys`]); without
    /// them such a job is refused.
    node_keys: Mutex<Option<[ed25519_dalek::VerifyingKey; 3]>>,
}

impl std::fmt::Debug for Gov {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gov {{ node: {} }}", self.node)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// RFC 3339 in UTC.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The absolute deletion time of an analysis registered at `registered`:
/// the spec's time for `Deadline::At`, `registered` + N days for
/// `Deadline::Days(N)`. An analysis whose job has not ended by then (never
/// ran, waiting, ready, failed with its inputs kept) is deleted then; once
/// the job ends, the result deadline (job end + N days) replaces it.
fn delete_by(
    deadline: &Deadline,
    registered: time::OffsetDateTime,
) -> Option<time::OffsetDateTime> {
    match deadline {
        Deadline::Days(d) => Some(registered + time::Duration::days(i64::from(*d))),
        Deadline::At(s) => parse_time(s),
    }
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Write `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeGovError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| NodeGovError::store(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| NodeGovError::store(path, e))
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// Build the catalog of an analysis from the spec's schemas.
fn spec_catalog(spec: &AnalysisSpec) -> Result<kuvert_sql::Catalog, String> {
    let mut c = kuvert_sql::Catalog::new();
    for t in spec.contributors.iter().flat_map(|c| c.tables.iter()) {
        let s = Schema::parse_compact(&t.schema).map_err(|e| format!("table {}: {e}", t.name))?;
        c.add(&t.name, s);
    }
    Ok(c)
}

/// Why an analysis spec's outputs cannot run (see [`compile_spec`]): the
/// output (`"(schemas)"` for a table schema) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("output {output:?}: {message}")]
pub struct CompileError {
    pub output: String,
    pub message: String,
}

/// Whether two privacy parameters are the same number (as written in the
/// spec and in the SQL; a rounding difference is not a disagreement).
fn same_param(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// Compile every distinct output of `spec` exactly as the nodes do before
/// they register it: build the catalog from the contributors' schemas,
/// prepare each output's SQL against it, and check that the spec's `[[dp]]`
/// section and the outputs' `WITH PRIVACY` clauses agree (docs/dp.md,
/// "The spec's [[dp]] section and WITH PRIVACY"): an output has a `[[dp]]`
/// entry if and only if its SQL has a `WITH PRIVACY` clause, with the same
/// ε and δ, and δ > 0 (the distributed Skellam mechanism is (ε, δ)-DP).
/// The person column is checked by `prepare` (it must be a column of the
/// aggregated rows). Keys are not looked at, so templates compile too.
pub fn compile_spec(spec: &AnalysisSpec) -> Result<(), CompileError> {
    let catalog = spec_catalog(spec).map_err(|message| CompileError {
        output: "(schemas)".into(),
        message,
    })?;
    for (name, sql) in distinct_outputs(spec) {
        let out = |message: String| CompileError {
            output: name.clone(),
            message,
        };
        let q = kuvert_sql::prepare(&sql, &catalog).map_err(|e| out(e.to_string()))?;
        let dp = spec.dp.iter().find(|d| d.output == name);
        match (dp, &q.privacy) {
            (None, None) => {}
            (Some(dp), None) => return Err(out(format!(
                "the spec promises differential privacy (ε = {}) but the SQL has no WITH PRIVACY clause; a node never releases an exact answer for it: add WITH PRIVACY (epsilon = {}, delta = ..., person = ...) to the SQL or remove the [[dp]] entry",
                dp.epsilon, dp.epsilon
            ))),
            (None, Some(p)) => return Err(out(format!(
                "the SQL adds noise WITH PRIVACY (ε = {}, δ = {}) but the spec has no [[dp]] entry for it, so its privacy loss would be neither approved nor charged to any budget: add [[dp]] output = {name:?}, epsilon = {}, delta = {}",
                p.epsilon, p.delta, p.epsilon, p.delta
            ))),
            (Some(dp), Some(p)) if dp.delta <= 0.0 => return Err(out(format!(
                "the spec's [[dp]] entry gives δ = {} but WITH PRIVACY uses the distributed Skellam mechanism, which is (ε, δ)-DP and needs δ > 0: set delta = {} in the [[dp]] entry, as in the SQL",
                dp.delta, p.delta
            ))),
            (Some(dp), Some(p))
                if !same_param(p.epsilon, dp.epsilon) || !same_param(p.delta, dp.delta) =>
            {
                return Err(out(format!(
                    "the SQL's WITH PRIVACY spends ε = {}, δ = {} but the spec's [[dp]] entry says ε = {}, δ = {}; give the same ε and δ in both",
                    p.epsilon, p.delta, dp.epsilon, dp.delta
                )))
            }
            (Some(_), Some(_)) => {}
        }
    }
    Ok(())
}

impl Gov {
    /// Open the node's governed store under `data_dir`, load its signing
    /// key (creating the default one on first start) and reload every
    /// registered analysis.
    pub fn open(
        node: usize,
        data_dir: &Path,
        signing_key: &Path,
        explicit_key: bool,
        trusted_keys: Option<&[String]>,
        pins: NodePins,
    ) -> Result<Gov, NodeGovError> {
        std::fs::create_dir_all(data_dir).map_err(|e| NodeGovError::store(data_dir, e))?;
        let key = load_or_create_key(signing_key, node, explicit_key)?;
        let trusted = match trusted_keys {
            None => None,
            Some(list) => {
                let mut set = BTreeSet::new();
                for k in list {
                    let vk = kuvert_gov::spec::parse_ed25519(k).ok_or_else(|| {
                        NodeGovError::Untrusted {
                            node,
                            contributor: "(trusted_keys)".into(),
                            key: k.clone(),
                        }
                    })?;
                    set.insert(vk.to_bytes());
                }
                Some(set)
            }
        };
        let audit = AuditLog::open(&data_dir.join(format!("audit-node{node}.log")))
            .map_err(NodeGovError::Gov)?;
        let ledger = crate::budget::Ledger::open(&data_dir.join("budget-ledger.json"))
            .map_err(|source| NodeGovError::Budget { node, source })?;
        let gov = Gov {
            pins,
            node,
            dir: data_dir.join("analyses"),
            key,
            trusted,
            audit: Mutex::new(audit),
            entries: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(BTreeSet::new()),
            wake: Condvar::new(),
            stop: std::sync::atomic::AtomicBool::new(false),
            ledger: Mutex::new(ledger),
            quarantined: Mutex::new(BTreeMap::new()),
            node_keys: Mutex::new(None),
        };
        gov.reload()?;
        Ok(gov)
    }

    fn actor(&self) -> String {
        format!("node{}", self.node)
    }

    fn log(&self, ev: AuditEvent) -> Result<(), NodeGovError> {
        lock(&self.audit)
            .append(ev)
            .map(drop)
            .map_err(NodeGovError::Gov)
    }

    /// Log `ev` and return the head just after it (its record), read
    /// under the same lock: what receipts and sealed results pin.
    fn log_head(&self, ev: AuditEvent) -> Result<kuvert_gov::receipt::AuditHead, NodeGovError> {
        let mut audit = lock(&self.audit);
        audit.append(ev).map_err(NodeGovError::Gov)?;
        let (records, hash) = audit.head();
        Ok(kuvert_gov::receipt::AuditHead {
            records,
            hash: hash.to_string(),
        })
    }

    fn event(&self, action: &str, id: AnalysisId) -> AuditEvent {
        AuditEvent::new(&self.actor(), action)
            .analysis(id)
            .job(&id.to_hex())
    }

    /// Log a refusal (best effort: a refusal must be answered even if the
    /// log cannot be written; the failure is traced).
    fn log_refusal(&self, id: Option<AnalysisId>, what: &str, party: &str, e: &NodeGovError) {
        let mut ev = AuditEvent::new(&self.actor(), actions::REFUSED)
            .detail("request", what)
            .detail("party", party)
            .detail("reason", e.to_string());
        if let Some(id) = id {
            ev = ev.analysis(id);
        }
        if let Err(err) = self.log(ev) {
            tracing::error!(node = self.node, error = %err, "cannot write the audit log");
        }
    }

    fn adir(&self, id: &AnalysisId) -> PathBuf {
        self.dir.join(id.to_hex())
    }

    fn save_state(&self, id: &AnalysisId, p: &Persisted) -> Result<(), NodeGovError> {
        write_atomic(&self.adir(id).join("state.json"), &json(p))
    }

    fn parse_id(&self, s: &str) -> Result<AnalysisId, NodeGovError> {
        s.trim()
            .parse()
            .map_err(|_| NodeGovError::BadId { given: s.into() })
    }

    /// Check a spec and its approvals as this node, and plan every output.
    /// Set the three nodes' receipt-signing keys (from the federation, or
    /// the PKI directory's `node-<i>.gov.pub`), which the nodes' signed
    /// agreement on a malicious-mode job's outcome verifies
    /// ([`crate::agree`]). This node's own must be its signing key.
    pub fn set_node_keys(&self, keys: [ed25519_dalek::VerifyingKey; 3]) -> Result<(), String> {
        if keys[self.node] != self.key.verifying_key() {
            return Err(format!(
                "node {}: the receipt key listed for this node is not its own signing key",
                self.node
            ));
        }
        *lock(&self.node_keys) = Some(keys);
        Ok(())
    }

    /// This node's receipt-signing public key, lowercase hex (as the
    /// federation file lists it).
    pub fn public_signing_key_hex(&self) -> String {
        encode_hex(&self.key.verifying_key().to_bytes())
    }

    /// The spec's `[[nodes]]` must be this node (at its index) and, in a
    /// federation, exactly the federation's three nodes.
    fn check_nodes(&self, spec: &AnalysisSpec) -> Result<(), NodeGovError> {
        let node = self.node;
        let wrong = |message: String| NodeGovError::WrongNodes { node, message };
        let pins = &self.pins;
        let named: Vec<&str> = spec.nodes.iter().map(|n| n.fingerprint.trim()).collect();
        if named.get(node) != Some(&pins.own.as_str()) {
            return Err(wrong(format!(
                "the spec names {} as node {node}, but this node's key is {}: the contributors \
                 approved other nodes",
                named.get(node).unwrap_or(&"nothing"),
                pins.own
            )));
        }
        if let Some(fed) = &pins.federation {
            for (j, fp) in fed.iter().enumerate() {
                if named.get(j) != Some(&fp.as_str()) {
                    return Err(wrong(format!(
                        "the spec names {} as node {j}, but this node's federation lists {fp}: \
                         the contributors approved other nodes",
                        named.get(j).unwrap_or(&"nothing")
                    )));
                }
            }
        }
        Ok(())
    }

    fn check(&self, text: &str, approvals: &[Approval]) -> Result<AnalysisSpec, NodeGovError> {
        let node = self.node;
        let spec = AnalysisSpec::parse(text, "spec", Validation::Strict)
            .map_err(|source| NodeGovError::Spec { node, source })?;
        let id = spec.id();
        self.check_nodes(&spec)?;
        kuvert_gov::verify_approvals(&spec, approvals).map_err(|source| {
            NodeGovError::Approval {
                node,
                analysis: id.to_hex(),
                source,
            }
        })?;
        if let Some(trusted) = &self.trusted {
            for c in &spec.contributors {
                let k = kuvert_gov::spec::parse_ed25519(&c.public_key).map(|k| k.to_bytes());
                if !k.is_some_and(|k| trusted.contains(&k)) {
                    return Err(NodeGovError::Untrusted {
                        node,
                        contributor: c.id.clone(),
                        key: c.public_key.clone(),
                    });
                }
            }
        }
        for t in spec.contributors.iter().flat_map(|c| c.tables.iter()) {
            check_name("table name", &t.name).map_err(|message| NodeGovError::TableName {
                node,
                table: t.name.clone(),
                message,
            })?;
        }
        compile_spec(&spec).map_err(|e| NodeGovError::Output {
            node,
            output: e.output,
            message: e.message,
        })?;
        Ok(spec)
    }

    /// The (output, account) pairs `spec` charges.
    fn demands(&self, spec: &AnalysisSpec) -> Result<Vec<crate::budget::Demand>, NodeGovError> {
        crate::budget::demands(spec).map_err(|message| NodeGovError::Output {
            node: self.node,
            output: "(privacy budget)".into(),
            message,
        })
    }

    /// Whether this node's ledger can pay `demands` now (nothing is
    /// charged; the charge is made when the computation starts).
    fn check_budget(&self, demands: &[crate::budget::Demand]) -> Result<(), NodeGovError> {
        lock(&self.ledger)
            .check(demands)
            .map_err(|source| NodeGovError::Budget {
                node: self.node,
                source,
            })
    }

    /// `GovBudget{limit}`: record a contributor's signed limit (the
    /// signature is checked; only a higher version replaces a limit; with a
    /// trust list, only for a trusted key).
    pub fn set_budget(
        &self,
        party: &str,
        limit: &kuvert_gov::BudgetLimit,
    ) -> Result<String, NodeGovError> {
        let node = self.node;
        let r = (|| {
            if let Some(trusted) = &self.trusted {
                let k =
                    kuvert_gov::spec::parse_ed25519(&limit.contributor_key).map(|k| k.to_bytes());
                if !k.is_some_and(|k| trusted.contains(&k)) {
                    return Err(NodeGovError::Untrusted {
                        node,
                        contributor: "(budget limit)".into(),
                        key: limit.contributor_key.clone(),
                    });
                }
            }
            let a = lock(&self.ledger)
                .set_limit(limit.clone(), party)
                .map_err(|source| NodeGovError::Budget { node, source })?;
            self.log(
                AuditEvent::new(&self.actor(), actions::BUDGET_LIMIT_SET)
                    .detail("contributor_key", a.contributor_key.as_str())
                    .detail("dataset", a.dataset.as_str())
                    .detail("epsilon", format!("{}", a.limit.epsilon))
                    .detail("delta", format!("{}", a.limit.delta))
                    .detail("version", a.limit.version)
                    .detail("from", party),
            )?;
            let (se, sd) = a.spent();
            let (re, rd) = a.remaining();
            Ok(format!(
                "node {node} recorded the limit of dataset {:?} (version {}): ε = {} (δ = {}); spent ε = {se} (δ = {sd}), remaining ε = {re} (δ = {rd})",
                a.dataset, a.limit.version, a.limit.epsilon, a.limit.delta
            ))
        })();
        if let Err(e) = &r {
            self.log_refusal(None, "budget", party, e);
        }
        r
    }

    /// `GovLedger`: this node's accounts (of one contributor key, when
    /// given): limits, charges and refunds. Budgets are not secret from
    /// the parties of the federation; values never appear here.
    pub fn ledger(&self, key: Option<&str>) -> Vec<crate::budget::Account> {
        match key {
            None => lock(&self.ledger).accounts(None),
            Some(k) => match kuvert_gov::spec::parse_ed25519(k) {
                Some(k) => lock(&self.ledger).accounts(Some(&encode_hex(k.as_bytes()))),
                None => Vec::new(),
            },
        }
    }

    /// `Register{spec, approvals}`.
    pub fn register(
        &self,
        party: &str,
        text: &str,
        approvals: &[Approval],
    ) -> Result<String, NodeGovError> {
        let spec = match self.check(text, approvals) {
            Ok(s) => s,
            Err(mut e) => {
                let parsed = AnalysisSpec::parse(text, "spec", Validation::Strict).ok();
                // A spec refused for its outputs (e.g. WITH PRIVACY without
                // a [[dp]] entry) still says what the budgets its SQL would
                // draw on have left.
                if let (NodeGovError::Output { message, .. }, Some(s)) = (&mut e, &parsed) {
                    if let Ok(demands) = crate::budget::demands(s) {
                        let left = lock(&self.ledger).remaining_text(&demands);
                        if !left.is_empty() {
                            message.push_str(&format!(" (budgets its SQL draws on: {left})"));
                        }
                    }
                }
                self.log_refusal(parsed.map(|s| s.id()), "register", party, &e);
                return Err(e);
            }
        };
        let id = spec.id();
        let demands = match self.demands(&spec) {
            Ok(d) => d,
            Err(e) => {
                self.log_refusal(Some(id), "register", party, &e);
                return Err(e);
            }
        };
        let mut entries = lock(&self.entries);
        if let Some(e) = entries.get(&id) {
            return Ok(format!(
                "analysis {id} is already registered at node {} ({})",
                self.node,
                state_name(&e.persisted.state)
            ));
        }
        // A new analysis whose DP outputs this node's ledger cannot pay is
        // refused here, before any contributor sends a share (the charge
        // itself is made when the computation starts).
        if let Err(e) = self.check_budget(&demands) {
            drop(entries);
            self.log_refusal(Some(id), "register", party, &e);
            return Err(e);
        }
        let dir = self.adir(&id);
        write_atomic(&dir.join("spec.toml"), text.as_bytes())?;
        write_atomic(&dir.join("approvals.json"), &json(&approvals))?;
        let delete_by = delete_by(
            &spec.retention.result_deadline,
            time::OffsetDateTime::now_utc(),
        )
        .map(rfc3339);
        let mut entry = Entry {
            spec,
            persisted: Persisted {
                state: GovState::Unknown,
                tables: Vec::new(),
                stats: None,
                delete_by,
            },
            tables: BTreeMap::new(),
            progress: None,
            receipt: None,
            queued_at: None,
            demands,
        };
        entry.persisted.state = entry.waiting_or_ready();
        self.save_state(&id, &entry.persisted)?;
        self.log(
            self.event(action::ANALYSIS_ACCEPTED, id)
                .detail("contributors", entry.spec.contributors.len() as u64)
                .detail("approvals", approvals.len() as u64)
                .detail("from", party),
        )?;
        entries.insert(id, entry);
        tracing::info!(node = self.node, analysis = %id, party, "analysis registered: approvals verified");
        Ok(format!(
            "node {} verified every approval and registered analysis {id}",
            self.node
        ))
    }

    /// `GovUpload{..}` with its payload.
    #[allow(clippy::too_many_arguments)]
    pub fn upload(
        &self,
        party: &str,
        analysis: &str,
        contributor: &str,
        table: &str,
        schema: &str,
        rows: u64,
        signature: &str,
        payload: Vec<u8>,
    ) -> Result<String, NodeGovError> {
        let id = self.parse_id(analysis)?;
        let r = self.upload_checked(
            party,
            id,
            contributor,
            table,
            schema,
            rows,
            signature,
            payload,
        );
        if let Err(e) = &r {
            self.log_refusal(Some(id), "upload", party, e);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn upload_checked(
        &self,
        party: &str,
        id: AnalysisId,
        contributor: &str,
        table: &str,
        schema: &str,
        rows: u64,
        signature: &str,
        payload: Vec<u8>,
    ) -> Result<String, NodeGovError> {
        let node = self.node;
        let hex = id.to_hex();
        // Everything that does not need the shares in memory first.
        let (key, spec_schema) = {
            let entries = lock(&self.entries);
            let e = entries.get(&id).ok_or(NodeGovError::NotRegistered {
                node,
                analysis: hex.clone(),
            })?;
            match &e.persisted.state {
                GovState::Waiting { .. } | GovState::Ready => {}
                GovState::Failed {
                    inputs_kept: true, ..
                } => {}
                other => {
                    return Err(NodeGovError::WrongState {
                        node,
                        analysis: hex,
                        state: state_name(other).into(),
                        what: "uploads are accepted only before the run".into(),
                    })
                }
            }
            let c =
                e.spec
                    .contributor(contributor)
                    .ok_or_else(|| NodeGovError::NotContributor {
                        party: contributor.into(),
                        analysis: hex.clone(),
                        known: e
                            .spec
                            .contributors
                            .iter()
                            .map(|c| c.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
            let t = match c.tables.iter().find(|t| t.name == table) {
                Some(t) => t,
                None => {
                    let owner = e
                        .spec
                        .contributors
                        .iter()
                        .find(|o| o.tables.iter().any(|t| t.name == table));
                    return Err(match owner {
                        Some(o) => NodeGovError::NotYourTable {
                            analysis: hex,
                            table: table.into(),
                            owner: o.id.clone(),
                            party: contributor.into(),
                        },
                        None => NodeGovError::UnknownTable {
                            analysis: hex,
                            table: table.into(),
                            known: e
                                .spec
                                .contributors
                                .iter()
                                .flat_map(|c| c.tables.iter())
                                .map(|t| t.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        },
                    });
                }
            };
            let key = kuvert_gov::spec::parse_ed25519(&c.public_key).ok_or_else(|| {
                NodeGovError::BadSignature {
                    contributor: contributor.into(),
                    table: table.into(),
                    node,
                }
            })?;
            (key, t.schema.clone())
        };
        let want_schema =
            Schema::parse_compact(&spec_schema).map_err(|e| NodeGovError::Output {
                node,
                output: table.into(),
                message: e.to_string(),
            })?;
        let got_schema =
            Schema::parse_compact(schema).map_err(|e| NodeGovError::SchemaMismatch {
                table: table.into(),
                spec: want_schema.to_compact(),
                upload: format!("{schema:?} ({e})"),
            })?;
        if got_schema != want_schema {
            return Err(NodeGovError::SchemaMismatch {
                table: table.into(),
                spec: want_schema.to_compact(),
                upload: got_schema.to_compact(),
            });
        }
        let words: usize = want_schema.columns().iter().map(|c| c.ty.words()).sum();
        let want = (rows as usize)
            .checked_mul(words)
            .and_then(|w| w.checked_mul(16))
            .unwrap_or(usize::MAX);
        if payload.len() != want {
            return Err(NodeGovError::BadSize {
                table: table.into(),
                got: payload.len(),
                rows,
                want,
            });
        }
        let digest: [u8; 32] = Sha256::digest(&payload).into();
        let msg = wire::upload_message(&id, node as u8, contributor, table, schema, rows, &digest);
        let sig = decode_hex::<64>(signature).map(|b| ed25519_dalek::Signature::from_bytes(&b));
        let bad = || NodeGovError::BadSignature {
            contributor: contributor.into(),
            table: table.into(),
            node,
        };
        key.verify_strict(&msg, &sig.ok_or_else(bad)?)
            .map_err(|_| bad())?;
        let all = wire::bytes_to_words(&payload).ok_or_else(bad)?;
        let bytes = payload.len() as u64;
        drop(payload);
        let rows_us = rows as usize;
        // Store, then publish in memory under the lock (the state may have
        // moved on while the shares were checked).
        let path = self
            .adir(&id)
            .join("shares")
            .join(format!("{table}.shares"));
        let mut file =
            Zeroizing::new(format!("{} {rows}\n", want_schema.to_compact()).into_bytes());
        file.extend(wire::words_to_bytes(&all));
        let mut entries = lock(&self.entries);
        let e = entries.get_mut(&id).ok_or(NodeGovError::NotRegistered {
            node,
            analysis: id.to_hex(),
        })?;
        if !matches!(
            e.persisted.state,
            GovState::Waiting { .. }
                | GovState::Ready
                | GovState::Failed {
                    inputs_kept: true,
                    ..
                }
        ) {
            return Err(NodeGovError::WrongState {
                node,
                analysis: id.to_hex(),
                state: state_name(&e.persisted.state).into(),
                what: "uploads are accepted only before the run".into(),
            });
        }
        write_atomic(&path, &file)?;
        drop(file);
        let columns = crate::server::split_columns(&want_schema, rows_us, &all);
        e.tables.insert(
            table.to_string(),
            StoredTable {
                schema: want_schema,
                rows: rows_us,
                columns,
            },
        );
        e.persisted.tables.retain(|t| t.name != table);
        e.persisted.tables.push(TableInfo {
            name: table.into(),
            contributor: contributor.into(),
            rows,
        });
        if !matches!(e.persisted.state, GovState::Failed { .. }) {
            e.persisted.state = e.waiting_or_ready();
        }
        self.save_state(&id, &e.persisted)?;
        self.log(
            AuditEvent::shares_received(
                node as u8,
                id,
                &id.to_hex(),
                contributor,
                table,
                rows,
                words as u64,
            )
            .detail("bytes", bytes)
            .detail("payload_sha256", encode_hex(&digest))
            .detail("from", party),
        )?;
        tracing::info!(node, analysis = %id, contributor, table, rows, "signed shares received");
        Ok(format!(
            "node {node} verified {contributor}'s signature and stored its shares of {table} ({rows} rows)"
        ))
    }

    /// `GovRun`: queue the analysis for the MPC worker. With the
    /// coordinator's audit head, the node first countersigns it into its
    /// own log (only for an analysis registered here).
    pub fn run(
        &self,
        party: &str,
        analysis: &str,
        coordinator_head: Option<&kuvert_gov::receipt::AuditHead>,
    ) -> Result<String, NodeGovError> {
        let id = self.parse_id(analysis)?;
        let node = self.node;
        // Only the coordinator's own TLS identity speaks for its log: a head
        // sent by any other party is ignored, so no contributor can plant
        // heads that make an honest coordinator's log look rewritten.
        if let Some(head) = coordinator_head.filter(|_| party == COORDINATOR_PARTY) {
            if lock(&self.entries).contains_key(&id) {
                let sig = kuvert_gov::receipt::countersign_coordinator_head(&self.key, &id, head);
                self.log(
                    self.event(actions::COORDINATOR_HEAD, id)
                        .detail("records", head.records)
                        .detail("hash", head.hash.as_str())
                        .detail("signature", sig)
                        .detail("from", party),
                )?;
            }
        }
        let mut entries = lock(&self.entries);
        let e = match entries.get_mut(&id) {
            Some(e) => e,
            None => {
                let err = NodeGovError::NotRegistered {
                    node,
                    analysis: id.to_hex(),
                };
                drop(entries);
                self.log_refusal(Some(id), "run", party, &err);
                return Err(err);
            }
        };
        match &e.persisted.state {
            GovState::Running { .. } => {
                return Ok(format!("analysis {id} is already running at node {node}"))
            }
            GovState::Done { .. } => {
                return Ok(format!("analysis {id} has already run at node {node}"))
            }
            GovState::Expired => {
                return Err(NodeGovError::WrongState {
                    node,
                    analysis: id.to_hex(),
                    state: "expired".into(),
                    what: "its inputs and results were deleted; submit the analysis again".into(),
                })
            }
            GovState::Failed {
                inputs_kept: false, ..
            } => {
                return Err(NodeGovError::WrongState {
                    node,
                    analysis: id.to_hex(),
                    state: "failed".into(),
                    what: "its inputs were deleted; submit the analysis again".into(),
                })
            }
            _ => {}
        }
        // Past its deletion time the analysis is the sweeper's, not the
        // worker's: a run now would keep shares past the approved time.
        if let Some(t) = e.persisted.delete_by.as_deref().and_then(parse_time) {
            if t <= time::OffsetDateTime::now_utc() {
                let err = NodeGovError::WrongState {
                    node,
                    analysis: id.to_hex(),
                    state: "expired".into(),
                    what: format!(
                        "its deletion time {} has passed and its inputs are being deleted; submit the analysis again",
                        rfc3339(t)
                    ),
                };
                drop(entries);
                self.log_refusal(Some(id), "run", party, &err);
                return Err(err);
            }
        }
        let missing = e.missing();
        if !missing.is_empty() {
            let err = NodeGovError::MissingTables {
                node,
                analysis: id.to_hex(),
                missing,
            };
            drop(entries);
            self.log_refusal(Some(id), "run", party, &err);
            return Err(err);
        }
        // Refused now rather than after the other nodes agreed: the
        // ledger cannot pay for this run (the charge is made at the start).
        if let Err(err) = self.check_budget(&e.demands) {
            drop(entries);
            self.log_refusal(Some(id), "run", party, &err);
            return Err(err);
        }
        let total = e.outputs().len() as u64;
        e.persisted.state = GovState::Running {
            output: String::new(),
            done: 0,
            total,
        };
        e.queued_at = Some(Instant::now());
        self.save_state(&id, &e.persisted)?;
        drop(entries);
        lock(&self.pending).insert(id);
        self.wake.notify_all();
        tracing::info!(node, analysis = %id, party, "run requested; waiting for the other nodes");
        Ok(format!(
            "node {node} queued analysis {id}; it runs when the other two nodes are ready"
        ))
    }

    /// `GovStatus`.
    pub fn status(&self, analysis: &str) -> Result<GovStatus, NodeGovError> {
        let id = self.parse_id(analysis)?;
        let entries = lock(&self.entries);
        Ok(match entries.get(&id) {
            None => GovStatus {
                node: self.node,
                analysis: id.to_hex(),
                state: GovState::Unknown,
                tables: Vec::new(),
                progress: None,
                stats: None,
                receipt: None,
                delete_by: None,
            },
            Some(e) => GovStatus {
                node: self.node,
                analysis: id.to_hex(),
                state: e.persisted.state.clone(),
                tables: e.persisted.tables.clone(),
                progress: e.progress,
                stats: e.persisted.stats,
                receipt: e.receipt.clone(),
                delete_by: match &e.persisted.state {
                    GovState::Done { deadline } => Some(deadline.clone()),
                    _ => e.persisted.delete_by.clone(),
                },
            },
        })
    }

    /// `GovFetch`: the recipient's sealed outputs, for the TLS identity
    /// `party` only.
    pub fn fetch(
        &self,
        party: &str,
        analysis: &str,
        recipient: &str,
    ) -> Result<Vec<SealedOutput>, NodeGovError> {
        let id = self.parse_id(analysis)?;
        let r = self.fetch_checked(party, id, recipient);
        if let Err(e) = &r {
            self.log_refusal(Some(id), "fetch", party, e);
        }
        r
    }

    fn fetch_checked(
        &self,
        party: &str,
        id: AnalysisId,
        recipient: &str,
    ) -> Result<Vec<SealedOutput>, NodeGovError> {
        let node = self.node;
        let hex = id.to_hex();
        let entries = lock(&self.entries);
        let e = entries.get(&id).ok_or(NodeGovError::NotRegistered {
            node,
            analysis: hex.clone(),
        })?;
        if party != recipient {
            return Err(NodeGovError::NotRecipient {
                party: party.into(),
                recipient: recipient.into(),
                analysis: hex,
            });
        }
        if e.spec.recipient(recipient).is_none() {
            return Err(NodeGovError::NoOutputs {
                recipient: recipient.into(),
                analysis: hex,
            });
        }
        match &e.persisted.state {
            GovState::Done { .. } => {}
            GovState::Expired => {
                return Err(NodeGovError::Expired {
                    node,
                    analysis: hex,
                    deadline: "passed".into(),
                })
            }
            other => {
                return Err(NodeGovError::WrongState {
                    node,
                    analysis: hex,
                    state: state_name(other).into(),
                    what: "there are no results yet; wait until `kuvert status` says done".into(),
                })
            }
        }
        if let GovState::Done { deadline } = &e.persisted.state {
            if parse_time(deadline).is_some_and(|d| d <= time::OffsetDateTime::now_utc()) {
                return Err(NodeGovError::Expired {
                    node,
                    analysis: hex,
                    deadline: deadline.clone(),
                });
            }
        }
        let path = self
            .adir(&id)
            .join("results")
            .join(format!("{recipient}.sealed.json"));
        let bytes = std::fs::read(&path).map_err(|e| NodeGovError::store(&path, e))?;
        let boxes: Vec<SealedOutput> =
            serde_json::from_slice(&bytes).map_err(|e| NodeGovError::store(&path, e))?;
        drop(entries);
        self.log(
            self.event(actions::RESULTS_FETCHED, id)
                .detail("recipient", recipient)
                .detail("outputs", boxes.len() as u64),
        )?;
        Ok(boxes)
    }

    /// Reload every analysis under `data_dir/analyses` (on start).
    fn reload(&self) -> Result<(), NodeGovError> {
        let Ok(dirs) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        let mut entries = lock(&self.entries);
        for d in dirs.flatten() {
            let dir = d.path();
            let name = d.file_name().to_string_lossy().to_string();
            match self.reload_one(&dir, &name) {
                Ok(Some((id, e))) => {
                    entries.insert(id, e);
                }
                Ok(None) => {}
                Err(err) => {
                    let Ok(id) = name.parse::<AnalysisId>() else {
                        continue;
                    };
                    // It never runs here, but whatever shares it holds are
                    // deleted at the time fixed at registration (now, when
                    // that cannot be read).
                    let when = std::fs::read(dir.join("state.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Persisted>(&b).ok())
                        .and_then(|p| p.delete_by)
                        .and_then(|t| parse_time(&t))
                        .unwrap_or_else(time::OffsetDateTime::now_utc);
                    tracing::warn!(node = self.node, dir = %dir.display(), error = %err, delete_by = %rfc3339(when), "an analysis directory does not check out any more: it will not run, and its shares are deleted at its deletion time");
                    let logged = self.log(
                        self.event(actions::QUARANTINED, id)
                            .detail("reason", err.to_string())
                            .detail("delete_by", rfc3339(when)),
                    );
                    if let Err(e) = logged {
                        tracing::error!(node = self.node, error = %e, "cannot write the audit log");
                    }
                    lock(&self.quarantined).insert(id, when);
                }
            }
        }
        Ok(())
    }

    fn reload_one(
        &self,
        dir: &Path,
        name: &str,
    ) -> Result<Option<(AnalysisId, Entry)>, NodeGovError> {
        let Ok(id) = name.parse::<AnalysisId>() else {
            return Ok(None);
        };
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read(&p).map_err(|e| NodeGovError::store(&p, e))
        };
        let text = String::from_utf8(read("spec.toml")?)
            .map_err(|e| NodeGovError::store(&dir.join("spec.toml"), e))?;
        let approvals: Vec<Approval> = serde_json::from_slice(&read("approvals.json")?)
            .map_err(|e| NodeGovError::store(&dir.join("approvals.json"), e))?;
        // The stored spec and approvals are checked again: a data directory
        // edited while the node was down must not slip an analysis in.
        let spec = self.check(&text, &approvals)?;
        if spec.id() != id {
            return Err(NodeGovError::store(
                dir,
                format!(
                    "the stored spec's id is {}, not the directory name",
                    spec.id()
                ),
            ));
        }
        let mut persisted: Persisted = serde_json::from_slice(&read("state.json")?)
            .map_err(|e| NodeGovError::store(&dir.join("state.json"), e))?;
        let mut tables = BTreeMap::new();
        if let Ok(files) = std::fs::read_dir(dir.join("shares")) {
            for f in files.flatten() {
                let fname = f.file_name().to_string_lossy().to_string();
                let Some(table) = fname.strip_suffix(".shares") else {
                    continue;
                };
                if fname.starts_with('.') {
                    continue;
                }
                match crate::server::load_table(&f.path()) {
                    Ok(t) => {
                        tables.insert(table.to_string(), t);
                    }
                    Err(e) => {
                        tracing::warn!(node = self.node, file = %f.path().display(), error = %e, "skipping an unreadable share file")
                    }
                }
            }
        }
        let receipt = std::fs::read(dir.join("receipt.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<DeletionReceipt>(&b).ok());
        if persisted.delete_by.is_none() {
            // A state file from before deletion times were fixed at
            // registration: the registration time is when spec.toml was
            // written (now, if the file system does not say).
            let registered = std::fs::metadata(dir.join("spec.toml"))
                .and_then(|m| m.modified())
                .map(time::OffsetDateTime::from)
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
            persisted.delete_by = match &persisted.state {
                GovState::Done { deadline } => Some(deadline.clone()),
                _ => delete_by(&spec.retention.result_deadline, registered).map(rfc3339),
            };
            write_atomic(&dir.join("state.json"), &json(&persisted))?;
        }
        if matches!(persisted.state, GovState::Running { .. }) {
            // Boxes sealed before the stop are never released: the run
            // did not finish.
            let partial = dir.join("results");
            if partial.exists() {
                std::fs::remove_dir_all(&partial).map_err(|e| NodeGovError::store(&partial, e))?;
            }
            let inputs_kept = !tables.is_empty();
            persisted.state = GovState::Failed {
                reason: "node restarted during the run".into(),
                refused: false,
                inputs_kept,
            };
            write_atomic(&dir.join("state.json"), &json(&persisted))?;
            self.log(
                self.event(action::JOB_FINISHED, id)
                    .detail("node", self.node as u64)
                    .detail("status", "interrupted")
                    .detail("inputs_kept", inputs_kept),
            )?;
        }
        tracing::info!(node = self.node, analysis = %id, state = state_name(&persisted.state), tables = tables.len(), "reloaded analysis");
        Ok(Some((
            id,
            Entry {
                demands: self.demands(&spec)?,
                spec,
                persisted,
                tables,
                progress: None,
                receipt,
                queued_at: None,
            },
        )))
    }

    /// Stop the worker and sweeper threads (for tests and shutdown).
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_all();
    }

    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The MPC worker: runs queued analyses one at a time, each after the
    /// three nodes agreed which one (see [`Gov::agree`]).
    pub fn worker(self: Arc<Self>, link: MpcLink) {
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.is_empty() && !self.stopped() {
                    pending = self
                        .wake
                        .wait_timeout(pending, Duration::from_millis(500))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
            if self.stopped() {
                return;
            }
            let busy = Arc::clone(&link.busy);
            let guard = lock(&busy);
            let offer: Vec<AnalysisId> = lock(&self.pending)
                .iter()
                .take(MAX_PENDING_OFFER)
                .copied()
                .collect();
            if offer.is_empty() {
                continue;
            }
            match self.agree(&link, &offer) {
                Ok((transport, Some(id))) => {
                    lock(&self.pending).remove(&id);
                    self.run_one(transport, id);
                    drop(guard);
                }
                Ok((transport, None)) => {
                    drop(transport);
                    drop(guard);
                    // Someone has not been told yet; give it a moment, and give
                    // up on analyses that waited too long.
                    self.give_up_stale(link.connect_timeout * 3);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(reason) => {
                    drop(guard);
                    for id in offer {
                        lock(&self.pending).remove(&id);
                        self.fail(
                            id,
                            format!("cannot reach the other nodes: {reason}; check that all three nodes are up, then run again"),
                            false,
                        );
                    }
                }
            }
        }
    }

    fn give_up_stale(&self, limit: Duration) {
        let stale: Vec<AnalysisId> = {
            let entries = lock(&self.entries);
            lock(&self.pending)
                .iter()
                .filter(|id| {
                    entries
                        .get(id)
                        .and_then(|e| e.queued_at)
                        .is_some_and(|t| t.elapsed() > limit)
                })
                .copied()
                .collect()
        };
        for id in stale {
            lock(&self.pending).remove(&id);
            self.fail(
                id,
                "the other nodes were not asked to run this analysis in time; ask all three nodes to run it again".into(),
                false,
            );
        }
    }

    /// Connect to the other nodes and agree which queued analysis to run:
    /// each node sends its queue (ids), every node computes the same
    /// intersection, and all three run its smallest id. `None` when no
    /// analysis is queued at all three (the connection is then dropped).
    /// So a node never runs analysis A against a node running B.
    fn agree(
        &self,
        link: &MpcLink,
        offer: &[AnalysisId],
    ) -> Result<(TlsTransport, Option<AnalysisId>), String> {
        let mut cfg = NetConfig::new(self.node, link.nodes, link.tls.clone());
        cfg.io_timeout = link.io_timeout;
        cfg.connect_timeout = link.connect_timeout;
        // Bind this node's MPC address first, retrying briefly: the port can
        // be held for a moment (a client's source port, a closing socket).
        let addr = link.nodes[self.node];
        let until = Instant::now() + link.connect_timeout;
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < until => {
                    tracing::debug!(node = self.node, %addr, error = %e, "MPC address busy; retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
            }
        };
        let mut t =
            TlsTransport::connect_with_listener(cfg, listener).map_err(|e| e.to_string())?;
        let me = self.node;
        let peers: Vec<usize> = (0..3).filter(|j| *j != me).collect();
        let count = (offer.len() as u32).to_be_bytes();
        let mut counts = [[0u8; 4]; 2];
        {
            let out: Vec<Outgoing> = peers
                .iter()
                .map(|&j| Outgoing {
                    to: j,
                    data: &count,
                })
                .collect();
            let [c0, c1] = &mut counts;
            let mut inc = [
                Incoming {
                    from: peers[0],
                    buf: c0,
                },
                Incoming {
                    from: peers[1],
                    buf: c1,
                },
            ];
            t.round(&out, &mut inc).map_err(|e| e.to_string())?;
        }
        let n: Vec<usize> = counts
            .iter()
            .map(|c| u32::from_be_bytes(*c) as usize)
            .collect();
        if n.iter().any(|&k| k > MAX_PENDING_OFFER) {
            return Err("a node offered too many analyses".into());
        }
        let mine: Vec<u8> = offer.iter().flat_map(|id| id.0).collect();
        let mut theirs = [vec![0u8; 32 * n[0]], vec![0u8; 32 * n[1]]];
        {
            let out: Vec<Outgoing> = peers
                .iter()
                .map(|&j| Outgoing { to: j, data: &mine })
                .collect();
            let [b0, b1] = &mut theirs;
            let mut inc = [
                Incoming {
                    from: peers[0],
                    buf: b0,
                },
                Incoming {
                    from: peers[1],
                    buf: b1,
                },
            ];
            t.round(&out, &mut inc).map_err(|e| e.to_string())?;
        }
        let set = |b: &[u8]| -> BTreeSet<[u8; 32]> {
            b.chunks_exact(32)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect()
        };
        let (a, b) = (set(&theirs[0]), set(&theirs[1]));
        let chosen = offer
            .iter()
            .filter(|id| a.contains(&id.0) && b.contains(&id.0))
            .min()
            .copied();
        Ok((t, chosen))
    }

    fn fail(&self, id: AnalysisId, reason: String, refused: bool) {
        let mut entries = lock(&self.entries);
        let Some(e) = entries.get_mut(&id) else {
            return;
        };
        e.progress = None;
        e.queued_at = None;
        e.persisted.state = GovState::Failed {
            reason: reason.clone(),
            refused,
            inputs_kept: !e.tables.is_empty(),
        };
        let saved = self.save_state(&id, &e.persisted);
        drop(entries);
        tracing::error!(node = self.node, analysis = %id, %reason, "run failed; nothing released, inputs kept");
        let logged = self.log(
            self.event(action::JOB_FINISHED, id)
                .detail("node", self.node as u64)
                .detail("status", if refused { "refused" } else { "failed" })
                .detail("reason", reason),
        );
        for r in [saved, logged] {
            if let Err(e) = r {
                tracing::error!(node = self.node, error = %e, "cannot record the failed run");
            }
        }
    }

    /// Run every distinct output of `id` over the agreed transport, then
    /// seal, delete and sign.
    fn run_one(&self, transport: TlsTransport, id: AnalysisId) {
        let started = Instant::now();
        let (outputs, mut tables, demands, security) = {
            let mut entries = lock(&self.entries);
            let Some(e) = entries.get_mut(&id) else {
                return;
            };
            (
                e.outputs(),
                std::mem::take(&mut e.tables),
                e.demands.clone(),
                // The approved spec's protocol decides, at every node.
                if e.spec.malicious() {
                    kuvert_mpc::Security::Malicious
                } else {
                    kuvert_mpc::Security::SemiHonest
                },
            )
        };
        // A malicious-mode job ends with the nodes' signed agreement on its
        // outcome, which needs the three nodes' receipt keys: refused
        // before anything is charged or computed if this node lacks them.
        let node_keys = *lock(&self.node_keys);
        if security == kuvert_mpc::Security::Malicious && node_keys.is_none() {
            self.restore(id, tables);
            self.fail(
                id,
                "this node does not know the three nodes' receipt-signing keys, which the \
                 agreement on a malicious-mode job's outcome verifies: run it with the \
                 federation file (or node-<i>.gov.pub of all three nodes in its pki_dir)"
                    .into(),
                true,
            );
            return;
        }
        // The privacy budget is charged here, synced to disk before any
        // share is used; refused, nothing runs and the inputs stay.
        let batch = match self.charge(id, &demands) {
            Ok(b) => b,
            Err(err) => {
                self.restore(id, tables);
                self.fail(id, err.to_string(), true);
                return;
            }
        };
        if let Err(err) = self.log(
            self.event(action::JOB_STARTED, id)
                .detail("node", self.node as u64)
                .detail("outputs", outputs.len() as u64),
        ) {
            self.restore(id, tables);
            self.refund(id, batch, "the audit log could not be written");
            self.fail(id, format!("cannot write the audit log: {err}"), false);
            return;
        }
        let mut party =
            match Party::setup_with(Box::new(transport), &mut rand_core::OsRng, security) {
                Ok(p) => p,
                Err(err) => {
                    self.restore(id, tables);
                    // No share has been used: the session never started.
                    self.refund(
                        id,
                        batch,
                        "the session with the other nodes could not be set up",
                    );
                    self.fail(
                        id,
                        format!("session setup with the other nodes failed: {err}"),
                        false,
                    );
                    return;
                }
            };
        // From here on shares are used: the charge is never refunded.
        // First, every uploaded share component must be the same at the two
        // nodes that hold it (kuvert_mpc::consistency): a contributor (or a
        // node) with inconsistent shares would make the nodes compute on
        // different inputs. 2 rounds, 34 bytes per node, nothing revealed.
        let columns: Vec<&kuvert_mpc::AShare> =
            tables.values().flat_map(|t| t.columns.iter()).collect();
        if let Err(err) = party.check_consistent_a(&columns) {
            drop(columns);
            drop(party);
            self.restore(id, tables);
            self.fail(
                id,
                format!(
                    "the input shares do not agree between the nodes ({err}); nothing was \
                     computed or released. A contributor's shares were inconsistent or a node \
                     altered its copy: compare the nodes' audit logs (payload_sha256 of each \
                     upload), then submit the analysis again and upload again"
                ),
                false,
            );
            return;
        }
        drop(columns);
        let compute_start = Instant::now();
        let total = outputs.len() as u64;
        let mut results: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
        for (k, (name, sql)) in outputs.iter().enumerate() {
            self.set_state(
                id,
                GovState::Running {
                    output: name.clone(),
                    done: k as u64,
                    total,
                },
            );
            let mut progress = |done: usize, all: usize| {
                if let Some(e) = lock(&self.entries).get_mut(&id) {
                    e.progress = Some(Progress {
                        done: done as u64,
                        total: all as u64,
                    });
                }
            };
            match exec::run_query(&mut party, sql, &mut tables, &mut progress) {
                Ok(shares) => {
                    results.insert(name.clone(), Zeroizing::new(shares.into_inner().to_bytes()));
                }
                Err(f) => {
                    // Nothing is released: the other outputs' shares are
                    // dropped (zeroized) with `results`.
                    drop(results);
                    drop(party);
                    self.restore(id, tables);
                    let (reason, refused) = match f {
                        QueryFailure::Refused(m) => (format!("output {name:?}: {m}"), true),
                        QueryFailure::Failed(m) => (format!("output {name:?}: {m}"), false),
                    };
                    self.fail(id, reason, refused);
                    return;
                }
            }
        }
        // Malicious mode: the nodes agree, by signed messages, that every
        // node's checks passed before any node stores a result or deletes
        // an input, so that a deviating node cannot make one honest node
        // abort while the other goes on (crate::agree).
        if let (kuvert_mpc::Security::Malicious, Some(keys)) = (security, node_keys) {
            let session = party.session_tag();
            let verdict = crate::agree::agree(
                party.transport_mut(),
                self.node,
                &session,
                true,
                &self.key,
                &keys,
            );
            let logged = self.log(
                self.event(actions::OUTCOME_AGREED, id)
                    .detail("node", self.node as u64)
                    .detail("commit", if verdict.commit { "true" } else { "false" })
                    .detail("detail", verdict.detail.clone()),
            );
            if let Err(e) = logged {
                tracing::error!(node = self.node, error = %e, "cannot log the outcome agreement");
            }
            if !verdict.commit {
                drop(results);
                drop(party);
                self.restore(id, tables);
                self.fail(
                    id,
                    format!(
                        "the nodes did not all confirm that every check passed ({}); nothing was \
                         released and the inputs are kept: read the other nodes' logs for the \
                         check that failed, then run the analysis again",
                        verdict.detail
                    ),
                    false,
                );
                return;
            }
        }
        let s = party.stats();
        let stats = JobStats {
            rounds: s.rounds,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            millis: started.elapsed().as_millis() as u64,
            compute_millis: compute_start.elapsed().as_millis() as u64,
            peak_rss_kib: crate::server::peak_rss_kib(),
        };
        // The session keys (PRF keys, zeroized on drop by kuvert-mpc) and
        // the TLS sessions with the other nodes end here.
        drop(party);
        if let Err(err) = self.finish(id, tables, &results, stats) {
            // A storage or audit failure after the computation: release
            // nothing (remove any boxes written) and say why.
            let partial = self.adir(&id).join("results");
            let _ = std::fs::remove_dir_all(&partial);
            self.fail(
                id,
                format!("could not store the results: {err}; fix the node's storage and run again"),
                false,
            );
        }
    }

    /// Charge `spec`'s DP outputs to this node's ledger as one batch
    /// (`None`: it has none) and log it.
    fn charge(
        &self,
        id: AnalysisId,
        demands: &[crate::budget::Demand],
    ) -> Result<Option<u64>, NodeGovError> {
        let node = self.node;
        if demands.is_empty() {
            return Ok(None);
        }
        let batch = lock(&self.ledger)
            .charge(&id.to_hex(), demands)
            .map_err(|source| NodeGovError::Budget { node, source })?;
        let outputs: BTreeSet<&str> = demands.iter().map(|d| d.output.as_str()).collect();
        let epsilon: f64 = demands.iter().map(|d| d.epsilon).sum();
        let logged = self.log(
            self.event(actions::BUDGET_CHARGED, id)
                .detail("batch", batch)
                .detail("charges", demands.len() as u64)
                .detail("outputs", outputs.into_iter().collect::<Vec<_>>().join(","))
                .detail("epsilon", format!("{epsilon}")),
        );
        if let Err(e) = logged {
            self.refund(id, Some(batch), "the audit log could not be written");
            return Err(e);
        }
        tracing::info!(node, analysis = %id, batch, "privacy budget charged");
        Ok(Some(batch))
    }

    /// Return the charges of `batch` (allowed only while no share was used).
    fn refund(&self, id: AnalysisId, batch: Option<u64>, reason: &str) {
        let Some(batch) = batch else { return };
        match lock(&self.ledger).refund(batch, reason) {
            Ok(n) => {
                let r = self.log(
                    self.event(actions::BUDGET_REFUNDED, id)
                        .detail("batch", batch)
                        .detail("charges", n as u64)
                        .detail("reason", reason),
                );
                if let Err(e) = r {
                    tracing::error!(node = self.node, error = %e, "cannot log a budget refund");
                }
            }
            Err(e) => {
                tracing::error!(node = self.node, error = %e, "cannot refund a budget charge; it stays charged")
            }
        }
    }

    fn restore(&self, id: AnalysisId, tables: BTreeMap<String, StoredTable>) {
        if let Some(e) = lock(&self.entries).get_mut(&id) {
            e.tables = tables;
        }
    }

    fn set_state(&self, id: AnalysisId, state: GovState) {
        if let Some(e) = lock(&self.entries).get_mut(&id) {
            e.persisted.state = state;
            e.progress = None;
            if let Err(err) = self.save_state(&id, &e.persisted) {
                tracing::warn!(node = self.node, error = %err, "cannot save the state");
            }
        }
    }

    /// Seal every recipient's outputs, store them, then delete as the
    /// retention rule says.
    fn finish(
        &self,
        id: AnalysisId,
        tables: BTreeMap<String, StoredTable>,
        results: &BTreeMap<String, Zeroizing<Vec<u8>>>,
        stats: JobStats,
    ) -> Result<(), NodeGovError> {
        let node = self.node;
        let spec = match lock(&self.entries).get(&id) {
            Some(e) => e.spec.clone(),
            None => return Ok(()),
        };
        // Seal everything first; store only when every box is made, so a
        // failure releases nothing.
        let mut sealed: Vec<(String, Vec<SealedOutput>, Vec<SealedSize>)> = Vec::new();
        for r in &spec.recipients {
            let Some(pk) = kuvert_gov::KemPublicKey::parse(&r.kem_public_key) else {
                self.restore(id, tables);
                self.fail(
                    id,
                    format!(
                        "recipient {:?}'s result key (kem_public_key) does not parse",
                        r.id
                    ),
                    true,
                );
                return Ok(());
            };
            let mut boxes = Vec::new();
            let mut sizes = Vec::new();
            for o in &r.outputs {
                let Some(bytes) = results.get(&o.name) else {
                    continue;
                };
                let mut pt = Zeroizing::new(Vec::with_capacity(4 + o.name.len() + bytes.len()));
                pt.extend_from_slice(&(o.name.len() as u32).to_be_bytes());
                pt.extend_from_slice(o.name.as_bytes());
                pt.extend_from_slice(bytes);
                let b = match kuvert_gov::seal(&pk, &id, node as u8, &pt) {
                    Ok(b) => b,
                    Err(e) => {
                        self.restore(id, tables);
                        self.fail(id, format!("cannot seal output {:?}: {e}", o.name), false);
                        return Ok(());
                    }
                };
                let rows = kuvert_sql::output::ResultShares::from_bytes(bytes, "self")
                    .map(|s| s.rows as u64)
                    .unwrap_or(0);
                sizes.push((o.name.clone(), rows, b.ciphertext.len() as u64));
                boxes.push(SealedOutput {
                    output: o.name.clone(),
                    sealed: b,
                    audit_head: None,
                });
            }
            sealed.push((r.id.clone(), boxes, sizes));
        }
        let dir = self.adir(&id);
        for (recipient, boxes, sizes) in &mut sealed {
            // Each box carries the audit head just after its result_sealed
            // record, which `kuvert audit verify` finds in the node's log.
            for ((output, rows, bytes), b) in sizes.iter().zip(boxes.iter_mut()) {
                b.audit_head = Some(
                    self.log_head(
                        self.event(action::RESULT_SEALED, id)
                            .detail("output", output.as_str())
                            .detail("recipient", recipient.as_str())
                            .detail("rows", *rows)
                            .detail("bytes", *bytes),
                    )?,
                );
            }
            write_atomic(
                &dir.join("results").join(format!("{recipient}.sealed.json")),
                &json(boxes),
            )?;
        }
        let deadline = match &spec.retention.result_deadline {
            Deadline::Days(d) => (time::OffsetDateTime::now_utc()
                + time::Duration::days(i64::from(*d)))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
            Deadline::At(s) => parse_time(s)
                .map(|t| {
                    t.to_offset(time::UtcOffset::UTC)
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                })
                .unwrap_or_else(|| s.clone()),
        };
        let table_names: Vec<String> = tables.keys().cloned().collect();
        if spec.retention.delete_shares_at_job_end {
            drop(tables);
            self.delete_inputs(id, &table_names, "job end")?;
        } else {
            self.restore(id, tables);
        }
        {
            let mut entries = lock(&self.entries);
            if let Some(e) = entries.get_mut(&id) {
                e.persisted.state = GovState::Done {
                    deadline: deadline.clone(),
                };
                // The job ended: the result deadline replaces the time
                // fixed at registration.
                e.persisted.delete_by = Some(deadline.clone());
                e.persisted.stats = Some(stats);
                e.progress = None;
                e.queued_at = None;
                self.save_state(&id, &e.persisted)?;
            }
        }
        self.log(
            self.event(action::JOB_FINISHED, id)
                .detail("node", node as u64)
                .detail("status", "ok")
                .detail("rounds", stats.rounds)
                .detail("bytes_sent", stats.bytes_sent)
                .detail("deadline", deadline.as_str()),
        )?;
        tracing::info!(node, analysis = %id, rounds = stats.rounds, millis = stats.millis, "analysis done; results sealed");
        Ok(())
    }

    /// Delete the input shares (files and memory) of `id`, log it, and sign
    /// and store the deletion receipt.
    fn delete_inputs(
        &self,
        id: AnalysisId,
        tables: &[String],
        when: &str,
    ) -> Result<(), NodeGovError> {
        let node = self.node;
        if let Some(e) = lock(&self.entries).get_mut(&id) {
            e.tables.clear();
        }
        let shares = self.adir(&id).join("shares");
        if shares.exists() {
            std::fs::remove_dir_all(&shares).map_err(|e| NodeGovError::store(&shares, e))?;
        }
        // The head the receipt pins is the shares_deleted record itself:
        // appended and read under one lock, so no other record (a refusal
        // on another thread) can come between.
        let head = self.log_head(
            self.event(action::SHARES_DELETED, id)
                .detail("node", node as u64)
                .detail("tables", tables.to_vec())
                .detail("intermediate_state", true)
                .detail("session_keys", true)
                .detail("when", when),
        )?;
        let receipt = DeletionReceipt::sign(
            &self.key,
            id,
            &id.to_hex(),
            node as u8,
            Deleted {
                tables: tables.to_vec(),
                intermediate_state: true,
                session_keys: true,
            },
            Some(head),
        );
        write_atomic(&self.adir(&id).join("receipt.json"), &json(&receipt))?;
        self.log(
            self.event(actions::RECEIPT_SIGNED, id)
                .detail("node", node as u64)
                .detail("receipt", receipt.signature.as_str())
                .detail("tables", tables.to_vec()),
        )?;
        if let Some(e) = lock(&self.entries).get_mut(&id) {
            e.receipt = Some(receipt);
        }
        Ok(())
    }

    /// Delete everything whose deadline has passed now: see
    /// [`Gov::sweep_at`].
    pub fn sweep(&self) -> Vec<AnalysisId> {
        self.sweep_at(time::OffsetDateTime::now_utc())
    }

    /// Delete everything whose deadline is at or before `now`: sealed
    /// results of done analyses past the result deadline, and analyses
    /// whose job never ended (waiting, ready, failed) past the deletion
    /// time fixed at registration. Shares still held are deleted with a
    /// signed receipt; the analysis becomes `Expired`. Returns the
    /// analyses expired.
    pub fn sweep_at(&self, now: time::OffsetDateTime) -> Vec<AnalysisId> {
        let due: Vec<(AnalysisId, Vec<String>, bool, bool)> = {
            let entries = lock(&self.entries);
            entries
                .iter()
                .filter_map(|(id, e)| {
                    let (deadline, ran) = match &e.persisted.state {
                        GovState::Done { deadline } => (parse_time(deadline), true),
                        GovState::Running { .. } | GovState::Expired => (None, false),
                        // Never ran, waiting, ready, failed: the time fixed
                        // at registration (the spec's, for a state file
                        // that has none).
                        _ => (
                            e.persisted
                                .delete_by
                                .as_deref()
                                .and_then(parse_time)
                                .or_else(|| match &e.spec.retention.result_deadline {
                                    Deadline::At(s) => parse_time(s),
                                    Deadline::Days(_) => None,
                                }),
                            false,
                        ),
                    };
                    (deadline? <= now).then(|| {
                        (
                            *id,
                            e.tables.keys().cloned().collect(),
                            e.receipt.is_none() && !e.tables.is_empty(),
                            ran,
                        )
                    })
                })
                .collect()
        };
        let mut done = Vec::new();
        // Analyses that no longer check out: delete their shares and
        // results at their deletion time, with a receipt.
        let gone: Vec<AnalysisId> = lock(&self.quarantined)
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            let r = (|| -> Result<(), NodeGovError> {
                let adir = self.adir(&id);
                let results = adir.join("results");
                if results.exists() {
                    std::fs::remove_dir_all(&results)
                        .map_err(|e| NodeGovError::store(&results, e))?;
                }
                let tables: Vec<String> = std::fs::read_dir(adir.join("shares"))
                    .map(|d| {
                        d.flatten()
                            .filter_map(|f| {
                                f.file_name()
                                    .to_string_lossy()
                                    .strip_suffix(".shares")
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if !tables.is_empty() {
                    self.delete_inputs(
                        id,
                        &tables,
                        "deletion time; the analysis no longer checks out at this node",
                    )?;
                }
                Ok(())
            })();
            match r {
                Ok(()) => {
                    lock(&self.quarantined).remove(&id);
                    done.push(id);
                }
                Err(e) => {
                    tracing::error!(node = self.node, analysis = %id, error = %e, "could not delete a quarantined analysis' shares")
                }
            }
        }
        for (id, tables, shares_held, ran) in due {
            let r = (|| -> Result<(), NodeGovError> {
                let results = self.adir(&id).join("results");
                if results.exists() {
                    std::fs::remove_dir_all(&results)
                        .map_err(|e| NodeGovError::store(&results, e))?;
                }
                if shares_held {
                    let when = if ran {
                        "deadline"
                    } else {
                        "deletion time, job never ended"
                    };
                    self.delete_inputs(id, &tables, when)?;
                }
                let mut entries = lock(&self.entries);
                if let Some(e) = entries.get_mut(&id) {
                    e.persisted.state = GovState::Expired;
                    self.save_state(&id, &e.persisted)?;
                }
                drop(entries);
                self.log(
                    self.event(actions::RESULTS_EXPIRED, id)
                        .detail("node", self.node as u64)
                        .detail("ran", ran),
                )
            })();
            match r {
                Ok(()) => {
                    tracing::info!(node = self.node, analysis = %id, ran, "deadline passed: results and shares deleted");
                    done.push(id);
                }
                Err(e) => {
                    tracing::error!(node = self.node, analysis = %id, error = %e, "could not expire the analysis")
                }
            }
        }
        done
    }

    /// The sweeper thread: [`Gov::sweep`] every `period` until stopped.
    pub fn sweeper(self: Arc<Self>, period: Duration) {
        let mut last = Instant::now();
        while !self.stopped() {
            std::thread::sleep(Duration::from_millis(200).min(period));
            if last.elapsed() >= period {
                self.sweep();
                last = Instant::now();
            }
        }
    }
}

/// Lower-case hex.
pub fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Exactly `N` bytes from hex (either case); `None` otherwise.
pub fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim().as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// A node-0 store with the overlapping-benefits template registered,
    /// the fk key, and node 0's part of a signed upload of a small table:
    /// (schema, rows, payload, signature hex).
    fn registered() -> (
        tempfile::TempDir,
        Gov,
        AnalysisId,
        (String, u64, Vec<u8>, String),
    ) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let fk = PartyKey::generate_with("fk", &mut rng);
        let kommun = PartyKey::generate_with("kommun", &mut rng);
        let text = kuvert_gov::templates::get("overlapping-benefits")
            .unwrap()
            .replace(
                "kem_public_key = \"placeholder:fk\"",
                &format!("kem_public_key = \"{}\"", fk.kem_public().unwrap().to_base64()),
            )
            .replace(
                "kem_public_key = \"placeholder:kommun\"",
                &format!("kem_public_key = \"{}\"", kommun.kem_public().unwrap().to_base64()),
            )
            .replace(
                "kem_public_key = \"placeholder:kontroll\"",
                &format!("kem_public_key = \"{}\"", kommun.kem_public().unwrap().to_base64()),
            )
            .replace(
                "public_key = \"placeholder:fk\"",
                &format!("public_key = \"{}\"", fk.public().ed25519),
            )
            .replace(
                "public_key = \"placeholder:kommun\"",
                &format!("public_key = \"{}\"", kommun.public().ed25519),
            )
            .replace(
                "contact = \"placeholder: the analysis owner's functional mailbox, e.g. mpc-analys@myndighet.example\"",
                "contact = \"x@example.org\"",
            );
        let fp = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
        let nodes: Vec<kuvert_gov::spec::SpecNode> = ['a', 'b', 'c']
            .map(|c| kuvert_gov::spec::SpecNode {
                operator: "Op".into(),
                fingerprint: fp(c),
                endpoint: None,
            })
            .to_vec();
        let text = kuvert_gov::templates::set_nodes(&text, &nodes).unwrap();
        let spec = AnalysisSpec::parse(&text, "t", Validation::Strict).unwrap();
        let id = spec.id();
        let approvals = vec![
            kuvert_gov::sign_approval(&id, "fk", &fk),
            kuvert_gov::sign_approval(&id, "kommun", &kommun),
        ];
        let dir = tempfile::tempdir().unwrap();
        let open = |pins: NodePins| {
            Gov::open(
                0,
                dir.path(),
                &dir.path().join("n.gov.key"),
                false,
                None,
                pins,
            )
            .unwrap()
        };
        // Pinned as another node's key: the spec did not approve this node.
        let g = open(NodePins {
            own: fp('d'),
            federation: None,
        });
        let e = g.register("coordinator", &text, &approvals).unwrap_err();
        assert!(e.to_string().contains("approved other nodes"), "{e}");
        // In a federation whose node 2 differs from the spec's.
        let g = open(NodePins {
            own: fp('a'),
            federation: Some([fp('a'), fp('b'), fp('e')]),
        });
        let e = g.register("coordinator", &text, &approvals).unwrap_err();
        assert!(e.to_string().contains("as node 2"), "{e}");
        let g = open(NodePins {
            own: fp('a'),
            federation: Some([fp('a'), fp('b'), fp('c')]),
        });
        g.register("coordinator", &text, &approvals).unwrap();
        let schema: Schema = "pnr:idnr,forman:text,fran:date,till:date,belopp:int"
            .parse()
            .unwrap();
        let csv =
            "pnr,forman,fran,till,belopp\n811228-9874,sjukpenning,2025-01-01,2025-01-31,4711\n";
        let table = kuvert_data::read_csv(
            csv.as_bytes(),
            "t.csv",
            &schema,
            &kuvert_data::CsvOptions::default(),
        )
        .unwrap();
        let shares =
            kuvert_data::share_table(&table, kuvert_data::share::ShareKind::Arithmetic, &mut rng);
        let s = &shares[0];
        let mut payload = Vec::new();
        for c in &s.columns {
            payload.extend(wire::words_to_bytes(&c.a));
            payload.extend(wire::words_to_bytes(&c.b));
        }
        let digest: [u8; 32] = Sha256::digest(&payload).into();
        let schema = s.schema.to_compact();
        let msg = wire::upload_message(&id, 0, "fk", "fk", &schema, s.rows as u64, &digest);
        let sig = encode_hex(&fk.sign_upload(&msg).unwrap().to_bytes());
        (dir, g, id, (schema, s.rows as u64, payload, sig))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Any one bit flipped in the shares or in the signature makes the
        /// node refuse the upload, and the unaltered upload is accepted.
        #[test]
        fn any_altered_bit_of_a_signed_upload_is_refused(pos in 0usize..100_000, bit in 0u8..8, in_sig: bool) {
            let (_dir, g, id, (schema, rows, payload, sig)) = registered();
            let (mut p, mut sig_bytes) = (payload.clone(), decode_hex::<64>(&sig).unwrap());
            if in_sig {
                sig_bytes[pos % 64] ^= 1 << bit;
            } else {
                let n = p.len();
                p[pos % n] ^= 1 << bit;
            }
            let e = g
                .upload("fk", &id.to_hex(), "fk", "fk", &schema, rows, &encode_hex(&sig_bytes), p)
                .unwrap_err();
            prop_assert!(matches!(e, NodeGovError::BadSignature { .. }), "{}", e);
            prop_assert!(g.status(&id.to_hex()).unwrap().tables.is_empty());
            g.upload("fk", &id.to_hex(), "fk", "fk", &schema, rows, &sig, payload).unwrap();
            prop_assert_eq!(g.status(&id.to_hex()).unwrap().tables.len(), 1);
        }
    }

    #[test]
    fn hex_round_trip_and_refusals() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(encode_hex(&b), "0001abff");
        assert_eq!(decode_hex::<4>("0001ABff"), Some(b));
        assert_eq!(decode_hex::<4>("0001abf"), None);
        assert_eq!(decode_hex::<4>("0001abfg"), None);
        assert_eq!(decode_hex::<2>("0001abff"), None);
    }

    #[test]
    fn signing_keys_are_created_once_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let w = ensure_signing_keys(dir.path()).unwrap();
        assert_eq!(w.len(), 6);
        assert!(signing_pub_path(dir.path(), 2).exists());
        let pk = node_public_key(dir.path(), 1).unwrap();
        let k = PartyKey::load(&signing_key_path(dir.path(), 1)).unwrap();
        assert_eq!(pk, k.verifying_key());
        // A second call keeps the keys.
        assert!(ensure_signing_keys(dir.path()).unwrap().is_empty());
        assert_eq!(node_public_key(dir.path(), 1).unwrap(), pk);
    }

    /// The overlapping-benefits template with output `persons` given `sql`
    /// (for every recipient) and the given `[[dp]]` entry (ε, δ).
    fn spec_with(sql: &str, dp: Option<(f64, f64)>) -> AnalysisSpec {
        let mut s = kuvert_gov::templates::spec("overlapping-benefits").unwrap();
        for o in s.recipients.iter_mut().flat_map(|r| r.outputs.iter_mut()) {
            if o.name == "persons" {
                o.sql = sql.to_string();
            }
        }
        s.dp = dp
            .map(|(epsilon, delta)| kuvert_gov::spec::DpOutput {
                output: "persons".into(),
                epsilon,
                delta,
            })
            .into_iter()
            .collect();
        s
    }

    fn compile_err(sql: &str, dp: Option<(f64, f64)>) -> CompileError {
        compile_spec(&spec_with(sql, dp)).unwrap_err()
    }

    const DP_SQL: &str = "SELECT COUNT(*) AS n, SUM(belopp) AS s FROM fk \
        WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr, max_rows = 2, lo = 0, hi = 100)";

    #[test]
    fn compile_spec_accepts_every_template_and_a_consistent_dp_output() {
        for name in kuvert_gov::templates::names() {
            let s = kuvert_gov::templates::spec(name).unwrap();
            compile_spec(&s).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        compile_spec(&spec_with(DP_SQL, Some((1.0, 1e-6)))).unwrap();
        compile_spec(&spec_with("SELECT COUNT(*) AS n FROM fk", None)).unwrap();
    }

    #[test]
    fn compile_spec_refuses_a_column_the_tables_do_not_declare() {
        let e = compile_err("SELECT COUNT(*) AS n FROM fk WHERE kommun = 1", None);
        assert_eq!(e.output, "persons");
        assert!(e.message.contains("kommun"), "{e}");
        assert!(e.to_string().starts_with("output \"persons\": "), "{e}");
        // A schema that does not parse is named as "(schemas)".
        let mut s = spec_with("SELECT COUNT(*) AS n FROM fk", None);
        s.contributors[0].tables[0].schema = "pnr:nosuchtype".into();
        assert_eq!(compile_spec(&s).unwrap_err().output, "(schemas)");
    }

    #[test]
    fn compile_spec_refuses_a_dp_entry_without_with_privacy() {
        let e = compile_err("SELECT COUNT(*) AS n FROM fk", Some((1.0, 1e-6)));
        assert_eq!(e.output, "persons");
        assert!(
            e.message.contains("promises differential privacy")
                && e.message.contains("no WITH PRIVACY clause"),
            "{e}"
        );
    }

    #[test]
    fn compile_spec_refuses_with_privacy_without_a_dp_entry() {
        let e = compile_err(DP_SQL, None);
        assert_eq!(e.output, "persons");
        assert!(e.message.contains("no [[dp]] entry"), "{e}");
    }

    #[test]
    fn compile_spec_refuses_delta_zero_and_differing_parameters() {
        let e = compile_err(DP_SQL, Some((1.0, 0.0)));
        assert_eq!(e.output, "persons");
        assert!(e.message.contains("needs δ > 0"), "{e}");
        for dp in [(0.5, 1e-6), (2.0, 1e-6), (1.0, 1e-7), (1.0, 1e-5)] {
            let e = compile_err(DP_SQL, Some(dp));
            assert_eq!(e.output, "persons");
            assert!(e.message.contains("give the same ε and δ"), "{dp:?}: {e}");
        }
    }

    #[test]
    fn compile_spec_refuses_with_privacy_without_a_person_column() {
        let sql = "SELECT COUNT(*) AS n FROM fk WITH PRIVACY (epsilon = 1, delta = 1e-6, person = patient)";
        let e = compile_err(sql, Some((1.0, 1e-6)));
        assert_eq!(e.output, "persons");
        assert!(e.message.contains("person = patient"), "{e}");
        let sql = "SELECT COUNT(*) AS n FROM fk WITH PRIVACY (epsilon = 1, delta = 1e-6)";
        let e = compile_err(sql, Some((1.0, 1e-6)));
        assert!(e.message.contains("needs person = <column>"), "{e}");
    }

    /// Node 0 of `registered()`, opened again on the same data directory.
    fn reopen(dir: &Path) -> Gov {
        let fp = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
        Gov::open(
            0,
            dir,
            &dir.join("n.gov.key"),
            false,
            None,
            NodePins {
                own: fp('a'),
                federation: Some([fp('a'), fp('b'), fp('c')]),
            },
        )
        .unwrap()
    }

    #[test]
    fn the_deletion_time_is_fixed_at_registration_and_survives_a_restart() {
        let before = time::OffsetDateTime::now_utc();
        let (dir, g, id, (schema, rows, payload, sig)) = registered();
        let after = time::OffsetDateTime::now_utc();
        let hex = id.to_hex();
        g.upload("fk", &hex, "fk", "fk", &schema, rows, &sig, payload)
            .unwrap();
        // The template's `result_deadline = 30` (days): 30 days from
        // registration, although the job never ended.
        let by = g.status(&hex).unwrap().delete_by.expect("a deletion time");
        let t = parse_time(&by).unwrap();
        let month = time::Duration::days(30);
        assert!(before + month <= t && t <= after + month, "{by}");
        drop(g);

        // A restart keeps it (and the share).
        let g = reopen(dir.path());
        let st = g.status(&hex).unwrap();
        assert_eq!(st.delete_by.as_deref(), Some(by.as_str()));
        assert_eq!(st.tables.len(), 1);
        assert!(g.sweep_at(t - time::Duration::seconds(1)).is_empty());
        drop(g);

        // A state file written before deletion times existed gets one on
        // reload, from the registration (spec.toml's time).
        let state = dir.path().join("analyses").join(&hex).join("state.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("delete_by");
        std::fs::write(&state, serde_json::to_vec(&v).unwrap()).unwrap();
        let g = reopen(dir.path());
        let fixed = parse_time(&g.status(&hex).unwrap().delete_by.unwrap()).unwrap();
        assert!(
            (fixed - t).abs() < time::Duration::minutes(1),
            "{fixed} vs {t}"
        );
        drop(g);
        let g = reopen(dir.path());
        assert_eq!(
            parse_time(&g.status(&hex).unwrap().delete_by.unwrap()),
            Some(fixed)
        );

        // At that time the sweeper deletes the share with a signed receipt.
        assert_eq!(g.sweep_at(fixed), vec![id]);
        assert!(g.sweep_at(fixed).is_empty());
        let st = g.status(&hex).unwrap();
        assert_eq!(st.state, GovState::Expired);
        let r = st.receipt.expect("a receipt");
        assert_eq!(r.deleted.tables, vec!["fk".to_string()]);
        r.verify(&g.key.verifying_key()).unwrap();
        assert!(!dir
            .path()
            .join("analyses")
            .join(&hex)
            .join("shares")
            .exists());
        drop(g);
        let g = reopen(dir.path());
        assert_eq!(g.status(&hex).unwrap().state, GovState::Expired);
        assert!(g.status(&hex).unwrap().receipt.is_some());
    }

    #[test]
    fn shares_of_an_analysis_that_no_longer_checks_out_are_still_deleted_on_time() {
        let (dir, g, id, (schema, rows, payload, sig)) = registered();
        let hex = id.to_hex();
        g.upload("fk", &hex, "fk", "fk", &schema, rows, &sig, payload)
            .unwrap();
        let by = parse_time(&g.status(&hex).unwrap().delete_by.unwrap()).unwrap();
        drop(g);
        // The node restarts in another federation: the stored analysis names
        // other nodes, so it is not loaded and can never run here ...
        let fp = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
        let g = Gov::open(
            0,
            dir.path(),
            &dir.path().join("n.gov.key"),
            false,
            None,
            NodePins {
                own: fp('a'),
                federation: Some([fp('a'), fp('e'), fp('f')]),
            },
        )
        .unwrap();
        assert_eq!(g.status(&hex).unwrap().state, GovState::Unknown);
        let shares = dir
            .path()
            .join("analyses")
            .join(&hex)
            .join("shares/fk.shares");
        assert!(shares.exists());
        // ... but its shares go at the deletion time fixed at registration,
        // with a signed receipt, and not before.
        assert!(g.sweep_at(by - time::Duration::seconds(1)).is_empty());
        assert!(shares.exists());
        assert_eq!(g.sweep_at(by), vec![id]);
        assert!(!shares.exists());
        let receipt: DeletionReceipt = serde_json::from_slice(
            &std::fs::read(dir.path().join("analyses").join(&hex).join("receipt.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(receipt.deleted.tables, vec!["fk".to_string()]);
        receipt.verify(&g.key.verifying_key()).unwrap();
        let log = kuvert_gov::verify_file(&dir.path().join("audit-node0.log")).unwrap();
        assert!(log.iter().any(|r| r.action == actions::QUARANTINED));
        assert!(g.sweep_at(by).is_empty());
    }
}
