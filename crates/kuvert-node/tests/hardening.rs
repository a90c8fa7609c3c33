//! Nodes that serve governed analyses only unless `dev_mode = true`, and
//! denial of service at the nodes: stalled and trickling clients on the
//! client port and on the node-to-node port do not stop a job; connections
//! are capped per IP address; idle clients and slow handshakes are cut.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuvert_data::{CsvOptions, Date};
use kuvert_node::client::{ClientError, Nodes};
use kuvert_node::config::NodeConfig;
use kuvert_node::server::Node;
use kuvert_node::wire::{GovState, JobState, Program, Request, Response};

const CONTRIBUTOR: &str = "contributor";
const RECIPIENT: &str = "recipient";

fn free_port() -> SocketAddr {
    kuvert_node::local::free_loopback_port().unwrap()
}

/// A deployment PKI with the two parties of these tests.
fn make_pki(dir: &Path) -> PathBuf {
    let pki = dir.join("pki");
    kuvert_net::pki::init(
        &pki,
        &kuvert_net::pki::InitOptions {
            parties: vec![CONTRIBUTOR.into(), RECIPIENT.into()],
            validity_days: 1,
            ..Default::default()
        },
    )
    .unwrap();
    pki
}

/// `node.toml` of node `i` with the given addresses and extra lines.
fn node_toml(i: usize, listen: SocketAddr, mpc: [SocketAddr; 3], extra: &str) -> String {
    format!(
        "id = {i}\nlisten = \"{listen}\"\nnodes = [\"{}\", \"{}\", \"{}\"]\npki_dir = \"pki\"\n\
         data_dir = \"node{i}\"\nio_timeout_secs = 10\nconnect_timeout_secs = 5\nsweep_secs = 3600\n{extra}",
        mpc[0], mpc[1], mpc[2]
    )
}

/// A node served in this process; shut down when dropped.
struct Running {
    node: Arc<Node>,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.node.shutdown();
    }
}

/// Node `i` from its `node{i}.toml` in `dir`, serving on its `listen`.
fn serve(dir: &Path, i: usize) -> Running {
    let cfg = NodeConfig::load(&dir.join(format!("node{i}.toml"))).unwrap();
    let addr = cfg.listen;
    let node = Node::new(cfg).unwrap();
    let listener = TcpListener::bind(addr).unwrap();
    let n = Arc::clone(&node);
    std::thread::spawn(move || n.serve_on(listener));
    Running { node, addr }
}

/// Node 0 of a deployment in `dir` (PKI made by [`make_pki`]), alone, with
/// `extra` lines in its `node.toml`. The other two nodes' addresses are
/// free ports nobody listens on.
fn single_node(dir: &Path, extra: &str) -> Running {
    let mpc = [free_port(), free_port(), free_port()];
    let toml = node_toml(0, free_port(), mpc, extra);
    std::fs::write(dir.join("node0.toml"), toml).unwrap();
    serve(dir, 0)
}

/// A production node (no `dev_mode`: three operators' federation, client
/// CAs; built as `kuvert_node::operators::setup` does for `kuvert demo`),
/// alone, with the contributor's client for it. Its data directory is
/// `dir/node0`.
fn production_node(dir: &Path) -> (Running, Nodes) {
    let api = [free_port(), free_port(), free_port()];
    let dep = kuvert_node::operators::setup(
        &dir.join("ops"),
        &kuvert_node::operators::Plan {
            name: "hardening".into(),
            operators: ["Operator A", "Operator B", "Operator C"].map(String::from),
            mpc: [free_port(), free_port(), free_port()],
            api,
            parties: vec![CONTRIBUTOR.into(), RECIPIENT.into()],
            days: 1,
        },
    )
    .unwrap();
    let toml = format!(
        "id = 0\nlisten = \"{}\"\npki_dir = \"{}\"\ndata_dir = \"node0\"\n\
         federation = \"{}\"\nclient_cas = [\"{}\", \"{}\"]\nsweep_secs = 3600\n",
        api[0],
        dep.node_dirs[0].display(),
        dep.federation.display(),
        dep.parties.join("ca.crt").display(),
        dep.service.join("ca.crt").display(),
    );
    std::fs::write(dir.join("node0.toml"), toml).unwrap();
    let node = serve(dir, 0);
    let nodes = Nodes::pinned(
        &dep.parties,
        CONTRIBUTOR,
        api,
        dep.fingerprints.clone(),
        "the test federation",
    )
    .unwrap();
    (node, nodes)
}

