//! What the governance primitives cost: canonical id of the largest
//! template, approval sign/verify, HPKE seal/open of result shares, audit
//! append (with fsync) and verification.
//!
//! `cargo run --release -p kuvert-gov --example gov_bench [-- DIR]`
//! (DIR: where the audit file goes, default a temp dir; put it on the disk
//! the node will use, since fsync dominates).

use std::time::Instant;

use kuvert_gov::approval::sign_approval;
use kuvert_gov::audit::{verify_file, AuditEvent, AuditLog};
use kuvert_gov::seal::{open, seal};
use kuvert_gov::{templates, PartyKey};

fn per(label: &str, n: usize, t: Instant, unit: &str) {
    let s = t.elapsed().as_secs_f64();
    println!(
        "{label:<44} {n:>6} × {:>10.1} µs  ({:.0} {unit}/s)",
        s / n as f64 * 1e6,
        n as f64 / s
    );
}

fn main() {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());

    let spec = templates::spec("quality-indicators").expect("template");
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(spec.id());
    }
    per(
        &format!(
            "id of quality-indicators ({} B canonical)",
            spec.canonical_json().len()
        ),
        n,
        t,
        "ids",
    );

    let key = PartyKey::generate("bench");
    let id = spec.id();
    let n = 2000;
    let t = Instant::now();
    let mut a = None;
    for _ in 0..n {
        a = Some(sign_approval(&id, "region-01", &key));
    }
    per("approval sign (Ed25519)", n, t, "ops");
    let a = a.expect("signed");
    let vk = key.verifying_key();
    let msg = kuvert_gov::approval::approval_message(&id);
    let sig = ed25519_dalek::Signature::from_slice(
        &(0..64)
            .map(|i| u8::from_str_radix(&a.signature[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect::<Vec<_>>(),
    )
    .expect("sig");
    let t = Instant::now();
    for _ in 0..n {
        vk.verify_strict(&msg, &sig).expect("verifies");
    }
    per("approval verify (Ed25519, verify_strict)", n, t, "ops");

    for size in [1usize << 10, 1 << 20, 16 << 20] {
        let data = vec![7u8; size];
        let reps = if size > 1 << 20 { 3 } else { 20 };
        let t = Instant::now();
        let mut b = None;
        for _ in 0..reps {
            b = Some(seal(&key.kem_public().expect("kem key"), &id, 1, &data).expect("seal"));
        }
        per(&format!("HPKE seal {size} B"), reps, t, "boxes");
        let b = b.expect("sealed");
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(open(&key, &b).expect("open"));
        }
        per(
            &format!("HPKE open {size} B (incl. base64)"),
            reps,
            t,
            "boxes",
        );
    }

    let path = dir.join("audit-bench.log");
    let _ = std::fs::remove_file(&path);
    let mut log = AuditLog::open(&path).expect("audit");
    let n = 500;
    let t = Instant::now();
    for i in 0..n {
        log.append(AuditEvent::shares_received(
            0,
            id,
            "job-1",
            "region-01",
            "region_01",
            i,
            3,
        ))
        .expect("append");
    }
    per("audit append (fsync each)", n as usize, t, "records");
    let t = Instant::now();
    let recs = verify_file(&path).expect("verify");
    per("audit verify_file", recs.len(), t, "records");
    println!(
        "audit file: {} B for {} records",
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        recs.len()
    );
}
