//! The JSON API (and the router that also serves the console). Errors are
//! `{"error": "..."}` with 400 (bad input), 401 (no or bad credentials),
//! 403 (a role is missing), 404 (unknown analysis or route), 409 (not now),
//! 502 (the nodes) or 500 (the coordinator).
//!
//! Every route is authenticated by [`crate::auth::middleware`] and needs
//! what [`ROUTES`] says; handlers of one analysis check the per-analysis
//! roles themselves (they know the spec).

use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use kuvert_gov::{AnalysisSpec, Approval, ApprovalState, AuditEvent, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{self, Auth, Principal, Role};
use crate::sched::{parse_id, RunRequest};
use crate::store::{AnalysisRow, NodeSeen, State};
use crate::{console, CoordError, Coordinator};

/// An API error: status and message.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<CoordError> for ApiError {
    fn from(e: CoordError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// What a route needs from the request's principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: anyone who reaches the port (over TLS).
    Public,
    /// Any authenticated principal (what it sees may still depend on its
    /// roles).
    Authenticated,
    /// One of these global roles (from the access file).
    Global(&'static [Role]),
    /// One of these roles for the analysis in the path: operator and
    /// auditor are global; contributor and recipient are implied by the
    /// spec; submitter means "submitted this analysis".
    Analysis(&'static [Role]),
}

impl Need {
    /// The roles for `x-kuvert-roles` in the OpenAPI document.
    pub fn roles(self) -> Vec<&'static str> {
        match self {
            Need::Public => vec![],
            Need::Authenticated => Role::ALL.map(Role::as_str).to_vec(),
            Need::Global(r) | Need::Analysis(r) => r.iter().map(|x| x.as_str()).collect(),
        }
    }

    /// How the roles apply, for `x-kuvert-access`.
    pub fn access(self) -> &'static str {
        match self {
            Need::Public => "public",
            Need::Authenticated => "authenticated",
            Need::Global(_) => "global-role",
            Need::Analysis(_) => "analysis-role",
        }
    }
}

/// One route: method, path and what it needs.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
}

const fn r(method: &'static str, path: &'static str, need: Need) -> Route {
    Route { method, path, need }
}

/// Read one analysis: its status, spec (and the console page).
pub const READ_ANALYSIS: &[Role] = &[
    Role::Operator,
    Role::Auditor,
    Role::Submitter,
    Role::Contributor,
    Role::Recipient,
];
/// Its approvals, DPIA text and audit records: not its recipients.
pub const READ_GOVERNANCE: &[Role] = &[
    Role::Operator,
    Role::Auditor,
    Role::Submitter,
    Role::Contributor,
];
const OPS: &[Role] = &[Role::Operator, Role::Auditor];

/// Every route the router serves, with what it needs. The OpenAPI document
/// is checked against this list and the router source in the tests.
pub const ROUTES: &[Route] = &[
    r("get", "/openapi.json", Need::Public),
    r("get", "/api/health", Need::Public),
    r("get", "/api/nodes", Need::Authenticated),
    r("get", "/api/analyses", Need::Authenticated),
    r("post", "/api/analyses", Need::Global(&[Role::Submitter])),
    r("get", "/api/analyses/{id}", Need::Analysis(READ_ANALYSIS)),
    r(
        "get",
        "/api/analyses/{id}/spec",
        Need::Analysis(READ_ANALYSIS),
    ),
    r(
        "get",
        "/api/analyses/{id}/approvals",
        Need::Analysis(READ_GOVERNANCE),
    ),
    r(
        "post",
        "/api/analyses/{id}/approvals",
        Need::Analysis(&[Role::Contributor]),
    ),
    r(
        "post",
        "/api/analyses/{id}/run",
        Need::Global(&[Role::Operator]),
    ),
    r(
        "get",
        "/api/analyses/{id}/describe",
        Need::Analysis(READ_GOVERNANCE),
    ),
    r("get", "/api/audit", Need::Global(OPS)),
    r("get", "/api/budgets", Need::Global(OPS)),
    r("post", "/api/login-links", Need::Authenticated),
    r("get", "/", Need::Authenticated),
    r("get", "/analyses/{id}", Need::Analysis(READ_ANALYSIS)),
    r("get", "/templates", Need::Authenticated),
    r("get", "/templates/{name}", Need::Authenticated),
    r(
        "post",
        "/templates/{name}",
        Need::Global(&[Role::Submitter]),
    ),
    r("get", "/audit", Need::Global(OPS)),
    r("get", "/budgets", Need::Global(OPS)),
    r("get", "/login", Need::Public),
    r("post", "/login", Need::Public),
    r("post", "/logout", Need::Authenticated),
];

/// What (method, path) needs; a route missing from [`ROUTES`] needs an
/// authenticated principal.
pub fn need(method: &str, path: &str) -> Need {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.need)
        .unwrap_or(Need::Authenticated)
}

