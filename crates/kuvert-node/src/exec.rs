//! Running a program on shares: the node's side of a job.

use std::collections::BTreeMap;

use kuvert_data::{ColumnType, Schema};
use kuvert_dp::distributed::DistributedSkellam;
use kuvert_mpc::{AShare, Party, Verified};

use crate::wire::Program;

/// One uploaded table as this node holds it.
pub struct StoredTable {
    pub schema: Schema,
    pub rows: usize,
    /// Per column, per word plane: this node's components (a, b).
    pub columns: Vec<AShare>,
}

impl std::fmt::Debug for StoredTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StoredTable {{ schema: {}, rows: {} }}",
            self.schema.to_compact(),
            self.rows
        )
    }
}

/// Central Skellam variance μ for a sum of values clamped to `[lo, hi]`
/// (one row per person: sensitivity max(|lo|, |hi|) in both norms) at
/// (ε, δ); each node adds μ/2.
pub fn noise_variance(lo: i64, hi: i64, epsilon: f64, delta: f64) -> Result<f64, String> {
    let s = (lo.unsigned_abs().max(hi.unsigned_abs()) as f64).max(1.0);
    let v = kuvert_dp::accounting::skellam_variances_for(epsilon, delta, &[(s, s)])
        .map_err(|e| e.to_string())?;
    v.first()
        .copied()
        .ok_or_else(|| "no calibration".to_string())
}

/// Check a program against the schemas before any data moves.
pub fn check(program: &Program, tables: &BTreeMap<String, StoredTable>) -> Result<(), String> {
    let column = |table: &str, column: &str, allowed: &[ColumnType]| -> Result<(), String> {
        let t = tables
            .get(table)
            .ok_or_else(|| format!("table {table:?} has not been uploaded to this node"))?;
        let i = t
            .schema
            .index_of(column)
            .ok_or_else(|| format!("table {table:?} has no column {column:?}"))?;
        let ty = t.schema.columns()[i].ty;
        if !allowed.contains(&ty) {
            return Err(format!(
                "column {table}.{column} is {}, but the program needs one of: {}",
                ty.name(),
                allowed
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    };
    match program {
        Program::Sum { table, column: c } => column(table, c, &[ColumnType::Int, ColumnType::Bool]),
        Program::CountBelow {
            table, column: c, ..
        } => column(table, c, &[ColumnType::Int, ColumnType::Date]),
        Program::NoisySum {
            table,
            column: c,
            lo,
            hi,
            epsilon,
            delta,
        } => {
            column(table, c, &[ColumnType::Int, ColumnType::Bool])?;
            if lo > hi {
                return Err(format!(
                    "noisy sum: lower bound {lo} is above the upper bound {hi}"
                ));
            }
            if !(*epsilon > 0.0 && epsilon.is_finite() && *delta > 0.0 && *delta < 1.0) {
                return Err(format!(
                    "noisy sum: need ε > 0 and 0 < δ < 1, got ε = {epsilon}, δ = {delta}"
                ));
            }
            noise_variance(*lo, *hi, *epsilon, *delta).map(drop)
        }
        Program::Query { sql, .. } => plan_query(sql, tables).map(drop),
        Program::Soak { rounds, n } => {
            if *rounds > 100_000 || *n > 10_000_000 {
                Err("soak: at most 100000 rounds of 10000000 values".into())
            } else {
                Ok(())
            }
        }
    }
}

/// The catalog a query is planned against: the job's uploaded tables,
/// name -> schema.
pub fn catalog(tables: &BTreeMap<String, StoredTable>) -> kuvert_sql::Catalog {
    let mut c = kuvert_sql::Catalog::new();
    for (name, t) in tables {
        c.add(name, t.schema.clone());
    }
    c
}

/// Plan `sql` against the job's tables, as every node does for itself
/// (deterministically, so the three nodes run the same protocol). The
/// error is the planner's message with its position in the SQL.
pub fn plan_query(
    sql: &str,
    tables: &BTreeMap<String, StoredTable>,
) -> Result<kuvert_sql::Query, String> {
    kuvert_sql::prepare(sql, &catalog(tables)).map_err(|e| e.to_string())
}

/// Run a query at this node. The stored tables are lent to the executor
/// (moved into `kuvert_sql::InputTable`s and moved back afterwards, so no
/// copy of the shares is made); `progress(done, total)` is called after
/// each operator. Returns this node's shares of the answer, vouched for
/// by every check of the session's mode (in malicious mode, a failed check
/// is [`QueryFailure::Failed`] and no share is returned).
pub fn run_query(
    p: &mut Party,
    sql: &str,
    tables: &mut BTreeMap<String, StoredTable>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Verified<kuvert_sql::output::ResultShares>, QueryFailure> {
    let query = plan_query(sql, tables).map_err(QueryFailure::Refused)?;
    // StoredTable: one share per column (its word planes one after the
    // other); InputTable: one share per word plane. One-word columns move
    // as they are; text columns are split and joined again afterwards.
    let mut inputs: BTreeMap<String, kuvert_sql::InputTable> = std::mem::take(tables)
        .into_iter()
        .map(|(name, t)| {
            let mut planes = Vec::new();
            for (c, share) in t.schema.columns().iter().zip(t.columns) {
                let w = c.ty.words();
                if w == 1 {
                    planes.push(share);
                } else {
                    planes.extend(share.split(&vec![t.rows; w]));
                }
            }
            (
                name,
                kuvert_sql::InputTable {
                    schema: t.schema,
                    rows: t.rows,
                    columns: planes,
                },
            )
        })
        .collect();
    let out = kuvert_sql::execute(p, &query, &inputs, progress);
    *tables = std::mem::take(&mut inputs)
        .into_iter()
        .map(|(name, t)| {
            let mut planes = t.columns.into_iter();
            let mut columns = Vec::with_capacity(t.schema.len());
            for c in t.schema.columns() {
                let w = c.ty.words();
                if w == 1 {
                    columns.extend(planes.next());
                } else {
                    let parts: Vec<AShare> = planes.by_ref().take(w).collect();
                    columns.push(AShare::concat(&parts.iter().collect::<Vec<_>>()));
                }
            }
            (
                name,
                StoredTable {
                    schema: t.schema,
                    rows: t.rows,
                    columns,
                },
            )
        })
        .collect();
    let out = out.map_err(|e| match e {
        kuvert_sql::ExecError::Unsupported(m) => QueryFailure::Refused(m),
        kuvert_sql::ExecError::Mpc(kuvert_mpc::MpcError::Unsupported(m)) => {
            QueryFailure::Refused(m)
        }
        other => QueryFailure::Failed(other.to_string()),
    })?;
    // Malicious mode: no result share leaves before every pending check
    // passed at this node (and, through the abort round, at the others).
    p.verified_result(out)
        .map_err(|e| QueryFailure::Failed(format!("verification failed, nothing released: {e}")))
}

/// Why a query did not produce an answer at this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryFailure {
    /// It cannot run on these inputs (planning, or an operator's limit for
    /// these sizes): the query must change.
    Refused(String),
    /// The protocol failed (a node or link, or bad shares).
    Failed(String),
}

impl std::fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryFailure::Refused(m) | QueryFailure::Failed(m) => f.write_str(m),
        }
    }
}

