//! Private-PGM on a junction tree, for models whose graph has cycles (AIM).
//!
//! The model is a Markov random field with one log-potential per maximal
//! clique of a triangulation of the graph of the measured attribute sets:
//! p(x) ∝ exp(Σ_C θ_C(x_C)). The triangulation uses a greedy min-fill
//! elimination order; the maximal cliques are joined by a maximum spanning
//! tree over separator sizes (a junction tree: running intersection holds).
//! Belief propagation (log-space sum-product, two passes) gives the exact
//! clique marginals; potentials are fitted to the noisy measurements by the
//! same entropic mirror descent with Armijo line search as [`crate::pgm`].
//! Sampling is ancestral, clique by clique, conditioned on the separator.
//!
//! Factors are dense tables over a *sorted* attribute list, laid out
//! row-major (`[x0 * size1 * … + x1 * … + …]`); measurements used here must
//! list their attributes in ascending order.

use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::pgm::{cumulative, Measurement};

/// Row-major strides of `attrs`, indexed like `attrs`.
fn strides(attrs: &[usize], sizes: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; attrs.len()];
    for i in (0..attrs.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * sizes[attrs[i + 1]];
    }
    s
}

fn cells(attrs: &[usize], sizes: &[usize]) -> usize {
    attrs.iter().map(|&a| sizes[a]).product()
}

/// For every cell of the table over `attrs`, the index of the cell of the
/// table over `sub` (a subset of `attrs`) it projects to.
pub fn projection(attrs: &[usize], sub: &[usize], sizes: &[usize]) -> Vec<usize> {
    let ss = strides(sub, sizes);
    // Stride in `sub` of each attribute of `attrs` (0 when absent).
    let map: Vec<usize> = attrs
        .iter()
        .map(|a| sub.iter().position(|b| b == a).map(|i| ss[i]).unwrap_or(0))
        .collect();
    let n = cells(attrs, sizes);
    let mut out = Vec::with_capacity(n);
    let mut digit = vec![0usize; attrs.len()];
    let mut idx = 0usize;
    for _ in 0..n {
        out.push(idx);
        // Odometer increment, last attribute fastest.
        for k in (0..attrs.len()).rev() {
            digit[k] += 1;
            idx += map[k];
            if digit[k] < sizes[attrs[k]] {
                break;
            }
            idx -= map[k] * digit[k];
            digit[k] = 0;
        }
    }
    out
}

fn sorted_union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut u: Vec<usize> = a.iter().chain(b).copied().collect();
    u.sort_unstable();
    u.dedup();
    u
}

fn intersect(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter().filter(|x| b.contains(x)).copied().collect()
}

fn log_marginal(attrs: &[usize], vals: &[f64], sub: &[usize], sizes: &[usize]) -> Vec<f64> {
    let proj = projection(attrs, sub, sizes);
    let k = cells(sub, sizes);
    let mut mx = vec![f64::NEG_INFINITY; k];
    for (v, &p) in vals.iter().zip(&proj) {
        if *v > mx[p] {
            mx[p] = *v;
        }
    }
    let mut s = vec![0.0; k];
    for (v, &p) in vals.iter().zip(&proj) {
        if mx[p] > f64::NEG_INFINITY {
            s[p] += (v - mx[p]).exp();
        }
    }
    s.iter()
        .zip(&mx)
        .map(|(s, m)| {
            if *m == f64::NEG_INFINITY {
                *m
            } else {
                m + s.ln()
            }
        })
        .collect()
}

fn sum_marginal(attrs: &[usize], vals: &[f64], sub: &[usize], sizes: &[usize]) -> Vec<f64> {
    let proj = projection(attrs, sub, sizes);
    let mut out = vec![0.0; cells(sub, sizes)];
    for (v, &p) in vals.iter().zip(&proj) {
        out[p] += v;
    }
    out
}

