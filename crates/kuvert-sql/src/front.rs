//! SQL text to a typed logical plan.
//!
//! The pipeline: `sqlparser` (generic dialect) parses one statement; the
//! binder below resolves names against the [`Catalog`], checks types,
//! coerces literals by context and builds a [`plan::Query`]. It reads
//! schemas and SQL only, never data, and it is deterministic: the same SQL
//! and catalog give the same plan on every node (no hash maps, no clocks in
//! the plan except that 10-digit identity-number literals take their century
//! from today's date, as contributors' CSV files do).
//!
//! Shapes produced (see `docs/sql.md`):
//! - `FROM a, b JOIN c ON ..` with `WHERE`: all conjuncts of ON and WHERE are
//!   pooled (inner joins only, so this is exact). A conjunct over one table
//!   becomes a `Filter` on that table; one that mentions several tables is
//!   placed at the left-deep join where its last table enters, as an `on`
//!   pair when it is `left.col = right.col`, else in `residual`.
//! - `[NOT] EXISTS (..)` and `x [NOT] IN (SELECT ..)` conjuncts of WHERE
//!   become `SemiJoin`s above the joins.
//! - `GROUP BY` / aggregates: an optional `Project` below (only when a key or
//!   an argument is an expression), the `Aggregate`, `HAVING` as a `Filter`,
//!   and a `Project` above only when the SELECT list is not already the
//!   aggregate's output.

use kuvert_data::value::{days_from_civil, parse_date, TEXT_BYTES};
use kuvert_data::{idnr, ColumnType, Date};
use sqlparser::ast::{self as ast, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Span;

use crate::plan::{Agg, AggFunc, BinOp, Const, Expr, Field, OrderKey, Plan, Query};
use crate::{Catalog, SqlError};

type Result<T> = std::result::Result<T, SqlError>;

pub(crate) fn prepare(sql: &str, catalog: &Catalog) -> Result<Query> {
    prepare_at(sql, catalog, Date::today_utc())
}

/// [`prepare`] with an explicit "today" (the century rule of 10-digit
/// identity-number literals).
pub(crate) fn prepare_at(sql: &str, catalog: &Catalog, today: Date) -> Result<Query> {
    let stmts = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| syntax_error(e, sql))?;
    let stmt = match stmts.as_slice() {
        [one] => one,
        [] => {
            return Err(SqlError {
                message: "no SQL statement given; write one SELECT".into(),
                line: 1,
                column: 1,
            })
        }
        [_, second, ..] => {
            return Err(err_at(
                second.span(),
                "only one statement is allowed; remove everything after the first ';'",
            ))
        }
    };
    let q = match stmt {
        ast::Statement::Query(q) => q,
        _ => {
            return Err(SqlError {
                message: "only SELECT queries are supported (kuvert never changes data)".into(),
                ..first_token(sql).unwrap_or(SqlError {
                    message: String::new(),
                    line: 1,
                    column: 1,
                })
            })
        }
    };
    let b = Binder::new(sql, catalog, today);
    b.top_query(q).map_err(|e| {
        // sqlparser leaves a few spans empty; point at the statement then
        // rather than nowhere.
        if e.line == 0 {
            SqlError {
                message: e.message,
                ..first_token(sql).unwrap_or(SqlError {
                    message: String::new(),
                    line: 1,
                    column: 1,
                })
            }
        } else {
            e
        }
    })
}

// ---------------------------------------------------------------------------
// Errors and positions

fn err_at(span: Span, message: impl Into<String>) -> SqlError {
    SqlError {
        message: message.into(),
        line: span.start.line,
        column: span.start.column,
    }
}

fn syntax_error(e: ParserError, sql: &str) -> SqlError {
    let (line, column, message) = kuvert_dp::sql::parser_error_position(e, sql);
    SqlError {
        message: format!("syntax error: {message}; check the SQL near this point"),
        line,
        column,
    }
}

/// The position of the first token (for errors about the whole statement).
fn first_token(sql: &str) -> Option<SqlError> {
    for (l, text) in sql.lines().enumerate() {
        if let Some(c) = text.chars().position(|c| !c.is_whitespace()) {
            return Some(SqlError {
                message: String::new(),
                line: l as u64 + 1,
                column: c as u64 + 1,
            });
        }
    }
    None
}

/// The first non-empty span.
fn pick(a: Span, b: Span) -> Span {
    if a.start.line > 0 {
        a
    } else {
        b
    }
}

/// Edit distance for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn did_you_mean<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = distance(name, c);
        if d <= 2 && d < name.len().max(1) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    match best {
        Some((_, c)) => format!(" (did you mean {c}?)"),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Scopes: the columns a query part can see

#[derive(Debug, Clone)]
struct ScopeCol {
    /// Table alias (or table name) that qualifies the column; `None` for an
    /// unaliased subquery.
    qual: Option<String>,
    name: String,
    ty: ColumnType,
    nullable: bool,
    /// The right-hand copy of a `USING` join column: reachable
    /// only qualified, left out of `*` (as in SQLite).
    hidden: bool,
}

type Scope = Vec<ScopeCol>;

fn scope_of(fields: &[Field], qual: Option<&str>) -> Scope {
    fields
        .iter()
        .map(|f| ScopeCol {
            qual: qual.map(str::to_string),
            name: f.name.clone(),
            ty: f.ty,
            nullable: f.nullable,
            hidden: false,
        })
        .collect()
}

fn eq_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// One relation of a FROM clause.
struct Rel {
    plan: Plan,
    scope: Scope,
}

// ---------------------------------------------------------------------------
// Values during binding: typed expressions, or literals whose type the
// context decides.

#[derive(Debug, Clone)]
enum Lit {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone)]
enum Val {
    Typed {
        expr: Expr,
        ty: ColumnType,
        nullable: bool,
    },
    Lit(Lit, Span),
}

/// A bound, typed expression.
#[derive(Debug, Clone)]
struct Bound {
    expr: Expr,
    ty: ColumnType,
    nullable: bool,
}

/// An aggregate call found while binding an aggregate query.
#[derive(Debug, Clone)]
struct AggReq {
    func: AggFunc,
    /// Argument over the FROM scope.
    arg: Option<Expr>,
    /// The call as written (the default output name).
    text: String,
}

/// Where names resolve and what is allowed.
enum Ctx<'s> {
    /// Row expressions over `scope`. With `outer`, the expression may also
    /// read the outer query's columns (correlation): outer columns are
    /// numbered first (`0..outer.len()`), then the inner ones.
    Row {
        scope: &'s Scope,
        outer: Option<&'s Scope>,
        /// Where this context is, for "aggregate not allowed here".
        clause: &'static str,
    },
    /// Expressions above an aggregate: group expressions and aggregates
    /// become columns of the aggregate's output.
    Agg {
        scope: &'s Scope,
        groups: &'s [Expr],
        group_tys: &'s [(ColumnType, bool)],
        aggs: &'s mut Vec<AggReq>,
        global: bool,
        /// SELECT aliases that HAVING may name (as SQLite allows).
        aliases: &'s [(String, &'s ast::Expr)],
    },
}

const AGG_NAMES: [&str; 4] = ["COUNT", "SUM", "MIN", "MAX"];

fn is_agg_call(f: &ast::Function) -> bool {
    let n = f.name.to_string().to_ascii_uppercase();
    AGG_NAMES.contains(&n.as_str())
        || matches!(
            n.as_str(),
            "AVG" | "TOTAL" | "GROUP_CONCAT" | "STRING_AGG" | "MEDIAN" | "STDDEV" | "VARIANCE"
        )
}

/// Whether the expression contains an aggregate call (not looking into
/// subqueries).
fn contains_agg(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    match e {
        E::Function(f) => is_agg_call(f),
        E::Nested(x) | E::UnaryOp { expr: x, .. } => contains_agg(x),
        E::BinaryOp { left, right, .. } => contains_agg(left) || contains_agg(right),
        E::InList { expr, list, .. } => contains_agg(expr) || list.iter().any(contains_agg),
        E::Between {
            expr, low, high, ..
        } => contains_agg(expr) || contains_agg(low) || contains_agg(high),
        E::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref().is_some_and(contains_agg)
                || conditions
                    .iter()
                    .any(|c| contains_agg(&c.condition) || contains_agg(&c.result))
                || else_result.as_deref().is_some_and(contains_agg)
        }
        E::IsNull(x) | E::IsNotNull(x) => contains_agg(x),
        _ => false,
    }
}

fn split_and<'e>(e: &'e ast::Expr, out: &mut Vec<&'e ast::Expr>) {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        ast::Expr::Nested(x)
            if matches!(
                **x,
                ast::Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(x, out)
        }
        other => out.push(other),
    }
}

fn and_all(mut es: Vec<Expr>) -> Option<Expr> {
    if es.is_empty() {
        return None;
    }
    let first = es.remove(0);
    Some(es.into_iter().fold(first, |acc, e| Expr::Binary {
        op: BinOp::And,
        left: Box::new(acc),
        right: Box::new(e),
    }))
}

fn columns_of(e: &Expr) -> Vec<usize> {
    let mut v = Vec::new();
    e.columns(&mut v);
    v
}

/// Renumber the columns an expression reads.
fn remap(e: &Expr, f: &dyn Fn(usize) -> usize) -> Expr {
    match e {
        Expr::Column(i) => Expr::Column(f(*i)),
        Expr::Const(c) => Expr::Const(c.clone()),
        Expr::Binary { op, left, right } => Expr::Binary {
            op: *op,
            left: Box::new(remap(left, f)),
            right: Box::new(remap(right, f)),
        },
        Expr::Not(x) => Expr::Not(Box::new(remap(x, f))),
        Expr::Neg(x) => Expr::Neg(Box::new(remap(x, f))),
        Expr::Case { whens, otherwise } => Expr::Case {
            whens: whens
                .iter()
                .map(|(c, v)| (remap(c, f), remap(v, f)))
                .collect(),
            otherwise: Box::new(remap(otherwise, f)),
        },
        Expr::InList {
            expr,
            list,
            negated,
        } => Expr::InList {
            expr: Box::new(remap(expr, f)),
            list: list.clone(),
            negated: *negated,
        },
    }
}

fn filter(plan: Plan, preds: Vec<Expr>) -> Plan {
    match and_all(preds) {
        Some(p) => Plan::Filter {
            input: Box::new(plan),
            predicate: p,
        },
        None => plan,
    }
}

fn is_identity(exprs: &[(Expr, String)], input: &[Field]) -> bool {
    exprs.len() == input.len()
        && exprs
            .iter()
            .enumerate()
            .all(|(i, (e, n))| *e == Expr::Column(i) && *n == input[i].name)
}

/// A SELECT list entry after `*` expansion.
struct Item<'q> {
    /// The expression, or a column of the FROM scope (from `*`).
    src: ItemSrc<'q>,
    /// Output name.
    name: String,
    /// Whether the name is an `AS` alias.
    alias: bool,
    /// The expression text as written (for ORDER BY matching).
    text: String,
    span: Span,
}

