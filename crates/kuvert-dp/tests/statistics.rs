//! Statistical tests of the samplers and of whole releases: thousands of
//! draws from seeded ChaCha20, compared with the exact distribution by a
//! Kolmogorov–Smirnov test and by variance bounds. Each check is also run on
//! samples of a deliberately wrong scale (±15 %) and must reject them, so the
//! tests can fail in both directions: too little noise and too much.
//!
//! False-failure rate: the KS threshold is the asymptotic critical value at
//! α = 1e-6 (conservative for discrete laws); the variance window ±10 % is
//! more than 6 standard errors of the sample variance at n = 20 000 for
//! every law here (kurtosis ≤ 6).

use std::collections::BTreeMap;

use kuvert_dp::distributed::DistributedSkellam;
use kuvert_dp::release::{execute, plan, MechanismChoice, ReleaseSpec};
use kuvert_dp::sample::{discrete_gaussian, discrete_laplace, poisson, skellam, Rational};
use kuvert_dp::table::{ColumnType, Schema, Table, Value};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const N: usize = 20_000;
const KS_C: f64 = 2.694; // sqrt(ln(2/1e-6)/2)

/// An exact (to f64) pmf on [-w, w], normalised.
struct Law {
    w: i64,
    pmf: Vec<f64>,
}

impl Law {
    fn from_weights(w: i64, f: impl Fn(i64) -> f64) -> Law {
        let mut pmf: Vec<f64> = (-w..=w).map(&f).collect();
        let total: f64 = pmf.iter().sum();
        pmf.iter_mut().for_each(|p| *p /= total);
        Law { w, pmf }
    }
    fn cdf(&self, x: i64) -> f64 {
        if x < -self.w {
            return 0.0;
        }
        let hi = (x.min(self.w) + self.w) as usize;
        self.pmf[..=hi].iter().sum()
    }
    fn variance(&self) -> f64 {
        let mean: f64 = self
            .pmf
            .iter()
            .enumerate()
            .map(|(i, p)| (i as i64 - self.w) as f64 * p)
            .sum();
        self.pmf
            .iter()
            .enumerate()
            .map(|(i, p)| ((i as i64 - self.w) as f64 - mean).powi(2) * p)
            .sum()
    }
}

fn laplace_law(scale: f64) -> Law {
    Law::from_weights((scale * 60.0 + 20.0) as i64, |k| {
        (-(k.abs() as f64) / scale).exp()
    })
}

fn gaussian_law(sigma2: f64) -> Law {
    Law::from_weights((sigma2.sqrt() * 14.0 + 20.0) as i64, |k| {
        (-((k * k) as f64) / (2.0 * sigma2)).exp()
    })
}

fn skellam_law(variance: f64) -> Law {
    let lam = variance / 2.0;
    let n = (lam + 14.0 * lam.sqrt() + 30.0) as usize;
    let lnf: Vec<f64> = (0..n)
        .scan(0.0, |acc, k| {
            if k > 0 {
                *acc += (k as f64).ln();
            }
            Some(*acc)
        })
        .collect();
    let pois: Vec<f64> = (0..n)
        .map(|k| (k as f64 * lam.ln() - lam - lnf[k]).exp())
        .collect();
    let w = n as i64 - 1;
    Law::from_weights(w, |d| {
        let d = d.unsigned_abs() as usize;
        (0..n - d).map(|y| pois[y + d] * pois[y]).sum()
    })
}

/// Poisson(λ) as a law on [0, w] (pmf in log space).
fn poisson_law(lam: f64) -> Law {
    let hi = (lam + 14.0 * lam.sqrt() + 30.0) as i64;
    // Law is symmetric-indexed on [-w, w]; put zero mass on negatives.
    let mut lnf = vec![0.0f64; hi as usize + 1];
    for k in 1..=hi as usize {
        lnf[k] = lnf[k - 1] + (k as f64).ln();
    }
    Law::from_weights(hi, |k| {
        if k < 0 {
            0.0
        } else {
            (k as f64 * lam.ln() - lam - lnf[k as usize]).exp()
        }
    })
}