/// The junction tree of the attribute sets `sets` over `d` attributes:
/// maximal cliques (sorted attribute lists) and tree edges between them.
/// Every set is contained in some clique; every attribute is in one.
pub fn junction_tree(d: usize, sets: &[Vec<usize>]) -> (Vec<Vec<usize>>, Vec<(usize, usize)>) {
    let mut adj = vec![vec![false; d]; d];
    for s in sets {
        for &a in s {
            for &b in s {
                if a != b {
                    adj[a][b] = true;
                }
            }
        }
    }
    // Greedy min-fill elimination (ties: fewest neighbours, then lowest index).
    let mut alive = vec![true; d];
    let mut elim_cliques: Vec<Vec<usize>> = Vec::new();
    for _ in 0..d {
        let mut best: Option<(usize, usize, usize)> = None;
        for v in (0..d).filter(|&v| alive[v]) {
            let nb: Vec<usize> = (0..d).filter(|&u| alive[u] && adj[v][u]).collect();
            let mut fill = 0;
            for (i, &a) in nb.iter().enumerate() {
                for &b in &nb[i + 1..] {
                    if !adj[a][b] {
                        fill += 1;
                    }
                }
            }
            let key = (fill, nb.len(), v);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        let v = best.expect("an attribute is left").2;
        let nb: Vec<usize> = (0..d).filter(|&u| alive[u] && adj[v][u]).collect();
        for &a in &nb {
            for &b in &nb {
                if a != b {
                    adj[a][b] = true;
                }
            }
        }
        let mut c = nb;
        c.push(v);
        c.sort_unstable();
        elim_cliques.push(c);
        alive[v] = false;
    }
    // Maximal cliques.
    let mut cliques: Vec<Vec<usize>> = Vec::new();
    for c in &elim_cliques {
        if !elim_cliques
            .iter()
            .any(|o| o.len() > c.len() && c.iter().all(|x| o.contains(x)))
            && !cliques.contains(c)
        {
            cliques.push(c.clone());
        }
    }
    // Maximum spanning tree over separator sizes (Kruskal; ties by index).
    let k = cliques.len();
    let mut cand: Vec<(usize, usize, usize)> = Vec::new();
    for i in 0..k {
        for j in i + 1..k {
            cand.push((intersect(&cliques[i], &cliques[j]).len(), i, j));
        }
    }
    cand.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut parent: Vec<usize> = (0..k).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        p[x] = r;
        r
    }
    let mut edges = Vec::new();
    for (_, i, j) in cand {
        let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
        if ri != rj {
            parent[ri] = rj;
            edges.push((i, j));
        }
    }
    (cliques, edges)
}

/// Number of cells of the junction tree of `sets` (the model size).
pub fn model_cells(sizes: &[usize], sets: &[Vec<usize>]) -> usize {
    let (cl, _) = junction_tree(sizes.len(), sets);
    cl.iter().map(|c| cells(c, sizes)).sum()
}

/// A fitted junction-tree graphical model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JtModel {
    /// Domain size of each attribute.
    pub sizes: Vec<usize>,
    /// Maximal cliques (sorted attribute lists).
    pub cliques: Vec<Vec<usize>>,
    /// Tree edges between cliques.
    pub edges: Vec<(usize, usize)>,
    /// Log-potential per clique, laid out row-major over the clique.
    pub theta: Vec<Vec<f64>>,
    /// Estimated number of rows (from the noisy measurements).
    pub total: f64,
}

struct Plan {
    /// Cliques in BFS order, roots first within each component.
    order: Vec<usize>,
    /// Parent clique.
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    /// Separator with the parent (sorted).
    sep: Vec<Vec<usize>>,
}

impl JtModel {
    /// A uniform model on the junction tree of `sets`.
    pub fn uniform(sizes: Vec<usize>, sets: &[Vec<usize>]) -> JtModel {
        let (cliques, edges) = junction_tree(sizes.len(), sets);
        let theta = cliques
            .iter()
            .map(|c| vec![0.0; cells(c, &sizes)])
            .collect();
        JtModel {
            sizes,
            cliques,
            edges,
            theta,
            total: 1.0,
        }
    }

    /// A model on the junction tree of `sets` whose distribution is that of
    /// `prev` (warm start), when every clique of `prev` lies in a new clique.
    pub fn warm(prev: &JtModel, sets: &[Vec<usize>]) -> JtModel {
        let mut m = JtModel::uniform(prev.sizes.clone(), sets);
        for (c, th) in prev.cliques.iter().zip(&prev.theta) {
            if let Some(i) = m
                .cliques
                .iter()
                .position(|n| c.iter().all(|x| n.contains(x)))
            {
                let proj = projection(&m.cliques[i], c, &m.sizes);
                for (t, &p) in m.theta[i].iter_mut().zip(&proj) {
                    *t += th[p];
                }
            }
        }
        m.total = prev.total;
        m
    }

