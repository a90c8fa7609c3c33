//! Audit logs: the chain detects every altered, removed, inserted or
//! reordered line, naming it; directories are cross-checked.

use std::path::Path;

use kuvert_gov::audit::{
    action, verify_bytes, verify_dir, verify_file, AuditEvent, AuditLog, GENESIS,
};
use kuvert_gov::spec::AnalysisId;
use kuvert_gov::GovError;

const ID: AnalysisId = AnalysisId([0x5a; 32]);

fn t(sec: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + sec).unwrap()
}

/// A node's log of one job: 5 records.
fn write_node_log(path: &Path, node: u8, job: &str, id: AnalysisId, fk_rows: u64) {
    let mut log = AuditLog::open(path).unwrap();
    let actor = format!("node{node}");
    log.append_at(
        AuditEvent::new(&actor, action::ANALYSIS_ACCEPTED)
            .analysis(id)
            .detail("contributors", 2),
        t(0),
    )
    .unwrap();
    log.append_at(
        AuditEvent::shares_received(node, id, job, "fk", "fk", fk_rows, 5),
        t(1),
    )
    .unwrap();
    log.append_at(
        AuditEvent::shares_received(node, id, job, "kommun", "ek", 400, 4),
        t(2),
    )
    .unwrap();
    log.append_at(
        AuditEvent::new(&actor, action::JOB_STARTED)
            .analysis(id)
            .job(job)
            .detail("node", node),
        t(3),
    )
    .unwrap();
    log.append_at(
        AuditEvent::new(&actor, action::SHARES_DELETED)
            .analysis(id)
            .job(job)
            .detail("node", node)
            .detail("tables", vec!["fk", "ek"]),
        t(4),
    )
    .unwrap();
}

fn line_of_error(e: GovError) -> usize {
    match e {
        GovError::Audit { line, .. } => line,
        other => panic!("{other:?}"),
    }
}

#[test]
fn chain_verifies_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit-node0.log");
    write_node_log(&path, 0, "job-1", ID, 1000);
    let recs = verify_file(&path).unwrap();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0].prev, GENESIS);
    for w in recs.windows(2) {
        assert_eq!(w[1].prev, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    assert_eq!(recs[1].details["rows"], 1000);
    assert_eq!(recs[0].time, "2027-01-15T08:00:00Z");
    // Reopen and continue the same chain.
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.head(), (5, recs[4].hash.as_str()));
    let r = log
        .append(
            AuditEvent::new("node0", action::JOB_FINISHED)
                .job("job-1")
                .detail("status", "ok"),
        )
        .unwrap();
    assert_eq!((r.seq, r.prev.as_str()), (5, recs[4].hash.as_str()));
    assert_eq!(verify_file(&path).unwrap().len(), 6);
    // Every line is exactly the record's canonical line.
    let text = std::fs::read_to_string(&path).unwrap();
    for (line, rec) in text.lines().zip(verify_file(&path).unwrap()) {
        assert_eq!(line, rec.to_line());
    }
}

#[test]
fn every_altered_byte_is_detected_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    write_node_log(&path, 1, "j", ID, 10);
    let good = std::fs::read(&path).unwrap();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            good.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x20] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let e = verify_bytes(&path, &bad)
                .expect_err(&format!("byte {i} ^ {flip:#x} went unnoticed"));
            // The error names the line the byte is on (a changed newline
            // merges or splits lines: the line it starts on, or the last).
            let line = line_starts.iter().filter(|s| **s <= i).count();
            let got = line_of_error(e);
            if good[i] != b'\n' {
                assert_eq!(got, line, "byte {i}");
            } else {
                assert!(got >= line, "byte {i}: line {got} < {line}");
            }
        }
    }
}

