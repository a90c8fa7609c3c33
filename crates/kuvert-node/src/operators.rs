//! Three independent operators on one machine: the per-operator steps of
//! docs/deployment.md, done by one function for `kuvert demo` and the
//! tests, each step exactly what the operator would run on its own machine.
//!
//! ```text
//! ROOT/operator-<i>/ca/        operator i's CA (ca.key never leaves it)
//! ROOT/operator-<i>/node/      node i: node-<i>.key made here, node-<i>.csr sent to
//!                              the CA, node-<i>.crt back; node-<i>.gov.key/.pub
//!                              (receipts and the federation signature); node.toml
//! ROOT/federation.toml         the three entries, signed by all three operators
//! ROOT/parties/                the agencies' CA and each party's certificate
//!                              (party-<name>.crt/.key), plus node-<i>.gov.pub
//!                              copied from the federation (receipt checks)
//! ROOT/service/                the service operator's CA, the coordinator's HTTPS
//!                              certificate (server.crt/.key) and its client
//!                              certificate towards the nodes (party-coordinator)
//! ```
//!
//! No private key is copied anywhere: every `.key` is created in the
//! directory of the machine that uses it, and only CSRs, certificates and
//! public keys move.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kuvert_net::federation::{self, Federation};
use kuvert_net::pki::{self, CertRole};

use crate::gov;

/// What [`setup`] builds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The federation's name.
    pub name: String,
    /// The three operators' organisation names.
    pub operators: [String; 3],
    /// Node-to-node addresses.
    pub mpc: [SocketAddr; 3],
    /// Client API addresses.
    pub api: [SocketAddr; 3],
    /// Parties (agencies) that get client certificates from the agencies' CA.
    pub parties: Vec<String>,
    /// Certificate validity in days.
    pub days: u32,
}

/// Where [`setup`] put everything.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub root: PathBuf,
    pub federation: PathBuf,
    /// Each operator's CA directory.
    pub operator_cas: [PathBuf; 3],
    /// Each node's directory (key, certificate, receipt key, node.toml).
    pub node_dirs: [PathBuf; 3],
    /// The parties' directory (agencies' CA, party certificates).
    pub parties: PathBuf,
    /// The service operator's directory (coordinator certificates).
    pub service: PathBuf,
    /// The three nodes' key fingerprints.
    pub fingerprints: [String; 3],
}

impl Deployment {
    /// `node.toml` of node `i`.
    pub fn node_config(&self, i: usize) -> PathBuf {
        self.node_dirs[i].join("node.toml")
    }

    /// The `[[nodes]]` an analysis spec names for this federation.
    pub fn spec_nodes(&self) -> Result<Vec<kuvert_gov::spec::SpecNode>, String> {
        let fed = Federation::load(&self.federation).map_err(|e| e.to_string())?;
        Ok(spec_nodes(&fed))
    }
}

/// The `[[nodes]]` of a spec computed by this federation: each node's
/// operator, key fingerprint and client API endpoint.
pub fn spec_nodes(fed: &Federation) -> Vec<kuvert_gov::spec::SpecNode> {
    fed.nodes
        .iter()
        .map(|n| kuvert_gov::spec::SpecNode {
            operator: n.operator.clone(),
            fingerprint: n.fingerprint.clone(),
            endpoint: Some(n.api.clone()),
        })
        .collect()
}

