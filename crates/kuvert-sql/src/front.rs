//! SQL text to a typed logical plan. (Being written.)

use crate::{plan::Query, Catalog, SqlError};

pub(crate) fn prepare(_sql: &str, _catalog: &Catalog) -> Result<Query, SqlError> {
    Err(SqlError {
        message: "the SQL front end is being written".into(),
        line: 0,
        column: 0,
    })
}
