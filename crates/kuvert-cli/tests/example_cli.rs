//! `kuvert example`: list, sql, gen and sqlite as real processes, with the
//! exit codes of bad input.

use std::process::{Command, Output};

fn kuvert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
        .args(args)
        .output()
        .expect("run kuvert")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn list_and_sql() {
    let o = kuvert(&["example", "list"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for name in [
        "overlapping-benefits:",
        "non-take-up:",
        "double-registration:",
        "opt-out:",
        "parallel-assistance:",
        "quality-indicators:",
    ] {
        assert!(s.contains(name), "{s}");
    }
    assert!(s.contains("output ids to the control unit only"), "{s}");

    let o = kuvert(&["example", "sql", "opt-out", "rows"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "SELECT h.rad FROM holder h WHERE h.pnr IN (SELECT pnr FROM optout);\n"
    );
}

#[test]
fn gen_then_sqlite_gives_the_hand_checked_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dr");
    let out_s = out.to_str().unwrap();
    let o = kuvert(&[
        "example",
        "gen",
        "double-registration",
        "--rows",
        "500",
        "--out",
        out_s,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{out_s}/reg_a.csv\n{out_s}/reg_b.csv\n")
    );
    assert!(stderr(&o).contains(&format!(
        "kuvert run --table reg_a={out_s}/reg_a.csv --table reg_b={out_s}/reg_b.csv --sql \"$(cat examples/double-registration/count.sql)\""
    )));
    assert_eq!(
        std::fs::read_to_string(out.join("reg_b.schema")).unwrap(),
        "pnr:idnr,kommun:int\n"
    );
    // The generator puts exactly rows/10 of A's persons into B.
    let o = kuvert(&["example", "sqlite", "double-registration", "--dir", out_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "personer\n50\n");
}

#[test]
fn bad_input_exits_2_with_a_reason() {
    let o = kuvert(&["example", "gen", "no-such", "--out", "/tmp/x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("the analyses are: overlapping-benefits"));

    let o = kuvert(&["example", "sql", "opt-out", "ids"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("its outputs are: rows"));

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = kuvert(&["example", "sqlite", "opt-out", "--dir", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("optout.csv"), "{}", stderr(&o));
    assert!(stderr(&o).contains("kuvert example gen"), "{}", stderr(&o));

    std::fs::write(dir.path().join("optout.csv"), "pnr\n811228-9875\n").unwrap();
    std::fs::write(dir.path().join("holder.csv"), "rad,pnr,diagnos\n").unwrap();
    let o = kuvert(&["example", "sqlite", "opt-out", "--dir", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("optout.csv:2:1: invalid identity number \"811228-9875\""),
        "{}",
        stderr(&o)
    );
}
