//! The governed service at the nodes, end to end: three in-process node
//! servers on loopback with real TLS, the overlapping-benefits template
//! with seeded test keys, two contributors, three recipients.
//!
//! The answers are compared with a plain computation of the template's SQL
//! over the same rows (an independent oracle written here), and the data
//! directories are searched byte for byte for every cleartext value.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuvert_data::{CsvOptions, Date, Schema, Table};
use kuvert_gov::{sign_approval, AnalysisId, AnalysisSpec, Approval, PartyKey, Validation};
use kuvert_node::client::{ClientError, Nodes};
use kuvert_node::config::NodeConfig;
use kuvert_node::gov;
use kuvert_node::server::Node;
use kuvert_node::wire::{GovState, Request, Response, SealedOutput};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

// ---------------------------------------------------------------- the data

/// A valid 12-digit personnummer (Luhn check digit over the last ten).
fn pnr(y: u32, m: u32, d: u32, serial: u32) -> String {
    let nine = format!("{:02}{m:02}{d:02}{serial:03}", y % 100);
    let mut sum = 0;
    for (i, c) in nine.bytes().enumerate() {
        let mut v = (c - b'0') as u32 * if i % 2 == 0 { 2 } else { 1 };
        if v > 9 {
            v -= 9;
        }
        sum += v;
    }
    format!(
        "{y}{nine_tail}{}",
        (10 - sum % 10) % 10,
        nine_tail = &nine[2..]
    )
}

struct Fk {
    pnr: String,
    forman: &'static str,
    fran: &'static str,
    till: &'static str,
    belopp: i64,
}
struct Ek {
    pnr: String,
    fran: &'static str,
    till: &'static str,
    belopp: i64,
}

fn data() -> (Vec<Fk>, Vec<Ek>) {
    let p: Vec<String> = (0..6)
        .map(|i| pnr(1950 + 7 * i, 1 + i, 3 + 4 * i, 101 + 37 * i))
        .collect();
    let fk = vec![
        Fk {
            pnr: p[0].clone(),
            forman: "sjukpenning",
            fran: "2025-01-01",
            till: "2025-01-31",
            belopp: 123457019,
        },
        Fk {
            pnr: p[1].clone(),
            forman: "bostadsbidrag",
            fran: "2025-02-01",
            till: "2025-02-28",
            belopp: 234568023,
        },
        Fk {
            pnr: p[2].clone(),
            forman: "sjukpenning",
            fran: "2025-03-01",
            till: "2025-03-31",
            belopp: 453219031,
        },
        Fk {
            pnr: p[2].clone(),
            forman: "bostadsbidrag",
            fran: "2025-05-01",
            till: "2025-05-31",
            belopp: 512347043,
        },
        Fk {
            pnr: p[3].clone(),
            forman: "aktivitetsstod",
            fran: "2025-01-01",
            till: "2025-12-31",
            belopp: 678913057,
        },
        Fk {
            pnr: p[5].clone(),
            forman: "sjukpenning",
            fran: "2025-06-01",
            till: "2025-06-30",
            belopp: 345671061,
        },
    ];
    let ek = vec![
        Ek {
            pnr: p[0].clone(),
            fran: "2025-01-15",
            till: "2025-02-14",
            belopp: 111119071,
        },
        Ek {
            pnr: p[1].clone(),
            fran: "2025-03-01",
            till: "2025-03-31",
            belopp: 222227083,
        },
        Ek {
            pnr: p[2].clone(),
            fran: "2025-05-10",
            till: "2025-05-20",
            belopp: 333331097,
        },
        Ek {
            pnr: p[4].clone(),
            fran: "2025-01-01",
            till: "2025-01-31",
            belopp: 444443101,
        },
        Ek {
            pnr: p[5].clone(),
            fran: "2025-06-30",
            till: "2025-07-04",
            belopp: 555557113,
        },
    ];
    (fk, ek)
}

/// The template's two queries, computed in the clear: the persons with
/// an overlapping period, and the sum of the agency's rows that overlap.
fn oracle(fk: &[Fk], ek: &[Ek]) -> (BTreeSet<String>, i64) {
    let overlaps = |f: &Fk| {
        ek.iter()
            .any(|e| e.pnr == f.pnr && e.fran <= f.till && f.fran <= e.till)
    };
    let ids = fk
        .iter()
        .filter(|f| overlaps(f))
        .map(|f| f.pnr.clone())
        .collect();
    let sum = fk.iter().filter(|f| overlaps(f)).map(|f| f.belopp).sum();
    (ids, sum)
}

fn table(csv: &str, schema: &str) -> Table {
    let schema: Schema = schema.parse().unwrap();
    let opts = CsvOptions {
        delimiter: b',',
        today: Date {
            year: 2026,
            month: 11,
            day: 23,
        },
    };
    kuvert_data::read_csv(csv.as_bytes(), "test.csv", &schema, &opts).unwrap()
}

const FK_SCHEMA: &str = "pnr:idnr,forman:text,fran:date,till:date,belopp:int";
const EK_SCHEMA: &str = "pnr:idnr,fran:date,till:date,belopp:int";

fn fk_table(fk: &[Fk]) -> Table {
    let mut csv = "pnr,forman,fran,till,belopp\n".to_string();
    for r in fk {
        csv += &format!(
            "{},{},{},{},{}\n",
            r.pnr, r.forman, r.fran, r.till, r.belopp
        );
    }
    table(&csv, FK_SCHEMA)
}

fn ek_table(ek: &[Ek]) -> Table {
    let mut csv = "pnr,fran,till,belopp\n".to_string();
    for r in ek {
        csv += &format!("{},{},{},{}\n", r.pnr, r.fran, r.till, r.belopp);
    }
    table(&csv, EK_SCHEMA)
}

// ------------------------------------------------------- keys and the spec

fn key(name: &str, seed: u64) -> PartyKey {
    PartyKey::generate_with(name, &mut ChaCha20Rng::seed_from_u64(seed))
}

struct Keys {
    fk: PartyKey,
    kommun: PartyKey,
    kontroll: PartyKey,
}

fn keys() -> Keys {
    Keys {
        fk: key("fk", 1),
        kommun: key("kommun", 2),
        kontroll: key("kontroll", 3),
    }
}

/// The overlapping-benefits template with the test keys, and a retention
/// rule of the caller's choice.
fn spec_text(k: &Keys, retention: &str) -> String {
    let t = kuvert_gov::templates::get("overlapping-benefits").unwrap();
    let mut s = t
        .replace(
            "kem_public_key = \"placeholder:fk\"",
            &format!(
                "kem_public_key = \"{}\"",
                k.fk.kem_public().unwrap().to_base64()
            ),
        )
        .replace(
            "kem_public_key = \"placeholder:kommun\"",
            &format!(
                "kem_public_key = \"{}\"",
                k.kommun.kem_public().unwrap().to_base64()
            ),
        )
        .replace(
            "kem_public_key = \"placeholder:kontroll\"",
            &format!(
                "kem_public_key = \"{}\"",
                k.kontroll.kem_public().unwrap().to_base64()
            ),
        )
        .replace(
            "public_key = \"placeholder:fk\"",
            &format!("public_key = \"{}\"", k.fk.public().ed25519),
        )
        .replace(
            "public_key = \"placeholder:kommun\"",
            &format!("public_key = \"{}\"", k.kommun.public().ed25519),
        );
    s = kuvert_gov::templates::set_nodes(&s, &current_nodes()).unwrap();
    let contact = s.find("contact = ").unwrap();
    let end = contact + s[contact..].find('\n').unwrap();
    s.replace_range(contact..end, "contact = \"mpc-analys@fk.example\"");
    let r = s.find("[retention]").unwrap();
    let end = r + s[r..].find("\n\n").unwrap();
    s.replace_range(r..end, &format!("[retention]\n{retention}"));
    s
}

thread_local! {
    /// The nodes of the cluster this test thread started (specs name them).
    static NODES: std::cell::RefCell<Option<Vec<kuvert_gov::spec::SpecNode>>> =
        const { std::cell::RefCell::new(None) };
}

