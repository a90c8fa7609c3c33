//! Sealed results: a node's result shares, encrypted to the recipient with
//! HPKE (RFC 9180, mode Base) whose KEM is the hybrid post-quantum **X-Wing**
//! (draft-connolly-cfrg-xwing-kem-06: ML-KEM-768 and X25519, combined with
//! SHA3-256), with HKDF-SHA256 and ChaCha20-Poly1305.
//!
//! Results wait at the nodes for weeks and travel over the network, so a
//! recording made today must not open once a quantum computer breaks
//! X25519 ("harvest now, decrypt later"). X-Wing's shared secret stays
//! secret as long as *either* ML-KEM-768 or X25519 is unbroken.
//!
//! The construction, for one box:
//!
//! ```text
//! (enc, ss)        = X-Wing.Encaps(recipient's kem_public_key)     enc: 1120 bytes, ss: 32
//! info             = "kuvert-result-v2" || analysis id (32 bytes) || node index (1 byte)
//! key, base_nonce  = KeySchedule(mode_base, ss, info, psk = "", psk_id = "")   (RFC 9180 §5.1)
//! ciphertext       = ChaCha20-Poly1305.Seal(key, base_nonce, aad = "", plaintext)
//! ```
//!
//! with the HPKE suite id `"HPKE" || 0x647A || 0x0001 || 0x0003` (KEM id
//! 0x647A is the one the X-Wing draft assigns for HPKE; KDF HKDF-SHA256;
//! AEAD ChaCha20-Poly1305). The key schedule is RFC 9180's, implemented
//! here (the `hpke` crate has no X-Wing) and checked against the RFC's test
//! vectors; X-Wing is checked against the draft's test vectors
//! (`tests/seal.rs`). The encapsulation randomness (64 bytes) comes from
//! the OS CSPRNG, or from the RNG a test passes to [`seal_with`].
//!
//! The `info` binds the context: a box opens only under the analysis id and
//! node index it was sealed for, so relabelling it (to pass it off as
//! another analysis' or another node's share) makes opening fail, and
//! [`open_for`] refuses a box labelled for another analysis or node before
//! decrypting.
//!
//! Boxes sealed before post-quantum sealing (`kuvert-result-v1`,
//! DHKEM(X25519)) have no `suite` field; [`open`] refuses them with an
//! error that says so.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x_wing::Decapsulate;
use zeroize::{Zeroize, Zeroizing};

use crate::error::GovError;
use crate::keys::{KemPublicKey, PartyKey};
use crate::spec::AnalysisId;

/// Domain-separation tag in the HPKE info.
pub const RESULT_TAG: &[u8] = b"kuvert-result-v2";

/// The suite a box names in its `suite` field.
pub const SUITE: &str = "X-Wing/HKDF-SHA256/ChaCha20-Poly1305";

/// HPKE algorithm ids: X-Wing (draft-connolly-cfrg-xwing-kem), HKDF-SHA256,
/// ChaCha20-Poly1305.
const KEM_ID_XWING: u16 = 0x647a;
const KDF_ID_HKDF_SHA256: u16 = 0x0001;
const AEAD_ID_CHACHA20POLY1305: u16 = 0x0003;

/// X-Wing's 64 bytes of encapsulation randomness.
type EncapsulationRandomness = x_wing::kem::common::array::Array<u8, x_wing::kem::consts::U64>;

/// Length of X-Wing's encapsulated key (`enc`).
pub const ENC_LEN: usize = x_wing::CIPHERTEXT_SIZE;

/// A sealed result (a `.sealed.json` file or an HTTP body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBox {
    /// The analysis the content belongs to (bound by the HPKE info).
    pub analysis_id: AnalysisId,
    /// The node index 0, 1 or 2 that sealed it (bound by the HPKE info).
    pub node: u8,
    /// The suite, [`SUITE`]. Empty in boxes from before post-quantum
    /// sealing, which this release does not open.
    #[serde(default)]
    pub suite: String,
    /// X-Wing encapsulated key (1120 bytes), base64.
    pub enc: String,
    /// Ciphertext and its 16-byte tag, base64.
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

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

/// `"HPKE" || kem_id || kdf_id || aead_id` (RFC 9180 §5.1).
fn suite_id(kem_id: u16) -> [u8; 10] {
    let mut s = [0u8; 10];
    s[..4].copy_from_slice(b"HPKE");
    s[4..6].copy_from_slice(&kem_id.to_be_bytes());
    s[6..8].copy_from_slice(&KDF_ID_HKDF_SHA256.to_be_bytes());
    s[8..10].copy_from_slice(&AEAD_ID_CHACHA20POLY1305.to_be_bytes());
    s
}

