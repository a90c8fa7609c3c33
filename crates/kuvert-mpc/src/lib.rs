//! # kuvert-mpc: the three-party computation engine
//!
//! Replicated secret sharing among three parties with an honest majority
//! (Araki et al. 2016; ABY3), semi-honest security or security with abort
//! against one malicious party ([`verified`], [`consistency`], [`dzkp`],
//! [`mac`]), over Z_2^64
//! (arithmetic) and over 64-bit words of bits (boolean).
//!
//! ```text
//!   transport (trait) ── party (keys, primitives: input, reveal, mul, and)
//!                           │
//!                           ├── bits      bit-slicing (64×64 transposes)
//!                           ├── gadgets   A2B, B2A, bit injection, MSB, <, ==, select
//!                           ├── shuffle   three-pass resharing shuffle
//!                           ├── verified  verified open (checked against one malicious party)
//!                           ├── consistency  both copies of every share component agree
//!                           ├── dzkp      proofs that every AND message was honest (gf64)
//!                           └── mac       MAC check of every product over Z_2^64
//! ```
//!
//! Architecture invariant: **this crate does no I/O.** It talks to the other
//! parties only through [`transport::Transport`]; the in-process transport in
//! [`inproc`] makes a whole three-party run a deterministic unit test.
//!
//! # Security
//! - Adversary: one of the three parties, semi-honest (follows the protocol,
//!   tries to learn more) or, in malicious mode, deviating, possibly
//!   colluding with any contributor or recipient who is not a computing
//!   party.
//! - Unsafe code: one block, the carry-less multiply of [`gf64`] (one at a
//!   time, or four at a time with AVX-512 VPCLMULQDQ) behind run-time CPU
//!   feature checks (the crate denies `unsafe_code` otherwise).
//! - Malicious security (security with abort against one actively corrupt
//!   party), chosen per session with
//!   [`party::Security::Malicious`] ([`party::Party::setup_with`]). In that
//!   mode every AND gate is proven with a distributed zero-knowledge proof
//!   ([`dzkp`], over [`gf64`]; soundness error below 2^-57.9 per batch)
//!   before anything is opened, and every open is verified ([`verified`]:
//!   the missing component from one neighbour, its digest from the other,
//!   then an abort round; barring a SHA-256 collision). Multiplication over
//!   Z_2^64 and the shuffle (every pass) are checked with SPDZ-wise MACs
//!   over Z_2^128 ([`mac`], soundness error 2^-57.9 per check); the shuffle
//!   refuses boolean columns there. So on consistent input shares every
//!   primitive and gadget either gives correct results or makes every honest party abort, except that
//!   through the last abort round a corrupt party can stop one honest party
//!   while the other gets the correct values (selective abort; the
//!   governed nodes make it unanimous with a signed agreement on the
//!   outcome, `kuvert_node::agree`, using [`party::Party::session_tag`]).
//!   [`party::Party::pair_sampled_a`] draws sharings no party can bias
//!   (the DP noise of that mode), and [`party::Party::verified_result`]
//!   vouches for result shares once every check passed. The consistency
//!   check of [`consistency`] ([`party::Party::check_consistent_a`],
//!   [`party::Party::check_consistent_b`]) makes every honest party abort
//!   unless the two copies of each share component held by two honest
//!   parties agree (e.g. a contributor's inconsistent shares), in 2 rounds
//!   and 34 bytes per party whatever the columns; the governed nodes run it
//!   on every uploaded table before they compute (kuvert-node `gov.rs`).
//!   [`faulty`] tampers with one party's messages in tests.
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
pub mod mac;
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
