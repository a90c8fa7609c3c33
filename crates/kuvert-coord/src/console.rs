//! The web console: server-rendered HTML, no scripts, Swedish (default)
//! and English (`?lang=sv|en`). Accessible by construction: a `lang`
//! attribute, one `h1` per page, nested headings, tables with captions and
//! header cells with `scope`, labelled form fields, a skip link, visible
//! focus and dark-on-light text. Every value that comes from a spec, a form
//! or a node is HTML-escaped. Stable element ids for tests and scripts:
//! `analyses`, `approvals`, `nodes`, `learns`, `receipts`, `audit`.
//!
//! Every page but `/login` needs a console session (opened at `/login`
//! with a bearer token, or with a one-time login link) or a client
//! certificate; without one, a page redirects to `/login`. Forms that
//! change state carry a CSRF token (`_csrf`).

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Form, Path, Query, State as AxState};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use kuvert_gov::describe::escape_html as e;
use kuvert_gov::{AnalysisSpec, AuditRecord, Validation};
use serde::Deserialize;

use crate::api::{
    approval_rows, audit_records, find_for, submit_text, visible_analyses, ApiError, READ_ANALYSIS,
    READ_GOVERNANCE,
};
use crate::auth::{self, Auth, Principal, Via};
use crate::sched::gov_state_text;
use crate::store::{NodeSeen, State};
use crate::Coordinator;

/// Console language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Sv,
    En,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }
    /// Swedish or English text.
    fn t<'a>(self, sv: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

impl LangQuery {
    fn lang(&self) -> Lang {
        match self.lang.as_deref() {
            Some("en") => Lang::En,
            _ => Lang::Sv,
        }
    }
}

/// The language a query string asks for (`lang=en`, else Swedish).
pub(crate) fn lang_of(query: Option<&str>) -> Lang {
    let en = query
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv == "lang=en");
    if en {
        Lang::En
    } else {
        Lang::Sv
    }
}

/// Who is looking at a page: the line under the menu (name, roles and
/// the logout button), and which menu entries it may use.
struct Viewer {
    bar: String,
    reads_all: bool,
}

impl Viewer {
    fn none() -> Viewer {
        Viewer {
            bar: String::new(),
            reads_all: false,
        }
    }

    fn of(c: &Coordinator, l: Lang, auth: &Auth) -> Viewer {
        let Some(p) = &auth.0 else {
            return Viewer::none();
        };
        let roles = if p.roles.is_empty() {
            l.t(
                "roller enligt analysernas specifikationer",
                "roles as the analyses' specs name it",
            )
            .to_string()
        } else {
            p.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let how = match p.via {
            Via::Certificate => l.t("klientcertifikat", "client certificate"),
            Via::Token => l.t("token", "token"),
            Via::Session => l.t("inloggad", "logged in"),
        };
        let mut bar = format!(
            "<div id=\"who\"><p>{} <strong>{}</strong> ({how}; {})</p>\n",
            l.t("Du är", "You are"),
            e(&p.name),
            e(&roles)
        );
        if p.via == Via::Session {
            if let Some(csrf) = c.inner.auth.csrf(p) {
                let _ = writeln!(
                    bar,
                    "<form method=\"post\" action=\"/logout?lang={}\"><input type=\"hidden\" name=\"_csrf\" value=\"{}\">\
<button type=\"submit\">{}</button></form>",
                    l.code(),
                    e(&csrf),
                    l.t("Logga ut", "Log out")
                );
            }
        }
        bar.push_str("</div>\n");
        Viewer {
            bar,
            reads_all: p.reads_all(),
        }
    }
}

/// A state in words.
pub fn state_label(l: Lang, s: State) -> &'static str {
    match s {
        State::Submitted => l.t(
            "inskickad – väntar på godkännanden",
            "submitted – awaiting approvals",
        ),
        State::Approved => l.t(
            "godkänd – registreras hos noderna",
            "approved – being registered at the nodes",
        ),
        State::Registered => l.t(
            "registrerad – väntar på data",
            "registered – waiting for data",
        ),
        State::Running => l.t("körs", "running"),
        State::Done => l.t("klar", "done"),
        State::Failed => l.t("misslyckades", "failed"),
        State::Expired => l.t("utgången", "expired"),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;color:#111;background:#fff;max-width:72rem;\
margin:0 auto;padding:1rem;line-height:1.5}a{color:#0645ad}a:focus,input:focus,button:focus{outline:3px solid #c60;\
outline-offset:2px}table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #555;padding:.3rem .5rem;\
text-align:left;vertical-align:top}caption{text-align:left;font-weight:bold}pre{background:#f3f3f3;padding:.5rem;\
white-space:pre-wrap;overflow-wrap:anywhere}dt{font-weight:bold}main{overflow-wrap:anywhere}.skip{position:absolute;left:-999px}.skip:focus{left:1rem}nav ul{list-style:none;padding:0;display:flex;\
gap:1.5rem;flex-wrap:wrap}label{display:block;font-weight:bold;margin-top:.5rem}input{width:100%;max-width:40rem;\
padding:.3rem;border:1px solid #333}button{margin-top:1rem;padding:.4rem 1rem;background:#0645ad;color:#fff;border:0}\
.error{border:2px solid #b00;padding:.5rem;color:#600}#who{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}\
#who p{margin:0}#who button{margin-top:0}";

fn page(l: Lang, v: &Viewer, path: &str, title: &str, body: &str) -> Html<String> {
    let other = match l {
        Lang::Sv => Lang::En,
        Lang::En => Lang::Sv,
    };
    let q = format!("?lang={}", l.code());
    let ops = if v.reads_all {
        format!(
            "<li><a href=\"/audit{q}\">{}</a></li>\n<li><a href=\"/budgets{q}\">{}</a></li>\n",
            l.t("Granskningslogg", "Audit log"),
            l.t("Integritetsbudget", "Privacy budgets"),
        )
    } else {
        String::new()
    };
    let menu = if v.bar.is_empty() {
        String::new()
    } else {
        format!(
            "<li><a href=\"/{q}\">{}</a></li>\n<li><a href=\"/templates{q}\">{}</a></li>\n{ops}",
            l.t("Analyser", "Analyses"),
            l.t("Mallar", "Templates"),
        )
    };
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title} – Kuvert</title>\n\
<style>{STYLE}</style>\n</head>\n<body>\n<a class=\"skip\" href=\"#main\">{skip}</a>\n<header>\n\
<nav aria-label=\"{navl}\"><ul>\n{menu}\
<li><a href=\"{path}?lang={oc}\" lang=\"{oc}\" hreflang=\"{oc}\">{switch}</a></li>\n\
</ul></nav>\n{bar}</header>\n<main id=\"main\">\n<h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n",
        lang = l.code(),
        title = e(title),
        skip = l.t("Hoppa till innehållet", "Skip to content"),
        navl = l.t("Huvudmeny", "Main menu"),
        bar = v.bar,
        path = e(path),
        oc = other.code(),
        switch = match l {
            Lang::Sv => "English",
            Lang::En => "Svenska",
        },
    ))
}

