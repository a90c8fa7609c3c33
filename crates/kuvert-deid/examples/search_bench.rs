//! Time the lattice search on generated Adult-like data without the CLI
//! (the same data and configuration as `kuvert deid bench`).
//!
//! `cargo run --release -p kuvert-deid --example search_bench -- ROWS QIS K [SUPPRESSION] [BUDGET_S]`

use kuvert_deid::deid::{run, RunOptions};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: f64| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let rows = arg(0, 100_000.0) as usize;
    let qis = arg(1, 10.0) as usize;
    let k = arg(2, 5.0) as u64;
    let supp = arg(3, 0.02);
    let budget = arg(4, 1000.0);
    let t = kuvert_deid::gen::adult_like(rows, 1);
    let mut cfg = kuvert_deid::gen::config(qis, k, supp);
    cfg.max_search_seconds = budget;
    let t0 = std::time::Instant::now();
    let mut p = |_| {};
    let out = run(
        t,
        &cfg,
        RunOptions {
            keys: None,
            holdout_fraction: 0.0,
            progress: &mut p,
        },
    )
    .expect("search");
    let r = &out.report;
    println!(
        "rows {rows} qis {qis} k {k}: search {:.2} s (pipeline {:.2} s); lattice {} evaluated {} rolled up {}; levels {:?}; suppressed {}; loss {:?}; proven {}",
        r.search_seconds,
        t0.elapsed().as_secs_f64(),
        r.lattice_size,
        r.nodes_evaluated,
        r.nodes_rolled_up,
        r.generalisation.iter().map(|g| g.level).collect::<Vec<_>>(),
        r.records_suppressed,
        r.loss.map(|l| l.non_uniform_entropy),
        r.optimal_guaranteed
    );
}
