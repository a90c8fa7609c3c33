//! # kuvert-mpc: the three-party computation engine
//!
//! Replicated secret sharing among three parties with an honest majority
//! (Araki et al. 2016; ABY3), semi-honest security, over Z_2^64
//! (arithmetic) and over 64-bit words of bits (boolean).
//!
//! ```text
//!   transport (trait) ── party (keys, primitives: input, reveal, mul, and)
//!                           │
//!                           ├── bits      bit-slicing (64×64 transposes)
//!                           ├── gadgets   A2B, B2A, bit injection, MSB, <, ==, select
//!                           └── shuffle   three-pass resharing shuffle
//! ```
//!
//! Architecture invariant: **this crate does no I/O.** It talks to the other
//! parties only through [`transport::Transport`]; the in-process transport in
//! [`inproc`] makes a whole three-party run a deterministic unit test.
//!
//! # Security
//! - Adversary: one of the three parties, semi-honest (follows the protocol,
//!   tries to learn more), possibly colluding with any contributor or
//!   recipient who is not a computing party. Malicious behaviour is not
//!   detected yet; the primitives in [`party`] are the seam where a verified
//!   variant will go.
//! - Leakage: none beyond what [`party::Party::reveal_a`] /
//!   [`party::Party::reveal_b`] open explicitly, and the lengths of columns.
//! - Randomness: PRF keys from a CSPRNG at session start, AES-128-CTR
//!   streams with a fresh nonce per operation; keys are wiped on drop and
//!   have no `Debug`. Share vectors are wiped on drop and print only their
//!   length.

pub mod bench;
pub mod bits;
pub mod gadgets;
pub mod harness;
pub mod inproc;
pub mod party;
pub mod prf;
pub mod share;
pub mod shuffle;
pub mod transport;

pub use party::{MpcError, Party, Result, Stats};
pub use share::{AShare, BShare, BitShare};
pub use transport::{PartyId, Transport, TransportError};
