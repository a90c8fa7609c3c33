//! Analysis specs: parsing, validation errors with locations, the
//! canonical form and the id.

mod common;

use kuvert_gov::spec::{AnalysisSpec, Deadline, DpOutput, LeakageOptIn, Validation};
use kuvert_gov::GovError;
use sha2::Digest;

fn err(text: &str) -> String {
    match AnalysisSpec::parse(text, "s.toml", Validation::Strict) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A tiny spec written out by hand, with its canonical form written out by
/// hand too: the documented encoding, not whatever the code does.
const TINY: &str = r#"
name = "t"
purpose = "p"
protocol = "rss3-semi-honest"
contact = "c"
[legal_basis]
reference = "OSL 10 kap. 27 §"
text = "x"
[retention]
delete_shares_at_job_end = true
result_deadline = "2027-06-30T02:00:00+02:00"
[[contributors]]
id = "a"
organisation = "A"
controller = "A"
public_key = "placeholder:a"
tables = [{ name = "ta", schema = " pnr : idnr , n:int" }]
[[recipients]]
id = "r"
organisation = "R"
kem_public_key = "placeholder:r"
outputs = [{ name = "o", sql = "  SELECT COUNT(*) FROM ta;\n" }]
[[dp]]
output = "o"
epsilon = 0.5
[[nodes]]
operator = "O0"
fingerprint = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
endpoint = " n0.example:7100"
[[nodes]]
operator = "O1"
fingerprint = "placeholder:n1"
[[nodes]]
operator = "O2"
fingerprint = "placeholder:n2"
"#;

const TINY_CANONICAL: &str = concat!(
    r#"{"contact":"c","contributors":[{"controller":"A","id":"a","organisation":"A","public_key":"placeholder:a","#,
    r#""tables":[{"name":"ta","schema":"pnr:idnr,n:int"}]}],"dp":[{"delta":"0","epsilon":"0.5","output":"o"}],"#,
    r#""format":"kuvert-analysis-v2","leakage_opt_ins":[],"legal_basis":{"reference":"OSL 10 kap. 27 §","text":"x"},"#,
    r#""name":"t","nodes":[{"endpoint":"n0.example:7100","fingerprint":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","operator":"O0"},"#,
    r#"{"endpoint":null,"fingerprint":"placeholder:n1","operator":"O1"},{"endpoint":null,"fingerprint":"placeholder:n2","operator":"O2"}],"#,
    r#""protocol":"rss3-semi-honest","purpose":"p","recipients":[{"id":"r","kem_public_key":"placeholder:r","organisation":"R","#,
    r#""outputs":[{"description":null,"name":"o","sql":"SELECT COUNT(*) FROM ta;"}]}],"#,
    r#""retention":{"delete_shares_at_job_end":true,"result_deadline":{"at":"2027-06-30T00:00:00Z"}}}"#
);

#[test]
fn canonical_form_is_the_documented_one() {
    let s = AnalysisSpec::parse(TINY, "tiny", Validation::AllowPlaceholders).unwrap();
    assert_eq!(s.canonical_json(), TINY_CANONICAL);
    // The id is SHA-256 of exactly those bytes.
    let want: [u8; 32] = sha2::Sha256::digest(TINY_CANONICAL.as_bytes()).into();
    assert_eq!(s.id().0, want);
    // And placeholders are refused where real keys are needed.
    assert!(AnalysisSpec::parse(TINY, "tiny", Validation::Strict).is_err());
}

#[test]
fn id_of_tiny_spec_is_pinned() {
    // Pinned so that a change of the canonical form cannot go unnoticed
    // (it would orphan every approval ever given). Computed independently:
    // printf '%s' "$TINY_CANONICAL" | sha256sum
    let s = AnalysisSpec::parse(TINY, "tiny", Validation::AllowPlaceholders).unwrap();
    assert_eq!(s.id().to_hex(), include_str!("tiny.id").trim());
}

#[test]
fn equivalent_spellings_give_the_same_id() {
    let p = common::parties();
    let text = common::spec_text(&p);
    let a = AnalysisSpec::parse(&text, "a", Validation::Strict).unwrap();
    // The same key in base64, a schema with spaces, SQL with more
    // surrounding whitespace, an explicit empty dp list, comments.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(p.fk.verifying_key().as_bytes());
    let kem_url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(p.kontroll.kem_public().unwrap().to_bytes());
    let text2 = text
        .replace(&p.fk.public().ed25519, &b64)
        .replace(&common::kem(&p.kontroll), &kem_url)
        .replace(
            "\"pnr:idnr,fran:date,till:date,belopp:int\"",
            "\" pnr:idnr, fran:date, till:date, belopp:int \"",
        )
        .replace("sql = '''\n", "sql = '''\n\n   ")
        .replace(
            "leakage_opt_ins = []",
            "leakage_opt_ins = []\ndp = []\n# a comment",
        );
    assert_ne!(text, text2);
    let b = AnalysisSpec::parse(&text2, "b", Validation::Strict).unwrap();
    assert_eq!(a.id(), b.id());
    // Days and the same deadline in another time zone normalise too.
    let mut c = a.clone();
    c.retention.result_deadline = Deadline::At("2027-01-01T01:00:00+01:00".into());
    let mut d = a.clone();
    d.retention.result_deadline = Deadline::At("2027-01-01T00:00:00Z".into());
    assert_eq!(c.id(), d.id());
}

type Mutation = Box<dyn Fn(&mut AnalysisSpec)>;

/// Every field, changed a little, changes the id.
#[test]
fn any_change_changes_the_id() {
    let p = common::parties();
    let base = common::spec(&p);
    let id = base.id();
    let other_key = common::key("x", 99);
    let mutations: Vec<(&str, Mutation)> = vec![
        ("name", Box::new(|s| s.name.push('x'))),
        ("purpose", Box::new(|s| s.purpose.push('.'))),
        (
            "legal_basis.reference",
            Box::new(|s| s.legal_basis.reference.push(' ')),
        ),
        (
            "legal_basis.text",
            Box::new(|s| s.legal_basis.text = s.legal_basis.text.replace("28", "27")),
        ),
        ("contributors order", Box::new(|s| s.contributors.reverse())),
        (
            "contributor id",
            Box::new(|s| s.contributors[1].id = "kommun2".into()),
        ),
        (
            "organisation",
            Box::new(|s| s.contributors[0].organisation.push('!')),
        ),
        (
            "controller",
            Box::new(|s| s.contributors[0].controller = "Someone else".into()),
        ),
        (
            "public_key",
            Box::new(move |s| s.contributors[0].public_key = other_key.public().ed25519),
        ),
        (
            "table name",
            Box::new(|s| s.contributors[0].tables[0].name = "fk2".into()),
        ),
        (
            "schema type",
            Box::new(|s| {
                s.contributors[0].tables[0].schema = s.contributors[0].tables[0]
                    .schema
                    .replace("belopp:int", "belopp:text")
            }),
        ),
        (
            "schema order",
            Box::new(|s| {
                s.contributors[1].tables[0].schema =
                    "fran:date,pnr:idnr,till:date,belopp:int".into()
            }),
        ),
        (
            "recipient id",
            Box::new(|s| s.recipients[2].id = "kontroll2".into()),
        ),
        (
            "recipient organisation",
            Box::new(|s| s.recipients[2].organisation.push('x')),
        ),
        (
            "result key",
            Box::new(|s| s.recipients[2].kem_public_key = s.recipients[0].kem_public_key.clone()),
        ),
        (
            "output name",
            Box::new(|s| s.recipients[2].outputs[0].name = "ids2".into()),
        ),
        (
            "sql",
            Box::new(|s| {
                s.recipients[2].outputs[0].sql =
                    s.recipients[2].outputs[0].sql.replace("DISTINCT ", "")
            }),
        ),
        (
            "sql one char",
            Box::new(|s| {
                s.recipients[2].outputs[0].sql = s.recipients[2].outputs[0].sql.replace("<=", "<")
            }),
        ),
        (
            "description",
            Box::new(|s| s.recipients[2].outputs[0].description = None),
        ),
        (
            "protocol",
            Box::new(|s| s.protocol = "rss3-malicious".into()),
        ),
        (
            "leakage",
            Box::new(|s| {
                s.leakage_opt_ins.push(LeakageOptIn {
                    name: "join-equality-pattern".into(),
                    learned_by: vec!["nodes".into()],
                    statement: "which rows join".into(),
                })
            }),
        ),
        (
            "retention bool",
            Box::new(|s| s.retention.delete_shares_at_job_end = false),
        ),
        (
            "retention days",
            Box::new(|s| s.retention.result_deadline = Deadline::Days(31)),
        ),
        ("contact", Box::new(|s| s.contact = "other@example".into())),
        (
            "dp",
            Box::new(|s| {
                s.dp.push(DpOutput {
                    output: "persons".into(),
                    epsilon: 1.0,
                    delta: 0.0,
                })
            }),
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (what, m) in mutations {
        let mut s = base.clone();
        m(&mut s);
        assert_ne!(s, base, "{what}: mutation did nothing");
        let new = s.id();
        assert_ne!(new, id, "{what}: the id did not change");
        assert!(seen.insert(new), "{what}: two mutations gave the same id");
    }
    // dp values themselves are hashed.
    let mut a = base.clone();
    a.dp.push(DpOutput {
        output: "persons".into(),
        epsilon: 1.0,
        delta: 0.0,
    });
    let mut b = a.clone();
    b.dp[0].epsilon = 1.0000001;
    let mut c = a.clone();
    c.dp[0].delta = 1e-9;
    assert_ne!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
}

#[test]
fn syntax_errors_name_line_and_column() {
    let p = common::parties();
    let text = common::spec_text(&p).replace("protocol = \"rss3-semi-honest\"", "protocol = rss3");
    let e = err(&text);
    let line = text
        .lines()
        .position(|l| l.starts_with("protocol"))
        .unwrap()
        + 1;
    assert!(e.starts_with(&format!("s.toml:{line}:12:")), "{e}");
    // An unknown field is refused, with its place.
    let text = common::spec_text(&p).replace("contact =", "kontakt =");
    let e = err(&text);
    let line = text.lines().position(|l| l.starts_with("kontakt")).unwrap() + 1;
    assert!(e.starts_with(&format!("s.toml:{line}:1:")), "{e}");
    assert!(e.contains("kontakt"), "{e}");
}

#[test]
fn validation_errors_name_field_and_place() {
    let p = common::parties();
    let good = common::spec_text(&p);
    let line_of = |text: &str, pat: &str| text.lines().position(|l| l.contains(pat)).unwrap() + 1;

    // A schema that does not parse.
    let t = good.replace("\"pnr:idnr,fran:date,", "\"pnr:idnr,fran:dat,");
    let e = err(&t);
    assert!(e.contains("contributors[1].tables[0].schema"), "{e}");
    assert!(e.contains("unknown column type \"dat\""), "{e}");
    assert!(
        e.starts_with(&format!("s.toml:{}:", line_of(&t, "fran:dat,"))),
        "{e}"
    );

    // Duplicate table names: the second one is pointed at.
    let t = good.replace("{ name = \"ek\"", "{ name = \"fk\"");
    let e = err(&t);
    assert!(
        e.contains("contributors[1].tables[0].name") && e.contains("used twice"),
        "{e}"
    );
    let second = t.match_indices("name = \"fk\"").nth(1).unwrap().0;
    let line = t[..second].matches('\n').count() + 1;
    assert!(e.starts_with(&format!("s.toml:{line}:")), "{e}");

    // Empty SQL.
    let t = good.replacen(
        "SELECT DISTINCT f.pnr FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till);",
        "   ",
        1,
    );
    let e = err(&t);
    assert!(
        e.contains("recipients[2].outputs[0].sql") && e.contains("empty SQL"),
        "{e}"
    );

    // Duplicate contributor id.
    let t = good.replacen("id = \"kommun\"", "id = \"fk\"", 1);
    let e = err(&t);
    assert!(
        e.contains("contributors[1].id") && e.contains("used twice"),
        "{e}"
    );

    // A bad key, and a placeholder where a real key is needed.
    let t = good.replace(&p.kommun.public().ed25519, "00ff");
    let e = err(&t);
    assert!(
        e.contains("contributors[1].public_key") && e.contains("not a valid Ed25519"),
        "{e}"
    );
    let t = good.replace(&common::kem(&p.kontroll), "placeholder:kontroll");
    let e = err(&t);
    assert!(
        e.contains("recipients[2].kem_public_key") && e.contains("placeholder"),
        "{e}"
    );
    assert!(AnalysisSpec::parse(&t, "s", Validation::AllowPlaceholders).is_ok());
    // A classical 32-byte X25519 key where the result key belongs.
    let t = good.replace(&common::kem(&p.kontroll), &"ab".repeat(32));
    let e = err(&t);
    assert!(
        e.contains("recipients[2].kem_public_key")
            && e.contains("not a post-quantum result key")
            && e.contains("kuvert keygen --upgrade"),
        "{e}"
    );
    // A damaged result key: its X25519 part zeroed (a small-order point).
    use base64::Engine;
    let mut bytes = p.kontroll.kem_public().unwrap().to_bytes();
    let n = bytes.len();
    bytes[n - 32..].fill(0);
    let t = good.replace(
        &common::kem(&p.kontroll),
        &base64::engine::general_purpose::STANDARD.encode(&bytes),
    );
    let e = err(&t);
    assert!(
        e.contains("recipients[2].kem_public_key") && e.contains("not a valid X-Wing public key"),
        "{e}"
    );
    // A spec written for the classical sealing names the field it lacks.
    let t = good.replace(
        &format!("kem_public_key = \"{}\"", common::kem(&p.kontroll)),
        &format!("public_key_x25519 = \"{}\"", "ab".repeat(32)),
    );
    let e = err(&t);
    assert!(
        e.contains("public_key_x25519") && e.contains("kem_public_key"),
        "{e}"
    );

    // Unknown ids in leakage opt-ins, unknown output in dp.
    let t = good.replace(
        "leakage_opt_ins = []",
        "leakage_opt_ins = [{ name = \"join-equality-pattern\", learned_by = [\"nodes\", \"skatteverket\"], statement = \"s\" }]",
    );
    let e = err(&t);
    assert!(
        e.contains("leakage_opt_ins[0].learned_by") && e.contains("\"skatteverket\""),
        "{e}"
    );
    let t = format!("{good}\n[[dp]]\noutput = \"nope\"\nepsilon = 1.0\n");
    let e = err(&t);
    assert!(
        e.contains("dp[0].output") && e.contains("ids, persons"),
        "{e}"
    );
    let t = format!("{good}\n[[dp]]\noutput = \"ids\"\nepsilon = -1.0\n");
    assert!(err(&t).contains("dp[0].epsilon"));

    // The same output name with different SQL under two recipients.
    let t = good.replacen("SUM(f.belopp) AS fk_belopp", "SUM(f.belopp) AS belopp", 1);
    let e = err(&t);
    assert!(
        e.contains("recipients[1].outputs[0].sql") && e.contains("different SQL"),
        "{e}"
    );

    // Deadlines.
    let t = good.replace("result_deadline = 30", "result_deadline = \"next year\"");
    assert!(err(&t).contains("RFC 3339"));
    let t = good.replace("result_deadline = 30", "result_deadline = 0");
    assert!(err(&t).contains("retention.result_deadline"));
    let t = good.replace("result_deadline = 30", "result_deadline = -3");
    assert!(err(&t).contains("-3 days"));
    let t = good.replace("result_deadline = 30", "result_deadline = true");
    assert!(err(&t).contains("a number of days"));
    // A TOML date-time literal is the same as the string.
    let lit = good.replace(
        "result_deadline = 30",
        "result_deadline = 2027-06-30T00:00:00Z",
    );
    let st = good.replace(
        "result_deadline = 30",
        "result_deadline = \"2027-06-30T00:00:00Z\"",
    );
    let a = AnalysisSpec::parse(&lit, "s", Validation::Strict).unwrap();
    let b = AnalysisSpec::parse(&st, "s", Validation::Strict).unwrap();
    assert_eq!(a.id(), b.id());
    // A local date without a time zone is not a deadline anyone agrees on.
    let t = good.replace("result_deadline = 30", "result_deadline = 2027-06-30");
    assert!(err(&t).contains("RFC 3339"));

    // Protocol.
    let t = good.replace("\"rss3-semi-honest\"", "\"gmw\"");
    let e = err(&t);
    assert!(
        e.contains("choose \"rss3-semi-honest\" or \"rss3-malicious\""),
        "{e}"
    );
    // The malicious protocol is a valid choice, and part of what is approved.
    let mal = good.replace("\"rss3-semi-honest\"", "\"rss3-malicious\"");
    let m = AnalysisSpec::parse(&mal, "s", Validation::Strict).unwrap();
    let g = AnalysisSpec::parse(&good, "s", Validation::Strict).unwrap();
    assert!(m.malicious() && !g.malicious());
    assert_ne!(m.id(), g.id());

    // The unchanged text is fine; a syntax error is a Syntax error.
    assert!(AnalysisSpec::parse(&good, "s", Validation::Strict).is_ok());
    assert!(matches!(
        AnalysisSpec::parse("name = 1", "s", Validation::Strict),
        Err(GovError::Syntax { line: 1, .. })
    ));
}

/// The committed JSON Schema is the one the code generates. Run with
/// `UPDATE_SCHEMA=1` to rewrite it after changing the spec's types.
#[test]
fn json_schema_file_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/analysis.schema.json");
    let want = AnalysisSpec::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run `UPDATE_SCHEMA=1 cargo test -p kuvert-gov --test spec` and commit it",
        path.display()
    );
    // It describes the fields a reader looks for.
    for field in [
        "legal_basis",
        "kem_public_key",
        "leakage_opt_ins",
        "result_deadline",
        "epsilon",
    ] {
        assert!(want.contains(field), "{field}");
    }
}
