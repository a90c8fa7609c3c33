//! The six reference analyses as ready-made specs. Their keys are
//! placeholders (`placeholder:<id>`) and their legal references are
//! examples that the agencies' lawyers must check.
//!
//! Four templates have a fixed set of parties: they are the repository's
//! `templates/<name>.toml`, embedded here. The two with many contributors,
//! `quality-indicators` (one contributor per region) and
//! `parallel-assistance` (one per municipality), are generated from a list
//! of [`Member`]s by [`generate`]: the contributors and their tables, the
//! recipients, and the SQL over every member's table. Their embedded text
//! is the generator's output for the default lists ([`default_members`]:
//! the 21 regions, three municipalities); `templates/<name>.toml` holds a
//! copy that a test keeps equal to it (regenerate it with
//! `KUVERT_BLESS_TEMPLATES=1 cargo test -p kuvert-gov templates`).
//! `kuvert analysis template NAME --contributors FILE` writes them for
//! another list, read by [`parse_members`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

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

/// The names of the six templates, in the design brief's order.
const NAMES: [&str; 6] = [
    "overlapping-benefits",
    "non-take-up",
    "double-registration",
    "opt-out",
    "parallel-assistance",
    "quality-indicators",
];

/// The templates generated from a list of contributors ([`generate`]).
pub const GENERATED: [&str; 2] = ["parallel-assistance", "quality-indicators"];

/// The most regions `quality-indicators` takes: its `regions` histogram
/// declares one group per region, and `WITH PRIVACY` takes at most 64
/// groups (`kuvert_sql::privacy::MAX_GROUPS`).
pub const MAX_REGIONS: usize = 64;

static PARALLEL_ASSISTANCE: LazyLock<String> =
    LazyLock::new(|| default_text("parallel-assistance"));
static QUALITY_INDICATORS: LazyLock<String> = LazyLock::new(|| default_text("quality-indicators"));

fn default_text(name: &str) -> String {
    let members = default_members(name).expect("a generated template has a default list");
    generate(name, &members).unwrap_or_else(|e| panic!("the default {name} does not generate: {e}"))
}

/// `(name, TOML text)` of every template, in the design brief's order.
pub static TEMPLATES: LazyLock<[(&str, &str); 6]> = LazyLock::new(|| {
    [
        t!("overlapping-benefits"),
        t!("non-take-up"),
        t!("double-registration"),
        t!("opt-out"),
        ("parallel-assistance", PARALLEL_ASSISTANCE.as_str()),
        ("quality-indicators", QUALITY_INDICATORS.as_str()),
    ]
});

/// The names of the templates.
pub fn names() -> Vec<&'static str> {
    NAMES.to_vec()
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

// ---- generated templates ----------------------------------------------------

/// One member of a many-contributor template: a region of
/// `quality-indicators` (a contributor, and a recipient of the national
/// totals) or a municipality of `parallel-assistance` (a contributor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The contributor id (letters, digits, `-`, `_`, `.`): it names the
    /// party in approvals and in its `placeholder:<id>` keys.
    pub id: String,
    /// The organisation, also the controller of its data.
    pub organisation: String,
    /// `quality-indicators` only (`None` for `parallel-assistance`): the
    /// region's code (for the Swedish regions their county code), the value
    /// of the `region` column in its rows and one group of the `regions`
    /// histogram.
    pub region: Option<i64>,
}

/// The 21 Swedish regions in county-code order, with their county codes.
const REGIONS: [(&str, i64); 21] = [
    ("Region Stockholm", 1),
    ("Region Uppsala", 3),
    ("Region Sörmland", 4),
    ("Region Östergötland", 5),
    ("Region Jönköpings län", 6),
    ("Region Kronoberg", 7),
    ("Region Kalmar län", 8),
    ("Region Gotland", 9),
    ("Region Blekinge", 10),
    ("Region Skåne", 12),
    ("Region Halland", 13),
    ("Västra Götalandsregionen", 14),
    ("Region Värmland", 17),
    ("Region Örebro län", 18),
    ("Region Västmanland", 19),
    ("Region Dalarna", 20),
    ("Region Gävleborg", 21),
    ("Region Västernorrland", 22),
    ("Region Jämtland Härjedalen", 23),
    ("Region Västerbotten", 24),
    ("Region Norrbotten", 25),
];

