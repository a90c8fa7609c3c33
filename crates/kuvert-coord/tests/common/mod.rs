#![allow(dead_code)]
//! Test helpers: seeded keys, a filled spec, an in-memory fake of the
//! three nodes (it verifies approvals like a real node, and can be told to
//! be down, hang, refuse or fail), HTTPS material (one test CA per test
//! binary, the coordinator's server certificate, the parties' client
//! certificates, an access file with test tokens) and HTTP helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use kuvert_coord::{BoxFut, Config, NodeApi, NodeError};
use kuvert_gov::{
    sign_approval, AnalysisId, AnalysisSpec, Approval, Deleted, DeletionReceipt, PartyKey,
    Validation,
};
use kuvert_node::wire::{GovState, GovStatus, TableInfo};
use rand_chacha::rand_core::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

pub fn key(name: &str, seed: u64) -> PartyKey {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    PartyKey::generate_with(name, &mut rng)
}

pub struct Parties {
    pub fk: PartyKey,
    pub kommun: PartyKey,
    pub kontroll: PartyKey,
}

pub fn parties() -> Parties {
    Parties {
        fk: key("fk", 1),
        kommun: key("kommun", 2),
        kontroll: key("kontroll", 3),
    }
}

/// The overlapping-benefits template with real keys, by plain text
/// replacement (independent of the console's toml_edit filling). `tag`
/// goes into the purpose so that each tag gives another analysis id.
pub fn spec_text(p: &Parties, tag: &str) -> String {
    let t = kuvert_gov::templates::set_nodes(
        kuvert_gov::templates::get("overlapping-benefits").unwrap(),
        &spec_nodes(),
    )
    .unwrap();
    let mut s = t
        .replace(
            "kem_public_key = \"placeholder:fk\"",
            &format!("kem_public_key = \"{}\"", p.fk.kem_public().unwrap().to_base64()),
        )
        .replace(
            "kem_public_key = \"placeholder:kommun\"",
            &format!("kem_public_key = \"{}\"", p.kommun.kem_public().unwrap().to_base64()),
        )
        .replace(
            "kem_public_key = \"placeholder:kontroll\"",
            &format!("kem_public_key = \"{}\"", p.kontroll.kem_public().unwrap().to_base64()),
        )
        .replace(
            "public_key = \"placeholder:fk\"",
            &format!("public_key = \"{}\"", p.fk.public().ed25519),
        )
        .replace(
            "public_key = \"placeholder:kommun\"",
            &format!("public_key = \"{}\"", p.kommun.public().ed25519),
        )
        .replace(
            "contact = \"placeholder: the analysis owner's functional mailbox, e.g. mpc-analys@myndighet.example\"",
            "contact = \"mpc-analys@fk.example\"",
        );
    if !tag.is_empty() {
        s = s.replace(
            "without either party handing its register to the other.",
            &format!("without either party handing its register to the other. {tag}"),
        );
    }
    s
}

/// The three `[[nodes]]` of the test specs (the fake nodes do not check
/// their keys).
pub fn spec_nodes() -> Vec<kuvert_gov::spec::SpecNode> {
    (0..3)
        .map(|i| kuvert_gov::spec::SpecNode {
            operator: format!("Operator {i}"),
            fingerprint: format!("{i}").repeat(64),
            endpoint: None,
        })
        .collect()
}

pub fn id_of(text: &str) -> AnalysisId {
    AnalysisSpec::parse(text, "t", Validation::Strict)
        .unwrap()
        .id()
}

pub fn approval(p: &Parties, who: &str, id: &AnalysisId) -> Approval {
    let k = match who {
        "fk" => &p.fk,
        "kommun" => &p.kommun,
        _ => &p.kontroll,
    };
    sign_approval(id, who, k)
}

#[derive(Clone)]
struct NodeJob {
    spec: AnalysisSpec,
    state: GovState,
    tables: Vec<TableInfo>,
    receipt: Option<DeletionReceipt>,
}

/// The fake nodes.
pub struct Fake {
    jobs: Mutex<HashMap<String, [NodeJob; 3]>>,
    pub node_keys: Vec<PartyKey>,
    /// Node i answers nothing (connection refused).
    pub down: [AtomicBool; 3],
    /// Every call hangs (the coordinator's timeout must end it).
    pub hang: AtomicBool,
    /// Runs stay `Running` until released.
    pub hold: AtomicBool,
    /// The next run fails (on every node) with this reason (inputs kept).
    pub fail_next_run: Mutex<Option<String>>,
    /// Every node refuses registrations with this reason.
    pub refuse_register: Mutex<Option<String>>,
    /// Deadline the nodes report when done.
    pub deadline: Mutex<String>,
    pub registers: std::sync::atomic::AtomicUsize,
    pub runs: std::sync::atomic::AtomicUsize,
    /// What each node's ledger holds (the tests set it).
    pub ledgers: Mutex<[Vec<kuvert_node::budget::Account>; 3]>,
    /// The coordinator audit heads sent with each run.
    pub heads: Mutex<Vec<kuvert_gov::receipt::AuditHead>>,
}

