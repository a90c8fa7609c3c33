//! The verified open against a plaintext oracle, and against one party
//! whose outgoing messages are tampered with (crate::faulty): thousands of
//! seeded random injections into the open round and the abort round. The
//! same injections into the semi-honest open show what the check buys.
//!
//! Soundness (not testable by sampling, argued in crate::verified): a
//! substituted component is accepted only if SHA-256 collides (about 2^-128
//! for an adversary who may choose both inputs, 2^-256 for a second
//! preimage); the digest covers a per-call counter, a per-session tag, the
//! component index and the length, so replays across calls fail (tested by
//! `replayed_digest_of_an_earlier_call_is_rejected`).

mod common;
use common::{components, random_fault};
use kuvert_mpc::faulty::{Fault, FaultyTransport, Injection};
use kuvert_mpc::harness::{run3, run3_over, Keys};
use kuvert_mpc::inproc::InProcTransport;
use kuvert_mpc::{AShare, BShare, MpcError, Party, Result, Transport};
use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Open party `p`'s components of a sharing, verified or plain.
fn open(
    p: &mut Party,
    comps: &[(Vec<u64>, Vec<u64>); 3],
    arith: bool,
    verified: bool,
) -> Result<Vec<u64>> {
    let (a, b) = comps[p.id()].clone();
    let plain = |r: Option<Vec<u64>>| r.expect("an open to all returns values");
    if arith {
        let s = AShare::from_components(a, b).expect("equal lengths");
        if verified {
            Ok(p.reveal_a_verified(&s)?.into_inner())
        } else {
            Ok(plain(p.reveal_a(&s, None)?))
        }
    } else {
        let s = BShare::from_components(a, b).expect("equal lengths");
        if verified {
            Ok(p.reveal_b_verified(&s)?.into_inner())
        } else {
            Ok(plain(p.reveal_b(&s, None)?))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn honest_verified_open_gives_plaintext(
        vals in prop::collection::vec(
            prop_oneof![3 => any::<u64>(), 1 => Just(0u64), 1 => Just(u64::MAX), 1 => Just(1u64 << 63)],
            0..200,
        ),
        arith in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let comps = components(&vals, arith, &mut ChaCha20Rng::seed_from_u64(seed));
        let n = vals.len() as u64;
        let out = run3(Keys::Seeded(seed), |p| {
            let before = p.stats();
            let v = open(p, &comps, arith, true)?;
            Ok((v, p.stats() - before))
        })
        .unwrap();
        for (i, (v, st)) in out.iter().enumerate() {
            prop_assert_eq!(v, &vals, "party {}", i);
            prop_assert_eq!(st.rounds, 2);
            prop_assert_eq!(st.bytes_sent, 8 * n + 32 + 2, "bytes sent by party {}", i);
            prop_assert_eq!(st.bytes_received, 8 * n + 32 + 2);
        }
    }
}

#[test]
fn verified_open_composes_with_other_operations() {
    // Counters stay in step across protocol operations and plain opens.
    let x = [3u64, u64::MAX, 1 << 40, 0, 17];
    let y = [5u64, 2, 1 << 30, 9, u64::MAX];
    let out = run3(Keys::Seeded(7), |p| {
        let xs = p.input_a(0, (p.id() == 0).then_some(&x[..]), x.len())?;
        let ys = p.input_a(2, (p.id() == 2).then_some(&y[..]), y.len())?;
        let plain = p.reveal_a(&xs, None)?.expect("open to all");
        let prod = p.mul(&xs, &ys)?;
        let v1 = p.reveal_a_verified(&prod)?.into_inner();
        let lt = p.lt(&xs, &ys, false)?;
        let v2 = p.reveal_b_verified(lt.words())?.into_inner();
        let v3 = p.reveal_a_verified(&xs)?;
        Ok((plain, v1, v2, v3.into_inner()))
    })
    .unwrap();
    let prod: Vec<u64> = x.iter().zip(&y).map(|(a, b)| a.wrapping_mul(*b)).collect();
    let lt: Vec<bool> = x.iter().zip(&y).map(|(a, b)| a < b).collect();
    for (plain, v1, v2, v3) in out {
        assert_eq!(plain, x);
        assert_eq!(v1, prod);
        assert_eq!(kuvert_mpc::share::unpack_bits(&v2, x.len()), lt);
        assert_eq!(v3, x);
    }
}

/// Where an injection goes, relative to the second of two opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The open round (vector to prev, digest to next).
    Open,
    /// The abort round (status bytes).
    Abort,
}

#[derive(Clone, Debug)]
struct Case {
    party: usize,
    target: Target,
    peer: usize,
    fault: Fault,
    arith: bool,
    x: Vec<u64>,
    y: Vec<u64>,
    seed: u64,
}

fn random_case(rng: &mut ChaCha20Rng) -> Case {
    let n = if rng.gen_bool(0.1) {
        rng.gen_range(0..2)
    } else {
        rng.gen_range(1..48)
    };
    let party = rng.gen_range(0..3);
    let peer = (party + rng.gen_range(1..3)) % 3;
    let fault = random_fault(rng);
    let word = |rng: &mut ChaCha20Rng| match rng.gen_range(0..4) {
        0 => 0,
        1 => u64::MAX,
        _ => rng.next_u64(),
    };
    Case {
        party,
        target: if rng.gen_bool(0.5) {
            Target::Open
        } else {
            Target::Abort
        },
        peer,
        fault,
        arith: rng.gen(),
        x: (0..n).map(|_| word(rng)).collect(),
        y: (0..n).map(|_| word(rng)).collect(),
        seed: rng.gen(),
    }
}

struct Outcome {
    changed: bool,
    /// Per party: the values of the second open, or its error.
    second: [std::result::Result<Vec<u64>, String>; 3],
}

/// Two opens (x, then y); `case.party`'s messages in the second open are
/// tampered with. Rounds: 0 setup, then 1 (verified: 2) per open.
fn run_case(case: &Case, verified: bool) -> Outcome {
    let per_open = if verified { 2 } else { 1 };
    let round = 1 + per_open + if case.target == Target::Abort { 1 } else { 0 };
    let [t0, t1, t2] = InProcTransport::triple();
    let mut nets: [Option<Box<dyn Transport>>; 3] =
        [Some(Box::new(t0)), Some(Box::new(t1)), Some(Box::new(t2))];
    let inner = nets[case.party].take().expect("present");
    let faulty = FaultyTransport::new(inner, vec![Injection::at(round, case.peer, case.fault)]);
    let log = faulty.log();
    nets[case.party] = Some(Box::new(faulty));
    let nets = nets.map(|n| n.expect("present"));
    let cx = components(
        &case.x,
        case.arith,
        &mut ChaCha20Rng::seed_from_u64(case.seed),
    );
    let cy = components(
        &case.y,
        case.arith,
        &mut ChaCha20Rng::seed_from_u64(case.seed ^ 1),
    );
    let res = run3_over(nets, Keys::Seeded(case.seed), |p| {
        assert_eq!(p.stats().rounds, 1, "setup is round 0");
        let first = open(p, &cx, case.arith, verified)?;
        assert_eq!(first, case.x, "the first open is not tampered with");
        Ok(open(p, &cy, case.arith, verified).map_err(|e| match e {
            MpcError::Check { check, detail } => format!("{check}|{detail}"),
            other => panic!("expected a check failure, got {other}"),
        }))
    });
    Outcome {
        changed: log.changed_any(),
        second: res.map(|r| r.expect("no transport or usage error")),
    }
}

const INJECTIONS: usize = 3000;

#[test]
fn every_tampered_verified_open_is_detected() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0017);
    let (mut changed, mut detected, mut unanimous_open, mut open_changed) = (0, 0, 0, 0);
    let (mut abort_changed, mut selective) = (0, 0);
    for k in 0..INJECTIONS {
        let case = random_case(&mut rng);
        let out = run_case(&case, true);
        let errs: Vec<(usize, &String)> = out
            .second
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
            .collect();
        // Whatever happened: no party ever returns a wrong value.
        for (i, r) in out.second.iter().enumerate() {
            if let Ok(v) = r {
                assert_eq!(
                    v, &case.y,
                    "injection {k} {case:?}: party {i} accepted a wrong value"
                );
            }
        }
        if !out.changed {
            assert!(
                errs.is_empty(),
                "injection {k} {case:?}: false alarm {errs:?}"
            );
            continue;
        }
        changed += 1;
        if !errs.is_empty() {
            detected += 1;
        }
        match case.target {
            Target::Open => {
                open_changed += 1;
                assert_eq!(
                    errs.len(),
                    3,
                    "injection {k} {case:?}: not every party aborted: {:?}",
                    out.second
                );
                // The receiver of the tampered message names the open check
                // and both possible culprits, one of which is `case.party`.
                let (_, e) = errs[case.peer];
                assert!(e.starts_with("open|"), "injection {k} {case:?}: {e}");
                assert!(e.contains(&format!("party {}", case.party)), "{e}");
                for (i, e) in &errs {
                    assert!(
                        e.starts_with("open|") || e.starts_with("abort-signal|"),
                        "party {i}: {e}"
                    );
                }
                unanimous_open += 1;
            }
            Target::Abort => {
                abort_changed += 1;
                // The receiver of the tampered status aborts and names the
                // sender; the others got correct values (selective abort).
                let e = out.second[case.peer].as_ref().expect_err("receiver aborts");
                assert!(e.starts_with("abort-signal|"), "{e}");
                assert!(e.contains(&format!("party {}:", case.party)), "{e}");
                if errs.len() < 3 {
                    selective += 1;
                }
            }
        }
    }
    eprintln!(
        "verified open, {INJECTIONS} random injections: {changed} changed a message; \
         detected {detected}/{changed} ({:.1} %), no wrong value accepted anywhere; \
         open round: every party aborted in {unanimous_open}/{open_changed}; \
         abort round: receiver aborted in {abort_changed}/{abort_changed}, \
         the others returned correct values in {selective} (selective abort)",
        100.0 * detected as f64 / changed.max(1) as f64
    );
    assert_eq!(detected, changed);
    assert!(
        changed > INJECTIONS / 2,
        "too few injections changed anything: {changed}"
    );
    assert!(open_changed > 500 && abort_changed > 500);
}

