//! Releases end to end on small tables with hand-computed oracles:
//! contribution bounds, clamping, declared keys, budget exhaustion (refused
//! before the data is read, nothing charged).

use std::cell::Cell;
use std::collections::BTreeMap;

use kuvert_dp::ledger::{Budget, DatasetKey, FileLedger, LedgerStore};
use kuvert_dp::release::{execute, plan, release, Account, MechanismChoice, ReleaseSpec};
use kuvert_dp::table::{ColumnType, Schema, Table, Value};
use kuvert_dp::DpError;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// person id, amount, region
fn table() -> Table {
    let mut rows = Vec::new();
    // person 1: 100 rows of amount 50 in region a
    for _ in 0..100 {
        rows.push(vec![Value::Int(1), Value::Int(50), Value::Text("a".into())]);
    }
    // persons 2..=5: one row each, amounts 5, -3, 7, NULL, region b
    for (p, a) in [
        (2, Value::Int(5)),
        (3, Value::Int(-3)),
        (4, Value::Int(7)),
        (5, Value::Null),
    ] {
        rows.push(vec![Value::Int(p), a, Value::Text("b".into())]);
    }
    // a row in an undeclared region
    rows.push(vec![Value::Int(6), Value::Int(1), Value::Text("zz".into())]);
    Table {
        schema: Schema {
            columns: vec![
                ("pid".into(), ColumnType::Integer),
                ("amount".into(), ColumnType::Integer),
                ("region".into(), ColumnType::Text),
            ],
        },
        rows,
    }
}

fn spec(sql: &str) -> ReleaseSpec {
    ReleaseSpec {
        table_name: "t".into(),
        sql: sql.into(),
        // So much ε that the discrete noise is 0 with probability 1 - 1e-2000:
        // the output must equal the oracle exactly.
        epsilon: 1.0e4,
        delta: 0.0,
        mechanism: MechanismChoice::Auto,
        bounds: BTreeMap::new(),
        person_column: None,
        max_rows_per_person: 1,
        keys: None,
    }
}

fn run(sp: &ReleaseSpec) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let t = table();
    let p = plan(sp, &t.schema).unwrap();
    execute(&p, &t, &mut ChaCha20Rng::seed_from_u64(9))
        .unwrap()
        .values
}

#[test]
fn per_person_row_cap_is_enforced() {
    let mut sp = spec("SELECT COUNT(*) AS n FROM t");
    sp.person_column = Some("pid".into());
    sp.max_rows_per_person = 2;
    // person 1 keeps 2 of 100 rows; persons 2..6 one each.
    assert_eq!(run(&sp)[0]["n"], 2 + 5);
    let t = table();
    let p = plan(&sp, &t.schema).unwrap();
    assert_eq!(p.measurements[0].l1, 2.0, "sensitivity is K·1");
    assert!(p.explain().contains("K = 2"));
}

#[test]
fn sums_are_clamped_and_sensitivity_follows_bounds() {
    let mut sp = spec("SELECT SUM(amount) AS s, AVG(amount) AS m FROM t WHERE region = 'b'");
    sp.bounds.insert("amount".into(), (0, 6));
    // clamp(5)=5, clamp(-3)=0, clamp(7)=6, NULL skipped → 11; avg 11/3
    let row = &run(&sp)[0];
    assert_eq!(row["s"], 11);
    assert!(
        (row["m"].as_f64().unwrap() - 11.0 / 3.0).abs() < 1e-12,
        "{row:?}"
    );
    let t = table();
    let p = plan(&sp, &t.schema).unwrap();
    assert_eq!(p.measurements[0].l1, 6.0);
    assert_eq!(p.measurements.len(), 3, "AVG is a sum and a count");
    // Without bounds the plan is refused, naming the flag to add.
    let e = plan(&spec("SELECT SUM(amount) FROM t"), &t.schema)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--bounds amount=LO:HI"), "{e}");
}

#[test]
fn histograms_need_declared_keys_and_drop_others() {
    let t = table();
    let sp = spec("SELECT region, COUNT(*) AS n FROM t GROUP BY region");
    let e = plan(&sp, &t.schema).unwrap_err().to_string();
    assert!(e.contains("--keys region="), "{e}");
    let mut sp = sp;
    sp.keys = Some(("region".into(), vec!["b".into(), "a".into(), "c".into()]));
    let rows = run(&sp);
    let got: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["region"].as_str().unwrap().to_string(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("b".into(), 4), ("a".into(), 100), ("c".into(), 0)]
    );
}

#[test]
fn budget_exhaustion_refuses_before_reading_data_and_charges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.json");
    let key = DatasetKey {
        dataset: "t".into(),
        contributor: None,
    };
    let t = table();
    let mut sp = spec("SELECT COUNT(*) AS n FROM t");
    sp.epsilon = 0.4;
    let loaded = Cell::new(0);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for i in 0..3 {
        let mut store = FileLedger::open_file(&path).unwrap();
        let r = release(
            &sp,
            &t.schema,
            || {
                loaded.set(loaded.get() + 1);
                Ok(table())
            },
            Some(Account {
                store: &mut store,
                key: key.clone(),
                budget: Some(Budget {
                    epsilon: 1.0,
                    delta: 0.0,
                }),
            }),
            &mut rng,
        );
        match (i, r) {
            (0 | 1, Ok(out)) => {
                let left = out.budget_remaining.unwrap();
                assert!((left - (1.0 - 0.4 * (i + 1) as f64)).abs() < 1e-9, "{left}");
            }
            (2, Err(DpError::BudgetExceeded(e))) => {
                assert!((e.remaining - 0.2).abs() < 1e-9);
                assert!(e.to_string().contains("remaining ε = 0.200000"), "{e}");
            }
            (i, other) => panic!("release {i}: {other:?}"),
        }
    }
    assert_eq!(
        loaded.get(),
        2,
        "the refused release must not read the table"
    );
    let store = FileLedger::open_file(&path).unwrap();
    let acct = store.load(&key).unwrap().unwrap();
    assert_eq!(acct.releases.len(), 2);
    assert!((acct.spent() - 0.8).abs() < 1e-9);
}

#[test]
fn failed_release_charges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.json");
    let mut store = FileLedger::open_file(&path).unwrap();
    let t = table();
    let r = release(
        &spec("SELECT COUNT(*) AS n FROM t"),
        &t.schema,
        || Err(DpError::InvalidParameter("disk gone".into())),
        Some(Account {
            store: &mut store,
            key: DatasetKey {
                dataset: "t".into(),
                contributor: Some("agency".into()),
            },
            budget: Some(Budget {
                epsilon: 1.0e5,
                delta: 0.0,
            }),
        }),
        &mut ChaCha20Rng::seed_from_u64(2),
    );
    assert!(r.is_err());
    assert!(
        !path.exists(),
        "nothing may be written for a failed release"
    );
}

#[test]
fn gaussian_and_skellam_need_delta() {
    let t = table();
    let mut sp = spec("SELECT COUNT(*) AS n FROM t");
    sp.epsilon = 1.0;
    sp.mechanism = MechanismChoice::Skellam;
    assert!(plan(&sp, &t.schema).is_err());
    sp.delta = 1e-6;
    let p = plan(&sp, &t.schema).unwrap();
    assert_eq!(p.mechanism.name(), "skellam");
    // Skellam noise is a bit larger than the Gaussian's at the same (ε, δ).
    sp.mechanism = MechanismChoice::Gaussian;
    let g = plan(&sp, &t.schema).unwrap();
    assert!(p.measurements[0].std > g.measurements[0].std);
    assert!(p.measurements[0].std < 1.2 * g.measurements[0].std);
}
