//! Decoders of files that cross process boundaries never panic on
//! arbitrary input: they return errors.

mod common;

use std::path::Path;

use kuvert_gov::spec::{AnalysisSpec, Validation};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn audit_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = kuvert_gov::audit::verify_bytes(Path::new("audit.log"), &bytes);
    }

    #[test]
    fn audit_lines_never_panic(lines in proptest::collection::vec("[{}\\[\\]\":,a-z0-9 ]{0,60}", 0..5)) {
        let mut s = lines.join("\n");
        s.push('\n');
        prop_assert!(kuvert_gov::audit::verify_bytes(Path::new("audit.log"), s.as_bytes()).is_err() || s.trim().is_empty());
    }

    #[test]
    fn spec_text_never_panics(s in "[a-z_\\[\\]=\"' .\n0-9{},:#-]{0,200}") {
        let _ = AnalysisSpec::parse(&s, "fuzz", Validation::Strict);
        let _ = AnalysisSpec::parse(&s, "fuzz", Validation::AllowPlaceholders);
    }

    #[test]
    fn key_text_never_panics(s in "[A-Za-z0-9 :\n-]{0,300}") {
        prop_assert!(kuvert_gov::PartyKey::from_text(&s, "fuzz").is_err());
    }

    #[test]
    fn sealed_box_fields_never_panic(enc in "[A-Za-z0-9+/=]{0,1600}", ct in "[A-Za-z0-9+/=]{0,80}", node: u8, pq: bool) {
        let p = common::key("r", 4);
        let suite = if pq { kuvert_gov::seal::SUITE.to_string() } else { String::new() };
        let b = kuvert_gov::SealedBox { analysis_id: kuvert_gov::AnalysisId([1; 32]), node, suite, enc, ciphertext: ct };
        prop_assert!(kuvert_gov::open(&p, &b).is_err());
    }
}

/// Mutating a valid spec's text at random positions never panics.
#[test]
fn mutated_specs_never_panic() {
    let p = common::parties();
    let text = common::spec_text(&p);
    let bytes = text.as_bytes();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x as usize) % bytes.len();
        let mut b = bytes.to_vec();
        const SUBST: &[u8] = b"\"'=[]{}\n ,x0";
        b[i] = SUBST[(x >> 32) as usize % SUBST.len()];
        if let Ok(s) = String::from_utf8(b) {
            let _ = AnalysisSpec::parse(&s, "m", Validation::Strict);
        }
    }
}