    /// Total number of cells.
    pub fn size(&self) -> usize {
        self.theta.iter().map(|t| t.len()).sum()
    }

    fn plan(&self) -> Plan {
        let k = self.cliques.len();
        let mut adj = vec![Vec::new(); k];
        for &(a, b) in &self.edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        let mut seen = vec![false; k];
        let mut order = Vec::with_capacity(k);
        let mut parent = vec![None; k];
        let mut children = vec![Vec::new(); k];
        for root in 0..k {
            if seen[root] {
                continue;
            }
            seen[root] = true;
            let mut i = order.len();
            order.push(root);
            while i < order.len() {
                let v = order[i];
                for &w in &adj[v] {
                    if !seen[w] {
                        seen[w] = true;
                        parent[w] = Some(v);
                        children[v].push(w);
                        order.push(w);
                    }
                }
                i += 1;
            }
        }
        let sep = (0..k)
            .map(|c| match parent[c] {
                Some(p) => intersect(&self.cliques[c], &self.cliques[p]),
                None => Vec::new(),
            })
            .collect();
        Plan {
            order,
            parent,
            children,
            sep,
        }
    }

    /// Exact clique marginals (probabilities) by two-pass sum-product.
    pub fn marginals(&self) -> Vec<Vec<f64>> {
        let plan = self.plan();
        let k = self.cliques.len();
        let sz = &self.sizes;
        let projs: Vec<Vec<usize>> = (0..k)
            .map(|c| projection(&self.cliques[c], &plan.sep[c], sz))
            .collect();
        // up[c]: message c → parent over sep[c].
        let mut up: Vec<Vec<f64>> = vec![Vec::new(); k];
        let mut inner: Vec<Vec<f64>> = self.theta.clone();
        for &c in plan.order.iter().rev() {
            for &ch in &plan.children[c] {
                let pr = projection(&self.cliques[c], &plan.sep[ch], sz);
                for (x, &p) in inner[c].iter_mut().zip(&pr) {
                    *x += up[ch][p];
                }
            }
            if plan.parent[c].is_some() {
                let mut m = log_marginal(&self.cliques[c], &inner[c], &plan.sep[c], sz);
                let mx = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m.iter_mut().for_each(|x| *x -= mx);
                up[c] = m;
            }
        }
        let mut full: Vec<Vec<f64>> = vec![Vec::new(); k];
        for &c in &plan.order {
            let mut f = inner[c].clone();
            if let Some(p) = plan.parent[c] {
                // Message parent → c: parent's full belief minus up[c], marginalised.
                let pp = projection(&self.cliques[p], &plan.sep[c], sz);
                let excl: Vec<f64> = full[p]
                    .iter()
                    .zip(&pp)
                    .map(|(x, &i)| x - up[c][i])
                    .collect();
                let mut m = log_marginal(&self.cliques[p], &excl, &plan.sep[c], sz);
                let mx = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m.iter_mut().for_each(|x| *x -= mx);
                for (x, &i) in f.iter_mut().zip(&projs[c]) {
                    *x += m[i];
                }
            }
            full[c] = f;
        }
        full.into_iter()
            .map(|mut f| {
                let m = f.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut s = 0.0;
                for x in f.iter_mut() {
                    *x = (*x - m).exp();
                    s += *x;
                }
                f.iter_mut().for_each(|x| *x /= s);
                f
            })
            .collect()
    }

    /// The clique containing every attribute of `attrs`, if any.
    pub fn clique_of(&self, attrs: &[usize]) -> Option<usize> {
        self.cliques
            .iter()
            .position(|c| attrs.iter().all(|a| c.contains(a)))
    }