/// Three dev-mode nodes on loopback, as `kuvert run` starts them.
struct DevCluster {
    dir: tempfile::TempDir,
    client: [SocketAddr; 3],
    mpc: [SocketAddr; 3],
    _nodes: Vec<Running>,
}

impl DevCluster {
    fn start() -> DevCluster {
        let dir = tempfile::tempdir().unwrap();
        make_pki(dir.path());
        let client = [free_port(), free_port(), free_port()];
        let mpc = [free_port(), free_port(), free_port()];
        for (i, listen) in client.iter().enumerate() {
            let toml = node_toml(i, *listen, mpc, "dev_mode = true\n");
            std::fs::write(dir.path().join(format!("node{i}.toml")), toml).unwrap();
        }
        let nodes = (0..3).map(|i| serve(dir.path(), i)).collect();
        DevCluster {
            dir,
            client,
            mpc,
            _nodes: nodes,
        }
    }

    fn nodes(&self, party: &str) -> Nodes {
        let mut n = Nodes::new(&self.dir.path().join("pki"), party, self.client).unwrap();
        n.timeout = Duration::from_secs(30);
        n
    }
}

fn table(values: &[i64]) -> kuvert_data::Table {
    let opts = CsvOptions {
        delimiter: b',',
        today: Date {
            year: 2026,
            month: 1,
            day: 1,
        },
    };
    let mut csv = "v\n".to_string();
    for v in values {
        csv.push_str(&format!("{v}\n"));
    }
    let schema = "v:int".parse().unwrap();
    kuvert_data::read_csv(csv.as_bytes(), "t.csv", &schema, &opts).unwrap()
}

/// The four ungoverned requests (an upload of 2 rows of `v:int`).
fn ungoverned() -> Vec<(Request, Vec<u8>)> {
    let job = || "j1".to_string();
    vec![
        (
            Request::Upload {
                job: job(),
                table: "t".into(),
                schema: "v:int".into(),
                rows: 2,
            },
            vec![7u8; 32],
        ),
        (
            Request::Run {
                job: job(),
                program: Program::Sum {
                    table: "t".into(),
                    column: "v".into(),
                },
                recipient: CONTRIBUTOR.into(),
            },
            Vec::new(),
        ),
        (Request::Status { job: job() }, Vec::new()),
        (Request::Fetch { job: job() }, Vec::new()),
    ]
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

// --------------------------------------------------------------- dev mode

#[test]
fn a_production_node_refuses_the_ungoverned_api_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, nodes) = production_node(dir.path());
    for (req, payload) in ungoverned() {
        let (resp, out) = nodes.connect(0).unwrap().ask(&req, &payload).unwrap();
        match resp {
            Response::Error { message } => {
                assert!(
                    message.contains("serves only governed analyses")
                        && message.contains("kuvert run")
                        && message.contains("dev_mode = true"),
                    "{req:?}: {message}"
                );
            }
            other => panic!("{req:?} was served: {other:?}"),
        }
        assert!(out.is_empty());
    }
    // Through the client library too: a clear refusal naming the node.
    match nodes.status(0, "j1") {
        Err(ClientError::Refused { node: 0, message }) => {
            assert!(message.contains("governed"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing stored or started: no job files, no job directory.
    let data = dir.path().join("node0");
    assert!(!data.join("jobs").exists());
    let shares: Vec<_> = files(&data)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".shares"))
        .collect();
    assert!(shares.is_empty(), "{shares:?}");
    // The governed API is unaffected.
    let id = kuvert_gov::AnalysisId([0u8; 32]);
    assert_eq!(nodes.gov_status(0, &id).unwrap().state, GovState::Unknown);
}

#[test]
fn a_dev_mode_node_serves_the_same_calls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let node = single_node(dir.path(), "dev_mode = true\n");
    let nodes = Nodes::new(&pki, CONTRIBUTOR, [node.addr; 3]).unwrap();
    let answers: Vec<Response> = ungoverned()
        .into_iter()
        .map(|(req, payload)| nodes.connect(0).unwrap().ask(&req, &payload).unwrap().0)
        .collect();
    assert!(
        matches!(&answers[0], Response::Ok { message } if message.contains("stored its shares")),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[1], Response::Ok { message } if message.contains("started")),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[2], Response::Status { node: 0, .. }),
        "{answers:?}"
    );
    // No result yet (the other two nodes do not exist): an answer about
    // the job, not the governed-only refusal.
    assert!(
        matches!(&answers[3], Response::Error { message } if message.contains("has no result")),
        "{answers:?}"
    );
    assert!(dir.path().join("node0/jobs/j1/t.shares").is_file());
}