/// The default list of a generated template: the 21 regions
/// (`region-01` .. `region-21`) for `quality-indicators`, three
/// municipalities (`kommun1` .. `kommun3`) for `parallel-assistance`;
/// `None` for the other templates.
pub fn default_members(name: &str) -> Option<Vec<Member>> {
    match name {
        "quality-indicators" => Some(
            REGIONS
                .iter()
                .enumerate()
                .map(|(i, (org, code))| Member {
                    id: format!("region-{:02}", i + 1),
                    organisation: (*org).to_string(),
                    region: Some(*code),
                })
                .collect(),
        ),
        "parallel-assistance" => Some(
            (1..=3)
                .map(|i| Member {
                    id: format!("kommun{i}"),
                    organisation: format!("Socialnämnden i kommun {i}"),
                    region: None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The fixed recipient of a generated template (a member must not take
/// its id).
fn fixed_recipient(name: &str) -> (&'static str, &'static str) {
    if name == "quality-indicators" {
        ("kvalitetsregister", "the national quality registry")
    } else {
        ("kontroll", "the control unit")
    }
}

/// What is wrong with a list of members: which member (`None`: the list as
/// a whole), which of its fields, and the earlier member it repeats.
struct MemberProblem {
    index: Option<usize>,
    field: &'static str,
    earlier: Option<usize>,
    message: String,
}

fn check_member_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "id {id:?} is not a contributor id: use 1 to 64 characters, only letters a-z, A-Z, \
             digits, '-', '_' and '.' (it names the party in approvals and in its \
             `placeholder:<id>` keys), e.g. region-01 or kommun-0180"
        ));
    }
    if id == "nodes" {
        return Err(
            "id \"nodes\" is reserved (it names the compute nodes in learned_by); choose another"
                .into(),
        );
    }
    Ok(())
}

/// The checks [`generate`] and [`parse_members`] share.
fn check_members(name: &str, members: &[Member]) -> Result<(), MemberProblem> {
    let qi = name == "quality-indicators";
    let at = |index: usize, field: &'static str, message: String| MemberProblem {
        index: Some(index),
        field,
        earlier: None,
        message,
    };
    let (fixed, fixed_what) = fixed_recipient(name);
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut codes: HashMap<i64, usize> = HashMap::new();
    for (i, m) in members.iter().enumerate() {
        check_member_id(&m.id).map_err(|e| at(i, "id", e))?;
        if m.id == fixed {
            return Err(at(
                i,
                "id",
                format!("id {fixed:?} is the id of {fixed_what}, a recipient of {name}; choose another id for this member"),
            ));
        }
        if let Some(&first) = ids.get(m.id.as_str()) {
            return Err(MemberProblem {
                earlier: Some(first),
                ..at(
                    i,
                    "id",
                    format!(
                        "id {:?} is given twice; give each member once, with its own id",
                        m.id
                    ),
                )
            });
        }
        ids.insert(&m.id, i);
        if m.organisation.trim().is_empty() {
            return Err(at(
                i,
                "organisation",
                "the organisation is empty; give its name (it goes into the approvals and the DPIA text)"
                    .into(),
            ));
        }
        match (qi, m.region) {
            (true, None) => {
                return Err(at(
                    i,
                    "region",
                    "no region code; quality-indicators needs each region's code (the value of the \
                     `region` column in its rows and a group of the `regions` histogram), e.g. 1 for \
                     Region Stockholm"
                        .into(),
                ))
            }
            (true, Some(code)) => {
                if let Some(&first) = codes.get(&code) {
                    return Err(MemberProblem {
                        earlier: Some(first),
                        ..at(
                            i,
                            "region",
                            format!(
                                "region code {code} is given twice; give each region its own code \
                                 (one group of the `regions` histogram each)"
                            ),
                        )
                    });
                }
                codes.insert(code, i);
            }
            (false, Some(_)) => {
                return Err(at(
                    i,
                    "region",
                    format!("{name} takes no region code; leave it out"),
                ))
            }
            (false, None) => {}
        }
    }
    let whole = |message: String| MemberProblem {
        index: None,
        field: "",
        earlier: None,
        message,
    };
    if members.len() < 2 {
        return Err(whole(format!(
            "lists {} member(s); {name} needs at least 2 (with one contributor there is nothing to \
             compute jointly: it can run the query on its own data)",
            members.len()
        )));
    }
    if qi && members.len() > MAX_REGIONS {
        return Err(whole(format!(
            "lists {} regions; quality-indicators takes at most {MAX_REGIONS} (the `regions` \
             histogram declares one group per region, and WITH PRIVACY takes at most \
             {MAX_REGIONS} groups)",
            members.len()
        )));
    }
    Ok(())
}

/// Refuse a template that is not generated from a list.
fn check_generated(name: &str) -> Result<(), GovError> {
    if !NAMES.contains(&name) {
        return Err(GovError::UnknownTemplate {
            name: name.to_string(),
            known: names().join(", "),
        });
    }
    if !GENERATED.contains(&name) {
        return Err(GovError::Invalid {
            at: String::new(),
            field: "contributors".into(),
            message: format!(
                "template {name} has a fixed set of contributors; only {} are generated from a \
                 list. Take template {name} as it is and edit its [[contributors]]",
                GENERATED.join(" and ")
            ),
        });
    }
    Ok(())
}

/// Generate template `name` (one of [`GENERATED`]) for `members`, in their
/// order: the TOML text of its spec with the header comments, placeholder
/// keys (`placeholder:<id>`) and placeholder `[[nodes]]`. The text is
/// checked to parse and validate with placeholders before it is returned.
///
/// Errors: an unknown template, a template with a fixed set of parties, or
/// a list that does not make one (fewer than two members, an invalid or
/// repeated id, an empty organisation, a missing or repeated region code
/// for `quality-indicators`, more than [`MAX_REGIONS`] regions).
pub fn generate(name: &str, members: &[Member]) -> Result<String, GovError> {
    check_generated(name)?;
    check_members(name, members).map_err(|p| {
        let field = match p.index {
            Some(i) if p.field.is_empty() => format!("contributors[{i}]"),
            Some(i) => format!("contributors[{i}].{}", p.field),
            None => "contributors".into(),
        };
        let also = p
            .earlier
            .map(|e| format!(" (also contributors[{e}])"))
            .unwrap_or_default();
        GovError::Invalid {
            at: String::new(),
            field,
            message: format!("{}{also}", p.message),
        }
    })?;
    let text = if name == "quality-indicators" {
        quality_indicators(members)
    } else {
        parallel_assistance(members)
    };
    AnalysisSpec::parse(
        &text,
        &format!("{name} (generated)"),
        Validation::AllowPlaceholders,
    )?;
    Ok(text)
}

/// A TOML basic string: `"..."`, escaping `"`, `\` and control characters
/// (other characters, å ä ö included, as they are).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const PLACEHOLDER_HELP: &str = "\
# Keys are placeholders: replace each `placeholder:<id>` with the party's keys from
# `kuvert keygen` (the .pub file: \"ed25519\" -> public_key, \"kem\" -> kem_public_key).
# Check with `kuvert analysis check --template FILE` while filling in, and
# `kuvert analysis check FILE` before anyone approves.
";

const PROTOCOL_AND_CONTACT: &str = "\
protocol = \"rss3-semi-honest\"
contact = \"placeholder: the analysis owner's functional mailbox, e.g. mpc-analys@myndighet.example\"
leakage_opt_ins = []
";

const RETENTION: &str = "\
[retention]
delete_shares_at_job_end = true
result_deadline = 30  # days after the job ends (a job that never ends: days after registration); or an RFC 3339 time as a string
";

const NODES: &str = "\
# The three compute nodes, in node order, pinned by their TLS key fingerprints.
# Replace each placeholder with the federation's values: `kuvert federation nodes
# FEDERATION.toml` prints these three tables ready to paste.
[[nodes]]
operator = \"placeholder: the operator of node 0\"
fingerprint = \"placeholder:node-0\"

[[nodes]]
operator = \"placeholder: the operator of node 1\"
fingerprint = \"placeholder:node-1\"

[[nodes]]
operator = \"placeholder: the operator of node 2\"
fingerprint = \"placeholder:node-2\"
";

/// One `[[contributors]]` table with one input table.
fn contributor(out: &mut String, m: &Member, table: &str, schema: &str) {
    let org = toml_string(&m.organisation);
    let _ = write!(
        out,
        "[[contributors]]\nid = \"{id}\"\norganisation = {org}\ncontroller = {org}\n\
         public_key = \"placeholder:{id}\"\ntables = [\n  {{ name = \"{table}\", schema = \"{schema}\" }},\n]\n\n",
        id = m.id,
    );
}

/// One `[[recipients.outputs]]` table.
fn output(out: &mut String, name: &str, description: &str, sql: &str) {
    let _ = write!(
        out,
        "[[recipients.outputs]]\nname = \"{name}\"\ndescription = {}\nsql = '''\n{sql}'''\n",
        toml_string(description)
    );
}

/// ε and δ of the quality indicators' outputs: written from these into
/// both the `WITH PRIVACY` clause and the `[[dp]]` entry, so they agree.
const QI_REGIONS_DP: (f64, f64) = (1.0, 1e-6);
const QI_NATIONAL_DP: (f64, f64) = (0.5, 1e-6);
const QI_SCHEMA: &str = "pnr:idnr,region:int,vardtid:int,aterinskriven:bool";
const QI_REGIONS_DESCRIPTION: &str = "per region: the number of patient episodes, the total length of stay and the number of readmissions, with differential-privacy noise";
const QI_NATIONAL_DESCRIPTION: &str = "national totals: the number of patient episodes, the total length of stay and the number of readmissions, with differential-privacy noise";

/// The table of the `i`-th region (from 1).
fn qi_table(i: usize) -> String {
    format!("region_{i:02}")
}

/// The `WITH PRIVACY` parameters ε and δ as SQL: `epsilon = 1, delta = 1e-6`.
fn privacy_params((epsilon, delta): (f64, f64)) -> String {
    format!("epsilon = {epsilon}, delta = {delta:?}")
}

fn quality_indicators(members: &[Member]) -> String {
    let n = members.len();
    let mut union = String::new();
    for i in 1..=n {
        let sep = if i == 1 { "" } else { "UNION ALL " };
        let _ = writeln!(union, "  {sep}SELECT * FROM {}", qi_table(i));
    }
    let inner = format!(
        "  FROM (\n  SELECT pnr, region, vardtid, CASE WHEN aterinskriven THEN 1 ELSE 0 END AS aterinskriven_n FROM (\n{union}  ) u\n"
    );
    let limits = "person = pnr, max_rows = 3, lo = 0, hi = 60";
    let codes: Vec<String> = members
        .iter()
        .map(|m| {
            m.region
                .expect("checked: every region has a code")
                .to_string()
        })
        .collect();
    let groups = codes
        .chunks(21)
        .map(|c| c.join(", "))
        .collect::<Vec<_>>()
        .join(",\n                          ");
    let regions_sql = format!(
        "SELECT region, COUNT(*) AS patienter, SUM(vardtid) AS vardtid, SUM(aterinskriven_n) AS aterinskrivna\n\
         {inner}  ) r GROUP BY region ORDER BY region\n  \
         WITH PRIVACY ({}, {limits},\n                groups = ({groups}));\n",
        privacy_params(QI_REGIONS_DP)
    );
    let national_sql = format!(
        "SELECT COUNT(*) AS patienter, SUM(vardtid) AS vardtid, SUM(aterinskriven_n) AS aterinskrivna\n\
         {inner}  ) r\n  WITH PRIVACY ({}, {limits});\n",
        privacy_params(QI_NATIONAL_DP)
    );

    let mut out = String::new();
    let _ = write!(
        out,
        "\
# Quality indicators: per-region and national aggregates over the {n} regions, with differential privacy.
# What each party learns:
# - The national quality registry: the per-region and national aggregates (noisy, see [[dp]]).
# - Each region: the national aggregates (noisy), and the table sizes; no other region's patient-level data.
# - Each compute node: the table sizes only.
#
# Differential privacy: both outputs end in WITH PRIVACY, so the nodes add the noise
# inside the MPC (distributed Skellam; no party ever sees an exact aggregate), and each
# has a [[dp]] entry with the same epsilon and delta (`kuvert analysis check` refuses a
# spec where the two disagree). Each table carries the patient's personal identity
# number (pnr) so that each patient's episodes can be capped (max_rows = 3 per output);
# length of stay is clamped to 0..60 days. `regions` is a histogram over the {n} county
# codes declared in groups = (...): every region gets a row, empty ones included.
#
# Generated from the list of regions (id, organisation, region code), one table each,
# whose rows carry the region's code in the `region` column: `kuvert analysis template
# quality-indicators --contributors FILE` writes this template for another list.
#
{PLACEHOLDER_HELP}
name = \"quality-indicators\"
purpose = \"Compute per-region and national quality indicators of hospital care (episodes, length of stay, readmissions) from patient-level data of all {n} regions, without any region disclosing patient-level data.\"
{PROTOCOL_AND_CONTACT}
[legal_basis]
reference = \"Patientdatalagen (2008:355) 7 kap. (nationella kvalitetsregister); OSL 25 kap. 1 §; OSL 10 kap. 2 a § (exempel — att granskas av myndighetens jurist / example, to be checked by the agency's lawyer)\"
text = \"Personal data may be processed in national quality registers to develop and secure the quality of care. Patient-level data stays secret (OSL 25 kap. 1 §): the compute nodes only process it technically (OSL 10 kap. 2 a §) and only noisy aggregates are released.\"

{RETENTION}
"
    );
    for (i, m) in members.iter().enumerate() {
        contributor(&mut out, m, &qi_table(i + 1), QI_SCHEMA);
    }
    out.push_str(
        "[[recipients]]\nid = \"kvalitetsregister\"\norganisation = \"The national quality registry\"\n\
         kem_public_key = \"placeholder:kvalitetsregister\"\n",
    );
    output(&mut out, "regions", QI_REGIONS_DESCRIPTION, &regions_sql);
    output(&mut out, "national", QI_NATIONAL_DESCRIPTION, &national_sql);
    for m in members {
        let _ = write!(
            out,
            "\n[[recipients]]\nid = \"{id}\"\norganisation = {org}\nkem_public_key = \"placeholder:{id}\"\n",
            id = m.id,
            org = toml_string(&m.organisation),
        );
        output(&mut out, "national", QI_NATIONAL_DESCRIPTION, &national_sql);
    }
    for (name, (epsilon, delta)) in [("regions", QI_REGIONS_DP), ("national", QI_NATIONAL_DP)] {
        let _ = write!(
            out,
            "\n[[dp]]\noutput = \"{name}\"\nepsilon = {epsilon:?}\ndelta = {delta:?}\n"
        );
    }
    out.push('\n');
    out.push_str(NODES);
    out
}

/// The months query over `n` municipalities' tables `bistand_1` ..
/// `bistand_n`: each row tagged with its municipality's number.
fn parallel_assistance_sql(n: usize) -> String {
    let mut sql = String::from(
        "SELECT pnr, manad, COUNT(DISTINCT kommun) AS kommuner FROM (\n  \
         SELECT pnr, manad, 1 AS kommun FROM bistand_1 UNION ALL SELECT pnr, manad, 2 FROM bistand_2",
    );
    for k in 3..=n {
        let _ = write!(sql, "\n  UNION ALL SELECT pnr, manad, {k} FROM bistand_{k}");
    }
    sql.push_str(") b GROUP BY pnr, manad HAVING COUNT(DISTINCT kommun) >= 2;\n");
    sql
}

fn parallel_assistance(members: &[Member]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "\
# Parallel assistance: economic assistance from two or more municipalities in the same month.
# What each party learns:
# - The control unit: the persons and months with assistance from two or more municipalities, and from how many.
# - The municipalities: nothing but the table sizes; they receive no output.
# - Each compute node: the table sizes only.
#
# Generated from the list of municipalities (id, organisation), one table each
# (bistand_1, bistand_2, ... in the list's order): `kuvert analysis template
# parallel-assistance --contributors FILE` writes this template for another list.
#
{PLACEHOLDER_HELP}
name = \"parallel-assistance\"
purpose = \"Find persons who received economic assistance from two or more municipalities in the same month, to counter incorrect payments, without any municipality disclosing its register of assistance recipients.\"
{PROTOCOL_AND_CONTACT}
[legal_basis]
reference = \"Lag (2024:307) om uppgiftsskyldighet för att motverka felaktiga utbetalningar från välfärdssystemen; OSL 10 kap. 28 §; socialtjänstlagen (2025:400) (exempel — att granskas av myndighetens jurist / example, to be checked by the agency's lawyer)\"
text = \"Municipalities have a duty to provide information to counter incorrect payments from the welfare systems; secrecy (OSL 26 kap.) does not prevent information being provided when a law prescribes a duty to provide it (OSL 10 kap. 28 §).\"

{RETENTION}
"
    );
    for (i, m) in members.iter().enumerate() {
        contributor(
            &mut out,
            m,
            &format!("bistand_{}", i + 1),
            "pnr:idnr,manad:int,belopp:int",
        );
    }
    out.push_str(
        "[[recipients]]\nid = \"kontroll\"\norganisation = \"The control unit named in the agreement (kontrollfunktion)\"\n\
         kem_public_key = \"placeholder:kontroll\"\n",
    );
    output(
        &mut out,
        "months",
        "the identity numbers and months where a person received assistance from two or more of the municipalities, and from how many; no amounts",
        &parallel_assistance_sql(members.len()),
    );
    out.push('\n');
    out.push_str(NODES);
    out
}

