//! The deployment PKI: one certificate authority, one certificate per
//! compute node, one client certificate per contributing or receiving party.
//!
//! Layout of a PKI directory (all PEM):
//!
//! ```text
//! DIR/ca.crt               the deployment CA; every node and party trusts it
//! DIR/ca.key               the CA's private key: keep offline, only needed to issue
//! DIR/node-<i>.crt, .key   node i: SAN DNS `node-<i>`, `localhost`, IP 127.0.0.1;
//!                          usable as TLS server and client
//! DIR/party-<name>.crt, .key  a party: CN = name; TLS client only
//! ```
//!
//! Node identity is the DNS name `node-<i>` in the certificate, never the
//! address it connects from: a node dialling node `j` verifies the server
//! name `node-<j>`, and a node accepting a connection reads the name from
//! the verified client certificate ([`peer_identity`]).
//!
//! Keys are ECDSA P-256 (rcgen's default), generated from the operating
//! system's CSPRNG by `ring`. Key files are written with mode 0600,
//! certificates with 0644. Key material we hold in memory as PEM text is
//! wiped after writing; see the crate docs for what is not.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroize;

use kuvert_mpc::PartyId;

/// Errors of the PKI functions. Each names the file or the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{dir}: directory exists and is not empty; choose another --out, or pass --force to overwrite the files in it")]
    DirExists { dir: PathBuf },
    #[error("{path}: file exists; pass --force to replace it")]
    FileExists { path: PathBuf },
    #[error("invalid party name {name:?}: {reason}")]
    BadPartyName { name: String, reason: String },
    #[error("invalid node count {0}: kuvert runs exactly 3 compute nodes")]
    BadNodeCount(usize),
    #[error("invalid node index {0}: nodes are numbered 0, 1 and 2")]
    BadNode(usize),
    #[error("invalid validity of {0} days: give 1 to 3650")]
    BadValidity(u32),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable PEM {what}: {detail}")]
    BadPem {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("peer certificate cannot be read: {0}")]
    BadPeerCert(String),
}

pub type Result<T> = std::result::Result<T, PkiError>;

/// The DNS name that identifies compute node `i` in certificates.
pub fn node_name(i: PartyId) -> String {
    format!("node-{i}")
}

/// File names inside a PKI directory.
#[derive(Debug, Clone)]
pub struct PkiLayout {
    pub dir: PathBuf,
}

impl PkiLayout {
    pub fn new(dir: impl Into<PathBuf>) -> PkiLayout {
        PkiLayout { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn node_cert(&self, i: PartyId) -> PathBuf {
        self.dir.join(format!("{}.crt", node_name(i)))
    }
    pub fn node_key(&self, i: PartyId) -> PathBuf {
        self.dir.join(format!("{}.key", node_name(i)))
    }
    pub fn party_cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("party-{name}.crt"))
    }
    pub fn party_key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("party-{name}.key"))
    }
}

/// What [`init`] and the `issue_*` functions wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub path: PathBuf,
    /// Human description, e.g. "certificate of node 1".
    pub what: String,
    /// True for private keys (mode 0600).
    pub secret: bool,
}

/// Options of [`init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Number of compute nodes; must be 3.
    pub nodes: usize,
    /// Names of the contributing and receiving parties.
    pub parties: Vec<String>,
    /// Validity of node and party certificates in days (the CA gets ten
    /// times as long, at most 20 years).
    pub validity_days: u32,
    /// Overwrite files in an existing directory.
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            nodes: 3,
            parties: Vec::new(),
            validity_days: 365,
            force: false,
        }
    }
}

