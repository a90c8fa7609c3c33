//! Running a plan at one node over its shares.
//!
//! A relation under MPC has a public number of rows `n` and a secret 0/1
//! *valid* column: filters clear valid bits instead of dropping rows, so
//! sizes never depend on the data. Operators:
//!
//! - filter, project: element-wise expressions (comparisons are exact for
//!   `int`, sign-of-difference for the bounded types);
//! - aggregate: oblivious sort by (valid first, group key), segment starts
//!   from adjacent equality, segmented prefix sums / extremes; the last
//!   row of each segment carries the group's result;
//! - join on keys where one side is unique on the key (a grouped subquery):
//!   sort both sides together, copy the unique side's columns down each key
//!   segment, then drop the unique side's rows (shuffle, open the side
//!   flags: a random set of public size); when the unique side is `GROUP BY`
//!   of a relation on exactly the join key, the grouping is fused into the
//!   join (one sort of both inputs' rows, segmented aggregates copied to
//!   the other side's rows); otherwise an oblivious nested loop (bounded
//!   size);
//! - semi- and anti-join (`IN`, `EXISTS`): sort both sides together, count
//!   build rows per key segment; an interval-overlap residual is answered
//!   with one prefix maximum instead of pairs;
//! - output: ORDER BY + LIMIT under MPC when there is a LIMIT; then invalid
//!   rows are zeroed and all rows shuffled before the recipient gets them.

use std::collections::BTreeMap;

use kuvert_data::{ColumnType, Schema};
use kuvert_mpc::shuffle::Column;
use kuvert_mpc::{AShare, MpcError, Party};

use crate::ops::{self, Part};
use crate::output::ResultShares;
use crate::plan::{Agg, AggFunc, BinOp, Const, Expr, Field, OrderKey, Plan, Query};

/// One contributed table as a node holds it: per column, per word plane,
/// this node's arithmetic shares.
pub struct InputTable {
    pub schema: Schema,
    pub rows: usize,
    /// `schema` column by column, `ty.words()` planes each.
    pub columns: Vec<AShare>,
}

impl std::fmt::Debug for InputTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InputTable {{ schema: {}, rows: {} }}",
            self.schema.to_compact(),
            self.rows
        )
    }
}

/// Why a plan could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Mpc(#[from] MpcError),
    #[error("input: {0}")]
    Input(String),
    #[error("{0}")]
    Unsupported(String),
    /// This node could not draw its DP noise (no OS randomness).
    #[error("DP noise: {0}")]
    Noise(String),
}

type Result<T> = std::result::Result<T, ExecError>;

/// Largest number of row pairs an oblivious nested-loop join may form.
pub const NESTED_LOOP_MAX_PAIRS: usize = 1 << 24;

/// Days from 1970-01-01 back to 0001-01-01: dates plus this are >= 0.
const DATE_OFFSET: u64 = 719_162;
/// Bits for dates from 0001-01-01 to 9999-12-31 after the offset.
const DATE_BITS: u32 = 22;
/// Identity numbers are below 10^12 < 2^40.
const IDNR_BITS: u32 = 40;

/// The range the sort packing and the bounded comparisons assume for a
/// column type, as `(offset, bits)`: every value `v` of the type has
/// `0 <= v + offset < 2^bits`. `None` for the types compared over the full
/// 64-bit word (`int`, `text`). An honest client's encoding is always in
/// range (`kuvert_data::value`); in malicious mode a node checks the
/// contributed columns against it under MPC ([`crate::input_check`]).
pub(crate) fn bounded(ty: ColumnType) -> Option<(u64, u32)> {
    match ty {
        ColumnType::Date => Some((DATE_OFFSET, DATE_BITS)),
        ColumnType::Bool => Some((0, 1)),
        ColumnType::Idnr => Some((0, IDNR_BITS)),
        ColumnType::Int | ColumnType::Text => None,
    }
}

/// One column of a relation: its word planes and, if nullable, a 0/1 null
/// plane.
#[derive(Clone)]
struct Val {
    planes: Vec<AShare>,
    null: Option<AShare>,
}

impl Val {
    fn plain(planes: Vec<AShare>) -> Val {
        Val { planes, null: None }
    }
    fn one(v: AShare) -> Val {
        Val::plain(vec![v])
    }
    fn w(&self) -> &AShare {
        &self.planes[0]
    }
}

/// A relation under MPC: `n` rows (public), columns, secret 0/1 validity.
struct Rel {
    n: usize,
    cols: Vec<Val>,
    valid: AShare,
}

/// Shape of a column: number of planes and whether a null plane follows.
type Shape = (usize, bool);

fn shapes(cols: &[Val]) -> Vec<Shape> {
    cols.iter()
        .map(|c| (c.planes.len(), c.null.is_some()))
        .collect()
}

fn flatten(cols: Vec<Val>) -> Vec<AShare> {
    let mut out = Vec::new();
    for c in cols {
        out.extend(c.planes);
        if let Some(nl) = c.null {
            out.push(nl);
        }
    }
    out
}

/// Execute `query` at this node. `progress(done, total)` is called after
/// each operator. The DP noise of a `WITH PRIVACY` query is drawn from the
/// operating system's CSPRNG.
pub fn execute(
    party: &mut Party,
    query: &Query,
    inputs: &BTreeMap<String, InputTable>,
    progress: &mut dyn FnMut(usize, usize),
) -> std::result::Result<ResultShares, ExecError> {
    execute_with(party, query, inputs, progress, None)
}

/// [`execute`], but this node draws its DP noise from ChaCha20 keyed with
/// `seed`, on stream number = this node's id. **For tests and reproducible
/// demonstrations only**: whoever knows the seeds knows the noise, and the
/// release is then not private. Tests use it to take the exact noise off
/// an MPC answer and compare the rest with the plaintext oracle.
#[doc(hidden)]
pub fn execute_with_noise_seed(
    party: &mut Party,
    query: &Query,
    inputs: &BTreeMap<String, InputTable>,
    progress: &mut dyn FnMut(usize, usize),
    seed: [u8; 32],
) -> std::result::Result<ResultShares, ExecError> {
    execute_with(party, query, inputs, progress, Some(seed))
}

fn execute_with(
    party: &mut Party,
    query: &Query,
    inputs: &BTreeMap<String, InputTable>,
    progress: &mut dyn FnMut(usize, usize),
    noise_seed: Option<[u8; 32]>,
) -> std::result::Result<ResultShares, ExecError> {
    let total = count_nodes(&query.root) + 1;
    let private = match &query.privacy {
        None => None,
        Some(pv) => {
            let checked = crate::privacy::check(query, pv).map_err(ExecError::Unsupported)?;
            let target = crate::privacy::target(&query.root).expect("checked") as *const Plan;
            let sens = crate::privacy::sensitivities(query, pv);
            let mus = kuvert_dp::accounting::skellam_variances_for(pv.epsilon, pv.delta, &sens)
                .map_err(|e| ExecError::Unsupported(format!("WITH PRIVACY: {e}")))?;
            // ChaCha20 keyed with 256 bits from the OS: drawing every word
            // from the OS directly costs a system call each, and one exact
            // Skellam draw of variance 1e10 needs about 10^5 words.
            let noise = match noise_seed {
                None => {
                    Box::new(kuvert_dp::secure_rng().map_err(|e| ExecError::Noise(e.to_string()))?)
                        as Box<dyn rand_core::CryptoRngCore>
                }
                Some(seed) => {
                    let mut r =
                        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(seed);
                    r.set_stream(party.id() as u64);
                    Box::new(r)
                }
            };
            Some(Private {
                noise,
                target,
                person: checked.person,
                group: checked.group,
                privacy: pv.clone(),
                mus,
            })
        }
    };
    let mut ex = Exec {
        p: party,
        inputs,
        done: 0,
        total,
        progress,
        private,
        range_checked: Default::default(),
    };
    let rel = ex.run(&query.root)?;
    let fields = query.root.fields();
    let out = ex.finish(rel, &fields, &query.order_by, query.limit)?;
    (ex.progress)(total, total);
    Ok(out)
}

fn count_nodes(plan: &Plan) -> usize {
    1 + match plan {
        Plan::Scan { .. } => 0,
        Plan::Filter { input, .. }
        | Plan::Project { input, .. }
        | Plan::Aggregate { input, .. } => count_nodes(input),
        Plan::UnionAll { inputs } => inputs.iter().map(count_nodes).sum(),
        Plan::Join { left, right, .. } => count_nodes(left) + count_nodes(right),
        Plan::SemiJoin { probe, build, .. } => count_nodes(probe) + count_nodes(build),
    }
}

/// Whether the valid rows of `plan` are unique on output columns `cols`
/// (a grouped subquery whose group keys are all among `cols`).
pub(crate) fn unique_on(plan: &Plan, cols: &[usize]) -> bool {
    match plan {
        Plan::Aggregate { group_by, .. } => (0..group_by.len()).all(|g| cols.contains(&g)),
        Plan::Filter { input, .. } => unique_on(input, cols),
        Plan::SemiJoin { probe, .. } => unique_on(probe, cols),
        Plan::Project { input, exprs } => {
            let mapped: Vec<usize> = cols
                .iter()
                .filter_map(|&c| match exprs.get(c) {
                    Some((Expr::Column(j), _)) => Some(*j),
                    _ => None,
                })
                .collect();
            unique_on(input, &mapped)
        }
        _ => false,
    }
}

