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
    pub nodes: [SocketAddr; 3],
    pub pki_dir: PathBuf,
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
        {
            resolve(p);
        }
        let layout = kuvert_net::pki::PkiLayout::new(&c.pki_dir);
        c.ca.get_or_insert_with(|| layout.ca_cert());
        c.cert.get_or_insert_with(|| layout.node_cert(c.id));
        c.key.get_or_insert_with(|| layout.node_key(c.id));
        if c.sweep_secs == 0 {
            return Err(format!("{}: sweep_secs must be at least 1", path.display()));
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

    /// This node's TLS configuration from the CA, certificate and key.
    pub fn tls(&self) -> Result<kuvert_net::NodeTls, String> {
        let (ca, cert, key) = (
            self.ca.as_ref().expect("set by load"),
            self.cert.as_ref().expect("set by load"),
            self.key.as_ref().expect("set by load"),
        );
        let roots = kuvert_net::pki::load_roots(ca)
            .map_err(|e| format!("cannot load the CA {}: {e}", ca.display()))?;
        let id = kuvert_net::Identity::load(cert, key).map_err(|e| {
            format!(
                "cannot load node {}'s certificate {} and key {}: {e}",
                self.id,
                cert.display(),
                key.display()
            )
        })?;
        kuvert_net::NodeTls::new(roots, &id).map_err(|e| e.to_string())
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
}
