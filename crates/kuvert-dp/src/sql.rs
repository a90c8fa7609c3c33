//! The SQL subset of local releases, parsed with `sqlparser`:
//!
//! ```sql
//! SELECT [group_col,] agg [AS alias], ... FROM t
//!   [WHERE predicate] [GROUP BY group_col]
//! ```
//!
//! `agg` is `COUNT(*)`, `COUNT(col)`, `SUM(col)` or `AVG(col)`. Predicates
//! compare a column with a literal (`=`, `<>`, `<`, `<=`, `>`, `>=`), and
//! combine `AND`, `OR`, `NOT`, `IS [NOT] NULL`, `[NOT] IN (...)`,
//! `[NOT] BETWEEN ... AND ...`. Literals: integers, `'text'`, `TRUE`/`FALSE`,
//! dates as `'YYYY-MM-DD'` or `DATE 'YYYY-MM-DD'`. NULL compares as unknown
//! (the row is dropped), as in SQL.

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, ObjectName,
    SelectItem, SetExpr, Spanned, Statement, TableFactor, UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};

use crate::table::{parse_date, ColumnType, Schema, Value};
use crate::DpError;

/// An aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggKind {
    /// `COUNT(*)`.
    CountStar,
    /// `COUNT(col)`: non-NULL values.
    Count,
    /// `SUM(col)`.
    Sum,
    /// `AVG(col)` = noisy SUM / noisy COUNT.
    Avg,
}

/// One output column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The GROUP BY column itself.
    GroupKey {
        /// Output name.
        name: String,
    },
    /// An aggregate.
    Agg {
        /// Output name (alias, or e.g. `sum_amount`).
        alias: String,
        /// Which aggregate.
        kind: AggKind,
        /// Argument column (index, name), none for `COUNT(*)`.
        column: Option<(usize, String)>,
        /// Position of the aggregate in the SQL (line, column).
        at: (u64, u64),
    },
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// =
    Eq,
    /// <>
    Ne,
    /// <
    Lt,
    /// <=
    Le,
    /// >
    Gt,
    /// >=
    Ge,
}

/// A row filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    /// `col op literal`.
    Cmp(usize, CmpOp, Value),
    /// Conjunction.
    And(Box<Predicate>, Box<Predicate>),
    /// Disjunction.
    Or(Box<Predicate>, Box<Predicate>),
    /// Negation.
    Not(Box<Predicate>),
    /// `col IS NULL` (`true`) / `IS NOT NULL` (`false`).
    IsNull(usize, bool),
    /// `col [NOT] IN (...)`.
    In(usize, Vec<Value>, bool),
}