fn error_page(l: Lang, v: &Viewer, path: &str, err: ApiError) -> Response {
    let mut body = format!("<p class=\"error\" role=\"alert\">{}</p>\n", e(&err.1));
    if err.0 == StatusCode::UNAUTHORIZED {
        let _ = writeln!(
            body,
            "<p><a href=\"/login?lang={}\">{}</a></p>",
            l.code(),
            l.t("Logga in", "Log in")
        );
    }
    (err.0, page(l, v, path, l.t("Fel", "Error"), &body)).into_response()
}

/// An error page for a request the middleware refused (401 or 403).
pub(crate) fn error_response(l: Lang, path: &str, err: ApiError) -> Response {
    error_page(l, &Viewer::none(), path, err)
}

/// A page asked for without credentials: to the login page, and back here
/// afterwards.
pub(crate) fn to_login(l: Lang, uri: &Uri) -> Response {
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            format!("/login?lang={}&next={}", l.code(), url_encode(next)),
        )],
    )
        .into_response()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after login: a path on this site only.
fn safe_next(next: Option<&str>, l: Lang) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => format!("/?lang={}", l.code()),
    }
}

/// `/`: the analyses.
pub async fn index(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<LangQuery>,
) -> Response {
    let l = q.lang();
    let v = Viewer::of(&c, l, &auth);
    match index_body(&c, &auth, l).await {
        Ok(body) => page(l, &v, "/", l.t("Analyser", "Analyses"), &body).into_response(),
        Err(err) => error_page(l, &v, "/", err),
    }
}

async fn index_body(c: &Coordinator, auth: &Auth, l: Lang) -> Result<String, ApiError> {
    let mut s = String::new();
    let rows = visible_analyses(c, auth::principal(auth)?).await?;
    let _ = write!(
        s,
        "<p>{}</p>\n<table id=\"analyses\">\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">{}</th>\
<th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
        l.t(
            "Analyser som myndigheterna har kommit överens om. Ny analys: välj en mall.",
            "Analyses the agencies agreed on. New analysis: pick a template."
        ),
        l.t(
            "Analyserna du får se, nyaste först",
            "The analyses you may see, newest first"
        ),
        l.t("Namn", "Name"),
        l.t("Status", "State"),
        l.t("Godkännanden", "Approvals"),
        l.t("Inskickad", "Submitted"),
        l.t("Id", "Id"),
    );
    for (a, spec) in &rows {
        let ap = approval_rows(c, a, spec).await?;
        let have = ap.iter().filter(|r| r["approved"] == true).count();
        let _ = writeln!(
            s,
            "<tr><td><a href=\"/analyses/{id}?lang={lc}\">{name}</a></td><td>{state}</td><td>{have} {of} {need}</td>\
<td>{at}</td><td><code>{short}…</code></td></tr>",
            id = e(&a.id),
            lc = l.code(),
            name = e(&a.name),
            state = state_label(l, a.state),
            of = l.t("av", "of"),
            need = spec.contributors.len(),
            at = e(&a.submitted_at),
            short = e(&a.id[..12.min(a.id.len())]),
        );
    }
    if rows.is_empty() {
        let _ = writeln!(
            s,
            "<tr><td colspan=\"5\">{}</td></tr>",
            l.t("Inga analyser ännu.", "No analyses yet.")
        );
    }
    s.push_str("</tbody>\n</table>\n");
    Ok(s)
}

/// `/analyses/{id}`: one analysis.
pub async fn analysis(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let l = q.lang();
    let v = Viewer::of(&c, l, &auth);
    let path = format!("/analyses/{id}");
    match analysis_body(&c, &auth, &id, l).await {
        Ok((title, body)) => page(l, &v, &path, &title, &body).into_response(),
        Err(err) => error_page(l, &v, &path, err),
    }
}

fn th(cols: &[&str]) -> String {
    let mut s = String::from("<thead><tr>");
    for c in cols {
        let _ = write!(s, "<th scope=\"col\">{}</th>", e(c));
    }
    s.push_str("</tr></thead>\n");
    s
}

