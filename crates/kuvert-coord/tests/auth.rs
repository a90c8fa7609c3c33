//! The coordinator over HTTPS with authenticated roles: plain HTTP is
//! refused; no credentials is 401; a missing role is 403 and changes
//! nothing (state, audit log); the right role is 200; console login with a
//! token (session cookie, CSRF, logout) and one-time login links.

mod common;

use axum::http::StatusCode;
use common::*;
use kuvert_coord::{api, start, Coordinator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The audit log's number of records.
fn audit_len(c: &Coordinator) -> usize {
    let p = c.audit_path();
    if !p.exists() {
        return 0;
    }
    kuvert_gov::verify_file(p).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&config(dir.path()), Fake::new()).await.unwrap();
    for path in ["/api/analyses", "/api/health", "/"] {
        let mut s = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n",
            running.addr
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 400"), "{path}: {text}");
        assert!(text.contains("only HTTPS"), "{text}");
        assert!(!text.contains("\"status\""), "{text}");
    }
    // Not even a TLS server that answers plain bytes: garbage is dropped.
    let mut s = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    s.write_all(b"\x00\x01\x02\x03").await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    assert!(buf.is_empty());
    // HTTPS works on the same port.
    let (code, body) = https(running.addr, Cred::None, "GET", "/api/health", "").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["status"], "ok");
    assert!(
        json(&body).get("analyses").is_none(),
        "counts only for operators"
    );
    let (_, body) = https(running.addr, Cred::Token(ADMIN), "GET", "/api/health", "").await;
    assert_eq!(json(&body)["analyses"], 0);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_every_api_route_is_401() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&config(dir.path()), Fake::new()).await.unwrap();
    let addr = running.addr;
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    let (code, body) = https(addr, Cred::None, "GET", "/api/analyses", "").await;
    assert_eq!(code, 401, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("client certificate"));
    let (code, _) = https(addr, Cred::None, "POST", "/api/analyses", &text).await;
    assert_eq!(code, 401);
    assert!(running
        .coordinator
        .store()
        .analyses()
        .await
        .unwrap()
        .is_empty());
    // A wrong token is 401 too, even with a valid certificate.
    let (code, body) = https(addr, Cred::Token("kvt_wrong"), "GET", "/api/analyses", "").await;
    assert_eq!(code, 401);
    assert!(body.contains("not valid"), "{body}");
    for r in api::ROUTES.iter().filter(|r| r.path.starts_with("/api/")) {
        let path = r.path.replace("{id}", &id.to_hex());
        let (code, body) = https(addr, Cred::None, &r.method.to_uppercase(), &path, "").await;
        if r.need == api::Need::Public {
            assert_eq!(code, 200, "{} {path}: {body}", r.method);
        } else {
            assert_eq!(code, 401, "{} {path}: {body}", r.method);
        }
    }
    // The public document, and the console sends to the login page.
    let (code, _) = https(addr, Cred::None, "GET", "/openapi.json", "").await;
    assert_eq!(code, 200);
    let (code, _) = https(addr, Cred::None, "GET", "/audit?lang=en", "").await;
    assert_eq!(code, 303);
    let (code, body) = https(addr, Cred::None, "GET", "/login?lang=en", "").await;
    assert_eq!(code, 200);
    assert!(body.contains("type=\"password\""));
    assert_eq!(audit_len(&running.coordinator), 0);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&config(dir.path()), Fake::new()).await.unwrap();
    let (addr, c) = (running.addr, running.coordinator.clone());
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    let path = |s: &str| format!("/api/analyses/{id}{s}");

    // kommun is a party but no submitter: 403 that says what to do.
    let (code, body) = https(addr, Cred::Cert("kommun"), "POST", "/api/analyses", &text).await;
    assert_eq!(code, 403, "{body}");
    let msg = json(&body)["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("this certificate's party kommun has no role submitter")
            && msg.contains("access file"),
        "{msg}"
    );
    assert!(c.store().analyses().await.unwrap().is_empty());
    assert_eq!(audit_len(&c), 0);
    // fk may submit (access file); by its client certificate.
    let (code, body) = https(addr, Cred::Cert("fk"), "POST", "/api/analyses", &text).await;
    assert_eq!(code, 201, "{body}");
    let audited = audit_len(&c);
    assert_eq!(audited, 1);

    // A party the spec does not name reads nothing of it.
    for s in ["", "/spec", "/approvals", "/describe"] {
        let (code, body) = https(addr, Cred::Cert("outsider"), "GET", &path(s), "").await;
        assert_eq!(code, 403, "{s}: {body}");
        assert!(body.contains("outsider"), "{body}");
    }
    let (code, body) = https(addr, Cred::Cert("outsider"), "GET", "/api/analyses", "").await;
    assert_eq!(code, 200);
    assert_eq!(json(&body), serde_json::json!([]));
    // The recipient kontroll: status and spec, not approvals, DPIA or audit.
    let (code, _) = https(addr, Cred::Cert("kontroll"), "GET", &path(""), "").await;
    assert_eq!(code, 200);
    let (code, got) = https(addr, Cred::Cert("kontroll"), "GET", &path("/spec"), "").await;
    assert_eq!((code, got.as_str()), (200, text.as_str()));
    for s in ["/approvals", "/describe"] {
        let (code, _) = https(addr, Cred::Cert("kontroll"), "GET", &path(s), "").await;
        assert_eq!(code, 403, "{s}");
    }
    let (_, body) = https(addr, Cred::Cert("kontroll"), "GET", "/api/analyses", "").await;
    assert_eq!(json(&body)[0]["id"], id.to_hex());

    // A recipient posting an approval, a contributor approving for another
    // contributor: 403, and nothing changes.
    let kommuns = serde_json::to_string(&approval(&p, "kommun", &id)).unwrap();
    let fks = serde_json::to_string(&approval(&p, "fk", &id)).unwrap();
    let (code, body) = https(
        addr,
        Cred::Cert("kontroll"),
        "POST",
        &path("/approvals"),
        &fks,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = https(
        addr,
        Cred::Cert("fk"),
        "POST",
        &path("/approvals"),
        &kommuns,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("only its own approval"), "{body}");
    // A token that stands for another principal cannot either.
    let (code, _) = https(addr, Cred::Token(ADMIN), "POST", &path("/approvals"), &fks).await;
    assert_eq!(code, 403);
    assert!(c.store().approvals(&id.to_hex()).await.unwrap().is_empty());
    assert_eq!(audit_len(&c), audited, "a refused request was audited");
    // Each contributor approves for itself: 200.
    let (code, body) = https(addr, Cred::Cert("fk"), "POST", &path("/approvals"), &fks).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = https(
        addr,
        Cred::Cert("kommun"),
        "POST",
        &path("/approvals"),
        &kommuns,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let recs = kuvert_gov::verify_file(c.audit_path()).unwrap();
    assert_eq!(recs[0].details["by"], "fk");
    assert_eq!(recs[2].details["by"], "kommun");

    // Audit log and budgets: auditors and operators only.
    for (cred, want) in [
        (Cred::Token(SUBMITTER), 403),
        (Cred::Cert("fk"), 403),
        (Cred::Cert("kontroll"), 403),
        (Cred::Token(AUDITOR), 200),
        (Cred::Token(ADMIN), 200),
    ] {
        for route in ["/api/audit", "/api/budgets"] {
            let (code, body) = https(addr, cred, "GET", route, "").await;
            assert_eq!(code, want, "{cred:?} {route}: {body}");
        }
    }
    // Runs: operators only.
    let (code, body) = https(addr, Cred::Cert("fk"), "POST", &path("/run"), "").await;
    assert_eq!(code, 403, "{body}");
    let (code, _) = https(addr, Cred::Token(AUDITOR), "POST", &path("/run"), "").await;
    assert_eq!(code, 403);
    let (code, body) = https(addr, Cred::Token(ADMIN), "POST", &path("/run"), "").await;
    assert!(code == 200 || code == 409, "{code} {body}");

    // A submitter sees what it submitted, not the others' analyses.
    let (code, _) = https(addr, Cred::Token(SUBMITTER), "GET", &path(""), "").await;
    assert_eq!(code, 403);
    let (_, body) = https(addr, Cred::Token(SUBMITTER), "GET", "/api/analyses", "").await;
    assert_eq!(json(&body), serde_json::json!([]));
    let text2 = spec_text(&p, "analyst's own");
    let id2 = id_of(&text2);
    let (code, _) = https(
        addr,
        Cred::Token(SUBMITTER),
        "POST",
        "/api/analyses",
        &text2,
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = https(
        addr,
        Cred::Token(SUBMITTER),
        "GET",
        &format!("/api/analyses/{id2}/describe"),
        "",
    )
    .await;
    assert_eq!(code, 200);
    let (_, body) = https(addr, Cred::Token(SUBMITTER), "GET", "/api/analyses", "").await;
    assert_eq!(json(&body).as_array().unwrap().len(), 1);
    // Operators and auditors see every analysis.
    let (_, body) = https(addr, Cred::Token(AUDITOR), "GET", "/api/analyses", "").await;
    assert_eq!(json(&body).as_array().unwrap().len(), 2);

    // Console pages by client certificate: forms carry a CSRF token.
    let (code, html) = https(addr, Cred::Cert("fk"), "GET", "/templates/opt-out", "").await;
    assert_eq!(code, 200);
    assert!(html.contains("name=\"_csrf\""), "{html}");
    let (code, _) = https(addr, Cred::Cert("fk"), "POST", "/templates/opt-out", "").await;
    assert_ne!(code, 303);
    let (code, _) = https(addr, Cred::Cert("kontroll"), "GET", "/audit", "").await;
    assert_eq!(code, 403);
    running.stop().await.unwrap();
}

fn cookie_of(headers: &axum::http::HeaderMap) -> String {
    let set = headers
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(set.starts_with("__Host-kuvert-session="), "{set}");
    set.split(';').next().unwrap().to_string()
}

fn form_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test]
async fn console_login_session_csrf_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(&config(dir.path()), Fake::new())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let form = "application/x-www-form-urlencoded";
    let get = |cookie: String, uri: &'static str| {
        let app = app.clone();
        async move {
            call_full(
                &app,
                None,
                &[("cookie", &cookie)],
                "GET",
                uri,
                "",
                "text/plain",
            )
            .await
        }
    };

    // Without a session: to the login page, and back afterwards.
    let (code, h, _) = call_full(&app, None, &[], "GET", "/audit?lang=en", "", "text/plain").await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    let to = h["location"].to_str().unwrap();
    assert!(
        to.starts_with("/login?lang=en&next=%2Faudit") || to.contains("next=/audit"),
        "{to}"
    );

    // A wrong token: the form again, 401, no cookie.
    let (code, h, html) = call_full(
        &app,
        None,
        &[],
        "POST",
        "/login?lang=en",
        "token=kvt_nope",
        form,
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(h.get("set-cookie").is_none());
    assert!(html.contains("Wrong token"), "{html}");
    // A login form from another site is refused.
    let body = format!("token={ADMIN}");
    let (code, h, _) = call_full(
        &app,
        None,
        &[("origin", "https://evil.example"), ("host", "127.0.0.1:1")],
        "POST",
        "/login",
        &body,
        form,
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(h.get("set-cookie").is_none());

    // The right token: a session cookie, then to `next`.
    let body = format!("token={AUDITOR}&next=%2Faudit%3Flang%3Den");
    let (code, h, _) = call_full(&app, None, &[], "POST", "/login?lang=en", &body, form).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/audit?lang=en");
    let cookie = cookie_of(&h);
    let (code, _, html) = get(cookie.clone(), "/audit?lang=en").await;
    assert_eq!(code, StatusCode::OK, "{html}");
    assert!(
        html.contains("id=\"who\"") && html.contains("auditor"),
        "{html}"
    );
    // An auditor is no submitter: the template form is refused.
    let (code, _, html) = get(cookie.clone(), "/templates/opt-out?lang=en").await;
    assert_eq!(code, StatusCode::OK);
    let csrf = form_value(&html, "_csrf");
    let (code, _, _) = call_full(
        &app,
        None,
        &[("cookie", &cookie)],
        "POST",
        "/templates/opt-out",
        &format!("_csrf={csrf}"),
        form,
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // The cookie does not authenticate API writes.
    let (code, _, _) = call_full(
        &app,
        None,
        &[("cookie", &cookie)],
        "POST",
        "/api/analyses",
        "x",
        "text/plain",
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // A submitter's session: the form without its CSRF token is refused,
    // with it the analysis is submitted.
    let (code, h, _) = call_full(
        &app,
        None,
        &[],
        "POST",
        "/login",
        &format!("token={ADMIN}"),
        form,
    )
    .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    let admin = cookie_of(&h);
    let (_, _, html) = get(admin.clone(), "/templates/overlapping-benefits").await;
    let csrf = form_value(&html, "_csrf");
    let (code, _, html) = call_full(
        &app,
        None,
        &[("cookie", &admin)],
        "POST",
        "/templates/overlapping-benefits",
        "contact=x%40y.example",
        form,
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{html}");
    let (code, _, _) = call_full(
        &app,
        None,
        &[("cookie", &admin)],
        "POST",
        "/templates/overlapping-benefits",
        "_csrf=0000&contact=x%40y.example",
        form,
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _, html) = call_full(
        &app,
        None,
        &[("cookie", &admin)],
        "POST",
        "/templates/overlapping-benefits",
        &format!("_csrf={csrf}&contact=x%40y.example"),
        form,
    )
    .await;
    // Past the CSRF check: the form's placeholder keys are reported.
    assert_eq!(code, StatusCode::BAD_REQUEST, "{html}");
    assert!(c.store().analyses().await.unwrap().is_empty());

    // Logout: the cookie is cleared and the session is gone.
    let (_, _, html) = get(admin.clone(), "/").await;
    let csrf = form_value(&html, "_csrf");
    let (code, h, _) = call_full(
        &app,
        None,
        &[("cookie", &admin)],
        "POST",
        "/logout",
        &format!("_csrf={csrf}"),
        form,
    )
    .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert!(h["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (code, _, _) = get(admin.clone(), "/").await;
    assert_eq!(code, StatusCode::SEE_OTHER, "the session survived logout");
    // The auditor's session is still there.
    let (code, _, _) = get(cookie.clone(), "/").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn one_time_login_links() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(&config(dir.path()), Fake::new())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let (code, _) = call_as(&app, None, "POST", "/api/login-links", "", "text/plain").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, body) = call_as(
        &app,
        Some(AUDITOR),
        "POST",
        "/api/login-links",
        "",
        "text/plain",
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let v = json(&body);
    assert_eq!(v["principal"], "auditor");
    let link = format!("{}&next=%2Fbudgets", v["path"].as_str().unwrap());
    let (code, h, _) = call_full(&app, None, &[], "GET", &link, "", "text/plain").await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/budgets");
    let cookie = cookie_of(&h);
    let (code, _, html) = call_full(
        &app,
        None,
        &[("cookie", &cookie)],
        "GET",
        "/budgets",
        "",
        "text/plain",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{html}");
    // Used once only; unknown tickets are refused.
    let (code, h, _) = call_full(&app, None, &[], "GET", &link, "", "text/plain").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(h.get("set-cookie").is_none());
    let (code, _, _) =
        call_full(&app, None, &[], "GET", "/login?ticket=00", "", "text/plain").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // `next` never leaves the site.
    let (_, body) = call_as(
        &app,
        Some(AUDITOR),
        "POST",
        "/api/login-links",
        "",
        "text/plain",
    )
    .await;
    let link = format!(
        "{}&next=%2F%2Fevil.example%2F",
        json(&body)["path"].as_str().unwrap()
    );
    let (code, h, _) = call_full(&app, None, &[], "GET", &link, "", "text/plain").await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/?lang=sv");
}
