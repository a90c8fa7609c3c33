//! The real `NodeApi` (TLS as party "coordinator", the nodes' wire
//! protocol) against three minimal TLS servers that speak the node wire
//! format: one answers, one refuses, one is down.

use std::io::BufReader;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_coord::{NodeApi, NodeError, TlsNodes};
use kuvert_net::pki::{self, InitOptions, PeerIdentity};
use kuvert_net::tls::{self, NodeTls};
use kuvert_node::wire::{self, GovState, GovStatus, Request, Response};

/// Serve node `i` on a free port and record (peer identity, request).
/// Node 1 refuses everything; with `silent`, the node completes the TLS
/// handshake, reads the request and never answers.
fn node(
    dir: &std::path::Path,
    i: usize,
    seen: Arc<Mutex<Vec<(PeerIdentity, Request)>>>,
    silent: bool,
) -> SocketAddr {
    let cfg = NodeTls::load(dir, i).unwrap().server;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in l.incoming() {
            let Ok(tcp) = tcp else { return };
            let Ok((conn, tcp, peer)) = tls::accept(tcp, &cfg, Duration::from_secs(5)) else {
                continue;
            };
            let mut s = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let Ok((req, _)) = wire::read_msg::<_, Request>(&mut s, 1 << 20) else {
                continue;
            };
            seen.lock().unwrap().push((peer, req.clone()));
            if silent {
                std::thread::sleep(Duration::from_secs(30));
                continue;
            }
            let resp = match (i, &req) {
                (1, _) => Response::Error {
                    message: "not registered at node 1: all contributors must approve first".into(),
                },
                (_, Request::GovStatus { analysis }) => Response::GovStatus(Box::new(GovStatus {
                    node: i,
                    analysis: analysis.clone(),
                    state: GovState::Waiting {
                        missing: vec!["ek".into()],
                    },
                    tables: vec![],
                    progress: None,
                    stats: None,
                    receipt: None,
                    delete_by: None,
                })),
                _ => Response::Ok {
                    message: "ok".into(),
                },
            };
            let _ = wire::write_msg(s.get_mut(), &resp, &[]);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_nodes_speak_the_wire_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    pki::init(
        &pki_dir,
        &InitOptions {
            nodes: 3,
            parties: vec!["coordinator".into()],
            validity_days: 2,
            force: false,
        },
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let a0 = node(&pki_dir, 0, seen.clone(), false);
    let a1 = node(&pki_dir, 1, seen.clone(), false);
    // Node 2 is down: a port nobody listens on.
    let a2 = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let nodes = TlsNodes::new(&pki_dir, None, [a0, a1, a2], Duration::from_secs(2)).unwrap();
    let id = "ab".repeat(32);
    let st = nodes.status(&id).await;
    match &st[0] {
        Ok(s) => {
            assert_eq!(s.node, 0);
            assert_eq!(s.analysis, id);
            assert_eq!(
                s.state,
                GovState::Waiting {
                    missing: vec!["ek".into()]
                }
            );
        }
        Err(e) => panic!("node 0: {e}"),
    }
    assert_eq!(
        st[1],
        Err(NodeError::Refused(
            "not registered at node 1: all contributors must approve first".into()
        ))
    );
    assert!(
        matches!(&st[2], Err(NodeError::Unreachable(m)) if m.contains("node 2") && m.contains("unreachable")),
        "{:?}",
        st[2]
    );
    let r = nodes.register("name = \"x\"", &[]).await;
    assert_eq!(r[0], Ok(()));
    assert!(matches!(r[1], Err(NodeError::Refused(_))));
    assert!(matches!(r[2], Err(NodeError::Unreachable(_))));
    let head = kuvert_gov::receipt::AuditHead {
        records: 3,
        hash: "cd".repeat(32),
    };
    let r = nodes.run(&id, Some(head.clone())).await;
    assert_eq!(r[0], Ok(()));

    // A node that takes the request and then says nothing: one timeout
    // for it, the other nodes' answers are not lost.
    let quiet = node(&pki_dir, 2, seen.clone(), true);
    let nodes2 = TlsNodes::new(&pki_dir, None, [a0, a1, quiet], Duration::from_secs(1)).unwrap();
    let t0 = std::time::Instant::now();
    let st = nodes2.status(&id).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(st[0].is_ok());
    assert!(matches!(st[1], Err(NodeError::Refused(_))));
    assert!(
        matches!(&st[2], Err(NodeError::Unreachable(m)) if m.contains("no answer within 1 s")),
        "{:?}",
        st[2]
    );

    // The nodes saw the coordinator's own identity and exactly these requests.
    let seen = seen.lock().unwrap();
    assert!(seen
        .iter()
        .all(|(p, _)| *p == PeerIdentity::Party("coordinator".into())));
    let reqs: Vec<&Request> = seen.iter().filter(|(_, _)| true).map(|(_, r)| r).collect();
    assert!(reqs.contains(&&Request::GovStatus {
        analysis: id.clone()
    }));
    assert!(reqs.contains(&&Request::GovRun {
        analysis: id.clone(),
        coordinator_head: Some(head),
    }));
    assert!(reqs.iter().any(|r| matches!(r, Request::Register { spec, approvals } if spec == "name = \"x\"" && approvals.is_empty())));
    // Never an upload or a fetch.
    assert!(!reqs.iter().any(|r| matches!(
        r,
        Request::GovUpload { .. }
            | Request::GovFetch { .. }
            | Request::Upload { .. }
            | Request::Fetch { .. }
    )));
}

#[test]
fn missing_pki_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = SocketAddr::from(([127, 0, 0, 1], 1));
    let err = TlsNodes::new(
        &dir.path().join("nope"),
        None,
        [a, a, a],
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(err.contains("coordinator"), "{err}");
    let e = kuvert_coord::CoordError::Pki(err);
    assert!(e.is_user_error());
    assert!(e.to_string().contains("--pki DIR"));
}