#[test]
fn removed_inserted_and_reordered_lines_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit-x.log");
    write_node_log(&path, 0, "j", ID, 10);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let write = |ls: &[&str]| {
        let mut s = ls.join("\n");
        s.push('\n');
        std::fs::write(&path, s).unwrap();
    };
    // Remove line 3.
    write(&[lines[0], lines[1], lines[3], lines[4]]);
    assert_eq!(line_of_error(verify_file(&path).unwrap_err()), 3);
    // Swap lines 2 and 3.
    write(&[lines[0], lines[2], lines[1], lines[3], lines[4]]);
    assert_eq!(line_of_error(verify_file(&path).unwrap_err()), 2);
    // Duplicate line 2 (an insertion of a valid-looking line).
    write(&[lines[0], lines[1], lines[1], lines[2], lines[3], lines[4]]);
    assert_eq!(line_of_error(verify_file(&path).unwrap_err()), 3);
    // Insert a line from another (valid) chain.
    let other = dir.path().join("audit-other.log");
    write_node_log(&other, 2, "j", ID, 10);
    let other_text = std::fs::read_to_string(&other).unwrap();
    let o: Vec<&str> = other_text.lines().collect();
    write(&[lines[0], lines[1], o[2], lines[2], lines[3], lines[4]]);
    assert_eq!(line_of_error(verify_file(&path).unwrap_err()), 3);
    // Remove the first line.
    write(&lines[1..]);
    assert_eq!(line_of_error(verify_file(&path).unwrap_err()), 1);
    // A cut last line.
    std::fs::write(&path, &text[..text.len() - 10]).unwrap();
    assert_eq!(line_of_error(verify_file(&path).unwrap_err()), 5);
    // Removing the last whole lines leaves a valid, shorter chain: the
    // documented limit, caught by comparing heads.
    write(&lines[..4]);
    assert_eq!(verify_file(&path).unwrap().len(), 4);
    // A broken chain is not resumed.
    write(&[lines[0], lines[2]]);
    assert!(AuditLog::open(&path).is_err());
}

#[test]
fn names_and_details_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        AuditLog::open(&dir.path().join("log.txt")),
        Err(GovError::AuditName { .. })
    ));
    let mut log = AuditLog::open(&dir.path().join("audit.log")).unwrap();
    let nested =
        AuditEvent::new("n", "x").detail("values", serde_json::json!({"pnr": "19121212-1212"}));
    assert!(matches!(
        log.append(nested),
        Err(GovError::AuditDetail { .. })
    ));
    let float = AuditEvent::new("n", "x").detail("eps", 0.5);
    assert!(matches!(
        log.append(float),
        Err(GovError::AuditDetail { .. })
    ));
}

#[test]
fn directory_verification_cross_checks_jobs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("node1/logs")).unwrap();
    write_node_log(&dir.path().join("audit-node0.log"), 0, "job-1", ID, 1000);
    write_node_log(
        &dir.path().join("node1/logs/audit-node1.log"),
        1,
        "job-1",
        ID,
        1000,
    );
    write_node_log(&dir.path().join("audit-node2.log"), 2, "job-1", ID, 1000);
    std::fs::write(dir.path().join("notes.txt"), "not an audit file").unwrap();
    let r = verify_dir(dir.path()).unwrap();
    assert_eq!(r.chains.len(), 3);
    assert!(r.ok(), "{:?}", r.cross);
    assert_eq!(r.records().len(), 15);

    // Node 2 claims another row count for fk in the same job.
    write_node_log(&dir.path().join("audit-node2.log"), 2, "job-2", ID, 999);
    write_node_log(&dir.path().join("audit-node0.log"), 0, "job-2", ID, 1000);
    let r = verify_dir(dir.path()).unwrap();
    assert!(!r.ok());
    assert_eq!(r.cross.len(), 1, "{:?}", r.cross);
    assert!(
        r.cross[0].contains("job \"job-2\" shares_received table=\"fk\""),
        "{}",
        r.cross[0]
    );
    assert!(
        r.cross[0].contains("audit-node2.log:7") && r.cross[0].contains("audit-node0.log:7"),
        "{}",
        r.cross[0]
    );

    // Another analysis id under the same job name.
    let other = dir.path().join("audit-node3.log");
    write_node_log(&other, 0, "job-1", AnalysisId([1; 32]), 1000);
    let r = verify_dir(dir.path()).unwrap();
    assert!(
        r.cross
            .iter()
            .any(|c| c.contains("job \"job-1\"") && c.contains("names analysis")),
        "{:?}",
        r.cross
    );
    std::fs::remove_file(&other).unwrap();

    // A broken chain is reported with its file and line.
    let p = dir.path().join("audit-node0.log");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"rows\":1000", "\"rows\":1001");
    std::fs::write(&p, text).unwrap();
    let r = verify_dir(dir.path()).unwrap();
    assert!(!r.ok());
    let bad: Vec<_> = r.chains.iter().filter(|c| c.result.is_err()).collect();
    assert_eq!(bad.len(), 1);
    let msg = bad[0].result.as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("audit-node0.log:2:") && msg.contains("altered"),
        "{msg}"
    );

    // An empty directory verifies nothing, which is not "ok".
    let empty = tempfile::tempdir().unwrap();
    assert!(!verify_dir(empty.path()).unwrap().ok());
}

