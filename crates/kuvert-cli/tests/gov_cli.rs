//! `kuvert keygen`, `kuvert analysis ...` and `kuvert audit verify` end to
//! end: the walk-through of docs/governance.md, with the attack cases and
//! exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn kuvert(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn code(o: &Output) -> (i32, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// (public_key, kem_public_key) printed by keygen.
fn keygen(dir: &Path, name: &str) -> (String, String) {
    let out = ok(&kuvert(dir, &["keygen", "--out", &format!("{name}.key")]));
    let mut lines = out.lines();
    let get = |l: Option<&str>| l.unwrap().split('"').nth(1).unwrap().to_string();
    let ed = get(lines.next());
    let x = get(lines.next());
    (ed, x)
}

#[test]
fn walk_through() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let fk = keygen(d, "fk");
    let kommun = keygen(d, "kommun");
    let kontroll = keygen(d, "kontroll");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("fk.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(d.join("fk.key.pub"))
        .unwrap()
        .contains(&fk.0));
    // keygen never overwrites a key.
    assert_eq!(code(&kuvert(d, &["keygen", "--out", "fk.key"])).0, 2);
    assert!(std::fs::read_to_string(d.join("fk.key.pub"))
        .unwrap()
        .contains(&fk.1));
    assert!(!std::fs::read_to_string(d.join("fk.key"))
        .unwrap()
        .contains("x25519"));

    // Template, filled in.
    let list = ok(&kuvert(d, &["analysis", "template", "--list"]));
    assert_eq!(list.lines().count(), 6);
    ok(&kuvert(
        d,
        &[
            "analysis",
            "template",
            "overlapping-benefits",
            "--out",
            "ob.toml",
        ],
    ));
    assert_eq!(code(&kuvert(d, &["analysis", "check", "ob.toml"])).0, 2);
    ok(&kuvert(d, &["analysis", "check", "--template", "ob.toml"]));
    let t = std::fs::read_to_string(d.join("ob.toml")).unwrap();
    let t = t
        .replace(
            "kem_public_key = \"placeholder:fk\"",
            &format!("kem_public_key = \"{}\"", fk.1),
        )
        .replace(
            "kem_public_key = \"placeholder:kommun\"",
            &format!("kem_public_key = \"{}\"", kommun.1),
        )
        .replace(
            "kem_public_key = \"placeholder:kontroll\"",
            &format!("kem_public_key = \"{}\"", kontroll.1),
        )
        .replace(
            "public_key = \"placeholder:fk\"",
            &format!("public_key = \"{}\"", fk.0),
        )
        .replace(
            "public_key = \"placeholder:kommun\"",
            &format!("public_key = \"{}\"", kommun.0),
        );
    // Still refused: the nodes are placeholders.
    std::fs::write(d.join("ob.toml"), &t).unwrap();
    let (c, err) = code(&kuvert(d, &["analysis", "check", "ob.toml"]));
    assert_eq!(c, 2);
    assert!(err.contains("nodes[0].fingerprint"), "{err}");
    let mut t = t;
    for i in 0..3u8 {
        let fp: String = std::iter::repeat_n(char::from(b'a' + i), 64).collect();
        t = t.replace(&format!("\"placeholder:node-{i}\""), &format!("\"{fp}\""));
        t = t.replace(
            &format!("\"placeholder: the operator of node {i}\""),
            &format!("\"Operator {i}\""),
        );
    }
    std::fs::write(d.join("ob.toml"), &t).unwrap();
    let id = ok(&kuvert(d, &["analysis", "check", "ob.toml"]))
        .trim()
        .to_string();
    assert_eq!(ok(&kuvert(d, &["analysis", "id", "ob.toml"])).trim(), id);
    // The canonical JSON printed is what the id hashes.
    let canon = ok(&kuvert(d, &["analysis", "id", "--canonical", "ob.toml"]));
    use sha2::Digest;
    let h = sha2::Sha256::digest(canon.trim_end_matches('\n').as_bytes());
    assert_eq!(h.iter().map(|b| format!("{b:02x}")).collect::<String>(), id);

    // Approvals.
    ok(&kuvert(
        d,
        &[
            "analysis", "approve", &id, "--key", "fk.key", "--spec", "ob.toml", "--out", "fk.json",
            "--yes",
        ],
    ));
    ok(&kuvert(
        d,
        &[
            "analysis",
            "approve",
            &id,
            "--key",
            "kommun.key",
            "--spec",
            "ob.toml",
            "--out",
            "kommun.json",
            "--yes",
        ],
    ));
    // The control unit is no contributor: refused. A wrong id: refused.
    assert_eq!(
        code(&kuvert(
            d,
            &[
                "analysis",
                "approve",
                &id,
                "--key",
                "kontroll.key",
                "--spec",
                "ob.toml"
            ]
        ))
        .0,
        2
    );
    let wrong = "0".repeat(64);
    let (c, msg) = code(&kuvert(
        d,
        &[
            "analysis", "approve", &wrong, "--key", "fk.key", "--spec", "ob.toml",
        ],
    ));
    assert_eq!(c, 2);
    assert!(msg.contains("refusing to approve"), "{msg}");
    // Verify: both -> ok; one -> exit 1 naming the missing one.
    assert_eq!(
        ok(&kuvert(
            d,
            &[
                "analysis",
                "verify",
                "ob.toml",
                "--approvals",
                "fk.json,kommun.json"
            ]
        ))
        .trim(),
        id
    );
    let (c, msg) = code(&kuvert(
        d,
        &["analysis", "verify", "ob.toml", "--approvals", "fk.json"],
    ));
    assert_eq!(c, 1);
    assert!(msg.contains("missing [\"kommun\"]"), "{msg}");
    // The spec altered after approval: another id, approvals refused.
    std::fs::write(
        d.join("altered.toml"),
        t.replace("SELECT DISTINCT f.pnr", "SELECT DISTINCT f.pnr, f.belopp"),
    )
    .unwrap();
    let (c, msg) = code(&kuvert(
        d,
        &[
            "analysis",
            "verify",
            "altered.toml",
            "--approvals",
            "fk.json,kommun.json",
        ],
    ));
    assert_eq!(c, 1);
    assert!(
        msg.contains("is for analysis") && msg.contains(&id),
        "{msg}"
    );
    // A forged approval file.
    let forged = std::fs::read_to_string(d.join("kommun.json")).unwrap();
    let sig_at = forged.find("\"signature\": \"").unwrap() + 14;
    let mut f = forged.into_bytes();
    f[sig_at] = if f[sig_at] == b'a' { b'b' } else { b'a' };
    std::fs::write(d.join("forged.json"), f).unwrap();
    let (c, msg) = code(&kuvert(
        d,
        &[
            "analysis",
            "verify",
            "ob.toml",
            "--approvals",
            "fk.json,forged.json",
        ],
    ));
    assert_eq!(c, 1);
    assert!(msg.contains("invalid signature"), "{msg}");
    // A malformed approval file is bad input.
    std::fs::write(d.join("bad.json"), "{").unwrap();
    assert_eq!(
        code(&kuvert(
            d,
            &["analysis", "verify", "ob.toml", "--approvals", "bad.json"]
        ))
        .0,
        2
    );

    // Audit logs of three nodes, then describe.
    let spec =
        kuvert_gov::AnalysisSpec::load(&d.join("ob.toml"), kuvert_gov::Validation::Strict).unwrap();
    std::fs::create_dir(d.join("logs")).unwrap();
    for node in 0..3u8 {
        let mut log =
            kuvert_gov::AuditLog::open(&d.join(format!("logs/audit-node{node}.log"))).unwrap();
        log.append(kuvert_gov::AuditEvent::shares_received(
            node,
            spec.id(),
            "job-1",
            "fk",
            "fk",
            500,
            5,
        ))
        .unwrap();
    }
    let out = ok(&kuvert(d, &["audit", "verify", "--data-dir", "logs"]));
    assert!(
        out.contains("3 chains, 3 records") && out.contains("all verified"),
        "{out}"
    );
    ok(&kuvert(
        d,
        &[
            "analysis",
            "describe",
            "ob.toml",
            "--approvals",
            "fk.json,kommun.json",
            "--audit-dir",
            "logs",
            "--format",
            "html",
            "--out",
            "dpia.html",
        ],
    ));
    let html = std::fs::read_to_string(d.join("dpia.html")).unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("Every contributor has approved"));
    assert!(html.contains("rows: 500"));
    let md = ok(&kuvert(d, &["analysis", "describe", "ob.toml"]));
    assert!(md.starts_with("# Data protection description: overlapping-benefits"));

    // One altered byte in a log: audit verify and describe fail, naming file and line.
    let p = d.join("logs/audit-node1.log");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"rows\":500", "\"rows\":501");
    std::fs::write(&p, text).unwrap();
    let (c, msg) = code(&kuvert(d, &["audit", "verify", "--data-dir", "logs"]));
    assert_eq!(c, 1);
    assert!(
        msg.contains("audit-node1.log:1:") && msg.contains("altered") && msg.contains("FAILED"),
        "{msg}"
    );
    assert_eq!(
        code(&kuvert(
            d,
            &["analysis", "describe", "ob.toml", "--audit-dir", "logs"]
        ))
        .0,
        1
    );
    // No logs at all is a failure too.
    std::fs::create_dir(d.join("empty")).unwrap();
    assert_eq!(
        code(&kuvert(d, &["audit", "verify", "--data-dir", "empty"])).0,
        1
    );

    // Schema and bad spec input.
    assert!(ok(&kuvert(d, &["analysis", "schema"])).contains("\"legal_basis\""));
    std::fs::write(d.join("broken.toml"), "name = \n").unwrap();
    let (c, msg) = code(&kuvert(d, &["analysis", "check", "broken.toml"]));
    assert_eq!(c, 2);
    assert!(msg.contains("broken.toml:1:"), "{msg}");
}

