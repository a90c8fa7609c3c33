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
