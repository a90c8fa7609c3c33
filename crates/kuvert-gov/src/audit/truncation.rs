//! What one log, or a receipt, implies about the other logs: the checks
//! that catch a log cut short (see [`super::verify_dir_with`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::{action, AuditRecord, DirReport};
use crate::hex;
use crate::receipt::AuditHead;
use crate::spec::AnalysisId;

/// The coordinator's action for a job every node finished.
const COORD_JOB_DONE: &str = "job.done";
/// The node's record of a signed receipt (kuvert-node), detail `receipt`.
const RECEIPT_SIGNED: &str = "receipt_signed";
/// The node's countersignature of the coordinator's audit head
/// (kuvert-node), details `records`, `hash`, `signature`.
const COORDINATOR_HEAD: &str = "coordinator_head";

struct Log<'a> {
    path: &'a Path,
    records: &'a [AuditRecord],
}

/// What one node's log says happened, each with its 1-based line.
#[derive(Default)]
struct Facts {
    accepted: BTreeMap<AnalysisId, usize>,
    sealed: BTreeMap<(String, String, String), usize>,
    deleted: BTreeMap<String, usize>,
    finished_ok: BTreeMap<String, usize>,
    finished: BTreeSet<String>,
    failed: BTreeSet<String>,
    ok_analyses: BTreeSet<AnalysisId>,
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn facts(records: &[AuditRecord]) -> Facts {
    let mut f = Facts::default();
    for (i, r) in records.iter().enumerate() {
        let line = i + 1;
        let job = r.job.clone().unwrap_or_default();
        match r.action.as_str() {
            action::ANALYSIS_ACCEPTED => {
                if let Some(id) = r.analysis_id {
                    f.accepted.entry(id).or_insert(line);
                }
            }
            action::RESULT_SEALED => {
                let key = (
                    job,
                    text(r.details.get("output")),
                    text(r.details.get("recipient")),
                );
                f.sealed.entry(key).or_insert(line);
            }
            action::SHARES_DELETED => {
                f.deleted.entry(job).or_insert(line);
            }
            action::JOB_FINISHED => {
                f.finished.insert(job.clone());
                if text(r.details.get("status")) == "ok" {
                    f.finished_ok.entry(job).or_insert(line);
                    if let Some(id) = r.analysis_id {
                        f.ok_analyses.insert(id);
                    }
                } else {
                    f.failed.insert(job);
                }
            }
            _ => {}
        }
    }
    f
}

fn node_of(actor: &str) -> Option<u8> {
    actor.strip_prefix("node")?.parse().ok()
}

/// The problems found; empty when every receipt is pinned in its node's
/// log and every log holds what the others imply.
pub(super) fn check(report: &DirReport, require_receipts: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut nodes: BTreeMap<u8, Vec<Log>> = BTreeMap::new();
    let mut coord: Vec<Log> = Vec::new();
    for c in &report.chains {
        let Ok(records) = &c.result else { continue };
        let log = Log {
            path: &c.path,
            records,
        };
        match records.first().map(|r| r.actor.as_str()) {
            Some("coordinator") => coord.push(log),
            Some(a) => {
                if let Some(n) = node_of(a) {
                    nodes.entry(n).or_default().push(log);
                }
            }
            None => {}
        }
    }

    // Receipts: each pinned in its node's log.
    for (path, r) in &report.receipts {
        let name = format!(
            "receipt {} (node {}, job {:?})",
            path.display(),
            r.node,
            r.job
        );
        let key = hex::decode_array::<32>(r.node_public_key.trim())
            .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok());
        if key.is_none_or(|k| r.verify(&k).is_err()) {
            out.push(format!(
                "{name}: its signature does not verify against the key it names: the receipt was altered"
            ));
        }
        let Some(head) = &r.audit_head else {
            out.push(format!(
                "{name}: carries no audit head, so nothing pins node {}'s log",
                r.node
            ));
            continue;
        };
        let Some(logs) = nodes.get(&r.node) else {
            out.push(format!(
                "{name}: no verified audit log of node{} was found to hold the record it pins \
                 (record {}, hash {})",
                r.node, head.records, head.hash
            ));
            continue;
        };
        for log in logs {
            pinned(&mut out, r.node, log, &name, head, |rec| {
                (rec.action != action::SHARES_DELETED || rec.job.as_deref() != Some(&r.job))
                    .then(|| format!("not the shares_deleted record of job {:?}", r.job))
            });
            for (i, rec) in log.records.iter().enumerate() {
                if rec.action == RECEIPT_SIGNED
                    && rec.job.as_deref() == Some(&r.job)
                    && text(rec.details.get("receipt")) != r.signature
                {
                    out.push(format!(
                        "node{}: {}:{} records another receipt signature for job {:?} than {name}",
                        r.node,
                        log.path.display(),
                        i + 1,
                        r.job
                    ));
                }
            }
        }
    }

