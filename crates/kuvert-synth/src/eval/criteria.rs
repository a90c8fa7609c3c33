//! Acceptance criteria (`ACCEPT.toml`): thresholds the synthetic data must
//! meet before the controller releases it, in the manner of Israel's
//! DP birth-registry release. Every key is optional; an absent key is not
//! checked. See docs/synth-eval.md for the keys and an example.

use crate::eval::columns::{Binning, ColumnKind};
use crate::eval::{EvalError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Per-column settings in `[columns.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnCriteria {
    /// Kind override: `categorical`, `numeric`, `date`, `identity` or `ignore`.
    pub kind: Option<ColumnKind>,
    /// This column's own maximum 1-way TVD (instead of `max_tvd_1way`).
    pub max_tvd_1way: Option<f64>,
    /// This column's own minimum coverage (category or range).
    pub min_coverage: Option<f64>,
}

/// The acceptance criteria and the evaluation settings that a configuration can carry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// Largest 1-way TVD over the columns.
    pub max_tvd_1way: Option<f64>,
    /// Largest mean 1-way TVD.
    pub max_mean_tvd_1way: Option<f64>,
    /// Largest 2-way TVD over the pairs of columns.
    pub max_tvd_2way: Option<f64>,
    /// Largest mean 2-way TVD.
    pub max_mean_tvd_2way: Option<f64>,
    /// Largest absolute association difference over the pairs.
    pub max_corr_diff: Option<f64>,
    /// Largest mean absolute association difference.
    pub max_mean_corr_diff: Option<f64>,
    /// Smallest ML efficacy: macro-F1 trained on synthetic over macro-F1 trained on real.
    pub min_ml_efficacy: Option<f64>,
    /// Smallest accuracy ratio (synthetic-trained over real-trained).
    pub min_ml_accuracy_ratio: Option<f64>,
    /// Smallest share of real categories present in the synthetic data (any categorical column).
    pub min_category_coverage: Option<f64>,
    /// Smallest share of the real range covered by the synthetic range (any numeric/date column).
    pub min_range_coverage: Option<f64>,
    /// Largest share of synthetic identity numbers equal to a real one (checked at 0 when absent).
    pub max_identity_copies: Option<f64>,
    /// Smallest share of synthetic identity numbers that are valid.
    pub min_identity_validity: Option<f64>,
    /// Largest share of real (training) records with an exact copy in the synthetic data.
    pub max_exact_copies: Option<f64>,
    /// Largest singling-out risk (upper end of its 95 % interval).
    pub max_singling_out_risk: Option<f64>,
    /// Largest linkability risk (upper end of its interval).
    pub max_linkability_risk: Option<f64>,
    /// Largest inference risk (upper end of its interval).
    pub max_inference_risk: Option<f64>,
    /// Largest membership advantage `2·AUC − 1` (upper end of its interval).
    pub max_membership_advantage: Option<f64>,
    /// Target column of the ML efficacy test.
    pub target: Option<String>,
    /// Columns the attacker knows.
    pub quasi: Option<Vec<String>>,
    /// Column the attacker wants to learn.
    pub sensitive: Option<String>,
    /// Bins for numeric and date columns.
    pub bins: Option<usize>,
    /// `quantile` (default) or `equal-width`.
    pub binning: Option<Binning>,
    /// Attacks per test (0 skips the privacy tests).
    pub attacks: Option<usize>,
    /// Seed of the attacks and of the classifier.
    pub seed: Option<u64>,
    /// Per-column settings.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnCriteria>,
    /// Where the criteria came from and its text (for error locations).
    #[serde(skip)]
    pub origin: Option<(String, String)>,
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|p| offset - p).unwrap_or(offset + 1);
    (line, col)
}

impl Criteria {
    /// Parse TOML text; errors name `path:line:column`.
    pub fn from_toml_str(text: &str, path: &str) -> Result<Criteria> {
        let mut c: Criteria = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            EvalError::Config {
                path: path.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        c.origin = Some((path.to_string(), text.to_string()));
        c.validate()?;
        Ok(c)
    }

    /// Read an `ACCEPT.toml`.
    pub fn from_toml_file(path: &Path) -> Result<Criteria> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            EvalError::Invalid(format!(
                "{}: {e} (check the path and permissions)",
                path.display()
            ))
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Whether any criterion is set.
    pub fn is_empty(&self) -> bool {
        self.thresholds().iter().all(|t| t.1.is_none())
            && self
                .columns
                .values()
                .all(|c| c.max_tvd_1way.is_none() && c.min_coverage.is_none())
    }

    /// The global thresholds by key.
    pub fn thresholds(&self) -> Vec<(&'static str, Option<f64>)> {
        vec![
            ("max_tvd_1way", self.max_tvd_1way),
            ("max_mean_tvd_1way", self.max_mean_tvd_1way),
            ("max_tvd_2way", self.max_tvd_2way),
            ("max_mean_tvd_2way", self.max_mean_tvd_2way),
            ("max_corr_diff", self.max_corr_diff),
            ("max_mean_corr_diff", self.max_mean_corr_diff),
            ("min_ml_efficacy", self.min_ml_efficacy),
            ("min_ml_accuracy_ratio", self.min_ml_accuracy_ratio),
            ("min_category_coverage", self.min_category_coverage),
            ("min_range_coverage", self.min_range_coverage),
            ("max_identity_copies", self.max_identity_copies),
            ("min_identity_validity", self.min_identity_validity),
            ("max_exact_copies", self.max_exact_copies),
            ("max_singling_out_risk", self.max_singling_out_risk),
            ("max_linkability_risk", self.max_linkability_risk),
            ("max_inference_risk", self.max_inference_risk),
            ("max_membership_advantage", self.max_membership_advantage),
        ]
    }

    /// `path:line:column: ` of a key in the source text, or `path: ` (or
    /// `criteria: ` when the criteria were built in code).
    pub fn locate(&self, key: &str) -> String {
        let Some((path, text)) = &self.origin else {
            return "criteria: ".to_string();
        };
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let t = line.trim_start();
            let ws = line.len() - t.len();
            let bare = t.trim_start_matches('[').trim_end();
            let starts = t
                .strip_prefix(key)
                .map(|rest| {
                    let r = rest.trim_start();
                    r.starts_with('=') || r.starts_with(']') || r.starts_with('.')
                })
                .unwrap_or(false);
            let table = bare.starts_with(&format!("columns.{key}"))
                || bare.starts_with(&format!("columns.\"{key}\""));
            if starts || table {
                let (l, c) = line_col(text, offset + ws);
                return format!("{path}:{l}:{c}: ");
            }
            offset += line.len();
        }
        format!("{path}: ")
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: String| EvalError::Invalid(format!("{}{msg}", self.locate(key)));
        for (k, v) in self.thresholds() {
            let Some(v) = v else { continue };
            let hi = match k {
                "max_corr_diff" | "max_mean_corr_diff" => 2.0,
                "min_ml_efficacy" | "min_ml_accuracy_ratio" => f64::INFINITY,
                _ => 1.0,
            };
            if !(v >= 0.0 && v <= hi) {
                return Err(bad(
                    k,
                    format!(
                        "`{k}` = {v} is out of range; it must be between 0 and {}",
                        if hi.is_finite() {
                            hi.to_string()
                        } else {
                            "any positive number".to_string()
                        }
                    ),
                ));
            }
        }
        for (name, c) in &self.columns {
            for (k, v) in [
                ("max_tvd_1way", c.max_tvd_1way),
                ("min_coverage", c.min_coverage),
            ] {
                if let Some(v) = v {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(bad(
                            name,
                            format!("[columns.{name}] `{k}` = {v} must be between 0 and 1"),
                        ));
                    }
                }
            }
        }
        if self.bins == Some(0) {
            return Err(bad("bins", "`bins` must be at least 1".into()));
        }
        if matches!(&self.quasi, Some(q) if q.is_empty()) {
            return Err(bad(
                "quasi",
                "`quasi` is empty; name the columns an attacker knows, or leave it out for all columns".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_columns() {
        let c = Criteria::from_toml_str(
            "max_tvd_1way = 0.05\ntarget = \"y\"\nquasi = [\"a\", \"b\"]\n\n[columns.a]\nkind = \"numeric\"\nmax_tvd_1way = 0.1\n",
            "accept.toml",
        )
        .unwrap();
        assert_eq!(c.max_tvd_1way, Some(0.05));
        assert_eq!(c.columns["a"].kind, Some(ColumnKind::Numeric));
        assert!(!c.is_empty());
        assert_eq!(c.locate("a"), "accept.toml:5:1: ");
        assert_eq!(c.locate("target"), "accept.toml:2:1: ");
        assert!(Criteria::default().is_empty());
    }

    #[test]
    fn line_and_column_of_errors() {
        let e = Criteria::from_toml_str("max_tvd_1way = 0.05\nmax_tvd_2wya = 0.1\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:2:1:"), "{e}");
        assert!(e.contains("max_tvd_2wya"), "{e}");
        let e = Criteria::from_toml_str("max_tvd_1way = \"high\"\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:1:16:"), "{e}");
        let e = Criteria::from_toml_str("\n\nmax_tvd_1way = 1.5\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:3:1:"), "{e}");
        let e = Criteria::from_toml_str("[columns.x]\nkind = \"colour\"\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:2:8:"), "{e}");
    }
}
