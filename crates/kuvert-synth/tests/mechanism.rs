//! Seeded property tests of the mechanism against plaintext oracles.
#![allow(clippy::needless_range_loop)] // index loops mirror the formulas

use kuvert_deid::table::Table;
use kuvert_synth::pgm::{marginal_counts, Measurement, TreeModel};
use kuvert_synth::{fit, ColumnSpec, FitOptions, SchemaConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random_tree_model(sizes: &[usize], edges: &[(usize, usize)], r: &mut ChaCha20Rng) -> TreeModel {
    let mut m = TreeModel::uniform(sizes.to_vec(), edges.to_vec());
    for t in m.node_theta.iter_mut().chain(m.edge_theta.iter_mut()) {
        for x in t.iter_mut() {
            *x = r.gen_range(-2.0..2.0);
        }
    }
    m
}

/// Joint distribution by enumeration: p(x) ∝ exp(Σθ).
fn brute_force(m: &TreeModel) -> Vec<(Vec<usize>, f64)> {
    let d = m.sizes.len();
    let total: usize = m.sizes.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut z = 0.0;
    for mut idx in 0..total {
        let mut x = vec![0; d];
        for a in (0..d).rev() {
            x[a] = idx % m.sizes[a];
            idx /= m.sizes[a];
        }
        let mut s = 0.0;
        for a in 0..d {
            s += m.node_theta[a][x[a]];
        }
        for (e, &(a, b)) in m.edges.iter().enumerate() {
            s += m.edge_theta[e][x[a] * m.sizes[b] + x[b]];
        }
        let p = f64::exp(s);
        z += p;
        out.push((x, p));
    }
    out.iter_mut().for_each(|(_, p)| *p /= z);
    out
}

#[test]
fn belief_propagation_matches_enumeration() {
    let mut r = rng(1);
    // A tree with a branching node, edges in both orientations, and a
    // separate component.
    let sizes = [2, 3, 4, 2, 3, 2];
    let edges = [(0, 1), (2, 1), (1, 3), (3, 4)];
    for _ in 0..5 {
        let m = random_tree_model(&sizes, &edges, &mut r);
        let joint = brute_force(&m);
        let mu = m.marginals();
        for a in 0..sizes.len() {
            for v in 0..sizes[a] {
                let p: f64 = joint
                    .iter()
                    .filter(|(x, _)| x[a] == v)
                    .map(|(_, p)| p)
                    .sum();
                assert!(
                    (p - mu.nodes[a][v]).abs() < 1e-9,
                    "node {a}={v}: {p} vs {}",
                    mu.nodes[a][v]
                );
            }
        }
        for (e, &(a, b)) in edges.iter().enumerate() {
            for va in 0..sizes[a] {
                for vb in 0..sizes[b] {
                    let p: f64 = joint
                        .iter()
                        .filter(|(x, _)| x[a] == va && x[b] == vb)
                        .map(|(_, p)| p)
                        .sum();
                    assert!((p - mu.edges[e][va * sizes[b] + vb]).abs() < 1e-9);
                }
            }
        }
    }
}

#[test]
fn private_pgm_reproduces_consistent_measurements() {
    let mut r = rng(2);
    let sizes = [3, 4, 2, 5];
    let edges = [(0, 1), (1, 2), (3, 1)];
    let truth = random_tree_model(&sizes, &edges, &mut r);
    let mu = truth.marginals();
    let n = 10_000.0;
    let mut ms = Vec::new();
    for a in 0..sizes.len() {
        ms.push(Measurement {
            attrs: vec![a],
            values: mu.nodes[a].iter().map(|p| p * n).collect(),
            sigma: 1.0,
        });
    }
    for (e, &(a, b)) in edges.iter().enumerate() {
        ms.push(Measurement {
            attrs: vec![a, b],
            values: mu.edges[e].iter().map(|p| p * n).collect(),
            sigma: 2.0,
        });
    }
    let mut m = TreeModel::uniform(sizes.to_vec(), edges.to_vec());
    m.fit(&ms, 3000, |_| {});
    assert!((m.total - n).abs() < 1e-6 * n);
    let got = m.marginals();
    for (e, t) in got.edges.iter().enumerate() {
        for (x, y) in t.iter().zip(&mu.edges[e]) {
            assert!((x - y).abs() < 1e-4, "edge {e}: {x} vs {y}");
        }
    }
    for (a, t) in got.nodes.iter().enumerate() {
        for (x, y) in t.iter().zip(&mu.nodes[a]) {
            assert!((x - y).abs() < 1e-4, "node {a}: {x} vs {y}");
        }
    }
}

/// A table with a planted dependency b = f(a), an independent c, and a
/// noisy copy of a in d.
fn planted(n: usize, seed: u64) -> Table {
    let mut r = rng(seed);
    let mut cols: Vec<(String, Vec<String>)> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| (s.to_string(), Vec::with_capacity(n)))
        .collect();
    for _ in 0..n {
        let a: u32 = r.gen_range(0..5);
        let b = ["x", "y", "z", "x", "w"][a as usize];
        let c: u32 = r.gen_range(0..3);
        let d = if r.gen_bool(0.7) {
            a
        } else {
            r.gen_range(0..5)
        };
        cols[0].1.push(format!("a{a}"));
        cols[1].1.push(b.to_string());
        cols[2].1.push(format!("c{c}"));
        cols[3].1.push(format!("d{d}"));
    }
    Table::from_columns("planted", cols)
}

