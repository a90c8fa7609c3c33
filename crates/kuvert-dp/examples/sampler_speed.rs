//! Time per exact draw of each sampler at several scales, and the noise
//! overhead of distributed Skellam noise. Run with
//! `cargo run --release -p kuvert-dp --example sampler_speed`.

use std::time::Instant;

use kuvert_dp::distributed::DistributedSkellam;
use kuvert_dp::release::{execute, plan, MechanismChoice, ReleaseSpec};
use kuvert_dp::sample::{discrete_gaussian, discrete_laplace, skellam, Rational};
use kuvert_dp::table::{ColumnType, Schema, Table, Value};

fn time(label: &str, n: usize, mut f: impl FnMut() -> i128) {
    let t = Instant::now();
    let mut acc = 0i128;
    for _ in 0..n {
        acc = acc.wrapping_add(f());
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{label:<40} {us:>12.2} µs/draw   (checksum {})", acc % 7);
}

fn main() {
    let mut rng = kuvert_dp::secure_rng().expect("OS randomness");
    for scale in [1.0f64, 100.0, 1.0e6, 1.0e12] {
        let r = Rational::from_f64(scale).unwrap();
        time(
            &format!("discrete Laplace, scale {scale:e}"),
            20_000,
            || discrete_laplace(&mut rng, &r).unwrap(),
        );
    }
    for sigma in [1.0f64, 100.0, 1.0e6, 1.0e12] {
        let r = Rational::from_f64(sigma * sigma).unwrap();
        time(&format!("discrete Gaussian, σ {sigma:e}"), 20_000, || {
            discrete_gaussian(&mut rng, &r).unwrap()
        });
    }
    for var in [10.0f64, 1.0e3, 1.0e5, 1.0e7, 1.0e9, 1.0e11] {
        let r = Rational::from_f64(var).unwrap();
        let n = if var > 1e8 { 200 } else { 5_000 };
        time(&format!("Skellam, variance {var:e}"), n, || {
            skellam(&mut rng, &r).unwrap()
        });
    }
    println!();
    for rows in [10_000usize, 1_000_000] {
        let table = Table {
            schema: Schema {
                columns: vec![
                    ("pid".into(), ColumnType::Integer),
                    ("amount".into(), ColumnType::Integer),
                    ("region".into(), ColumnType::Text),
                ],
            },
            rows: (0..rows)
                .map(|i| {
                    vec![
                        Value::Int((i / 3) as i64),
                        Value::Int((i * 7919 % 20_000) as i64),
                        Value::Text(["north", "south", "east", "west"][i % 4].into()),
                    ]
                })
                .collect(),
        };
        let cases: [(&str, &str, f64, bool); 3] = [
            ("count, Laplace", "SELECT COUNT(*) AS n FROM t", 0.0, false),
            (
                "histogram 4 keys + sum, Gaussian",
                "SELECT region, COUNT(*) AS n, SUM(amount) AS s FROM t GROUP BY region",
                1e-6,
                false,
            ),
            (
                "same, K=2 rows per person",
                "SELECT region, COUNT(*) AS n, SUM(amount) AS s FROM t GROUP BY region",
                1e-6,
                true,
            ),
        ];
        for (label, sql, delta, cap) in cases {
            let mut bounds = std::collections::BTreeMap::new();
            bounds.insert("amount".to_string(), (0i64, 20_000i64));
            let spec = ReleaseSpec {
                table_name: "t".into(),
                sql: sql.into(),
                epsilon: 1.0,
                delta,
                mechanism: MechanismChoice::Auto,
                bounds,
                person_column: cap.then(|| "pid".to_string()),
                max_rows_per_person: if cap { 2 } else { 1 },
                keys: Some((
                    "region".into(),
                    vec!["north".into(), "south".into(), "east".into(), "west".into()],
                ))
                .filter(|_| sql.contains("GROUP BY")),
            };
            let reps = if rows > 100_000 { 3 } else { 50 };
            let t = Instant::now();
            for _ in 0..reps {
                let p = plan(&spec, &table.schema).unwrap();
                execute(&p, &table, &mut rng).unwrap();
            }
            let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
            println!("release on {rows:>9} rows in memory: {label:<36} {ms:>9.2} ms/release");
        }
    }
    println!();
    println!("distributed Skellam (3 nodes, any 2 honest) vs central noise, sensitivity 1:");
    println!(
        "{:>8} {:>8} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "ε", "δ", "var central SK", "var released", "var central DG", "×std SK", "×std DG"
    );
    let d = DistributedSkellam::KUVERT;
    for eps in [0.1f64, 0.5, 1.0, 2.0, 5.0] {
        for delta in [1e-6f64, 1e-9] {
            let r = d
                .overhead_vs_central_gaussian(eps, delta, 1.0, 1.0)
                .unwrap();
            println!(
                "{eps:>8} {delta:>8.0e} {:>14.3} {:>14.3} {:>14.3} {:>10.4} {:>10.4}",
                r.central_skellam_variance,
                r.released_variance,
                r.central_gaussian_variance,
                r.std_overhead_vs_central_skellam,
                r.std_overhead_vs_central_gaussian
            );
        }
    }
}