    /// The exact marginal (probabilities) on the sorted attribute list
    /// `attrs`, given the clique marginals `mu`: within one clique by
    /// summing out, otherwise by passing the conditionals along the tree
    /// path between the cliques of the first attribute and of the rest.
    pub fn query(&self, mu: &[Vec<f64>], attrs: &[usize]) -> Vec<f64> {
        let sz = &self.sizes;
        if let Some(c) = self.clique_of(attrs) {
            return sum_marginal(&self.cliques[c], &mu[c], attrs, sz);
        }
        // Path from a clique of attrs[0] to a clique holding the rest.
        let k = self.cliques.len();
        let mut adj = vec![Vec::new(); k];
        for &(a, b) in &self.edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        let start = self
            .clique_of(&attrs[..1])
            .expect("every attribute is in a clique");
        let mut prev = vec![usize::MAX; k];
        prev[start] = start;
        let mut queue = vec![start];
        let mut i = 0;
        while i < queue.len() {
            let v = queue[i];
            for &w in &adj[v] {
                if prev[w] == usize::MAX {
                    prev[w] = v;
                    queue.push(w);
                }
            }
            i += 1;
        }
        // Factor over `fa` (a joint distribution), extended clique by clique
        // along the path to the nearest clique holding attrs[1..].
        let rest = &attrs[1..];
        let target = *queue
            .iter()
            .find(|&&c| rest.iter().all(|b| self.cliques[c].contains(b)))
            .expect("query: attrs[1..] must lie in one clique");
        let mut path = vec![target];
        let mut v = target;
        while v != start {
            v = prev[v];
            path.push(v);
        }
        path.reverse();
        let mut fa = self.cliques[start].clone();
        let mut f = mu[start].clone();
        for w in path.windows(2) {
            let (c0, c1) = (w[0], w[1]);
            let sep = intersect(&self.cliques[c0], &self.cliques[c1]);
            let cur: Vec<usize> = sorted_union(&intersect(&fa, attrs), &sep);
            f = sum_marginal(&fa, &f, &cur, sz);
            fa = cur;
            // Times the conditional p(C1 | sep).
            let c1a = &self.cliques[c1];
            let ms = sum_marginal(c1a, &mu[c1], &sep, sz);
            let pc = projection(c1a, &sep, sz);
            let cond: Vec<f64> = mu[c1]
                .iter()
                .zip(&pc)
                .map(|(x, &i)| if ms[i] > 0.0 { x / ms[i] } else { 0.0 })
                .collect();
            let na = sorted_union(&fa, c1a);
            let p1 = projection(&na, &fa, sz);
            let p2 = projection(&na, c1a, sz);
            f = p1.iter().zip(&p2).map(|(&i, &j)| f[i] * cond[j]).collect();
            fa = na;
        }
        sum_marginal(&fa, &f, attrs, sz)
    }

    /// Fits the potentials to `measurements` (attributes sorted ascending,
    /// each within a clique) by mirror descent from the current potentials.
    /// Returns the final loss.
    pub fn fit(&mut self, measurements: &[Measurement], iters: usize) -> f64 {
        self.total = crate::pgm::estimate_total(measurements);
        let n = self.total;
        let sig_min = measurements
            .iter()
            .map(|m| m.sigma)
            .fold(f64::INFINITY, f64::min)
            .max(1e-12);
        let sz = self.sizes.clone();
        // (clique, projection clique → measurement cells, y, weight)
        let terms: Vec<(usize, Vec<usize>, Vec<f64>, f64)> = measurements
            .iter()
            .map(|m| {
                let c = self
                    .clique_of(&m.attrs)
                    .expect("a measurement within a clique of the model");
                let proj = projection(&self.cliques[c], &m.attrs, &sz);
                let y: Vec<f64> = m.values.iter().map(|v| v / n).collect();
                let w = (sig_min / m.sigma.max(1e-12)).powi(2);
                (c, proj, y, w)
            })
            .collect();
        let loss_grad = |mu: &[Vec<f64>]| -> (f64, Vec<Vec<f64>>) {
            let mut g: Vec<Vec<f64>> = mu.iter().map(|m| vec![0.0; m.len()]).collect();
            let mut loss = 0.0;
            for (c, proj, y, w) in &terms {
                let mut m = vec![0.0; y.len()];
                for (x, &p) in mu[*c].iter().zip(proj) {
                    m[p] += x;
                }
                let d: Vec<f64> = m.iter().zip(y).map(|(a, b)| a - b).collect();
                loss += 0.5 * w * d.iter().map(|x| x * x).sum::<f64>();
                for (gi, &p) in g[*c].iter_mut().zip(proj) {
                    *gi += w * d[p];
                }
            }
            (loss, g)
        };
        let dot_diff = |g: &[Vec<f64>], a: &[Vec<f64>], b: &[Vec<f64>]| -> f64 {
            g.iter()
                .zip(a.iter().zip(b))
                .map(|(g, (x, y))| {
                    g.iter()
                        .zip(x.iter().zip(y))
                        .map(|(g, (x, y))| g * (x - y))
                        .sum::<f64>()
                })
                .sum()
        };
        let loss = crate::pgm::mirror_descent(
            self,
            iters,
            |m: &Self| m.marginals(),
            |mu: &Vec<Vec<f64>>| loss_grad(mu),
            |m: &mut Self, g: &Vec<Vec<f64>>, alpha| {
                for (t, gv) in m.theta.iter_mut().zip(g) {
                    for (x, d) in t.iter_mut().zip(gv) {
                        *x -= alpha * d;
                    }
                }
            },
            |g: &Vec<Vec<f64>>, a: &Vec<Vec<f64>>, b: &Vec<Vec<f64>>| dot_diff(g, a, b),
            |_| {},
        );
        self.total = n;
        loss
    }

