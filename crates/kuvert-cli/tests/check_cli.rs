//! `kuvert analysis check` compiles every output as the nodes will before
//! they register it: every template compiles, and a spec whose SQL names an
//! undeclared column or whose `[[dp]]` section disagrees with its
//! `WITH PRIVACY` clauses exits 2 naming the output.

use std::path::Path;
use std::process::{Command, Output};

fn kuvert(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const NAMES: [&str; 6] = [
    "overlapping-benefits",
    "non-take-up",
    "double-registration",
    "opt-out",
    "parallel-assistance",
    "quality-indicators",
];

#[test]
fn every_template_compiles() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let list = String::from_utf8(kuvert(d, &["analysis", "template", "--list"]).stdout).unwrap();
    for name in NAMES {
        assert!(list.contains(name), "{list}");
        let file = format!("{name}.toml");
        let o = kuvert(d, &["analysis", "template", name, "--out", &file]);
        assert!(o.status.success(), "{name}: {}", show(&o));
        let o = kuvert(d, &["analysis", "check", "--template", &file]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", show(&o));
    }
}

const PERSONS_SQL: &str = "SELECT COUNT(DISTINCT f.pnr) AS personer, SUM(f.belopp) AS fk_belopp FROM fk f\n  WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till);";

const DP_SQL: &str = "SELECT COUNT(*) AS n, SUM(belopp) AS s FROM fk\n  WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr, max_rows = 2, lo = 0, hi = 1000);";

fn dp(epsilon: &str, delta: &str) -> String {
    format!("\n[[dp]]\noutput = \"persons\"\nepsilon = {epsilon}\ndelta = {delta}\n")
}

/// The overlapping-benefits template changed by `edit`, checked with
/// --template: exit 2, and stderr names `output` and contains `what`.
fn refused(d: &Path, case: &str, edit: impl Fn(&str) -> String, output: &str, what: &str) {
    let text = std::fs::read_to_string(d.join("ob.toml")).unwrap();
    let changed = edit(&text);
    assert_ne!(changed, text, "{case}: the edit changed nothing");
    let file = format!("{case}.toml");
    std::fs::write(d.join(&file), changed).unwrap();
    let o = kuvert(d, &["analysis", "check", "--template", &file]);
    assert_eq!(o.status.code(), Some(2), "{case}: {}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("output \"{output}\"")) && err.contains(what),
        "{case}: {}",
        show(&o)
    );
    assert!(o.stdout.is_empty(), "{case}: {}", show(&o));
}