async fn analysis_body(
    c: &Coordinator,
    auth: &Auth,
    id: &str,
    l: Lang,
) -> Result<(String, String), ApiError> {
    let (a, spec, roles) = find_for(c, auth, id, READ_ANALYSIS).await?;
    let governance = READ_GOVERNANCE.iter().any(|r| roles.contains(r));
    let mut s = String::new();
    let _ = write!(
        s,
        "<p>{}: <code>{}</code></p>\n<p><strong>{}:</strong> {}</p>\n<p>{}</p>\n",
        l.t(
            "Analys-id (SHA-256 av specifikationen)",
            "Analysis id (SHA-256 of the spec)"
        ),
        e(&a.id),
        l.t("Status", "State"),
        state_label(l, a.state),
        e(&a.detail),
    );
    if governance {
        let _ = writeln!(
            s,
            "<p><a href=\"/api/analyses/{id}/describe?format=html\">{}</a> · <a href=\"/api/analyses/{id}/spec\">{}</a></p>",
            l.t("Beskrivning för konsekvensbedömning (DPIA)", "Description for the DPIA"),
            l.t("Specifikationen (TOML)", "The spec (TOML)"),
            id = e(&a.id),
        );
    } else {
        let _ = writeln!(
            s,
            "<p><a href=\"/api/analyses/{id}/spec\">{}</a></p>",
            l.t("Specifikationen (TOML)", "The spec (TOML)"),
            id = e(&a.id),
        );
    }

    // While approvals are awaited: exactly what each contributor approves
    // (the same summary `kuvert analysis approve` prints before it asks),
    // then how to approve. Signing happens on the contributor's machine,
    // with its key; the console never holds one.
    if a.state == State::Submitted {
        let _ = writeln!(
            s,
            "<section aria-labelledby=\"h-approve\">\n<h2 id=\"h-approve\">{}</h2>\n{}\n<p>{} <code>kuvert analysis approve {} --key CONTRIBUTOR.key</code></p>\n</section>",
            l.t("Det här godkänns", "What is approved"),
            kuvert_gov::describe::approval_summary_html(&spec),
            l.t(
                "Varje bidragsgivare läser detta och godkänner på sin egen dator:",
                "Each contributor reads this and approves on its own machine:"
            ),
            e(&a.id),
        );
    }

    // The spec.
    let _ = write!(
        s,
        "<section aria-labelledby=\"h-spec\">\n<h2 id=\"h-spec\">{}</h2>\n<dl>\n<dt>{}</dt><dd>{}</dd>\n\
<dt>{}</dt><dd>{}: {}</dd>\n<dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n<dt>{}</dt><dd>{}</dd>\n</dl>\n",
        l.t("Specifikation", "Specification"),
        l.t("Syfte", "Purpose"),
        e(spec.purpose.trim()),
        l.t("Rättslig grund", "Legal basis"),
        e(spec.legal_basis.reference.trim()),
        e(spec.legal_basis.text.trim()),
        l.t("Protokoll", "Protocol"),
        e(&spec.protocol),
        l.t("Gallring", "Retention"),
        e(&format!(
            "{}; {}",
            if spec.retention.delete_shares_at_job_end {
                l.t("andelar raderas när jobbet är klart", "shares deleted at job end")
            } else {
                l.t("andelar sparas till tidsgränsen", "shares kept until the deadline")
            },
            match &spec.retention.result_deadline {
                kuvert_gov::spec::Deadline::Days(d) => format!(
                    "{} {d} {}",
                    l.t("resultat raderas", "results deleted"),
                    l.t("dagar efter jobbet", "days after the job")
                ),
                kuvert_gov::spec::Deadline::At(t) =>
                    format!("{} {t}", l.t("resultat raderas", "results deleted")),
            }
        )),
        l.t("Kontakt", "Contact"),
        e(&spec.contact),
    );
    let _ = write!(
        s,
        "<h3>{}</h3>\n<table>\n<caption>{}</caption>\n{}<tbody>\n",
        l.t(
            "Bidragsgivare och personuppgiftsansvariga",
            "Contributors and controllers"
        ),
        l.t(
            "Vem som bidrar med vilka tabeller",
            "Who contributes which tables"
        ),
        th(&[
            l.t("Part", "Party"),
            l.t("Organisation", "Organisation"),
            l.t("Personuppgiftsansvarig", "Controller"),
            l.t("Tabeller och kolumner", "Tables and columns"),
        ])
    );
    for ct in &spec.contributors {
        let tables = ct
            .tables
            .iter()
            .map(|t| format!("<code>{}</code>: {}", e(&t.name), e(&t.schema)))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = writeln!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&ct.id),
            e(&ct.organisation),
            e(&ct.controller),
            tables
        );
    }
    s.push_str("</tbody>\n</table>\n");
    let _ = write!(
        s,
        "<h3>{}</h3>\n<table>\n<caption>{}</caption>\n{}<tbody>\n",
        l.t("Mottagare och resultat", "Recipients and outputs"),
        l.t("Vem som får vilket resultat", "Who receives which output"),
        th(&[
            l.t("Mottagare", "Recipient"),
            l.t("Resultat", "Output"),
            "SQL",
        ])
    );
    for r in &spec.recipients {
        for o in &r.outputs {
            let _ = writeln!(
                s,
                "<tr><th scope=\"row\">{} ({})</th><td>{}</td><td><pre><code>{}</code></pre></td></tr>",
                e(&r.organisation),
                e(&r.id),
                e(&o.name),
                e(o.sql.trim())
            );
        }
    }
    s.push_str("</tbody>\n</table>\n</section>\n");

    // Approvals.
    let ap = approval_rows(c, &a, &spec).await?;
    let _ = write!(
        s,
        "<section aria-labelledby=\"h-approvals\">\n<h2 id=\"h-approvals\">{}</h2>\n<table id=\"approvals\">\n<caption>{}</caption>\n{}<tbody>\n",
        l.t("Godkännanden", "Approvals"),
        l.t(
            "Varje bidragsgivare signerar analysens id; noderna kontrollerar signaturerna själva",
            "Each contributor signs the analysis id; the nodes check the signatures themselves"
        ),
        th(&[
            l.t("Bidragsgivare", "Contributor"),
            l.t("Organisation", "Organisation"),
            l.t("Godkänt", "Approved"),
            l.t("Tid", "Time"),
        ])
    );
    for r in &ap {
        let _ = writeln!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(r["contributor"].as_str().unwrap_or("")),
            e(r["organisation"].as_str().unwrap_or("")),
            if r["approved"] == true {
                l.t("Ja", "Yes")
            } else {
                l.t("Nej, väntar", "No, awaiting")
            },
            e(r["at"].as_str().unwrap_or("–")),
        );
    }
    s.push_str("</tbody>\n</table>\n</section>\n");

    // Nodes.
    let seen = c.inner.store.nodes_seen(&a.id).await?;
    let _ = write!(
        s,
        "<section aria-labelledby=\"h-nodes\">\n<h2 id=\"h-nodes\">{}</h2>\n<table id=\"nodes\">\n<caption>{}</caption>\n{}<tbody>\n",
        l.t("Jobbet hos noderna", "Job progress at the nodes"),
        l.t("Senast kända läge hos varje beräkningsnod", "Last known state at each compute node"),
        th(&[
            l.t("Nod", "Node"),
            l.t("Adress", "Address"),
            l.t("Läge", "State"),
            l.t("Mottagna tabeller (rader)", "Tables received (rows)"),
            l.t("Uppdaterad", "Updated"),
        ])
    );
    for (i, sn) in seen.iter().enumerate() {
        let (state, tables, at) = match sn {
            Some((NodeSeen::Status(st), at)) => (
                gov_state_text(&st.state),
                st.tables
                    .iter()
                    .map(|t| format!("{} ({})", t.name, t.rows))
                    .collect::<Vec<_>>()
                    .join(", "),
                at.clone(),
            ),
            Some((NodeSeen::Error(err), at)) => (err.clone(), String::new(), at.clone()),
            None => (
                l.t("inte tillfrågad ännu", "not asked yet").to_string(),
                String::new(),
                "–".into(),
            ),
        };
        let _ = writeln!(
            s,
            "<tr><th scope=\"row\">{i}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.inner.node_addrs[i],
            e(&state),
            e(&tables),
            e(&at)
        );
    }
    s.push_str("</tbody>\n</table>\n</section>\n");

    // What each party learns.
    s.push_str(&learns(l, &spec));

    // Receipts.
    let receipts = c.inner.store.receipts(&a.id).await?;
    let _ = write!(
        s,
        "<section aria-labelledby=\"h-receipts\">\n<h2 id=\"h-receipts\">{}</h2>\n<table id=\"receipts\">\n<caption>{}</caption>\n{}<tbody>\n",
        l.t("Raderingskvitton", "Deletion receipts"),
        l.t(
            "Nodernas signerade intyg om att andelar, mellanlägen och sessionsnycklar är raderade",
            "The nodes' signed statements that shares, intermediate state and session keys are deleted"
        ),
        th(&[
            l.t("Nod", "Node"),
            l.t("Tid", "Time"),
            l.t("Raderade tabeller", "Tables deleted"),
            l.t("Mellanlägen", "Intermediate state"),
            l.t("Sessionsnycklar", "Session keys"),
            l.t("Signatur", "Signature"),
        ])
    );
    for r in &receipts {
        let yes = |b: bool| {
            if b {
                l.t("raderade", "deleted")
            } else {
                l.t("nej", "no")
            }
        };
        let _ = writeln!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.node,
            e(&r.time),
            e(&r.deleted.tables.join(", ")),
            yes(r.deleted.intermediate_state),
            yes(r.deleted.session_keys),
            match c.check_receipt(r) {
                crate::ReceiptCheck::Valid => l.t(
                    "giltig (nodens nyckel i PKI-katalogen)",
                    "valid (the node's key in the PKI directory)"
                ),
                crate::ReceiptCheck::Invalid => l.t(
                    "OGILTIG: stämmer inte med nodens nyckel",
                    "INVALID: does not match the node's key"
                ),
                crate::ReceiptCheck::NoKey => l.t(
                    "ej kontrollerad (ingen nyckel för noden i PKI-katalogen)",
                    "not checked (no key for the node in the PKI directory)"
                ),
            },
        );
    }
    if receipts.is_empty() {
        let _ = writeln!(
            s,
            "<tr><td colspan=\"6\">{}</td></tr>",
            l.t("Inga kvitton ännu.", "No receipts yet.")
        );
    }
    s.push_str("</tbody>\n</table>\n</section>\n");

    // Audit: not for a recipient that has no other role here.
    if governance {
        let records = audit_records(c, Some(&a.id))?;
        let _ = write!(
            s,
            "<section aria-labelledby=\"h-audit\">\n<h2 id=\"h-audit\">{}</h2>\n",
            l.t("Granskningslogg för analysen", "Audit log of this analysis")
        );
        s.push_str(&audit_table(l, &records));
        s.push_str("</section>\n");
    }
    Ok((spec.name.clone(), s))
}

