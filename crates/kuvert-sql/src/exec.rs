//! Running a plan at one node over its shares. (Being written.)

use std::collections::BTreeMap;

use kuvert_data::Schema;
use kuvert_mpc::{AShare, MpcError, Party};

use crate::output::ResultShares;
use crate::plan::Query;

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
}

/// Execute `query` at this node. `progress(done, total)` is called after
/// each operator.
pub fn execute(
    party: &mut Party,
    query: &Query,
    inputs: &BTreeMap<String, InputTable>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ResultShares, ExecError> {
    let _ = (party, query, inputs, progress);
    Err(ExecError::Unsupported(
        "the executor is being written".into(),
    ))
}
