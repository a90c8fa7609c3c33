//! The MPC executor against plaintext oracles: random small tables, plans
//! built by hand (independent of the SQL front end), seeded randomness.

use std::collections::{BTreeMap, BTreeSet};

use kuvert_data::share::{share_words, ShareKind};
use kuvert_data::{ColumnType, Schema};
use kuvert_mpc::harness::{run3, run3_secure, Keys};
use kuvert_mpc::{AShare, MpcError, Security};
use kuvert_sql::output::ResultShares;
use kuvert_sql::plan::{Agg, AggFunc, BinOp, Const, Expr, OrderKey, Plan, Query};
use kuvert_sql::{execute, ExecError, InputTable};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

mod common;
use common::Row;

struct T {
    name: &'static str,
    schema: &'static str,
    /// rows of single-word values
    rows: Vec<Vec<u64>>,
}

fn scan(t: &T) -> Plan {
    Plan::Scan {
        table: t.name.into(),
        schema: Schema::parse_compact(t.schema).unwrap(),
    }
}

/// Share the tables word by word for the three parties: per party, name
/// -> InputTable. A test's "contributor" may share any word, in range for
/// the column's type or not.
fn shares_of(tables: &[&T], seed: u64) -> [BTreeMap<String, InputTable>; 3] {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    // per party: name -> InputTable
    let mut per: [BTreeMap<String, InputTable>; 3] = Default::default();
    for t in tables {
        let schema = Schema::parse_compact(t.schema).unwrap();
        let ncols: usize = schema.columns().iter().map(|c| c.ty.words()).sum();
        for c in 0..ncols {
            let vals: Vec<u64> = t.rows.iter().map(|r| r[c]).collect();
            let sh = share_words(&vals, ShareKind::Arithmetic, &mut rng);
            for (i, (a, b)) in sh.into_iter().enumerate() {
                per[i]
                    .entry(t.name.to_string())
                    .or_insert_with(|| InputTable {
                        schema: schema.clone(),
                        rows: t.rows.len(),
                        columns: vec![],
                    })
                    .columns
                    .push(AShare::from_components(a, b).unwrap());
            }
        }
        if ncols == 0 || t.rows.is_empty() {
            for p in per.iter_mut() {
                p.entry(t.name.to_string()).or_insert_with(|| InputTable {
                    schema: schema.clone(),
                    rows: 0,
                    columns: (0..ncols).map(|_| AShare::zeros(0)).collect(),
                });
            }
        }
    }
    per
}

/// Share the tables, run the query on three in-process parties, and
/// reconstruct the valid rows (sorted).
fn mpc(tables: &[&T], q: &Query, seed: u64) -> Vec<Row> {
    let [a, b, c] = mpc_secure(tables, q, seed, Security::SemiHonest);
    let out = [a.unwrap(), b.unwrap(), c.unwrap()];
    let mut rows = common::answer_rows(&out, q);
    rows.sort();
    rows
}

/// Run the query in the given mode; every party's own outcome (its result
/// shares, verified in malicious mode, or its error).
fn mpc_secure(
    tables: &[&T],
    q: &Query,
    seed: u64,
    security: Security,
) -> [Result<ResultShares, MpcError>; 3] {
    let per = shares_of(tables, seed);
    run3_secure(Keys::Seeded(seed), security, |p| {
        let inputs = &per[p.id()];
        Ok(execute(p, q, inputs, &mut |_, _| {})
            .map_err(|e| match e {
                ExecError::Mpc(m) => m,
                other => MpcError::Usage(other.to_string()),
            })
            .and_then(|out| Ok(p.verified_result(out)?.into_inner())))
    })
    .unwrap()
}

fn v(x: i64) -> Option<Vec<u64>> {
    Some(vec![x as u64])
}

fn col(i: usize) -> Box<Expr> {
    Box::new(Expr::Column(i))
}

fn int(x: i64) -> Box<Expr> {
    Box::new(Expr::Const(Const::int(x)))
}

fn bin(op: BinOp, l: Box<Expr>, r: Box<Expr>) -> Expr {
    Expr::Binary {
        op,
        left: l,
        right: r,
    }
}

fn agg(func: AggFunc, arg: Option<usize>) -> Agg {
    Agg {
        func,
        arg,
        name: format!("{func:?}"),
    }
}