/// What each party learns, from the spec's outputs and leakage opt-ins.
fn learns(l: Lang, spec: &AnalysisSpec) -> String {
    let mut s = format!(
        "<section id=\"learns\" aria-labelledby=\"h-learns\">\n<h2 id=\"h-learns\">{}</h2>\n<ul>\n",
        l.t("Vad varje part får veta", "What each party learns")
    );
    let _ = writeln!(
        s,
        "<li><strong>{}</strong>: {}</li>",
        l.t("Varje beräkningsnod", "Each compute node"),
        l.t(
            "antalet rader i varje tabell och inget annat; noderna ser aldrig ett värde i klartext och kan inte läsa resultaten.",
            "the number of rows of each table and nothing else; the nodes never see a value in the clear and cannot read the results."
        )
    );
    let _ = writeln!(
        s,
        "<li><strong>{}</strong>: {}</li>",
        l.t("Koordinatorn (tjänsteoperatören)", "The coordinator (service operator)"),
        l.t(
            "specifikationen, godkännandena och jobbens läge; aldrig nycklar, andelar eller resultat.",
            "the spec, the approvals and the jobs' state; never keys, shares or results."
        )
    );
    for r in &spec.recipients {
        let mut items: Vec<String> = r
            .outputs
            .iter()
            .map(|o| match &o.description {
                Some(d) => format!("“{}”: {}", e(&o.name), e(d.trim())),
                None => format!(
                    "“{}”: {}",
                    e(&o.name),
                    l.t("resultatet av dess fråga", "the result of its query")
                ),
            })
            .collect();
        for lk in spec
            .leakage_opt_ins
            .iter()
            .filter(|x| x.learned_by.contains(&r.id))
        {
            items.push(format!(
                "{} “{}”: {}",
                l.t("Medgivet läckage", "Opted-in leakage"),
                e(&lk.name),
                e(lk.statement.trim())
            ));
        }
        let _ = writeln!(
            s,
            "<li><strong>{} ({})</strong>: {}<ul><li>{}</li></ul></li>",
            e(&r.organisation),
            e(&r.id),
            l.t(
                "endast sina resultat och inget annat om någon indata:",
                "only its outputs and nothing else about any input:"
            ),
            items.join("</li><li>")
        );
    }
    for ct in spec
        .contributors
        .iter()
        .filter(|ct| spec.recipient(&ct.id).is_none())
    {
        let _ = writeln!(
            s,
            "<li><strong>{} ({})</strong>: {}</li>",
            e(&ct.organisation),
            e(&ct.id),
            l.t(
                "inget: får inga resultat.",
                "nothing: it receives no output."
            )
        );
    }
    let node_leaks: Vec<&kuvert_gov::spec::LeakageOptIn> = spec
        .leakage_opt_ins
        .iter()
        .filter(|x| x.learned_by.iter().any(|w| w == "nodes"))
        .collect();
    for lk in node_leaks {
        let _ = writeln!(
            s,
            "<li><strong>{}</strong> – {} “{}”: {}</li>",
            l.t("Beräkningsnoderna", "The compute nodes"),
            l.t("medgivet läckage", "opted-in leakage"),
            e(&lk.name),
            e(lk.statement.trim())
        );
    }
    s.push_str("</ul>\n</section>\n");
    s
}

