//! # kuvert-net: the network between the three compute nodes
//!
//! ```text
//!   pki         per-operator CAs, keys and CSRs made where they are used, fingerprints
//!   federation  the three nodes' CAs, addresses and pinned keys, signed by all three operators
//!   tls         rustls configurations: TLS 1.3 only, client certificates required,
//!               federation pinning, clients' pins, hybrid post-quantum key exchange (pq)
//!   frame       the versioned frame format inside the TLS stream (pure, fuzzed)
//!   transport   TlsTransport: kuvert_mpc::Transport between node processes
//! ```
//!
//! Architecture invariant: **only this crate opens sockets between nodes.**
//! The engine (`kuvert-mpc`) talks through the `Transport` trait and never
//! sees a socket, a certificate or a frame.
//!
//! # Security
//! - Every connection is TLS 1.3 with mutual authentication. In a
//!   deployment ([`federation`]) node `j` is exactly the key the federation
//!   file lists for `j`, in a certificate from `j`'s operator's CA: a node
//!   accepts (and dials) another node only under that pin, refuses any
//!   certificate that names a node with another key, and accepts parties
//!   only from the client CAs its operator configured. No CA key, an
//!   operator's own included, can therefore make an impostor node; a
//!   federation changes only with all three operators' signatures. Keys are
//!   made where they are used and certified by CSR ([`pki::request`],
//!   [`pki::sign_request`]).
//! - The development cluster of `kuvert run`/`kuvert bench` (`pki::init`,
//!   one CA, [`tls::Trust::SingleCa`]) names nodes by the certificate name
//!   `node-<i>`; whoever holds that CA key can issue any identity there.
//!   There is no revocation list; a node key is retired by a new federation.
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

pub mod federation;
pub mod frame;
pub mod pki;
pub mod pq;
pub mod tls;
pub mod transport;

pub use federation::Federation;
pub use pki::{Identity, PeerIdentity, PkiError};
pub use tls::{NodeTls, TlsError};
pub use transport::{NetConfig, TlsTransport};