#[test]
fn dev_mode_needs_loopback_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("node0.toml");
    let lo = [free_port(), free_port(), free_port()];
    let cases = [
        ("0.0.0.0:7100".parse().unwrap(), lo),
        (lo[0], ["10.1.2.3:7000".parse().unwrap(), lo[1], lo[2]]),
    ];
    for (listen, mpc) in cases {
        std::fs::write(&p, node_toml(0, listen, mpc, "dev_mode = true\n")).unwrap();
        let e = NodeConfig::load(&p).unwrap_err();
        assert!(
            e.contains("dev_mode = true is for a throw-away local cluster"),
            "{e}"
        );
        // Without dev_mode the same addresses are a valid production config.
        std::fs::write(&p, node_toml(0, listen, mpc, "")).unwrap();
        assert!(!NodeConfig::load(&p).unwrap().dev_mode);
    }
    std::fs::write(&p, node_toml(0, lo[0], lo, "dev_mode = true\n")).unwrap();
    assert!(NodeConfig::load(&p).unwrap().dev_mode);
}

// ------------------------------------------------------- denial of service

/// Connections that stall: silent ones, one with a partial TLS
/// ClientHello, and one that trickles a byte per second, until `stop`.
struct Stallers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    held: Vec<TcpStream>,
}

/// A TLS record header announcing a 512-byte handshake message, then the
/// start of a ClientHello.
const PARTIAL_HELLO: [u8; 9] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];

