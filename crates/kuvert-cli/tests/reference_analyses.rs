//! The six reference analyses of DESIGN.md end to end: generated inputs,
//! `kuvert run` (three node processes over TLS on loopback, shares uploaded
//! as each contributor would, the answer reconstructed as the recipient
//! would), compared with SQLite's answer on the same CSVs.

use std::path::Path;
use std::process::Command;

fn kuvert() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
}

fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn check_analysis(name: &str, rows: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    kuvert_examples::write_inputs(name, rows, seed, dir.path()).unwrap();
    let analysis = kuvert_examples::get(name).unwrap();
    for output in &analysis.outputs {
        let mut cmd = kuvert();
        cmd.arg("run");
        for t in &analysis.tables {
            let path = dir.path().join(format!("{}.csv", t.name));
            cmd.arg("--table")
                .arg(format!("{}={}", t.name, path.display()));
        }
        cmd.arg("--sql").arg(&output.sql);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{name}/{}: kuvert run failed: {}",
            output.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let (header, mut got) = parse_csv(&String::from_utf8(out.stdout).unwrap());
        let want =
            kuvert_examples::sqlite::reference(name, &output.name, Path::new(dir.path())).unwrap();
        assert_eq!(header, want.columns, "{name}/{}: header", output.name);
        let mut want_rows = want.rows.clone();
        if !output.sql.to_uppercase().contains("ORDER BY") {
            got.sort();
            want_rows.sort();
        }
        assert!(
            !want_rows.is_empty(),
            "{name}/{}: the reference answer is empty",
            output.name
        );
        assert_eq!(got, want_rows, "{name}/{}", output.name);
    }
}

#[test]
fn overlapping_benefits() {
    check_analysis("overlapping-benefits", 400, 11);
}

#[test]
fn non_take_up() {
    check_analysis("non-take-up", 300, 12);
}

#[test]
fn double_registration() {
    check_analysis("double-registration", 400, 13);
}

#[test]
fn opt_out() {
    check_analysis("opt-out", 400, 14);
}

#[test]
fn parallel_assistance() {
    check_analysis("parallel-assistance", 300, 15);
}

#[test]
fn quality_indicators() {
    check_analysis("quality-indicators", 600, 16);
}

/// The README's main command: `kuvert run --example NAME` generates,
/// runs every output and checks each against SQLite (exit 0 only if all
/// agree).
#[test]
fn run_example_checks_every_output_against_sqlite() {
    let out = kuvert()
        .args(["run", "--example", "double-registration", "--rows", "300"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("SQLite on the cleartext CSVs: same answer"),
        "{text}"
    );
    let bad = kuvert()
        .args(["run", "--example", "no-such-analysis"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("kuvert example list"));
}
