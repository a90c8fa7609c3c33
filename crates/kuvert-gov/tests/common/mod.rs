#![allow(dead_code)]

use kuvert_gov::spec::{AnalysisSpec, Validation};
use kuvert_gov::PartyKey;
use rand_chacha::rand_core::SeedableRng;

/// Seeded keys for tests (never for anything real).
pub fn key(name: &str, seed: u64) -> PartyKey {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    PartyKey::generate_with(name, &mut rng)
}

/// A party's result key as a spec holds it (`kem_public_key`).
pub fn kem(k: &PartyKey) -> String {
    k.kem_public().unwrap().to_base64()
}

pub struct Parties {
    pub fk: PartyKey,
    pub kommun: PartyKey,
    pub kontroll: PartyKey,
}

pub fn parties() -> Parties {
    Parties {
        fk: key("fk", 1),
        kommun: key("kommun", 2),
        kontroll: key("kontroll", 3),
    }
}

/// The overlapping-benefits template with the parties' real keys filled in.
pub fn spec_text(p: &Parties) -> String {
    let t = kuvert_gov::templates::get("overlapping-benefits").unwrap();
    let mut s = String::new();
    for line in t.lines() {
        let l = match line {
            "public_key = \"placeholder:fk\"" => {
                format!("public_key = \"{}\"", p.fk.public().ed25519)
            }
            "public_key = \"placeholder:kommun\"" => {
                format!("public_key = \"{}\"", p.kommun.public().ed25519)
            }
            "kem_public_key = \"placeholder:fk\"" => {
                format!("kem_public_key = \"{}\"", kem(&p.fk))
            }
            "kem_public_key = \"placeholder:kommun\"" => {
                format!("kem_public_key = \"{}\"", kem(&p.kommun))
            }
            "kem_public_key = \"placeholder:kontroll\"" => {
                format!("kem_public_key = \"{}\"", kem(&p.kontroll))
            }
            other => other.to_string(),
        };
        s.push_str(&l);
        s.push('\n');
    }
    s = s.replace(
        "contact = \"placeholder: the analysis owner's functional mailbox, e.g. mpc-analys@myndighet.example\"",
        "contact = \"mpc-analys@fk.example\"",
    );
    kuvert_gov::templates::set_nodes(&s, &nodes()).unwrap()
}

/// Three nodes with fixed key fingerprints (`[[nodes]]` of the test specs).
pub fn nodes() -> Vec<kuvert_gov::spec::SpecNode> {
    (0..3u8)
        .map(|i| kuvert_gov::spec::SpecNode {
            operator: format!("Operator {i}"),
            fingerprint: std::iter::repeat_n(char::from(b'a' + i), 64).collect(),
            endpoint: None,
        })
        .collect()
}

pub fn spec(p: &Parties) -> AnalysisSpec {
    AnalysisSpec::parse(&spec_text(p), "test.toml", Validation::Strict).unwrap()
}
