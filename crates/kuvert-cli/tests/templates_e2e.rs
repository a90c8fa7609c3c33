//! Every analysis template through the governed service, end to end, with
//! real node and coordinator processes: `kuvert demo --template NAME`
//! submits the filled-in template, every contributor approves and uploads,
//! the three nodes compute under MPC, every recipient fetches and opens its
//! sealed results, and the demo checks each output against SQLite on the
//! cleartext inputs (exact outputs: the same rows; `WITH PRIVACY` outputs:
//! within the noise bound, and not noiseless). Here we check what the demo
//! reports and what it leaves behind: no share files, a deletion receipt
//! from each node, audit chains that verify.
//!
//! One test per template, so they run in parallel and fail separately.
//! Row counts are small but give non-empty answers (checked below).

use std::path::{Path, PathBuf};
use std::process::Command;

const KUVERT: &str = env!("CARGO_BIN_EXE_kuvert");

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Run the demo of `template` with `rows` rows; return its standard output
/// and its directory (kept until the returned guard drops).
fn run_template(template: &str, rows: usize) -> (String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = Command::new(KUVERT)
        .args(["demo", "--template", template, "--rows", &rows.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let all = format!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "kuvert demo --template {template} failed ({}):\n{all}",
        out.status
    );
    // The answers agree with SQLite, and the demo says so for every output.
    assert!(
        stdout.contains("answers: all ") && stdout.contains("agree with SQLite"),
        "{all}"
    );
    for bad in [
        "DIFFERS",
        "OUTSIDE THE NOISE BOUND",
        "NO NOISE",
        "NOT CHECKED",
    ] {
        assert!(!stdout.contains(bad), "{bad}:\n{all}");
    }
    let receives = stdout.matches(" receives ").count();
    assert!(receives >= 1, "{all}");
    assert_eq!(
        receives,
        stdout
            .matches("same as SQLite on the cleartext inputs")
            .count()
            + stdout.matches("within the noise bound of SQLite").count(),
        "every output is checked: {all}"
    );
    if let Some(t) = stdout.lines().find(|l| l.starts_with("time: ")) {
        eprintln!("{template}: {t}");
    }

    let mut files = Vec::new();
    files_under(&dir, &mut files);
    // No share file remains at any node.
    let shares: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".shares"))
        .collect();
    assert!(shares.is_empty(), "share files left: {shares:?}");
    assert!(stdout.contains("share files left at the nodes: 0"), "{all}");
    // A deletion receipt from each of the three nodes, verified by the
    // demo against the nodes' keys.
    for i in 0..3 {
        let node = dir.join(format!("operators/operator-{i}/node"));
        assert!(
            files
                .iter()
                .any(|f| f.starts_with(&node) && f.ends_with("receipt.json")),
            "no deletion receipt under {}",
            node.display()
        );
    }
    assert!(stdout.contains("deletion receipts: 3 of 3 nodes"), "{all}");
    assert_eq!(stdout.matches("signature verified").count(), 3, "{all}");
    // The results are not empty: some cell of some recipient's result is
    // neither empty nor 0 (a check on an empty answer proves little).
    let results: Vec<_> = files
        .iter()
        .filter(|f| f.starts_with(dir.join("results")))
        .collect();
    assert!(!results.is_empty(), "{all}");
    let informative = results.iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .skip(1)
            .any(|l| l.split(',').any(|c| !c.is_empty() && c != "0"))
    });
    assert!(informative, "every result is empty or 0: {all}");

    // The audit chains verify from the command line too.
    let audit = Command::new(KUVERT)
        .args(["audit", "verify", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "kuvert audit verify: {}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
    (stdout, tmp)
}

#[test]
fn overlapping_benefits() {
    let (out, _dir) = run_template("overlapping-benefits", 200);
    // fk, kommun and kontroll each open their result.
    assert_eq!(out.matches(" receives ").count(), 3, "{out}");
}

#[test]
fn non_take_up() {
    run_template("non-take-up", 200);
}

#[test]
fn double_registration() {
    let (out, _dir) = run_template("double-registration", 200);
    assert_eq!(out.matches(" receives ").count(), 2, "{out}");
}

#[test]
fn opt_out() {
    run_template("opt-out", 200);
}

#[test]
fn parallel_assistance() {
    run_template("parallel-assistance", 200);
}

#[test]
fn quality_indicators() {
    // 21 contributors and 22 recipients; the fewest rows the generator
    // allows is one episode per region (21), a few more give every region
    // a patient with several episodes. Both outputs are differentially
    // private: the registry's "regions" and "national", and every region's
    // "national".
    let (out, dir) = run_template("quality-indicators", 63);
    assert_eq!(out.matches(" receives ").count(), 23, "{out}");
    assert_eq!(
        out.matches("within the noise bound of SQLite").count(),
        23,
        "{out}"
    );
    // Each node charged both outputs (ε = 1 + 0.5, δ = 2e-6) to each
    // region's own signed budget, in its own ledger.
    for i in 0..3 {
        let path = dir.path().join(format!(
            "demo/operators/operator-{i}/node/data/budget-ledger.json"
        ));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let accounts = v["accounts"].as_array().unwrap();
        assert_eq!(accounts.len(), 21, "node {i}");
        for a in accounts {
            let charges = a["charges"].as_array().unwrap();
            assert_eq!(charges.len(), 2, "node {i}: {a}");
            let eps: f64 = charges.iter().map(|c| c["epsilon"].as_f64().unwrap()).sum();
            assert!((eps - 1.5).abs() < 1e-9, "node {i}: {a}");
            assert!(charges.iter().all(|c| c.get("refunded").is_none()));
        }
    }
}
