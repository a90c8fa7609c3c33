//! Property tests (proptest) against plain oracles.

use std::collections::{BTreeMap, HashMap};

use kuvert_dp::accounting::RdpCurve;
use kuvert_dp::ledger::{Budget, DatasetKey, DatasetLedger, ReleaseCost, ReleaseRecord};
use kuvert_dp::release::{execute, plan, MechanismChoice, ReleaseSpec};
use kuvert_dp::sample::Rational;
use kuvert_dp::table::{ColumnType, Schema, Table, Value};
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every finite non-negative f64 converts to a rational exactly.
    #[test]
    fn f64_to_rational_round_trips(bits in any::<u64>()) {
        let x = f64::from_bits(bits & !(1u64 << 63));
        prop_assume!(x.is_finite());
        let r = Rational::from_f64(x).unwrap();
        prop_assert_eq!(r.to_f64(), x);
    }

    /// A pure-ε ledger approves a release exactly when the running sum plus
    /// its ε stays within the budget, and never lets the sum exceed it.
    #[test]
    fn pure_ledger_matches_running_sum(costs in proptest::collection::vec(1u32..60, 1..30)) {
        let budget = 3.0;
        let mut acct = DatasetLedger::new(
            DatasetKey { dataset: "d".into(), contributor: None },
            Budget { epsilon: budget, delta: 0.0 },
        ).unwrap();
        let mut sum = 0.0f64;
        for c in costs {
            let eps = c as f64 / 20.0;
            let cost = ReleaseCost { epsilon: eps, delta: 0.0, rho: None, rdp: vec![RdpCurve::Pure { epsilon: eps }] };
            let fits = sum + eps <= budget + 1e-9;
            match acct.check(cost.clone()) {
                Ok(_) => {
                    prop_assert!(fits);
                    sum += eps;
                    acct.releases.push(ReleaseRecord {
                        time: String::new(), query_sha256: String::new(),
                        mechanism: "discrete_laplace".into(), cost,
                    });
                }
                Err(e) => {
                    prop_assert!(!fits);
                    prop_assert!((e.remaining - (budget - sum).max(0.0)).abs() < 1e-9);
                }
            }
            prop_assert!(acct.spent() <= budget + 1e-9);
            prop_assert!((acct.spent() - sum).abs() < 1e-9);
        }
    }

    /// With noise made negligible, a capped count equals Σ_p min(rows_p, K)
    /// and a clamped sum equals the oracle's clamped sum over kept rows
    /// (all rows when K covers everyone).
    #[test]
    fn caps_and_clamps_match_oracle(
        rows in proptest::collection::vec((0i64..8, -50i64..50), 1..60),
        k in 1u32..4,
        lo in -20i64..0,
        hi in 0i64..20,
    ) {
        let table = Table {
            schema: Schema { columns: vec![("pid".into(), ColumnType::Integer), ("v".into(), ColumnType::Integer)] },
            rows: rows.iter().map(|&(p, v)| vec![Value::Int(p), Value::Int(v)]).collect(),
        };
        let mut per: HashMap<i64, u32> = HashMap::new();
        for &(p, _) in &rows { *per.entry(p).or_default() += 1; }
        let capped: u32 = per.values().map(|&n| n.min(k)).sum();
        let mut bounds = BTreeMap::new();
        bounds.insert("v".to_string(), (lo, hi));
        let spec = ReleaseSpec {
            table_name: "t".into(),
            sql: "SELECT COUNT(*) AS n, SUM(v) AS s FROM t".into(),
            epsilon: 1.0e5,
            delta: 0.0,
            mechanism: MechanismChoice::Laplace,
            bounds,
            person_column: Some("pid".into()),
            max_rows_per_person: k,
            keys: None,
        };
        let p = plan(&spec, &table.schema).unwrap();
        prop_assert_eq!(p.measurements[1].l1, k as f64 * lo.unsigned_abs().max(hi.unsigned_abs()) as f64);
        let out = execute(&p, &table, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
        prop_assert_eq!(out.values[0]["n"].as_i64().unwrap(), capped as i64);
        let s = out.values[0]["s"].as_i64().unwrap();
        if per.values().all(|&n| n <= k) {
            let oracle: i64 = rows.iter().map(|&(_, v)| v.clamp(lo, hi)).sum();
            prop_assert_eq!(s, oracle);
        } else {
            // Some rows were dropped: the sum lies within what the kept rows can give.
            prop_assert!(s >= capped as i64 * lo && s <= capped as i64 * hi);
        }
    }
}
