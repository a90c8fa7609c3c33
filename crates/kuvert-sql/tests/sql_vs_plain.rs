//! Whole queries: SQL planned by the front end, run under three-party MPC,
//! compared with the plaintext evaluation of the same plan (which
//! `plain_vs_sqlite` in turn checks against SQLite). Random small tables
//! with small value domains so that joins, groups and overlaps hit.

use std::collections::BTreeMap;

use kuvert_data::share::{share_words, ShareKind};
use kuvert_data::{EncodedColumn, Schema, Table};
use kuvert_mpc::faulty::{Fault, FaultyTransport, Injection};
use kuvert_mpc::harness::{run3, run3_over_secure, Keys};
use kuvert_mpc::inproc::InProcTransport;
use kuvert_mpc::{AShare, MpcError, Security, Transport};
use kuvert_sql::{execute, plain, prepare, Catalog, InputTable, Query};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

mod common;
use common::Row;

const T1: &str = "g:int,k:idnr,d:date,x:int,b:bool,s:text";
const T2: &str = "k:idnr,fran:date,till:date,y:int";

fn text(s: &str) -> Vec<u64> {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    (0..4)
        .map(|i| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().unwrap()))
        .collect()
}

/// A random table: per column, per row, the cell's words.
fn random_table(schema: &str, rows: usize, rng: &mut ChaCha20Rng) -> Table {
    let schema = Schema::parse_compact(schema).unwrap();
    let mut cols = Vec::new();
    for c in schema.columns() {
        let cells: Vec<Vec<u64>> = (0..rows)
            .map(|_| match c.ty {
                kuvert_data::ColumnType::Int => vec![rng.gen_range(-6i64..6) as u64],
                kuvert_data::ColumnType::Idnr => vec![190001010000 + rng.gen_range(0..6u64)],
                kuvert_data::ColumnType::Date => vec![rng.gen_range(19000i64..19012) as u64],
                kuvert_data::ColumnType::Bool => vec![rng.gen_range(0..2u64)],
                kuvert_data::ColumnType::Text => {
                    text(["sjp", "aks", "föräldrapenning", ""][rng.gen_range(0..4)])
                }
            })
            .collect();
        let w = c.ty.words();
        let mut data = vec![0u64; w * rows];
        for (r, cell) in cells.iter().enumerate() {
            for k in 0..w {
                data[k * rows + r] = cell[k];
            }
        }
        cols.push(EncodedColumn {
            name: c.name.clone(),
            ty: c.ty,
            data,
        });
    }
    Table::from_columns(schema, rows, cols).unwrap()
}

