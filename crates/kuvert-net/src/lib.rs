//! # kuvert-net: the network between the three compute nodes
//!
//! ```text
//!   pki        deployment CA, node and party certificates (rcgen), loading
//!   tls        rustls configurations: TLS 1.3 only, client certificates required
//!   frame      the versioned frame format inside the TLS stream (pure, fuzzed)
//!   transport  TlsTransport: kuvert_mpc::Transport between node processes
//! ```
//!
//! Architecture invariant: **only this crate opens sockets between nodes.**
//! The engine (`kuvert-mpc`) talks through the `Transport` trait and never
//! sees a socket, a certificate or a frame.
//!
//! # Security
//! - Every connection is TLS 1.3 with mutual authentication against one
//!   deployment CA ([`pki`]). A node's identity is the DNS name `node-<i>`
//!   in its certificate; a node accepts links only from lower-numbered nodes
//!   whose certificate says so, and dials higher-numbered nodes verifying
//!   their name. So a node (or a party holding a client certificate) cannot
//!   impersonate another node as long as the CA key is safe.
//! - Whoever holds the CA key can issue any identity: keep `ca.key` offline
//!   (docs/deployment.md). There is no revocation list yet; a compromised
//!   key is handled by rotating the CA (all certificates re-issued).
//! - Confidentiality of shares in transit rests on TLS; the MPC protocol on
//!   top is semi-honest, so a node that sends wrong data is detected only as
//!   far as framing, lengths and sequence numbers go (`Malformed`), not in
//!   its content.
//! - Input from a peer is bounded before allocation: frame headers are
//!   validated (magic, version, kind, flags, length ≤ 4 MiB) before any
//!   payload is read, and a round accepts exactly the number of bytes it
//!   expects. The decoder is fuzzed (`fuzz/`) and property-tested.
//! - Key material: our own copies of PEM key text are wiped after use, and
//!   the DER key of an [`Identity`] is wiped on drop; the copies inside
//!   rustls and ring (for as long as a TLS configuration lives), and keys
//!   inside rcgen while issuing, are not under our control and are not
//!   wiped by us.
//! - Traffic analysis: message sizes and timing are visible on the wire;
//!   they follow the public plan (sizes of inputs), as in the design brief.

pub mod frame;
pub mod pki;
pub mod tls;
pub mod transport;

pub use pki::{Identity, PeerIdentity, PkiError};
pub use tls::{NodeTls, TlsError};
pub use transport::{NetConfig, TlsTransport};
