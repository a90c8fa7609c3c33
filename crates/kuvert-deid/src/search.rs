//! The generalisation lattice and its search.
//!
//! A node of the lattice is one generalisation level per quasi-identifier.
//! The search finds, among the nodes that satisfy the privacy models with at
//! most the allowed number of suppressed records, one with the least
//! information loss: a greedy descent from the top finds a good node, then
//! a proof visits every node whose lower bound on the loss (which needs no
//! data) is below the best found, highest bound first. A failing node marks
//! all its specialisations as failing (monotonicity). Each node the proof
//! evaluates is, when it fails, the start of a climb: its classes are rolled
//! up (as in ARX) to its generalisations, which is cheap, and the highest
//! failing node reached marks its whole down-set failing.
//!
//! Rows are first collapsed into distinct (quasi-identifier, sensitive)
//! tuples with a weight, and each node is evaluated by grouping the tuples on
//! a packed integer key.

use crate::error::{DeidError, Result};
use crate::hierarchy::Hierarchy;
use crate::models::{class_ok_sensitive, Models, SensitiveDist};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A fast hasher for integer keys (multiply-shift; not DoS resistant, keys are ours).
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
}

/// Hash map with [`IntHasher`].
pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Information-loss measure that the search minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossMetric {
    /// Non-uniform entropy (bits lost, summed over rows and quasi-identifiers).
    #[default]
    Entropy,
    /// Discernibility: sum of squared class sizes, plus n per suppressed record.
    Discernibility,
    /// Precision (Sweeney): mean relative generalisation height, suppressed = 1.
    Precision,
    /// ARX's *monotonic* non-uniform entropy (`Metric.createEntropyMetric(true)`):
    /// the non-uniform entropy as if nothing were suppressed, i.e. suppressed
    /// records count at the node's generalisation, not as `*`.
    #[serde(rename = "monotonic-entropy")]
    MonotonicEntropy,
}

/// Information loss of one node, all measures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Loss {
    /// Non-uniform entropy in bits.
    pub non_uniform_entropy: f64,
    /// Non-uniform entropy relative to suppressing everything (0..1).
    pub non_uniform_entropy_relative: f64,
    /// Non-uniform entropy without the cost of suppression (ARX's monotonic variant).
    pub monotonic_entropy: f64,
    /// Discernibility metric.
    pub discernibility: f64,
    /// Precision loss (0..1).
    pub precision: f64,
    /// Average equivalence class size of the kept records.
    pub avg_class_size: f64,
}

impl Loss {
    /// Placeholder for nodes that fail (their loss is never used).
    fn failed() -> Loss {
        Loss {
            non_uniform_entropy: f64::INFINITY,
            non_uniform_entropy_relative: f64::INFINITY,
            monotonic_entropy: f64::INFINITY,
            discernibility: f64::INFINITY,
            precision: f64::INFINITY,
            avg_class_size: 0.0,
        }
    }

    /// Value of the chosen metric.
    pub fn value(&self, m: LossMetric) -> f64 {
        match m {
            LossMetric::Entropy => self.non_uniform_entropy,
            LossMetric::Discernibility => self.discernibility,
            LossMetric::Precision => self.precision,
            LossMetric::MonotonicEntropy => self.monotonic_entropy,
        }
    }
}

/// The input of the search: collapsed tuples and the hierarchies.
pub struct Problem<'a> {
    hier: &'a [Hierarchy],
    models: Models,
    /// Number of quasi-identifiers.
    nq: usize,
    /// Base codes of the quasi-identifiers, row-major: tuple `i` is
    /// `rows[i*nq..(i+1)*nq]`.
    rows: Vec<u32>,
    /// Sensitive code of tuple `i` (0 when there is no sensitive column).
    ts: Vec<u32>,
    /// Number of rows of tuple `i`.
    tw: Vec<u64>,
    /// Tuple of each row.
    row_tuple: Vec<u32>,
    n: u64,
    max_suppressed: u64,
    sdist: Option<SensitiveDist>,
    /// `nue_nosupp[q][l]`: entropy loss of `q` at level `l` without suppression.
    nue_nosupp: Arc<Vec<Vec<f64>>>,
    nue_all_suppressed: f64,
    /// `supp_extra[q][l][b]`: extra entropy loss (bits) of suppressing base value `b` of `q` at level `l`.
    supp_extra: Arc<Vec<Vec<Vec<f64>>>>,
    /// Whether the proof climbs from failing nodes by roll-up (default on).
    roll_up: bool,
}

/// Result of evaluating one node.
#[derive(Debug, Clone)]
pub struct NodeEval {
    /// Whether the models hold with suppression within the limit.
    pub passes: bool,
    /// Suppressed rows.
    pub suppressed: u64,
    /// Number of equivalence classes kept.
    pub classes: u64,
    /// Loss (computed only when the node passes; infinite otherwise).
    pub loss: Loss,
    /// Per tuple: kept (true) or suppressed.
    pub tuple_kept: Vec<bool>,
}

/// Outcome of the search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// Chosen level per quasi-identifier.
    pub levels: Vec<usize>,
    /// Rows suppressed.
    pub suppressed: u64,
    /// Classes kept.
    pub classes: u64,
    /// Information loss of the chosen node.
    pub loss: Loss,
    /// Size of the lattice.
    pub lattice_size: u64,
    /// Nodes evaluated on the data.
    pub nodes_evaluated: u64,
    /// Whether the result is proven optimal (monotone models, search finished).
    pub optimal_guaranteed: bool,
    /// Whether the search stopped at its time budget.
    pub stopped_early: bool,
    /// Nodes shown failing by a pair of quasi-identifiers alone (no full evaluation).
    pub pruned_by_pairs: u64,
    /// Further nodes evaluated exactly by rolling up the classes of an
    /// evaluated failing node (one tuple per class) while climbing from it
    /// (not counted in `nodes_evaluated`).
    pub nodes_rolled_up: u64,
    /// Nodes skipped because the suppression of a more general passing node
    /// already puts their loss above the best found (not counting nodes whose
    /// no-suppression bound alone does).
    pub pruned_by_bound: u64,
    /// Per row: kept (true) or suppressed.
    #[serde(skip)]
    pub row_kept: Vec<bool>,
}

/// Progress report from the search.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Nodes resolved (evaluated or inferred or pruned).
    pub resolved: u64,
    /// Lattice size.
    pub total: u64,
    /// Nodes evaluated on the data.
    pub evaluated: u64,
}

