//! The coordinator's state machine over its HTTP API, with fake nodes.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use kuvert_coord::{api, start, Coordinator, State};

/// submit -> approvals (real Ed25519 keys) -> registered -> running -> done,
/// over a real TCP connection with the scheduler running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    for i in 0..3 {
        write_node_pub(dir.path(), i, &fake.node_keys[i]);
    }
    let running = start(&config(dir.path()), fake.clone()).await.unwrap();
    let addr = running.addr;
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);

    let (code, body) = http(addr, "POST", "/api/analyses", &text).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(json(&body)["id"], id.to_hex());
    // Submitting the same spec again: 200, same id.
    let (code, body) = http(addr, "POST", "/api/analyses", &text).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["id"], id.to_hex());
    // The spec comes back byte for byte; its hash is the id.
    let (code, got) = http(addr, "GET", &format!("/api/analyses/{id}/spec"), "").await;
    assert_eq!(code, 200);
    assert_eq!(got, text);
    assert_eq!(id_of(&got), id);

    let (_, body) = http(addr, "GET", &format!("/api/analyses/{id}"), "").await;
    let v = json(&body);
    assert_eq!(v["state"], "submitted");
    assert_eq!(v["approvals"][0]["approved"], false);

    // First approval: one remaining.
    let a = serde_json::to_string(&approval(&p, "fk", &id)).unwrap();
    let (code, body) = http(addr, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["remaining"], serde_json::json!(["kommun"]));
    assert!(!fake.registered(&id), "registered before every approval");
    let a = serde_json::to_string(&approval(&p, "kommun", &id)).unwrap();
    let (code, body) = http(addr, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["remaining"], serde_json::json!([]));

    let state = |addr| async move {
        let (_, body) = http(addr, "GET", &format!("/api/analyses/{id}"), "").await;
        json(&body)
    };
    eventually(5, "registered", || async {
        state(addr).await["state"] == "registered"
    })
    .await;
    assert!(fake.registered(&id));
    // Waiting for data: the detail names the missing tables.
    eventually(5, "waiting detail", || async {
        state(addr).await["detail"]
            .as_str()
            .unwrap()
            .contains("fk, ek")
            || state(addr).await["detail"]
                .as_str()
                .unwrap()
                .contains("ek, fk")
    })
    .await;
    fake.upload(&id, "fk", 10);
    eventually(5, "only ek missing", || async {
        let d = state(addr).await["detail"].as_str().unwrap().to_string();
        d.contains("ek") && !d.contains("fk,")
    })
    .await;
    fake.upload(&id, "ek", 7);
    eventually(5, "done", || async { state(addr).await["state"] == "done" }).await;
    assert_eq!(fake.runs.load(Ordering::SeqCst), 1, "run sent once");

    let v = state(addr).await;
    let receipts = v["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 3);
    for (i, r) in receipts.iter().enumerate() {
        let r: kuvert_gov::DeletionReceipt = serde_json::from_value(r.clone()).unwrap();
        assert_eq!(r.node as usize, i);
        r.verify(&fake.node_keys[i].verifying_key()).unwrap();
        assert_eq!(r.deleted.tables.len(), 2);
    }
    for i in 0..3 {
        assert_eq!(v["receipt_checks"][i]["signature"], "valid", "{v}");
    }
    assert!(!v["detail"].as_str().unwrap().contains("WARNING"));
    assert_eq!(v["nodes"][1]["state"]["state"]["state"], "done", "{v}");
    assert_eq!(v["nodes"][1]["state"]["tables"][0]["rows"], 10);
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("3 of 3 deletion receipts"));
    assert_eq!(v["spec"]["name"], "overlapping-benefits");

    // The catalogue.
    let (_, body) = http(addr, "GET", "/api/analyses", "").await;
    let l = json(&body);
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert_eq!(l[0]["approvals_have"], 2);
    assert_eq!(l[0]["approvals_need"], 2);
    assert_eq!(l[0]["state"], "done");
    let (_, body) = http(addr, "GET", "/api/nodes", "").await;
    assert_eq!(json(&body)[2]["addr"], "127.0.0.1:7002");
    let (code, _) = http(addr, "GET", "/api/health", "").await;
    assert_eq!(code, 200);
    let (_, body) = http(addr, "GET", &format!("/api/analyses/{id}/approvals"), "").await;
    let aps: Vec<kuvert_gov::Approval> = serde_json::from_str(&body).unwrap();
    assert_eq!(aps.len(), 2);
    kuvert_gov::verify_approvals(
        &kuvert_gov::AnalysisSpec::parse(&text, "t", kuvert_gov::Validation::Strict).unwrap(),
        &aps,
    )
    .unwrap();

    // DPIA text in both formats.
    let (code, md) = http(
        addr,
        "GET",
        &format!("/api/analyses/{id}/describe?format=md"),
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        md.contains("approval.received") && md.contains("Purpose"),
        "{md}"
    );
    let (code, html) = http(
        addr,
        "GET",
        &format!("/api/analyses/{id}/describe?format=html"),
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(html.starts_with("<!DOCTYPE html>") || html.contains("<html"));
    let (code, _) = http(
        addr,
        "GET",
        &format!("/api/analyses/{id}/describe?format=pdf"),
        "",
    )
    .await;
    assert_eq!(code, 400);

    // The audit log: a valid chain with the expected actions in order.
    let (_, body) = http(addr, "GET", "/api/audit", "").await;
    let actions: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        [
            "analysis.submitted",
            "approval.received",
            "approval.received",
            "analysis.registered",
            "job.started",
            "job.done"
        ]
    );
    let path = running.coordinator.audit_path().to_path_buf();
    running.stop().await.unwrap();
    let recs = kuvert_gov::verify_file(&path).unwrap();
    let done = recs.iter().find(|r| r.action == "job.done").unwrap();
    assert!(done.details.contains_key("receipt_sha256_node2"));
    // Never values: the audit file holds no table content (only names/sizes).
    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(!raw.contains("SELECT"));
}