enum ItemSrc<'q> {
    Ast(&'q ast::Expr),
    Col(usize),
}

/// What a bound query exposes to ORDER BY: its output items.
struct OutItem {
    name: String,
    text: String,
    ast: Option<ast::Expr>,
}

struct BoundQuery {
    plan: Plan,
    items: Vec<OutItem>,
}

struct Binder<'a> {
    sql: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    catalog: &'a Catalog,
    today: Date,
}

impl<'a> Binder<'a> {
    fn new(sql: &'a str, catalog: &'a Catalog, today: Date) -> Binder<'a> {
        let mut line_starts = vec![0];
        for (i, c) in sql.char_indices() {
            if c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Binder {
            sql,
            line_starts,
            catalog,
            today,
        }
    }

    /// The span of an expression, starting at its first token (sqlparser's
    /// spans start after a unary operator or an opening parenthesis).
    fn span_of(&self, e: &ast::Expr) -> Span {
        let s = e.span();
        let Some((a, _)) = self.extent(e) else {
            return s;
        };
        let line = self.line_starts.partition_point(|&o| o <= a);
        let Some(&start) = self.line_starts.get(line.wrapping_sub(1)) else {
            return s;
        };
        let column = self.sql[start..a].chars().count() as u64 + 1;
        let mut out = s;
        out.start = sqlparser::tokenizer::Location {
            line: line as u64,
            column,
        };
        out
    }

    /// Byte offset of a (1-based line, 1-based char column) location.
    fn offset(&self, line: u64, column: u64) -> Option<usize> {
        let start = *self.line_starts.get((line as usize).checked_sub(1)?)?;
        let rest = &self.sql[start..];
        let mut col = 1u64;
        for (i, c) in rest.char_indices() {
            if col == column {
                return Some(start + i);
            }
            if c == '\n' {
                return None;
            }
            col += 1;
        }
        (col == column).then_some(self.sql.len())
    }