impl<'a> Problem<'a> {
    /// Prepare: `qi_codes[q]` are the row codes of quasi-identifier `q` (base
    /// codes of `hier[q]`); `sensitive` is (row codes, dictionary).
    pub fn new(
        hier: &'a [Hierarchy],
        qi_codes: &[&[u32]],
        sensitive: Option<(&[u32], &[String])>,
        models: Models,
        max_suppression: f64,
    ) -> Result<Problem<'a>> {
        if models.needs_sensitive() && sensitive.is_none() {
            return Err(DeidError::Config(
                "l-diversity and t-closeness need a sensitive column (--sensitive COL)".into(),
            ));
        }
        if !(0.0..=1.0).contains(&max_suppression) {
            return Err(DeidError::Config(format!(
                "max suppression must be a fraction between 0 and 1, got {max_suppression}"
            )));
        }
        if models.k == 0 {
            return Err(DeidError::Config("k must be at least 1".into()));
        }
        let nrows = qi_codes.first().map(|c| c.len()).unwrap_or(0);
        let n = nrows as u64;
        // Collapse rows to distinct tuples.
        let mut bits = 0u32;
        let mut widths = Vec::new();
        for h in hier {
            let w = 32 - (h.cardinality(0).max(1) as u32 - 1).leading_zeros();
            widths.push(w.max(1));
            bits += w.max(1);
        }
        let sbits = sensitive
            .map(|(_, d)| (32 - (d.len().max(1) as u32 - 1).leading_zeros()).max(1))
            .unwrap_or(0);
        let mut row_tuple = Vec::with_capacity(nrows);
        let mut tq: Vec<Vec<u32>> = vec![Vec::new(); hier.len()];
        let mut ts = Vec::new();
        let mut tw: Vec<u64> = Vec::new();
        let push_tuple =
            |r: usize, tq: &mut Vec<Vec<u32>>, ts: &mut Vec<u32>, tw: &mut Vec<u64>| {
                for (q, c) in qi_codes.iter().enumerate() {
                    tq[q].push(c[r]);
                }
                ts.push(sensitive.map(|s| s.0[r]).unwrap_or(0));
                tw.push(0);
            };
        if bits + sbits <= 128 {
            let mut map: IntMap<u128, u32> = IntMap::default();
            for r in 0..nrows {
                let mut key = 0u128;
                for (q, c) in qi_codes.iter().enumerate() {
                    key = (key << widths[q]) | c[r] as u128;
                }
                if let Some((s, _)) = sensitive {
                    key = (key << sbits) | s[r] as u128;
                }
                let next = map.len() as u32;
                let id = *map.entry(key).or_insert_with(|| {
                    push_tuple(r, &mut tq, &mut ts, &mut tw);
                    next
                });
                tw[id as usize] += 1;
                row_tuple.push(id);
            }
        } else {
            let mut map: HashMap<Vec<u32>, u32> = HashMap::new();
            for r in 0..nrows {
                let mut key: Vec<u32> = qi_codes.iter().map(|c| c[r]).collect();
                if let Some((s, _)) = sensitive {
                    key.push(s[r]);
                }
                let next = map.len() as u32;
                let id = *map.entry(key).or_insert_with(|| {
                    push_tuple(r, &mut tq, &mut ts, &mut tw);
                    next
                });
                tw[id as usize] += 1;
                row_tuple.push(id);
            }
        }
        let base_counts: Vec<Vec<u64>> = hier
            .iter()
            .zip(qi_codes)
            .map(|(h, c)| {
                let mut v = vec![0u64; h.cardinality(0)];
                for &x in c.iter() {
                    v[x as usize] += 1;
                }
                v
            })
            .collect();
        let level_counts: Vec<Vec<Vec<u64>>> = hier
            .iter()
            .zip(&base_counts)
            .map(|(h, bc)| {
                (0..h.levels())
                    .map(|l| {
                        let mut v = vec![0u64; h.cardinality(l)];
                        for (b, &cnt) in bc.iter().enumerate() {
                            v[h.maps[l][b] as usize] += cnt;
                        }
                        v
                    })
                    .collect()
            })
            .collect();
        let nue_nosupp: Vec<Vec<f64>> = hier
            .iter()
            .enumerate()
            .map(|(q, h)| {
                (0..h.levels())
                    .map(|l| {
                        base_counts[q]
                            .iter()
                            .enumerate()
                            .filter(|(_, &c)| c > 0)
                            .map(|(b, &c)| {
                                let g = level_counts[q][l][h.maps[l][b] as usize];
                                c as f64 * (g as f64 / c as f64).log2()
                            })
                            .sum()
                    })
                    .collect()
            })
            .collect();
        let nue_all_suppressed = base_counts
            .iter()
            .map(|bc| {
                bc.iter()
                    .filter(|&&c| c > 0)
                    .map(|&c| c as f64 * (n as f64 / c as f64).log2())
                    .sum::<f64>()
            })
            .sum();
        let nq = tq.len();
        let mut rows = vec![0u32; tw.len() * nq];
        for (q, col) in tq.iter().enumerate() {
            for (i, &c) in col.iter().enumerate() {
                rows[i * nq + q] = c;
            }
        }
        let supp_extra: Vec<Vec<Vec<f64>>> = hier
            .iter()
            .enumerate()
            .map(|(q, h)| {
                (0..h.levels())
                    .map(|l| {
                        base_counts[q]
                            .iter()
                            .enumerate()
                            .map(|(b, &c)| {
                                if c == 0 {
                                    return 0.0;
                                }
                                let g = level_counts[q][l][h.maps[l][b] as usize] as f64;
                                (n as f64 / c as f64).log2() - (g / c as f64).log2()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let sdist = match (models.t, sensitive) {
            (Some(_), Some((codes, dict))) => {
                let mut counts = vec![0u64; dict.len()];
                for &c in codes {
                    counts[c as usize] += 1;
                }
                Some(SensitiveDist::new(&counts, dict, models.t_distance))
            }
            _ => None,
        };
        Ok(Problem {
            hier,
            models,
            nq,
            rows,
            ts,
            tw,
            row_tuple,
            n,
            max_suppressed: (max_suppression * n as f64 + 1e-9).floor() as u64,
            sdist,
            nue_nosupp: Arc::new(nue_nosupp),
            nue_all_suppressed,
            supp_extra: Arc::new(supp_extra),
            roll_up: true,
        })
    }

    /// The tuples collapsed to the classes of node `lv` (with the sensitive
    /// value, when a model needs it): one tuple per class (or per class and
    /// sensitive value) whose codes are those of one of its tuples and whose
    /// weight is the sum of theirs. Every node at or above `lv` in the
    /// lattice (each level at least that of `lv`) has exactly the same
    /// classes, verdict and loss on the copy as on `self`: its classes are
    /// unions of the classes of `lv`, and the loss of suppressing a tuple at
    /// such a node depends only on its codes at `lv` (see `supp_extra`). This
    /// is ARX's roll-up. Without per-row data: for the search only.
    fn coarsened(&self, lv: &[usize]) -> Problem<'a> {
        let keys = self.keys(lv);
        let (rep, tw) = if self.models.needs_sensitive() {
            let (gid, ng) = self.group(keys);
            let mut rep: Vec<u32> = Vec::with_capacity(ng);
            let mut tw: Vec<u64> = Vec::with_capacity(ng);
            let mut m: IntMap<u64, u32> = IntMap::default();
            for (i, ((&g, &sv), &w)) in gid.iter().zip(&self.ts).zip(&self.tw).enumerate() {
                let key = ((g as u64) << 32) | sv as u64;
                let next = rep.len() as u32;
                let j = *m.entry(key).or_insert_with(|| {
                    rep.push(i as u32);
                    tw.push(0);
                    next
                });
                tw[j as usize] += w;
            }
            (rep, tw)
        } else {
            self.class_reps(keys)
        };
        let nq = self.nq;
        let mut rows = Vec::with_capacity(rep.len() * nq);
        for &i in &rep {
            let i = i as usize;
            rows.extend_from_slice(&self.rows[i * nq..(i + 1) * nq]);
        }
        let pick = |v: &[u32]| -> Vec<u32> { rep.iter().map(|&i| v[i as usize]).collect() };
        Problem {
            hier: self.hier,
            models: self.models.clone(),
            nq: self.nq,
            rows,
            // Read only when a model needs the sensitive value.
            ts: if self.models.needs_sensitive() {
                pick(&self.ts)
            } else {
                vec![0; rep.len()]
            },
            tw,
            row_tuple: Vec::new(),
            n: self.n,
            max_suppressed: self.max_suppressed,
            sdist: self.sdist.clone(),
            nue_nosupp: Arc::clone(&self.nue_nosupp),
            nue_all_suppressed: self.nue_all_suppressed,
            supp_extra: Arc::clone(&self.supp_extra),
            roll_up: self.roll_up,
        }
    }

    /// One representative tuple per class (the first) and the class sizes,
    /// in one pass over the keys.
    fn class_reps(&self, keys: NodeKeys) -> (Vec<u32>, Vec<u64>) {
        let mut rep: Vec<u32> = Vec::new();
        let mut tw: Vec<u64> = Vec::new();
        // `slot` holds the class index + 1 of a key (0: not seen yet).
        let mut visit = |i: usize, slot: &mut u64| {
            if *slot == 0 {
                rep.push(i as u32);
                tw.push(0);
                *slot = rep.len() as u64;
            }
            tw[*slot as usize - 1] += self.tw[i];
        };
        match keys {
            NodeKeys::Dense(keys, space) => with_scratch(space, |scratch| {
                for (i, &k) in keys.iter().enumerate() {
                    visit(i, &mut scratch[k as usize]);
                }
                for &k in &keys {
                    scratch[k as usize] = 0;
                }
            }),
            NodeKeys::W64(keys) => with_table(keys.len(), |t, _| {
                for (i, &k) in keys.iter().enumerate() {
                    let s = t.slot(k);
                    visit(i, &mut t.vals[s]);
                }
                t.clear();
            }),
            NodeKeys::Wide(keys) => {
                let mut m: IntMap<u128, u64> = IntMap::default();
                for (i, &k) in keys.iter().enumerate() {
                    visit(i, m.entry(k).or_default());
                }
            }
            NodeKeys::Huge(keys) => {
                let mut m: HashMap<Vec<u32>, u64> = HashMap::new();
                for (i, k) in keys.into_iter().enumerate() {
                    visit(i, m.entry(k).or_default());
                }
            }
        }
        (rep, tw)
    }

    /// Turn the roll-up climb of the proof on or off (default on; it
    /// applies to monotone models only). For tests and benchmarks.
    #[doc(hidden)]
    pub fn set_roll_up(&mut self, on: bool) {
        self.roll_up = on;
    }

    /// Evaluate node `lv` on the tuples collapsed to the classes of `base`
    /// (which `lv` must generalise, level by level), as the proof's climb
    /// does. For tests.
    #[doc(hidden)]
    pub fn evaluate_rolled_up(&self, base: &[usize], lv: &[usize]) -> NodeEval {
        assert!(
            base.iter().zip(lv).all(|(b, l)| b <= l),
            "{lv:?} does not generalise {base:?}"
        );
        self.coarsened(base).evaluate_with(lv, false)
    }

    /// Number of distinct tuples after collapsing.
    pub fn distinct_tuples(&self) -> usize {
        self.tw.len()
    }

    /// Lower bound of the chosen loss at a node (the loss with nothing suppressed).
    fn lower_bound(&self, lv: &[usize], metric: LossMetric) -> f64 {
        match metric {
            LossMetric::Entropy | LossMetric::MonotonicEntropy => lv
                .iter()
                .enumerate()
                .map(|(q, &l)| self.nue_nosupp[q][l])
                .sum(),
            LossMetric::Precision => {
                lv.iter()
                    .enumerate()
                    .map(|(q, &l)| l as f64 / (self.hier[q].levels() - 1).max(1) as f64)
                    .sum::<f64>()
                    / lv.len().max(1) as f64
            }
            LossMetric::Discernibility => {
                // Each kept class has at least k rows, and there are at most
                // as many classes as label combinations: the sum of squared
                // sizes is at least n*k and n^2/combinations.
                let n = self.n as f64;
                let mut space = 1f64;
                for (q, &l) in lv.iter().enumerate() {
                    space *= self.hier[q].cardinality(l).max(1) as f64;
                }
                (n * (self.models.k as f64).min(n)).max(n * n / space.min(n).max(1.0))
            }
        }
    }

    /// Mixed-radix key per tuple at node `lv` in an integer type wide
    /// enough for the key space: one pass over the row-major tuples (less
    /// memory traffic than per column).
    fn packed_keys<K>(&self, lv: &[usize]) -> Vec<K>
    where
        K: Copy + From<u32> + std::ops::Mul<Output = K> + std::ops::Add<Output = K>,
    {
        let maps: Vec<(&[u32], K)> = lv
            .iter()
            .enumerate()
            .map(|(q, &l)| {
                (
                    self.hier[q].maps[l].as_slice(),
                    K::from(self.hier[q].cardinality(l).max(1) as u32),
                )
            })
            .collect();
        self.rows
            .chunks_exact(self.nq.max(1))
            .map(|row| {
                row.iter()
                    .zip(&maps)
                    .fold(K::from(0), |k, (&c, &(map, card))| {
                        k * card + K::from(map[c as usize])
                    })
            })
            .collect()
    }

    /// Packed key per tuple at node `lv` (mixed radix over the level cardinalities).
    fn keys(&self, lv: &[usize]) -> NodeKeys {
        let nt = self.tw.len();
        let mut space: u128 = 1;
        for (q, &l) in lv.iter().enumerate() {
            space = space.saturating_mul(self.hier[q].cardinality(l).max(1) as u128);
        }
        if space <= DENSE_LIMIT.min(4 * nt.max(1)) as u128 {
            NodeKeys::Dense(self.packed_keys(lv), space as usize)
        } else if space <= u64::MAX as u128 {
            NodeKeys::W64(self.packed_keys(lv))
        } else if space < u128::MAX {
            NodeKeys::Wide(self.packed_keys(lv))
        } else {
            let keys: Vec<Vec<u32>> = self
                .rows
                .chunks_exact(self.nq.max(1))
                .map(|row| {
                    row.iter()
                        .zip(lv)
                        .enumerate()
                        .map(|(q, (&c, &l))| self.hier[q].maps[l][c as usize])
                        .collect()
                })
                .collect();
            NodeKeys::Huge(keys)
        }
    }

    /// Group id per tuple and number of groups.
    fn group(&self, keys: NodeKeys) -> (Vec<u32>, usize) {
        let nt = self.tw.len();
        let mut gid = vec![0u32; nt];
        match keys {
            NodeKeys::Dense(keys, space) => {
                let next = with_scratch(space, |scratch| {
                    let mut next = 0u32;
                    for (g, &k) in gid.iter_mut().zip(&keys) {
                        let s = &mut scratch[k as usize];
                        if *s == 0 {
                            next += 1;
                            *s = next as u64;
                        }
                        *g = (*s - 1) as u32;
                    }
                    for &k in &keys {
                        scratch[k as usize] = 0;
                    }
                    next
                });
                (gid, next as usize)
            }
            NodeKeys::W64(keys) => with_table(nt, |t, _| {
                // The value of a slot is its group id + 1.
                let mut next = 0u64;
                for (g, &k) in gid.iter_mut().zip(&keys) {
                    let s = t.slot(k);
                    if t.vals[s] == 0 {
                        next += 1;
                        t.vals[s] = next;
                    }
                    *g = (t.vals[s] - 1) as u32;
                }
                t.clear();
                (gid, next as usize)
            }),
            NodeKeys::Wide(keys) => {
                let mut m: IntMap<u128, u32> = IntMap::default();
                for (g, &k) in gid.iter_mut().zip(&keys) {
                    let next = m.len() as u32;
                    *g = *m.entry(k).or_insert(next);
                }
                (gid, m.len())
            }
            NodeKeys::Huge(keys) => {
                let mut m: HashMap<Vec<u32>, u32> = HashMap::new();
                for (g, k) in gid.iter_mut().zip(keys) {
                    let next = m.len() as u32;
                    *g = *m.entry(k).or_insert(next);
                }
                (gid, m.len())
            }
        }
    }

    /// Evaluate a node: which classes pass, suppression and loss.
    pub fn evaluate(&self, lv: &[usize]) -> NodeEval {
        self.evaluate_with(lv, true)
    }

    /// Extra entropy loss (bits) of suppressing tuple `i` at node `lv`.
    #[inline]
    fn tuple_supp_extra(&self, lv: &[usize], i: usize) -> f64 {
        let w = self.tw[i] as f64;
        let nq = lv.len();
        let row = &self.rows[i * nq..(i + 1) * nq];
        lv.iter()
            .zip(row)
            .enumerate()
            .map(|(q, (&l, &b))| w * self.supp_extra[q][l][b as usize])
            .sum()
    }

    /// Evaluate a node; `want_kept` also returns the per-tuple kept flags
    /// (the search needs them only for the chosen node).
    fn evaluate_with(&self, lv: &[usize], want_kept: bool) -> NodeEval {
        let keys = self.keys(lv);
        let k = self.models.k;
        let max_supp = self.max_suppressed;
        // Fast path: k-anonymity only and a small key space: count in a dense array.
        if let (false, NodeKeys::Dense(keys, space)) = (self.models.needs_sensitive(), &keys) {
            const MARK: u64 = 1 << 63;
            let (tuple_kept, suppressed, classes, sumsq, corr) = with_scratch(*space, |scratch| {
                for (&key, &w) in keys.iter().zip(&self.tw) {
                    scratch[key as usize] += w;
                }
                // Summarise each class once (marked when seen).
                let (mut suppressed, mut classes, mut sumsq) = (0u64, 0u64, 0f64);
                for &key in keys.iter() {
                    let s = &mut scratch[key as usize];
                    if *s & MARK == 0 {
                        let c = *s;
                        if c >= k {
                            classes += 1;
                            sumsq += (c as f64) * (c as f64);
                        } else {
                            suppressed += c;
                        }
                        *s = c | MARK;
                    }
                }
                let passes = suppressed <= max_supp;
                let mut corr = 0.0;
                let mut tuple_kept = Vec::new();
                if want_kept || (passes && suppressed > 0) {
                    if want_kept {
                        tuple_kept.reserve(keys.len());
                    }
                    for (i, &key) in keys.iter().enumerate() {
                        let kept = scratch[key as usize] & !MARK >= k;
                        if !kept && passes {
                            corr += self.tuple_supp_extra(lv, i);
                        }
                        if want_kept {
                            tuple_kept.push(kept);
                        }
                    }
                }
                for &key in keys.iter() {
                    scratch[key as usize] = 0;
                }
                (tuple_kept, suppressed, classes, sumsq, corr)
            });
            let passes = suppressed <= max_supp;
            let loss = if passes {
                self.loss(lv, sumsq, corr, suppressed, classes)
            } else {
                Loss::failed()
            };
            return NodeEval {
                passes,
                suppressed,
                classes,
                loss,
                tuple_kept,
            };
        }
        if let (false, NodeKeys::W64(keys)) = (self.models.needs_sensitive(), &keys) {
            return with_table(keys.len(), |t, slots| {
                slots.clear();
                slots.extend(keys.iter().zip(&self.tw).map(|(&key, &w)| {
                    let s = t.slot(key);
                    t.vals[s] += w;
                    s as u32
                }));
                let (mut suppressed, mut classes, mut sumsq) = (0u64, 0u64, 0f64);
                for &s in &t.used {
                    let v = t.vals[s as usize];
                    if v >= k {
                        classes += 1;
                        sumsq += (v as f64) * (v as f64);
                    } else {
                        suppressed += v;
                    }
                }
                let passes = suppressed <= max_supp;
                let mut corr = 0.0;
                let mut tuple_kept = Vec::new();
                if want_kept || (passes && suppressed > 0) {
                    for (i, &s) in slots.iter().enumerate() {
                        let kept = t.vals[s as usize] >= k;
                        if !kept && passes {
                            corr += self.tuple_supp_extra(lv, i);
                        }
                        if want_kept {
                            tuple_kept.push(kept);
                        }
                    }
                }
                t.clear();
                let loss = if passes {
                    self.loss(lv, sumsq, corr, suppressed, classes)
                } else {
                    Loss::failed()
                };
                NodeEval {
                    passes,
                    suppressed,
                    classes,
                    loss,
                    tuple_kept,
                }
            });
        }
        let (gid, ng) = self.group(keys);
        let mut size = vec![0u64; ng];
        for (&g, &w) in gid.iter().zip(&self.tw) {
            size[g as usize] += w;
        }
        let mut ok: Vec<bool> = size.iter().map(|&s| s >= k).collect();
        if self.models.needs_sensitive() {
            // Histograms per group: sort (group, sensitive) pairs of the tuples.
            let mut pairs: Vec<(u64, u64)> = gid
                .iter()
                .zip(&self.ts)
                .zip(&self.tw)
                .filter(|((&g, _), _)| ok[g as usize])
                .map(|((&g, &s), &w)| (((g as u64) << 32) | s as u64, w))
                .collect();
            pairs.sort_unstable_by_key(|p| p.0);
            let mut hist: Vec<(u32, u64)> = Vec::new();
            let mut i = 0;
            while i < pairs.len() {
                let g = (pairs[i].0 >> 32) as usize;
                hist.clear();
                while i < pairs.len() && (pairs[i].0 >> 32) as usize == g {
                    let s = pairs[i].0 as u32;
                    match hist.last_mut() {
                        Some(last) if last.0 == s => last.1 += pairs[i].1,
                        _ => hist.push((s, pairs[i].1)),
                    }
                    i += 1;
                }
                if !class_ok_sensitive(&self.models, &hist, self.sdist.as_ref()) {
                    ok[g] = false;
                }
            }
        }
        let suppressed: u64 = size
            .iter()
            .zip(&ok)
            .filter(|(_, &o)| !o)
            .map(|(s, _)| s)
            .sum();
        let classes = ok.iter().filter(|&&o| o).count() as u64;
        let sumsq: f64 = size
            .iter()
            .zip(&ok)
            .filter(|(_, &o)| o)
            .map(|(&s, _)| (s as f64) * (s as f64))
            .sum();
        let passes = suppressed <= max_supp;
        let mut corr = 0.0;
        if passes && suppressed > 0 {
            for (i, &g) in gid.iter().enumerate() {
                if !ok[g as usize] {
                    corr += self.tuple_supp_extra(lv, i);
                }
            }
        }
        let tuple_kept: Vec<bool> = if want_kept {
            gid.iter().map(|&g| ok[g as usize]).collect()
        } else {
            Vec::new()
        };
        let loss = if passes {
            self.loss(lv, sumsq, corr, suppressed, classes)
        } else {
            Loss::failed()
        };
        NodeEval {
            passes,
            suppressed,
            classes,
            loss,
            tuple_kept,
        }
    }

    /// Loss of a passing node; `supp_corr` is the extra entropy of the
    /// suppressed tuples (suppressing a value costs log2(n/c) instead of
    /// log2(g/c)).
    fn loss(
        &self,
        lv: &[usize],
        sumsq: f64,
        supp_corr: f64,
        suppressed: u64,
        classes: u64,
    ) -> Loss {
        let n = self.n as f64;
        let disc = sumsq + suppressed as f64 * n;
        // Non-uniform entropy: the no-suppression value plus the correction.
        let nue_nosupp: f64 = lv
            .iter()
            .enumerate()
            .map(|(q, &l)| self.nue_nosupp[q][l])
            .sum::<f64>();
        let nue = nue_nosupp + supp_corr;
        let nq = lv.len().max(1) as f64;
        let prec_kept: f64 = lv
            .iter()
            .enumerate()
            .map(|(q, &l)| l as f64 / (self.hier[q].levels() - 1).max(1) as f64)
            .sum::<f64>()
            / nq;
        let precision = if n > 0.0 {
            (prec_kept * (n - suppressed as f64) + suppressed as f64) / n
        } else {
            0.0
        };
        Loss {
            non_uniform_entropy: nue,
            monotonic_entropy: nue_nosupp,
            non_uniform_entropy_relative: if self.nue_all_suppressed > 0.0 {
                nue / self.nue_all_suppressed
            } else {
                0.0
            },
            discernibility: disc,
            precision,
            avg_class_size: if classes > 0 {
                (n - suppressed as f64) / classes as f64
            } else {
                0.0
            },
        }
    }

    /// Whether the projection of node `lv` on some pair of quasi-identifiers
    /// has more than the allowed records in classes smaller than k. Merging
    /// in more columns only splits classes, so the node then fails too.
    fn pair_fails(
        &self,
        lv: &[usize],
        memo: &mut HashMap<(usize, usize, usize, usize), bool>,
    ) -> bool {
        for a in 0..lv.len() {
            for b in a + 1..lv.len() {
                let key = (a, lv[a], b, lv[b]);
                let fails = match memo.get(&key) {
                    Some(&f) => f,
                    None => {
                        let f = self.pair_suppressed(a, lv[a], b, lv[b]) > self.max_suppressed;
                        memo.insert(key, f);
                        f
                    }
                };
                if fails {
                    return true;
                }
            }
        }
        false
    }

    /// Records in classes smaller than k on the projection to columns `a`, `b`.
    fn pair_suppressed(&self, a: usize, la: usize, b: usize, lb: usize) -> u64 {
        let (ma, mb) = (&self.hier[a].maps[la], &self.hier[b].maps[lb]);
        let cb = self.hier[b].cardinality(lb).max(1) as u64;
        let space = self.hier[a].cardinality(la).max(1) as u64 * cb;
        let k = self.models.k;
        let mut counts: IntMap<u64, u64> = IntMap::default();
        let mut dense = if space <= (1 << 22) {
            vec![0u64; space as usize]
        } else {
            Vec::new()
        };
        let nq = self.nq.max(1);
        for (row, &w) in self.rows.chunks_exact(nq).zip(&self.tw) {
            let (x, y) = (row[a], row[b]);
            let key = ma[x as usize] as u64 * cb + mb[y as usize] as u64;
            if dense.is_empty() {
                *counts.entry(key).or_default() += w;
            } else {
                dense[key as usize] += w;
            }
        }
        if dense.is_empty() {
            counts.values().filter(|&&c| c < k).sum()
        } else {
            dense.iter().filter(|&&c| c > 0 && c < k).sum()
        }
    }

    /// Per-row kept flags from per-tuple ones.
    pub fn rows_kept(&self, tuple_kept: &[bool]) -> Vec<bool> {
        self.row_tuple
            .iter()
            .map(|&t| tuple_kept[t as usize])
            .collect()
    }

    /// Run the lattice search.
    ///
    /// Phase 1 descends greedily from the top node (everything `*`), always
    /// to the passing predecessor with the least loss, to get a good
    /// solution quickly. Phase 2 visits every node whose loss lower bound
    /// is below the best loss found, from the highest bound down: a failing
    /// node marks everything below it as failing (monotonicity), a passing
    /// one may improve the best. With monotone models a failing node is
    /// also climbed from: its generalisations are evaluated by roll-up and
    /// the climb follows the one that fails with the most suppressed records
    /// until none fails; that last node's down-set is marked failing. Every
    /// node is thus either evaluated, implied failing, or provably no better
    /// than the result.
    ///
    /// The proof of optimality in phase 2 can take long on big lattices;
    /// after `time_budget` seconds the search stops and returns the best
    /// node found, marked as not proven optimal (it always satisfies the
    /// models).
    pub fn search(
        &self,
        metric: LossMetric,
        time_budget: f64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<SearchResult> {
        let started = std::time::Instant::now();
        let mut stopped_early = false;
        let radix: Vec<usize> = self.hier.iter().map(|h| h.levels()).collect();
        let mut total: u64 = 1;
        for &r in &radix {
            total = total.saturating_mul(r as u64);
        }
        if total > 20_000_000 {
            return Err(DeidError::Config(format!(
                "the generalisation lattice has {total} nodes (product of the hierarchy depths); use fewer quasi-identifiers or shallower hierarchies (limit 20 million)"
            )));
        }
        let total_us = total as usize;
        let mut stride = vec![1usize; radix.len()];
        for q in (0..radix.len().saturating_sub(1)).rev() {
            stride[q] = stride[q + 1] * radix[q + 1];
        }
        let decode = |mut idx: usize, out: &mut Vec<usize>| {
            out.clear();
            for &st in &stride {
                out.push(idx / st);
                idx %= st;
            }
        };
        const UNKNOWN: u8 = 0;
        const PASS: u8 = 1;
        const FAIL: u8 = 2;
        let mut status = vec![UNKNOWN; total_us];
        let mut lb = vec![0f64; total_us];
        let mut lv = Vec::new();
        for (i, b) in lb.iter_mut().enumerate() {
            decode(i, &mut lv);
            *b = self.lower_bound(&lv, metric);
        }
        // Outer bound (monotone models only): with k-anonymity and distinct
        // l-diversity every record suppressed at a node is suppressed at all
        // its specialisations too (classes only split), and suppressing a
        // value at a lower level costs at least as much. `extra[i]` is a
        // lower bound on what suppression adds to the loss of node `i`
        // (for entropy: bits; for precision and discernibility: records),
        // taken from evaluated passing generalisations of `i`.
        let use_extra = self.models.monotone();
        let mut extra = vec![0f64; if use_extra { total_us } else { 0 }];
        let nf = self.n as f64;
        let kk = (self.models.k as f64).min(nf);
        let bound_of = |node: usize, extra: &[f64]| -> f64 {
            let e = if use_extra { extra[node] } else { 0.0 };
            match metric {
                LossMetric::Entropy => lb[node] + e,
                LossMetric::MonotonicEntropy => lb[node],
                LossMetric::Precision => lb[node] + e * (1.0 - lb[node]).max(0.0) / nf.max(1.0),
                LossMetric::Discernibility => lb[node].max(nf * kk + e * (nf - kk)),
            }
        };
        let mut pruned_by_bound = 0u64;
        let mut resolved: u64 = 0;
        let mut evaluated: u64 = 0;
        let mut best: Option<(f64, Vec<usize>, NodeEval)> = None;
        let mut stack: Vec<usize> = Vec::new();
        // Nodes evaluated on the data (directly or rolled up).
        let mut seen = vec![false; total_us];
        let mut rolled_up = 0u64;
        // Mark `start` and everything below it as failing.
        let fail_down =
            |start: usize, status: &mut Vec<u8>, resolved: &mut u64, stack: &mut Vec<usize>| {
                // Nodes marked PASS before were skipped by their bound,
                // already counted as resolved.
                stack.clear();
                if status[start] != FAIL {
                    *resolved += (status[start] == UNKNOWN) as u64;
                    status[start] = FAIL;
                }
                stack.push(start);
                while let Some(i) = stack.pop() {
                    let mut rem = i;
                    for &st in &stride {
                        let l = rem / st;
                        rem %= st;
                        if l > 0 {
                            let j = i - st;
                            if status[j] != FAIL {
                                *resolved += (status[j] == UNKNOWN) as u64;
                                status[j] = FAIL;
                                stack.push(j);
                            }
                        }
                    }
                }
            };
        // Record the outcome of an evaluated node; true if it passes.
        let apply = |idx: usize,
                     ev: NodeEval,
                     extra: &mut Vec<f64>,
                     status: &mut Vec<u8>,
                     resolved: &mut u64,
                     stack: &mut Vec<usize>,
                     best: &mut Option<(f64, Vec<usize>, NodeEval)>|
         -> bool {
            if ev.passes {
                if status[idx] == UNKNOWN {
                    *resolved += 1;
                }
                status[idx] = PASS;
                let mut lv = Vec::new();
                decode(idx, &mut lv);
                let v = ev.loss.value(metric);
                if use_extra {
                    let e = match metric {
                        // A little below the computed correction, for rounding.
                        LossMetric::Entropy => {
                            (ev.loss.non_uniform_entropy - lb[idx]).max(0.0) * (1.0 - 1e-9)
                        }
                        LossMetric::MonotonicEntropy => 0.0,
                        LossMetric::Precision | LossMetric::Discernibility => ev.suppressed as f64,
                    };
                    if e > extra[idx] {
                        extra[idx] = e;
                    }
                }
                // Better loss wins; on a tie, the less generalised node.
                let better = best
                    .as_ref()
                    .map(|b| {
                        let eps = 1e-9 * b.0.abs().max(1.0);
                        v < b.0 - eps
                            || (v <= b.0 + eps
                                && lv.iter().sum::<usize>() < b.1.iter().sum::<usize>())
                    })
                    .unwrap_or(true);
                if better {
                    *best = Some((v, lv, ev));
                }
                true
            } else {
                fail_down(idx, status, resolved, stack);
                false
            }
        };
        // Evaluate several nodes at once, one per thread.
        let eval_many = |p: &Problem, nodes: &[usize]| -> Vec<NodeEval> {
            nodes
                .par_iter()
                .map(|&i| {
                    let mut lv = Vec::new();
                    decode(i, &mut lv);
                    p.evaluate_with(&lv, false)
                })
                .collect()
        };
        let threads = rayon::current_num_threads().max(1);
        // Phase 1: greedy descent from the top.
        let top = total_us - 1;
        evaluated += 1;
        seen[top] = true;
        let top_ev = eval_many(self, &[top]).pop();
        let top_passes = match top_ev {
            Some(ev) => apply(
                top,
                ev,
                &mut extra,
                &mut status,
                &mut resolved,
                &mut stack,
                &mut best,
            ),
            None => false,
        };
        if top_passes {
            let mut cur = top;
            loop {
                let mut cands = Vec::new();
                let mut rem = cur;
                for &st in &stride {
                    let l = rem / st;
                    rem %= st;
                    if l > 0 && status[cur - st] != FAIL {
                        cands.push(cur - st);
                    }
                }
                evaluated += cands.len() as u64;
                for &j in &cands {
                    seen[j] = true;
                }
                let evs = eval_many(self, &cands);
                let mut next: Option<(f64, usize)> = None;
                for (&j, ev) in cands.iter().zip(evs) {
                    let before = best.as_ref().map(|b| b.0).unwrap_or(f64::INFINITY);
                    if apply(
                        j,
                        ev,
                        &mut extra,
                        &mut status,
                        &mut resolved,
                        &mut stack,
                        &mut best,
                    ) {
                        let v = best.as_ref().map(|b| b.0).unwrap_or(f64::INFINITY);
                        // Rank candidates by their lower bound when they did not improve the best.
                        let score = if v < before { v } else { lb[j] };
                        if next.map(|n| score < n.0).unwrap_or(true) {
                            next = Some((score, j));
                        }
                    }
                }
                match next {
                    Some((_, j)) => cur = j,
                    None => break,
                }
                progress(Progress {
                    resolved,
                    total,
                    evaluated,
                });
            }
        }
        // Phase 2: all nodes whose bound is below the best, highest bound first.
        let mut order: Vec<u32> = (0..total_us as u32).collect();
        // Ties: more general nodes first, so that they pass their bound on.
        let height = |mut i: usize| -> usize {
            let mut h = 0;
            for &st in &stride {
                h += i / st;
                i %= st;
            }
            h
        };
        order.sort_unstable_by(|&a, &b| {
            lb[b as usize]
                .total_cmp(&lb[a as usize])
                .then_with(|| height(b as usize).cmp(&height(a as usize)))
        });
        // Climbing needs monotone models: the failure of a generalisation
        // is marked down onto the node it was climbed from.
        let climbing = self.roll_up && self.models.monotone();
        // Evaluate `start` and, when it fails, climb: its classes are rolled
        // up to its direct generalisations (one tuple per class, so far
        // cheaper than a pass over all tuples), the one that fails with the
        // most records suppressed becomes the next step, until none fails.
        // Every node on the way is an exact evaluation, and the failure of
        // the last one, marked down the lattice, covers `start` and much
        // more. Returns the evaluations, `start` first.
        let climb = |start: usize, status: &[u8], seen: &[bool]| -> Vec<(usize, NodeEval)> {
            let mut lv = Vec::new();
            decode(start, &mut lv);
            if !climbing {
                return vec![(start, self.evaluate_with(&lv, false))];
            }
            let mut here = self.coarsened(&lv);
            let ev = here.evaluate_with(&lv, false);
            let passes = ev.passes;
            let mut out = vec![(start, ev)];
            if passes {
                return out;
            }
            let mut cur = start;
            loop {
                let mut next: Option<(u64, usize)> = None;
                let mut rem = cur;
                for (q, &st) in stride.iter().enumerate() {
                    let l = rem / st;
                    rem %= st;
                    let par = cur + st;
                    if l + 1 >= radix[q] || status[par] == FAIL || seen[par] {
                        continue;
                    }
                    decode(par, &mut lv);
                    let ev = here.evaluate_with(&lv, false);
                    if !ev.passes && next.map(|n| ev.suppressed > n.0).unwrap_or(true) {
                        next = Some((ev.suppressed, par));
                    }
                    out.push((par, ev));
                }
                let Some((_, par)) = next else { break };
                decode(par, &mut lv);
                here = here.coarsened(&lv);
                cur = par;
            }
            out
        };
        let mut pos = 0;
        let mut batch = Vec::with_capacity(threads);
        let mut pair_memo: HashMap<(usize, usize, usize, usize), bool> = HashMap::new();
        let mut pair_pruned = 0u64;
        while pos < order.len() {
            batch.clear();
            while pos < order.len() && batch.len() < threads {
                let node = order[pos] as usize;
                pos += 1;
                let bound = best.as_ref().map(|b| b.0).unwrap_or(f64::INFINITY);
                if use_extra {
                    // Inherit the outer bound of the direct generalisations
                    // (visited before: higher or equal bound, more general).
                    let mut rem = node;
                    let mut e = extra[node];
                    for (q, &st) in stride.iter().enumerate() {
                        let l = rem / st;
                        rem %= st;
                        if l + 1 < radix[q] {
                            e = e.max(extra[node + st]);
                        }
                    }
                    extra[node] = e;
                }
                let tol = 1e-9 * bound.abs().max(1.0);
                if lb[node] > bound + tol || bound_of(node, &extra) > bound + tol {
                    if status[node] == UNKNOWN {
                        if lb[node] <= bound + tol {
                            pruned_by_bound += 1;
                        }
                        resolved += 1;
                        status[node] = PASS;
                    }
                    continue;
                }
                if status[node] != UNKNOWN {
                    // Failing, or already evaluated in phase 1.
                    continue;
                }
                // Cheap certificate of failure: some pair of quasi-identifiers
                // alone already leaves too many records in classes below k.
                decode(node, &mut lv);
                if self.pair_fails(&lv, &mut pair_memo) {
                    fail_down(node, &mut status, &mut resolved, &mut stack);
                    pair_pruned += 1;
                    continue;
                }
                batch.push(node);
            }
            if batch.is_empty() {
                continue;
            }
            if started.elapsed().as_secs_f64() > time_budget {
                stopped_early = true;
                break;
            }
            evaluated += batch.len() as u64;
            let results: Vec<Vec<(usize, NodeEval)>> = batch
                .par_iter()
                .map(|&node| climb(node, &status, &seen))
                .collect();
            for r in results {
                rolled_up += r.len().saturating_sub(1) as u64;
                for (node, ev) in r {
                    // Two climbs of one batch may meet.
                    if seen[node] {
                        continue;
                    }
                    seen[node] = true;
                    apply(
                        node,
                        ev,
                        &mut extra,
                        &mut status,
                        &mut resolved,
                        &mut stack,
                        &mut best,
                    );
                }
            }
            if evaluated % 32 < threads as u64 {
                progress(Progress {
                    resolved,
                    total,
                    evaluated,
                });
            }
        }
        progress(Progress {
            resolved: total,
            total,
            evaluated,
        });
        match best {
            Some((_, levels, ev)) => {
                // The search evaluated without per-tuple flags; get them for the chosen node.
                let full = self.evaluate(&levels);
                debug_assert_eq!(full.suppressed, ev.suppressed);
                Ok(SearchResult {
                    row_kept: self.rows_kept(&full.tuple_kept),
                    levels,
                    suppressed: ev.suppressed,
                    classes: ev.classes,
                    loss: ev.loss,
                    lattice_size: total,
                    nodes_evaluated: evaluated,
                    optimal_guaranteed: self.models.monotone() && !stopped_early,
                    pruned_by_pairs: pair_pruned,
                    nodes_rolled_up: rolled_up,
                    pruned_by_bound,
                    stopped_early,
                })
            }
            None => {
                let top: Vec<usize> = radix.iter().map(|r| r - 1).collect();
                let ev = self.evaluate(&top);
                Err(DeidError::Unsatisfiable {
                    max_suppression: self.max_suppressed as f64 / self.n.max(1) as f64,
                    detail: format!(
                        "even the most general node (every quasi-identifier `*`) would suppress {} of {} records",
                        ev.suppressed, self.n
                    ),
                })
            }
        }
    }
}

/// Keys of the tuples at one node.
enum NodeKeys {
    /// Key space small enough for a dense array.
    Dense(Vec<u32>, usize),
    /// Up to 64 bits.
    W64(Vec<u64>),
    /// Up to 128 bits.
    Wide(Vec<u128>),
    /// Larger: the level codes themselves.
    Huge(Vec<Vec<u32>>),
}

/// Open-addressing table from 64-bit keys (never `u64::MAX`) to counts;
/// reused between evaluations (cleared through the list of used slots).
struct CountTable {
    keys: Vec<u64>,
    vals: Vec<u64>,
    used: Vec<u32>,
    shift: u32,
    mask: usize,
}

impl CountTable {
    fn new(n: usize) -> CountTable {
        let cap = (n.max(8) * 2).next_power_of_two();
        CountTable {
            keys: vec![u64::MAX; cap],
            vals: vec![0; cap],
            used: Vec::with_capacity(n),
            shift: 64 - cap.trailing_zeros(),
            mask: cap - 1,
        }
    }

    /// Whether the table is big enough for `n` keys.
    fn fits(&self, n: usize) -> bool {
        self.keys.len() >= n.max(8) * 2
    }

    /// Slot of `k` (inserted if new).
    #[inline]
    fn slot(&mut self, k: u64) -> usize {
        let mut i = (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize;
        loop {
            let kk = self.keys[i];
            if kk == k {
                return i;
            }
            if kk == u64::MAX {
                self.keys[i] = k;
                self.used.push(i as u32);
                return i;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Empty the table again.
    fn clear(&mut self) {
        for &s in &self.used {
            self.keys[s as usize] = u64::MAX;
            self.vals[s as usize] = 0;
        }
        self.used.clear();
    }
}

thread_local! {
    static TABLE: std::cell::RefCell<(Option<CountTable>, Vec<u32>)> = const { std::cell::RefCell::new((None, Vec::new())) };
}

/// Run `f` with this thread's empty count table for `n` keys and a slot
/// buffer; `f` must leave the table empty.
fn with_table<R>(n: usize, f: impl FnOnce(&mut CountTable, &mut Vec<u32>) -> R) -> R {
    TABLE.with(|cell| {
        let mut g = cell.borrow_mut();
        let (t, slots) = &mut *g;
        if !t.as_ref().map(|t| t.fits(n)).unwrap_or(false) {
            *t = Some(CountTable::new(n));
        }
        f(t.as_mut().expect("table"), slots)
    })
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's zeroed scratch array of at least `space`
/// entries; `f` must leave it zeroed.
fn with_scratch<R>(space: usize, f: impl FnOnce(&mut Vec<u64>) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut s = cell.borrow_mut();
        if s.len() < space {
            s.resize(space, 0);
        }
        f(&mut s)
    })
}

/// Largest key space counted in a dense array.
const DENSE_LIMIT: usize = 1 << 24;
