//! `kuvert run`: queries answered by three real node processes (TLS on
//! loopback), compared with answers computed by hand; every kind of bad
//! input refused with exit status 2 before any node starts; `--explain`
//! without nodes. Each successful run starts three processes, so there are
//! only a few.

use std::path::Path;
use std::process::{Command, Output};

const KUVERT: &str = env!("CARGO_BIN_EXE_kuvert");

/// Run `kuvert run ARGS` with its own TMPDIR (to check that it cleans up).
fn run(dir: &Path, args: &[&str]) -> Output {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    Command::new(KUVERT)
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Payments (fk) and assistance (ek), small enough to check by hand.
fn files(dir: &Path) {
    // Column types inferred: pnr idnr (header), fran date, belopp int,
    // forman text.
    std::fs::write(
        dir.join("fk.csv"),
        "pnr,forman,fran,belopp\n\
         811228-9874,sjukpenning,2024-01-10,1000\n\
         19121212-1212,sjukpenning,2024-02-01,250\n\
         811228-9874,foraldrapenning,2024-03-05,-40\n\
         701063-2391,sjukpenning,2024-04-01,70\n",
    )
    .unwrap();
    // Its schema from a .schema file beside it (amount as int, not inferred).
    std::fs::write(
        dir.join("ek.csv"),
        "pnr,belopp\n198112289874,5\n197010632391,7\n201212121212,9\n",
    )
    .unwrap();
    std::fs::write(dir.join("ek.schema"), "pnr:idnr,belopp:int\n").unwrap();
}

fn no_temp_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn queries_match_hand_computed_answers() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    files(dir);
    let tables = ["--table", "fk=fk.csv", "--table", "ek=ek.csv"];

    // Per person in both tables, the sum of fk payments, largest first.
    // 811228-9874: 1000 - 40 = 960; 701063-2391 (samordningsnummer): 70;
    // 19121212-1212 has no assistance; 201212121212 no payments.
    let mut args = tables.to_vec();
    args.extend([
        "--sql",
        "SELECT f.pnr, SUM(f.belopp) AS s, COUNT(*) AS n FROM fk f \
         WHERE f.pnr IN (SELECT pnr FROM ek) GROUP BY f.pnr ORDER BY s DESC",
    ]);
    assert_eq!(
        stdout(&run(dir, &args)),
        "pnr,s,n\n198112289874,960,2\n197010632391,70,1\n"
    );
    no_temp_left(dir);

    // Text, dates and a bool expression, to a file with --out; ties broken
    // ascending by every column; bools print as 1/0 like SQLite.
    let mut args = tables.to_vec();
    args.extend([
        "--sql",
        "SELECT forman, fran, belopp > 100 AS stor FROM fk WHERE fran >= '2024-02-01' ORDER BY forman",
        "--out",
        "answer.csv",
    ]);
    let o = run(dir, &args);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    assert_eq!(
        std::fs::read_to_string(dir.join("answer.csv")).unwrap(),
        "forman,fran,stor\n\
         foraldrapenning,2024-03-05,0\n\
         sjukpenning,2024-02-01,1\n\
         sjukpenning,2024-04-01,0\n"
    );

    // A global SUM over no rows is NULL (an empty cell), COUNT is 0.
    let mut args = tables.to_vec();
    args.extend([
        "--sql",
        "SELECT COUNT(*) AS n, SUM(belopp) AS s FROM ek WHERE belopp > 100",
    ]);
    assert_eq!(stdout(&run(dir, &args)), "n,s\n0,\n");
    no_temp_left(dir);

    // A query the executor cannot run on inputs of these sizes (a join of
    // two non-unique sides beyond the nested loop's limit) is bad input
    // too: exit 2 with the executor's advice, and nothing released.
    let mut csv = String::from("k,v\n");
    for i in 0..5000 {
        csv.push_str(&format!("{},{i}\n", i % 100));
    }
    std::fs::write(dir.join("big.csv"), &csv).unwrap();
    let o = run(
        dir,
        &[
            "--table",
            "t=big.csv",
            "--table",
            "u=big.csv",
            "--sql",
            "SELECT t.k, SUM(u.v) AS s FROM t JOIN u ON t.k = u.k GROUP BY t.k",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("cannot run the query") && t.contains("GROUP BY subquery"),
        "{t}"
    );
    assert!(o.stdout.is_empty(), "{t}");
    no_temp_left(dir);
}

#[test]
fn bad_input_exits_2_with_the_place_and_starts_no_node() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    files(dir);
    let check = |args: &[&str], want: &[&str]| {
        let o = run(dir, args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        for w in want {
            assert!(t.contains(w), "{args:?}: want {w:?} in {t}");
        }
        assert!(!t.contains("node 0"), "{args:?}: a node was involved: {t}");
        no_temp_left(dir);
    };
    let fk = ["--table", "fk=fk.csv", "--sql"];
    let with = |sql: &'static str| {
        let mut v = fk.to_vec();
        v.push(sql);
        v
    };
    // Unknown table, unknown column, type mismatch, unsupported SQL: the
    // planner's message with its position.
    check(
        &with("SELECT pnr FROM nope"),
        &["SQL line 1, column 17", "unknown table nope"],
    );
    check(
        &with("SELECT summa FROM fk"),
        &["SQL line 1, column 8", "unknown column summa"],
    );
    check(
        &with("SELECT pnr FROM fk WHERE belopp = fran"),
        &["SQL line 1, column 26", "int and date"],
    );
    check(
        &with("SELECT AVG(belopp) FROM fk"),
        &["SQL line 1, column 8", "AVG is not supported"],
    );
    check(&with("SELEKT 1"), &["SQL"]);
    // A bad CSV cell: file:line:column.
    std::fs::write(
        dir.join("bad.csv"),
        "pnr,belopp\n811228-9874,5\n811228-9875,x\n",
    )
    .unwrap();
    check(
        &[
            "--table",
            "b=bad.csv",
            "--schema",
            "b=pnr:idnr,belopp:int",
            "--sql",
            "SELECT pnr FROM b",
        ],
        &[
            "bad.csv:3:1: invalid identity number \"811228-9875\"",
            "bad.csv:3:2: invalid int \"x\"",
            "nothing was shared",
        ],
    );
    // A ragged CSV while inferring its types: file:line.
    std::fs::write(dir.join("ragged.csv"), "a,b\n1,2\n3\n").unwrap();
    check(
        &["--table", "r=ragged.csv", "--sql", "SELECT a FROM r"],
        &["ragged.csv:3: this line has 1 fields"],
    );
    // Flags.
    check(
        &["--table", "fk", "--sql", "SELECT 1"],
        &["--table must be NAME=PATH.csv"],
    );
    check(
        &["--table", "Fk=fk.csv", "--sql", "SELECT 1"],
        &["table name \"Fk\" is not valid"],
    );
    check(
        &["--table", "fk=missing.csv", "--sql", "SELECT 1"],
        &["missing.csv: no such file"],
    );
    check(
        &[
            "--table",
            "fk=fk.csv",
            "--schema",
            "fk=pnr:money",
            "--sql",
            "SELECT 1",
        ],
        &["--schema fk", "unknown column type \"money\""],
    );
    check(
        &[
            "--table",
            "fk=fk.csv",
            "--schema",
            "ek=pnr:idnr",
            "--sql",
            "SELECT 1",
        ],
        &["--schema ek names no --table"],
    );
}