    // Sealed results: each head pinned in its node's log.
    for rh in &report.releases {
        let name = format!(
            "sealed result {} (node {}, output {:?})",
            rh.path.display(),
            rh.node,
            rh.output
        );
        let head = &rh.audit_head;
        let Some(logs) = nodes.get(&rh.node) else {
            out.push(format!(
                "{name}: no verified audit log of node{} was found to hold the record it pins \
                 (record {}, hash {})",
                rh.node, head.records, head.hash
            ));
            continue;
        };
        for log in logs {
            pinned(&mut out, rh.node, log, &name, head, |rec| {
                (rec.action != action::RESULT_SEALED
                    || rec.analysis_id != Some(rh.analysis_id)
                    || text(rec.details.get("output")) != rh.output)
                    .then(|| format!("not the result_sealed record of output {:?}", rh.output))
            });
        }
    }

    // Receipts the logs say were signed.
    if require_receipts {
        for (n, logs) in &nodes {
            for log in logs {
                for (i, rec) in log.records.iter().enumerate() {
                    if rec.action != action::SHARES_DELETED {
                        continue;
                    }
                    let job = rec.job.as_deref().unwrap_or("");
                    if !report
                        .receipts
                        .iter()
                        .any(|(_, r)| r.node == *n && r.job == job)
                    {
                        out.push(format!(
                            "node{n}: {}:{} records shares_deleted for job {job:?}, but no deletion \
                             receipt of node {n} for that job was found: the receipt is missing",
                            log.path.display(),
                            i + 1
                        ));
                    }
                }
            }
        }
    }

