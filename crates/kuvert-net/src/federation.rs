//! The federation file: the three compute nodes, who runs each, and the
//! keys they are known by, signed by all three operators.
//!
//! ```toml
//! name = "kuvert-sweden"
//!
//! [[nodes]]
//! id = 0
//! operator = "Operator A"
//! mpc = "node0.a.example:7000"     # node-to-node MPC links
//! api = "node0.a.example:7100"     # contributors, recipients, coordinator
//! fingerprint = "9f1c…"            # SHA-256 of node-0.crt's SubjectPublicKeyInfo
//! signing_key = "3b6a…"            # node 0's Ed25519 receipt key (node-0.gov.pub)
//! ca = """-----BEGIN CERTIFICATE-----
//! …operator A's CA certificate…
//! -----END CERTIFICATE-----"""
//! # … nodes 1 and 2 …
//!
//! [[signatures]]
//! node = 0
//! signature = "…"                  # Ed25519 by node 0's signing_key
//! ```
//!
//! **What it decides.** A node in a federation trusts another node only as
//! listed here: node `j` is whoever presents the key with
//! `nodes[j].fingerprint`, in a certificate that chains to `nodes[j].ca`.
//! A certificate from another CA, or from the right CA for the wrong node
//! (operator A's CA issuing a certificate named `node-1`), is refused and
//! the refusal logged ([`crate::tls`]). No CA, not even one of the three
//! operators', can therefore stand up an impostor node.
//!
//! **Who signs.** Each operator signs [`Federation::hash`] with its node's
//! Ed25519 key (the one that signs deletion receipts, `signing_key`), under
//! the domain tag [`FEDERATION_TAG`]. A node starts only with a federation
//! that all three signatures verify and that lists its own certificate and
//! signing key under its own id, so a file changed by one operator (or by
//! whoever carries it between them) does not start any node. The hash is
//! what operators compare out of band and what analysis specs may quote.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pki::{self, hex};

/// Domain tag of an operator's signature: the signed message is this tag
/// followed by the 32-byte [`Federation::hash`].
pub const FEDERATION_TAG: &[u8] = b"kuvert-federation-v1\0";

/// What is wrong with a federation file. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: node {node}'s signature is missing; its operator runs `kuvert federation sign` (all three must sign before any node starts)")]
    Unsigned { origin: String, node: usize },
    #[error("{origin}: node {node}'s signature does not verify with its signing_key: the file was changed after it was signed, or signed with another key. Compare `kuvert federation show` hashes with the other operators out of band")]
    BadSignature { origin: String, node: usize },
}

/// One compute node as the federation knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FedNode {
    /// 0, 1 or 2.
    pub id: usize,
    /// The organisation that runs the node.
    pub operator: String,
    /// `host:port` of its node-to-node listener.
    pub mpc: String,
    /// `host:port` of its client API.
    pub api: String,
    /// Lowercase hex SHA-256 of its TLS certificate's SubjectPublicKeyInfo.
    pub fingerprint: String,
    /// Its Ed25519 receipt-signing public key, hex.
    pub signing_key: String,
    /// The operator's CA certificate (PEM).
    pub ca: String,
}

/// One operator's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FedSignature {
    pub node: usize,
    /// Ed25519 signature, hex.
    pub signature: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    name: String,
    nodes: Vec<FedNode>,
    #[serde(default)]
    signatures: Vec<FedSignature>,
}

/// A parsed federation file (structure checked; signatures checked by
/// [`Federation::verify`]).
#[derive(Debug, Clone)]
pub struct Federation {
    pub name: String,
    /// In node order: `nodes[i].id == i`.
    pub nodes: [FedNode; 3],
    pub signatures: Vec<FedSignature>,
    /// Each node's CA, parsed.
    cas: [Vec<CertificateDer<'static>>; 3],
    origin: String,
}

impl Federation {
    /// Assemble a federation from the three operators' entries (unsigned).
    pub fn new(name: &str, nodes: Vec<FedNode>) -> Result<Federation, FederationError> {
        Self::from_form(
            FileForm {
                name: name.to_string(),
                nodes,
                signatures: Vec::new(),
            },
            "the new federation",
        )
    }

