//! Contributor approvals: an Ed25519 signature over
//! `"kuvert-approval-v1" || id` (the 18 ASCII bytes of the tag, then the
//! analysis id's 32 raw bytes).
//!
//! Every node runs [`verify_approvals`] itself before it accepts a share or
//! starts a job: the coordinator cannot approve on anyone's behalf, because
//! the keys that count are the ones written in the spec, and the spec's id
//! covers them.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::error::GovError;
use crate::hex;
use crate::keys::PartyKey;
use crate::spec::{parse_ed25519, AnalysisId, AnalysisSpec, Validation};

/// The domain-separation tag of approval signatures.
pub const APPROVAL_TAG: &[u8] = b"kuvert-approval-v1";

/// One contributor's approval of one analysis id (an `approval.json` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub analysis_id: AnalysisId,
    /// The contributor's id in the spec.
    pub contributor: String,
    /// The Ed25519 key that signed (hex).
    pub public_key: String,
    /// Ed25519 signature over `APPROVAL_TAG || analysis_id` (hex, 64 bytes).
    pub signature: String,
}

/// The signed message: `APPROVAL_TAG || id`.
pub fn approval_message(id: &AnalysisId) -> Vec<u8> {
    let mut m = APPROVAL_TAG.to_vec();
    m.extend_from_slice(&id.0);
    m
}

/// Sign an approval of `id` as `contributor` with `key`. The CLI checks
/// first that the spec in hand has this id ([`approve_spec`]).
pub fn sign_approval(id: &AnalysisId, contributor: &str, key: &PartyKey) -> Approval {
    let sig = key.sign(&approval_message(id));
    Approval {
        analysis_id: *id,
        contributor: contributor.to_string(),
        public_key: hex::encode(key.verifying_key().as_bytes()),
        signature: hex::encode(&sig.to_bytes()),
    }
}

/// Approve `spec` as the contributor whose spec key is `key`'s, refusing
/// when the spec's id is not `expected` (the id the approver agreed to) or
/// when the key is not one of the spec's contributors' keys.
pub fn approve_spec(
    spec: &AnalysisSpec,
    expected: &AnalysisId,
    key: &PartyKey,
) -> Result<Approval, GovError> {
    spec.validate(Validation::Strict)?;
    let actual = spec.id();
    if actual != *expected {
        return Err(GovError::IdMismatch {
            given: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    let vk = key.verifying_key();
    let c = spec
        .contributors
        .iter()
        .find(|c| parse_ed25519(&c.public_key) == Some(vk))
        .ok_or_else(|| GovError::UnknownContributor {
            contributor: format!(
                "(the holder of key {}, file name {:?})",
                hex::encode(vk.as_bytes()),
                key.name()
            ),
            known: known(spec),
        })?;
    Ok(sign_approval(&actual, &c.id, key))
}

/// Proof that every contributor approved `spec`: only [`approved`] makes
/// one, so code that demands an `&Approved` (a node accepting shares,
/// starting a job) cannot be reached without the check.
pub struct Approved<'a> {
    spec: &'a AnalysisSpec,
    id: AnalysisId,
}

impl<'a> Approved<'a> {
    pub fn spec(&self) -> &'a AnalysisSpec {
        self.spec
    }

    pub fn id(&self) -> AnalysisId {
        self.id
    }
}

/// [`verify_approvals`], returning the proof token on success.
pub fn approved<'a>(
    spec: &'a AnalysisSpec,
    approvals: &[Approval],
) -> Result<Approved<'a>, GovError> {
    verify_approvals(spec, approvals)?;
    Ok(Approved {
        spec,
        id: spec.id(),
    })
}

/// Where one contributor's approval stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalState {
    /// A valid signature with the spec's key over this spec's id.
    Approved,
    /// No approval given.
    Missing,
    /// An approval was given but is not valid; the error says why.
    Invalid(String),
}