/// A node's log of a whole job with its signed deletion receipt (in
/// `dir/node<N>/receipt.json`): accepted, received, started, sealed,
/// deleted (pinned by the receipt), receipt signed, finished.
fn write_node_job(dir: &Path, node: u8, job: &str, id: AnalysisId) {
    use kuvert_gov::receipt::AuditHead;
    use kuvert_gov::{Deleted, DeletionReceipt, PartyKey};
    let nd = dir.join(format!("node{node}"));
    std::fs::create_dir_all(&nd).unwrap();
    let mut log = AuditLog::open(&nd.join(format!("audit-node{node}.log"))).unwrap();
    let actor = format!("node{node}");
    let ev = |a: &str| AuditEvent::new(&actor, a).analysis(id).job(job);
    log.append_at(
        AuditEvent::new(&actor, action::ANALYSIS_ACCEPTED)
            .analysis(id)
            .detail("contributors", 2),
        t(0),
    )
    .unwrap();
    log.append_at(
        AuditEvent::shares_received(node, id, job, "fk", "fk", 1000, 5),
        t(1),
    )
    .unwrap();
    log.append_at(ev(action::JOB_STARTED).detail("node", node), t(2))
        .unwrap();
    log.append_at(
        ev(action::RESULT_SEALED)
            .detail("output", "count")
            .detail("recipient", "kontroll")
            .detail("rows", 1)
            .detail("bytes", 120),
        t(3),
    )
    .unwrap();
    // The node's sealed-results file: each box carries the head after its
    // result_sealed record.
    let (records, hash) = log.head();
    std::fs::create_dir_all(nd.join("results")).unwrap();
    let boxes = serde_json::json!([{
        "output": "count",
        "sealed": { "analysis_id": id.to_hex(), "node": node, "suite": "", "enc": "", "ciphertext": "" },
        "audit_head": { "records": records, "hash": hash },
    }]);
    std::fs::write(
        nd.join("results/kontroll.sealed.json"),
        serde_json::to_vec(&boxes).unwrap(),
    )
    .unwrap();
    log.append_at(
        ev(action::SHARES_DELETED)
            .detail("node", node)
            .detail("tables", vec!["fk"]),
        t(4),
    )
    .unwrap();
    let (records, hash) = log.head();
    let key = PartyKey::generate(&actor);
    let receipt = DeletionReceipt::sign(
        &key,
        id,
        job,
        node,
        Deleted {
            tables: vec!["fk".into()],
            intermediate_state: true,
            session_keys: true,
        },
        Some(AuditHead {
            records,
            hash: hash.to_string(),
        }),
    );
    std::fs::write(
        nd.join("receipt.json"),
        serde_json::to_vec(&receipt).unwrap(),
    )
    .unwrap();
    log.append_at(
        ev("receipt_signed").detail("receipt", receipt.signature.as_str()),
        t(5),
    )
    .unwrap();
    log.append_at(
        ev(action::JOB_FINISHED)
            .detail("node", node)
            .detail("status", "ok"),
        t(6),
    )
    .unwrap();
}

fn strict() -> kuvert_gov::VerifyOptions {
    kuvert_gov::VerifyOptions {
        receipts: Vec::new(),
        require_receipts: true,
    }
}

/// Drop the last `n` lines of a file.
fn cut(path: &Path, n: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept = &lines[..lines.len() - n];
    std::fs::write(path, format!("{}\n", kept.join("\n"))).unwrap();
}

#[test]
fn intact_logs_and_receipts_verify_and_each_receipt_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    for node in 0..3 {
        write_node_job(dir.path(), node, "job-1", ID);
    }
    let r = kuvert_gov::verify_dir_with(dir.path(), &strict()).unwrap();
    assert!(r.ok(), "{:?} {:?}", r.cross, r.missing);
    assert_eq!(r.receipts.len(), 3);
    assert_eq!(r.releases.len(), 3);
    assert!(r.releases.iter().all(|h| h.audit_head.records == 4));
    // Each receipt pins its node's shares_deleted record (line 5).
    for (_, rc) in &r.receipts {
        assert_eq!(rc.audit_head.as_ref().unwrap().records, 5);
    }
}