async fn approve_all(app: &axum::Router, p: &Parties, id: &kuvert_gov::AnalysisId) {
    for who in ["fk", "kommun"] {
        let a = serde_json::to_string(&approval(p, who, id)).unwrap();
        let (code, body) = call(app, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn bad_inputs_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);

    // A spec that does not parse: 400 with file:line:column.
    let broken = text.replace("protocol = \"rss3-semi-honest\"", "protocol = ");
    let (code, body) = call(&app, "POST", "/api/analyses", &broken).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let err = json(&body)["error"].as_str().unwrap().to_string();
    assert!(err.starts_with("spec.toml:"), "{err}");
    // A spec that parses but has placeholder keys: strict validation says so.
    let tmpl = kuvert_gov::templates::get("overlapping-benefits").unwrap();
    let (code, body) = call(&app, "POST", "/api/analyses", tmpl).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("placeholder"),
        "{body}"
    );

    // Unknown and malformed ids.
    let other = id_of(&spec_text(&p, "other"));
    let (code, body) = call(&app, "GET", &format!("/api/analyses/{other}"), "").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("no analysis"));
    let (code, _) = call(&app, "GET", "/api/analyses/xyz", "").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = call(&app, "GET", &format!("/api/analyses/{other}/spec"), "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = call(&app, "GET", "/api/nothing", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("no such route"));

    let (code, _) = call(&app, "POST", "/api/analyses", &text).await;
    assert_eq!(code, StatusCode::CREATED);
    let url = format!("/api/analyses/{id}/approvals");

    // Forged: a valid-looking approval with a flipped signature bit.
    let mut forged = approval(&p, "fk", &id);
    let mut sig = forged.signature.into_bytes();
    sig[0] = if sig[0] == b'0' { b'1' } else { b'0' };
    forged.signature = String::from_utf8(sig).unwrap();
    let (code, body) = call(&app, "POST", &url, &serde_json::to_string(&forged).unwrap()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("invalid signature"),
        "{body}"
    );
    // Signed by someone else's key (kommun signs as fk).
    let wrong_key = kuvert_gov::sign_approval(&id, "fk", &p.kommun);
    let (code, body) = call(
        &app,
        "POST",
        &url,
        &serde_json::to_string(&wrong_key).unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("signed with key"),
        "{body}"
    );
    // A party that is not a contributor (posted as itself): no role for it.
    let stranger = kuvert_gov::sign_approval(&id, "kontroll", &p.kontroll);
    let (code, body) = call(
        &app,
        "POST",
        &url,
        &serde_json::to_string(&stranger).unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("only its contributors"),
        "{body}"
    );
    // An approval of another analysis id, posted here.
    let elsewhere = approval(&p, "fk", &other);
    let (code, body) = call(
        &app,
        "POST",
        &url,
        &serde_json::to_string(&elsewhere).unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("is for analysis"),
        "{body}"
    );
    // Not JSON (from a contributor).
    let (code, body) = call_as(
        &app,
        Some(party_token("fk")),
        "POST",
        &url,
        "{\"analysis_id\": ",
        "application/json",
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        json(&body)["error"].as_str().unwrap().contains("line 1"),
        "{body}"
    );
    // Approval for an unknown analysis.
    let (code, _) = call(
        &app,
        "POST",
        &format!("/api/analyses/{other}/approvals"),
        &serde_json::to_string(&elsewhere).unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // None of these counted.
    let (_, body) = call(&app, "GET", &url, "").await;
    assert_eq!(json(&body).as_array().unwrap().len(), 0);
    c.tick().await.unwrap();
    assert_eq!(
        c.store()
            .analysis(&id.to_hex())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Submitted
    );
    assert!(!fake.registered(&id));

    // Run before ready: 409 with the reason.
    let (code, body) = call(&app, "POST", &format!("/api/analyses/{id}/run"), "").await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        json(&body)["error"].as_str().unwrap().contains("approved"),
        "{body}"
    );
    approve_all(&app, &p, &id).await;
    c.tick().await.unwrap();
    let (code, body) = call(&app, "POST", &format!("/api/analyses/{id}/run"), "").await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("waits for tables fk, ek"),
        "{body}"
    );
}

