//! The answer of a query: each node's shares of it, and the recipient's
//! reconstruction as a table and as CSV.

use kuvert_mpc::AShare;

use crate::plan::{Field, OrderKey};

/// One node's shares of a query's answer (arithmetic sharing mod 2^64).
///
/// The rows are padded: `rows` is a public bound that depends only on the
/// input sizes; the rows that are part of the answer have valid = 1, the
/// others have every plane 0 (so the recipient learns nothing from them).
/// Rows are in a secret random order.
pub struct ResultShares {
    /// The node (0, 1, 2) these shares belong to.
    pub party: usize,
    pub fields: Vec<Field>,
    pub order_by: Vec<OrderKey>,
    /// LIMIT, already applied under MPC (at most `limit` valid rows).
    pub limit: Option<u64>,
    pub rows: usize,
    /// Per field, in order: its `ty.words()` word planes, then, if the field
    /// is nullable, a null plane (1 = NULL, and the word planes are 0).
    /// Last, the valid plane (1 = the row is part of the answer).
    pub planes: Vec<AShare>,
}

impl std::fmt::Debug for ResultShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ResultShares {{ party: {}, fields: {}, rows: {} }}",
            self.party,
            self.fields.len(),
            self.rows
        )
    }
}
