//! `kuvert synth ...` end to end: fit, sample, the combined form, holdout,
//! ledger (exit 3 and the record), input and schema errors (exit 2 with
//! file:line:column).

use std::path::Path;
use std::process::{Command, Output};

fn kuvert(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuvert"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run kuvert")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("age,sex,town,visit\n");
    for i in 0..600 {
        csv.push_str(&format!(
            "{},{},{},2024-{:02}-{:02}\n",
            20 + (i * 7) % 60,
            if i % 3 == 0 { "F" } else { "M" },
            ["Umeå", "Lund", "Kiruna"][i % 3],
            1 + i % 12,
            1 + i % 28
        ));
    }
    std::fs::write(dir.path().join("in.csv"), csv).unwrap();
    std::fs::write(
        dir.path().join("synth.toml"),
        "[columns.age]\nkind = \"integer\"\nbounds = [0, 100]\nbins = 10\n\n[columns.sex]\nkind = \"categorical\"\ncategories = [\"F\", \"M\"]\n\n[columns.town]\nkind = \"categorical\"\ncategories = [\"Kiruna\", \"Lund\", \"Umeå\"]\n\n[columns.visit]\nkind = \"date\"\nbounds = [\"2024-01-01\", \"2024-12-31\"]\n",
    )
    .unwrap();
    dir
}

