//! End-to-end tests of the de-identification pipeline against an
//! independent checker written here from the definitions (plain strings
//! and hash maps, no code shared with the library's search).

use kuvert_deid::config::{Config, PseudoSpec};
use kuvert_deid::deid::{run, RunOptions};
use kuvert_deid::hierarchy::HierarchySpec;
use kuvert_deid::models::{LKind, Models, TDistance};
use kuvert_deid::pseudo::{Keys, Method};
use kuvert_deid::table::Table;
use kuvert_deid::DeidError;
use proptest::prelude::*;
use std::collections::HashMap;

fn rows(t: &Table) -> Vec<Vec<String>> {
    (0..t.nrows())
        .map(|r| t.columns.iter().map(|c| c.get(r).to_string()).collect())
        .collect()
}

/// Independent check of k-anonymity, l-diversity and t-closeness on an output table.
fn check_models(
    out: &Table,
    original: &Table,
    quasi: &[String],
    sensitive: Option<&str>,
    m: &Models,
) -> Result<(), String> {
    let qi: Vec<usize> = quasi
        .iter()
        .map(|q| out.headers.iter().position(|h| h == q).unwrap())
        .collect();
    let s = sensitive.map(|s| out.headers.iter().position(|h| h == s).unwrap());
    let mut classes: HashMap<Vec<String>, Vec<String>> = HashMap::new();
    for row in rows(out) {
        let key: Vec<String> = qi.iter().map(|&c| row[c].clone()).collect();
        classes
            .entry(key)
            .or_default()
            .push(s.map(|s| row[s].clone()).unwrap_or_default());
    }
    // Global sensitive distribution of the original input.
    let mut global: HashMap<String, f64> = HashMap::new();
    if let Some(sn) = sensitive {
        let sc = original.headers.iter().position(|h| h == sn).unwrap();
        for r in 0..original.nrows() {
            *global
                .entry(original.columns[sc].get(r).to_string())
                .or_default() += 1.0 / original.nrows() as f64;
        }
    }
    for (key, vals) in &classes {
        if (vals.len() as u64) < m.k {
            return Err(format!(
                "class {key:?} has {} < k = {} records",
                vals.len(),
                m.k
            ));
        }
        let mut hist: HashMap<&str, f64> = HashMap::new();
        for v in vals {
            *hist.entry(v.as_str()).or_default() += 1.0;
        }
        if let Some(l) = m.l {
            match m.l_kind {
                LKind::Distinct => {
                    if (hist.len() as f64) < l {
                        return Err(format!(
                            "class {key:?} has {} < l distinct values",
                            hist.len()
                        ));
                    }
                }
                LKind::Entropy => {
                    let n = vals.len() as f64;
                    let h: f64 = hist.values().map(|&c| -(c / n) * (c / n).ln()).sum();
                    if h < l.ln() - 1e-9 {
                        return Err(format!("class {key:?} entropy {h} < ln l"));
                    }
                }
            }
        }
        if let Some(t) = m.t {
            // Equal ground distance: EMD = total variation distance.
            let n = vals.len() as f64;
            let mut d = 0.0;
            for (v, q) in &global {
                d += ((hist.get(v.as_str()).copied().unwrap_or(0.0) / n) - q).abs();
            }
            if d / 2.0 > t + 1e-9 {
                return Err(format!(
                    "class {key:?} is {} > t from the whole table",
                    d / 2.0
                ));
            }
        }
    }
    Ok(())
}

fn small_table(seed: u64, n: usize) -> Table {
    kuvert_deid::gen::adult_like(n, seed)
}

fn opts<'a>(
    keys: Option<&'a Keys>,
    p: &'a mut dyn FnMut(kuvert_deid::search::Progress),
) -> RunOptions<'a> {
    RunOptions {
        keys,
        holdout_fraction: 0.0,
        progress: p,
    }
}