/// Check one approval against the spec. Returns the contributor id.
fn check_one<'a>(
    spec: &'a AnalysisSpec,
    id: &AnalysisId,
    a: &Approval,
) -> Result<&'a str, GovError> {
    let c = spec
        .contributor(&a.contributor)
        .ok_or_else(|| GovError::UnknownContributor {
            contributor: a.contributor.clone(),
            known: known(spec),
        })?;
    if a.analysis_id != *id {
        return Err(GovError::ApprovalForOtherAnalysis {
            contributor: a.contributor.clone(),
            approved: a.analysis_id.to_hex(),
            expected: id.to_hex(),
        });
    }
    let expected = parse_ed25519(&c.public_key);
    let given = parse_ed25519(&a.public_key);
    let (Some(expected), Some(given)) = (expected, given) else {
        return Err(GovError::ApprovalKeyMismatch {
            contributor: a.contributor.clone(),
            given: a.public_key.clone(),
            expected: c.public_key.clone(),
        });
    };
    if expected != given {
        return Err(GovError::ApprovalKeyMismatch {
            contributor: a.contributor.clone(),
            given: hex::encode(given.as_bytes()),
            expected: hex::encode(expected.as_bytes()),
        });
    }
    let sig = hex::decode_array::<64>(a.signature.trim())
        .map(|b| Signature::from_bytes(&b))
        .ok_or_else(|| GovError::BadApprovalSignature {
            contributor: a.contributor.clone(),
        })?;
    expected
        .verify_strict(&approval_message(id), &sig)
        .map_err(|_| GovError::BadApprovalSignature {
            contributor: a.contributor.clone(),
        })?;
    Ok(&c.id)
}

/// Check that every contributor of `spec` approved exactly this spec with
/// the key the spec names. What each node runs before accepting shares.
///
/// Errors, in this order: the spec is invalid (or has placeholder keys);
/// an approval names an unknown contributor, is for another analysis id, is
/// signed with another key, or has a bad signature; a contributor approved
/// twice; some contributors did not approve.
pub fn verify_approvals(spec: &AnalysisSpec, approvals: &[Approval]) -> Result<(), GovError> {
    spec.validate(Validation::Strict)?;
    let id = spec.id();
    let mut seen = BTreeMap::new();
    for a in approvals {
        let who = check_one(spec, &id, a)?;
        if seen.insert(who, ()).is_some() {
            return Err(GovError::DuplicateApproval {
                contributor: who.to_string(),
            });
        }
    }
    let missing: Vec<String> = spec
        .contributors
        .iter()
        .filter(|c| !seen.contains_key(c.id.as_str()))
        .map(|c| c.id.clone())
        .collect();
    if !missing.is_empty() {
        return Err(GovError::MissingApprovals {
            analysis_id: id.to_hex(),
            missing,
        });
    }
    Ok(())
}

/// Per contributor (in the spec's order), where its approval stands. An
/// approval that names no contributor of the spec is reported under its
/// own name. Used by the DPIA text.
pub fn approval_status(
    spec: &AnalysisSpec,
    approvals: &[Approval],
) -> Vec<(String, ApprovalState)> {
    let id = spec.id();
    let mut out: Vec<(String, ApprovalState)> = spec
        .contributors
        .iter()
        .map(|c| (c.id.clone(), ApprovalState::Missing))
        .collect();
    for a in approvals {
        let state = match check_one(spec, &id, a) {
            Ok(_) => ApprovalState::Approved,
            Err(e) => ApprovalState::Invalid(e.to_string()),
        };
        match out.iter_mut().find(|(c, _)| *c == a.contributor) {
            // A valid approval wins over an invalid one from the same name.
            Some((_, s)) => {
                if *s != ApprovalState::Approved {
                    *s = state;
                }
            }
            None => out.push((a.contributor.clone(), state)),
        }
    }
    out
}

/// Read an approval file.
pub fn load_approval(path: &Path) -> Result<Approval, GovError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        GovError::io(
            path,
            "; give the approval JSON from `kuvert analysis approve`",
            e,
        )
    })?;
    serde_json::from_str(&text).map_err(|e| GovError::Syntax {
        origin: path.display().to_string(),
        line: e.line(),
        column: e.column(),
        message: format!(
            "{e}; an approval is JSON with analysis_id, contributor, public_key and signature"
        ),
    })
}

fn known(spec: &AnalysisSpec) -> String {
    spec.contributors
        .iter()
        .map(|c| c.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