/// Restarting the coordinator (new process on the same SQLite file) loses
/// no approval, and a job that was running when it stopped completes.
#[tokio::test]
async fn restart_mid_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let cfg = config(dir.path());
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    {
        let c = Coordinator::open(&cfg, fake.clone()).await.unwrap();
        let app = api::router(c.clone());
        call(&app, "POST", "/api/analyses", &text).await;
        let a = serde_json::to_string(&approval(&p, "fk", &id)).unwrap();
        call(&app, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
        c.store().close().await;
    }
    {
        let c = Coordinator::open(&cfg, fake.clone()).await.unwrap();
        let app = api::router(c.clone());
        let (_, body) = call(&app, "GET", &format!("/api/analyses/{id}/approvals"), "").await;
        assert_eq!(json(&body).as_array().unwrap().len(), 1, "approval lost");
        let a = serde_json::to_string(&approval(&p, "kommun", &id)).unwrap();
        let (_, body) = call(&app, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
        assert_eq!(json(&body)["remaining"], serde_json::json!([]));
        c.tick().await.unwrap();
        fake.upload_all(&id);
        fake.hold.store(true, Ordering::SeqCst);
        c.tick().await.unwrap();
        let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
        assert_eq!(row.state, State::Running);
        c.tick().await.unwrap();
        assert_eq!(
            c.store()
                .analysis(&id.to_hex())
                .await
                .unwrap()
                .unwrap()
                .state,
            State::Running
        );
        c.store().close().await;
    }
    // The nodes finish while the coordinator is down.
    fake.hold.store(false, Ordering::SeqCst);
    let running = start(&cfg, fake.clone()).await.unwrap();
    let addr = running.addr;
    eventually(5, "done after restart", || async {
        let (_, body) = http(addr, "GET", &format!("/api/analyses/{id}"), "").await;
        json(&body)["state"] == "done"
    })
    .await;
    let (_, body) = http(addr, "GET", &format!("/api/analyses/{id}"), "").await;
    let v = json(&body);
    assert_eq!(v["approvals"][0]["approved"], true);
    assert_eq!(v["approvals"][1]["approved"], true);
    assert_eq!(v["receipts"].as_array().unwrap().len(), 3);
    assert_eq!(
        fake.runs.load(Ordering::SeqCst),
        1,
        "the run was not repeated"
    );
    let path = running.coordinator.audit_path().to_path_buf();
    running.stop().await.unwrap();
    // One chain across the three coordinator lives.
    let recs = kuvert_gov::verify_file(&path).unwrap();
    assert_eq!(
        recs.iter()
            .filter(|r| r.action == "approval.received")
            .count(),
        2
    );
    assert_eq!(recs.iter().filter(|r| r.action == "job.done").count(), 1);
}

/// A coordinator that stopped after marking `running` but before the run
/// message reached the nodes sends it again (nodes all Ready).
#[tokio::test]
async fn lost_run_message_is_resent() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    call(&app, "POST", "/api/analyses", &text).await;
    approve_all(&app, &p, &id).await;
    c.tick().await.unwrap();
    fake.upload_all(&id);
    // Simulate: the state says running, the nodes never heard of the run.
    assert!(c
        .store()
        .transition(
            &id.to_hex(),
            &[State::Registered],
            State::Running,
            "running"
        )
        .await
        .unwrap());
    c.tick().await.unwrap();
    assert_eq!(fake.runs.load(Ordering::SeqCst), 1);
    c.tick().await.unwrap();
    assert_eq!(
        c.store()
            .analysis(&id.to_hex())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Done
    );
}

