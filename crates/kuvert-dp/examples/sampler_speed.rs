//! Time per exact draw of each sampler at several scales, and the noise
//! overhead of distributed Skellam noise. Run with
//! `cargo run --release -p kuvert-dp --example sampler_speed`.

use std::time::Instant;

use kuvert_dp::distributed::DistributedSkellam;
use kuvert_dp::sample::{discrete_gaussian, discrete_laplace, skellam, Rational};

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
    for var in [10.0f64, 1.0e3, 1.0e5, 1.0e7] {
        let r = Rational::from_f64(var).unwrap();
        let n = if var > 1e6 { 5 } else { 2_000 };
        time(&format!("Skellam, variance {var:e}"), n, || {
            skellam(&mut rng, &r).unwrap()
        });
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
