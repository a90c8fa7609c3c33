//! Column kinds and the schema configuration (`--schema synth.toml`).
//!
//! ```toml
//! max_bins = 32                 # default number of bins of integer and date columns
//!
//! [columns.age]
//! kind = "integer"
//! bounds = [17, 90]             # public bounds; values outside are clamped
//! bins = 16
//!
//! [columns.sex]
//! kind = "categorical"
//! categories = ["F", "M"]       # public domain; other values are an error
//!
//! [columns.visit_date]
//! kind = "date"                 # YYYY-MM-DD
//! bounds = ["2020-01-01", "2024-12-31"]
//!
//! [columns.pnr]
//! kind = "idnr"                 # Swedish personnummer / samordningsnummer
//! birth_bounds = ["1930-01-01", "2008-12-31"]
//!
//! [columns.free_text]
//! kind = "drop"                 # left out of the synthetic data
//! ```
//!
//! A column that the configuration does not name gets its kind from the
//! *format* of its values ([`infer_kind`]); its domain (categories, bounds)
//! is then estimated with differential privacy and charged to the budget.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{config, Result, SynthError};

/// The default number of bins of an integer, date or birth-date attribute.
pub const DEFAULT_MAX_BINS: usize = 32;

/// How one column is modelled, as declared (or inferred).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ColumnSpec {
    /// A categorical column. Without `categories` the domain is estimated
    /// with DP (noisy counts with a threshold; needs δ > 0).
    Categorical {
        /// The public list of values, if declared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        categories: Option<Vec<String>>,
    },
    /// Integers, binned into at most `bins` equal-width bins over `bounds`
    /// (declared, or estimated with DP).
    Integer {
        /// Inclusive public bounds `[lo, hi]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bounds: Option<[i64; 2]>,
        /// Number of bins (default `max_bins`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bins: Option<usize>,
    },
    /// Dates `YYYY-MM-DD`, binned by days.
    Date {
        /// Inclusive public bounds `["YYYY-MM-DD", "YYYY-MM-DD"]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bounds: Option<[String; 2]>,
        /// Number of bins (default `max_bins`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bins: Option<usize>,
    },
    /// A Swedish identity number: modelled as birth date (binned) and sex,
    /// never as the number itself; synthetic numbers are generated.
    Idnr {
        /// Inclusive public bounds of the birth dates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        birth_bounds: Option<[String; 2]>,
        /// Number of birth-date bins (default `max_bins`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bins: Option<usize>,
    },
    /// Left out of the synthetic data.
    Drop,
}

impl ColumnSpec {
    /// A short name of the kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ColumnSpec::Categorical { .. } => "categorical",
            ColumnSpec::Integer { .. } => "integer",
            ColumnSpec::Date { .. } => "date",
            ColumnSpec::Idnr { .. } => "idnr",
            ColumnSpec::Drop => "drop",
        }
    }
}

/// The schema configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// Default bins of integer and date columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bins: Option<usize>,
    /// Per column, by header name.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// The file and its text, for error positions (not part of the format).
    #[serde(skip)]
    pub source: Option<(String, String)>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