#[test]
fn a_log_cut_before_its_receipts_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    for node in 0..3 {
        write_node_job(dir.path(), node, "job-1", ID);
    }
    // Node 1's last four lines: sealed, deleted, receipt signed, finished.
    let log = dir.path().join("node1/audit-node1.log");
    cut(&log, 4);
    assert_eq!(verify_file(&log).unwrap().len(), 3, "still a valid chain");
    let r = verify_dir(dir.path()).unwrap();
    assert!(r.cross.is_empty() && r.chains.iter().all(|c| c.result.is_ok()));
    assert!(!r.ok());
    let all = r.missing.join("\n");
    // The receipt names the missing record.
    assert!(
        r.missing.iter().any(|m| m.starts_with("node1:")
            && m.contains("audit-node1.log ends at record 3")
            && m.contains("node1/receipt.json")
            && m.contains("pins record 5")
            && m.contains("cut")),
        "{all}"
    );
    // So does the sealed result.
    assert!(
        r.missing.iter().any(|m| m.starts_with("node1:")
            && m.contains("sealed result")
            && m.contains("kontroll.sealed.json")
            && m.contains("pins record 4")),
        "{all}"
    );
    // The other nodes' logs imply what node 1's lacks.
    for what in [
        "result_sealed (or failure) of job \"job-1\" output \"count\"",
        "shares_deleted (or failure) of job \"job-1\"",
        "job_finished of job \"job-1\"",
    ] {
        assert!(
            r.missing
                .iter()
                .any(|m| m.starts_with("node1:") && m.contains(what)),
            "{what}: {all}"
        );
    }
    assert!(
        !r.missing
            .iter()
            .any(|m| m.starts_with("node0:") || m.starts_with("node2:")),
        "{all}"
    );

    // Without the receipt, the other logs still catch it.
    std::fs::remove_file(dir.path().join("node1/receipt.json")).unwrap();
    let r = verify_dir(dir.path()).unwrap();
    assert!(!r.ok());
    assert!(
        r.missing
            .iter()
            .any(|m| m.starts_with("node1:") && m.contains("shares_deleted")),
        "{:?}",
        r.missing
    );

    // A node whose log is gone altogether.
    std::fs::remove_file(&log).unwrap();
    let r = verify_dir(dir.path()).unwrap();
    assert!(
        r.missing
            .iter()
            .any(|m| m.starts_with("node1: no verified audit log")),
        "{:?}",
        r.missing
    );
}

#[test]
fn an_analysis_accepted_by_one_node_is_accepted_by_all() {
    let dir = tempfile::tempdir().unwrap();
    for node in 0..3 {
        write_node_job(dir.path(), node, "job-1", ID);
    }
    // Node 0 accepted a second analysis that the others' logs lack.
    let other = AnalysisId([7; 32]);
    let mut log = AuditLog::open(&dir.path().join("node0/audit-node0.log")).unwrap();
    log.append_at(
        AuditEvent::new("node0", action::ANALYSIS_ACCEPTED)
            .analysis(other)
            .detail("contributors", 1),
        t(10),
    )
    .unwrap();
    let r = verify_dir(dir.path()).unwrap();
    assert_eq!(r.missing.len(), 2, "{:?}", r.missing);
    for (m, node) in r.missing.iter().zip(["node1:", "node2:"]) {
        assert!(
            m.starts_with(node)
                && m.contains(&format!("analysis_accepted of analysis {other}"))
                && m.contains("audit-node0.log:8"),
            "{m}"
        );
    }
}

#[test]
fn a_deleted_or_altered_receipt_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    for node in 0..3 {
        write_node_job(dir.path(), node, "job-1", ID);
    }
    let receipt = dir.path().join("node2/receipt.json");
    let kept = std::fs::read(&receipt).unwrap();
    std::fs::remove_file(&receipt).unwrap();
    // Only the logs: fine without receipts; required: the missing one named.
    assert!(verify_dir(dir.path()).unwrap().ok());
    let r = kuvert_gov::verify_dir_with(dir.path(), &strict()).unwrap();
    assert!(!r.ok());
    assert_eq!(r.missing.len(), 1, "{:?}", r.missing);
    assert!(
        r.missing[0].starts_with("node2:")
            && r.missing[0].contains("audit-node2.log:5")
            && r.missing[0].contains("receipt is missing"),
        "{}",
        r.missing[0]
    );
    // Kept elsewhere and given: verifies again.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("node2-receipt.json");
    std::fs::write(&moved, &kept).unwrap();
    let mut opts = strict();
    opts.receipts.push(moved.clone());
    let r = kuvert_gov::verify_dir_with(dir.path(), &opts).unwrap();
    assert!(r.ok(), "{:?}", r.missing);
    // A receipt pointing at another head: altered (signature) and not pinned.
    let text = String::from_utf8(kept)
        .unwrap()
        .replace("\"records\":5", "\"records\":6");
    std::fs::write(&moved, text).unwrap();
    let r = kuvert_gov::verify_dir_with(dir.path(), &opts).unwrap();
    assert!(!r.ok());
    assert!(
        r.missing
            .iter()
            .any(|m| m.contains("signature does not verify")),
        "{:?}",
        r.missing
    );
    assert!(
        r.missing
            .iter()
            .any(|m| m.contains("pins hash") && m.contains("rewritten")),
        "{:?}",
        r.missing
    );
}

