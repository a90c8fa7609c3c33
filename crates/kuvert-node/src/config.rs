//! `node.toml`: everything a node operator configures.
//!
//! ```toml
//! id = 0                                   # this node: 0, 1 or 2
//! listen = "127.0.0.1:7100"                # client API (contributors, recipients)
//! nodes = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]  # node-to-node MPC links
//! pki_dir = "pki"                          # ca.crt, node-<id>.crt, node-<id>.key
//! data_dir = "node0-data"                  # uploaded shares (never cleartext)
//! io_timeout_secs = 8                      # a silent peer fails the job after this
//! connect_timeout_secs = 10                # how long a job waits for the other nodes
//! max_upload_bytes = 4294967296
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
    pub data_dir: PathBuf,
    #[serde(default = "default_io_timeout")]
    pub io_timeout_secs: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
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
        for p in [&mut c.pki_dir, &mut c.data_dir] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }
}
