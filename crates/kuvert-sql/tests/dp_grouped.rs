//! `WITH PRIVACY` with GROUP BY over declared public keys (histograms under
//! MPC): the answer, once the noise is taken off, equals the plaintext
//! oracle; the noise has the declared distributed-Skellam variance per cell
//! (not less, not more); every declared key is released, empty or not;
//! undeclared keys count toward nothing; refusals say why.

use std::collections::BTreeMap;

use kuvert_data::share::{share_words, ShareKind};
use kuvert_data::{EncodedColumn, Schema, Table};
use kuvert_mpc::harness::{run3, Keys};
use kuvert_mpc::{AShare, MpcError};
use kuvert_sql::exec::execute_with_noise_seed;
use kuvert_sql::{execute, plain, prepare, Catalog, InputTable, Query};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

mod common;
use common::Row;

const T1: &str = "g:int,k:idnr,d:date,x:int,b:bool,s:text";

fn text(s: &str) -> Vec<u64> {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    (0..4)
        .map(|i| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().unwrap()))
        .collect()
}

/// A table from per-row cells (each cell its words).
fn table(schema: &str, rows: &[Vec<Vec<u64>>]) -> Table {
    let schema = Schema::parse_compact(schema).unwrap();
    let n = rows.len();
    let cols = schema
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let w = c.ty.words();
            let mut data = vec![0u64; w * n];
            for (r, row) in rows.iter().enumerate() {
                for k in 0..w {
                    data[k * n + r] = row[i][k];
                }
            }
            EncodedColumn {
                name: c.name.clone(),
                ty: c.ty,
                data,
            }
        })
        .collect();
    Table::from_columns(schema, n, cols).unwrap()
}

fn random_t1(rows: usize, rng: &mut ChaCha20Rng) -> Table {
    let cells: Vec<Vec<Vec<u64>>> = (0..rows)
        .map(|_| {
            vec![
                vec![rng.gen_range(-6i64..6) as u64],
                vec![190001010000 + rng.gen_range(0..6u64)],
                vec![rng.gen_range(19000i64..19012) as u64],
                vec![rng.gen_range(-20i64..20) as u64],
                vec![rng.gen_range(0..2u64)],
                text(["sjp", "aks", "föräldrapenning", ""][rng.gen_range(0..4)]),
            ]
        })
        .collect();
    table(T1, &cells)
}

fn shares(tables: &BTreeMap<String, Table>, seed: u64) -> [BTreeMap<String, InputTable>; 3] {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let mut per: [BTreeMap<String, InputTable>; 3] = Default::default();
    for (name, t) in tables {
        let mut cols: [Vec<AShare>; 3] = Default::default();
        for c in t.columns() {
            for k in 0..c.ty.words() {
                let plane = &c.data[k * t.rows()..(k + 1) * t.rows()];
                for (i, (a, b)) in share_words(plane, ShareKind::Arithmetic, &mut rng)
                    .into_iter()
                    .enumerate()
                {
                    cols[i].push(AShare::from_components(a, b).unwrap());
                }
            }
        }
        for (i, c) in cols.into_iter().enumerate() {
            per[i].insert(
                name.clone(),
                InputTable {
                    schema: t.schema().clone(),
                    rows: t.rows(),
                    columns: c,
                },
            );
        }
    }
    per
}

/// Run `q` under MPC; with `noise_seed` the nodes' noise is seeded.
fn mpc(
    tables: &BTreeMap<String, Table>,
    q: &Query,
    seed: u64,
    noise_seed: Option<[u8; 32]>,
) -> Vec<Row> {
    let per = shares(tables, seed);
    let out = run3(Keys::Seeded(seed), |p| {
        let inputs = &per[p.id()];
        match noise_seed {
            None => execute(p, q, inputs, &mut |_, _| {}),
            Some(s) => execute_with_noise_seed(p, q, inputs, &mut |_, _| {}, s),
        }
        .map_err(|e| MpcError::Usage(e.to_string()))
    })
    .unwrap();
    common::answer_rows(&out, q)
}

/// Run `q` under MPC in malicious mode (every check passed).
fn mpc_malicious(tables: &BTreeMap<String, Table>, q: &Query, seed: u64) -> Vec<Row> {
    let per = shares(tables, seed);
    let out = kuvert_mpc::harness::run3_secure(
        Keys::Seeded(seed),
        kuvert_mpc::Security::Malicious,
        |p| {
            let out = execute(p, q, &per[p.id()], &mut |_, _| {})
                .map_err(|e| MpcError::Usage(e.to_string()))?;
            p.verify_all()?;
            Ok(out)
        },
    )
    .unwrap();
    common::answer_rows(&out, q)
}

