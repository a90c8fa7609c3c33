#![allow(dead_code)]

use kuvert_gov::spec::{AnalysisSpec, Validation};
use kuvert_gov::PartyKey;
use rand_chacha::rand_core::SeedableRng;

/// Seeded keys for tests (never for anything real).
pub fn key(name: &str, seed: u64) -> PartyKey {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    PartyKey::generate_with(name, &mut rng)
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
            "public_key_x25519 = \"placeholder:fk\"" => {
                format!("public_key_x25519 = \"{}\"", p.fk.public().x25519)
            }
            "public_key_x25519 = \"placeholder:kommun\"" => {
                format!("public_key_x25519 = \"{}\"", p.kommun.public().x25519)
            }
            "public_key_x25519 = \"placeholder:kontroll\"" => {
                format!("public_key_x25519 = \"{}\"", p.kontroll.public().x25519)
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
    s
}

pub fn spec(p: &Parties) -> AnalysisSpec {
    AnalysisSpec::parse(&spec_text(p), "test.toml", Validation::Strict).unwrap()
}
