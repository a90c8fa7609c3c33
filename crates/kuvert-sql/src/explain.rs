//! EXPLAIN: the plan as the nodes will run it, with estimated rounds and
//! bytes per node for each operator, and the leakage statement.
//!
//! Costs are estimates from the per-element costs of the primitives
//! (measured by `kuvert bench micro`, see docs/benchmarks.md): they depend
//! only on the public input sizes, as the protocol itself does, except the
//! sort, whose number of levels is random.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::exec::{fusable, interval_pattern, unique_on, Fusion, NESTED_LOOP_MAX_PAIRS};
use crate::plan::{AggFunc, BinOp, Expr, Plan, Query};

/// Estimated cost of an operator at one node.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub rounds: f64,
    pub bytes: f64,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            rounds: self.rounds + o.rounds,
            bytes: self.bytes + o.bytes,
        }
    }
}

// Per-element costs (rounds, bytes sent per node) of the primitives.
const MUL: Cost = Cost {
    rounds: 1.0,
    bytes: 8.0,
};
const BIT2A: Cost = Cost {
    rounds: 2.0,
    bytes: 16.0,
};
const LT_BOUNDED: Cost = Cost {
    rounds: 8.0,
    bytes: 25.4,
};
const LT_EXACT: Cost = Cost {
    rounds: 9.0,
    bytes: 76.4,
};
const EQ: Cost = Cost {
    rounds: 7.0,
    bytes: 10.5,
};
const SHUFFLE_PLANE: Cost = Cost {
    rounds: 3.0,
    bytes: 16.0,
};
const REVEAL_BIT: Cost = Cost {
    rounds: 1.0,
    bytes: 0.125,
};

fn times(c: Cost, n: f64) -> Cost {
    Cost {
        rounds: c.rounds,
        bytes: c.bytes * n,
    }
}

fn log2(n: f64) -> f64 {
    n.max(2.0).log2().ceil()
}

/// Arithmetic-to-boolean conversion of one word (a 64-bit adder).
const A2B: Cost = Cost {
    rounds: 8.0,
    bytes: 48.0,
};

/// Significant bits of a key column of this type in a sort key.
pub(crate) fn type_bits(ty: kuvert_data::ColumnType) -> f64 {
    use kuvert_data::ColumnType::*;
    match ty {
        Int => 64.0,
        Idnr => 40.0,
        Date => 22.0,
        Bool => 1.0,
        Text => 256.0,
    }
}

/// Oblivious sort of `n` rows by `key_bits` significant key bits (the
/// validity bit and the key columns; the row index is added here) with
/// `planes` payload planes. One shuffle, one bit decomposition of each
/// key word, then about `1.1 n log2 n` comparisons, each a bit-sliced
/// comparator over all key bits: about 3 AND gates (3/8 byte) per bit in
/// `1 + log2 bits` rounds, plus one opened bit.
pub fn sort_cost(n: f64, key_bits: f64, planes: f64) -> Cost {
    if n < 2.0 {
        return Cost::default();
    }
    let bits = key_bits + log2(n);
    let words = (bits / 62.0).ceil() + 1.0;
    let levels = 2.5 * log2(n);
    let comparisons = 1.1 * n * log2(n);
    let per_cmp = 3.0 * bits / 8.0 + REVEAL_BIT.bytes;
    let per_level_rounds = 1.0 + log2(bits) + 1.0;
    Cost {
        rounds: SHUFFLE_PLANE.rounds + A2B.rounds + levels * per_level_rounds,
        bytes: SHUFFLE_PLANE.bytes * (words + planes) * n
            + A2B.bytes * words * n
            + per_cmp * comparisons,
    }
}

/// Dropping `k` known-invalid rows of `n` (the unique side after a sort
/// join): a shuffle of `planes` planes and one opened flag per row.
fn drop_cost(n: f64, planes: f64) -> Cost {
    Cost {
        rounds: SHUFFLE_PLANE.rounds + 1.0,
        bytes: SHUFFLE_PLANE.bytes * planes * n + 8.0 * n,
    }
}