impl Predicate {
    /// Three-valued evaluation: `None` is SQL's unknown.
    pub fn eval(&self, row: &[Value]) -> Option<bool> {
        match self {
            Predicate::Cmp(c, op, lit) => {
                let v = &row[*c];
                if *v == Value::Null {
                    return None;
                }
                let ord = v.cmp(lit);
                Some(match op {
                    CmpOp::Eq => ord.is_eq(),
                    CmpOp::Ne => ord.is_ne(),
                    CmpOp::Lt => ord.is_lt(),
                    CmpOp::Le => ord.is_le(),
                    CmpOp::Gt => ord.is_gt(),
                    CmpOp::Ge => ord.is_ge(),
                })
            }
            Predicate::And(a, b) => match (a.eval(row), b.eval(row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Predicate::Or(a, b) => match (a.eval(row), b.eval(row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Predicate::Not(a) => a.eval(row).map(|b| !b),
            Predicate::IsNull(c, want) => Some((row[*c] == Value::Null) == *want),
            Predicate::In(c, list, negated) => {
                if row[*c] == Value::Null {
                    return None;
                }
                Some(list.contains(&row[*c]) != *negated)
            }
        }
    }
}

/// A parsed, type-checked query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Table name in FROM.
    pub table: String,
    /// Outputs in SELECT order.
    pub outputs: Vec<Output>,
    /// WHERE.
    pub filter: Option<Predicate>,
    /// GROUP BY column (index, name).
    pub group_by: Option<(usize, String)>,
    /// The statement as sqlparser prints it (normalised whitespace and case of keywords).
    pub normalized: String,
}

fn loc(e: &impl Spanned) -> (u64, u64) {
    let s = e.span();
    (s.start.line, s.start.column)
}

fn unsupported(at: (u64, u64), message: impl Into<String>) -> DpError {
    DpError::SqlUnsupported {
        line: at.0,
        column: at.1,
        message: message.into(),
    }
}

/// Split a sqlparser error into (line, column, message): sqlparser appends
/// " at Line: L, Column: C"; without a position the parser ran off the end,
/// so the position is just past the text. Shared with `kuvert-sql`.
pub fn parser_error_position(e: ParserError, sql: &str) -> (u64, u64, String) {
    let msg = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "the query is nested too deeply".into(),
    };
    if let Some(i) = msg.rfind(" at Line: ") {
        let tail = &msg[i + " at Line: ".len()..];
        let mut parts = tail.split(", Column: ");
        let line = parts
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let column = parts
            .next()
            .and_then(|s| {
                s.trim()
                    .trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        (line, column, msg[..i].to_string())
    } else {
        let line = sql.lines().count().max(1) as u64;
        let column = sql.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
        (line, column, msg)
    }
}

fn syntax_error(e: ParserError, sql: &str) -> DpError {
    let (line, column, message) = parser_error_position(e, sql);
    DpError::SqlSyntax {
        line,
        column,
        message,
    }
}

fn object_name(n: &ObjectName) -> String {
    n.to_string()
}

fn column_of(e: &Expr, schema: &Schema) -> Result<(usize, String, ColumnType), DpError> {
    let name = match e {
        Expr::Identifier(id) => id.value.clone(),
        Expr::CompoundIdentifier(ids) if !ids.is_empty() => ids[ids.len() - 1].value.clone(),
        Expr::Nested(inner) => return column_of(inner, schema),
        other => {
            return Err(unsupported(
                loc(other),
                format!("expected a column name, found '{other}'"),
            ))
        }
    };
    let (i, ty) = schema.find(&name).ok_or_else(|| {
        let known: Vec<&str> = schema.columns.iter().map(|c| c.0.as_str()).collect();
        unsupported(
            loc(e),
            format!(
                "unknown column '{name}'; the table has: {}",
                known.join(", ")
            ),
        )
    })?;
    Ok((i, schema.columns[i].0.clone(), ty))
}

fn literal(e: &Expr, ty: ColumnType) -> Result<Value, DpError> {
    let at = loc(e);
    let bad = |what: &str| unsupported(at, format!("expected a {ty} literal, found {what}"));
    let v = match e {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(s, _) => match ty {
                ColumnType::Integer => s.parse().map(Value::Int).map_err(|_| bad(s))?,
                _ => return Err(bad(s)),
            },
            SqlValue::SingleQuotedString(s) => match ty {
                ColumnType::Text => Value::Text(s.clone()),
                ColumnType::Date => {
                    Value::Date(parse_date(s).ok_or_else(|| bad(&format!("'{s}'")))?)
                }
                _ => return Err(bad(&format!("'{s}'"))),
            },
            SqlValue::Boolean(b) if ty == ColumnType::Boolean => Value::Bool(*b),
            other => return Err(bad(&other.to_string())),
        },
        Expr::TypedString { value, .. } if ty == ColumnType::Date => {
            let s = value.value.to_string();
            let s = s.trim_matches('\'');
            Value::Date(parse_date(s).ok_or_else(|| bad(s))?)
        }
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } if ty == ColumnType::Integer => match literal(expr, ty)? {
            Value::Int(i) => Value::Int(-i),
            _ => return Err(bad("a negated non-integer")),
        },
        Expr::Nested(inner) => literal(inner, ty)?,
        other => return Err(bad(&format!("'{other}'"))),
    };
    Ok(v)
}

fn predicate(e: &Expr, schema: &Schema) -> Result<Predicate, DpError> {
    Ok(match e {
        Expr::Nested(inner) => predicate(inner, schema)?,
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::And => Predicate::And(
                Box::new(predicate(left, schema)?),
                Box::new(predicate(right, schema)?),
            ),
            BinaryOperator::Or => Predicate::Or(
                Box::new(predicate(left, schema)?),
                Box::new(predicate(right, schema)?),
            ),
            _ => {
                let cmp = match op {
                    BinaryOperator::Eq => CmpOp::Eq,
                    BinaryOperator::NotEq => CmpOp::Ne,
                    BinaryOperator::Lt => CmpOp::Lt,
                    BinaryOperator::LtEq => CmpOp::Le,
                    BinaryOperator::Gt => CmpOp::Gt,
                    BinaryOperator::GtEq => CmpOp::Ge,
                    other => {
                        return Err(unsupported(
                            loc(e),
                            format!("operator '{other}' is not supported in WHERE"),
                        ))
                    }
                };
                let (c, _, ty) = column_of(left, schema)?;
                Predicate::Cmp(c, cmp, literal(right, ty)?)
            }
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Predicate::Not(Box::new(predicate(expr, schema)?)),
        Expr::IsNull(x) => Predicate::IsNull(column_of(x, schema)?.0, true),
        Expr::IsNotNull(x) => Predicate::IsNull(column_of(x, schema)?.0, false),
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let (c, _, ty) = column_of(expr, schema)?;
            let vals = list
                .iter()
                .map(|l| literal(l, ty))
                .collect::<Result<_, _>>()?;
            Predicate::In(c, vals, *negated)
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let (c, _, ty) = column_of(expr, schema)?;
            let inside = Predicate::And(
                Box::new(Predicate::Cmp(c, CmpOp::Ge, literal(low, ty)?)),
                Box::new(Predicate::Cmp(c, CmpOp::Le, literal(high, ty)?)),
            );
            if *negated {
                Predicate::Not(Box::new(inside))
            } else {
                inside
            }
        }
        other => {
            return Err(unsupported(
                loc(other),
                format!(
                    "'{other}' is not supported in WHERE: use comparisons of a column with a \
                     literal, AND, OR, NOT, IS NULL, IN, BETWEEN"
                ),
            ))
        }
    })
}

fn aggregate(e: &Expr, alias: Option<String>, schema: &Schema) -> Result<Output, DpError> {
    let at = loc(e);
    let Expr::Function(f) = e else {
        return Err(unsupported(
            at,
            format!("'{e}' is not an aggregate: use COUNT(*), COUNT(col), SUM(col) or AVG(col)"),
        ));
    };
    if f.filter.is_some() || f.over.is_some() {
        return Err(unsupported(
            at,
            "FILTER and OVER are not supported; use WHERE",
        ));
    }
    let fname = object_name(&f.name).to_ascii_uppercase();
    let args = match &f.args {
        FunctionArguments::List(l) => {
            if l.duplicate_treatment.is_some() {
                return Err(unsupported(
                    at,
                    "DISTINCT inside an aggregate is not supported (its sensitivity is unbounded \
                     without further declarations)",
                ));
            }
            l.args.clone()
        }
        _ => return Err(unsupported(at, format!("{fname} needs one argument"))),
    };
    if args.len() != 1 {
        return Err(unsupported(
            at,
            format!("{fname} takes exactly one argument"),
        ));
    }
    let arg = match &args[0] {
        FunctionArg::Unnamed(a) => a.clone(),
        _ => return Err(unsupported(at, "named arguments are not supported")),
    };
    let (kind, column) = match (fname.as_str(), arg) {
        ("COUNT", FunctionArgExpr::Wildcard) => (AggKind::CountStar, None),
        (name, FunctionArgExpr::Expr(x)) => {
            let (i, cname, ty) = column_of(&x, schema)?;
            let kind = match name {
                "COUNT" => AggKind::Count,
                "SUM" => AggKind::Sum,
                "AVG" => AggKind::Avg,
                other => {
                    return Err(unsupported(
                        at,
                        format!("aggregate {other} is not supported: use COUNT, SUM or AVG"),
                    ))
                }
            };
            if matches!(kind, AggKind::Sum | AggKind::Avg)
                && !matches!(ty, ColumnType::Integer | ColumnType::Boolean)
            {
                return Err(unsupported(
                    loc(&x),
                    format!("{name}({cname}): column '{cname}' is {ty}; SUM and AVG need integers or booleans"),
                ));
            }
            (kind, Some((i, cname)))
        }
        (other, _) => {
            return Err(unsupported(
                at,
                format!("{other}(*) is not supported; only COUNT(*)"),
            ))
        }
    };
    let alias = alias.unwrap_or_else(|| match (&kind, &column) {
        (AggKind::CountStar, _) => "count".into(),
        (k, Some((_, c))) => format!("{}_{c}", format!("{k:?}").to_ascii_lowercase()),
        _ => "value".into(),
    });
    Ok(Output::Agg {
        alias,
        kind,
        column,
        at,
    })
}

/// Parses `sql` and checks it against `schema`; the FROM table must be `table`.
pub fn parse(sql: &str, table: &str, schema: &Schema) -> Result<Query, DpError> {
    let stmts = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| syntax_error(e, sql))?;
    let [stmt] = stmts.as_slice() else {
        return Err(unsupported((1, 1), "give exactly one SELECT statement"));
    };
    let Statement::Query(q) = stmt else {
        return Err(unsupported((1, 1), "only SELECT is supported"));
    };
    if q.with.is_some() {
        return Err(unsupported(loc(q.as_ref()), "WITH is not supported"));
    }
    if q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return Err(unsupported(
            loc(q.as_ref()),
            "ORDER BY / LIMIT are not supported: a DP release returns every declared group",
        ));
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Err(unsupported(
            loc(q.as_ref()),
            "only a plain SELECT is supported (no UNION, VALUES)",
        ));
    };
    if s.distinct.is_some() {
        return Err(unsupported(
            loc(s.as_ref()),
            "SELECT DISTINCT is not supported",
        ));
    }
    if let Some(h) = &s.having {
        return Err(unsupported(
            loc(h),
            "HAVING is not supported: filtering groups on their true values would leak; \
             filter the released noisy values instead",
        ));
    }
    let [from] = s.from.as_slice() else {
        return Err(unsupported(
            loc(s.as_ref()),
            "exactly one table in FROM is supported",
        ));
    };
    if !from.joins.is_empty() {
        return Err(unsupported(
            loc(from),
            "JOIN is not supported in local releases",
        ));
    }
    let TableFactor::Table { name, .. } = &from.relation else {
        return Err(unsupported(loc(from), "FROM must name a table"));
    };
    let tname = object_name(name);
    if !tname.eq_ignore_ascii_case(table) {
        return Err(unsupported(
            loc(name),
            format!("unknown table '{tname}': the table given with --table is named '{table}'"),
        ));
    }
    let group_by = match &s.group_by {
        GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => match exprs.as_slice() {
            [] => None,
            [e] => {
                let (i, n, _) = column_of(e, schema)?;
                Some((i, n))
            }
            [_, second, ..] => {
                return Err(unsupported(loc(second), "GROUP BY supports one column"))
            }
        },
        _ => {
            return Err(unsupported(
                loc(s.as_ref()),
                "GROUP BY ALL / modifiers are not supported",
            ))
        }
    };
    let mut outputs = Vec::new();
    for item in &s.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            other => {
                return Err(unsupported(
                    loc(other),
                    "SELECT * is not supported: list the aggregates to release",
                ))
            }
        };
        let is_column = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        if is_column {
            let (i, n, _) = column_of(expr, schema)?;
            match &group_by {
                Some((g, _)) if *g == i => outputs.push(Output::GroupKey {
                    name: alias.unwrap_or(n),
                }),
                _ => {
                    return Err(unsupported(
                        loc(expr),
                        format!("column '{n}' must be aggregated or be the GROUP BY column"),
                    ))
                }
            }
        } else {
            outputs.push(aggregate(expr, alias, schema)?);
        }
    }
    if !outputs.iter().any(|o| matches!(o, Output::Agg { .. })) {
        return Err(unsupported(
            loc(s.as_ref()),
            "SELECT at least one aggregate",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for o in &outputs {
        let n = match o {
            Output::GroupKey { name } => name,
            Output::Agg { alias, .. } => alias,
        };
        if !names.insert(n.to_ascii_lowercase()) {
            return Err(unsupported(
                (1, 1),
                format!("output name '{n}' is used twice; add AS aliases"),
            ));
        }
    }
    let filter = s
        .selection
        .as_ref()
        .map(|w| predicate(w, schema))
        .transpose()?;
    Ok(Query {
        table: tname,
        outputs,
        filter,
        group_by,
        normalized: stmt.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema {
            columns: vec![
                ("pid".into(), ColumnType::Integer),
                ("amount".into(), ColumnType::Integer),
                ("region".into(), ColumnType::Text),
                ("day".into(), ColumnType::Date),
                ("active".into(), ColumnType::Boolean),
            ],
        }
    }

    #[test]
    fn parses_the_supported_shape() {
        let q = parse(
            "SELECT region, COUNT(*) AS n, SUM(amount) AS s FROM t \
             WHERE day >= DATE '2024-01-01' AND active = TRUE AND amount BETWEEN 0 AND 10 \
             GROUP BY region",
            "t",
            &schema(),
        )
        .unwrap();
        assert_eq!(q.outputs.len(), 3);
        assert_eq!(q.group_by, Some((2, "region".into())));
        let row = vec![
            Value::Int(1),
            Value::Int(5),
            Value::Text("x".into()),
            Value::Date(parse_date("2024-03-01").unwrap()),
            Value::Bool(true),
        ];
        assert_eq!(q.filter.as_ref().unwrap().eval(&row), Some(true));
        let mut old = row.clone();
        old[3] = Value::Date(0);
        assert_eq!(q.filter.as_ref().unwrap().eval(&old), Some(false));
        let mut null = row;
        null[1] = Value::Null;
        assert_eq!(q.filter.unwrap().eval(&null), None);
    }

    #[test]
    fn syntax_errors_carry_position() {
        let e = parse("SELECT COUNT(*) FROM t WHERE", "t", &schema()).unwrap_err();
        match e {
            DpError::SqlSyntax { line, column, .. } => assert_eq!((line, column), (1, 29)),
            other => panic!("{other}"),
        }
        let e = parse("SELECT COUNT(*)\nFROM t WHERE x = = 1", "t", &schema()).unwrap_err();
        match e {
            DpError::SqlSyntax { line, column, .. } => assert_eq!((line, column), (2, 18)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn semantic_errors_name_the_culprit() {
        let cases = [
            ("SELECT SUM(region) FROM t", "SUM and AVG need integers"),
            ("SELECT COUNT(*) FROM u", "unknown table 'u'"),
            (
                "SELECT COUNT(*) FROM t WHERE nope = 1",
                "unknown column 'nope'",
            ),
            ("SELECT amount, COUNT(*) FROM t", "must be aggregated"),
            (
                "SELECT COUNT(*) FROM t GROUP BY region HAVING COUNT(*) > 3",
                "HAVING",
            ),
            ("SELECT MAX(amount) FROM t", "MAX is not supported"),
            (
                "SELECT COUNT(*) FROM t WHERE day = 'soon'",
                "expected a date literal",
            ),
        ];
        for (sql, want) in cases {
            let e = parse(sql, "t", &schema()).unwrap_err().to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
        let e = parse("SELECT COUNT(*) FROM t WHERE nope = 1", "t", &schema()).unwrap_err();
        assert!(
            matches!(
                e,
                DpError::SqlUnsupported {
                    line: 1,
                    column: 30,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
