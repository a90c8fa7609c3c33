//! The six templates: they parse, validate with placeholder keys, and their
//! SQL and schemas are exactly the reference analyses' files (an output
//! released with differential privacy, `WITH PRIVACY`, differs from the
//! exact reference query: its tables add the person column it caps).

use std::collections::BTreeSet;
use std::path::PathBuf;

use kuvert_gov::spec::{AnalysisSpec, Validation};
use kuvert_gov::templates;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn there_is_one_template_per_reference_analysis() {
    let dirs: BTreeSet<String> = std::fs::read_dir(examples())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let names: BTreeSet<String> = templates::names().iter().map(|s| s.to_string()).collect();
    assert_eq!(dirs, names);
    // The embedded text is the repository's file.
    for name in templates::names() {
        let file =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../templates/{name}.toml"));
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            templates::get(name).unwrap()
        );
    }
    assert!(templates::get("nope").is_err());
}

#[test]
fn templates_validate_with_placeholders_only() {
    for name in templates::names() {
        let text = templates::get(name).unwrap();
        let spec = templates::spec(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(spec.name, name);
        // Placeholder keys are refused where real keys are needed.
        let e = AnalysisSpec::parse(text, name, Validation::Strict)
            .unwrap_err()
            .to_string();
        assert!(e.contains("placeholder"), "{name}: {e}");
        // Legal references are marked as examples to check.
        assert!(
            spec.legal_basis
                .reference
                .contains("to be checked by the agency's lawyer"),
            "{name}"
        );
        // Every output says in words what it tells its reader.
        for r in &spec.recipients {
            for o in &r.outputs {
                assert!(
                    o.description.as_deref().is_some_and(|d| d.len() > 20),
                    "{name}/{}",
                    o.name
                );
            }
        }
        // And the header says what each party learns.
        assert!(text.contains("What each party learns"), "{name}");
    }
}

#[test]
fn template_sql_and_schemas_are_the_examples_files() {
    for name in templates::names() {
        let spec = templates::spec(name).unwrap();
        let dir = examples().join(name);
        let mut sql_files = BTreeSet::new();
        let mut schema_files = BTreeSet::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            match p.extension().and_then(|x| x.to_str()) {
                Some("sql") => {
                    sql_files.insert(stem);
                }
                Some("schema") => {
                    schema_files.insert(stem);
                }
                _ => {}
            }
        }
        let mut outputs = BTreeSet::new();
        // The person column of the template's WITH PRIVACY outputs (the
        // examples hold the exact, noise-free query over the same tables
        // without it).
        let mut person: Option<String> = None;
        for r in &spec.recipients {
            for o in &r.outputs {
                let want = std::fs::read_to_string(dir.join(format!("{}.sql", o.name)))
                    .unwrap_or_else(|_| panic!("{name}: no examples file for output {}", o.name));
                if let Some(at) = o.sql.find("WITH PRIVACY") {
                    assert!(
                        spec.dp.iter().any(|d| d.output == o.name),
                        "{name}/{}: WITH PRIVACY without a [[dp]] entry",
                        o.name
                    );
                    let p = o.sql[at..]
                        .split("person = ")
                        .nth(1)
                        .and_then(|r| r.split([',', ')']).next())
                        .unwrap_or_else(|| panic!("{name}/{}: no person", o.name))
                        .trim()
                        .to_string();
                    assert!(person.as_ref().is_none_or(|q| *q == p), "{name}");
                    person = Some(p);
                } else {
                    assert_eq!(o.sql.trim(), want.trim(), "{name}/{}", o.name);
                }
                outputs.insert(o.name.clone());
            }
        }
        assert_eq!(outputs, sql_files, "{name}: outputs vs .sql files");
        let mut tables = BTreeSet::new();
        for c in &spec.contributors {
            for t in &c.tables {
                let want = std::fs::read_to_string(dir.join(format!("{}.schema", t.name))).unwrap();
                let want = kuvert_data::Schema::parse_compact(want.trim()).unwrap();
                let have = match &person {
                    Some(p) => t
                        .schema
                        .trim()
                        .split(',')
                        .filter(|c| c.split(':').next() != Some(p.as_str()))
                        .collect::<Vec<_>>()
                        .join(","),
                    None => t.schema.trim().to_string(),
                };
                let have = kuvert_data::Schema::parse_compact(&have).unwrap();
                assert_eq!(have, want, "{name}/{}", t.name);
                tables.insert(t.name.clone());
            }
        }
        assert_eq!(tables, schema_files, "{name}: tables vs .schema files");
    }
}

#[test]
fn template_ids_are_distinct() {
    let ids: BTreeSet<_> = templates::names()
        .iter()
        .map(|n| templates::spec(n).unwrap().id())
        .collect();
    assert_eq!(ids.len(), 6);
}
