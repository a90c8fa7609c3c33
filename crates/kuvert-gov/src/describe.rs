//! The DPIA text of an analysis: what a legal officer needs, in words.
//!
//! [`describe`] builds one document (headings, paragraphs, lists, tables)
//! and writes it as Markdown or as a self-contained HTML page (`lang`
//! attribute, one `h1`, nested headings, table headers with `scope`, no
//! scripts, styles or external resources).
//!
//! [`approval_summary`] (and [`approval_summary_html`]) is the shorter text
//! a contributor reads before approving: everything the approval binds,
//! each output's SQL in full, every key with its fingerprint.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::approval::{approval_status, Approval, ApprovalState};
use crate::audit::AuditRecord;
use crate::keys::KemPublicKey;
use crate::spec::{
    decode_key32, AnalysisSpec, Deadline, Output, Recipient, PLACEHOLDER_PREFIX,
    PROTOCOL_RSS3_MALICIOUS, PROTOCOL_RSS3_SEMI_HONEST,
};

/// Output format of [`describe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

enum Block {
    H(u8, String),
    P(String),
    List(Vec<String>),
    Table(Vec<String>, Vec<Vec<String>>),
}

/// The DPIA text for `spec`, with the approval state of `approvals` and
/// the audit records about this analysis among `audit`.
pub fn describe(
    spec: &AnalysisSpec,
    approvals: &[Approval],
    audit: &[AuditRecord],
    format: Format,
) -> String {
    let doc = build(spec, approvals, audit);
    let title = format!("Data protection description: {}", spec.name);
    match format {
        Format::Markdown => markdown(&title, &doc),
        Format::Html => html(&title, &doc),
    }
}