/// Segmented prefix sums of `k` columns over `n` rows (Brent–Kung: about
/// 2n combinations in 2 log2 n steps).
fn scan_cost(n: f64, k: f64) -> Cost {
    let l = log2(n);
    Cost {
        rounds: 2.0 * l * MUL.rounds,
        bytes: 2.0 * MUL.bytes * (k + 1.0) * n,
    }
}

/// A scan whose steps compare: prefix maximum or segmented extreme.
fn compare_scan_cost(n: f64, cmp: Cost) -> Cost {
    let l = log2(n);
    Cost {
        rounds: 2.0 * l * (cmp.rounds + BIT2A.rounds + 2.0),
        bytes: 2.0 * n * (cmp.bytes + BIT2A.bytes + 3.0 * MUL.bytes),
    }
}

fn starts_cost(n: f64, words: f64) -> Cost {
    Cost {
        rounds: EQ.rounds + BIT2A.rounds + (words - 1.0) * MUL.rounds,
        bytes: (EQ.bytes * words + BIT2A.bytes + MUL.bytes * (words - 1.0)) * n,
    }
}

fn expr_cost(e: &Expr, n: f64) -> Cost {
    match e {
        Expr::Column(_) | Expr::Const(_) => Cost::default(),
        Expr::Not(x) | Expr::Neg(x) => expr_cost(x, n),
        Expr::Binary { op, left, right } => {
            let sub = max_rounds(expr_cost(left, n), expr_cost(right, n));
            let own = match op {
                BinOp::Add | BinOp::Sub => Cost::default(),
                BinOp::Mul | BinOp::And | BinOp::Or => times(MUL, n),
                BinOp::Eq | BinOp::Ne => times(EQ, n) + times(BIT2A, n),
                // exact for int, bounded otherwise: take the dearer one
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    times(LT_EXACT, n) + times(BIT2A, n)
                }
            };
            sub + own
        }
        Expr::Case { whens, otherwise } => {
            let mut c = expr_cost(otherwise, n);
            for (w, v) in whens {
                c = c + expr_cost(w, n) + expr_cost(v, n) + times(MUL, n);
            }
            c
        }
        Expr::InList { expr, .. } => expr_cost(expr, n) + times(EQ, n) + times(BIT2A, n),
    }
}

fn max_rounds(a: Cost, b: Cost) -> Cost {
    Cost {
        rounds: a.rounds.max(b.rounds),
        bytes: a.bytes + b.bytes,
    }
}

struct Explainer<'a> {
    sizes: &'a BTreeMap<String, usize>,
    lines: Vec<(usize, String, f64, Cost)>,
    total: Cost,
    notes: Vec<String>,
    /// The `WITH PRIVACY` aggregate and its number of declared groups (0:
    /// global).
    dp: Option<(*const Plan, usize)>,
    /// Whether a sort join drops its unique side's rows (leakage note).
    dropped_rows: bool,
}