impl Fake {
    pub fn new() -> Arc<Fake> {
        Arc::new(Fake {
            jobs: Mutex::new(HashMap::new()),
            node_keys: (0..3).map(|i| key(&format!("node{i}"), 100 + i)).collect(),
            down: Default::default(),
            hang: AtomicBool::new(false),
            hold: AtomicBool::new(false),
            fail_next_run: Mutex::new(None),
            refuse_register: Mutex::new(None),
            deadline: Mutex::new("2999-01-01T00:00:00Z".into()),
            registers: Default::default(),
            ledgers: Default::default(),
            heads: Default::default(),
            runs: Default::default(),
        })
    }

    /// A contributor's upload of `table` to all three nodes.
    pub fn upload(&self, id: &AnalysisId, table: &str, rows: u64) {
        let mut jobs = self.jobs.lock().unwrap();
        let nodes = jobs.get_mut(&id.to_hex()).expect("registered");
        for n in nodes.iter_mut() {
            let contributor = n
                .spec
                .contributors
                .iter()
                .find(|c| c.tables.iter().any(|t| t.name == table))
                .unwrap()
                .id
                .clone();
            n.tables.retain(|t| t.name != table);
            n.tables.push(TableInfo {
                name: table.into(),
                contributor,
                rows,
            });
            let missing: Vec<String> = n
                .spec
                .contributors
                .iter()
                .flat_map(|c| c.tables.iter().map(|t| t.name.clone()))
                .filter(|t| !n.tables.iter().any(|x| &x.name == t))
                .collect();
            n.state = if missing.is_empty() {
                GovState::Ready
            } else {
                GovState::Waiting { missing }
            };
        }
    }

    pub fn upload_all(&self, id: &AnalysisId) {
        self.upload(id, "fk", 10);
        self.upload(id, "ek", 7);
    }

    pub fn registered(&self, id: &AnalysisId) -> bool {
        self.jobs.lock().unwrap().contains_key(&id.to_hex())
    }

    /// Forget an analysis on every node (as if their disks were wiped).
    pub fn forget(&self, id: &AnalysisId) {
        self.jobs.lock().unwrap().remove(&id.to_hex());
    }

    fn gate(&self, i: usize) -> Result<(), NodeError> {
        if self.down[i].load(Ordering::SeqCst) {
            Err(NodeError::Unreachable(format!(
                "node {i} (127.0.0.1:{}) is unreachable: connection refused",
                7000 + i
            )))
        } else {
            Ok(())
        }
    }

    async fn maybe_hang(&self) {
        if self.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

impl NodeApi for Fake {
    fn register<'a>(
        &'a self,
        spec_toml: &'a str,
        approvals: &'a [Approval],
    ) -> BoxFut<'a, [Result<(), NodeError>; 3]> {
        Box::pin(async move {
            self.maybe_hang().await;
            self.registers.fetch_add(1, Ordering::SeqCst);
            let one = |i: usize| -> Result<(), NodeError> {
                self.gate(i)?;
                if let Some(m) = self.refuse_register.lock().unwrap().clone() {
                    return Err(NodeError::Refused(m));
                }
                let spec = AnalysisSpec::parse(spec_toml, "registered spec", Validation::Strict)
                    .map_err(|e| NodeError::Refused(e.to_string()))?;
                kuvert_gov::verify_approvals(&spec, approvals)
                    .map_err(|e| NodeError::Refused(e.to_string()))?;
                let id = spec.id().to_hex();
                let mut jobs = self.jobs.lock().unwrap();
                let missing: Vec<String> = spec
                    .contributors
                    .iter()
                    .flat_map(|c| c.tables.iter().map(|t| t.name.clone()))
                    .collect();
                let fresh = NodeJob {
                    spec: spec.clone(),
                    state: GovState::Waiting { missing },
                    tables: vec![],
                    receipt: None,
                };
                let e = jobs
                    .entry(id)
                    .or_insert_with(|| [fresh.clone(), fresh.clone(), fresh.clone()]);
                let _ = e;
                Ok(())
            };
            [one(0), one(1), one(2)]
        })
    }

