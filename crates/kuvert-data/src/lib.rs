//! # kuvert-data: contributors' tables, validated and secret-shared locally
//!
//! ```text
//!   schema   declared columns: int, date, bool, idnr, text
//!   value    cell parsing, ring encoding (Z_2^64), formatting back
//!   idnr     Swedish personnummer / samordningsnummer
//!   table    CSV reader with file:line:column errors -> encoded columns
//!   share    replicated secret sharing for the three nodes; reconstruction
//! ```
//!
//! A contributor runs this on its own machine: the CSV is validated in full
//! before anything is shared, then [`share::share_table`] produces one
//! [`share::TableShares`] per node; each node receives only its own. A
//! recipient runs [`share::reconstruct_table`] on the result shares.
//!
//! Architecture invariant: **this crate does no network I/O** and knows
//! nothing about nodes beyond the index of a share.
//!
//! # Security
//! - Shares come from the caller's CSPRNG (`rand::rngs::OsRng` in
//!   production); one node's pair of components is uniformly random and
//!   independent of the data; two nodes together can reconstruct it (the
//!   honest-majority assumption of the engine).
//! - Cleartext buffers we own (encoded columns, staging buffers, shares) are
//!   wiped on drop or right after use, and their `Debug` prints sizes only.
//!   Not wiped: the CSV reader's internal buffers and the `String`s of
//!   parsed records inside the `csv` crate, and any copy the operating
//!   system keeps of the file.
//! - Validation errors quote the offending cell (e.g. an identity number)
//!   so the contributor can fix it; they are meant for the contributor's
//!   own terminal and must not be forwarded to nodes or logs elsewhere.
//! - Leakage by design: the number of rows and the schema are public (the
//!   nodes see the share lengths).

pub mod idnr;
pub mod schema;
pub mod share;
pub mod table;
pub mod value;

pub use schema::{Column, ColumnType, Schema, SchemaError};
pub use share::{
    reconstruct, reconstruct_table, share_table, ColumnShares, ShareError, ShareKind, TableShares,
};
pub use table::{read_csv, read_csv_file, CellError, CsvOptions, DataError, EncodedColumn, Table};
pub use value::Date;