fn build(spec: &AnalysisSpec, approvals: &[Approval], audit: &[AuditRecord]) -> Vec<Block> {
    use Block::*;
    let id = spec.id();
    let mut d = vec![P(format!(
        "Analysis id (SHA-256 of the canonical spec; every approval signs it): {id}"
    ))];

    d.push(H(2, "Purpose".into()));
    d.push(P(spec.purpose.trim().into()));

    d.push(H(2, "Legal basis".into()));
    d.push(P(format!(
        "{}: {}",
        spec.legal_basis.reference.trim(),
        spec.legal_basis.text.trim()
    )));

    d.push(H(2, "Controllers and processors".into()));
    let mut roles: Vec<String> = spec
        .contributors
        .iter()
        .map(|c| {
            format!(
                "{} ({}) contributes data; its controller is {}.",
                c.organisation, c.id, c.controller
            )
        })
        .collect();
    for r in &spec.recipients {
        if spec.contributor(&r.id).is_none() {
            roles.push(format!(
                "{} ({}) receives results and contributes no data.",
                r.organisation, r.id
            ));
        }
    }
    roles.push(
        "The service operator runs the coordinator (catalogue, approvals, scheduling, audit) as a \
         processor: it never holds keys, shares or results, and cannot read any input or output."
            .into(),
    );
    roles.push(
        "Three independent compute nodes hold secret shares of the data and compute on them \
         (protocol "
            .to_string()
            + &spec.protocol
            + "); no single node can reconstruct any value, as long as at most one of them is corrupted.",
    );
    d.push(List(roles));

    d.push(H(2, "Inputs".into()));
    let mut rows = Vec::new();
    for c in &spec.contributors {
        for t in &c.tables {
            let cols = kuvert_data::Schema::parse_compact(t.schema.trim())
                .map(|s| {
                    s.columns()
                        .iter()
                        .map(|c| format!("{} ({})", c.name, c.ty))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|_| t.schema.clone());
            rows.push(vec![c.organisation.clone(), t.name.clone(), cols]);
        }
    }
    d.push(Table(
        vec![
            "Contributor".into(),
            "Table".into(),
            "Columns (type)".into(),
        ],
        rows,
    ));

    d.push(H(2, "What each party learns".into()));
    d.push(H(3, "Compute nodes".into()));
    let node_leaks: Vec<&str> = spec
        .leakage_opt_ins
        .iter()
        .filter(|l| l.learned_by.iter().any(|w| w == "nodes"))
        .map(|l| l.name.as_str())
        .collect();
    d.push(P(format!(
        "Each node learns the number of rows of each input table and nothing else{}. It never sees \
         a value in the clear and cannot read the results, which are encrypted to their recipients.",
        if node_leaks.is_empty() {
            String::new()
        } else {
            format!(" except the leakage opted into below ({})", node_leaks.join(", "))
        }
    )));
    for r in &spec.recipients {
        d.push(H(3, format!("{} ({})", r.organisation, r.id)));
        let mut items: Vec<String> = r
            .outputs
            .iter()
            .map(|o| match &o.description {
                Some(desc) => format!("Output \"{}\": {}", o.name, desc.trim()),
                None => format!("Output \"{}\": the result of its query.", o.name),
            })
            .collect();
        items.push(
            "The number of result rows is padded to a bound that depends only on the input sizes; \
             padding rows carry no information."
                .into(),
        );
        for l in &spec.leakage_opt_ins {
            if l.learned_by.contains(&r.id) {
                items.push(format!(
                    "Opted-in leakage \"{}\": {}",
                    l.name,
                    l.statement.trim()
                ));
            }
        }
        d.push(P(format!(
            "{} learns only its outputs, named here, and nothing else about any input:",
            r.organisation
        )));
        d.push(List(items));
    }
    let silent: Vec<String> = spec
        .contributors
        .iter()
        .filter(|c| spec.recipient(&c.id).is_none())
        .map(|c| {
            let extra: Vec<&str> = spec
                .leakage_opt_ins
                .iter()
                .filter(|l| l.learned_by.contains(&c.id))
                .map(|l| l.name.as_str())
                .collect();
            if extra.is_empty() {
                format!(
                    "{} ({}) learns nothing: it receives no output.",
                    c.organisation, c.id
                )
            } else {
                format!(
                    "{} ({}) receives no output; it learns only the opted-in leakage {}.",
                    c.organisation,
                    c.id,
                    extra.join(", ")
                )
            }
        })
        .collect();
    if !silent.is_empty() {
        d.push(H(3, "Contributors without outputs".into()));
        d.push(List(silent));
    }
    d.push(H(3, "Leakage opt-ins".into()));
    if spec.leakage_opt_ins.is_empty() {
        d.push(P(
            "None. The parties learn only the declared outputs and the sizes of the inputs.".into(),
        ));
    } else {
        d.push(Table(
            vec![
                "Name".into(),
                "Learned by".into(),
                "What is revealed".into(),
            ],
            spec.leakage_opt_ins
                .iter()
                .map(|l| {
                    vec![
                        l.name.clone(),
                        l.learned_by.join(", "),
                        l.statement.trim().to_string(),
                    ]
                })
                .collect(),
        ));
    }

    d.push(H(2, "Differential privacy".into()));
    if spec.dp.is_empty() {
        d.push(P(
            "No differential-privacy noise is declared: outputs are exact. Consider whether an output \
             could single out a person (small counts, a list of identities); such outputs need their \
             own legal basis."
                .into(),
        ));
    } else {
        let total: f64 = spec.dp.iter().map(|x| x.epsilon).sum();
        let total_delta: f64 = spec.dp.iter().map(|x| x.delta).sum();
        let mut rows: Vec<Vec<String>> = spec
            .dp
            .iter()
            .map(|x| {
                vec![
                    x.output.clone(),
                    format!("{}", x.epsilon),
                    format!("{}", x.delta),
                ]
            })
            .collect();
        rows.push(vec![
            "Total (basic composition)".into(),
            format!("{total}"),
            format!("{total_delta}"),
        ]);
        d.push(P(
            "Noise is generated inside the MPC: no node knows it. Privacy loss spent by this analysis:"
                .into(),
        ));
        d.push(Table(vec!["Output".into(), "ε".into(), "δ".into()], rows));
        let plain: Vec<&str> = spec
            .recipients
            .iter()
            .flat_map(|r| r.outputs.iter())
            .filter(|o| !spec.dp.iter().any(|x| x.output == o.name))
            .map(|o| o.name.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !plain.is_empty() {
            d.push(P(format!(
                "Outputs without noise (exact): {}.",
                plain.join(", ")
            )));
        }
    }

    d.push(H(2, "Retention and deletion".into()));
    let deadline = match &spec.retention.result_deadline {
        Deadline::Days(n) => format!(
            "{n} days after the job ends (if the job never runs or fails, the shares are deleted \
             {n} days after the analysis was registered at the nodes)"
        ),
        Deadline::At(t) => format!("until {t}"),
    };
    d.push(List(vec![
        if spec.retention.delete_shares_at_job_end {
            "Input shares, intermediate state and session keys are deleted on every node when the \
             job ends."
                .to_string()
        } else {
            format!(
                "Input shares, intermediate state and session keys are kept until the result deadline \
                 ({deadline}) and then deleted on every node."
            )
        },
        format!("Sealed results can be fetched by their recipients {deadline}; then they are deleted."),
        "Each node signs a deletion receipt and logs the deletion in its audit log.".into(),
    ]));

    d.push(H(2, "Approvals".into()));
    let status = approval_status(spec, approvals);
    let all = status.iter().all(|(_, s)| *s == ApprovalState::Approved)
        && status.len() == spec.contributors.len();
    d.push(P(if all {
        "Every contributor has approved this exact analysis id with the key named in the spec: the \
         nodes may accept input."
            .into()
    } else {
        "Not every contributor has approved this analysis id: the nodes refuse input and execution."
            .into()
    }));
    d.push(Table(
        vec!["Contributor".into(), "State".into()],
        status
            .into_iter()
            .map(|(c, s)| {
                vec![
                    c,
                    match s {
                        ApprovalState::Approved => "approved (signature verified)".into(),
                        ApprovalState::Missing => "not yet approved".into(),
                        ApprovalState::Invalid(why) => format!("refused: {why}"),
                    },
                ]
            })
            .collect(),
    ));

    d.push(H(2, "Audit trail".into()));
    let mine: Vec<&AuditRecord> = audit.iter().filter(|r| r.analysis_id == Some(id)).collect();
    if mine.is_empty() {
        d.push(P("No audit records about this analysis yet.".into()));
    } else {
        d.push(P(format!(
            "{} records about this analysis, from verified hash chains (sizes and counts only, never values):",
            mine.len()
        )));
        d.push(Table(
            vec![
                "Time".into(),
                "Actor".into(),
                "Action".into(),
                "Job".into(),
                "Details".into(),
            ],
            mine.iter()
                .map(|r| {
                    vec![
                        r.time.clone(),
                        r.actor.clone(),
                        r.action.clone(),
                        r.job.clone().unwrap_or_default(),
                        r.details
                            .iter()
                            .map(|(k, v)| match v {
                                serde_json::Value::String(s) => format!("{k}: {s}"),
                                other => format!("{k}: {other}"),
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    ]
                })
                .collect(),
        ));
    }

    d.push(H(2, "Contact".into()));
    d.push(P(spec.contact.trim().into()));
    d
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(title: &str, doc: &[Block]) -> String {
    let mut s = format!("# {title}\n\n");
    for b in doc {
        match b {
            Block::H(level, t) => {
                let _ = writeln!(s, "{} {t}\n", "#".repeat(*level as usize));
            }
            Block::P(t) => {
                let _ = writeln!(s, "{t}\n");
            }
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(s, "- {}", i.replace('\n', " "));
                }
                s.push('\n');
            }
            Block::Table(head, rows) => {
                let cells = |r: &[String]| {
                    format!(
                        "| {} |",
                        r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    )
                };
                let _ = writeln!(s, "{}", cells(head));
                let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
                for r in rows {
                    let _ = writeln!(s, "{}", cells(r));
                }
                s.push('\n');
            }
        }
    }
    s
}

/// Escape text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(title: &str, doc: &[Block]) -> String {
    let e = escape_html;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
        e(title),
        e(title)
    );
    for b in doc {
        match b {
            Block::H(level, t) => {
                let _ = writeln!(s, "<h{level}>{}</h{level}>", e(t));
            }
            Block::P(t) => {
                let _ = writeln!(s, "<p>{}</p>", e(t));
            }
            Block::List(items) => {
                s.push_str("<ul>\n");
                for i in items {
                    let _ = writeln!(s, "<li>{}</li>", e(i));
                }
                s.push_str("</ul>\n");
            }
            Block::Table(head, rows) => {
                s.push_str("<table>\n<thead>\n<tr>");
                for h in head {
                    let _ = write!(s, "<th scope=\"col\">{}</th>", e(h));
                }
                s.push_str("</tr>\n</thead>\n<tbody>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for c in r {
                        let _ = write!(s, "<td>{}</td>", e(c));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</tbody>\n</table>\n");
            }
        }
    }
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

// ---- the approval summary ------------------------------------------------

/// How many hex digits of a key's SHA-256 [`key_fingerprint`] shows (128
/// bits: short enough to read out over the phone, long enough that nobody
/// can make another key with the same fingerprint).
pub const KEY_FINGERPRINT_HEX: usize = 32;

/// The short fingerprint of a public key as a spec writes it (an Ed25519
/// key in hex or base64, or a recipient's X-Wing result key in base64): the
/// first [`KEY_FINGERPRINT_HEX`] lowercase hex digits of the SHA-256 of the
/// key's raw bytes (32 for Ed25519, 1216 for X-Wing), so the same key
/// written in hex or in any base64 alphabet has the same fingerprint.
/// `None` for a placeholder or for text that is neither key. A party
/// compares it with the key holder out of band (phone, letter) before
/// approving.
pub fn key_fingerprint(key: &str) -> Option<String> {
    let bytes = match decode_key32(key) {
        Some(k) => k.to_vec(),
        None => KemPublicKey::parse(key)?.to_bytes(),
    };
    let digest = Sha256::digest(&bytes);
    let mut fp = crate::hex::encode(&digest);
    fp.truncate(KEY_FINGERPRINT_HEX);
    Some(fp)
}

/// What a contributor approves, in plain text: the analysis id, name,
/// purpose and legal basis; the full SQL of every output with its
/// recipients and their key fingerprints; the three compute nodes (operator
/// and key fingerprint); ε and δ of each differentially private output and,
/// plainly, which outputs are exact; the leakage opt-ins; retention; the
/// contributors with their tables and keys; the protocol. `kuvert analysis
/// approve` prints it before it asks. Every value is printed as the spec
/// writes it (SQL verbatim, not re-indented).
pub fn approval_summary(spec: &AnalysisSpec) -> String {
    summary_text(&summary(spec))
}

/// [`approval_summary`] as an HTML fragment (one `<section>`, headings
/// `h2` to `h4`, no scripts, styles or attributes other than `class`) for
/// a page that embeds it, e.g. the web console. Every value is escaped.
pub fn approval_summary_html(spec: &AnalysisSpec) -> String {
    summary_html(&summary(spec))
}

/// The approval summary as data: a title, lead paragraphs, sections.
struct Summary {
    title: String,
    lead: Vec<String>,
    sections: Vec<Section>,
}

struct Section {
    title: String,
    paras: Vec<String>,
    fields: Vec<(String, String)>,
    entries: Vec<Entry>,
}

/// One thing in a section (an output, a contributor, a node): its fields
/// and, for outputs, its SQL.
struct Entry {
    title: String,
    fields: Vec<(String, String)>,
    code: Option<(String, String)>,
}

impl Section {
    fn new(title: impl Into<String>) -> Section {
        Section {
            title: title.into(),
            paras: Vec::new(),
            fields: Vec::new(),
            entries: Vec::new(),
        }
    }
}

fn field(label: &str, value: impl Into<String>) -> (String, String) {
    (label.to_string(), value.into())
}

/// A key as the spec writes it (and an Ed25519 key's hex form when written
/// otherwise).
fn key_value(kind: &str, raw: &str) -> String {
    let raw = raw.trim();
    if raw.starts_with(PLACEHOLDER_PREFIX) {
        return format!("{raw} (a placeholder, not a key: this spec cannot be approved yet)");
    }
    if kind == KEM {
        return match KemPublicKey::parse(raw) {
            Some(_) => raw.to_string(),
            None => format!("{raw} (NOT a valid {kind} key)"),
        };
    }
    match decode_key32(raw) {
        Some(bytes) => {
            let hex = crate::hex::encode(&bytes);
            if hex == raw {
                raw.to_string()
            } else {
                format!("{raw} (hex {hex})")
            }
        }
        None => format!("{raw} (NOT a valid {kind} key)"),
    }
}

/// How the summary names a recipient's result key.
const KEM: &str = "X-Wing (ML-KEM-768 + X25519)";

fn fingerprint_value(raw: &str) -> String {
    match key_fingerprint(raw) {
        Some(fp) => format!("SHA-256 {fp}"),
        None => "none (not a key)".into(),
    }
}

fn deadline_text(d: &Deadline) -> String {
    match d {
        Deadline::Days(n) => format!(
            "{n} days after the job ends (a job that never ends: {n} days after registration at the nodes)"
        ),
        Deadline::At(t) => format!("at {t}"),
    }
}

/// The distinct outputs in the order the spec first names them, each with
/// the recipients that read it.
fn distinct_outputs(spec: &AnalysisSpec) -> Vec<(&Output, Vec<&Recipient>)> {
    let mut out: Vec<(&Output, Vec<&Recipient>)> = Vec::new();
    for r in &spec.recipients {
        for o in &r.outputs {
            match out.iter_mut().find(|(x, _)| x.name == o.name) {
                Some((_, rs)) => rs.push(r),
                None => out.push((o, vec![r])),
            }
        }
    }
    out
}

fn summary(spec: &AnalysisSpec) -> Summary {
    let id = spec.id();
    let outputs = distinct_outputs(spec);
    let dp_of = |name: &str| spec.dp.iter().find(|d| d.output == name);
    let privacy = |name: &str| match dp_of(name) {
        Some(d) => format!(
            "differentially private: ε = {}, δ = {} (noise drawn inside the MPC)",
            d.epsilon, d.delta
        ),
        None => "EXACT: no differential privacy; the recipients get the true result, \
                 without noise"
            .into(),
    };

    let lead = vec![format!(
        "You are asked to approve analysis {id}. Approving signs this id with your Ed25519 key. \
         The id is the SHA-256 of the canonical spec, so your signature covers exactly what is \
         listed here; any change to any of it gives another id, which your approval does not \
         cover. Compare the keys and fingerprints with their holders out of band before you \
         approve."
    )];

    let mut a = Section::new("Analysis");
    a.fields = vec![
        field("analysis id", id.to_hex()),
        field("name", spec.name.as_str()),
        field("purpose", spec.purpose.as_str()),
        field("legal basis", spec.legal_basis.reference.as_str()),
        field("legal basis text", spec.legal_basis.text.as_str()),
        field("contact", spec.contact.as_str()),
    ];

    let mut o = Section::new(format!("Outputs ({})", outputs.len()));
    o.paras.push(
        "What leaves the computation: each output is a query computed under MPC on the shares; \
         its result is sealed to the recipients named and nobody else (no node, not the \
         coordinator) can read it."
            .into(),
    );
    for (out, rs) in &outputs {
        let mut fields = vec![field(
            "read by",
            rs.iter()
                .map(|r| format!("{} ({})", r.id, r.organisation))
                .collect::<Vec<_>>()
                .join(", "),
        )];
        // The full result keys are under Recipients; here their
        // fingerprints, to compare.
        for r in rs {
            fields.push(field(
                &format!("{} result key fingerprint", r.id),
                fingerprint_value(&r.kem_public_key),
            ));
        }
        fields.push(field("privacy", privacy(&out.name)));
        if let Some(d) = &out.description {
            fields.push(field("description", d.as_str()));
        }
        o.entries.push(Entry {
            title: format!("output {}", out.name),
            fields,
            code: Some((format!("SQL of output {}", out.name), out.sql.clone())),
        });
    }

    let mut dp = Section::new("Differential privacy");
    let exact: Vec<&str> = outputs
        .iter()
        .filter(|(x, _)| dp_of(&x.name).is_none())
        .map(|(x, _)| x.name.as_str())
        .collect();
    dp.paras.push(if spec.dp.is_empty() {
        "No output is differentially private: every output is EXACT.".into()
    } else if exact.is_empty() {
        "Every output is differentially private.".into()
    } else {
        format!(
            "Exact outputs, without any differential privacy: {}.",
            exact.join(", ")
        )
    });
    for (out, _) in &outputs {
        dp.fields.push(field(
            &out.name,
            match dp_of(&out.name) {
                Some(d) => format!("ε = {}, δ = {}", d.epsilon, d.delta),
                None => "exact (no differential privacy)".into(),
            },
        ));
    }
    if !spec.dp.is_empty() {
        let eps: f64 = spec.dp.iter().map(|d| d.epsilon).sum();
        let delta: f64 = spec.dp.iter().map(|d| d.delta).sum();
        dp.fields.push(field(
            "total (basic composition)",
            format!("ε = {eps}, δ = {delta}"),
        ));
        // Where the nodes charge it: each contributor's datasets.
        let mut accounts = Vec::new();
        for c in &spec.contributors {
            let mut per: Vec<(String, Vec<&str>)> = Vec::new();
            for t in &c.tables {
                let d = t.dataset_id().to_string();
                match per.iter_mut().find(|(x, _)| *x == d) {
                    Some((_, ts)) => ts.push(&t.name),
                    None => per.push((d, vec![&t.name])),
                }
            }
            for (d, ts) in per {
                accounts.push(format!("{}: dataset {d} (tables {})", c.id, ts.join(", ")));
            }
        }
        dp.fields.push(field(
            "budgets charged",
            format!(
                "each node charges every DP output, when the computation starts, to the dataset of \
                 every table it reads, and refuses it unless the contributor's own signed limit \
                 (kuvert budget set) allows it: {}",
                accounts.join("; ")
            ),
        ));
    }

    let mut lk = Section::new("Leakage opt-ins");
    if spec.leakage_opt_ins.is_empty() {
        lk.paras.push(
            "None: the parties learn only the declared outputs and the number of rows of each \
             input table."
                .into(),
        );
    } else {
        lk.paras.push(
            "Beyond the outputs and the input sizes, the parties accept this leakage:".into(),
        );
        for l in &spec.leakage_opt_ins {
            lk.entries.push(Entry {
                title: format!("leakage {}", l.name),
                fields: vec![
                    field("name", l.name.as_str()),
                    field("learned by", l.learned_by.join(", ")),
                    field("statement", l.statement.as_str()),
                ],
                code: None,
            });
        }
    }

    let mut ret = Section::new("Retention");
    let deadline = deadline_text(&spec.retention.result_deadline);
    ret.fields = vec![
        field(
            "delete shares at job end",
            if spec.retention.delete_shares_at_job_end {
                "yes: every node deletes the input shares, intermediate state and session keys \
                 when the job ends"
                    .to_string()
            } else {
                format!(
                    "no: input shares, intermediate state and session keys are kept until the \
                     result deadline ({deadline}), then deleted"
                )
            },
        ),
        field(
            "result deadline",
            format!("{deadline}: until then the recipients can fetch the sealed results; then they are deleted"),
        ),
    ];

    let mut n = Section::new(format!("Compute nodes ({})", spec.nodes.len()));
    if spec.nodes.is_empty() {
        n.paras
            .push("This spec names no compute nodes: no node accepts it.".into());
    } else {
        n.paras.push(
            "Your data goes, as secret shares, only to these nodes, each pinned by the SHA-256 of \
             its TLS certificate's public key. Compare each fingerprint with its operator (`kuvert \
             pki fingerprint node-I.crt`)."
                .into(),
        );
    }
    for (i, node) in spec.nodes.iter().enumerate() {
        n.entries.push(Entry {
            title: format!("node {i}: {}", node.operator),
            fields: vec![
                field("operator", node.operator.as_str()),
                field("fingerprint", node.fingerprint.as_str()),
                field(
                    "client address",
                    node.endpoint.as_deref().unwrap_or(
                        "not named (taken from the coordinator; the pinned key decides)",
                    ),
                ),
            ],
            code: None,
        });
    }

    let mut c = Section::new(format!("Contributors ({})", spec.contributors.len()));
    c.paras.push(
        "Each contributor approves this id with the Ed25519 key named here; the nodes accept data \
         only when every one of them has."
            .into(),
    );
    for x in &spec.contributors {
        let mut fields = vec![
            field("id", x.id.as_str()),
            field("organisation", x.organisation.as_str()),
            field("controller", x.controller.as_str()),
            field("Ed25519 key", key_value("Ed25519", &x.public_key)),
            field("Ed25519 fingerprint", fingerprint_value(&x.public_key)),
        ];
        for t in &x.tables {
            fields.push(field(&format!("table {}", t.name), t.schema.as_str()));
        }
        c.entries.push(Entry {
            title: format!("contributor {}: {}", x.id, x.organisation),
            fields,
            code: None,
        });
    }

    let mut r = Section::new(format!("Recipients ({})", spec.recipients.len()));
    for x in &spec.recipients {
        let mut fields = vec![
            field("id", x.id.as_str()),
            field("organisation", x.organisation.as_str()),
            field(
                "result key fingerprint",
                fingerprint_value(&x.kem_public_key),
            ),
        ];
        if let Some(me) = spec.contributor(&x.id) {
            fields.push(field("Ed25519 key", key_value("Ed25519", &me.public_key)));
            fields.push(field(
                "Ed25519 fingerprint",
                fingerprint_value(&me.public_key),
            ));
        }
        fields.push(field(
            "outputs",
            x.outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
        // Last: 1624 characters of base64.
        fields.push(field("result key", key_value(KEM, &x.kem_public_key)));
        r.entries.push(Entry {
            title: format!("recipient {}: {}", x.id, x.organisation),
            fields,
            code: None,
        });
    }

    let mut p = Section::new("Protocol");
    p.fields.push(field("protocol", spec.protocol.as_str()));
    p.paras.push(if spec.protocol == PROTOCOL_RSS3_SEMI_HONEST {
        "Replicated secret sharing over the three nodes, honest majority, semi-honest: no single \
         node sees any value in the clear. Two colluding nodes, or a node that deviates from the \
         protocol, break this guarantee."
            .into()
    } else if spec.protocol == PROTOCOL_RSS3_MALICIOUS {
        "Replicated secret sharing over the three nodes, honest majority, secure with abort \
         against one node that deviates from the protocol: no single node sees any value in the \
         clear, and a node that sends wrong messages or computes on wrong shares makes the job \
         stop with nothing released (every check passed before a result leaves the nodes; DP \
         noise drawn by pairs of nodes, so no node can weaken it). A deviating node can still \
         make the job fail. Two colluding nodes break both guarantees. It costs more time \
         than the semi-honest protocol (docs/protocols.md)."
            .into()
    } else {
        "An unknown protocol: the nodes refuse it.".into()
    });

    // The gist again, next to the question that follows the summary.
    let mut short = Section::new("In short");
    for (out, rs) in &outputs {
        short.fields.push(field(
            &format!("output {}", out.name),
            format!(
                "{}, to {}",
                match dp_of(&out.name) {
                    Some(d) => format!("ε = {}, δ = {}", d.epsilon, d.delta),
                    None => "EXACT (no differential privacy)".into(),
                },
                rs.iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    short.fields.push(field(
        "leakage opt-ins",
        if spec.leakage_opt_ins.is_empty() {
            "none".to_string()
        } else {
            spec.leakage_opt_ins
                .iter()
                .map(|l| format!("{} (learned by {})", l.name, l.learned_by.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        },
    ));
    short.fields.push(field(
        "retention",
        format!(
            "shares deleted {}; results deleted {deadline}",
            if spec.retention.delete_shares_at_job_end {
                "at job end"
            } else {
                "at the result deadline"
            }
        ),
    ));
    short.fields.push(field(
        "nodes",
        spec.nodes
            .iter()
            .map(|n| n.operator.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    ));
    short.fields.push(field("analysis id", id.to_hex()));

    Summary {
        title: format!("Approval summary: analysis {}", spec.name),
        lead,
        sections: vec![a, o, dp, lk, ret, n, c, r, p, short],
    }
}

/// `s` with every character that could hide or rearrange text on a
/// terminal or a page shown as a visible escape (`<U+202E>`): control
/// characters other than newline and tab (ANSI escapes, carriage return)
/// and the bidirectional overrides and isolates ("Trojan Source"). What
/// the approver reads is then what the id covers.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hidden(c) {
            let _ = write!(out, "<U+{:04X}>", c as u32);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `label: value` lines, labels padded to one width; a value of several
/// lines starts on the line after its label and is printed as it is.
fn text_fields(s: &mut String, indent: &str, fields: &[(String, String)]) {
    let width = fields
        .iter()
        .filter(|(_, v)| !v.contains('\n'))
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    for (label, value) in fields {
        let (label, value) = (visible(label), visible(value));
        if value.contains('\n') {
            let _ = writeln!(s, "{indent}{label}:");
            s.push_str(&value);
            if !value.ends_with('\n') {
                s.push('\n');
            }
        } else {
            let pad = width.saturating_sub(label.chars().count());
            let _ = writeln!(s, "{indent}{label}:{} {value}", " ".repeat(pad));
        }
    }
}

fn summary_text(doc: &Summary) -> String {
    let v = visible;
    let mut s = String::new();
    let _ = writeln!(s, "{}", v(&doc.title));
    let _ = writeln!(s, "{}\n", "=".repeat(v(&doc.title).chars().count()));
    for p in &doc.lead {
        let _ = writeln!(s, "{}\n", v(p));
    }
    for sec in &doc.sections {
        let _ = writeln!(s, "{}", v(&sec.title));
        let _ = writeln!(s, "{}", "-".repeat(v(&sec.title).chars().count()));
        for p in &sec.paras {
            let _ = writeln!(s, "{}", v(p));
        }
        text_fields(&mut s, "", &sec.fields);
        for e in &sec.entries {
            let _ = writeln!(s, "\n* {}", v(&e.title));
            text_fields(&mut s, "    ", &e.fields);
            if let Some((label, code)) = &e.code {
                let (label, code) = (v(label), v(code));
                let _ = writeln!(s, "    ----- {label} (full text) -----");
                s.push_str(&code);
                if !code.ends_with('\n') {
                    s.push('\n');
                }
                let _ = writeln!(s, "    ----- end of {label} -----");
            }
        }
        s.push('\n');
    }
    s
}

/// Escaped for HTML, hidden characters made [`visible`].
fn esc(s: &str) -> String {
    escape_html(&visible(s))
}

fn html_fields(s: &mut String, fields: &[(String, String)]) {
    if fields.is_empty() {
        return;
    }
    s.push_str("<dl>\n");
    for (label, value) in fields {
        let _ = writeln!(s, "<dt>{}</dt><dd>{}</dd>", esc(label), esc(value));
    }
    s.push_str("</dl>\n");
}

fn summary_html(doc: &Summary) -> String {
    let e = esc;
    let mut s = String::from("<section class=\"kuvert-approval-summary\">\n");
    let _ = writeln!(s, "<h2>{}</h2>", e(&doc.title));
    for p in &doc.lead {
        let _ = writeln!(s, "<p>{}</p>", e(p));
    }
    for sec in &doc.sections {
        s.push_str("<section>\n");
        let _ = writeln!(s, "<h3>{}</h3>", e(&sec.title));
        for p in &sec.paras {
            let _ = writeln!(s, "<p>{}</p>", e(p));
        }
        html_fields(&mut s, &sec.fields);
        for x in &sec.entries {
            let _ = writeln!(s, "<h4>{}</h4>", e(&x.title));
            html_fields(&mut s, &x.fields);
            if let Some((label, code)) = &x.code {
                let _ = writeln!(s, "<p>{} (full text):</p>", e(label));
                let _ = writeln!(s, "<pre><code>{}</code></pre>", e(code));
            }
        }
        s.push_str("</section>\n");
    }
    s.push_str("</section>\n");
    s
}

#[cfg(test)]
mod approval_summary_tests {
    use super::*;
    use crate::spec::{DpOutput, LeakageOptIn, SpecNode, Validation};
    use crate::PartyKey;

    /// The overlapping-benefits template with real keys, three nodes, an
    /// endpoint, a DP output, a leakage opt-in and markup in its texts.
    fn spec() -> AnalysisSpec {
        let mut s = crate::templates::spec("overlapping-benefits").unwrap();
        let fk = PartyKey::generate("fk");
        let kommun = PartyKey::generate("kommun");
        let kontroll = PartyKey::generate("kontroll");
        s.contributors[0].public_key = fk.public().ed25519;
        s.contributors[1].public_key = kommun.public().ed25519;
        s.recipients[0].kem_public_key = fk.public().kem.unwrap();
        s.recipients[1].kem_public_key = kommun.public().kem.unwrap();
        s.recipients[2].kem_public_key = kontroll.public().kem.unwrap();
        s.contact = "mpc-analys@fk.example".into();
        s.purpose = "Find <script>alert(1)</script> overlaps & \"more\"".into();
        s.recipients[2].outputs[0].sql =
            "SELECT DISTINCT f.pnr FROM fk f WHERE f.belopp < 10 AND '<script>' <> ''".into();
        s.nodes = ['a', 'b', 'c']
            .iter()
            .enumerate()
            .map(|(i, c)| SpecNode {
                operator: format!("Operator {i} AB"),
                fingerprint: std::iter::repeat_n(*c, 64).collect(),
                endpoint: (i == 1).then(|| "node1.example:7100".to_string()),
            })
            .collect();
        s.dp.push(DpOutput {
            output: "persons".into(),
            epsilon: 0.5,
            delta: 0.000001,
        });
        s.leakage_opt_ins.push(LeakageOptIn {
            name: "join-equality-pattern".into(),
            learned_by: vec!["nodes".into(), "kontroll".into()],
            statement: "which pseudonymised keys are equal".into(),
        });
        s.validate(Validation::Strict).unwrap();
        s
    }

    #[test]
    fn every_field_appears() {
        let s = spec();
        let text = approval_summary(&s);
        let mut want: Vec<String> = vec![
            s.id().to_hex(),
            s.name.clone(),
            s.purpose.clone(),
            s.legal_basis.reference.clone(),
            s.legal_basis.text.clone(),
            s.contact.clone(),
            s.protocol.clone(),
            "30 days after the job ends".into(),
            "ε = 0.5, δ = 0.000001".into(),
            "EXACT".into(),
            "Exact outputs, without any differential privacy: ids.".into(),
            "node1.example:7100".into(),
        ];
        for c in &s.contributors {
            want.extend([
                c.id.clone(),
                c.organisation.clone(),
                c.controller.clone(),
                c.public_key.clone(),
                key_fingerprint(&c.public_key).unwrap(),
            ]);
            for t in &c.tables {
                want.extend([t.name.clone(), t.schema.clone()]);
            }
        }
        for r in &s.recipients {
            want.extend([
                r.id.clone(),
                r.organisation.clone(),
                r.kem_public_key.clone(),
                key_fingerprint(&r.kem_public_key).unwrap(),
            ]);
            for o in &r.outputs {
                want.extend([
                    o.name.clone(),
                    o.sql.clone(),
                    o.description.clone().unwrap(),
                ]);
            }
        }
        for n in &s.nodes {
            want.extend([n.operator.clone(), n.fingerprint.clone()]);
        }
        for l in &s.leakage_opt_ins {
            want.extend([l.name.clone(), l.learned_by.join(", "), l.statement.clone()]);
        }
        for w in &want {
            assert!(text.contains(w.as_str()), "missing {w:?} in\n{text}");
        }
        assert!(text.contains("delete shares at job end: yes"), "{text}");
        // Every output's SQL once, verbatim, however many recipients read it.
        let sql = &s.recipients[0].outputs[0].sql;
        assert_eq!(text.matches(sql.as_str()).count(), 1, "{text}");
        // The HTML variant carries the same values, escaped.
        let html = approval_summary_html(&s);
        for w in &want {
            assert!(html.contains(&escape_html(w)), "missing {w:?} in\n{html}");
        }
    }

    #[test]
    fn exact_outputs_and_no_leakage_are_said_plainly() {
        let mut s = spec();
        s.dp.clear();
        s.leakage_opt_ins.clear();
        s.retention.delete_shares_at_job_end = false;
        s.retention.result_deadline = Deadline::At("2027-06-30T00:00:00Z".into());
        let text = approval_summary(&s);
        for w in [
            "No output is differentially private: every output is EXACT.",
            "persons: exact (no differential privacy)",
            "None: the parties learn only the declared outputs",
            "delete shares at job end: no",
            "2027-06-30T00:00:00Z",
        ] {
            assert!(text.contains(w), "missing {w:?} in\n{text}");
        }
    }

    #[test]
    fn keys_get_fingerprints_and_placeholders_say_so() {
        use base64::Engine;
        let p = PartyKey::generate("x").public();
        let fp = key_fingerprint(&p.ed25519).unwrap();
        assert_eq!(fp.len(), KEY_FINGERPRINT_HEX);
        let bytes = decode_key32(&p.ed25519).unwrap();
        assert!(crate::hex::encode(&Sha256::digest(bytes)).starts_with(&fp));
        // The same key in base64 has the same fingerprint.
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(key_fingerprint(&b64), Some(fp));
        // A result key: SHA-256 of its 1216 bytes, whatever the alphabet.
        let kem = p.kem.unwrap();
        let kem_bytes = KemPublicKey::parse(&kem).unwrap().to_bytes();
        let fp = key_fingerprint(&kem).unwrap();
        assert!(crate::hex::encode(&Sha256::digest(&kem_bytes)).starts_with(&fp));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&kem_bytes);
        assert_eq!(key_fingerprint(&url), Some(fp));
        assert_eq!(key_fingerprint("placeholder:fk"), None);
        let t = crate::templates::spec("overlapping-benefits").unwrap();
        let text = approval_summary(&t);
        assert!(
            text.contains("placeholder:fk (a placeholder, not a key"),
            "{text}"
        );
    }

    #[test]
    fn hidden_characters_are_shown() {
        let mut s = spec();
        s.purpose = "ok\u{1b}[8mhidden\u{1b}[0m\rover".into();
        s.recipients[2].outputs[0].sql = "SELECT 1 /* \u{202E} } \u{2066} */".into();
        for out in [approval_summary(&s), approval_summary_html(&s)] {
            assert!(
                !out.chars().any(|c| (c.is_control() && c != '\n')
                    || ('\u{2066}'..='\u{2069}').contains(&c)
                    || c == '\u{202E}'),
                "{out:?}"
            );
            assert!(
                out.contains("ok<U+001B>[8mhidden") || out.contains("ok&lt;U+001B&gt;[8mhidden")
            );
            assert!(out.contains("U+202E"));
        }
        assert_eq!(visible("plain\tsql\n"), "plain\tsql\n");
    }

    #[test]
    fn html_escapes_everything() {
        let s = spec();
        let html = approval_summary_html(&s);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains(
            "Find &lt;script&gt;alert(1)&lt;/script&gt; overlaps &amp; &quot;more&quot;"
        ));
        assert!(html.contains("&#39;&lt;script&gt;&#39;"), "{html}");
        // Only the fragment's own elements, each closed.
        let mut stack = Vec::new();
        let mut rest = html.as_str();
        while let Some(open) = rest.find('<') {
            assert!(
                !rest[..open].contains('>'),
                "raw '>' in {:?}",
                &rest[..open]
            );
            let close = rest[open..].find('>').unwrap() + open;
            let tag = &rest[open + 1..close];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.to_string()));
            } else {
                let name = tag.split_whitespace().next().unwrap();
                assert!(
                    ["section", "h2", "h3", "h4", "p", "dl", "dt", "dd", "pre", "code"]
                        .contains(&name),
                    "<{tag}>"
                );
                stack.push(name.to_string());
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty() && rest.trim().is_empty());
        assert!(html.starts_with("<section class=\"kuvert-approval-summary\">"));
    }
}