/// The router: JSON API, OpenAPI document and console, behind the
/// authentication middleware.
pub fn router(c: Coordinator) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/api/health", get(health))
        .route("/api/nodes", get(nodes))
        .route("/api/analyses", get(list).post(submit))
        .route("/api/analyses/{id}", get(show))
        .route("/api/analyses/{id}/spec", get(spec_text))
        .route("/api/analyses/{id}/approvals", get(approvals).post(approve))
        .route("/api/analyses/{id}/run", post(run))
        .route("/api/analyses/{id}/describe", get(describe))
        .route("/api/audit", get(audit))
        .route("/api/budgets", get(budgets))
        .route("/api/login-links", post(login_link))
        .route("/", get(console::index))
        .route("/analyses/{id}", get(console::analysis))
        .route("/templates", get(console::templates))
        .route(
            "/templates/{name}",
            get(console::template_form).post(console::template_submit),
        )
        .route("/audit", get(console::audit))
        .route("/budgets", get(console::budgets))
        .route(
            "/login",
            get(console::login_form).post(console::login_submit),
        )
        .route("/logout", post(console::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            c.clone(),
            auth::middleware,
        ))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such route; GET /openapi.json lists the API".into(),
            )
        })
        .with_state(c)
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// Liveness for anyone; the number of analyses for operators.
async fn health(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
) -> Result<Json<Value>, ApiError> {
    match &auth.0 {
        Some(p) if p.has(Role::Operator) => {
            let n = c.inner.store.analyses().await?.len();
            Ok(Json(json!({ "status": "ok", "analyses": n })))
        }
        _ => Ok(Json(json!({ "status": "ok" }))),
    }
}

async fn nodes(AxState(c): AxState<Coordinator>) -> Json<Value> {
    Json(Value::Array(
        c.inner
            .node_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| json!({ "index": i, "addr": a.to_string() }))
            .collect(),
    ))
}

/// Look up an analysis by its id path segment (404 when unknown).
pub(crate) async fn find(c: &Coordinator, id: &str) -> Result<AnalysisRow, ApiError> {
    if id.parse::<kuvert_gov::AnalysisId>().is_err() {
        return Err(bad(format!(
            "{id:?} is not an analysis id: give the 64 hex digits that POST /api/analyses returned"
        )));
    }
    c.inner.store.analysis(id).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no analysis {id} here; GET /api/analyses lists them, or submit the spec first"
            ),
        )
    })
}

/// Approvals summary: per contributor of the spec.
pub(crate) async fn approval_rows(
    c: &Coordinator,
    a: &AnalysisRow,
    spec: &AnalysisSpec,
) -> Result<Vec<Value>, ApiError> {
    let have = c.inner.store.approvals(&a.id).await?;
    let list: Vec<Approval> = have.iter().map(|(ap, _)| ap.clone()).collect();
    let status = kuvert_gov::approval_status(spec, &list);
    Ok(spec
        .contributors
        .iter()
        .map(|ct| {
            let approved = status
                .iter()
                .any(|(who, s)| *who == ct.id && *s == ApprovalState::Approved);
            let at = have
                .iter()
                .find(|(ap, _)| ap.contributor == ct.id)
                .map(|(_, at)| at.clone());
            json!({
                "contributor": ct.id,
                "organisation": ct.organisation,
                "approved": approved,
                "at": at,
            })
        })
        .collect())
}

/// The analyses `p` may see, newest first, with their specs: all for
/// operators and auditors; otherwise those that name `p` as a contributor
/// or recipient, and those it submitted.
pub(crate) async fn visible_analyses(
    c: &Coordinator,
    p: &Principal,
) -> Result<Vec<(AnalysisRow, AnalysisSpec)>, ApiError> {
    let mine: std::collections::BTreeSet<String> = if p.has(Role::Submitter) {
        c.inner
            .store
            .submitted_by(&p.name)
            .await?
            .into_iter()
            .collect()
    } else {
        Default::default()
    };
    let mut out = Vec::new();
    for a in c.inner.store.analyses().await? {
        let spec = Coordinator::spec_of(&a)?;
        let named = spec.contributors.iter().any(|x| x.id == p.name)
            || spec.recipients.iter().any(|x| x.id == p.name);
        if p.reads_all() || named || mine.contains(&a.id) {
            out.push((a, spec));
        }
    }
    Ok(out)
}

/// Find analysis `id` and check that `auth`'s principal holds one of
/// `allowed` for it: the row, the spec and the principal's roles there.
pub(crate) async fn find_for(
    c: &Coordinator,
    auth: &Auth,
    id: &str,
    allowed: &[Role],
) -> Result<(AnalysisRow, AnalysisSpec, std::collections::BTreeSet<Role>), ApiError> {
    let p = auth::principal(auth)?;
    let a = find(c, id).await?;
    let spec = Coordinator::spec_of(&a)?;
    let roles = auth::require_analysis(c, p, &a.id, &spec, allowed).await?;
    Ok((a, spec, roles))
}

