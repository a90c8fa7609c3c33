//! `WITH PRIVACY (...)`: differentially private answers computed under MPC.
//!
//! ```sql
//! SELECT COUNT(*) AS n, SUM(belopp) AS s FROM fk WHERE ...
//! WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr, max_rows = 3, lo = 0, hi = 20000)
//! ```
//!
//! The nodes, under MPC and without revealing anything: keep at most
//! `max_rows` rows per `person` (the first ones in input order), clamp every
//! SUM argument to `[lo, hi]`, aggregate, and add distributed Skellam noise
//! (each node enters its own secret Skellam(μ/2) sample, so any two honest
//! nodes' noise already gives (ε, δ)-DP against the third node and the
//! recipient). Supported: global (no GROUP BY) COUNT and SUM outputs.

use std::fmt;

use serde::Serialize;

use crate::plan::{AggFunc, Expr, Plan, Query};
use crate::SqlError;

/// The privacy parameters of a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Privacy {
    pub epsilon: f64,
    pub delta: f64,
    /// Name of the column identifying the person (in the aggregated rows).
    pub person: String,
    /// Rows kept per person.
    pub max_rows: u64,
    /// Clamping bounds of SUM arguments.
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

impl fmt::Display for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epsilon = {}, delta = {}, person = {}, max_rows = {}",
            self.epsilon, self.delta, self.person, self.max_rows
        )?;
        if let (Some(lo), Some(hi)) = (self.lo, self.hi) {
            write!(f, ", lo = {lo}, hi = {hi}")?;
        }
        Ok(())
    }
}

/// Split `sql` into the query and its `WITH PRIVACY (...)` clause, if any.
/// The query part keeps its positions (errors still point into `sql`).
pub(crate) fn split(sql: &str) -> Result<(&str, Option<Privacy>), SqlError> {
    let upper = sql.to_ascii_uppercase();
    let Some(at) = find_clause(&upper) else {
        return Ok((sql, None));
    };
    let (line, column) = position(sql, at);
    let err = |m: String| SqlError {
        message: m,
        line,
        column,
    };
    let rest = sql[at..]["WITH".len()..].trim_start();
    let rest = rest["PRIVACY".len()..].trim();
    let rest = rest.strip_suffix(';').unwrap_or(rest).trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            err("WITH PRIVACY needs its parameters in parentheses: WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr)".into())
        })?;
    let mut p = Privacy {
        epsilon: f64::NAN,
        delta: f64::NAN,
        person: String::new(),
        max_rows: 1,
        lo: None,
        hi: None,
    };
    for item in inner.split(',') {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            err(format!(
                "WITH PRIVACY: expected key = value, got {:?}",
                item.trim()
            ))
        })?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('\''));
        let num = |what: &str| -> Result<f64, SqlError> {
            v.parse::<f64>()
                .map_err(|_| err(format!("WITH PRIVACY: {what} must be a number, got {v:?}")))
        };
        let int = |what: &str| -> Result<i64, SqlError> {
            v.parse::<i64>().map_err(|_| {
                err(format!(
                    "WITH PRIVACY: {what} must be a whole number, got {v:?}"
                ))
            })
        };
        match k.as_str() {
            "epsilon" => p.epsilon = num("epsilon")?,
            "delta" => p.delta = num("delta")?,
            "person" => p.person = v.to_string(),
            "max_rows" => {
                let m = int("max_rows")?;
                if m < 1 {
                    return Err(err("WITH PRIVACY: max_rows must be at least 1".into()));
                }
                p.max_rows = m as u64;
            }
            "lo" => p.lo = Some(int("lo")?),
            "hi" => p.hi = Some(int("hi")?),
            other => {
                return Err(err(format!(
                    "WITH PRIVACY: unknown parameter {other:?}; known: epsilon, delta, person, max_rows, lo, hi"
                )))
            }
        }
    }
    if !(p.epsilon.is_finite() && p.epsilon > 0.0) {
        return Err(err(
            "WITH PRIVACY needs epsilon > 0, e.g. epsilon = 1".into()
        ));
    }
    if !(p.delta.is_finite() && p.delta > 0.0 && p.delta < 1.0) {
        return Err(err(
            "WITH PRIVACY needs 0 < delta < 1 (the distributed Skellam mechanism is (epsilon, delta)-DP), e.g. delta = 1e-6".into(),
        ));
    }
    if p.person.is_empty() {
        return Err(err(
            "WITH PRIVACY needs person = <column>: the column that identifies an individual, so that each person's rows can be capped (max_rows, default 1)".into(),
        ));
    }
    match (p.lo, p.hi) {
        (Some(lo), Some(hi)) if lo > hi => {
            return Err(err(format!("WITH PRIVACY: lo = {lo} is above hi = {hi}")))
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(err(
                "WITH PRIVACY: give both lo and hi (the clamping range of SUM arguments)".into(),
            ))
        }
        _ => {}
    }
    Ok((&sql[..at], Some(p)))
}