/// The run message reached two nodes only (the third was down at that
/// moment): once it is back it gets the run too, and the two running
/// nodes' refusal of a second run does not fail the job.
#[tokio::test]
async fn run_reaching_only_some_nodes_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    call(&app, "POST", "/api/analyses", &text).await;
    approve_all(&app, &p, &id).await;
    c.tick().await.unwrap();
    fake.upload_all(&id);
    fake.hold.store(true, Ordering::SeqCst);
    // Node 2 answers the status poll, then is down when the run is sent.
    let status = kuvert_coord::NodeApi::status(&*fake, &id.to_hex()).await;
    assert!(status
        .iter()
        .all(|s| s.as_ref().unwrap().state == kuvert_node::wire::GovState::Ready));
    assert!(c
        .store()
        .transition(
            &id.to_hex(),
            &[State::Registered],
            State::Running,
            "running"
        )
        .await
        .unwrap());
    fake.down[2].store(true, Ordering::SeqCst);
    let r = kuvert_coord::NodeApi::run(&*fake, &id.to_hex(), None).await;
    assert!(r[2].is_err());
    fake.down[2].store(false, Ordering::SeqCst);
    // Nodes 0 and 1 run, node 2 is Ready: the coordinator completes the run.
    c.tick().await.unwrap();
    assert_eq!(fake.runs.load(Ordering::SeqCst), 2);
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Running, "{}", row.detail);
    fake.hold.store(false, Ordering::SeqCst);
    c.tick().await.unwrap();
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Done, "{}", row.detail);
}

