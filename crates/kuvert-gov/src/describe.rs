//! The DPIA text of an analysis: what a legal officer needs, in words.
//!
//! [`describe`] builds one document (headings, paragraphs, lists, tables)
//! and writes it as Markdown or as a self-contained HTML page (`lang`
//! attribute, one `h1`, nested headings, table headers with `scope`, no
//! scripts, styles or external resources).

use std::fmt::Write;

use crate::approval::{approval_status, Approval, ApprovalState};
use crate::audit::AuditRecord;
use crate::spec::{AnalysisSpec, Deadline};

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
        Deadline::Days(n) => format!("{n} days after the job ends"),
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
