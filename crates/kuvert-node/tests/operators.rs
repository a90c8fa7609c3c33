//! Three independent operators: each has its own CA and made its node's key
//! on "its" machine (request/sign), the federation is signed by all three,
//! and the nodes run in production mode. Each attack a hostile reviewer
//! would try is its own test; the governed flow end to end through such a
//! federation is `tests/gov.rs` (its cluster is built the same way).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kuvert_net::pki::{self, CertRole};
use kuvert_net::{tls, Federation, Identity};
use kuvert_node::client::{ClientError, Nodes};
use kuvert_node::config::NodeConfig;
use kuvert_node::operators::{self, Deployment, Plan};
use kuvert_node::server::Node;
use kuvert_node::wire::{Program, Request, Response};

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Fed {
    _dir: tempfile::TempDir,
    dep: Deployment,
    api: [SocketAddr; 3],
    nodes: Vec<Arc<Node>>,
}

impl Drop for Fed {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.shutdown();
        }
    }
}

fn federation() -> Fed {
    let dir = tempfile::tempdir().unwrap();
    let api = [free_port(), free_port(), free_port()];
    let dep = operators::setup(
        &dir.path().join("ops"),
        &Plan {
            name: "attack-test".into(),
            operators: ["Operator A", "Operator B", "Operator C"].map(String::from),
            mpc: [free_port(), free_port(), free_port()],
            api,
            parties: vec!["fk".into()],
            days: 30,
        },
    )
    .unwrap();
    let mut nodes = Vec::new();
    for (i, addr) in api.iter().enumerate() {
        let cfg = NodeConfig::load(&dep.node_config(i)).unwrap();
        assert!(!cfg.dev_mode, "the operators' nodes are production nodes");
        let node = Node::new(cfg).unwrap();
        let l = TcpListener::bind(addr).unwrap();
        let n = Arc::clone(&node);
        std::thread::spawn(move || n.serve_on(l));
        nodes.push(node);
    }
    Fed {
        _dir: dir,
        dep,
        api,
        nodes,
    }
}

/// A fresh key and a certificate for `role` from the CA in `ca_dir`: what
/// an attacker holding that CA's key can make.
fn forged(ca_dir: &Path, role: CertRole, out: &Path) -> Identity {
    pki::request(out, &role, &["127.0.0.1".into()], false).unwrap();
    let l = pki::PkiLayout::new(out);
    pki::sign_request(
        ca_dir,
        &l.csr_for(&role),
        &role,
        &l.cert_for(&role),
        30,
        false,
    )
    .unwrap();
    Identity::load(&l.cert_for(&role), &l.key_for(&role)).unwrap()
}

/// A TLS server at a fresh port presenting `identity` to anyone with a
/// certificate from `client_ca`; counts the application bytes it receives.
fn impostor_server(identity: &Identity, client_ca: &Path) -> (SocketAddr, Arc<AtomicUsize>) {
    let roots = pki::load_roots(client_ca).unwrap();
    let config = tls::server_config(roots, identity).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    let g = Arc::clone(&got);
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let Ok((conn, tcp, _)) = tls::accept(tcp, &config, Duration::from_secs(5)) else {
                continue;
            };
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let _ = s.sock.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                g.fetch_add(n, Ordering::SeqCst);
            }
        }
    });
    (addr, got)
}

