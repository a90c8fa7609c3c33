//! Private-PGM estimation on a tree (McKenna, Sheldon, Miklau 2019): a
//! pairwise Markov random field over the attributes whose graph is a
//! forest (the MST), with log-potentials θ on every node and edge:
//!
//! p(x) ∝ exp(Σᵥ θᵥ(xᵥ) + Σ₍ᵤ,ᵥ₎ θᵤᵥ(xᵤ, xᵥ)).
//!
//! For a tree the junction tree is the tree itself (cliques = edges,
//! separators = single attributes), and belief propagation is exact in two
//! passes (log-space sum-product). The potentials are fitted to the noisy
//! measurements by entropic mirror descent on the marginal polytope:
//! θ ← θ − η ∇_μ L(μ(θ)) with L(μ) = ½ Σₘ (N/σₘ)² ‖μ_Cₘ − yₘ/N‖², an
//! Armijo backtracking line search on η, and N the (noisy) total estimated
//! from the measurements. The estimate is always a proper distribution, so
//! negative noisy counts need no special treatment: they pull the cell
//! towards zero and the fit stays consistent.

use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One noisy measurement of a 1-way or 2-way marginal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The attributes (one, or two in the order of the values' layout:
    /// `values[a * size(b) + b]`).
    pub attrs: Vec<usize>,
    /// Noisy counts, one per cell (may be negative).
    pub values: Vec<f64>,
    /// Standard deviation of the noise of each cell.
    pub sigma: f64,
}

/// A fitted tree-structured graphical model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeModel {
    /// Domain size of each attribute.
    pub sizes: Vec<usize>,
    /// Edges `(a, b)` of the forest.
    pub edges: Vec<(usize, usize)>,
    /// Log-potential per attribute and value.
    pub node_theta: Vec<Vec<f64>>,
    /// Log-potential per edge, laid out `[xa * size(b) + xb]`.
    pub edge_theta: Vec<Vec<f64>>,
    /// Estimated number of rows (from the noisy measurements).
    pub total: f64,
}

/// Exact marginals of a [`TreeModel`] (probabilities).
#[derive(Clone, Debug)]
pub struct Marginals {
    /// Per attribute.
    pub nodes: Vec<Vec<f64>>,
    /// Per edge, laid out as the edge's potential.
    pub edges: Vec<Vec<f64>>,
}

struct Plan {
    /// BFS order of every component, roots first within each.
    order: Vec<usize>,
    /// Parent of each node and the edge to it.
    parent: Vec<Option<(usize, usize)>>,
    children: Vec<Vec<usize>>,
}

