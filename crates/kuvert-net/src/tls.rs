//! TLS 1.3 with mutual authentication, on `rustls` with the `ring` provider.
//!
//! Both directions require a certificate that chains to the deployment CA:
//! servers use [`WebPkiClientVerifier`] (a client without such a certificate
//! fails the handshake), clients verify the server's name (`node-<j>`).
//! Only TLS 1.3 is enabled; its cipher suites are AES-GCM and
//! ChaCha20-Poly1305 with ephemeral (EC)DHE, so every connection has forward
//! secrecy.
//!
//! The blocking handshake helpers [`accept`] and [`connect`] are what the
//! node daemon and the clients build on; [`crate::transport::TlsTransport`]
//! uses them for the links between nodes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use crate::pki::{self, Identity, PeerIdentity, PkiError, PkiLayout};
use kuvert_mpc::PartyId;

/// Errors building TLS configurations or completing a handshake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("TLS configuration rejected: {0}")]
    Config(String),
    #[error("TLS handshake with {peer} failed: {detail}")]
    Handshake { peer: String, detail: String },
    #[error("{peer} presented a certificate for {got:?}, expected {expected}")]
    WrongPeer {
        peer: String,
        got: PeerIdentity,
        expected: String,
    },
}

/// The `ring` crypto provider (avoids aws-lc-rs, which needs cmake).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration that demands a client certificate issued by the
/// CA in `roots`, TLS 1.3 only.
pub fn server_config(
    roots: RootCertStore,
    identity: &Identity,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.certs.clone(), identity.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts only the CA in `roots` and presents
/// `identity` as client certificate, TLS 1.3 only.
pub fn client_config(
    roots: RootCertStore,
    identity: &Identity,
) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.certs.clone(), identity.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Both TLS configurations of one compute node.
#[derive(Clone)]
pub struct NodeTls {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls { .. }")
    }
}

impl NodeTls {
    /// From a CA store and this node's identity.
    pub fn new(roots: RootCertStore, identity: &Identity) -> Result<NodeTls, TlsError> {
        Ok(NodeTls {
            server: server_config(roots.clone(), identity)?,
            client: client_config(roots, identity)?,
        })
    }

    /// Node `i`'s configurations from a PKI directory (`ca.crt`,
    /// `node-<i>.crt`, `node-<i>.key`).
    pub fn load(dir: &Path, i: PartyId) -> Result<NodeTls, TlsError> {
        let roots = pki::load_roots(&PkiLayout::new(dir).ca_cert())?;
        let identity = Identity::load_node(dir, i)?;
        NodeTls::new(roots, &identity)
    }
}

/// A party's client configuration from a PKI directory (`ca.crt`,
/// `party-<name>.crt`, `party-<name>.key`).
pub fn party_client_config(dir: &Path, name: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = pki::load_roots(&PkiLayout::new(dir).ca_cert())?;
    let identity = Identity::load_party(dir, name)?;
    client_config(roots, &identity)
}

/// The name a client verifies when it dials node `j`.
pub fn node_server_name(j: PartyId) -> ServerName<'static> {
    // "node-<digit>" is always a valid DNS name.
    ServerName::try_from(pki::node_name(j)).expect("node names are valid DNS names")
}

/// Drive a handshake to completion on a blocking socket.
fn handshake<C, S>(conn: &mut C, tcp: &mut TcpStream) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
{
    while conn.is_handshaking() {
        conn.complete_io(tcp)?;
    }
    // Flush the last flight (the client's Finished, or server tickets).
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    tcp.flush()
}

/// Accept one TLS connection on an accepted TCP socket: complete the
/// handshake (which verifies the client certificate against the CA) within
/// `timeout`, and return the connection and the peer's identity. A refused
/// peer is logged at `warn` level with its address and the reason.
pub fn accept(
    mut tcp: TcpStream,
    config: &Arc<ServerConfig>,
    timeout: Duration,
) -> Result<(ServerConnection, TcpStream, PeerIdentity), TlsError> {
    let addr = peer_addr(&tcp);
    let result = (|| {
        set_timeouts(&tcp, Some(timeout)).map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let mut conn = ServerConnection::new(config.clone()).map_err(|e| e.to_string())?;
        handshake(&mut conn, &mut tcp).map_err(|e| e.to_string())?;
        let id = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| "no client certificate".to_string())
            .and_then(|c| pki::peer_identity(c).map_err(|e| e.to_string()))?;
        set_timeouts(&tcp, None).map_err(|e| e.to_string())?;
        Ok((conn, id))
    })();
    match result {
        Ok((conn, id)) => {
            tracing::debug!(peer = %addr, identity = ?id, "accepted TLS connection");
            Ok((conn, tcp, id))
        }
        Err(detail) => {
            tracing::warn!(peer = %addr, reason = %detail, "refused TLS connection at the handshake");
            Err(TlsError::Handshake { peer: addr, detail })
        }
    }
}

/// Open a TLS connection over a connected TCP socket, verifying that the
/// server's certificate names `server_name`, within `timeout`.
pub fn connect(
    mut tcp: TcpStream,
    config: &Arc<ClientConfig>,
    server_name: ServerName<'static>,
    timeout: Duration,
) -> Result<(ClientConnection, TcpStream), TlsError> {
    let addr = peer_addr(&tcp);
    let result = (|| {
        set_timeouts(&tcp, Some(timeout)).map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let mut conn = ClientConnection::new(config.clone(), server_name.clone())
            .map_err(|e| e.to_string())?;
        handshake(&mut conn, &mut tcp).map_err(|e| e.to_string())?;
        set_timeouts(&tcp, None).map_err(|e| e.to_string())?;
        Ok(conn)
    })();
    match result {
        Ok(conn) => Ok((conn, tcp)),
        Err(detail) => {
            tracing::warn!(peer = %addr, server = ?server_name, reason = %detail, "TLS handshake failed");
            Err(TlsError::Handshake { peer: addr, detail })
        }
    }
}

/// Connect TCP to `addr`, retrying until `deadline` while the peer starts.
pub fn tcp_connect_retry(addr: SocketAddr, deadline: std::time::Instant) -> io::Result<TcpStream> {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let attempt = left
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(10));
        match TcpStream::connect_timeout(&addr, attempt) {
            Ok(s) => return Ok(s),
            Err(e) => {
                if std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Set (or clear, with `None`) both socket timeouts.
pub fn set_timeouts(tcp: &TcpStream, t: Option<Duration>) -> io::Result<()> {
    tcp.set_read_timeout(t)?;
    tcp.set_write_timeout(t)
}

pub(crate) fn peer_addr(tcp: &TcpStream) -> String {
    tcp.peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown address".into())
}

/// Read exactly `buf.len()` bytes of plaintext from a connection on a
/// blocking socket (used for the short hello exchange before the I/O
/// threads start). Bytes after them stay buffered inside `conn`.
pub fn read_plain_exact(
    conn: &mut rustls::Connection,
    tcp: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match conn.reader().read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if conn.read_tls(tcp)? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed the connection",
                    ));
                }
                conn.process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write plaintext and flush it to the socket (used before the I/O threads
/// start).
pub fn write_plain_all(
    conn: &mut rustls::Connection,
    tcp: &mut TcpStream,
    data: &[u8],
) -> io::Result<()> {
    conn.writer().write_all(data)?;
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    tcp.flush()
}
