//! The MST mechanism (McKenna, Miklau, Sheldon 2021, "Winning the NIST
//! contest"): measure every 1-way marginal, privately select a maximum
//! spanning tree of attribute pairs, weighted by how badly the 1-way
//! (independence) estimate explains each pair, and measure the 2-way
//! marginals on its edges.
//!
//! Selection runs Kruskal's algorithm with the exponential mechanism in
//! each of the d − 1 rounds: among pairs joining two components, pair
//! (i, j) is chosen with probability ∝ exp(ε_r ⌊w_ij⌋ / 2), where
//! w_ij = ‖M_ij(data) − M_ij(estimate)‖₁ has sensitivity 1 (so does its
//! floor). The exponential mechanism is ε²/8-zCDP (bounded range, Cesar &
//! Rogers 2021), so each round gets ε_r = √(8 ρ_sel / (d − 1)).

use rand::RngCore;
use rayon::prelude::*;

use kuvert_dp::sample::{discrete_gaussian, exponential_mechanism, Rational};

use crate::error::Result;
use crate::pgm::{marginal_counts, Measurement, TreeModel};

/// Measures the marginal on `attrs` with discrete Gaussian noise of
/// variance `sigma2` per cell ((1/(2σ²))-zCDP: a row moves one cell by 1).
pub fn measure<R: RngCore + ?Sized>(
    data: &[Vec<u32>],
    sizes: &[usize],
    attrs: &[usize],
    sigma2: f64,
    rng: &mut R,
) -> Result<Measurement> {
    let counts = marginal_counts(data, sizes, attrs);
    let s2 = Rational::from_f64(sigma2)?;
    let mut values = Vec::with_capacity(counts.len());
    for c in counts {
        values.push(c as f64 + discrete_gaussian(rng, &s2)? as f64);
    }
    Ok(Measurement {
        attrs: attrs.to_vec(),
        values,
        sigma: sigma2.sqrt(),
    })
}

/// The L1 distance between the data's 2-way marginal on (a, b) and the
/// independence estimate N·μ_a·μ_b of `est`, for every pair a < b.
pub fn pair_errors(
    data: &[Vec<u32>],
    sizes: &[usize],
    est: &TreeModel,
) -> Vec<((usize, usize), f64)> {
    let mu = est.marginals();
    let d = sizes.len();
    let pairs: Vec<(usize, usize)> = (0..d)
        .flat_map(|a| (a + 1..d).map(move |b| (a, b)))
        .collect();
    pairs
        .par_iter()
        .map(|&(a, b)| {
            let t = marginal_counts(data, sizes, &[a, b]);
            let mut l1 = 0.0;
            for xa in 0..sizes[a] {
                for xb in 0..sizes[b] {
                    let e = est.total * mu.nodes[a][xa] * mu.nodes[b][xb];
                    l1 += (t[xa * sizes[b] + xb] as f64 - e).abs();
                }
            }
            ((a, b), l1)
        })
        .collect()
}

fn find(p: &mut [usize], x: usize) -> usize {
    let mut r = x;
    while p[r] != r {
        r = p[r];
    }
    let mut y = x;
    while p[y] != r {
        let n = p[y];
        p[y] = r;
        y = n;
    }
    r
}

/// Privately selects a spanning tree over `d` attributes from pair weights
/// (see the module docs) with total zCDP budget `rho`. Returns the edges in
/// the order chosen.
pub fn select_tree<R: RngCore + ?Sized>(
    d: usize,
    weights: &[((usize, usize), f64)],
    rho: f64,
    rng: &mut R,
) -> Result<Vec<(usize, usize)>> {
    if d < 2 {
        return Ok(Vec::new());
    }
    let rounds = d - 1;
    let eps = (8.0 * rho / rounds as f64).sqrt();
    let half = Rational::from_f64(eps / 2.0)?;
    let mut parent: Vec<usize> = (0..d).collect();
    let mut chosen = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let cands: Vec<&((usize, usize), f64)> = weights
            .iter()
            .filter(|((a, b), _)| {
                let mut p = parent.clone();
                find(&mut p, *a) != find(&mut p, *b)
            })
            .collect();
        if cands.is_empty() {
            break;
        }
        let utils: Vec<i64> = cands.iter().map(|(_, w)| w.floor() as i64).collect();
        let i = exponential_mechanism(rng, &utils, &half)?;
        let (a, b) = cands[i].0;
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra] = rb;
        chosen.push((a, b));
    }
    Ok(chosen)
}