fn lse(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + xs.map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn normalize_log(v: &mut [f64]) {
    let z = lse(v.iter().copied());
    v.iter_mut().for_each(|x| *x = (*x - z).exp());
}

impl TreeModel {
    /// A model with all potentials zero (uniform) on the given forest.
    pub fn uniform(sizes: Vec<usize>, edges: Vec<(usize, usize)>) -> TreeModel {
        let node_theta = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let edge_theta = edges
            .iter()
            .map(|&(a, b)| vec![0.0; sizes[a] * sizes[b]])
            .collect();
        TreeModel {
            sizes,
            edges,
            node_theta,
            edge_theta,
            total: 1.0,
        }
    }

    fn plan(&self) -> Plan {
        let n = self.sizes.len();
        let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        for (e, &(a, b)) in self.edges.iter().enumerate() {
            adj[a].push((b, e));
            adj[b].push((a, e));
        }
        let mut seen = vec![false; n];
        let mut order = Vec::with_capacity(n);
        let mut parent = vec![None; n];
        let mut children = vec![Vec::new(); n];
        for root in 0..n {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            let start = order.len();
            order.push(root);
            let mut i = start;
            while i < order.len() {
                let v = order[i];
                for &(w, e) in &adj[v] {
                    if !seen[w] {
                        seen[w] = true;
                        parent[w] = Some((v, e));
                        children[v].push(w);
                        order.push(w);
                    }
                }
                i += 1;
            }
        }
        Plan {
            order,
            parent,
            children,
        }
    }

    /// θ of edge `e` at (value of `p`, value of `c`), where `p`, `c` are its ends.
    fn edge_at(&self, theta: &[f64], e: usize, p: usize, xp: usize, xc: usize) -> f64 {
        let (a, b) = self.edges[e];
        if a == p {
            theta[xp * self.sizes[b] + xc]
        } else {
            theta[xc * self.sizes[b] + xp]
        }
    }

    /// Exact marginals by two-pass sum-product in log space.
    pub fn marginals(&self) -> Marginals {
        let plan = self.plan();
        let n = self.sizes.len();
        // up[v]: message v → parent, over parent's values.
        let mut up: Vec<Vec<f64>> = vec![Vec::new(); n];
        // inner[v]: θ_v + Σ_children up[c] (over v's values).
        let mut inner: Vec<Vec<f64>> = self.node_theta.clone();
        for &v in plan.order.iter().rev() {
            for &c in &plan.children[v] {
                for (x, u) in inner[v].iter_mut().zip(&up[c]) {
                    *x += u;
                }
            }
            if let Some((p, e)) = plan.parent[v] {
                let th = &self.edge_theta[e];
                let mut m: Vec<f64> = (0..self.sizes[p])
                    .map(|xp| {
                        lse((0..self.sizes[v])
                            .map(|xv| inner[v][xv] + self.edge_at(th, e, p, xp, xv)))
                    })
                    .collect();
                let mx = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m.iter_mut().for_each(|x| *x -= mx);
                up[v] = m;
            }
        }
        // down[v]: message parent → v.
        let mut down: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut full: Vec<Vec<f64>> = vec![Vec::new(); n];
        for &v in &plan.order {
            let mut f = inner[v].clone();
            if plan.parent[v].is_some() {
                for (x, d) in f.iter_mut().zip(&down[v]) {
                    *x += d;
                }
            }
            for &c in &plan.children[v] {
                let (_, e) = plan.parent[c].expect("child has parent");
                let th = &self.edge_theta[e];
                let excl: Vec<f64> = f.iter().zip(&up[c]).map(|(a, b)| a - b).collect();
                let mut m: Vec<f64> = (0..self.sizes[c])
                    .map(|xc| {
                        lse((0..self.sizes[v]).map(|xv| excl[xv] + self.edge_at(th, e, v, xv, xc)))
                    })
                    .collect();
                let mx = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m.iter_mut().for_each(|x| *x -= mx);
                down[c] = m;
            }
            full[v] = f;
        }
        let nodes: Vec<Vec<f64>> = full
            .iter()
            .map(|f| {
                let mut p = f.clone();
                normalize_log(&mut p);
                p
            })
            .collect();
        let edges = self
            .edges
            .iter()
            .enumerate()
            .map(|(e, &(a, b))| {
                // One end is the parent of the other.
                let (p, c) = if plan.parent[b].map(|x| x.0) == Some(a) {
                    (a, b)
                } else {
                    (b, a)
                };
                let th = &self.edge_theta[e];
                let pe: Vec<f64> = full[p].iter().zip(&up[c]).map(|(x, u)| x - u).collect();
                let ce = &inner[c];
                let mut t = vec![0.0; self.sizes[a] * self.sizes[b]];
                for xa in 0..self.sizes[a] {
                    for xb in 0..self.sizes[b] {
                        let (xp, xc) = if p == a { (xa, xb) } else { (xb, xa) };
                        t[xa * self.sizes[b] + xb] = pe[xp] + ce[xc] + th[xa * self.sizes[b] + xb];
                    }
                }
                normalize_log(&mut t);
                t
            })
            .collect();
        Marginals { nodes, edges }
    }

    fn clique_of(&self, attrs: &[usize]) -> Option<Clique> {
        match attrs {
            [a] => Some(Clique::Node(*a)),
            [a, b] => self
                .edges
                .iter()
                .position(|&e| e == (*a, *b))
                .map(Clique::Edge),
            _ => None,
        }
    }

    /// Fits the potentials to `measurements` by mirror descent (see the
    /// module docs). Every 2-way measurement must be on an edge `(a, b)` of
    /// the model, in that order. Returns the final loss.
    pub fn fit(
        &mut self,
        measurements: &[Measurement],
        iters: usize,
        progress: impl FnMut(usize),
    ) -> f64 {
        // Total: inverse-variance weighted mean of each measurement's sum.
        self.total = estimate_total(measurements);
        let n = self.total;
        let sig_min = measurements
            .iter()
            .map(|m| m.sigma)
            .fold(f64::INFINITY, f64::min)
            .max(1e-12);
        let terms: Vec<(Clique, Vec<f64>, f64)> = measurements
            .iter()
            .map(|m| {
                let c = self
                    .clique_of(&m.attrs)
                    .expect("a 2-way measurement on an edge of the model");
                let y: Vec<f64> = m.values.iter().map(|v| v / n).collect();
                let w = (sig_min / m.sigma.max(1e-12)).powi(2);
                (c, y, w)
            })
            .collect();
        let node_sizes = self.sizes.clone();
        let edge_sizes: Vec<usize> = self.edge_theta.iter().map(|t| t.len()).collect();
        let loss_grad = |mu: &Marginals| -> (f64, Grad) {
            let mut g = Grad {
                nodes: node_sizes.iter().map(|&k| vec![0.0; k]).collect(),
                edges: edge_sizes.iter().map(|&k| vec![0.0; k]).collect(),
            };
            let mut loss = 0.0;
            for (c, y, w) in &terms {
                let (m, gt) = match c {
                    Clique::Node(a) => (&mu.nodes[*a], &mut g.nodes[*a]),
                    Clique::Edge(e) => (&mu.edges[*e], &mut g.edges[*e]),
                };
                for ((mi, yi), gi) in m.iter().zip(y).zip(gt.iter_mut()) {
                    let d = mi - yi;
                    loss += 0.5 * w * d * d;
                    *gi += w * d;
                }
            }
            (loss, g)
        };
        let loss = mirror_descent(
            self,
            iters,
            |m: &Self| m.marginals(),
            loss_grad,
            |m: &mut Self, g: &Grad, alpha| m.step(g, alpha),
            |g: &Grad, a: &Marginals, b: &Marginals| g.dot_diff(a, b),
            progress,
        );
        self.total = n;
        loss
    }

    fn step(&mut self, g: &Grad, alpha: f64) {
        for (t, gv) in self.node_theta.iter_mut().zip(&g.nodes) {
            for (x, d) in t.iter_mut().zip(gv) {
                *x -= alpha * d;
            }
        }
        for (t, gv) in self.edge_theta.iter_mut().zip(&g.edges) {
            for (x, d) in t.iter_mut().zip(gv) {
                *x -= alpha * d;
            }
        }
    }

    /// Draws `rows` records by ancestral sampling along the tree (each
    /// component from its root); one row is a code per attribute,
    /// returned column-major.
    pub fn sample<R: Rng + ?Sized>(&self, rows: usize, rng: &mut R) -> Vec<Vec<u32>> {
        let plan = self.plan();
        let mu = self.marginals();
        let d = self.sizes.len();
        // Cumulative tables: root: one row; child: one row per parent value.
        let mut cdfs: Vec<Vec<Vec<f64>>> = vec![Vec::new(); d];
        for &v in &plan.order {
            match plan.parent[v] {
                None => cdfs[v] = vec![cumulative(&mu.nodes[v])],
                Some((p, e)) => {
                    let (a, b) = self.edges[e];
                    let t = &mu.edges[e];
                    cdfs[v] = (0..self.sizes[p])
                        .map(|xp| {
                            let row: Vec<f64> = (0..self.sizes[v])
                                .map(|xv| {
                                    if a == p {
                                        t[xp * self.sizes[b] + xv]
                                    } else {
                                        t[xv * self.sizes[b] + xp]
                                    }
                                })
                                .collect();
                            cumulative(&row)
                        })
                        .collect();
                }
            }
        }
        const CHUNK: usize = 8192;
        let seeds: Vec<u64> = (0..rows.div_ceil(CHUNK)).map(|_| rng.gen()).collect();
        let parts: Vec<Vec<Vec<u32>>> = seeds
            .par_iter()
            .enumerate()
            .map(|(ci, &seed)| {
                use rand::SeedableRng;
                let mut r = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
                let len = CHUNK.min(rows - ci * CHUNK);
                let mut cols = vec![vec![0u32; len]; d];
                for i in 0..len {
                    for &v in &plan.order {
                        let table = match plan.parent[v] {
                            None => &cdfs[v][0],
                            Some((p, _)) => &cdfs[v][cols[p][i] as usize],
                        };
                        let u: f64 = r.gen::<f64>() * table[table.len() - 1];
                        let x = table.partition_point(|&c| c <= u).min(table.len() - 1);
                        cols[v][i] = x as u32;
                    }
                }
                cols
            })
            .collect();
        concat_parts(parts, d, rows)
    }
}

/// Joins per-thread column chunks (each `d` columns) into `d` columns of
/// `rows` codes, in order.
pub(crate) fn concat_parts(parts: Vec<Vec<Vec<u32>>>, d: usize, rows: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::with_capacity(rows); d];
    for p in parts {
        for (o, c) in out.iter_mut().zip(p) {
            o.extend(c);
        }
    }
    out
}