fn q(root: Plan) -> Query {
    Query {
        root,
        order_by: vec![],
        limit: None,
        privacy: None,
    }
}

fn small_table(name: &'static str, rows: Vec<(i64, i64)>) -> T {
    T {
        name,
        schema: "g:int,x:int",
        rows: rows
            .into_iter()
            .map(|(g, x)| vec![g as u64, x as u64])
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b75_7665_7274), .. ProptestConfig::default() })]

    /// WHERE x < c (exact, negative values) with global COUNT, SUM, MIN, MAX.
    #[test]
    fn filter_and_global_aggregates(rows in prop::collection::vec((0i64..4, -50i64..50), 0..24), c in -20i64..20, seed in any::<u64>()) {
        let t = small_table("t", rows.clone());
        let plan = Plan::Aggregate {
            input: Box::new(Plan::Filter { input: Box::new(scan(&t)), predicate: bin(BinOp::Lt, col(1), int(c)) }),
            group_by: vec![],
            aggs: vec![agg(AggFunc::Count, None), agg(AggFunc::Sum, Some(1)), agg(AggFunc::Min, Some(1)), agg(AggFunc::Max, Some(1)), agg(AggFunc::CountDistinct, Some(0))],
        };
        let got = mpc(&[&t], &q(plan), seed);
        let xs: Vec<i64> = rows.iter().filter(|r| r.1 < c).map(|r| r.1).collect();
        let gs: BTreeSet<i64> = rows.iter().filter(|r| r.1 < c).map(|r| r.0).collect();
        let opt = |o: Option<i64>| o.map(|x| vec![x as u64]);
        let want = vec![vec![v(xs.len() as i64), if xs.is_empty() { None } else { v(xs.iter().sum()) }, opt(xs.iter().copied().min()), opt(xs.iter().copied().max()), v(gs.len() as i64)]];
        prop_assert_eq!(got, want);
    }

    /// GROUP BY g with COUNT, SUM, MIN, MAX, COUNT(DISTINCT), then HAVING.
    #[test]
    fn group_by(rows in prop::collection::vec((0i64..5, -9i64..9), 0..30), seed in any::<u64>()) {
        let t = small_table("t", rows.clone());
        let a = Plan::Aggregate {
            input: Box::new(Plan::Filter { input: Box::new(scan(&t)), predicate: bin(BinOp::Ne, col(1), int(0)) }),
            group_by: vec![0],
            aggs: vec![agg(AggFunc::Count, None), agg(AggFunc::Sum, Some(1)), agg(AggFunc::Min, Some(1)), agg(AggFunc::Max, Some(1)), agg(AggFunc::CountDistinct, Some(1))],
        };
        let plan = Plan::Filter { input: Box::new(a), predicate: bin(BinOp::Ge, col(1), int(2)) };
        let got = mpc(&[&t], &q(plan), seed);
        let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (g, x) in &rows { if *x != 0 { groups.entry(*g).or_default().push(*x); } }
        let mut want: Vec<Row> = groups.iter().filter(|(_, xs)| xs.len() >= 2).map(|(g, xs)| {
            let d: BTreeSet<i64> = xs.iter().copied().collect();
            vec![v(*g), v(xs.len() as i64), v(xs.iter().sum()), v(*xs.iter().min().unwrap()), v(*xs.iter().max().unwrap()), v(d.len() as i64)]
        }).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }

    /// IN (SELECT ...) and NOT IN over identity-number-like keys with duplicates.
    #[test]
    fn semi_and_anti_join(a in prop::collection::vec((0u64..12, 0i64..100), 0..20), b in prop::collection::vec(0u64..12, 0..20), anti in any::<bool>(), seed in any::<u64>()) {
        let ta = T { name: "a", schema: "pnr:idnr,x:int", rows: a.iter().map(|(k, x)| vec![190001010000 + k, *x as u64]).collect() };
        let tb = T { name: "b", schema: "pnr:idnr", rows: b.iter().map(|k| vec![190001010000 + k]).collect() };
        let plan = Plan::SemiJoin { probe: Box::new(scan(&ta)), build: Box::new(scan(&tb)), on: vec![(0, 0)], residual: None, anti };
        let got = mpc(&[&ta, &tb], &q(plan), seed);
        let bs: BTreeSet<u64> = b.iter().copied().collect();
        let mut want: Vec<Row> = a.iter().filter(|(k, _)| bs.contains(k) != anti).map(|(k, x)| vec![Some(vec![190001010000 + k]), v(*x)]).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }

    /// EXISTS with key equality and interval overlap, several periods per key on both sides.
    #[test]
    fn interval_semi_join(a in prop::collection::vec((0u64..5, -30i64..30, 0i64..10), 0..16), b in prop::collection::vec((0u64..5, -30i64..30, 0i64..10), 0..16), strict in any::<bool>(), seed in any::<u64>()) {
        // periods [from, from + len]; some with from > to (len drawn from -3..)
        let mk = |r: &(u64, i64, i64)| vec![190001010000 + r.0, r.1 as u64, (r.1 + r.2 - 3) as u64];
        let ta = T { name: "fk", schema: "pnr:idnr,fran:date,till:date", rows: a.iter().map(mk).collect() };
        let tb = T { name: "ek", schema: "pnr:idnr,fran:date,till:date", rows: b.iter().map(mk).collect() };
        // probe cols 0..3, build cols 3..6: e.fran <= f.till AND f.fran <= e.till  (or strict <)
        let op = if strict { BinOp::Lt } else { BinOp::Le };
        let residual = Expr::Binary { op: BinOp::And, left: Box::new(bin(op, col(4), col(2))), right: Box::new(bin(op, col(1), col(5))) };
        let plan = Plan::SemiJoin { probe: Box::new(scan(&ta)), build: Box::new(scan(&tb)), on: vec![(0, 0)], residual: Some(residual), anti: false };
        let got = mpc(&[&ta, &tb], &q(plan), seed);
        let cmp = |x: i64, y: i64| if strict { x < y } else { x <= y };
        let mut want: Vec<Row> = ta.rows.iter().filter(|f| tb.rows.iter().any(|e| e[0] == f[0] && cmp(e[1] as i64, f[2] as i64) && cmp(f[1] as i64, e[2] as i64)))
            .map(|f| f.iter().map(|w| Some(vec![*w])).collect()).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }

    /// JOIN with a grouped (unique) right side, then GROUP BY on the left's column.
    #[test]
    fn join_unique_side_then_group(m in prop::collection::vec((0u64..8, 0i64..3), 0..16), inc in prop::collection::vec((0u64..8, 0i64..100), 0..16), seed in any::<u64>()) {
        let tm = T { name: "m", schema: "pnr:idnr,h:int", rows: m.iter().map(|(k, h)| vec![190001010000 + k, *h as u64]).collect() };
        let ti = T { name: "i", schema: "pnr:idnr,x:int", rows: inc.iter().map(|(k, x)| vec![190001010000 + k, *x as u64]).collect() };
        let per_person = Plan::Aggregate { input: Box::new(scan(&ti)), group_by: vec![0], aggs: vec![agg(AggFunc::Sum, Some(1))] };
        let j = Plan::Join { left: Box::new(scan(&tm)), right: Box::new(per_person), on: vec![(0, 0)], residual: None };
        // output: pnr, h, pnr, sum -> group by h: count, sum(sum)
        let plan = Plan::Aggregate { input: Box::new(j), group_by: vec![1], aggs: vec![agg(AggFunc::Count, None), agg(AggFunc::Sum, Some(3))] };
        let got = mpc(&[&tm, &ti], &q(plan), seed);
        let mut sums: BTreeMap<u64, i64> = BTreeMap::new();
        for (k, x) in &inc { *sums.entry(*k).or_default() += x; }
        let mut g: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (k, h) in &m { if let Some(s) = sums.get(k) { let e = g.entry(*h).or_default(); e.0 += 1; e.1 += s; } }
        let want: Vec<Row> = g.iter().map(|(h, (c, s))| vec![v(*h), v(*c), v(*s)]).collect();
        prop_assert_eq!(got, want);
    }

    /// Many-to-many JOIN (nested loop) with a residual, and UNION ALL.
    #[test]
    fn nested_loop_join_and_union(a in prop::collection::vec((0i64..4, 0i64..10), 0..8), b in prop::collection::vec((0i64..4, 0i64..10), 0..8), seed in any::<u64>()) {
        let ta = small_table("a", a.clone());
        let tb = small_table("b", b.clone());
        let u = Plan::UnionAll { inputs: vec![scan(&ta), scan(&tb)] };
        let j = Plan::Join { left: Box::new(scan(&ta)), right: Box::new(u), on: vec![(0, 0)], residual: Some(bin(BinOp::Lt, col(1), col(3))) };
        let plan = Plan::Project { input: Box::new(j), exprs: vec![(Expr::Column(0), "g".into()), (bin(BinOp::Mul, col(1), col(3)), "p".into())] };
        let got = mpc(&[&ta, &tb], &q(plan), seed);
        let all: Vec<(i64, i64)> = a.iter().chain(b.iter()).copied().collect();
        let mut want: Vec<Row> = vec![];
        for (g, x) in &a { for (g2, y) in &all { if g == g2 && x < y { want.push(vec![v(*g), v(x * y)]); } } }
        want.sort();
        prop_assert_eq!(got, want);
    }

    /// ORDER BY x DESC LIMIT k under MPC; CASE WHEN and IN lists in a projection.
    #[test]
    fn order_limit_case_inlist(rows in prop::collection::vec((0i64..6, -20i64..20), 0..20), k in 0u64..6, seed in any::<u64>()) {
        let t = small_table("t", rows.clone());
        let case = Expr::Case { whens: vec![(bin(BinOp::Gt, col(1), int(5)), Expr::Const(Const::int(1))), (Expr::InList { expr: col(0), list: vec![Const::int(1), Const::int(3), Const::int(1)], negated: false }, Expr::Const(Const::int(2)))], otherwise: int(0) };
        let plan = Plan::Project { input: Box::new(scan(&t)), exprs: vec![(Expr::Column(1), "x".into()), (case, "c".into())] };
        let mut query = q(plan);
        query.order_by = vec![OrderKey { column: 0, desc: true }];
        query.limit = Some(k);
        let got = mpc(&[&t], &query, seed);
        let mut all: Vec<(i64, i64)> = rows.iter().map(|(g, x)| (*x, if *x > 5 { 1 } else if *g == 1 || *g == 3 { 2 } else { 0 })).collect();
        // x desc, then all columns ascending
        all.sort_by(|p, q| q.0.cmp(&p.0).then(p.1.cmp(&q.1)));
        let mut want: Vec<Row> = all.into_iter().take(k as usize).map(|(x, c)| vec![v(x), v(c)]).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn text_keys_group_and_equality() {
    // text as 4 big-endian words
    let text = |s: &str| {
        let mut b = [0u8; 32];
        b[..s.len()].copy_from_slice(s.as_bytes());
        (0..4)
            .map(|i| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().unwrap()))
            .collect::<Vec<u64>>()
    };
    let names = ["sjp", "aks", "sjp", "föräldrapenning", "aks", "sjp"];
    let rows: Vec<Vec<u64>> = names
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut r = text(s);
            r.push(i as u64);
            r
        })
        .collect();
    // rows carry 5 planes: text (4 words) then x
    let t = T {
        name: "t",
        schema: "f:text,x:int",
        rows,
    };
    let plan = Plan::Aggregate {
        input: Box::new(Plan::Filter {
            input: Box::new(scan(&t)),
            predicate: bin(
                BinOp::Ne,
                col(0),
                Box::new(Expr::Const(kuvert_sql::plan::Const {
                    ty: ColumnType::Text,
                    words: text("aks"),
                })),
            ),
        }),
        group_by: vec![0],
        aggs: vec![agg(AggFunc::Sum, Some(1))],
    };
    let got = mpc(&[&t], &q(plan), 7);
    let mut want = vec![
        vec![Some(text("sjp")), v(7)],
        vec![Some(text("föräldrapenning")), v(3)],
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn explain_names_strategy_cost_and_leakage() {
    let fk = T {
        name: "fk",
        schema: "pnr:idnr,fran:date,till:date",
        rows: vec![],
    };
    let ek = T {
        name: "ek",
        schema: "pnr:idnr,fran:date,till:date",
        rows: vec![],
    };
    let residual = Expr::Binary {
        op: BinOp::And,
        left: Box::new(bin(BinOp::Le, col(4), col(2))),
        right: Box::new(bin(BinOp::Le, col(1), col(5))),
    };
    let plan = Plan::SemiJoin {
        probe: Box::new(scan(&fk)),
        build: Box::new(scan(&ek)),
        on: vec![(0, 0)],
        residual: Some(residual),
        anti: false,
    };
    let sizes: BTreeMap<String, usize> = [("fk".to_string(), 1000), ("ek".to_string(), 500)].into();
    let text = kuvert_sql::explain::explain(&q(plan), &sizes);
    assert!(
        text.contains("Semi-join (sort-based, interval overlap by prefix maximum)  -> 1500 rows"),
        "{text}"
    );
    assert!(
        text.contains("Nodes learn: the number of rows of each input table"),
        "{text}"
    );
    assert!(text.contains("TOTAL (estimate)"), "{text}");
    // a many-to-many join over the nested-loop limit is flagged before running
    let a = small_table("a", vec![]);
    let j = Plan::Join {
        left: Box::new(scan(&a)),
        right: Box::new(scan(&a)),
        on: vec![(0, 0)],
        residual: None,
    };
    let sizes: BTreeMap<String, usize> = [("a".to_string(), 100_000)].into();
    let text = kuvert_sql::explain::explain(&q(j), &sizes);
    assert!(
        text.contains("WARNING") && text.contains("nested loop"),
        "{text}"
    );
}

/// The only data-dependent thing a node sees is the outcome of sort
/// comparisons, and those describe a uniformly random permutation whatever
/// the keys are (they are distinct thanks to the row index, and shuffled).
/// So the transcript's shape — the number of rounds, which follows the
/// quicksort's random depth — must have the same distribution for keys
/// that are all equal, all distinct ascending, and all distinct descending
/// (the worst case for a quicksort that was not shuffled: depth n).
#[test]
fn sort_transcript_shape_does_not_depend_on_the_data() {
    // one pivot per segment
    transcript_shape(24, 150);
}

#[test]
fn sample_sort_transcript_shape_does_not_depend_on_the_data() {
    // three pivots per segment at the top level (binary search over them)
    transcript_shape(200, 60);
}

fn transcript_shape(n: usize, runs: u64) {
    let inputs: [Vec<i64>; 3] = [
        vec![5; n],
        (0..n as i64).collect(),
        (0..n as i64).rev().collect(),
    ];
    let mut dists: Vec<Vec<u64>> = Vec::new();
    for keys in &inputs {
        let t = small_table("t", keys.iter().map(|&k| (k, 1)).collect());
        let plan = Plan::Aggregate {
            input: Box::new(scan(&t)),
            group_by: vec![0],
            aggs: vec![agg(AggFunc::Count, None)],
        };
        let query = q(plan);
        let mut rounds = Vec::new();
        for seed in 0..runs {
            let mut per: [BTreeMap<String, InputTable>; 3] = Default::default();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let schema = Schema::parse_compact(t.schema).unwrap();
            let mut cols: [Vec<AShare>; 3] = Default::default();
            for c in 0..2 {
                let vals: Vec<u64> = t.rows.iter().map(|r| r[c]).collect();
                for (i, (a, b)) in share_words(&vals, ShareKind::Arithmetic, &mut rng)
                    .into_iter()
                    .enumerate()
                {
                    cols[i].push(AShare::from_components(a, b).unwrap());
                }
            }
            for (i, c) in cols.into_iter().enumerate() {
                per[i].insert(
                    "t".into(),
                    InputTable {
                        schema: schema.clone(),
                        rows: n,
                        columns: c,
                    },
                );
            }
            let out = run3(Keys::Seeded(seed + 1000), |p| {
                execute(p, &query, &per[p.id()], &mut |_, _| {})
                    .map_err(|e| MpcError::Usage(e.to_string()))?;
                Ok(p.stats().rounds)
            })
            .unwrap();
            rounds.push(out[0]);
        }
        dists.push(rounds);
    }
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
    let sd = |v: &[u64]| {
        let m = mean(v);
        (v.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let (m0, s0) = (mean(&dists[0]), sd(&dists[0]));
    assert!(
        s0 > 0.0,
        "the depth of the sort must vary with the secret shuffle"
    );
    for d in &dists[1..] {
        let (m, s) = (mean(d), sd(d));
        let se = ((s0 * s0 + s * s) / runs as f64).sqrt();
        // 4.5 standard errors: a false alarm about once in 150,000 runs
        assert!(
            (m - m0).abs() < 4.5 * se,
            "rounds depend on the data: mean {m0:.1} vs {m:.1} (se {se:.2})"
        );
        // an unshuffled quicksort on sorted keys would need ~n levels
        assert!(
            d.iter().all(|&r| (r as f64) < m0 + 12.0 * s0.max(1.0)),
            "a run was far deeper than the all-equal input's"
        );
    }
}

/// `SELECT COUNT(*), MIN(fran), MAX(pnr) FROM b WHERE flag` over rows
/// `(pnr:idnr, fran:date, flag:bool)`, given as raw words.
fn flagged(rows: Vec<[u64; 3]>) -> (T, Query) {
    let t = T {
        name: "b",
        schema: "pnr:idnr,fran:date,flag:bool",
        rows: rows.into_iter().map(|r| r.to_vec()).collect(),
    };
    let plan = Plan::Aggregate {
        input: Box::new(Plan::Filter {
            input: Box::new(scan(&t)),
            predicate: Expr::Column(2),
        }),
        group_by: vec![],
        aggs: vec![
            agg(AggFunc::Count, None),
            agg(AggFunc::Min, Some(1)),
            agg(AggFunc::Max, Some(0)),
        ],
    };
    (t, q(plan))
}

/// A contributor running a modified client can share any word. In
/// malicious mode every node range-checks the bounded columns (idnr, date,
/// bool) under MPC before using them; values at the edges of each range
/// pass, values one step outside stop the query at every node with check
/// "input-range" naming the table, column and row, and nothing is
/// released. In semi-honest mode the same upload silently counts one row a
/// thousand times (so the check is what stops it).
#[test]
fn malicious_mode_range_checks_every_bounded_input_column() {
    const FIRST_DAY: i64 = -719_162; // 0001-01-01
    const LAST_DAY: i64 = 2_932_896; // 9999-12-31
    let honest = |flag: u64| -> Vec<[u64; 3]> {
        vec![
            [0, FIRST_DAY as u64, 1],
            [999_999_999_999, LAST_DAY as u64, 1],
            [190_001_010_000, 0, 0],
            [190_001_010_001, 19_000, flag],
            [195_012_310_000, 1, 1],
        ]
    };
    // The edges of every range pass, and the answer is the plaintext one.
    let (t, query) = flagged(honest(1));
    let outs = mpc_secure(&[&t], &query, 1, Security::Malicious);
    let out: Vec<ResultShares> = outs.into_iter().map(|r| r.unwrap()).collect();
    let rows = common::answer_rows(&out.try_into().unwrap(), &query);
    assert_eq!(rows, vec![vec![v(4), v(FIRST_DAY), v(999_999_999_999)]]);

    let out_of_range: [(usize, &str, u64); 7] = [
        (0, "pnr", 1 << 40),
        (0, "pnr", u64::MAX),
        (1, "fran", (LAST_DAY + 1_261_298) as u64), // 2^22 - offset
        (1, "fran", (FIRST_DAY - 1) as u64),
        (2, "flag", 2),
        (2, "flag", u64::MAX),
        (2, "flag", 1000),
    ];
    for (col, name, bad) in out_of_range {
        let mut rows = honest(1);
        rows[3][col] = bad;
        let (t, query) = flagged(rows);
        for (party, out) in mpc_secure(&[&t], &query, 2, Security::Malicious)
            .into_iter()
            .enumerate()
        {
            match out {
                Err(MpcError::Check { check, detail }) => {
                    assert_eq!(check, "input-range", "{name} = {bad:#x}");
                    for want in [
                        "table \"b\"",
                        &format!("column \"{name}\""),
                        "1 of 5 rows",
                        "first: row 4",
                    ] {
                        assert!(detail.contains(want), "party {party}: {detail}");
                    }
                }
                other => panic!(
                    "party {party}, {name} = {bad:#x}: expected the range check to stop the \
                     query, got {:?}",
                    other.map(|_| "result shares")
                ),
            }
        }
    }

    // Without the check (semi-honest mode trusts the clients) one row with
    // flag 1000 counts as a thousand rows, and the MIN over the other,
    // honest rows' dates comes out as a value no row holds.
    let (t, query) = flagged(honest(1000));
    let got = mpc(&[&t], &query, 3);
    assert_eq!(got[0][0], v(1003));
    let min = got[0][1].as_ref().expect("a MIN")[0];
    assert!(
        honest(1).iter().all(|r| r[1] != min),
        "MIN {min:#x} is a row's date"
    );
}
