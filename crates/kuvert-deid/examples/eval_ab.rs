//! In-process A/B of node evaluation on generated data: the full evaluation
//! (`Problem::evaluate`, per-tuple flags) against the search's evaluation
//! (`evaluate_for_search`, fail-fast partitioned counting), on the same
//! random nodes, interleaved so that machine load affects both alike.
//!
//! `cargo run --release -p kuvert-deid --example eval_ab -- ROWS NODES`

use kuvert_deid::hierarchy::Hierarchy;
use kuvert_deid::search::Problem;
use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = a.first().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let nodes: usize = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let t = kuvert_deid::gen::adult_like(rows, 1);
    let cfg = kuvert_deid::gen::config(10, 5, 0.02);
    let hier: Vec<Hierarchy> = cfg
        .quasi
        .iter()
        .map(|q| {
            let c = t.col_index(q).unwrap();
            Hierarchy::build(&t, c, &cfg.hierarchy[q], std::path::Path::new(".")).unwrap()
        })
        .collect();
    let codes: Vec<&[u32]> = cfg
        .quasi
        .iter()
        .map(|q| t.columns[t.col_index(q).unwrap()].codes.as_slice())
        .collect();
    let prob = Problem::new(&hier, &codes, None, cfg.models.clone(), 0.02).unwrap();
    // Nodes in the lower-middle of the lattice, where the proof's failing nodes are.
    let mut x: u64 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut ta, mut tb) = (0f64, 0f64);
    let mut agree = 0;
    for _ in 0..nodes {
        let lv: Vec<usize> = hier
            .iter()
            .map(|h| (next() as usize) % h.levels().saturating_sub(1).max(1))
            .collect();
        let t0 = Instant::now();
        let ea = prob.evaluate(&lv);
        let t1 = Instant::now();
        let eb = prob.evaluate_for_search(&lv);
        let t2 = Instant::now();
        ta += (t1 - t0).as_secs_f64();
        tb += (t2 - t1).as_secs_f64();
        assert_eq!(ea.passes, eb.passes, "{lv:?}");
        assert!(eb.suppressed <= ea.suppressed);
        if ea.suppressed == eb.suppressed {
            agree += 1;
        }
    }
    println!(
        "{rows} rows, {} distinct tuples, {nodes} nodes: full evaluation {:.2} ms/node, search evaluation {:.2} ms/node ({:.2}x); exact suppression reported for {agree}",
        prob.distinct_tuples(),
        ta * 1e3 / nodes as f64,
        tb * 1e3 / nodes as f64,
        ta / tb
    );
}
