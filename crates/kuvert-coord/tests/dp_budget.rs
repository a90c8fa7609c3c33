//! The DP budget ledger in the coordinator's store: an analysis is charged
//! its DP outputs on every dataset it reads before it is registered at the
//! nodes; one that would exceed a dataset's budget is refused with the
//! remaining budget, before any data moves; charging survives restarts and
//! never happens twice.

mod common;

use axum::http::StatusCode;
use common::*;
use kuvert_coord::{api, Coordinator, State};
use kuvert_dp::ledger::Budget;

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

#[tokio::test]
async fn budgets_are_charged_before_registration_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let mut cfg = config(dir.path());
    cfg.dp_budget = Budget {
        epsilon: 5.0,
        delta: 1e-6,
    };
    let p = parties();
    let a_text = with_dp(&spec_text(&p, "A"), 4.0);
    let b_text = with_dp(&spec_text(&p, "B"), 2.0);
    let plain = spec_text(&p, "C");
    let a;
    {
        let c = Coordinator::open(&cfg, fake.clone()).await.unwrap();
        let app = api::router(c.clone());
        a = submit_approve(&app, &p, &a_text).await;
        c.tick().await.unwrap();
        assert_eq!(state(&c, &a).await.0, State::Registered);
        assert!(fake.registered(&a));
        let (code, body) = call(&app, "GET", "/api/budgets", "").await;
        assert_eq!(code, StatusCode::OK);
        let v = json(&body);
        let accounts = v.as_array().unwrap();
        // fk's table `fk` and the municipality's table `ek`.
        assert_eq!(accounts.len(), 2, "{body}");
        for acc in accounts {
            assert!((acc["spent_epsilon"].as_f64().unwrap() - 4.0).abs() < 1e-9);
            assert!((acc["remaining_epsilon"].as_f64().unwrap() - 1.0).abs() < 1e-9);
            assert_eq!(acc["releases"].as_array().unwrap().len(), 1);
        }
        assert!(accounts
            .iter()
            .any(|x| x["account"] == "Försäkringskassan/fk"));
        c.store().close().await;
    }
    // After a restart: A is not charged again; B would overdraw and is
    // refused before registration, naming the remaining budget; an
    // analysis without DP outputs is not affected.
    let c = Coordinator::open(&cfg, fake.clone()).await.unwrap();
    let app = api::router(c.clone());
    let b = submit_approve(&app, &p, &b_text).await;
    let plain_id = submit_approve(&app, &p, &plain).await;
    c.tick().await.unwrap();
    c.tick().await.unwrap();
    let (st, detail) = state(&c, &b).await;
    assert_eq!(st, State::Failed, "{detail}");
    assert!(detail.contains("privacy budget"), "{detail}");
    assert!(detail.contains("remaining ε = 1.0"), "{detail}");
    assert!(!fake.registered(&b), "refused analysis reached the nodes");
    assert_eq!(state(&c, &plain_id).await.0, State::Registered);
    let (_, body) = call(&app, "GET", "/api/budgets", "").await;
    for acc in json(&body).as_array().unwrap() {
        assert!(
            (acc["spent_epsilon"].as_f64().unwrap() - 4.0).abs() < 1e-9,
            "{body}"
        );
    }
    // The console page shows the accounts.
    let (code, html) = call(&app, "GET", "/budgets?lang=en", "").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("id=\"budgets\"") && html.contains("Försäkringskassan"));
    assert_eq!(
        html.matches("<td>4.000</td><td>1.000</td>").count(),
        2,
        "{html}"
    );
    let (_, html) = call(&app, "GET", "/budgets", "").await;
    assert!(html.contains("Förbrukat ε"));
    let recs = kuvert_gov::verify_file(c.audit_path()).unwrap();
    assert_eq!(recs.iter().filter(|r| r.action == "dp.charged").count(), 1);
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
