//! The web console and the OpenAPI document.

mod common;

use std::collections::{BTreeSet, HashMap};

use axum::http::StatusCode;
use common::*;
use kuvert_coord::{api, console, Coordinator, State};

/// Structural accessibility checks every page must pass.
fn check_page(html: &str, lang: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains(&format!("<html lang=\"{lang}\">")),
        "lang attribute"
    );
    assert_eq!(html.matches("<h1").count(), 1, "one h1");
    assert_eq!(
        html.matches("<table").count(),
        html.matches("<caption>").count(),
        "every table has a caption"
    );
    assert_eq!(html.matches("<th>").count(), 0, "header cells have a scope");
    // Every input has a label pointing at it.
    for part in html.split("<input id=\"").skip(1) {
        let id = &part[..part.find('"').unwrap()];
        assert!(
            html.contains(&format!("<label for=\"{id}\">")),
            "input {id} has no label"
        );
    }
    assert!(!html.contains("<script"), "no scripts");
    // The language switch links to the other language.
    let other = if lang == "sv" { "en" } else { "sv" };
    assert!(
        html.contains(&format!("?lang={other}\" lang=\"{other}\"")),
        "language switch"
    );
}

#[tokio::test]
async fn pages_render_in_every_state_and_both_languages() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    // Receipt keys in the PKI: node 0 right, node 1 wrong, node 2 missing.
    write_node_pub(dir.path(), 0, &fake.node_keys[0]);
    write_node_pub(dir.path(), 1, &key("impostor", 999));
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    // A purpose with markup in it: must come out escaped.
    let text = spec_text(&p, "<script>alert('x')</script> & <b>bold</b>");
    let id = id_of(&text);
    let (code, _) = call(&app, "POST", "/api/analyses", &text).await;
    assert_eq!(code, StatusCode::CREATED);

    // Empty before anything happened, then a full run.
    let (_, html) = call(&app, "GET", &format!("/analyses/{id}?lang=en"), "").await;
    assert!(html.contains("No receipts yet."));
    assert!(html.contains("No, awaiting"));
    for who in ["fk", "kommun"] {
        let a = serde_json::to_string(&approval(&p, who, &id)).unwrap();
        call(&app, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
    }
    c.tick().await.unwrap();
    fake.upload_all(&id);
    c.tick().await.unwrap();
    c.tick().await.unwrap();
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Done);
    assert!(
        row.detail
            .contains("WARNING: node 1's deletion receipt does not verify"),
        "{}",
        row.detail
    );
    assert!(!row.detail.contains("node 0's") && !row.detail.contains("node 2's"));
    let (_, body) = call(&app, "GET", &format!("/api/analyses/{id}"), "").await;
    let checks = json(&body)["receipt_checks"].clone();
    assert_eq!(
        checks,
        serde_json::json!([
            {"node": 0, "signature": "valid"},
            {"node": 1, "signature": "invalid"},
            {"node": 2, "signature": "no_key"}
        ])
    );
    let (_, html) = call(&app, "GET", &format!("/analyses/{id}?lang=en"), "").await;
    let receipts = &html[html.find("id=\"receipts\"").unwrap()..];
    let receipts = &receipts[..receipts.find("</table>").unwrap()];
    assert!(
        receipts.contains("valid (the node&#39;s key")
            || receipts.contains("valid (the node's key"),
        "{receipts}"
    );
    assert!(receipts.contains("INVALID"));
    assert!(receipts.contains("not checked"));

    for state in State::ALL {
        c.store()
            .transition(
                &id.to_hex(),
                &State::ALL,
                state,
                "detail with <markup> & more",
            )
            .await
            .unwrap();
        for lang in ["sv", "en"] {
            let (code, html) = call(&app, "GET", &format!("/?lang={lang}"), "").await;
            assert_eq!(code, StatusCode::OK);
            check_page(&html, lang);
            assert!(html.contains("id=\"analyses\""));
            assert!(html.contains(&format!("/analyses/{id}?lang={lang}")));
            let label = console::state_label(
                if lang == "sv" {
                    console::Lang::Sv
                } else {
                    console::Lang::En
                },
                state,
            );
            assert!(html.contains(label), "{state} label {label:?} missing");
            assert!(html.contains("2 av 2") || html.contains("2 of 2"));

            let (code, html) = call(&app, "GET", &format!("/analyses/{id}?lang={lang}"), "").await;
            assert_eq!(code, StatusCode::OK);
            check_page(&html, lang);
            for el in ["approvals", "nodes", "learns", "receipts", "audit"] {
                assert!(html.contains(&format!("id=\"{el}\"")), "{el} missing");
            }
            assert!(html.contains(label));
            assert!(!html.contains("<script>alert"), "unescaped spec text");
            assert!(html.contains(
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
            ));
            assert!(html.contains("detail with &lt;markup&gt; &amp; more"));
            // Spec summary: legal basis, contributors, recipients, SQL.
            assert!(html.contains("Lag (2024:307)"));
            assert!(html.contains("Socialnämnden i Exempelkommun"));
            assert!(html.contains("SELECT COUNT(DISTINCT f.pnr)"));
            assert!(html.contains("pnr:idnr,fran:date,till:date,belopp:int"));
            // What each party learns: every recipient with its outputs.
            let learns = &html[html.find("id=\"learns\"").unwrap()..];
            let learns = &learns[..learns.find("</section>").unwrap()];
            assert!(learns.contains("The control unit named in the agreement"));
            assert!(learns.contains("the identity numbers (personnummer)"));
            // Receipts of the three nodes and the audit trail.
            let receipts = &html[html.find("id=\"receipts\"").unwrap()..];
            let receipts = &receipts[..receipts.find("</table>").unwrap()];
            assert_eq!(receipts.matches("<tr><th scope=\"row\">").count(), 3);
            assert!(html.contains("job.done") && html.contains("approval.received"));
            let nodes = &html[html.find("id=\"nodes\"").unwrap()..];
            assert!(nodes.contains("127.0.0.1:7001") && nodes.contains("fk (10)"));
        }
    }
    let (_, sv) = call(&app, "GET", &format!("/analyses/{id}"), "").await;
    assert!(
        sv.contains("<html lang=\"sv\">") && sv.contains("Godkännanden"),
        "default is Swedish"
    );
    let (_, en) = call(&app, "GET", &format!("/analyses/{id}?lang=en"), "").await;
    assert!(en.contains("Approvals") && !en.contains("Godkännanden"));

    for lang in ["sv", "en"] {
        let (code, html) = call(&app, "GET", &format!("/audit?lang={lang}"), "").await;
        assert_eq!(code, StatusCode::OK);
        check_page(&html, lang);
        assert!(html.contains("id=\"audit\"") && html.contains("analysis.submitted"));
        let (code, html) = call(&app, "GET", &format!("/budgets?lang={lang}"), "").await;
        assert_eq!(code, StatusCode::OK);
        check_page(&html, lang);
        assert!(html.contains("id=\"budgets\""));
        let (code, html) = call(&app, "GET", &format!("/templates?lang={lang}"), "").await;
        assert_eq!(code, StatusCode::OK);
        check_page(&html, lang);
        for name in kuvert_gov::templates::names() {
            assert!(html.contains(&format!("/templates/{name}?lang={lang}")));
        }
        let (code, html) = call(&app, "GET", &format!("/templates/opt-out?lang={lang}"), "").await;
        assert_eq!(code, StatusCode::OK);
        check_page(&html, lang);
        assert!(html.contains("<form method=\"post\""));
        // Unknown pages: an error page, still accessible.
        let other = id_of(&spec_text(&p, "x"));
        let (code, html) = call(&app, "GET", &format!("/analyses/{other}?lang={lang}"), "").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        check_page(&html, lang);
        assert!(html.contains("role=\"alert\""));
        let (code, _) = call(&app, "GET", "/templates/nope", "").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
}