async fn list(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
) -> Result<Json<Value>, ApiError> {
    let p = auth::principal(&auth)?;
    let mut out = Vec::new();
    for (a, spec) in visible_analyses(&c, p).await? {
        let rows = approval_rows(&c, &a, &spec).await?;
        let have = rows.iter().filter(|r| r["approved"] == true).count();
        out.push(json!({
            "id": a.id,
            "name": a.name,
            "state": a.state,
            "approvals_have": have,
            "approvals_need": spec.contributors.len(),
            "submitted_at": a.submitted_at,
        }));
    }
    Ok(Json(Value::Array(out)))
}

/// Validate and store a spec submitted by `by`; the id and whether it was
/// new.
pub(crate) async fn submit_text(
    c: &Coordinator,
    text: &str,
    by: &Principal,
) -> Result<(String, bool), ApiError> {
    let spec = AnalysisSpec::parse(text, "spec.toml", Validation::Strict).map_err(|e| {
        bad(format!(
            "{e}; fix the spec (kuvert analysis check FILE shows every problem) and submit again"
        ))
    })?;
    // Every output compiled exactly as the nodes will (same planner, same
    // privacy checks): a spec that cannot run is refused before anyone
    // approves it and before any budget is touched.
    kuvert_node::gov::compile_spec(&spec).map_err(|e| {
        bad(format!(
            "{e}; the nodes could not run this analysis. Fix the spec (kuvert analysis check FILE \
             compiles it the same way) and submit again"
        ))
    })?;
    let id = spec.id();
    let fresh = c
        .inner
        .store
        .insert_analysis(&id.to_hex(), &spec.name, text)
        .await?;
    c.inner.store.add_submitter(&id.to_hex(), &by.name).await?;
    if fresh {
        c.audit(
            AuditEvent::new("coordinator", "analysis.submitted")
                .analysis(id)
                .detail("name", spec.name.clone())
                .detail("by", by.name.clone())
                .detail("contributors", spec.contributors.len() as u64)
                .detail("recipients", spec.recipients.len() as u64)
                .detail("bytes", text.len() as u64),
        )?;
    }
    Ok((id.to_hex(), fresh))
}

async fn submit(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    body: String,
) -> Result<Response, ApiError> {
    let (id, fresh) = submit_text(&c, &body, auth::principal(&auth)?).await?;
    let code = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(json!({ "id": id }))).into_response())
}

async fn show(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (a, spec, _) = find_for(&c, &auth, &id, READ_ANALYSIS).await?;
    let approvals = approval_rows(&c, &a, &spec).await?;
    let seen = c.inner.store.nodes_seen(&a.id).await?;
    let nodes: Vec<Value> = seen
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Some((NodeSeen::Status(st), at)) => json!({"index": i, "state": st, "at": at}),
            Some((NodeSeen::Error(e), at)) => json!({"index": i, "error": e, "at": at}),
            None => json!({"index": i, "state": null}),
        })
        .collect();
    let receipts = c.inner.store.receipts(&a.id).await?;
    let checks: Vec<Value> = receipts
        .iter()
        .map(|r| json!({"node": r.node, "signature": c.check_receipt(r)}))
        .collect();
    Ok(Json(json!({
        "id": a.id,
        "name": a.name,
        "spec": serde_json::to_value(&spec).unwrap_or(Value::Null),
        "state": a.state,
        "detail": a.detail,
        "approvals": approvals,
        "nodes": nodes,
        "receipts": receipts,
        "receipt_checks": checks,
        "submitted_at": a.submitted_at,
        "updated_at": a.updated_at,
    })))
}

async fn spec_text(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (a, _, _) = find_for(&c, &auth, &id, READ_ANALYSIS).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        a.spec_toml,
    )
        .into_response())
}

