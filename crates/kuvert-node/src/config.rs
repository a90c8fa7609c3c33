//! `node.toml`: everything a node operator configures.
//!
//! ```toml
//! id = 0                                   # this node: 0, 1 or 2
//! listen = "127.0.0.1:7100"                # client API (contributors, recipients)
//! nodes = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]  # node-to-node MPC links
//! pki_dir = "pki"                          # ca.crt, node-<id>.crt, node-<id>.key
//! # or name the files one by one (each overrides its pki_dir default):
//! # ca = "pki/ca.crt"
//! # cert = "pki/node-0.crt"
//! # key = "pki/node-0.key"
//! data_dir = "node0-data"                  # uploaded shares (never cleartext)
//! io_timeout_secs = 8                      # a silent peer fails the job after this
//! connect_timeout_secs = 10                # how long a job waits for the other nodes
//! max_upload_bytes = 4294967296
//! # The governed service (docs/service.md, "Nodes"):
//! # signing_key = "pki/node-0.gov.key"    # signs deletion receipts (default shown;
//! #                                        # created on first start when absent)
//! # trusted_keys = ["<ed25519 hex>", ...]  # accept only analyses whose every
//! #                                        # contributor key is listed (default: any)
//! # sweep_secs = 60                        # how often expired results are deleted
//! # Denial of service (docs/service.md, "Denial of service"):
//! # client_idle_timeout_secs = 300         # a client silent this long is disconnected
//! # max_connections_per_peer = 64          # open client connections per IP address
//! # max_connections = 256                  # open client connections in all
//! # The ungoverned job API (`Upload`/`Run`/`Status`/`Fetch`) of `kuvert run`
//! # and `kuvert bench`: any party certificate may start any program and name
//! # itself recipient, so it is off unless
//! # dev_mode = true                        # only with loopback `listen` and `nodes`
//! ```
//! Relative paths are resolved against the directory of the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: usize,
    pub listen: SocketAddr,
    /// The node-to-node addresses; with a federation they default to its
    /// `mpc` addresses (and must equal them when given).
    #[serde(default = "unset_nodes")]
    pub nodes: [SocketAddr; 3],
    pub pki_dir: PathBuf,
    /// The federation file signed by the three operators (docs/pki.md):
    /// the only source of trust in the other two nodes. Required unless
    /// `dev_mode`.
    #[serde(default)]
    pub federation: Option<PathBuf>,
    /// CA certificates whose client certificates may use the client API
    /// (the parties' CA, the coordinator's CA). With a federation, no other
    /// CA is trusted for clients; node certificates never pass as clients.
    #[serde(default)]
    pub client_cas: Vec<PathBuf>,
    /// The deployment CA (default: `pki_dir/ca.crt`).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// This node's certificate (default: `pki_dir/node-<id>.crt`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// This node's private key (default: `pki_dir/node-<id>.key`).
    #[serde(default)]
    pub key: Option<PathBuf>,
    pub data_dir: PathBuf,
    #[serde(default = "default_io_timeout")]
    pub io_timeout_secs: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// The kuvert-gov key file that signs deletion receipts (default:
    /// `pki_dir/node-<id>.gov.key`, created on first start when absent).
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// Ed25519 public keys (hex or base64) of the contributors this node
    /// accepts; `None` accepts any key an approved spec names.
    #[serde(default)]
    pub trusted_keys: Option<Vec<String>>,
    /// Period of the deadline sweeper, in seconds.
    #[serde(default = "default_sweep")]
    pub sweep_secs: u64,
    /// Serve the ungoverned job API (`Upload`, `Run`, `Status`, `Fetch`) of
    /// the throw-away local clusters (`kuvert run`, `kuvert bench`). Off by
    /// default: such a node serves governed analyses only. Allowed only
    /// when `listen` and every address in `nodes` are loopback addresses.
    #[serde(default)]
    pub dev_mode: bool,
    /// A client connection that sends nothing for this many seconds (after
    /// the TLS handshake) is closed.
    #[serde(default = "default_client_idle_timeout")]
    pub client_idle_timeout_secs: u64,
    /// Simultaneous client connections from one IP address; more are
    /// closed before the TLS handshake.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
    /// Simultaneous client connections in all.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// Marks `nodes` as not given (port 0 is never a node's address).