// ---- lists of contributors (CSV) ---------------------------------------------

/// One field of a CSV line and the column (from 1, in characters) where it
/// begins.
struct Field {
    column: usize,
    text: String,
}

/// Split one CSV line at `delim`; fields may be quoted (`"a, b"`, with `""`
/// for a quote inside). Errors: `(column, message)`.
fn split_line(line: &str, delim: char) -> Result<Vec<Field>, (usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let blank = |c: char| c == ' ' || c == '\t';
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && blank(chars[i]) {
            i += 1;
        }
        let column = i + 1;
        let mut text = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            loop {
                if i >= chars.len() {
                    return Err((
                        column,
                        "this quoted field has no closing '\"' on its line; close it (a field \
                         cannot span lines) and write a quote inside it as \"\""
                            .into(),
                    ));
                }
                if chars[i] == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        text.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            while i < chars.len() && blank(chars[i]) {
                i += 1;
            }
            if i < chars.len() && chars[i] != delim {
                return Err((
                    i + 1,
                    format!(
                        "{:?} after a quoted field; put the separator '{delim}' right after the \
                         closing quote",
                        chars[i]
                    ),
                ));
            }
        } else {
            while i < chars.len() && chars[i] != delim {
                if chars[i] == '"' {
                    return Err((
                        i + 1,
                        "a '\"' inside an unquoted field; quote the whole field (\"...\") and \
                         write a quote inside it as \"\""
                            .into(),
                    ));
                }
                text.push(chars[i]);
                i += 1;
            }
            text.truncate(text.trim_end().len());
        }
        out.push(Field { column, text });
        if i >= chars.len() {
            return Ok(out);
        }
        i += 1;
    }
}

