//! A plaintext evaluator of plans: the oracle the MPC executor is tested
//! against, with SQL (SQLite) semantics on cleartext encoded values.
//!
//! Values are the ring words of `kuvert_data::value::encode_cell` (int in
//! two's complement, date as days since 1970-01-01, bool 0/1, idnr as the
//! 12-digit number, text as 4 big-endian words); `None` is NULL (only a
//! global SUM/MIN/MAX over no rows, and expressions over it). Integer
//! arithmetic wraps modulo 2^64 like the ring. Bag semantics throughout.
//!
//! This module is for tests and demonstrations on data one may see in the
//! clear; it has no place in a node.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use kuvert_data::{ColumnType, Table};

use crate::plan::{AggFunc, BinOp, Expr, Field, Plan, Query};

/// One cell: its words, or `None` for NULL.
pub type Cell = Option<Vec<u64>>;

/// Evaluate `q` over `tables` (by name, as the plan's scans name them).
/// Rows come back in the answer's order: by the ORDER BY keys, then
/// ascending by all columns; then LIMIT.
///
/// A `WITH PRIVACY` query is evaluated with its DP semantics but **without
/// noise**: rows whose group key is not declared are dropped, each person
/// keeps the first `max_rows` of the remaining rows (in the row order of
/// the aggregated relation, which for scans, filters and projections is
/// the input order, as under MPC), SUM arguments are clamped to
/// `[lo, hi]`, and there is one row per declared key (0 for an empty
/// group), or one global row; never NULL. The MPC answer is this plus the
/// noise.
pub fn evaluate(q: &Query, tables: &BTreeMap<String, Table>) -> Result<Vec<Vec<Cell>>, String> {
    let fields = q.root.fields();
    let dp = match &q.privacy {
        None => None,
        Some(pv) => Some((
            crate::privacy::target(&q.root)
                .ok_or("WITH PRIVACY query without a DP aggregate (prepare checks this)")?,
            pv,
        )),
    };
    let mut rows = eval(&q.root, tables, dp)?;
    rows.sort_by(|a, b| {
        for k in &q.order_by {
            let ty = fields[k.column].ty;
            let o = cmp_cell(ty, &a[k.column], &b[k.column]);
            let o = if k.desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        for (i, f) in fields.iter().enumerate() {
            let o = cmp_cell(f.ty, &a[i], &b[i]);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    if let Some(n) = q.limit {
        rows.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    Ok(rows)
}

/// Format one answer row as SQLite prints it: ints in decimal, dates
/// `YYYY-MM-DD`, identity numbers as 12 digits, bools `1`/`0`, text as is,
/// NULL as the empty string. Words that are no valid encoding of the type
/// are shown as `?` and the raw words.
pub fn format_row(fields: &[Field], row: &[Cell]) -> Vec<String> {
    fields
        .iter()
        .zip(row)
        .map(|(f, c)| match c {
            None => String::new(),
            Some(w) => match f.ty {
                ColumnType::Int => (w[0] as i64).to_string(),
                ColumnType::Bool => w[0].to_string(),
                ty => kuvert_data::value::format_cell(ty, w).unwrap_or_else(|_| format!("?{w:?}")),
            },
        })
        .collect()
}

/// Order of two non-NULL values of type `ty`: ints, dates and identity
/// numbers as signed numbers, bools 0 < 1, text bytewise.
fn cmp_words(ty: ColumnType, a: &[u64], b: &[u64]) -> Ordering {
    match ty {
        ColumnType::Text => a.cmp(b),
        _ => (a[0] as i64).cmp(&(b[0] as i64)),
    }
}

/// As [`cmp_words`], NULL before everything (SQLite's order).
fn cmp_cell(ty: ColumnType, a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => cmp_words(ty, a, b),
    }
}

fn eval(p: &Plan, tables: &BTreeMap<String, Table>, dp: Dp<'_>) -> Result<Vec<Vec<Cell>>, String> {
    if let Some((target, pv)) = dp {
        if std::ptr::eq(target, p) {
            return eval_private(p, tables, pv);
        }
    }
    Ok(match p {
        Plan::Scan { table, schema } => {
            let t = tables
                .get(table)
                .ok_or_else(|| format!("no data for table {table}"))?;
            if t.schema() != schema {
                return Err(format!(
                    "table {table} has the schema {}, the plan expects {}",
                    t.schema(),
                    schema
                ));
            }
            (0..t.rows())
                .map(|r| (0..schema.len()).map(|c| Some(t.cell(r, c))).collect())
                .collect()
        }
        Plan::Filter { input, predicate } => {
            let f = input.fields();
            let rows = eval(input, tables, dp)?;
            rows.into_iter()
                .filter(|r| truth(&eval_expr(predicate, &f, r)) == Some(true))
                .collect()
        }
        Plan::Project { input, exprs } => {
            let f = input.fields();
            eval(input, tables, dp)?
                .iter()
                .map(|r| exprs.iter().map(|(e, _)| eval_expr(e, &f, r)).collect())
                .collect()
        }
        Plan::UnionAll { inputs } => {
            let mut out = Vec::new();
            for i in inputs {
                out.extend(eval(i, tables, dp)?);
            }
            out
        }
        Plan::Join {
            left,
            right,
            on,
            residual,
        } => {
            let mut f = left.fields();
            f.extend(right.fields());
            let (l, r) = (eval(left, tables, dp)?, eval(right, tables, dp)?);
            let mut out = Vec::new();
            for a in &l {
                for b in &r {
                    if !keys_match(on, a, b) {
                        continue;
                    }
                    let mut row = a.clone();
                    row.extend(b.iter().cloned());
                    if residual
                        .as_ref()
                        .is_none_or(|e| truth(&eval_expr(e, &f, &row)) == Some(true))
                    {
                        out.push(row);
                    }
                }
            }
            out
        }
        Plan::SemiJoin {
            probe,
            build,
            on,
            residual,
            anti,
        } => {
            let mut f = probe.fields();
            f.extend(build.fields());
            let (l, r) = (eval(probe, tables, dp)?, eval(build, tables, dp)?);
            l.into_iter()
                .filter(|a| {
                    let hit = r.iter().any(|b| {
                        keys_match(on, a, b)
                            && residual.as_ref().is_none_or(|e| {
                                let mut row = a.clone();
                                row.extend(b.iter().cloned());
                                truth(&eval_expr(e, &f, &row)) == Some(true)
                            })
                    });
                    hit != *anti
                })
                .collect()
        }
        Plan::Aggregate {
            input,
            group_by,
            aggs,
        } => {
            let f = input.fields();
            let rows = eval(input, tables, dp)?;
            let mut groups: BTreeMap<Vec<Cell>, Vec<&Vec<Cell>>> = BTreeMap::new();
            for r in &rows {
                let key: Vec<Cell> = group_by.iter().map(|&c| r[c].clone()).collect();
                groups.entry(key).or_default().push(r);
            }
            if group_by.is_empty() && groups.is_empty() {
                groups.insert(Vec::new(), Vec::new());
            }
            let mut out = Vec::new();
            for (key, members) in groups {
                let mut row = key;
                for a in aggs {
                    row.push(aggregate(a.func, a.arg, &f, &members));
                }
                out.push(row);
            }
            out
        }
    })
}

/// The DP target of a query and its parameters.
type Dp<'a> = Option<(&'a Plan, &'a crate::privacy::Privacy)>;

/// The noiseless `WITH PRIVACY` aggregate (see [`evaluate`]).
fn eval_private(
    p: &Plan,
    tables: &BTreeMap<String, Table>,
    pv: &crate::privacy::Privacy,
) -> Result<Vec<Vec<Cell>>, String> {
    let Plan::Aggregate { input, aggs, .. } = p else {
        return Err("the DP target is not an aggregate".into());
    };
    let q = Query {
        root: p.clone(),
        order_by: vec![],
        limit: None,
        privacy: Some(pv.clone()),
    };
    let checked = crate::privacy::check(&q, pv)?;
    let rows = eval(input, tables, None)?;
    let declared = |r: &Vec<Cell>| match &checked.group {
        None => true,
        Some((g, keys)) => r[*g]
            .as_ref()
            .is_some_and(|w| keys.iter().any(|k| &k.words == w)),
    };
    let mut per_person: BTreeMap<Cell, u64> = BTreeMap::new();
    let mut kept: Vec<Vec<Cell>> = Vec::new();
    for r in rows.into_iter().filter(declared) {
        if r[checked.person].is_none() {
            continue;
        }
        let c = per_person.entry(r[checked.person].clone()).or_insert(0);
        if *c < pv.max_rows {
            *c += 1;
            kept.push(r);
        }
    }
    let (lo, hi) = (pv.lo.unwrap_or(0), pv.hi.unwrap_or(0));
    let cell = |a: &crate::plan::Agg, members: &[&Vec<Cell>]| -> Cell {
        Some(vec![match (a.func, a.arg) {
            (AggFunc::Sum, Some(c)) => members
                .iter()
                .filter_map(|r| r[c].as_ref())
                .fold(0i64, |s, w| s.wrapping_add((w[0] as i64).clamp(lo, hi)))
                as u64,
            _ => members.len() as u64,
        }])
    };
    Ok(match &checked.group {
        None => {
            let all: Vec<&Vec<Cell>> = kept.iter().collect();
            vec![aggs.iter().map(|a| cell(a, &all)).collect()]
        }
        Some((g, keys)) => keys
            .iter()
            .map(|k| {
                let members: Vec<&Vec<Cell>> = kept
                    .iter()
                    .filter(|r| r[*g].as_ref() == Some(&k.words))
                    .collect();
                let mut row: Vec<Cell> = vec![Some(k.words.clone())];
                row.extend(aggs.iter().map(|a| cell(a, &members)));
                row
            })
            .collect(),
    })
}

fn keys_match(on: &[(usize, usize)], a: &[Cell], b: &[Cell]) -> bool {
    on.iter().all(|&(x, y)| match (&a[x], &b[y]) {
        (Some(u), Some(v)) => u == v,
        _ => false,
    })
}

fn aggregate(func: AggFunc, arg: Option<usize>, f: &[Field], rows: &[&Vec<Cell>]) -> Cell {
    let vals = || {
        rows.iter()
            .filter_map(move |r| arg.and_then(|c| r[c].as_ref()))
    };
    match func {
        AggFunc::Count => Some(vec![match arg {
            None => rows.len() as u64,
            Some(_) => vals().count() as u64,
        }]),
        AggFunc::CountDistinct => Some(vec![vals().collect::<BTreeSet<_>>().len() as u64]),
        AggFunc::Sum => {
            let mut it = vals().peekable();
            it.peek()?;
            Some(vec![it.fold(0u64, |s, v| s.wrapping_add(v[0]))])
        }
        AggFunc::Min | AggFunc::Max => {
            let ty = f[arg?].ty;
            let pick = |a: &Vec<u64>, b: &Vec<u64>| {
                let o = cmp_words(ty, a, b);
                if (func == AggFunc::Min) == (o == Ordering::Greater) {
                    b.clone()
                } else {
                    a.clone()
                }
            };
            vals().fold(None, |best: Option<Vec<u64>>, v| {
                Some(match best {
                    None => v.clone(),
                    Some(b) => pick(&b, v),
                })
            })
        }
    }
}

fn truth(c: &Cell) -> Option<bool> {
    c.as_ref().map(|w| w[0] != 0)
}

fn boolean(b: Option<bool>) -> Cell {
    b.map(|b| vec![b as u64])
}

fn eval_expr(e: &Expr, f: &[Field], row: &[Cell]) -> Cell {
    match e {
        Expr::Column(i) => row[*i].clone(),
        Expr::Const(c) => Some(c.words.clone()),
        Expr::Not(x) => boolean(truth(&eval_expr(x, f, row)).map(|b| !b)),
        Expr::Neg(x) => eval_expr(x, f, row).map(|w| vec![(w[0] as i64).wrapping_neg() as u64]),
        Expr::Binary { op, left, right } => {
            let l = eval_expr(left, f, row);
            match op {
                BinOp::And | BinOp::Or => {
                    // Three-valued logic: FALSE AND NULL = FALSE, TRUE OR NULL = TRUE.
                    let r = eval_expr(right, f, row);
                    let (a, b) = (truth(&l), truth(&r));
                    let dominant = *op == BinOp::Or;
                    boolean(if a == Some(dominant) || b == Some(dominant) {
                        Some(dominant)
                    } else if a.is_none() || b.is_none() {
                        None
                    } else {
                        Some(!dominant)
                    })
                }
                _ => {
                    let r = eval_expr(right, f, row);
                    let (Some(a), Some(b)) = (l, r) else {
                        return None;
                    };
                    let (x, y) = (a[0] as i64, b[0] as i64);
                    let ty = left.ty(f);
                    let o = cmp_words(ty, &a, &b);
                    Some(vec![match op {
                        BinOp::Add => x.wrapping_add(y) as u64,
                        BinOp::Sub => x.wrapping_sub(y) as u64,
                        BinOp::Mul => x.wrapping_mul(y) as u64,
                        BinOp::Eq => (o == Ordering::Equal) as u64,
                        BinOp::Ne => (o != Ordering::Equal) as u64,
                        BinOp::Lt => (o == Ordering::Less) as u64,
                        BinOp::Le => (o != Ordering::Greater) as u64,
                        BinOp::Gt => (o == Ordering::Greater) as u64,
                        BinOp::Ge => (o != Ordering::Less) as u64,
                        BinOp::And | BinOp::Or => unreachable!("handled above"),
                    }])
                }
            }
        }
        Expr::Case { whens, otherwise } => {
            for (c, v) in whens {
                if truth(&eval_expr(c, f, row)) == Some(true) {
                    return eval_expr(v, f, row);
                }
            }
            eval_expr(otherwise, f, row)
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let x = eval_expr(expr, f, row)?;
            let hit = list.iter().any(|c| c.words == x);
            Some(vec![(hit != *negated) as u64])
        }
    }
}
