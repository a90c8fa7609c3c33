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
//! recipient). Supported: global COUNT and SUM outputs, and histograms:
//! `GROUP BY` one column whose keys are declared public in the clause,
//!
//! ```sql
//! SELECT kommun, COUNT(*) AS n, SUM(belopp) AS s FROM t GROUP BY kommun
//! WITH PRIVACY (epsilon = 1, delta = 1e-6, person = pnr, max_rows = 1,
//!               lo = 0, hi = 10000, groups = (1, 2, 3, 4))
//! ```
//!
//! The answer has exactly one row per declared key (in ascending key order),
//! empty groups included, and rows whose key is not declared are dropped
//! obliviously before the per-person cap, so they count toward nothing.
//!
//! # Accounting
//! Each output column (a COUNT or a SUM over the declared groups) is one
//! vector-valued measurement. The cap `max_rows` holds across all groups, so
//! one person moves the whole vector by at most `max_rows · B` in L1 and in
//! L2 (all of a person's rows may fall in one group; B = 1 for COUNT and
//! max(|lo|, |hi|) for SUM), whatever the number of groups. The Skellam
//! Rényi bound of Agarwal, Kairouz and Liu (2021) is stated for vectors in
//! terms of exactly these L1 and L2 sensitivities, so each column gets the
//! same per-cell variance as a global aggregate would, and the columns
//! compose by adding Rényi curves. Parallel composition ("each person is in
//! one group") is *not* used: it would be wrong for `max_rows > 1`.

use std::fmt;

use serde::Serialize;

use kuvert_data::ColumnType;

use crate::plan::{AggFunc, Const, Expr, Plan, Query};
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
    /// `groups = (...)`: the public keys of a GROUP BY, as written.
    pub groups: Option<Vec<GroupLit>>,
    /// The declared keys encoded for the group column's type, ascending and
    /// distinct; filled by [`crate::prepare`] (empty without GROUP BY).
    pub keys: Vec<Const>,
}

/// Most declared groups: each costs one oblivious equality per row.
pub const MAX_GROUPS: usize = 64;

/// One key of `groups = (...)` as written in the clause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum GroupLit {
    Int(i64),
    /// `'text'` or `DATE 'yyyy-mm-dd'` (typed by the group column).
    Str(String),
    Bool(bool),
}

impl fmt::Display for GroupLit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupLit::Int(i) => write!(f, "{i}"),
            GroupLit::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            GroupLit::Bool(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
        }
    }
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
        if let Some(g) = &self.groups {
            let g: Vec<String> = g.iter().map(|k| k.to_string()).collect();
            write!(f, ", groups = ({})", g.join(", "))?;
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
        groups: None,
        keys: Vec::new(),
    };
    for item in split_top(inner) {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            err(format!(
                "WITH PRIVACY: expected key = value, got {:?}",
                item.trim()
            ))
        })?;
        let k = k.trim().to_ascii_lowercase();
        if k == "groups" {
            p.groups = Some(parse_groups(v.trim()).map_err(err)?);
            continue;
        }
        let v = v.trim().trim_matches('\'');
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
                    "WITH PRIVACY: unknown parameter {other:?}; known: epsilon, delta, person, max_rows, lo, hi, groups"
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

/// Split at the commas that are outside parentheses and string literals.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut start) = (0i32, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// `(1, 2, 3)`, `('north', 'south')`, `(DATE '2024-01-01', ...)`,
/// `(TRUE, FALSE)`.
fn parse_groups(v: &str) -> Result<Vec<GroupLit>, String> {
    let inner = v
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("WITH PRIVACY: groups must be a parenthesised list of the public group keys, e.g. groups = (1, 2, 3) or groups = ('north', 'south'); got {v:?}")
        })?;
    let mut keys = Vec::new();
    for item in split_top(inner) {
        let t = item.trim();
        if t.is_empty() {
            return Err("WITH PRIVACY: groups has an empty entry; list the keys separated by commas, e.g. groups = (1, 2, 3)".into());
        }
        let upper = t.to_ascii_uppercase();
        let t = if upper.starts_with("DATE") && t[4..].trim_start().starts_with('\'') {
            t[4..].trim_start()
        } else {
            t
        };
        let lit = if let Some(body) = t.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            GroupLit::Str(body.replace("''", "'"))
        } else if upper == "TRUE" || upper == "FALSE" {
            GroupLit::Bool(upper == "TRUE")
        } else if let Ok(i) = t.parse::<i64>() {
            GroupLit::Int(i)
        } else {
            return Err(format!(
                "WITH PRIVACY: group key {t:?} is neither a whole number, a 'quoted text', DATE 'yyyy-mm-dd' nor TRUE/FALSE"
            ));
        };
        keys.push(lit);
    }
    if keys.len() > MAX_GROUPS {
        return Err(format!(
            "WITH PRIVACY: {} groups declared; at most {MAX_GROUPS} are supported (each costs one oblivious comparison per row). \
             Split the keys over several queries, e.g. WHERE g IN (...) with groups = (...) for each part, and divide epsilon between them",
            keys.len()
        ));
    }
    Ok(keys)
}

