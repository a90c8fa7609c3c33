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
    let b = seal(&p.kontroll.x25519_public(), &id(7), 1, msg).unwrap();
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
    let b2 = seal(&p.kontroll.x25519_public(), &id(7), 1, msg).unwrap();
    assert_ne!(b.enc, b2.enc);
    assert_ne!(b.ciphertext, b2.ciphertext);
}

#[test]
fn a_box_moved_to_another_analysis_or_node_fails() {
    let p = common::parties();
    let b = seal(&p.kontroll.x25519_public(), &id(7), 1, b"x").unwrap();
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
    assert!(seal(&p.kontroll.x25519_public(), &id(7), 3, b"x").is_err());
}

#[test]
fn every_tampered_byte_fails() {
    use base64::Engine;
    let p = common::parties();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let b = seal_with(
        &p.kontroll.x25519_public(),
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
    for i in 0..32 {
        let mut bad = b.clone();
        let mut enc = bad.enc.into_bytes();
        enc[2 * i] = if enc[2 * i] == b'a' { b'b' } else { b'a' };
        bad.enc = String::from_utf8(enc).unwrap();
        assert!(open(&p.kontroll, &bad).is_err(), "enc byte {i}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000), node in 0u8..3, seed: u64) {
        let p = common::key("r", seed);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 1);
        let b = seal_with(&p.x25519_public(), &id(3), node, &data, &mut rng).unwrap();
        let json = serde_json::to_string(&b).unwrap();
        let back: kuvert_gov::SealedBox = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&open_for(&p, &id(3), node, &back).unwrap()[..], &data[..]);
    }
}