/// A node that does not answer: the analysis waits with a clear detail;
/// a node that hangs during the run fails the job after node_timeout_secs;
/// no round takes longer than the call timeout.
#[tokio::test]
async fn unreachable_nodes_wait_then_fail_never_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    call(&app, "POST", "/api/analyses", &text).await;
    approve_all(&app, &p, &id).await;

    fake.down[1].store(true, Ordering::SeqCst);
    c.tick().await.unwrap();
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Approved);
    assert!(
        row.detail.starts_with(
            "node 1 (127.0.0.1:7001) is unreachable: connection refused; no answer since"
        ),
        "{}",
        row.detail
    );
    let (_, body) = call(&app, "GET", &format!("/api/analyses/{id}"), "").await;
    let v = json(&body);
    assert!(
        v["nodes"][1]["error"]
            .as_str()
            .unwrap()
            .starts_with("registration: unreachable: node 1"),
        "{v}"
    );
    assert!(v["nodes"][0]["error"].is_null() && v["nodes"][0]["state"].is_null());
    // Waiting is not failing, however long.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.tick().await.unwrap();
    assert_eq!(
        c.store()
            .analysis(&id.to_hex())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Approved
    );
    // The node comes back: registered, and the mark is cleared.
    fake.down[1].store(false, Ordering::SeqCst);
    c.tick().await.unwrap();
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Registered);
    assert_eq!(row.unreachable_since_ms, 0);

    fake.upload_all(&id);
    fake.hold.store(true, Ordering::SeqCst);
    c.tick().await.unwrap();
    assert_eq!(
        c.store()
            .analysis(&id.to_hex())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Running
    );

    // Every node call now hangs.
    fake.hang.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    c.tick().await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "a round hung");
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Running);
    assert!(
        row.detail.contains("no answer within 1 s"),
        "{}",
        row.detail
    );
    assert!(row.detail.contains("fails after 1 s"), "{}", row.detail);
    c.tick().await.unwrap();
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Failed, "{}", row.detail);
    assert!(
        row.detail.starts_with(
            "failed: node 0: no answer within 1 s; node 1: no answer within 1 s; \
             node 2: no answer within 1 s; no answer since"
        ) && row.detail.contains("POST /api/analyses/"),
        "{}",
        row.detail
    );
    assert!(t0.elapsed() < Duration::from_secs(8));
    // The API itself still answers while the nodes hang.
    let (code, _) = call(&app, "GET", &format!("/api/analyses/{id}"), "").await;
    assert_eq!(code, StatusCode::OK);
}

/// A failed run releases nothing; with inputs kept it can be rerun.
#[tokio::test]
async fn failed_run_then_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    call(&app, "POST", "/api/analyses", &text).await;
    approve_all(&app, &p, &id).await;
    c.tick().await.unwrap();
    fake.upload_all(&id);
    *fake.fail_next_run.lock().unwrap() = Some("link to node 0 lost".into());
    c.tick().await.unwrap(); // run (fails)
    c.tick().await.unwrap(); // sees the failure
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Failed);
    assert!(
        row.detail.contains("link to node 0 lost") && row.detail.contains("inputs are kept"),
        "{}",
        row.detail
    );
    // The scheduler does not retry by itself.
    c.tick().await.unwrap();
    assert_eq!(fake.runs.load(Ordering::SeqCst), 1);
    let (code, body) = call(&app, "POST", &format!("/api/analyses/{id}/run"), "").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(fake.runs.load(Ordering::SeqCst), 2);
    c.tick().await.unwrap();
    assert_eq!(
        c.store()
            .analysis(&id.to_hex())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Done
    );
    let (code, body) = call(&app, "POST", &format!("/api/analyses/{id}/run"), "").await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(body.contains("done already"));
    let recs = kuvert_gov::verify_file(c.audit_path()).unwrap();
    let acts: Vec<&str> = recs.iter().map(|r| r.action.as_str()).collect();
    assert!(
        acts.ends_with(&["job.started", "job.failed", "job.started", "job.done"]),
        "{acts:?}"
    );
}