fn e<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// Run every operator's steps: own CA, node key and CSR, signed
/// certificate, receipt key, federation entry; assemble the federation and
/// have each operator sign it; the agencies' CA and party certificates; the
/// service operator's CA and the coordinator's certificates; each node's
/// `node.toml` (production mode: `dev_mode` off, the federation, client CAs).
pub fn setup(root: &Path, plan: &Plan) -> Result<Deployment, String> {
    let days = plan.days;
    let mut entries = Vec::new();
    let mut operator_cas: Vec<PathBuf> = Vec::new();
    let mut node_dirs: Vec<PathBuf> = Vec::new();
    for i in 0..3 {
        let op = root.join(format!("operator-{i}"));
        let ca = op.join("ca");
        let nd = op.join("node");
        // At operator i's CA (offline machine).
        pki::ca_init(&ca, &plan.operators[i], days * 10, false)
            .map_err(e(&format!("operator {i}'s CA")))?;
        // On node i's machine: the key never leaves it.
        pki::request(
            &nd,
            &CertRole::Node(i),
            &["localhost".into(), "127.0.0.1".into()],
            false,
        )
        .map_err(e(&format!("node {i}'s key and CSR")))?;
        let layout = pki::PkiLayout::new(&nd);
        // The CSR goes to the CA; the certificate comes back.
        pki::sign_request(
            &ca,
            &layout.node_csr(i),
            &CertRole::Node(i),
            &layout.node_cert(i),
            days,
            false,
        )
        .map_err(e(&format!("operator {i}'s CA signing node {i}")))?;
        // The receipt / federation signing key, made on the node too.
        gov::ensure_signing_key(&nd, i).map_err(e(&format!("node {i}'s receipt key")))?;
        let pubk = kuvert_gov::PublicKeys::load(&gov::signing_pub_path(&nd, i))
            .and_then(|k| k.verifying_key())
            .map_err(e(&format!("node {i}'s receipt key")))?;
        let hexkey = gov::encode_hex(&pubk.to_bytes());
        entries.push(
            federation::entry(
                i,
                &plan.operators[i],
                &plan.mpc[i].to_string(),
                &plan.api[i].to_string(),
                &pki::PkiLayout::new(&ca).ca_cert(),
                &layout.node_cert(i),
                &hexkey,
            )
            .map_err(e(&format!("node {i}'s federation entry")))?,
        );
        operator_cas.push(ca);
        node_dirs.push(nd);
    }
    // The entries are exchanged and assembled; each operator checks the
    // hash out of band and signs with its node's key.
    let mut fed = Federation::new(&plan.name, entries).map_err(|e| e.to_string())?;
    for (i, nd) in node_dirs.iter().enumerate() {
        let key = kuvert_gov::PartyKey::load(&gov::signing_key_path(nd, i))
            .map_err(e(&format!("node {i}'s receipt key")))?;
        let sig = key.sign_federation(&fed.hash());
        fed.add_signature(i, &sig.to_bytes())
            .map_err(|e| e.to_string())?;
    }
    fed.verify().map_err(|e| e.to_string())?;
    let fed_path = root.join("federation.toml");
    std::fs::write(&fed_path, fed.to_toml()).map_err(e(&fed_path.display().to_string()))?;

    // The agencies' CA and the parties' certificates (each party makes its
    // key and CSR on its own machine; here they share one directory).
    let parties = root.join("parties");
    pki::ca_init(&parties, "The agencies' CA", days * 10, false).map_err(e("the agencies' CA"))?;
    for p in &plan.parties {
        let role = CertRole::Party(p.clone());
        pki::request(&parties, &role, &[], false).map_err(e(&format!("party {p}")))?;
        let l = pki::PkiLayout::new(&parties);
        pki::sign_request(
            &parties,
            &l.csr_for(&role),
            &role,
            &l.cert_for(&role),
            days,
            false,
        )
        .map_err(e(&format!("party {p}")))?;
    }
    for (i, nd) in node_dirs.iter().enumerate() {
        std::fs::copy(
            gov::signing_pub_path(nd, i),
            gov::signing_pub_path(&parties, i),
        )
        .map_err(e("copying a node's public receipt key"))?;
    }

    // The service operator: the coordinator's HTTPS certificate and its
    // client certificate towards the nodes.
    let service = root.join("service");
    pki::ca_init(&service, "The service operator's CA", days * 10, false)
        .map_err(e("the service operator's CA"))?;
    for role in [CertRole::Server, CertRole::Party("coordinator".into())] {
        let hosts: Vec<String> = if role == CertRole::Server {
            vec!["localhost".into(), "127.0.0.1".into()]
        } else {
            Vec::new()
        };
        pki::request(&service, &role, &hosts, false).map_err(e("the coordinator's key"))?;
        let l = pki::PkiLayout::new(&service);
        pki::sign_request(
            &service,
            &l.csr_for(&role),
            &role,
            &l.cert_for(&role),
            days,
            false,
        )
        .map_err(e("the coordinator's certificate"))?;
    }

    // Each operator's node.toml.
    for (i, nd) in node_dirs.iter().enumerate() {
        let cfg = format!(
            "# Node {i}, run by {op}. Production mode: governed analyses only.\n\
             id = {i}\nlisten = \"{api}\"\npki_dir = \".\"\ndata_dir = \"data\"\n\
             federation = \"{fed}\"\nclient_cas = [\"{pca}\", \"{sca}\"]\n\
             io_timeout_secs = 60\nconnect_timeout_secs = 20\n",
            op = plan.operators[i],
            api = plan.api[i],
            fed = fed_path.display(),
            pca = parties.join("ca.crt").display(),
            sca = service.join("ca.crt").display(),
        );
        std::fs::write(nd.join("node.toml"), cfg).map_err(e("node.toml"))?;
    }
    Ok(Deployment {
        root: root.to_path_buf(),
        federation: fed_path,
        operator_cas: operator_cas.try_into().expect("three"),
        node_dirs: node_dirs.try_into().expect("three"),
        parties,
        service,
        fingerprints: [0, 1, 2].map(|j| fed.nodes[j].fingerprint.clone()),
    })
}
