//! The same flows on PostgreSQL, when `KUVERT_TEST_POSTGRES_URL` names a
//! server whose user may create databases (CI starts one). Each test gets
//! a fresh database, dropped at the end. One runs over TLS
//! (`sslmode=require`: Debian's PostgreSQL has `ssl = on` with its snakeoil
//! certificate), checked on the server side in `pg_stat_ssl`.

mod common;

use common::*;
use sqlx::Connection;

/// `postgres://u:p@h:port/db?x` -> (`postgres://u:p@h:port`, `?x`).
fn split(url: &str) -> (String, String) {
    let (main, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let after = main.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match main[after..].find('/') {
        Some(s) => &main[..after + s],
        None => main,
    };
    (base.to_string(), query.to_string())
}

async fn fresh_db(tag: &str) -> Option<(String, String)> {
    let Ok(url) = std::env::var("KUVERT_TEST_POSTGRES_URL") else {
        println!("skipped: KUVERT_TEST_POSTGRES_URL not set");
        return None;
    };
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("kuvert_test_{tag}_{}_{nonce}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to KUVERT_TEST_POSTGRES_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE (the test user needs CREATEDB)");
    let (base, query) = split(&url);
    Some((format!("{base}/{name}{query}"), name))
}

async fn drop_db(name: &str) {
    let url = std::env::var("KUVERT_TEST_POSTGRES_URL").unwrap();
    if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}

#[test]
fn url_split() {
    assert_eq!(
        split("postgres://u:p@h:5432/db?sslmode=disable"),
        ("postgres://u:p@h:5432".into(), "?sslmode=disable".into())
    );
    assert_eq!(
        split("postgres://h/db"),
        ("postgres://h".into(), String::new())
    );
    assert_eq!(
        split("postgres://h"),
        ("postgres://h".into(), String::new())
    );
}

#[tokio::test]
async fn flow_and_restart_on_postgres() {
    let Some((url, name)) = fresh_db("flow").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.database_url = Some(url);
    tick_flow(&cfg).await;
    // Nothing was written to an SQLite file by mistake.
    assert!(!dir.path().join("coordinator.db").exists());
    drop_db(&name).await;
}

/// `url` with `sslmode=MODE` (replacing one that is there).
fn with_sslmode(url: &str, mode: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, q),
        None => (url, ""),
    };
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("sslmode="))
        .collect();
    let mode = format!("sslmode={mode}");
    params.push(&mode);
    format!("{main}?{}", params.join("&"))
}

#[test]
fn sslmode_is_set() {
    assert_eq!(
        with_sslmode("postgres://h/db", "require"),
        "postgres://h/db?sslmode=require"
    );
    assert_eq!(
        with_sslmode("postgres://h/db?sslmode=disable&x=1", "require"),
        "postgres://h/db?x=1&sslmode=require"
    );
}

#[tokio::test]
async fn flow_over_tls_on_postgres() {
    let Some((url, name)) = fresh_db("tls").await else {
        return;
    };
    let url = with_sslmode(&url, "require");
    // The session is encrypted: the server says so.
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect with sslmode=require (is ssl = on in postgresql.conf?)");
    let (ssl, version): (bool, Option<String>) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(ssl, "sslmode=require gave a plain connection");
    println!("PostgreSQL session over {}", version.unwrap_or_default());
    drop(conn);
    // The coordinator's store (sqlx `any`) over the same TLS URL.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.database_url = Some(url);
    tick_flow(&cfg).await;
    drop_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_analyses_on_postgres() {
    let Some((url, name)) = fresh_db("conc").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.database_url = Some(url);
    let fake = Fake::new();
    let running = kuvert_coord::start(&cfg, fake.clone()).await.unwrap();
    let addr = running.addr;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..20 {
        let fake = fake.clone();
        tasks.spawn(async move {
            let p = parties();
            let text = spec_text(&p, &format!("(pg {n})"));
            let id = id_of(&text);
            assert_eq!(http(addr, "POST", "/api/analyses", &text).await.0, 201);
            for who in ["fk", "kommun"] {
                let a = serde_json::to_string(&approval(&p, who, &id)).unwrap();
                assert_eq!(
                    http(addr, "POST", &format!("/api/analyses/{id}/approvals"), &a)
                        .await
                        .0,
                    200
                );
            }
            eventually(20, "registered", || async { fake.registered(&id) }).await;
            fake.upload_all(&id);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    eventually(30, "all done", || async {
        let (_, body) = http(addr, "GET", "/api/analyses", "").await;
        let v = json(&body);
        v.as_array().unwrap().len() == 20
            && v.as_array().unwrap().iter().all(|a| a["state"] == "done")
    })
    .await;
    running.stop().await.unwrap();
    drop_db(&name).await;
}
