//! Tamper-evident audit logs: append-only JSON lines, each holding the hash
//! of the line before it.
//!
//! One record per line, in the canonical JSON form (sorted keys, no
//! whitespace):
//!
//! ```text
//! {"action":"shares_received","actor":"node0","analysis_id":"5f..","details":{"contributor":"fk","rows":10000,"table":"fk"},"hash":"9a..","job":"job-1","prev":"00..00","seq":0,"time":"2026-11-23T16:00:00Z"}
//! ```
//!
//! `hash` = SHA-256 of the canonical JSON of the record without `hash`;
//! `prev` = the previous line's `hash` (64 zeros on the first line); `seq`
//! counts lines from 0. Details hold sizes, counts, names and node ids:
//! strings, integers, booleans and lists of those, never a table value.
//!
//! [`verify_file`] fails on any altered, removed, inserted or reordered
//! line, naming the line; only the removal of the *last* lines cannot be
//! seen in one file (see the crate's `# Security`): compare heads.
//! [`verify_dir`] verifies every `audit*` file under a directory and checks
//! that records of different files about the same job agree (see
//! [`CROSS_CHECKED`]), that every receipt and sealed result found there is
//! pinned in its node's log, and that each log holds what the others imply
//! ([`verify_dir_with`]: a log cut short is caught unless everything that
//! pins it is cut too).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::error::GovError;
use crate::hex;
use crate::receipt::{AuditHead, DeletionReceipt};
use crate::spec::AnalysisId;

mod truncation;

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Well-known actions. Others may be logged; these have a fixed meaning.
pub mod action {
    /// The node checked an analysis' approvals and accepted it.
    /// details: `contributors` (count).
    pub const ANALYSIS_ACCEPTED: &str = "analysis_accepted";
    /// A contributor's approval was received and verified. details: `contributor`.
    pub const APPROVAL_VERIFIED: &str = "approval_verified";
    /// A node received its shares of one table. details: `table`, `rows`,
    /// `columns`, `contributor`. Cross-checked: every node must log the same
    /// `rows` and `columns` for a job's table.
    pub const SHARES_RECEIVED: &str = "shares_received";
    /// A job started on a node. details: `node`.
    pub const JOB_STARTED: &str = "job_started";
    /// A job ended. details: `node`, `status` ("ok" or an error kind).
    pub const JOB_FINISHED: &str = "job_finished";
    /// A node sealed its result shares of one output to a recipient.
    /// details: `output`, `recipient`, `rows`, `bytes`. Cross-checked:
    /// `rows` must agree between nodes.
    pub const RESULT_SEALED: &str = "result_sealed";
    /// Shares, state and session keys of a job were deleted. details:
    /// `node`, `tables` (list), `receipt` (the receipt's signature, hex).
    pub const SHARES_DELETED: &str = "shares_deleted";
}

/// Actions whose records must agree between files for the same job:
/// (action, detail keys that identify the item, detail keys that must agree).
pub const CROSS_CHECKED: &[(&str, &[&str], &[&str])] = &[
    (action::SHARES_RECEIVED, &["table"], &["rows", "columns"]),
    (action::RESULT_SEALED, &["output", "recipient"], &["rows"]),
];

/// Something to log (the chain fields are added by [`AuditLog::append`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub actor: String,
    pub action: String,
    pub analysis_id: Option<AnalysisId>,
    pub job: Option<String>,
    pub details: BTreeMap<String, Value>,
}

impl AuditEvent {
    pub fn new(actor: &str, action: &str) -> AuditEvent {
        AuditEvent {
            actor: actor.to_string(),
            action: action.to_string(),
            analysis_id: None,
            job: None,
            details: BTreeMap::new(),
        }
    }

    pub fn analysis(mut self, id: AnalysisId) -> Self {
        self.analysis_id = Some(id);
        self
    }

    pub fn job(mut self, job: &str) -> Self {
        self.job = Some(job.to_string());
        self
    }