impl Explainer<'_> {
    /// Returns the output row count (public, padded).
    fn walk(&mut self, plan: &Plan, depth: usize) -> f64 {
        let at = self.lines.len();
        self.lines
            .push((depth, String::new(), 0.0, Cost::default()));
        let (label, n, cost) = match plan {
            Plan::Scan { table, schema } => {
                let n = self.sizes.get(table).copied().unwrap_or(0) as f64;
                (
                    format!("Scan {table} ({})", schema.to_compact()),
                    n,
                    Cost::default(),
                )
            }
            Plan::Filter { input, predicate } => {
                let n = self.walk(input, depth + 1);
                let c = expr_cost(predicate, n) + times(MUL, n);
                ("Filter (rows kept, validity bit cleared)".to_string(), n, c)
            }
            Plan::Project { input, exprs } => {
                let n = self.walk(input, depth + 1);
                let c = exprs
                    .iter()
                    .fold(Cost::default(), |a, (e, _)| a + expr_cost(e, n));
                let names: Vec<&str> = exprs.iter().map(|(_, s)| s.as_str()).collect();
                (format!("Project {}", names.join(", ")), n, c)
            }
            Plan::UnionAll { inputs } => {
                let n = inputs.iter().map(|i| self.walk(i, depth + 1)).sum();
                (format!("UnionAll of {}", inputs.len()), n, Cost::default())
            }
            Plan::Aggregate {
                input,
                group_by,
                aggs,
            } => {
                let n = self.walk(input, depth + 1);
                let names: Vec<String> = aggs
                    .iter()
                    .map(|a| format!("{:?}", a.func).to_uppercase())
                    .collect();
                let dp_groups = self
                    .dp
                    .filter(|(t, _)| std::ptr::eq(*t, plan))
                    .map(|(_, g)| g);
                if let Some(g) = dp_groups {
                    let (gk, width) = (g as f64, input.width() as f64);
                    let sums = aggs.iter().filter(|a| a.func == AggFunc::Sum).count() as f64;
                    // declared-key indicators, per-person cap, clamping,
                    // per-group sums, one noise input per node
                    let mut c = Cost::default();
                    if g > 0 {
                        c = c + times(EQ, gk * n) + times(MUL, n);
                    }
                    c = c
                        + sort_cost(n, 64.0, width + gk + 1.0)
                        + starts_cost(n, 1.5)
                        + scan_cost(n, 1.0)
                        + times(LT_BOUNDED, n)
                        + times(MUL, n)
                        + times(LT_EXACT, 2.0 * sums * n)
                        + times(MUL, 4.0 * sums * n)
                        + times(MUL, gk.max(1.0) * (1.0 + sums) * n)
                        + Cost {
                            rounds: 3.0,
                            bytes: 8.0 * gk.max(1.0) * aggs.len() as f64,
                        };
                    let label = if g > 0 {
                        format!(
                            "Aggregate WITH PRIVACY over {g} declared groups: key indicators, cap per person, clamp, masked sums, Skellam noise; {}",
                            names.join(", ")
                        )
                    } else {
                        format!(
                            "Aggregate WITH PRIVACY (global): cap per person, clamp, sums, Skellam noise; {}",
                            names.join(", ")
                        )
                    };
                    (label, gk.max(1.0), c)
                } else if group_by.is_empty() {
                    let mut c = times(MUL, n);
                    for a in aggs {
                        match a.func {
                            AggFunc::Min | AggFunc::Max => {
                                let l = log2(n);
                                c = c + Cost {
                                    rounds: l * (LT_EXACT.rounds + BIT2A.rounds + 1.0),
                                    bytes: n * (LT_EXACT.bytes + BIT2A.bytes + MUL.bytes),
                                };
                            }
                            AggFunc::CountDistinct => {
                                c = c
                                    + sort_cost(n, 65.0, 2.0)
                                    + starts_cost(n, 1.0)
                                    + times(MUL, n)
                            }
                            _ => {}
                        }
                    }
                    (format!("Aggregate (global) {}", names.join(", ")), 1.0, c)
                } else {
                    let k = aggs.len() as f64;
                    let inf = input.fields();
                    let bits = 1.0 + group_by.iter().map(|&c| type_bits(inf[c].ty)).sum::<f64>();
                    let mut c = sort_cost(n, bits, group_by.len() as f64 + k + 1.0)
                        + starts_cost(n, 1.0 + group_by.len() as f64 * 0.5)
                        + scan_cost(n, k + 1.0)
                        + times(MUL, n);
                    for a in aggs {
                        if matches!(a.func, AggFunc::Min | AggFunc::Max) {
                            c = c + compare_scan_cost(n, LT_EXACT);
                        }
                    }
                    (
                        format!(
                            "Aggregate: sort by group key, segmented scans; {} group key(s), {}",
                            group_by.len(),
                            names.join(", ")
                        ),
                        n,
                        c,
                    )
                }
            }
            Plan::Join {
                left,
                right,
                on,
                residual,
            } => {
                let lcols: Vec<usize> = on.iter().map(|&(l, _)| l).collect();
                let rcols: Vec<usize> = on.iter().map(|&(_, r)| r).collect();
                let lf = left.fields();
                let key_bits = 1.0 + lcols.iter().map(|&c| type_bits(lf[c].ty)).sum::<f64>();
                let unique_r = !on.is_empty() && unique_on(right, &rcols);
                let unique_l = !on.is_empty() && !unique_r && unique_on(left, &lcols);
                let not_dp =
                    |f: &Fusion<'_>| !self.dp.is_some_and(|(t, _)| std::ptr::eq(t, f.agg_node));
                let fused = if unique_r {
                    fusable(right, &rcols).filter(not_dp).map(|f| (f, false))
                } else if unique_l {
                    fusable(left, &lcols).filter(not_dp).map(|f| (f, true))
                } else {
                    None
                };
                if let Some((f, grouped_left)) = fused {
                    // the grouped relation is read directly: no Aggregate node
                    let (m_plan, m_depth_first) = if grouped_left {
                        (right.as_ref(), false)
                    } else {
                        (left.as_ref(), true)
                    };
                    let (nm, nb) = if m_depth_first {
                        let nm = self.walk(m_plan, depth + 1);
                        (nm, self.walk(f.input, depth + 1))
                    } else {
                        let nb = self.walk(f.input, depth + 1);
                        (self.walk(m_plan, depth + 1), nb)
                    };
                    self.dropped_rows = true;
                    let n = nb + nm;
                    let k = f.aggs.len() as f64;
                    let w = m_plan.width() as f64 + f.proj.len() as f64;
                    let mut c = sort_cost(
                        n,
                        key_bits,
                        m_plan.width() as f64 + on.len() as f64 + k + 2.0,
                    ) + starts_cost(n, 1.5)
                        + times(MUL, n)
                        + scan_cost(n, k + 2.0)
                        + times(MUL, 2.0 * n)
                        + drop_cost(n, w + 2.0);
                    for a in f.aggs {
                        if matches!(a.func, AggFunc::Min | AggFunc::Max) {
                            c = c + compare_scan_cost(n, LT_EXACT);
                        }
                    }
                    let names: Vec<String> = f
                        .aggs
                        .iter()
                        .map(|a| format!("{:?}", a.func).to_uppercase())
                        .collect();
                    if let Some(r) = residual {
                        c = c + expr_cost(r, nm) + times(MUL, nm);
                    }
                    let label = format!(
                        "Join fused with the GROUP BY of its {} side on the join key ({}): one sort of both inputs' rows, \
                         segmented scans, then the grouped input's rows are dropped",
                        if grouped_left { "left" } else { "right" },
                        names.join(", ")
                    );
                    self.lines[at] = (depth, label, nm, c);
                    self.total = self.total + c;
                    return nm;
                }
                let nl = self.walk(left, depth + 1);
                let nr = self.walk(right, depth + 1);
                let w = left.width() as f64 + right.width() as f64;
                let (label, n, mut c) = if unique_r || unique_l {
                    let n = nl + nr;
                    let m_rows = if unique_r { nl } else { nr };
                    self.dropped_rows = true;
                    let c = sort_cost(n, key_bits, w + on.len() as f64 + 2.0)
                        + starts_cost(n, 1.5)
                        + scan_cost(n, w / 2.0 + 1.0)
                        + Cost {
                            rounds: 2.0,
                            bytes: 16.0 * n,
                        }
                        + drop_cost(n, w + 2.0);
                    (
                        "Join (sort-based, one side unique on the key; its rows are then dropped)"
                            .to_string(),
                        m_rows,
                        c,
                    )
                } else {
                    let n = nl * nr;
                    if n > NESTED_LOOP_MAX_PAIRS as f64 {
                        self.notes.push(format!(
                            "the join pairs {nl} x {nr} rows with no side unique on the key: over the nested-loop limit of {NESTED_LOOP_MAX_PAIRS} pairs, so it will be refused"
                        ));
                    }
                    let c = times(MUL, n) + times(EQ, n) + times(BIT2A, n) + times(MUL, n);
                    (
                        "Join (oblivious nested loop over all pairs)".to_string(),
                        n,
                        c,
                    )
                };
                if let Some(r) = residual {
                    c = c + expr_cost(r, n) + times(MUL, n);
                }
                (label, n, c)
            }
            Plan::SemiJoin {
                probe,
                build,
                residual,
                anti,
                ..
            } => {
                let pf = probe.fields();
                let bf = build.fields();
                let np = self.walk(probe, depth + 1);
                let nb = self.walk(build, depth + 1);
                let kind = if *anti { "Anti-join" } else { "Semi-join" };
                let interval = residual
                    .as_ref()
                    .and_then(|r| interval_pattern(r, &pf, &bf));
                match (residual, interval) {
                    (Some(r), None) => {
                        let n = np * nb;
                        let c = times(MUL, n)
                            + times(EQ, n)
                            + times(BIT2A, n)
                            + expr_cost(r, n)
                            + times(LT_BOUNDED, np);
                        (
                            format!("{kind} (oblivious nested loop, general condition)"),
                            np,
                            c,
                        )
                    }
                    (_, iv) => {
                        let n = np + nb;
                        let bits = if iv.is_some() {
                            1.0 + 40.0 + 22.0
                        } else {
                            1.0 + 40.0
                        };
                        let mut c = sort_cost(n, bits, pf.len() as f64 + 4.0) + starts_cost(n, 1.0);
                        if iv.is_some() {
                            let l = log2(n);
                            c =
                                c + Cost {
                                    rounds: l * (LT_BOUNDED.rounds + BIT2A.rounds + 1.0),
                                    bytes: l * n * (LT_BOUNDED.bytes + BIT2A.bytes + MUL.bytes),
                                } + times(MUL, n);
                        } else {
                            c = c + scan_cost(n, 1.0);
                        }
                        c = c
                            + times(LT_BOUNDED, n)
                            + times(BIT2A, n)
                            + times(MUL, n)
                            + times(MUL, n);
                        let how = if iv.is_some() {
                            "sort-based, interval overlap by prefix maximum"
                        } else {
                            "sort-based, segmented count"
                        };
                        (format!("{kind} ({how})"), n, c)
                    }
                }
            }
        };
        self.lines[at] = (depth, label, n, cost);
        self.total = self.total + cost;
        n
    }
}

