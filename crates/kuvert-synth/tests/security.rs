//! The model file and the synthetic data hold only DP outputs: no rare
//! value, no identity number of the input; synthetic identity numbers are
//! valid, with the modelled birth dates and sex.

use kuvert_deid::table::Table;
use kuvert_synth::{fit, ColumnSpec, FitOptions, Method, SchemaConfig, SynthError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn people(n: usize, seed: u64) -> Table {
    let mut t = kuvert_synth::bench::adult15(n, 15, seed);
    // One person with a unique town.
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let town: Vec<String> = (0..n)
        .map(|i| {
            if i == 17 {
                "Ytterbyn-unik".to_string()
            } else {
                ["Umeå", "Lund", "Kiruna"][r.gen_range(0..3)].to_string()
            }
        })
        .collect();
    t.headers.push("town".into());
    t.columns
        .push(kuvert_deid::table::Column::from_values(town));
    t
}

#[test]
fn no_input_identity_number_or_rare_value_leaves() {
    check_leaks(Method::Mst);
}

#[test]
fn no_input_identity_number_or_rare_value_leaves_aim() {
    check_leaks(Method::Aim);
}

fn check_leaks(method: Method) {
    let t = people(3000, 11);
    let mut opts = FitOptions::new(2.0, 1e-6);
    opts.method = method;
    let f = fit(&t, &opts, &mut ChaCha20Rng::seed_from_u64(1), &mut |_| {}).unwrap();
    let text = serde_json::to_string(&f.model).unwrap();
    assert!(!text.contains("Ytterbyn-unik"));
    let pc = t.col_index("pnr").unwrap();
    let input: std::collections::HashSet<String> = t.columns[pc].dict.iter().cloned().collect();
    for n in &input {
        assert!(
            !text.contains(n.as_str()),
            "identity number {n} in the model"
        );
        assert!(!text.contains(&n[2..]), "10-digit form of {n} in the model");
    }
    // By chance a generated number can be a real one (500 per birth date
    // and sex): count them in a plain sample, then exclude the input's.
    let plain = f.model.sample(3000, &mut ChaCha20Rng::seed_from_u64(2));
    let pp = plain.col_index("pnr").unwrap();
    let chance = (0..plain.nrows())
        .filter(|&r| input.contains(plain.columns[pp].get(r)))
        .count();
    assert!(chance <= 5, "{chance} coincidences");
    let exclude = f.model.identity_numbers_in(&t);
    assert_eq!(exclude.len(), input.len());
    let syn = f
        .model
        .sample_excluding(3000, &mut ChaCha20Rng::seed_from_u64(2), &exclude);
    let sp = syn.col_index("pnr").unwrap();
    let st = syn.col_index("town").unwrap();
    let today = kuvert_data::Date::today_utc();
    let mut males = 0;
    let mut empty = 0;
    for r in 0..syn.nrows() {
        let v = syn.columns[sp].get(r);
        if v.is_empty() {
            // Empty is a value of its own; noise gives it a little mass.
            empty += 1;
            continue;
        }
        assert!(!input.contains(v), "synthetic {v} equals an input number");
        let n = kuvert_data::idnr::parse(v, today).expect("valid synthetic identity number");
        assert_eq!(
            kuvert_data::idnr::kind(n),
            kuvert_data::idnr::IdnrKind::Personnummer
        );
        males += ((n / 10) % 2) as usize;
        assert_ne!(syn.columns[st].get(r), "Ytterbyn-unik");
    }
    assert!(empty < 60, "{empty} empty identity numbers");
    // Sex is modelled (about half, as in the generator).
    assert!((1000..2000).contains(&males), "{males}");
    // Birth years follow the data: mean within a few years.
    let year = |s: &str| s[..4].parse::<f64>().unwrap();
    let mean = |tb: &Table, c: usize| {
        let ys: Vec<f64> = (0..tb.nrows())
            .map(|r| tb.columns[c].get(r))
            .filter(|s| !s.is_empty())
            .map(year)
            .collect();
        ys.iter().sum::<f64>() / ys.len() as f64
    };
    let (mt, ms) = (mean(&t, pc), mean(&syn, sp));
    assert!(
        (mt - ms).abs() < 4.0,
        "mean birth year {mt} vs synthetic {ms}"
    );
}

#[test]
fn idnr_generator_encodes_date_and_sex() {
    let mut r = ChaCha20Rng::seed_from_u64(3);
    let today = kuvert_data::Date::today_utc();
    for i in 0..2000 {
        let day = -20_000 + i * 17;
        let male = i % 3 == 0;
        let s = kuvert_synth::idgen::synthetic_personnummer(day, male, &mut r);
        let n = kuvert_data::idnr::parse(&s, today).unwrap();
        assert_eq!(
            kuvert_synth::domain::format_date(day).replace('-', ""),
            s[..8]
        );
        assert_eq!((n / 10) % 2 == 1, male);
    }
}

#[test]
fn schema_errors_have_positions() {
    let t = people(200, 12);
    let text = "max_bins = 16\n\n[columns.age]\nkind = \"integer\"\nbounds = [0, 120]\n\n[columns.agee]\nkind = \"integer\"\n";
    let mut cfg = SchemaConfig::parse(text, "s.toml").unwrap();
    cfg.source = Some(("s.toml".into(), text.into()));
    let mut opts = FitOptions::new(1.0, 1e-6);
    opts.schema = cfg;
    let e = fit(&t, &opts, &mut ChaCha20Rng::seed_from_u64(1), &mut |_| {}).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("s.toml:7:1:"), "{msg}");
    assert!(msg.contains("agee"), "{msg}");
    assert_eq!(e.exit_code(), 2);
    let e = SchemaConfig::parse("[columns.age]\nkind = \"integr\"\n", "s.toml").unwrap_err();
    assert!(e.to_string().starts_with("s.toml:"), "{e}");
    let e = SchemaConfig::parse(
        "[columns.age]\nkind = \"integer\"\nbounds = [5, 1]\n",
        "s.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("lo ≤ hi"), "{e}");
}

#[test]
fn bad_cells_are_reported_at_their_position() {
    let t = Table::from_columns(
        "in.csv",
        vec![
            ("n".into(), vec!["1".into(), "2".into(), "x3".into()]),
            ("c".into(), vec!["a".into(), "b".into(), "a".into()]),
        ],
    );
    let mut opts = FitOptions::new(1.0, 1e-6);
    opts.schema.columns.insert(
        "n".into(),
        ColumnSpec::Integer {
            bounds: Some([0, 10]),
            bins: None,
        },
    );
    let e = fit(&t, &opts, &mut ChaCha20Rng::seed_from_u64(1), &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            e,
            SynthError::BadValue {
                line: 4,
                column: 1,
                ..
            }
        ),
        "{e}"
    );
    // Undeclared categories are refused.
    opts.schema.columns.insert(
        "c".into(),
        ColumnSpec::Categorical {
            categories: Some(vec!["a".into()]),
        },
    );
    opts.schema.columns.insert("n".into(), ColumnSpec::Drop);
    let e = fit(&t, &opts, &mut ChaCha20Rng::seed_from_u64(1), &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            e,
            SynthError::BadValue {
                line: 3,
                column: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn declared_domains_spend_nothing_on_estimation_and_give_a_zcdp_curve() {
    let headers = vec!["a".to_string(), "b".to_string()];
    let mut s = SchemaConfig::default();
    s.columns.insert(
        "a".into(),
        ColumnSpec::Categorical {
            categories: Some(vec!["x".into()]),
        },
    );
    s.columns.insert(
        "b".into(),
        ColumnSpec::Integer {
            bounds: Some([0, 9]),
            bins: None,
        },
    );
    let p = kuvert_synth::plan_budget(&headers, &s, 1.0, 1e-6).unwrap();
    assert_eq!(p.delta_partition, 0.0);
    assert_eq!(p.cost.rdp.len(), 1);
    let p2 = kuvert_synth::plan_budget(&headers, &SchemaConfig::default(), 1.0, 1e-6).unwrap();
    assert!(p2.delta_partition > 0.0 && p2.cost.rdp.is_empty() && p2.rho < p.rho);
    assert!(kuvert_synth::plan_budget(&headers, &s, 1.0, 0.0).is_err());
}