/// A join whose unique side is `GROUP BY` of a relation on exactly the
/// join key (`JOIN (SELECT k, SUM(x) AS x FROM b GROUP BY k) ON a.k =
/// b.k`): the join and the aggregation run as one sort of both inputs'
/// rows (see `Exec::fused_join`).
pub(crate) struct Fusion<'p> {
    /// The aggregate node (the DP target, if any, must not be fused).
    pub agg_node: &'p Plan,
    /// The relation that is grouped.
    pub input: &'p Plan,
    pub group_by: &'p [usize],
    pub aggs: &'p [Agg],
    /// Output column `c` of the unique side is aggregate output `proj[c]`.
    pub proj: Vec<usize>,
    /// For join pair `i`, the column of `input` it compares.
    pub key_in: Vec<usize>,
    /// Plan nodes not run on their own (the aggregate, and its projection).
    pub skipped: usize,
}

/// Whether the unique side `plan` of a join on its columns `cols` can be
/// fused with its grouping: an `Aggregate` (optionally under a projection
/// of plain columns) with a non-empty `GROUP BY` whose keys are exactly the
/// join columns, each once, and no `COUNT(DISTINCT ...)`.
pub(crate) fn fusable<'p>(plan: &'p Plan, cols: &[usize]) -> Option<Fusion<'p>> {
    let skipped = if matches!(plan, Plan::Project { .. }) {
        2
    } else {
        1
    };
    let (agg_node, proj) = match plan {
        Plan::Project { input, exprs } => {
            let proj: Option<Vec<usize>> = exprs
                .iter()
                .map(|(e, _)| match e {
                    Expr::Column(j) => Some(*j),
                    _ => None,
                })
                .collect();
            (input.as_ref(), proj?)
        }
        Plan::Aggregate { group_by, aggs, .. } => {
            (plan, (0..group_by.len() + aggs.len()).collect())
        }
        _ => return None,
    };
    let Plan::Aggregate {
        input,
        group_by,
        aggs,
    } = agg_node
    else {
        return None;
    };
    if group_by.is_empty()
        || cols.len() != group_by.len()
        || aggs.iter().any(|a| a.func == AggFunc::CountDistinct)
    {
        return None;
    }
    let mut key_in = Vec::with_capacity(cols.len());
    let mut seen = vec![false; group_by.len()];
    for &c in cols {
        let g = *proj.get(c)?;
        if g >= group_by.len() || seen[g] {
            return None;
        }
        seen[g] = true;
        key_in.push(group_by[g]);
    }
    Some(Fusion {
        agg_node,
        input,
        group_by,
        aggs,
        proj,
        key_in,
        skipped,
    })
}

/// The DP target of a `WITH PRIVACY` query and its calibration.
struct Private {
    /// Where this node's noise comes from (the OS CSPRNG in production).
    noise: Box<dyn rand_core::CryptoRngCore>,
    target: *const Plan,
    person: usize,
    /// GROUP BY column and its declared keys (ascending).
    group: Option<(usize, Vec<Const>)>,
    privacy: crate::privacy::Privacy,
    /// Central Skellam variance per aggregate; each node adds half.
    mus: Vec<f64>,
}

struct Exec<'a> {
    p: &'a mut Party,
    private: Option<Private>,
    inputs: &'a BTreeMap<String, InputTable>,
    done: usize,
    total: usize,
    progress: &'a mut dyn FnMut(usize, usize),
    /// Tables whose bounded columns were range-checked (malicious mode:
    /// once per table and query, see [`crate::input_check`]).
    range_checked: std::collections::BTreeSet<String>,
}