fn declared(t: &Table) -> SchemaConfig {
    let mut s = SchemaConfig::default();
    for (i, h) in t.headers.iter().enumerate() {
        let mut cats = t.columns[i].dict.clone();
        cats.sort();
        s.columns.insert(
            h.clone(),
            ColumnSpec::Categorical {
                categories: Some(cats),
            },
        );
    }
    s
}

#[test]
fn huge_epsilon_measures_exactly_and_selects_planted_edge() {
    let t = planted(20_000, 3);
    let mut opts = FitOptions::new(1e7, 1e-6);
    opts.schema = declared(&t);
    let f = fit(&t, &opts, &mut rng(4), &mut |_| {}).unwrap();
    let m = &f.model;
    // Measurements equal the true marginals (noise σ ≪ 1 rounds to 0).
    let names: Vec<&str> = m.attributes.iter().map(|a| a.name.as_str()).collect();
    for meas in &m.measurements {
        let attrs: Vec<usize> = meas.attrs.clone();
        let cols: Vec<usize> = attrs
            .iter()
            .map(|&a| t.col_index(names[a]).unwrap())
            .collect();
        // Re-encode the table with the model's category order.
        let mut data = Vec::new();
        let mut sizes = Vec::new();
        for (&a, &c) in attrs.iter().zip(&cols) {
            let kuvert_synth::domain::ColumnDomain::Categorical { categories, .. } =
                &m.columns[a].domain
            else {
                panic!()
            };
            data.push(
                t.columns[c]
                    .codes
                    .iter()
                    .map(|&k| {
                        categories
                            .iter()
                            .position(|x| *x == t.columns[c].dict[k as usize])
                            .unwrap() as u32
                    })
                    .collect::<Vec<u32>>(),
            );
            sizes.push(categories.len());
        }
        let idx: Vec<usize> = (0..attrs.len()).collect();
        let truth = marginal_counts(&data, &sizes, &idx);
        for (x, y) in meas.values.iter().zip(&truth) {
            assert_eq!(*x, *y as f64);
        }
    }
    let sel: Vec<(String, String)> = m.selected.clone();
    assert!(
        sel.iter()
            .any(|(x, y)| (x == "a" && y == "b") || (x == "b" && y == "a")),
        "{sel:?}"
    );
    assert!(
        sel.iter()
            .any(|(x, y)| (x == "a" && y == "d") || (x == "d" && y == "a")),
        "{sel:?}"
    );
    // Synthetic data: 1-way and 2-way marginals close to the data's.
    let syn = m.sample(20_000, &mut rng(5));
    let (t1, t2) = kuvert_synth::bench::mean_tvd(&t, &syn, 32, 1000);
    assert!(t1 < 0.02 && t2 < 0.05, "tvd {t1} {t2}");
    // b = f(a) holds in (nearly) every synthetic row: the fitted
    // potentials of impossible cells go to −∞ only in the limit.
    let (ca, cb) = (syn.col_index("a").unwrap(), syn.col_index("b").unwrap());
    let broken = (0..syn.nrows())
        .filter(|&r| {
            let a: usize = syn.columns[ca].get(r)[1..].parse().unwrap();
            syn.columns[cb].get(r) != ["x", "y", "z", "x", "w"][a]
        })
        .count();
    assert!(broken < syn.nrows() / 200, "{broken} rows break b = f(a)");
}

