//! The typed logical plan: what a query computes, with every name resolved
//! and every type checked, and nothing about data. The front end
//! ([`crate::prepare`]) builds it from SQL; EXPLAIN and the MPC executor
//! read it. Every node plans the same SQL into the same plan.
//!
//! Columns are referred to by position in the input's output row. A plan
//! node's output columns are given by [`Plan::fields`].

use kuvert_data::{ColumnType, Schema};
use serde::{Deserialize, Serialize};

/// One output column of a plan node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Output name: the alias, the source column name, or the expression
    /// text (what the CSV header shows).
    pub name: String,
    pub ty: ColumnType,
    /// Only global (no GROUP BY) SUM/MIN/MAX over possibly empty input, and
    /// expressions over them, can be NULL.
    pub nullable: bool,
}

/// A constant of one of the column types, encoded as the column would be
/// (`ty.words()` words, see `kuvert_data::value::encode_cell`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Const {
    pub ty: ColumnType,
    pub words: Vec<u64>,
}

impl Const {
    pub fn int(v: i64) -> Const {
        Const {
            ty: ColumnType::Int,
            words: vec![v as u64],
        }
    }
    pub fn bool(v: bool) -> Const {
        Const {
            ty: ColumnType::Bool,
            words: vec![v as u64],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    /// Integer arithmetic (int, int) -> int, wrapping mod 2^64.
    Add,
    Sub,
    Mul,
    /// Comparisons of two values of the same type -> bool. Text supports
    /// only `Eq`/`Ne` in expressions.
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Boolean connectives (bool, bool) -> bool.
    And,
    Or,
}

/// A scalar expression over the columns of one input row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expr {
    Column(usize),
    Const(Const),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Boolean NOT.
    Not(Box<Expr>),
    /// Integer negation.
    Neg(Box<Expr>),
    /// `CASE WHEN c1 THEN v1 ... ELSE e END`; all values of one type. ELSE
    /// is required (kuvert has no NULL in rows).
    Case {
        whens: Vec<(Expr, Expr)>,
        otherwise: Box<Expr>,
    },
    /// `expr [NOT] IN (c1, c2, ...)` over constants of expr's type.
    InList {
        expr: Box<Expr>,
        list: Vec<Const>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggFunc {
    /// `COUNT(*)` (arg `None`) or `COUNT(col)` (same: no NULLs in rows).
    Count,
    CountDistinct,
    Sum,
    Min,
    Max,
}

/// One aggregate of an [`Plan::Aggregate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agg {
    pub func: AggFunc,
    /// Input column; `None` only for `COUNT(*)`.
    pub arg: Option<usize>,
    /// Output name.
    pub name: String,
}

/// A relational plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Plan {
    /// All columns of a contributed table, in schema order.
    Scan { table: String, schema: Schema },
    /// Keep the rows where `predicate` (bool) holds.
    Filter { input: Box<Plan>, predicate: Expr },
    /// Compute new columns; output = `exprs` in order.
    Project {
        input: Box<Plan>,
        exprs: Vec<(Expr, String)>,
    },
    /// Bag union of inputs with equal column types (names from the first).
    UnionAll { inputs: Vec<Plan> },
    /// Inner join. Output = left columns then right columns. `on` holds the
    /// equality pairs (left column, right column); `residual` (bool, over
    /// the output columns) any further predicate. Empty `on` = cross join.
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        on: Vec<(usize, usize)>,
        residual: Option<Expr>,
    },
    /// Semi-join (`IN (SELECT ..)`, `EXISTS`) or, with `anti`, anti-join
    /// (`NOT IN`, `NOT EXISTS`): the probe rows for which some build row
    /// satisfies all of `on` (probe column, build column) and `residual`
    /// (bool, over probe columns then build columns). Output = probe
    /// columns.
    SemiJoin {
        probe: Box<Plan>,
        build: Box<Plan>,
        on: Vec<(usize, usize)>,
        residual: Option<Expr>,
        anti: bool,
    },
    /// GROUP BY `group_by` columns (may be empty: one global row) with
    /// aggregates. Output = group columns then aggregates. `DISTINCT` is an
    /// Aggregate over all columns with no aggregates.
    Aggregate {
        input: Box<Plan>,
        group_by: Vec<usize>,
        aggs: Vec<Agg>,
    },
}

/// Ordering of the final output, by output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderKey {
    pub column: usize,
    pub desc: bool,
}

/// A whole query: the plan whose output is the answer, then ORDER BY and
/// LIMIT. Without ORDER BY the answer is sorted ascending by all columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Query {
    pub root: Plan,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<u64>,
    /// `WITH PRIVACY (...)`: noise added under MPC (see `crate::privacy`).
    pub privacy: Option<crate::privacy::Privacy>,
}