    // What each node's log implies about the others'.
    let all: Vec<(u8, &Log, Facts)> = nodes
        .iter()
        .flat_map(|(n, logs)| logs.iter().map(move |l| (*n, l)))
        .map(|(n, l)| (n, l, facts(l.records)))
        .collect();
    let mut no_log: BTreeMap<u8, String> = BTreeMap::new();
    for (a, la, fa) in &all {
        let at = |line: usize| format!("{}:{line}", la.path.display());
        let implies_any = !fa.accepted.is_empty()
            || !fa.sealed.is_empty()
            || !fa.deleted.is_empty()
            || !fa.finished_ok.is_empty();
        for b in 0..3u8 {
            if b == *a {
                continue;
            }
            let targets: Vec<&(u8, &Log, Facts)> = all.iter().filter(|x| x.0 == b).collect();
            if targets.is_empty() {
                if implies_any {
                    no_log
                        .entry(b)
                        .or_insert_with(|| format!("node{a}'s log {}", la.path.display()));
                }
                continue;
            }
            for (_, lb, fb) in targets {
                let miss = |what: String, line: usize| {
                    format!(
                        "node{b}: {} has no {what}, which node{a} logged at {}: \
                         node{b}'s log was cut or never written",
                        lb.path.display(),
                        at(line)
                    )
                };
                for (id, line) in &fa.accepted {
                    if !fb.accepted.contains_key(id) {
                        out.push(miss(format!("analysis_accepted of analysis {id}"), *line));
                    }
                }
                for ((job, output, recipient), line) in &fa.sealed {
                    let key = (job.clone(), output.clone(), recipient.clone());
                    if !fb.sealed.contains_key(&key) && !fb.failed.contains(job) {
                        out.push(miss(
                            format!(
                                "result_sealed (or failure) of job {job:?} output {output:?} \
                                 recipient {recipient:?}"
                            ),
                            *line,
                        ));
                    }
                }
                for (job, line) in &fa.deleted {
                    if !fb.deleted.contains_key(job) && !fb.failed.contains(job) {
                        out.push(miss(
                            format!("shares_deleted (or failure) of job {job:?}"),
                            *line,
                        ));
                    }
                }
                for (job, line) in &fa.finished_ok {
                    if !fb.finished.contains(job) {
                        out.push(miss(format!("job_finished of job {job:?}"), *line));
                    }
                }
            }
        }
    }
    // The coordinator's done jobs.
    for lc in &coord {
        for (i, rec) in lc.records.iter().enumerate() {
            let (true, Some(id)) = (rec.action == COORD_JOB_DONE, rec.analysis_id) else {
                continue;
            };
            for b in 0..3u8 {
                let targets: Vec<&(u8, &Log, Facts)> = all.iter().filter(|x| x.0 == b).collect();
                if targets.is_empty() {
                    no_log
                        .entry(b)
                        .or_insert_with(|| format!("the coordinator's log {}", lc.path.display()));
                }
                for (_, lb, fb) in targets {
                    if !fb.ok_analyses.contains(&id) {
                        out.push(format!(
                            "node{b}: {} has no job_finished ok of analysis {id}, which the \
                             coordinator logged as done at {}:{}: node{b}'s log was cut or never written",
                            lb.path.display(),
                            lc.path.display(),
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    // The coordinator's heads the nodes countersigned: each must be a
    // record of the coordinator's log, with that hash.
    if !coord.is_empty() {
        for (n, logs) in &nodes {
            let key = report
                .receipts
                .iter()
                .find(|(_, r)| r.node == *n)
                .and_then(|(_, r)| hex::decode_array::<32>(r.node_public_key.trim()))
                .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok());
            for log in logs {
                for (i, rec) in log.records.iter().enumerate() {
                    if rec.action != COORDINATOR_HEAD {
                        continue;
                    }
                    let at = format!("{}:{}", log.path.display(), i + 1);
                    let Some(records) = rec.details.get("records").and_then(Value::as_u64) else {
                        out.push(format!("node{n}: {at} countersigns no record number"));
                        continue;
                    };
                    let head = AuditHead {
                        records,
                        hash: text(rec.details.get("hash")),
                    };
                    if let (Some(k), Some(id)) = (&key, rec.analysis_id) {
                        let sig = text(rec.details.get("signature"));
                        if !crate::receipt::verify_coordinator_head(k, &id, &head, &sig) {
                            out.push(format!(
                                "node{n}: the countersignature of the coordinator's head at {at}                                  does not verify with node {n}'s receipt key"
                            ));
                        }
                    }
                    let found = coord.iter().any(|lc| {
                        let k = records as usize;
                        k >= 1 && k <= lc.records.len() && lc.records[k - 1].hash == head.hash
                    });
                    if !found {
                        let lc = &coord[0];
                        let why = if records as usize > lc.records.len() {
                            format!(
                                "{} ends at record {}: the coordinator's log was cut",
                                lc.path.display(),
                                lc.records.len()
                            )
                        } else {
                            format!(
                                "{}:{records} has another hash: the coordinator's log was rewritten",
                                lc.path.display()
                            )
                        };
                        out.push(format!(
                            "coordinator: node{n} countersigned its record {records} (hash {}) at                              {at}, but {why}",
                            head.hash
                        ));
                    }
                }
            }
        }
    }
    for (b, by) in no_log {
        out.push(format!(
            "node{b}: no verified audit log of node{b} was found, but {by} implies records there"
        ));
    }
    out
}

/// Check that `head` (carried by `name`) is a record of `log`: within it,
/// with that hash, and the record `expect` accepts (`None`) rather than
/// describes (`Some(what it is not)`).
fn pinned(
    out: &mut Vec<String>,
    node: u8,
    log: &Log,
    name: &str,
    head: &AuditHead,
    expect: impl Fn(&AuditRecord) -> Option<String>,
) {
    let n = head.records as usize;
    let len = log.records.len();
    if n == 0 || n > len {
        out.push(format!(
            "node{node}: {} ends at record {len}, but {name} pins record {n} (hash {}): \
             the log was cut; records {}..={n} are missing",
            log.path.display(),
            head.hash,
            len + 1,
        ));
        return;
    }
    let rec = &log.records[n - 1];
    if rec.hash != head.hash {
        out.push(format!(
            "node{node}: {}:{n} has hash {}, but {name} pins hash {}: the log was rewritten",
            log.path.display(),
            rec.hash,
            head.hash
        ));
    } else if let Some(not) = expect(rec) {
        out.push(format!(
            "node{node}: the record {name} pins ({}:{n}) is {} of job {:?}, {not}",
            log.path.display(),
            rec.action,
            rec.job.as_deref().unwrap_or(""),
        ));
    }
}
