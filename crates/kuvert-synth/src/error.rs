//! The synthesizer's error type and its exit codes.

use kuvert_deid::error::DeidError;
use kuvert_dp::DpError;

/// Everything that can go wrong while fitting or sampling.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A flag, a parameter or the schema configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// A cell of the input cannot be used: `file:line:column: message`.
    #[error("{path}:{line}:{column}: {message}")]
    BadValue {
        /// The input file.
        path: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// The model file cannot be read (not JSON, wrong format tag).
    #[error("model {path}: {message}")]
    BadModel {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Reading the input table failed (malformed CSV, missing file).
    #[error(transparent)]
    Table(#[from] DeidError),
    /// A differential-privacy error, including an exceeded budget.
    #[error(transparent)]
    Dp(#[from] DpError),
    /// Reading or writing a file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
}

impl SynthError {
    /// Exit code for the command line: 3 when the privacy budget would be
    /// exceeded, 2 for input and configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SynthError::Dp(DpError::BudgetExceeded(_)) => 3,
            SynthError::Dp(e) if e.is_bad_input() => 2,
            SynthError::Dp(_) => 1,
            SynthError::Io { cause, .. } if cause.kind() != std::io::ErrorKind::NotFound => 1,
            _ => 2,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SynthError>;

pub(crate) fn config(msg: impl Into<String>) -> SynthError {
    SynthError::Config(msg.into())
}