#[test]
fn k_anonymity_holds_and_suppression_within_limit() {
    let t = small_table(3, 3000);
    let mut cfg = kuvert_deid::gen::config(5, 5, 0.03);
    cfg.max_search_seconds = 1e9;
    let mut p = |_| {};
    let out = run(t.clone(), &cfg, opts(None, &mut p)).unwrap();
    check_models(&out.table, &t, &cfg.quasi, None, &cfg.models).unwrap();
    assert!(out.report.records_suppressed as f64 <= 0.03 * 3000.0);
    assert_eq!(
        out.table.nrows() as u64 + out.report.records_suppressed,
        3000
    );
    assert!(out.report.optimal_guaranteed);
}

#[test]
fn search_is_optimal_against_brute_force() {
    // Enumerate the whole lattice with the library's evaluator and compare
    // the minimum with what the search returns.
    let t = small_table(4, 1500);
    let cfg = kuvert_deid::gen::config(4, 4, 0.05);
    let hier = build_hier(&t, &cfg, std::path::Path::new("."));
    let codes = qi_codes(&t, &cfg);
    let prob =
        kuvert_deid::search::Problem::new(&hier, &codes, None, cfg.models.clone(), 0.05).unwrap();
    for metric in [
        kuvert_deid::search::LossMetric::Entropy,
        kuvert_deid::search::LossMetric::Discernibility,
        kuvert_deid::search::LossMetric::Precision,
    ] {
        let res = prob.search(metric, 1e9, &mut |_| {}).unwrap();
        let radix: Vec<usize> = hier.iter().map(|h| h.levels()).collect();
        let mut best = f64::INFINITY;
        let mut lv = vec![0usize; radix.len()];
        loop {
            let ev = prob.evaluate(&lv);
            if ev.passes {
                best = best.min(ev.loss.value(metric));
            }
            let mut q = 0;
            while q < lv.len() {
                lv[q] += 1;
                if lv[q] < radix[q] {
                    break;
                }
                lv[q] = 0;
                q += 1;
            }
            if q == lv.len() {
                break;
            }
        }
        assert!(
            (res.loss.value(metric) - best).abs() <= 1e-6 * best.max(1.0),
            "{metric:?}: search {} brute force {best}",
            res.loss.value(metric)
        );
    }
}

#[test]
fn l_diversity_and_t_closeness_hold() {
    let t = small_table(5, 2000);
    for (l, kind, tt) in [
        (Some(3.0), LKind::Distinct, None),
        (Some(2.0), LKind::Entropy, None),
        (None, LKind::Distinct, Some(0.3)),
    ] {
        let mut cfg = kuvert_deid::gen::config(4, 3, 0.05);
        cfg.sensitive = Some("diagnosis".into());
        cfg.models.l = l;
        cfg.models.l_kind = kind;
        cfg.models.t = tt;
        cfg.models.t_distance = TDistance::Equal;
        let mut p = |_| {};
        let out = run(t.clone(), &cfg, opts(None, &mut p)).unwrap();
        check_models(&out.table, &t, &cfg.quasi, Some("diagnosis"), &cfg.models).unwrap();
    }
}

#[test]
fn unsatisfiable_is_reported() {
    let t = small_table(6, 50);
    let mut cfg = kuvert_deid::gen::config(3, 100, 0.0);
    cfg.max_search_seconds = 1e9;
    let mut p = |_| {};
    let e = run(t, &cfg, opts(None, &mut p)).err().unwrap();
    assert!(matches!(e, DeidError::Unsatisfiable { .. }));
    assert_eq!(e.exit_code(), 3);
}