/// Encode the declared keys for a group column of type `ty`: ascending,
/// distinct.
fn encode_keys(lits: &[GroupLit], ty: ColumnType, col: &str) -> Result<Vec<Const>, String> {
    let mut out: Vec<Const> = Vec::with_capacity(lits.len());
    for l in lits {
        let bad = || {
            format!("WITH PRIVACY: group key {l} does not fit the group column {col} of type {ty}")
        };
        let c = match (ty, l) {
            (ColumnType::Int, GroupLit::Int(i)) => Const::int(*i),
            (ColumnType::Bool, GroupLit::Bool(b)) => Const::bool(*b),
            (ColumnType::Bool, GroupLit::Int(i @ (0 | 1))) => Const::bool(*i == 1),
            (ColumnType::Date, GroupLit::Str(s)) => {
                let d = kuvert_data::value::parse_date(s)
                    .map_err(|e| format!("WITH PRIVACY: group key '{s}' is not a date: {e}"))?;
                Const {
                    ty,
                    words: vec![kuvert_data::value::days_from_civil(d) as u64],
                }
            }
            (ColumnType::Text, GroupLit::Str(s)) => {
                let mut words = vec![0u64; ty.words()];
                let today = kuvert_data::value::Date {
                    year: 2000,
                    month: 1,
                    day: 1,
                };
                kuvert_data::value::encode_cell(ty, s, today, &mut words)
                    .map_err(|e| format!("WITH PRIVACY: group key {l}: {e}"))?;
                Const { ty, words }
            }
            (ColumnType::Idnr, _) => {
                return Err(format!(
                    "WITH PRIVACY: {col} is an identity number; a histogram over persons is not an aggregate. Group by a category column"
                ))
            }
            _ => return Err(bad()),
        };
        out.push(c);
    }
    out.sort_by(|a, b| match ty {
        ColumnType::Text => a.words.cmp(&b.words),
        _ => (a.words[0] as i64).cmp(&(b.words[0] as i64)),
    });
    let n = out.len();
    out.dedup();
    if out.len() != n {
        return Err("WITH PRIVACY: groups lists a key twice; list each key once".into());
    }
    Ok(out)
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

/// What [`check`] found: where the person column is and, for a histogram,
/// the group column (both indices into the aggregate's input) and the
/// encoded keys.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub person: usize,
    pub group: Option<(usize, Vec<Const>)>,
}

/// Check that the planned query is one kuvert can answer with DP, find the
/// person column and encode the declared group keys.
pub(crate) fn check(q: &Query, p: &Privacy) -> Result<Checked, String> {
    let agg = target_or_reason(&q.root)?;
    let Plan::Aggregate {
        input,
        aggs,
        group_by,
    } = agg
    else {
        unreachable!("target returns an Aggregate")
    };
    let fields = input.fields();
    let group = match (group_by.as_slice(), &p.groups) {
        ([], None) => None,
        ([], Some(_)) => {
            return Err(
                "WITH PRIVACY: groups = (...) is given but the query has no GROUP BY; add GROUP BY <column> or drop groups"
                    .into(),
            )
        }
        ([g], None) => {
            return Err(format!(
                "WITH PRIVACY with GROUP BY {} needs the public list of groups, e.g. groups = (1, 2, 3): \
                 keys taken from the data would reveal which groups exist (a key held by one person reveals that person). \
                 Every declared key is released, empty or not, and rows with other keys are dropped",
                fields[*g].name
            ))
        }
        ([g], Some(lits)) => {
            if lits.is_empty() {
                return Err("WITH PRIVACY: groups = () declares no group; list the public keys".into());
            }
            Some((*g, encode_keys(lits, fields[*g].ty, &fields[*g].name)?))
        }
        _ => {
            return Err(
                "WITH PRIVACY supports GROUP BY over one column (with its keys in groups = (...)); \
                 combine the columns into one, e.g. with CASE, or ask one query per value of the others"
                    .into(),
            )
        }
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
    let person = match matches.as_slice() {
        [i] => *i,
        [] => {
            return Err(format!(
                "WITH PRIVACY: person = {} is not a column of the aggregated rows; they have: {}",
                p.person,
                fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        _ => return Err(format!("WITH PRIVACY: person = {} is ambiguous", p.person)),
    };
    Ok(Checked { person, group })
}

/// The Aggregate a DP query ends in (possibly under a Project that only
/// picks its columns).
pub(crate) fn target(root: &Plan) -> Option<&Plan> {
    target_or_reason(root).ok()
}

/// [`target`], or why the query's answer is not a DP aggregate.
fn target_or_reason(root: &Plan) -> Result<&Plan, String> {
    match root {
        Plan::Aggregate { .. } => Ok(root),
        Plan::Project { input, exprs }
            if exprs.iter().all(|(e, _)| matches!(e, Expr::Column(_))) =>
        {
            target_or_reason(input)
        }
        Plan::Project { input, .. } if target_or_reason(input).is_ok() => Err(
            "WITH PRIVACY: the select list may hold only the GROUP BY column and COUNT/SUM aggregates; \
             compute expressions from the released values afterwards (post-processing costs no privacy)"
                .into(),
        ),
        Plan::Filter { input, .. } if matches!(input.as_ref(), Plan::Aggregate { .. }) => Err(
            "WITH PRIVACY cannot use HAVING: it filters groups on their true, noiseless values. \
             Declare the groups and filter the released rows afterwards"
                .into(),
        ),
        _ => Err(
            "WITH PRIVACY works on queries whose answer is COUNT and SUM aggregates, either global or \
             GROUP BY one column with its public keys declared in groups = (...)"
                .into(),
        ),
    }
}

/// Per-aggregate sensitivities (l1, l2) under the per-person cap. With a
/// GROUP BY they are those of the whole column over all declared groups:
/// the cap holds across groups, so one person moves the vector by at most
/// `max_rows · B` in L1 and in L2, whatever the number of groups.
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

/// Names of the aggregates of a DP query, in the order of
/// [`sensitivities`].
pub fn aggregate_names(q: &Query) -> Vec<String> {
    match target(&q.root) {
        Some(Plan::Aggregate { aggs, .. }) => aggs.iter().map(|a| a.name.clone()).collect(),
        _ => vec![],
    }
}
