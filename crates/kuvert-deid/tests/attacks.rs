//! Attack tests on data with a planted leak (release = original) must report
//! high risk; on independent data from the same source, low risk.

use kuvert_deid::attacks::{run_attacks, AttackParams};
use kuvert_deid::table::Table;

fn split(t: &Table, at: usize) -> (Table, Table) {
    let keep: Vec<bool> = (0..t.nrows()).map(|r| r < at).collect();
    let mut a = t.clone();
    a.filter_rows(&keep);
    let mut b = t.clone();
    b.filter_rows(&keep.iter().map(|k| !k).collect::<Vec<_>>());
    (a, b)
}

fn quasi() -> Vec<String> {
    ["age", "sex", "postcode", "education", "visit_date"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn params() -> AttackParams {
    AttackParams {
        n_attacks: 200,
        ..AttackParams::default()
    }
}

#[test]
fn planted_leak_is_detected() {
    let all = kuvert_deid::gen::adult_like(3000, 11);
    let (train, control) = split(&all, 2000);
    let r = run_attacks(
        &train,
        &train,
        Some(&control),
        &quasi(),
        Some("diagnosis"),
        &params(),
    )
    .unwrap();
    // Exact copies: inference and membership are near certain.
    let inf = r.inference.as_ref().unwrap();
    assert!(inf.risk > 0.8, "inference risk {}", inf.risk);
    assert!(r.membership.risk.unwrap() > 0.9);
    assert!(r.membership.exact_copies_members > 0.99);
    assert!(
        r.singling_out.risk_ci.0 > 0.1,
        "singling out {:?}",
        r.singling_out.risk_ci
    );
}

#[test]
fn independent_data_shows_low_risk() {
    let all = kuvert_deid::gen::adult_like(3000, 12);
    let (train, control) = split(&all, 2000);
    let other = kuvert_deid::gen::adult_like(2000, 99);
    let r = run_attacks(
        &train,
        &other,
        Some(&control),
        &quasi(),
        Some("diagnosis"),
        &params(),
    )
    .unwrap();
    for (name, a) in [
        ("singling out", Some(&r.singling_out)),
        ("linkability", r.linkability.as_ref()),
        ("inference", r.inference.as_ref()),
    ] {
        let a = a.unwrap();
        assert!(a.risk_ci.0 < 0.05, "{name}: {:?}", a.risk_ci);
        assert!(a.risk < 0.15, "{name}: {}", a.risk);
    }
    assert!(r.membership.risk.unwrap() < 0.15);
}

#[test]
fn without_control_the_risk_is_the_raw_rate() {
    let all = kuvert_deid::gen::adult_like(1000, 13);
    let r = run_attacks(
        &all,
        &all,
        None,
        &quasi(),
        Some("diagnosis"),
        &AttackParams {
            n_attacks: 100,
            ..AttackParams::default()
        },
    )
    .unwrap();
    let inf = r.inference.unwrap();
    assert_eq!(inf.reference, "none");
    assert!((inf.risk - inf.attack_rate.value).abs() < 1e-12);
    assert!(inf.warnings.iter().any(|w| w.contains("no control set")));
}
