//! The hybrid post-quantum key exchange in real rustls handshakes: peers
//! built from `tls::provider()` negotiate X25519MLKEM768, and peers without
//! it fall back to a classic group. Handshakes run in memory; the
//! certificates come from `pki::init`.
//!
//! An interop check against an independent implementation (BoringSSL in
//! Chromium) is the ignored test at the end:
//! `cargo test -p kuvert-net --test pq_tls -- --ignored` (it skips itself
//! when no `chromium` is installed).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kuvert_net::pki::{self, Identity, InitOptions, PkiLayout};
use kuvert_net::tls;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, NamedGroup, ServerConfig, ServerConnection};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct TempDir(PathBuf);
impl TempDir {
    /// An empty directory.
    fn empty(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("kuvert-pq-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    /// A deployment PKI: CA, three nodes and a party "p".
    fn new(tag: &str) -> TempDir {
        let d = TempDir::empty(tag);
        pki::init(
            d.path(),
            &InitOptions {
                parties: vec!["p".into()],
                ..InitOptions::default()
            },
        )
        .unwrap();
        d
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

/// The ring provider restricted to `groups` (a peer without the hybrid).
fn classic(groups: &[&'static dyn SupportedKxGroup]) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.kx_groups = groups.to_vec();
    Arc::new(p)
}

fn server_with(dir: &Path, provider: Arc<CryptoProvider>) -> Arc<ServerConfig> {
    let roots = pki::load_roots(&PkiLayout::new(dir).ca_cert()).unwrap();
    let id = Identity::load_node(dir, 0).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(id.certs.clone(), id.clone_key())
            .unwrap(),
    )
}

fn client_with(dir: &Path, provider: Arc<CryptoProvider>) -> Arc<ClientConfig> {
    let roots = pki::load_roots(&PkiLayout::new(dir).ca_cert()).unwrap();
    let id = Identity::load_party(dir, "p").unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(id.certs.clone(), id.clone_key())
            .unwrap(),
    )
}

/// The project's own configurations (`tls::server_config`, `client_config`).
fn ours(dir: &Path) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let roots = pki::load_roots(&PkiLayout::new(dir).ca_cert()).unwrap();
    let server = tls::server_config(roots.clone(), &Identity::load_node(dir, 0).unwrap()).unwrap();
    let client = tls::client_config(roots, &Identity::load_party(dir, "p").unwrap()).unwrap();
    (server, client)
}

fn pump(
    from: &mut dyn FnMut(&mut Vec<u8>),
    to: &mut dyn FnMut(&[u8]) -> Result<(), rustls::Error>,
) -> Result<bool, rustls::Error> {
    let mut buf = Vec::new();
    from(&mut buf);
    if buf.is_empty() {
        return Ok(false);
    }
    to(&buf)?;
    Ok(true)
}

/// Run a handshake in memory; returns the group each side negotiated and
/// the number of client flights (2 without a HelloRetryRequest).
fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
) -> Result<(NamedGroup, NamedGroup, usize), rustls::Error> {
    let mut c = ClientConnection::new(client.clone(), tls::node_server_name(0)).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut client_flights = 0;
    for _ in 0..10 {
        let sent = pump(
            &mut |buf| {
                while c.wants_write() {
                    c.write_tls(buf).unwrap();
                }
            },
            &mut |mut data| {
                while !data.is_empty() {
                    s.read_tls(&mut data).unwrap();
                    s.process_new_packets()?;
                }
                Ok(())
            },
        )?;
        client_flights += usize::from(sent);
        pump(
            &mut |buf| {
                while s.wants_write() {
                    s.write_tls(buf).unwrap();
                }
            },
            &mut |mut data| {
                while !data.is_empty() {
                    c.read_tls(&mut data).unwrap();
                    c.process_new_packets()?;
                }
                Ok(())
            },
        )?;
        if !c.is_handshaking() && !s.is_handshaking() {
            // Application data flows both ways under the negotiated keys.
            c.writer().write_all(b"ping").unwrap();
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
            let mut got = [0u8; 4];
            s.reader().read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ping");
            let group = |g: Option<&'static dyn SupportedKxGroup>| g.unwrap().name();
            return Ok((
                group(c.negotiated_key_exchange_group()),
                group(s.negotiated_key_exchange_group()),
                client_flights,
            ));
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn provider_prefers_the_hybrid() {
    let groups: Vec<NamedGroup> = tls::provider().kx_groups.iter().map(|g| g.name()).collect();
    assert_eq!(
        groups,
        [
            NamedGroup::X25519MLKEM768,
            NamedGroup::X25519,
            NamedGroup::secp256r1
        ]
    );
}

#[test]
fn our_client_and_server_negotiate_x25519mlkem768() {
    let dir = TempDir::new("ours");
    let (server, client) = ours(dir.path());
    let (c, s, flights) = handshake(&server, &client).unwrap();
    assert_eq!(c, NamedGroup::X25519MLKEM768);
    assert_eq!(s, NamedGroup::X25519MLKEM768);
    assert_eq!(flights, 2, "no HelloRetryRequest");
}

#[test]
fn a_classic_client_falls_back_to_x25519() {
    let dir = TempDir::new("classic-client");
    let (server, _) = ours(dir.path());
    let ring = rustls::crypto::ring::kx_group::X25519;
    let client = client_with(dir.path(), classic(&[ring]));
    let (c, s, _) = handshake(&server, &client).unwrap();
    assert_eq!((c, s), (NamedGroup::X25519, NamedGroup::X25519));
    // A P-256-only client gets P-256.
    let client = client_with(
        dir.path(),
        classic(&[rustls::crypto::ring::kx_group::SECP256R1]),
    );
    let (c, s, _) = handshake(&server, &client).unwrap();
    assert_eq!((c, s), (NamedGroup::secp256r1, NamedGroup::secp256r1));
}

#[test]
fn a_classic_server_gets_x25519_without_a_retry() {
    let dir = TempDir::new("classic-server");
    let (_, client) = ours(dir.path());
    let server = server_with(
        dir.path(),
        classic(&[rustls::crypto::ring::kx_group::X25519]),
    );
    let (c, s, flights) = handshake(&server, &client).unwrap();
    assert_eq!((c, s), (NamedGroup::X25519, NamedGroup::X25519));
    // The X25519 half was offered as its own share: no HelloRetryRequest.
    assert_eq!(flights, 2);
    // A P-256-only server costs a HelloRetryRequest, then works.
    let server = server_with(
        dir.path(),
        classic(&[rustls::crypto::ring::kx_group::SECP256R1]),
    );
    let (c, s, flights) = handshake(&server, &client).unwrap();
    assert_eq!((c, s), (NamedGroup::secp256r1, NamedGroup::secp256r1));
    assert_eq!(flights, 3);
}

#[test]
fn a_peer_with_no_common_group_is_refused() {
    let dir = TempDir::new("none");
    let (server, _) = ours(dir.path());
    let client = client_with(
        dir.path(),
        classic(&[rustls::crypto::ring::kx_group::SECP384R1]),
    );
    assert!(handshake(&server, &client).is_err());
}

/// Interop with an independent implementation: headless Chromium (its TLS
/// stack is BoringSSL, which has offered X25519MLKEM768 by default since
/// Chromium 131) fetches a page from a rustls server built on
/// `tls::provider()`, and the server records the group. Skips itself when
/// no `chromium` is installed (`apt-get install chromium`).
#[test]
#[ignore = "needs chromium; run with --ignored"]
fn chromium_negotiates_x25519mlkem768() {
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("SKIPPED: no chromium installed");
        return;
    };
    let dir = TempDir::new("chromium");
    let id = Identity::load_node(dir.path(), 0).unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(id.certs.clone(), id.clone_key())
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let groups = Arc::new(Mutex::new(Vec::new()));
    {
        let groups = groups.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let mut conn = ServerConnection::new(config.clone()).unwrap();
                let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
                let mut req = [0u8; 4096];
                if stream.read(&mut req).is_err() {
                    continue;
                }
                let body = "<html><body>kuvert-pq-ok</body></html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.flush();
                let g = stream
                    .conn
                    .negotiated_key_exchange_group()
                    .map(|g| g.name());
                groups.lock().unwrap().push(g);
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
        });
    }
    let profile = TempDir::empty("chromium-profile");
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--ignore-certificate-errors",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &format!("https://127.0.0.1:{port}/"),
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("kuvert-pq-ok"),
        "chromium did not get the page: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups = groups.lock().unwrap().clone();
    eprintln!("chromium connections negotiated: {groups:?}");
    assert!(!groups.is_empty());
    assert!(groups
        .iter()
        .all(|g| *g == Some(NamedGroup::X25519MLKEM768)));
}
