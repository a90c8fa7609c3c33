//! Privacy budgets at the coordinator: it keeps none and charges nothing.
//! The nodes decide (kuvert-node's tests/gov.rs tries every bypass against
//! real nodes); the coordinator passes a node's budget refusal on, shows the
//! nodes' ledgers side by side, and sends its audit head with every run
//! for the nodes to countersign. Specs that cannot run are refused at
//! submission.

mod common;

use axum::http::StatusCode;
use common::*;
use kuvert_coord::{api, Coordinator, State};

/// The spec with one more output for the control unit: a noisy count of
/// the persons in both registers, released with DP inside the MPC, and its
/// `[[dp]]` entry (the two must agree, or the coordinator refuses it).
fn with_dp(text: &str, eps: f64) -> String {
    format!(
        "{text}\n[[recipients.outputs]]\nname = \"noisy\"\nsql = \"\"\"\n\
         SELECT COUNT(*) AS n FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr)\n\
         WITH PRIVACY (epsilon = {eps}, delta = 1e-6, person = pnr, max_rows = 4)\n\"\"\"\n\
         \n[[dp]]\noutput = \"noisy\"\nepsilon = {eps}\ndelta = 1e-6\n"
    )
}

async fn submit_approve(app: &axum::Router, p: &Parties, text: &str) -> kuvert_gov::AnalysisId {
    let id = id_of(text);
    let (code, body) = call(app, "POST", "/api/analyses", text).await;
    assert!(code.is_success(), "{body}");
    for who in ["fk", "kommun"] {
        let a = serde_json::to_string(&approval(p, who, &id)).unwrap();
        let (code, body) = call(app, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    id
}

async fn state(c: &Coordinator, id: &kuvert_gov::AnalysisId) -> (State, String) {
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    (row.state, row.detail)
}

fn account(
    key: &kuvert_gov::PartyKey,
    limit: f64,
    charges: &[(&str, f64)],
) -> kuvert_node::budget::Account {
    let l = kuvert_gov::BudgetLimit::sign(key, "default", limit, 1e-5, 1, "2026-12-07T00:00:00Z")
        .unwrap();
    kuvert_node::budget::Account {
        contributor_key: l.key_hex().unwrap(),
        dataset: "default".into(),
        limit: l,
        created_by: "fk".into(),
        charges: charges
            .iter()
            .enumerate()
            .map(|(i, (analysis, eps))| kuvert_node::budget::Charge {
                batch: i as u64 + 1,
                analysis: analysis.to_string(),
                output: "noisy".into(),
                epsilon: *eps,
                delta: 1e-6,
                charged_at: "2026-12-07T00:00:00Z".into(),
                refunded: None,
            })
            .collect(),
    }
}

/// The coordinator keeps no budget and charges nothing: a DP analysis is
/// registered as any other, the nodes decide, and a node's budget refusal
/// fails the analysis with the node's own reason (naming what remains).
#[tokio::test]
async fn the_nodes_decide_budgets_and_the_coordinator_passes_their_refusal_on() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let cfg = config(dir.path());
    let p = parties();
    let c = Coordinator::open(&cfg, fake.clone()).await.unwrap();
    let app = api::router(c.clone());
    let a = submit_approve(&app, &p, &with_dp(&spec_text(&p, "A"), 4.0)).await;
    c.tick().await.unwrap();
    assert_eq!(state(&c, &a).await.0, State::Registered);
    let recs = kuvert_gov::verify_file(c.audit_path()).unwrap();
    assert!(recs.iter().all(|r| r.action != "dp.charged"));

    let why = "node 0: the privacy budget of contributor \"fk\"'s dataset \"default\" does not \
               allow this analysis: limit ε = 5 (δ = 0.00001), spent ε = 4 (δ = 0.000001) in 1 \
               release(s), remaining ε = 1 (δ = 0.000009)";
    *fake.refuse_register.lock().unwrap() = Some(why.into());
    let b = submit_approve(&app, &p, &with_dp(&spec_text(&p, "B"), 2.0)).await;
    c.tick().await.unwrap();
    let (st, detail) = state(&c, &b).await;
    assert_eq!(st, State::Failed, "{detail}");
    assert!(
        detail.contains("remaining ε = 1") && detail.contains("node 0"),
        "{detail}"
    );
}

/// `GET /api/budgets` and the console page show the nodes' ledgers side by
/// side, and say when they differ.
#[tokio::test]
async fn the_budget_pages_show_what_the_nodes_report() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let p = parties();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    // A stored analysis names fk's key, so the page can name fk.
    submit_approve(&app, &p, &spec_text(&p, "N")).await;
    let acc = account(&p.fk, 5.0, &[("a1", 4.0)]);
    *fake.ledgers.lock().unwrap() = [acc.clone(), acc.clone(), acc.clone()].map(|a| vec![a]);
    let (code, body) = call(&app, "GET", "/api/budgets", "").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v = json(&body);
    let rows = v["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["agree"], true);
    assert!(
        rows[0]["contributors"][0]
            .as_str()
            .unwrap()
            .starts_with("fk"),
        "{body}"
    );
    for n in rows[0]["nodes"].as_array().unwrap() {
        assert!(
            (n["remaining_epsilon"].as_f64().unwrap() - 1.0).abs() < 1e-9,
            "{body}"
        );
    }
    let (code, html) = call(&app, "GET", "/budgets?lang=en", "").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        html.contains("id=\"budgets\"") && html.contains("<td>4.000</td><td>1.000</td>"),
        "{html}"
    );
    assert!(!html.contains("ledgers differ"), "{html}");

    // Node 2 holds another charge: the view says the nodes differ.
    fake.ledgers.lock().unwrap()[2] = vec![account(&p.fk, 5.0, &[("a1", 4.0), ("a2", 0.5)])];
    let (_, body) = call(&app, "GET", "/api/budgets", "").await;
    assert_eq!(json(&body)["accounts"][0]["agree"], false, "{body}");
    let (_, html) = call(&app, "GET", "/budgets?lang=en", "").await;
    assert!(html.contains("ledgers differ"), "{html}");
    // A node that does not answer is named.
    fake.down[1].store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, body) = call(&app, "GET", "/api/budgets", "").await;
    let v = json(&body);
    assert!(
        v["unreachable"][0].as_str().unwrap().contains("node 1"),
        "{body}"
    );
    assert_eq!(v["accounts"][0]["agree"], false);
}