#[test]
fn key_never_appears_in_output_and_pseudonyms_link() {
    let dir = std::env::temp_dir().join(format!("kuvert-deid-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kp = dir.join("k.key");
    let _ = std::fs::remove_file(&kp);
    Keys::generate(&kp).unwrap();
    let key_text = std::fs::read_to_string(&kp).unwrap();
    let key_hex = key_text
        .lines()
        .find(|l| l.starts_with("kuvert-deid-key-v1:"))
        .unwrap()[19..]
        .to_string();
    let keys = Keys::load(&kp).unwrap();
    // Same person written two ways.
    let t = Table::from_columns(
        "in.csv",
        vec![
            (
                "pnr".into(),
                vec![
                    "811218-9876".into(),
                    "198112189876".into(),
                    "121212-1212".into(),
                ],
            ),
            ("x".into(), vec!["a".into(), "b".into(), "c".into()]),
        ],
    );
    for method in [Method::Hmac, Method::Siv] {
        let cfg = Config {
            pseudonymize: vec![PseudoSpec {
                column: "pnr".into(),
                method,
                domain: String::new(),
                idnr: Default::default(),
            }],
            ..Config::default()
        };
        let mut p = |_| {};
        let out = run(t.clone(), &cfg, opts(Some(&keys), &mut p)).unwrap();
        let o = dir.join("o.csv");
        out.table.write_csv(&o).unwrap();
        let text = std::fs::read_to_string(&o).unwrap();
        let report = serde_json::to_string(&out.report).unwrap();
        for hay in [&text, &report] {
            assert!(!hay.contains(&key_hex), "key leaked");
            assert!(!hay.contains(&key_hex[..16]), "key prefix leaked");
            assert!(!hay.contains("811218"), "identity number leaked");
        }
        let c = out.table.col_index("pnr").unwrap();
        assert_eq!(out.table.columns[c].get(0), out.table.columns[c].get(1));
        assert_ne!(out.table.columns[c].get(0), out.table.columns[c].get(2));
        if method == Method::Siv {
            let mut back = out.table.clone();
            kuvert_deid::deid::reidentify(&mut back, "pnr", "", &keys).unwrap();
            assert_eq!(back.columns[c].get(0), "198112189876");
        }
    }
}

#[test]
fn invalid_identity_number_is_located() {
    let t = Table::from_columns(
        "in.csv",
        vec![(
            "pnr".into(),
            vec![
                "811218-9876".into(),
                "811218-9875".into(),
                "121212-1212".into(),
            ],
        )],
    );
    let cfg = Config {
        pseudonymize: vec![PseudoSpec {
            column: "pnr".into(),
            method: Method::Hmac,
            domain: String::new(),
            idnr: Default::default(),
        }],
        ..Config::default()
    };
    let keys = Keys::from_seed_for_tests(9);
    let mut p = |_| {};
    let e = run(t, &cfg, opts(Some(&keys), &mut p))
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("in.csv:3:1:"), "{e}");
    assert!(e.contains("check digit"), "{e}");
}

#[test]
fn noise_swap_and_suppression_rules() {
    let t = small_table(8, 500);
    let mut cfg = Config {
        seed: Some(1),
        drop: vec!["pnr".into()],
        ..Config::default()
    };
    cfg.noise.push(kuvert_deid::config::NoiseSpec {
        column: "income".into(),
        distribution: Default::default(),
        scale: 1000.0,
        decimals: 0,
    });
    cfg.swap.push(kuvert_deid::config::SwapSpec {
        column: "diagnosis".into(),
        fraction: 1.0,
    });
    cfg.suppress_records.push(kuvert_deid::config::RecordRule {
        column: "sex".into(),
        values: vec!["F".into()],
    });
    cfg.suppress_cells.push(kuvert_deid::config::CellRule {
        column: "country_of_birth".into(),
        values: vec![],
        min_count: 10,
    });
    let mut p = |_| {};
    let out = run(t.clone(), &cfg, opts(None, &mut p)).unwrap();
    let o = &out.table;
    assert!(o.col_index("pnr").is_err());
    let sex = o.col_index("sex").unwrap();
    assert!((0..o.nrows()).all(|r| o.columns[sex].get(r) == "M"));
    // Rare countries are starred; all kept ones occur >= 10 times among the kept rows' input.
    let cc = o.col_index("country_of_birth").unwrap();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in 0..o.nrows() {
        *counts.entry(o.columns[cc].get(r)).or_default() += 1;
    }
    assert!(counts.iter().all(|(v, &n)| *v == "*" || n >= 10));
    // Swapping keeps the multiset of diagnoses of the kept rows.
    let males: Vec<usize> = (0..t.nrows())
        .filter(|&r| t.columns[2].get(r) == "M")
        .collect();
    let mut before: Vec<&str> = males
        .iter()
        .map(|&r| t.columns[t.col_index("diagnosis").unwrap()].get(r))
        .collect();
    let dc = o.col_index("diagnosis").unwrap();
    let mut after: Vec<&str> = (0..o.nrows()).map(|r| o.columns[dc].get(r)).collect();
    before.sort();
    after.sort();
    assert_eq!(before, after);
    // Noise changed incomes but kept them near.
    let ic = o.col_index("income").unwrap();
    let ti = t.col_index("income").unwrap();
    let diffs: Vec<f64> = males
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            o.columns[ic].get(i).parse::<f64>().unwrap()
                - t.columns[ti].get(r).parse::<f64>().unwrap()
        })
        .collect();
    assert!(diffs.iter().any(|d| d.abs() > 0.0));
    let mean_abs = diffs.iter().map(|d| d.abs()).sum::<f64>() / diffs.len() as f64;
    assert!(mean_abs > 500.0 && mean_abs < 2000.0, "{mean_abs}");
}

