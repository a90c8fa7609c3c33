//! `kuvert bench query --malicious`: each workload runs semi-honest and in
//! malicious mode on fresh local nodes, both answers agree with SQLite, and
//! the ratios are printed (tiny sizes: this checks the contract, not the
//! speed; the numbers are in docs/benchmarks.md).

use std::process::Command;

const KUVERT: &str = env!("CARGO_BIN_EXE_kuvert");

#[test]
fn bench_query_malicious_runs_both_modes_and_prints_the_ratios() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(KUVERT)
        .args([
            "bench",
            "query",
            "--rows",
            "64",
            "--workloads",
            "psi-card,sort",
            "--malicious",
            "--json",
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["rows"], 64);
    for w in ["psi-card", "sort"] {
        let r = &v["workloads"][w];
        assert_eq!(r["agrees_with_sqlite"], true, "{w}: {r}");
        assert_eq!(r["malicious"]["agrees_with_sqlite"], true, "{w}: {r}");
        // Malicious mode proves and MAC-checks: more rounds and bytes.
        assert!(
            r["malicious"]["rounds"].as_u64() > r["rounds"].as_u64(),
            "{w}: {r}"
        );
        let q = &r["malicious_over_semi_honest"];
        for k in ["time", "rounds", "bytes", "rss"] {
            assert!(q[k].as_f64().is_some_and(|x| x > 0.0), "{w}: {k} in {q}");
        }
        assert!(q["bytes"].as_f64().unwrap() > 1.0, "{w}: {q}");
    }

    // The table form: both tables and the ratios.
    let o = Command::new(KUVERT)
        .args([
            "bench",
            "query",
            "--rows",
            "32",
            "--workloads",
            "psi-card",
            "--malicious",
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("semi-honest, three node processes"), "{out}");
    assert!(
        out.contains("malicious security, three node processes"),
        "{out}"
    );
    assert!(out.contains("malicious / semi-honest, same run"), "{out}");
}