/// Each run request carries the coordinator's audit head, which is a
/// record of the coordinator's own log at that moment.
#[tokio::test]
async fn every_run_sends_the_coordinators_audit_head_for_the_nodes_to_countersign() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let p = parties();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let id = submit_approve(&app, &p, &spec_text(&p, "H")).await;
    c.tick().await.unwrap();
    fake.upload_all(&id);
    c.tick().await.unwrap();
    c.tick().await.unwrap();
    let heads = fake.heads.lock().unwrap().clone();
    assert!(!heads.is_empty(), "no head was sent with the run");
    let recs = kuvert_gov::verify_file(c.audit_path()).unwrap();
    for h in &heads {
        let r = &recs[h.records as usize - 1];
        assert_eq!(r.hash, h.hash);
    }
}

/// A spec the nodes could not run is refused at submission, before anyone
/// approves it or any budget is touched: the coordinator compiles every
/// output as the nodes will. Here the `[[dp]]` section promises DP for an
/// output whose SQL has no `WITH PRIVACY` (once charged nowhere).
#[tokio::test]
async fn a_spec_whose_outputs_cannot_run_is_refused_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let c = Coordinator::open(&config(dir.path()), Fake::new())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    let bad = format!(
        "{}\n[[dp]]\noutput = \"persons\"\nepsilon = 1\n",
        spec_text(&p, "X")
    );
    let (code, body) = call(&app, "POST", "/api/analyses", &bad).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("output \\\"persons\\\""), "{body}");
    assert!(body.contains("no WITH PRIVACY"), "{body}");
    assert!(c
        .store()
        .analysis(&id_of(&bad).to_hex())
        .await
        .unwrap()
        .is_none());
    let unknown = spec_text(&p, "Y").replace("SUM(f.belopp)", "SUM(f.no_such_column)");
    let (code, body) = call(&app, "POST", "/api/analyses", &unknown).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("no_such_column"), "{body}");
}
