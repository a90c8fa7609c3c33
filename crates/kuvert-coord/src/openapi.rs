//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand
//! (one entry per route; the tests check it against the router). Each
//! operation's `security` and `x-kuvert-roles` come from
//! [`crate::api::ROUTES`], the table the middleware enforces.

use serde_json::{json, Map, Value};

use crate::api::{Need, ROUTES};

/// Add what `need` means to an operation: its security requirements, the
/// roles (`x-kuvert-roles`, `x-kuvert-access`) and the 401/403 answers.
fn secure(path: &str, method: &str, op: &mut Value) {
    let need = ROUTES
        .iter()
        .find(|r| r.path == path && r.method == method)
        .map(|r| r.need)
        .unwrap_or(Need::Authenticated);
    let api = path.starts_with("/api/");
    let security = match need {
        Need::Public => json!([]),
        _ if api && method == "get" => json!([
            {"clientCertificate": []}, {"bearerToken": []}, {"consoleSession": []}
        ]),
        _ if api => json!([{"clientCertificate": []}, {"bearerToken": []}]),
        _ => json!([{"consoleSession": []}, {"clientCertificate": []}, {"bearerToken": []}]),
    };
    op["security"] = security;
    op["x-kuvert-roles"] = json!(need.roles());
    op["x-kuvert-access"] = json!(need.access());
    if need != Need::Public {
        if api {
            op["responses"]["401"] = err();
        } else if method == "get" {
            op["responses"]["303"] =
                json!({"description": "no session or client certificate: to /login"});
        }
        if need != Need::Authenticated {
            op["responses"]["403"] = err();
        }
    }
}

fn err() -> Value {
    json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok_json(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn ok_type(desc: &str, ctype: &str) -> Value {
    json!({"description": desc, "content": {ctype: {"schema": {"type": "string"}}}})
}

fn id_param(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "string"}})
}

fn lang_param() -> Value {
    json!({"name": "lang", "in": "query", "required": false,
           "description": "console language: sv (default) or en",
           "schema": {"type": "string", "enum": ["sv", "en"]}})
}

