//! `kuvert pki ...`: certificates of a deployment.
//!
//! In production each node operator runs its own CA (`ca init`); keys are
//! made where they are used (`request`) and only signing requests and
//! certificates travel (`sign`, `fingerprint`). `init` and `issue` make a
//! single-machine development PKI. The ceremony is in docs/pki.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kuvert_net::pki::{self, CertRole, InitOptions, PkiError, PkiLayout, WrittenFile};

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Development only: a single-machine PKI with one CA and every key.
    ///
    /// Creates a CA, one certificate per compute node and one client
    /// certificate per party, all in one directory on this machine. Whoever
    /// holds that directory can impersonate every node, so use it only for
    /// tests and demos on one machine (`kuvert run` and `kuvert bench` make
    /// their own). For a real deployment each operator runs `kuvert pki ca
    /// init`, and keys are made with `kuvert pki request` on the machines
    /// that use them (docs/pki.md).
    ///
    /// Writes DIR/ca.crt and DIR/ca.key, DIR/node-<i>.crt/.key (node i, DNS
    /// names node-<i> and localhost, IP 127.0.0.1), DIR/node-<i>.gov.key and
    /// .gov.pub (node i's key that signs deletion receipts, and its public
    /// part for the parties) and DIR/party-<name>.crt/.key (CN = name). Keys
    /// get mode 0600, certificates 0644.
    Init {
        /// Directory to create. Refused if it exists and is not empty,
        /// unless --force.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Number of compute nodes (kuvert runs exactly 3).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Comma-separated party names (contributors and recipients):
        /// lower-case letters, digits and '-', e.g. fk,malmo-stad.
        #[arg(long, value_delimiter = ',', value_name = "NAME,NAME,...")]
        parties: Vec<String>,
        /// Validity of node and party certificates in days (the CA gets ten
        /// times as long, at most 20 years).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Overwrite files in an existing directory.
        #[arg(long)]
        force: bool,
    },
    /// Development only: a new key and certificate from the `init` CA.
    ///
    /// Makes the key here, next to the CA key, for a new party or the
    /// rotation of one node's or party's key in a single-machine
    /// development PKI. In a deployment the key's owner runs `kuvert pki
    /// request` and the CA runs `kuvert pki sign` (docs/pki.md).
    Issue {
        /// The development PKI directory holding ca.crt and ca.key.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Issue for compute node I (0, 1 or 2).
        #[arg(
            long,
            value_name = "I",
            conflicts_with = "party",
            required_unless_present = "party"
        )]
        node: Option<usize>,
        /// Issue for the party NAME.
        #[arg(long, value_name = "NAME")]
        party: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace the existing certificate and key of that node or party.
        #[arg(long)]
        force: bool,
    },
    /// A node operator's own certificate authority (CA).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Make a key and a certificate signing request, on the machine that
    /// will use the key.
    ///
    /// Run this on the node's (or the party's, or the coordinator's) own
    /// machine. It writes two files in DIR:
    ///
    ///   <base>.key  the private key (mode 0600). It never leaves this
    ///               machine: do not copy it, mail it or back it up
    ///               unencrypted.
    ///
    ///   <base>.csr  the certificate signing request (CSR): your public key
    ///               and the names you ask for, signed with the key. It
    ///               holds no secret; send it to the CA.
    ///
    /// where base is node-<I>, party-<NAME> or server. It prints the key's
    /// fingerprint: tell it to the CA operator over a second channel (phone,
    /// in person), so they can check that the request they sign is yours.
    ///
    /// Next: the CA runs `kuvert pki sign` and sends back <base>.crt and its
    /// ca.crt; check the certificate with `kuvert pki fingerprint
    /// <base>.crt` (it prints the same fingerprint).
    Request(RequestArgs),
    /// Sign a certificate signing request with your CA, at the CA.
    ///
    /// Run this where the CA key is kept (ideally an offline machine). It
    /// verifies the request's signature and that it asks for exactly the
    /// role you name: a request made for node-1 cannot be signed as node 2,
    /// a party's request carries no host names, a server request names at
    /// least one host. It prints what it is about to sign, including the
    /// key fingerprint: compare it with the one the requester told you over
    /// a second channel. The certificate gets only the names checked here;
    /// the key in it is the requester's (you never see the private key).
    ///
    /// Next: send the certificate (and your ca.crt) back to the requester.
    /// Certificates and requests are public; only .key files are secret.
    Sign(SignArgs),
    /// Print the key fingerprint of a certificate.
    ///
    /// The lowercase hex SHA-256 of the certificate's public key
    /// (SubjectPublicKeyInfo), of the first certificate in CERT: the form
    /// that analysis specs (`[[nodes]] fingerprint`) and the federation file
    /// pin. It names the key, so a certificate renewed on the same key keeps
    /// it. Given a .csr instead, prints the fingerprint of the requested key.
    Fingerprint {
        /// A PEM certificate (e.g. node-1.crt, ca.crt) or signing request.
        #[arg(value_name = "CERT")]
        cert: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create your organisation's CA (certificate authority).
    ///
    /// Each node operator runs its own CA, on a machine that is offline or
    /// at least never runs the node. Writes:
    ///
    ///   DIR/ca.crt  the CA certificate (public, mode 0644): give it to the
    ///               other operators, who check its fingerprint with you
    ///               over a second channel; it goes into the federation
    ///               file.
    ///
    ///   DIR/ca.key  the CA's private key (mode 0600): whoever holds it can
    ///               issue certificates for your node. Keep it offline
    ///               (encrypted USB stick in a safe, or an HSM-backed
    ///               machine); it is needed only to sign.
    ///
    /// Next: your node runs `kuvert pki request --node I`, you sign its
    /// request with `kuvert pki sign --ca DIR`.
    Init {
        /// Your organisation, e.g. "Region Skane"; named in the CA's
        /// subject (O=ORG, CN="ORG kuvert CA <time> <tag>").
        #[arg(long, value_name = "ORG")]
        org: String,
        /// Directory to create for ca.crt and ca.key. Refused if it exists
        /// and is not empty, unless --force.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity of the CA certificate in days (1 to 3650). The
        /// certificates it signs cannot outlive it.
        #[arg(long, default_value_t = 1825)]
        days: u32,
        /// Overwrite ca.crt and ca.key in an existing directory (the old CA
        /// is lost: every certificate it signed must then be re-issued).
        #[arg(long)]
        force: bool,
    },
}

