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

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::federation::Federation;
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
    // Key exchange, in order of preference: the hybrid post-quantum
    // X25519MLKEM768 (crate::pq; ring has no ML-KEM), then plain X25519 and
    // P-256 for peers without it (browsers and tools that predate the
    // hybrid). Every connection between our own nodes, clients and
    // coordinator negotiates the hybrid. P-384 and the ring default's other
    // groups are dropped: nothing here needs them.
    let mut p = rustls::crypto::ring::default_provider();
    p.kx_groups = vec![
        crate::pq::X25519MLKEM768,
        rustls::crypto::ring::kx_group::X25519,
        rustls::crypto::ring::kx_group::SECP256R1,
    ];
    Arc::new(p)
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

/// A server configuration together with the rule that names the peer of
/// an accepted connection: what [`accept`] needs.
pub trait Accepting {
    /// The rustls configuration (which verifies the client's certificate).
    fn server_config(&self) -> &Arc<ServerConfig>;
    /// Who the verified end-entity certificate belongs to.
    fn identify(&self, cert: &CertificateDer<'_>) -> Result<PeerIdentity, String>;
}

/// A bare configuration: one deployment CA, identity from the certificate's
/// names ([`pki::peer_identity`]). Development clusters and tests.
impl Accepting for Arc<ServerConfig> {
    fn server_config(&self) -> &Arc<ServerConfig> {
        self
    }
    fn identify(&self, cert: &CertificateDer<'_>) -> Result<PeerIdentity, String> {
        pki::peer_identity(cert).map_err(|e| e.to_string())
    }
}

/// How a node tells who is at the other end of a connection.
#[derive(Clone)]
pub enum Trust {
    /// Development (`dev_mode`): one CA issued everything; node `i` is
    /// whoever holds a certificate named `node-<i>` from it.
    SingleCa,
    /// Production: node `i` is exactly the key the federation lists for
    /// it, in a certificate from node `i`'s operator's CA; any other
    /// certificate naming a node is refused; parties chain to the client
    /// CAs the operator configured.
    Federation(Arc<Federation>),
}

/// A node's server side: configuration plus [`Trust`].
#[derive(Clone)]
pub struct Acceptor {
    pub config: Arc<ServerConfig>,
    pub trust: Trust,
}

impl Accepting for Acceptor {
    fn server_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
    fn identify(&self, cert: &CertificateDer<'_>) -> Result<PeerIdentity, String> {
        match &self.trust {
            Trust::SingleCa => pki::peer_identity(cert).map_err(|e| e.to_string()),
            Trust::Federation(fed) => federation_identity(fed, cert),
        }
    }
}

/// The identity of a certificate under a federation: node `j` by its
/// pinned key, or a party by its common name. A certificate that names a
/// node (`node-<i>`) but carries a key the federation does not list for
/// any node is an impostor and refused.
pub fn federation_identity(
    fed: &Federation,
    cert: &CertificateDer<'_>,
) -> Result<PeerIdentity, String> {
    let fp = pki::spki_fingerprint(cert).map_err(|e| e.to_string())?;
    if let Some(j) = fed.node_by_fingerprint(&fp) {
        return Ok(PeerIdentity::Node(j));
    }
    match pki::peer_identity(cert) {
        Ok(PeerIdentity::Node(i)) => Err(format!(
            "certificate claims to be node {i} but its key {fp} is not in federation {:?} \
             (node {i} is {}): impostor refused",
            fed.name, fed.nodes[i].fingerprint
        )),
        Ok(p) => Ok(p),
        Err(e) => Err(e.to_string()),
    }
}

/// Both TLS configurations of one compute node.
#[derive(Clone)]
pub struct NodeTls {
    pub server: Acceptor,
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls { .. }")
    }
}