    /// The SQL text of an expression as written, or sqlparser's rendering
    /// when the position is unknown.
    fn text_of(&self, e: &ast::Expr) -> String {
        let fallback = || e.to_string();
        let Some((a, mut b)) = self.extent(e) else {
            return fallback();
        };
        // Close parentheses the span left open.
        let bytes = self.sql.as_bytes();
        let mut depth: i64 = self.sql[a..b]
            .chars()
            .map(|c| match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            })
            .sum();
        while depth > 0 && b < bytes.len() {
            match bytes[b] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            b += 1;
        }
        if depth != 0 {
            return fallback();
        }
        let t = self.sql[a..b].trim();
        if t.is_empty() {
            fallback()
        } else {
            t.to_string()
        }
    }

    /// Byte range of an expression in the SQL. sqlparser's spans leave out
    /// unary operators, the parentheses of `(..)` and the argument list of
    /// some calls (`COUNT(*)`); this puts them back.
    fn extent(&self, e: &ast::Expr) -> Option<(usize, usize)> {
        let bytes = self.sql.as_bytes();
        let back = |mut j: usize| {
            while j > 0 && bytes[j - 1].is_ascii_whitespace() {
                j -= 1;
            }
            j
        };
        let fwd = |mut j: usize| {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            j
        };
        match e {
            ast::Expr::UnaryOp { op, expr } => {
                let (a, b) = self.extent(expr)?;
                let tok = match op {
                    ast::UnaryOperator::Minus => "-",
                    ast::UnaryOperator::Plus => "+",
                    ast::UnaryOperator::Not => "NOT",
                    _ => return None,
                };
                let j = back(a);
                let start = j.checked_sub(tok.len())?;
                self.sql
                    .get(start..j)?
                    .eq_ignore_ascii_case(tok)
                    .then_some((start, b))
            }
            ast::Expr::Nested(x) => {
                let (a, b) = self.extent(x)?;
                let j = back(a);
                let k = fwd(b);
                (j > 0 && bytes[j - 1] == b'(' && k < bytes.len() && bytes[k] == b')')
                    .then_some((j - 1, k + 1))
            }
            ast::Expr::BinaryOp { left, right, .. } => {
                Some((self.extent(left)?.0, self.extent(right)?.1))
            }
            _ => {
                let s = e.span();
                let a = self.offset(s.start.line, s.start.column)?;
                let mut b = self.offset(s.end.line, s.end.column)?;
                if b < a {
                    return None;
                }
                if matches!(e, ast::Expr::Function(_)) {
                    let j = fwd(b);
                    if j < bytes.len() && bytes[j] == b'(' && !self.sql[a..b].contains('(') {
                        b = j + 1;
                    }
                }
                Some((a, b))
            }
        }
    }

    // -----------------------------------------------------------------------
    // Queries

    fn top_query(&self, q: &ast::Query) -> Result<Query> {
        self.check_query_clauses(q)?;
        let bound = self.set_expr(&q.body)?;
        let width = bound.items.len();
        let mut order_by = Vec::new();
        if let Some(ob) = &q.order_by {
            let exprs = match &ob.kind {
                ast::OrderByKind::Expressions(v) => v,
                ast::OrderByKind::All(_) => {
                    return Err(err_at(
                        pick(q.body.span(), Span::empty()),
                        "ORDER BY ALL is not supported; name the output columns",
                    ))
                }
            };
            for o in exprs {
                if o.options.nulls_first.is_some() {
                    return Err(err_at(
                        self.span_of(&o.expr),
                        "NULLS FIRST/LAST is not supported; NULLs sort first ascending and last descending, as in SQLite",
                    ));
                }
                if o.with_fill.is_some() {
                    return Err(err_at(self.span_of(&o.expr), "WITH FILL is not supported"));
                }
                let column = self.order_key(&o.expr, &bound.items, width)?;
                order_by.push(OrderKey {
                    column,
                    desc: o.options.asc == Some(false),
                });
            }
        }
        let limit = match &q.limit_clause {
            None => None,
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if let Some(off) = offset {
                    return Err(err_at(
                        self.span_of(&off.value),
                        "OFFSET is not supported; use ORDER BY with LIMIT only",
                    ));
                }
                if let Some(b) = limit_by.first() {
                    return Err(err_at(self.span_of(b), "LIMIT BY is not supported"));
                }
                match limit {
                    None => None,
                    Some(e) => Some(self.limit_value(e)?),
                }
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, .. }) => {
                return Err(err_at(
                    self.span_of(offset),
                    "LIMIT offset, n is not supported; write LIMIT n",
                ))
            }
        };
        Ok(Query {
            root: bound.plan,
            order_by,
            limit,
            privacy: None,
        })
    }

    fn limit_value(&self, e: &ast::Expr) -> Result<u64> {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Number(s, _) = &v.value {
                if let Ok(n) = s.parse::<u64>() {
                    return Ok(n);
                }
            }
        }
        Err(err_at(
            self.span_of(e),
            format!(
                "LIMIT must be a non-negative whole number, found {}",
                self.text_of(e)
            ),
        ))
    }

    fn order_key(&self, e: &ast::Expr, items: &[OutItem], width: usize) -> Result<usize> {
        let span = self.span_of(e);
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Number(s, _) = &v.value {
                return match s.parse::<usize>() {
                    Ok(k) if (1..=width).contains(&k) => Ok(k - 1),
                    _ => Err(err_at(
                        span,
                        format!("ORDER BY position {s} is out of range: the query has {width} output columns"),
                    )),
                };
            }
        }
        if let ast::Expr::Identifier(id) = e {
            if let Some(k) = items.iter().position(|it| eq_name(&it.name, &id.value)) {
                return Ok(k);
            }
        }
        let text = normalise(&self.text_of(e));
        if let Some(k) = items.iter().position(|it| normalise(&it.text) == text) {
            return Ok(k);
        }
        if let Some(k) = items.iter().position(|it| it.ast.as_ref() == Some(e)) {
            return Ok(k);
        }
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        Err(err_at(
            span,
            format!(
                "ORDER BY {}: not an output column; order by an output column's name ({}), its position, or add the expression to the SELECT list",
                self.text_of(e),
                names.join(", ")
            ),
        ))
    }

    /// Clauses of a query (at any level) that kuvert does not support.
    fn check_query_clauses(&self, q: &ast::Query) -> Result<()> {
        let at = pick(q.span(), q.body.span());
        if let Some(w) = &q.with {
            return Err(err_at(
                pick(w.span(), at),
                "WITH (common table expressions) is not supported; write the subquery in FROM with an alias",
            ));
        }
        if q.fetch.is_some() {
            return Err(err_at(at, "FETCH is not supported; use LIMIT"));
        }
        if !q.locks.is_empty() || q.for_clause.is_some() || q.settings.is_some() {
            return Err(err_at(at, "this clause is not supported in kuvert SQL"));
        }
        if q.format_clause.is_some() || !q.pipe_operators.is_empty() {
            return Err(err_at(at, "this clause is not supported in kuvert SQL"));
        }
        Ok(())
    }

    /// A query nested in FROM, IN or EXISTS: no ORDER BY or LIMIT.
    fn sub_query(&self, q: &ast::Query) -> Result<BoundQuery> {
        self.check_query_clauses(q)?;
        if let Some(ob) = &q.order_by {
            let at = match &ob.kind {
                ast::OrderByKind::Expressions(v) if !v.is_empty() => self.span_of(&v[0].expr),
                _ => q.body.span(),
            };
            return Err(err_at(
                at,
                "ORDER BY inside a subquery is not supported (it has no effect on the result); order the outer query",
            ));
        }
        if let Some(l) = &q.limit_clause {
            return Err(err_at(
                pick(l.span(), q.body.span()),
                "LIMIT inside a subquery is not supported; LIMIT only the outer query",
            ));
        }
        self.set_expr(&q.body)
    }

    fn set_expr(&self, s: &ast::SetExpr) -> Result<BoundQuery> {
        match s {
            ast::SetExpr::Select(sel) => self.select(sel),
            ast::SetExpr::Query(q) => self.sub_query(q),
            ast::SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                let at = s.span();
                if *op != ast::SetOperator::Union {
                    return Err(err_at(
                        pick(right.span(), at),
                        format!("{op} is not supported; use UNION [ALL], or [NOT] EXISTS for intersections and differences"),
                    ));
                }
                let all =
                    match set_quantifier {
                        ast::SetQuantifier::All => true,
                        ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
                        _ => return Err(err_at(
                            pick(right.span(), at),
                            "UNION BY NAME is not supported; list the columns in the same order",
                        )),
                    };
                let l = self.set_expr(left)?;
                let r = self.set_expr(right)?;
                let lf = l.plan.fields();
                let rf = r.plan.fields();
                let rspan = pick(right.span(), at);
                if lf.len() != rf.len() {
                    return Err(err_at(
                        rspan,
                        format!(
                            "the branches of UNION have {} and {} columns; select the same number of columns in each",
                            lf.len(),
                            rf.len()
                        ),
                    ));
                }
                for (i, (a, b)) in lf.iter().zip(&rf).enumerate() {
                    if a.ty != b.ty {
                        return Err(err_at(
                            rspan,
                            format!(
                                "UNION column {} is {} in the first branch and {} in this one; the types must agree",
                                i + 1,
                                a.ty,
                                b.ty
                            ),
                        ));
                    }
                    if b.nullable && !a.nullable {
                        return Err(err_at(
                            rspan,
                            format!(
                                "UNION column {} may be NULL in this branch but not in the first; put the branch that may be NULL first",
                                i + 1
                            ),
                        ));
                    }
                }
                let mut inputs = Vec::new();
                for p in [l.plan, r.plan] {
                    match p {
                        Plan::UnionAll { inputs: inner } => inputs.extend(inner),
                        other => inputs.push(other),
                    }
                }
                let mut plan = Plan::UnionAll { inputs };
                if !all {
                    plan = distinct(plan);
                }
                Ok(BoundQuery {
                    plan,
                    items: l.items,
                })
            }
            other => Err(err_at(
                other.span(),
                "only SELECT (and UNION of SELECTs) is supported here",
            )),
        }
    }

    // -----------------------------------------------------------------------
    // FROM

    fn table_factor(&self, t: &ast::TableFactor, at: Span) -> Result<Rel> {
        match t {
            ast::TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                sample,
                partitions,
                ..
            } => {
                let span = pick(pick(name.span(), t.span()), at);
                if args.is_some()
                    || !with_hints.is_empty()
                    || version.is_some()
                    || sample.is_some()
                    || !partitions.is_empty()
                {
                    return Err(err_at(
                        span,
                        "table functions, hints and samples are not supported; name a table",
                    ));
                }
                let tname = match name.0.as_slice() {
                    [p] => p.as_ident().map(|i| i.value.clone()),
                    _ => None,
                }
                .ok_or_else(|| {
                    err_at(
                        span,
                        format!("{name}: use a plain table name (no schema prefix)"),
                    )
                })?;
                let (key, schema) = self
                    .catalog
                    .tables
                    .iter()
                    .find(|(k, _)| **k == tname)
                    .or_else(|| self.catalog.tables.iter().find(|(k, _)| eq_name(k, &tname)))
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            self.catalog.tables.keys().map(String::as_str).collect();
                        err_at(
                            span,
                            format!(
                                "unknown table {tname}{}; the analysis has the tables: {}",
                                did_you_mean(&tname, names.iter().copied()),
                                names.join(", ")
                            ),
                        )
                    })?;
                let plan = Plan::Scan {
                    table: key.clone(),
                    schema: schema.clone(),
                };
                let qual = match alias {
                    Some(a) => {
                        self.check_alias(a)?;
                        a.name.value.clone()
                    }
                    None => key.clone(),
                };
                let scope = scope_of(&plan.fields(), Some(&qual));
                Ok(Rel { plan, scope })
            }
            ast::TableFactor::Derived {
                lateral,
                subquery,
                alias,
            } => {
                if *lateral {
                    return Err(err_at(
                        pick(subquery.span(), at),
                        "LATERAL subqueries are not supported",
                    ));
                }
                let bound = self.sub_query(subquery)?;
                let qual = match alias {
                    Some(a) => {
                        self.check_alias(a)?;
                        Some(a.name.value.clone())
                    }
                    None => None,
                };
                let scope = scope_of(&bound.plan.fields(), qual.as_deref());
                Ok(Rel {
                    plan: bound.plan,
                    scope,
                })
            }
            ast::TableFactor::NestedJoin { .. } => Err(err_at(
                pick(t.span(), at),
                "parenthesised joins are not supported; write the joins one after the other",
            )),
            other => Err(err_at(
                pick(other.span(), at),
                "only tables and subqueries (with an alias) may appear in FROM",
            )),
        }
    }

    fn check_alias(&self, a: &ast::TableAlias) -> Result<()> {
        if let Some(c) = a.columns.first() {
            return Err(err_at(
                c.name.span,
                "column lists in table aliases are not supported; name the columns with AS inside the subquery",
            ));
        }
        Ok(())
    }

    /// The relations of a FROM clause in order, and the ON conditions.
    fn relations<'q>(
        &self,
        from: &'q [ast::TableWithJoins],
        at: Span,
    ) -> Result<(Vec<Rel>, Vec<&'q ast::Expr>, Vec<Expr>)> {
        if from.is_empty() {
            return Err(err_at(
                at,
                "SELECT without FROM is not supported; every query reads a contributed table",
            ));
        }
        let mut rels: Vec<Rel> = Vec::new();
        let mut ons = Vec::new();
        let mut using = Vec::new();
        for twj in from {
            rels.push(self.table_factor(&twj.relation, at)?);
            for j in &twj.joins {
                let jspan = pick(j.relation.span(), at);
                use ast::JoinOperator as J;
                let constraint = match &j.join_operator {
                    J::Join(c) | J::Inner(c) => Some(c),
                    J::CrossJoin => None,
                    J::Left(_) | J::LeftOuter(_) | J::Right(_) | J::RightOuter(_)
                    | J::FullOuter(_) => {
                        return Err(err_at(
                            jspan,
                            "only inner joins are supported (outer joins would need NULLs, which kuvert rows do not have); use JOIN ... ON, or [NOT] EXISTS to keep or drop rows",
                        ))
                    }
                    _ => {
                        return Err(err_at(
                            jspan,
                            "this kind of join is not supported; use [INNER] JOIN ... ON, or [NOT] EXISTS / IN (SELECT ..) for semi- and anti-joins",
                        ))
                    }
                };
                rels.push(self.table_factor(&j.relation, jspan)?);
                match constraint {
                    None | Some(ast::JoinConstraint::None) => {}
                    Some(ast::JoinConstraint::On(e)) => ons.push(e),
                    Some(ast::JoinConstraint::Using(cols)) => {
                        let mut names = Vec::new();
                        for c in cols {
                            let cspan = pick(c.span(), jspan);
                            match c.0.as_slice() {
                                [p] if p.as_ident().is_some() => names.push((
                                    p.as_ident().map(|i| i.value.clone()).unwrap_or_default(),
                                    cspan,
                                )),
                                _ => return Err(err_at(cspan, "USING takes plain column names")),
                            }
                        }
                        using.extend(self.using(&mut rels, &names)?);
                    }
                    Some(ast::JoinConstraint::Natural) => {
                        // Joining on every shared name silently changes
                        // meaning when a schema gains a column: name them.
                        return Err(err_at(
                            jspan,
                            "NATURAL JOIN is not supported (it joins on every column name the tables share); name the key columns with JOIN ... USING (col, ...) or JOIN ... ON",
                        ));
                    }
                }
            }
        }
        Ok((rels, ons, using))
    }

    /// `JOIN last USING (names)`: equalities between the column of that
    /// name in the relations before (it must be unique there) and in the
    /// last relation, over the concatenated columns. The last relation's
    /// copies become hidden.
    fn using(&self, rels: &mut [Rel], names: &[(String, Span)]) -> Result<Vec<Expr>> {
        let Some((right, left)) = rels.split_last_mut() else {
            return Ok(Vec::new());
        };
        let offset: usize = left.iter().map(|r| r.scope.len()).sum();
        let mut out = Vec::new();
        for (name, span) in names {
            let mut hits = Vec::new();
            let mut base = 0;
            for r in left.iter() {
                for (i, c) in r.scope.iter().enumerate() {
                    if !c.hidden && eq_name(&c.name, name) {
                        hits.push((base + i, c.ty));
                    }
                }
                base += r.scope.len();
            }
            let (l, lty) = match hits.as_slice() {
                [one] => *one,
                [] => {
                    return Err(err_at(
                        *span,
                        format!("USING ({name}): no table on the left has a column {name}; write JOIN ... ON"),
                    ))
                }
                _ => {
                    return Err(err_at(
                        *span,
                        format!("USING ({name}): several tables on the left have a column {name}; write JOIN ... ON with the one you mean"),
                    ))
                }
            };
            let Some(r) = right
                .scope
                .iter()
                .position(|c| !c.hidden && eq_name(&c.name, name))
            else {
                return Err(err_at(
                    *span,
                    format!(
                        "USING ({name}): the joined table has no column {name}; write JOIN ... ON"
                    ),
                ));
            };
            if right.scope[r].ty != lty {
                return Err(err_at(
                    *span,
                    format!("USING ({name}): the column is {lty} on the left and {} on the right; the types must agree", right.scope[r].ty),
                ));
            }
            right.scope[r].hidden = true;
            out.push(Expr::Binary {
                op: BinOp::Eq,
                left: Box::new(Expr::Column(l)),
                right: Box::new(Expr::Column(offset + r)),
            });
        }
        Ok(out)
    }

    /// Left-deep joins of `rels` with the pooled conjuncts `conjs` (bound
    /// over the concatenated scope). Conjuncts over no relation come back
    /// as a filter to put on top.
    fn join_tree(&self, rels: Vec<Rel>, conjs: Vec<Expr>) -> Result<(Plan, Scope)> {
        let mut offsets = Vec::new();
        let mut off = 0;
        for r in &rels {
            offsets.push(off);
            off += r.scope.len();
        }
        let rel_of = |c: usize| offsets.iter().rposition(|&o| o <= c).unwrap_or(0);
        let n = rels.len();
        let mut local: Vec<Vec<Expr>> = vec![Vec::new(); n];
        let mut at_join: Vec<Vec<Expr>> = vec![Vec::new(); n];
        let mut top = Vec::new();
        for c in conjs {
            let cols = columns_of(&c);
            if cols.is_empty() {
                top.push(c);
                continue;
            }
            let lo = cols.iter().map(|&c| rel_of(c)).min().unwrap_or(0);
            let hi = cols.iter().map(|&c| rel_of(c)).max().unwrap_or(0);
            if lo == hi {
                let o = offsets[lo];
                local[lo].push(remap(&c, &|i| i - o));
            } else {
                at_join[hi].push(c);
            }
        }
        let mut scope = Scope::new();
        let mut plan: Option<Plan> = None;
        for (k, (r, preds)) in rels.into_iter().zip(local).enumerate() {
            let rp = filter(r.plan, preds);
            scope.extend(r.scope);
            plan = Some(match plan {
                None => rp,
                Some(left) => {
                    let o = offsets[k];
                    let mut on = Vec::new();
                    let mut residual = Vec::new();
                    for c in std::mem::take(&mut at_join[k]) {
                        if let Expr::Binary {
                            op: BinOp::Eq,
                            left: a,
                            right: b,
                        } = &c
                        {
                            if let (Expr::Column(x), Expr::Column(y)) = (&**a, &**b) {
                                let (x, y) = (*x, *y);
                                if x < o && y >= o {
                                    on.push((x, y - o));
                                    continue;
                                }
                                if y < o && x >= o {
                                    on.push((y, x - o));
                                    continue;
                                }
                            }
                        }
                        residual.push(c);
                    }
                    Plan::Join {
                        left: Box::new(left),
                        right: Box::new(rp),
                        on,
                        residual: and_all(residual),
                    }
                }
            });
        }
        let plan = plan.expect("FROM has at least one relation");
        Ok((filter(plan, top), scope))
    }

    // -----------------------------------------------------------------------
    // SELECT

    fn check_select_clauses(&self, s: &ast::Select) -> Result<()> {
        let at = s.select_token.0.span;
        let bad = |what: &str| Err(err_at(at, format!("{what} is not supported in kuvert SQL")));
        if s.top.is_some() {
            return bad("TOP");
        }
        if s.into.is_some() {
            return bad("SELECT INTO");
        }
        if !s.lateral_views.is_empty() {
            return bad("LATERAL VIEW");
        }
        if s.prewhere.is_some() {
            return bad("PREWHERE");
        }
        if !s.cluster_by.is_empty() || !s.distribute_by.is_empty() || !s.sort_by.is_empty() {
            return bad("CLUSTER/DISTRIBUTE/SORT BY");
        }
        if s.qualify.is_some() || !s.named_window.is_empty() {
            return bad("window functions");
        }
        if s.connect_by.is_some() || s.value_table_mode.is_some() || s.exclude.is_some() {
            return bad("this SELECT form");
        }
        if let Some(ast::Distinct::On(_)) = &s.distinct {
            return bad("DISTINCT ON");
        }
        Ok(())
    }

    fn select(&self, s: &ast::Select) -> Result<BoundQuery> {
        self.check_select_clauses(s)?;
        let at = s.select_token.0.span;
        let (rels, ons, using) = self.relations(&s.from, at)?;
        let mut scope: Scope = Vec::new();
        for r in &rels {
            scope.extend(r.scope.iter().cloned());
        }
        // Pool ON and WHERE conjuncts; subquery conjuncts of WHERE apart.
        let mut conj_ast = Vec::new();
        for e in &ons {
            split_and(e, &mut conj_ast);
        }
        let n_on = conj_ast.len();
        if let Some(w) = &s.selection {
            split_and(w, &mut conj_ast);
        }
        let mut conjs = using;
        let mut subs = Vec::new();
        for (k, c) in conj_ast.into_iter().enumerate() {
            if k >= n_on && is_subquery_conjunct(c) {
                subs.push(c);
                continue;
            }
            let clause = if k < n_on { "ON" } else { "WHERE" };
            let mut ctx = Ctx::Row {
                scope: &scope,
                outer: None,
                clause,
            };
            conjs.push(self.condition(c, &mut ctx)?);
        }
        let (mut plan, scope) = self.join_tree(rels, conjs)?;
        for c in subs {
            plan = self.semi_join(plan, &scope, c)?;
        }
        let items = self.items(&s.projection, &scope)?;
        let group_asts: &[ast::Expr] = match &s.group_by {
            ast::GroupByExpr::Expressions(v, mods) => {
                if !mods.is_empty() {
                    return Err(err_at(
                        at,
                        "GROUP BY modifiers (ROLLUP, CUBE, ...) are not supported",
                    ));
                }
                v
            }
            ast::GroupByExpr::All(_) => {
                return Err(err_at(
                    at,
                    "GROUP BY ALL is not supported; list the group columns",
                ))
            }
        };
        let aggregate = !group_asts.is_empty()
            || s.having.is_some()
            || items
                .iter()
                .any(|it| matches!(it.src, ItemSrc::Ast(e) if contains_agg(e)));
        let (mut plan, outs) = if aggregate {
            self.aggregate(plan, &scope, &items, group_asts, s.having.as_ref())?
        } else {
            let mut exprs = Vec::new();
            for it in &items {
                let b = match it.src {
                    ItemSrc::Col(i) => Bound {
                        expr: Expr::Column(i),
                        ty: scope[i].ty,
                        nullable: scope[i].nullable,
                    },
                    ItemSrc::Ast(e) => {
                        let mut ctx = Ctx::Row {
                            scope: &scope,
                            outer: None,
                            clause: "the SELECT list of a query without GROUP BY",
                        };
                        self.value(e, &mut ctx)?
                    }
                };
                exprs.push((b.expr, it.name.clone()));
            }
            let plan = project(plan, exprs);
            let outs = out_items(&items);
            (plan, outs)
        };
        if s.distinct.is_some() {
            plan = distinct(plan);
        }
        Ok(BoundQuery { plan, items: outs })
    }

    fn items<'q>(&self, proj: &'q [ast::SelectItem], scope: &Scope) -> Result<Vec<Item<'q>>> {
        let mut items = Vec::new();
        for p in proj {
            match p {
                ast::SelectItem::UnnamedExpr(e) => {
                    let text = self.text_of(e);
                    let name = match e {
                        ast::Expr::Identifier(id) => id.value.clone(),
                        ast::Expr::CompoundIdentifier(ids) => {
                            ids.last().map(|i| i.value.clone()).unwrap_or_default()
                        }
                        _ => text.clone(),
                    };
                    // A bare column keeps the declared spelling of its name.
                    let name = match self.resolve_plain(e, scope) {
                        Some(i) => scope[i].name.clone(),
                        None => name,
                    };
                    items.push(Item {
                        src: ItemSrc::Ast(e),
                        name,
                        alias: false,
                        text,
                        span: self.span_of(e),
                    });
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => items.push(Item {
                    src: ItemSrc::Ast(expr),
                    name: alias.value.clone(),
                    alias: true,
                    text: self.text_of(expr),
                    span: self.span_of(expr),
                }),
                ast::SelectItem::Wildcard(opts) => {
                    check_wildcard_opts(opts)?;
                    for (i, c) in scope.iter().enumerate().filter(|(_, c)| !c.hidden) {
                        items.push(Item {
                            src: ItemSrc::Col(i),
                            name: c.name.clone(),
                            alias: false,
                            text: c.name.clone(),
                            span: opts.wildcard_token.0.span,
                        });
                    }
                }
                ast::SelectItem::QualifiedWildcard(kind, opts) => {
                    check_wildcard_opts(opts)?;
                    let ast::SelectItemQualifiedWildcardKind::ObjectName(on) = kind else {
                        return Err(err_at(
                            opts.wildcard_token.0.span,
                            "only table.* is supported",
                        ));
                    };
                    let q = on.to_string();
                    let span = pick(on.span(), opts.wildcard_token.0.span);
                    let mut any = false;
                    for (i, c) in scope.iter().enumerate() {
                        if c.qual.as_deref().is_some_and(|x| eq_name(x, &q)) {
                            any = true;
                            items.push(Item {
                                src: ItemSrc::Col(i),
                                name: c.name.clone(),
                                alias: false,
                                text: c.name.clone(),
                                span,
                            });
                        }
                    }
                    if !any {
                        return Err(err_at(
                            span,
                            format!(
                                "unknown table {q} in {q}.*; the FROM clause has: {}",
                                quals(scope).join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        Ok(items)
    }

    /// The scope column a bare column expression names, if it resolves
    /// without error.
    fn resolve_plain(&self, e: &ast::Expr, scope: &Scope) -> Option<usize> {
        match self.lookup(e, scope) {
            Some(Ok(Some(i))) => Some(i),
            _ => None,
        }
    }

    /// Look a column reference up in `scope`: `None` if `e` is not a column
    /// reference, `Some(Ok(None))` if it is not found, an error if ambiguous.
    fn lookup(&self, e: &ast::Expr, scope: &Scope) -> Option<Result<Option<usize>>> {
        let (qual, name, span) = match e {
            ast::Expr::Identifier(id) => (None, id, id.span),
            ast::Expr::CompoundIdentifier(ids) if ids.len() == 2 => {
                (Some(&ids[0]), &ids[1], ids[0].span)
            }
            _ => return None,
        };
        let hits: Vec<usize> = scope
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                eq_name(&c.name, &name.value)
                    && match qual {
                        None => !c.hidden,
                        Some(q) => c.qual.as_deref().is_some_and(|x| eq_name(x, &q.value)),
                    }
            })
            .map(|(i, _)| i)
            .collect();
        Some(match hits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(err_at(
                span,
                format!(
                    "column {} is ambiguous: it could be {}; qualify it with the table alias",
                    name.value,
                    many.iter()
                        .map(|&i| match &scope[i].qual {
                            Some(q) => format!("{q}.{}", scope[i].name),
                            None => scope[i].name.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )),
        })
    }

    // -----------------------------------------------------------------------
    // Aggregates

    fn aggregate(
        &self,
        input: Plan,
        scope: &Scope,
        items: &[Item<'_>],
        group_asts: &[ast::Expr],
        having: Option<&ast::Expr>,
    ) -> Result<(Plan, Vec<OutItem>)> {
        // Group expressions over the FROM scope (GROUP BY 2 and GROUP BY
        // alias name SELECT items, as in SQLite).
        let mut groups: Vec<Expr> = Vec::new();
        let mut group_tys = Vec::new();
        let mut group_names = Vec::new();
        for g in group_asts {
            let span = self.span_of(g);
            let mut target: &ast::Expr = g;
            let mut pos_item = None;
            if let ast::Expr::Value(v) = g {
                if let ast::Value::Number(s, _) = &v.value {
                    let k = s
                        .parse::<usize>()
                        .ok()
                        .filter(|k| (1..=items.len()).contains(k));
                    let Some(k) = k else {
                        return Err(err_at(
                            span,
                            format!(
                                "GROUP BY position {s} is out of range: the SELECT list has {} items",
                                items.len()
                            ),
                        ));
                    };
                    pos_item = Some(k - 1);
                }
            }
            if let ast::Expr::Identifier(id) = g {
                if matches!(self.lookup(g, scope), Some(Ok(None))) {
                    pos_item = items.iter().position(|it| eq_name(&it.name, &id.value));
                }
            }
            if let Some(k) = pos_item {
                match items[k].src {
                    ItemSrc::Ast(e) => target = e,
                    ItemSrc::Col(i) => {
                        if !groups.contains(&Expr::Column(i)) {
                            groups.push(Expr::Column(i));
                            group_tys.push((scope[i].ty, scope[i].nullable));
                            group_names.push(scope[i].name.clone());
                        }
                        continue;
                    }
                }
                if contains_agg(target) {
                    return Err(err_at(
                        span,
                        "GROUP BY refers to an aggregate; group by columns or expressions over them",
                    ));
                }
            }
            let mut ctx = Ctx::Row {
                scope,
                outer: None,
                clause: "GROUP BY",
            };
            let b = self.value(target, &mut ctx)?;
            if !groups.contains(&b.expr) {
                let name = match &b.expr {
                    Expr::Column(i) => scope[*i].name.clone(),
                    _ => self.text_of(target),
                };
                groups.push(b.expr);
                group_tys.push((b.ty, b.nullable));
                group_names.push(name);
            }
        }
        let global = groups.is_empty();
        let ng = groups.len();
        let mut aggs: Vec<AggReq> = Vec::new();
        let mut outs: Vec<(Bound, &Item<'_>)> = Vec::new();
        for it in items {
            let b = {
                let mut ctx = Ctx::Agg {
                    scope,
                    groups: &groups,
                    group_tys: &group_tys,
                    aggs: &mut aggs,
                    global,
                    aliases: &[],
                };
                match it.src {
                    ItemSrc::Ast(e) => self.value(e, &mut ctx)?,
                    ItemSrc::Col(i) => match groups.iter().position(|g| *g == Expr::Column(i)) {
                        Some(k) => Bound {
                            expr: Expr::Column(k),
                            ty: scope[i].ty,
                            nullable: scope[i].nullable,
                        },
                        None => {
                            return Err(err_at(
                                it.span,
                                format!("column {} (from *) is neither in GROUP BY nor aggregated; list the columns you need", scope[i].name),
                            ))
                        }
                    },
                }
            };
            outs.push((b, it));
        }
        let having = match having {
            None => None,
            Some(h) => {
                let aliases: Vec<(String, &ast::Expr)> = items
                    .iter()
                    .filter_map(|it| match it.src {
                        ItemSrc::Ast(e) if it.alias => Some((it.name.clone(), e)),
                        _ => None,
                    })
                    .collect();
                let mut ctx = Ctx::Agg {
                    scope,
                    groups: &groups,
                    group_tys: &group_tys,
                    aggs: &mut aggs,
                    global,
                    aliases: &aliases,
                };
                Some(self.condition(h, &mut ctx)?)
            }
        };
        // A group key that a SELECT item shows as it is takes the item's
        // name, so that no Project above is needed to rename it.
        for (k, name) in group_names.iter_mut().enumerate() {
            if let Some((_, it)) = outs.iter().find(|(b, _)| b.expr == Expr::Column(k)) {
                name.clone_from(&it.name);
            }
        }
        // Below the aggregate: plain columns, or a Project of the keys and
        // arguments when any is an expression.
        let mut args: Vec<Expr> = Vec::new();
        for a in &aggs {
            if let Some(e) = &a.arg {
                if !args.contains(e) {
                    args.push(e.clone());
                }
            }
        }
        let all_cols = groups
            .iter()
            .chain(&args)
            .all(|e| matches!(e, Expr::Column(_)));
        let col = |e: &Expr| match e {
            Expr::Column(i) => *i,
            _ => unreachable!("checked: all are columns"),
        };
        let (input, group_by, arg_index): (Plan, Vec<usize>, Vec<usize>) = if all_cols {
            (
                input,
                groups.iter().map(col).collect(),
                args.iter().map(col).collect(),
            )
        } else {
            let mut exprs: Vec<(Expr, String)> = Vec::new();
            for (g, n) in groups.iter().zip(&group_names) {
                exprs.push((g.clone(), n.clone()));
            }
            for a in &args {
                let n = match a {
                    Expr::Column(i) => scope[*i].name.clone(),
                    _ => aggs
                        .iter()
                        .find(|r| r.arg.as_ref() == Some(a))
                        .map(|r| format!("arg of {}", r.text))
                        .unwrap_or_default(),
                };
                exprs.push((a.clone(), n));
            }
            (
                Plan::Project {
                    input: Box::new(input),
                    exprs,
                },
                (0..ng).collect(),
                (ng..ng + args.len()).collect(),
            )
        };
        // Aggregate names: the first SELECT item that is exactly it.
        let agg_list: Vec<Agg> = aggs
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let name = outs
                    .iter()
                    .find(|(b, _)| b.expr == Expr::Column(ng + k))
                    .map(|(_, it)| it.name.clone())
                    .unwrap_or_else(|| a.text.clone());
                Agg {
                    func: a.func,
                    arg: a
                        .arg
                        .as_ref()
                        .map(|e| arg_index[args.iter().position(|x| x == e).unwrap_or(0)]),
                    name,
                }
            })
            .collect();
        let mut plan = Plan::Aggregate {
            input: Box::new(input),
            group_by,
            aggs: agg_list,
        };
        if let Some(h) = having {
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate: h,
            };
        }
        let exprs: Vec<(Expr, String)> = outs
            .iter()
            .map(|(b, it)| (b.expr.clone(), it.name.clone()))
            .collect();
        let plan = project(plan, exprs);
        let out = outs
            .iter()
            .map(|(_, it)| OutItem {
                name: it.name.clone(),
                text: it.text.clone(),
                ast: match it.src {
                    ItemSrc::Ast(e) => Some(e.clone()),
                    ItemSrc::Col(_) => None,
                },
            })
            .collect();
        Ok((plan, out))
    }

    fn agg_call(&self, f: &ast::Function, ctx: &mut Ctx<'_>) -> Result<Val> {
        let span = pick(f.span(), f.name.span());
        let name = f.name.to_string().to_ascii_uppercase();
        let text = self.text_of(&ast::Expr::Function(f.clone()));
        let (scope, global, ng): (&Scope, bool, usize) = match ctx {
            Ctx::Agg {
                scope,
                global,
                groups,
                ..
            } => (*scope, *global, groups.len()),
            Ctx::Row { clause, .. } => {
                return Err(err_at(
                    span,
                    format!(
                        "aggregate {name}(..) is not allowed in {clause}; filter on aggregates with HAVING"
                    ),
                ))
            }
        };
        if !AGG_NAMES.contains(&name.as_str()) {
            return Err(err_at(
                span,
                format!("aggregate {name} is not supported; use COUNT, SUM, MIN or MAX (for an average compute SUM and COUNT and divide after the result is released)"),
            ));
        }
        if f.filter.is_some() || f.over.is_some() || f.null_treatment.is_some() {
            return Err(err_at(
                span,
                "FILTER, OVER and window functions are not supported; filter with WHERE or CASE WHEN inside the aggregate",
            ));
        }
        if !matches!(f.parameters, ast::FunctionArguments::None) {
            return Err(err_at(span, format!("{name} takes one argument")));
        }
        let list = match &f.args {
            ast::FunctionArguments::List(l) => l,
            _ => return Err(err_at(span, format!("{name} takes one argument"))),
        };
        if !list.clauses.is_empty() {
            return Err(err_at(
                span,
                format!("{name}: clauses inside the argument list are not supported"),
            ));
        }
        let distinct = matches!(
            list.duplicate_treatment,
            Some(ast::DuplicateTreatment::Distinct)
        );
        let arg = match list.args.as_slice() {
            [ast::FunctionArg::Unnamed(a)] => a,
            _ => {
                return Err(err_at(
                    span,
                    format!("{name} takes exactly one argument (MIN and MAX of several values are not supported)"),
                ))
            }
        };
        let (func, arg, ty) = match arg {
            ast::FunctionArgExpr::Wildcard => {
                if name != "COUNT" || distinct {
                    return Err(err_at(
                        span,
                        format!("{name}(*) is not supported; only COUNT(*)"),
                    ));
                }
                (AggFunc::Count, None, ColumnType::Int)
            }
            ast::FunctionArgExpr::QualifiedWildcard(_) => {
                return Err(err_at(
                    span,
                    "t.* is not an aggregate argument; use COUNT(*)",
                ))
            }
            ast::FunctionArgExpr::Expr(e) => {
                if contains_agg(e) {
                    return Err(err_at(
                        self.span_of(e),
                        "aggregates cannot be nested; aggregate in a subquery in FROM first",
                    ));
                }
                let mut row = Ctx::Row {
                    scope,
                    outer: None,
                    clause: "an aggregate argument",
                };
                let b = self.value(e, &mut row)?;
                let aspan = pick(self.span_of(e), span);
                if b.nullable {
                    return Err(err_at(
                        aspan,
                        format!("{name} over a value that may be NULL (a global SUM/MIN/MAX of a subquery) is not supported"),
                    ));
                }
                let func = match (name.as_str(), distinct) {
                    ("COUNT", false) => AggFunc::Count,
                    ("COUNT", true) => AggFunc::CountDistinct,
                    (_, true) => {
                        return Err(err_at(
                            span,
                            format!("{name}(DISTINCT ..) is not supported; only COUNT(DISTINCT ..). Apply DISTINCT in a subquery in FROM first"),
                        ))
                    }
                    ("SUM", _) => AggFunc::Sum,
                    ("MIN", _) => AggFunc::Min,
                    _ => AggFunc::Max,
                };
                let ty = match func {
                    AggFunc::Count | AggFunc::CountDistinct => ColumnType::Int,
                    AggFunc::Sum => {
                        if b.ty != ColumnType::Int {
                            return Err(err_at(
                                aspan,
                                format!(
                                    "SUM needs an int, this is {}{}",
                                    b.ty,
                                    if b.ty == ColumnType::Bool {
                                        "; count the true values with SUM(CASE WHEN x THEN 1 ELSE 0 END)"
                                    } else {
                                        ""
                                    }
                                ),
                            ));
                        }
                        ColumnType::Int
                    }
                    _ => {
                        if b.ty == ColumnType::Text {
                            return Err(err_at(
                                aspan,
                                format!("{name} of text is not supported; MIN and MAX take int, date, idnr or bool"),
                            ));
                        }
                        b.ty
                    }
                };
                (func, Some(b.expr), ty)
            }
        };
        let Ctx::Agg { aggs, .. } = ctx else {
            unreachable!("checked above")
        };
        let k = match aggs.iter().position(|a| a.func == func && a.arg == arg) {
            Some(k) => k,
            None => {
                aggs.push(AggReq { func, arg, text });
                aggs.len() - 1
            }
        };
        let nullable = global && matches!(func, AggFunc::Sum | AggFunc::Min | AggFunc::Max);
        Ok(Val::Typed {
            expr: Expr::Column(ng + k),
            ty,
            nullable,
        })
    }

    // -----------------------------------------------------------------------
    // Subqueries in WHERE

    fn semi_join(&self, probe: Plan, outer: &Scope, c: &ast::Expr) -> Result<Plan> {
        let (c, negated_outer) = match c {
            ast::Expr::UnaryOp {
                op: ast::UnaryOperator::Not,
                expr,
            } => (strip_nested(expr), true),
            other => (strip_nested(other), false),
        };
        let (sub, in_expr, negated) = match c {
            ast::Expr::Exists { subquery, negated } => (subquery, None, *negated),
            ast::Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => (subquery, Some(&**expr), *negated),
            _ => unreachable!("checked by is_subquery_conjunct"),
        };
        let anti = negated != negated_outer;
        let no = outer.len();
        let span = pick(sub.span(), self.span_of(c));
        // A plain SELECT may be correlated; anything else is bound alone.
        let simple = match &*sub.body {
            ast::SetExpr::Select(s) => {
                let agg_items = s.projection.iter().any(|p| match p {
                    ast::SelectItem::UnnamedExpr(e)
                    | ast::SelectItem::ExprWithAlias { expr: e, .. } => contains_agg(e),
                    _ => false,
                });
                let no_group =
                    matches!(&s.group_by, ast::GroupByExpr::Expressions(v, _) if v.is_empty());
                (no_group && s.having.is_none() && !agg_items).then_some(s)
            }
            _ => None,
        };
        let (mut build, mut on, residual, y): (Plan, _, _, Option<Bound>) = if let Some(s) = simple
        {
            self.check_query_clauses(sub)?;
            if sub.order_by.is_some() || sub.limit_clause.is_some() {
                return Err(err_at(
                    span,
                    "ORDER BY and LIMIT inside a subquery are not supported",
                ));
            }
            self.check_select_clauses(s)?;
            let (rels, ons, using) = self.relations(&s.from, s.select_token.0.span)?;
            let mut inner: Scope = Vec::new();
            for r in &rels {
                inner.extend(r.scope.iter().cloned());
            }
            let mut conj_ast = Vec::new();
            for e in &ons {
                split_and(e, &mut conj_ast);
            }
            if let Some(w) = &s.selection {
                split_and(w, &mut conj_ast);
            }
            let mut inner_conjs = using;
            let mut on = Vec::new();
            let mut residual = Vec::new();
            for c in conj_ast {
                if is_subquery_conjunct(c) {
                    return Err(err_at(
                            self.span_of(c),
                            "subqueries nested inside a subquery are not supported; join the tables in one subquery",
                        ));
                }
                let mut ctx = Ctx::Row {
                    scope: &inner,
                    outer: Some(outer),
                    clause: "WHERE",
                };
                let e = self.condition(c, &mut ctx)?;
                let cols = columns_of(&e);
                if cols.iter().all(|&i| i >= no) {
                    inner_conjs.push(remap(&e, &|i| i - no));
                    continue;
                }
                if let Expr::Binary {
                    op: BinOp::Eq,
                    left: a,
                    right: b,
                } = &e
                {
                    if let (Expr::Column(x), Expr::Column(y)) = (&**a, &**b) {
                        let (x, y) = (*x, *y);
                        if x < no && y >= no {
                            on.push((x, y - no));
                            continue;
                        }
                        if y < no && x >= no {
                            on.push((y, x - no));
                            continue;
                        }
                    }
                }
                residual.push(e);
            }
            let (build, inner) = self.join_tree(rels, inner_conjs)?;
            let y = match in_expr {
                None => None,
                Some(_) => {
                    let items = self.items(&s.projection, &inner)?;
                    if items.len() != 1 {
                        return Err(err_at(
                            span,
                            format!(
                                "the subquery of IN must select exactly one column; it selects {}",
                                items.len()
                            ),
                        ));
                    }
                    Some(match items[0].src {
                        ItemSrc::Col(i) => Bound {
                            expr: Expr::Column(i),
                            ty: inner[i].ty,
                            nullable: inner[i].nullable,
                        },
                        ItemSrc::Ast(e) => {
                            let mut ctx = Ctx::Row {
                                scope: &inner,
                                outer: None,
                                clause: "the SELECT list of an IN subquery",
                            };
                            self.value(e, &mut ctx)?
                        }
                    })
                }
            };
            (build, on, and_all(residual), y)
        } else {
            let b = self.sub_query(sub)?;
            let f = b.plan.fields();
            let y = match in_expr {
                None => None,
                Some(_) => {
                    if f.len() != 1 {
                        return Err(err_at(
                            span,
                            format!(
                                "the subquery of IN must select exactly one column; it selects {}",
                                f.len()
                            ),
                        ));
                    }
                    Some(Bound {
                        expr: Expr::Column(0),
                        ty: f[0].ty,
                        nullable: f[0].nullable,
                    })
                }
            };
            // A Project never changes the number of rows: EXISTS needs
            // none of them.
            let mut plan = b.plan;
            if in_expr.is_none() {
                while let Plan::Project { input, .. } = plan {
                    plan = *input;
                }
            }
            (plan, Vec::new(), None, y)
        };
        let mut probe = probe;
        let mut drop_extra = false;
        if let (Some(x_ast), Some(y)) = (in_expr, y) {
            if y.nullable {
                return Err(err_at(
                    span,
                    "IN over a subquery column that may be NULL is not supported",
                ));
            }
            let mut ctx = Ctx::Row {
                scope: outer,
                outer: None,
                clause: "WHERE",
            };
            let xv = self.bind(x_ast, &mut ctx)?;
            let x = self.coerce(xv, y.ty, self.span_of(x_ast))?;
            if x.ty != y.ty {
                return Err(err_at(
                    self.span_of(x_ast),
                    format!(
                        "IN compares {} with a subquery of {}; the types must agree",
                        x.ty, y.ty
                    ),
                ));
            }
            let ycol = match y.expr {
                Expr::Column(j) => j,
                e => {
                    let fields = build.fields();
                    let mut exprs: Vec<(Expr, String)> = fields
                        .iter()
                        .enumerate()
                        .map(|(i, f)| (Expr::Column(i), f.name.clone()))
                        .collect();
                    exprs.push((e, "in_key".into()));
                    build = Plan::Project {
                        input: Box::new(build),
                        exprs,
                    };
                    fields.len()
                }
            };
            let xcol = match x.expr {
                Expr::Column(i) => i,
                e => {
                    let fields = probe.fields();
                    let mut exprs: Vec<(Expr, String)> = fields
                        .iter()
                        .enumerate()
                        .map(|(i, f)| (Expr::Column(i), f.name.clone()))
                        .collect();
                    exprs.push((e, "in_key".into()));
                    probe = Plan::Project {
                        input: Box::new(probe),
                        exprs,
                    };
                    drop_extra = true;
                    fields.len()
                }
            };
            // The residual is over probe columns then build columns: with an
            // extra probe column every build reference moves by one.
            on.insert(0, (xcol, ycol));
        }
        let residual = if drop_extra {
            residual.map(|r| remap(&r, &|i| if i >= no { i + 1 } else { i }))
        } else {
            residual
        };
        let plan = Plan::SemiJoin {
            probe: Box::new(probe),
            build: Box::new(build),
            on,
            residual,
            anti,
        };
        if drop_extra {
            let exprs = outer
                .iter()
                .enumerate()
                .map(|(i, c)| (Expr::Column(i), c.name.clone()))
                .collect();
            Ok(Plan::Project {
                input: Box::new(plan),
                exprs,
            })
        } else {
            Ok(plan)
        }
    }

    // -----------------------------------------------------------------------
    // Expressions

    /// A condition: a bool expression.
    fn condition(&self, e: &ast::Expr, ctx: &mut Ctx<'_>) -> Result<Expr> {
        let v = self.bind(e, ctx)?;
        let b = self.coerce(v, ColumnType::Bool, self.span_of(e))?;
        if b.ty != ColumnType::Bool {
            return Err(err_at(
                self.span_of(e),
                format!(
                    "a condition must be true or false, this is {}; compare it, e.g. {} <> 0",
                    b.ty,
                    self.text_of(e)
                ),
            ));
        }
        Ok(b.expr)
    }

    /// A value: literals take their default type (int, text).
    fn value(&self, e: &ast::Expr, ctx: &mut Ctx<'_>) -> Result<Bound> {
        let v = self.bind(e, ctx)?;
        self.default_type(v)
    }

    fn default_type(&self, v: Val) -> Result<Bound> {
        match v {
            Val::Typed { expr, ty, nullable } => Ok(Bound { expr, ty, nullable }),
            Val::Lit(Lit::Int(i), _) => Ok(Bound {
                expr: Expr::Const(Const::int(i)),
                ty: ColumnType::Int,
                nullable: false,
            }),
            Val::Lit(Lit::Str(s), span) => Ok(Bound {
                expr: Expr::Const(self.text_const(&s, span)?),
                ty: ColumnType::Text,
                nullable: false,
            }),
        }
    }

    fn text_const(&self, s: &str, span: Span) -> Result<Const> {
        let mut words = vec![0u64; ColumnType::Text.words()];
        if s.len() > TEXT_BYTES {
            return Err(err_at(
                span,
                format!(
                    "the text '{s}' is {} bytes; text values hold at most {TEXT_BYTES}",
                    s.len()
                ),
            ));
        }
        kuvert_data::value::encode_cell(ColumnType::Text, s, self.today, &mut words)
            .map_err(|e| err_at(span, e))?;
        Ok(Const {
            ty: ColumnType::Text,
            words,
        })
    }

    /// Give a literal the type `ty` (validated); typed values pass through
    /// unchanged (the caller checks the type).
    fn coerce(&self, v: Val, ty: ColumnType, at: Span) -> Result<Bound> {
        let (lit, span) = match v {
            Val::Typed { expr, ty, nullable } => return Ok(Bound { expr, ty, nullable }),
            Val::Lit(l, s) => (l, pick(s, at)),
        };
        let c = match (&lit, ty) {
            (Lit::Int(i), ColumnType::Int) => Const::int(*i),
            (Lit::Int(i @ (0 | 1)), ColumnType::Bool) => Const::bool(*i == 1),
            (Lit::Int(i), ColumnType::Bool) => {
                return Err(err_at(
                    span,
                    format!("{i} is not a bool; use TRUE/FALSE or 1/0"),
                ))
            }
            (Lit::Str(s), ColumnType::Date) => {
                let d =
                    parse_date(s).map_err(|e| err_at(span, format!("'{s}' is not a date: {e}")))?;
                Const {
                    ty,
                    words: vec![days_from_civil(d) as u64],
                }
            }
            (Lit::Str(s), ColumnType::Idnr) => {
                let v = idnr::parse(s, self.today).map_err(|e| {
                    err_at(span, format!("'{s}' is not a valid identity number: {e}"))
                })?;
                Const {
                    ty,
                    words: vec![v as u64],
                }
            }
            (Lit::Str(s), ColumnType::Text) => self.text_const(s, span)?,
            (Lit::Int(_), _) | (Lit::Str(_), _) => {
                let found = match lit {
                    Lit::Int(i) => format!("the number {i}"),
                    Lit::Str(s) => format!("the string '{s}'"),
                };
                return Err(err_at(
                    span,
                    format!("expected a {ty} value here, found {found}; the types must agree"),
                ));
            }
        };
        Ok(Bound {
            expr: Expr::Const(c),
            ty,
            nullable: false,
        })
    }

    /// Bring two values to one type: a literal takes the other side's type.
    fn unify(&self, l: Val, ls: Span, r: Val, rs: Span, what: &str) -> Result<(Bound, Bound)> {
        let (l, r) = match (&l, &r) {
            (Val::Typed { ty, .. }, Val::Lit(..)) => {
                let ty = *ty;
                (self.coerce(l, ty, ls)?, self.coerce(r, ty, rs)?)
            }
            (Val::Lit(..), Val::Typed { ty, .. }) => {
                let ty = *ty;
                (self.coerce(l, ty, ls)?, self.coerce(r, ty, rs)?)
            }
            _ => (self.default_type(l)?, self.default_type(r)?),
        };
        if l.ty != r.ty {
            return Err(err_at(
                ls,
                format!(
                    "{what} of {} and {}: the types must agree (kuvert does not convert between types)",
                    l.ty, r.ty
                ),
            ));
        }
        Ok((l, r))
    }

    fn bind(&self, e: &ast::Expr, ctx: &mut Ctx<'_>) -> Result<Val> {
        use ast::Expr as E;
        let span = self.span_of(e);
        // HAVING may name a SELECT alias that is no column (SQLite does).
        if let E::Identifier(id) = e {
            let alias = match &*ctx {
                Ctx::Agg { scope, aliases, .. }
                    if matches!(self.lookup(e, scope), Some(Ok(None))) =>
                {
                    aliases
                        .iter()
                        .find(|(n, _)| eq_name(n, &id.value))
                        .map(|(_, a)| *a)
                }
                _ => None,
            };
            if let (
                Some(a),
                Ctx::Agg {
                    scope,
                    groups,
                    group_tys,
                    aggs,
                    global,
                    ..
                },
            ) = (alias, &mut *ctx)
            {
                let mut inner = Ctx::Agg {
                    scope,
                    groups,
                    group_tys,
                    aggs,
                    global: *global,
                    aliases: &[],
                };
                return self.bind(a, &mut inner);
            }
        }
        // Above an aggregate, a sub-expression equal to a GROUP BY
        // expression is that group column.
        if let Ctx::Agg {
            scope,
            groups,
            group_tys,
            ..
        } = ctx
        {
            if !contains_agg(e) && !matches!(e, E::Value(_) | E::Nested(_)) {
                let mut row = Ctx::Row {
                    scope,
                    outer: None,
                    clause: "GROUP BY",
                };
                // If it does not bind as a row expression (it may name a
                // HAVING alias inside), bind its parts one by one below.
                let v = match self.bind(e, &mut row) {
                    Ok(v) => Some(v),
                    Err(err) if matches!(e, E::Identifier(_) | E::CompoundIdentifier(_)) => {
                        return Err(err)
                    }
                    Err(_) => None,
                };
                if let Some(Val::Typed { expr, .. }) = &v {
                    if let Some(k) = groups.iter().position(|g| g == expr) {
                        return Ok(Val::Typed {
                            expr: Expr::Column(k),
                            ty: group_tys[k].0,
                            nullable: group_tys[k].1,
                        });
                    }
                    if matches!(e, E::Identifier(_) | E::CompoundIdentifier(_)) {
                        return Err(err_at(
                            span,
                            format!(
                                "column {} is neither in GROUP BY nor inside an aggregate (SQLite would pick an arbitrary row's value; kuvert does not): add it to GROUP BY or aggregate it",
                                self.text_of(e)
                            ),
                        ));
                    }
                }
            }
        }
        match e {
            E::Nested(x) => self.bind(x, ctx),
            E::Identifier(_) | E::CompoundIdentifier(_) => self.column(e, ctx),
            E::Value(v) => self.literal(v, span),
            E::TypedString { data_type, value } => {
                let s = match &value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                match data_type {
                    ast::DataType::Date => self
                        .coerce(Val::Lit(Lit::Str(s), span), ColumnType::Date, span)
                        .map(typed),
                    other => Err(err_at(
                        span,
                        format!("{other} literals are not supported; only DATE 'YYYY-MM-DD'"),
                    )),
                }
            }
            E::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Not => {
                    let x = self.bind(expr, ctx)?;
                    let x = self.expect(x, ColumnType::Bool, self.span_of(expr), "NOT")?;
                    Ok(typed(Bound {
                        expr: Expr::Not(Box::new(x.expr)),
                        ty: ColumnType::Bool,
                        nullable: x.nullable,
                    }))
                }
                ast::UnaryOperator::Minus => {
                    let x = self.bind(expr, ctx)?;
                    if let Val::Lit(Lit::Int(i), _) = x {
                        return Ok(Val::Lit(Lit::Int(i.wrapping_neg()), span));
                    }
                    let x = self.expect(x, ColumnType::Int, self.span_of(expr), "unary -")?;
                    Ok(typed(Bound {
                        expr: Expr::Neg(Box::new(x.expr)),
                        ty: ColumnType::Int,
                        nullable: x.nullable,
                    }))
                }
                ast::UnaryOperator::Plus => {
                    let x = self.bind(expr, ctx)?;
                    if let Val::Lit(Lit::Int(_), _) = x {
                        return Ok(x);
                    }
                    Ok(typed(self.expect(x, ColumnType::Int, self.span_of(expr), "unary +")?))
                }
                other => Err(err_at(span, format!("operator {other} is not supported"))),
            },
            E::BinaryOp { left, op, right } => self.binary(left, op, right, span, ctx),
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let a = self.binary(expr, &ast::BinaryOperator::GtEq, low, span, ctx)?;
                let b = self.binary(expr, &ast::BinaryOperator::LtEq, high, span, ctx)?;
                let (a, b) = (self.default_type(a)?, self.default_type(b)?);
                let both = Expr::Binary {
                    op: BinOp::And,
                    left: Box::new(a.expr),
                    right: Box::new(b.expr),
                };
                Ok(typed(Bound {
                    expr: if *negated {
                        Expr::Not(Box::new(both))
                    } else {
                        both
                    },
                    ty: ColumnType::Bool,
                    nullable: a.nullable || b.nullable,
                }))
            }
            E::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.bind(expr, ctx)?;
                let xs = self.span_of(expr);
                // The list's type: the expression's, else the first typed item.
                let x = match x {
                    Val::Typed { .. } => self.default_type(x)?,
                    lit => {
                        let mut ty = None;
                        for item in list {
                            if let Val::Typed { ty: t, .. } = self.bind(item, ctx)? {
                                ty = Some(t);
                                break;
                            }
                        }
                        match ty {
                            Some(t) => self.coerce(lit, t, xs)?,
                            None => self.default_type(lit)?,
                        }
                    }
                };
                let mut consts = Vec::new();
                for item in list {
                    let is = self.span_of(item);
                    let v = self.bind(item, ctx)?;
                    let b = self.coerce(v, x.ty, is)?;
                    match b.expr {
                        Expr::Const(c) if c.ty == x.ty => consts.push(c),
                        Expr::Const(c) => {
                            return Err(err_at(
                                is,
                                format!(
                                    "IN list item is {}, the value tested is {}; the types must agree",
                                    c.ty, x.ty
                                ),
                            ))
                        }
                        _ => {
                            return Err(err_at(
                                is,
                                "IN (...) lists take constants only; for columns use = with OR",
                            ))
                        }
                    }
                }
                Ok(typed(Bound {
                    expr: Expr::InList {
                        expr: Box::new(x.expr),
                        list: consts,
                        negated: *negated,
                    },
                    ty: ColumnType::Bool,
                    nullable: x.nullable,
                }))
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let Some(otherwise) = else_result else {
                    return Err(err_at(
                        span,
                        "CASE needs an ELSE: kuvert rows have no NULL, so every case must give a value",
                    ));
                };
                // Bind all results first to find the result type.
                let mut results = Vec::new();
                for w in conditions {
                    results.push((self.bind(&w.result, ctx)?, self.span_of(&w.result)));
                }
                let other = self.bind(otherwise, ctx)?;
                let os = self.span_of(otherwise);
                let ty = results
                    .iter()
                    .map(|(v, _)| v)
                    .chain(std::iter::once(&other))
                    .find_map(|v| match v {
                        Val::Typed { ty, .. } => Some(*ty),
                        _ => None,
                    });
                let fix = |v: Val, s: Span| -> Result<Bound> {
                    match ty {
                        Some(t) => {
                            let b = self.coerce(v, t, s)?;
                            if b.ty != t {
                                return Err(err_at(
                                    s,
                                    format!("CASE results must have one type: this one is {}, another is {t}", b.ty),
                                ));
                            }
                            Ok(b)
                        }
                        None => self.default_type(v),
                    }
                };
                let mut whens = Vec::new();
                let mut nullable = false;
                let mut first_ty = None;
                for (w, (r, rs)) in conditions.iter().zip(results) {
                    let cond = match operand {
                        Some(op) => {
                            let v = self.binary(op, &ast::BinaryOperator::Eq, &w.condition, span, ctx)?;
                            self.default_type(v)?
                        }
                        None => {
                            let v = self.bind(&w.condition, ctx)?;
                            self.expect(v, ColumnType::Bool, self.span_of(&w.condition), "WHEN")?
                        }
                    };
                    let r = fix(r, rs)?;
                    if *first_ty.get_or_insert(r.ty) != r.ty {
                        return Err(err_at(
                            rs,
                            "CASE results must have one type",
                        ));
                    }
                    nullable |= r.nullable || cond.nullable;
                    whens.push((cond.expr, r.expr));
                }
                let o = fix(other, os)?;
                if first_ty.is_some_and(|t| t != o.ty) {
                    return Err(err_at(os, "CASE results must have one type"));
                }
                nullable |= o.nullable;
                Ok(typed(Bound {
                    expr: Expr::Case {
                        whens,
                        otherwise: Box::new(o.expr),
                    },
                    ty: o.ty,
                    nullable,
                }))
            }
            E::Function(f) => {
                if is_agg_call(f) {
                    return self.agg_call(f, ctx);
                }
                Err(err_at(
                    pick(span, f.name.span()),
                    format!(
                        "function {} is not supported; kuvert SQL has the aggregates COUNT, SUM, MIN, MAX, arithmetic + - *, comparisons and CASE",
                        f.name
                    ),
                ))
            }
            E::Exists { .. } | E::InSubquery { .. } | E::Subquery(_) => Err(err_at(
                span,
                "subqueries are only supported as conditions joined with AND at the top of WHERE ([NOT] EXISTS (..), x [NOT] IN (SELECT ..)); rewrite an OR of subqueries as a UNION of two queries",
            )),
            E::IsNull(_) | E::IsNotNull(_) => Err(err_at(
                span,
                "IS [NOT] NULL is not supported: kuvert rows have no NULLs (only a global SUM/MIN/MAX over no rows is NULL)",
            )),
            E::Cast { .. } => Err(err_at(
                span,
                "CAST is not supported: kuvert does not convert between types; literals take the type of the column they are compared with",
            )),
            E::Like { .. } | E::ILike { .. } => Err(err_at(
                span,
                "LIKE is not supported; text supports = and <> (and IN lists)",
            )),
            _ => Err(err_at(
                span,
                format!("{} is not supported in kuvert SQL", self.text_of(e)),
            )),
        }
    }

    fn expect(&self, v: Val, ty: ColumnType, at: Span, what: &str) -> Result<Bound> {
        let b = self.coerce(v, ty, at)?;
        if b.ty != ty {
            return Err(err_at(at, format!("{what} needs {ty}, this is {}", b.ty)));
        }
        Ok(b)
    }

    fn binary(
        &self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        span: Span,
        ctx: &mut Ctx<'_>,
    ) -> Result<Val> {
        use ast::BinaryOperator as O;
        let (ls, rs) = (
            pick(self.span_of(left), span),
            pick(self.span_of(right), span),
        );
        let bop = match op {
            O::And => BinOp::And,
            O::Or => BinOp::Or,
            O::Plus => BinOp::Add,
            O::Minus => BinOp::Sub,
            O::Multiply => BinOp::Mul,
            O::Eq => BinOp::Eq,
            O::NotEq => BinOp::Ne,
            O::Lt => BinOp::Lt,
            O::LtEq => BinOp::Le,
            O::Gt => BinOp::Gt,
            O::GtEq => BinOp::Ge,
            O::Divide | O::Modulo => {
                return Err(err_at(
                    span,
                    format!("operator {op} is not supported under MPC; compute + - * only, and divide after the result is released"),
                ))
            }
            other => {
                return Err(err_at(
                    span,
                    format!("operator {other} is not supported; use + - *, comparisons, AND, OR, NOT"),
                ))
            }
        };
        let l = self.bind(left, ctx)?;
        let r = self.bind(right, ctx)?;
        let (l, r, ty) = match bop {
            BinOp::And | BinOp::Or => {
                let l = self.expect(l, ColumnType::Bool, ls, &format!("{op}"))?;
                let r = self.expect(r, ColumnType::Bool, rs, &format!("{op}"))?;
                (l, r, ColumnType::Bool)
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul => {
                if let (Val::Lit(Lit::Int(a), _), Val::Lit(Lit::Int(b), _)) = (&l, &r) {
                    // Constant folding keeps literal typing (1 + 1 = flag
                    // still sees a number).
                    let v = match bop {
                        BinOp::Add => a.wrapping_add(*b),
                        BinOp::Sub => a.wrapping_sub(*b),
                        _ => a.wrapping_mul(*b),
                    };
                    return Ok(Val::Lit(Lit::Int(v), span));
                }
                let what = format!("arithmetic ({op})");
                let l = self.expect(l, ColumnType::Int, ls, &what)?;
                let r = self.expect(r, ColumnType::Int, rs, &what)?;
                (l, r, ColumnType::Int)
            }
            _ => {
                let (l, r) = self.unify(l, ls, r, rs, "comparison")?;
                if l.ty == ColumnType::Text && !matches!(bop, BinOp::Eq | BinOp::Ne) {
                    return Err(err_at(
                        span,
                        format!("text can only be compared with = and <> (ordering text is only available in ORDER BY, GROUP BY and DISTINCT), not with {op}"),
                    ));
                }
                (l, r, ColumnType::Bool)
            }
        };
        Ok(typed(Bound {
            expr: Expr::Binary {
                op: bop,
                left: Box::new(l.expr),
                right: Box::new(r.expr),
            },
            ty,
            nullable: l.nullable || r.nullable,
        }))
    }

    fn literal(&self, v: &ast::ValueWithSpan, span: Span) -> Result<Val> {
        let span = pick(v.span, span);
        match &v.value {
            ast::Value::Number(s, _) => match s.parse::<i64>() {
                Ok(i) => Ok(Val::Lit(Lit::Int(i), span)),
                Err(_) => {
                    // `-9223372036854775808` arrives as minus and a number
                    // one too large.
                    if s == "9223372036854775808" {
                        return Ok(Val::Lit(Lit::Int(i64::MIN), span));
                    }
                    Err(err_at(
                        span,
                        format!("{s} is not a 64-bit whole number; kuvert has no decimals"),
                    ))
                }
            },
            ast::Value::SingleQuotedString(s) => Ok(Val::Lit(Lit::Str(s.clone()), span)),
            ast::Value::Boolean(b) => Ok(typed(Bound {
                expr: Expr::Const(Const::bool(*b)),
                ty: ColumnType::Bool,
                nullable: false,
            })),
            ast::Value::Null => Err(err_at(
                span,
                "NULL is not supported: kuvert rows have no NULLs",
            )),
            ast::Value::DoubleQuotedString(s) => Err(err_at(
                span,
                format!("\"{s}\" is not a column here; write strings in single quotes"),
            )),
            other => Err(err_at(
                span,
                format!("the literal {other} is not supported; use whole numbers, 'strings', TRUE/FALSE, DATE 'YYYY-MM-DD'"),
            )),
        }
    }

    fn column(&self, e: &ast::Expr, ctx: &mut Ctx<'_>) -> Result<Val> {
        let span = self.span_of(e);
        if let ast::Expr::CompoundIdentifier(ids) = e {
            if ids.len() != 2 {
                return Err(err_at(
                    span,
                    format!(
                        "{}: write table.column (no schema or database prefix)",
                        self.text_of(e)
                    ),
                ));
            }
        }
        let (scope, outer) = match ctx {
            Ctx::Row { scope, outer, .. } => (*scope, *outer),
            // Reached only for a column that was checked above; keep the
            // message of the check.
            Ctx::Agg { scope, .. } => (*scope, None),
        };
        let no = outer.map_or(0, |o| o.len());
        if let Some(i) = self.lookup(e, scope).expect("a column reference")? {
            let c = &scope[i];
            return Ok(typed(Bound {
                expr: Expr::Column(no + i),
                ty: c.ty,
                nullable: c.nullable,
            }));
        }
        if let Some(o) = outer {
            if let Some(i) = self.lookup(e, o).expect("a column reference")? {
                let c = &o[i];
                return Ok(typed(Bound {
                    expr: Expr::Column(i),
                    ty: c.ty,
                    nullable: c.nullable,
                }));
            }
        }
        // Not found: say what exists.
        let (qual, name, nspan) = match e {
            ast::Expr::Identifier(id) => (None, id.value.clone(), id.span),
            ast::Expr::CompoundIdentifier(ids) => (
                Some(ids[0].value.clone()),
                ids[1].value.clone(),
                ids[0].span,
            ),
            _ => unreachable!(),
        };
        let nspan = pick(nspan, span);
        let all: Vec<&ScopeCol> = scope.iter().chain(outer.into_iter().flatten()).collect();
        if let Some(q) = &qual {
            let known = all
                .iter()
                .any(|c| c.qual.as_deref().is_some_and(|x| eq_name(x, q)));
            if !known {
                let qs = quals(scope);
                return Err(err_at(
                    nspan,
                    format!(
                        "unknown table or alias {q}{}; the FROM clause has: {}",
                        did_you_mean(q, qs.iter().map(String::as_str)),
                        qs.join(", ")
                    ),
                ));
            }
            let cands: Vec<&str> = all
                .iter()
                .filter(|c| c.qual.as_deref().is_some_and(|x| eq_name(x, q)))
                .map(|c| c.name.as_str())
                .collect();
            return Err(err_at(
                nspan,
                format!(
                    "unknown column {q}.{name}{}; {q} has the columns: {}",
                    did_you_mean(&name, cands.iter().copied()),
                    cands.join(", ")
                ),
            ));
        }
        let cands: Vec<String> = all
            .iter()
            .map(|c| match &c.qual {
                Some(q) => format!("{q}.{}", c.name),
                None => c.name.clone(),
            })
            .collect();
        Err(err_at(
            nspan,
            format!(
                "unknown column {name}{}; the columns here are: {}",
                did_you_mean(&name, all.iter().map(|c| c.name.as_str())),
                cands.join(", ")
            ),
        ))
    }
}

fn typed(b: Bound) -> Val {
    Val::Typed {
        expr: b.expr,
        ty: b.ty,
        nullable: b.nullable,
    }
}

fn strip_nested(e: &ast::Expr) -> &ast::Expr {
    match e {
        ast::Expr::Nested(x) => strip_nested(x),
        other => other,
    }
}

/// `[NOT] EXISTS (..)`, `x [NOT] IN (SELECT ..)`, possibly under NOT and
/// parentheses.
fn is_subquery_conjunct(e: &ast::Expr) -> bool {
    match strip_nested(e) {
        ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => true,
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Not,
            expr,
        } => matches!(
            strip_nested(expr),
            ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. }
        ),
        _ => false,
    }
}

fn check_wildcard_opts(o: &ast::WildcardAdditionalOptions) -> Result<()> {
    if o.opt_ilike.is_some()
        || o.opt_exclude.is_some()
        || o.opt_except.is_some()
        || o.opt_replace.is_some()
        || o.opt_rename.is_some()
    {
        return Err(err_at(
            o.wildcard_token.0.span,
            "* with EXCLUDE/EXCEPT/REPLACE/RENAME is not supported; list the columns",
        ));
    }
    Ok(())
}

fn quals(scope: &Scope) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in scope {
        if let Some(q) = &c.qual {
            if !v.contains(q) {
                v.push(q.clone());
            }
        }
    }
    v
}