#[test]
fn explain_prints_plan_costs_and_leakage_without_nodes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    files(dir);
    let o = run(
        dir,
        &[
            "--table",
            "fk=fk.csv",
            "--table",
            "ek=ek.csv",
            "--sql",
            "SELECT COUNT(*) AS n FROM fk WHERE pnr IN (SELECT pnr FROM ek)",
            "--explain",
        ],
    );
    let t = stdout(&o);
    // The row counts of the CSVs are the sizes the estimate uses.
    assert!(t.contains("Scan fk") && t.contains("-> 4 rows"), "{t}");
    assert!(t.contains("Scan ek") && t.contains("-> 3 rows"), "{t}");
    assert!(t.contains("rounds") && t.contains("LEAKAGE"), "{t}");
    // No node ran: nothing was ever created in the temporary directory,
    // and it works where no temporary directory could be created at all
    // (which starting the nodes needs).
    no_temp_left(dir);
    let o = Command::new(KUVERT)
        .args([
            "run",
            "--table",
            "fk=fk.csv",
            "--sql",
            "SELECT SUM(belopp) AS s FROM fk",
            "--explain",
        ])
        .current_dir(dir)
        .env("TMPDIR", dir.join("does-not-exist"))
        .output()
        .unwrap();
    assert!(stdout(&o).contains("LEAKAGE"));
}

