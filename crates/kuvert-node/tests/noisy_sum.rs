//! DP noise inside the MPC: the released noisy sum has the clamped sum as
//! its mean and 3 × μ/2 as its noise variance (every node's Skellam share),
//! over many releases with three parties in-process.

use std::collections::BTreeMap;

use kuvert_data::Schema;
use kuvert_mpc::harness::{run3, Keys};
use kuvert_node::exec::{self, noise_variance, StoredTable};
use kuvert_node::wire::Program;

#[test]
fn noisy_sum_is_unbiased_on_the_clamped_sum_with_three_nodes_of_noise() {
    let values: [i64; 6] = [5, -40, 12, 999, 3, 7]; // -40 and 999 get clamped
    let (lo, hi) = (-10i64, 20i64);
    let clamped: i64 = values.iter().map(|v| (*v).clamp(lo, hi)).sum();
    let raw: i64 = values.iter().sum();
    let (epsilon, delta) = (1.0, 1e-6);
    let mu = noise_variance(lo, hi, epsilon, delta).unwrap();
    let program = Program::NoisySum {
        table: "t".into(),
        column: "v".into(),
        lo,
        hi,
        epsilon,
        delta,
    };
    let runs = 600;
    let mut out = Vec::with_capacity(runs);
    for seed in 0..runs as u64 {
        let shares = run3(Keys::Seeded(seed), |p| {
            let me = p.id();
            let words: Vec<u64> = values.iter().map(|v| *v as u64).collect();
            let col = p.input_a(0, (me == 0).then_some(&words[..]), words.len())?;
            let mut tables = BTreeMap::new();
            tables.insert(
                "t".to_string(),
                StoredTable {
                    schema: Schema::parse_compact("v:int").unwrap(),
                    rows: values.len(),
                    columns: vec![col],
                },
            );
            let r = exec::run(p, &program, &tables)
                .map_err(kuvert_mpc::MpcError::Usage)?
                .into_inner();
            p.reveal_a(&r, Some(0))
        })
        .unwrap();
        out.push(shares[0].clone().unwrap()[0] as i64 as f64);
    }
    let n = runs as f64;
    let mean = out.iter().sum::<f64>() / n;
    let var = out.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    let want_var = 1.5 * mu;
    let se = (want_var / n).sqrt();
    assert!(
        (mean - clamped as f64).abs() < 5.0 * se,
        "mean {mean}, clamped sum {clamped}, se {se}"
    );
    assert!(
        (mean - raw as f64).abs() > 5.0 * se,
        "clamping had no effect"
    );
    // Sample variance of 600 draws: relative s.e. about sqrt(2/600) = 6%.
    assert!(
        var > 0.75 * want_var && var < 1.3 * want_var,
        "variance {var}, expected {want_var} (μ = {mu})"
    );
    // Two nodes' noise alone (variance μ) would be visibly less.
    assert!(
        var > 1.1 * mu,
        "variance {var} is not more than one honest pair's μ = {mu}"
    );
}

#[test]
fn noisy_sum_parameters_are_checked() {
    let mut tables = BTreeMap::new();
    let with = |lo, hi, epsilon, delta| Program::NoisySum {
        table: "t".into(),
        column: "v".into(),
        lo,
        hi,
        epsilon,
        delta,
    };
    assert!(exec::check(&with(0, 1, 1.0, 1e-6), &tables)
        .unwrap_err()
        .contains("not been uploaded"));
    tables.insert(
        "t".to_string(),
        StoredTable {
            schema: Schema::parse_compact("v:int").unwrap(),
            rows: 0,
            columns: vec![kuvert_mpc::AShare::zeros(0)],
        },
    );
    assert!(exec::check(&with(0, 1, 1.0, 1e-6), &tables).is_ok());
    assert!(exec::check(&with(5, 1, 1.0, 1e-6), &tables)
        .unwrap_err()
        .contains("above the upper bound"));
    assert!(exec::check(&with(0, 1, 0.0, 1e-6), &tables)
        .unwrap_err()
        .contains("ε > 0"));
    assert!(exec::check(&with(0, 1, 1.0, 1.5), &tables)
        .unwrap_err()
        .contains("δ < 1"));
}