/// LabeledExtract(salt, label, ikm) of RFC 9180 §4: the PRK, and the HKDF
/// state to expand from it.
fn labeled_extract(
    suite: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> (Zeroizing<[u8; 32]>, Hkdf<Sha256>) {
    let mut labeled = Zeroizing::new(Vec::with_capacity(
        7 + suite.len() + label.len() + ikm.len(),
    ));
    labeled.extend_from_slice(b"HPKE-v1");
    labeled.extend_from_slice(suite);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(ikm);
    let (prk, hk) = Hkdf::<Sha256>::extract(Some(salt), &labeled);
    (Zeroizing::new(prk.into()), hk)
}

/// LabeledExpand(prk, label, info, L) of RFC 9180 §4, into `out` (L = its
/// length, at most 255 × 32 bytes; ours are 32 and 12).
fn labeled_expand(hk: &Hkdf<Sha256>, suite: &[u8], label: &[u8], info: &[u8], out: &mut [u8]) {
    let mut labeled = Vec::with_capacity(9 + suite.len() + label.len() + info.len());
    labeled.extend_from_slice(&(out.len() as u16).to_be_bytes());
    labeled.extend_from_slice(b"HPKE-v1");
    labeled.extend_from_slice(suite);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(info);
    hk.expand(&labeled, out)
        .expect("HKDF-SHA256 expands up to 8160 bytes; we ask for 32 or 12");
}

/// KeySchedule(mode_base, shared_secret, info, default_psk, default_psk_id)
/// of RFC 9180 §5.1: the AEAD key and base nonce.
fn key_schedule(kem_id: u16, shared_secret: &[u8], info: &[u8]) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
    let suite = suite_id(kem_id);
    let (psk_id_hash, _) = labeled_extract(&suite, b"", b"psk_id_hash", b"");
    let (info_hash, _) = labeled_extract(&suite, b"", b"info_hash", info);
    let mut context = Vec::with_capacity(65);
    context.push(0u8); // mode_base
    context.extend_from_slice(&psk_id_hash[..]);
    context.extend_from_slice(&info_hash[..]);
    let (_, secret) = labeled_extract(&suite, shared_secret, b"secret", b"");
    let mut key = Zeroizing::new([0u8; 32]);
    labeled_expand(&secret, &suite, b"key", &context, &mut key[..]);
    let mut nonce = [0u8; 12];
    labeled_expand(&secret, &suite, b"base_nonce", &context, &mut nonce);
    (key, nonce)
}

/// Seal `plaintext` to `recipient` (its X-Wing public key, the spec's
/// `kem_public_key`) for `analysis_id` and `node`, with fresh randomness
/// from the OS CSPRNG.
pub fn seal(
    recipient: &KemPublicKey,
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
    recipient: &KemPublicKey,
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
    // The encapsulation randomness decides the box's key: drawn into the
    // array X-Wing takes, and wiped after use.
    let mut eseed = EncapsulationRandomness::default();
    let drawn = rng.try_fill_bytes(&mut eseed);
    let encapsulated = drawn.map(|()| recipient.inner().encapsulate_deterministic(&eseed));
    eseed.as_mut_slice().zeroize();
    let (enc, ss) = encapsulated
        .map_err(|e| GovError::Seal(format!("the random number generator failed: {e}")))?;
    let ss = Zeroizing::new(<[u8; 32]>::from(ss));
    let (key, nonce) = key_schedule(KEM_ID_XWING, &ss[..], &info(analysis_id, node));
    let ct = ChaCha20Poly1305::new((&*key).into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad: b"",
            },
        )
        .map_err(|_| GovError::Seal("the plaintext is too long for one box".into()))?;
    Ok(SealedBox {
        analysis_id: *analysis_id,
        node,
        suite: SUITE.to_string(),
        enc: b64().encode(enc),
        ciphertext: b64().encode(ct),
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
    if sealed.suite != SUITE {
        let message = if sealed.suite.is_empty() {
            "this box was sealed with the classical format kuvert-result-v1 (X25519 only) by a node \
             from before post-quantum sealing; this release opens only X-Wing boxes. Ask the nodes \
             to run the analysis again with the recipient's kem_public_key in the spec"
                .to_string()
        } else {
            format!(
                "unknown suite {:?}; this release opens {SUITE:?} only",
                sealed.suite
            )
        };
        return Err(GovError::Invalid {
            at: String::new(),
            field: "sealed result".into(),
            message,
        });
    }
    let dk = key.kem_secret()?;
    let enc = b64().decode(sealed.enc.trim()).map_err(|_| fail())?;
    let enc = x_wing::Ciphertext::try_from(enc.as_slice()).map_err(|_| fail())?;
    let ss = Zeroizing::new(<[u8; 32]>::from(dk.decapsulate(&enc)));
    let (k, nonce) = key_schedule(
        KEM_ID_XWING,
        &ss[..],
        &info(&sealed.analysis_id, sealed.node),
    );
    let ct = b64().decode(sealed.ciphertext.trim()).map_err(|_| fail())?;
    let pt = ChaCha20Poly1305::new((&*k).into())
        .decrypt((&nonce).into(), Payload { msg: &ct, aad: b"" })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20-Poly1305, mode Base. The key schedule does not depend on
    /// the KEM beyond its id, so this checks ours (which X-Wing boxes use
    /// with KEM id 0x647A) against the RFC.
    #[test]
    fn key_schedule_matches_rfc9180_a2() {
        let ss = unhex("0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7");
        let info = unhex("4f6465206f6e2061204772656369616e2055726e");
        let (key, nonce) = key_schedule(0x0020, &ss, &info);
        assert_eq!(
            key.to_vec(),
            unhex("ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91")
        );
        assert_eq!(nonce.to_vec(), unhex("5c4d98150661b848853b547f"));
        // The first message (sequence 0: the base nonce itself).
        let ct = ChaCha20Poly1305::new((&*key).into())
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &unhex("4265617574792069732074727574682c20747275746820626561757479"),
                    aad: &unhex("436f756e742d30"),
                },
            )
            .unwrap();
        assert_eq!(
            ct,
            unhex(
                "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db\
                 21993c62ce81883d2dd1b51a28"
            )
        );
    }

    #[test]
    fn suite_id_names_xwing() {
        assert_eq!(
            suite_id(KEM_ID_XWING),
            [b'H', b'P', b'K', b'E', 0x64, 0x7a, 0, 1, 0, 3]
        );
    }
}
