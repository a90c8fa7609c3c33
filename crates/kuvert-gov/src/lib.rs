//! # kuvert-gov: what makes a Kuvert analysis governed
//!
//! ```text
//!   spec        the analysis (TOML): purpose, legal basis, contributors and their tables,
//!               recipients and their outputs (SQL), protocol, leakage opt-ins, retention, DP
//!               -> validate -> canonical JSON (RFC 8785 form) -> SHA-256 = the analysis id
//!   keys        a party's key file: Ed25519 (signing) + X-Wing (receiving sealed results)
//!   approval    a contributor's Ed25519 signature over "kuvert-approval-v1" || id;
//!               verify_approvals(spec, approvals) is what every node runs before it
//!               accepts a share
//!   seal        HPKE (KEM X-Wing = ML-KEM-768 + X25519, HKDF-SHA256, ChaCha20-Poly1305,
//!               mode Base):
//!               a node's result shares, readable only by the named recipient, bound to
//!               the analysis id and the node index
//!   audit       append-only, hash-chained JSON-lines files (audit*.log); verify a file, or a
//!               directory of them with cross-file checks (same job -> same analysis, same
//!               input sizes on every node)
//!   budget      a contributor's signed privacy-budget limit for one of its datasets
//!               (the nodes keep the ledgers and charge every DP output)
//!   receipt     a node's signed statement that it deleted a job's shares, state and keys
//!   describe    the DPIA text (Markdown or HTML) for legal officers, and the approval
//!               summary a contributor reads before it signs
//!   templates   the six reference analyses as ready-made specs
//! ```
//!
//! This crate is the governance layer of the service described in SOU 2026:44
//! §8.6: agencies agree an analysis, every contributor approves its exact
//! hash, nodes check the approvals themselves, only the recipient can read the
//! result, nodes delete and say so, and every step is logged. The
//! coordinator, the nodes and the `kuvert` CLI call it; it does no network
//! I/O and never sees data, shares or results in the clear (except
//! [`seal::open`], which runs on the recipient's own machine).
//!
//! Architecture invariant: **this crate knows schemas, SQL text, keys and
//! sizes, never table values.** Audit records carry sizes and counts only.
//!
//! # Security
//! - Adversary: any one compute node, the service operator (coordinator) and
//!   any network attacker, possibly colluding with a contributor or a
//!   recipient. The operator is a processor: it stores and forwards specs,
//!   approvals, sealed boxes and audit files but holds no key that opens or
//!   forges any of them.
//! - The analysis id is SHA-256 over a documented canonical encoding of the
//!   whole spec (see `docs/governance.md`), so an approval signs every field:
//!   changing the SQL, a recipient, a key, the retention or a comma in the
//!   purpose gives another id, and the old approvals no longer verify.
//! - Approvals and deletion receipts are Ed25519 signatures (`verify_strict`:
//!   no small-order keys, no malleable signatures) over domain-separated
//!   messages (`kuvert-approval-v1`, `kuvert-deletion-v1`), so a signature made
//!   for one purpose is never valid for another.
//! - Results are sealed with HPKE (RFC 9180) mode Base over the post-quantum
//!   hybrid KEM X-Wing (a recording of a box does not open with a future
//!   quantum computer unless ML-KEM-768 falls too): confidentiality and
//!   integrity against everyone but the recipient. Mode Base does **not**
//!   authenticate the sender: the recipient learns that the box was made for
//!   this analysis and node index, not by whom. Node authentication comes from
//!   the mutually authenticated TLS channel the box travels over.
//! - Secret keys come from the OS CSPRNG (`OsRng`), are zeroized on drop, are
//!   written with mode 0600, refused when group- or world-readable, and have
//!   no `Debug` or `Serialize` implementation.
//! - The audit log's hash chain detects any altered, removed, inserted or
//!   reordered line **except the removal of the last lines** (a shorter
//!   chain is still a valid chain). Truncation is detected by comparing the
//!   head (last seq and hash) with a copy held elsewhere: the heads that
//!   `kuvert audit verify` prints, the other nodes' and the coordinator's
//!   logs (what one log implies another must hold), the head a deletion
//!   receipt signs ([`receipt::DeletionReceipt::audit_head`]) and the head
//!   each sealed result carries; [`audit::verify_dir_with`] checks them all.
//!   The chain is not signed: a node that rewrites its whole file from the
//!   start produces a valid chain; the copies held by others are what catch
//!   it, and all parties truncating together is caught by none of them.
//! - Out of scope here: transport (kuvert-net), the MPC protocol itself
//!   (kuvert-mpc), and whether the legal basis named in a spec is the right
//!   one (the agencies' lawyers decide that; the templates' legal references
//!   are examples to be checked).

#![forbid(unsafe_code)]

pub mod approval;
pub mod audit;
pub mod budget;
pub mod canonical;
pub mod describe;
pub mod keys;
pub mod receipt;
pub mod seal;
pub mod spec;
pub mod templates;

mod error;
mod hex;

pub use approval::{approval_status, sign_approval, verify_approvals, Approval, ApprovalState};
pub use audit::{
    verify_dir, verify_dir_with, verify_file, AuditEvent, AuditLog, AuditRecord, VerifyOptions,
};
pub use budget::BudgetLimit;
pub use describe::{approval_summary, approval_summary_html, describe, Format};
pub use error::GovError;
pub use keys::{KemPublicKey, PartyKey, PublicKeys};
pub use receipt::{Deleted, DeletionReceipt};
pub use seal::{open, seal, SealedBox};
pub use spec::{AnalysisId, AnalysisSpec, Validation};