async fn approvals(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Approval>>, ApiError> {
    let (a, _, _) = find_for(&c, &auth, &id, READ_GOVERNANCE).await?;
    Ok(Json(
        c.inner
            .store
            .approvals(&a.id)
            .await?
            .into_iter()
            .map(|(ap, _)| ap)
            .collect(),
    ))
}

async fn approve(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let (a, spec, _) = find_for(&c, &auth, &id, &[Role::Contributor]).await?;
    let me = auth::principal(&auth)?;
    let approval: Approval = serde_json::from_str(&body).map_err(|e| {
        bad(format!(
            "approval JSON at line {} column {}: {e}; send the file `kuvert analysis approve` wrote \
             (analysis_id, contributor, public_key, signature)",
            e.line(),
            e.column()
        ))
    })?;
    if approval.analysis_id.to_hex() != a.id {
        return Err(bad(format!(
            "the approval of {:?} is for analysis {}, not {}: the contributor approved another \
             spec; ask them to approve {}",
            approval.contributor, approval.analysis_id, a.id, a.id
        )));
    }
    if approval.contributor != me.name {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "{} may post only its own approval, not {:?}'s: each contributor posts its \
                 approval with its own credentials",
                me.describe(),
                approval.contributor
            ),
        ));
    }
    let status = kuvert_gov::approval_status(&spec, std::slice::from_ref(&approval));
    match status.iter().find(|(who, _)| *who == approval.contributor) {
        Some((_, ApprovalState::Approved)) => {}
        Some((_, ApprovalState::Invalid(why))) => return Err(bad(why.clone())),
        _ => {
            return Err(bad(format!(
                "approval of {:?} not accepted",
                approval.contributor
            )))
        }
    }
    c.inner.store.add_approval(&approval).await?;
    c.audit(
        AuditEvent::new("coordinator", "approval.received")
            .analysis(parse_id(&a.id)?)
            .detail("contributor", approval.contributor.clone())
            .detail("by", me.name.clone()),
    )?;
    let remaining = c.remaining_approvals(&a).await?;
    if remaining.is_empty() {
        c.mark_approved(&a.id).await?;
    }
    Ok(Json(json!({
        "contributor": approval.contributor,
        "remaining": remaining,
    })))
}

async fn run(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (a, _, _) = find_for(&c, &auth, &id, &[Role::Operator]).await?;
    match c.request_run(&a).await? {
        RunRequest::Started => Ok(Json(json!({ "id": a.id, "state": State::Running }))),
        RunRequest::NotReady(why) => Err(ApiError(StatusCode::CONFLICT, why)),
    }
}

#[derive(Deserialize)]
pub(crate) struct DescribeQuery {
    format: Option<String>,
}

/// The coordinator's audit records (all, or those of one analysis).
pub(crate) fn audit_records(
    c: &Coordinator,
    id: Option<&str>,
) -> Result<Vec<kuvert_gov::AuditRecord>, ApiError> {
    let path = &c.inner.audit_path;
    let all = if path.exists() {
        kuvert_gov::verify_file(path).map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the coordinator's audit log does not verify: {e}"),
            )
        })?
    } else {
        vec![]
    };
    Ok(match id {
        Some(id) => all
            .into_iter()
            .filter(|r| r.analysis_id.map(|x| x.to_hex()).as_deref() == Some(id))
            .collect(),
        None => all,
    })
}

async fn describe(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
    Query(q): Query<DescribeQuery>,
) -> Result<Response, ApiError> {
    let (a, spec, _) = find_for(&c, &auth, &id, READ_GOVERNANCE).await?;
    let (format, ctype) = match q.format.as_deref().unwrap_or("md") {
        "md" | "markdown" => (kuvert_gov::Format::Markdown, "text/markdown; charset=utf-8"),
        "html" => (kuvert_gov::Format::Html, "text/html; charset=utf-8"),
        other => {
            return Err(bad(format!(
                "format {other:?} is not known; use format=md or format=html"
            )))
        }
    };
    let approvals: Vec<Approval> = c
        .inner
        .store
        .approvals(&a.id)
        .await?
        .into_iter()
        .map(|(ap, _)| ap)
        .collect();
    let records = audit_records(&c, Some(&a.id))?;
    let text = kuvert_gov::describe(&spec, &approvals, &records, format);
    Ok(([(header::CONTENT_TYPE, ctype)], text).into_response())
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    analysis: Option<String>,
}

async fn audit(
    AxState(c): AxState<Coordinator>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<kuvert_gov::AuditRecord>>, ApiError> {
    Ok(Json(audit_records(&c, q.analysis.as_deref())?))
}

/// `GET /api/budgets`: every node's privacy-budget accounts, side by
/// side (the nodes enforce them; see [`crate::budgets`]).
async fn budgets(
    AxState(c): AxState<Coordinator>,
) -> Result<Json<crate::budgets::BudgetView>, ApiError> {
    Ok(Json(c.budgets().await?))
}

/// `POST /api/login-links`: a one-time link that opens a console session
/// for the caller (a client certificate or a bearer token), valid for
/// [`auth::TICKET_TTL`].
async fn login_link(
    AxState(c): AxState<Coordinator>,
    Extension(auth): Extension<Auth>,
) -> Result<Response, ApiError> {
    let p = auth::principal(&auth)?;
    let ticket = c.inner.auth.new_ticket(p);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "path": format!("/login?ticket={ticket}"),
            "principal": p.name,
            "expires_in_secs": auth::TICKET_TTL.as_secs(),
        })),
    )
        .into_response())
}