    fn ledgers(&self) -> BoxFut<'_, [Result<Vec<kuvert_node::budget::Account>, NodeError>; 3]> {
        Box::pin(async move {
            let l = self.ledgers.lock().unwrap().clone();
            let [a, b, c] = l;
            [
                self.gate(0).map(|_| a),
                self.gate(1).map(|_| b),
                self.gate(2).map(|_| c),
            ]
        })
    }

    fn run<'a>(
        &'a self,
        analysis: &'a str,
        head: Option<kuvert_gov::receipt::AuditHead>,
    ) -> BoxFut<'a, [Result<(), NodeError>; 3]> {
        Box::pin(async move {
            if let Some(h) = head {
                self.heads.lock().unwrap().push(h);
            }
            self.maybe_hang().await;
            self.runs.fetch_add(1, Ordering::SeqCst);
            let fail = self.fail_next_run.lock().unwrap().take();
            let mut out: [Result<(), NodeError>; 3] = [Ok(()), Ok(()), Ok(())];
            let mut jobs = self.jobs.lock().unwrap();
            for (i, o) in out.iter_mut().enumerate() {
                if let Err(e) = self.gate(i) {
                    *o = Err(e);
                    continue;
                }
                let Some(nodes) = jobs.get_mut(analysis) else {
                    *o = Err(NodeError::Refused(format!(
                        "analysis {analysis} is not registered at node {i}"
                    )));
                    continue;
                };
                let n = &mut nodes[i];
                match &n.state {
                    GovState::Ready
                    | GovState::Failed {
                        inputs_kept: true, ..
                    } => {
                        // MPC aborts on every node when one fails.
                        n.state = match &fail {
                            Some(reason) => GovState::Failed {
                                reason: reason.clone(),
                                refused: false,
                                inputs_kept: true,
                            },
                            _ => GovState::Running {
                                output: "persons".into(),
                                done: 0,
                                total: 2,
                            },
                        };
                    }
                    // A strict node: a second run request is refused.
                    GovState::Running { .. } | GovState::Done { .. } => {
                        *o = Err(NodeError::Refused(format!(
                            "analysis {analysis} already ran or runs at node {i}"
                        )))
                    }
                    GovState::Waiting { missing } => {
                        *o = Err(NodeError::Refused(format!(
                            "tables missing: {}",
                            missing.join(", ")
                        )))
                    }
                    other => *o = Err(NodeError::Refused(format!("cannot run in state {other:?}"))),
                }
            }
            out
        })
    }

    fn status<'a>(&'a self, analysis: &'a str) -> BoxFut<'a, [Result<GovStatus, NodeError>; 3]> {
        Box::pin(async move {
            self.maybe_hang().await;
            let hold = self.hold.load(Ordering::SeqCst);
            let deadline = self.deadline.lock().unwrap().clone();
            let mut jobs = self.jobs.lock().unwrap();
            let one = |i: usize,
                       jobs: &mut HashMap<String, [NodeJob; 3]>|
             -> Result<GovStatus, NodeError> {
                self.gate(i)?;
                let Some(nodes) = jobs.get_mut(analysis) else {
                    return Ok(GovStatus {
                        node: i,
                        analysis: analysis.into(),
                        state: GovState::Unknown,
                        tables: vec![],
                        progress: None,
                        stats: None,
                        receipt: None,
                        delete_by: None,
                    });
                };
                let n = &mut nodes[i];
                if matches!(n.state, GovState::Running { .. }) && !hold {
                    // The run finishes: seal, delete, sign a receipt.
                    let id: AnalysisId = analysis.parse().unwrap();
                    n.receipt = Some(DeletionReceipt::sign(
                        &self.node_keys[i],
                        id,
                        analysis,
                        i as u8,
                        Deleted {
                            tables: n.tables.iter().map(|t| t.name.clone()).collect(),
                            intermediate_state: true,
                            session_keys: true,
                        },
                        None,
                    ));
                    n.state = GovState::Done {
                        deadline: deadline.clone(),
                    };
                }
                Ok(GovStatus {
                    node: i,
                    analysis: analysis.into(),
                    state: n.state.clone(),
                    tables: n.tables.clone(),
                    progress: None,
                    stats: None,
                    receipt: n.receipt.clone(),
                    delete_by: None,
                })
            };
            [one(0, &mut jobs), one(1, &mut jobs), one(2, &mut jobs)]
        })
    }
}

/// Write node `i`'s receipt key as the PKI's `node-<i>.gov.pub`.
pub fn write_node_pub(dir: &Path, i: usize, key: &PartyKey) {
    std::fs::write(
        dir.join(format!("node-{i}.gov.pub")),
        serde_json::to_string(&key.public()).unwrap(),
    )
    .unwrap();
}

