//! Sealed results: a node's result shares, encrypted to the recipient with
//! HPKE (RFC 9180), suite DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305, mode Base.
//!
//! The HPKE `info` binds the context:
//! `"kuvert-result-v1" || analysis id (32 bytes) || node index (1 byte)`.
//! A box therefore opens only under the analysis id and node index it was
//! sealed for: relabelling it (to pass it off as another analysis' or
//! another node's share) makes opening fail. The box carries the
//! encapsulated key (`enc`, 32 bytes) and the ciphertext with its 16-byte
//! tag.

use base64::Engine;
use hpke::{Deserializable, Serializable};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::GovError;
use crate::hex;
use crate::keys::PartyKey;
use crate::spec::AnalysisId;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// Domain-separation tag in the HPKE info.
pub const RESULT_TAG: &[u8] = b"kuvert-result-v1";

/// A sealed result (a `.sealed.json` file or an HTTP body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBox {
    /// The analysis the content belongs to (bound by the HPKE info).
    pub analysis_id: AnalysisId,
    /// The node index 0, 1 or 2 that sealed it (bound by the HPKE info).
    pub node: u8,
    /// HPKE encapsulated key, hex (32 bytes).
    pub enc: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

/// What an opened box held, and where it belongs.
pub struct Opened {
    pub analysis_id: AnalysisId,
    pub node: u8,
    /// The plaintext (zeroized on drop: result shares are secret).
    pub plaintext: Zeroizing<Vec<u8>>,
}

fn info(id: &AnalysisId, node: u8) -> Vec<u8> {
    let mut v = RESULT_TAG.to_vec();
    v.extend_from_slice(&id.0);
    v.push(node);
    v
}

/// Seal `plaintext` to `recipient` (its X25519 public key) for `analysis_id`
/// and `node`, with fresh randomness from the OS CSPRNG.
pub fn seal(
    recipient: &x25519_dalek::PublicKey,
    analysis_id: &AnalysisId,
    node: u8,
    plaintext: &[u8],
) -> Result<SealedBox, GovError> {
    seal_with(
        recipient,
        analysis_id,
        node,
        plaintext,
        &mut rand_core::OsRng,
    )
}

/// [`seal`] with a given RNG (tests use a seeded ChaCha20).
pub fn seal_with<R: RngCore + CryptoRng>(
    recipient: &x25519_dalek::PublicKey,
    analysis_id: &AnalysisId,
    node: u8,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<SealedBox, GovError> {
    if node > 2 {
        return Err(GovError::Seal(format!(
            "node index {node}: there are three nodes, 0, 1 and 2"
        )));
    }
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes())
        .map_err(|e| GovError::Seal(format!("recipient key: {e}")))?;
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem, R>(
        &hpke::OpModeS::Base,
        &pk,
        &info(analysis_id, node),
        plaintext,
        b"",
        rng,
    )
    .map_err(|e| GovError::Seal(format!("{e} (is the recipient key a valid X25519 key?)")))?;
    Ok(SealedBox {
        analysis_id: *analysis_id,
        node,
        enc: hex::encode(&enc.to_bytes()),
        ciphertext: base64::engine::general_purpose::STANDARD.encode(ct),
    })
}

/// Open a box with the recipient's key. Fails if the box was sealed to
/// another key, altered in any byte, or relabelled (analysis id or node).
/// The caller must still check that the labels are the ones it expects,
/// or use [`open_for`].
pub fn open(key: &PartyKey, sealed: &SealedBox) -> Result<Opened, GovError> {
    let fail = || GovError::Open {
        analysis_id: sealed.analysis_id.to_hex(),
        node: sealed.node,
    };
    let sk_bytes = key.x25519_secret_bytes();
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&sk_bytes[..]).map_err(|_| fail())?;
    let enc_bytes = hex::decode_array::<32>(sealed.enc.trim()).ok_or_else(fail)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc_bytes).map_err(|_| fail())?;
    let ct = base64::engine::general_purpose::STANDARD
        .decode(sealed.ciphertext.trim())
        .map_err(|_| fail())?;
    let pt = hpke::single_shot_open::<Aead, Kdf, Kem>(
        &hpke::OpModeR::Base,
        &sk,
        &enc,
        &info(&sealed.analysis_id, sealed.node),
        &ct,
        b"",
    )
    .map_err(|_| fail())?;
    Ok(Opened {
        analysis_id: sealed.analysis_id,
        node: sealed.node,
        plaintext: Zeroizing::new(pt),
    })
}

/// Open a box that must belong to `analysis_id` and `node`: a genuine box
/// of another analysis or node is refused before decryption.
pub fn open_for(
    key: &PartyKey,
    analysis_id: &AnalysisId,
    node: u8,
    sealed: &SealedBox,
) -> Result<Zeroizing<Vec<u8>>, GovError> {
    if sealed.analysis_id != *analysis_id || sealed.node != node {
        return Err(GovError::WrongBox {
            got_id: sealed.analysis_id.to_hex(),
            got_node: sealed.node,
            want_id: analysis_id.to_hex(),
            want_node: node,
        });
    }
    open(key, sealed).map(|o| o.plaintext)
}