/// Read the list of members of generated template `name` from CSV text
/// (`origin` names the file in errors, which say `origin:line:column`).
///
/// The first line is a header naming the columns, in any order: `id` and
/// `organisation`, and for `quality-indicators` also `region` (the
/// region's code, a whole number; `01` is 1). Then one line per member, in
/// the order of their tables. Fields are separated by `,` (or `;` when the
/// header has no `,`, as spreadsheets write it in a Swedish locale) and
/// may be quoted (`"Socialnämnden, Kommun A"`, `""` for a quote inside).
/// Empty lines and lines starting with `#` are skipped. The list is
/// checked as [`generate`] checks it, and each problem is reported at its
/// line and column.
pub fn parse_members(name: &str, text: &str, origin: &str) -> Result<Vec<Member>, GovError> {
    let syntax = |line: usize, column: usize, message: String| GovError::Syntax {
        origin: origin.to_string(),
        line,
        column,
        message,
    };
    check_generated(name)?;
    let qi = name == "quality-indicators";
    let wanted: &[&str] = if qi {
        &["id", "organisation", "region"]
    } else {
        &["id", "organisation"]
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        });
    let Some((header_line, header)) = lines.next() else {
        return Err(syntax(
            1,
            1,
            format!(
                "no header line; begin the file with `{}` and give one line per member",
                wanted.join(",")
            ),
        ));
    };
    let delim = if !header.contains(',') && header.contains(';') {
        ';'
    } else {
        ','
    };
    let head = split_line(header, delim).map_err(|(c, m)| syntax(header_line, c, m))?;
    let mut col: HashMap<&str, usize> = HashMap::new();
    for (k, f) in head.iter().enumerate() {
        let key = f.text.to_ascii_lowercase();
        let Some(known) = wanted.iter().find(|w| **w == key) else {
            let hint = if key == "region" {
                format!("{name} takes no region column; give `id,organisation`")
            } else {
                format!(
                    "unknown column {:?}; the header names the columns {}",
                    f.text,
                    wanted.join(", ")
                )
            };
            return Err(syntax(header_line, f.column, hint));
        };
        if col.insert(known, k).is_some() {
            return Err(syntax(
                header_line,
                f.column,
                format!("column {known:?} is named twice; name it once"),
            ));
        }
    }
    if let Some(missing) = wanted.iter().find(|w| !col.contains_key(**w)) {
        let why = match *missing {
            "region" => " (each region's code: the value of the `region` column in its rows, e.g. 1 for Region Stockholm)",
            "organisation" => " (the organisation's name, also the controller of its data)",
            _ => " (the contributor id, e.g. region-01)",
        };
        return Err(syntax(
            header_line,
            1,
            format!(
                "the header has no {missing:?} column{why}; the header is `{}`",
                wanted.join(",")
            ),
        ));
    }
    // (line, fields) per member, to place the list's problems.
    let mut rows: Vec<(usize, Vec<Field>)> = Vec::new();
    let mut members = Vec::new();
    for (line, l) in lines {
        let fields = split_line(l, delim).map_err(|(c, m)| syntax(line, c, m))?;
        if fields.len() != head.len() {
            let column = fields
                .get(head.len())
                .map(|f| f.column)
                .unwrap_or(l.chars().count() + 1);
            let names: Vec<&str> = head.iter().map(|f| f.text.as_str()).collect();
            return Err(syntax(
                line,
                column,
                format!(
                    "{} field(s) where the header has {} ({}); quote a field that holds '{delim}'",
                    fields.len(),
                    head.len(),
                    names.join(&delim.to_string())
                ),
            ));
        }
        let region = match col.get("region") {
            Some(&k) => {
                let f = &fields[k];
                let code = f.text.parse::<i64>().map_err(|_| {
                    syntax(
                        line,
                        f.column,
                        format!(
                            "region code {:?} is not a whole number; give the region's code, e.g. 1 \
                             (or 01) for Region Stockholm",
                            f.text
                        ),
                    )
                })?;
                Some(code)
            }
            None => None,
        };
        members.push(Member {
            id: fields[col["id"]].text.clone(),
            organisation: fields[col["organisation"]].text.clone(),
            region,
        });
        rows.push((line, fields));
    }
    check_members(name, &members).map_err(|p| match p.index {
        Some(i) => {
            let (line, fields) = &rows[i];
            let column = col.get(p.field).map(|&k| fields[k].column).unwrap_or(1);
            let also = p
                .earlier
                .map(|e| format!(" (first on line {})", rows[e].0))
                .unwrap_or_default();
            syntax(*line, column, format!("{}{also}", p.message))
        }
        None => GovError::Invalid {
            at: format!("{origin}: "),
            field: "contributors".into(),
            message: p.message,
        },
    })?;
    Ok(members)
}