/// The test tokens of the access file: (token, name, roles).
pub const ADMIN: &str = "kvt_test_admin";
pub const SUBMITTER: &str = "kvt_test_submitter";
pub const AUDITOR: &str = "kvt_test_auditor";
pub const TOKENS: &[(&str, &str, &str)] = &[
    (ADMIN, "admin", "submitter,operator,auditor"),
    (SUBMITTER, "analyst", "submitter"),
    (AUDITOR, "auditor", "auditor"),
    // The parties as tokens (roles only as their specs imply), for
    // requests on the router without TLS.
    ("kvt_test_fk", "fk", ""),
    ("kvt_test_kommun", "kommun", ""),
    ("kvt_test_kontroll", "kontroll", ""),
];

/// The token of party `who` (fk, kommun, kontroll).
pub fn party_token(who: &str) -> &'static str {
    TOKENS
        .iter()
        .find(|(_, n, _)| *n == who)
        .map(|(t, _, _)| *t)
        .unwrap_or_else(|| panic!("no test token for {who}"))
}

/// The HTTPS material of this test binary, made once: a deployment PKI
/// (`ca.crt`, client certificates of the parties fk, kommun, kontroll and
/// outsider), the coordinator's server certificate `server.crt/.key` for
/// 127.0.0.1 and localhost, and `access.toml` (fk may submit; the
/// [`TOKENS`]).
pub fn tls_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        use kuvert_net::pki::{self, CertRole, InitOptions};
        // Under cargo's scratch directory for tests, one per process.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("coord-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        pki::init(
            &dir,
            &InitOptions {
                nodes: 3,
                parties: ["fk", "kommun", "kontroll", "outsider"]
                    .map(String::from)
                    .to_vec(),
                validity_days: 2,
                force: true,
            },
        )
        .unwrap();
        pki::request(
            &dir,
            &CertRole::Server,
            &["127.0.0.1".into(), "localhost".into()],
            false,
        )
        .unwrap();
        pki::sign_request(
            &dir,
            &dir.join("server.csr"),
            &CertRole::Server,
            &dir.join("server.crt"),
            2,
            false,
        )
        .unwrap();
        let mut access = String::from("[[principal]]\nname = \"fk\"\nroles = [\"submitter\"]\n\n");
        for (t, name, roles) in TOKENS {
            let roles = kuvert_coord::auth::parse_roles(roles).unwrap();
            access.push_str(&kuvert_coord::auth::token_stanza(name, &roles, t));
            access.push('\n');
        }
        std::fs::write(dir.join("access.toml"), access).unwrap();
        dir
    })
}

pub fn config(dir: &Path) -> Config {
    let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let mut c = Config::new(
        dir.to_path_buf(),
        dir.to_path_buf(),
        [a(7000), a(7001), a(7002)],
    );
    c.listen = a(0);
    c.poll_ms = 20;
    c.node_timeout_secs = 1;
    let tls = tls_dir();
    c.tls_cert = Some(tls.join("server.crt"));
    c.tls_key = Some(tls.join("server.key"));
    c.client_ca = vec![tls.join("ca.crt")];
    c.access = Some(tls.join("access.toml"));
    c
}

/// The token a router request of the tests is sent with: an approval is
/// posted by its contributor, everything else by the test operator
/// ([`ADMIN`]: submitter, operator and auditor).
fn token_for(method: &str, uri: &str, body: &str) -> &'static str {
    if method == "POST" && uri.ends_with("/approvals") {
        if let Some(who) = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["contributor"].as_str().map(str::to_string))
        {
            if let Some((t, _, _)) = TOKENS.iter().find(|(_, n, _)| *n == who) {
                return t;
            }
        }
    }
    ADMIN
}

/// One request on the router (no network), with the credentials of
/// [`token_for`].
pub async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    call_ct(app, method, uri, body, "text/plain").await
}

pub async fn call_ct(
    app: &Router,
    method: &str,
    uri: &str,
    body: &str,
    ctype: &str,
) -> (StatusCode, String) {
    let token = token_for(method, uri, body);
    call_as(app, Some(token), method, uri, body, ctype).await
}

/// One request on the router with bearer token `token` (or none).
pub async fn call_as(
    app: &Router,
    token: Option<&str>,
    method: &str,
    uri: &str,
    body: &str,
    ctype: &str,
) -> (StatusCode, String) {
    let (status, _, body) = call_full(app, token, &[], method, uri, body, ctype).await;
    (status, body)
}