impl Query {
    pub fn fields(&self) -> Vec<Field> {
        self.root.fields()
    }

    /// The contributed tables the query reads (what a node charges a
    /// differentially private output to).
    pub fn tables(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        self.root.collect_tables(&mut out);
        out
    }
}

impl Plan {
    fn collect_tables(&self, out: &mut std::collections::BTreeSet<String>) {
        match self {
            Plan::Scan { table, .. } => {
                out.insert(table.clone());
            }
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::Aggregate { input, .. } => input.collect_tables(out),
            Plan::UnionAll { inputs } => inputs.iter().for_each(|p| p.collect_tables(out)),
            Plan::Join { left, right, .. } => {
                left.collect_tables(out);
                right.collect_tables(out);
            }
            Plan::SemiJoin { probe, build, .. } => {
                probe.collect_tables(out);
                build.collect_tables(out);
            }
        }
    }

    /// The output columns.
    pub fn fields(&self) -> Vec<Field> {
        match self {
            Plan::Scan { schema, .. } => schema
                .columns()
                .iter()
                .map(|c| Field {
                    name: c.name.clone(),
                    ty: c.ty,
                    nullable: false,
                })
                .collect(),
            Plan::Filter { input, .. } => input.fields(),
            Plan::Project { input, exprs } => {
                let inf = input.fields();
                exprs
                    .iter()
                    .map(|(e, name)| Field {
                        name: name.clone(),
                        ty: e.ty(&inf),
                        nullable: e.nullable(&inf),
                    })
                    .collect()
            }
            Plan::UnionAll { inputs } => inputs.first().map(|p| p.fields()).unwrap_or_default(),
            Plan::Join { left, right, .. } => {
                let mut f = left.fields();
                f.extend(right.fields());
                f
            }
            Plan::SemiJoin { probe, .. } => probe.fields(),
            Plan::Aggregate {
                input,
                group_by,
                aggs,
            } => {
                let inf = input.fields();
                let global = group_by.is_empty();
                let mut f: Vec<Field> = group_by.iter().map(|&c| inf[c].clone()).collect();
                for a in aggs {
                    let (ty, nullable) = match a.func {
                        AggFunc::Count | AggFunc::CountDistinct => (ColumnType::Int, false),
                        AggFunc::Sum => (ColumnType::Int, global),
                        AggFunc::Min | AggFunc::Max => {
                            (inf[a.arg.expect("MIN/MAX have an argument")].ty, global)
                        }
                    };
                    f.push(Field {
                        name: a.name.clone(),
                        ty,
                        nullable,
                    });
                }
                f
            }
        }
    }

    /// Number of output columns.
    pub fn width(&self) -> usize {
        self.fields().len()
    }
}

impl Expr {
    /// The type of the expression over input columns `input` (the plan is
    /// already type-checked by the front end).
    pub fn ty(&self, input: &[Field]) -> ColumnType {
        match self {
            Expr::Column(i) => input[*i].ty,
            Expr::Const(c) => c.ty,
            Expr::Binary { op, .. } => match op {
                BinOp::Add | BinOp::Sub | BinOp::Mul => ColumnType::Int,
                _ => ColumnType::Bool,
            },
            Expr::Not(_) | Expr::InList { .. } => ColumnType::Bool,
            Expr::Neg(_) => ColumnType::Int,
            Expr::Case { otherwise, .. } => otherwise.ty(input),
        }
    }

    /// Whether the expression can be NULL (it reads a nullable column).
    pub fn nullable(&self, input: &[Field]) -> bool {
        match self {
            Expr::Column(i) => input[*i].nullable,
            Expr::Const(_) => false,
            Expr::Binary { left, right, .. } => left.nullable(input) || right.nullable(input),
            Expr::Not(e) | Expr::Neg(e) => e.nullable(input),
            Expr::InList { expr, .. } => expr.nullable(input),
            Expr::Case { whens, otherwise } => {
                otherwise.nullable(input) || whens.iter().any(|(_, v)| v.nullable(input))
            }
        }
    }

    /// Columns the expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Column(i) => out.push(*i),
            Expr::Const(_) => {}
            Expr::Binary { left, right, .. } => {
                left.columns(out);
                right.columns(out);
            }
            Expr::Not(e) | Expr::Neg(e) => e.columns(out),
            Expr::InList { expr, .. } => expr.columns(out),
            Expr::Case { whens, otherwise } => {
                for (c, v) in whens {
                    c.columns(out);
                    v.columns(out);
                }
                otherwise.columns(out);
            }
        }
    }
}
