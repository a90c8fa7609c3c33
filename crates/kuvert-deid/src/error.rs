//! Error type of the de-identification and risk library.

use thiserror::Error;

/// Everything that can go wrong. Variants name the culprit; input errors
/// carry `file:line:column` so the user can open the exact cell.
#[derive(Debug, Error)]
pub enum DeidError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source} (check the path and permissions)")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The CSV itself is malformed (ragged rows, bad quoting, not UTF-8).
    #[error("{path}:{line}: malformed CSV: {message}")]
    Csv {
        path: String,
        line: u64,
        message: String,
    },
    /// A cell holds a value that the configuration cannot use.
    #[error("{path}:{line}:{column}: {message}")]
    BadValue {
        path: String,
        line: u64,
        column: usize,
        message: String,
    },
    /// A column named in the configuration or on the command line is not in the file.
    #[error("{path}: no column named `{column}` (columns are: {available})")]
    NoSuchColumn {
        path: String,
        column: String,
        available: String,
    },
    /// The configuration is inconsistent or incomplete.
    #[error("configuration: {0}")]
    Config(String),
    /// The key file is missing, malformed or of the wrong kind.
    #[error("key file {path}: {message}")]
    Key { path: String, message: String },
    /// A generalisation hierarchy is not a hierarchy (a level is not a
    /// function of the level below it) or misses a value.
    #[error("hierarchy for column `{column}`: {message}")]
    Hierarchy { column: String, message: String },
    /// No node of the generalisation lattice satisfies the privacy models
    /// within the allowed suppression.
    #[error("no generalisation satisfies the privacy models within the suppression limit of {max_suppression} ({detail}); raise --max-suppression, lower k/l or raise t, add hierarchy levels, or use fewer quasi-identifiers")]
    Unsatisfiable {
        max_suppression: f64,
        detail: String,
    },
    /// Decryption of a reversible pseudonym failed (wrong key or a tampered value).
    #[error("{path}:{line}:{column}: cannot decrypt pseudonym (wrong key file, or the value was altered)")]
    Decrypt {
        path: String,
        line: u64,
        column: usize,
    },
}

impl DeidError {
    /// Exit code for the command line: 3 when the models cannot be met, 2 for
    /// everything the user must fix in their input or configuration.
    pub fn exit_code(&self) -> u8 {
        match self {
            DeidError::Unsatisfiable { .. } => 3,
            _ => 2,
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DeidError>;
