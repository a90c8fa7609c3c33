//! The PKI of a deployment: certificate authorities, the compute nodes'
//! certificates, the parties' client certificates and the coordinator's
//! server certificate.
//!
//! # Production: one CA per operator, no key ever leaves its machine
//!
//! Each of the three node operators runs its own CA ([`ca_init`]), kept
//! offline. A key is generated on the machine that will use it, together
//! with a certificate signing request (CSR) for one [`CertRole`]
//! ([`request`]). Only the CSR travels to the CA, which verifies it and
//! checks that it asks for exactly the role the CA operator means to sign
//! ([`sign_request`]); only the certificate travels back. So no single
//! party ever holds the keys of two nodes, and a CA key can issue
//! certificates only under that CA, which the other operators trust for
//! one node (the federation file pins each node's CA and key fingerprint).
//! The step-by-step ceremony is in `docs/pki.md`.
//!
//! # Development: one CA for everything
//!
//! [`init`], [`issue_node`] and [`issue_party`] make one CA and every node's
//! and party's key in one directory. Whoever holds that directory can
//! impersonate every node: they are for a single-machine development PKI
//! (the throw-away local cluster of `kuvert run`, `kuvert bench`,
//! `kuvert demo`, tests), never for a deployment with independent
//! operators.
//!
//! # Files (all PEM)
//!
//! ```text
//! DIR/ca.crt               a CA certificate: give it to whoever must trust the CA
//! DIR/ca.key               the CA's private key: keep offline, only needed to sign
//! DIR/node-<i>.crt/.key/.csr   node i: SAN DNS `node-<i>` (+ requested hosts);
//!                          TLS server and client
//! DIR/party-<name>.crt/.key/.csr  a party: CN = name; TLS client only
//! DIR/server.crt/.key/.csr a TLS server that is not a node (the coordinator):
//!                          CN = first host, SAN = the hosts
//! ```
//!
//! The development [`init`] also puts `localhost` and `127.0.0.1` in node
//! certificates; [`request`] puts only the names asked for.
//!
//! Node identity is the DNS name `node-<i>` in the certificate, never the
//! address it connects from: a node dialling node `j` verifies the server
//! name `node-<j>`, and a node accepting a connection reads the name from
//! the verified client certificate ([`peer_identity`]). Therefore no party
//! or server certificate may carry a `node-<n>` name, and [`sign_request`]
//! refuses to issue one.
//!
//! Keys are ECDSA P-256 (rcgen's default), generated from the operating
//! system's CSPRNG by `ring`. Key files are written with mode 0600,
//! certificates and requests with 0644. Serial numbers are random (128
//! bits). Key material we hold in memory is wiped after use (PEM text, and
//! rcgen's DER copy of a CA key once it has signed); see the crate docs for
//! what is not.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, PrivateKeyDer};
use rustls::RootCertStore;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroize;

use kuvert_mpc::PartyId;

/// Errors of the PKI functions. Each names the file or the input at fault
/// and says what to do next.
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
    #[error("invalid organisation name {org:?}: {reason}")]
    BadOrg { org: String, reason: String },
    #[error("invalid host {host:?}: {reason}")]
    BadHost { host: String, reason: String },
    #[error("a server certificate needs at least one --host: the DNS name or IP address that clients connect to")]
    NoHosts,
    #[error("{path}: the request's signature does not verify with the key in it, so the file was altered or forged; do not sign it, and ask the requester to run `kuvert pki request` again and send the new .csr")]
    BadCsrSignature { path: PathBuf },
    #[error("{path}: refusing to sign this request as {role}: {detail}; check that you were sent the right file and chose the right --node/--party/--server, and if in doubt ask for a new request")]
    CsrMismatch {
        path: PathBuf,
        role: String,
        detail: String,
    },
    #[error("{key}: this private key does not belong to the CA certificate {cert}; use the ca.key that was created together with that ca.crt")]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{path}: {detail}")]
    CaValidity { path: PathBuf, detail: String },
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

/// True for names of the form `node-<digits>`: reserved for compute nodes,
/// never allowed in a party's or a server's certificate (and in a node's
/// only as its own name).
fn is_node_like(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower
        .strip_prefix("node-")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// Which certificate a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRole {
    /// Compute node `i`: CN and DNS name `node-<i>` (plus requested hosts),
    /// TLS server and client.
    Node(PartyId),
    /// A contributing or receiving party (an agency): CN = the party name,
    /// TLS client only.
    Party(String),
    /// A TLS server that is not a node (the coordinator): CN = the first
    /// host, DNS names / IP addresses = the hosts, TLS server only.
    Server,
}

impl CertRole {
    /// Refuse a node index outside 0..3 or an invalid party name.
    pub fn check(&self) -> Result<()> {
        match self {
            CertRole::Node(i) if *i >= kuvert_mpc::transport::PARTIES => Err(PkiError::BadNode(*i)),
            CertRole::Node(_) | CertRole::Server => Ok(()),
            CertRole::Party(name) => validate_party_name(name),
        }
    }

    /// The file name stem of this role's files: `node-<i>`, `party-<name>`
    /// or `server`.
    pub fn file_base(&self) -> String {
        match self {
            CertRole::Node(i) => node_name(*i),
            CertRole::Party(name) => format!("party-{name}"),
            CertRole::Server => "server".into(),
        }
    }
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertRole::Node(i) => write!(f, "node {i} ({})", node_name(*i)),
            CertRole::Party(name) => write!(f, "party {name}"),
            CertRole::Server => f.write_str("server"),
        }
    }
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
        self.cert_for(&CertRole::Node(i))
    }
    pub fn node_key(&self, i: PartyId) -> PathBuf {
        self.key_for(&CertRole::Node(i))
    }
    /// `DIR/node-<i>.csr`.
    pub fn node_csr(&self, i: PartyId) -> PathBuf {
        self.csr_for(&CertRole::Node(i))
    }
    pub fn party_cert(&self, name: &str) -> PathBuf {
        self.cert_for(&CertRole::Party(name.into()))
    }
    pub fn party_key(&self, name: &str) -> PathBuf {
        self.key_for(&CertRole::Party(name.into()))
    }
    /// `DIR/party-<name>.csr`.
    pub fn party_csr(&self, name: &str) -> PathBuf {
        self.csr_for(&CertRole::Party(name.into()))
    }
    /// `DIR/server.crt`.
    pub fn server_cert(&self) -> PathBuf {
        self.cert_for(&CertRole::Server)
    }
    /// `DIR/server.key`.
    pub fn server_key(&self) -> PathBuf {
        self.key_for(&CertRole::Server)
    }
    /// `DIR/server.csr`.
    pub fn server_csr(&self) -> PathBuf {
        self.csr_for(&CertRole::Server)
    }
    /// The certificate of `role`: `DIR/<base>.crt`.
    pub fn cert_for(&self, role: &CertRole) -> PathBuf {
        self.dir.join(format!("{}.crt", role.file_base()))
    }
    /// The private key of `role`: `DIR/<base>.key`.
    pub fn key_for(&self, role: &CertRole) -> PathBuf {
        self.dir.join(format!("{}.key", role.file_base()))
    }
    /// The signing request of `role`: `DIR/<base>.csr`.
    pub fn csr_for(&self, role: &CertRole) -> PathBuf {
        self.dir.join(format!("{}.csr", role.file_base()))
    }
}

