//! Three TLS transports on loopback, with certificates made in the test.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_mpc::transport::{next, prev, Incoming, Outgoing, Transport, TransportError, PARTIES};
use kuvert_net::frame::{FrameHeader, FrameKind, HEADER_LEN, MAX_PAYLOAD};
use kuvert_net::pki::{self, InitOptions};
use kuvert_net::tls::{self, NodeTls};
use kuvert_net::{NetConfig, TlsTransport};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("kuvert-net-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_pki(tag: &str, parties: &[&str]) -> TempDir {
    let dir = TempDir::new(tag);
    pki::init(
        dir.path(),
        &InitOptions {
            parties: parties.iter().map(|s| s.to_string()).collect(),
            ..InitOptions::default()
        },
    )
    .unwrap();
    dir
}

fn listeners() -> (Vec<TcpListener>, [SocketAddr; 3]) {
    let ls: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs = [
        ls[0].local_addr().unwrap(),
        ls[1].local_addr().unwrap(),
        ls[2].local_addr().unwrap(),
    ];
    (ls, addrs)
}

fn config(dir: &Path, i: usize, addrs: [SocketAddr; 3]) -> NetConfig {
    let mut c = NetConfig::new(i, addrs, NodeTls::load(dir, i).unwrap());
    c.connect_timeout = Duration::from_secs(10);
    c.io_timeout = Duration::from_secs(10);
    c
}

