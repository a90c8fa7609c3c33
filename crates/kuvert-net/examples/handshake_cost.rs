//! What the hybrid post-quantum key exchange costs per TLS 1.3 handshake:
//! X25519MLKEM768 (what `tls::provider()` prefers) against X25519 alone,
//! with mutual authentication as between nodes, and with the federation's
//! pinned verifiers. Handshakes run in memory (no sockets), so the numbers
//! are CPU time and bytes on the wire, not network latency.
//!
//! ```sh
//! cargo run --release -p kuvert-net --example handshake_cost -- [N]
//! ```

use std::sync::Arc;
use std::time::Instant;

use kuvert_net::pki::{self, Identity, InitOptions, PkiLayout};
use kuvert_net::tls;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn configs(
    provider: Arc<CryptoProvider>,
    roots: &RootCertStore,
    server: &Identity,
    client: &Identity,
) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
            .build()
            .unwrap();
    let s = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.certs.clone(), server.clone_key())
        .unwrap();
    let c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(client.certs.clone(), client.clone_key())
        .unwrap();
    (Arc::new(s), Arc::new(c))
}

/// One handshake in memory: (bytes client→server, bytes server→client,
/// the negotiated group).
fn handshake(s: &Arc<ServerConfig>, c: &Arc<ClientConfig>) -> (usize, usize, String) {
    let mut client = ClientConnection::new(c.clone(), tls::node_server_name(1)).unwrap();
    let mut server = ServerConnection::new(s.clone()).unwrap();
    let (mut up, mut down) = (0, 0);
    while client.is_handshaking()
        || server.is_handshaking()
        || client.wants_write()
        || server.wants_write()
    {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        up += buf.len();
        if !buf.is_empty() {
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        down += buf.len();
        if !buf.is_empty() {
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        if buf.is_empty() && !client.wants_write() && !server.wants_write() {
            break;
        }
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    let group = client
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default();
    (up, down, group)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of handshakes"))
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("kuvert-handshake-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    pki::init(&dir, &InitOptions::default()).unwrap();
    let roots = pki::load_roots(&PkiLayout::new(&dir).ca_cert()).unwrap();
    let server = Identity::load_node(&dir, 1).unwrap();
    let client = Identity::load_node(&dir, 0).unwrap();
    let hybrid = tls::provider();
    let mut classic = rustls::crypto::ring::default_provider();
    classic.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    let classic = Arc::new(classic);
    println!("TLS 1.3 handshakes with client certificates, in memory, {n} each (release build)");
    println!(
        "{:<16} {:>12} {:>14} {:>14}  negotiated",
        "key exchange", "ms/handshake", "bytes c->s", "bytes s->c"
    );
    for (name, p) in [("X25519", classic), ("X25519MLKEM768", hybrid)] {
        let (s, c) = configs(p, &roots, &server, &client);
        let (up, down, group) = handshake(&s, &c); // warm-up, sizes, group
        let t = Instant::now();
        for _ in 0..n {
            handshake(&s, &c);
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        println!("{name:<16} {ms:>12.3} {up:>14} {down:>14}  {group}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