fn audit_table(l: Lang, records: &[AuditRecord]) -> String {
    let mut s = format!(
        "<table id=\"audit\">\n<caption>{}</caption>\n{}<tbody>\n",
        l.t(
            "Hashkedjad logg: vem, vad, när och storlekar – aldrig värden",
            "Hash-chained log: who, what, when and sizes – never values"
        ),
        th(&[
            "#",
            l.t("Tid", "Time"),
            l.t("Aktör", "Actor"),
            l.t("Händelse", "Action"),
            l.t("Analys", "Analysis"),
            l.t("Detaljer", "Details"),
        ])
    );
    for r in records {
        let details = r
            .details
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map(str::to_string).unwrap_or(v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            r.seq,
            e(&r.time),
            e(&r.actor),
            e(&r.action),
            r.analysis_id
                .map(|x| x.to_hex()[..12].to_string())
                .unwrap_or_default(),
            e(&details),
        );
    }
    if records.is_empty() {
        let _ = writeln!(
            s,
            "<tr><td colspan=\"6\">{}</td></tr>",
            l.t("Inga poster ännu.", "No records yet.")
        );
    }
    s.push_str("</tbody>\n</table>\n");
    s
}

/// `/audit`: the coordinator's whole audit log.
pub async fn audit(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<LangQuery>,
) -> Response {
    let l = q.lang();
    let v = Viewer::of(&c, l, &auth);
    match audit_records(&c, None) {
        Ok(records) => {
            let body = format!(
                "<p>{} <code>{}</code></p>\n{}",
                l.t("Koordinatorns logg:", "The coordinator's log:"),
                e(&c.inner.audit_path.display().to_string()),
                audit_table(l, &records)
            );
            page(l, &v, "/audit", l.t("Granskningslogg", "Audit log"), &body).into_response()
        }
        Err(err) => error_page(l, &v, "/audit", err),
    }
}

/// `/budgets`: the privacy budgets as the three nodes report them.
pub async fn budgets(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<LangQuery>,
) -> Response {
    let l = q.lang();
    let v = Viewer::of(&c, l, &auth);
    let title = l.t("Integritetsbudget", "Privacy budgets");
    let view = match c.budgets().await {
        Ok(a) => a,
        Err(err) => return error_page(l, &v, "/budgets", ApiError::from(err)),
    };
    let mut s = format!(
        "<p>{}</p>\n",
        l.t(
            "Budgetarna för differentiell integritet hålls av de tre beräkningsnoderna, var och en i sin egen liggare. Varje bidragsgivare sätter med sin nyckel en gräns per datamängd (kuvert budget set). En nod belastar varje DP-resultat när beräkningen startar och vägrar en analys som skulle överskrida gränsen. Samordnaren visar bara vad noderna rapporterar.",
            "The differential-privacy budgets are kept by the three compute nodes, each in its own ledger. Each contributor signs a limit per dataset with its key (kuvert budget set). A node charges every DP output when the computation starts and refuses an analysis that would exceed a limit. The coordinator only shows what the nodes report."
        )
    );
    for u in &view.unreachable {
        let _ = writeln!(
            s,
            "<p class=\"warn\">{} {}</p>",
            l.t("Svarade inte:", "Did not answer:"),
            e(u)
        );
    }
    let _ = writeln!(
        s,
        "<table id=\"budgets\">\n<caption>{}</caption>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
<th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>",
        l.t("Konton per nod, ε (δ)", "Accounts per node, ε (δ)"),
        l.t("Bidragsgivare", "Contributor"),
        l.t("Datamängd", "Dataset"),
        l.t("Nod", "Node"),
        l.t("Gräns ε (δ)", "Limit ε (δ)"),
        l.t("Förbrukat ε", "Spent ε"),
        l.t("Kvar ε", "Remaining ε"),
        l.t("Utlämnanden", "Releases"),
    );
    if view.accounts.is_empty() {
        let _ = writeln!(
            s,
            "<tr><td colspan=\"7\">{}</td></tr>",
            l.t(
                "Ingen bidragsgivare har satt någon budget hos noderna ännu.",
                "No contributor has set a budget at the nodes yet."
            )
        );
    }
    for a in &view.accounts {
        let who = if a.contributors.is_empty() {
            format!(
                "<code>{}…</code>",
                e(&a.contributor_key[..a.contributor_key.len().min(16)])
            )
        } else {
            e(&a.contributors.join(", "))
        };
        for (i, n) in a.nodes.iter().enumerate() {
            let cells = match n {
                Some(n) => format!(
                    "<td>{} ({})</td><td>{:.3}</td><td>{:.3}</td><td>{}</td>",
                    n.limit_epsilon,
                    n.limit_delta,
                    n.spent_epsilon,
                    n.remaining_epsilon,
                    n.releases
                ),
                None => format!(
                    "<td colspan=\"4\">{}</td>",
                    l.t("inget konto", "no account")
                ),
            };
            let _ = writeln!(
                s,
                "<tr><td>{who}</td><td><code>{}</code></td><td>{i}</td>{cells}</tr>",
                e(&a.dataset)
            );
        }
        if !a.agree {
            let _ = writeln!(
                s,
                "<tr><td colspan=\"7\" class=\"warn\">{}</td></tr>",
                l.t(
                    "Nodernas liggare skiljer sig för detta konto: varje nod tillämpar sin egen, så en analys körs bara om alla tre kan betala.",
                    "The nodes' ledgers differ for this account: each node enforces its own, so an analysis runs only if all three can pay."
                )
            );
        }
    }
    s.push_str("</tbody>\n</table>\n");
    page(l, &v, "/budgets", title, &s).into_response()
}