/// Start three transports (one per thread) and run `f` as each party.
fn run3<T: Send>(
    dir: &Path,
    tweak: impl Fn(&mut NetConfig) + Sync,
    f: impl Fn(usize, TlsTransport) -> T + Sync,
) -> Vec<T> {
    let (ls, addrs) = listeners();
    std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let (f, tweak) = (&f, &tweak);
                s.spawn(move || {
                    let mut c = config(dir, i, addrs);
                    tweak(&mut c);
                    let t = TlsTransport::connect_with_listener(c, l).unwrap();
                    f(i, t)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The bytes party `from` sends to `to` in round `r`: an independent oracle
/// both sides can compute.
fn payload(from: usize, to: usize, r: usize, len: usize) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64((from * 100 + to * 10 + r) as u64);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

#[test]
fn ring_rounds_of_several_mib_arrive_intact() {
    let dir = make_pki("ring", &[]);
    // Sizes that are not multiples of the chunk size, and differ per
    // direction, so that chunk boundaries and uneven progress are covered.
    let sizes = |r: usize| (5 * (1 << 20) + 17 * r + 3, 3 * (1 << 20) - 5 * r);
    let ok = run3(
        dir.path(),
        |c| {
            // Small queues: the strongest back-pressure.
            c.chunk_size = 300_000;
            c.queue_chunks = 1;
        },
        |me, mut t| {
            for r in 0..3 {
                let (to_next, to_prev) = sizes(r);
                let a = payload(me, next(me), r, to_next);
                let b = payload(me, prev(me), r, to_prev);
                // What we receive: prev sends us its "to_next", next its "to_prev".
                let mut from_prev = vec![0u8; to_next];
                let mut from_next = vec![0u8; to_prev];
                t.round(
                    &[
                        Outgoing {
                            to: next(me),
                            data: &a,
                        },
                        Outgoing {
                            to: prev(me),
                            data: &b,
                        },
                    ],
                    &mut [
                        Incoming {
                            from: prev(me),
                            buf: &mut from_prev,
                        },
                        Incoming {
                            from: next(me),
                            buf: &mut from_next,
                        },
                    ],
                )
                .unwrap();
                assert!(
                    from_prev == payload(prev(me), me, r, to_next),
                    "party {me} round {r} from prev"
                );
                assert!(
                    from_next == payload(next(me), me, r, to_prev),
                    "party {me} round {r} from next"
                );
            }
            // Many small rounds, including empty ones and one-way ones.
            for r in 10..60 {
                let n = r % 7; // 0..6 bytes; zero means "no message"
                let out = payload(me, next(me), r, n);
                let mut inc = vec![0u8; n];
                if r % 3 == 0 {
                    t.round(&[], &mut []).unwrap();
                    continue;
                }
                t.round(
                    &[Outgoing {
                        to: next(me),
                        data: &out,
                    }],
                    &mut [Incoming {
                        from: prev(me),
                        buf: &mut inc,
                    }],
                )
                .unwrap();
                assert_eq!(inc, payload(prev(me), me, r, n));
            }
            true
        },
    );
    assert_eq!(ok, vec![true; 3]);
}

#[test]
fn engine_multiplies_over_tls() {
    use kuvert_mpc::Party;
    let dir = make_pki("engine", &[]);
    let xs: Vec<u64> = (0..1000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let ys: Vec<u64> = (0..1000u64).map(|i| i * 3 + 1).collect();
    let expect: Vec<u64> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| x.wrapping_mul(*y))
        .collect();
    let outs = run3(
        dir.path(),
        |_| {},
        |me, t| {
            let mut rng = ChaCha20Rng::seed_from_u64(7 + me as u64);
            let mut p = Party::setup(Box::new(t), &mut rng).unwrap();
            let x = p
                .input_a(0, (me == 0).then_some(&xs[..]), xs.len())
                .unwrap();
            let y = p
                .input_a(2, (me == 2).then_some(&ys[..]), ys.len())
                .unwrap();
            let z = p.mul(&x, &y).unwrap();
            let all = p.reveal_a(&z, None).unwrap();
            let only1 = p.reveal_a(&z, Some(1)).unwrap();
            (all, only1)
        },
    );
    for (me, (all, only1)) in outs.into_iter().enumerate() {
        assert_eq!(all.as_deref(), Some(&expect[..]), "party {me}");
        assert_eq!(only1.is_some(), me == 1);
        if me == 1 {
            assert_eq!(only1.unwrap(), expect);
        }
    }
}

/// Captures `tracing` output of one thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn client_from_another_ca_is_refused_at_the_handshake_and_logged() {
    let good = make_pki("good", &["fk"]);
    let evil = make_pki("evil", &[]);
    let server_tls = NodeTls::load(good.path(), 1).unwrap();
    // A "node-0" certificate, but issued by another CA.
    // It trusts the right CA (so the failure is on the server's side).
    let good_roots = pki::load_roots(&pki::PkiLayout::new(good.path()).ca_cert()).unwrap();
    let evil_id = kuvert_net::Identity::load_node(evil.path(), 0).unwrap();
    let evil_tls = NodeTls::new(good_roots, &evil_id).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    let logs = Captured::default();
    let server = {
        let logs = logs.clone();
        std::thread::spawn(move || {
            let sub = tracing_subscriber::fmt()
                .with_writer(logs)
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(sub, || {
                let mut results = Vec::new();
                for _ in 0..3 {
                    let (tcp, _) = listener.accept().unwrap();
                    results.push(
                        tls::accept(tcp, &server_tls.server, Duration::from_secs(5))
                            .map(|(_, _, id)| id),
                    );
                }
                results
            })
        })
    };
    // 1. The impostor: the server refuses it; the client sees the alert at
    // its first read at the latest (TLS 1.3 sends the client certificate
    // after the server's Finished).
    let tcp = TcpStream::connect(addr).unwrap();
    let client_side = tls::connect(
        tcp,
        &evil_tls.client,
        tls::node_server_name(1),
        Duration::from_secs(5),
    )
    .and_then(|(conn, mut tcp)| {
        let mut conn = rustls::Connection::Client(conn);
        let mut b = [0u8; 1];
        tls::read_plain_exact(&mut conn, &mut tcp, &mut b).map_err(|e| tls::TlsError::Handshake {
            peer: "server".into(),
            detail: e.to_string(),
        })
    });
    assert!(
        client_side.is_err(),
        "the impostor must not get a working connection"
    );
    // 2. A party with a certificate from the right CA is accepted and
    // identified by its name.
    let party = tls::party_client_config(good.path(), "fk").unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    let party_side = tls::connect(
        tcp,
        &party,
        tls::node_server_name(1),
        Duration::from_secs(5),
    );
    assert!(party_side.is_ok());

    // 3. A client without any certificate.
    let no_cert = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(
            pki::load_roots(&pki::PkiLayout::new(good.path()).ca_cert()).unwrap(),
        )
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).unwrap();
    let anon = tls::connect(
        tcp,
        &Arc::new(no_cert),
        tls::node_server_name(1),
        Duration::from_secs(5),
    )
    .and_then(|(conn, mut tcp)| {
        let mut conn = rustls::Connection::Client(conn);
        let mut b = [0u8; 1];
        tls::read_plain_exact(&mut conn, &mut tcp, &mut b).map_err(|e| tls::TlsError::Handshake {
            peer: "server".into(),
            detail: e.to_string(),
        })
    });
    assert!(anon.is_err());

    let results = server.join().unwrap();
    match &results[0] {
        Err(tls::TlsError::Handshake { detail, .. }) => {
            assert!(detail.contains("UnknownIssuer"), "{detail}")
        }
        other => panic!(
            "expected a refused handshake, got {:?}",
            other.as_ref().map(|_| ())
        ),
    }
    match &results[2] {
        Err(tls::TlsError::Handshake { detail, .. }) => {
            assert!(
                detail.contains("NoCertificatesPresented") || detail.contains("certificate"),
                "{detail}"
            )
        }
        _ => panic!("a client without a certificate must be refused"),
    }
    assert_eq!(
        results[1].as_ref().unwrap(),
        &kuvert_net::PeerIdentity::Party("fk".into())
    );
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("WARN") && logs.contains("refused TLS connection"),
        "logs: {logs}"
    );
}