fn share_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("shares") {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn every_operator_has_its_own_ca_and_no_key_left_its_machine() {
    let f = federation();
    let fed = Federation::load_verified(&f.dep.federation).unwrap();
    // Three different CAs, each node's certificate chains to its own.
    let cas: std::collections::BTreeSet<Vec<u8>> =
        (0..3).map(|i| fed.ca_certs(i)[0].to_vec()).collect();
    assert_eq!(cas.len(), 3);
    for i in 0..3 {
        // The node directory holds its own key and no CA key; the CA
        // directory holds no node key.
        let nd = &f.dep.node_dirs[i];
        assert!(nd.join(format!("node-{i}.key")).exists());
        assert!(!nd.join("ca.key").exists());
        let ca = &f.dep.operator_cas[i];
        assert!(ca.join("ca.key").exists());
        assert!(!ca.join(format!("node-{i}.key")).exists());
        let cert = pki::load_certs(&nd.join(format!("node-{i}.crt"))).unwrap();
        assert_eq!(
            pki::spki_fingerprint(&cert[0]).unwrap(),
            fed.nodes[i].fingerprint
        );
    }
    // A federation changed after signing does not verify.
    let text = std::fs::read_to_string(&f.dep.federation).unwrap();
    let changed = text.replacen(&f.api[1].to_string(), "203.0.113.7:7100", 1);
    let e = Federation::parse(&changed, "changed")
        .unwrap()
        .verify()
        .unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
}

#[test]
fn a_party_certificate_calling_the_ungoverned_api_of_a_production_node_is_refused() {
    let f = federation();
    let fk = Nodes::pinned(
        &f.dep.parties,
        "fk",
        f.api,
        f.dep.fingerprints.clone(),
        "the test",
    )
    .unwrap();
    for (req, what) in [
        (
            Request::Run {
                job: "j".into(),
                program: Program::Query {
                    sql: "SELECT COUNT(*) AS n FROM t".into(),
                    malicious: false,
                },
                recipient: "fk".into(),
            },
            "Run",
        ),
        (Request::Fetch { job: "j".into() }, "Fetch"),
        (Request::Status { job: "j".into() }, "Status"),
    ] {
        for i in 0..3 {
            let mut c = fk.connect(i).unwrap();
            match c.ask(&req, &[]).unwrap().0 {
                Response::Error { message } => {
                    assert!(
                        message.contains("governed"),
                        "{what} at node {i}: {message}"
                    )
                }
                other => panic!("{what} at node {i} was served: {other:?}"),
            }
        }
    }
    // An ungoverned upload announcing 1 GiB of shares is refused from its
    // header: the answer comes without one payload byte sent.
    let id = Identity::load_party(&f.dep.parties, "fk").unwrap();
    let config = tls::pinned_client_config(f.dep.fingerprints.clone(), "the test", &id).unwrap();
    let tcp = TcpStream::connect(f.api[0]).unwrap();
    let (conn, tcp) = tls::connect(
        tcp,
        &config,
        tls::node_server_name(0),
        Duration::from_secs(5),
    )
    .unwrap();
    let mut st = rustls::StreamOwned::new(conn, tcp);
    st.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let h = serde_json::to_vec(&Request::Upload {
        job: "j".into(),
        table: "t".into(),
        schema: "n:int".into(),
        rows: 1 << 27,
    })
    .unwrap();
    use std::io::Write;
    st.write_all(&(h.len() as u32).to_be_bytes()).unwrap();
    st.write_all(&h).unwrap();
    st.write_all(&(1u64 << 30).to_be_bytes()).unwrap();
    st.flush().unwrap();
    match kuvert_node::wire::read_msg::<_, Response>(&mut st, 1 << 20)
        .unwrap()
        .0
    {
        Response::Error { message } => assert!(message.contains("governed"), "{message}"),
        other => panic!("an ungoverned upload was accepted: {other:?}"),
    }
    for i in 0..3 {
        assert_eq!(share_files(&f.dep.node_dirs[i].join("data")), 0);
    }
}

#[test]
fn an_impostor_node_from_a_stolen_operator_ca_gets_no_share() {
    let f = federation();
    let tmp = tempfile::tempdir().unwrap();
    // Whoever holds operator B's CA key issues itself a certificate named
    // node-1 with a new key, and the coordinator (or a DNS attacker)
    // points the contributor there.
    let evil = forged(&f.dep.operator_cas[1], CertRole::Node(1), tmp.path());
    let (evil_addr, received) = impostor_server(&evil, &f.dep.parties.join("ca.crt"));
    let addrs = [f.api[0], evil_addr, f.api[2]];
    let fk = Nodes::pinned(
        &f.dep.parties,
        "fk",
        addrs,
        f.dep.fingerprints.clone(),
        "the approved analysis",
    )
    .unwrap();
    let key = kuvert_gov::PartyKey::generate("fk");
    let schema: kuvert_data::Schema = "n:int".parse().unwrap();
    let table =
        kuvert_data::read_csv("n\n41\n".as_bytes(), "t.csv", &schema, &Default::default()).unwrap();
    let id = kuvert_gov::AnalysisId([7; 32]);
    let e = fk.gov_upload(&id, "fk", &key, "t", &table).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, ClientError::Unreachable { node: 1, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("not the node the contributors approved"),
        "{msg}"
    );
    assert!(msg.contains(&f.dep.fingerprints[1]), "{msg}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "the impostor received bytes"
    );
    for i in 0..3 {
        assert_eq!(share_files(&f.dep.node_dirs[i].join("data")), 0);
    }
}

#[test]
fn a_certificate_from_operator_a_claiming_operator_bs_node_is_refused_by_every_peer() {
    let f = federation();
    let tmp = tempfile::tempdir().unwrap();
    // Operator A's CA makes a certificate that says node-1 (operator B's).
    let evil = forged(&f.dep.operator_cas[0], CertRole::Node(1), tmp.path());
    // As a client of each node: the handshake is refused, so no request is
    // ever answered.
    let config =
        tls::pinned_client_config(f.dep.fingerprints.clone(), "the federation", &evil).unwrap();
    for i in 0..3 {
        let tcp = TcpStream::connect(f.api[i]).unwrap();
        let answered = match tls::connect(
            tcp,
            &config,
            tls::node_server_name(i),
            Duration::from_secs(5),
        ) {
            Err(_) => false,
            Ok((conn, tcp)) => {
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let _ = s.sock.set_read_timeout(Some(Duration::from_secs(5)));
                let sent = kuvert_node::wire::write_msg(
                    &mut s,
                    &Request::GovStatus {
                        analysis: "00".repeat(32),
                    },
                    &[],
                );
                sent.is_ok() && kuvert_node::wire::read_msg::<_, Response>(&mut s, 1 << 20).is_ok()
            }
        };
        assert!(!answered, "node {i} served a forged node certificate");
    }
    // As a server: a node dialling "node-1" refuses it (the MPC links use
    // this configuration), and so does a party pinned by the spec.
    let (evil_addr, _) = impostor_server(&evil, &f.dep.operator_cas[0].join("ca.crt"));
    for i in [0, 2] {
        let node_tls = NodeConfig::load(&f.dep.node_config(i))
            .unwrap()
            .tls()
            .unwrap();
        let tcp = TcpStream::connect(evil_addr).unwrap();
        let e = tls::connect(
            tcp,
            &node_tls.client,
            tls::node_server_name(1),
            Duration::from_secs(5),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(e.to_string().contains("impostor refused"), "node {i}: {e}");
    }
}

#[test]
fn a_node_refuses_to_start_with_a_federation_that_is_not_signed_by_all_three() {
    let f = federation();
    let text = std::fs::read_to_string(&f.dep.federation).unwrap();
    let mut fed = Federation::parse(&text, "x").unwrap();
    fed.signatures.retain(|s| s.node != 2);
    std::fs::write(&f.dep.federation, fed.to_toml()).unwrap();
    let e = NodeConfig::load(&f.dep.node_config(0))
        .unwrap()
        .tls()
        .map(|_| ())
        .unwrap_err();
    assert!(e.contains("node 2's signature is missing"), "{e}");
    // And a production node without any federation does not start.
    let p = f.dep.node_config(1);
    let cfg = std::fs::read_to_string(&p).unwrap();
    let without: String = cfg
        .lines()
        .filter(|l| !l.starts_with("federation"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &format!(
            "nodes = [\"{}\", \"{}\", \"{}\"]\n",
            free_port(),
            free_port(),
            free_port()
        );
    std::fs::write(&p, without).unwrap();
    let e = NodeConfig::load(&p).unwrap().tls().map(|_| ()).unwrap_err();
    assert!(e.contains("no federation file"), "{e}");
}