    /// Add a detail: a string, integer, boolean or a list of those.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// A node received its shares of `table` (`rows` × `columns`).
    pub fn shares_received(
        node: u8,
        id: AnalysisId,
        job: &str,
        contributor: &str,
        table: &str,
        rows: u64,
        columns: u64,
    ) -> AuditEvent {
        AuditEvent::new(&format!("node{node}"), action::SHARES_RECEIVED)
            .analysis(id)
            .job(job)
            .detail("contributor", contributor)
            .detail("table", table)
            .detail("rows", rows)
            .detail("columns", columns)
    }
}

/// One line of an audit file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_id: Option<AnalysisId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    pub details: BTreeMap<String, Value>,
    pub prev: String,
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record must carry: SHA-256 of its canonical JSON
    /// without the `hash` member.
    pub fn compute_hash(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("hash");
        }
        hex::encode(&Sha256::digest(canonical::to_string(&v).as_bytes()))
    }

    /// The record's line (canonical JSON, without the newline).
    pub fn to_line(&self) -> String {
        canonical::to_string(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

fn check_details(details: &BTreeMap<String, Value>) -> Result<(), GovError> {
    fn scalar(v: &Value) -> bool {
        match v {
            Value::String(_) | Value::Bool(_) => true,
            Value::Number(n) => n.is_i64() || n.is_u64(),
            _ => false,
        }
    }
    for (k, v) in details {
        let ok = match v {
            Value::Array(items) => items.iter().all(scalar),
            other => scalar(other),
        };
        if !ok {
            return Err(GovError::AuditDetail { key: k.clone() });
        }
    }
    Ok(())
}

/// An audit file open for appending.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
    last_hash: String,
}

impl AuditLog {
    /// Open (or create) the audit file at `path`, verifying the chain so
    /// far and resuming it. Refuses a broken chain: appending to it would
    /// hide the damage.
    pub fn open(path: &Path) -> Result<AuditLog, GovError> {
        check_name(path)?;
        let (next_seq, last_hash) = if path.exists() {
            let records = verify_file(path)?;
            match records.last() {
                Some(r) => (r.seq + 1, r.hash.clone()),
                None => (0, GENESIS.to_string()),
            }
        } else {
            (0, GENESIS.to_string())
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| GovError::io(path, "; check the directory exists and is writable", e))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
            next_seq,
            last_hash,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head of the chain: the number of records and the last hash.
    pub fn head(&self) -> (u64, &str) {
        (self.next_seq, &self.last_hash)
    }

    /// Append `event` now; the line is on disk (fsync) when this returns.
    pub fn append(&mut self, event: AuditEvent) -> Result<AuditRecord, GovError> {
        self.append_at(event, time::OffsetDateTime::now_utc())
    }

    /// Append `event` with the given time.
    pub fn append_at(
        &mut self,
        event: AuditEvent,
        at: time::OffsetDateTime,
    ) -> Result<AuditRecord, GovError> {
        check_details(&event.details)?;
        let time = at
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| GovError::Audit {
                path: self.path.clone(),
                line: self.next_seq as usize + 1,
                message: format!("cannot format the time: {e}"),
            })?;
        let mut rec = AuditRecord {
            seq: self.next_seq,
            time,
            actor: event.actor,
            action: event.action,
            analysis_id: event.analysis_id,
            job: event.job,
            details: event.details,
            prev: self.last_hash.clone(),
            hash: String::new(),
        };
        rec.hash = rec.compute_hash();
        let mut line = rec.to_line();
        line.push('\n');
        let hint = "; the audit file could not be written: stop the job (nothing may run unlogged)";
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| GovError::io(&self.path, hint, e))?;
        self.next_seq += 1;
        self.last_hash = rec.hash.clone();
        Ok(rec)
    }
}

fn check_name(path: &Path) -> Result<(), GovError> {
    let ok = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("audit"));
    if ok {
        Ok(())
    } else {
        Err(GovError::AuditName {
            path: path.to_path_buf(),
        })
    }
}