/// The running sum of the non-negative parts of `p` (a sampling table).
pub(crate) fn cumulative(p: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    let mut v: Vec<f64> = p
        .iter()
        .map(|x| {
            acc += x.max(0.0);
            acc
        })
        .collect();
    if acc <= 0.0 {
        // Degenerate (cannot happen for a fitted model): uniform.
        v = (1..=p.len()).map(|i| i as f64).collect();
    }
    v
}

#[derive(Clone, Copy, Debug)]
enum Clique {
    Node(usize),
    Edge(usize),
}

struct Grad {
    nodes: Vec<Vec<f64>>,
    edges: Vec<Vec<f64>>,
}

impl Grad {
    /// ⟨g, μ − μ'⟩ over the cliques.
    fn dot_diff(&self, a: &Marginals, b: &Marginals) -> f64 {
        let mut s = 0.0;
        for (g, (x, y)) in self.nodes.iter().zip(a.nodes.iter().zip(&b.nodes)) {
            s += g
                .iter()
                .zip(x.iter().zip(y))
                .map(|(g, (x, y))| g * (x - y))
                .sum::<f64>();
        }
        for (g, (x, y)) in self.edges.iter().zip(a.edges.iter().zip(&b.edges)) {
            s += g
                .iter()
                .zip(x.iter().zip(y))
                .map(|(g, (x, y))| g * (x - y))
                .sum::<f64>();
        }
        s
    }
}