impl Stallers {
    fn new() -> Stallers {
        Stallers {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Stall on `addr` now (it must be listening).
    fn at(&mut self, addr: SocketAddr) {
        self.held.push(TcpStream::connect(addr).unwrap());
        let mut partial = TcpStream::connect(addr).unwrap();
        partial.write_all(&PARTIAL_HELLO).unwrap();
        self.held.push(partial);
        let mut trickle = TcpStream::connect(addr).unwrap();
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            for b in PARTIAL_HELLO.iter().cycle() {
                if stop.load(Ordering::SeqCst) || trickle.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
    }

    /// Stall on `addr` as soon as it listens (a node binds its
    /// node-to-node port only while a job sets up): keep `n` silent
    /// connections and one partial ClientHello open there until stopped.
    fn when_listening(&mut self, addr: SocketAddr, n: usize) -> Arc<AtomicBool> {
        let stop = Arc::clone(&self.stop);
        let connected = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&connected);
        self.threads.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if held.len() < n + 1 {
                    if let Ok(mut t) = TcpStream::connect_timeout(&addr, Duration::from_millis(50))
                    {
                        if held.len() == n {
                            let _ = t.write_all(&PARTIAL_HELLO);
                            flag.store(true, Ordering::SeqCst);
                        }
                        held.push(t);
                        continue;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
        connected
    }
}

impl Drop for Stallers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.held.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Ask node `i` alone to run `program` for the recipient.
fn run_on(nodes: &Nodes, i: usize, job: &str, program: &Program) {
    let req = Request::Run {
        job: job.into(),
        program: program.clone(),
        recipient: RECIPIENT.into(),
    };
    match nodes.connect(i).unwrap().ask(&req, &[]).unwrap().0 {
        Response::Ok { .. } => {}
        other => panic!("node {i} did not start the job: {other:?}"),
    }
}

#[test]
fn slow_clients_do_not_stop_a_job() {
    let cluster = DevCluster::start();
    let mut stall = Stallers::new();
    // The client ports: silent, partial and trickling connections.
    for addr in cluster.client {
        stall.at(addr);
    }
    let values = [5i64, -40, 12, 999, 3, 7];
    cluster
        .nodes(CONTRIBUTOR)
        .upload("j1", "t", &table(&values))
        .unwrap();
    // The node-to-node ports: nodes 1 and 2 bind theirs when they start
    // the job; stalled connections get there before node 0 (which dials
    // both) is told to start, so each acceptor sees them first.
    let recipient = cluster.nodes(RECIPIENT);
    let program = Program::Sum {
        table: "t".into(),
        column: "v".into(),
    };
    let ready: Vec<_> = [1, 2]
        .map(|i| stall.when_listening(cluster.mpc[i], 3))
        .into();
    let started = Instant::now();
    run_on(&recipient, 1, "j1", &program);
    run_on(&recipient, 2, "j1", &program);
    while !ready.iter().all(|r| r.load(Ordering::SeqCst)) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no stalled connection reached the node-to-node ports"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The session setup must not wait for a stalled handshake: accepted
    // one at a time, the first stalled socket alone would take the nodes'
    // whole 5 s connect timeout and fail the job.
    run_on(&recipient, 0, "j1", &program);
    recipient
        .wait("j1", Duration::from_secs(30), |_| {})
        .unwrap();
    let got = recipient.fetch("j1").unwrap();
    assert_eq!(got, vec![values.iter().sum::<i64>() as u64]);
    for i in 0..3 {
        assert!(matches!(
            recipient.status(i, "j1").unwrap(),
            JobState::Done { .. }
        ));
    }
}

/// Whether the node closed `t` (end of stream or reset) within `wait`;
/// `false` when it is still open, waiting for more.
fn closed_by_node(t: &mut TcpStream, wait: Duration) -> bool {
    t.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 64];
    match t.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connections_over_the_per_address_cap_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let node = single_node(
        dir.path(),
        "dev_mode = true\nmax_connections_per_peer = 3\n",
    );
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(node.addr).unwrap())
        .collect();
    // The fourth from 127.0.0.1 is closed at once, before any TLS.
    let mut fourth = TcpStream::connect(node.addr).unwrap();
    assert!(closed_by_node(&mut fourth, Duration::from_secs(5)));
    // The first three are still waiting for their handshakes.
    for t in &mut open {
        assert!(!closed_by_node(t, Duration::from_millis(300)));
    }
    // A closed one gives its place back.
    open.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut t = TcpStream::connect(node.addr).unwrap();
        if !closed_by_node(&mut t, Duration::from_millis(300)) {
            break;
        }
        assert!(Instant::now() < deadline, "the place was not given back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_clients_and_slow_handshakes_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let node = single_node(
        dir.path(),
        "dev_mode = true\nclient_idle_timeout_secs = 1\n",
    );
    let id = kuvert_gov::AnalysisId([0u8; 32]);
    let req = Request::GovStatus {
        analysis: id.to_hex(),
    };
    let nodes = Nodes::new(&pki, RECIPIENT, [node.addr; 3]).unwrap();
    let mut conn = nodes.connect(0).unwrap();
    assert!(matches!(
        conn.ask(&req, &[]).unwrap().0,
        Response::GovStatus(_)
    ));
    // Busy is fine: a request every half second keeps the connection.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        conn.ask(&req, &[]).unwrap();
    }
    // Idle is not.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(conn.ask(&req, &[]).is_err());
    // A handshake that trickles a byte every half second (each read is in
    // time) is closed at the handshake deadline of 10 s.
    let mut t = TcpStream::connect(node.addr).unwrap();
    let started = Instant::now();
    t.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let closed = loop {
        let b = PARTIAL_HELLO[started.elapsed().as_millis() as usize / 500 % PARTIAL_HELLO.len()];
        if t.write_all(&[b]).is_err() {
            break true;
        }
        let mut r = [0u8; 8];
        match t.read(&mut r) {
            Ok(0) => break true,
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break true
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let took = started.elapsed();
    assert!(closed, "the trickling handshake was never closed");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "closed after {took:?}"
    );
}