/// Each party's input tables: the tables secret-shared.
fn shares_of(tables: &BTreeMap<String, Table>, seed: u64) -> [BTreeMap<String, InputTable>; 3] {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let mut per: [BTreeMap<String, InputTable>; 3] = Default::default();
    for (name, t) in tables {
        let mut cols: [Vec<AShare>; 3] = Default::default();
        for c in t.columns() {
            let w = c.ty.words();
            for k in 0..w {
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

fn mpc(tables: &BTreeMap<String, Table>, q: &Query, seed: u64) -> Vec<Row> {
    let per = shares_of(tables, seed);
    let out = run3(Keys::Seeded(seed), |p| {
        execute(p, q, &per[p.id()], &mut |_, _| {}).map_err(|e| MpcError::Usage(e.to_string()))
    })
    .unwrap();
    common::answer_rows(&out, q)
}

const QUERIES: &[&str] = &[
    "SELECT g, COUNT(*) AS n, SUM(x) AS s, MIN(d) AS first, MAX(x) AS mx FROM t1 WHERE b AND x > -3 GROUP BY g HAVING COUNT(*) >= 1",
    "SELECT COUNT(*), SUM(x), MIN(x), MAX(d), COUNT(DISTINCT k) FROM t1 WHERE g = 2 OR NOT b",
    "SELECT DISTINCT s, b FROM t1 WHERE s <> 'aks'",
    "SELECT k, x * 2 + 1 AS y, CASE WHEN x < 0 THEN -x WHEN x IN (1, 2) THEN 100 ELSE x END AS c FROM t1 WHERE d >= '2022-01-05'",
    "SELECT COUNT(*) AS n FROM t1 WHERE k IN (SELECT k FROM t2 WHERE y > 0)",
    "SELECT k, x FROM t1 WHERE k NOT IN (SELECT k FROM t2)",
    "SELECT COUNT(DISTINCT t.k) AS personer, SUM(t.y) AS belopp FROM t2 t WHERE EXISTS (SELECT 1 FROM t2 u WHERE u.k = t.k AND u.fran <= t.till AND t.fran <= u.till AND u.y <> t.y)",
    "SELECT DISTINCT a.k FROM t2 a WHERE EXISTS (SELECT 1 FROM t1 b WHERE b.k = a.k AND b.d <= a.till AND a.fran <= b.d)",
    "SELECT a.g, SUM(b.s) AS tot, COUNT(*) AS n FROM t1 a JOIN (SELECT k, SUM(y) AS s FROM t2 GROUP BY k) b ON a.k = b.k GROUP BY a.g",
    "SELECT a.g, b.y FROM t1 a JOIN t2 b ON a.k = b.k AND a.d < b.till WHERE a.x <> b.y",
    "SELECT k, fran, COUNT(DISTINCT src) AS n FROM (SELECT k, fran, 1 AS src FROM t2 UNION ALL SELECT k, d, 2 FROM t1) u GROUP BY k, fran HAVING COUNT(DISTINCT src) >= 2",
    "SELECT x, g FROM t1 ORDER BY x DESC, g LIMIT 3",
    "SELECT SUM(x) AS s, MIN(x) AS lo FROM t1 WHERE x > 100",
    // joins fused with the GROUP BY of their unique side: filters on both
    // sides (invalid rows), keys without partners, every fusable aggregate
    "SELECT a.k, a.x, b.n, b.lo, b.hi, b.s FROM t1 a JOIN (SELECT k, COUNT(*) AS n, MIN(y) AS lo, MAX(y) AS hi, SUM(y) AS s FROM t2 WHERE y > -3 GROUP BY k) b ON a.k = b.k WHERE a.b",
    // the grouped side on the left, its columns reordered by a projection
    "SELECT b.s, b.c, a.fran FROM (SELECT SUM(x) AS s, k, COUNT(x) AS c FROM t1 WHERE g <> 0 GROUP BY k) b JOIN t2 a ON b.k = a.k",
    // a two-column key, and a residual predicate over both sides
    "SELECT a.k, a.fran, b.n, b.mx FROM t2 a JOIN (SELECT d, k, COUNT(*) AS n, MAX(x) AS mx FROM t1 GROUP BY k, d) b ON a.k = b.k AND a.fran = b.d AND b.mx > a.y",
    // not fusable (HAVING): the plain sort join
    "SELECT a.g, b.s FROM t1 a JOIN (SELECT k, SUM(y) AS s FROM t2 GROUP BY k HAVING COUNT(*) > 1) b ON a.k = b.k",
];

/// The query in malicious mode, with `injection` applied to one party's
/// messages: whether the injection changed a message, and per party its
/// result shares (after every pending check passed) or the error.
#[allow(clippy::type_complexity)]
fn mpc_malicious(
    tables: &BTreeMap<String, Table>,
    q: &Query,
    seed: u64,
    injection: Option<(usize, Injection)>,
) -> (
    bool,
    [Result<kuvert_sql::output::ResultShares, MpcError>; 3],
) {
    let per = shares_of(tables, seed);
    let mut log = None;
    let nets = InProcTransport::triple().map(|t| -> Box<dyn Transport> {
        let party = t.party();
        match &injection {
            Some((p, inj)) if *p == party => {
                let f = FaultyTransport::new(t, vec![inj.clone()]);
                log = Some(f.log());
                Box::new(f)
            }
            _ => Box::new(t),
        }
    });
    let out = run3_over_secure(nets, Keys::Seeded(seed), Security::Malicious, |p| {
        let out = execute(p, q, &per[p.id()], &mut |_, _| {}).map_err(|e| match e {
            kuvert_sql::ExecError::Mpc(m) => m,
            other => MpcError::Usage(other.to_string()),
        })?;
        p.verify_all()?;
        Ok(out)
    });
    (log.is_some_and(|l| l.changed_any()), out)
}

fn tables_for(seed: u64, r1: usize, r2: usize) -> (BTreeMap<String, Table>, Catalog) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut tables = BTreeMap::new();
    tables.insert("t1".to_string(), random_table(T1, r1, &mut rng));
    tables.insert("t2".to_string(), random_table(T2, r2, &mut rng));
    let mut cat = Catalog::new();
    for (n, t) in &tables {
        cat.add(n, t.schema().clone());
    }
    (tables, cat)
}

fn check(sql: &str, seed: u64, r1: usize, r2: usize) {
    let (tables, cat) = tables_for(seed, r1, r2);
    let q = prepare(sql, &cat).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut want = plain::evaluate(&q, &tables).unwrap();
    let mut got = mpc(&tables, &q, seed);
    if q.limit.is_none() {
        want.sort();
        got.sort();
    } else {
        // LIMIT: the MPC answer comes shuffled; order it like the oracle
        got.sort();
        want.sort();
    }
    assert_eq!(got, want, "{sql}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, rng_seed: proptest::test_runner::RngSeed::Fixed(0x737170), .. ProptestConfig::default() })]
    #[test]
    fn every_query_matches_the_plaintext_plan(seed in any::<u64>(), r1 in 0usize..300, r2 in 0usize..300) {
        for sql in QUERIES {
            check(sql, seed, r1, r2);
        }
    }
}

/// `WITH PRIVACY`: the released values are the capped, clamped aggregates
/// plus noise whose mean is 0 and whose variance is the distributed
/// Skellam's 3μ/2 per output — not less (too little privacy) and not more.
#[test]
fn with_privacy_caps_clamps_and_adds_calibrated_noise() {
    let schema = Schema::parse_compact(T2).unwrap();
    // 10 persons x 5 rows, y from 0 to 40
    let rows = 50usize;
    let mut cols: Vec<Vec<u64>> = vec![vec![], vec![], vec![], vec![]];
    for r in 0..rows {
        cols[0].push(190001010000 + (r % 10) as u64);
        cols[1].push(19000);
        cols[2].push(19001);
        cols[3].push(((r * 7) % 41) as u64);
    }
    let enc: Vec<EncodedColumn> = schema
        .columns()
        .iter()
        .zip(&cols)
        .map(|(c, d)| EncodedColumn {
            name: c.name.clone(),
            ty: c.ty,
            data: d.clone(),
        })
        .collect();
    let mut tables = BTreeMap::new();
    tables.insert(
        "t2".to_string(),
        Table::from_columns(schema.clone(), rows, enc).unwrap(),
    );
    let mut cat = Catalog::new();
    cat.add("t2", schema);
    let sql = "SELECT COUNT(*) AS n, SUM(y) AS s FROM t2 WHERE y >= 0 \
               WITH PRIVACY (epsilon = 2, delta = 1e-6, person = k, max_rows = 2, lo = 0, hi = 10)";
    let q = prepare(sql, &cat).unwrap();
    // plaintext truth: the first two rows of each person (input order), clamped
    let mut seen = BTreeMap::new();
    let (mut n_true, mut s_true) = (0i64, 0i64);
    for (k, y) in cols[0].iter().zip(&cols[3]) {
        let c = seen.entry(*k).or_insert(0);
        if *c < 2 {
            *c += 1;
            n_true += 1;
            s_true += (*y as i64).clamp(0, 10);
        }
    }
    let pv = q.privacy.clone().unwrap();
    let sens = kuvert_sql::privacy::sensitivities(&q, &pv);
    let mus = kuvert_dp::accounting::skellam_variances_for(pv.epsilon, pv.delta, &sens).unwrap();
    let runs = 150;
    let mut noise: [Vec<f64>; 2] = [vec![], vec![]];
    for seed in 0..runs {
        let got = mpc(&tables, &q, seed);
        assert_eq!(got.len(), 1);
        let n = got[0][0].as_ref().unwrap()[0] as i64;
        let s = got[0][1].as_ref().unwrap()[0] as i64;
        noise[0].push((n - n_true) as f64);
        noise[1].push((s - s_true) as f64);
    }
    for (j, e) in noise.iter().enumerate() {
        let want_var = 1.5 * mus[j];
        let m = e.iter().sum::<f64>() / runs as f64;
        let var = e.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (runs - 1) as f64;
        assert!(
            m.abs() < 4.5 * (want_var / runs as f64).sqrt(),
            "output {j}: noise mean {m:.2} (variance {want_var:.1})"
        );
        assert!(
            var > 0.65 * want_var && var < 1.5 * want_var,
            "output {j}: noise variance {var:.1}, expected {want_var:.1}"
        );
    }
}

#[test]
fn with_privacy_refuses_what_it_cannot_protect() {
    let mut cat = Catalog::new();
    cat.add("t2", Schema::parse_compact(T2).unwrap());
    for (sql, needle) in [
        ("SELECT k, COUNT(*) FROM t2 GROUP BY k WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k)", "GROUP BY"),
        ("SELECT SUM(y) FROM t2 WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k)", "lo and hi"),
        ("SELECT COUNT(*) FROM t2 WITH PRIVACY (epsilon = 1, delta = 1e-6)", "person"),
        ("SELECT COUNT(*) FROM t2 WITH PRIVACY (epsilon = 0, delta = 1e-6, person = k)", "epsilon > 0"),
        ("SELECT MAX(y) FROM t2 WITH PRIVACY (epsilon = 1, delta = 1e-6, person = k)", "COUNT and SUM"),
        ("SELECT COUNT(*) FROM t2 WITH PRIVACY (epsilon = 1, delta = 1e-6, person = nobody)", "not a column"),
    ] {
        let e = prepare(sql, &cat).unwrap_err();
        assert!(e.to_string().contains(needle), "{sql}: {e}");
        assert!(e.line >= 1 && e.column > 1, "{sql}: {e:?}");
    }
}

/// EXPLAIN shows the fused join (and no separate Aggregate for the grouped
/// side), the row count after the grouped side's rows are dropped, and the
/// leakage of dropping them; a HAVING keeps the plain sort join.
#[test]
fn explain_shows_the_fused_join_and_the_dropped_rows() {
    let mut cat = Catalog::new();
    cat.add("t1", Schema::parse_compact(T1).unwrap());
    cat.add("t2", Schema::parse_compact(T2).unwrap());
    let sizes: BTreeMap<String, usize> = [("t1".to_string(), 1000), ("t2".to_string(), 700)].into();
    let q = prepare(QUERIES[8], &cat).unwrap();
    let text = kuvert_sql::explain::explain(&q, &sizes);
    for needle in [
        "Join fused with the GROUP BY of its right side on the join key (SUM): one sort of both inputs' rows",
        "then the grouped input's rows are dropped  -> 1000 rows",
        "Scan t2",
        "uniformly random set of positions of a public size",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // the outer GROUP BY a.g is the only Aggregate left
    assert_eq!(text.matches("Aggregate").count(), 1, "{text}");
    let q = prepare(QUERIES.last().unwrap(), &cat).unwrap();
    let text = kuvert_sql::explain::explain(&q, &sizes);
    assert!(
        text.contains("Join (sort-based, one side unique on the key; its rows are then dropped)  -> 1000 rows"),
        "{text}"
    );
}

/// Answers of one row of global aggregates (no shuffle), beside the
/// shapes of [`QUERIES`].
const AGGREGATES: &[&str] = &[
    "SELECT COUNT(*) AS n, SUM(x) AS s, SUM(x * x) AS q FROM t1 WHERE b AND x > -3",
    "SELECT SUM(CASE WHEN x < 0 THEN -x ELSE x END) AS a, COUNT(*) AS n FROM t1 WHERE d >= '2022-01-05' AND s <> 'aks'",
    "SELECT MIN(x) AS lo, MAX(d) AS hi, COUNT(*) AS n FROM t1 WHERE g = 2 OR NOT b",
    "SELECT SUM(y) AS s, COUNT(*) AS n FROM t2 WHERE fran <= till AND y > 0",
];

/// Every query of [`QUERIES`] and [`AGGREGATES`] in malicious mode gives
/// the plaintext plan's answer. Then, for every query, random tamperings of
/// one party's messages (any round after the setup, to either peer): every
/// one that changed a message stops at least one honest party, and no run
/// releases a wrong answer.
#[test]
fn every_query_in_malicious_mode_matches_the_plaintext_plan_and_tampering_stops_it() {
    let (tables, cat) = tables_for(7, 40, 30);
    let mut rng = ChaCha20Rng::seed_from_u64(0x51);
    let (mut tampered, mut stopped) = (0, 0);
    for sql in QUERIES.iter().chain(AGGREGATES) {
        let q = prepare(sql, &cat).unwrap();
        let mut want = plain::evaluate(&q, &tables).unwrap();
        want.sort();
        let (_, out) = mpc_malicious(&tables, &q, 7, None);
        let shares = out.map(|o| o.unwrap_or_else(|e| panic!("malicious: {sql}: {e}")));
        let mut got = common::answer_rows(&shares, &q);
        got.sort();
        assert_eq!(got, want, "malicious: {sql}");
        // Rounds of an honest run of this query.
        let rounds = {
            let per = shares_of(&tables, 7);
            kuvert_mpc::harness::run3_secure(Keys::Seeded(7), Security::Malicious, |p| {
                execute(p, &q, &per[p.id()], &mut |_, _| {})
                    .map_err(|e| MpcError::Usage(e.to_string()))?;
                p.verify_all()?;
                Ok(p.stats().rounds)
            })
            .unwrap()[0]
        };
        for _ in 0..6 {
            let party = rng.gen_range(0..3);
            let fault = if rng.gen_bool(0.5) {
                Fault::FlipBit {
                    bit: rng.gen_range(0..1 << 16),
                }
            } else {
                Fault::Substitute { seed: rng.gen() }
            };
            let peer = (party + rng.gen_range(1..3)) % 3;
            let inj = Injection::at(rng.gen_range(1..rounds), peer, fault);
            let (changed, out) = mpc_malicious(&tables, &q, 7, Some((party, inj)));
            tampered += changed as usize;
            let honest: Vec<&Result<_, MpcError>> =
                (0..3).filter(|i| *i != party).map(|i| &out[i]).collect();
            if honest.iter().any(|o| o.is_err()) {
                stopped += 1;
                continue;
            }
            // No honest party stopped: the tampering changed nothing (the
            // round sent nothing to that peer), or only bits the checks do
            // not promise to cover (the upper half of a 128-bit MAC or
            // lifted value); the answer must be the right one.
            let shares = out.map(|o| o.expect("every party finished"));
            let mut got = common::answer_rows(&shares, &q);
            got.sort();
            assert_eq!(got, want, "{sql}: a tampered run released a wrong answer");
        }
    }
    assert!(stopped * 10 >= tampered * 9, "{stopped} of {tampered}");
    eprintln!(
        "{} queries ran in malicious mode; {stopped} of {tampered} runs with a changed message \
         stopped, none released a wrong answer",
        QUERIES.len() + AGGREGATES.len()
    );
}