/// Counts of the attribute combinations of `attrs` in column-major coded
/// data, laid out `[x0 * size1 + x1]` (row-major over `attrs`).
pub fn marginal_counts(data: &[Vec<u32>], sizes: &[usize], attrs: &[usize]) -> Vec<u64> {
    let cells: usize = attrs.iter().map(|&a| sizes[a]).product();
    let n = data.first().map(|c| c.len()).unwrap_or(0);
    const CHUNK: usize = 1 << 16;
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|ci| {
            let mut t = vec![0u64; cells];
            #[allow(clippy::needless_range_loop)] // r indexes every attribute's column
            for r in ci * CHUNK..((ci + 1) * CHUNK).min(n) {
                let mut idx = 0usize;
                for &a in attrs {
                    idx = idx * sizes[a] + data[a][r] as usize;
                }
                t[idx] += 1;
            }
            t
        })
        .reduce(
            || vec![0u64; cells],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// The number of records the measurements imply: the inverse-variance
/// weighted mean of each measurement's sum (at least 1).
pub(crate) fn estimate_total(measurements: &[Measurement]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for m in measurements {
        let var = m.sigma * m.sigma * m.values.len() as f64;
        let s: f64 = m.values.iter().sum();
        num += s / var.max(1e-12);
        den += 1.0 / var.max(1e-12);
    }
    if den > 0.0 {
        (num / den).max(1.0)
    } else {
        1.0
    }
}

/// Entropic mirror descent on a model's log-potentials, shared by the tree
/// and the junction tree: each iteration doubles the step size, then halves
/// it until the loss falls by at least half the linearised decrease
/// (`dot_diff(g, μ, μ′) = ⟨g, μ − μ′⟩`). Stops after `iters` iterations, when
/// no step is accepted, or at a loss below 1e-20. Returns the final loss.
pub(crate) fn mirror_descent<M: Clone, Mu, G>(
    model: &mut M,
    iters: usize,
    marginals: impl Fn(&M) -> Mu,
    loss_grad: impl Fn(&Mu) -> (f64, G),
    step: impl Fn(&mut M, &G, f64),
    dot_diff: impl Fn(&G, &Mu, &Mu) -> f64,
    mut progress: impl FnMut(usize),
) -> f64 {
    let mut mu = marginals(model);
    let (mut loss, mut grad) = loss_grad(&mu);
    let mut alpha = 1.0f64;
    for it in 0..iters {
        progress(it);
        alpha *= 2.0;
        let mut accepted = false;
        for _ in 0..30 {
            let mut cand = model.clone();
            step(&mut cand, &grad, alpha);
            let mu2 = marginals(&cand);
            let (l2, g2) = loss_grad(&mu2);
            let dot = dot_diff(&grad, &mu, &mu2);
            if loss - l2 >= 0.5 * dot && l2.is_finite() {
                *model = cand;
                mu = mu2;
                loss = l2;
                grad = g2;
                accepted = true;
                break;
            }
            alpha *= 0.5;
        }
        if !accepted || loss < 1e-20 {
            break;
        }
    }
    loss
}