/// What [`init`], [`ca_init`], [`request`], [`sign_request`] and the
/// `issue_*` functions wrote.
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

/// An organisation name for [`ca_init`]: 1 to 64 characters, no control
/// characters, not only spaces.
fn validate_org(org: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(PkiError::BadOrg {
            org: org.to_string(),
            reason: reason.to_string(),
        })
    };
    if org.trim().is_empty() || org.chars().count() > 64 {
        return bad("use 1 to 64 characters, e.g. --org \"Region Skane\"");
    }
    if org.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    if org.trim() != org {
        return bad("remove the leading or trailing spaces");
    }
    Ok(())
}

/// Refuse a non-empty directory unless `force`; create it if missing.
fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() {
        let non_empty = fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .next()
            .is_some();
        if non_empty && !force {
            return Err(PkiError::DirExists {
                dir: dir.to_path_buf(),
            });
        }
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A new self-signed CA certificate and key. The creation time and a random
/// tag in the common name tell CAs apart during a rotation (and make a
/// certificate of another CA fail as "unknown issuer" rather than as a bad
/// signature).
fn new_ca(cn_prefix: &str, org: &str, days: i64) -> Result<Issuer> {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut tag = [0u8; 4];
    ring_fill(&mut tag)?;
    let tag = hex(&tag);
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("{cn_prefix} {} {tag}", fmt_time(now)),
    );
    dn.push(DnType::OrganizationName, org);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(random_serial()?);
    let not_after = params.not_after;
    let cert = params.self_signed(&key)?;
    Ok(Issuer {
        cert,
        key,
        not_after,
        cert_path: PathBuf::new(),
    })
}

/// Write a CA's certificate and key into `layout`.
fn write_ca(
    issuer: &Issuer,
    layout: &PkiLayout,
    force: bool,
    cert_what: String,
    key_what: String,
) -> Result<Vec<WrittenFile>> {
    write_file(
        &layout.ca_cert(),
        issuer.cert.pem().as_bytes(),
        false,
        force,
    )?;
    write_key(&layout.ca_key(), &issuer.key, force)?;
    Ok(vec![
        WrittenFile {
            path: layout.ca_cert(),
            what: cert_what,
            secret: false,
        },
        WrittenFile {
            path: layout.ca_key(),
            what: key_what,
            secret: true,
        },
    ])
}

/// A new CA for one organisation (one node operator, or whoever issues the
/// parties' client certificates) in `dir`: `dir/ca.crt` (0644) and
/// `dir/ca.key` (0600), valid for `validity_days` (1 to 3650). The CA's
/// subject names `org`: O = org, CN = "<org> kuvert CA <timestamp> <random
/// tag>". It may sign only end-entity certificates (path length 0).
/// Refuses a non-empty `dir` unless `force`.
pub fn ca_init(dir: &Path, org: &str, validity_days: u32, force: bool) -> Result<Vec<WrittenFile>> {
    validate_org(org)?;
    check_validity(validity_days)?;
    prepare_dir(dir, force)?;
    let issuer = new_ca(&format!("{org} kuvert CA"), org, validity_days as i64)?;
    write_ca(
        &issuer,
        &PkiLayout::new(dir),
        true,
        format!("{org} CA certificate: public, give it to whoever must trust this CA"),
        format!("{org} CA private key: keep offline, needed only to sign"),
    )
}

/// A DNS name or an IP address a certificate is asked to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Dns(String),
    Ip(IpAddr),
}

impl Host {
    fn text(&self) -> String {
        match self {
            Host::Dns(d) => d.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
    fn san(&self) -> Result<SanType> {
        Ok(match self {
            Host::Dns(d) => SanType::DnsName(d.clone().try_into()?),
            Host::Ip(ip) => SanType::IpAddress(*ip),
        })
    }
}

/// Parse a `--host`: an IPv4 or IPv6 address, or a DNS name (letters,
/// digits and '-' in dot-separated labels of at most 63 characters, 253 in
/// all; no wildcards). DNS names are lower-cased.
fn parse_host(s: &str) -> Result<Host> {
    let bad = |reason: &str| {
        Err(PkiError::BadHost {
            host: s.to_string(),
            reason: reason.to_string(),
        })
    };
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = s.to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return bad("give a DNS name of 1 to 253 characters or an IP address");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad(
                "each dot-separated part of a DNS name has 1 to 63 characters (no trailing dot)",
            );
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("a DNS name has only letters, digits, '-' and '.' (no wildcards)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a part of a DNS name must not start or end with '-'");
        }
    }
    Ok(Host::Dns(name))
}

/// The subject alternative names a request for `role` carries, in order
/// (the first is the server certificate's CN).
fn request_hosts(role: &CertRole, hosts: &[String]) -> Result<Vec<Host>> {
    let mut out: Vec<Host> = Vec::new();
    let mut push = |h: Host| {
        if !out.contains(&h) {
            out.push(h);
        }
    };
    match role {
        CertRole::Node(i) => {
            let own = node_name(*i);
            push(Host::Dns(own.clone()));
            for h in hosts {
                let host = parse_host(h)?;
                if let Host::Dns(d) = &host {
                    if is_node_like(d) && *d != own {
                        return Err(PkiError::BadHost {
                            host: h.clone(),
                            reason: format!("{d} names another compute node; node {i} may carry only its own name {own}"),
                        });
                    }
                }
                push(host);
            }
        }
        CertRole::Party(_) => {
            if let Some(h) = hosts.first() {
                return Err(PkiError::BadHost {
                    host: h.clone(),
                    reason: "a party's client certificate carries no host names or addresses; leave out --host".into(),
                });
            }
        }
        CertRole::Server => {
            if hosts.is_empty() {
                return Err(PkiError::NoHosts);
            }
            for h in hosts {
                let host = parse_host(h)?;
                if let Host::Dns(d) = &host {
                    if is_node_like(d) {
                        return Err(PkiError::BadHost {
                            host: h.clone(),
                            reason: "names node-<n> are reserved for compute nodes".into(),
                        });
                    }
                }
                push(host);
            }
        }
    }
    Ok(out)
}

