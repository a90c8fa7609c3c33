//! In-process A/B of node evaluation on generated data: the search's
//! evaluation with the direct count against the fail-fast partitioned
//! counting, on the same random nodes, interleaved so that machine load
//! affects both alike; reported separately for passing, barely failing
//! (suppression at most 3x the limit, like the proof's frontier) and failing
//! nodes.
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
    // Per category (barely failing: suppression at most 3x the limit; the
    // proof's frontier looks like that), time of the search's evaluation
    // without (a) and with (b) the fail-fast partitioned counting.
    let max_supp = (0.02 * rows as f64) as u64;
    let mut stats = [(0usize, 0f64, 0f64); 3];
    let mut prob = prob;
    for _ in 0..nodes {
        let lv: Vec<usize> = hier
            .iter()
            .map(|h| (next() as usize) % h.levels())
            .collect();
        let full = prob.evaluate(&lv);
        prob.set_fail_fast_min_tuples(usize::MAX);
        let t0 = Instant::now();
        let ea = prob.evaluate_for_search(&lv);
        let t1 = Instant::now();
        prob.set_fail_fast_min_tuples(0);
        let eb = prob.evaluate_for_search(&lv);
        let t2 = Instant::now();
        assert_eq!(ea.passes, eb.passes, "{lv:?}");
        assert_eq!(full.suppressed, ea.suppressed);
        let cat = if full.passes {
            0
        } else if full.suppressed <= 3 * max_supp {
            1
        } else {
            2
        };
        stats[cat].0 += 1;
        stats[cat].1 += (t1 - t0).as_secs_f64();
        stats[cat].2 += (t2 - t1).as_secs_f64();
    }
    for (name, (c, a, b)) in ["passing", "barely failing", "failing"].iter().zip(stats) {
        if c > 0 {
            println!(
                "{name}: {c} nodes, direct {:.1} ms/node, fail-fast {:.1} ms/node ({:.2}x)",
                a * 1e3 / c as f64,
                b * 1e3 / c as f64,
                a / b
            );
        }
    }
    println!("{rows} rows, {} distinct tuples", prob.distinct_tuples());
}