/// One request on the router: bearer `token`, extra `headers`; status,
/// response headers and body.
pub async fn call_full(
    app: &Router,
    token: Option<&str>,
    headers: &[(&str, &str)],
    method: &str,
    uri: &str,
    body: &str,
    ctype: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ctype);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let headers = resp.headers().clone();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// How a request over the network authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Cred<'a> {
    /// Nothing.
    None,
    /// `Authorization: Bearer TOKEN`.
    Token(&'a str),
    /// The client certificate of this party (from [`tls_dir`]).
    Cert(&'a str),
}

/// The TLS client configuration of the tests: trusts the test CA, presents
/// `party`'s certificate when given.
pub fn client_tls(party: Option<&str>) -> Arc<rustls::ClientConfig> {
    let roots = kuvert_net::pki::load_roots(&tls_dir().join("ca.crt")).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(kuvert_net::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match party {
        Some(p) => {
            let id = kuvert_net::pki::Identity::load_party(tls_dir(), p).unwrap();
            b.with_client_auth_cert(id.certs.clone(), id.clone_key())
                .unwrap()
        }
        None => b.with_no_client_auth(),
    })
}

/// A minimal HTTPS/1.1 client over a real TCP connection, with the
/// credentials of [`token_for`], except that an approval is posted with
/// its contributor's client certificate.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let cred = match token_for(method, path, body) {
        ADMIN => Cred::Token(ADMIN),
        t => Cred::Cert(
            TOKENS
                .iter()
                .find(|(x, _, _)| *x == t)
                .map(|(_, n, _)| *n)
                .unwrap(),
        ),
    };
    https(addr, cred, method, path, body).await
}

/// One HTTPS request with `cred`; status and body.
pub async fn https(
    addr: SocketAddr,
    cred: Cred<'_>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let party = match cred {
        Cred::Cert(p) => Some(p),
        _ => None,
    };
    let connector = tokio_rustls::TlsConnector::from(client_tls(party));
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = connector.connect(name, tcp).await.unwrap();
    let auth = match cred {
        Cred::Token(t) => format!("Authorization: Bearer {t}\r\n"),
        _ => String::new(),
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // A peer that closes without close_notify still sent the whole answer.
    if let Err(e) = s.read_to_end(&mut buf).await {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (len, after) = rest.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(len.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// Poll `f` until true (at most `secs`).
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {secs} s: {what}");
}

/// The whole flow driven by hand (one scheduler round at a time), with a
/// coordinator restart in the middle; for every storage backend.
pub async fn tick_flow(cfg: &Config) {
    use kuvert_coord::{api, Coordinator, State};
    let fake = Fake::new();
    let p = parties();
    let text = spec_text(&p, "");
    let id = id_of(&text);
    {
        let c = Coordinator::open(cfg, fake.clone()).await.unwrap();
        let app = api::router(c.clone());
        let (code, _) = call(&app, "POST", "/api/analyses", &text).await;
        assert_eq!(code, StatusCode::CREATED);
        let (code, _) = call(&app, "POST", "/api/analyses", &text).await;
        assert_eq!(code, StatusCode::OK);
        let a = serde_json::to_string(&approval(&p, "fk", &id)).unwrap();
        call(&app, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
        // A bad approval is refused on this backend too.
        let bad = serde_json::to_string(&kuvert_gov::sign_approval(&id, "kommun", &p.fk)).unwrap();
        let (code, _) = call(&app, "POST", &format!("/api/analyses/{id}/approvals"), &bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        c.store().close().await;
    }
    let c = Coordinator::open(cfg, fake.clone()).await.unwrap();
    let app = api::router(c.clone());
    let a = serde_json::to_string(&approval(&p, "kommun", &id)).unwrap();
    let (_, body) = call(&app, "POST", &format!("/api/analyses/{id}/approvals"), &a).await;
    assert_eq!(
        json(&body)["remaining"],
        serde_json::json!([]),
        "an approval was lost"
    );
    c.tick().await.unwrap();
    assert_eq!(
        c.store()
            .analysis(&id.to_hex())
            .await
            .unwrap()
            .unwrap()
            .state,
        State::Registered
    );
    fake.upload_all(&id);
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
    c.tick().await.unwrap();
    let (_, body) = call(&app, "GET", &format!("/api/analyses/{id}"), "").await;
    let v = json(&body);
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["receipts"].as_array().unwrap().len(), 3);
    assert_eq!(v["nodes"][2]["state"]["tables"][1]["rows"], 7);
    let (_, body) = call(&app, "GET", "/api/analyses", "").await;
    assert_eq!(json(&body)[0]["approvals_have"], 2);
    c.store().close().await;
}