    /// Parse federation TOML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Federation, FederationError> {
        let form: FileForm = toml::from_str(text).map_err(|e| FederationError::Invalid {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        Self::from_form(form, origin)
    }

    /// Read and parse a federation file.
    pub fn load(path: &Path) -> Result<Federation, FederationError> {
        let text = std::fs::read_to_string(path).map_err(|e| FederationError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Read, parse and verify all three signatures.
    pub fn load_verified(path: &Path) -> Result<Federation, FederationError> {
        let f = Self::load(path)?;
        f.verify()?;
        Ok(f)
    }

    fn from_form(mut form: FileForm, origin: &str) -> Result<Federation, FederationError> {
        let bad = |message: String| FederationError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if form.name.trim().is_empty() {
            return Err(bad("name is empty; name the federation".into()));
        }
        if form.nodes.len() != 3 {
            return Err(bad(format!(
                "lists {} nodes; a federation has exactly three [[nodes]] with id 0, 1 and 2",
                form.nodes.len()
            )));
        }
        form.nodes.sort_by_key(|n| n.id);
        let mut prints = BTreeSet::new();
        let mut cas: [Vec<CertificateDer<'static>>; 3] = Default::default();
        for (i, n) in form.nodes.iter_mut().enumerate() {
            if n.id != i {
                return Err(bad(format!(
                    "node ids must be 0, 1 and 2, each once (found {})",
                    n.id
                )));
            }
            if n.operator.trim().is_empty() {
                return Err(bad(format!("nodes[{i}].operator is empty")));
            }
            for (field, v) in [("mpc", &n.mpc), ("api", &n.api)] {
                if v.rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                {
                    return Err(bad(format!("nodes[{i}].{field} {v:?} is not host:port")));
                }
            }
            n.fingerprint = n.fingerprint.trim().to_ascii_lowercase();
            if !pki::is_fingerprint(&n.fingerprint) {
                return Err(bad(format!(
                    "nodes[{i}].fingerprint {:?} is not 64 hex digits (`kuvert pki fingerprint node-{i}.crt`)",
                    n.fingerprint
                )));
            }
            if !prints.insert(n.fingerprint.clone()) {
                return Err(bad(format!(
                    "nodes[{i}].fingerprint is also another node's: three nodes need three keys"
                )));
            }
            n.signing_key = n.signing_key.trim().to_ascii_lowercase();
            parse_key(&n.signing_key).ok_or_else(|| {
                bad(format!(
                    "nodes[{i}].signing_key is not an Ed25519 public key (64 hex digits, from node-{i}.gov.pub)"
                ))
            })?;
            let certs = CertificateDer::pem_slice_iter(n.ca.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("nodes[{i}].ca is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(bad(format!(
                    "nodes[{i}].ca holds no certificate; paste operator {:?}'s ca.crt",
                    n.operator
                )));
            }
            let mut roots = RootCertStore::empty();
            for c in &certs {
                roots.add(c.clone()).map_err(|e| {
                    bad(format!("nodes[{i}].ca is not a usable CA certificate: {e}"))
                })?;
            }
            cas[i] = certs;
        }
        for s in &form.signatures {
            if s.node > 2 {
                return Err(bad(format!("a signature names node {}", s.node)));
            }
        }
        let nodes: [FedNode; 3] = form.nodes.try_into().expect("three nodes checked");
        Ok(Federation {
            name: form.name,
            nodes,
            signatures: form.signatures,
            cas,
            origin: origin.to_string(),
        })
    }

    /// The canonical bytes that the hash covers: every field but the
    /// signatures, in a fixed order, CA certificates as DER.
    fn canonical(&self) -> Vec<u8> {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .zip(&self.cas)
            .map(|(n, cas)| {
                serde_json::json!({
                    "id": n.id,
                    "operator": n.operator,
                    "mpc": n.mpc,
                    "api": n.api,
                    "fingerprint": n.fingerprint,
                    "signing_key": n.signing_key,
                    "ca_der_sha256": cas.iter().map(|c| hex(&Sha256::digest(c.as_ref()))).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "format": "kuvert-federation-v1",
            "name": self.name,
            "nodes": nodes,
        }))
        .expect("JSON of strings")
    }

    /// SHA-256 of the canonical form: what the operators sign and compare.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.canonical()).into()
    }

    /// [`Self::hash`] in hex.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash())
    }

    /// The message an operator signs.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = FEDERATION_TAG.to_vec();
        m.extend_from_slice(&self.hash());
        m
    }

    /// Add (or replace) node `node`'s signature, after checking that it
    /// verifies with that node's `signing_key`.
    pub fn add_signature(
        &mut self,
        node: usize,
        signature: &[u8; 64],
    ) -> Result<(), FederationError> {
        if node > 2 {
            return Err(FederationError::Invalid {
                origin: self.origin.clone(),
                message: format!("node {node}: nodes are 0, 1 and 2"),
            });
        }
        self.check_signature(node, signature)?;
        self.signatures.retain(|s| s.node != node);
        self.signatures.push(FedSignature {
            node,
            signature: hex(signature),
        });
        self.signatures.sort_by_key(|s| s.node);
        Ok(())
    }