/// A key file from before post-quantum sealing: `keygen --upgrade` adds the
/// X-Wing key in place and keeps the Ed25519 key; a second upgrade is
/// refused.
#[test]
fn keygen_upgrade_adds_the_post_quantum_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (ed, _) = keygen(d, "new");
    let text = std::fs::read_to_string(d.join("new.key")).unwrap();
    let old: String = text
        .lines()
        .map(|l| {
            if l.starts_with("xwing-secret") {
                format!("x25519-secret: {}\n", "33".repeat(32))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(d.join("old.key"), old).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("old.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let out = ok(&kuvert(d, &["keygen", "--upgrade", "old.key"]));
    assert!(out.contains(&format!("public_key = \"{ed}\"")), "{out}");
    assert!(out.contains("kem_public_key = \""), "{out}");
    let upgraded = std::fs::read_to_string(d.join("old.key")).unwrap();
    assert!(upgraded.contains("xwing-secret: ") && upgraded.contains("x25519-secret: "));
    assert!(std::fs::read_to_string(d.join("old.key.pub"))
        .unwrap()
        .contains("\"kem\""));
    let (c, msg) = code(&kuvert(d, &["keygen", "--upgrade", "old.key"]));
    assert_eq!(c, 2, "{msg}");
    assert!(msg.contains("already"), "{msg}");
}

/// Three nodes' logs of one job, each with its deletion receipt pinning the
/// shares_deleted record; then a log is cut and a receipt deleted.
#[test]
fn audit_verify_detects_a_cut_log_and_a_missing_receipt() {
    use kuvert_gov::audit::action;
    use kuvert_gov::{AuditEvent, AuditLog, Deleted, DeletionReceipt, PartyKey};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = kuvert_gov::AnalysisId([0x42; 32]);
    let job = id.to_hex();
    for node in 0..3u8 {
        let nd = d.join(format!("node{node}"));
        std::fs::create_dir_all(&nd).unwrap();
        let mut log = AuditLog::open(&nd.join(format!("audit-node{node}.log"))).unwrap();
        let actor = format!("node{node}");
        let ev = |a: &str| AuditEvent::new(&actor, a).analysis(id).job(&job);
        log.append(AuditEvent::new(&actor, action::ANALYSIS_ACCEPTED).analysis(id))
            .unwrap();
        log.append(ev(action::JOB_STARTED)).unwrap();
        log.append(
            ev(action::RESULT_SEALED)
                .detail("output", "n")
                .detail("recipient", "kontroll")
                .detail("rows", 1),
        )
        .unwrap();
        log.append(ev(action::SHARES_DELETED).detail("tables", vec!["fk"]))
            .unwrap();
        let (records, hash) = log.head();
        let r = DeletionReceipt::sign(
            &PartyKey::generate(&actor),
            id,
            &job,
            node,
            Deleted {
                tables: vec!["fk".into()],
                intermediate_state: true,
                session_keys: true,
            },
            Some(kuvert_gov::receipt::AuditHead {
                records,
                hash: hash.to_string(),
            }),
        );
        std::fs::write(nd.join("receipt.json"), serde_json::to_vec(&r).unwrap()).unwrap();
        log.append(ev(action::JOB_FINISHED).detail("status", "ok"))
            .unwrap();
    }
    let out = ok(&kuvert(d, &["audit", "verify", "--data-dir", "."]));
    assert!(
        out.contains("3 chains, 15 records, 3 receipts") && out.contains("all verified"),
        "{out}"
    );

    // A receipt deleted (kept-receipt-node2.json is not a receipt*.json
    // name): named; with --logs-only not required; given: verifies.
    let kept = d.join("kept-receipt-node2.json");
    std::fs::rename(d.join("node2/receipt.json"), &kept).unwrap();
    let (c, msg) = code(&kuvert(d, &["audit", "verify", "--data-dir", "."]));
    assert_eq!(c, 1, "{msg}");
    assert!(
        msg.contains("FAIL  missing: node2:")
            && msg.contains("audit-node2.log:4")
            && msg.contains("receipt is missing"),
        "{msg}"
    );
    ok(&kuvert(
        d,
        &["audit", "verify", "--data-dir", ".", "--logs-only"],
    ));
    ok(&kuvert(
        d,
        &[
            "audit",
            "verify",
            "--data-dir",
            ".",
            "--receipts",
            "kept-receipt-node2.json",
        ],
    ));

    // Node 0's log cut after job_started (3 lines gone): still a chain,
    // but its receipt and the other logs name what is missing.
    let log = d.join("node0/audit-node0.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&log, format!("{}\n", lines[..2].join("\n"))).unwrap();
    let (c, msg) = code(&kuvert(d, &["audit", "verify", "--data-dir", "."]));
    assert_eq!(c, 1, "{msg}");
    assert!(msg.contains("ok    ") && msg.contains("FAILED"), "{msg}");
    assert!(
        msg.contains("node0: ")
            && msg.contains("ends at record 2")
            && msg.contains("pins record 4")
            && msg.contains("the log was cut"),
        "{msg}"
    );
    for what in ["result_sealed", "shares_deleted", "job_finished"] {
        assert!(msg.contains(&format!("has no {what}")), "{what}: {msg}");
    }
}