/// `/templates`: the templates.
pub async fn templates(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<LangQuery>,
) -> Response {
    let l = q.lang();
    let v = Viewer::of(&c, l, &auth);
    let mut s = format!(
        "<p>{}</p>\n<ul>\n",
        l.t(
            "Färdiga analyser: fyll i parternas namn och nycklar, skicka in, och låt varje bidragsgivare godkänna.",
            "Ready-made analyses: fill in the parties' names and keys, submit, and have every contributor approve."
        )
    );
    for name in kuvert_gov::templates::names() {
        let purpose = kuvert_gov::templates::spec(name)
            .map(|sp| sp.purpose)
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<li><a href=\"/templates/{n}?lang={lc}\">{n}</a>: {p}</li>",
            n = e(name),
            lc = l.code(),
            p = e(purpose.trim())
        );
    }
    s.push_str("</ul>\n");
    page(l, &v, "/templates", l.t("Mallar", "Templates"), &s).into_response()
}

/// The form of template `name`, prefilled with `values` (or the
/// template's own organisation names).
fn form(
    l: Lang,
    name: &str,
    values: &HashMap<String, String>,
    error: Option<&str>,
    csrf: Option<&str>,
    nodes: Option<&[kuvert_gov::spec::SpecNode]>,
) -> Option<String> {
    let spec = kuvert_gov::templates::spec(name).ok()?;
    let mut s = String::new();
    if let Some(err) = error {
        let _ = writeln!(
            s,
            "<div class=\"error\" role=\"alert\"><p>{}</p></div>",
            e(err)
        );
    }
    let _ = writeln!(
        s,
        "<p>{}</p>\n<p>{}</p>",
        e(spec.purpose.trim()),
        l.t(
            "Nycklarna finns i partens .pub-fil från `kuvert keygen` (ed25519 för bidragsgivare, kem för mottagare).",
            "The keys are in the party's .pub file from `kuvert keygen` (ed25519 for contributors, kem for recipients)."
        )
    );
    let _ = writeln!(
        s,
        "<form method=\"post\" action=\"/templates/{}?lang={}\">",
        e(name),
        l.code()
    );
    if let Some(t) = csrf {
        let _ = writeln!(
            s,
            "<input type=\"hidden\" name=\"_csrf\" value=\"{}\">",
            e(t)
        );
    }
    let val = |k: &str, default: &str| -> String {
        e(values.get(k).map(String::as_str).unwrap_or(default))
    };
    let mut ids: Vec<String> = spec.contributors.iter().map(|c| c.id.clone()).collect();
    for r in &spec.recipients {
        if !ids.contains(&r.id) {
            ids.push(r.id.clone());
        }
    }
    for id in &ids {
        let ct = spec.contributor(id);
        let rc = spec.recipient(id);
        let org = ct
            .map(|c| c.organisation.as_str())
            .or(rc.map(|r| r.organisation.as_str()))
            .unwrap_or("");
        let role = match (ct.is_some(), rc.is_some()) {
            (true, true) => l.t("bidragsgivare och mottagare", "contributor and recipient"),
            (true, false) => l.t("bidragsgivare", "contributor"),
            _ => l.t("mottagare", "recipient"),
        };
        let _ = writeln!(s, "<fieldset>\n<legend>{} ({role})</legend>", e(id));
        let field = |s: &mut String, key: String, label: &str, v: String| {
            let fid = key.replace('.', "-");
            let _ = writeln!(
                s,
                "<label for=\"{fid}\">{}</label>\n<input id=\"{fid}\" name=\"{}\" value=\"{v}\" required>",
                e(label),
                e(&key)
            );
        };
        field(
            &mut s,
            format!("org.{id}"),
            l.t("Organisation", "Organisation"),
            val(&format!("org.{id}"), org),
        );
        if let Some(c) = ct {
            field(
                &mut s,
                format!("ctrl.{id}"),
                l.t("Personuppgiftsansvarig", "Controller"),
                val(&format!("ctrl.{id}"), &c.controller),
            );
            field(
                &mut s,
                format!("ed.{id}"),
                l.t(
                    "Publik nyckel för signering (ed25519, hex)",
                    "Public signing key (ed25519, hex)",
                ),
                val(&format!("ed.{id}"), ""),
            );
        }
        if rc.is_some() {
            field(
                &mut s,
                format!("kem.{id}"),
                l.t(
                    "Publik nyckel för resultat (kem, base64, postkvantsäker X-Wing)",
                    "Public result key (kem, base64, post-quantum X-Wing)",
                ),
                val(&format!("kem.{id}"), ""),
            );
        }
        s.push_str("</fieldset>\n");
    }
    // The compute nodes the contributors will approve: the federation's
    // (shown, not editable), or entered by hand when this coordinator has
    // no federation file.
    let _ = writeln!(
        s,
        "<fieldset>\n<legend>{}</legend>",
        l.t(
            "Beräkningsnoderna (nyckelfingeravtryck)",
            "The compute nodes (key fingerprints)"
        )
    );
    match nodes {
        Some(nodes) => {
            s.push_str("<ol start=\"0\">\n");
            for n in nodes {
                let _ = writeln!(
                    s,
                    "<li>{} <code>{}</code></li>",
                    e(&n.operator),
                    e(&n.fingerprint)
                );
            }
            s.push_str("</ol>\n");
        }
        None => {
            for i in 0..3 {
                for (key, label) in [
                    (format!("operator.{i}"), l.t("Operatör", "Operator")),
                    (
                        format!("node.{i}"),
                        l.t(
                            "Nyckelns fingeravtryck (kuvert federation nodes)",
                            "Key fingerprint (kuvert federation nodes)",
                        ),
                    ),
                ] {
                    let fid = key.replace('.', "-");
                    let _ = writeln!(
                        s,
                        "<label for=\"{fid}\">{} {i}: {}</label>\n<input id=\"{fid}\" name=\"{}\" value=\"{}\" required>",
                        l.t("Nod", "Node"),
                        e(label),
                        e(&key),
                        val(&key, "")
                    );
                }
            }
        }
    }
    s.push_str("</fieldset>\n");
    let _ = writeln!(
        s,
        "<label for=\"contact\">{}</label>\n<input id=\"contact\" name=\"contact\" type=\"email\" value=\"{}\" required>",
        l.t("Kontakt (funktionsbrevlåda)", "Contact (functional mailbox)"),
        val("contact", "")
    );
    let _ = writeln!(
        s,
        "<button type=\"submit\">{}</button>\n</form>",
        l.t("Skicka in analysen", "Submit the analysis")
    );
    Some(s)
}