/// A party name must be usable in a file name and a DNS label: 1 to 63
/// characters of `a-z`, `0-9` and `-`, not starting or ending with `-`, and
/// not starting with `node-` (reserved for compute nodes).
pub fn validate_party_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(PkiError::BadPartyName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > 63 {
        return bad("use 1 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("use only lower-case letters a-z, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("must not start or end with '-'");
    }
    if name.starts_with("node-") {
        return bad("names starting with 'node-' are reserved for compute nodes");
    }
    Ok(())
}

/// Create a new deployment PKI in `dir`: a CA, `opts.nodes` node
/// certificates and one client certificate per party.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<Vec<WrittenFile>> {
    if opts.nodes != kuvert_mpc::transport::PARTIES {
        return Err(PkiError::BadNodeCount(opts.nodes));
    }
    check_validity(opts.validity_days)?;
    let mut seen = std::collections::BTreeSet::new();
    for p in &opts.parties {
        validate_party_name(p)?;
        if !seen.insert(p.as_str()) {
            return Err(PkiError::BadPartyName {
                name: p.clone(),
                reason: "listed twice".into(),
            });
        }
    }
    if dir.exists() {
        let non_empty = fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .next()
            .is_some();
        if non_empty && !opts.force {
            return Err(PkiError::DirExists {
                dir: dir.to_path_buf(),
            });
        }
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let layout = PkiLayout::new(dir);
    let mut written = Vec::new();

    let now = OffsetDateTime::now_utc();
    let ca_days = (opts.validity_days as i64 * 10).min(20 * 365);
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    // The creation time in the name tells CAs apart during a rotation (and
    // makes a certificate of another deployment fail as "unknown issuer").
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut tag = [0u8; 4];
    ring_fill(&mut tag)?;
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!(
            "kuvert deployment CA {stamp} {:02x}{:02x}{:02x}{:02x}",
            tag[0], tag[1], tag[2], tag[3]
        ),
    );
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "kuvert");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = now - Duration::minutes(5);
    ca_params.not_after = now + Duration::days(ca_days);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write_file(&layout.ca_cert(), ca_cert.pem().as_bytes(), false, true)?;
    written.push(WrittenFile {
        path: layout.ca_cert(),
        what: "deployment CA certificate (give to every node and party)".into(),
        secret: false,
    });
    write_key(&layout.ca_key(), &ca_key, true)?;
    written.push(WrittenFile {
        path: layout.ca_key(),
        what: "deployment CA private key (keep offline)".into(),
        secret: true,
    });
    let issuer = Issuer {
        cert: ca_cert,
        key: ca_key,
    };
    for i in 0..opts.nodes {
        written.extend(issue_node_with(
            &issuer,
            &layout,
            i,
            opts.validity_days,
            true,
        )?);
    }
    for p in &opts.parties {
        written.extend(issue_party_with(
            &issuer,
            &layout,
            p,
            opts.validity_days,
            true,
        )?);
    }
    Ok(written)
}

/// Issue a new certificate and key for node `i` from the CA in `dir`
/// (rotation of one node's key). Refuses to replace existing files unless
/// `force`.
pub fn issue_node(
    dir: &Path,
    i: PartyId,
    validity_days: u32,
    force: bool,
) -> Result<Vec<WrittenFile>> {
    if i >= kuvert_mpc::transport::PARTIES {
        return Err(PkiError::BadNode(i));
    }
    check_validity(validity_days)?;
    let layout = PkiLayout::new(dir);
    let issuer = Issuer::load(&layout)?;
    issue_node_with(&issuer, &layout, i, validity_days, force)
}

/// Issue a new client certificate and key for party `name` from the CA in
/// `dir` (a new party, or rotation of a party's key).
pub fn issue_party(
    dir: &Path,
    name: &str,
    validity_days: u32,
    force: bool,
) -> Result<Vec<WrittenFile>> {
    validate_party_name(name)?;
    check_validity(validity_days)?;
    let layout = PkiLayout::new(dir);
    let issuer = Issuer::load(&layout)?;
    issue_party_with(&issuer, &layout, name, validity_days, force)
}

/// Random bytes from the operating system's CSPRNG (through ring, which
/// rcgen already uses for key generation).
fn ring_fill(buf: &mut [u8]) -> Result<()> {
    use rustls::crypto::ring::default_provider;
    default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| PkiError::Random)
}

fn check_validity(days: u32) -> Result<()> {
    if days == 0 || days > 3650 {
        return Err(PkiError::BadValidity(days));
    }
    Ok(())
}

/// The CA as rcgen needs it to sign. No `Debug`: it holds the CA key.
struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Issuer {
    fn load(layout: &PkiLayout) -> Result<Issuer> {
        let mut key_pem = read_string(&layout.ca_key())?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadPem {
            path: layout.ca_key(),
            what: "private key",
            detail: e.to_string(),
        });
        key_pem.zeroize();
        let key = key?;
        let cert_pem = read_string(&layout.ca_cert())?;
        let params =
            CertificateParams::from_ca_cert_pem(&cert_pem).map_err(|e| PkiError::BadPem {
                path: layout.ca_cert(),
                what: "CA certificate",
                detail: e.to_string(),
            })?;
        // rcgen signs with the issuer's name and key; re-creating the CA
        // certificate object from its parameters and key gives the same
        // issuer name and key identifier, so new certificates chain to the
        // existing ca.crt.
        let cert = params.self_signed(&key)?;
        Ok(Issuer { cert, key })
    }
}

fn leaf_params(validity_days: u32) -> Result<CertificateParams> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(validity_days as i64);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn issue_node_with(
    issuer: &Issuer,
    layout: &PkiLayout,
    i: PartyId,
    validity_days: u32,
    force: bool,
) -> Result<Vec<WrittenFile>> {
    let name = node_name(i);
    let mut params = leaf_params(validity_days)?;
    params
        .distinguished_name
        .push(DnType::CommonName, name.clone());
    params.subject_alt_names = vec![
        SanType::DnsName(name.clone().try_into()?),
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key)?;
    write_file(&layout.node_cert(i), cert.pem().as_bytes(), false, force)?;
    write_key(&layout.node_key(i), &key, force)?;
    Ok(vec![
        WrittenFile {
            path: layout.node_cert(i),
            what: format!("certificate of node {i} ({name})"),
            secret: false,
        },
        WrittenFile {
            path: layout.node_key(i),
            what: format!("private key of node {i} (give only to its operator)"),
            secret: true,
        },
    ])
}