// ---- nodes ---------------------------------------------------------------------

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

#[cfg(test)]
mod generator_tests {
    use super::*;

    fn region(id: &str, org: &str, code: i64) -> Member {
        Member {
            id: id.into(),
            organisation: org.into(),
            region: Some(code),
        }
    }

    fn municipality(id: &str, org: &str) -> Member {
        Member {
            id: id.into(),
            organisation: org.into(),
            region: None,
        }
    }

    fn parse(text: &str) -> AnalysisSpec {
        AnalysisSpec::parse(text, "generated", Validation::AllowPlaceholders)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// How often `needle` occurs in `hay` as a whole word (so `region_1`
    /// is not counted in `region_10`).
    fn words(hay: &str, needle: &str) -> usize {
        hay.match_indices(needle)
            .filter(|(i, _)| {
                let after = hay[i + needle.len()..].chars().next();
                !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .count()
    }

    /// The `name = value` parameters of an output's WITH PRIVACY clause.
    fn privacy(sql: &str) -> HashMap<String, String> {
        let at = sql.find("WITH PRIVACY (").expect("a WITH PRIVACY clause");
        let body = &sql[at + "WITH PRIVACY (".len()..];
        let body = &body[..body.rfind(')').unwrap()];
        let mut out = HashMap::new();
        let mut depth = 0;
        let mut start = 0;
        let mut parts = Vec::new();
        for (i, c) in body.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&body[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&body[start..]);
        for p in parts {
            let (k, v) = p.split_once('=').unwrap();
            out.insert(k.trim().to_string(), v.trim().to_string());
        }
        out
    }

    /// What can be checked without the SQL compiler (`kuvert analysis
    /// check` compiles it; the CLI tests run that): the spec validates;
    /// every output's SQL reads every declared table exactly once and no
    /// other; the tables' schemas parse; each WITH PRIVACY clause has a
    /// [[dp]] entry with the same ε and δ, and the `regions` groups are the
    /// members' codes; the header comments are there.
    fn check_generated_text(name: &str, text: &str, members: &[Member]) -> AnalysisSpec {
        let spec = parse(text);
        assert_eq!(spec.name, name);
        let e = AnalysisSpec::parse(text, "generated", Validation::Strict)
            .unwrap_err()
            .to_string();
        assert!(e.contains("placeholder"), "{e}");
        for needle in [
            "What each party learns",
            "`placeholder:<id>`",
            "kuvert analysis check --template FILE",
            "--contributors FILE",
            "kuvert federation nodes",
        ] {
            assert!(text.contains(needle), "{name}: no {needle:?} in the header");
        }
        assert_eq!(spec.contributors.len(), members.len());
        let mut tables = Vec::new();
        for (c, m) in spec.contributors.iter().zip(members) {
            assert_eq!(c.id, m.id);
            assert_eq!(c.organisation, m.organisation);
            assert_eq!(c.controller, m.organisation);
            assert_eq!(c.public_key, format!("placeholder:{}", m.id));
            assert_eq!(c.tables.len(), 1);
            kuvert_data::Schema::parse_compact(&c.tables[0].schema).unwrap();
            tables.push(c.tables[0].name.clone());
        }
        let n = members.len();
        for r in &spec.recipients {
            assert_eq!(r.kem_public_key, format!("placeholder:{}", r.id));
            for o in &r.outputs {
                for t in &tables {
                    assert_eq!(words(&o.sql, t), 1, "{name}/{}: {t}\n{}", o.name, o.sql);
                }
                // No other table: n SELECTs over the tables, n - 1 UNION ALLs.
                assert_eq!(o.sql.matches("UNION ALL").count(), n - 1, "{}", o.sql);
                // (QI: two subqueries around the union; PA: one.)
                let froms = if name == "quality-indicators" {
                    n + 2
                } else {
                    n + 1
                };
                assert_eq!(o.sql.matches(" FROM ").count(), froms, "{}", o.sql);
                assert!(
                    o.description.as_deref().is_some_and(|d| d.len() > 20),
                    "{name}/{}",
                    o.name
                );
                if o.sql.contains("WITH PRIVACY") {
                    let p = privacy(&o.sql);
                    let dp = spec
                        .dp
                        .iter()
                        .find(|d| d.output == o.name)
                        .unwrap_or_else(|| panic!("{name}/{}: no [[dp]]", o.name));
                    assert_eq!(p["epsilon"].parse::<f64>().unwrap(), dp.epsilon);
                    assert_eq!(p["delta"].parse::<f64>().unwrap(), dp.delta);
                    assert_eq!(p["person"], "pnr");
                    if o.name == "regions" {
                        let codes: Vec<String> = members
                            .iter()
                            .map(|m| m.region.unwrap().to_string())
                            .collect();
                        let groups: Vec<String> = p["groups"]
                            .trim_matches(|c| c == '(' || c == ')')
                            .split(',')
                            .map(|g| g.trim().to_string())
                            .collect();
                        assert_eq!(groups, codes);
                    }
                } else {
                    assert!(spec.dp.iter().all(|d| d.output != o.name));
                }
            }
        }
        assert!(spec
            .nodes
            .iter()
            .all(|n| n.fingerprint.starts_with("placeholder:")));
        spec
    }

    #[test]
    fn the_default_quality_indicators_are_generated_from_the_21_regions() {
        let members = default_members("quality-indicators").unwrap();
        assert_eq!(members.len(), 21);
        let text = get("quality-indicators").unwrap();
        assert_eq!(text, generate("quality-indicators", &members).unwrap());
        let spec = check_generated_text("quality-indicators", text, &members);
        assert_eq!(spec.recipients.len(), 22);
        assert_eq!(spec.recipients[0].id, "kvalitetsregister");
        let outputs: Vec<&str> = spec.recipients[0]
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(outputs, ["regions", "national"]);
        for (r, m) in spec.recipients[1..].iter().zip(&members) {
            assert_eq!(r.id, m.id);
            assert_eq!(r.organisation, m.organisation);
            assert_eq!(r.outputs.len(), 1);
            assert_eq!(r.outputs[0].name, "national");
        }
        let c = &spec.contributors;
        assert_eq!(
            (
                c[0].id.as_str(),
                c[0].organisation.as_str(),
                c[0].tables[0].name.as_str()
            ),
            ("region-01", "Region Stockholm", "region_01")
        );
        assert_eq!(
            (
                c[20].id.as_str(),
                c[20].organisation.as_str(),
                c[20].tables[0].name.as_str()
            ),
            ("region-21", "Region Norrbotten", "region_21")
        );
        assert_eq!(c[11].organisation, "Västra Götalandsregionen");
        assert!(text.contains(
            "groups = (1, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 17, 18, 19, 20, 21, 22, 23, 24, 25));"
        ));
        assert!(spec.purpose.contains("all 21 regions"));
        let dp: Vec<(&str, f64, f64)> = spec
            .dp
            .iter()
            .map(|d| (d.output.as_str(), d.epsilon, d.delta))
            .collect();
        assert_eq!(dp, [("regions", 1.0, 1e-6), ("national", 0.5, 1e-6)]);
        assert!(text.contains("Differential privacy: both outputs end in WITH PRIVACY"));
    }

    #[test]
    fn five_regions_give_five_tables_and_a_union_of_five() {
        let members = vec![
            region("sthlm", "Region Stockholm", 1),
            region("skane", "Region Skåne", 12),
            region("vgr", "Västra Götalandsregionen", 14),
            region("norr", "Region \"Norr\" \\ test", 25),
            region("gotland", "Region Gotland", 9),
        ];
        let text = generate("quality-indicators", &members).unwrap();
        let spec = check_generated_text("quality-indicators", &text, &members);
        let tables: Vec<&str> = spec
            .contributors
            .iter()
            .map(|c| c.tables[0].name.as_str())
            .collect();
        assert_eq!(
            tables,
            [
                "region_01",
                "region_02",
                "region_03",
                "region_04",
                "region_05"
            ]
        );
        assert_eq!(spec.recipients.len(), 6);
        let regions = &spec.recipients[0].outputs[0];
        assert_eq!(regions.sql.matches("SELECT * FROM region_").count(), 5);
        assert!(regions.sql.contains("groups = (1, 12, 14, 25, 9));"));
        assert!(text.contains("over the 5 regions"));
        assert!(spec.purpose.contains("all 5 regions"));
        // The analysis differs from the default one.
        assert_ne!(spec.id(), super::spec("quality-indicators").unwrap().id());
    }

    #[test]
    fn many_regions_wrap_the_groups_and_stop_at_the_limit() {
        let members: Vec<Member> = (1..=MAX_REGIONS as i64)
            .map(|i| region(&format!("r{i}"), &format!("Region {i}"), i * 10))
            .collect();
        let text = generate("quality-indicators", &members).unwrap();
        check_generated_text("quality-indicators", &text, &members);
        assert!(text.contains("region_64"));
        let mut more = members.clone();
        more.push(region("r65", "Region 65", 650));
        let e = generate("quality-indicators", &more)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 64"), "{e}");
    }

    #[test]
    fn parallel_assistance_for_three_is_the_reference_query() {
        let members = default_members("parallel-assistance").unwrap();
        let text = get("parallel-assistance").unwrap();
        assert_eq!(text, generate("parallel-assistance", &members).unwrap());
        let spec = check_generated_text("parallel-assistance", text, &members);
        assert_eq!(spec.recipients.len(), 1);
        assert_eq!(spec.contributors[2].id, "kommun3");
        assert_eq!(
            spec.contributors[2].organisation,
            "Socialnämnden i kommun 3"
        );
        // Byte for byte the hand-written query this generator replaced.
        assert_eq!(
            spec.recipients[0].outputs[0].sql,
            "SELECT pnr, manad, COUNT(DISTINCT kommun) AS kommuner FROM (\n  \
             SELECT pnr, manad, 1 AS kommun FROM bistand_1 UNION ALL SELECT pnr, manad, 2 FROM bistand_2\n  \
             UNION ALL SELECT pnr, manad, 3 FROM bistand_3) b GROUP BY pnr, manad HAVING COUNT(DISTINCT kommun) >= 2;\n"
        );
    }

    #[test]
    fn parallel_assistance_for_four_and_for_two() {
        let members: Vec<Member> = ["a", "b", "c", "d"]
            .iter()
            .map(|m| municipality(&format!("kommun-{m}"), &format!("Socialnämnden i {m}")))
            .collect();
        let text = generate("parallel-assistance", &members).unwrap();
        let spec = check_generated_text("parallel-assistance", &text, &members);
        let sql = &spec.recipients[0].outputs[0].sql;
        for k in 1..=4 {
            assert!(
                sql.contains(&format!(
                    "{k}{} FROM bistand_{k}",
                    if k == 1 { " AS kommun" } else { "" }
                )),
                "{sql}"
            );
            assert_eq!(
                spec.contributors[k - 1].tables[0].name,
                format!("bistand_{k}")
            );
        }
        assert_eq!(sql.matches("SELECT pnr, manad,").count(), 5);
        assert!(sql.contains("HAVING COUNT(DISTINCT kommun) >= 2;"));
        let two = generate("parallel-assistance", &members[..2]).unwrap();
        let spec2 = check_generated_text("parallel-assistance", &two, &members[..2]);
        assert!(spec2.recipients[0].outputs[0]
            .sql
            .contains("2 FROM bistand_2) b GROUP BY pnr, manad"));
    }

    #[test]
    fn lists_that_make_no_template_are_refused() {
        let ok = default_members("quality-indicators").unwrap();
        let refused = |name: &str, members: &[Member], field: &str, what: &str| {
            let e = generate(name, members).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(what), "{field} {what}: {e}");
        };
        refused("quality-indicators", &ok[..1], "contributors", "at least 2");
        refused("parallel-assistance", &[], "contributors", "at least 2");
        let mut l = ok.clone();
        l[3].id = "region 04".into();
        refused(
            "quality-indicators",
            &l,
            "contributors[3].id",
            "not a contributor id",
        );
        l[3].id = "nodes".into();
        refused("quality-indicators", &l, "contributors[3].id", "reserved");
        l[3].id = "kvalitetsregister".into();
        refused("quality-indicators", &l, "contributors[3].id", "recipient");
        l[3].id = "region-01".into();
        refused(
            "quality-indicators",
            &l,
            "contributors[3].id",
            "contributors[0]",
        );
        let mut l = ok.clone();
        l[5].region = Some(1);
        refused("quality-indicators", &l, "contributors[5].region", "twice");
        l[5].region = None;
        refused(
            "quality-indicators",
            &l,
            "contributors[5].region",
            "no region code",
        );
        let mut l = ok.clone();
        l[2].organisation = "  ".into();
        refused(
            "quality-indicators",
            &l,
            "contributors[2].organisation",
            "empty",
        );
        let mut pa = default_members("parallel-assistance").unwrap();
        pa[1].region = Some(3);
        refused(
            "parallel-assistance",
            &pa,
            "contributors[1].region",
            "no region",
        );
        pa[1].region = None;
        pa[1].id = "kontroll".into();
        refused(
            "parallel-assistance",
            &pa,
            "contributors[1].id",
            "control unit",
        );
        refused("opt-out", &ok, "contributors", "fixed set of contributors");
        let e = generate("nope", &ok).unwrap_err().to_string();
        assert!(e.contains("no template is called"), "{e}");
    }

    fn csv_err(name: &str, text: &str) -> String {
        parse_members(name, text, "list.csv")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_csv_list_is_read() {
        let text = "\u{feff}# the regions of the pilot\n\
                    id,organisation,region\r\n\
                    region-01, Region Stockholm ,01\r\n\
                    \n\
                    region-12,\"Region Skåne, \"\"Syd\"\"\",12\n";
        let m = parse_members("quality-indicators", text, "list.csv").unwrap();
        assert_eq!(
            m,
            [
                region("region-01", "Region Stockholm", 1),
                region("region-12", "Region Skåne, \"Syd\"", 12),
            ]
        );
        let spec = parse(&generate("quality-indicators", &m).unwrap());
        assert_eq!(spec.contributors[1].organisation, "Region Skåne, \"Syd\"");
        // Columns in any order; a semicolon where the header has no comma.
        let text =
            "organisation;ID\nSocialnämnden i Kiruna;kiruna\n\"Socialnämnden; Luleå\";lulea\n";
        let m = parse_members("parallel-assistance", text, "list.csv").unwrap();
        assert_eq!(
            m,
            [
                municipality("kiruna", "Socialnämnden i Kiruna"),
                municipality("lulea", "Socialnämnden; Luleå"),
            ]
        );
    }

    #[test]
    fn csv_problems_are_placed_at_line_and_column() {
        let qi = "quality-indicators";
        let head = "id,organisation,region\n";
        let cases: [(&str, String, &str, &str); 14] = [
            (qi, String::new(), "list.csv:1:1:", "no header line"),
            (
                qi,
                "id,organisation\na,A\nb,B\n".into(),
                "list.csv:1:1:",
                "no \"region\" column",
            ),
            (
                "parallel-assistance",
                format!("{head}a,A,1\nb,B,2\n"),
                "list.csv:1:17:",
                "takes no region column",
            ),
            (
                qi,
                "id,org,region\n".into(),
                "list.csv:1:4:",
                "unknown column \"org\"",
            ),
            (
                qi,
                "id,organisation,region,id\n".into(),
                "list.csv:1:24:",
                "named twice",
            ),
            (
                qi,
                format!("{head}a,A,1\nb c,B,2\n"),
                "list.csv:3:1:",
                "not a contributor id",
            ),
            (
                qi,
                format!("{head}a,A,1\nb,B,2\na,C,3\n"),
                "list.csv:4:1:",
                "first on line 2",
            ),
            (
                qi,
                format!("{head}a,A,1\nb,B,1\n"),
                "list.csv:3:5:",
                "region code 1 is given twice",
            ),
            (
                qi,
                format!("{head}a,A,1\nb,B,x2\n"),
                "list.csv:3:5:",
                "not a whole number",
            ),
            (
                qi,
                format!("{head}a,A,1\nb,B\n"),
                "list.csv:3:4:",
                "2 field(s) where the header has 3",
            ),
            (
                qi,
                format!("{head}a,A,1\nb,B,2,3\n"),
                "list.csv:3:7:",
                "quote a field",
            ),
            (
                qi,
                format!("{head}a,\"A,1\nb,B,2\n"),
                "list.csv:2:3:",
                "no closing",
            ),
            (
                qi,
                format!("{head}a,A \"x\",1\nb,B,2\n"),
                "list.csv:2:5:",
                "inside an unquoted field",
            ),
            (
                qi,
                format!("{head}a,,1\nb,B,2\n"),
                "list.csv:2:3:",
                "organisation is empty",
            ),
        ];
        for (name, text, at, what) in cases {
            let e = csv_err(name, &text);
            assert!(
                e.starts_with(at) && e.contains(what),
                "{text:?}: want {at} {what}: {e}"
            );
        }
        let e = csv_err(qi, &format!("{head}a,A,1\n"));
        assert!(
            e.starts_with("list.csv: ") && e.contains("at least 2"),
            "{e}"
        );
        let e = csv_err("opt-out", "id,organisation\na,A\nb,B\n");
        assert!(e.contains("fixed set of contributors"), "{e}");
    }

    /// `templates/<name>.toml` of a generated template is a copy of the
    /// generator's output; `KUVERT_BLESS_TEMPLATES=1` rewrites it.
    #[test]
    fn the_repository_copies_are_the_generated_text() {
        for name in GENERATED {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../templates/{name}.toml"));
            let text = get(name).unwrap();
            if std::env::var_os("KUVERT_BLESS_TEMPLATES").is_some() {
                std::fs::write(&path, text).unwrap();
            }
            let file = std::fs::read_to_string(&path).unwrap();
            assert!(
                file == text,
                "templates/{name}.toml is not the generator's output: it is generated from \
                 templates.rs, edit that and run `KUVERT_BLESS_TEMPLATES=1 cargo test -p kuvert-gov templates`"
            );
        }
    }
}
