//! A contributor's privacy-budget limit for one of its datasets, signed by
//! the contributor's approval key (`kuvert budget set`).
//!
//! Every compute node keeps its own ledger per account (contributor public
//! key, dataset) and charges each differentially private output of an
//! analysis to the account of every table the output reads
//! (`kuvert_node::budget`). The limit of an account is this document:
//! signed by the contributor, never set by the coordinator or a node
//! operator. A node refuses any differentially private output over a
//! dataset whose contributor has signed no limit.
//!
//! The signed message is [`BUDGET_TAG`] followed by the canonical JSON
//! (RFC 8785 form, [`crate::canonical`]) of every field but the signature,
//! with ε and δ as decimal strings; so a signature made for an approval,
//! an upload or a receipt is never valid here. A limit replaces the
//! account's previous one only with a higher `version`, so an old, more
//! generous limit cannot be replayed after the contributor lowered it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::GovError;
use crate::keys::PartyKey;
use crate::spec::decimal;
use crate::{canonical, hex};

/// Domain tag of the signed message.
pub const BUDGET_TAG: &[u8] = b"kuvert-budget-v1\0";

/// The `format` field of a budget limit.
pub const BUDGET_FORMAT: &str = "kuvert-budget-v1";

/// A contributor's signed privacy-budget limit for one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetLimit {
    /// Always [`BUDGET_FORMAT`].
    pub format: String,
    /// The contributor's Ed25519 approval key (lowercase hex), as the
    /// analysis specs name it under `public_key`.
    pub contributor_key: String,
    /// The dataset (a table's `dataset = ...` in a spec; `default` for
    /// tables that name none).
    pub dataset: String,
    /// Total ε that all releases over the dataset may spend together
    /// (basic composition). Written as a decimal string, so that the value
    /// signed is exactly the value read back (JSON number parsers may
    /// round).
    #[serde(with = "decimal_text")]
    pub epsilon: f64,
    /// Total δ likewise.
    #[serde(with = "decimal_text")]
    pub delta: f64,
    /// Replaces the account's limit only when higher than the current one.
    pub version: u64,
    /// When the contributor signed it (RFC 3339, UTC), for the record.
    pub issued_at: String,
    /// Ed25519 signature over [`BUDGET_TAG`] || canonical body (hex).
    pub signature: String,
}

/// ε and δ as Rust's shortest round-trip decimal text (`"0.00002"`),
/// parsed back with correct rounding: the same `f64` on both sides.
mod decimal_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::spec::decimal(*x))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let t = String::deserialize(d)?;
        t.trim()
            .parse::<f64>()
            .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a decimal number")))
    }
}

/// Why a limit's values cannot be a budget (before any signature).
fn check_values(dataset: &str, epsilon: f64, delta: f64) -> Result<(), String> {
    if dataset.is_empty()
        || dataset.len() > 64
        || !dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "dataset {dataset:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        ));
    }
    if !(epsilon.is_finite() && epsilon > 0.0 && epsilon <= 1000.0) {
        return Err(format!(
            "epsilon {epsilon}: give a total ε above 0 (at most 1000)"
        ));
    }
    if !(delta.is_finite() && (0.0..1.0).contains(&delta)) {
        return Err(format!("delta {delta}: give a total δ from 0 to below 1"));
    }
    Ok(())
}

impl BudgetLimit {
    /// The signed message: [`BUDGET_TAG`] || canonical JSON of the body.
    pub fn message(&self) -> Vec<u8> {
        let body = json!({
            "format": self.format,
            "contributor_key": self.contributor_key,
            "dataset": self.dataset,
            "epsilon": decimal(self.epsilon),
            "delta": decimal(self.delta),
            "version": self.version,
            "issued_at": self.issued_at,
        });
        let mut m = BUDGET_TAG.to_vec();
        m.extend_from_slice(canonical::to_string(&body).as_bytes());
        m
    }