/// On the machine that will use the key: generate a fresh key (ECDSA
/// P-256, from the operating system's CSPRNG) and a certificate signing
/// request for `role` in `dir`. `hosts` are extra DNS names or IP addresses
/// the certificate should carry (for [`CertRole::Node`], in addition to
/// `node-<i>`, and for [`CertRole::Server`], where the first is also the
/// CN); a [`CertRole::Party`] takes none. Writes `<base>.key` (0600; it
/// never leaves this machine) and `<base>.csr` (0644; send it to the CA),
/// where base = `node-<i>` | `party-<name>` | `server`. Creates `dir` if
/// needed; refuses to replace either file unless `force`.
pub fn request(
    dir: &Path,
    role: &CertRole,
    hosts: &[String],
    force: bool,
) -> Result<Vec<WrittenFile>> {
    role.check()?;
    let sans = request_hosts(role, hosts)?;
    let layout = PkiLayout::new(dir);
    let (key_path, csr_path) = (layout.key_for(role), layout.csr_for(role));
    if !force {
        for p in [&key_path, &csr_path] {
            if p.exists() {
                return Err(PkiError::FileExists { path: p.clone() });
            }
        }
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let cn = match role {
        CertRole::Node(i) => node_name(*i),
        CertRole::Party(name) => name.clone(),
        CertRole::Server => sans[0].text(),
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.subject_alt_names = sans.iter().map(Host::san).collect::<Result<_>>()?;
    let mut key = KeyPair::generate()?;
    let csr = params.serialize_request(&key)?;
    let csr_pem = csr.pem()?;
    let r = write_key(&key_path, &key, force);
    key.zeroize();
    r?;
    write_file(&csr_path, csr_pem.as_bytes(), false, force)?;
    Ok(vec![
        WrittenFile {
            path: key_path,
            what: format!("private key of {role}: stays on this machine, never send it"),
            secret: true,
        },
        WrittenFile {
            path: csr_path,
            what: format!("certificate request of {role}: send it to the CA that signs it"),
            secret: false,
        },
    ])
}

/// What a certificate signing request asks for, read by [`read_request`]
/// after its signature has been verified.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The subject, e.g. `CN=node-1`.
    pub subject: String,
    /// The subject's common name when there is exactly one.
    pub common_name: Option<String>,
    /// The DNS names and IP addresses asked for, in order.
    pub names: Vec<String>,
    /// [`spki_fingerprint`] form of the requested key: the certificate
    /// issued for this request has this fingerprint.
    pub fingerprint: String,
    hosts: Vec<Host>,
    unsupported: Vec<String>,
    asks_ca: bool,
    spki_der: Vec<u8>,
}

impl RequestInfo {
    /// The role this request looks made for (by its names), if any; what
    /// [`sign_request`] accepts is decided by the role the CA names.
    pub fn likely_role(&self) -> Option<CertRole> {
        let cn = self.common_name.as_deref()?;
        for i in 0..kuvert_mpc::transport::PARTIES {
            if cn == node_name(i) {
                return Some(CertRole::Node(i));
            }
        }
        if self.names.is_empty() && validate_party_name(cn).is_ok() {
            return Some(CertRole::Party(cn.to_string()));
        }
        if self.names.first().map(String::as_str) == Some(cn) {
            return Some(CertRole::Server);
        }
        None
    }
}

/// Read a certificate signing request (PEM) and verify its self-signature
/// (proof that whoever made it holds the key in it). Refuses an altered or
/// forged request with [`PkiError::BadCsrSignature`].
pub fn read_request(csr: &Path) -> Result<RequestInfo> {
    let pem = fs::read(csr).map_err(|e| io_err(csr, e))?;
    let der = CertificateSigningRequestDer::from_pem_slice(&pem).map_err(|e| PkiError::BadPem {
        path: csr.to_path_buf(),
        what: "certificate signing request",
        detail: format!(
            "{e} (expected a BEGIN CERTIFICATE REQUEST block, as written by `kuvert pki request`)"
        ),
    })?;
    parse_request(csr, der.as_ref())
}

fn parse_request(path: &Path, der: &[u8]) -> Result<RequestInfo> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let bad = |detail: String| PkiError::BadPem {
        path: path.to_path_buf(),
        what: "certificate signing request",
        detail,
    };
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad("trailing data after the request".into()));
    }
    // rcgen's CSR parser verifies too, but we do not build on it: the
    // check that the requester holds the key is ours.
    csr.verify_signature()
        .map_err(|_| PkiError::BadCsrSignature {
            path: path.to_path_buf(),
        })?;
    let info = &csr.certification_request_info;
    let cns: Vec<String> = info
        .subject
        .iter_common_name()
        .map(|cn| {
            cn.as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| "<unreadable>".into())
        })
        .collect();
    let mut hosts = Vec::new();
    let mut unsupported = Vec::new();
    let mut asks_ca = false;
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for gn in &san.general_names {
                        match gn {
                            GeneralName::DNSName(d) => hosts.push(Host::Dns(d.to_string())),
                            GeneralName::IPAddress(b) => match b.len() {
                                4 => hosts.push(Host::Ip(IpAddr::from(
                                    <[u8; 4]>::try_from(*b).expect("4 bytes"),
                                ))),
                                16 => hosts.push(Host::Ip(IpAddr::from(
                                    <[u8; 16]>::try_from(*b).expect("16 bytes"),
                                ))),
                                _ => unsupported.push(format!("IP address of {} bytes", b.len())),
                            },
                            other => unsupported.push(format!("{other:?}")),
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) if bc.ca => asks_ca = true,
                ParsedExtension::ParseError { error } => {
                    return Err(bad(format!(
                        "a requested extension cannot be read: {error}"
                    )))
                }
                // Other requested extensions (key usages, ...) are never
                // copied: the CA decides them by role.
                _ => {}
            }
        }
    }
    use sha2::{Digest, Sha256};
    let fingerprint = hex(&Sha256::digest(info.subject_pki.raw));
    Ok(RequestInfo {
        subject: info.subject.to_string(),
        common_name: if cns.len() == 1 {
            cns.into_iter().next()
        } else {
            None
        },
        names: hosts.iter().map(Host::text).collect(),
        fingerprint,
        hosts,
        unsupported,
        asks_ca,
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

/// Check that `req` asks for exactly `role`; the names the certificate gets.
fn check_request(req: &RequestInfo, role: &CertRole) -> std::result::Result<Vec<Host>, String> {
    let cn = req.common_name.as_deref().ok_or_else(|| {
        format!(
            "its subject {:?} has not exactly one common name (CN)",
            req.subject
        )
    })?;
    if !req.unsupported.is_empty() {
        return Err(format!(
            "it asks for names kuvert does not issue ({}); only DNS names and IP addresses",
            req.unsupported.join(", ")
        ));
    }
    if req.asks_ca {
        return Err("it asks to be a certificate authority".into());
    }
    let made_for = || match req.likely_role() {
        Some(r) => format!("it was made for {r} (CN {cn:?})"),
        None => format!("its common name is {cn:?}"),
    };
    match role {
        CertRole::Node(i) => {
            let own = node_name(*i);
            if cn != own {
                return Err(format!("{}, not for {own}", made_for()));
            }
            if !req.hosts.contains(&Host::Dns(own.clone())) {
                return Err(format!("it lacks the DNS name {own}"));
            }
            let mut out = vec![Host::Dns(own.clone())];
            for h in &req.hosts {
                if let Host::Dns(d) = h {
                    if is_node_like(d) && *d != own {
                        return Err(format!("it also asks for the name {d} of another node"));
                    }
                    if parse_host(d).is_err() {
                        return Err(format!("it asks for the malformed DNS name {d:?}"));
                    }
                }
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
            Ok(out)
        }
        CertRole::Party(name) => {
            if cn != name {
                return Err(format!("{}, not for party {name}", made_for()));
            }
            if !req.hosts.is_empty() {
                return Err(format!(
                    "it asks for host names or addresses ({}); a party's client certificate carries none",
                    req.names.join(", ")
                ));
            }
            Ok(Vec::new())
        }
        CertRole::Server => {
            let first = req.hosts.first().ok_or_else(|| {
                format!("{}; a server request names at least one host", made_for())
            })?;
            if first.text() != cn {
                return Err(format!(
                    "its common name {cn:?} is not its first host {:?}",
                    first.text()
                ));
            }
            let mut out = Vec::new();
            for h in &req.hosts {
                if let Host::Dns(d) = h {
                    if is_node_like(d) {
                        return Err(format!(
                            "it asks for the name {d}, which is reserved for compute nodes"
                        ));
                    }
                    if parse_host(d).is_err() {
                        return Err(format!("it asks for the malformed DNS name {d:?}"));
                    }
                }
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
            Ok(out)
        }
    }
}

/// At the CA: verify the request in `csr` (its self-signature, and that it
/// asks for exactly `role`: a `node-1` request cannot be signed as node 2,
/// a party request cannot carry a `node-<i>` name or any DNS name, a server
/// request names at least one host), then issue a certificate from the CA
/// in `ca_dir` (`ca.crt`, `ca.key`) to `out` (0644), valid for
/// `validity_days` (1 to 3650, and not beyond the CA's own expiry).
///
/// - Node: CN `node-<i>`, SAN DNS `node-<i>` + the requested hosts, EKU
///   serverAuth + clientAuth.
/// - Party: CN = name, EKU clientAuth only.
/// - Server: CN = first host, SAN = the hosts, EKU serverAuth.
///
/// Nothing else is copied from the request. The public key in the issued
/// certificate is the request's (the private key never came here), so the
/// certificate's [`spki_fingerprint`] equals [`RequestInfo::fingerprint`].
/// The CA key is read, used and wiped. Refuses to replace `out` unless
/// `force`.
pub fn sign_request(
    ca_dir: &Path,
    csr: &Path,
    role: &CertRole,
    out: &Path,
    validity_days: u32,
    force: bool,
) -> Result<WrittenFile> {
    role.check()?;
    check_validity(validity_days)?;
    if out.exists() && !force {
        return Err(PkiError::FileExists {
            path: out.to_path_buf(),
        });
    }
    let req = read_request(csr)?;
    let mismatch = |detail: String| PkiError::CsrMismatch {
        path: csr.to_path_buf(),
        role: role.to_string(),
        detail,
    };
    let hosts = check_request(&req, role).map_err(mismatch)?;
    let public_key = rcgen::SubjectPublicKeyInfo::from_der(&req.spki_der).map_err(|e| {
        mismatch(format!(
            "its key type is not supported ({e}); make the request with `kuvert pki request` (ECDSA P-256)"
        ))
    })?;
    let mut params = leaf_params(validity_days)?;
    let cn = match role {
        CertRole::Node(i) => {
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            node_name(*i)
        }
        CertRole::Party(name) => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            name.clone()
        }
        CertRole::Server => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            hosts[0].text()
        }
    };
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = hosts.iter().map(Host::san).collect::<Result<_>>()?;
    let issuer = Issuer::load(&PkiLayout::new(ca_dir))?;
    issuer.check_covers(params.not_after)?;
    let cert = params.signed_by(&public_key, &issuer.cert, &issuer.key)?;
    drop(issuer);
    if spki_fingerprint(cert.der())? != req.fingerprint {
        return Err(mismatch(
            "its key is encoded in a form that would not be carried over unchanged".into(),
        ));
    }
    write_file(out, cert.pem().as_bytes(), false, force)?;
    Ok(WrittenFile {
        path: out.to_path_buf(),
        what: format!(
            "certificate of {role}: send it back to the requester, with this CA's ca.crt"
        ),
        secret: false,
    })
}

/// Development only: create a single-machine PKI in `dir`: one CA,
/// `opts.nodes` node certificates and one client certificate per party,
/// every key made here. Whoever holds this directory can impersonate every
/// node; for a deployment use [`ca_init`], [`request`] and
/// [`sign_request`] (docs/pki.md). The local cluster of `kuvert run` and
/// `kuvert bench` uses this.
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
    prepare_dir(dir, opts.force)?;
    let layout = PkiLayout::new(dir);
    let ca_days = (opts.validity_days as i64 * 10).min(20 * 365);
    let mut issuer = new_ca("kuvert deployment CA", "kuvert", ca_days)?;
    issuer.cert_path = layout.ca_cert();
    let mut written = write_ca(
        &issuer,
        &layout,
        true,
        "deployment CA certificate (give to every node and party)".into(),
        "deployment CA private key (keep offline)".into(),
    )?;
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

/// Development only (single-CA PKI of [`init`]): issue a new certificate
/// and a new key for node `i` from the CA in `dir`, both made here.
/// Refuses to replace existing files unless `force`. For a deployment, the
/// node makes its own key with [`request`] and its operator's CA signs it
/// with [`sign_request`].
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

/// Development only (single-CA PKI of [`init`]): issue a new client
/// certificate and key for party `name` from the CA in `dir`. For a
/// deployment, the party uses [`request`] and the CA [`sign_request`].
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

/// A random positive 128-bit serial number. (rcgen's default derives the
/// serial from the public key, so renewing a certificate on the same key
/// would repeat it.)
fn random_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    ring_fill(&mut b)?;
    b[0] = (b[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&b))
}

fn check_validity(days: u32) -> Result<()> {
    if days == 0 || days > 3650 {
        return Err(PkiError::BadValidity(days));
    }
    Ok(())
}

/// The CA as rcgen needs it to sign. No `Debug`: it holds the CA key,
/// which is wiped when this is dropped.
struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
    not_after: OffsetDateTime,
    /// Where `ca.crt` was read from (empty for a CA made in this process).
    cert_path: PathBuf,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Issuer {
    fn load(layout: &PkiLayout) -> Result<Issuer> {
        let (cert_path, key_path) = (layout.ca_cert(), layout.ca_key());
        let der = load_certs(&cert_path)?.swap_remove(0);
        let params = CertificateParams::from_ca_cert_der(&der).map_err(|e| PkiError::BadPem {
            path: cert_path.clone(),
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        if !matches!(params.is_ca, IsCa::Ca(_)) {
            return Err(PkiError::BadPem {
                path: cert_path,
                what: "CA certificate",
                detail:
                    "this is not a CA certificate; give the directory made by `kuvert pki ca init`"
                        .into(),
            });
        }
        let (_, x509) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| PkiError::BadPem {
                path: cert_path.clone(),
                what: "CA certificate",
                detail: e.to_string(),
            })?;
        let ca_spki = x509.tbs_certificate.subject_pki.raw.to_vec();
        let mut key_pem = read_string(&key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadPem {
            path: key_path.clone(),
            what: "private key",
            detail: e.to_string(),
        });
        key_pem.zeroize();
        let mut key = key?;
        if key.public_key_der() != ca_spki {
            key.zeroize();
            return Err(PkiError::CaKeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let not_after = params.not_after;
        // rcgen signs with the issuer's name and key; re-creating the CA
        // certificate object from its parameters and key gives the same
        // issuer name and key identifier, so new certificates chain to the
        // existing ca.crt.
        let cert = match params.self_signed(&key) {
            Ok(c) => c,
            Err(e) => {
                key.zeroize();
                return Err(e.into());
            }
        };
        Ok(Issuer {
            cert,
            key,
            not_after,
            cert_path,
        })
    }

    /// Refuse to sign beyond the CA's own validity.
    fn check_covers(&self, leaf_not_after: OffsetDateTime) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        let path = self.cert_path.clone();
        if self.not_after <= now {
            return Err(PkiError::CaValidity {
                path,
                detail: format!(
                    "this CA expired on {}; make a new CA and rotate (docs/pki.md)",
                    fmt_time(self.not_after)
                ),
            });
        }
        if leaf_not_after > self.not_after {
            let left = (self.not_after - now).whole_days();
            return Err(PkiError::CaValidity {
                path,
                detail: format!(
                    "this CA expires on {}, before the certificate would; pass --days {} or less, or make a new CA and rotate (docs/pki.md)",
                    fmt_time(self.not_after),
                    left.max(1)
                ),
            });
        }
        Ok(())
    }
}

fn leaf_params(validity_days: u32) -> Result<CertificateParams> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(validity_days as i64);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
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
    issuer.check_covers(params.not_after)?;
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
    let mut key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key)?;
    write_file(&layout.node_cert(i), cert.pem().as_bytes(), false, force)?;
    let r = write_key(&layout.node_key(i), &key, force);
    key.zeroize();
    r?;
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
    issuer.check_covers(params.not_after)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let mut key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.cert, &issuer.key)?;
    write_file(
        &layout.party_cert(name),
        cert.pem().as_bytes(),
        false,
        force,
    )?;
    let r = write_key(&layout.party_key(name), &key, force);
    key.zeroize();
    r?;
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

/// The fingerprint that pins a key: the lowercase hex SHA-256 of the
/// certificate's SubjectPublicKeyInfo (DER). Specs (`[[nodes]]`), the
/// federation file and the clients' pins all use this form. It names the
/// key, not the certificate, so a node that renews its certificate on the
/// same key keeps its fingerprint.
pub fn spki_fingerprint(cert: &CertificateDer<'_>) -> Result<String> {
    use sha2::{Digest, Sha256};
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| PkiError::BadPeerCert(e.to_string()))?;
    let digest = Sha256::digest(x509.tbs_certificate.subject_pki.raw);
    Ok(hex(&digest))
}