    /// Draws `rows` records by ancestral sampling clique by clique,
    /// returned column-major (one code per attribute).
    pub fn sample<R: Rng + ?Sized>(&self, rows: usize, rng: &mut R) -> Vec<Vec<u32>> {
        let plan = self.plan();
        let mu = self.marginals();
        let sz = &self.sizes;
        let d = sz.len();
        // Per clique: new attributes, and per separator cell a cumulative
        // table over the new attributes' cells.
        struct Step {
            sep: Vec<usize>,
            sep_strides: Vec<usize>,
            new: Vec<usize>,
            new_strides: Vec<usize>,
            cdfs: Vec<Vec<f64>>,
        }
        let mut assigned = vec![false; d];
        let mut steps = Vec::new();
        for &c in &plan.order {
            let ca = &self.cliques[c];
            let sep: Vec<usize> = ca.iter().copied().filter(|&a| assigned[a]).collect();
            let new: Vec<usize> = ca.iter().copied().filter(|&a| !assigned[a]).collect();
            new.iter().for_each(|&a| assigned[a] = true);
            let ps = projection(ca, &sep, sz);
            let pn = projection(ca, &new, sz);
            let nsep = cells(&sep, sz);
            let nnew = cells(&new, sz);
            let mut tab = vec![vec![0.0; nnew]; nsep];
            for ((x, &i), &j) in mu[c].iter().zip(&ps).zip(&pn) {
                tab[i][j] += x;
            }
            let cdfs = tab.iter().map(|r| cumulative(r)).collect();
            steps.push(Step {
                sep_strides: strides(&sep, sz),
                sep,
                new_strides: strides(&new, sz),
                new,
                cdfs,
            });
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
                #[allow(clippy::needless_range_loop)] // i indexes every attribute's column
                for i in 0..len {
                    for s in &steps {
                        let mut si = 0;
                        for (&a, &st) in s.sep.iter().zip(&s.sep_strides) {
                            si += cols[a][i] as usize * st;
                        }
                        let table = &s.cdfs[si];
                        let u: f64 = r.gen::<f64>() * table[table.len() - 1];
                        let mut x = table.partition_point(|&c| c <= u).min(table.len() - 1);
                        for (&a, &st) in s.new.iter().zip(&s.new_strides) {
                            cols[a][i] = (x / st) as u32;
                            x %= st;
                        }
                    }
                }
                cols
            })
            .collect();
        crate::pgm::concat_parts(parts, d, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(m: &JtModel, attrs: &[usize]) -> Vec<f64> {
        let all: Vec<usize> = (0..m.sizes.len()).collect();
        let n = cells(&all, &m.sizes);
        let projs: Vec<Vec<usize>> = m
            .cliques
            .iter()
            .map(|c| projection(&all, c, &m.sizes))
            .collect();
        let mut p: Vec<f64> = (0..n)
            .map(|x| {
                projs
                    .iter()
                    .zip(&m.theta)
                    .map(|(pr, th)| th[pr[x]])
                    .sum::<f64>()
                    .exp()
            })
            .collect();
        let z: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= z);
        sum_marginal(&all, &p, attrs, &m.sizes)
    }

    fn random_model(sizes: Vec<usize>, sets: &[Vec<usize>], seed: u64) -> JtModel {
        use rand::SeedableRng;
        let mut r = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
        let mut m = JtModel::uniform(sizes, sets);
        for t in m.theta.iter_mut() {
            t.iter_mut().for_each(|x| *x = r.gen_range(-2.0..2.0));
        }
        m
    }

