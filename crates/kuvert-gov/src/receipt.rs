//! Deletion receipts: a node's signed statement that it deleted a job's
//! input shares, intermediate state and session keys.
//!
//! The signature is Ed25519 over `"kuvert-deletion-v1" || canonical JSON of
//! the receipt without its `signature` member` (the canonical form of
//! [`crate::canonical`]). The receipt carries the node's audit head just
//! after its `shares_deleted` record (the number of records and that
//! record's hash), which pins the audit log: a log later cut short no
//! longer reaches that head, which [`crate::audit::verify_dir_with`] reports.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical;
use crate::error::GovError;
use crate::hex;
use crate::keys::PartyKey;
use crate::spec::AnalysisId;

/// Domain-separation tag of deletion receipts.
pub const DELETION_TAG: &[u8] = b"kuvert-deletion-v1";

/// What was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deleted {
    /// The input tables whose shares were deleted.
    pub tables: Vec<String>,
    /// Intermediate shares and protocol state of the job.
    pub intermediate_state: bool,
    /// The job's session keys (correlated-randomness seeds, channel keys).
    pub session_keys: bool,
}

/// The audit head a receipt pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Number of records in the node's audit file when it signed.
    pub records: u64,
    /// Hash of the last of them.
    pub hash: String,
}

/// A signed deletion receipt (a `receipt-nodeN.json` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionReceipt {
    pub analysis_id: AnalysisId,
    pub job: String,
    /// Node index 0, 1 or 2.
    pub node: u8,
    pub deleted: Deleted,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
    /// The node's Ed25519 key (hex), for reference; verification uses the
    /// key the verifier trusts, not this field.
    pub node_public_key: String,
    /// Ed25519 signature (hex).
    pub signature: String,
}

impl DeletionReceipt {
    fn message(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("signature");
        }
        let mut msg = DELETION_TAG.to_vec();
        msg.extend_from_slice(canonical::to_string(&v).as_bytes());
        msg
    }

    /// Sign a receipt now.
    pub fn sign(
        key: &PartyKey,
        analysis_id: AnalysisId,
        job: &str,
        node: u8,
        deleted: Deleted,
        audit_head: Option<AuditHead>,
    ) -> DeletionReceipt {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        DeletionReceipt::sign_at(key, analysis_id, job, node, deleted, audit_head, time)
    }

    /// Sign a receipt with a given time (RFC 3339).
    pub fn sign_at(
        key: &PartyKey,
        analysis_id: AnalysisId,
        job: &str,
        node: u8,
        deleted: Deleted,
        audit_head: Option<AuditHead>,
        time: String,
    ) -> DeletionReceipt {
        let mut r = DeletionReceipt {
            analysis_id,
            job: job.to_string(),
            node,
            deleted,
            time,
            audit_head,
            node_public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: String::new(),
        };
        r.signature = hex::encode(&key.sign(&r.message()).to_bytes());
        r
    }

    /// Verify against the node's public key (from its `.pub` file or the
    /// deployment's configuration, never from the receipt itself).
    pub fn verify(&self, node_key: &ed25519_dalek::VerifyingKey) -> Result<(), GovError> {
        let bad = || GovError::BadReceipt {
            node: self.node,
            job: self.job.clone(),
        };
        let sig = hex::decode_array::<64>(self.signature.trim())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
            .ok_or_else(bad)?;
        node_key
            .verify_strict(&self.message(), &sig)
            .map_err(|_| bad())
    }
}

/// Domain tag of a node's countersignature of the coordinator's audit head.
pub const COORDINATOR_HEAD_TAG: &[u8] = b"kuvert-coordinator-head-v1\0";

/// The message a node signs when it countersigns the coordinator's audit
/// head at a job: [`COORDINATOR_HEAD_TAG`] || analysis id || records (u64
/// BE) || the head hash's text.
pub fn coordinator_head_message(analysis: &AnalysisId, head: &AuditHead) -> Vec<u8> {
    let mut m = COORDINATOR_HEAD_TAG.to_vec();
    m.extend_from_slice(&analysis.0);
    m.extend_from_slice(&head.records.to_be_bytes());
    m.extend_from_slice(head.hash.as_bytes());
    m
}

/// A node's countersignature (hex) of the coordinator's head `head`, given
/// when the coordinator asks it to run `analysis`. The node also records
/// it in its own hash-chained log, so the coordinator's operator cannot
/// rewrite its chain before that head alone (`kuvert audit verify`).
pub fn countersign_coordinator_head(
    key: &PartyKey,
    analysis: &AnalysisId,
    head: &AuditHead,
) -> String {
    hex::encode(
        &key.sign(&coordinator_head_message(analysis, head))
            .to_bytes(),
    )
}

/// Verify a countersignature made by [`countersign_coordinator_head`].
pub fn verify_coordinator_head(
    node_key: &ed25519_dalek::VerifyingKey,
    analysis: &AnalysisId,
    head: &AuditHead,
    signature: &str,
) -> bool {
    hex::decode_array::<64>(signature.trim())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .is_some_and(|s| {
            node_key
                .verify_strict(&coordinator_head_message(analysis, head), &s)
                .is_ok()
        })
}