/// The document.
pub fn document() -> Value {
    let aid = || {
        id_param(
            "id",
            "analysis id: 64 hex digits (SHA-256 of the canonical spec)",
        )
    };
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, mut op: Value| {
        secure(path, method, &mut op);
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = op;
    };
    add(
        "/openapi.json",
        "get",
        json!({
        "summary": "This document", "tags": ["api"],
        "responses": {"200": ok_json("OpenAPI 3.1 document", json!({"type": "object"}))}}),
    );
    add(
        "/api/health",
        "get",
        json!({
        "summary": "Liveness (and, for operators, the number of analyses)", "tags": ["api"],
        "responses": {"200": ok_json("ok", json!({"type": "object", "properties": {
            "status": {"type": "string"}, "analyses": {"type": "integer"}}}))}}),
    );
    add(
        "/api/nodes",
        "get",
        json!({
        "summary": "The three nodes' client API addresses (for uploads and result fetches)", "tags": ["api"],
        "responses": {"200": ok_json("nodes", json!({"type": "array", "items": {"$ref": "#/components/schemas/Node"}}))}}),
    );
    add(
        "/api/analyses",
        "get",
        json!({
        "summary": "The catalogue of analyses, newest first", "tags": ["api"],
        "responses": {"200": ok_json("analyses", json!({"type": "array", "items": {"$ref": "#/components/schemas/AnalysisSummary"}}))}}),
    );
    add(
        "/api/analyses",
        "post",
        json!({
        "summary": "Submit an analysis spec (TOML); validated strictly; id = canonical hash", "tags": ["api"],
        "requestBody": {"required": true, "content": {"application/toml": {"schema": {"type": "string"}},
                                                      "text/plain": {"schema": {"type": "string"}}}},
        "responses": {"201": ok_json("stored", json!({"$ref": "#/components/schemas/Id"})),
                      "200": ok_json("was stored already", json!({"$ref": "#/components/schemas/Id"})),
                      "400": err()}}),
    );
    add(
        "/api/analyses/{id}",
        "get",
        json!({
        "summary": "One analysis: spec, state, approvals, per-node state, deletion receipts", "tags": ["api"],
        "parameters": [aid()],
        "responses": {"200": ok_json("analysis", json!({"$ref": "#/components/schemas/Analysis"})),
                      "400": err(), "404": err()}}),
    );
    add(
        "/api/analyses/{id}/spec",
        "get",
        json!({
        "summary": "The spec TOML exactly as submitted (recompute its hash before approving)", "tags": ["api"],
        "parameters": [aid()],
        "responses": {"200": ok_type("spec", "text/plain"), "400": err(), "404": err()}}),
    );
    add(
        "/api/analyses/{id}/approvals",
        "get",
        json!({
        "summary": "The approvals received", "tags": ["api"], "parameters": [aid()],
        "responses": {"200": ok_json("approvals", json!({"type": "array", "items": {"$ref": "#/components/schemas/Approval"}})),
                      "400": err(), "404": err()}}),
    );
    add(
        "/api/analyses/{id}/approvals",
        "post",
        json!({
        "summary": "A contributor's approval (Ed25519 signature over the analysis id); checked here and again by every node",
        "tags": ["api"], "parameters": [aid()],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Approval"}}}},
        "responses": {"200": ok_json("accepted", json!({"type": "object", "properties": {
            "contributor": {"type": "string"}, "remaining": {"type": "array", "items": {"type": "string"}}}})),
            "400": err(), "404": err()}}),
    );
    add(
        "/api/analyses/{id}/run",
        "post",
        json!({
        "summary": "Run now (also automatic once all three nodes are ready); reruns a failed job whose inputs are kept",
        "tags": ["api"], "parameters": [aid()],
        "responses": {"200": ok_json("started", json!({"type": "object"})), "400": err(), "404": err(), "409": err()}}),
    );
    add(
        "/api/analyses/{id}/describe",
        "get",
        json!({
        "summary": "The DPIA text (purpose, legal basis, roles, what each party learns, retention, audit trail)",
        "tags": ["api"],
        "parameters": [aid(), {"name": "format", "in": "query", "required": false,
                               "schema": {"type": "string", "enum": ["md", "html"]}}],
        "responses": {"200": {"description": "document", "content": {
            "text/markdown": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}}},
            "400": err(), "404": err()}}),
    );
    add(
        "/api/audit",
        "get",
        json!({
        "summary": "The coordinator's audit records (hash-chained; sizes and names, never values)",
        "tags": ["api"],
        "parameters": [{"name": "analysis", "in": "query", "required": false,
                        "description": "only the records of this analysis id", "schema": {"type": "string"}}],
        "responses": {"200": ok_json("records", json!({"type": "array", "items": {"type": "object"}})), "500": err()}}),
    );
    add(
        "/api/budgets",
        "get",
        json!({
        "summary": "The privacy budgets as the three nodes report them: per account (contributor key, dataset) each node's signed limit, spent and remaining ε and δ, and whether the nodes agree. The nodes keep, check and charge the budgets; the coordinator only shows them",
        "tags": ["api"],
        "responses": {"200": ok_json("the nodes' accounts", json!({"type": "object", "properties": {
            "unreachable": {"type": "array", "items": {"type": "string"}},
            "accounts": {"type": "array", "items": {"type": "object", "properties": {
                "contributor_key": {"type": "string"}, "contributors": {"type": "array", "items": {"type": "string"}},
                "dataset": {"type": "string"}, "agree": {"type": "boolean"},
                "nodes": {"type": "array", "items": {"type": ["object", "null"], "properties": {
                    "node": {"type": "integer"}, "limit_epsilon": {"type": "number"}, "limit_delta": {"type": "number"},
                    "limit_version": {"type": "integer"}, "spent_epsilon": {"type": "number"}, "spent_delta": {"type": "number"},
                    "remaining_epsilon": {"type": "number"}, "remaining_delta": {"type": "number"},
                    "releases": {"type": "integer"}, "refunds": {"type": "integer"}}}},
                "charges": {"type": "array", "items": {"type": "object"}}}}}}})),
            "500": err()}}),
    );
    add(
        "/api/login-links",
        "post",
        json!({
        "summary": "A one-time link that opens a console session for the caller (client certificate or bearer token); valid for 5 minutes, usable once",
        "tags": ["api"],
        "responses": {"201": ok_json("the link's path (append it to the coordinator's base URL)", json!({"type": "object", "properties": {
            "path": {"type": "string"}, "principal": {"type": "string"}, "expires_in_secs": {"type": "integer"}}}))}}),
    );
    add(
        "/login",
        "get",
        json!({
        "summary": "Console: the login form (a bearer token); with ?ticket= (a one-time login link) opens the session at once",
        "tags": ["console"],
        "parameters": [lang_param(),
            {"name": "next", "in": "query", "required": false, "description": "where to go after login (a path here)", "schema": {"type": "string"}},
            {"name": "ticket", "in": "query", "required": false, "description": "a one-time login ticket", "schema": {"type": "string"}}],
        "responses": {"200": ok_type("page", "text/html"),
                      "303": {"description": "logged in (Set-Cookie: a Secure, HttpOnly, SameSite=Strict session); to next"},
                      "401": ok_type("the form again: the ticket is unknown, used or expired", "text/html")}}),
    );
    add(
        "/login",
        "post",
        json!({
        "summary": "Console: log in with a bearer token from the access file; sets the session cookie",
        "tags": ["console"], "parameters": [lang_param()],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object",
            "properties": {"token": {"type": "string"}, "next": {"type": "string"}}, "required": ["token"]}}}},
        "responses": {"303": {"description": "logged in; to next"},
                      "401": ok_type("the form again, with the error", "text/html")}}),
    );
    add(
        "/logout",
        "post",
        json!({
        "summary": "Console: end the session (the form carries the CSRF token _csrf)",
        "tags": ["console"], "parameters": [lang_param()],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object",
            "properties": {"_csrf": {"type": "string"}}}}}},
        "responses": {"303": {"description": "logged out; to /login"}}}),
    );
    add(
        "/",
        "get",
        json!({
        "summary": "Console: the analyses the viewer may see", "tags": ["console"], "parameters": [lang_param()],
        "responses": {"200": ok_type("page", "text/html")}}),
    );
    add(
        "/analyses/{id}",
        "get",
        json!({
        "summary": "Console: one analysis", "tags": ["console"], "parameters": [aid(), lang_param()],
        "responses": {"200": ok_type("page", "text/html"), "400": ok_type("page", "text/html"), "404": ok_type("page", "text/html")}}),
    );
    add(
        "/budgets",
        "get",
        json!({
        "summary": "Console: the differential-privacy budget of every dataset account", "tags": ["console"], "parameters": [lang_param()],
        "responses": {"200": ok_type("page", "text/html")}}),
    );
    add(
        "/templates",
        "get",
        json!({
        "summary": "Console: the analysis templates", "tags": ["console"], "parameters": [lang_param()],
        "responses": {"200": ok_type("page", "text/html")}}),
    );
    add(
        "/templates/{name}",
        "get",
        json!({
        "summary": "Console: a form that fills a template", "tags": ["console"],
        "parameters": [id_param("name", "template name"), lang_param()],
        "responses": {"200": ok_type("page", "text/html"), "404": ok_type("page", "text/html")}}),
    );
    add(
        "/templates/{name}",
        "post",
        json!({
        "summary": "Console: fill the template with the form's values and submit it (303 to the analysis); the form carries the CSRF token _csrf",
        "tags": ["console"], "parameters": [id_param("name", "template name"), lang_param()],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
        "responses": {"303": {"description": "submitted; see the analysis"},
                      "400": ok_type("the form again, with the error", "text/html"),
                      "404": ok_type("page", "text/html")}}),
    );
    add(
        "/audit",
        "get",
        json!({
        "summary": "Console: the coordinator's audit log", "tags": ["console"], "parameters": [lang_param()],
        "responses": {"200": ok_type("page", "text/html")}}),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kuvert coordinator",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Catalogue, approvals, scheduling and status of governed Kuvert analyses. \
                The coordinator never holds keys, shares or results. See docs/service.md. \
                HTTPS only. Every operation says what it needs: `security` (a client certificate \
                from one of the coordinator's client CAs, a bearer token from its access file, or \
                a console session) and `x-kuvert-roles`, the roles of which the principal needs \
                one; `x-kuvert-access` says how they apply: `public` (nothing needed), \
                `authenticated` (any principal; what it sees depends on its roles), \
                `global-role` (a role from the access file) or `analysis-role` (a role for the \
                analysis in the path: operator and auditor are global, contributor and recipient \
                are implied by the spec's ids, submitter means the principal submitted it). \
                Without credentials: 401; without the role: 403, and nothing changes."
        },
        "security": [{"clientCertificate": []}, {"bearerToken": []}],
        "paths": Value::Object(paths),
        "components": {
        "securitySchemes": {
            "clientCertificate": {"type": "mutualTLS", "description": "A TLS client certificate issued by one of the coordinator's client CAs; the principal is its subject CN (a PKI party name such as fk)."},
            "bearerToken": {"type": "http", "scheme": "bearer", "description": "A token from the coordinator's access file (kuvert coordinator token); the principal is the token's name."},
            "consoleSession": {"type": "apiKey", "in": "cookie", "name": "__Host-kuvert-session", "description": "The console's session cookie, from POST /login or a login link; GET requests and console forms only."}
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Id": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            "Node": {"type": "object", "properties": {"index": {"type": "integer"}, "addr": {"type": "string"}}},
            "State": {"type": "string", "enum": ["submitted", "approved", "registered", "running", "done", "failed", "expired"]},
            "AnalysisSummary": {"type": "object", "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "state": {"$ref": "#/components/schemas/State"},
                "approvals_have": {"type": "integer"}, "approvals_need": {"type": "integer"},
                "submitted_at": {"type": "string", "format": "date-time"}}},
            "Analysis": {"type": "object", "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "spec": {"type": "object"},
                "state": {"$ref": "#/components/schemas/State"}, "detail": {"type": "string"},
                "approvals": {"type": "array", "items": {"type": "object", "properties": {
                    "contributor": {"type": "string"}, "organisation": {"type": "string"},
                    "approved": {"type": "boolean"}, "at": {"type": ["string", "null"]}}}},
                "nodes": {"type": "array", "items": {"type": "object", "description":
                    "index, and state (the node's GovStatus) or error (why it did not answer)"}},
                "receipts": {"type": "array", "items": {"type": "object", "description": "signed deletion receipts"}},
                "receipt_checks": {"type": "array", "items": {"type": "object", "description":
                    "node, and signature: valid | invalid | no_key (checked against node-<i>.gov.pub in the PKI directory)"}},
                "submitted_at": {"type": "string"}, "updated_at": {"type": "string"}}},
            "Approval": {"type": "object", "required": ["analysis_id", "contributor", "public_key", "signature"],
                "properties": {"analysis_id": {"type": "string"}, "contributor": {"type": "string"},
                    "public_key": {"type": "string"}, "signature": {"type": "string"}}}
        }}
    })
}
