//! Kuvert's SQL dialect under three-party MPC.
//!
//! - [`prepare`] parses SQL (the `sqlparser` crate, generic dialect) and binds
//!   it against the schemas of the contributed tables ([`Catalog`]) into a
//!   typed logical plan ([`plan::Query`]). Errors carry the position in the
//!   SQL.
//! - [`exec::execute`] runs a plan at one node over that node's shares,
//!   with oblivious relational operators, and returns the node's shares of
//!   the answer ([`output::ResultShares`]), padded and shuffled so that
//!   nothing but the input sizes is revealed to the nodes.
//! - [`output::reconstruct`] is the recipient's side: shares of two or three
//!   nodes become the answer table, written as CSV.
//!
//! # Security
//! Planning reads schemas and SQL only, never data. Execution reveals to the
//! nodes only the public sizes of the inputs, and values that are
//! independent of the data (outcomes of comparisons between distinct keys
//! after a secret shuffle; after a sort join, which rows of a freshly and
//! secretly shuffled table belong to the unique side, a uniformly random
//! set of public size; see `docs/sql.md`). The recipient learns the
//! answer and the padded size of the answer (a function of input sizes).
//! In malicious mode the nodes also open, per row of each contributed
//! date, bool and idnr column, whether it lies outside its type's range
//! (`input_check`): all zero for an honest client's upload.
//!
//! A `WITH PRIVACY` answer ([`privacy`]) is released with distributed
//! Skellam noise: each node enters its own secret sample per output cell,
//! drawn from ChaCha20 keyed with 256 bits from the operating system, so
//! any two honest nodes' noise alone gives the declared (ε, δ) against the
//! third node and the recipient. A histogram has exactly one row per
//! declared public key, so which keys occur in the data is not revealed.
//! `exec::execute_with_noise_seed` draws the noise from a given seed; it
//! exists for tests (which take the exact noise off and compare with the
//! plaintext oracle) and must never run in a node.

use std::collections::BTreeMap;
use std::fmt;

use kuvert_data::Schema;

pub mod exec;
pub mod explain;
mod front;
mod input_check;
mod ops;
pub mod output;
pub mod plain;
pub mod plan;
pub mod privacy;

pub use exec::{execute, ExecError, InputTable};
pub use plan::Query;

/// The tables a query may read: name -> schema (as the contributors
/// declared it).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tables: BTreeMap<String, Schema>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }
    pub fn add(&mut self, name: &str, schema: Schema) -> &mut Self {
        self.tables.insert(name.to_string(), schema);
        self
    }
}

/// A query that cannot be planned: unknown table or column, type mismatch,
/// unsupported SQL, or a syntax error. `line`/`column` (1-based) point into
/// the SQL text; 0 when no position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub message: String,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "SQL line {}, column {}: {}",
                self.line, self.column, self.message
            )
        } else {
            write!(f, "SQL: {}", self.message)
        }
    }
}

impl std::error::Error for SqlError {}

/// Parse and bind `sql` against `catalog` into a typed plan.
/// A trailing `WITH PRIVACY (...)` clause makes the answer differentially
/// private under MPC (see [`privacy`]).
pub fn prepare(sql: &str, catalog: &Catalog) -> Result<Query, SqlError> {
    let (body, privacy) = privacy::split(sql)?;
    let mut q = front::prepare(body, catalog)?;
    if let Some(mut p) = privacy {
        let checked = privacy::check(&q, &p).map_err(|message| {
            let at = sql.to_ascii_uppercase().rfind("PRIVACY").unwrap_or(0);
            let (line, column) = privacy::position(sql, at);
            SqlError {
                message,
                line,
                column,
            }
        })?;
        p.keys = checked.group.map(|(_, k)| k).unwrap_or_default();
        q.privacy = Some(p);
    }
    Ok(q)
}