#[test]
fn a_spec_that_cannot_run_is_refused_naming_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = kuvert(
        d,
        &[
            "analysis",
            "template",
            "overlapping-benefits",
            "--out",
            "ob.toml",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let text = std::fs::read_to_string(d.join("ob.toml")).unwrap();
    assert!(text.contains(PERSONS_SQL));

    // A column the tables do not declare.
    refused(
        d,
        "undeclared-column",
        |t| {
            t.replace(
                "SELECT DISTINCT f.pnr FROM fk f",
                "SELECT DISTINCT f.kommun FROM fk f",
            )
        },
        "ids",
        "kommun",
    );
    // A [[dp]] entry, but the SQL has no WITH PRIVACY.
    refused(
        d,
        "dp-without-privacy",
        |t| format!("{t}{}", dp("1.0", "1e-6")),
        "persons",
        "no WITH PRIVACY clause",
    );
    // WITH PRIVACY, but no [[dp]] entry (never charged to any budget).
    refused(
        d,
        "privacy-without-dp",
        |t| t.replace(PERSONS_SQL, DP_SQL),
        "persons",
        "no [[dp]] entry",
    );
    // δ = 0 in [[dp]], where WITH PRIVACY needs δ > 0.
    refused(
        d,
        "delta-zero",
        |t| format!("{}{}", t.replace(PERSONS_SQL, DP_SQL), dp("1.0", "0.0")),
        "persons",
        "needs δ > 0",
    );
    // ε differs between [[dp]] and WITH PRIVACY.
    refused(
        d,
        "epsilon-differs",
        |t| format!("{}{}", t.replace(PERSONS_SQL, DP_SQL), dp("2.0", "1e-6")),
        "persons",
        "give the same ε and δ",
    );
    // WITH PRIVACY names no person column the rows have.
    refused(
        d,
        "no-person",
        |t| {
            format!(
                "{}{}",
                t.replace(
                    PERSONS_SQL,
                    &DP_SQL.replace("person = pnr", "person = patient")
                ),
                dp("1.0", "1e-6")
            )
        },
        "persons",
        "person = patient",
    );
    // And the consistent version passes.
    let good = format!("{}{}", text.replace(PERSONS_SQL, DP_SQL), dp("1.0", "1e-6"));
    std::fs::write(d.join("good.toml"), good).unwrap();
    let o = kuvert(d, &["analysis", "check", "--template", "good.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

/// `kuvert analysis template NAME --contributors FILE --out F`, then
/// `kuvert analysis check --template F`: both exit 0; F is returned.
fn generated(d: &Path, name: &str, list: &str, csv: &str) -> String {
    std::fs::write(d.join(list), csv).unwrap();
    let out = format!("{list}.toml");
    let o = kuvert(
        d,
        &[
            "analysis",
            "template",
            name,
            "--contributors",
            list,
            "--out",
            &out,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{name}: {}", show(&o));
    let o = kuvert(d, &["analysis", "check", "--template", &out]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", show(&o));
    std::fs::read_to_string(d.join(out)).unwrap()
}

#[test]
fn a_list_of_contributors_makes_a_template_that_compiles() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let text = generated(
        d,
        "quality-indicators",
        "regions.csv",
        "id,organisation,region\n\
         region-01,Region Stockholm,01\n\
         region-12,\"Region Skåne, Syd\",12\n\
         region-14,Västra Götalandsregionen,14\n\
         region-09,Region Gotland,9\n\
         region-25,Region Norrbotten,25\n",
    );
    assert_eq!(text.matches("[[contributors]]").count(), 5);
    assert_eq!(text.matches("\n[[recipients]]").count(), 6);
    assert!(text.contains("name = \"region_05\""));
    assert!(!text.contains("region_06"));
    assert!(text.contains("organisation = \"Region Skåne, Syd\""));
    assert!(text.contains("groups = (1, 12, 14, 9, 25));"));
    let text = generated(
        d,
        "parallel-assistance",
        "kommuner.csv",
        "id,organisation\n\
         kommun-2584,Socialnämnden i Kiruna kommun\n\
         kommun-2580,Socialnämnden i Luleå kommun\n\
         kommun-2581,Socialnämnden i Piteå kommun\n\
         kommun-2582,Socialnämnden i Bodens kommun\n",
    );
    assert_eq!(text.matches("[[contributors]]").count(), 4);
    assert!(text.contains("UNION ALL SELECT pnr, manad, 4 FROM bistand_4)"));
    // As many regions as WITH PRIVACY takes groups (64) compile; one more
    // is refused before anything is written.
    let mut big = String::from("id,organisation,region\n");
    for i in 1..=64 {
        big.push_str(&format!("r{i},Region {i},{}\n", i * 3));
    }
    let text = generated(d, "quality-indicators", "big.csv", &big);
    assert!(text.contains("name = \"region_64\""));
    big.push_str("r65,Region 65,1000\n");
    std::fs::write(d.join("big65.csv"), big).unwrap();
    let o = kuvert(
        d,
        &[
            "analysis",
            "template",
            "quality-indicators",
            "--contributors",
            "big65.csv",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("at most 64"),
        "{}",
        show(&o)
    );
    assert!(o.stdout.is_empty());
    // The help teaches the list with an example.
    let o = kuvert(d, &["analysis", "template", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("--contributors <FILE>")
            && help.contains("id,organisation,region")
            && help.contains("--contributors regions.csv --out qi.toml"),
        "{help}"
    );
}

#[test]
fn a_bad_list_of_contributors_exits_2_naming_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let refused = |name: &str, csv: &[u8], what: &[&str]| {
        std::fs::write(d.join("list.csv"), csv).unwrap();
        let o = kuvert(
            d,
            &[
                "analysis",
                "template",
                name,
                "--contributors",
                "list.csv",
                "--out",
                "out.toml",
            ],
        );
        assert_eq!(o.status.code(), Some(2), "{what:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        for w in what {
            assert!(err.contains(w), "{w:?}: {}", show(&o));
        }
        assert!(!d.join("out.toml").exists(), "{what:?}: written");
    };
    let head = "id,organisation,region\n";
    refused(
        "quality-indicators",
        format!("{head}region-01,Region Stockholm,1\nregion 03,Region Uppsala,3\n").as_bytes(),
        &["list.csv:3:1:", "not a contributor id"],
    );
    refused(
        "quality-indicators",
        format!("{head}a,A,1\nb,B,2\na,C,3\n").as_bytes(),
        &["list.csv:4:1:", "given twice", "first on line 2"],
    );
    refused(
        "quality-indicators",
        format!("{head}a,A,1\nb,B,two\n").as_bytes(),
        &["list.csv:3:5:", "not a whole number"],
    );
    refused(
        "quality-indicators",
        format!("{head}a,A,1\nb,\"B,2\n").as_bytes(),
        &["list.csv:3:3:", "no closing"],
    );
    refused(
        "quality-indicators",
        b"id,organisation\na,A\nb,B\n",
        &["list.csv:1:1:", "no \"region\" column"],
    );
    refused(
        "parallel-assistance",
        b"id,organisation\nkommun1,Socialn\xe4mnden\n",
        &["list.csv:2:", "not UTF-8"],
    );
    refused(
        "parallel-assistance",
        b"id,organisation\nkommun1,A\n",
        &["list.csv", "at least 2"],
    );
    refused(
        "opt-out",
        b"id,organisation\na,A\nb,B\n",
        &[
            "fixed set of contributors",
            "kuvert analysis template opt-out --out FILE",
        ],
    );
}