    fn check_signature(&self, node: usize, sig: &[u8; 64]) -> Result<(), FederationError> {
        let key = parse_key(&self.nodes[node].signing_key).expect("checked at parse");
        key.verify(&self.signed_message(), &Signature::from_bytes(sig))
            .map_err(|_| FederationError::BadSignature {
                origin: self.origin.clone(),
                node,
            })
    }

    /// Check that all three operators signed this exact content.
    pub fn verify(&self) -> Result<(), FederationError> {
        for node in 0..3 {
            let s = self.signatures.iter().find(|s| s.node == node).ok_or(
                FederationError::Unsigned {
                    origin: self.origin.clone(),
                    node,
                },
            )?;
            let sig: [u8; 64] = unhex(&s.signature).and_then(|v| v.try_into().ok()).ok_or(
                FederationError::BadSignature {
                    origin: self.origin.clone(),
                    node,
                },
            )?;
            self.check_signature(node, &sig)?;
        }
        Ok(())
    }

    /// Which node has this key fingerprint, if any.
    pub fn node_by_fingerprint(&self, fp: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.fingerprint == fp)
    }

    /// Node `i`'s CA certificates.
    pub fn ca_certs(&self, i: usize) -> &[CertificateDer<'static>] {
        &self.cas[i]
    }

    /// Node `i`'s CA as a root store.
    pub fn ca_roots(&self, i: usize) -> RootCertStore {
        let mut r = RootCertStore::empty();
        for c in &self.cas[i] {
            r.add(c.clone()).expect("checked at parse");
        }
        r
    }

    /// The three node-to-node addresses, resolved.
    pub fn mpc_addrs(&self) -> Result<[SocketAddr; 3], FederationError> {
        self.resolve(|n| &n.mpc)
    }

    /// The three client API addresses, resolved.
    pub fn api_addrs(&self) -> Result<[SocketAddr; 3], FederationError> {
        self.resolve(|n| &n.api)
    }

    fn resolve(&self, f: impl Fn(&FedNode) -> &String) -> Result<[SocketAddr; 3], FederationError> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let a = f(n);
            let addr = a
                .to_socket_addrs()
                .ok()
                .and_then(|mut it| it.next())
                .ok_or_else(|| FederationError::Invalid {
                    origin: self.origin.clone(),
                    message: format!("node {}: cannot resolve {a:?}", n.id),
                })?;
            out.push(addr);
        }
        Ok(out.try_into().expect("three"))
    }

    /// The file's TOML text (signatures included).
    pub fn to_toml(&self) -> String {
        let form = FileForm {
            name: self.name.clone(),
            nodes: self.nodes.to_vec(),
            signatures: self.signatures.clone(),
        };
        let body = toml::to_string_pretty(&form).expect("TOML of strings");
        format!(
            "# Kuvert federation file: the three compute nodes and their operators.\n\
             # Hash (compare it with the other operators out of band): {}\n\
             # Every node trusts the other two only as listed here. Do not edit:\n\
             # any change invalidates the operators' signatures.\n\n{body}",
            self.hash_hex()
        )
    }
}