/// Fixed fingerprints for tests that drive a `Gov` without a cluster.
fn fixed_fingerprint(i: usize) -> String {
    std::iter::repeat_n(char::from(b'a' + i as u8), 64).collect()
}

fn current_nodes() -> Vec<kuvert_gov::spec::SpecNode> {
    NODES.with(|n| n.borrow().clone()).unwrap_or_else(|| {
        (0..3)
            .map(|i| kuvert_gov::spec::SpecNode {
                operator: format!("Operator {i}"),
                fingerprint: fixed_fingerprint(i),
                endpoint: None,
            })
            .collect()
    })
}

/// The pins of a `Gov` driven without a cluster, as node `i` of the fixed
/// nodes.
fn pins_fixed(i: usize) -> gov::NodePins {
    gov::NodePins {
        own: fixed_fingerprint(i),
        federation: None,
    }
}

const AT_JOB_END: &str = "delete_shares_at_job_end = true\nresult_deadline = 30";

fn approve(text: &str, k: &Keys) -> (AnalysisId, Vec<Approval>) {
    let spec = AnalysisSpec::parse(text, "t.toml", Validation::Strict).unwrap();
    let id = spec.id();
    (
        id,
        vec![
            sign_approval(&id, "fk", &k.fk),
            sign_approval(&id, "kommun", &k.kommun),
        ],
    )
}

// ------------------------------------------------------------- the cluster

struct Cluster {
    dir: tempfile::TempDir,
    /// The parties' directory (their certificates, the nodes' receipt keys).
    pki: PathBuf,
    /// The service operator's directory (the coordinator's certificate).
    service: PathBuf,
    /// The three nodes' key fingerprints.
    pins: [String; 3],
    addrs: [SocketAddr; 3],
    nodes: Vec<Option<Arc<Node>>>,
}

/// A free port below Linux's ephemeral range (32768 and up), so that no
/// client connection of a parallel test takes it as its source port
/// between this check and the node binding it.
fn free_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() % 1000) * 12;
    loop {
        let port = 20_000 + (base + NEXT.fetch_add(1, Ordering::SeqCst)) % 12_000;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return l.local_addr().unwrap();
        }
    }
}

impl Cluster {
    /// Three operators, each with its own CA and node key made by
    /// request/sign, a federation signed by all three, production nodes
    /// (no dev_mode) pinned by it.
    fn start(connect_timeout: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mpc = [free_port(), free_port(), free_port()];
        let addrs = [free_port(), free_port(), free_port()];
        let dep = kuvert_node::operators::setup(
            &dir.path().join("ops"),
            &kuvert_node::operators::Plan {
                name: "test-federation".into(),
                operators: ["Operator A", "Operator B", "Operator C"].map(String::from),
                mpc,
                api: addrs,
                parties: ["fk", "kommun", "kontroll", "intruder"]
                    .map(String::from)
                    .to_vec(),
                days: 30,
            },
        )
        .unwrap();
        NODES.with(|n| *n.borrow_mut() = Some(dep.spec_nodes().unwrap()));
        for (i, listen) in addrs.iter().enumerate() {
            let toml = format!(
                "id = {i}\nlisten = \"{listen}\"\npki_dir = \"{}\"\ndata_dir = \"node{i}\"\n\
                 federation = \"{}\"\nclient_cas = [\"{}\", \"{}\"]\n\
                 io_timeout_secs = 10\nconnect_timeout_secs = {connect_timeout}\nsweep_secs = 3600\n",
                dep.node_dirs[i].display(),
                dep.federation.display(),
                dep.parties.join("ca.crt").display(),
                dep.service.join("ca.crt").display(),
            );
            std::fs::write(dir.path().join(format!("node{i}.toml")), toml).unwrap();
        }
        let pki = dep.parties.clone();
        let service = dep.service.clone();
        let pins = dep.fingerprints.clone();
        let mut c = Cluster {
            dir,
            pki,
            service,
            pins,
            addrs,
            nodes: vec![None, None, None],
        };
        for i in 0..3 {
            c.start_node(i);
        }
        c
    }

    fn config(&self, i: usize) -> NodeConfig {
        NodeConfig::load(&self.dir.path().join(format!("node{i}.toml"))).unwrap()
    }

    fn start_node(&mut self, i: usize) {
        let node = Node::new(self.config(i)).unwrap();
        let listener = TcpListener::bind(self.addrs[i]).unwrap();
        let n = Arc::clone(&node);
        std::thread::spawn(move || n.serve_on(listener));
        self.nodes[i] = Some(node);
    }

    fn stop_node(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.shutdown();
        }
        // Wait until the port is free again.
        std::thread::sleep(Duration::from_millis(100));
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    fn client(&self, party: &str) -> Nodes {
        let dir = if party == "coordinator" {
            &self.service
        } else {
            &self.pki
        };
        Nodes::pinned(
            dir,
            party,
            self.addrs,
            self.pins.clone(),
            "the test federation",
        )
        .unwrap()
    }