/// KS distance and variance check; `Err` says which failed.
fn check(samples: &[i128], law: &Law) -> Result<(), String> {
    let n = samples.len() as f64;
    let mut counts: BTreeMap<i128, usize> = BTreeMap::new();
    for &s in samples {
        *counts.entry(s).or_default() += 1;
    }
    let lo = *counts.keys().next().unwrap() as i64 - 1;
    let hi = *counts.keys().last().unwrap() as i64;
    let mut d: f64 = 0.0;
    let mut cum = 0usize;
    for x in lo..=hi {
        cum += counts.get(&(x as i128)).copied().unwrap_or(0);
        d = d.max((cum as f64 / n - law.cdf(x)).abs());
    }
    let crit = KS_C / n.sqrt();
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / n;
    let var = samples
        .iter()
        .map(|&s| (s as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    let want = law.variance();
    let mut problems = Vec::new();
    if d > crit {
        problems.push(format!("KS distance {d:.5} > critical {crit:.5}"));
    }
    if !(0.9 * want..=1.1 * want).contains(&var) {
        problems.push(format!("variance {var:.4} outside [0.9, 1.1] × {want:.4}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn draws(seed: u64, mut f: impl FnMut(&mut ChaCha20Rng) -> i128) -> Vec<i128> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..N).map(|_| f(&mut rng)).collect()
}

#[test]
fn discrete_laplace_has_declared_law_and_rejects_wrong_scale() {
    for (i, &scale) in [0.7f64, 3.0, 10.7].iter().enumerate() {
        let law = laplace_law(scale);
        let r = Rational::from_f64(scale).unwrap();
        let s = draws(100 + i as u64, |rng| discrete_laplace(rng, &r).unwrap());
        check(&s, &law).unwrap_or_else(|e| panic!("scale {scale}: {e}"));
        for wrong in [0.85, 1.15] {
            let rw = Rational::from_f64(scale * wrong).unwrap();
            let s = draws(200 + i as u64, |rng| discrete_laplace(rng, &rw).unwrap());
            assert!(
                check(&s, &law).is_err(),
                "scale {scale}×{wrong} was accepted"
            );
        }
    }
}

#[test]
fn discrete_gaussian_has_declared_law_and_rejects_wrong_scale() {
    for (i, &sigma2) in [0.8f64, 30.25, 2500.0].iter().enumerate() {
        let law = gaussian_law(sigma2);
        let r = Rational::from_f64(sigma2).unwrap();
        let s = draws(300 + i as u64, |rng| discrete_gaussian(rng, &r).unwrap());
        check(&s, &law).unwrap_or_else(|e| panic!("σ²={sigma2}: {e}"));
        for wrong in [0.85f64, 1.15] {
            // wrong *scale* (σ), so σ² × wrong²
            let rw = Rational::from_f64(sigma2 * wrong * wrong).unwrap();
            let s = draws(400 + i as u64, |rng| discrete_gaussian(rng, &rw).unwrap());
            assert!(
                check(&s, &law).is_err(),
                "σ²={sigma2}, σ×{wrong} was accepted"
            );
        }
    }
}

#[test]
fn skellam_has_declared_law_and_rejects_wrong_scale() {
    for (i, &var) in [3.0f64, 50.0].iter().enumerate() {
        let law = skellam_law(var);
        let r = Rational::from_f64(var).unwrap();
        let s = draws(500 + i as u64, |rng| skellam(rng, &r).unwrap());
        check(&s, &law).unwrap_or_else(|e| panic!("variance {var}: {e}"));
        for wrong in [0.85f64, 1.15] {
            let rw = Rational::from_f64(var * wrong * wrong).unwrap();
            let s = draws(600 + i as u64, |rng| skellam(rng, &rw).unwrap());
            assert!(
                check(&s, &law).is_err(),
                "variance {var}, std×{wrong} was accepted"
            );
        }
    }
}

/// Distributed noise: any two nodes' noise together is exactly Skellam(μ)
/// (what a corrupt third node faces); all three give Skellam(1.5 μ), the
/// noise in the released value.
#[test]
fn two_node_noise_is_central_skellam_and_three_is_one_and_a_half() {
    let d = DistributedSkellam::KUVERT;
    let mu = 24.0;
    let mut rng = ChaCha20Rng::seed_from_u64(800);
    let mut two = Vec::with_capacity(N);
    let mut three = Vec::with_capacity(N);
    for _ in 0..N {
        let a = d.sample_node_noise(&mut rng, mu).unwrap();
        let b = d.sample_node_noise(&mut rng, mu).unwrap();
        let c = d.sample_node_noise(&mut rng, mu).unwrap();
        two.push(a + b);
        three.push(a + b + c);
    }
    check(&two, &skellam_law(mu)).unwrap();
    check(&three, &skellam_law(1.5 * mu)).unwrap();
    // ... and the three-node sum is *not* central noise of variance μ.
    assert!(check(&three, &skellam_law(mu)).is_err());
}

/// Both Poisson paths: split pieces below 64, rational-envelope rejection
/// from 64 on (boundary, non-integer and large means).
#[test]
fn poisson_has_declared_law_and_rejects_wrong_mean() {
    for (i, &lam) in [7.25f64, 64.0, 100.5, 2500.25, 40_000.0].iter().enumerate() {
        let law = poisson_law(lam);
        let r = Rational::from_f64(lam).unwrap();
        let s = draws(900 + i as u64, |rng| poisson(rng, &r).unwrap() as i128);
        check(&s, &law).unwrap_or_else(|e| panic!("λ={lam}: {e}"));
        for wrong in [0.85f64, 1.15] {
            // a wrong *scale*: variance λ·wrong², same mean (shifted Poisson)
            let lw = lam * wrong * wrong;
            let rw = Rational::from_f64(lw).unwrap();
            let shift = (lw - lam).round() as i128;
            let s = draws(950 + i as u64, |rng| {
                poisson(rng, &rw).unwrap() as i128 - shift
            });
            assert!(
                check(&s, &law).is_err(),
                "λ={lam}, scale ×{wrong} was accepted"
            );
        }
    }
    // Large-variance Skellam through the rejection path.
    let law = skellam_law(5000.0);
    let r = Rational::from_f64(5000.0).unwrap();
    let s = draws(990, |rng| skellam(rng, &r).unwrap());
    check(&s, &law).unwrap();
}

fn people_table(n: usize) -> Table {
    Table {
        schema: Schema {
            columns: vec![
                ("pid".into(), ColumnType::Integer),
                ("region".into(), ColumnType::Text),
            ],
        },
        rows: (0..n)
            .map(|i| {
                vec![
                    Value::Int(i as i64),
                    Value::Text(if i % 3 == 0 { "a" } else { "b" }.into()),
                ]
            })
            .collect(),
    }
}

fn spec(sql: &str, epsilon: f64, delta: f64) -> ReleaseSpec {
    ReleaseSpec {
        table_name: "t".into(),
        sql: sql.into(),
        epsilon,
        delta,
        mechanism: MechanismChoice::Auto,
        bounds: BTreeMap::new(),
        person_column: None,
        max_rows_per_person: 1,
        keys: None,
    }
}

/// Thousands of whole releases: the released count minus the true count is
/// discrete Laplace of scale 1/ε, and `noise_std` is its true std.
#[test]
fn released_counts_carry_declared_laplace_noise() {
    let table = people_table(60);
    let sp = spec("SELECT COUNT(*) AS n FROM t", 0.5, 0.0);
    let p = plan(&sp, &table.schema).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(700);
    let noise: Vec<i128> = (0..10_000)
        .map(|_| {
            let out = execute(&p, &table, &mut rng).unwrap();
            out.values[0]["n"].as_i64().unwrap() as i128 - 60
        })
        .collect();
    let law = laplace_law(2.0);
    check(&noise, &law).unwrap();
    let out = execute(&p, &table, &mut rng).unwrap();
    let declared = out.noise_std.as_f64().unwrap();
    assert!(
        (declared - law.variance().sqrt()).abs() < 1e-9,
        "{declared}"
    );
    assert_eq!(out.mechanism, "discrete_laplace");
}

/// A Gaussian histogram release: each cell's noise is N_Z(0, σ²) with the σ
/// the plan declares, and cells are independent of each other's truth.
#[test]
fn released_histogram_carries_declared_gaussian_noise() {
    let table = people_table(30); // a: 10 rows, b: 20 rows
    let mut sp = spec(
        "SELECT region, COUNT(*) AS n FROM t GROUP BY region",
        1.0,
        1e-6,
    );
    sp.keys = Some(("region".into(), vec!["a".into(), "b".into(), "c".into()]));
    let p = plan(&sp, &table.schema).unwrap();
    let sigma2 = match p.measurements[0].noise {
        kuvert_dp::release::Noise::Gaussian { sigma2 } => sigma2,
        other => panic!("{other:?}"),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(701);
    let mut cells: [Vec<i128>; 3] = Default::default();
    for _ in 0..4000 {
        let out = execute(&p, &table, &mut rng).unwrap();
        for (g, truth) in [10i128, 20, 0].iter().enumerate() {
            assert_eq!(out.values[g]["region"], ["a", "b", "c"][g]);
            cells[g].push(out.values[g]["n"].as_i64().unwrap() as i128 - truth);
        }
    }
    let law = gaussian_law(sigma2);
    for c in &cells {
        check(c, &law).unwrap();
    }
}
