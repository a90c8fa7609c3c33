//! Running a program on shares: the node's side of a job.

use std::collections::BTreeMap;

use kuvert_data::{ColumnType, Schema};
use kuvert_mpc::{AShare, Party};

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
        Program::Soak { rounds, n } => {
            if *rounds > 100_000 || *n > 10_000_000 {
                Err("soak: at most 100000 rounds of 10000000 values".into())
            } else {
                Ok(())
            }
        }
    }
}

/// Run `program`; returns this party's shares of the outputs.
pub fn run(
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
    }
}