/// Start `kuvert run` on a join that runs for a few seconds and return it
/// once a node has logged the job's start, with the run's directory.
#[cfg(target_os = "linux")]
fn long_run(dir: &Path) -> (std::process::Child, std::path::PathBuf) {
    use std::time::{Duration, Instant};
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut csv = String::from("k,v\n");
    for i in 0..40_000u64 {
        csv.push_str(&format!("{},{}\n", i * 7 % 40_000, i));
    }
    std::fs::write(dir.join("t.csv"), &csv).unwrap();
    std::fs::write(dir.join("u.csv"), &csv).unwrap();
    let mut child = Command::new(KUVERT)
        .args([
            "run",
            "--table",
            "t=t.csv",
            "--table",
            "u=u.csv",
            "--sql",
            "SELECT t.k, SUM(u.v) AS s FROM t JOIN u ON t.k = u.k GROUP BY t.k",
        ])
        .current_dir(dir)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = std::fs::read_dir(&tmp).unwrap().flatten().find(|e| {
            std::fs::read_to_string(e.path().join("node0.log"))
                .map(|l| l.contains("job started"))
                .unwrap_or(false)
        });
        if let Some(e) = started {
            return (child, e.path());
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "kuvert run ended early"
        );
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until no process runs with `run_dir` in its command line.
#[cfg(target_os = "linux")]
fn no_process_uses(run_dir: &Path) {
    use std::time::{Duration, Instant};
    let needle = run_dir.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&needle))
            .collect();
        if alive.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {alive:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ctrl-C in the middle of a query: exit status 130, the three node
/// processes gone and the temporary directory (keys, shares) deleted.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_stops_the_nodes_and_deletes_their_files() {
    let d = tempfile::tempdir().unwrap();
    let (child, run_dir) = long_run(d.path());
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!run_dir.exists(), "{} was left behind", run_dir.display());
    no_process_uses(&run_dir);
}

/// Even `kill -9` of `kuvert run` (no handler can run) ends its nodes:
/// they exit when their standard input, a pipe from it, closes.
#[cfg(target_os = "linux")]
#[test]
fn killed_outright_its_nodes_still_end() {
    let d = tempfile::tempdir().unwrap();
    let (mut child, run_dir) = long_run(d.path());
    child.kill().unwrap();
    child.wait().unwrap();
    no_process_uses(&run_dir);
}

/// `kuvert run --malicious`: the same answers as semi-honest (aggregates,
/// joins, rows, ORDER BY and GROUP BY through the MAC-checked shuffle); a
/// `WITH PRIVACY` query runs with the pairs' noise.
#[test]
fn malicious_runs_give_the_same_answers() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    files(dir);
    let tables = ["--table", "fk=fk.csv", "--table", "ek=ek.csv"];
    let queries = [
        (
            "SELECT COUNT(*) AS n, SUM(belopp) AS s, SUM(belopp * belopp) AS q \
             FROM fk WHERE belopp > 0 AND fran < '2024-04-01'",
            "n,s,q\n2,1250,1062500\n",
        ),
        (
            "SELECT COUNT(*) AS n FROM fk f JOIN ek e ON f.pnr = e.pnr WHERE e.belopp >= 6",
            "n\n1\n",
        ),
    ];
    for (sql, want) in queries {
        let mut args = tables.to_vec();
        args.extend(["--sql", sql]);
        assert_eq!(stdout(&run(dir, &args)), want, "semi-honest: {sql}");
        args.push("--malicious");
        assert_eq!(stdout(&run(dir, &args)), want, "malicious: {sql}");
        no_temp_left(dir);
    }

    // Rows, sorting and grouping (the shuffle) and DP noise run too.
    for sql in [
        "SELECT pnr, belopp FROM fk ORDER BY belopp",
        "SELECT e.pnr, COUNT(*) AS n FROM fk f JOIN ek e ON f.pnr = e.pnr GROUP BY e.pnr",
    ] {
        let mut args = tables.to_vec();
        args.extend(["--sql", sql]);
        let want = stdout(&run(dir, &args));
        args.push("--malicious");
        assert_eq!(stdout(&run(dir, &args)), want, "malicious: {sql}");
        no_temp_left(dir);
    }
    let mut args = tables.to_vec();
    args.extend([
        "--sql",
        "SELECT COUNT(*) AS n FROM fk WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr)",
        "--malicious",
    ]);
    let o = run(dir, &args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let out = stdout(&o);
    assert!(out.starts_with("n\n"), "{out}");
    no_temp_left(dir);
}

/// A node that deviates (the dev-mode hook `KUVERT_DEV_TAMPER` makes node 0
/// flip a bit of one message to node 2) stops `kuvert run --malicious`:
/// exit 1, the failed check named, no answer rows.
#[test]
fn a_deviating_node_stops_a_malicious_run_with_the_check_named_and_no_answer() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    files(dir);
    for round in [2, 5] {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let o = Command::new(KUVERT)
            .args([
                "run",
                "--table",
                "ek=ek.csv",
                "--sql",
                "SELECT COUNT(*) AS n, SUM(belopp) AS s FROM ek WHERE belopp > 6",
                "--malicious",
            ])
            .current_dir(dir)
            .env("TMPDIR", &tmp)
            .env("KUVERT_DEV_TAMPER", format!("0:2:{round}"))
            .output()
            .unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(o.stdout.is_empty(), "an answer was printed: {t}");
        assert!(t.contains("check \"") && t.contains("failed"), "{t}");
        assert!(t.contains("Nothing was released"), "{t}");
        no_temp_left(dir);
    }
}
