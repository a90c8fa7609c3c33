//! End-to-end tests of the synthetic-data evaluation command (exit codes
//! 0 / 4 / 2, the criteria table, the JSON and HTML reports).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kuvert() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kuvert-cli-synth-eval-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gen(dir: &Path, rows: usize, seed: u64) -> PathBuf {
    let p = dir.join(format!("gen{seed}.csv"));
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

fn evaluate(real: &Path, holdout: &Path, syn: &Path, extra: &[&str]) -> Output {
    let attacks = if extra.contains(&"--attacks") {
        &[][..]
    } else {
        &["--attacks", "100"][..]
    };
    kuvert()
        .args(["synth", "evaluate"])
        .arg("--real")
        .arg(real)
        .arg("--holdout")
        .arg(holdout)
        .arg("--synthetic")
        .arg(syn)
        .args(attacks)
        .args(["--quasi", "age,sex,postcode", "--sensitive", "diagnosis"])
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn exit_codes_follow_the_criteria() {
    let d = tmp("codes");
    let real = gen(&d, 1500, 1);
    let holdout = gen(&d, 1500, 2);
    let fresh = gen(&d, 1500, 3);
    let accept = d.join("accept.toml");
    std::fs::write(
        &accept,
        "# loose quality, strict copies\nmax_tvd_1way = 0.5\nmax_exact_copies = 0.01\nmax_identity_copies = 0\nmin_ml_efficacy = 0.5\ntarget = \"diagnosis\"\n",
    )
    .unwrap();
    let acc = accept.to_str().unwrap();
    // An independent sample of the same distribution passes: exit 0.
    let json = d.join("eval.json");
    let html = d.join("eval.html");
    let o = evaluate(
        &real,
        &holdout,
        &fresh,
        &[
            "--accept",
            acc,
            "--json",
            json.to_str().unwrap(),
            "--report",
            html.to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS  max_tvd_1way"), "{t}");
    assert!(t.contains("PASSED"), "{t}");
    assert!(t.contains("NOT differentially private"), "{t}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["differentially_private"], false);
    assert!(v["criteria"].as_array().unwrap().len() >= 3);
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.contains("Acceptance decision") && h.contains("<b>PASS</b>"));
    // The real data themselves as "synthetic": copies, exit 4.
    let o = evaluate(&real, &holdout, &real, &["--accept", acc]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(t.contains("FAIL  max_exact_copies"), "{t}");
    assert!(t.contains("FAIL  max_identity_copies"), "{t}");
    assert!(t.contains("FAILED"), "{t}");
    // No criteria: exit 0 (identity numbers ignored so nothing is checked).
    let o = evaluate(&real, &holdout, &fresh, &["--kind", "pnr=ignore"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("none given"), "{t}");
    // JSON on stdout: exactly one JSON object as the last line.
    let o = evaluate(
        &real,
        &holdout,
        &fresh,
        &["--accept", acc, "--json", "-", "--attacks", "0"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(v["privacy"].is_null());
}

#[test]
fn bad_input_and_config_exit_2() {
    let d = tmp("bad");
    let real = gen(&d, 300, 1);
    let holdout = gen(&d, 300, 2);
    let accept = d.join("accept.toml");
    std::fs::write(&accept, "max_tvd_1way = 0.1\nmax_tvd_2wya = 0.2\n").unwrap();
    let o = evaluate(
        &real,
        &holdout,
        &real,
        &["--accept", accept.to_str().unwrap()],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("accept.toml:2:1:") && t.contains("max_tvd_2wya"),
        "{t}"
    );
    // An unknown column in the configuration.
    std::fs::write(&accept, "[columns.agee]\nkind = \"numeric\"\n").unwrap();
    let o = evaluate(
        &real,
        &holdout,
        &real,
        &["--accept", accept.to_str().unwrap()],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("`agee`") && t.contains("columns are:"), "{t}");
    // An unknown target on the command line.
    let o = evaluate(&real, &holdout, &real, &["--target", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("`nope`"));
    // A missing file and a malformed CSV.
    let o = evaluate(&real, &holdout, &d.join("missing.csv"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let bad = d.join("bad.csv");
    std::fs::write(&bad, "age,sex\n1,F\n2\n").unwrap();
    let o = evaluate(&real, &holdout, &bad, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.csv:3"), "{}", text(&o));
    // A bad --kind.
    let o = evaluate(&real, &holdout, &real, &["--kind", "age=colour"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