/// `GET /templates/{name}`: the form.
pub async fn template_form(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(name): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let l = q.lang();
    let v = Viewer::of(&c, l, &auth);
    let path = format!("/templates/{name}");
    let csrf = auth.0.as_ref().and_then(|p| c.inner.auth.csrf(p));
    match form(
        l,
        &name,
        &HashMap::new(),
        None,
        csrf.as_deref(),
        c.inner.spec_nodes.as_deref(),
    ) {
        Some(body) => page(l, &v, &path, &name, &body).into_response(),
        None => error_page(
            l,
            &v,
            &path,
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no template {name:?}; the templates are: {}",
                    kuvert_gov::templates::names().join(", ")
                ),
            ),
        ),
    }
}

/// Fill template `name` with form values: `org.ID`, `ctrl.ID`, `ed.ID`
/// (contributor's Ed25519 key), `kem.ID` (recipient's X-Wing result key) and
/// `contact`. Empty values leave the template's text. Comments and layout
/// of the template are kept (toml_edit). `nodes` (the coordinator's
/// federation, when it has one) become the spec's `[[nodes]]`; without
/// them the form's `node.I` (key fingerprint) and `operator.I` fill them.
pub fn fill_template(
    name: &str,
    values: &HashMap<String, String>,
    nodes: Option<&[kuvert_gov::spec::SpecNode]>,
) -> Result<String, String> {
    let base = kuvert_gov::templates::get(name).map_err(|e| e.to_string())?;
    let from_form: Vec<kuvert_gov::spec::SpecNode>;
    let nodes = match nodes {
        Some(n) => Some(n),
        None => {
            let v = |k: String| values.get(&k).map(|v| v.trim()).filter(|v| !v.is_empty());
            from_form = (0..3)
                .filter_map(|i| {
                    v(format!("node.{i}")).map(|fp| kuvert_gov::spec::SpecNode {
                        operator: v(format!("operator.{i}"))
                            .unwrap_or("(operator not given)")
                            .to_string(),
                        fingerprint: fp.to_string(),
                        endpoint: None,
                    })
                })
                .collect();
            (from_form.len() == 3).then_some(&from_form[..])
        }
    };
    let filled;
    let text = match nodes {
        Some(n) => {
            filled = kuvert_gov::templates::set_nodes(base, n).map_err(|e| e.to_string())?;
            filled.as_str()
        }
        None => base,
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("template {name} does not parse: {e}"))?;
    let get = |k: String| values.get(&k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(v) = get("contact".into()) {
        doc["contact"] = toml_edit::value(v);
    }
    let set = |t: &mut toml_edit::Table, field: &str, v: Option<&str>| {
        if let Some(v) = v {
            t[field] = toml_edit::value(v);
        }
    };
    if let Some(arr) = doc
        .get_mut("contributors")
        .and_then(|i| i.as_array_of_tables_mut())
    {
        for t in arr.iter_mut() {
            let id = t
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            set(t, "organisation", get(format!("org.{id}")));
            set(t, "controller", get(format!("ctrl.{id}")));
            set(t, "public_key", get(format!("ed.{id}")));
        }
    }
    if let Some(arr) = doc
        .get_mut("recipients")
        .and_then(|i| i.as_array_of_tables_mut())
    {
        for t in arr.iter_mut() {
            let id = t
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            set(t, "organisation", get(format!("org.{id}")));
            set(t, "kem_public_key", get(format!("kem.{id}")));
        }
    }
    Ok(doc.to_string())
}

/// `POST /templates/{name}`: fill, validate strictly, submit, redirect.
pub async fn template_submit(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(name): Path<String>,
    Query(q): Query<LangQuery>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let l = q.lang();
    let v = Viewer::of(&c, l, &auth);
    let path = format!("/templates/{name}");
    let p = match auth::principal(&auth) {
        Ok(p) => p,
        Err(err) => return error_page(l, &v, &path, err),
    };
    if let Err(err) = c
        .inner
        .auth
        .check_csrf(p, values.get("_csrf").map(String::as_str))
    {
        return error_page(l, &v, &path, err);
    }
    if kuvert_gov::templates::get(&name).is_err() {
        return template_form(AxState(c), Extension(auth), Path(name), Query(q)).await;
    }
    let result = match fill_template(&name, &values, c.inner.spec_nodes.as_deref()) {
        Ok(text) => {
            // Check here first for a message that names the form's fields.
            match AnalysisSpec::parse(&text, &format!("{name} (form)"), Validation::Strict) {
                Ok(_) => submit_text(&c, &text, p).await.map_err(|e| e.1),
                Err(err) => Err(err.to_string()),
            }
        }
        Err(err) => Err(err),
    };
    match result {
        Ok((id, _)) => (
            StatusCode::SEE_OTHER,
            [(
                header::LOCATION,
                format!("/analyses/{id}?lang={}", l.code()),
            )],
        )
            .into_response(),
        Err(err) => {
            let csrf = c.inner.auth.csrf(p);
            let body = form(
                l,
                &name,
                &values,
                Some(&err),
                csrf.as_deref(),
                c.inner.spec_nodes.as_deref(),
            )
            .unwrap_or_default();
            (StatusCode::BAD_REQUEST, page(l, &v, &path, &name, &body)).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    lang: Option<String>,
    next: Option<String>,
    ticket: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

fn login_page(l: Lang, next: Option<&str>, error: Option<&str>) -> Html<String> {
    let mut s = String::new();
    if let Some(err) = error {
        let _ = writeln!(
            s,
            "<div class=\"error\" role=\"alert\"><p>{}</p></div>",
            e(err)
        );
    }
    let _ = writeln!(
        s,
        "<p>{}</p>\n<form method=\"post\" action=\"/login?lang={}\">",
        l.t(
            "Logga in med den token som koordinatorns operatör gav dig (`kuvert coordinator token`). \
             En webbläsare med en parts klientcertifikat behöver ingen inloggning.",
            "Log in with the token the coordinator's operator gave you (`kuvert coordinator token`). \
             A browser with a party's client certificate needs no login."
        ),
        l.code()
    );
    if let Some(n) = next {
        let _ = writeln!(
            s,
            "<input type=\"hidden\" name=\"next\" value=\"{}\">",
            e(n)
        );
    }
    let _ = writeln!(
        s,
        "<label for=\"token\">{}</label>\n<input id=\"token\" name=\"token\" type=\"password\" \
autocomplete=\"current-password\" required>\n<button type=\"submit\">{}</button>\n</form>",
        l.t("Token", "Token"),
        l.t("Logga in", "Log in")
    );
    page(l, &Viewer::none(), "/login", l.t("Logga in", "Log in"), &s)
}

/// Open a session for `p` and go to `next`.
fn open_session(c: &Coordinator, p: &Principal, next: String) -> Response {
    let id = c.inner.auth.new_session(p);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, auth::session_cookie(&id)),
            (header::LOCATION, next),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// `GET /login`: the login form; with `?ticket=` (a one-time login link
/// from `POST /api/login-links`) it opens the session at once.
pub async fn login_form(AxState(c): AxState<Coordinator>, Query(q): Query<LoginQuery>) -> Response {
    let l = match q.lang.as_deref() {
        Some("en") => Lang::En,
        _ => Lang::Sv,
    };
    let next = safe_next(q.next.as_deref(), l);
    if let Some(t) = &q.ticket {
        return match c.inner.auth.redeem(t) {
            Some(p) => open_session(&c, &p, next),
            None => (
                StatusCode::UNAUTHORIZED,
                login_page(
                    l,
                    q.next.as_deref(),
                    Some(l.t(
                        "Inloggningslänken är okänd, redan använd eller för gammal; be om en ny eller logga in med din token.",
                        "The login link is unknown, used already or too old; ask for a new one or log in with your token.",
                    )),
                ),
            )
                .into_response(),
        };
    }
    login_page(l, q.next.as_deref(), None).into_response()
}

/// `POST /login`: check the token, open a session (cookie), go on.
pub async fn login_submit(
    AxState(c): AxState<Coordinator>,
    Query(q): Query<LangQuery>,
    Form(f): Form<LoginForm>,
) -> Response {
    let l = q.lang();
    match c.inner.auth.access.token(f.token.trim()) {
        Some(p) => open_session(&c, &p, safe_next(f.next.as_deref(), l)),
        None => (
            StatusCode::UNAUTHORIZED,
            login_page(
                l,
                f.next.as_deref(),
                Some(l.t(
                    "Fel token: den finns inte i koordinatorns åtkomstfil. Kontrollera att du kopierade hela.",
                    "Wrong token: it is not in the coordinator's access file. Check that you copied all of it.",
                )),
            ),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /logout`: end the session.
pub async fn logout(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<LangQuery>,
    Form(f): Form<LogoutForm>,
) -> Response {
    let l = q.lang();
    let p = match auth::principal(&auth) {
        Ok(p) => p,
        Err(err) => return error_page(l, &Viewer::none(), "/logout", err),
    };
    if let Err(err) = c.inner.auth.check_csrf(p, f.csrf.as_deref()) {
        return error_page(l, &Viewer::of(&c, l, &auth), "/logout", err);
    }
    c.inner.auth.end_session(p);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, auth::clear_cookie()),
            (header::LOCATION, format!("/login?lang={}", l.code())),
        ],
    )
        .into_response()
}