#[test]
fn measurement_noise_has_the_calibrated_variance() {
    // One attribute of 50 cells, measured 200 times at σ² = 9.
    let data = vec![(0..5000u32).map(|i| i % 50).collect::<Vec<u32>>()];
    let truth = marginal_counts(&data, &[50], &[0]);
    let mut r = rng(6);
    let (mut s, mut s2, mut n) = (0.0, 0.0, 0.0);
    for _ in 0..200 {
        let m = kuvert_synth::mst::measure(&data, &[50], &[0], 9.0, &mut r).unwrap();
        assert_eq!(m.sigma, 3.0);
        for (x, y) in m.values.iter().zip(&truth) {
            let e = x - *y as f64;
            s += e;
            s2 += e * e;
            n += 1.0;
        }
    }
    let mean = s / n;
    let var = s2 / n - mean * mean;
    // Standard error of the variance estimate ≈ 9·√(2/10⁴) ≈ 0.13; 2× or
    // 0.5× the noise (variance 36 or 2.25) is far outside.
    assert!((var - 9.0).abs() < 0.6, "variance {var}");
    assert!(mean.abs() < 0.15, "mean {mean}");
}

#[test]
fn model_round_trips_and_rejects_foreign_files() {
    let t = planted(2000, 7);
    let opts = FitOptions::new(2.0, 1e-6);
    let f = fit(&t, &opts, &mut rng(8), &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.model");
    f.model.save(&p).unwrap();
    let back = kuvert_synth::Model::load(&p).unwrap();
    // JSON keeps f64 to within an ulp or so; compare the structure and the
    // (integer-valued) measurements exactly, the potentials closely.
    assert_eq!(back.columns, f.model.columns);
    assert_eq!(back.selected, f.model.selected);
    assert_eq!(back.measurements.len(), f.model.measurements.len());
    for (x, y) in back.measurements.iter().zip(&f.model.measurements) {
        assert_eq!(x.values, y.values);
    }
    for (x, y) in back
        .model
        .edge_theta
        .iter()
        .flatten()
        .zip(f.model.model.edge_theta.iter().flatten())
    {
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0));
    }
    std::fs::write(&p, r#"{"format":"something-else/1"}"#).unwrap();
    let e = kuvert_synth::Model::load(&p).unwrap_err().to_string();
    assert!(e.contains("kuvert-synth-model/1"), "{e}");
}

#[test]
fn holdout_split_is_a_partition() {
    let t = planted(1000, 9);
    let (a, b) = kuvert_synth::split_holdout(&t, 0.2, &mut rng(10)).unwrap();
    assert_eq!(a.nrows() + b.nrows(), 1000);
    assert!((150..250).contains(&b.nrows()), "{}", b.nrows());
    assert!(kuvert_synth::split_holdout(&t, 1.5, &mut rng(10)).is_err());
}

#[test]
fn aim_stays_within_its_zcdp_budget() {
    let t = kuvert_synth::bench::adult15(4000, 8, 5);
    for (seed, eps) in [(1u64, 0.5), (2, 2.0)] {
        let mut opts = kuvert_synth::FitOptions::new(eps, 1e-6);
        opts.method = kuvert_synth::Method::Aim;
        opts.iters = 200;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let f = kuvert_synth::fit(&t, &opts, &mut rng, &mut |_| {}).unwrap();
        let m = &f.model;
        // Recompute the spend from what the model file records: every
        // measurement's noise and every selection's ε.
        let meas: f64 = m
            .measurements
            .iter()
            .map(|x| 0.5 / (x.sigma * x.sigma))
            .sum();
        let sel: f64 = m.selection_epsilons.iter().map(|e| e * e / 8.0).sum();
        let spent = m.split.domains + meas + sel;
        assert!(
            spent <= m.rho * (1.0 + 1e-12),
            "spent {spent} > rho {}",
            m.rho
        );
        assert!(spent >= m.rho * 0.999, "spent only {spent} of {}", m.rho);
        let s = &m.split;
        assert!(s.domains + s.one_way + s.select + s.two_way <= m.rho * (1.0 + 1e-12));
        assert!(!m.selection_epsilons.is_empty());
        assert!(m.junction.is_some());
        // Sampling works and gives every column.
        let syn = m.sample(500, &mut rng);
        assert_eq!(syn.nrows(), 500);
        assert_eq!(syn.headers, t.headers);
    }
}