    /// Sign a limit of (ε, δ) on `dataset` with the contributor's key.
    pub fn sign(
        key: &PartyKey,
        dataset: &str,
        epsilon: f64,
        delta: f64,
        version: u64,
        issued_at: &str,
    ) -> Result<BudgetLimit, GovError> {
        check_values(dataset, epsilon, delta).map_err(|message| GovError::Invalid {
            at: String::new(),
            field: "budget".into(),
            message,
        })?;
        let mut l = BudgetLimit {
            format: BUDGET_FORMAT.into(),
            contributor_key: hex::encode(key.verifying_key().as_bytes()),
            dataset: dataset.into(),
            epsilon,
            delta,
            version,
            issued_at: issued_at.into(),
            signature: String::new(),
        };
        l.signature = hex::encode(&key.sign(&l.message()).to_bytes());
        Ok(l)
    }

    /// Check the format, the values and the contributor's signature
    /// (`verify_strict`). `Err` says what is wrong.
    pub fn verify(&self) -> Result<(), String> {
        if self.format != BUDGET_FORMAT {
            return Err(format!(
                "format {:?} is not {BUDGET_FORMAT:?}; sign the limit with `kuvert budget set`",
                self.format
            ));
        }
        check_values(&self.dataset, self.epsilon, self.delta)?;
        let key = crate::spec::parse_ed25519(&self.contributor_key)
            .ok_or_else(|| format!("{:?} is not an Ed25519 public key", self.contributor_key))?;
        let sig = hex::decode_array::<64>(&self.signature)
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
            .ok_or("the signature is not 64 bytes of hex")?;
        key.verify_strict(&self.message(), &sig).map_err(|_| {
            "the signature does not verify with the contributor's key: the limit was altered or signed with another key".to_string()
        })
    }

    /// The contributor key, normalised to lowercase hex (as the ledger keys
    /// its accounts), if it is a valid key.
    pub fn key_hex(&self) -> Option<String> {
        crate::spec::parse_ed25519(&self.contributor_key).map(|k| hex::encode(k.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn key() -> PartyKey {
        PartyKey::generate_with("fk", &mut rand_chacha::ChaCha20Rng::seed_from_u64(3))
    }

    #[test]
    fn a_signed_limit_verifies_and_any_change_breaks_it() {
        let l =
            BudgetLimit::sign(&key(), "fk-benefits", 3.0, 1e-5, 1, "2026-12-07T00:00:00Z").unwrap();
        l.verify().unwrap();
        let mut m = l.clone();
        m.epsilon = 30.0;
        assert!(m.verify().unwrap_err().contains("does not verify"));
        let mut m = l.clone();
        m.dataset = "other".into();
        assert!(m.verify().is_err());
        let mut m = l.clone();
        m.version = 2;
        assert!(m.verify().is_err());
        let mut m = l.clone();
        m.format = "kuvert-budget-v0".into();
        assert!(m.verify().unwrap_err().contains("format"));
        // Another key's signature over the same body does not verify.
        let other = PartyKey::generate_with("x", &mut rand_chacha::ChaCha20Rng::seed_from_u64(4));
        let mut m = l.clone();
        m.signature = hex::encode(&other.sign(&l.message()).to_bytes());
        assert!(m.verify().is_err());
    }

    #[test]
    fn a_limit_survives_json_exactly_and_still_verifies() {
        // 10 × 2e-6 is 2.0000000000000003e-5: a JSON number parser that
        // rounds would change it and break the signature.
        let l = BudgetLimit::sign(&key(), "default", 3.0, 10.0 * 2e-6, 1, "t").unwrap();
        let back: BudgetLimit = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        back.verify().unwrap();
    }

    #[test]
    fn the_message_is_domain_separated_from_approvals() {
        let l = BudgetLimit::sign(&key(), "default", 1.0, 0.0, 1, "t").unwrap();
        assert!(l.message().starts_with(BUDGET_TAG));
        assert!(!l.message().starts_with(crate::keys::UPLOAD_TAG));
    }

    #[test]
    fn nonsense_values_are_refused_before_signing() {
        for (d, e, de) in [
            ("", 1.0, 0.0),
            ("a b", 1.0, 0.0),
            ("x", 0.0, 0.0),
            ("x", f64::NAN, 0.0),
            ("x", 1.0, 1.0),
            ("x", 1.0, -1e-9),
        ] {
            assert!(
                BudgetLimit::sign(&key(), d, e, de, 1, "t").is_err(),
                "{d} {e} {de}"
            );
        }
    }
}
