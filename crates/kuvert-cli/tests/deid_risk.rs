//! End-to-end tests of `kuvert deid` and `kuvert risk` (exit codes, output
//! contracts, no key in any output).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kuvert() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kuvert-cli-deid-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gen(dir: &Path, rows: usize, seed: u64) -> PathBuf {
    let p = dir.join(format!("in{seed}.csv"));
    let st = kuvert()
        .args([
            "deid",
            "gen",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    p
}

fn read_csv(p: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines();
    let h: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    (
        h,
        lines
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect(),
    )
}

#[test]
fn deid_meets_k_and_keeps_the_key_out() {
    let d = tmp("k");
    let input = gen(&d, 2000, 1);
    let key = d.join("k.key");
    assert!(kuvert()
        .args(["deid", "keygen", "--out"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    // keygen refuses to overwrite.
    let again = kuvert()
        .args(["deid", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    let out = d.join("out.csv");
    let rep = d.join("rep.json");
    let o = kuvert()
        .args(["deid", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args([
            "--quasi",
            "age,sex,postcode",
            "--sensitive",
            "diagnosis",
            "--k",
            "5",
            "--l",
            "2",
        ])
        .args(["--pseudonymize", "pnr", "--key-file"])
        .arg(&key)
        .args(["--max-suppression", "0.05", "--report-json"])
        .arg(&rep)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("suppressed"), "{stderr}");
    let (h, rows) = read_csv(&out);
    let qi: Vec<usize> = ["age", "sex", "postcode"]
        .iter()
        .map(|q| h.iter().position(|x| x == q).unwrap())
        .collect();
    let s = h.iter().position(|x| x == "diagnosis").unwrap();
    let mut classes: HashMap<Vec<String>, Vec<String>> = HashMap::new();
    for r in &rows {
        classes
            .entry(qi.iter().map(|&c| r[c].clone()).collect())
            .or_default()
            .push(r[s].clone());
    }
    for v in classes.values() {
        assert!(v.len() >= 5);
        let mut d = v.clone();
        d.sort();
        d.dedup();
        assert!(d.len() >= 2);
    }
    let key_hex = std::fs::read_to_string(&key).unwrap();
    let key_hex = key_hex
        .lines()
        .find(|l| l.starts_with("kuvert-deid-key-v1:"))
        .unwrap()[19..]
        .to_string();
    for hay in [
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&rep).unwrap(),
        stderr,
        String::from_utf8_lossy(&o.stdout).to_string(),
    ] {
        assert!(!hay.contains(&key_hex[..32]));
    }
}

#[test]
fn exit_codes() {
    let d = tmp("codes");
    let input = gen(&d, 300, 2);
    let out = d.join("o.csv");
    // Unknown column: 2, and the message lists the columns.
    let o = kuvert()
        .args(["deid", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args(["--quasi", "nope", "--k", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("postcode"));
    // Unsatisfiable: 3.
    let o = kuvert()
        .args(["deid", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args(["--quasi", "age,sex", "--k", "1000"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Invalid identity number: 2 with file:line:column.
    let bad = d.join("bad.csv");
    std::fs::write(&bad, "pnr,x\n811218-9876,a\n811218-9875,b\n").unwrap();
    let key = d.join("k.key");
    assert!(kuvert()
        .args(["deid", "keygen", "--out"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    let o = kuvert()
        .args(["deid", "--input"])
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .args(["--pseudonymize", "pnr", "--key-file"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bad.csv:3:1"), "{e}");
}

fn risk_json(
    args: &[&str],
    original: &Path,
    released: &Path,
    control: Option<&Path>,
) -> serde_json::Value {
    let mut c = kuvert();
    c.args(["risk", "--original"])
        .arg(original)
        .arg("--released")
        .arg(released);
    if let Some(ct) = control {
        c.arg("--control").arg(ct);
    }
    let o = c.args(args).arg("--json").output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn risk_json_and_report() {
    let d = tmp("risk");
    let train = gen(&d, 1500, 3);
    let control = gen(&d, 1000, 4);
    let other = gen(&d, 1500, 5);
    let args = [
        "--quasi",
        "age,sex,postcode,education",
        "--sensitive",
        "diagnosis",
        "--attacks",
        "200",
    ];
    let leak = risk_json(&args, &train, &train, Some(&control));
    assert_eq!(leak["prosecutor_risk_max"], 1.0);
    assert!(leak["inference_risk"].as_f64().unwrap() > 0.8);
    assert!(leak["membership_risk"].as_f64().unwrap() > 0.9);
    let indep = risk_json(&args, &train, &other, Some(&control));
    assert!(indep["inference_risk"].as_f64().unwrap() < 0.15);
    assert!(indep["membership_risk"].as_f64().unwrap() < 0.15);
    // The report is written and states the assumptions.
    let html = d.join("r.html");
    let st = kuvert()
        .args(["risk", "--original"])
        .arg(&train)
        .arg("--released")
        .arg(&train)
        .args(["--quasi", "age,sex", "--attacks", "50", "--report"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(st.status.success());
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.contains("Attacker assumptions") && h.contains("<svg") && !h.contains("<script"));
}
