//! Sealed results: only the named recipient opens them, and only under the
//! analysis id and node index they were sealed for.

mod common;

use kuvert_gov::seal::{open, open_for, seal, seal_with};
use kuvert_gov::spec::AnalysisId;
use kuvert_gov::GovError;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;

fn id(b: u8) -> AnalysisId {
    AnalysisId([b; 32])
}

#[test]
fn recipient_opens_and_nobody_else_does() {
    let p = common::parties();
    let msg = b"result shares of node 1";
    let b = seal(&p.kontroll.kem_public().unwrap(), &id(7), 1, msg).unwrap();
    let opened = open(&p.kontroll, &b).unwrap();
    assert_eq!(&opened.plaintext[..], msg);
    assert_eq!((opened.analysis_id, opened.node), (id(7), 1));
    assert_eq!(&open_for(&p.kontroll, &id(7), 1, &b).unwrap()[..], msg);
    // Another party's key cannot open it.
    for other in [&p.fk, &p.kommun] {
        assert!(matches!(
            open(other, &b),
            Err(GovError::Open { node: 1, .. })
        ));
    }
    // Two seals of the same message differ (fresh encapsulation).
    let b2 = seal(&p.kontroll.kem_public().unwrap(), &id(7), 1, msg).unwrap();
    assert_ne!(b.enc, b2.enc);
    assert_ne!(b.ciphertext, b2.ciphertext);
}

#[test]
fn a_box_moved_to_another_analysis_or_node_fails() {
    let p = common::parties();
    let b = seal(&p.kontroll.kem_public().unwrap(), &id(7), 1, b"x").unwrap();
    let mut moved = b.clone();
    moved.analysis_id = id(8);
    assert!(matches!(
        open(&p.kontroll, &moved),
        Err(GovError::Open { .. })
    ));
    let mut moved = b.clone();
    moved.node = 2;
    assert!(matches!(
        open(&p.kontroll, &moved),
        Err(GovError::Open { .. })
    ));
    // A genuine box presented for another analysis is refused by label.
    assert!(matches!(
        open_for(&p.kontroll, &id(8), 1, &b),
        Err(GovError::WrongBox {
            got_node: 1,
            want_node: 1,
            ..
        })
    ));
    assert!(matches!(
        open_for(&p.kontroll, &id(7), 0, &b),
        Err(GovError::WrongBox { .. })
    ));
    // Node indices beyond the three nodes are refused when sealing.
    assert!(seal(&p.kontroll.kem_public().unwrap(), &id(7), 3, b"x").is_err());
}

#[test]
fn every_tampered_byte_fails() {
    use base64::Engine;
    let p = common::parties();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let b = seal_with(
        &p.kontroll.kem_public().unwrap(),
        &id(1),
        0,
        b"0123456789",
        &mut rng,
    )
    .unwrap();
    let ct = base64::engine::general_purpose::STANDARD
        .decode(&b.ciphertext)
        .unwrap();
    assert_eq!(ct.len(), 10 + 16);
    for i in 0..ct.len() {
        let mut t = ct.clone();
        t[i] ^= 0x01;
        let mut bad = b.clone();
        bad.ciphertext = base64::engine::general_purpose::STANDARD.encode(&t);
        assert!(open(&p.kontroll, &bad).is_err(), "ciphertext byte {i}");
    }
    // Truncated ciphertext, altered encapsulated key.
    let mut bad = b.clone();
    bad.ciphertext = base64::engine::general_purpose::STANDARD.encode(&ct[..ct.len() - 1]);
    assert!(open(&p.kontroll, &bad).is_err());
    let enc = base64::engine::general_purpose::STANDARD
        .decode(&b.enc)
        .unwrap();
    assert_eq!(enc.len(), kuvert_gov::seal::ENC_LEN);
    // Bytes of the ML-KEM ciphertext (first 1088) and of the X25519 part.
    for i in (0..enc.len()).step_by(37).chain([1087, 1088, 1119]) {
        let mut t = enc.clone();
        t[i] ^= 0x01;
        let mut bad = b.clone();
        bad.enc = base64::engine::general_purpose::STANDARD.encode(&t);
        assert!(open(&p.kontroll, &bad).is_err(), "enc byte {i}");
    }
    let mut bad = b.clone();
    bad.enc = base64::engine::general_purpose::STANDARD.encode(&enc[..enc.len() - 1]);
    assert!(open(&p.kontroll, &bad).is_err());
}