#[test]
fn the_same_injections_silently_corrupt_the_semi_honest_open() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_0017);
    let (mut tried, mut changed, mut wrong) = (0, 0, 0);
    for _ in 0..INJECTIONS {
        let case = random_case(&mut rng);
        // The plain open has no abort round: its one round takes the
        // injections aimed at the verified open's first round.
        if case.target != Target::Open {
            continue;
        }
        tried += 1;
        let out = run_case(&case, false);
        changed += out.changed as usize;
        let mut silently_wrong = false;
        for r in &out.second {
            match r {
                Ok(v) => silently_wrong |= v != &case.y,
                Err(e) => panic!("the semi-honest open has no check, yet: {e}"),
            }
        }
        wrong += silently_wrong as usize;
    }
    eprintln!(
        "semi-honest open, the same {tried} open-round injections: {changed} changed a \
         message (messages to next do not exist there), {wrong} gave a party a wrong \
         value without any error ({:.1} % of injections, {:.1} % of changed ones)",
        100.0 * wrong as f64 / tried.max(1) as f64,
        100.0 * wrong as f64 / changed.max(1) as f64
    );
    assert!(wrong > 0, "tampering never altered the plain open");
    assert!(
        wrong * 4 > tried,
        "only {wrong} of {tried} altered the plain open"
    );
}