impl SchemaConfig {
    /// Parses a configuration; errors carry `file:line:column`.
    pub fn parse(text: &str, path: &str) -> Result<SchemaConfig> {
        let cfg: SchemaConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            SynthError::BadValue {
                path: path.to_string(),
                line: line as u64,
                column,
                message: format!(
                    "{} (kinds: categorical, integer, date, idnr, drop; see docs/synth.md)",
                    e.message()
                ),
            }
        })?;
        if let Some(b) = cfg.max_bins {
            check_bins(b, path, "max_bins")?;
        }
        for (name, spec) in &cfg.columns {
            let bins = match spec {
                ColumnSpec::Integer { bins, .. }
                | ColumnSpec::Date { bins, .. }
                | ColumnSpec::Idnr { bins, .. } => *bins,
                _ => None,
            };
            if let Some(b) = bins {
                check_bins(b, path, name)?;
            }
            let bad_bounds = |what: &str| {
                let (line, column) = find_column(text, name);
                SynthError::BadValue {
                    path: path.to_string(),
                    line,
                    column,
                    message: format!("column `{name}`: {what}"),
                }
            };
            match spec {
                ColumnSpec::Integer {
                    bounds: Some([lo, hi]),
                    ..
                } if lo > hi => return Err(bad_bounds("bounds must be [lo, hi] with lo ≤ hi")),
                ColumnSpec::Date {
                    bounds: Some(b), ..
                }
                | ColumnSpec::Idnr {
                    birth_bounds: Some(b),
                    ..
                } => {
                    let lo = crate::domain::parse_date(&b[0]);
                    let hi = crate::domain::parse_date(&b[1]);
                    match (lo, hi) {
                        (Some(l), Some(h)) if l <= h => {}
                        _ => {
                            return Err(bad_bounds(
                                "bounds must be [\"YYYY-MM-DD\", \"YYYY-MM-DD\"], earliest first",
                            ))
                        }
                    }
                }
                ColumnSpec::Categorical {
                    categories: Some(c),
                } if c.is_empty() => return Err(bad_bounds("categories must not be empty")),
                _ => {}
            }
        }
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<SchemaConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| SynthError::Io {
            path: path.display().to_string(),
            cause: e,
        })?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        cfg.source = Some((path.display().to_string(), text));
        Ok(cfg)
    }

    /// Checks that every configured column is in `headers`; an unknown one
    /// is an error at its position in the file.
    pub fn check_columns(&self, headers: &[String]) -> Result<()> {
        for name in self.columns.keys() {
            if !headers.iter().any(|h| h == name) {
                let (path, (line, column)) = match &self.source {
                    Some((p, t)) => (p.clone(), find_column(t, name)),
                    None => ("<schema>".to_string(), (0, 0)),
                };
                return Err(SynthError::BadValue {
                    path,
                    line,
                    column,
                    message: format!(
                        "the schema names column `{name}`, which the input does not have \
                         (its columns are: {}); fix the name or remove the section",
                        headers.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

fn check_bins(b: usize, path: &str, what: &str) -> Result<()> {
    if !(1..=4096).contains(&b) {
        return Err(config(format!(
            "{path}: `{what}`: bins must be between 1 and 4096, got {b}"
        )));
    }
    Ok(())
}

/// Line and column of `[columns.NAME]` (or `NAME` under `[columns]`) in the text.
pub(crate) fn find_column(text: &str, name: &str) -> (u64, usize) {
    for pat in [
        format!("[columns.{name}]"),
        format!("[columns.\"{name}\"]"),
        format!("{name} ="),
        format!("{name}="),
    ] {
        if let Some(off) = text.find(&pat) {
            let (l, c) = line_col(text, off);
            return (l as u64, c);
        }
    }
    (0, 0)
}

/// The kind of a column that the configuration does not declare, from the
/// *format* of its values only (never their frequencies): every non-empty
/// value a valid identity number → idnr; every non-empty value a
/// `YYYY-MM-DD` date → date; every non-empty value an integer → integer;
/// otherwise categorical. Bounds and categories are left undeclared, to
/// be estimated with DP.
///
/// Leakage note: the kind is a function of the data (one odd value turns an
/// integer column categorical). Declare kinds in the schema to make the
/// release independent of it.
pub fn infer_kind(dict: &[String]) -> ColumnSpec {
    let nonempty: Vec<&str> = dict
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if nonempty.is_empty() {
        return ColumnSpec::Categorical { categories: None };
    }
    if nonempty
        .iter()
        .all(|s| kuvert_deid::idnr::looks_like(s) && crate::domain::parse_idnr(s).is_ok())
    {
        return ColumnSpec::Idnr {
            birth_bounds: None,
            bins: None,
        };
    }
    if nonempty
        .iter()
        .all(|s| s.len() == 10 && crate::domain::parse_date(s).is_some())
    {
        return ColumnSpec::Date {
            bounds: None,
            bins: None,
        };
    }
    if nonempty.iter().all(|s| s.parse::<i64>().is_ok()) {
        return ColumnSpec::Integer {
            bounds: None,
            bins: None,
        };
    }
    ColumnSpec::Categorical { categories: None }
}