fn find_clause(upper: &str) -> Option<usize> {
    // the last "WITH" followed by "PRIVACY", outside string literals
    let bytes = upper.as_bytes();
    let mut in_str = false;
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' {
            in_str = !in_str;
        } else if !in_str && upper[i..].starts_with("WITH") {
            let after = upper[i + 4..].trim_start();
            let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
            if boundary && after.starts_with("PRIVACY") {
                found = Some(i);
            }
        }
        i += 1;
    }
    found
}

/// 1-based line and column of byte offset `at` in `sql`.
pub(crate) fn position(sql: &str, at: usize) -> (u64, u64) {
    let before = &sql[..at];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    (line, column)
}

/// Check that the planned query is one kuvert can answer with DP, and find
/// the person column. Returns the index of the person column in the
/// aggregate's input.
pub(crate) fn check(q: &Query, p: &Privacy) -> Result<usize, String> {
    let agg = target(&q.root).ok_or_else(|| {
        "WITH PRIVACY works on queries whose answer is global aggregates (COUNT and SUM, no GROUP BY): \
         a GROUP BY would reveal which groups exist. Ask one query per group (WHERE g = ...) instead"
            .to_string()
    })?;
    let Plan::Aggregate { input, aggs, .. } = agg else {
        unreachable!("target returns an Aggregate")
    };
    for a in aggs {
        match a.func {
            AggFunc::Count => {}
            AggFunc::Sum => {
                if p.lo.is_none() {
                    return Err(format!(
                        "WITH PRIVACY: {} needs clamping bounds lo and hi (one row then moves the sum by at most max(|lo|, |hi|))",
                        a.name
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "WITH PRIVACY supports COUNT and SUM; {} ({:?}) has no bounded sensitivity",
                    a.name, a.func
                ))
            }
        }
    }
    let fields = input.fields();
    let matches: Vec<usize> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.name.eq_ignore_ascii_case(&p.person)
                || f.name
                    .rsplit('.')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&p.person))
        })
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!(
            "WITH PRIVACY: person = {} is not a column of the aggregated rows; they have: {}",
            p.person,
            fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Err(format!("WITH PRIVACY: person = {} is ambiguous", p.person)),
    }
}

/// The global Aggregate a DP query ends in (possibly under a Project that
/// only picks its columns).
pub(crate) fn target(root: &Plan) -> Option<&Plan> {
    match root {
        Plan::Aggregate { group_by, .. } if group_by.is_empty() => Some(root),
        Plan::Project { input, exprs }
            if exprs.iter().all(|(e, _)| matches!(e, Expr::Column(_))) =>
        {
            target(input)
        }
        _ => None,
    }
}

/// Per-aggregate sensitivities (l1, l2) under the per-person cap.
pub fn sensitivities(q: &Query, p: &Privacy) -> Vec<(f64, f64)> {
    let Some(Plan::Aggregate { aggs, .. }) = target(&q.root) else {
        return vec![];
    };
    let k = p.max_rows as f64;
    let b =
        p.lo.unwrap_or(0)
            .unsigned_abs()
            .max(p.hi.unwrap_or(0).unsigned_abs()) as f64;
    aggs.iter()
        .map(|a| match a.func {
            AggFunc::Sum => (k * b, k * b),
            _ => (k, k),
        })
        .collect()
}