#[test]
fn replayed_digest_of_an_earlier_call_is_rejected() {
    // Open the same value twice; party 1 replays its digest from the first
    // call to party 2. Without the counter in the digest the replay would
    // verify (it would even be the same bytes); with it, every party aborts.
    let vals = vec![42u64, 7, u64::MAX];
    for arith in [true, false] {
        let comps = components(&vals, arith, &mut ChaCha20Rng::seed_from_u64(99));
        let [t0, t1, t2] = InProcTransport::triple();
        let faulty = FaultyTransport::new(t1, vec![Injection::at(3, 2, Fault::Replay)]);
        let log = faulty.log();
        let res = run3_over(
            [Box::new(t0), Box::new(faulty), Box::new(t2)],
            Keys::Seeded(3),
            |p| {
                let first = open(p, &comps, arith, true)?;
                assert_eq!(first, vals);
                open(p, &comps, arith, true)
            },
        );
        let entries = log.entries();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].changed, "digests of two calls must differ");
        assert_eq!(entries[0].len, 32);
        for (i, r) in res.iter().enumerate() {
            match r {
                Err(MpcError::Check { check, .. }) => {
                    assert_eq!(check, if i == 2 { "open" } else { "abort-signal" })
                }
                other => panic!("party {i}: expected an abort, got {other:?}"),
            }
        }
    }
}

#[test]
fn dishonest_status_causes_only_aborts() {
    // Party 0 tells party 1 "my check failed" although it passed: party 1
    // aborts naming party 0; party 2 gets the correct values.
    let vals = vec![1u64, 2, 3];
    let comps = components(&vals, true, &mut ChaCha20Rng::seed_from_u64(5));
    let [t0, t1, t2] = InProcTransport::triple();
    let faulty = FaultyTransport::new(
        t0,
        vec![Injection::at(
            2,
            1,
            Fault::FlipBit {
                bit: (kuvert_mpc::verified::STATUS_OK ^ kuvert_mpc::verified::STATUS_FAIL_OPEN)
                    .trailing_zeros() as usize,
            },
        )],
    );
    let res = run3_over(
        [Box::new(faulty), Box::new(t1), Box::new(t2)],
        Keys::Seeded(11),
        |p| open(p, &comps, true, true),
    );
    assert_eq!(res[0].as_ref().unwrap(), &vals);
    assert_eq!(res[2].as_ref().unwrap(), &vals);
    match &res[1] {
        Err(e @ MpcError::Check { check, detail }) => {
            assert_eq!(check, "abort-signal");
            assert!(detail.contains("party 0: malformed status byte"), "{e}");
        }
        other => panic!("party 1: expected an abort, got {other:?}"),
    }
}