/// A node that refuses the registration (e.g. its trust list) fails the
/// analysis with the node's reason; a node that lost the analysis gets it
/// registered again; past the deadline the analysis expires.
#[tokio::test]
async fn refusal_reregistration_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let c = Coordinator::open(&config(dir.path()), fake.clone())
        .await
        .unwrap();
    let app = api::router(c.clone());
    let p = parties();

    let text = spec_text(&p, "");
    let id = id_of(&text);
    call(&app, "POST", "/api/analyses", &text).await;
    approve_all(&app, &p, &id).await;
    c.tick().await.unwrap();
    fake.forget(&id);
    c.tick().await.unwrap();
    assert!(fake.registered(&id), "not registered again");
    assert_eq!(fake.registers.load(Ordering::SeqCst), 2);
    *fake.deadline.lock().unwrap() = "2001-01-01T00:00:00Z".into();
    fake.upload_all(&id);
    c.tick().await.unwrap();
    c.tick().await.unwrap();
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Done);
    assert_eq!(row.deadline, "2001-01-01T00:00:00Z");
    c.tick().await.unwrap();
    assert_eq!(
        c.store()
            .analysis(&id.to_hex())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Expired
    );

    // Another analysis, refused by the nodes' trust list.
    let text = spec_text(&p, "(refused)");
    let id = id_of(&text);
    call(&app, "POST", "/api/analyses", &text).await;
    approve_all(&app, &p, &id).await;
    *fake.refuse_register.lock().unwrap() =
        Some("contributor key of fk is not in trusted_keys".into());
    c.tick().await.unwrap();
    let row = c.store().analysis(&id.to_hex()).await.unwrap().unwrap();
    assert_eq!(row.state, State::Failed);
    assert!(
        row.detail
            .contains("node 0 refused the analysis: contributor key of fk is not in trusted_keys"),
        "{}",
        row.detail
    );
    assert!(
        row.detail.contains("submit the corrected analysis"),
        "{}",
        row.detail
    );
}

/// 20 analyses submitted and approved concurrently all reach done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_analyses() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new();
    let running = start(&config(dir.path()), fake.clone()).await.unwrap();
    let addr = running.addr;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20 {
        let fake = fake.clone();
        tasks.spawn(async move {
            let p = parties();
            let text = spec_text(&p, &format!("(run {n})"));
            let id = id_of(&text);
            let (code, body) = http(addr, "POST", "/api/analyses", &text).await;
            assert_eq!(code, 201, "{body}");
            let mut approvals = tokio::task::JoinSet::new();
            for who in ["kommun", "fk"] {
                let a = serde_json::to_string(&approval(&p, who, &id)).unwrap();
                approvals.spawn(async move {
                    http(addr, "POST", &format!("/api/analyses/{id}/approvals"), &a).await
                });
            }
            while let Some(r) = approvals.join_next().await {
                assert_eq!(r.unwrap().0, 200);
            }
            eventually(20, "registered", || async { fake.registered(&id) }).await;
            fake.upload_all(&id);
            id
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.push(r.unwrap());
    }
    assert_eq!(ids.len(), 20);
    eventually(30, "all 20 done", || async {
        let (_, body) = http(addr, "GET", "/api/analyses", "").await;
        let v = json(&body);
        v.as_array().unwrap().len() == 20
            && v.as_array().unwrap().iter().all(|a| a["state"] == "done")
    })
    .await;
    for id in &ids {
        let (_, body) = http(addr, "GET", &format!("/api/analyses/{id}"), "").await;
        assert_eq!(json(&body)["receipts"].as_array().unwrap().len(), 3);
    }
    assert_eq!(fake.runs.load(Ordering::SeqCst), 20);
    let path = running.coordinator.audit_path().to_path_buf();
    running.stop().await.unwrap();
    let recs = kuvert_gov::verify_file(&path).unwrap();
    assert_eq!(recs.iter().filter(|r| r.action == "job.done").count(), 20);
}

#[tokio::test]
async fn tick_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    tick_flow(&config(dir.path())).await;
    assert!(dir.path().join("coordinator.db").exists());
}
