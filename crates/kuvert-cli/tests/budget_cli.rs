//! `kuvert budget set|show` against the demo's three node processes: a
//! contributor signs its limit, each node keeps it, a replayed older limit
//! is refused, and `show` reads the three ledgers.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{start_demo, text, KUVERT};

fn budget(dir: &Path, pki: &str, args: &[&str]) -> Output {
    Command::new(KUVERT)
        .arg("budget")
        .args(args)
        .arg("--key")
        .arg(dir.join("keys/fk.key"))
        .arg("--federation")
        .arg(dir.join("operators/federation.toml"))
        .arg("--pki")
        .arg(pki)
        .output()
        .unwrap()
}

#[test]
fn a_contributor_sets_and_reads_its_limits_at_the_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let demo = start_demo(&dir, 50);
    let pki = demo.var("KUVERT_PKI");

    let o = budget(&dir, &pki, &["show"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no limits"), "{}", text(&o));

    let o = budget(&dir, &pki, &["set", "--epsilon", "3", "--delta", "1e-5"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    for i in 0..3 {
        assert!(
            out.contains(&format!(
                "node {i} recorded the limit of dataset \"default\" (version 1)"
            )),
            "{out}"
        );
    }
    // Lowered: the next version is chosen from what the nodes hold.
    let o = budget(&dir, &pki, &["set", "--epsilon", "2", "--delta", "1e-5"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("(version 2)"), "{}", text(&o));
    // An older, more generous limit cannot be replayed.
    let o = budget(
        &dir,
        &pki,
        &["set", "--epsilon", "9", "--delta", "1e-5", "--version", "1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("higher --version"), "{}", text(&o));
    // Nonsense is refused before anything is signed or sent.
    let o = budget(&dir, &pki, &["set", "--epsilon", "0", "--delta", "1e-5"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("epsilon"), "{}", text(&o));

    let o = budget(&dir, &pki, &["show"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    for i in 0..3 {
        assert!(
            out.contains(&format!("node {i}: limit ε = 2 δ = 0.00001 (version 2)")),
            "{out}"
        );
    }
    let o = budget(&dir, &pki, &["show", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[2][0]["limit"]["version"], 2);
    drop(demo);
}
