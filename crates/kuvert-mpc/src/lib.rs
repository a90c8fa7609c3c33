//! # kuvert-mpc: the three-party computation engine
//!
//! Replicated secret sharing among three parties with an honest majority
//! (Araki et al. 2016; ABY3), semi-honest security (first checks
//! against a malicious party: [`verified`], [`consistency`]), over Z_2^64
//! (arithmetic) and over 64-bit words of bits (boolean).
//!
//! ```text
//!   transport (trait) ── party (keys, primitives: input, reveal, mul, and)
//!                           │
//!                           ├── bits      bit-slicing (64×64 transposes)
//!                           ├── gadgets   A2B, B2A, bit injection, MSB, <, ==, select
//!                           ├── shuffle   three-pass resharing shuffle
//!                           ├── verified  verified open (checked against one malicious party)
//!                           └── consistency  both copies of every share component agree
//! ```
//!
//! Architecture invariant: **this crate does no I/O.** It talks to the other
//! parties only through [`transport::Transport`]; the in-process transport in
//! [`inproc`] makes a whole three-party run a deterministic unit test.
//!
//! # Security
//! - Adversary: one of the three parties, semi-honest (follows the protocol,
//!   tries to learn more), possibly colluding with any contributor or
//!   recipient who is not a computing party. This is the level of every
//!   protocol the SQL engine and the node programs use.
//! - Malicious security is in progress (security with abort against one
//!   actively corrupt party). Built so far: the verified open of
//!   [`verified`] ([`party::Party::reveal_a_verified`],
//!   [`party::Party::reveal_b_verified`]): if one party alters its messages
//!   of the open, every honest party aborts instead of returning values
//!   (barring a SHA-256 collision). Through the abort round it can still
//!   force an abort at one honest party while the other gets the correct
//!   values (selective abort). The consistency check of [`consistency`]
//!   ([`party::Party::check_consistent_a`],
//!   [`party::Party::check_consistent_b`]) makes every honest party abort
//!   unless the two copies of each share component held by two honest parties
//!   agree (e.g. a contributor's inconsistent shares), in 2 rounds and 34
//!   bytes per party whatever the columns; it reveals nothing and does not
//!   check what the shared values are. Inputs, multiplications, ANDs, the
//!   gadgets and the shuffle are still only semi-honest, and nothing
//!   outside this crate calls the verified open yet; the governed nodes
//!   run the consistency check on every uploaded table before they compute
//!   (kuvert-node `gov.rs`). [`faulty`] tampers with one party's messages in tests.
//! - Leakage: none beyond what [`party::Party::reveal_a`] /
//!   [`party::Party::reveal_b`] (and their verified variants) open
//!   explicitly, and the lengths of columns.
//! - Randomness: PRF keys from a CSPRNG at session start, AES-128-CTR
//!   streams with a fresh nonce per operation; keys are wiped on drop and
//!   have no `Debug`. Share vectors are wiped on drop and print only their
//!   length.

pub mod bench;
pub mod bits;
pub mod consistency;
pub mod dzkp;
pub mod faulty;
pub mod gadgets;
pub mod gf64;
pub mod harness;
pub mod inproc;
pub mod party;
pub mod prf;
pub mod share;
pub mod shuffle;
pub mod transport;
pub mod verified;

pub use party::{MpcError, Party, Result, Security, Stats};
pub use share::{AShare, BShare, BitShare};
pub use transport::{PartyId, Transport, TransportError};
pub use verified::Verified;