#[test]
fn the_coordinators_done_job_implies_every_nodes_finish() {
    let dir = tempfile::tempdir().unwrap();
    for node in 0..3 {
        write_node_job(dir.path(), node, "job-1", ID);
    }
    let mut c = AuditLog::open(&dir.path().join("audit-coordinator.log")).unwrap();
    c.append_at(
        AuditEvent::new("coordinator", "job.done").analysis(ID),
        t(9),
    )
    .unwrap();
    assert!(verify_dir(dir.path()).unwrap().ok());
    // All three nodes cut their last line (job_finished): only the
    // coordinator's log shows it.
    for node in 0..3 {
        cut(
            &dir.path().join(format!("node{node}/audit-node{node}.log")),
            1,
        );
    }
    let r = verify_dir(dir.path()).unwrap();
    assert!(!r.ok());
    assert_eq!(r.missing.len(), 3, "{:?}", r.missing);
    assert!(r
        .missing
        .iter()
        .all(|m| m.contains("coordinator logged as done")));
}

/// The nodes countersign the coordinator's head at each job; a
/// coordinator log rewritten or cut before that head is detected.
#[test]
fn a_coordinator_log_rewritten_or_cut_before_a_countersigned_head_is_detected() {
    use kuvert_gov::receipt::{countersign_coordinator_head, verify_coordinator_head, AuditHead};
    let dir = tempfile::tempdir().unwrap();
    let cpath = dir.path().join("audit-coordinator.log");
    let coordinator = |path: &Path, tag: &str| -> AuditHead {
        let mut c = AuditLog::open(path).unwrap();
        for (i, a) in ["analysis.submitted", "analysis.approved", "job.started"]
            .iter()
            .enumerate()
        {
            c.append_at(
                AuditEvent::new("coordinator", a)
                    .analysis(ID)
                    .detail("note", tag),
                t(i as i64),
            )
            .unwrap();
        }
        let (records, hash) = c.head();
        AuditHead {
            records,
            hash: hash.to_string(),
        }
    };
    let head = coordinator(&cpath, "original");
    for node in 0..3u8 {
        let key = kuvert_gov::PartyKey::generate(&format!("node{node}"));
        let sig = countersign_coordinator_head(&key, &ID, &head);
        assert!(verify_coordinator_head(
            &key.verifying_key(),
            &ID,
            &head,
            &sig
        ));
        let other = AuditHead {
            records: head.records - 1,
            hash: head.hash.clone(),
        };
        assert!(!verify_coordinator_head(
            &key.verifying_key(),
            &ID,
            &other,
            &sig
        ));
        let nd = dir.path().join(format!("node{node}"));
        std::fs::create_dir_all(&nd).unwrap();
        let mut log = AuditLog::open(&nd.join(format!("audit-node{node}.log"))).unwrap();
        let actor = format!("node{node}");
        log.append_at(
            AuditEvent::new(&actor, action::ANALYSIS_ACCEPTED).analysis(ID),
            t(0),
        )
        .unwrap();
        log.append_at(
            AuditEvent::new(&actor, "coordinator_head")
                .analysis(ID)
                .detail("records", head.records)
                .detail("hash", head.hash.as_str())
                .detail("signature", sig),
            t(5),
        )
        .unwrap();
    }
    assert!(verify_dir(dir.path()).unwrap().ok());

    // The operator rewrites its whole log (a valid chain, other text).
    std::fs::remove_file(&cpath).unwrap();
    let forged = coordinator(&cpath, "rewritten");
    assert_ne!(forged.hash, head.hash);
    let r = verify_dir(dir.path()).unwrap();
    assert!(!r.ok());
    assert_eq!(r.missing.len(), 3, "{:?}", r.missing);
    assert!(
        r.missing.iter().all(|m| m.contains("was rewritten")),
        "{:?}",
        r.missing
    );

    // Or cuts it short.
    std::fs::remove_file(&cpath).unwrap();
    coordinator(&cpath, "original");
    assert!(verify_dir(dir.path()).unwrap().ok());
    cut(&cpath, 1);
    let r = verify_dir(dir.path()).unwrap();
    assert!(
        r.missing.iter().any(|m| m.contains("was cut")),
        "{:?}",
        r.missing
    );
}