fn issue_party_with(
    issuer: &Issuer,
    layout: &PkiLayout,
    name: &str,
    validity_days: u32,
    force: bool,
) -> Result<Vec<WrittenFile>> {
    let mut params = leaf_params(validity_days)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key)?;
    write_file(
        &layout.party_cert(name),
        cert.pem().as_bytes(),
        false,
        force,
    )?;
    write_key(&layout.party_key(name), &key, force)?;
    Ok(vec![
        WrittenFile {
            path: layout.party_cert(name),
            what: format!("client certificate of party {name}"),
            secret: false,
        },
        WrittenFile {
            path: layout.party_key(name),
            what: format!("private key of party {name} (give only to that party)"),
            secret: true,
        },
    ])
}

fn write_key(path: &Path, key: &KeyPair, force: bool) -> Result<()> {
    let mut pem = key.serialize_pem();
    let r = write_file(path, pem.as_bytes(), true, force);
    pem.zeroize();
    r
}

fn write_file(path: &Path, contents: &[u8], secret: bool, force: bool) -> Result<()> {
    if path.exists() {
        if !force {
            return Err(PkiError::FileExists {
                path: path.to_path_buf(),
            });
        }
        // Remove first so that the new file gets our mode even if the old
        // one had a looser one.
        fs::remove_file(path).map_err(|e| io_err(path, e))?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(contents).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))?;
    Ok(())
}

fn io_err(path: &Path, source: std::io::Error) -> PkiError {
    PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| io_err(path, e))
}

// ----- loading -----------------------------------------------------------

/// Read every certificate of a PEM file (leaf first, as usual).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = fs::read(path).map_err(|e| io_err(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| PkiError::BadPem {
            path: path.to_path_buf(),
            what: "certificate",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::BadPem {
            path: path.to_path_buf(),
            what: "certificate",
            detail: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// Read a private key (PKCS#8, SEC1 or PKCS#1 PEM). The file contents are
/// wiped from our buffer after parsing.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let mut pem = fs::read(path).map_err(|e| io_err(path, e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| PkiError::BadPem {
        path: path.to_path_buf(),
        what: "private key",
        detail: e.to_string(),
    });
    pem.zeroize();
    key
}

/// The trust anchors of a deployment: the certificates in `ca.crt`. Several
/// CA certificates may be concatenated there during a CA rotation.
pub fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| PkiError::BadPem {
            path: path.to_path_buf(),
            what: "CA certificate",
            detail: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// A certificate chain and its private key: what a node or party presents
/// in the TLS handshake. Deliberately not `Debug` (it holds a key); the key
/// is wiped on drop.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Load from a certificate file and a key file.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity> {
        Ok(Identity {
            certs: load_certs(cert)?,
            key: load_key(key)?,
        })
    }

    /// Node `i`'s identity from a PKI directory.
    pub fn load_node(dir: &Path, i: PartyId) -> Result<Identity> {
        let l = PkiLayout::new(dir);
        Identity::load(&l.node_cert(i), &l.node_key(i))
    }

    /// Party `name`'s identity from a PKI directory.
    pub fn load_party(dir: &Path, name: &str) -> Result<Identity> {
        let l = PkiLayout::new(dir);
        Identity::load(&l.party_cert(name), &l.party_key(name))
    }

    /// A copy of the key for a rustls configuration (which keeps its own
    /// copy for as long as the configuration lives).
    pub fn clone_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Who is at the other end of a verified TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// A compute node: its certificate names `node-<i>`.
    Node(PartyId),
    /// A contributing or receiving party: its certificate's common name.
    Party(String),
}

/// Read the identity out of a peer's end-entity certificate. Call this only
/// on a certificate that the TLS layer has already verified against the
/// deployment CA. A certificate with a `node-<i>` DNS name (i in 0..3) is a
/// node; otherwise the subject common name is the party name (which
/// [`validate_party_name`] keeps apart from node names).
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<PeerIdentity> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| PkiError::BadPeerCert(e.to_string()))?;
    let san = x509
        .subject_alternative_name()
        .map_err(|e| PkiError::BadPeerCert(e.to_string()))?;
    let mut nodes = Vec::new();
    if let Some(san) = san {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                for i in 0..kuvert_mpc::transport::PARTIES {
                    if *dns == node_name(i) {
                        nodes.push(i);
                    }
                }
            }
        }
    }
    match nodes.as_slice() {
        [i] => return Ok(PeerIdentity::Node(*i)),
        [] => {}
        _ => {
            return Err(PkiError::BadPeerCert(format!(
                "certificate names several nodes {nodes:?}"
            )))
        }
    }
    let cn = x509
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| PkiError::BadPeerCert("certificate has no common name".into()))?;
    validate_party_name(cn).map_err(|e| PkiError::BadPeerCert(e.to_string()))?;
    Ok(PeerIdentity::Party(cn.to_string()))
}