/// The EXPLAIN text for `q` at the given input sizes (rows per table).
pub fn explain(q: &Query, sizes: &BTreeMap<String, usize>) -> String {
    let mut ex = Explainer {
        sizes,
        lines: Vec::new(),
        total: Cost::default(),
        notes: Vec::new(),
        dropped_rows: false,
        dp: q.privacy.as_ref().and_then(|pv| {
            crate::privacy::target(&q.root).map(|t| (t as *const Plan, pv.keys.len()))
        }),
    };
    let n = ex.walk(&q.root, 1);
    let fields = q.fields();
    let mut out_cost = Cost {
        rounds: 1.0 + SHUFFLE_PLANE.rounds,
        bytes: (MUL.bytes + SHUFFLE_PLANE.bytes) * n * (fields.len() as f64 + 1.0),
    };
    let mut out_rows = n;
    if let Some(k) = q.limit {
        let bits = 1.0 + fields.iter().map(|f| type_bits(f.ty)).sum::<f64>();
        out_cost = out_cost + sort_cost(n, bits, fields.len() as f64 + 1.0);
        out_rows = n.min(k as f64);
    }
    ex.total = ex.total + out_cost;
    let mut s = String::new();
    let _ = writeln!(s, "PLAN (estimated per node: rounds, bytes sent)");
    let _ = writeln!(
        s,
        "  Output to the recipient: {} column(s), {} padded row(s), shuffled{}  [{:.0} rounds, {}]",
        fields.len(),
        out_rows,
        if q.limit.is_some() {
            ", ORDER BY + LIMIT under MPC"
        } else {
            ""
        },
        out_cost.rounds,
        human(out_cost.bytes)
    );
    for (depth, label, rows, c) in &ex.lines {
        let _ = writeln!(
            s,
            "{}{}  -> {} rows  [{:.0} rounds, {}]",
            "  ".repeat(depth + 1),
            label,
            rows,
            c.rounds,
            human(c.bytes)
        );
    }
    let _ = writeln!(
        s,
        "TOTAL (estimate): {:.0} rounds, {} sent per node",
        ex.total.rounds,
        human(ex.total.bytes)
    );
    for n in &ex.notes {
        let _ = writeln!(s, "WARNING: {n}");
    }
    if let Some(pv) = &q.privacy {
        let _ = writeln!(s, "DIFFERENTIAL PRIVACY ({pv})");
        let _ = writeln!(
            s,
            "  Under MPC: at most {} row(s) per {} (the first in input order), SUM arguments clamped{}, then every node adds its own secret Skellam noise (variance mu/2) to each output: any two honest nodes' noise gives ({}, {})-DP against the third node and the recipient.",
            pv.max_rows,
            pv.person,
            match (pv.lo, pv.hi) {
                (Some(lo), Some(hi)) => format!(" to [{lo}, {hi}]"),
                _ => String::new(),
            },
            pv.epsilon,
            pv.delta
        );
        if !pv.keys.is_empty() {
            let _ = writeln!(
                s,
                "  GROUP BY over {} declared public keys: one output row per key, in key order, empty groups included \
                 (noise only); rows with other keys are dropped before the cap and count toward nothing. Cost: {} x rows \
                 oblivious equality tests, then {} x rows multiplications per COUNT and per SUM column.",
                pv.keys.len(),
                pv.keys.len(),
                pv.keys.len()
            );
            let _ = writeln!(
                s,
                "  Accounting: each output column over all {} groups is one vector measurement. The cap of {} row(s) holds \
                 across groups, so one person moves a column by at most max_rows * B in L1 and in L2 whatever the number of \
                 groups (no parallel composition is assumed); the columns compose by Renyi DP.",
                pv.keys.len(),
                pv.max_rows
            );
        }
        let sens = crate::privacy::sensitivities(q, pv);
        let names = crate::privacy::aggregate_names(q);
        let per = if pv.keys.is_empty() { "" } else { " per cell" };
        match kuvert_dp::accounting::skellam_variances_for(pv.epsilon, pv.delta, &sens) {
            Ok(mus) => {
                for (j, ((l1, l2), mu)) in sens.iter().zip(&mus).enumerate() {
                    let _ = writeln!(
                        s,
                        "  {}: sensitivity L1 {l1}, L2 {l2}; released noise std {:.1}{per} (central Skellam would be {:.1}; +22% for distributing it)",
                        names.get(j).map(String::as_str).unwrap_or("?"),
                        (1.5 * mu).sqrt(),
                        mu.sqrt()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(s, "  cannot calibrate: {e}");
            }
        }
    }
    let _ = writeln!(s, "LEAKAGE");
    let _ = writeln!(
        s,
        "  Nodes learn: the number of rows of each input table, and nothing else. Filters keep every row and \
         clear a secret validity bit; sorts open only comparisons between distinct keys (each carries its row's \
         index) after a secret shuffle, which are independent of the data; the answer is sealed for the recipient."
    );
    if ex.dropped_rows {
        let _ = writeln!(
            s,
            "  A sort join then drops its unique side's rows: the rows are shuffled with a secret permutation and the \
             side flag is opened, which shows a uniformly random set of positions of a public size, nothing about the data."
        );
    }
    let _ = writeln!(
        s,
        "  The recipient learns: the {}answer ({} column(s): {}) and the padded number of rows ({}), which depends \
         only on the input sizes; padding rows are all zero and the rows are in random order.",
        if q.privacy.is_some() { "noisy (differentially private) " } else { "" },
        fields.len(),
        fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        out_rows
    );
    if let Some(pv) = q.privacy.as_ref().filter(|pv| !pv.keys.is_empty()) {
        let _ = writeln!(
            s,
            "  With the declared groups the recipient gets exactly {} rows, one per declared key, whatever the data: \
             which keys occur in the data is not revealed.",
            pv.keys.len()
        );
    }
    let _ = writeln!(
        s,
        "  Opt-in leakage: none (this query uses no operator that reveals more)."
    );
    s
}

fn human(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}