#[test]
fn impostor_node_is_refused_and_real_nodes_still_connect() {
    let dir = make_pki("impostor", &["fk"]);
    let evil = make_pki("impostor-evil", &[]);
    let (ls, addrs) = listeners();
    // Before the real node 0 starts, two impostors knock at node 1 and node
    // 2: one "node-0" from another CA, one party certificate of the right
    // CA (which must not pass for a node).
    let evil0 = NodeTls::load(evil.path(), 0).unwrap();
    let party = tls::party_client_config(dir.path(), "fk").unwrap();
    let knock = |addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>, name: usize| {
        let tcp = TcpStream::connect(addr).unwrap();
        if let Ok((conn, mut tcp)) = tls::connect(
            tcp,
            cfg,
            tls::node_server_name(name),
            Duration::from_secs(5),
        ) {
            let mut conn = rustls::Connection::Client(conn);
            let mut b = [0u8; HEADER_LEN + 1];
            // Either the alert, or the refusal (connection closed): no hello.
            assert!(tls::read_plain_exact(&mut conn, &mut tcp, &mut b).is_err());
        }
    };
    let results = std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .skip(1)
            .map(|(i, l)| {
                let dir = dir.path();
                s.spawn(move || {
                    TlsTransport::connect_with_listener(config(dir, i, addrs), l).map(|_| ())
                })
            })
            .collect();
        knock(addrs[2], &evil0.client, 2);
        knock(addrs[1], &party, 1);
        // Now the real node 0.
        let t0 = TlsTransport::connect(config(dir.path(), 0, addrs)).unwrap();
        let _ = t0.party();
        drop(t0);
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for r in results {
        r.unwrap();
    }
}

#[test]
fn crashed_peer_yields_peer_gone_naming_it() {
    let dir = make_pki("crash", &[]);
    let errs = run3(
        dir.path(),
        |c| c.io_timeout = Duration::from_secs(8),
        |me, mut t| {
            let mut b = vec![0u8; 1000];
            let mut ack = [0u8; 1];
            if me == 2 {
                // Take part in two rounds (the second tells us that node 0
                // got our data), then vanish without a word.
                t.round(
                    &[Outgoing {
                        to: 0,
                        data: &[1; 1000],
                    }],
                    &mut [Incoming {
                        from: 1,
                        buf: &mut b,
                    }],
                )
                .unwrap();
                t.round(
                    &[],
                    &mut [Incoming {
                        from: 0,
                        buf: &mut ack,
                    }],
                )
                .unwrap();
                t.abort();
                return None;
            }
            if me == 0 {
                t.round(
                    &[],
                    &mut [Incoming {
                        from: 2,
                        buf: &mut b,
                    }],
                )
                .unwrap();
                t.round(&[Outgoing { to: 2, data: &[1] }], &mut []).unwrap();
            } else {
                t.round(
                    &[Outgoing {
                        to: 2,
                        data: &[1; 1000],
                    }],
                    &mut [],
                )
                .unwrap();
                t.round(&[], &mut []).unwrap();
            }
            // Second round: everyone expects 3 MiB from party 2.
            let mut big = vec![0u8; 3 << 20];
            let e = t
                .round(
                    &[],
                    &mut [Incoming {
                        from: 2,
                        buf: &mut big,
                    }],
                )
                .unwrap_err();
            // Later rounds fail at once.
            let again = t
                .round(
                    &[],
                    &mut [Incoming {
                        from: 2,
                        buf: &mut big,
                    }],
                )
                .unwrap_err();
            Some((e, again))
        },
    );
    for (me, e) in errs.into_iter().enumerate().take(2) {
        let (e, again) = e.unwrap();
        assert!(
            matches!(
                e,
                TransportError::PeerGone { peer: 2, .. } | TransportError::Timeout { peer: 2, .. }
            ),
            "party {me}: {e}"
        );
        assert_eq!(again.peer(), Some(2));
    }
}

#[test]
fn orderly_close_mid_protocol_yields_peer_gone() {
    let dir = make_pki("bye", &[]);
    let errs = run3(
        dir.path(),
        |_| {},
        |me, mut t| {
            if me == 1 {
                drop(t); // sends Bye
                return None;
            }
            let mut b = vec![0u8; 10];
            Some(
                t.round(
                    &[],
                    &mut [Incoming {
                        from: 1,
                        buf: &mut b,
                    }],
                )
                .unwrap_err(),
            )
        },
    );
    for e in errs.into_iter().flatten() {
        assert!(matches!(e, TransportError::PeerGone { peer: 1, .. }), "{e}");
    }
}

