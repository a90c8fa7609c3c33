//! The six reference analyses as ready-made specs (`templates/<name>.toml`
//! in the repository, embedded here). Their keys are placeholders
//! (`placeholder:<id>`) and their legal references are examples that the
//! agencies' lawyers must check.

use crate::error::GovError;
use crate::spec::{AnalysisSpec, SpecNode, Validation};

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

/// Replace the `[[nodes]]` of a spec's TOML text with `nodes` (comments and
/// layout of everything else kept). This is how a filled-in template gets
/// the federation's three nodes (`kuvert federation nodes`, `kuvert demo`).
pub fn set_nodes(toml_text: &str, nodes: &[SpecNode]) -> Result<String, GovError> {
    let mut doc: toml_edit::DocumentMut =
        toml_text
            .parse()
            .map_err(|e: toml_edit::TomlError| GovError::Invalid {
                at: String::new(),
                field: "nodes".into(),
                message: format!("the spec does not parse as TOML: {e}"),
            })?;
    let mut arr = toml_edit::ArrayOfTables::new();
    for n in nodes {
        let mut t = toml_edit::Table::new();
        t["operator"] = toml_edit::value(n.operator.as_str());
        t["fingerprint"] = toml_edit::value(n.fingerprint.as_str());
        if let Some(e) = &n.endpoint {
            t["endpoint"] = toml_edit::value(e.as_str());
        }
        arr.push(t);
    }
    doc["nodes"] = toml_edit::Item::ArrayOfTables(arr);
    Ok(doc.to_string())
}

#[cfg(test)]
mod node_tests {
    use super::*;

    #[test]
    fn set_nodes_fills_a_template_that_then_validates_the_nodes() {
        let fp = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
        let nodes: Vec<SpecNode> = ['a', 'b', 'c']
            .iter()
            .enumerate()
            .map(|(i, c)| SpecNode {
                operator: format!("Operator {i}"),
                fingerprint: fp(*c),
                endpoint: (i == 1).then(|| "node1.example:7100".to_string()),
            })
            .collect();
        for name in names() {
            let text = set_nodes(get(name).unwrap(), &nodes).unwrap();
            let spec = AnalysisSpec::parse(&text, name, Validation::AllowPlaceholders).unwrap();
            assert_eq!(spec.nodes, nodes, "{name}");
            // The nodes are part of the id: another node, another analysis.
            let mut other = nodes.clone();
            other[2].fingerprint = fp('d');
            let text2 = set_nodes(&text, &other).unwrap();
            let spec2 = AnalysisSpec::parse(&text2, name, Validation::AllowPlaceholders).unwrap();
            assert_ne!(spec.id(), spec2.id(), "{name}");
        }
    }

    #[test]
    fn nodes_are_checked() {
        let text = get("overlapping-benefits").unwrap();
        let base = spec("overlapping-benefits").unwrap();
        assert_eq!(base.nodes.len(), 3);
        let fp = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
        let mk = |fps: &[String]| -> Vec<SpecNode> {
            fps.iter()
                .map(|f| SpecNode {
                    operator: "Op".into(),
                    fingerprint: f.clone(),
                    endpoint: None,
                })
                .collect()
        };
        let check = |nodes: Vec<SpecNode>| {
            let t = set_nodes(text, &nodes).unwrap();
            AnalysisSpec::parse(&t, "t", Validation::AllowPlaceholders)
                .unwrap_err()
                .to_string()
        };
        let e = check(mk(&[fp('a'), fp('b')]));
        assert!(e.contains("exactly three"), "{e}");
        let e = check(mk(&[fp('a'), fp('a'), fp('b')]));
        assert!(e.contains("twice"), "{e}");
        let e = check(mk(&[fp('a'), "ABC".into(), fp('b')]));
        assert!(e.contains("not a node key fingerprint"), "{e}");
        let e = check(mk(&[fp('a'), fp('A'), fp('b')]));
        assert!(e.contains("not a node key fingerprint"), "{e}");
        // Placeholders pass only while a template is being filled in.
        let e = AnalysisSpec::parse(text, "t", Validation::Strict)
            .unwrap_err()
            .to_string();
        assert!(!e.is_empty());
    }
}