#[test]
fn user_hierarchy_file_is_used() {
    let dir = std::env::temp_dir().join(format!("kuvert-deid-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pc.csv"), "11453;Stockholm;Stockholms län\n11460;Stockholm;Stockholms län\n75236;Uppsala;Uppsala län\n75237;Uppsala;Uppsala län\n").unwrap();
    let pcs = ["11453", "11460", "75236", "75237"];
    let t = Table::from_columns(
        "in.csv",
        vec![(
            "postcode".into(),
            (0..40).map(|i| pcs[i % 4].to_string()).collect(),
        )],
    );
    let mut cfg = Config {
        quasi: vec!["postcode".into()],
        base_dir: dir.clone(),
        ..Config::default()
    };
    cfg.models.k = 15;
    cfg.hierarchy.insert(
        "postcode".into(),
        HierarchySpec::Csv {
            file: "pc.csv".into(),
        },
    );
    let mut p = |_| {};
    let out = run(t, &cfg, opts(None, &mut p)).unwrap();
    assert_eq!(out.report.generalisation[0].level, 1);
    assert_eq!(out.table.columns[0].get(0), "Stockholm");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn output_always_satisfies_requested_models(seed in 0u64..1000, k in 2u64..8, l in 1u32..4, supp in 0.0f64..0.1) {
        let t = small_table(seed, 400);
        let mut cfg = kuvert_deid::gen::config(4, k, supp);
        cfg.sensitive = Some("diagnosis".into());
        cfg.models.l = if l > 1 { Some(l as f64) } else { None };
        cfg.max_search_seconds = 1e9;
        let mut p = |_| {};
        match run(t.clone(), &cfg, opts(None, &mut p)) {
            Ok(out) => {
                prop_assert!(check_models(&out.table, &t, &cfg.quasi, Some("diagnosis"), &cfg.models).is_ok());
                prop_assert!(out.report.records_suppressed as f64 <= supp * 400.0 + 1e-9);
            }
            Err(DeidError::Unsatisfiable { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}

/// Build the hierarchies of `cfg.quasi` on `t`.
fn build_hier(
    t: &Table,
    cfg: &Config,
    base: &std::path::Path,
) -> Vec<kuvert_deid::hierarchy::Hierarchy> {
    cfg.quasi
        .iter()
        .map(|q| {
            let c = t.col_index(q).unwrap();
            kuvert_deid::hierarchy::Hierarchy::build(t, c, &cfg.hierarchy[q], base).unwrap()
        })
        .collect()
}

/// The base codes of `cfg.quasi` on `t`.
fn qi_codes<'t>(t: &'t Table, cfg: &Config) -> Vec<&'t [u32]> {
    cfg.quasi
        .iter()
        .map(|q| t.columns[t.col_index(q).unwrap()].codes.as_slice())
        .collect()
}

/// Every node of the lattice, in mixed radix order.
fn all_nodes(radix: &[usize]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut lv = vec![0usize; radix.len()];
    loop {
        out.push(lv.clone());
        let mut q = 0;
        while q < lv.len() {
            lv[q] += 1;
            if lv[q] < radix[q] {
                break;
            }
            lv[q] = 0;
            q += 1;
        }
        if q == lv.len() {
            return out;
        }
    }
}

#[test]
fn search_is_optimal_against_brute_force_for_every_model_and_metric() {
    // k-anonymity, distinct and entropy l-diversity and t-closeness, with
    // suppression, every loss metric: the search's result must be the
    // exhaustive optimum of the lattice (evaluated node by node).
    use kuvert_deid::search::{LossMetric, Problem};
    let t = small_table(11, 1200);
    let metrics = [
        LossMetric::Entropy,
        LossMetric::MonotonicEntropy,
        LossMetric::Discernibility,
        LossMetric::Precision,
    ];
    let models = [
        (3u64, None, LKind::Distinct, None),
        (2, Some(2.0), LKind::Distinct, None),
        (2, Some(1.8), LKind::Entropy, None),
        (2, None, LKind::Distinct, Some(0.4)),
    ];
    let sc = t.col_index("diagnosis").unwrap();
    let sens = (
        t.columns[sc].codes.as_slice(),
        t.columns[sc].dict.as_slice(),
    );
    for (k, l, l_kind, tt) in models {
        for supp in [0.0, 0.04] {
            let cfg = kuvert_deid::gen::config(4, k, supp);
            let hier = build_hier(&t, &cfg, std::path::Path::new("."));
            let codes = qi_codes(&t, &cfg);
            let m = Models {
                k,
                l,
                l_kind,
                t: tt,
                t_distance: TDistance::Equal,
            };
            let s = if m.needs_sensitive() {
                Some(sens)
            } else {
                None
            };
            let mut prob = Problem::new(&hier, &codes, s, m.clone(), supp).unwrap();
            let radix: Vec<usize> = hier.iter().map(|h| h.levels()).collect();
            let evals: Vec<_> = all_nodes(&radix)
                .into_iter()
                .map(|lv| {
                    let ev = prob.evaluate(&lv);
                    (lv, ev)
                })
                .collect();
            for (metric, roll_up) in metrics.into_iter().flat_map(|m| [(m, true), (m, false)]) {
                // With and without the roll-up climb of the proof.
                prob.set_roll_up(roll_up);
                let best = evals
                    .iter()
                    .filter(|(_, e)| e.passes)
                    .map(|(_, e)| e.loss.value(metric))
                    .fold(f64::INFINITY, f64::min);
                match prob.search(metric, 1e9, &mut |_| {}) {
                    Ok(res) => {
                        let v = res.loss.value(metric);
                        assert!(
                            (v - best).abs() <= 1e-9 * best.abs().max(1.0),
                            "{m:?} supp {supp} {metric:?} roll-up {roll_up}: search {v} at {:?}, brute force {best}",
                            res.levels
                        );
                        // The reported node really has that loss and passes.
                        let ev = prob.evaluate(&res.levels);
                        assert!(ev.passes);
                        assert_eq!(ev.suppressed, res.suppressed);
                        assert_eq!(
                            res.row_kept.iter().filter(|&&x| !x).count() as u64,
                            res.suppressed
                        );
                    }
                    Err(DeidError::Unsatisfiable { .. }) => assert!(best.is_infinite()),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

#[test]
fn metrics_match_arx_definitions_on_a_hand_made_table() {
    // A small table with ARX-style hierarchy files (`value;level1;...`), and
    // the loss of every node recomputed here from the definitions:
    // * ARX's monotonic non-uniform entropy (Metric.createEntropyMetric(true)):
    //   sum over attributes and *all* records of log2(|generalised value| /
    //   |original value|), suppressed records counted at the node's level;
    // * Kuvert's non-uniform entropy: the same, a suppressed record's cells
    //   counted as `*` (log2(n / |original value|));
    // * discernibility: sum of squared class sizes, plus n per suppressed record;
    // * precision: mean level / height over cells, suppressed cells 1.
    use kuvert_deid::search::{LossMetric, Problem};
    let dir = std::env::temp_dir().join(format!("kuvert-deid-arxm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("age.csv"),
        "21;20-24;20-39;*\n22;20-24;20-39;*\n27;25-29;20-39;*\n36;35-39;20-39;*\n",
    )
    .unwrap();
    std::fs::write(dir.join("sex.csv"), "Male;*\nFemale;*\n").unwrap();
    std::fs::write(
        dir.join("edu.csv"),
        "Bachelors;Higher;*\nMasters;Higher;*\nHS-grad;Secondary;*\n11th;Secondary;*\n",
    )
    .unwrap();
    let data = [
        ("21", "Male", "Bachelors"),
        ("22", "Male", "Masters"),
        ("21", "Female", "Bachelors"),
        ("27", "Male", "HS-grad"),
        ("27", "Female", "11th"),
        ("36", "Male", "HS-grad"),
        ("22", "Male", "Bachelors"),
        ("36", "Female", "11th"),
        ("21", "Male", "HS-grad"),
        ("27", "Male", "Masters"),
    ];
    let cols = vec![
        (
            "age".to_string(),
            data.iter().map(|r| r.0.to_string()).collect(),
        ),
        (
            "sex".to_string(),
            data.iter().map(|r| r.1.to_string()).collect(),
        ),
        (
            "edu".to_string(),
            data.iter().map(|r| r.2.to_string()).collect(),
        ),
    ];
    let t = Table::from_columns("hand.csv", cols);
    let mut cfg = Config {
        quasi: vec!["age".into(), "sex".into(), "edu".into()],
        ..Config::default()
    };
    for q in ["age", "sex", "edu"] {
        cfg.hierarchy.insert(
            q.into(),
            HierarchySpec::Csv {
                file: dir.join(format!("{q}.csv")),
            },
        );
    }
    let hier = build_hier(&t, &cfg, &dir);
    let codes: Vec<&[u32]> = (0..3).map(|c| t.columns[c].codes.as_slice()).collect();
    // Labels per attribute and level, straight from the files.
    let files: Vec<HashMap<String, Vec<String>>> = ["age", "sex", "edu"]
        .iter()
        .map(|q| {
            std::fs::read_to_string(dir.join(format!("{q}.csv")))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: Vec<String> = l.split(';').map(String::from).collect();
                    (v[0].clone(), v)
                })
                .collect()
        })
        .collect();
    let n = data.len() as f64;
    let label = |q: usize, r: usize, l: usize| -> String {
        let v = [data[r].0, data[r].1, data[r].2][q];
        files[q][v][l].clone()
    };
    let count = |q: usize, l: usize, lab: &str| -> f64 {
        (0..data.len()).filter(|&r| label(q, r, l) == lab).count() as f64
    };
    let heights = [3usize, 1, 2];
    for (k, supp) in [(2u64, 0.0), (2, 0.3), (3, 0.2), (4, 0.5)] {
        let m = Models {
            k,
            ..Models::default()
        };
        let prob = Problem::new(&hier, &codes, None, m, supp).unwrap();
        let max_supp = (supp * n + 1e-9).floor() as u64;
        let mut best_mono = f64::INFINITY;
        for lv in all_nodes(&[4, 2, 3]) {
            let key = |r: usize| -> Vec<String> { (0..3).map(|q| label(q, r, lv[q])).collect() };
            let mut classes: HashMap<Vec<String>, u64> = HashMap::new();
            for r in 0..data.len() {
                *classes.entry(key(r)).or_default() += 1;
            }
            let suppressed_row = |r: usize| classes[&key(r)] < k;
            let suppressed = (0..data.len()).filter(|&r| suppressed_row(r)).count() as u64;
            let ev = prob.evaluate(&lv);
            assert_eq!(ev.suppressed, suppressed, "{lv:?}");
            assert_eq!(ev.passes, suppressed <= max_supp, "{lv:?}");
            if !ev.passes {
                continue;
            }
            let mut mono = 0.0;
            let mut nue = 0.0;
            let mut prec = 0.0;
            for r in 0..data.len() {
                for q in 0..3 {
                    let orig = count(q, 0, &label(q, r, 0));
                    mono += (count(q, lv[q], &label(q, r, lv[q])) / orig).log2();
                    nue += if suppressed_row(r) {
                        (n / orig).log2()
                    } else {
                        (count(q, lv[q], &label(q, r, lv[q])) / orig).log2()
                    };
                    prec += if suppressed_row(r) {
                        1.0
                    } else {
                        lv[q] as f64 / heights[q] as f64
                    };
                }
            }
            prec /= 3.0 * n;
            let disc: f64 = classes
                .values()
                .map(|&c| {
                    if c >= k {
                        (c * c) as f64
                    } else {
                        (c as f64) * n
                    }
                })
                .sum();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
            assert!(
                close(ev.loss.monotonic_entropy, mono),
                "{lv:?}: {} vs {mono}",
                ev.loss.monotonic_entropy
            );
            assert!(
                close(ev.loss.non_uniform_entropy, nue),
                "{lv:?}: {} vs {nue}",
                ev.loss.non_uniform_entropy
            );
            assert!(close(ev.loss.discernibility, disc), "{lv:?}");
            assert!(close(ev.loss.precision, prec), "{lv:?}");
            best_mono = best_mono.min(mono);
        }
        let res = prob
            .search(LossMetric::MonotonicEntropy, 1e9, &mut |_| {})
            .unwrap();
        assert!((res.loss.monotonic_entropy - best_mono).abs() < 1e-9);
    }
    // One value by hand: the top node (everything `*`) loses, per attribute,
    // sum over values of |v| log2(n / |v|) bits.
    let prob = Problem::new(&hier, &codes, None, Models::default(), 0.0).unwrap();
    let top = prob.evaluate(&[3, 1, 2]);
    let h = |cs: &[f64]| cs.iter().map(|&c| c * (10.0 / c).log2()).sum::<f64>();
    let expect = h(&[3.0, 2.0, 3.0, 2.0]) + h(&[7.0, 3.0]) + h(&[3.0, 2.0, 3.0, 2.0]);
    assert!((top.loss.monotonic_entropy - expect).abs() < 1e-9);
    assert!((top.loss.non_uniform_entropy - expect).abs() < 1e-9);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Roll-up: a node evaluated on the tuples collapsed to the classes of
    /// any node it generalises (as the proof's climb does) has exactly the
    /// verdict, suppression, classes and losses of the direct evaluation,
    /// for every model (the sensitive value is kept per class).
    #[test]
    fn rolled_up_evaluation_matches_direct_evaluation(seed in 0u64..1000, n in 50usize..2000, k in 2u64..10, supp in 0.0f64..0.15, nqi in 2usize..5, model in 0usize..4) {
        let t = small_table(seed, n);
        let cfg = kuvert_deid::gen::config(nqi, k, supp);
        let hier = build_hier(&t, &cfg, std::path::Path::new("."));
        let codes = qi_codes(&t, &cfg);
        let sc = t.col_index("diagnosis").unwrap();
        let sens = (t.columns[sc].codes.as_slice(), t.columns[sc].dict.as_slice());
        let m = match model {
            0 => Models { k, ..Default::default() },
            1 => Models { k, l: Some(2.0), ..Default::default() },
            2 => Models { k, l: Some(1.5), l_kind: LKind::Entropy, ..Default::default() },
            _ => Models { k, t: Some(0.5), t_distance: TDistance::Equal, ..Default::default() },
        };
        let s = if m.needs_sensitive() { Some(sens) } else { None };
        let prob = kuvert_deid::search::Problem::new(&hier, &codes, s, m, supp).unwrap();
        let radix: Vec<usize> = hier.iter().map(|h| h.levels()).collect();
        let nodes = all_nodes(&radix);
        let direct: Vec<_> = nodes.iter().map(|lv| prob.evaluate(lv)).collect();
        // A few bases, every node above each.
        for base in nodes.iter().step_by(nodes.len() / 5 + 1) {
            for (lv, d) in nodes.iter().zip(&direct) {
                if !base.iter().zip(lv).all(|(b, l)| b <= l) {
                    continue;
                }
                let r = prob.evaluate_rolled_up(base, lv);
                prop_assert_eq!(d.passes, r.passes, "{:?} from {:?}", lv, base);
                prop_assert_eq!(d.suppressed, r.suppressed, "{:?} from {:?}", lv, base);
                if d.passes {
                    prop_assert_eq!(d.classes, r.classes);
                    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
                    prop_assert!(close(d.loss.non_uniform_entropy, r.loss.non_uniform_entropy), "{:?}: {:?} vs {:?}", lv, d.loss, r.loss);
                    prop_assert!(close(d.loss.monotonic_entropy, r.loss.monotonic_entropy));
                    prop_assert!(close(d.loss.discernibility, r.loss.discernibility));
                    prop_assert!(close(d.loss.precision, r.loss.precision));
                    prop_assert!(close(d.loss.avg_class_size, r.loss.avg_class_size));
                }
            }
        }
    }

    /// The search (with the roll-up climb) finds the brute-force optimum of
    /// random lattices for k-anonymity with suppression.
    #[test]
    fn search_with_roll_up_is_optimal(seed in 0u64..1000, n in 100usize..1500, k in 2u64..10, supp in 0.0f64..0.1, nqi in 3usize..6) {
        let t = small_table(seed, n);
        let cfg = kuvert_deid::gen::config(nqi, k, supp);
        let hier = build_hier(&t, &cfg, std::path::Path::new("."));
        let codes = qi_codes(&t, &cfg);
        let prob = kuvert_deid::search::Problem::new(&hier, &codes, None, cfg.models.clone(), supp).unwrap();
        let radix: Vec<usize> = hier.iter().map(|h| h.levels()).collect();
        let evals: Vec<_> = all_nodes(&radix).into_iter().map(|lv| prob.evaluate(&lv)).collect();
        for metric in [kuvert_deid::search::LossMetric::Entropy, kuvert_deid::search::LossMetric::Discernibility] {
            let best = evals.iter().filter(|e| e.passes).map(|e| e.loss.value(metric)).fold(f64::INFINITY, f64::min);
            let res = prob.search(metric, 1e9, &mut |_| {});
            match res {
                Ok(res) => {
                    prop_assert!(res.optimal_guaranteed);
                    let v = res.loss.value(metric);
                    prop_assert!((v - best).abs() <= 1e-9 * best.abs().max(1.0), "{:?}: search {} at {:?}, brute force {}", metric, v, res.levels, best);
                }
                Err(DeidError::Unsatisfiable { .. }) => prop_assert!(best.is_infinite()),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