/// True when `s` has the form of [`spki_fingerprint`]: 64 lowercase hex digits.
pub fn is_fingerprint(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a certificate says, for printing (`kuvert pki sign`,
/// `kuvert pki fingerprint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject, e.g. `CN=node-1`.
    pub subject: String,
    /// The issuer (the CA's subject).
    pub issuer: String,
    /// DNS names and IP addresses, in order.
    pub names: Vec<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_before: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub not_after: String,
    /// True for a CA certificate.
    pub is_ca: bool,
    /// [`spki_fingerprint`] of the certificate's key.
    pub fingerprint: String,
}

/// Read the fields of `cert` that an operator checks.
pub fn cert_summary(cert: &CertificateDer<'_>) -> Result<CertSummary> {
    use x509_parser::extensions::GeneralName;
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| PkiError::BadPeerCert(e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        names.push(IpAddr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        names.push(IpAddr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertSummary {
        subject: x509.subject().to_string(),
        issuer: x509.issuer().to_string(),
        names,
        not_before: fmt_time(x509.validity().not_before.to_datetime()),
        not_after: fmt_time(x509.validity().not_after.to_datetime()),
        is_ca: x509.is_ca(),
        fingerprint: spki_fingerprint(cert)?,
    })
}

/// Lowercase hex of `bytes` (fingerprints, tags, keys in the federation).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as StdDuration;

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn cert(p: &Path) -> CertificateDer<'static> {
        load_certs(p).unwrap().swap_remove(0)
    }

    fn eku(c: &CertificateDer<'_>) -> (bool, bool) {
        let (_, x) = x509_parser::parse_x509_certificate(c.as_ref()).unwrap();
        let e = x.extended_key_usage().unwrap().unwrap().value;
        (e.server_auth, e.client_auth)
    }

    /// A CA in `root/name`, returns its directory.
    fn ca(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(name);
        let w = ca_init(&dir, &format!("Operator {name}"), 365, false).unwrap();
        assert_eq!(w.len(), 2);
        dir
    }

    /// A CSR written by rcgen directly: what a careless or hostile
    /// requester could send.
    fn raw_csr(path: &Path, cn: &str, sans: Vec<SanType>) {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        let csr = params.serialize_request(&key).unwrap();
        fs::write(path, csr.pem().unwrap()).unwrap();
    }

    #[test]
    fn ca_init_names_the_org_sets_modes_and_refuses_a_non_empty_dir() {
        let t = tempfile_dir("ca");
        let dir = t.join("a");
        let w = ca_init(&dir, "Region Skane", 30, false).unwrap();
        let l = PkiLayout::new(&dir);
        assert_eq!(w[0].path, l.ca_cert());
        assert_eq!(w[1].path, l.ca_key());
        assert!(w[1].secret && !w[0].secret);
        assert_eq!(mode(&l.ca_key()), 0o600);
        assert_eq!(mode(&l.ca_cert()), 0o644);
        let s = cert_summary(&cert(&l.ca_cert())).unwrap();
        assert!(s.is_ca);
        assert!(s.subject.contains("O=Region Skane"), "{}", s.subject);
        assert!(
            s.subject.contains("CN=Region Skane kuvert CA 20"),
            "{}",
            s.subject
        );
        assert!(matches!(
            ca_init(&dir, "Region Skane", 30, false),
            Err(PkiError::DirExists { .. })
        ));
        ca_init(&dir, "Region Skane", 30, true).unwrap();
        for bad in ["", " x", "a\nb", &"x".repeat(65)] {
            assert!(
                matches!(
                    ca_init(&t.join("b"), bad, 30, false),
                    Err(PkiError::BadOrg { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ca_init(&t.join("b"), "x", 0, false),
            Err(PkiError::BadValidity(0))
        ));
        assert!(!t.join("b").exists());
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn request_then_sign_round_trips_for_every_role() {
        let t = tempfile_dir("roundtrip");
        let ca_dir = ca(&t, "ca");
        let here = t.join("node-machine");
        let roles = [
            (
                CertRole::Node(1),
                vec![
                    "N1.Kommun.example".to_string(),
                    "10.0.0.5".into(),
                    "::1".into(),
                ],
            ),
            (CertRole::Party("malmo-stad".into()), vec![]),
            (
                CertRole::Server,
                vec!["coord.example.org".into(), "192.0.2.7".into()],
            ),
        ];
        for (role, hosts) in roles {
            let w = request(&here, &role, &hosts, false).unwrap();
            let l = PkiLayout::new(&here);
            assert_eq!(w[0].path, l.key_for(&role));
            assert_eq!(w[1].path, l.csr_for(&role));
            assert_eq!(mode(&l.key_for(&role)), 0o600);
            assert_eq!(mode(&l.csr_for(&role)), 0o644);
            assert!(w[0].secret && !w[1].secret);
            let req = read_request(&l.csr_for(&role)).unwrap();
            assert_eq!(req.likely_role(), Some(role.clone()));
            let out = l.cert_for(&role);
            let wf = sign_request(&ca_dir, &l.csr_for(&role), &role, &out, 90, false).unwrap();
            assert_eq!(wf.path, out);
            assert_eq!(mode(&out), 0o644);
            let c = cert(&out);
            // The certificate carries the requested key: the key never moved.
            assert_eq!(spki_fingerprint(&c).unwrap(), req.fingerprint);
            let key = load_key(&l.key_for(&role)).unwrap();
            let kp = KeyPair::try_from(&key).unwrap();
            let (_, x) = x509_parser::parse_x509_certificate(c.as_ref()).unwrap();
            assert_eq!(kp.public_key_der(), x.tbs_certificate.subject_pki.raw);
            let s = cert_summary(&c).unwrap();
            assert!(!s.is_ca);
            assert_eq!(
                s.issuer,
                cert_summary(&cert(&PkiLayout::new(&ca_dir).ca_cert()))
                    .unwrap()
                    .subject
            );
            match &role {
                CertRole::Node(i) => {
                    assert_eq!(peer_identity(&c).unwrap(), PeerIdentity::Node(*i));
                    assert_eq!(s.subject, "CN=node-1");
                    assert_eq!(s.names, ["node-1", "n1.kommun.example", "10.0.0.5", "::1"]);
                    assert_eq!(eku(&c), (true, true));
                }
                CertRole::Party(name) => {
                    assert_eq!(
                        peer_identity(&c).unwrap(),
                        PeerIdentity::Party(name.clone())
                    );
                    assert_eq!(s.subject, "CN=malmo-stad");
                    assert!(s.names.is_empty());
                    assert_eq!(eku(&c), (false, true));
                }
                CertRole::Server => {
                    assert_eq!(s.subject, "CN=coord.example.org");
                    assert_eq!(s.names, ["coord.example.org", "192.0.2.7"]);
                    assert_eq!(eku(&c), (true, false));
                }
            }
            // Signing again needs --force; a renewal keeps the key (and
            // its fingerprint) but gets a new serial number.
            assert!(matches!(
                sign_request(&ca_dir, &l.csr_for(&role), &role, &out, 90, false),
                Err(PkiError::FileExists { .. })
            ));
            sign_request(&ca_dir, &l.csr_for(&role), &role, &out, 90, true).unwrap();
            let c2 = cert(&out);
            assert_eq!(spki_fingerprint(&c2).unwrap(), req.fingerprint);
            let serial = |c: &CertificateDer<'_>| {
                x509_parser::parse_x509_certificate(c.as_ref())
                    .unwrap()
                    .1
                    .raw_serial()
                    .to_vec()
            };
            assert_ne!(serial(&c), serial(&c2));
        }
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn request_refuses_bad_input_and_existing_files() {
        let t = tempfile_dir("reqbad");
        assert!(matches!(
            request(&t, &CertRole::Server, &[], false),
            Err(PkiError::NoHosts)
        ));
        assert!(matches!(
            request(
                &t,
                &CertRole::Party("fk".into()),
                &["fk.example".into()],
                false
            ),
            Err(PkiError::BadHost { .. })
        ));
        assert!(matches!(
            request(&t, &CertRole::Node(0), &["node-2".into()], false),
            Err(PkiError::BadHost { .. })
        ));
        assert!(matches!(
            request(&t, &CertRole::Server, &["node-0".into()], false),
            Err(PkiError::BadHost { .. })
        ));
        for bad in ["*.example.org", "a..b", "-a.example", "a_b", "x.", ""] {
            assert!(
                matches!(
                    request(&t, &CertRole::Server, &[bad.into()], false),
                    Err(PkiError::BadHost { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            request(&t, &CertRole::Node(3), &[], false),
            Err(PkiError::BadNode(3))
        ));
        assert!(matches!(
            request(&t, &CertRole::Party("node-1".into()), &[], false),
            Err(PkiError::BadPartyName { .. })
        ));
        assert!(!t.exists(), "nothing may be written for bad input");
        request(&t, &CertRole::Node(0), &["node-0".into()], false).unwrap();
        let l = PkiLayout::new(&t);
        let key = fs::read(l.node_key(0)).unwrap();
        assert!(matches!(
            request(&t, &CertRole::Node(0), &[], false),
            Err(PkiError::FileExists { .. })
        ));
        assert_eq!(
            fs::read(l.node_key(0)).unwrap(),
            key,
            "the key must be untouched"
        );
        // A stray .csr alone also blocks (no key is generated then).
        fs::remove_file(l.node_key(0)).unwrap();
        assert!(matches!(
            request(&t, &CertRole::Node(0), &[], false),
            Err(PkiError::FileExists { .. })
        ));
        assert!(!l.node_key(0).exists());
        request(&t, &CertRole::Node(0), &[], true).unwrap();
        assert_ne!(fs::read(l.node_key(0)).unwrap(), key);
        assert_eq!(mode(&l.node_key(0)), 0o600);
        fs::remove_dir_all(&t).unwrap();
    }

    fn refused(r: Result<WrittenFile>) -> String {
        match r {
            Err(e @ PkiError::CsrMismatch { .. }) => e.to_string(),
            other => panic!("expected CsrMismatch, got {other:?}"),
        }
    }

    #[test]
    fn sign_refuses_a_request_for_another_role() {
        let t = tempfile_dir("mismatch");
        let ca_dir = ca(&t, "ca");
        let r = t.join("req");
        let l = PkiLayout::new(&r);
        let out = t.join("out.crt");
        request(&r, &CertRole::Node(1), &[], false).unwrap();
        let n1 = l.node_csr(1);
        // A node-1 request cannot be signed as node 2, a party or a server.
        let e = refused(sign_request(
            &ca_dir,
            &n1,
            &CertRole::Node(2),
            &out,
            30,
            false,
        ));
        assert!(e.contains("made for node 1"), "{e}");
        refused(sign_request(
            &ca_dir,
            &n1,
            &CertRole::Party("fk".into()),
            &out,
            30,
            false,
        ));
        refused(sign_request(
            &ca_dir,
            &n1,
            &CertRole::Server,
            &out,
            30,
            false,
        ));
        assert!(matches!(
            sign_request(
                &ca_dir,
                &n1,
                &CertRole::Party("node-1".into()),
                &out,
                30,
                false
            ),
            Err(PkiError::BadPartyName { .. })
        ));
        // A party request cannot carry a node name or any DNS name.
        let p = t.join("p.csr");
        raw_csr(
            &p,
            "fk",
            vec![SanType::DnsName("node-1".try_into().unwrap())],
        );
        let e = refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Party("fk".into()),
            &out,
            30,
            false,
        ));
        assert!(e.contains("node-1"), "{e}");
        raw_csr(
            &p,
            "fk",
            vec![SanType::DnsName("fk.example.org".try_into().unwrap())],
        );
        refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Party("fk".into()),
            &out,
            30,
            false,
        ));
        raw_csr(&p, "node-1", vec![]);
        refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Party("fk".into()),
            &out,
            30,
            false,
        ));
        // A node request that also names another node.
        raw_csr(
            &p,
            "node-1",
            vec![
                SanType::DnsName("node-1".try_into().unwrap()),
                SanType::DnsName("node-2".try_into().unwrap()),
            ],
        );
        let e = refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Node(1),
            &out,
            30,
            false,
        ));
        assert!(e.contains("node-2"), "{e}");
        // A node request without its DNS name.
        raw_csr(&p, "node-1", vec![]);
        refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Node(1),
            &out,
            30,
            false,
        ));
        // A server request without hosts, or with a node name.
        raw_csr(&p, "coord.example.org", vec![]);
        refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Server,
            &out,
            30,
            false,
        ));
        raw_csr(
            &p,
            "node-0",
            vec![SanType::DnsName("node-0".try_into().unwrap())],
        );
        refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Server,
            &out,
            30,
            false,
        ));
        // Other name types are not issued.
        raw_csr(
            &p,
            "fk",
            vec![SanType::Rfc822Name("a@b.example".try_into().unwrap())],
        );
        refused(sign_request(
            &ca_dir,
            &p,
            &CertRole::Party("fk".into()),
            &out,
            30,
            false,
        ));
        assert!(!out.exists(), "nothing may be issued for a refused request");
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn sign_refuses_a_tampered_or_forged_request() {
        let t = tempfile_dir("tamper");
        let ca_dir = ca(&t, "ca");
        let r = t.join("req");
        request(&r, &CertRole::Node(1), &[], false).unwrap();
        let csr = PkiLayout::new(&r).node_csr(1);
        let der = CertificateSigningRequestDer::from_pem_file(&csr)
            .unwrap()
            .as_ref()
            .to_vec();
        let out = t.join("out.crt");
        let write = |bytes: &[u8]| {
            let p = t.join("bad.csr");
            let pem = pem_of("CERTIFICATE REQUEST", bytes);
            fs::write(&p, pem).unwrap();
            p
        };
        // 1. The body altered to ask for node 2: the signature no longer matches.
        let pos = der.windows(6).position(|w| w == b"node-1").unwrap();
        let mut body = der.clone();
        body[pos + 5] = b'2';
        let p = write(&body);
        assert!(matches!(
            sign_request(&ca_dir, &p, &CertRole::Node(2), &out, 30, false),
            Err(PkiError::BadCsrSignature { .. })
        ));
        assert!(matches!(
            read_request(&p),
            Err(PkiError::BadCsrSignature { .. })
        ));
        // 2. A byte of the signature flipped (the last byte of the DER is
        // inside the signature's BIT STRING).
        let mut sig = der.clone();
        *sig.last_mut().unwrap() ^= 0x01;
        let p = write(&sig);
        assert!(matches!(
            sign_request(&ca_dir, &p, &CertRole::Node(1), &out, 30, false),
            Err(PkiError::BadCsrSignature { .. })
        ));
        // 3. Someone else's key put in a request signed by another key: take
        // a second request's body and this request's signature.
        let r2 = t.join("req2");
        request(&r2, &CertRole::Node(1), &[], false).unwrap();
        let der2 = CertificateSigningRequestDer::from_pem_file(PkiLayout::new(&r2).node_csr(1))
            .unwrap()
            .as_ref()
            .to_vec();
        let body_len = |d: &[u8]| {
            use x509_parser::prelude::FromDer;
            x509_parser::certification_request::X509CertificationRequest::from_der(d)
                .unwrap()
                .1
                .certification_request_info
                .raw
                .len()
        };
        // The body (with its key) of the second request, followed by the
        // algorithm and signature of the first, in a new outer SEQUENCE.
        let start = |d: &[u8]| {
            if d[1] & 0x80 != 0 {
                2 + (d[1] & 0x7f) as usize
            } else {
                2
            }
        };
        let (s1, s2) = (start(&der), start(&der2));
        let mut content = der2[s2..s2 + body_len(&der2)].to_vec();
        content.extend_from_slice(&der[s1 + body_len(&der)..]);
        let mut forged = vec![0x30];
        match content.len() {
            n if n < 0x80 => forged.push(n as u8),
            n if n < 0x100 => forged.extend([0x81, n as u8]),
            n => forged.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        forged.extend_from_slice(&content);
        let p = write(&forged);
        assert!(matches!(
            sign_request(&ca_dir, &p, &CertRole::Node(1), &out, 30, false),
            Err(PkiError::BadCsrSignature { .. })
        ));
        // ... while the same splice of a request with itself parses and
        // verifies (so the refusal above is the signature's, not the
        // splice's).
        let mut content = der2[s2..s2 + body_len(&der2)].to_vec();
        content.extend_from_slice(&der2[s2 + body_len(&der2)..]);
        let mut same = vec![0x30];
        match content.len() {
            n if n < 0x80 => same.push(n as u8),
            n if n < 0x100 => same.extend([0x81, n as u8]),
            n => same.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        same.extend_from_slice(&content);
        assert_eq!(same, der2);
        read_request(&write(&same)).unwrap();
        // 4. Not a request at all.
        let p = t.join("not.csr");
        fs::write(&p, fs::read(PkiLayout::new(&ca_dir).ca_cert()).unwrap()).unwrap();
        assert!(matches!(read_request(&p), Err(PkiError::BadPem { .. })));
        assert!(!out.exists());
        fs::remove_dir_all(&t).unwrap();
    }

    fn pem_of(label: &str, der: &[u8]) -> String {
        // Minimal base64 for the test (standard alphabet, padded).
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    b64.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    b64.push('=');
                }
            }
        }
        let mut pem = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {label}-----\n"));
        pem
    }

    #[test]
    fn pem_helper_round_trips() {
        let der = CertificateDer::from(vec![1u8, 2, 3, 4, 5, 250, 251]);
        let pem = pem_of("CERTIFICATE", der.as_ref());
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_ref());
    }

    #[test]
    fn sign_refuses_a_wrong_ca_key_and_validity_beyond_the_ca() {
        let t = tempfile_dir("cakey");
        let a = ca(&t, "a");
        let b = ca(&t, "b");
        let r = t.join("req");
        request(&r, &CertRole::Party("fk".into()), &[], false).unwrap();
        let csr = PkiLayout::new(&r).party_csr("fk");
        let out = t.join("fk.crt");
        // b's key next to a's certificate.
        let mixed = t.join("mixed");
        fs::create_dir(&mixed).unwrap();
        fs::copy(
            PkiLayout::new(&a).ca_cert(),
            PkiLayout::new(&mixed).ca_cert(),
        )
        .unwrap();
        fs::copy(PkiLayout::new(&b).ca_key(), PkiLayout::new(&mixed).ca_key()).unwrap();
        assert!(matches!(
            sign_request(&mixed, &csr, &CertRole::Party("fk".into()), &out, 30, false),
            Err(PkiError::CaKeyMismatch { .. })
        ));
        // a leaf certificate is not a CA.
        let leafdir = t.join("leafca");
        fs::create_dir(&leafdir).unwrap();
        sign_request(
            &a,
            &csr,
            &CertRole::Party("fk".into()),
            &PkiLayout::new(&leafdir).ca_cert(),
            30,
            false,
        )
        .unwrap();
        fs::copy(
            PkiLayout::new(&r).party_key("fk"),
            PkiLayout::new(&leafdir).ca_key(),
        )
        .unwrap();
        assert!(matches!(
            sign_request(
                &leafdir,
                &csr,
                &CertRole::Party("fk".into()),
                &out,
                30,
                false
            ),
            Err(PkiError::BadPem {
                what: "CA certificate",
                ..
            })
        ));
        // The CA of `ca()` lives 365 days.
        let e =
            sign_request(&a, &csr, &CertRole::Party("fk".into()), &out, 400, false).unwrap_err();
        assert!(matches!(e, PkiError::CaValidity { .. }), "{e}");
        assert!(e.to_string().contains("--days 36"), "{e}");
        assert!(matches!(
            sign_request(&a, &csr, &CertRole::Party("fk".into()), &out, 0, false),
            Err(PkiError::BadValidity(0))
        ));
        assert!(!out.exists());
        fs::remove_dir_all(&t).unwrap();
    }

    /// Two nodes whose certificates come from two different operators' CAs
    /// connect when each trusts the other's CA, and not otherwise.
    #[test]
    fn nodes_certified_by_different_cas_handshake() {
        use crate::tls;
        let t = tempfile_dir("twoca");
        let (ca0, ca1) = (ca(&t, "op0"), ca(&t, "op1"));
        let (m0, m1) = (t.join("machine0"), t.join("machine1"));
        for (i, m, ca_dir) in [(0, &m0, &ca0), (1, &m1, &ca1)] {
            request(m, &CertRole::Node(i), &["127.0.0.1".into()], false).unwrap();
            let l = PkiLayout::new(m);
            sign_request(
                ca_dir,
                &l.node_csr(i),
                &CertRole::Node(i),
                &l.node_cert(i),
                30,
                false,
            )
            .unwrap();
        }
        let id0 = Identity::load_node(&m0, 0).unwrap();
        let id1 = Identity::load_node(&m1, 1).unwrap();
        let roots = |dir: &Path| load_roots(&PkiLayout::new(dir).ca_cert()).unwrap();

        // Node 1 dials node 0 (lower accepts from higher, as in the transport).
        let attempt = |server_roots: RootCertStore, client_roots: RootCertStore| {
            let server = tls::server_config(server_roots, &id0).unwrap();
            let client = tls::client_config(client_roots, &id1).unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let th = std::thread::spawn(move || {
                let (tcp, _) = listener.accept().unwrap();
                tls::accept(tcp, &server, StdDuration::from_secs(5)).map(|(_, _, id)| id)
            });
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            let c = tls::connect(
                tcp,
                &client,
                tls::node_server_name(0),
                StdDuration::from_secs(5),
            );
            let s = th.join().unwrap();
            (c.map(|_| ()), s)
        };
        let (c, s) = attempt(roots(&ca1), roots(&ca0));
        c.unwrap();
        assert_eq!(s.unwrap(), PeerIdentity::Node(1));
        // Node 0 trusting only its own CA refuses node 1's certificate.
        let (_, s) = attempt(roots(&ca0), roots(&ca0));
        assert!(s.is_err());
        // Node 1 trusting only its own CA refuses node 0's certificate.
        let (c, _) = attempt(roots(&ca1), roots(&ca1));
        assert!(c.is_err());
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn layout_names_every_file() {
        let l = PkiLayout::new("/p");
        assert_eq!(l.node_csr(2), Path::new("/p/node-2.csr"));
        assert_eq!(l.party_csr("fk"), Path::new("/p/party-fk.csr"));
        assert_eq!(l.server_cert(), Path::new("/p/server.crt"));
        assert_eq!(l.server_key(), Path::new("/p/server.key"));
        assert_eq!(l.server_csr(), Path::new("/p/server.csr"));
        assert_eq!(l.cert_for(&CertRole::Node(1)), l.node_cert(1));
        assert_eq!(l.key_for(&CertRole::Party("fk".into())), l.party_key("fk"));
        assert_eq!(CertRole::Node(1).to_string(), "node 1 (node-1)");
        assert!(is_node_like("node-12") && is_node_like("NODE-1"));
        assert!(!is_node_like("node-") && !is_node_like("node-1a") && !is_node_like("nodes-1"));
    }

    /// A fresh, empty-path temporary directory (not created).
    fn tempfile_dir(tag: &str) -> PathBuf {
        let mut r = [0u8; 6];
        ring_fill(&mut r).unwrap();
        let p = std::env::temp_dir().join(format!(
            "kuvert-pki-unit-{tag}-{}-{}",
            std::process::id(),
            r.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        let _ = fs::remove_dir_all(&p);
        p
    }
}
