//! The `deid.toml` configuration. Every key is optional; command-line flags
//! override it. See `docs/deid.md` for a commented example.

use crate::error::{DeidError, Result};
use crate::hierarchy::HierarchySpec;
use crate::models::Models;
use crate::pseudo::Method;
use crate::search::LossMetric;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What happens to records that the privacy models suppress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SuppressedRows {
    /// Leave them out of the output (default).
    #[default]
    Remove,
    /// Keep them with every quasi-identifier set to `*` (ARX's convention).
    Mask,
}

/// Whether a pseudonymised column holds Swedish identity numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdnrMode {
    /// Yes if the first non-empty value looks like one.
    #[default]
    Auto,
    /// Always validate and normalise.
    Yes,
    /// Never.
    No,
}

/// One column to pseudonymise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudoSpec {
    /// Column name.
    pub column: String,
    /// `hmac` (irreversible) or `siv` (reversible).
    #[serde(default)]
    pub method: Method,
    /// Domain separation string bound into the pseudonym.
    #[serde(default)]
    pub domain: String,
    /// Validate and normalise identity numbers first.
    #[serde(default)]
    pub idnr: IdnrMode,
}

/// Cell suppression rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellRule {
    /// Column name.
    pub column: String,
    /// Cells with one of these values become `*`.
    #[serde(default)]
    pub values: Vec<String>,
    /// Cells whose value occurs in fewer than this many rows become `*`.
    #[serde(default)]
    pub min_count: u64,
}

/// Record suppression rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRule {
    /// Column name.
    pub column: String,
    /// Records with one of these values are removed.
    pub values: Vec<String>,
}

/// Noise distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Laplace with scale b.
    #[default]
    Laplace,
    /// Gaussian with standard deviation `scale`.
    Gaussian,
}

/// Noise addition on a numeric column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseSpec {
    /// Column name.
    pub column: String,
    /// Distribution.
    #[serde(default)]
    pub distribution: Distribution,
    /// Scale (Laplace b, Gaussian sigma).
    pub scale: f64,
    /// Decimals to round to (default 0).
    #[serde(default)]
    pub decimals: u32,
}

/// Permutation (swapping) within a column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapSpec {
    /// Column name.
    pub column: String,
    /// Fraction of rows whose values are permuted among themselves (1 = whole column).
    #[serde(default = "one")]
    pub fraction: f64,
}

fn one() -> f64 {
    1.0
}

fn budget() -> f64 {
    40.0
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Quasi-identifier columns.
    #[serde(default)]
    pub quasi: Vec<String>,
    /// Sensitive column (for l-diversity and t-closeness).
    #[serde(default)]
    pub sensitive: Option<String>,
    /// Largest fraction of records the search may suppress.
    #[serde(default)]
    pub max_suppression: f64,
    /// Loss measure the search minimises.
    #[serde(default)]
    pub loss: LossMetric,
    /// What to do with suppressed records.
    #[serde(default)]
    pub suppressed_rows: SuppressedRows,
    /// Columns to remove entirely.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Key file for pseudonymisation.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Seconds after which the search stops proving optimality and returns the best node found.
    #[serde(default = "budget")]
    pub max_search_seconds: f64,
    /// Seed for the randomisation; only for reproducible tests, never for real releases.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Privacy models.
    #[serde(default)]
    pub models: Models,
    /// Hierarchies by column.
    #[serde(default)]
    pub hierarchy: BTreeMap<String, HierarchySpec>,
    /// Columns to pseudonymise.
    #[serde(default)]
    pub pseudonymize: Vec<PseudoSpec>,
    /// Cell suppression rules.
    #[serde(default)]
    pub suppress_cells: Vec<CellRule>,
    /// Record suppression rules.
    #[serde(default)]
    pub suppress_records: Vec<RecordRule>,
    /// Noise addition.
    #[serde(default)]
    pub noise: Vec<NoiseSpec>,
    /// Swapping.
    #[serde(default)]
    pub swap: Vec<SwapSpec>,
    /// Directory that relative paths in the config are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            quasi: Vec::new(),
            sensitive: None,
            max_suppression: 0.0,
            loss: LossMetric::default(),
            suppressed_rows: SuppressedRows::default(),
            drop: Vec::new(),
            key_file: None,
            max_search_seconds: budget(),
            seed: None,
            models: Models::default(),
            hierarchy: BTreeMap::new(),
            pseudonymize: Vec::new(),
            suppress_cells: Vec::new(),
            suppress_records: Vec::new(),
            noise: Vec::new(),
            swap: Vec::new(),
            base_dir: PathBuf::new(),
        }
    }
}

impl Config {
    /// Read a TOML configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| DeidError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                    (line, col)
                })
                .unwrap_or((0, 0));
            DeidError::Config(format!("{}:{line}:{col}: {}", path.display(), e.message()))
        })?;
        c.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(k) = &c.key_file {
            if k.is_relative() {
                c.key_file = Some(c.base_dir.join(k));
            }
        }
        Ok(c)
    }
}