/// Whitespace-insensitive, case-insensitive form for matching ORDER BY
/// expressions with SELECT items.
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

fn project(input: Plan, exprs: Vec<(Expr, String)>) -> Plan {
    if is_identity(&exprs, &input.fields()) {
        return input;
    }
    match input {
        // A Project over a Project that only picks columns is one Project.
        Plan::Project {
            input: inner,
            exprs: below,
        } if below.iter().all(|(e, _)| matches!(e, Expr::Column(_))) => {
            let pick = |i: usize| match below[i].0 {
                Expr::Column(j) => j,
                _ => unreachable!("checked: columns only"),
            };
            let exprs = exprs
                .iter()
                .map(|(e, n)| (remap(e, &pick), n.clone()))
                .collect();
            project(*inner, exprs)
        }
        input => Plan::Project {
            input: Box::new(input),
            exprs,
        },
    }
}

fn distinct(plan: Plan) -> Plan {
    let n = plan.width();
    Plan::Aggregate {
        input: Box::new(plan),
        group_by: (0..n).collect(),
        aggs: Vec::new(),
    }
}

fn out_items(items: &[Item<'_>]) -> Vec<OutItem> {
    items
        .iter()
        .map(|it| OutItem {
            name: it.name.clone(),
            text: it.text.clone(),
            ast: match it.src {
                ItemSrc::Ast(e) => Some(e.clone()),
                ItemSrc::Col(_) => None,
            },
        })
        .collect()
}
