//! The six reference analyses as ready-made specs (`templates/<name>.toml`
//! in the repository, embedded here). Their keys are placeholders
//! (`placeholder:<id>`) and their legal references are examples that the
//! agencies' lawyers must check.

use crate::error::GovError;
use crate::spec::{AnalysisSpec, Validation};

macro_rules! t {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../templates/", $name, ".toml")),
        )
    };
}

/// `(name, TOML text)` of every template, in the design brief's order.
pub const TEMPLATES: &[(&str, &str)] = &[
    t!("overlapping-benefits"),
    t!("non-take-up"),
    t!("double-registration"),
    t!("opt-out"),
    t!("parallel-assistance"),
    t!("quality-indicators"),
];

/// The names of the templates.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
}

/// The TOML text of template `name`.
pub fn get(name: &str) -> Result<&'static str, GovError> {
    TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| GovError::UnknownTemplate {
            name: name.to_string(),
            known: names().join(", "),
        })
}

/// Template `name`, parsed and validated (placeholder keys allowed).
pub fn spec(name: &str) -> Result<AnalysisSpec, GovError> {
    AnalysisSpec::parse(
        get(name)?,
        &format!("templates/{name}.toml"),
        Validation::AllowPlaceholders,
    )
}