#[test]
fn silent_peer_yields_timeout_naming_it() {
    let dir = make_pki("silent", &[]);
    let gate = std::sync::Barrier::new(3);
    let errs = run3(
        dir.path(),
        |c| c.io_timeout = Duration::from_millis(400),
        |me, mut t| {
            let r = if me == 0 {
                None // alive but never sends
            } else {
                let mut b = vec![0u8; 10];
                Some(
                    t.round(
                        &[],
                        &mut [Incoming {
                            from: 0,
                            buf: &mut b,
                        }],
                    )
                    .unwrap_err(),
                )
            };
            gate.wait();
            r
        },
    );
    for e in errs.into_iter().flatten() {
        assert!(matches!(e, TransportError::Timeout { peer: 0, .. }), "{e}");
    }
}

/// A hand-made node 0 that speaks raw frames, to send what a correct node
/// never sends.
fn fake_node0(dir: &Path, addrs: [SocketAddr; 3]) -> Vec<(rustls::Connection, TcpStream)> {
    let tls0 = NodeTls::load(dir, 0).unwrap();
    (1..3)
        .map(|j| {
            let tcp = tls::tcp_connect_retry(
                addrs[j],
                std::time::Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
            let (conn, mut tcp) = tls::connect(
                tcp,
                &tls0.client,
                tls::node_server_name(j),
                Duration::from_secs(10),
            )
            .unwrap();
            let mut conn = rustls::Connection::Client(conn);
            let mut hello = FrameHeader {
                kind: FrameKind::Hello,
                flags: 0,
                seq: 0,
                len: 1,
            }
            .encode()
            .to_vec();
            hello.push(0);
            tls::write_plain_all(&mut conn, &mut tcp, &hello).unwrap();
            let mut back = [0u8; HEADER_LEN + 1];
            tls::read_plain_exact(&mut conn, &mut tcp, &mut back).unwrap();
            (conn, tcp)
        })
        .collect()
}

/// Node 1 expects 100 bytes from node 0, and node 0 sends `bad` instead.
fn node1_receives(tag: &str, bad: Vec<u8>) -> TransportError {
    let dir = make_pki(tag, &[]);
    let (mut ls, addrs) = listeners();
    let l2 = ls.pop().unwrap();
    let l1 = ls.pop().unwrap();
    std::thread::scope(|s| {
        let d = dir.path();
        let n2 = s.spawn(move || {
            let t = TlsTransport::connect_with_listener(config(d, 2, addrs), l2).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            drop(t);
        });
        let n1 = s.spawn(move || {
            let mut t = TlsTransport::connect_with_listener(config(d, 1, addrs), l1).unwrap();
            let mut b = vec![0u8; 100];
            t.round(
                &[],
                &mut [Incoming {
                    from: 0,
                    buf: &mut b,
                }],
            )
            .unwrap_err()
        });
        let mut links = fake_node0(d, addrs);
        let (conn, tcp) = &mut links[0];
        // The peer may already have dropped us when the bytes go out.
        let _ = tls::write_plain_all(conn, tcp, &bad);
        let e = n1.join().unwrap();
        drop(links);
        n2.join().unwrap();
        e
    })
}

#[test]
fn oversized_frame_is_malformed() {
    let mut h = FrameHeader::data(0, 10, true).unwrap().encode();
    h[8..12].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_be_bytes());
    let e = node1_receives("oversized", h.to_vec());
    assert!(
        matches!(&e, TransportError::Malformed { peer: 0, detail } if detail.contains("exceeds")),
        "{e}"
    );
}

#[test]
fn wrong_length_and_garbage_are_malformed() {
    // 120 bytes where 100 are expected.
    let mut long = FrameHeader::data(0, 120, true).unwrap().encode().to_vec();
    long.extend_from_slice(&[7u8; 120]);
    let e = node1_receives("long", long);
    assert!(
        matches!(&e, TransportError::Malformed { peer: 0, detail } if detail.contains("expected exactly 100")),
        "{e}"
    );
    // Not our protocol at all.
    let e = node1_receives("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec());
    assert!(
        matches!(&e, TransportError::Malformed { peer: 0, detail } if detail.contains("magic")),
        "{e}"
    );
    // A message from the future (sequence number 5 where 0 is due).
    let mut future = FrameHeader::data(5, 100, true).unwrap().encode().to_vec();
    future.extend_from_slice(&[0u8; 100]);
    let e = node1_receives("seq", future);
    assert!(
        matches!(&e, TransportError::Malformed { peer: 0, detail } if detail.contains("message 5")),
        "{e}"
    );
    let _ = PARTIES;
}
