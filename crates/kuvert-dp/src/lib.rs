//! Differential privacy for Kuvert.
//!
//! ```text
//!  sample        exact integer samplers (discrete Laplace, discrete Gaussian,
//!                Poisson/Skellam, exponential mechanism, randomized response)
//!  accounting    pure ε, (ε, δ), zCDP, Rényi DP; conversions; calibration
//!  distributed   Skellam noise added by 3 MPC nodes, any 2 honest suffice
//!  ledger        per-dataset (and per-contributor) budget accounts; FileLedger
//!  table, sql    one CSV table and the SQL subset of local releases
//!  release       plan (sensitivity, noise, expected error, EXPLAIN) → release
//!  plot, raster  error-versus-ε curves as SVG / HTML / PNG
//!  collect       randomized response on a CSV column (local DP) and estimates
//! ```
//!
//! Architecture invariant: planning sees the query, the bounds and the
//! schema, never the data; the ledger is checked before any row is read,
//! and charged only after the release succeeded.
//!
//! # Security
//!
//! * **Sampling is exact.** Noise is drawn with integer and rational
//!   arithmetic only, from uniformly random bits (see [`sample`]); there is
//!   no floating-point sampling, so the floating-point attacks on textbook
//!   Laplace noise do not apply. Mechanism parameters computed in `f64` are
//!   converted to rationals *exactly*, so the accounting describes precisely
//!   the distribution sampled.
//! * **Randomness.** Releases draw from a ChaCha20 generator seeded from the
//!   operating system (`OsRng`); the public sampling functions accept any
//!   `RngCore` so that tests can use seeded generators, and the release
//!   entry points require `CryptoRng`.
//! * **Timing is not constant.** The samplers are rejection samplers: their
//!   running time depends on the noise drawn. Whoever can time a release
//!   learns something about the noise (and so about the exact value). Local
//!   releases are run by the data's owner, so this is out of scope here; the
//!   in-MPC mechanism must not expose per-node sampling time (see
//!   [`distributed`]).
//! * **Neighbouring datasets** differ by adding or removing one *person*
//!   with all of their (at most K) rows. Without a declared person column
//!   every row is taken to be a different person: if that is false, the
//!   guarantee is weaker than stated (by a factor up to the true number of
//!   rows per person).
//! * **Group keys** of a histogram must be declared and public; keys read
//!   from the data would themselves leak (a key seen once reveals a person),
//!   so undeclared keys are refused.
//! * **Not protected:** side channels of the machine, a budget ledger edited
//!   or deleted by its owner, and several ledgers kept for the same data.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub mod accounting;
pub mod collect;
pub mod distributed;
pub mod ledger;
pub mod plot;
pub mod raster;
pub mod release;
pub mod sample;
pub mod sql;
pub mod table;

pub use ledger::BudgetExceeded;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DpError {
    /// A parameter (ε, δ, bounds, flags) is out of range or inconsistent.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The SQL text does not parse.
    #[error("SQL syntax error at line {line}, column {column}: {message}")]
    SqlSyntax {
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What the parser expected.
        message: String,
    },
    /// The SQL parses but is outside the supported subset or does not fit the table.
    #[error("SQL error at line {line}, column {column}: {message}")]
    SqlUnsupported {
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong and what to do instead.
        message: String,
    },
    /// The CSV input is malformed.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column (field number).
        column: u64,
        /// What is wrong.
        message: String,
    },
    /// The ledger file cannot be used.
    #[error("ledger {}: {message}", path.display())]
    BadLedger {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The release would exceed the privacy budget; nothing was computed.
    #[error(transparent)]
    BudgetExceeded(#[from] Box<BudgetExceeded>),
    /// Encoding a picture failed (an internal error of the encoder).
    #[error("encoding the PNG failed: {0}")]
    Encode(String),
    /// Reading or writing a file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (shown in the message, not chained).
        cause: std::io::Error,
    },
}

/// The generator for real releases: ChaCha20 seeded with 256 bits from the
/// operating system's CSPRNG.
pub fn secure_rng() -> Result<rand_chacha::ChaCha20Rng, DpError> {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::from_rng(rand_core::OsRng).map_err(|e| DpError::Io {
        path: PathBuf::from("<operating-system randomness>"),
        cause: std::io::Error::other(e.to_string()),
    })
}

impl DpError {
    /// Whether the error is the caller's input (bad flag, SQL, CSV, ledger
    /// content, a file that does not exist) rather than the environment.
    pub fn is_bad_input(&self) -> bool {
        match self {
            DpError::Io { cause, .. } => cause.kind() == std::io::ErrorKind::NotFound,
            DpError::BudgetExceeded(_) | DpError::Encode(_) => false,
            _ => true,
        }
    }
}