/// Build this operator's entry for the federation from its files: the
/// operator's CA certificate, the node's certificate (whose key fingerprint
/// is listed) and the node's public receipt key (hex).
pub fn entry(
    id: usize,
    operator: &str,
    mpc: &str,
    api: &str,
    ca_cert: &Path,
    node_cert: &Path,
    signing_key_hex: &str,
) -> Result<FedNode, FederationError> {
    let io = |p: &Path, e: std::io::Error| FederationError::Io {
        path: p.display().to_string(),
        source: e,
    };
    let ca = std::fs::read_to_string(ca_cert).map_err(|e| io(ca_cert, e))?;
    let certs = pki::load_certs(node_cert).map_err(|e| FederationError::Invalid {
        origin: node_cert.display().to_string(),
        message: e.to_string(),
    })?;
    let fingerprint = pki::spki_fingerprint(&certs[0]).map_err(|e| FederationError::Invalid {
        origin: node_cert.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(FedNode {
        id,
        operator: operator.to_string(),
        mpc: mpc.to_string(),
        api: api.to_string(),
        fingerprint,
        signing_key: signing_key_hex.trim().to_ascii_lowercase(),
        ca,
    })
}

fn parse_key(h: &str) -> Option<VerifyingKey> {
    let b: [u8; 32] = unhex(h)?.try_into().ok()?;
    VerifyingKey::from_bytes(&b).ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use rand::SeedableRng;

    /// Three entries with real CA certificates and seeded signing keys.
    fn entries(dir: &Path) -> (Vec<FedNode>, Vec<SigningKey>) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let mut nodes = Vec::new();
        let mut keys = Vec::new();
        for i in 0..3 {
            let ca = dir.join(format!("ca{i}"));
            pki::ca_init(&ca, &format!("Op {i}"), 30, false).unwrap();
            let k = SigningKey::generate(&mut rng);
            nodes.push(FedNode {
                id: i,
                operator: format!("Op {i}"),
                mpc: format!("127.0.0.1:{}", 7000 + i),
                api: format!("node{i}.example:{}", 7100 + i),
                fingerprint: std::iter::repeat_n(char::from(b'a' + i as u8), 64).collect(),
                signing_key: hex(k.verifying_key().as_bytes()),
                ca: std::fs::read_to_string(ca.join("ca.crt")).unwrap(),
            });
            keys.push(k);
        }
        (nodes, keys)
    }

    fn signed(nodes: Vec<FedNode>, keys: &[SigningKey]) -> Federation {
        let mut f = Federation::new("t", nodes).unwrap();
        for (i, k) in keys.iter().enumerate() {
            let sig = k.sign(&f.signed_message());
            f.add_signature(i, &sig.to_bytes()).unwrap();
        }
        f
    }

    #[test]
    fn round_trip_verify_and_every_change_breaks_the_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let (nodes, keys) = entries(dir.path());
        let f = signed(nodes.clone(), &keys);
        f.verify().unwrap();
        let again = Federation::parse(&f.to_toml(), "again").unwrap();
        again.verify().unwrap();
        assert_eq!(again.hash(), f.hash());
        assert_eq!(again.node_by_fingerprint(&nodes[2].fingerprint), Some(2));
        // Entries in another order: the same federation.
        let mut rev = nodes.clone();
        rev.reverse();
        assert_eq!(Federation::new("t", rev).unwrap().hash(), f.hash());
        // Each field changed after signing: the signatures fail.
        let text = f.to_toml();
        for (from, to) in [
            (nodes[1].fingerprint.clone(), "d".repeat(64)),
            (nodes[0].mpc.clone(), "127.0.0.1:9999".into()),
            (nodes[2].api.clone(), "evil.example:7102".into()),
            ("Op 1".to_string(), "Op X".to_string()),
        ] {
            let changed = text.replacen(&from, &to, 1);
            assert_ne!(changed, text);
            let e = Federation::parse(&changed, "changed")
                .unwrap()
                .verify()
                .unwrap_err();
            assert!(matches!(e, FederationError::BadSignature { .. }), "{e}");
        }
        // Another operator's CA certificate in node 0's place.
        let mut swapped = nodes.clone();
        swapped[0].ca = nodes[1].ca.clone();
        let mut g = Federation::new("t", swapped).unwrap();
        g.signatures = f.signatures.clone();
        assert!(g.verify().is_err());
    }

    #[test]
    fn a_signature_by_the_wrong_key_or_a_missing_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (nodes, keys) = entries(dir.path());
        let mut f = Federation::new("t", nodes).unwrap();
        let by_1 = keys[1].sign(&f.signed_message());
        let e = f.add_signature(0, &by_1.to_bytes()).unwrap_err();
        assert!(
            matches!(e, FederationError::BadSignature { node: 0, .. }),
            "{e}"
        );
        // A signature over the bare hash (no domain tag) is refused too.
        let untagged = keys[0].sign(&f.hash());
        assert!(f.add_signature(0, &untagged.to_bytes()).is_err());
        f.add_signature(0, &keys[0].sign(&f.signed_message()).to_bytes())
            .unwrap();
        let e = f.verify().unwrap_err();
        assert!(
            matches!(e, FederationError::Unsigned { node: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn malformed_files_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let (nodes, _) = entries(dir.path());
        let bad = |mutate: &dyn Fn(&mut Vec<FedNode>), want: &str| {
            let mut n = nodes.clone();
            mutate(&mut n);
            let e = Federation::new("t", n).unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want:?})");
        };
        bad(
            &|n| {
                n.pop();
            },
            "exactly three",
        );
        bad(&|n| n[1].id = 0, "ids must be 0, 1 and 2");
        bad(
            &|n| n[2].fingerprint = n[0].fingerprint.clone(),
            "three nodes need three keys",
        );
        bad(&|n| n[1].fingerprint = "abc".into(), "nodes[1].fingerprint");
        bad(&|n| n[0].mpc = "no-port".into(), "nodes[0].mpc");
        bad(&|n| n[2].signing_key = "00".into(), "nodes[2].signing_key");
        bad(&|n| n[1].ca = "not pem".into(), "nodes[1].ca");
        bad(&|n| n[0].operator = " ".into(), "nodes[0].operator");
        assert!(
            Federation::parse("name = \"x\"\nnodes = []\nbogus = 1\n", "f")
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
    }
}