fn catalog(tables: &BTreeMap<String, Table>) -> Catalog {
    let mut cat = Catalog::new();
    for (n, t) in tables {
        cat.add(n, t.schema().clone());
    }
    cat
}

/// The central Skellam variance of each aggregate of `q`.
fn mus(q: &Query) -> Vec<f64> {
    let pv = q.privacy.as_ref().unwrap();
    let sens = kuvert_sql::privacy::sensitivities(q, pv);
    kuvert_dp::accounting::skellam_variances_for(pv.epsilon, pv.delta, &sens).unwrap()
}

/// The total noise the three nodes add, recomputed from the seed the way
/// each node draws it: aggregate by aggregate, cell by cell (cells in
/// ascending key order), node `i` on ChaCha20 stream `i`.
fn seeded_noise(q: &Query, seed: [u8; 32], cells: usize) -> Vec<Vec<i64>> {
    let mus = mus(q);
    let mut total = vec![vec![0i64; cells]; mus.len()];
    for node in 0..3u64 {
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(node);
        for (j, mu) in mus.iter().enumerate() {
            for cell in total[j].iter_mut() {
                let s = kuvert_dp::distributed::DistributedSkellam::KUVERT
                    .sample_node_noise(&mut rng, *mu)
                    .unwrap();
                *cell += s as i64;
            }
        }
    }
    total
}

/// Key words -> the row's other cells, for rows whose key is column `kc`
/// (`None`: one global row, keyed by nothing).
fn by_key(rows: &[Row], kc: Option<usize>) -> BTreeMap<Vec<u64>, Vec<i64>> {
    rows.iter()
        .map(|r| {
            let key = kc.map(|c| r[c].clone().unwrap()).unwrap_or_default();
            let vals = r
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != kc)
                .map(|(_, c)| c.as_ref().expect("DP answers are never NULL")[0] as i64)
                .collect();
            (key, vals)
        })
        .collect()
}

/// (SQL with `{m}` for max_rows, key column of the answer, answer column
/// of each aggregate).
const QUERIES: &[(&str, Option<usize>, &[usize])] = &[
    ("SELECT g, COUNT(*) AS n, SUM(x) AS s FROM t1 WHERE b GROUP BY g \
      WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k, max_rows = {m}, lo = -2, hi = 7, groups = (-1, 0, 2, 5, 40))",
     Some(0), &[1, 2]),
    ("SELECT COUNT(*) AS n, g FROM t1 GROUP BY g \
      WITH PRIVACY (epsilon = 2, delta = 1e-6, person = k, max_rows = {m}, groups = (3, -6, 1))",
     Some(1), &[0]),
    ("SELECT s, SUM(x) AS total, COUNT(*) AS n FROM t1 WHERE x > -15 GROUP BY s \
      WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k, max_rows = {m}, lo = 0, hi = 10, groups = ('sjp', 'aks', 'saknas', ''))",
     Some(0), &[1, 2]),
    ("SELECT d, COUNT(*) AS n FROM t1 GROUP BY d \
      WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k, max_rows = {m}, groups = (DATE '2022-01-08', '2022-01-10', '2030-01-01'))",
     Some(0), &[1]),
    ("SELECT b, SUM(x) AS s FROM t1 GROUP BY b \
      WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k, max_rows = {m}, lo = -5, hi = 5, groups = (TRUE, FALSE))",
     Some(0), &[1]),
    ("SELECT COUNT(*) AS n, SUM(x) AS s FROM t1 WHERE g <> 0 \
      WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k, max_rows = {m}, lo = -3, hi = 3)",
     None, &[0, 1]),
];