#[test]
fn fit_then_sample() {
    let dir = setup();
    let d = dir.path();
    let o = kuvert(
        &[
            "synth",
            "fit",
            "--input",
            "in.csv",
            "--epsilon",
            "2",
            "--schema",
            "synth.toml",
            "--model",
            "m.model",
            "--holdout-fraction",
            "0.25",
            "--holdout",
            "hold.csv",
            "--json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("selected 2-way marginals"), "{stdout}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["epsilon"], 2.0);
    let hold = std::fs::read_to_string(d.join("hold.csv")).unwrap();
    let nh = hold.lines().count() - 1;
    assert!((100..200).contains(&nh), "{nh}");
    assert_eq!(last["rows"].as_u64().unwrap() as usize + nh, 600);
    let model = std::fs::read_to_string(d.join("m.model")).unwrap();
    assert!(model.contains("kuvert-synth-model/1"));
    let o = kuvert(
        &[
            "synth", "sample", "--model", "m.model", "--rows", "250", "--out", "syn.csv", "--seed",
            "3",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let syn = std::fs::read_to_string(d.join("syn.csv")).unwrap();
    assert_eq!(syn.lines().next().unwrap(), "age,sex,town,visit");
    assert_eq!(syn.lines().count(), 251);
    // Same seed, same rows.
    let o = kuvert(
        &[
            "synth", "sample", "--model", "m.model", "--rows", "250", "--out", "syn2.csv",
            "--seed", "3",
        ],
        d,
    );
    assert!(o.status.success());
    assert_eq!(syn, std::fs::read_to_string(d.join("syn2.csv")).unwrap());
}

#[test]
fn combined_form_with_inferred_kinds() {
    let dir = setup();
    let d = dir.path();
    let o = kuvert(
        &[
            "synth",
            "--input",
            "in.csv",
            "--epsilon",
            "5",
            "--rows",
            "100",
            "--out",
            "s.csv",
            "--model",
            "x.model",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s = std::fs::read_to_string(d.join("s.csv")).unwrap();
    assert_eq!(s.lines().count(), 101);
    assert!(d.join("x.model").exists());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("kind inferred"), "{stdout}");
}

#[test]
fn budget_is_refused_with_exit_3_and_recorded() {
    let dir = setup();
    let d = dir.path();
    let args = |eps: &'static str, model: &'static str| {
        vec![
            "synth",
            "fit",
            "--input",
            "in.csv",
            "--epsilon",
            eps,
            "--schema",
            "synth.toml",
            "--model",
            model,
            "--ledger",
            "l.json",
            "--budget",
            "1.2",
        ]
    };
    let o = kuvert(&args("1", "a.model"), d);
    assert!(o.status.success(), "{}", stderr(&o));
    let ledger: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("l.json")).unwrap()).unwrap();
    let rel = &ledger["accounts"][0]["releases"][0];
    assert_eq!(rel["mechanism"], "synth-mst");
    assert_eq!(ledger["accounts"][0]["dataset"], "in");
    assert!(rel["rho"].as_f64().unwrap() > 0.0);
    let o = kuvert(&args("1", "b.model"), d);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("remaining"), "{}", stderr(&o));
    assert!(!d.join("b.model").exists());
    let ledger: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("l.json")).unwrap()).unwrap();
    assert_eq!(
        ledger["accounts"][0]["releases"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn input_errors_exit_2_with_positions() {
    let dir = setup();
    let d = dir.path();
    // Ragged CSV.
    std::fs::write(d.join("bad.csv"), "a,b\n1,2\n3\n").unwrap();
    let o = kuvert(
        &[
            "synth",
            "fit",
            "--input",
            "bad.csv",
            "--epsilon",
            "1",
            "--model",
            "m.model",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.csv:3"), "{}", stderr(&o));
    // A value that does not fit its declared kind.
    std::fs::write(
        d.join("v.csv"),
        "age,sex,town,visit\n30,F,Lund,2024-01-01\nabc,M,Lund,2024-01-02\n",
    )
    .unwrap();
    let o = kuvert(
        &[
            "synth",
            "fit",
            "--input",
            "v.csv",
            "--epsilon",
            "1",
            "--schema",
            "synth.toml",
            "--model",
            "m.model",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("v.csv:3:1"), "{}", stderr(&o));
    // Unknown column in the schema.
    std::fs::write(
        d.join("u.toml"),
        "[columns.age]\nkind = \"integer\"\n\n[columns.towm]\nkind = \"categorical\"\n",
    )
    .unwrap();
    let o = kuvert(
        &[
            "synth",
            "fit",
            "--input",
            "in.csv",
            "--epsilon",
            "1",
            "--schema",
            "u.toml",
            "--model",
            "m.model",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("u.toml:4:1") && stderr(&o).contains("towm"),
        "{}",
        stderr(&o)
    );
    // Not a model.
    std::fs::write(d.join("n.model"), "{}").unwrap();
    let o = kuvert(
        &[
            "synth", "sample", "--model", "n.model", "--rows", "5", "--out", "x.csv",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    // Invalid identity number in a declared idnr column.
    std::fs::write(d.join("p.csv"), "pnr\n198112189876\n198112189875\n").unwrap();
    std::fs::write(
        d.join("p.toml"),
        "[columns.pnr]\nkind = \"idnr\"\nbirth_bounds = [\"1930-01-01\", \"2010-12-31\"]\n",
    )
    .unwrap();
    let o = kuvert(
        &[
            "synth",
            "fit",
            "--input",
            "p.csv",
            "--epsilon",
            "1",
            "--schema",
            "p.toml",
            "--model",
            "m.model",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("p.csv:3:1"), "{}", stderr(&o));
}

#[test]
fn help_teaches() {
    let dir = setup();
    let o = kuvert(&["synth", "--help"], dir.path());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("What ε means") && s.contains("kuvert synth sample"),
        "{s}"
    );
}

#[test]
fn fit_checks_acceptance_criteria() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("loose.toml"),
        "max_tvd_1way = 0.9\nmax_mean_tvd_2way = 0.9\ntarget = \"sex\"\n",
    )
    .unwrap();
    // A criterion no noisy synthesizer meets: every 1-way marginal exact.
    std::fs::write(d.join("strict.toml"), "max_tvd_1way = 0.0\n").unwrap();
    std::fs::write(d.join("typo.toml"), "max_tvd_1wya = 0.1\n").unwrap();
    let fit = |accept: &str, model: &str, extra: &[&str]| {
        let mut a = vec![
            "synth",
            "fit",
            "--input",
            "in.csv",
            "--epsilon",
            "2",
            "--schema",
            "synth.toml",
            "--model",
            model,
            "--holdout-fraction",
            "0.25",
            "--holdout",
            "hold.csv",
            "--accept",
            accept,
            "--attacks",
            "50",
        ];
        a.extend_from_slice(extra);
        kuvert(&a, d)
    };

    let o = fit(
        "loose.toml",
        "ok.model",
        &["--report", "r.html", "--report-json", "r.json"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("PASS  max_tvd_1way"), "{out}");
    assert!(out.contains("PASSED"), "{out}");
    assert!(out.contains("NOT differentially private"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(v["differentially_private"], false);
    // Evaluated against the fitted rows (three quarters of 600), with the holdout.
    let train = v["inputs"]["train_rows"].as_u64().unwrap();
    assert!((400..500).contains(&train), "{train}");
    assert_eq!(v["inputs"]["synthetic_rows"].as_u64().unwrap(), train);
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("<b>PASS</b>"));

    // A failed criterion: exit 4, FAIL printed, the model still written.
    let o = fit("strict.toml", "strict.model", &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out}\n{}", stderr(&o));
    assert!(out.contains("FAIL  max_tvd_1way"), "{out}");
    assert!(stderr(&o).contains("do not release"), "{}", stderr(&o));
    assert!(d.join("strict.model").exists());

    // A mistake in the criteria is found before anything is fitted: no ε
    // spent, no model, no holdout written.
    std::fs::remove_file(d.join("hold.csv")).unwrap();
    let o = fit(
        "typo.toml",
        "typo.model",
        &["--ledger", "l.json", "--budget", "10"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("typo.toml:1:1"), "{}", stderr(&o));
    assert!(!d.join("typo.model").exists());
    assert!(!d.join("hold.csv").exists());
    assert!(!d.join("l.json").exists());

    // The combined form judges the rows it writes.
    let o = kuvert(
        &[
            "synth",
            "--input",
            "in.csv",
            "--epsilon",
            "2",
            "--schema",
            "synth.toml",
            "--rows",
            "300",
            "--out",
            "syn.csv",
            "--accept",
            "loose.toml",
            "--attacks",
            "0",
            "--report-json",
            "c.json",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("c.json")).unwrap()).unwrap();
    assert_eq!(v["inputs"]["synthetic_rows"], 300);
    assert_eq!(
        std::fs::read_to_string(d.join("syn.csv"))
            .unwrap()
            .lines()
            .count(),
        301
    );
}