#[test]
fn boxes_name_their_suite_and_old_boxes_are_refused_clearly() {
    let p = common::parties();
    let b = seal(&p.kontroll.kem_public().unwrap(), &id(7), 1, b"x").unwrap();
    assert_eq!(b.suite, kuvert_gov::seal::SUITE);
    let json = serde_json::to_value(&b).unwrap();
    assert_eq!(json["suite"], "X-Wing/HKDF-SHA256/ChaCha20-Poly1305");
    // A box of the classical format (no suite; 32-byte hex enc).
    let old = serde_json::json!({
        "analysis_id": id(7).to_hex(),
        "node": 1,
        "enc": "11".repeat(32),
        "ciphertext": "AAAA",
    });
    let old: kuvert_gov::SealedBox = serde_json::from_value(old).unwrap();
    let e = open(&p.kontroll, &old).err().unwrap().to_string();
    assert!(
        e.contains("kuvert-result-v1") && e.contains("X-Wing"),
        "{e}"
    );
    let mut other = b.clone();
    other.suite = "DHKEM-X25519".into();
    assert!(open(&p.kontroll, &other)
        .err()
        .unwrap()
        .to_string()
        .contains("unknown suite"));
}

#[test]
fn a_key_from_before_post_quantum_sealing_says_to_upgrade() {
    let p = common::parties();
    let b = seal(&p.kontroll.kem_public().unwrap(), &id(7), 1, b"x").unwrap();
    // The same party's key file as an older release wrote it.
    let text = p.kontroll.to_text();
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("xwing-secret"))
        .map(|l| format!("{l}\n"))
        .collect();
    let old = kuvert_gov::PartyKey::from_text(&old, "kontroll.key").unwrap();
    let e = open(&old, &b).err().unwrap().to_string();
    assert!(e.contains("kuvert keygen --upgrade"), "{e}");
}

/// X-Wing against the draft's first test vector
/// (draft-connolly-cfrg-xwing-kem-06, `spec/test-vectors.json`): the key
/// derived from the seed, the encapsulation with the given randomness, and
/// decapsulation. Guards the `x-wing` crate version this release seals with.
#[test]
fn xwing_matches_the_draft_test_vector() {
    use x_wing::{Decapsulate, Decapsulator, KeyExport};
    let v: serde_json::Value =
        serde_json::from_str(include_str!("data/xwing-draft06-kat.json")).unwrap();
    let hex = |k: &str| -> Vec<u8> {
        let s = v[0][k].as_str().unwrap();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let seed: [u8; 32] = hex("seed").try_into().unwrap();
    let dk = x_wing::DecapsulationKey::from(seed);
    let pk = dk.encapsulation_key();
    assert_eq!(pk.to_bytes().to_vec(), hex("pk"));
    // The spec's key type accepts it.
    let kem = kuvert_gov::KemPublicKey::from_bytes(&hex("pk")).unwrap();
    assert_eq!(kem.to_bytes(), hex("pk"));
    let eseed: [u8; 64] = hex("eseed").try_into().unwrap();
    let (ct, ss) = pk.encapsulate_deterministic(&eseed.into());
    assert_eq!(ct.to_vec(), hex("ct"));
    assert_eq!(ss.to_vec(), hex("ss"));
    assert_eq!(dk.decapsulate(&ct).to_vec(), hex("ss"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000), node in 0u8..3, seed: u64) {
        let p = common::key("r", seed);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 1);
        let b = seal_with(&p.kem_public().unwrap(), &id(3), node, &data, &mut rng).unwrap();
        let json = serde_json::to_string(&b).unwrap();
        let back: kuvert_gov::SealedBox = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&open_for(&p, &id(3), node, &back).unwrap()[..], &data[..]);
    }
}