/// Verify one audit file's chain; returns its records.
pub fn verify_file(path: &Path) -> Result<Vec<AuditRecord>, GovError> {
    let bytes = std::fs::read(path)
        .map_err(|e| GovError::io(path, "; give an audit log file (audit*.log)", e))?;
    verify_bytes(path, &bytes)
}

/// Verify an audit file's content already in memory; `path` names it in
/// errors.
pub fn verify_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<AuditRecord>, GovError> {
    let err = |line: usize, message: String| GovError::Audit {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut records: Vec<AuditRecord> = Vec::new();
    if bytes.is_empty() {
        return Ok(records);
    }
    let mut parts: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // A complete file ends with '\n', so the last part is empty.
    if parts.last().is_some_and(|p| !p.is_empty()) {
        return Err(err(
            parts.len(),
            "the last line is incomplete (no newline): a torn write or a cut file; \
             compare with the other nodes' logs before repairing"
                .into(),
        ));
    }
    parts.pop();
    let mut prev = GENESIS.to_string();
    for (i, raw) in parts.iter().enumerate() {
        let n = i + 1;
        let line = std::str::from_utf8(raw)
            .map_err(|_| err(n, "not UTF-8: the line was altered".into()))?;
        if line.is_empty() {
            return Err(err(n, "empty line: the file was altered".into()));
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| err(n, format!("not JSON ({e}): the line was altered")))?;
        if canonical::to_string(&v) != line {
            return Err(err(
                n,
                "not in canonical form (spacing, key order or escaping changed): the line was altered"
                    .into(),
            ));
        }
        let rec: AuditRecord = serde_json::from_value(v).map_err(|e| {
            err(
                n,
                format!("not an audit record ({e}): the line was altered"),
            )
        })?;
        // The typed record must write back to exactly these bytes: a field
        // that parses leniently (an id in upper-case hex) is an alteration.
        if rec.to_line() != line {
            return Err(err(
                n,
                "not in canonical form (a field's spelling changed): the line was altered".into(),
            ));
        }
        if rec.compute_hash() != rec.hash {
            return Err(err(
                n,
                "its hash does not match its content: the line was altered".into(),
            ));
        }
        if rec.seq != i as u64 {
            return Err(err(
                n,
                format!(
                    "seq is {} where {} was expected: lines were removed, inserted or reordered before it",
                    rec.seq, i
                ),
            ));
        }
        if rec.prev != prev {
            return Err(err(
                n,
                format!(
                    "prev does not match the hash of line {}: a line was removed, inserted or reordered",
                    i
                ),
            ));
        }
        prev = rec.hash.clone();
        records.push(rec);
    }
    Ok(records)
}

/// One verified (or failed) chain.
#[derive(Debug)]
pub struct ChainReport {
    pub path: PathBuf,
    /// The records, or why the chain is broken.
    pub result: Result<Vec<AuditRecord>, GovError>,
}

impl ChainReport {
    /// `(records, last hash)` of a good chain.
    pub fn head(&self) -> Option<(usize, &str)> {
        self.result
            .as_ref()
            .ok()
            .map(|r| (r.len(), r.last().map_or(GENESIS, |x| x.hash.as_str())))
    }
}

/// The result of [`verify_dir`].
#[derive(Debug)]
pub struct DirReport {
    pub chains: Vec<ChainReport>,
    /// Disagreements between files, each naming both files and lines.
    pub cross: Vec<String>,
    /// The deletion receipts read (found under the directory or given),
    /// each with its file.
    pub receipts: Vec<(PathBuf, DeletionReceipt)>,
    /// The audit heads carried by sealed results (`*.sealed.json` files
    /// under the directory that name one).
    pub releases: Vec<ReleaseHead>,
    /// What is missing: records that a receipt or another party's log
    /// implies but a log lacks (a log cut short), receipts a log says were
    /// signed but that were not found, and receipts that do not read or
    /// verify. Each names the node, the file and the record.
    pub missing: Vec<String>,
}

impl DirReport {
    pub fn ok(&self) -> bool {
        !self.chains.is_empty()
            && self.cross.is_empty()
            && self.missing.is_empty()
            && self.chains.iter().all(|c| c.result.is_ok())
    }

    /// Every record of every good chain, with its file and 1-based line.
    pub fn records(&self) -> Vec<(&Path, usize, &AuditRecord)> {
        let mut out = Vec::new();
        for c in &self.chains {
            if let Ok(recs) = &c.result {
                for (i, r) in recs.iter().enumerate() {
                    out.push((c.path.as_path(), i + 1, r));
                }
            }
        }
        out
    }
}

/// The audit head a node's sealed result carries: the node's head just
/// after its `result_sealed` record of that output.
#[derive(Debug, Clone)]
pub struct ReleaseHead {
    /// The `*.sealed.json` file.
    pub path: PathBuf,
    /// The node that sealed it.
    pub node: u8,
    pub analysis_id: AnalysisId,
    pub output: String,
    pub audit_head: AuditHead,
}

/// The audit heads in a node's sealed-results file (a JSON array of
/// `{output, sealed: {analysis_id, node, ..}, audit_head}`); boxes without
/// a head (older nodes) are skipped.
fn read_release_heads(path: &Path) -> Result<Vec<ReleaseHead>, String> {
    #[derive(Deserialize)]
    struct BoxIds {
        analysis_id: AnalysisId,
        node: u8,
    }
    #[derive(Deserialize)]
    struct Out {
        output: String,
        sealed: BoxIds,
        #[serde(default)]
        audit_head: Option<AuditHead>,
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let outs: Vec<Out> = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(outs
        .into_iter()
        .filter_map(|o| {
            Some(ReleaseHead {
                path: path.to_path_buf(),
                node: o.sealed.node,
                analysis_id: o.sealed.analysis_id,
                output: o.output,
                audit_head: o.audit_head?,
            })
        })
        .collect())
}

/// What [`verify_dir_with`] reads besides the audit files under the
/// directory.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Deletion receipt files to check in addition to those found under
    /// the directory (files named `receipt*.json`).
    pub receipts: Vec<PathBuf>,
    /// Every `shares_deleted` record must have its receipt among those
    /// read (a receipt deleted from where receipts are kept is reported).
    /// Off, only the receipts that are there are checked.
    pub require_receipts: bool,
}

/// Find every file under `dir` (recursively) whose name begins with
/// `audit`, verify each chain, and check cross-file consistency: records
/// about the same job must name the same analysis id, the
/// [`CROSS_CHECKED`] actions must agree on their sizes, every receipt
/// found under `dir` (`receipt*.json`) must be pinned in its node's log,
/// and each node's log must hold the records the other logs imply (see
/// [`verify_dir_with`]). Receipts are not required (a directory of logs
/// alone verifies).
pub fn verify_dir(dir: &Path) -> Result<DirReport, GovError> {
    verify_dir_with(dir, &VerifyOptions::default())
}

/// [`verify_dir`], plus the receipts in `opts`, and with
/// `opts.require_receipts` a receipt for every `shares_deleted` record.
///
/// Truncation checks ([`DirReport::missing`]):
/// - each receipt's `audit_head` must be a record of its node's log (the
///   node's `shares_deleted` record of that job, at line `records`, with
///   that hash): a log cut before it, or rewritten, fails;
/// - likewise the head each sealed result carries (`*.sealed.json` under
///   the directory): the node's `result_sealed` record of that output;
/// - an analysis one node accepted is accepted by every node;
/// - a result one node sealed (job, output, recipient) is sealed by every
///   node, unless that node logged the job as failed;
/// - shares one node deleted for a job are deleted at every node, unless
///   that node logged the job as failed;
/// - a job one node finished `ok` is finished (in any way) at every node;
/// - a job the coordinator logged `job.done` is finished `ok` at every
///   node.
pub fn verify_dir_with(dir: &Path, opts: &VerifyOptions) -> Result<DirReport, GovError> {
    let mut files = Vec::new();
    let mut receipt_files = Vec::new();
    let mut sealed_files = Vec::new();
    collect_files(dir, &mut files, &mut receipt_files, &mut sealed_files)?;
    sealed_files.sort();
    files.sort();
    receipt_files.sort();
    receipt_files.extend(opts.receipts.iter().cloned());
    receipt_files.dedup();
    let chains: Vec<ChainReport> = files
        .into_iter()
        .map(|path| {
            let result = verify_file(&path);
            ChainReport { path, result }
        })
        .collect();
    let mut missing = Vec::new();
    let mut receipts = Vec::new();
    for path in receipt_files {
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<DeletionReceipt>(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => receipts.push((path, r)),
            Err(e) => missing.push(format!(
                "receipt {}: not a readable deletion receipt ({e})",
                path.display()
            )),
        }
    }
    let mut releases = Vec::new();
    for path in sealed_files {
        match read_release_heads(&path) {
            Ok(heads) => releases.extend(heads),
            Err(e) => missing.push(format!(
                "sealed results {}: not a readable sealed-results file ({e})",
                path.display()
            )),
        }
    }
    let mut report = DirReport {
        chains,
        cross: Vec::new(),
        receipts,
        releases,
        missing,
    };
    report.cross = cross_check(&report.records());
    let more = truncation::check(&report, opts.require_receipts);
    report.missing.extend(more);
    Ok(report)
}

fn collect_files(
    dir: &Path,
    audit: &mut Vec<PathBuf>,
    receipts: &mut Vec<PathBuf>,
    sealed: &mut Vec<PathBuf>,
) -> Result<(), GovError> {
    let hint = "; give the directory that holds the audit logs";
    let entries = std::fs::read_dir(dir).map_err(|e| GovError::io(dir, hint, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| GovError::io(dir, hint, e))?;
        let ty = entry
            .file_type()
            .map_err(|e| GovError::io(entry.path(), hint, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        if ty.is_dir() {
            collect_files(&path, audit, receipts, sealed)?;
        } else if ty.is_file() && name.starts_with("audit") {
            audit.push(path);
        } else if ty.is_file() && name.starts_with("receipt") && name.ends_with(".json") {
            receipts.push(path);
        } else if ty.is_file() && name.ends_with(".sealed.json") {
            sealed.push(path);
        }
    }
    Ok(())
}

fn cross_check(records: &[(&Path, usize, &AuditRecord)]) -> Vec<String> {
    let mut problems = Vec::new();
    let at = |p: &Path, l: usize| format!("{}:{l}", p.display());
    // Same job -> same analysis id.
    let mut job_ids: BTreeMap<&str, (AnalysisId, String)> = BTreeMap::new();
    for (p, l, r) in records {
        if let (Some(job), Some(id)) = (&r.job, &r.analysis_id) {
            match job_ids.get(job.as_str()) {
                Some((first, where_)) if first != id => problems.push(format!(
                    "job {job:?}: {} names analysis {id}, but {where_} names {first}",
                    at(p, *l)
                )),
                Some(_) => {}
                None => {
                    job_ids.insert(job, (*id, at(p, *l)));
                }
            }
        }
    }
    // Sizes that every node must agree on.
    for (act, keys, values) in CROSS_CHECKED {
        let mut seen: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
        for (p, l, r) in records.iter().filter(|(_, _, r)| r.action == *act) {
            let Some(job) = &r.job else { continue };
            let item = keys
                .iter()
                .map(|k| format!("{k}={}", r.details.get(*k).unwrap_or(&Value::Null)))
                .collect::<Vec<_>>()
                .join(",");
            let vals = values
                .iter()
                .map(|k| format!("{k}={}", r.details.get(*k).unwrap_or(&Value::Null)))
                .collect::<Vec<_>>()
                .join(",");
            match seen.get(&(job.clone(), item.clone())) {
                Some((first, where_)) if *first != vals => problems.push(format!(
                    "job {job:?} {act} {item}: {} says {vals}, but {where_} says {first}",
                    at(p, *l)
                )),
                Some(_) => {}
                None => {
                    seen.insert((job.clone(), item), (vals, at(p, *l)));
                }
            }
        }
    }
    problems
}