fn check_seeded(sql: &str, kc: Option<usize>, agg_cols: &[usize], seed: u64, rows: usize) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut tables = BTreeMap::new();
    tables.insert("t1".to_string(), random_t1(rows, &mut rng));
    let q = prepare(sql, &catalog(&tables)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let pv = q.privacy.clone().unwrap();
    let cells = pv.keys.len().max(1);
    let noise_seed: [u8; 32] = rng.gen();
    let got = mpc(&tables, &q, seed, Some(noise_seed));
    assert_eq!(got.len(), cells, "{sql}: one row per declared key");
    let noise = seeded_noise(&q, noise_seed, cells);
    let want = by_key(&plain::evaluate(&q, &tables).unwrap(), kc);
    let mut got = by_key(&got, kc);
    // take the noise off: cell i is the i-th declared key in ascending order
    for (i, key) in pv.keys.iter().map(|c| c.words.clone()).enumerate() {
        let vals = got
            .get_mut(&key)
            .unwrap_or_else(|| panic!("{sql}: key {key:?} missing"));
        let mut at = 0;
        for (col, v) in vals.iter_mut().enumerate() {
            let answer_col = if kc.is_some_and(|k| col >= k) {
                col + 1
            } else {
                col
            };
            let j = agg_cols.iter().position(|&c| c == answer_col).unwrap();
            *v -= noise[j][i];
            at += 1;
        }
        assert_eq!(at, agg_cols.len());
    }
    if kc.is_none() {
        let vals = got.get_mut(&Vec::new()).unwrap();
        for (j, v) in vals.iter_mut().enumerate() {
            *v -= noise[j][0];
        }
    }
    assert_eq!(got, want, "{sql}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6470), .. ProptestConfig::default() })]
    /// With the seeded noise recomputed and taken off, the MPC answer is
    /// exactly the plaintext oracle's capped, clamped, declared-key
    /// aggregate, for int, text, date and bool keys, reordered select
    /// lists, empty groups and undeclared keys.
    #[test]
    fn grouped_privacy_minus_its_noise_is_the_plaintext_oracle(seed in any::<u64>(), rows in 0usize..120, m in 1u64..4) {
        for (sql, kc, aggs) in QUERIES {
            check_seeded(&sql.replace("{m}", &m.to_string()), *kc, aggs, seed, rows);
        }
    }
}

/// Statistical test with the production noise (OS CSPRNG): 12 persons x 6
/// rows with keys cycling 1, 2, 3, 9 (9 is not declared), declared
/// (1, 2, 3, 4, 7): 4 and 7 are empty. The truth is computed by hand here.
/// Over 300 releases each cell's noise has mean 0, and the pooled variance
/// per column is the distributed Skellam's 3μ/2: between 0.8x and 1.25x,
/// which rejects the 1μ that two nodes alone would give and 2x.
/// 72 rows of 12 persons over the keys 1, 9, 2, 3; the query declares 1,
/// 2, 3, 4, 7; and the exact answer per declared key, by hand.
type Truth = BTreeMap<i64, (i64, i64)>;

fn calibration_case() -> (BTreeMap<String, Table>, Query, Truth) {
    let keys_cycle = [1i64, 9, 2, 3, 9, 1];
    let mut cells = Vec::new();
    for r in 0..72usize {
        let person = r % 12;
        let g = keys_cycle[(r / 12 + person) % keys_cycle.len()];
        let x = ((r * 37) % 61) as i64 - 10;
        cells.push(vec![
            vec![g as u64],
            vec![190001010000 + person as u64],
            vec![19000],
            vec![x as u64],
            vec![1],
            text("a"),
        ]);
    }
    let mut tables = BTreeMap::new();
    tables.insert("t1".to_string(), table(T1, &cells));
    let sql = "SELECT g, COUNT(*) AS n, SUM(x) AS s FROM t1 GROUP BY g \
               WITH PRIVACY (epsilon = 2, delta = 1e-6, person = k, max_rows = 2, lo = 0, hi = 30, groups = (7, 4, 3, 2, 1))";
    let q = prepare(sql, &catalog(&tables)).unwrap();
    // by hand: declared rows only, first two per person in input order
    let mut taken: BTreeMap<u64, u64> = BTreeMap::new();
    let mut truth: Truth = DECLARED.iter().map(|&k| (k, (0, 0))).collect();
    for c in &cells {
        let g = c[0][0] as i64;
        if !DECLARED.contains(&g) {
            continue;
        }
        let t = taken.entry(c[1][0]).or_insert(0);
        if *t < 2 {
            *t += 1;
            let e = truth.get_mut(&g).unwrap();
            e.0 += 1;
            e.1 += (c[3][0] as i64).clamp(0, 30);
        }
    }
    assert_eq!(truth[&4], (0, 0));
    assert_eq!(truth[&7], (0, 0));
    assert_eq!(
        truth.values().map(|v| v.0).sum::<i64>(),
        24,
        "12 persons x 2"
    );
    (tables, q, truth)
}

const DECLARED: [i64; 5] = [1, 2, 3, 4, 7];

/// The noise of `runs` runs: per aggregate column, the pooled variance
/// around each cell's mean (asserting the means are near 0 within `k`
/// standard errors), for released variance `want[j]`.
fn pooled_noise(
    runs: u64,
    want: &[f64],
    k: f64,
    truth: &Truth,
    mut run: impl FnMut(u64) -> Vec<Row>,
) -> Vec<f64> {
    let mut noise: BTreeMap<(usize, i64), Vec<f64>> = BTreeMap::new();
    for seed in 0..runs {
        let got = run(seed);
        assert_eq!(got.len(), DECLARED.len(), "every declared key, once");
        for r in &got {
            let g = r[0].as_ref().unwrap()[0] as i64;
            let (n, s) = truth[&g];
            noise
                .entry((0, g))
                .or_default()
                .push((r[1].as_ref().unwrap()[0] as i64 - n) as f64);
            noise
                .entry((1, g))
                .or_default()
                .push((r[2].as_ref().unwrap()[0] as i64 - s) as f64);
        }
    }
    (0..2)
        .map(|j| {
            let mut pooled = Vec::new();
            for &g in &DECLARED {
                let e = &noise[&(j, g)];
                assert_eq!(e.len(), runs as usize);
                let m = e.iter().sum::<f64>() / runs as f64;
                assert!(
                    m.abs() < k * (want[j] / runs as f64).sqrt(),
                    "column {j}, group {g}: noise mean {m:.2} (variance {:.1})",
                    want[j]
                );
                pooled.extend(e.iter().map(|x| x - m));
            }
            pooled.iter().map(|x| x * x).sum::<f64>() / (pooled.len() - DECLARED.len()) as f64
        })
        .collect()
}

#[test]
fn grouped_privacy_adds_calibrated_noise_to_every_declared_cell() {
    let (tables, q, truth) = calibration_case();
    let mus = mus(&q);
    // 300 x 5 cells per column: the pooled variance's relative standard
    // error is about 3.7 %, so 0.8x and 1.25x are more than 5 of them away
    let want: Vec<f64> = mus.iter().map(|m| 1.5 * m).collect();
    let var = pooled_noise(300, &want, 4.5, &truth, |seed| mpc(&tables, &q, seed, None));
    for j in 0..2 {
        assert!(
            var[j] > 0.8 * want[j] && var[j] < 1.25 * want[j],
            "column {j}: pooled noise variance {:.1}, expected {:.1}",
            var[j],
            want[j]
        );
    }
}

/// In malicious mode the noise is drawn by the pairs of nodes (each share
/// component a full Skellam(μ), kuvert_mpc::Party::pair_sampled_a): the
/// answer is the same histogram, and the released variance is 3μ, twice
/// the semi-honest mode's 1.5μ.
#[test]
fn malicious_mode_noise_comes_from_the_pairs_at_three_times_the_central_variance() {
    let (tables, q, truth) = calibration_case();
    let mus = mus(&q);
    // 40 x 5 cells: relative standard error of the pooled variance about
    // 10 %; 0.6x and 1.5x of 3μ are 4 of them away and exclude 1.5μ.
    let want: Vec<f64> = mus.iter().map(|m| 3.0 * m).collect();
    let var = pooled_noise(40, &want, 4.5, &truth, |seed| {
        mpc_malicious(&tables, &q, seed)
    });
    for j in 0..2 {
        assert!(
            var[j] > 0.6 * want[j] && var[j] < 1.5 * want[j],
            "column {j}: pooled noise variance {:.1}, expected {:.1}",
            var[j],
            want[j]
        );
    }
}

/// The per-column calibration does not depend on the number of groups
/// (vector sensitivity, cap across groups), and grows with max_rows.
#[test]
fn grouped_sensitivity_is_per_column_and_scales_with_max_rows() {
    let mut cat = Catalog::new();
    cat.add("t1", Schema::parse_compact(T1).unwrap());
    let q = |groups: &str, m: u64| {
        prepare(
            &format!(
                "SELECT g, COUNT(*) AS n, SUM(x) AS s FROM t1 GROUP BY g WITH PRIVACY \
                 (epsilon = 1, delta = 1e-6, person = k, max_rows = {m}, lo = -4, hi = 10, groups = ({groups}))"
            ),
            &cat,
        )
        .unwrap()
    };
    let one = q("1", 1);
    let many = q(
        &(0..64)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        1,
    );
    let pv = one.privacy.as_ref().unwrap();
    assert_eq!(
        kuvert_sql::privacy::sensitivities(&one, pv),
        vec![(1.0, 1.0), (10.0, 10.0)]
    );
    assert_eq!(mus(&one), mus(&many));
    let three = q("1, 2", 3);
    let pv3 = three.privacy.as_ref().unwrap();
    assert_eq!(
        kuvert_sql::privacy::sensitivities(&three, pv3),
        vec![(3.0, 3.0), (30.0, 30.0)]
    );
    // the variance grows about as max_rows squared (a little less: the
    // Skellam bound's L1 term grows only linearly)
    let (a, b) = (mus(&one), mus(&three));
    let r = b[0] / a[0];
    assert!(r > 8.0 && r < 9.0 + 1e-6, "{a:?} {b:?}");
}

#[test]
fn grouped_explain_shows_sensitivities_noise_per_cell_and_leakage() {
    let mut cat = Catalog::new();
    cat.add("t1", Schema::parse_compact(T1).unwrap());
    let q = prepare(
        "SELECT g, COUNT(*) AS n, SUM(x) AS s FROM t1 GROUP BY g WITH PRIVACY \
         (epsilon = 1, delta = 1e-6, person = k, max_rows = 2, lo = 0, hi = 100, groups = (1, 2, 3, 4, 5, 6, 7, 8))",
        &cat,
    )
    .unwrap();
    let sizes: BTreeMap<String, usize> = [("t1".to_string(), 1000)].into();
    let text = kuvert_sql::explain::explain(&q, &sizes);
    let mu = mus(&q);
    for needle in [
        "groups = (1, 2, 3, 4, 5, 6, 7, 8)",
        "over 8 declared public keys",
        "n: sensitivity L1 2, L2 2; released noise std",
        "s: sensitivity L1 200, L2 200; released noise std",
        "per cell",
        "exactly 8 rows, one per declared key",
        "Aggregate WITH PRIVACY over 8 declared groups",
        "8 padded row(s)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let std_n = format!("released noise std {:.1} per cell", (1.5 * mu[0]).sqrt());
    assert!(text.contains(&std_n), "missing {std_n:?} in\n{text}");
}

#[test]
fn grouped_privacy_refuses_what_it_cannot_protect() {
    let mut cat = Catalog::new();
    cat.add("t1", Schema::parse_compact(T1).unwrap());
    let p = "epsilon = 1, delta = 1e-6, person = k";
    let many = (0..65)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    for (sql, needle) in [
        (format!("SELECT g, COUNT(*) FROM t1 GROUP BY g WITH PRIVACY ({p})"), "needs the public list of groups"),
        (format!("SELECT g, COUNT(*) FROM t1 GROUP BY g WITH PRIVACY ({p}, groups = ({many}))"), "at most 64"),
        (format!("SELECT g, COUNT(*) + 1 AS n FROM t1 GROUP BY g WITH PRIVACY ({p}, groups = (1, 2))"), "only the GROUP BY column and COUNT/SUM"),
        (format!("SELECT COUNT(*) FROM t1 WITH PRIVACY ({p}, groups = (1, 2))"), "has no GROUP BY"),
        (format!("SELECT g, COUNT(*) FROM t1 GROUP BY g HAVING COUNT(*) > 3 WITH PRIVACY ({p}, groups = (1))"), "HAVING"),
        (format!("SELECT g, b, COUNT(*) FROM t1 GROUP BY g, b WITH PRIVACY ({p}, groups = (1))"), "one column"),
        (format!("SELECT g, COUNT(*) FROM t1 GROUP BY g WITH PRIVACY ({p}, groups = ('north'))"), "does not fit the group column g"),
        (format!("SELECT d, COUNT(*) FROM t1 GROUP BY d WITH PRIVACY ({p}, groups = ('2024-02-30'))"), "not a date"),
        (format!("SELECT g, COUNT(*) FROM t1 GROUP BY g WITH PRIVACY ({p}, groups = (1, 2, 1))"), "twice"),
        (format!("SELECT k, COUNT(*) FROM t1 GROUP BY k WITH PRIVACY ({p}, groups = ('190001010000'))"), "identity number"),
        (format!("SELECT g, COUNT(*) FROM t1 GROUP BY g WITH PRIVACY ({p}, groups = 1)"), "parenthesised list"),
        (format!("SELECT g, COUNT(*) FROM t1 GROUP BY g WITH PRIVACY ({p}, groups = (1, x))"), "neither a whole number"),
        (format!("SELECT g, MIN(x) FROM t1 GROUP BY g WITH PRIVACY ({p}, groups = (1))"), "COUNT and SUM"),
    ] {
        let e = prepare(&sql, &cat).unwrap_err();
        assert!(e.to_string().contains(needle), "{sql}: {e}");
        assert!(e.line >= 1 && e.column > 1, "{sql}: {e:?}");
    }
}