    #[test]
    fn junction_tree_marginals_match_brute_force_on_loopy_graphs() {
        let cases: Vec<(Vec<usize>, Vec<Vec<usize>>)> = vec![
            // A 4-cycle and a chord-free 5-cycle.
            (
                vec![2, 3, 2, 3],
                vec![vec![0, 1], vec![1, 2], vec![2, 3], vec![0, 3]],
            ),
            (
                vec![2, 2, 3, 2, 2],
                vec![vec![0, 1], vec![1, 2], vec![2, 3], vec![3, 4], vec![0, 4]],
            ),
            // Triangle plus pendant, a disconnected attribute, a triple.
            (
                vec![3, 2, 2, 2, 3, 2],
                vec![
                    vec![0, 1],
                    vec![1, 2],
                    vec![0, 2],
                    vec![2, 3],
                    vec![1, 3, 5],
                ],
            ),
        ];
        for (seed, (sizes, sets)) in cases.into_iter().enumerate() {
            let m = random_model(sizes.clone(), &sets, seed as u64);
            let mu = m.marginals();
            for (c, cl) in m.cliques.iter().enumerate() {
                let b = brute(&m, cl);
                for (x, y) in mu[c].iter().zip(&b) {
                    assert!((x - y).abs() < 1e-10, "clique {cl:?}: {x} vs {y}");
                }
            }
            // Every pair, in a clique or not.
            let d = sizes.len();
            for a in 0..d {
                for b in a + 1..d {
                    let q = m.query(&mu, &[a, b]);
                    let t = brute(&m, &[a, b]);
                    for (x, y) in q.iter().zip(&t) {
                        assert!((x - y).abs() < 1e-10, "pair ({a},{b}): {x} vs {y}");
                    }
                }
            }
            // Running intersection: each attribute's cliques are connected.
            for a in 0..d {
                let with: Vec<usize> = (0..m.cliques.len())
                    .filter(|&c| m.cliques[c].contains(&a))
                    .collect();
                let inner = m
                    .edges
                    .iter()
                    .filter(|(x, y)| with.contains(x) && with.contains(y))
                    .count();
                assert_eq!(inner + 1, with.len(), "attribute {a}");
            }
        }
    }

    #[test]
    fn estimation_reproduces_consistent_marginals() {
        let sizes = vec![2, 3, 2, 2];
        let sets = vec![vec![0, 1], vec![1, 2], vec![2, 3], vec![0, 3]];
        let truth = random_model(sizes.clone(), &sets, 7);
        let mut ms = Vec::new();
        for s in &sets {
            let p = brute(&truth, s);
            ms.push(Measurement {
                attrs: s.clone(),
                values: p.iter().map(|x| x * 1000.0).collect(),
                sigma: 1.0,
            });
        }
        let mut m = JtModel::uniform(sizes, &sets);
        let loss = m.fit(&ms, 3000);
        assert!(loss < 1e-8, "loss {loss}");
        let mu = m.marginals();
        for s in &sets {
            let q = m.query(&mu, s);
            let t = brute(&truth, s);
            for (x, y) in q.iter().zip(&t) {
                assert!((x - y).abs() < 1e-4, "{s:?}: {x} vs {y}");
            }
        }
        assert!((m.total - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn sampling_follows_the_model() {
        use rand::SeedableRng;
        let sizes = vec![2, 3, 2, 2];
        let sets = vec![vec![0, 1], vec![1, 2], vec![2, 3], vec![0, 3]];
        let m = random_model(sizes.clone(), &sets, 3);
        let mut r = rand_chacha::ChaCha12Rng::seed_from_u64(1);
        let n = 200_000;
        let s = m.sample(n, &mut r);
        for set in &sets {
            let t = brute(&m, set);
            let mut emp = vec![0.0; t.len()];
            for i in 0..n {
                emp[s[set[0]][i] as usize * sizes[set[1]] + s[set[1]][i] as usize] += 1.0;
            }
            let tvd: f64 = emp
                .iter()
                .zip(&t)
                .map(|(e, p)| (e / n as f64 - p).abs())
                .sum::<f64>()
                / 2.0;
            assert!(tvd < 0.01, "{set:?}: {tvd}");
        }
    }
}
