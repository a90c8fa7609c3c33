//! # kuvert-deid: de-identification and re-identification risk
//!
//! The techniques that SOU 2026:44 names, and the measures that tell whether
//! they are *enough*:
//!
//! * [`pseudo`]: keyed pseudonymisation of identifiers: HMAC-SHA-256
//!   (irreversible) or AES-SIV deterministic encryption (reversible with the
//!   key); Swedish identity numbers are validated and normalised first
//!   ([`idnr`]).
//! * [`hierarchy`], [`search`], [`models`]: generalisation hierarchies and an
//!   ARX-style lattice search for the least information loss that meets
//!   k-anonymity, l-diversity (distinct or entropy) and t-closeness within a
//!   suppression limit.
//! * [`deid`]: the pipeline (drop, suppress, randomise, generalise,
//!   pseudonymise), driven by a [`config::Config`].
//! * [`risk`]: prosecutor, journalist and marketer re-identification risk,
//!   sample and population uniqueness.
//! * [`attacks`]: singling-out, linkability and attribute-inference attacks
//!   in the manner of Anonymeter, each against a baseline and, given a
//!   held-out control set, relative to it; membership inference by distance
//!   to the closest record.
//! * [`report`]: a self-contained HTML report for a DPIA.
//!
//! Data are read from CSV, TSV or Parquet and held column-wise and
//! dictionary-encoded ([`table`]): each column is a list of distinct strings
//! plus a `u32` code per row, so the search groups small integers.
//!
//! Architecture invariant: this crate does no network I/O and never writes
//! a key anywhere but the key file; the `kuvert` CLI only parses flags and
//! calls it.
//!
//! # Security
//!
//! * **Keys.** The pseudonymisation key lives only in the key file made by
//!   [`pseudo::Keys::generate`] (64 random bytes from the operating system,
//!   file mode 0600, never overwritten). [`pseudo::Keys`] has no `Debug` or
//!   `Serialize`, is zeroized on drop, and nothing in this crate writes it to
//!   output, reports or errors. Whoever holds the key can recompute HMAC
//!   pseudonyms for guessed identity numbers (a dictionary attack over all
//!   personnummer is cheap), so HMAC pseudonyms are only as safe as the key;
//!   SIV pseudonyms can be decrypted with it. Pseudonymised data are still
//!   personal data under the GDPR.
//! * **What the models promise.** k-anonymity, l-diversity and t-closeness
//!   hold for the quasi-identifiers and sensitive column *that the user
//!   named*; any other column that an attacker knows can break them. They
//!   give no guarantee against attackers with background knowledge beyond the
//!   model (that is what differential privacy is for).
//! * **Randomness.** Noise and swapping use ChaCha20 seeded from the
//!   operating system. The `seed` option exists for reproducible tests only.
//!   Noise addition here is *not* differential privacy: the scale is not
//!   calibrated to a sensitivity and there is no budget.
//! * **Risk numbers are estimates** under stated attacker models (see
//!   [`risk`] and [`attacks`]); a low number is evidence, not proof, of
//!   anonymity. The attacks need a control set of records that were *not*
//!   used for the release to separate a privacy leak from what the data
//!   teach about everyone; without one the reported risk is an upper bound.

#![forbid(unsafe_code)]

pub mod attacks;
pub mod config;
pub mod date;
pub mod deid;
pub mod error;
pub mod gen;
pub mod hierarchy;
pub mod idnr;
pub mod models;
pub mod pseudo;
pub mod report;
pub mod risk;
pub mod search;
pub mod table;

pub use error::{DeidError, Result};