/// Which certificate: exactly one of --node, --party, --server.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct RoleArgs {
    /// Compute node I (0, 1 or 2): certificate names node-<I>, used as TLS
    /// server and client between the nodes.
    #[arg(long, value_name = "I")]
    node: Option<usize>,
    /// A party (agency contributing data or receiving results), NAME as in
    /// the analysis spec (lower-case letters, digits, '-'): a TLS client
    /// certificate with CN = NAME.
    #[arg(long, value_name = "NAME")]
    party: Option<String>,
    /// A TLS server that is not a node (the coordinator): CN = first
    /// --host, names = the hosts.
    #[arg(long)]
    server: bool,
}

impl RoleArgs {
    fn role(&self) -> CertRole {
        match (self.node, &self.party, self.server) {
            (Some(i), None, false) => CertRole::Node(i),
            (None, Some(p), false) => CertRole::Party(p.clone()),
            (None, None, true) => CertRole::Server,
            _ => unreachable!("clap requires exactly one of --node, --party, --server"),
        }
    }
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    #[command(flatten)]
    role: RoleArgs,
    /// Directory for <base>.key and <base>.csr (created if missing; other
    /// files in it are left alone).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A DNS name or IP address the certificate should also carry (repeat,
    /// or separate with commas): for a node, the names its peers and
    /// clients reach it by besides node-<I>; for --server, required, the
    /// first is its CN. A party takes none.
    #[arg(long = "host", value_name = "NAME_OR_IP", value_delimiter = ',')]
    hosts: Vec<String>,
    /// Replace an existing <base>.key and <base>.csr (the old key is lost;
    /// its certificate becomes useless).
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Your CA directory (ca.crt and ca.key, from `kuvert pki ca init`).
    #[arg(long, value_name = "DIR")]
    ca: PathBuf,
    /// The signing request you received (e.g. node-1.csr).
    #[arg(long, value_name = "FILE")]
    csr: PathBuf,
    #[command(flatten)]
    role: RoleArgs,
    /// Where to write the certificate [default: the request's path with
    /// .crt, e.g. node-1.crt].
    #[arg(long, value_name = "CERT")]
    out: Option<PathBuf>,
    /// Validity of the certificate in days (1 to 3650, and not beyond the
    /// CA's own expiry).
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Replace an existing certificate file.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    let result = match cmd {
        PkiCommand::Init {
            out,
            nodes,
            parties,
            days,
            force,
        } => match pki::init(
            &out,
            &InitOptions {
                nodes,
                parties: parties.into_iter().filter(|p| !p.is_empty()).collect(),
                validity_days: days,
                force,
            },
        ) {
            Ok(mut files) => {
                // The nodes' deletion-receipt signing keys (the governed service).
                let keys = kuvert_node::gov::ensure_signing_keys(&out)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                files.extend(keys.into_iter().map(receipt_key_file));
                print_written(&files);
                Ok(())
            }
            Err(e) => Err(e),
        },
        PkiCommand::Issue {
            dir,
            node,
            party,
            days,
            force,
        } => match (node, party) {
            (Some(i), None) => pki::issue_node(&dir, i, days, force),
            (None, Some(p)) => pki::issue_party(&dir, &p, days, force),
            _ => unreachable!("clap requires exactly one of --node and --party"),
        }
        .map(|files| print_written(&files)),
        PkiCommand::Ca(CaCommand::Init {
            org,
            out,
            days,
            force,
        }) => ca_init(&out, &org, days, force),
        PkiCommand::Request(a) => request(&a),
        PkiCommand::Sign(a) => sign(&a),
        PkiCommand::Fingerprint { cert } => fingerprint(&cert),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(
            e @ (PkiError::DirExists { .. }
            | PkiError::FileExists { .. }
            | PkiError::BadPartyName { .. }
            | PkiError::BadNodeCount(_)
            | PkiError::BadNode(_)
            | PkiError::BadValidity(_)
            | PkiError::BadOrg { .. }
            | PkiError::BadHost { .. }
            | PkiError::NoHosts
            | PkiError::BadCsrSignature { .. }
            | PkiError::CsrMismatch { .. }
            | PkiError::CaKeyMismatch { .. }
            | PkiError::CaValidity { .. }),
        ) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

fn ca_init(out: &Path, org: &str, days: u32, force: bool) -> Result<(), PkiError> {
    let files = pki::ca_init(out, org, days, force)?;
    print_written(&files);
    let layout = PkiLayout::new(out);
    let ca = pki::load_certs(&layout.ca_cert())?.swap_remove(0);
    let s = pki::cert_summary(&ca)?;
    println!("subject      {}", s.subject);
    println!("valid until  {}", s.not_after);
    println!("fingerprint  {}", s.fingerprint);
    println!(
        "next: move {} to offline storage; give {} to the other operators and read them the fingerprint above over a second channel.",
        layout.ca_key().display(),
        layout.ca_cert().display()
    );
    println!(
        "      Your node makes its key with `kuvert pki request --node I --out DIR` on its own machine; sign its .csr with `kuvert pki sign --ca {} --csr FILE --node I`.",
        out.display()
    );
    Ok(())
}

fn request(a: &RequestArgs) -> Result<(), PkiError> {
    let role = a.role.role();
    let files = pki::request(&a.out, &role, &a.hosts, a.force)?;
    print_written(&files);
    let layout = PkiLayout::new(&a.out);
    let csr = layout.csr_for(&role);
    let info = pki::read_request(&csr)?;
    println!("subject      {}", info.subject);
    if !info.names.is_empty() {
        println!("names        {}", info.names.join(", "));
    }
    println!("fingerprint  {}", info.fingerprint);
    let file = |p: PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (csr_name, key_name) = (file(csr), file(layout.key_for(&role)));
    let ca = match role {
        CertRole::Node(_) => "your operator's CA",
        CertRole::Party(_) => "the CA that issues your client certificate",
        CertRole::Server => "the CA that the clients of this server trust",
    };
    println!("next: send {csr_name} to {ca}; never send {key_name}.");
    println!(
        "      Tell the CA operator the fingerprint above over a second channel (phone, in person). When {} comes back, `kuvert pki fingerprint {}` must print the same fingerprint.",
        file(layout.cert_for(&role)),
        layout.cert_for(&role).display()
    );
    Ok(())
}

fn sign(a: &SignArgs) -> Result<(), PkiError> {
    let role = a.role.role();
    let out = a.out.clone().unwrap_or_else(|| a.csr.with_extension("crt"));
    // What is about to be signed, before anything is checked against the
    // role (a refusal then shows what the request was made for).
    let info = pki::read_request(&a.csr)?;
    println!("request      {}", a.csr.display());
    println!("  subject      {}", info.subject);
    if !info.names.is_empty() {
        println!("  names        {}", info.names.join(", "));
    }
    if let Some(r) = info.likely_role() {
        println!("  made for     {r}");
    }
    println!(
        "  fingerprint  {}  (compare with the requester's, over a second channel)",
        info.fingerprint
    );
    let ca_cert = PkiLayout::new(&a.ca).ca_cert();
    let ca_subject = pki::load_certs(&ca_cert)
        .ok()
        .and_then(|c| pki::cert_summary(&c[0]).ok())
        .map(|s| s.subject)
        .unwrap_or_else(|| ca_cert.display().to_string());
    println!("signing as   {role}, {} days, by CA {ca_subject}", a.days);
    let written = pki::sign_request(&a.ca, &a.csr, &role, &out, a.days, a.force)?;
    print_written(std::slice::from_ref(&written));
    let cert = pki::load_certs(&written.path)?.swap_remove(0);
    let s = pki::cert_summary(&cert)?;
    println!("  subject      {}", s.subject);
    if !s.names.is_empty() {
        println!("  names        {}", s.names.join(", "));
    }
    println!("  issuer       {}", s.issuer);
    println!("  valid        {} to {}", s.not_before, s.not_after);
    println!("  fingerprint  {}  (the requested key)", s.fingerprint);
    println!(
        "next: send {} and {} back to the requester (both are public).",
        written.path.display(),
        ca_cert.display()
    );
    if let CertRole::Node(i) = role {
        println!(
            "      Node {i}'s CA certificate and key fingerprint then go into the federation file (`kuvert federation`, docs/deployment.md)."
        );
    }
    Ok(())
}

/// Stdout: the fingerprint only, for scripts and specs.
fn fingerprint(path: &Path) -> Result<(), PkiError> {
    let fp = match pki::load_certs(path) {
        Ok(certs) => pki::spki_fingerprint(&certs[0])?,
        // Not a certificate: perhaps a signing request.
        Err(PkiError::BadPem { .. }) => match pki::read_request(path) {
            Ok(req) => req.fingerprint,
            Err(PkiError::BadPem { .. }) => {
                return Err(PkiError::BadPem {
                    path: path.to_path_buf(),
                    what: "certificate or signing request",
                    detail: "no CERTIFICATE or CERTIFICATE REQUEST block found; give a .crt or .csr file (a .key file is never needed here)".into(),
                })
            }
            Err(other) => return Err(other),
        },
        Err(e) => return Err(e),
    };
    println!("{fp}");
    Ok(())
}

/// Describe a node's receipt key file written by `ensure_signing_keys`.
fn receipt_key_file(path: PathBuf) -> WrittenFile {
    let secret = path.extension().is_some_and(|x| x == "key");
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let node = name
        .trim_start_matches("node-")
        .chars()
        .next()
        .unwrap_or('?');
    let what = if secret {
        format!("node {node}'s deletion-receipt signing key (give only to node {node})")
    } else {
        format!("node {node}'s receipt verification key (give to every party)")
    };
    WrittenFile { path, what, secret }
}

/// One line per file on stdout: mode, path, what it is.
fn print_written(files: &[WrittenFile]) {
    for f in files {
        let mode = if f.secret { "0600" } else { "0644" };
        println!("{mode}  {}  {}", f.path.display(), f.what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_the_nodes_receipt_keys_too() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pki");
        let code = run(PkiCommand::Init {
            out: out.clone(),
            nodes: 3,
            parties: vec!["fk".into()],
            days: 30,
            force: false,
        })
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        for i in 0..3 {
            let key = kuvert_node::gov::signing_key_path(&out, i);
            assert!(
                kuvert_gov::PartyKey::load(&key).is_ok(),
                "{}",
                key.display()
            );
            kuvert_node::gov::node_public_key(&out, i).unwrap();
        }
        assert_eq!(
            receipt_key_file(out.join("node-2.gov.key")).what,
            "node 2's deletion-receipt signing key (give only to node 2)"
        );
        assert!(!receipt_key_file(out.join("node-1.gov.pub")).secret);
    }
}