fn unset_nodes() -> [SocketAddr; 3] {
    [SocketAddr::from(([0, 0, 0, 0], 0)); 3]
}

fn default_client_idle_timeout() -> u64 {
    300
}
/// One address may be a whole agency behind NAT, and each upload opens
/// one connection per node: 64 leaves room for parallel uploads while the
/// global cap still bounds the total.
fn default_max_connections_per_peer() -> usize {
    64
}
fn default_max_connections() -> usize {
    256
}

fn default_sweep() -> u64 {
    60
}

fn default_io_timeout() -> u64 {
    8
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_max_upload() -> u64 {
    4 << 30
}

impl NodeConfig {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<NodeConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c: NodeConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if c.id > 2 {
            return Err(format!(
                "{}: id must be 0, 1 or 2, not {}",
                path.display(),
                c.id
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for p in [&mut c.pki_dir, &mut c.data_dir]
            .into_iter()
            .chain(c.ca.as_mut())
            .chain(c.cert.as_mut())
            .chain(c.key.as_mut())
            .chain(c.signing_key.as_mut())
            .chain(c.federation.as_mut())
            .chain(c.client_cas.iter_mut())
        {
            resolve(p);
        }
        let unset = c.nodes == unset_nodes();
        match &c.federation {
            Some(f) => {
                let fed = kuvert_net::Federation::load(f).map_err(|e| format!("{}: {e}", path.display()))?;
                let addrs = fed.mpc_addrs().map_err(|e| format!("{}: {e}", path.display()))?;
                if unset {
                    c.nodes = addrs;
                } else if c.nodes != addrs {
                    return Err(format!(
                        "{}: nodes {:?} differ from the federation's mpc addresses {:?}; remove nodes \
                         (the federation decides) or correct it",
                        path.display(),
                        c.nodes,
                        addrs
                    ));
                }
            }
            None if unset => {
                return Err(format!(
                    "{}: missing nodes (the three node-to-node addresses) and no federation file to take them from",
                    path.display()
                ))
            }
            None => {}
        }
        let layout = kuvert_net::pki::PkiLayout::new(&c.pki_dir);
        c.ca.get_or_insert_with(|| layout.ca_cert());
        c.cert.get_or_insert_with(|| layout.node_cert(c.id));
        c.key.get_or_insert_with(|| layout.node_key(c.id));
        if c.sweep_secs == 0 {
            return Err(format!("{}: sweep_secs must be at least 1", path.display()));
        }
        for (v, name) in [
            (c.client_idle_timeout_secs, "client_idle_timeout_secs"),
            (
                c.max_connections_per_peer as u64,
                "max_connections_per_peer",
            ),
            (c.max_connections as u64, "max_connections"),
        ] {
            if v == 0 {
                return Err(format!("{}: {name} must be at least 1", path.display()));
            }
        }
        if c.dev_mode {
            let outside: Vec<String> = std::iter::once(&c.listen)
                .chain(c.nodes.iter())
                .filter(|a| !a.ip().to_canonical().is_loopback())
                .map(|a| a.to_string())
                .collect();
            if !outside.is_empty() {
                return Err(format!(
                    "{}: dev_mode = true is for a throw-away local cluster (kuvert run, kuvert bench): \
                     it serves the ungoverned job API, so listen and every address in nodes must be \
                     loopback addresses; not loopback: {}. Remove dev_mode to serve governed analyses",
                    path.display(),
                    outside.join(", ")
                ));
            }
        }
        if let Some(keys) = &c.trusted_keys {
            for (i, k) in keys.iter().enumerate() {
                if kuvert_gov::spec::parse_ed25519(k).is_none() {
                    return Err(format!(
                        "{}: trusted_keys[{i}] {k:?} is not an Ed25519 public key (64 hex digits or base64, as in a spec's public_key)",
                        path.display()
                    ));
                }
            }
        }
        Ok(c)
    }

    /// This node's TLS configuration: with a federation, peers pinned by it
    /// and clients from `client_cas`; without (dev_mode only), everything
    /// from the one CA `ca`.
    pub fn tls(&self) -> Result<kuvert_net::NodeTls, String> {
        let (cert, key) = (
            self.cert.as_ref().expect("set by load"),
            self.key.as_ref().expect("set by load"),
        );
        let id = kuvert_net::Identity::load(cert, key).map_err(|e| {
            format!(
                "cannot load node {}'s certificate {} and key {}: {e}",
                self.id,
                cert.display(),
                key.display()
            )
        })?;
        let Some(fed_path) = &self.federation else {
            if !self.dev_mode {
                return Err(format!(
                    "node {} has no federation file: a node that serves real analyses trusts the other \
                     two only as the federation signed by the three operators lists them (set \
                     federation = \"federation.toml\"; docs/deployment.md). For a throw-away local \
                     cluster set dev_mode = true",
                    self.id
                ));
            }
            let ca = self.ca.as_ref().expect("set by load");
            let roots = kuvert_net::pki::load_roots(ca)
                .map_err(|e| format!("cannot load the CA {}: {e}", ca.display()))?;
            return kuvert_net::NodeTls::new(roots, &id).map_err(|e| e.to_string());
        };
        let fed = kuvert_net::Federation::load_verified(fed_path).map_err(|e| e.to_string())?;
        let mut cas = rustls::RootCertStore::empty();
        for p in &self.client_cas {
            for c in kuvert_net::pki::load_certs(p).map_err(|e| e.to_string())? {
                cas.add(c)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", p.display()))?;
            }
        }
        kuvert_net::NodeTls::federated(std::sync::Arc::new(fed), self.id, &id, cas)
            .map_err(|e| format!("node {}: {e}", self.id))
    }

    /// The verified federation, when this node has one.
    pub fn load_federation(&self) -> Result<Option<kuvert_net::Federation>, String> {
        self.federation
            .as_ref()
            .map(|p| kuvert_net::Federation::load_verified(p).map_err(|e| e.to_string()))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("etc");
        std::fs::create_dir(&sub).unwrap();
        let common = "listen = \"127.0.0.1:7100\"\nnodes = [\"127.0.0.1:7000\", \"127.0.0.1:7001\", \"127.0.0.1:7002\"]\npki_dir = \"pki\"\ndata_dir = \"data\"\n";
        std::fs::write(sub.join("a.toml"), format!("id = 1\n{common}")).unwrap();
        let c = NodeConfig::load(&sub.join("a.toml")).unwrap();
        assert_eq!(c.ca.unwrap(), sub.join("pki/ca.crt"));
        assert_eq!(c.cert.unwrap(), sub.join("pki/node-1.crt"));
        assert_eq!(c.data_dir, sub.join("data"));
        assert_eq!(c.io_timeout_secs, 8);
        std::fs::write(
            sub.join("b.toml"),
            format!("id = 2\nca = \"/x/ca.pem\"\nkey = \"k.pem\"\n{common}"),
        )
        .unwrap();
        let c = NodeConfig::load(&sub.join("b.toml")).unwrap();
        assert_eq!(c.ca.unwrap(), PathBuf::from("/x/ca.pem"));
        assert_eq!(c.key.unwrap(), sub.join("k.pem"));
        assert_eq!(c.cert.unwrap(), sub.join("pki/node-2.crt"));
        std::fs::write(sub.join("c.toml"), format!("id = 3\n{common}")).unwrap();
        assert!(NodeConfig::load(&sub.join("c.toml"))
            .unwrap_err()
            .contains("id must be 0, 1 or 2"));
        std::fs::write(sub.join("d.toml"), format!("id = 0\nbogus = 1\n{common}")).unwrap();
        assert!(NodeConfig::load(&sub.join("d.toml"))
            .unwrap_err()
            .contains("bogus"));
    }

    #[test]
    fn governed_fields_default_resolve_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let common = "listen = \"127.0.0.1:7100\"\nnodes = [\"127.0.0.1:7000\", \"127.0.0.1:7001\", \"127.0.0.1:7002\"]\npki_dir = \"pki\"\ndata_dir = \"data\"\n";
        let p = dir.path().join("n.toml");
        std::fs::write(&p, format!("id = 0\n{common}")).unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(
            (c.signing_key, c.trusted_keys, c.sweep_secs),
            (None, None, 60)
        );
        let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        std::fs::write(
            &p,
            format!("id = 0\nsigning_key = \"k/n.gov.key\"\ntrusted_keys = [\"{key}\"]\nsweep_secs = 5\n{common}"),
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.signing_key.unwrap(), dir.path().join("k/n.gov.key"));
        assert_eq!(c.trusted_keys.unwrap(), vec![key.to_string()]);
        assert_eq!(c.sweep_secs, 5);
        std::fs::write(&p, format!("id = 0\ntrusted_keys = [\"abc\"]\n{common}")).unwrap();
        let e = NodeConfig::load(&p).unwrap_err();
        assert!(
            e.contains("trusted_keys[0] \"abc\" is not an Ed25519 public key"),
            "{e}"
        );
        std::fs::write(&p, format!("id = 0\nsweep_secs = 0\n{common}")).unwrap();
        assert!(NodeConfig::load(&p).unwrap_err().contains("sweep_secs"));
    }

    #[test]
    fn dev_mode_is_off_by_default_and_only_on_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.toml");
        let cfg = |listen: &str, node: &str, extra: &str| {
            format!(
                "id = 0\nlisten = \"{listen}\"\nnodes = [\"{node}\", \"127.0.0.1:7001\", \"[::1]:7002\"]\npki_dir = \"pki\"\ndata_dir = \"data\"\n{extra}"
            )
        };
        std::fs::write(&p, cfg("10.0.0.5:7100", "10.0.0.5:7000", "")).unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert!(!c.dev_mode);
        assert_eq!(
            (
                c.client_idle_timeout_secs,
                c.max_connections_per_peer,
                c.max_connections
            ),
            (300, 64, 256)
        );
        std::fs::write(
            &p,
            cfg("127.0.0.1:7100", "127.0.0.1:7000", "dev_mode = true\n"),
        )
        .unwrap();
        assert!(NodeConfig::load(&p).unwrap().dev_mode);
        for (listen, node) in [
            ("0.0.0.0:7100", "127.0.0.1:7000"),
            ("127.0.0.1:7100", "192.168.1.2:7000"),
        ] {
            std::fs::write(&p, cfg(listen, node, "dev_mode = true\n")).unwrap();
            let e = NodeConfig::load(&p).unwrap_err();
            assert!(
                e.contains("dev_mode = true is for a throw-away local cluster"),
                "{e}"
            );
            assert!(
                e.contains("not loopback: ") && !e.contains("127.0.0.1:7001"),
                "{e}"
            );
        }
        std::fs::write(
            &p,
            cfg(
                "127.0.0.1:7100",
                "127.0.0.1:7000",
                "client_idle_timeout_secs = 5\nmax_connections_per_peer = 2\nmax_connections = 3\n",
            ),
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(
            (
                c.client_idle_timeout_secs,
                c.max_connections_per_peer,
                c.max_connections
            ),
            (5, 2, 3)
        );
        std::fs::write(
            &p,
            cfg("127.0.0.1:7100", "127.0.0.1:7000", "max_connections = 0\n"),
        )
        .unwrap();
        assert!(NodeConfig::load(&p)
            .unwrap_err()
            .contains("max_connections must be at least 1"));
    }
}
