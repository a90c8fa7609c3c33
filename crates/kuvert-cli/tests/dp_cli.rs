//! `kuvert dp ...` end to end: JSON last line, exit codes 0 / 2 / 3, ledger
//! file contents, plot files.

use std::path::Path;
use std::process::{Command, Output};

fn kuvert(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run kuvert")
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("pid,amount,region\n");
    for i in 0..50 {
        csv.push_str(&format!(
            "{},{},{}\n",
            i % 20,
            i * 10,
            if i % 2 == 0 { "a" } else { "b" }
        ));
    }
    std::fs::write(dir.path().join("pay.csv"), csv).unwrap();
    dir
}

fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line {last:?}: {e}"))
}

#[test]
fn release_json_is_the_last_line() {
    let dir = setup();
    let out = kuvert(
        &[
            "dp",
            "release",
            "--table",
            "t=pay.csv",
            "--sql",
            "SELECT COUNT(*) AS n FROM t",
            "--epsilon",
            "1000",
            "--json",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = last_json(&out);
    assert_eq!(j["values"][0]["n"], 50, "ε = 1000 gives zero noise w.p. ~1");
    assert_eq!(j["mechanism"], "discrete_laplace");
    assert_eq!(j["epsilon"], 1000.0);
    assert_eq!(j["delta"], 0.0);
    assert!(j["noise_std"].as_f64().unwrap() < 0.01);
}

#[test]
fn budget_exceeded_exits_3_and_says_what_is_left() {
    let dir = setup();
    let args = |eps: &'static str| {
        vec![
            "dp",
            "release",
            "--table",
            "t=pay.csv",
            "--sql",
            "SELECT COUNT(*) AS n FROM t",
            "--epsilon",
            eps,
            "--ledger",
            "ledger.json",
            "--budget",
            "1",
            "--json",
        ]
    };
    assert!(kuvert(&args("0.7"), dir.path()).status.success());
    let before = std::fs::read_to_string(dir.path().join("ledger.json")).unwrap();
    let out = kuvert(&args("0.5"), dir.path());
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("remaining ε = 0.300000"), "{err}");
    assert!((last_json(&out)["remaining_epsilon"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    let after = std::fs::read_to_string(dir.path().join("ledger.json")).unwrap();
    assert_eq!(before, after, "a refused release must not touch the ledger");
    // What is left can still be spent.
    assert!(kuvert(&args("0.3"), dir.path()).status.success());
}

#[test]
fn bad_input_exits_2_with_position() {
    let dir = setup();
    let out = kuvert(
        &[
            "dp",
            "release",
            "--table",
            "t=pay.csv",
            "--sql",
            "SELECT COUNT(*) FROM t WHERE amount >",
            "--epsilon",
            "1",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1, column 38"), "{err}");
    let out = kuvert(
        &[
            "dp",
            "release",
            "--table",
            "t=pay.csv",
            "--sql",
            "SELECT region, COUNT(*) FROM t GROUP BY region",
            "--epsilon",
            "1",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--keys region="));
}

#[test]
fn plan_and_curve() {
    let dir = setup();
    let q = [
        "--table",
        "t=pay.csv",
        "--sql",
        "SELECT SUM(amount) AS s FROM t",
        "--epsilon",
        "1",
        "--bounds",
        "amount=0:100",
    ];
    let out = kuvert(&[&["dp", "plan"], &q[..], &["--json"]].concat(), dir.path());
    assert!(out.status.success());
    let j = last_json(&out);
    // Laplace scale 100/1: std = sqrt(2q)/(1-q), q = e^-0.01.
    let std = j["measurements"][0]["std"].as_f64().unwrap();
    let e = (-0.01f64).exp();
    assert!((std - (2.0 * e).sqrt() / (1.0 - e)).abs() < 1e-6, "{std}");
    let out = kuvert(
        &[&["dp", "curve"], &q[..], &["--out", "c.html"]].concat(),
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(dir.path().join("c.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("polyline"));
    let out = kuvert(
        &[&["dp", "curve"], &q[..], &["--out", "c.png"]].concat(),
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(dir.path().join("c.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, after the chunk length and type
    assert_eq!(&png[12..16], b"IHDR");
    let wh = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((wh(16), wh(20)), (1520, 880));
    let out = kuvert(
        &[&["dp", "curve"], &q[..], &["--out", "c.gif"]].concat(),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("c.gif").exists());
}

#[test]
fn randomize_and_estimate() {
    let dir = setup();
    let mut csv = String::from("id,answer\n");
    for i in 0..3000 {
        csv.push_str(&format!("{i},{}\n", if i % 4 == 0 { "no" } else { "yes" }));
    }
    std::fs::write(dir.path().join("s.csv"), csv).unwrap();
    let common = [
        "--column",
        "answer",
        "--categories",
        "yes,no",
        "--epsilon",
        "2",
    ];
    let out = kuvert(
        &[
            &["dp", "randomize", "--in", "s.csv", "--out", "r.csv"],
            &common[..],
        ]
        .concat(),
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kuvert(
        &[&["dp", "estimate", "--in", "r.csv", "--json"], &common[..]].concat(),
        dir.path(),
    );
    assert!(out.status.success());
    let j = last_json(&out);
    let yes = &j["estimates"][0];
    let z = (yes["share"].as_f64().unwrap() - 0.75) / yes["std_error"].as_f64().unwrap();
    assert!(z.abs() < 5.0, "{j}");
    // A value outside the categories is bad input.
    let out = kuvert(
        &[
            &["dp", "randomize", "--in", "pay.csv", "--out", "x.csv"],
            &[
                "--column",
                "region",
                "--categories",
                "a,c",
                "--epsilon",
                "1",
            ][..],
        ]
        .concat(),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
}