/// Run `program`; returns this party's shares of the outputs, vouched for
/// by every check of the session's mode.
pub fn run(
    p: &mut Party,
    program: &Program,
    tables: &BTreeMap<String, StoredTable>,
) -> Result<Verified<AShare>, String> {
    let out = run_program(p, program, tables)?;
    p.verified_result(out)
        .map_err(|e| format!("verification failed, nothing released: {e}"))
}

fn run_program(
    p: &mut Party,
    program: &Program,
    tables: &BTreeMap<String, StoredTable>,
) -> Result<AShare, String> {
    check(program, tables)?;
    let col = |table: &str, column: &str| -> &AShare {
        let t = &tables[table];
        &t.columns[t.schema.index_of(column).expect("checked")]
    };
    let e = |e: kuvert_mpc::MpcError| e.to_string();
    match program {
        Program::Sum { table, column } => Ok(col(table, column).sum()),
        Program::CountBelow {
            table,
            column,
            limit,
        } => {
            let x = col(table, column);
            let lim = AShare::public(p.id(), &vec![*limit as u64; x.len()]);
            let below = p.lt(x, &lim, true).map_err(e)?;
            Ok(p.bit2a(&below).map_err(e)?.sum())
        }
        Program::NoisySum {
            table,
            column,
            lo,
            hi,
            epsilon,
            delta,
        } => {
            let x = col(table, column);
            let me = p.id();
            let n = x.len();
            // Clamp to [lo, hi] under MPC (exact comparisons: any i64).
            let lo_c = AShare::public(me, &vec![*lo as u64; n]);
            let hi_c = AShare::public(me, &vec![*hi as u64; n]);
            let below = p.lt(x, &lo_c, true).map_err(e)?;
            let raised = p.select(&below, &lo_c, x).map_err(e)?;
            let above = p.lt(&hi_c, &raised, true).map_err(e)?;
            let clamped = p.select(&above, &hi_c, &raised).map_err(e)?;
            let sum = clamped.sum();
            let mu = noise_variance(*lo, *hi, *epsilon, *delta)?;
            let to_word = |v: Result<i128, kuvert_dp::DpError>| -> Result<u64, String> {
                let v = v.map_err(|e| e.to_string())?;
                let v = i64::try_from(v).map_err(|_| "noise sample out of range".to_string())?;
                Ok(v as u64)
            };
            // Semi-honest only: the nodes run no other program in malicious
            // mode (SQL's WITH PRIVACY has the pair-drawn noise there).
            // Each node's own Skellam noise, drawn from ChaCha20 keyed by
            // the OS CSPRNG (one system call, not one per word) and entered
            // as a secret: no node (and not the recipient) learns the total.
            let mut noisy = sum;
            for owner in 0..3 {
                let mine = if me == owner {
                    let mut rng = kuvert_dp::secure_rng().map_err(|e| e.to_string())?;
                    Some(vec![to_word(
                        DistributedSkellam::KUVERT.sample_node_noise(&mut rng, mu),
                    )?])
                } else {
                    None
                };
                let share = p.input_a(owner, mine.as_deref(), 1).map_err(e)?;
                noisy = noisy.add(&share);
            }
            Ok(noisy)
        }
        Program::Soak { rounds, n } => {
            let me = p.id();
            let ones = vec![1u64; *n as usize];
            let mut x = p
                .input_a(0, (me == 0).then_some(&ones[..]), ones.len())
                .map_err(e)?;
            for _ in 0..*rounds {
                x = p.mul(&x, &x).map_err(e)?;
            }
            // Every value stays 1; the output is the public count n.
            Ok(x.sum())
        }
        Program::Query { .. } => {
            Err("a query's answer is a table: run it with exec::run_query".to_string())
        }
    }
}