fn form_body(values: &[(&str, &str)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn submit_from_a_template_form() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    let (fk, kommun, kontroll) = (p.fk.public(), p.kommun.public(), p.kontroll.public());
    let nodes = common::spec_nodes();
    let values = [
        ("org.fk", "Försäkringskassan"),
        ("ctrl.fk", "Försäkringskassan"),
        ("ed.fk", fk.ed25519.as_str()),
        ("kem.fk", fk.kem.as_deref().unwrap()),
        ("org.kommun", "Socialnämnden i Exempelkommun"),
        ("ctrl.kommun", "Socialnämnden i Exempelkommun"),
        ("ed.kommun", kommun.ed25519.as_str()),
        ("kem.kommun", kommun.kem.as_deref().unwrap()),
        (
            "org.kontroll",
            "The control unit named in the agreement (kontrollfunktion)",
        ),
        ("kem.kontroll", kontroll.kem.as_deref().unwrap()),
        ("contact", "mpc-analys@fk.example"),
        ("operator.0", "Operator 0"),
        ("node.0", nodes[0].fingerprint.as_str()),
        ("operator.1", "Operator 1"),
        ("node.1", nodes[1].fingerprint.as_str()),
        ("operator.2", "Operator 2"),
        ("node.2", nodes[2].fingerprint.as_str()),
    ];
    // The form has a labelled field for each of these.
    let (_, html) = call(&app, "GET", "/templates/overlapping-benefits?lang=en", "").await;
    for (k, _) in &values {
        assert!(html.contains(&format!("name=\"{k}\"")), "no field {k}");
    }
    let (code, resp) = call_ct(
        &app,
        "POST",
        "/templates/overlapping-benefits?lang=en",
        &form_body(&values),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(code, StatusCode::SEE_OTHER, "{resp}");
    // Same content as the independently filled spec: same canonical id.
    let id = id_of(&spec_text(&p, ""));
    let row = c
        .store()
        .analysis(&id.to_hex())
        .await
        .unwrap()
        .expect("submitted");
    assert_eq!(row.state, State::Submitted);
    // The template's comments survive the filling (toml_edit).
    assert!(row.spec_toml.contains("# What each party learns:"));
    // While approvals are awaited, the page shows what is approved: the
    // summary `kuvert analysis approve` prints (SQL, nodes, keys ...).
    let (code, page) = call(&app, "GET", &format!("/analyses/{id}?lang=en"), "").await;
    assert_eq!(code, StatusCode::OK);
    assert!(page.contains("What is approved"), "{page}");
    assert!(page.contains(&nodes[1].fingerprint), "{page}");
    assert!(page.contains("COUNT(DISTINCT f.pnr)"), "{page}");
    assert!(
        page.contains(&format!("kuvert analysis approve {id}")),
        "{page}"
    );

    // Direct check of the filling, with another organisation name.
    let mut m: HashMap<String, String> = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.insert("org.kommun".into(), "Socialnämnden i Åby".into());
    let filled = console::fill_template("overlapping-benefits", &m, None).unwrap();
    // With the coordinator's federation, its nodes are filled in instead.
    let other: Vec<kuvert_gov::spec::SpecNode> = nodes
        .iter()
        .map(|n| kuvert_gov::spec::SpecNode {
            fingerprint: n.fingerprint.replace('0', "9"),
            ..n.clone()
        })
        .collect();
    let with_fed = console::fill_template("overlapping-benefits", &m, Some(&other)).unwrap();
    let spec_fed =
        kuvert_gov::AnalysisSpec::parse(&with_fed, "f", kuvert_gov::Validation::Strict).unwrap();
    assert_eq!(spec_fed.nodes, other);
    let spec =
        kuvert_gov::AnalysisSpec::parse(&filled, "f", kuvert_gov::Validation::Strict).unwrap();
    assert_eq!(
        spec.contributor("kommun").unwrap().organisation,
        "Socialnämnden i Åby"
    );
    assert_eq!(
        spec.recipient("kommun").unwrap().organisation,
        "Socialnämnden i Åby"
    );
    assert_eq!(spec.contributor("fk").unwrap().public_key, fk.ed25519);
    assert_eq!(
        Some(spec.recipient("kontroll").unwrap().kem_public_key.clone()),
        kontroll.kem
    );

    // A bad key: the form comes back (400) with the error and the values,
    // escaped.
    let mut bad: Vec<(&str, &str)> = values.to_vec();
    bad[2] = ("ed.fk", "not-a-key");
    bad[4] = ("org.kommun", "<i>Åby</i>");
    let (code, html) = call_ct(
        &app,
        "POST",
        "/templates/overlapping-benefits",
        &form_body(&bad),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    check_page(&html, "sv");
    assert!(
        html.contains("role=\"alert\"") && html.contains("public_key"),
        "{html}"
    );
    assert!(html.contains("value=\"&lt;i&gt;Åby&lt;/i&gt;\""));
    assert!(!html.contains("<i>Åby"));
    assert_eq!(c.store().analyses().await.unwrap().len(), 1);
}

/// Every route the router serves is in /openapi.json, and nothing else.
#[tokio::test]
async fn openapi_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(&config(dir.path()), Fake::new())
        .await
        .unwrap();
    let app = api::router(c);
    let (code, body) = call(&app, "GET", "/openapi.json", "").await;
    assert_eq!(code, StatusCode::OK);
    let doc = json(&body);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for s in ["clientCertificate", "bearerToken", "consoleSession"] {
        assert!(schemes.contains_key(s), "security scheme {s}");
    }
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            documented.insert((method.clone(), path.clone()));
            // Every operation says who may call it, as the router enforces.
            let route = api::ROUTES
                .iter()
                .find(|r| r.method == method && r.path == path)
                .unwrap_or_else(|| panic!("{method} {path} is not in ROUTES"));
            let roles: Vec<&str> = op["x-kuvert-roles"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no x-kuvert-roles"))
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert_eq!(roles, route.need.roles(), "{method} {path}");
            assert_eq!(
                op["x-kuvert-access"],
                route.need.access(),
                "{method} {path}"
            );
            let security = op["security"].as_array().unwrap();
            if route.need == api::Need::Public {
                assert!(roles.is_empty() && security.is_empty(), "{method} {path}");
            } else {
                assert!(!roles.is_empty(), "{method} {path} names no role");
                assert!(!security.is_empty(), "{method} {path} has no security");
                for req in security {
                    for scheme in req.as_object().unwrap().keys() {
                        assert!(schemes.contains_key(scheme), "{method} {path}: {scheme}");
                    }
                }
                if path.starts_with("/api/") {
                    assert!(op["responses"]["401"].is_object(), "{method} {path}");
                }
            }
        }
    }
    // Only these stay public.
    let public: BTreeSet<(&str, &str)> = api::ROUTES
        .iter()
        .filter(|r| r.need == api::Need::Public)
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        public,
        BTreeSet::from([
            ("get", "/openapi.json"),
            ("get", "/api/health"),
            ("get", "/login"),
            ("post", "/login")
        ])
    );
    // 1. The list the crate keeps.
    let listed: BTreeSet<(String, String)> = api::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, listed);
    // 2. The router's source: every `.route(PATH, get(..).post(..))`.
    let src = include_str!("../src/api.rs");
    let body = &src[src.find("pub fn router").unwrap()..];
    let body = &body[..body.find(".fallback").unwrap()];
    let mut in_source = BTreeSet::new();
    for call in body.split(".route(").skip(1) {
        // rustfmt may put the path on the next line.
        let call = call.trim_start().strip_prefix('"').expect("a literal path");
        let path = &call[..call.find('"').unwrap()];
        let handlers = &call[call.find('"').unwrap()..];
        for m in ["get", "post", "put", "delete", "patch"] {
            if handlers.contains(&format!("({m}("))
                || handlers.contains(&format!(".{m}("))
                || handlers.contains(&format!(" {m}("))
            {
                in_source.insert((m.to_string(), path.to_string()));
            }
        }
    }
    assert_eq!(in_source, documented, "router source and OpenAPI differ");
    // 3. The live router answers every documented route (not the fallback,
    //    not 405), and refuses an undocumented method.
    let unknown = id_of(&spec_text(&parties(), "probe")).to_hex();
    for (method, path) in &documented {
        let uri = path
            .replace("{id}", &unknown)
            .replace("{name}", "overlapping-benefits");
        let (code, body) = call(&app, &method.to_uppercase(), &uri, "").await;
        assert_ne!(code, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(!body.contains("no such route"), "{method} {uri} not routed");
    }
    let (code, _) = call(&app, "DELETE", "/api/analyses", "").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
}