impl NodeTls {
    /// From one CA store and this node's identity (development clusters:
    /// [`Trust::SingleCa`]).
    pub fn new(roots: RootCertStore, identity: &Identity) -> Result<NodeTls, TlsError> {
        Ok(NodeTls {
            server: Acceptor {
                config: server_config(roots.clone(), identity)?,
                trust: Trust::SingleCa,
            },
            client: client_config(roots, identity)?,
        })
    }

    /// Node `id` of a federation: peers are pinned by the federation,
    /// parties (and the coordinator) must chain to `client_cas`. Refuses an
    /// identity whose key is not the one the federation lists for `id`.
    pub fn federated(
        fed: Arc<Federation>,
        id: PartyId,
        identity: &Identity,
        client_cas: RootCertStore,
    ) -> Result<NodeTls, TlsError> {
        let mine = pki::spki_fingerprint(&identity.certs[0])?;
        if fed.nodes[id].fingerprint != mine {
            return Err(TlsError::Config(format!(
                "this node's certificate has key {mine}, but federation {:?} lists {} for node {id}: \
                 wrong certificate, wrong id, or a federation file made before this key",
                fed.name, fed.nodes[id].fingerprint
            )));
        }
        let provider = provider();
        let verifier = Arc::new(FedClientVerifier::new(
            fed.clone(),
            client_cas,
            provider.clone(),
        )?);
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.certs.clone(), identity.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FedServerVerifier::new(
                fed.clone(),
                provider,
            )?))
            .with_client_auth_cert(identity.certs.clone(), identity.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(NodeTls {
            server: Acceptor {
                config: Arc::new(server),
                trust: Trust::Federation(fed),
            },
            client: Arc::new(client),
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
    server: &impl Accepting,
    timeout: Duration,
) -> Result<(ServerConnection, TcpStream, PeerIdentity), TlsError> {
    let addr = peer_addr(&tcp);
    let result = (|| {
        set_timeouts(&tcp, Some(timeout)).map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let mut conn =
            ServerConnection::new(server.server_config().clone()).map_err(|e| e.to_string())?;
        handshake(&mut conn, &mut tcp).map_err(|e| e.to_string())?;
        let id = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| "no client certificate".to_string())
            .and_then(|c| server.identify(c))?;
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

// ----- verifiers: the federation's pins, and a client's pins -------------

/// The handshake-signature methods every verifier here shares: TLS 1.3
/// only, checked with the provider's algorithms (`self.provider`).
macro_rules! tls13_only_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("TLS 1.2 is not offered".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            tls13_sig(&self.provider, message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

fn tls13_sig(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn fingerprint_of(cert: &CertificateDer<'_>) -> Result<String, rustls::Error> {
    pki::spki_fingerprint(cert).map_err(|e| rustls::Error::General(e.to_string()))
}

/// Which node a server name `node-<j>` means.
fn node_of(name: &ServerName<'_>) -> Option<PartyId> {
    let ServerName::DnsName(d) = name else {
        return None;
    };
    (0..kuvert_mpc::transport::PARTIES).find(|j| d.as_ref() == pki::node_name(*j))
}

/// Node side, client certificates: a key the federation lists for node
/// `j` must chain to node `j`'s CA; a certificate naming a node with any
/// other key is refused; everything else must chain to the client CAs.
#[derive(Debug)]
struct FedClientVerifier {
    fed: Arc<Federation>,
    nodes: Vec<Arc<dyn ClientCertVerifier>>,
    parties: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl FedClientVerifier {
    fn new(
        fed: Arc<Federation>,
        client_cas: RootCertStore,
        provider: Arc<CryptoProvider>,
    ) -> Result<FedClientVerifier, TlsError> {
        let build = |roots: RootCertStore| {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))
        };
        let nodes = (0..3)
            .map(|j| build(fed.ca_roots(j)))
            .collect::<Result<Vec<_>, _>>()?;
        let parties = if client_cas.is_empty() {
            None
        } else {
            Some(build(client_cas)?)
        };
        Ok(FedClientVerifier {
            fed,
            nodes,
            parties,
            provider,
        })
    }
}

impl ClientCertVerifier for FedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = fingerprint_of(end_entity)?;
        if let Some(j) = self.fed.node_by_fingerprint(&fp) {
            return self.nodes[j].verify_client_cert(end_entity, intermediates, now);
        }
        if let Err(reason) = federation_identity(&self.fed, end_entity) {
            tracing::warn!(key = %fp, %reason, "refused a client certificate");
            return Err(rustls::Error::General(reason));
        }
        match &self.parties {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General(format!(
                "key {fp} is none of the federation's nodes and this node trusts no client CA \
                 (client_cas in node.toml)"
            ))),
        }
    }

    tls13_only_signatures!();
}

/// Node side, dialling node `j`: its key must be the federation's for `j`
/// and its certificate must chain to node `j`'s CA and name `node-<j>`.
#[derive(Debug)]
struct FedServerVerifier {
    fed: Arc<Federation>,
    nodes: Vec<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl FedServerVerifier {
    fn new(
        fed: Arc<Federation>,
        provider: Arc<CryptoProvider>,
    ) -> Result<FedServerVerifier, TlsError> {
        let nodes = (0..3)
            .map(|j| {
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(fed.ca_roots(j)),
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FedServerVerifier {
            fed,
            nodes,
            provider,
        })
    }
}

impl ServerCertVerifier for FedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let j = node_of(server_name)
            .ok_or_else(|| rustls::Error::General(format!("{server_name:?} is not a node name")))?;
        let fp = fingerprint_of(end_entity)?;
        if fp != self.fed.nodes[j].fingerprint {
            let reason = format!(
                "the server answering for node {j} presented key {fp}, but federation {:?} lists {}: impostor refused",
                self.fed.name, self.fed.nodes[j].fingerprint
            );
            tracing::warn!(node = j, %reason, "refused a node's certificate");
            return Err(rustls::Error::General(reason));
        }
        self.nodes[j].verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    tls13_only_signatures!();
}

/// A client's view of the three nodes: each is exactly the key pinned for
/// it (from the approved analysis spec, or the federation), whatever CA
/// issued its certificate and whoever told the client the address. A
/// mismatch fails the handshake before any application byte, so no share
/// leaves the client.
#[derive(Debug)]
struct PinnedNodes {
    pins: [String; 3],
    what: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedNodes {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let j = node_of(server_name)
            .ok_or_else(|| rustls::Error::General(format!("{server_name:?} is not a node name")))?;
        let fp = fingerprint_of(end_entity)?;
        if fp != self.pins[j] {
            let reason = format!(
                "node {j} presented key {fp}, but {} pins {}: this is not the node the \
                 contributors approved (whoever gave you its address pointed you elsewhere). \
                 Nothing was sent",
                self.what, self.pins[j]
            );
            tracing::warn!(node = j, %reason, "refused a node");
            return Err(rustls::Error::General(reason));
        }
        // The key is pinned; still refuse an expired certificate.
        let (_, x509) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let t = now.as_secs() as i64;
        if t < x509.validity().not_before.timestamp() || t > x509.validity().not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    tls13_only_signatures!();
}

/// A client configuration (a party, or the coordinator) that reaches node
/// `j` only if it presents the key `pins[j]` (lowercase hex SPKI SHA-256;
/// `what` names where the pins come from, for the error). `identity` is
/// the client certificate it presents.
pub fn pinned_client_config(
    pins: [String; 3],
    what: &str,
    identity: &Identity,
) -> Result<Arc<ClientConfig>, TlsError> {
    for (j, p) in pins.iter().enumerate() {
        if !pki::is_fingerprint(p) {
            return Err(TlsError::Config(format!(
                "pin of node {j} {p:?} is not a key fingerprint (64 lowercase hex digits)"
            )));
        }
    }
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedNodes {
            pins,
            what: what.to_string(),
            provider,
        }))
        .with_client_auth_cert(identity.certs.clone(), identity.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}
