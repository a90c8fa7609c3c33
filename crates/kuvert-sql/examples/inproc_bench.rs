//! In-process timing of one query at size n (three threads, no network):
//! `cargo run --release -p kuvert-sql --example inproc_bench -- psi 1000000`.
use std::collections::BTreeMap;
use std::time::Instant;

use kuvert_data::share::{share_words, ShareKind};
use kuvert_data::Schema;
use kuvert_mpc::harness::{run3, Keys};
use kuvert_mpc::{AShare, MpcError};
use kuvert_sql::{execute, prepare, Catalog, InputTable};
use rand::{Rng, SeedableRng};

/// (name, compact schema, columns)
type Tables<'a> = Vec<(&'a str, &'a str, Vec<Vec<u64>>)>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("psi");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let (sql, tables): (&str, Tables) = match what {
        "psi" => (
            "SELECT a.pnr FROM a WHERE a.pnr IN (SELECT pnr FROM b)",
            vec![
                ("a", "pnr:idnr", vec![(0..n as u64).map(|i| 190001010000 + 2 * i).collect()]),
                ("b", "pnr:idnr", vec![(0..n as u64).map(|i| 190001010000 + 2 * i + (i % 2)).collect()]),
            ],
        ),
        "sort" => (
            "SELECT k FROM t ORDER BY k LIMIT 10",
            vec![("t", "k:int", vec![(0..n).map(|_| rng.gen::<u64>()).collect()])],
        ),
        "join" => (
            "SELECT a.g, SUM(b.x) AS s FROM a JOIN (SELECT pnr, SUM(x) AS x FROM b GROUP BY pnr) b ON a.pnr = b.pnr GROUP BY a.g",
            vec![
                ("a", "pnr:idnr,g:int", vec![(0..n as u64).map(|i| 190001010000 + i).collect(), (0..n).map(|_| rng.gen_range(0..21u64)).collect()]),
                ("b", "pnr:idnr,x:int", vec![(0..n as u64).map(|_| 190001010000 + rng.gen_range(0..n as u64)).collect(), (0..n).map(|_| rng.gen_range(0..1000u64)).collect()]),
            ],
        ),
        "overlap" => (
            "SELECT COUNT(DISTINCT f.pnr) AS personer, SUM(f.belopp) AS fk_belopp FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till)",
            {
                let mk = |rng: &mut rand_chacha::ChaCha20Rng| {
                    let p: Vec<u64> = (0..n).map(|_| 190001010000 + rng.gen_range(0..(n as u64 / 2).max(1))).collect();
                    let f: Vec<u64> = (0..n).map(|_| rng.gen_range(19000..19700u64)).collect();
                    let t: Vec<u64> = f.iter().map(|x| x + rng.gen_range(0..60u64)).collect();
                    let b: Vec<u64> = (0..n).map(|_| rng.gen_range(0..10000u64)).collect();
                    (p, f, t, b)
                };
                let (p, f, t, b) = mk(&mut rng);
                let (p2, f2, t2, b2) = mk(&mut rng);
                vec![("fk", "pnr:idnr,fran:date,till:date,belopp:int", vec![p, f, t, b]), ("ek", "pnr:idnr,fran:date,till:date,belopp:int", vec![p2, f2, t2, b2])]
            },
        ),
        // WITH PRIVACY: global, and a histogram over 8 declared groups (keys
        // 1..=10 in the data, 9 and 10 undeclared); n/2 persons, 2 rows each
        "dp" | "dp8" | "group8" => {
            let sql = match what {
                "dp" => "SELECT COUNT(*) AS n, SUM(belopp) AS s FROM t \
                         WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr, max_rows = 2, lo = 0, hi = 10000)",
                "dp8" => "SELECT kommun, COUNT(*) AS n, SUM(belopp) AS s FROM t GROUP BY kommun \
                          WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr, max_rows = 2, lo = 0, hi = 10000, \
                          groups = (1, 2, 3, 4, 5, 6, 7, 8))",
                _ => "SELECT kommun, COUNT(*) AS n, SUM(belopp) AS s FROM t GROUP BY kommun",
            };
            let half = (n as u64 / 2).max(1);
            (
                sql,
                vec![(
                    "t",
                    "pnr:idnr,kommun:int,belopp:int",
                    vec![
                        (0..n as u64).map(|i| 190001010000 + i % half).collect(),
                        (0..n).map(|_| rng.gen_range(1..=10u64)).collect(),
                        (0..n).map(|_| rng.gen_range(0..12000u64)).collect(),
                    ],
                )],
            )
        }
        _ => panic!("psi|sort|join|overlap|dp|dp8|group8"),
    };
    let mut cat = Catalog::new();
    let mut per: [BTreeMap<String, InputTable>; 3] = Default::default();
    for (name, schema, cols) in &tables {
        let schema = Schema::parse_compact(schema).unwrap();
        cat.add(name, schema.clone());
        let mut sh: [Vec<AShare>; 3] = Default::default();
        for c in cols {
            for (i, (a, b)) in share_words(c, ShareKind::Arithmetic, &mut rand::rngs::OsRng)
                .into_iter()
                .enumerate()
            {
                sh[i].push(AShare::from_components(a, b).unwrap());
            }
        }
        for (i, c) in sh.into_iter().enumerate() {
            per[i].insert(
                name.to_string(),
                InputTable {
                    schema: schema.clone(),
                    rows: cols[0].len(),
                    columns: c,
                },
            );
        }
    }
    let q = prepare(sql, &cat).unwrap();
    let t = Instant::now();
    let out = run3(Keys::Os, |p| {
        let r = execute(p, &q, &per[p.id()], &mut |_, _| {})
            .map_err(|e| MpcError::Usage(e.to_string()))?;
        Ok((r.rows, p.stats()))
    })
    .unwrap();
    let el = t.elapsed().as_secs_f64();
    if let Some(pv) = &q.privacy {
        // the exact noise draws alone: each node draws one per output cell
        let sens = kuvert_sql::privacy::sensitivities(&q, pv);
        let mus =
            kuvert_dp::accounting::skellam_variances_for(pv.epsilon, pv.delta, &sens).unwrap();
        let mut rng = kuvert_dp::secure_rng().unwrap();
        for (j, mu) in mus.iter().enumerate() {
            let t = Instant::now();
            let draws = 5;
            for _ in 0..draws {
                kuvert_dp::distributed::DistributedSkellam::KUVERT
                    .sample_node_noise(&mut rng, *mu)
                    .unwrap();
            }
            println!(
                "  output {j}: central Skellam std {:.1}, released std {:.1} (x{:.4}), one node's draw (variance {:.3e}) {:.1} ms",
                mu.sqrt(),
                (1.5 * mu).sqrt(),
                1.5f64.sqrt(),
                mu / 2.0,
                t.elapsed().as_secs_f64() * 1e3 / draws as f64
            );
        }
    }
    let s = &out[0].1;
    println!(
        "{what} n={n}: {el:.2} s, rounds {}, bytes sent by party 0 {:.1} MB, output rows {}",
        s.rounds,
        s.bytes_sent as f64 / 1e6,
        out[0].0
    );
}