    /// Poll until every node is done (or one failed); returns the states.
    fn wait(&self, id: &AnalysisId) -> Vec<GovState> {
        let c = self.client("coordinator");
        let start = Instant::now();
        loop {
            let states: Vec<GovState> =
                (0..3).map(|i| c.gov_status(i, id).unwrap().state).collect();
            let settled = states
                .iter()
                .all(|s| matches!(s, GovState::Done { .. } | GovState::Failed { .. }));
            if settled {
                return states;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the run did not settle: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().filter_map(Option::take) {
            n.shutdown();
        }
    }
}

/// Försäkringskassan and the municipality upload their tables.
fn upload_both(c: &Cluster, k: &Keys, id: &AnalysisId, fk: &[Fk], ek: &[Ek]) {
    c.client("fk")
        .gov_upload(id, "fk", &k.fk, "fk", &fk_table(fk))
        .unwrap();
    c.client("kommun")
        .gov_upload(id, "kommun", &k.kommun, "ek", &ek_table(ek))
        .unwrap();
}

fn refused(r: Result<Vec<String>, ClientError>) -> String {
    match r {
        Err(ClientError::Refused { message, .. }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn ids_of(csv: &str) -> BTreeSet<String> {
    csv.lines().skip(1).map(str::to_string).collect()
}

// ------------------------------------------------------------------- tests

#[test]
fn full_flow_gives_the_oracle_answer_deletes_signs_and_leaks_no_value() {
    let k = keys();
    let (fk, ek) = data();
    let (want_ids, want_sum) = oracle(&fk, &ek);
    // Hand check of the oracle: persons 0, 2 (second row only) and 5 (the
    // periods touch on 2025-06-30). Amounts have nine digits, so that a
    // match of one in the nodes' files cannot be chance (hex hashes there
    // hold decimal runs of six digits now and then).
    assert_eq!(want_ids.len(), 3);
    assert_eq!(want_sum, 123457019 + 512347043 + 345671061);

    let c = Cluster::start(10);
    let text = spec_text(&k, AT_JOB_END);
    let (id, approvals) = approve(&text, &k);
    let coord = c.client("coordinator");
    for m in coord.register(&text, &approvals).unwrap() {
        assert!(m.contains("verified every approval"), "{m}");
    }
    // Registering again is harmless.
    assert!(coord.register(&text, &approvals).unwrap()[0].contains("already registered"));
    assert!(matches!(
        coord.gov_status(1, &id).unwrap().state,
        GovState::Waiting { ref missing } if missing == &["fk".to_string(), "ek".to_string()]
    ));

    upload_both(&c, &k, &id, &fk, &ek);
    let st = coord.gov_status(2, &id).unwrap();
    assert_eq!(st.state, GovState::Ready);
    assert_eq!(st.tables.len(), 2);

    coord.gov_run(&id).unwrap();
    let states = c.wait(&id);
    for s in &states {
        assert!(matches!(s, GovState::Done { .. }), "{states:?}");
    }

    // The control unit gets the identity numbers, nothing else.
    let got = c
        .client("kontroll")
        .gov_fetch(&id, "kontroll", &k.kontroll)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "ids");
    assert_eq!(ids_of(&got[0].1.to_csv_string().unwrap()), want_ids);
    // Försäkringskassan and the municipality get the same count and sum.
    for (who, key) in [("fk", &k.fk), ("kommun", &k.kommun)] {
        let got = c.client(who).gov_fetch(&id, who, key).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "persons");
        assert_eq!(
            got[0].1.to_csv_string().unwrap(),
            format!("personer,fk_belopp\n{},{want_sum}\n", want_ids.len())
        );
    }

    // A non-recipient's certificate cannot fetch, not even naming the
    // recipient; the recipient cannot fetch someone else's outputs.
    for (tls, recipient) in [
        ("intruder", "kontroll"),
        ("fk", "kontroll"),
        ("kommun", "fk"),
    ] {
        let e = c
            .client(tls)
            .gov_fetch(&id, recipient, &k.kontroll)
            .unwrap_err();
        assert!(
            e.to_string().contains("is not the recipient"),
            "{tls} fetching {recipient}'s: {e}"
        );
    }
    // A second party's key cannot open the recipient's sealed boxes.
    let mut conn = c.client("kontroll").connect(0).unwrap();
    let (resp, payload) = conn
        .ask(
            &Request::GovFetch {
                analysis: id.to_hex(),
                recipient: "kontroll".into(),
            },
            &[],
        )
        .unwrap();
    assert!(matches!(
        resp,
        Response::Sealed {
            node: 0,
            outputs: 1
        }
    ));
    let boxes: Vec<SealedOutput> = serde_json::from_slice(&payload).unwrap();
    assert!(kuvert_gov::seal::open_for(&k.kontroll, &id, 0, &boxes[0].sealed).is_ok());
    for other in [&k.fk, &k.kommun] {
        assert!(kuvert_gov::seal::open_for(other, &id, 0, &boxes[0].sealed).is_err());
    }

    // After the run: uploads refused, a second run is a no-op.
    let e = refused(
        c.client("fk")
            .gov_upload(&id, "fk", &k.fk, "fk", &fk_table(&fk)),
    );
    assert!(e.contains("it is already run; nothing was sent"), "{e}");
    assert!(coord.gov_run(&id).unwrap()[0].contains("already run"));

    // Receipts: one per node, verifying against that node's key only.
    for i in 0..3 {
        let st = coord.gov_status(i, &id).unwrap();
        let r = st.receipt.expect("a deletion receipt");
        assert_eq!(r.node as usize, i);
        assert_eq!(r.analysis_id, id);
        assert_eq!(r.deleted.tables, vec!["ek".to_string(), "fk".to_string()]);
        assert!(r.deleted.intermediate_state && r.deleted.session_keys);
        r.verify(&gov::node_public_key(&c.pki, i).unwrap()).unwrap();
        assert!(r
            .verify(&gov::node_public_key(&c.pki, (i + 1) % 3).unwrap())
            .is_err());
        let stats = st.stats.expect("costs of the run");
        assert!(stats.rounds > 0 && stats.bytes_sent > 0);
    }

    // No share file remains; the sealed results and the receipt do.
    for i in 0..3 {
        let all = files(&c.data_dir(i));
        let shares: Vec<_> = all
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("shares"))
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert!(shares.is_empty(), "node {i} kept {shares:?}");
        let adir = c.data_dir(i).join("analyses").join(id.to_hex());
        for f in ["spec.toml", "approvals.json", "state.json", "receipt.json"] {
            assert!(adir.join(f).exists(), "node {i}: {f}");
        }
        assert!(adir.join("results/kontroll.sealed.json").exists());
    }

    // No cleartext input value anywhere under the node directories: the
    // identity numbers (12 and 10 digits), amounts, dates and texts.
    let mut needles: Vec<String> = Vec::new();
    for f in &fk {
        needles.extend([f.pnr.clone(), f.pnr[2..].to_string(), f.belopp.to_string()]);
        needles.extend([f.forman.to_string(), f.fran.to_string(), f.till.to_string()]);
    }
    for e in &ek {
        needles.extend([e.pnr.clone(), e.pnr[2..].to_string(), e.belopp.to_string()]);
        needles.extend([e.fran.to_string(), e.till.to_string()]);
    }
    needles.push(want_sum.to_string());
    for i in 0..3 {
        for (path, bytes) in files(&c.data_dir(i)) {
            for n in &needles {
                assert!(
                    !contains(&bytes, n.as_bytes()),
                    "{} contains the cleartext value {n}",
                    path.display()
                );
            }
        }
    }

    // The audit logs verify, agree across nodes and hold the steps.
    let report = kuvert_gov::verify_dir(c.dir.path()).unwrap();
    assert!(report.ok(), "{:?}", report.cross);
    assert_eq!(report.chains.len(), 3);
    let actions: Vec<&str> = report
        .records()
        .iter()
        .map(|r| r.2.action.as_str())
        .collect();
    for a in [
        "analysis_accepted",
        "shares_received",
        "job_started",
        "result_sealed",
        "shares_deleted",
        "receipt_signed",
        "job_finished",
        "results_fetched",
    ] {
        let n = actions.iter().filter(|x| **x == a).count();
        assert!(n >= 3, "{a} logged {n} times: {actions:?}");
    }
    assert!(actions.contains(&"request_refused"));

    // Every receipt is pinned in its node's log (its audit head is that
    // node's shares_deleted record) and every shares_deleted record has
    // its receipt.
    let strict = kuvert_gov::VerifyOptions {
        receipts: Vec::new(),
        require_receipts: true,
    };
    let report = kuvert_gov::verify_dir_with(c.dir.path(), &strict).unwrap();
    assert!(report.ok(), "{:?} {:?}", report.cross, report.missing);
    assert_eq!(report.receipts.len(), 3);
    // Every sealed result carries its node's head (its result_sealed record).
    assert!(report.releases.len() >= 3, "{:?}", report.releases);
    for n in 0..3u8 {
        assert!(report
            .releases
            .iter()
            .any(|r| r.node == n && r.analysis_id == id));
    }

    // A copy of the logs and receipts with node 1's log cut after its
    // job_started record (its sealed results and deletion gone): still a
    // valid chain, but the receipt and the other logs show the cut.
    let copy = tempfile::tempdir().unwrap();
    for (path, bytes) in files(c.dir.path()) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("audit")
            || name.starts_with("receipt")
            || name.ends_with(".sealed.json")
        {
            let to = copy.path().join(path.strip_prefix(c.dir.path()).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(&to, bytes).unwrap();
        }
    }
    assert!(kuvert_gov::verify_dir_with(copy.path(), &strict)
        .unwrap()
        .ok());
    let log = files(copy.path())
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.file_name().unwrap().to_string_lossy() == "audit-node1.log")
        .expect("node 1's log");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let started = lines
        .iter()
        .position(|l| l.contains("\"action\":\"job_started\""))
        .unwrap();
    assert!(lines[started + 1..]
        .iter()
        .any(|l| l.contains("\"action\":\"result_sealed\"")));
    std::fs::write(&log, format!("{}\n", lines[..=started].join("\n"))).unwrap();
    let report = kuvert_gov::verify_dir_with(copy.path(), &strict).unwrap();
    assert!(!report.ok());
    assert!(report.chains.iter().all(|ch| ch.result.is_ok()));
    let all = report.missing.join("\n");
    assert!(
        report.missing.iter().any(|m| m.starts_with("node1:")
            && m.contains("receipt.json")
            && m.contains("the log was cut")),
        "{all}"
    );
    assert!(
        report.missing.iter().any(|m| m.starts_with("node1:")
            && m.contains("sealed result")
            && m.contains("kontroll.sealed.json")
            && m.contains("the log was cut")),
        "{all}"
    );
    for what in ["result_sealed", "shares_deleted", "job_finished"] {
        assert!(
            report
                .missing
                .iter()
                .any(|m| m.starts_with("node1:") && m.contains(what)),
            "{what}: {all}"
        );
    }
    assert!(
        report.missing.iter().all(|m| m.starts_with("node1:")),
        "{all}"
    );
}

#[test]
fn altered_specs_forged_approvals_and_bad_uploads_are_refused_with_the_reason() {
    let k = keys();
    let (fk, ek) = data();
    let c = Cluster::start(10);
    let coord = c.client("coordinator");
    let text = spec_text(&k, AT_JOB_END);
    let (id, approvals) = approve(&text, &k);

    // Upload before registration.
    let e = refused(
        c.client("fk")
            .gov_upload(&id, "fk", &k.fk, "fk", &fk_table(&fk)),
    );
    // The client asks every node first and sends nothing.
    assert!(
        e.contains("takes no uploads at node 0: it is not registered there"),
        "{e}"
    );
    // A client that sends anyway is refused by the node itself.
    let mut conn = c.client("fk").connect(0).unwrap();
    let (resp, _) = conn
        .ask(
            &Request::GovUpload {
                analysis: id.to_hex(),
                contributor: "fk".into(),
                table: "fk".into(),
                schema: FK_SCHEMA.into(),
                rows: 0,
                signature: "00".repeat(64),
            },
            &[],
        )
        .unwrap();
    assert!(
        matches!(&resp, Response::Error { message }
            if message.contains("not registered at node 0: all contributors must approve first")),
        "{resp:?}"
    );

    // One byte of the spec changed: every node refuses (the approvals are
    // for the original id).
    let altered = text.replacen("Find persons", "Find Persons", 1);
    for i in 0..3 {
        let mut conn = coord.connect(i).unwrap();
        let (resp, _) = conn
            .ask(
                &Request::Register {
                    spec: altered.clone(),
                    approvals: approvals.clone(),
                },
                &[],
            )
            .unwrap();
        match resp {
            Response::Error { message } => {
                assert!(
                    message.contains(&format!("node {i} refuses the approvals")),
                    "{message}"
                )
            }
            other => panic!("node {i} accepted an altered spec: {other:?}"),
        }
    }
    // A forged approval (the signature of another message).
    let mut forged = approvals.clone();
    forged[1].signature = sign_approval(&AnalysisId([7; 32]), "kommun", &k.kommun).signature;
    let e = refused(coord.register(&text, &forged));
    assert!(e.contains("refuses the approvals"), "{e}");
    // The kommun's approval signed by someone else's key.
    let mut wrong_key = approvals.clone();
    wrong_key[1] = sign_approval(&id, "kommun", &k.kontroll);
    refused(coord.register(&text, &wrong_key));
    // A missing approval.
    let e = refused(coord.register(&text, &approvals[..1]));
    assert!(e.contains("kommun"), "{e}");
    assert_eq!(coord.gov_status(0, &id).unwrap().state, GovState::Unknown);

    coord.register(&text, &approvals).unwrap();
    let fk_client = c.client("fk");
    // A party that is not a contributor.
    let e = refused(fk_client.gov_upload(&id, "kontroll", &k.kontroll, "fk", &fk_table(&fk)));
    assert!(e.contains("\"kontroll\" is not a contributor"), "{e}");
    // Another contributor's table.
    let e = refused(fk_client.gov_upload(&id, "fk", &k.fk, "ek", &ek_table(&ek)));
    assert!(
        e.contains("contributed by \"kommun\", not by \"fk\""),
        "{e}"
    );
    // A table the spec does not have.
    let e = refused(fk_client.gov_upload(&id, "fk", &k.fk, "extra", &ek_table(&ek)));
    assert!(e.contains("has no table \"extra\""), "{e}");
    // The right table with the wrong columns.
    let e = refused(fk_client.gov_upload(&id, "fk", &k.fk, "fk", &ek_table(&ek)));
    assert!(
        e.contains(&format!(
            "the spec says {FK_SCHEMA}, the upload has {EK_SCHEMA}"
        )),
        "{e}"
    );
    // Signed with a key that is not the contributor's.
    let e = refused(fk_client.gov_upload(&id, "fk", &k.kommun, "fk", &fk_table(&fk)));
    assert!(
        e.contains("does not verify against the key in the spec"),
        "{e}"
    );
    // A signature over other shares (the payload altered in transit).
    let t = fk_table(&fk);
    let shares = kuvert_data::share_table(
        &t,
        kuvert_data::share::ShareKind::Arithmetic,
        &mut ChaCha20Rng::seed_from_u64(9),
    );
    let s = &shares[0];
    let mut payload = Vec::new();
    for col in &s.columns {
        payload.extend(kuvert_node::wire::words_to_bytes(&col.a));
        payload.extend(kuvert_node::wire::words_to_bytes(&col.b));
    }
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(&payload).into();
    let msg =
        kuvert_node::wire::upload_message(&id, 0, "fk", "fk", FK_SCHEMA, s.rows as u64, &digest);
    let sig = k.fk.sign_upload(&msg).unwrap();
    payload[3] ^= 1;
    let mut conn = fk_client.connect(0).unwrap();
    let (resp, _) = conn
        .ask(
            &Request::GovUpload {
                analysis: id.to_hex(),
                contributor: "fk".into(),
                table: "fk".into(),
                schema: FK_SCHEMA.into(),
                rows: s.rows as u64,
                signature: gov::encode_hex(&sig.to_bytes()),
            },
            &payload,
        )
        .unwrap();
    assert!(
        matches!(&resp, Response::Error { message } if message.contains("does not verify")),
        "{resp:?}"
    );
    // The same message sent to node 1 (signatures are per node).
    payload[3] ^= 1;
    let mut conn = fk_client.connect(1).unwrap();
    let (resp, _) = conn
        .ask(
            &Request::GovUpload {
                analysis: id.to_hex(),
                contributor: "fk".into(),
                table: "fk".into(),
                schema: FK_SCHEMA.into(),
                rows: s.rows as u64,
                signature: gov::encode_hex(&sig.to_bytes()),
            },
            &payload,
        )
        .unwrap();
    assert!(
        matches!(&resp, Response::Error { message } if message.contains("to node 1 does not verify")),
        "{resp:?}"
    );

    // Run with a table missing names it.
    fk_client
        .gov_upload(&id, "fk", &k.fk, "fk", &fk_table(&fk))
        .unwrap();
    let e = refused(coord.gov_run(&id));
    assert!(e.contains("tables not uploaded yet: ek"), "{e}");
    // Nothing of the refused requests was stored.
    for i in 0..3 {
        let st = coord.gov_status(i, &id).unwrap();
        assert_eq!(st.tables.len(), 1, "node {i}: {:?}", st.tables);
        assert!(
            matches!(st.state, GovState::Waiting { ref missing } if missing == &["ek".to_string()])
        );
    }
    // The audit logs verify and record the refusals, without values.
    let report = kuvert_gov::verify_dir(c.dir.path()).unwrap();
    assert!(report.ok());
    assert!(report
        .records()
        .iter()
        .any(|r| r.2.action == "request_refused"));
}

#[test]
fn a_failed_run_releases_nothing_keeps_inputs_and_a_restarted_node_resumes() {
    let k = keys();
    let (fk, ek) = data();
    let (want_ids, _) = oracle(&fk, &ek);
    let mut c = Cluster::start(2);
    let coord = c.client("coordinator");
    let text = spec_text(&k, AT_JOB_END);
    let (id, approvals) = approve(&text, &k);
    coord.register(&text, &approvals).unwrap();
    upload_both(&c, &k, &id, &fk, &ek);

    // Node 2 goes down; the other two are told to run and cannot.
    c.stop_node(2);
    let all = c.client("coordinator");
    for i in 0..2 {
        let mut conn = all.connect(i).unwrap();
        let (resp, _) = conn
            .ask(
                &Request::GovRun {
                    analysis: id.to_hex(),
                    coordinator_head: None,
                },
                &[],
            )
            .unwrap();
        assert!(matches!(resp, Response::Ok { .. }), "{resp:?}");
    }
    let start = Instant::now();
    for i in 0..2 {
        loop {
            let st = coord.gov_status(i, &id).unwrap();
            if let GovState::Failed {
                reason,
                inputs_kept,
                ..
            } = &st.state
            {
                assert!(reason.contains("cannot reach the other nodes"), "{reason}");
                assert!(inputs_kept);
                assert!(st.receipt.is_none());
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{:?}", st.state);
            std::thread::sleep(Duration::from_millis(50));
        }
        // Nothing released: no sealed result, and the recipient is refused.
        let adir = c.data_dir(i).join("analyses").join(id.to_hex());
        assert!(!adir.join("results").exists());
        assert!(adir.join("shares/fk.shares").exists() && adir.join("shares/ek.shares").exists());
        let mut conn = c.client("kontroll").connect(i).unwrap();
        let (resp, _) = conn
            .ask(
                &Request::GovFetch {
                    analysis: id.to_hex(),
                    recipient: "kontroll".into(),
                },
                &[],
            )
            .unwrap();
        assert!(
            matches!(&resp, Response::Error { message } if message.contains("no results yet")),
            "{resp:?}"
        );
    }

    // Node 2 had died in the middle of a run: on restart it says so, and
    // keeps the registered analysis and its shares.
    let state = c
        .data_dir(2)
        .join("analyses")
        .join(id.to_hex())
        .join("state.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    v["state"] = serde_json::json!({"state": "running", "output": "ids", "done": 1, "total": 2});
    std::fs::write(&state, serde_json::to_vec(&v).unwrap()).unwrap();
    // ... after sealing a box that it had not yet released.
    let partial = state.with_file_name("results");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("kontroll.sealed.json"), "[]").unwrap();
    c.start_node(2);
    assert!(!partial.exists(), "a box of an unfinished run was kept");
    let st = coord.gov_status(2, &id).unwrap();
    assert_eq!(
        st.state,
        GovState::Failed {
            reason: "node restarted during the run".into(),
            refused: false,
            inputs_kept: true
        }
    );
    assert_eq!(st.tables.len(), 2);

    // Run again with all three: the kept inputs give the right answer.
    coord.gov_run(&id).unwrap();
    let states = c.wait(&id);
    assert!(
        states.iter().all(|s| matches!(s, GovState::Done { .. })),
        "{states:?}"
    );
    let got = c
        .client("kontroll")
        .gov_fetch(&id, "kontroll", &k.kontroll)
        .unwrap();
    assert_eq!(ids_of(&got[0].1.to_csv_string().unwrap()), want_ids);
    let report = kuvert_gov::verify_dir(c.dir.path()).unwrap();
    assert!(report.ok(), "{:?}", report.cross);
}

#[test]
fn past_the_deadline_everything_is_deleted_with_a_receipt_and_refused() {
    let k = keys();
    let (fk, _) = data();
    let c = Cluster::start(10);
    let coord = c.client("coordinator");
    // Shares are kept until the deadline, which has passed.
    let text = spec_text(
        &k,
        "delete_shares_at_job_end = false\nresult_deadline = \"2026-01-01T00:00:00Z\"",
    );
    let (id, approvals) = approve(&text, &k);
    coord.register(&text, &approvals).unwrap();
    c.client("fk")
        .gov_upload(&id, "fk", &k.fk, "fk", &fk_table(&fk))
        .unwrap();
    // Past its deletion time no node runs it, even before the sweeper came.
    let e = refused(coord.gov_run(&id));
    assert!(e.contains("deletion time"), "{e}");
    for i in 0..3 {
        let n = c.nodes[i].as_ref().unwrap();
        assert_eq!(n.gov().sweep(), vec![id]);
        assert!(n.gov().sweep().is_empty());
        let st = coord.gov_status(i, &id).unwrap();
        assert_eq!(st.state, GovState::Expired);
        let r = st.receipt.expect("a receipt for the deleted shares");
        assert_eq!(r.deleted.tables, vec!["fk".to_string()]);
        r.verify(&gov::node_public_key(&c.pki, i).unwrap()).unwrap();
        assert!(!c
            .data_dir(i)
            .join("analyses")
            .join(id.to_hex())
            .join("shares")
            .exists());
    }
    let e = refused(
        c.client("fk")
            .gov_upload(&id, "fk", &k.fk, "fk", &fk_table(&fk)),
    );
    assert!(e.contains("expired"), "{e}");
    let e = c
        .client("kontroll")
        .gov_fetch(&id, "kontroll", &k.kontroll)
        .unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    let e = refused(coord.gov_run(&id));
    assert!(e.contains("expired"), "{e}");
    assert!(kuvert_gov::verify_dir(c.dir.path()).unwrap().ok());
}

/// `result_deadline = 1` (day): the job never ends (node 2 never ran it,
/// nodes 0 and 1 failed with the inputs kept), and still every node
/// deletes the shares one day after registration, with a signed receipt.
#[test]
fn an_analysis_whose_job_never_ends_is_deleted_at_the_time_fixed_at_registration() {
    let k = keys();
    let (fk, ek) = data();
    let mut c = Cluster::start(2);
    let coord = c.client("coordinator");
    let before = time::OffsetDateTime::now_utc();
    let text = spec_text(&k, "delete_shares_at_job_end = false\nresult_deadline = 1");
    let (id, approvals) = approve(&text, &k);
    coord.register(&text, &approvals).unwrap();
    let after = time::OffsetDateTime::now_utc();
    upload_both(&c, &k, &id, &fk, &ek);

    // Nodes 0 and 1 are told to run without node 2: they fail, inputs kept.
    c.stop_node(2);
    for i in 0..2 {
        let mut conn = coord.connect(i).unwrap();
        let (resp, _) = conn
            .ask(
                &Request::GovRun {
                    analysis: id.to_hex(),
                    coordinator_head: None,
                },
                &[],
            )
            .unwrap();
        assert!(matches!(resp, Response::Ok { .. }), "{resp:?}");
    }
    let start = Instant::now();
    for i in 0..2 {
        while !matches!(
            coord.gov_status(i, &id).unwrap().state,
            GovState::Failed {
                inputs_kept: true,
                ..
            }
        ) {
            assert!(start.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    c.start_node(2);
    assert_eq!(coord.gov_status(2, &id).unwrap().state, GovState::Ready);

    let day = time::Duration::days(1);
    for i in 0..3 {
        let n = c.nodes[i].as_ref().unwrap();
        // Every node fixed the time at registration: one day later.
        let by = coord.gov_status(i, &id).unwrap().delete_by.unwrap();
        let t = time::OffsetDateTime::parse(&by, &time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(before + day <= t && t <= after + day, "{by}");
        // Not yet.
        assert!(n.gov().sweep().is_empty());
        assert!(n.gov().sweep_at(t - time::Duration::seconds(1)).is_empty());
        // Two days on.
        assert_eq!(n.gov().sweep_at(before + day * 2), vec![id]);
        assert!(n.gov().sweep_at(before + day * 2).is_empty());
        let st = coord.gov_status(i, &id).unwrap();
        assert_eq!(st.state, GovState::Expired);
        let r = st.receipt.expect("a receipt for the deleted shares");
        assert_eq!(r.deleted.tables, vec!["ek".to_string(), "fk".to_string()]);
        r.verify(&gov::node_public_key(&c.pki, i).unwrap()).unwrap();
        let adir = c.data_dir(i).join("analyses").join(id.to_hex());
        assert!(!adir.join("shares").exists());
        assert!(!adir.join("results").exists());
        assert!(adir.join("receipt.json").exists());
    }
    let e = refused(
        c.client("fk")
            .gov_upload(&id, "fk", &k.fk, "fk", &fk_table(&fk)),
    );
    assert!(e.contains("expired"), "{e}");
    let e = refused(coord.gov_run(&id));
    assert!(e.contains("expired"), "{e}");
    // A restart keeps it expired, with its receipt.
    c.stop_node(1);
    c.start_node(1);
    let st = coord.gov_status(1, &id).unwrap();
    assert_eq!(st.state, GovState::Expired);
    assert!(st.receipt.is_some());
    let report = kuvert_gov::verify_dir(c.dir.path()).unwrap();
    assert!(report.ok(), "{:?}", report.cross);
}

#[test]
fn a_node_with_a_trust_list_refuses_analyses_with_other_keys() {
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node-0.gov.key");
    let only_fk = [k.fk.public().ed25519];
    let g = gov::Gov::open(
        0,
        &dir.path().join("data"),
        &key,
        false,
        Some(&only_fk),
        pins_fixed(0),
    )
    .unwrap();
    let text = spec_text(&k, AT_JOB_END);
    let (_, approvals) = approve(&text, &k);
    let e = g.register("coordinator", &text, &approvals).unwrap_err();
    assert!(
        e.to_string()
            .contains("does not trust contributor \"kommun\""),
        "{e}"
    );
    // The key file was created on first start, with its public part.
    assert!(key.exists() && dir.path().join("node-0.gov.pub").exists());
    let both = [k.fk.public().ed25519, k.kommun.public().ed25519];
    let g = gov::Gov::open(
        0,
        &dir.path().join("data"),
        &key,
        true,
        Some(&both),
        pins_fixed(0),
    )
    .unwrap();
    g.register("coordinator", &text, &approvals).unwrap();
}

#[test]
fn concurrent_analyses_asked_in_different_orders_each_get_their_own_answer() {
    let k = keys();
    let (fk, ek) = data();
    let c = Cluster::start(10);
    let coord = c.client("coordinator");
    // Six analyses over different municipal rows, so that an answer
    // computed on another analysis' inputs would show.
    let subsets = [0usize, 1, 3, 4, 2, 0];
    let mut ids = Vec::new();
    for (j, from) in subsets.iter().enumerate() {
        let text = spec_text(&k, AT_JOB_END).replacen(
            "name = \"overlapping-benefits\"",
            &format!("name = \"ob-{j}\""),
            1,
        );
        let (id, approvals) = approve(&text, &k);
        coord.register(&text, &approvals).unwrap();
        c.client("fk")
            .gov_upload(&id, "fk", &k.fk, "fk", &fk_table(&fk))
            .unwrap();
        c.client("kommun")
            .gov_upload(&id, "kommun", &k.kommun, "ek", &ek_table(&ek[*from..]))
            .unwrap();
        ids.push(id);
    }
    // Each node is asked in another order.
    let orders = [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 4, 0, 5, 1, 3]];
    for (i, order) in orders.iter().enumerate() {
        let mut conn = coord.connect(i).unwrap();
        // The coordinator's head, for the nodes to countersign.
        let head = kuvert_gov::receipt::AuditHead {
            records: 7,
            hash: "ab".repeat(32),
        };
        for j in order {
            let (resp, _) = conn
                .ask(
                    &Request::GovRun {
                        analysis: ids[*j].to_hex(),
                        coordinator_head: Some(head.clone()),
                    },
                    &[],
                )
                .unwrap();
            assert!(matches!(resp, Response::Ok { .. }), "{resp:?}");
        }
    }
    for (j, from) in subsets.iter().enumerate() {
        let states = c.wait(&ids[j]);
        assert!(
            states.iter().all(|s| matches!(s, GovState::Done { .. })),
            "analysis {j}: {states:?}"
        );
        let (want, _) = oracle(&fk, &ek[*from..]);
        let got = c
            .client("kontroll")
            .gov_fetch(&ids[j], "kontroll", &k.kontroll)
            .unwrap();
        assert_eq!(
            ids_of(&got[0].1.to_csv_string().unwrap()),
            want,
            "analysis {j}"
        );
    }
    assert!(kuvert_gov::verify_dir(c.dir.path()).unwrap().ok());
    // A head sent by anyone but the coordinator is not recorded.
    for i in 0..3 {
        let mut conn = c.client("kommun").connect(i).unwrap();
        let (resp, _) = conn
            .ask(
                &Request::GovRun {
                    analysis: ids[0].to_hex(),
                    coordinator_head: Some(kuvert_gov::receipt::AuditHead {
                        records: 1,
                        hash: "ef".repeat(32),
                    }),
                },
                &[],
            )
            .unwrap();
        assert!(matches!(resp, Response::Ok { .. }), "{resp:?}");
    }
    // Each node countersigned the coordinator's head once per analysis,
    // with its receipt key.
    for i in 0..3 {
        let log = c.data_dir(i).join(format!("audit-node{i}.log"));
        let heads: Vec<_> = kuvert_gov::verify_file(&log)
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "coordinator_head")
            .collect();
        assert_eq!(heads.len(), ids.len(), "node {i}");
        for r in heads {
            let id = r.analysis_id.unwrap();
            assert_eq!(r.details["records"], 7);
            let receipt: kuvert_gov::DeletionReceipt = serde_json::from_slice(
                &std::fs::read(
                    c.data_dir(i)
                        .join("analyses")
                        .join(id.to_hex())
                        .join("receipt.json"),
                )
                .unwrap(),
            )
            .unwrap();
            let key = ed25519_dalek::VerifyingKey::from_bytes(
                &kuvert_node::gov::decode_hex::<32>(&receipt.node_public_key).unwrap(),
            )
            .unwrap();
            let head = kuvert_gov::receipt::AuditHead {
                records: 7,
                hash: "ab".repeat(32),
            };
            assert!(kuvert_gov::receipt::verify_coordinator_head(
                &key,
                &id,
                &head,
                r.details["signature"].as_str().unwrap()
            ));
        }
    }
}

#[test]
fn an_output_promised_as_differentially_private_without_noise_in_its_sql_is_refused() {
    let k = keys();
    let text = format!(
        "{}\n[[dp]]\noutput = \"persons\"\nepsilon = 1.0\n",
        spec_text(&k, AT_JOB_END)
    );
    let (_, approvals) = approve(&text, &k);
    let dir = tempfile::tempdir().unwrap();
    let g = gov::Gov::open(
        1,
        dir.path(),
        &dir.path().join("k.gov.key"),
        false,
        None,
        pins_fixed(1),
    )
    .unwrap();
    let e = g.register("coordinator", &text, &approvals).unwrap_err();
    assert!(
        e.to_string().contains("output \"persons\"")
            && e.to_string().contains("promises differential privacy"),
        "{e}"
    );
    // Refused before anything was stored, and the refusal is logged.
    assert!(!dir.path().join("analyses").exists());
    let records = kuvert_gov::verify_file(&dir.path().join("audit-node1.log")).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, "request_refused");
}

// ------------------------------------------------------- privacy budgets

/// A spec with one DP output (a noisy count over `table`, contributed by
/// fk) and one exact output over kommun's table; `name`, the table name,
/// fk's organisation and the dataset vary to try the bypasses.
fn dp_spec(
    k: &Keys,
    name: &str,
    table: &str,
    org: &str,
    dataset: Option<&str>,
    eps: f64,
) -> String {
    let ds = dataset
        .map(|d| format!(", dataset = \"{d}\""))
        .unwrap_or_default();
    let mut s = format!(
        r#"name = "{name}"
purpose = "Test the privacy budget."
protocol = "rss3-semi-honest"
contact = "test@example.invalid"
[legal_basis]
reference = "test"
text = "test"
[retention]
delete_shares_at_job_end = true
result_deadline = 30
[[contributors]]
id = "fk"
organisation = "{org}"
controller = "{org}"
public_key = "{fk}"
tables = [{{ name = "{table}", schema = "pnr:idnr,belopp:int"{ds} }}]
[[contributors]]
id = "kommun"
organisation = "Kommunen"
controller = "Kommunen"
public_key = "{kommun}"
tables = [{{ name = "ek", schema = "pnr:idnr,belopp:int" }}]
[[recipients]]
id = "kontroll"
organisation = "Kontroll"
kem_public_key = "{kem}"
[[recipients.outputs]]
name = "noisy"
sql = "SELECT COUNT(*) AS n, SUM(belopp) AS s FROM {table} WITH PRIVACY (epsilon = {eps}, delta = 1e-6, person = pnr, max_rows = 1, lo = 0, hi = 1000)"
[[recipients.outputs]]
name = "exact"
sql = "SELECT COUNT(*) AS n FROM ek"
[[dp]]
output = "noisy"
epsilon = {eps}
delta = 1e-6
"#,
        fk = k.fk.public().ed25519,
        kommun = k.kommun.public().ed25519,
        kem = k.kontroll.kem_public().unwrap().to_base64(),
    );
    s = kuvert_gov::templates::set_nodes(&s, &current_nodes()).unwrap();
    s
}

fn small(schema: &str, rows: &[(String, i64)]) -> Table {
    let mut csv = "pnr,belopp\n".to_string();
    for (p, b) in rows {
        csv.push_str(&format!("{p},{b}\n"));
    }
    table(&csv, schema)
}

/// Register, upload both tables, run; the nodes' states.
fn run_dp(c: &Cluster, k: &Keys, text: &str, table_name: &str) -> (AnalysisId, Vec<GovState>) {
    let spec = AnalysisSpec::parse(text, "t.toml", Validation::Strict).unwrap();
    let (id, approvals) = approve(text, k);
    assert_eq!(id, spec.id());
    let coord = c.client("coordinator");
    coord.register(text, &approvals).unwrap();
    let rows: Vec<(String, i64)> = (0..5)
        .map(|i| (pnr(1960 + i, 1, 2, 100 + i), 10 * i as i64))
        .collect();
    c.client("fk")
        .gov_upload(
            &id,
            "fk",
            &k.fk,
            table_name,
            &small("pnr:idnr,belopp:int", &rows),
        )
        .unwrap();
    c.client("kommun")
        .gov_upload(
            &id,
            "kommun",
            &k.kommun,
            "ek",
            &small("pnr:idnr,belopp:int", &rows),
        )
        .unwrap();
    coord.gov_run(&id).unwrap();
    (id, c.wait(&id))
}

fn set_limit(c: &Cluster, key: &PartyKey, dataset: &str, eps: f64, version: u64) -> Vec<String> {
    let l = kuvert_gov::BudgetLimit::sign(key, dataset, eps, 1e-4, version, "2026-12-07T00:00:00Z")
        .unwrap();
    c.client("fk").gov_budget(&l).unwrap()
}

#[test]
fn the_nodes_enforce_the_contributors_budgets_against_every_bypass() {
    let k = keys();
    let c = Cluster::start(10);
    let coord = c.client("coordinator");

    // No limit signed yet: a DP analysis is refused at registration, by
    // every node, naming the dataset.
    let first = dp_spec(&k, "budget-1", "fk", "Försäkringskassan", None, 1.0);
    let (_, approvals) = approve(&first, &k);
    let e = refused(coord.register(&first, &approvals));
    assert!(
        e.contains("no privacy budget") && e.contains("\"default\""),
        "{e}"
    );

    // fk signs a limit of ε = 2.5 on its default dataset; each node says
    // what remains.
    for m in set_limit(&c, &k.fk, "default", 2.5, 1) {
        assert!(m.contains("remaining ε = 2.5"), "{m}");
    }
    // A forged (altered) limit is refused by the nodes.
    let mut forged = kuvert_gov::BudgetLimit::sign(&k.fk, "default", 2.5, 1e-4, 2, "t").unwrap();
    forged.epsilon = 100.0;
    let e = refused(c.client("fk").gov_budget(&forged));
    assert!(e.contains("does not verify"), "{e}");

    // Run 1 (ε = 1) and a repeat under another name (ε = 1): both charged.
    let (_, states) = run_dp(&c, &k, &first, "fk");
    assert!(
        states.iter().all(|s| matches!(s, GovState::Done { .. })),
        "{states:?}"
    );
    let repeat = dp_spec(&k, "budget-2", "fk", "Försäkringskassan", None, 1.0);
    let (_, states) = run_dp(&c, &k, &repeat, "fk");
    assert!(
        states.iter().all(|s| matches!(s, GovState::Done { .. })),
        "{states:?}"
    );
    for i in 0..3 {
        let l = coord.gov_ledger(i, Some(&k.fk.public().ed25519)).unwrap();
        assert_eq!(l.len(), 1);
        assert!((l[0].spent().0 - 2.0).abs() < 1e-9, "node {i}: {:?}", l[0]);
    }

    // A third release: every bypass is refused by the nodes with what remains.
    let remaining = "remaining ε = 0.5";
    // (a) the same analysis again under a new name: averaging is stopped.
    let again = dp_spec(&k, "budget-3", "fk", "Försäkringskassan", None, 1.0);
    // (b) the table renamed, (c) the organisation renamed.
    let renamed = dp_spec(&k, "budget-4", "fk_ny", "Försäkringskassan", None, 1.0);
    let org = dp_spec(&k, "budget-5", "fk", "FK (new name)", None, 1.0);
    for text in [&again, &renamed, &org] {
        let (_, approvals) = approve(text, &k);
        // (d) registered directly at the nodes (no coordinator involved:
        // this client is the coordinator's certificate, but nothing it
        // decided matters).
        let e = refused(coord.register(text, &approvals));
        assert!(e.contains(remaining) && e.contains("does not allow"), "{e}");
    }
    // (e) a dataset the contributor never gave a limit.
    let fresh = dp_spec(
        &k,
        "budget-6",
        "fk",
        "Försäkringskassan",
        Some("fresh"),
        1.0,
    );
    let (_, approvals) = approve(&fresh, &k);
    let e = refused(coord.register(&fresh, &approvals));
    assert!(
        e.contains("no privacy budget") && e.contains("\"fresh\""),
        "{e}"
    );
    // (f) omitting the [[dp]] entry is refused before the budget (compile).
    let no_dp = again.replace(
        "[[dp]]\noutput = \"noisy\"\nepsilon = 1\ndelta = 1e-6\n",
        "",
    );
    assert_ne!(no_dp, again, "the [[dp]] entry was not removed");
    let (_, approvals) = approve(&no_dp, &k);
    let e = refused(coord.register(&no_dp, &approvals));
    assert!(
        e.contains("no [[dp]] entry") && e.contains(remaining),
        "{e}"
    );

    // What fits is still allowed: ε = 0.5 exactly.
    let last = dp_spec(&k, "budget-7", "fk", "Försäkringskassan", None, 0.5);
    let (_, states) = run_dp(&c, &k, &last, "fk");
    assert!(
        states.iter().all(|s| matches!(s, GovState::Done { .. })),
        "{states:?}"
    );

    // A lower limit with a higher version takes effect; an older (more
    // generous) one cannot be replayed.
    set_limit(&c, &k.fk, "default", 2.5, 2);
    let e = c
        .client("fk")
        .gov_budget(&kuvert_gov::BudgetLimit::sign(&k.fk, "default", 9.0, 1e-4, 1, "t").unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("higher --version"), "{e}");

    // The charges are in every node's audit log, and the ledger survives
    // a restart.
    let mut c = c;
    c.stop_node(1);
    c.start_node(1);
    let l = c
        .client("coordinator")
        .gov_ledger(1, Some(&k.fk.public().ed25519))
        .unwrap();
    assert!((l[0].spent().0 - 2.5).abs() < 1e-9, "{:?}", l[0]);
    assert_eq!(l[0].charges.len(), 3);
    let records = kuvert_gov::verify_file(&c.data_dir(1).join("audit-node1.log")).unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.action == "budget_charged")
            .count(),
        3
    );
    // kommun's exact output was never charged to anything of kommun's.
    assert!(c
        .client("coordinator")
        .gov_ledger(0, Some(&k.kommun.public().ed25519))
        .unwrap()
        .is_empty());
}

#[test]
fn a_run_refused_by_the_ledger_at_start_uses_no_share_and_keeps_the_inputs() {
    // Two analyses registered while both fit; the first run spends the
    // budget, so the second is refused when its computation would start
    // (GovRun), before any share is used, and its inputs stay.
    let k = keys();
    let c = Cluster::start(10);
    set_limit(&c, &k.fk, "default", 1.0, 1);
    let a = dp_spec(&k, "race-a", "fk", "Försäkringskassan", None, 1.0);
    let b = dp_spec(&k, "race-b", "fk", "Försäkringskassan", None, 1.0);
    let coord = c.client("coordinator");
    let (id_b, approvals_b) = approve(&b, &k);
    coord.register(&b, &approvals_b).unwrap();
    let (_, states) = run_dp(&c, &k, &a, "fk");
    assert!(
        states.iter().all(|s| matches!(s, GovState::Done { .. })),
        "{states:?}"
    );
    let rows: Vec<(String, i64)> = (0..5)
        .map(|i| (pnr(1960 + i, 1, 2, 100 + i), i as i64))
        .collect();
    c.client("fk")
        .gov_upload(
            &id_b,
            "fk",
            &k.fk,
            "fk",
            &small("pnr:idnr,belopp:int", &rows),
        )
        .unwrap();
    c.client("kommun")
        .gov_upload(
            &id_b,
            "kommun",
            &k.kommun,
            "ek",
            &small("pnr:idnr,belopp:int", &rows),
        )
        .unwrap();
    let e = refused(coord.gov_run(&id_b));
    assert!(e.contains("remaining ε = 0"), "{e}");
    for i in 0..3 {
        let st = coord.gov_status(i, &id_b).unwrap();
        assert_eq!(st.state, GovState::Ready, "node {i}");
        let l = coord.gov_ledger(i, None).unwrap();
        assert_eq!(l[0].charges.len(), 1, "node {i}");
    }
    assert!(c
        .data_dir(0)
        .join("analyses")
        .join(id_b.to_hex())
        .join("shares")
        .exists());
}

#[test]
fn inconsistent_input_shares_stop_the_job_at_every_node_before_anything_is_computed() {
    use kuvert_data::ShareKind;
    use sha2::Digest;
    let k = keys();
    let (fk, ek) = data();
    let c = Cluster::start(10);
    let text = spec_text(&k, AT_JOB_END);
    let (id, approvals) = approve(&text, &k);
    let coord = c.client("coordinator");
    coord.register(&text, &approvals).unwrap();
    c.client("kommun")
        .gov_upload(&id, "kommun", &k.kommun, "ek", &ek_table(&ek))
        .unwrap();
    // fk's client (or a node) breaks the replication: node 1's first
    // component differs from node 0's copy of it. Each upload is still
    // correctly signed, so every node accepts its part.
    let table = fk_table(&fk);
    let mut shares = kuvert_data::share_table(
        &table,
        ShareKind::Arithmetic,
        &mut ChaCha20Rng::seed_from_u64(9),
    );
    shares[1].columns[0].a[0] ^= 1;
    let client = c.client("fk");
    for (i, s) in shares.iter().enumerate() {
        let schema = s.schema.to_compact();
        let mut payload = Vec::new();
        for col in &s.columns {
            payload.extend(kuvert_node::wire::words_to_bytes(&col.a));
            payload.extend(kuvert_node::wire::words_to_bytes(&col.b));
        }
        let digest: [u8; 32] = sha2::Sha256::digest(&payload).into();
        let msg = kuvert_node::wire::upload_message(
            &id,
            i as u8,
            "fk",
            "fk",
            &schema,
            s.rows as u64,
            &digest,
        );
        let sig = k.fk.sign_upload(&msg).unwrap();
        let mut conn = client.connect(i).unwrap();
        let (resp, _) = conn
            .ask(
                &Request::GovUpload {
                    analysis: id.to_hex(),
                    contributor: "fk".into(),
                    table: "fk".into(),
                    schema,
                    rows: s.rows as u64,
                    signature: gov::encode_hex(&sig.to_bytes()),
                },
                &payload,
            )
            .unwrap();
        assert!(matches!(resp, Response::Ok { .. }), "node {i}: {resp:?}");
    }
    coord.gov_run(&id).unwrap();
    let states = c.wait(&id);
    for (i, s) in states.iter().enumerate() {
        match s {
            GovState::Failed { reason, .. } => {
                assert!(reason.contains("do not agree"), "node {i}: {reason}")
            }
            other => panic!("node {i} did not stop: {other:?}"),
        }
    }
    // Nothing was released to anyone.
    let e = c
        .client("kontroll")
        .gov_fetch(&id, "kontroll", &k.kontroll)
        .unwrap_err();
    assert!(matches!(e, ClientError::Refused { .. }), "{e:?}");
}

// ------------------------------------------------------- malicious protocol

/// The same analysis approved once with `protocol = "rss3-semi-honest"` and
/// once with `protocol = "rss3-malicious"` (two ids: the protocol is part of
/// what is approved): both give the oracle's answer; the malicious one runs
/// with its checks at every node (many more rounds: AND proofs, MAC checks,
/// verified opens).
#[test]
fn an_analysis_approved_for_the_malicious_protocol_runs_checked_at_every_node() {
    let k = keys();
    let (fk, ek) = data();
    let (want_ids, want_sum) = oracle(&fk, &ek);
    let c = Cluster::start(10);
    let coord = c.client("coordinator");
    let mut rounds = Vec::new();
    let mut ids = Vec::new();
    for protocol in ["rss3-semi-honest", "rss3-malicious"] {
        let text = spec_text(&k, AT_JOB_END).replace(
            "protocol = \"rss3-semi-honest\"",
            &format!("protocol = \"{protocol}\""),
        );
        assert!(text.contains(&format!("protocol = \"{protocol}\"")));
        let (id, approvals) = approve(&text, &k);
        coord.register(&text, &approvals).unwrap();
        upload_both(&c, &k, &id, &fk, &ek);
        coord.gov_run(&id).unwrap();
        let states = c.wait(&id);
        for s in &states {
            assert!(matches!(s, GovState::Done { .. }), "{protocol}: {states:?}");
        }
        let got = c
            .client("kontroll")
            .gov_fetch(&id, "kontroll", &k.kontroll)
            .unwrap();
        assert_eq!(
            ids_of(&got[0].1.to_csv_string().unwrap()),
            want_ids,
            "{protocol}"
        );
        let got = c.client("fk").gov_fetch(&id, "fk", &k.fk).unwrap();
        assert_eq!(
            got[0].1.to_csv_string().unwrap(),
            format!("personer,fk_belopp\n{},{want_sum}\n", want_ids.len()),
            "{protocol}"
        );
        let per_node: Vec<u64> = (0..3)
            .map(|i| {
                coord
                    .gov_status(i, &id)
                    .unwrap()
                    .stats
                    .expect("stats")
                    .rounds
            })
            .collect();
        assert!(per_node.iter().all(|r| *r == per_node[0]), "{per_node:?}");
        rounds.push(per_node[0]);
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    assert!(rounds[1] > 2 * rounds[0], "rounds {rounds:?}");
    // Each node committed the malicious job only after the signed
    // agreement on its outcome (kuvert_node::agree), and logged it; the
    // semi-honest job has none.
    for i in 0..3 {
        let records =
            kuvert_gov::verify_file(&c.data_dir(i).join(format!("audit-node{i}.log"))).unwrap();
        let agreed: Vec<_> = records
            .iter()
            .filter(|r| r.action == "outcome_agreed")
            .collect();
        assert_eq!(agreed.len(), 1, "node {i}");
        assert_eq!(agreed[0].analysis_id, Some(ids[1]));
        let d = serde_json::to_string(&agreed[0].details).unwrap();
        assert!(d.contains("\"commit\":\"true\""), "node {i}: {d}");
        assert!(
            d.contains("confirmed that every check passed"),
            "node {i}: {d}"
        );
    }
}