impl Exec<'_> {
    fn step(&mut self) {
        self.done += 1;
        (self.progress)(self.done.min(self.total), self.total);
    }

    fn constant(&self, n: usize, v: u64) -> AShare {
        ops::constant(self.p, n, v)
    }

    fn run(&mut self, plan: &Plan) -> Result<Rel> {
        let rel = match plan {
            Plan::Scan { table, schema } => self.scan(table, schema)?,
            Plan::Filter { input, predicate } => {
                let fields = input.fields();
                let rel = self.run(input)?;
                let pred = self.eval(&rel, &fields, predicate)?;
                let keep = self.truth(&pred)?;
                let valid = ops::mul(self.p, &rel.valid, &keep)?;
                Rel { valid, ..rel }
            }
            Plan::Project { input, exprs } => {
                let fields = input.fields();
                let rel = self.run(input)?;
                let mut cols = Vec::with_capacity(exprs.len());
                for (e, _) in exprs {
                    cols.push(self.eval(&rel, &fields, e)?);
                }
                Rel {
                    n: rel.n,
                    cols,
                    valid: rel.valid,
                }
            }
            Plan::UnionAll { inputs } => {
                let mut rels = Vec::new();
                for i in inputs {
                    rels.push(self.run(i)?);
                }
                union_all(rels)
            }
            Plan::Aggregate {
                input,
                group_by,
                aggs,
            } => {
                let fields = input.fields();
                let rel = self.run(input)?;
                let is_target = self
                    .private
                    .as_ref()
                    .is_some_and(|pv| std::ptr::eq(pv.target, plan));
                if is_target {
                    self.aggregate_private(rel, &fields, aggs)?
                } else if group_by.is_empty() {
                    self.aggregate_global(rel, &fields, aggs)?
                } else {
                    self.aggregate_grouped(rel, &fields, group_by, aggs)?
                }
            }
            Plan::Join {
                left,
                right,
                on,
                residual,
            } => self.join(left, right, on, residual.as_ref())?,
            Plan::SemiJoin {
                probe,
                build,
                on,
                residual,
                anti,
            } => self.semi_join(probe, build, on, residual.as_ref(), *anti)?,
        };
        self.step();
        Ok(rel)
    }

    fn scan(&mut self, table: &str, schema: &Schema) -> Result<Rel> {
        let t = self.inputs.get(table).ok_or_else(|| {
            ExecError::Input(format!(
                "table {table:?} has not been uploaded to this node"
            ))
        })?;
        if t.schema != *schema {
            return Err(ExecError::Input(format!(
                "table {table:?} was uploaded with schema {} but the query was planned for {}",
                t.schema.to_compact(),
                schema.to_compact()
            )));
        }
        let words: usize = schema.columns().iter().map(|c| c.ty.words()).sum();
        if t.columns.len() != words || t.columns.iter().any(|c| c.len() != t.rows) {
            return Err(ExecError::Input(format!(
                "table {table:?}: stored shares do not match its schema"
            )));
        }
        if self.p.security() == kuvert_mpc::Security::Malicious
            && self.range_checked.insert(table.to_string())
        {
            crate::input_check::check_ranges(self.p, table, t)?;
        }
        let mut at = 0;
        let mut cols = Vec::new();
        for c in schema.columns() {
            let k = c.ty.words();
            cols.push(Val::plain(t.columns[at..at + k].to_vec()));
            at += k;
        }
        Ok(Rel {
            n: t.rows,
            cols,
            valid: self.constant(t.rows, 1),
        })
    }

    /// A bool value as a 0/1 "holds" column: NULL counts as false.
    fn truth(&mut self, v: &Val) -> Result<AShare> {
        match &v.null {
            None => Ok(v.w().clone()),
            Some(nl) => {
                let nn = ops::not01(self.p, nl);
                Ok(ops::mul(self.p, v.w(), &nn)?)
            }
        }
    }

    fn null_or(&mut self, a: &Option<AShare>, b: &Option<AShare>) -> Result<Option<AShare>> {
        Ok(match (a, b) {
            (None, None) => None,
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (Some(x), Some(y)) => Some(ops::or01(self.p, x, y)?),
        })
    }

    fn eval(&mut self, rel: &Rel, fields: &[Field], e: &Expr) -> Result<Val> {
        let n = rel.n;
        Ok(match e {
            Expr::Column(i) => rel.cols[*i].clone(),
            Expr::Const(c) => Val::plain(c.words.iter().map(|&w| self.constant(n, w)).collect()),
            Expr::Neg(x) => {
                let v = self.eval(rel, fields, x)?;
                Val {
                    planes: vec![v.w().neg()],
                    null: v.null,
                }
            }
            Expr::Not(x) => {
                let v = self.eval(rel, fields, x)?;
                Val {
                    planes: vec![ops::not01(self.p, v.w())],
                    null: v.null,
                }
            }
            Expr::Binary { op, left, right } => {
                let ty = left.ty(fields);
                let l = self.eval(rel, fields, left)?;
                let r = self.eval(rel, fields, right)?;
                let null = self.null_or(&l.null, &r.null)?;
                let v = match op {
                    BinOp::Add => l.w().add(r.w()),
                    BinOp::Sub => l.w().sub(r.w()),
                    BinOp::Mul => match (const_of(left), const_of(right)) {
                        (Some(c), _) => r.w().mul_public(c),
                        (_, Some(c)) => l.w().mul_public(c),
                        _ => ops::mul(self.p, l.w(), r.w())?,
                    },
                    BinOp::And => ops::mul(self.p, l.w(), r.w())?,
                    BinOp::Or => ops::or01(self.p, l.w(), r.w())?,
                    BinOp::Eq => ops::eq_words(self.p, &l.planes, &r.planes)?,
                    BinOp::Ne => {
                        let e = ops::eq_words(self.p, &l.planes, &r.planes)?;
                        ops::not01(self.p, &e)
                    }
                    BinOp::Lt => self.less(ty, l.w(), r.w())?,
                    BinOp::Gt => self.less(ty, r.w(), l.w())?,
                    BinOp::Le => {
                        let g = self.less(ty, r.w(), l.w())?;
                        ops::not01(self.p, &g)
                    }
                    BinOp::Ge => {
                        let g = self.less(ty, l.w(), r.w())?;
                        ops::not01(self.p, &g)
                    }
                };
                Val {
                    planes: vec![v],
                    null,
                }
            }
            Expr::Case { whens, otherwise } => {
                let mut acc = self.eval(rel, fields, otherwise)?;
                for (c, v) in whens.iter().rev() {
                    let cv = self.eval(rel, fields, c)?;
                    let cond = self.truth(&cv)?;
                    let vv = self.eval(rel, fields, v)?;
                    let mut planes = Vec::new();
                    for (x, y) in vv.planes.iter().zip(&acc.planes) {
                        planes.push(ops::choose(self.p, &cond, x, y)?);
                    }
                    let null = match (&vv.null, &acc.null) {
                        (None, None) => None,
                        (x, y) => {
                            let z = AShare::zeros(n);
                            let x = x.clone().unwrap_or_else(|| z.clone());
                            let y = y.clone().unwrap_or(z);
                            Some(ops::choose(self.p, &cond, &x, &y)?)
                        }
                    };
                    acc = Val { planes, null };
                }
                acc
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = self.eval(rel, fields, expr)?;
                let mut uniq: Vec<&Const> = Vec::new();
                for c in list {
                    if !uniq.contains(&c) {
                        uniq.push(c);
                    }
                }
                let k = uniq.len();
                let hit = if k == 0 {
                    AShare::zeros(n)
                } else {
                    let xs: Vec<AShare> = v
                        .planes
                        .iter()
                        .map(|pl| AShare::concat(&vec![pl; k]))
                        .collect();
                    let ys: Vec<AShare> = (0..v.planes.len())
                        .map(|w| {
                            let parts: Vec<AShare> =
                                uniq.iter().map(|c| self.constant(n, c.words[w])).collect();
                            AShare::concat(&parts.iter().collect::<Vec<_>>())
                        })
                        .collect();
                    let eqs = ops::eq_words(self.p, &xs, &ys)?;
                    // distinct constants: at most one matches, so OR is a sum
                    eqs.split(&vec![n; k])
                        .iter()
                        .fold(AShare::zeros(n), |a, b| a.add(b))
                };
                let hit = if *negated {
                    ops::not01(self.p, &hit)
                } else {
                    hit
                };
                Val {
                    planes: vec![hit],
                    null: v.null,
                }
            }
        })
    }

    /// `x < y` as 0/1 for values of type `ty`.
    fn less(&mut self, ty: ColumnType, x: &AShare, y: &AShare) -> Result<AShare> {
        if x.is_empty() {
            return Ok(AShare::zeros(0));
        }
        let b = match ty {
            ColumnType::Int => self.p.lt(x, y, true)?,
            ColumnType::Text => {
                return Err(ExecError::Unsupported(
                    "ordering comparisons of text are not supported in expressions".into(),
                ))
            }
            _ => self.p.lt_bounded(x, y)?,
        };
        Ok(ops::bits01(self.p, &b)?)
    }

    // ----- aggregation -----------------------------------------------

    fn aggregate_global(&mut self, rel: Rel, fields: &[Field], aggs: &[Agg]) -> Result<Rel> {
        let n = rel.n;
        let count = rel.valid.sum();
        let mut is_null: Option<AShare> = None;
        let mut cols = Vec::new();
        for a in aggs {
            let val = match a.func {
                AggFunc::Count => Val::one(count.clone()),
                AggFunc::Sum => {
                    let x = rel.cols[a.arg.expect("SUM has an argument")].w();
                    let s = ops::mul(self.p, x, &rel.valid)?.sum();
                    self.nullable(s, &count, &mut is_null)?
                }
                AggFunc::Min | AggFunc::Max => {
                    let arg = a.arg.expect("MIN/MAX have an argument");
                    let max = a.func == AggFunc::Max;
                    let x = rel.cols[arg].w();
                    let sentinel = if max {
                        i64::MIN as u64
                    } else {
                        i64::MAX as u64
                    };
                    let m = if n == 0 {
                        self.constant(1, 0)
                    } else {
                        let s = self.constant(n, sentinel);
                        let x = ops::choose(self.p, &rel.valid, x, &s)?;
                        ops::reduce_extreme(self.p, x, max, true)?
                    };
                    self.nullable(m, &count, &mut is_null)?
                }
                AggFunc::CountDistinct => {
                    let arg = a.arg.expect("COUNT(DISTINCT) has an argument");
                    let ty = fields[arg].ty;
                    let c = self.count_distinct_global(&rel, ty, arg)?;
                    Val::one(c)
                }
            };
            cols.push(val);
        }
        Ok(Rel {
            n: 1,
            cols,
            valid: self.constant(1, 1),
        })
    }

    /// `WITH PRIVACY`: drop rows whose group key is not declared, cap each
    /// person's rows, clamp SUM arguments, aggregate (per declared group),
    /// and add every node's own secret Skellam noise to each output cell.
    fn aggregate_private(&mut self, rel: Rel, fields: &[Field], aggs: &[Agg]) -> Result<Rel> {
        let pv = self.private.as_ref().expect("private query");
        let (person, max_rows, lo, hi, mus, group) = (
            pv.person,
            pv.privacy.max_rows,
            pv.privacy.lo.unwrap_or(0),
            pv.privacy.hi.unwrap_or(0),
            pv.mus.clone(),
            pv.group.clone(),
        );
        let n = rel.n;
        let me = self.p.id();
        let mut rel = rel;
        // 0. histogram: one 0/1 indicator column per declared key (k x n
        //    oblivious equalities in one batch); a row whose key is not
        //    declared loses its validity bit before the cap, so it counts
        //    toward nothing, not even its person's quota.
        let mut ind: Vec<AShare> = Vec::new();
        if let (Some((g, keys)), true) = (&group, n > 0) {
            let k = keys.len();
            let v = rel.cols[*g].clone();
            let xs: Vec<AShare> = v
                .planes
                .iter()
                .map(|pl| AShare::concat(&vec![pl; k]))
                .collect();
            let ys: Vec<AShare> = (0..v.planes.len())
                .map(|w| {
                    let parts: Vec<AShare> =
                        keys.iter().map(|c| self.constant(n, c.words[w])).collect();
                    AShare::concat(&parts.iter().collect::<Vec<_>>())
                })
                .collect();
            ind = ops::eq_words(self.p, &xs, &ys)?.split(&vec![n; k]);
            // distinct keys: at most one indicator is 1, so OR is a sum
            let mut member = ind.iter().fold(AShare::zeros(n), |a, b| a.add(b));
            if let Some(nl) = &v.null {
                let nn = ops::not01(self.p, nl);
                member = ops::mul(self.p, &member, &nn)?;
            }
            rel.valid = ops::mul(self.p, &rel.valid, &member)?;
        }
        if n > 0 {
            // 1. at most max_rows rows per person (the first in input order)
            let ty = fields[person].ty;
            let parts = self.valid_first(&rel.valid, &[(ty, &rel.cols[person])]);
            let shp = shapes(&rel.cols);
            let mut payload = flatten(rel.cols);
            let n_ind = ind.len();
            payload.append(&mut ind);
            payload.push(rel.valid);
            let mut sorted = ops::sort(self.p, n, parts, payload)?;
            let valid = sorted.pop().expect("valid");
            ind = sorted.split_off(sorted.len() - n_ind);
            let cols = unflatten_vals(&shp, &mut sorted.into_iter());
            let words = self.key_words(&valid, &[(ty, &cols[person])], n);
            let starts = ops::segment_starts(self.p, &words)?;
            let rank = ops::seg_sum(self.p, &starts, vec![valid.clone()])?
                .pop()
                .expect("rank");
            let limit = self.constant(n, max_rows + 1);
            let keep = ops::lt01_bounded(self.p, &rank, &limit)?;
            let valid = ops::mul(self.p, &valid, &keep)?;
            rel = Rel { n, cols, valid };
            // 2. clamp the SUM arguments to [lo, hi]
            let mut done: Vec<usize> = Vec::new();
            for a in aggs {
                if let (AggFunc::Sum, Some(c)) = (a.func, a.arg) {
                    if done.contains(&c) {
                        continue;
                    }
                    done.push(c);
                    let x = rel.cols[c].w().clone();
                    let lo_c = self.constant(n, lo as u64);
                    let hi_c = self.constant(n, hi as u64);
                    let below = self.less(ColumnType::Int, &x, &lo_c)?;
                    let raised = ops::choose(self.p, &below, &lo_c, &x)?;
                    let above = self.less(ColumnType::Int, &hi_c, &raised)?;
                    let clamped = ops::choose(self.p, &above, &hi_c, &raised)?;
                    rel.cols[c] = Val::one(clamped);
                }
            }
        }
        // 3. the exact aggregates, never NULL (emptiness would be revealed)
        let mut out = match &group {
            None => self.aggregate_global(rel, fields, aggs)?,
            Some((_, keys)) => self.aggregate_declared(rel, ind, keys, aggs)?,
        };
        // 4. noise. Semi-honest: each node enters its own Skellam(mu/2) per
        // output cell. Malicious: each share component is a Skellam(mu)
        // drawn by the two nodes that hold it (no node can bias it; see
        // kuvert_mpc::Party::pair_sampled_a).
        let cells = out.n;
        let k = aggs.len() * cells;
        let first = out.cols.len() - aggs.len();
        let to_word = |s: std::result::Result<i128, kuvert_dp::DpError>| -> Result<u64> {
            let s = s.map_err(|e| ExecError::Noise(e.to_string()))?;
            let s = i64::try_from(s).map_err(|_| ExecError::Noise("sample out of range".into()))?;
            Ok(s as u64)
        };
        let mut noise_shares = Vec::new();
        if self.p.security() == kuvert_mpc::Security::Malicious {
            noise_shares.push(self.p.pair_sampled_a(k, |cell, rng| {
                let mu = mus[cell / cells];
                to_word(
                    kuvert_dp::distributed::DistributedSkellam::PAIRWISE.sample_node_noise(rng, mu),
                )
            })?);
        } else {
            for owner in 0..3 {
                let mine = if me == owner {
                    let rng = &mut self.private.as_mut().expect("private query").noise;
                    let mut v = Vec::with_capacity(k);
                    for mu in &mus {
                        for _ in 0..cells {
                            v.push(to_word(
                                kuvert_dp::distributed::DistributedSkellam::KUVERT
                                    .sample_node_noise(rng.as_mut(), *mu),
                            )?);
                        }
                    }
                    Some(v)
                } else {
                    None
                };
                noise_shares.push(self.p.input_a(owner, mine.as_deref(), k)?);
            }
        }
        for sh in &noise_shares {
            for (j, c) in out.cols[first..].iter_mut().enumerate() {
                c.planes[0] = c.planes[0].add(&sh.slice(j * cells..(j + 1) * cells));
            }
        }
        for c in out.cols.iter_mut() {
            c.null = None;
        }
        Ok(out)
    }

    /// COUNT/SUM per declared group: one output row per key (the key a
    /// public constant), from the indicator columns `ind` (one per key,
    /// over the rows of `rel`). Empty groups get 0.
    fn aggregate_declared(
        &mut self,
        rel: Rel,
        ind: Vec<AShare>,
        keys: &[Const],
        aggs: &[Agg],
    ) -> Result<Rel> {
        let (n, k) = (rel.n, keys.len());
        let words = keys.first().map(|c| c.words.len()).unwrap_or(1);
        let key_col = Val::plain(
            (0..words)
                .map(|w| {
                    let v: Vec<u64> = keys.iter().map(|c| c.words[w]).collect();
                    AShare::public(self.p.id(), &v)
                })
                .collect(),
        );
        let mut cols = vec![key_col];
        if n == 0 {
            for _ in aggs {
                cols.push(Val::one(AShare::zeros(k)));
            }
        } else {
            // w_j = [row valid and in group j]; counts are its sums
            let pairs: Vec<(&AShare, &AShare)> = ind.iter().map(|e| (e, &rel.valid)).collect();
            let w = ops::mul_many(self.p, &pairs)?;
            let counts: Vec<AShare> = w.iter().map(|x| x.sum()).collect();
            let count = AShare::concat(&counts.iter().collect::<Vec<_>>());
            // sums: every distinct SUM argument times every w_j, one batch
            let mut sum_args: Vec<usize> = Vec::new();
            for a in aggs {
                if let (AggFunc::Sum, Some(c)) = (a.func, a.arg) {
                    if !sum_args.contains(&c) {
                        sum_args.push(c);
                    }
                }
            }
            let mut pairs = Vec::with_capacity(sum_args.len() * k);
            for &c in &sum_args {
                for wj in &w {
                    pairs.push((wj, rel.cols[c].w()));
                }
            }
            let prods = ops::mul_many(self.p, &pairs)?;
            let sums: Vec<AShare> = prods
                .chunks(k.max(1))
                .map(|ch| {
                    let cells: Vec<AShare> = ch.iter().map(|x| x.sum()).collect();
                    AShare::concat(&cells.iter().collect::<Vec<_>>())
                })
                .collect();
            for a in aggs {
                cols.push(Val::one(match (a.func, a.arg) {
                    (AggFunc::Sum, Some(c)) => {
                        sums[sum_args.iter().position(|&x| x == c).expect("listed")].clone()
                    }
                    _ => count.clone(),
                }));
            }
        }
        Ok(Rel {
            n: k,
            cols,
            valid: self.constant(k, 1),
        })
    }

    /// SUM/MIN/MAX over possibly empty input: NULL when nothing was counted.
    fn nullable(&mut self, v: AShare, count: &AShare, is_null: &mut Option<AShare>) -> Result<Val> {
        if is_null.is_none() {
            let zero = self.constant(1, 0);
            *is_null = Some(ops::eq_words(self.p, std::slice::from_ref(count), &[zero])?);
        }
        let nl = is_null.clone().expect("set above");
        let keep = ops::not01(self.p, &nl);
        let v = ops::mul(self.p, &v, &keep)?;
        Ok(Val {
            planes: vec![v],
            null: Some(nl),
        })
    }

    fn count_distinct_global(&mut self, rel: &Rel, ty: ColumnType, arg: usize) -> Result<AShare> {
        let n = rel.n;
        if n == 0 {
            return Ok(self.constant(1, 0));
        }
        let v = &rel.cols[arg];
        let mut payload = v.planes.clone();
        payload.push(rel.valid.clone());
        let parts = self.valid_first(&rel.valid, &[(ty, v)]);
        let mut sorted = ops::sort(self.p, n, parts, payload)?;
        let valid = sorted.pop().expect("valid");
        let sv = Val::plain(sorted);
        let words = self.key_words(&valid, &[(ty, &sv)], n);
        let starts = ops::segment_starts(self.p, &words)?;
        Ok(ops::mul(self.p, &starts, &valid)?.sum())
    }

    /// Key parts (invalid rows last, then the given values ascending).
    fn valid_first(&self, valid: &AShare, keys: &[(ColumnType, &Val)]) -> Vec<Part> {
        let mut parts = vec![Part::Bounded {
            v: ops::not01(self.p, valid),
            bits: 1,
            offset: 0,
        }];
        for (ty, v) in keys {
            parts.extend(self.parts_of(*ty, v, false));
        }
        parts
    }

    fn parts_of(&self, ty: ColumnType, v: &Val, desc: bool) -> Vec<Part> {
        let mut parts = Vec::new();
        if let Some(nl) = &v.null {
            // NULL first (ascending), as SQLite orders it.
            parts.push(Part::Bounded {
                v: ops::not01(self.p, nl),
                bits: 1,
                offset: 0,
            });
        }
        match ty {
            ColumnType::Int => parts.push(Part::Full {
                v: v.w().clone(),
                signed: true,
            }),
            ColumnType::Date | ColumnType::Bool | ColumnType::Idnr => {
                let (offset, bits) = bounded(ty).expect("a bounded type");
                parts.push(Part::Bounded {
                    v: v.w().clone(),
                    bits,
                    offset,
                })
            }
            ColumnType::Text => {
                for w in &v.planes {
                    parts.push(Part::Full {
                        v: w.clone(),
                        signed: false,
                    })
                }
            }
        }
        if desc {
            parts.into_iter().map(|p| p.desc(self.p)).collect()
        } else {
            parts
        }
    }

    /// Packed key words of (valid first, keys), for segment detection.
    fn key_words(&self, valid: &AShare, keys: &[(ColumnType, &Val)], n: usize) -> Vec<AShare> {
        ops::pack(self.p, self.valid_first(valid, keys), n).0
    }

    fn aggregate_grouped(
        &mut self,
        rel: Rel,
        fields: &[Field],
        group_by: &[usize],
        aggs: &[Agg],
    ) -> Result<Rel> {
        let n = rel.n;
        let distinct: Vec<usize> = {
            let mut d: Vec<usize> = aggs
                .iter()
                .filter(|a| a.func == AggFunc::CountDistinct)
                .filter_map(|a| a.arg)
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        };
        if distinct.len() > 1 {
            return Err(ExecError::Unsupported(format!(
                "at most one column may be counted with COUNT(DISTINCT ...) per GROUP BY; this query counts {}",
                distinct
                    .iter()
                    .map(|&c| fields[c].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // Columns the aggregation reads, carried through the sort.
        let mut carried: Vec<usize> = group_by.to_vec();
        for a in aggs {
            if let Some(c) = a.arg {
                if !carried.contains(&c) {
                    carried.push(c);
                }
            }
        }
        let keys: Vec<(ColumnType, &Val)> = group_by
            .iter()
            .chain(distinct.iter())
            .map(|&c| (fields[c].ty, &rel.cols[c]))
            .collect();
        let parts = self.valid_first(&rel.valid, &keys);
        let carried_vals: Vec<Val> = carried.iter().map(|&c| rel.cols[c].clone()).collect();
        let shp = shapes(&carried_vals);
        let mut payload = flatten(carried_vals);
        payload.push(rel.valid.clone());
        let mut sorted = ops::sort(self.p, n, parts, payload)?;
        let valid = sorted.pop().expect("valid");
        let mut it = sorted.into_iter();
        let vals = unflatten_vals(&shp, &mut it);
        let col = |c: usize| &vals[carried.iter().position(|&x| x == c).expect("carried")];

        let gkeys: Vec<(ColumnType, &Val)> =
            group_by.iter().map(|&c| (fields[c].ty, col(c))).collect();
        let gwords = self.key_words(&valid, &gkeys, n);
        let starts = ops::segment_starts(self.p, &gwords)?;

        // Sums: counts of valid rows, sums of arguments, first occurrences.
        let mut sum_inputs: Vec<AShare> = vec![valid.clone()];
        let mut dflag = None;
        if let Some(&d) = distinct.first() {
            let mut dkeys = gkeys.clone();
            dkeys.push((fields[d].ty, col(d)));
            let dwords = self.key_words(&valid, &dkeys, n);
            let dstarts = ops::segment_starts(self.p, &dwords)?;
            dflag = Some(sum_inputs.len());
            sum_inputs.push(dstarts);
        }
        let mut sum_index = BTreeMap::new();
        for a in aggs {
            if a.func == AggFunc::Sum {
                let c = a.arg.expect("SUM has an argument");
                if let std::collections::btree_map::Entry::Vacant(e) = sum_index.entry(c) {
                    e.insert(sum_inputs.len());
                    sum_inputs.push(col(c).w().clone());
                }
            }
        }
        let sums = ops::seg_sum(self.p, &starts, sum_inputs)?;
        let mut out_cols: Vec<Val> = group_by.iter().map(|&c| col(c).clone()).collect();
        for a in aggs {
            let v = match a.func {
                AggFunc::Count => Val::one(sums[0].clone()),
                AggFunc::CountDistinct => Val::one(sums[dflag.expect("distinct flag")].clone()),
                AggFunc::Sum => Val::one(sums[sum_index[&a.arg.expect("arg")]].clone()),
                AggFunc::Min | AggFunc::Max => {
                    let c = a.arg.expect("MIN/MAX have an argument");
                    // ints compare exactly as signed 64-bit values; the
                    // bounded types (date, idnr, bool) fit that too
                    let m = ops::seg_extreme(
                        self.p,
                        &starts,
                        col(c).w().clone(),
                        a.func == AggFunc::Max,
                        true,
                    )?;
                    Val::one(m)
                }
            };
            out_cols.push(v);
        }
        // The last row of each segment of valid rows carries the group.
        let last = if n == 0 {
            AShare::zeros(0)
        } else {
            AShare::concat(&[&starts.slice(1..n), &self.constant(1, 1)])
        };
        let valid = ops::mul(self.p, &last, &valid)?;
        Ok(Rel {
            n,
            cols: out_cols,
            valid,
        })
    }

    // ----- joins -----------------------------------------------------

    fn join(
        &mut self,
        left: &Plan,
        right: &Plan,
        on: &[(usize, usize)],
        residual: Option<&Expr>,
    ) -> Result<Rel> {
        let lf = left.fields();
        let rf = right.fields();
        let lcols: Vec<usize> = on.iter().map(|&(l, _)| l).collect();
        let rcols: Vec<usize> = on.iter().map(|&(_, r)| r).collect();
        let unique_right = !on.is_empty() && unique_on(right, &rcols);
        let unique_left = !on.is_empty() && unique_on(left, &lcols);
        let key_tys: Vec<ColumnType> = lcols.iter().map(|&c| lf[c].ty).collect();
        let fuse_right = if unique_right {
            fusable(right, &rcols).filter(|f| !self.is_private_target(f.agg_node))
        } else {
            None
        };
        let fuse_left = if !unique_right && unique_left {
            fusable(left, &lcols).filter(|f| !self.is_private_target(f.agg_node))
        } else {
            None
        };
        if let Some(f) = fuse_right {
            let m = self.run(left)?;
            let (n, u_out, mut m_out, valid) = self.fused_join(&f, m, &lcols, &key_tys)?;
            m_out.extend(u_out);
            let rel = Rel {
                n,
                cols: m_out,
                valid,
            };
            let mut out_fields = lf;
            out_fields.extend(rf);
            return self.filter_by(rel, &out_fields, residual);
        }
        if let Some(f) = fuse_left {
            let m = self.run(right)?;
            let (n, mut u_out, m_out, valid) = self.fused_join(&f, m, &rcols, &key_tys)?;
            u_out.extend(m_out);
            let rel = Rel {
                n,
                cols: u_out,
                valid,
            };
            let mut out_fields = lf;
            out_fields.extend(rf);
            return self.filter_by(rel, &out_fields, residual);
        }
        let l = self.run(left)?;
        let r = self.run(right)?;
        let rel = if unique_right {
            let (n, u_out, mut m_out, valid) = self.sort_join(r, &rcols, l, &lcols, &key_tys)?;
            m_out.extend(u_out);
            Rel {
                n,
                cols: m_out,
                valid,
            }
        } else if unique_left {
            let (n, mut u_out, m_out, valid) = self.sort_join(l, &lcols, r, &rcols, &key_tys)?;
            u_out.extend(m_out);
            Rel {
                n,
                cols: u_out,
                valid,
            }
        } else {
            let (nl, nr) = (l.n, r.n);
            let pairs = nl.saturating_mul(nr);
            if pairs > NESTED_LOOP_MAX_PAIRS {
                return Err(ExecError::Unsupported(format!(
                    "this join pairs {nl} rows with {nr} rows and neither side is known to be unique on the join key, \
                     so it would need an oblivious nested loop over {pairs} pairs (the limit is {NESTED_LOOP_MAX_PAIRS}). \
                     Make one side unique on the key with a GROUP BY subquery, e.g. \
                     JOIN (SELECT key, SUM(x) AS x FROM t GROUP BY key) ..., or use EXISTS / IN for a semi-join"
                )));
            }
            let (li, ri) = pair_indices(nl, nr);
            let lg = gather_rel(&l, &li);
            let rg = gather_rel(&r, &ri);
            let mut valid = ops::mul(self.p, &lg.valid, &rg.valid)?;
            if !lcols.is_empty() {
                let xs: Vec<AShare> = lcols
                    .iter()
                    .flat_map(|&c| lg.cols[c].planes.clone())
                    .collect();
                let ys: Vec<AShare> = rcols
                    .iter()
                    .flat_map(|&c| rg.cols[c].planes.clone())
                    .collect();
                let eq = ops::eq_words(self.p, &xs, &ys)?;
                valid = ops::mul(self.p, &valid, &eq)?;
            }
            let mut cols = lg.cols;
            cols.extend(rg.cols);
            Rel {
                n: nl * nr,
                cols,
                valid,
            }
        };
        let mut out_fields = lf;
        out_fields.extend(rf);
        self.filter_by(rel, &out_fields, residual)
    }

    fn filter_by(&mut self, rel: Rel, fields: &[Field], pred: Option<&Expr>) -> Result<Rel> {
        match pred {
            None => Ok(rel),
            Some(pred) => {
                let v = self.eval(&rel, fields, pred)?;
                let keep = self.truth(&v)?;
                let valid = ops::mul(self.p, &rel.valid, &keep)?;
                Ok(Rel { valid, ..rel })
            }
        }
    }

    /// Sort-based join of `m` with `u`, which is unique on `ucols` among its
    /// valid rows. Both are sorted together (valid first, key, U rows before
    /// M rows at equal keys), a segmented prefix sum copies each U row's
    /// columns down its key segment, and an M row is valid in the output if
    /// a U row was found. Output: n = |M| rows (the U rows are dropped),
    /// (U columns, M columns).
    fn sort_join(
        &mut self,
        u: Rel,
        ucols: &[usize],
        m: Rel,
        mcols: &[usize],
        key_tys: &[ColumnType],
    ) -> Result<(usize, Vec<Val>, Vec<Val>, AShare)> {
        let (nu, nm) = (u.n, m.n);
        let n = nu + nm;
        let keys: Vec<Val> = ucols
            .iter()
            .zip(mcols)
            .map(|(&a, &b)| concat_vals(&u.cols[a], nu, &m.cols[b], nm))
            .collect();
        let u_vals: Vec<Val> = u.cols.iter().map(|c| pad_after(c, nm)).collect();
        let m_vals: Vec<Val> = m.cols.iter().map(|c| pad_before(c, nu)).collect();
        let mut is_u = vec![1u64; nu];
        is_u.extend(std::iter::repeat_n(0, nm));
        let is_u = AShare::public(self.p.id(), &is_u);
        let valid = AShare::concat(&[&u.valid, &m.valid]);
        // the inputs are copied into the combined table: free them now
        drop((u, m));
        let kv: Vec<(ColumnType, &Val)> = key_tys.iter().copied().zip(keys.iter()).collect();
        let parts = self.valid_first(&valid, &kv);
        let (us, ms, ks) = (shapes(&u_vals), shapes(&m_vals), shapes(&keys));
        let mut payload = flatten(u_vals);
        payload.extend(flatten(m_vals));
        payload.extend(flatten(keys));
        payload.push(is_u);
        payload.push(valid);
        let mut sorted = ops::sort(self.p, n, parts, payload)?;
        let valid = sorted.pop().expect("valid");
        let is_u = sorted.pop().expect("is_u");
        let mut it = sorted.into_iter();
        let u_vals = unflatten_vals(&us, &mut it);
        let m_vals = unflatten_vals(&ms, &mut it);
        let keys = unflatten_vals(&ks, &mut it);
        let kv: Vec<(ColumnType, &Val)> = key_tys.iter().copied().zip(keys.iter()).collect();
        let words = self.key_words(&valid, &kv, n);
        let starts = ops::segment_starts(self.p, &words)?;
        let mut copy_in = flatten(u_vals);
        copy_in.push(is_u.clone());
        let mut copied = ops::seg_sum(self.p, &starts, copy_in)?;
        let has_u = copied.pop().expect("has_u");
        let u_out = unflatten_vals(&us, &mut copied.into_iter());
        let not_u = ops::not01(self.p, &is_u);
        let t = ops::mul(self.p, &valid, &not_u)?;
        let valid = ops::mul(self.p, &t, &has_u)?;
        // Only M rows can be valid: drop the U rows, so that the operators
        // above see |M| rows instead of |U| + |M|.
        let nu_out = u_out.len();
        let mut all = u_out;
        all.extend(m_vals);
        let rel = self.drop_rows(n, all, valid, &is_u, nu)?;
        let mut cols = rel.cols;
        let m_vals = cols.split_off(nu_out);
        Ok((rel.n, cols, m_vals, rel.valid))
    }

    /// Remove the `k` rows whose secret 0/1 flag `gone` is 1 (rows that
    /// are known to be invalid, e.g. the unique side's rows after a sort
    /// join): shuffle the rows with a secret uniform permutation, open
    /// `gone`, keep the others. The opened flags are then a uniformly
    /// random set of `k` positions out of `n`, which the public sizes
    /// alone simulate: nothing about the data is revealed. Cost: one
    /// shuffle of the columns (3 rounds, 2 words per element per plane).
    fn drop_rows(
        &mut self,
        n: usize,
        cols: Vec<Val>,
        valid: AShare,
        gone: &AShare,
        k: usize,
    ) -> Result<Rel> {
        if k == 0 {
            return Ok(Rel { n, cols, valid });
        }
        let shp = shapes(&cols);
        let mut planes = flatten(cols);
        planes.push(valid);
        planes.push(gone.clone());
        let mut sh: Vec<Column> = planes.into_iter().map(Column::Arith).collect();
        if n > 1 {
            self.p.shuffle(&mut sh)?;
        }
        let mut planes: Vec<AShare> = sh
            .into_iter()
            .map(|c| match c {
                Column::Arith(a) => a,
                Column::Bool(_) => unreachable!("arithmetic only"),
            })
            .collect();
        let gone = planes.pop().expect("gone");
        let flags = self
            .p
            .reveal_a(&gone, None)?
            .expect("opened to every party");
        let keep: Vec<u32> = (0..n as u32).filter(|&i| flags[i as usize] == 0).collect();
        if keep.len() != n - k || flags.iter().any(|&f| f > 1) {
            return Err(ExecError::Mpc(MpcError::Usage(format!(
                "dropping {k} of {n} rows: the opened flags are not {k} ones and {} zeros; \
                 the nodes' shares are inconsistent, so the job stops",
                n - k
            ))));
        }
        let planes: Vec<AShare> = planes.into_iter().map(|x| x.permute(&keep)).collect();
        let mut it = planes.into_iter();
        let cols = unflatten_vals(&shp, &mut it);
        let valid = it.next().expect("valid");
        Ok(Rel {
            n: n - k,
            cols,
            valid,
        })
    }

    fn is_private_target(&self, plan: &Plan) -> bool {
        self.private
            .as_ref()
            .is_some_and(|pv| std::ptr::eq(pv.target, plan))
    }

    /// Join of `m` with `GROUP BY key` of `f.input` on exactly that key,
    /// without materialising the grouped relation: the rows of the grouped
    /// input B and of M are sorted together once (valid first, key; B rows
    /// before M rows at equal keys, by the sort's stability), and one
    /// segmented scan over each key segment gives every M row the count,
    /// sums and extremes of the B rows before it, which are all the B rows
    /// of its key. An M row is valid in the output if its segment begins
    /// with a B row (the inner join drops keys without B rows). Then the B
    /// rows are dropped (see `drop_rows`). Same answer as the grouped
    /// subquery followed by the sort join, with one sort of |B| + |M| rows
    /// instead of a sort of |B| and one of |B| + |M|.
    fn fused_join(
        &mut self,
        f: &Fusion<'_>,
        m: Rel,
        mcols: &[usize],
        key_tys: &[ColumnType],
    ) -> Result<(usize, Vec<Val>, Vec<Val>, AShare)> {
        let b = self.run(f.input)?;
        for _ in 0..f.skipped {
            self.step();
        }
        let me = self.p.id();
        let (nb, nm) = (b.n, m.n);
        let n = nb + nm;
        let keys: Vec<Val> = f
            .key_in
            .iter()
            .zip(mcols)
            .map(|(&a, &c)| concat_vals(&b.cols[a], nb, &m.cols[c], nm))
            .collect();
        // aggregate inputs: B's values, zero (sums) or the neutral element
        // (extremes) at M rows
        let mut sum_args: Vec<usize> = Vec::new();
        let mut ext_args: Vec<(usize, bool)> = Vec::new();
        for a in f.aggs {
            match (a.func, a.arg) {
                (AggFunc::Sum, Some(c)) if !sum_args.contains(&c) => sum_args.push(c),
                (AggFunc::Min | AggFunc::Max, Some(c)) => {
                    let max = a.func == AggFunc::Max;
                    if !ext_args.contains(&(c, max)) {
                        ext_args.push((c, max));
                    }
                }
                _ => {}
            }
        }
        let sum_in: Vec<AShare> = sum_args
            .iter()
            .map(|&c| AShare::concat(&[b.cols[c].w(), &AShare::zeros(nm)]))
            .collect();
        let ext_in: Vec<AShare> = ext_args
            .iter()
            .map(|&(c, max)| {
                // signed order: i64::MIN never wins a MAX, i64::MAX never a MIN
                let neutral = if max { 1u64 << 63 } else { (1u64 << 63) - 1 };
                AShare::concat(&[b.cols[c].w(), &AShare::public(me, &vec![neutral; nm])])
            })
            .collect();
        let m_vals: Vec<Val> = m.cols.iter().map(|c| pad_before(c, nb)).collect();
        let mut is_b = vec![1u64; nb];
        is_b.extend(std::iter::repeat_n(0, nm));
        let is_b = AShare::public(me, &is_b);
        let valid = AShare::concat(&[&b.valid, &m.valid]);
        drop((b, m));
        let kv: Vec<(ColumnType, &Val)> = key_tys.iter().copied().zip(keys.iter()).collect();
        let parts = self.valid_first(&valid, &kv);
        let (ms, ks) = (shapes(&m_vals), shapes(&keys));
        let (ns, ne) = (sum_in.len(), ext_in.len());
        let mut payload = flatten(m_vals);
        payload.extend(flatten(keys));
        payload.extend(sum_in);
        payload.extend(ext_in);
        payload.push(is_b);
        payload.push(valid);
        let mut sorted = ops::sort(self.p, n, parts, payload)?;
        let valid = sorted.pop().expect("valid");
        let is_b = sorted.pop().expect("is_b");
        let mut it = sorted.into_iter();
        let m_vals = unflatten_vals(&ms, &mut it);
        let keys = unflatten_vals(&ks, &mut it);
        let sum_in: Vec<AShare> = it.by_ref().take(ns).collect();
        let ext_in: Vec<AShare> = it.by_ref().take(ne).collect();
        let kv: Vec<(ColumnType, &Val)> = key_tys.iter().copied().zip(keys.iter()).collect();
        let words = self.key_words(&valid, &kv, n);
        let starts = ops::segment_starts(self.p, &words)?;
        // a segment has B rows iff its first row is one
        let first_b = ops::mul(self.p, &starts, &is_b)?;
        let mut scan_in = vec![is_b.clone(), first_b];
        scan_in.extend(sum_in);
        let mut sums = ops::seg_sum(self.p, &starts, scan_in)?.into_iter();
        let count = sums.next().expect("count");
        let has_b = sums.next().expect("has_b");
        let sums: Vec<AShare> = sums.collect();
        let mut exts = Vec::with_capacity(ne);
        for (v, &(_, max)) in ext_in.into_iter().zip(&ext_args) {
            exts.push(ops::seg_extreme(self.p, &starts, v, max, true)?);
        }
        // the grouped relation's columns: group keys, then aggregates
        let g = f.group_by.len();
        let mut agg_out: Vec<Option<Val>> = vec![None; g];
        for (i, key) in keys.into_iter().enumerate() {
            let gi = f
                .group_by
                .iter()
                .position(|&c| c == f.key_in[i])
                .expect("join key is a group key");
            agg_out[gi] = Some(key);
        }
        let mut agg_out: Vec<Val> = agg_out
            .into_iter()
            .map(|v| v.expect("every group key is joined"))
            .collect();
        for a in f.aggs {
            agg_out.push(match (a.func, a.arg) {
                (AggFunc::Sum, Some(c)) => {
                    Val::one(sums[sum_args.iter().position(|&x| x == c).expect("sum")].clone())
                }
                (AggFunc::Min | AggFunc::Max, Some(c)) => {
                    let max = a.func == AggFunc::Max;
                    Val::one(
                        exts[ext_args
                            .iter()
                            .position(|&x| x == (c, max))
                            .expect("extreme")]
                        .clone(),
                    )
                }
                _ => Val::one(count.clone()),
            });
        }
        let u_out: Vec<Val> = f.proj.iter().map(|&j| agg_out[j].clone()).collect();
        let not_b = ops::not01(self.p, &is_b);
        let t = ops::mul(self.p, &valid, &not_b)?;
        let valid = ops::mul(self.p, &t, &has_b)?;
        let nu_out = u_out.len();
        let mut all = u_out;
        all.extend(m_vals);
        let rel = self.drop_rows(n, all, valid, &is_b, nb)?;
        let mut cols = rel.cols;
        let m_vals = cols.split_off(nu_out);
        Ok((rel.n, cols, m_vals, rel.valid))
    }

    fn semi_join(
        &mut self,
        probe: &Plan,
        build: &Plan,
        on: &[(usize, usize)],
        residual: Option<&Expr>,
        anti: bool,
    ) -> Result<Rel> {
        let pf = probe.fields();
        let bf = build.fields();
        let key_tys: Vec<ColumnType> = on.iter().map(|&(c, _)| pf[c].ty).collect();
        let interval = match residual {
            None => None,
            Some(r) => interval_pattern(r, &pf, &bf),
        };
        let pr = self.run(probe)?;
        let br = self.run(build)?;
        match (residual, interval) {
            (Some(res), None) => self.nested_semi(pr, br, on, res, &pf, &bf, anti),
            (_, iv) => self.sorted_semi(pr, br, on, &key_tys, iv, anti),
        }
    }

    /// Semi-join by sorting: build rows first, then probe rows; valid first,
    /// then the key (and, for an interval overlap, the start of the build
    /// interval against the end of the probe interval). Without a residual,
    /// a probe row matches if its key segment holds a build row (segmented
    /// count); with an interval overlap, if the largest build end among the
    /// build rows of its segment that start no later than the probe's end
    /// reaches the probe's start (one unsegmented prefix maximum over
    /// segment-numbered values).
    fn sorted_semi(
        &mut self,
        pr: Rel,
        br: Rel,
        on: &[(usize, usize)],
        key_tys: &[ColumnType],
        iv: Option<Interval>,
        anti: bool,
    ) -> Result<Rel> {
        let me = self.p.id();
        let (nb, np) = (br.n, pr.n);
        let n = nb + np;
        let keys: Vec<Val> = on
            .iter()
            .map(|&(pc, bc)| concat_vals(&br.cols[bc], nb, &pr.cols[pc], np))
            .collect();
        let p_vals: Vec<Val> = pr.cols.iter().map(|c| pad_before(c, nb)).collect();
        let mut is_b = vec![1u64; nb];
        is_b.extend(std::iter::repeat_n(0, np));
        let is_b = AShare::public(me, &is_b);
        let valid = AShare::concat(&[&br.valid, &pr.valid]);
        let iv_planes = iv.map(|iv| {
            (
                br.cols[iv.bs].w().clone(),
                pr.cols[iv.pe].w().clone(),
                br.cols[iv.be].w().clone(),
                pr.cols[iv.ps].w().clone(),
            )
        });
        // the inputs are copied into the combined table: free them now
        drop((br, pr));
        let kv: Vec<(ColumnType, &Val)> = key_tys.iter().copied().zip(keys.iter()).collect();
        let mut parts = self.valid_first(&valid, &kv);
        let mut extra: Vec<AShare> = Vec::new();
        if let (Some(iv), Some((bs, pe, be, ps))) = (&iv, iv_planes) {
            // t = build start for build rows, probe end (+ d1) for probe rows
            let t = AShare::concat(&[&bs, &pe.add_public(me, iv.d1 as u64)]);
            parts.push(Part::Bounded {
                v: t,
                bits: IV_BITS,
                offset: IV_OFFSET,
            });
            // build end (+ d2) on build rows, probe start on probe rows
            extra.push(AShare::concat(&[
                &be.add_public(me, iv.d2 as u64),
                &AShare::zeros(np),
            ]));
            extra.push(AShare::concat(&[&AShare::zeros(nb), &ps]));
        }
        let (ps, ks) = (shapes(&p_vals), shapes(&keys));
        let n_extra = extra.len();
        let mut payload = flatten(p_vals);
        payload.extend(flatten(keys));
        payload.extend(extra);
        payload.push(is_b);
        payload.push(valid);
        let mut sorted = ops::sort(self.p, n, parts, payload)?;
        let valid = sorted.pop().expect("valid");
        let is_b = sorted.pop().expect("is_b");
        let extra = sorted.split_off(sorted.len() - n_extra);
        let mut it = sorted.into_iter();
        let p_vals = unflatten_vals(&ps, &mut it);
        let keys = unflatten_vals(&ks, &mut it);
        let kv: Vec<(ColumnType, &Val)> = key_tys.iter().copied().zip(keys.iter()).collect();
        let words = self.key_words(&valid, &kv, n);
        let starts = ops::segment_starts(self.p, &words)?;
        let flag = if iv.is_some() {
            let (be, pst) = (&extra[0], &extra[1]);
            let seg = prefix_sum(&starts).mul_public(1u64 << IV_BITS);
            let b_val = be.add_public(me, IV_OFFSET + 1);
            let w = seg.add(&ops::mul(self.p, &is_b, &b_val)?);
            let pm = ops::prefix_max(self.p, w)?;
            let thr = seg.add(&pst.add_public(me, IV_OFFSET + 1));
            let below = ops::lt01_bounded(self.p, &pm, &thr)?;
            ops::not01(self.p, &below)
        } else {
            let cnt = ops::seg_sum(self.p, &starts, vec![is_b.clone()])?
                .pop()
                .expect("count");
            let zero = self.constant(n, 0);
            ops::lt01_bounded(self.p, &zero, &cnt)?
        };
        let flag = if anti {
            ops::not01(self.p, &flag)
        } else {
            flag
        };
        let not_b = ops::not01(self.p, &is_b);
        let t = ops::mul(self.p, &valid, &not_b)?;
        let valid = ops::mul(self.p, &t, &flag)?;
        Ok(Rel {
            n,
            cols: p_vals,
            valid,
        })
    }

    /// Semi-join with a general residual: all probe × build pairs.
    #[allow(clippy::too_many_arguments)]
    fn nested_semi(
        &mut self,
        pr: Rel,
        br: Rel,
        on: &[(usize, usize)],
        residual: &Expr,
        pf: &[Field],
        bf: &[Field],
        anti: bool,
    ) -> Result<Rel> {
        let (np, nb) = (pr.n, br.n);
        let pairs = np.saturating_mul(nb);
        if pairs > NESTED_LOOP_MAX_PAIRS {
            return Err(ExecError::Unsupported(format!(
                "this EXISTS / IN compares {np} rows with {nb} rows under a condition that is neither key equality \
                 nor an interval overlap, so it would need an oblivious nested loop over {pairs} pairs (the limit is \
                 {NESTED_LOOP_MAX_PAIRS}); simplify the condition to equalities plus `a.from <= b.to AND b.from <= a.to`"
            )));
        }
        let (pi, bi) = pair_indices(np, nb);
        let pg = gather_rel(&pr, &pi);
        let bg = gather_rel(&br, &bi);
        let mut m = bg.valid.clone();
        if !on.is_empty() {
            let xs: Vec<AShare> = on
                .iter()
                .flat_map(|&(c, _)| pg.cols[c].planes.clone())
                .collect();
            let ys: Vec<AShare> = on
                .iter()
                .flat_map(|&(_, c)| bg.cols[c].planes.clone())
                .collect();
            let eq = ops::eq_words(self.p, &xs, &ys)?;
            m = ops::mul(self.p, &m, &eq)?;
        }
        let mut cols = pg.cols;
        cols.extend(bg.cols);
        let mut fields = pf.to_vec();
        fields.extend(bf.iter().cloned());
        let rel = Rel {
            n: pairs,
            cols,
            valid: m,
        };
        let rel = self.filter_by(rel, &fields, Some(residual))?;
        let (a, b) = rel.valid.components();
        let sum_chunks = |v: &[u64]| -> Vec<u64> {
            if nb == 0 {
                return vec![0; np];
            }
            v.chunks(nb)
                .map(|c| c.iter().fold(0u64, |s, x| s.wrapping_add(*x)))
                .collect()
        };
        let cnt = AShare::from_components(sum_chunks(a), sum_chunks(b)).expect("equal lengths");
        let zero = self.constant(np, 0);
        let hit = if np == 0 {
            AShare::zeros(0)
        } else {
            ops::lt01_bounded(self.p, &zero, &cnt)?
        };
        let flag = if anti { ops::not01(self.p, &hit) } else { hit };
        let valid = ops::mul(self.p, &pr.valid, &flag)?;
        Ok(Rel {
            n: np,
            cols: pr.cols,
            valid,
        })
    }

    // ----- output ----------------------------------------------------

    /// The recipient's shares: with a LIMIT, sort by ORDER BY (then all
    /// columns) under MPC and keep the first rows; zero every invalid row;
    /// shuffle.
    fn finish(
        &mut self,
        rel: Rel,
        fields: &[Field],
        order_by: &[OrderKey],
        limit: Option<u64>,
    ) -> Result<ResultShares> {
        let me = self.p.id();
        let mut rel = rel;
        // Conform null planes to the declared fields.
        for (c, f) in rel.cols.iter_mut().zip(fields) {
            match (f.nullable, c.null.is_some()) {
                (true, false) => c.null = Some(AShare::zeros(rel.n)),
                (false, true) => c.null = None,
                _ => {}
            }
        }
        if let Some(k) = limit {
            let k = usize::try_from(k).unwrap_or(usize::MAX).min(rel.n);
            let mut parts = vec![Part::Bounded {
                v: ops::not01(self.p, &rel.valid),
                bits: 1,
                offset: 0,
            }];
            for o in order_by {
                parts.extend(self.parts_of(fields[o.column].ty, &rel.cols[o.column], o.desc));
            }
            // Ties on the ORDER BY keys: ascending by the other columns, so
            // which rows make the cut is well defined.
            for (i, (c, f)) in rel.cols.iter().zip(fields).enumerate() {
                if !order_by.iter().any(|o| o.column == i) {
                    parts.extend(self.parts_of(f.ty, c, false));
                }
            }
            let shp = shapes(&rel.cols);
            let mut payload = flatten(rel.cols);
            payload.push(rel.valid);
            let sorted = ops::sort(self.p, rel.n, parts, payload)?;
            let mut cut: Vec<AShare> = sorted.into_iter().map(|c| c.slice(0..k)).collect();
            let valid = cut.pop().expect("valid");
            let cols = unflatten_vals(&shp, &mut cut.into_iter());
            rel = Rel { n: k, cols, valid };
        }
        let n = rel.n;
        let planes = flatten(rel.cols);
        let pairs: Vec<(&AShare, &AShare)> = planes.iter().map(|p| (p, &rel.valid)).collect();
        let mut zeroed = ops::mul_many(self.p, &pairs)?;
        zeroed.push(rel.valid.clone());
        let mut cols: Vec<Column> = zeroed.into_iter().map(Column::Arith).collect();
        if n > 1 {
            self.p.shuffle(&mut cols)?;
        }
        let planes = cols
            .into_iter()
            .map(|c| match c {
                Column::Arith(a) => a,
                Column::Bool(_) => unreachable!("arithmetic only"),
            })
            .collect();
        Ok(ResultShares {
            party: me,
            fields: fields.to_vec(),
            order_by: order_by.to_vec(),
            limit,
            rows: n,
            planes,
        })
    }
}

fn unflatten_vals(shapes: &[Shape], it: &mut std::vec::IntoIter<AShare>) -> Vec<Val> {
    shapes
        .iter()
        .map(|&(k, nullable)| {
            let planes: Vec<AShare> = it.by_ref().take(k).collect();
            let null = if nullable { it.next() } else { None };
            Val { planes, null }
        })
        .collect()
}

fn union_all(rels: Vec<Rel>) -> Rel {
    let n = rels.iter().map(|r| r.n).sum();
    let width = rels.first().map(|r| r.cols.len()).unwrap_or(0);
    let mut cols = Vec::with_capacity(width);
    for c in 0..width {
        let k = rels[0].cols[c].planes.len();
        let planes = (0..k)
            .map(|w| {
                AShare::concat(
                    &rels
                        .iter()
                        .map(|r| &r.cols[c].planes[w])
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let nullable = rels.iter().any(|r| r.cols[c].null.is_some());
        let null = nullable.then(|| {
            let parts: Vec<AShare> = rels
                .iter()
                .map(|r| r.cols[c].null.clone().unwrap_or_else(|| AShare::zeros(r.n)))
                .collect();
            AShare::concat(&parts.iter().collect::<Vec<_>>())
        });
        cols.push(Val { planes, null });
    }
    let valid = AShare::concat(&rels.iter().map(|r| &r.valid).collect::<Vec<_>>());
    Rel { n, cols, valid }
}

fn const_of(e: &Expr) -> Option<u64> {
    match e {
        Expr::Const(c) if c.ty == ColumnType::Int => Some(c.words[0]),
        _ => None,
    }
}

/// Bits and offset of the interval semi-join's time values: dates, shifted
/// by one day either way.
const IV_BITS: u32 = DATE_BITS + 1;
const IV_OFFSET: u64 = DATE_OFFSET + 1;

/// A residual `bs <= pe + d1 AND ps <= be + d2` of a semi-join: probe
/// interval [ps, pe] overlaps build interval [bs, be] (columns of the
/// probe and build sides; d = -1 for strict comparisons). Dates only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interval {
    pub bs: usize,
    pub be: usize,
    pub ps: usize,
    pub pe: usize,
    pub d1: i64,
    pub d2: i64,
}

/// Recognise an interval overlap in a semi-join residual (columns: probe
/// then build).
pub(crate) fn interval_pattern(res: &Expr, pf: &[Field], bf: &[Field]) -> Option<Interval> {
    let np = pf.len();
    let Expr::Binary {
        op: BinOp::And,
        left,
        right,
    } = res
    else {
        return None;
    };
    // (x, y, d): x <= y + d
    let norm = |e: &Expr| -> Option<(usize, usize, i64)> {
        let Expr::Binary { op, left, right } = e else {
            return None;
        };
        let (Expr::Column(a), Expr::Column(b)) = (left.as_ref(), right.as_ref()) else {
            return None;
        };
        match op {
            BinOp::Le => Some((*a, *b, 0)),
            BinOp::Lt => Some((*a, *b, -1)),
            BinOp::Ge => Some((*b, *a, 0)),
            BinOp::Gt => Some((*b, *a, -1)),
            _ => None,
        }
    };
    let ty = |c: usize| {
        if c < np {
            pf[c].ty
        } else {
            bf.get(c - np).map(|f| f.ty).unwrap_or(ColumnType::Text)
        }
    };
    let mut bs_pe = None;
    let mut ps_be = None;
    for c in [left.as_ref(), right.as_ref()] {
        let (x, y, d) = norm(c)?;
        if ty(x) != ColumnType::Date || ty(y) != ColumnType::Date {
            return None;
        }
        match (x >= np, y >= np) {
            (true, false) => bs_pe = Some((x - np, y, d)),
            (false, true) => ps_be = Some((x, y - np, d)),
            _ => return None,
        }
    }
    let ((bs, pe, d1), (ps, be, d2)) = (bs_pe?, ps_be?);
    Some(Interval {
        bs,
        be,
        ps,
        pe,
        d1,
        d2,
    })
}

/// Local inclusive prefix sum of a shared column.
fn prefix_sum(x: &AShare) -> AShare {
    let (a, b) = x.components();
    let scan = |v: &[u64]| {
        let mut s = 0u64;
        v.iter()
            .map(|x| {
                s = s.wrapping_add(*x);
                s
            })
            .collect::<Vec<u64>>()
    };
    AShare::from_components(scan(a), scan(b)).expect("equal lengths")
}

/// Row indices of all pairs, left-major.
fn pair_indices(nl: usize, nr: usize) -> (Vec<u32>, Vec<u32>) {
    let mut li = Vec::with_capacity(nl * nr);
    let mut ri = Vec::with_capacity(nl * nr);
    for i in 0..nl as u32 {
        for j in 0..nr as u32 {
            li.push(i);
            ri.push(j);
        }
    }
    (li, ri)
}

fn gather_rel(r: &Rel, idx: &[u32]) -> Rel {
    Rel {
        n: idx.len(),
        cols: r
            .cols
            .iter()
            .map(|c| Val {
                planes: c.planes.iter().map(|p| p.permute(idx)).collect(),
                null: c.null.as_ref().map(|p| p.permute(idx)),
            })
            .collect(),
        valid: r.valid.permute(idx),
    }
}

fn concat_vals(a: &Val, na: usize, b: &Val, nb: usize) -> Val {
    let cat = |x: Option<&AShare>, y: Option<&AShare>| {
        let x = x.cloned().unwrap_or_else(|| AShare::zeros(na));
        let y = y.cloned().unwrap_or_else(|| AShare::zeros(nb));
        AShare::concat(&[&x, &y])
    };
    Val {
        planes: a
            .planes
            .iter()
            .zip(&b.planes)
            .map(|(x, y)| cat(Some(x), Some(y)))
            .collect(),
        null: (a.null.is_some() || b.null.is_some()).then(|| cat(a.null.as_ref(), b.null.as_ref())),
    }
}

fn pad_after(c: &Val, k: usize) -> Val {
    let f = |x: &AShare| AShare::concat(&[x, &AShare::zeros(k)]);
    Val {
        planes: c.planes.iter().map(f).collect(),
        null: c.null.as_ref().map(f),
    }
}

fn pad_before(c: &Val, k: usize) -> Val {
    let f = |x: &AShare| AShare::concat(&[&AShare::zeros(k), x]);
    Val {
        planes: c.planes.iter().map(f).collect(),
        null: c.null.as_ref().map(f),
    }
}
