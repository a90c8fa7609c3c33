//! DPIA text: the content a legal officer needs, and HTML that is valid,
//! accessible and self-contained.

mod common;

use kuvert_gov::approval::approve_spec;
use kuvert_gov::audit::{AuditEvent, AuditLog};
use kuvert_gov::spec::{DpOutput, LeakageOptIn, Validation};
use kuvert_gov::{describe, AnalysisSpec, Format};

/// A strict little checker: every tag is known, closed and nested
/// properly; attributes are quoted; text has no raw `<` or `>`.
fn check_html(html: &str) {
    const VOID: &[&str] = &["meta"];
    const KNOWN: &[&str] = &[
        "html", "head", "meta", "title", "body", "main", "h1", "h2", "h3", "p", "ul", "li",
        "table", "thead", "tbody", "tr", "th", "td",
    ];
    assert!(html.starts_with("<!DOCTYPE html>\n"));
    let body = &html["<!DOCTYPE html>\n".len()..];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert!(!text.contains('>'), "raw '>' in text: {text:?}");
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            let name = tag.split_whitespace().next().unwrap();
            assert!(KNOWN.contains(&name), "unexpected element <{name}>");
            // Attributes: name="value" pairs.
            let attrs = tag[name.len()..].trim();
            let mut a = attrs;
            while !a.is_empty() {
                let eq = a
                    .find("=\"")
                    .unwrap_or_else(|| panic!("unquoted attribute in <{tag}>"));
                let end = a[eq + 2..].find('"').unwrap() + eq + 2;
                a = a[end + 1..].trim_start();
            }
            if !VOID.contains(&name) {
                stack.push(name.to_string());
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert!(rest.trim().is_empty());
}

fn full_spec(p: &common::Parties) -> AnalysisSpec {
    let mut s = common::spec(p);
    s.purpose = "Find <script>alert(1)</script> & \"overlaps\"".into();
    s.leakage_opt_ins.push(LeakageOptIn {
        name: "join-equality-pattern".into(),
        learned_by: vec!["nodes".into(), "kontroll".into()],
        statement: "which pseudonymised keys are equal".into(),
    });
    s.dp.push(DpOutput {
        output: "persons".into(),
        epsilon: 0.5,
        delta: 0.0,
    });
    s.validate(Validation::Strict).unwrap();
    s
}

#[test]
fn markdown_has_every_section_and_fact() {
    let p = common::parties();
    let spec = common::spec(&p);
    let id = spec.id();
    let approvals = vec![approve_spec(&spec, &id, &p.fk).unwrap()];
    let md = describe(&spec, &approvals, &[], Format::Markdown);
    for must in [
        "# Data protection description: overlapping-benefits",
        "## Purpose",
        "## Legal basis",
        "Lag (2024:307)",
        "## Controllers and processors",
        "its controller is Försäkringskassan",
        "processor: it never holds keys, shares or results",
        "## Inputs",
        "| Försäkringskassan | fk | pnr (idnr), forman (text), fran (date), till (date), belopp (int) |",
        "## What each party learns",
        "Each node learns the number of rows of each input table and nothing else.",
        "Output \"ids\": the identity numbers",
        "### Leakage opt-ins",
        "None. The parties learn only the declared outputs and the sizes of the inputs.",
        "## Differential privacy",
        "outputs are exact",
        "## Retention and deletion",
        "deleted on every node when the job ends",
        "30 days after the job ends",
        "## Approvals",
        "Not every contributor has approved",
        "| fk | approved (signature verified) |",
        "| kommun | not yet approved |",
        "## Audit trail",
        "No audit records about this analysis yet.",
        &id.to_hex(),
    ] {
        assert!(md.contains(must), "missing {must:?} in\n{md}");
    }
    // With both approvals the text says the nodes may accept input.
    let approvals = vec![
        approve_spec(&spec, &id, &p.fk).unwrap(),
        approve_spec(&spec, &id, &p.kommun).unwrap(),
    ];
    let md = describe(&spec, &approvals, &[], Format::Markdown);
    assert!(md.contains("Every contributor has approved this exact analysis id"));
}

#[test]
fn leakage_dp_and_audit_trail_are_described() {
    let p = common::parties();
    let spec = full_spec(&p);
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(&dir.path().join("audit-node0.log")).unwrap();
    log.append(AuditEvent::shares_received(
        0,
        spec.id(),
        "job-7",
        "fk",
        "fk",
        1234,
        5,
    ))
    .unwrap();
    log.append(AuditEvent::new("node0", "other").analysis(kuvert_gov::AnalysisId([0; 32])))
        .unwrap();
    let recs = kuvert_gov::verify_file(&dir.path().join("audit-node0.log")).unwrap();
    let md = describe(&spec, &[], &recs, Format::Markdown);
    for must in [
        "except the leakage opted into below (join-equality-pattern)",
        "| join-equality-pattern | nodes, kontroll | which pseudonymised keys are equal |",
        "Opted-in leakage \"join-equality-pattern\": which pseudonymised keys are equal",
        "| persons | 0.5 | 0 |",
        "Outputs without noise (exact): ids.",
        "1 records about this analysis",
        "| shares_received | job-7 | columns: 5; contributor: fk; rows: 1234; table: fk |",
    ] {
        assert!(md.contains(must), "missing {must:?} in\n{md}");
    }
    assert!(
        !md.contains("| other |"),
        "records of other analyses are left out"
    );
}

#[test]
fn html_is_valid_accessible_and_self_contained() {
    let p = common::parties();
    let spec = full_spec(&p);
    let html = describe(&spec, &[], &[], Format::Html);
    check_html(&html);
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("<title>Data protection description: overlapping-benefits</title>"));
    assert_eq!(html.matches("<h1>").count(), 1);
    assert!(html.contains("<th scope=\"col\">Contributor</th>"));
    // User text is escaped, never markup.
    assert!(html.contains("Find &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;overlaps&quot;"));
    for banned in [
        "<script", "<link", "<style", "src=", "href=", "http://", "https://", "<img",
    ] {
        assert!(!html.contains(banned), "{banned}");
    }
    // Every template renders to valid HTML too.
    for name in kuvert_gov::templates::names() {
        check_html(&describe(
            &kuvert_gov::templates::spec(name).unwrap(),
            &[],
            &[],
            Format::Html,
        ));
    }
}

#[test]
fn the_html_checker_can_fail() {
    for bad in [
        "<!DOCTYPE html>\n<html><p>x</html>",
        "<!DOCTYPE html>\n<html><script>x</script></html>",
        "<!DOCTYPE html>\n<html><p a=b>x</p></html>",
        "<!DOCTYPE html>\n<html><p>a > b</p></html>",
    ] {
        assert!(
            std::panic::catch_unwind(|| check_html(bad)).is_err(),
            "{bad}"
        );
    }
}
