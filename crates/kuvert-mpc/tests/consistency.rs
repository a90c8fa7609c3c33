//! The consistency check of replicated sharings (crate::consistency):
//! honestly made sharings pass; thousands of seeded random alterations of
//! one party's local component are all detected, by the party the protocol
//! names, and the abort round stops the other two; tampering with the
//! check's own messages (crate::faulty) never ends in a false `Ok` for all
//! three; a digest replayed from an earlier call is rejected.
//!
//! Who detects an alteration: component `x_{i+1}` is held by party `i` as
//! `b` and by party `i+1` as `a`, and party `i` compares its `b` with the
//! digest of party `i+1`'s `a`. So an altered `a` at party `p` is seen by
//! `prev(p)`, an altered `b` at party `p` by `p` itself; the abort round
//! then makes the two other parties fail with `"abort-signal"`.

mod common;
use common::{components, random_fault};
use kuvert_mpc::faulty::{Fault, FaultyTransport, Injection};
use kuvert_mpc::harness::{run3, run3_over, run3_with, Keys};
use kuvert_mpc::inproc::InProcTransport;
use kuvert_mpc::shuffle::Column;
use kuvert_mpc::{AShare, BShare, MpcError, Party, Result, Transport};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn next(i: usize) -> usize {
    (i + 1) % 3
}

fn prev(i: usize) -> usize {
    (i + 2) % 3
}

/// A table of columns: per column, the three parties' components.
type Table = Vec<[(Vec<u64>, Vec<u64>); 3]>;

fn random_table(rng: &mut ChaCha20Rng, arith: bool) -> Table {
    let cols = rng.gen_range(1..5);
    (0..cols)
        .map(|_| {
            let n = if rng.gen_bool(0.1) {
                rng.gen_range(0..2)
            } else {
                rng.gen_range(1..40)
            };
            let vals: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
            components(&vals, arith, rng)
        })
        .collect()
}

/// Run the check on party `p`'s components of `table`.
fn check(p: &mut Party, table: &Table, arith: bool) -> Result<()> {
    let me = p.id();
    if arith {
        let shares: Vec<AShare> = table
            .iter()
            .map(|c| AShare::from_components(c[me].0.clone(), c[me].1.clone()).expect("lengths"))
            .collect();
        p.check_consistent_a(&shares.iter().collect::<Vec<_>>())
    } else {
        let shares: Vec<BShare> = table
            .iter()
            .map(|c| BShare::from_components(c[me].0.clone(), c[me].1.clone()).expect("lengths"))
            .collect();
        p.check_consistent_b(&shares.iter().collect::<Vec<_>>())
    }
}

/// `(check, detail)` of a check failure; panics on any other error.
fn check_err(r: &Result<()>) -> Option<(String, String)> {
    match r {
        Ok(()) => None,
        Err(MpcError::Check { check, detail }) => Some((check.clone(), detail.clone())),
        Err(other) => panic!("expected a check failure, got {other}"),
    }
}

#[test]
fn honestly_made_sharings_pass() {
    for seed in 0..4u64 {
        let mut rng = ChaCha20Rng::seed_from_u64(0xc0_0017 + seed);
        let n = rng.gen_range(1..70);
        let x: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
        let y: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
        let out = run3(Keys::Seeded(seed), |p| {
            let me = p.id();
            let mut costs = Vec::new();
            let mut measured = |p: &mut Party, r: &dyn Fn(&mut Party) -> Result<()>| {
                let before = p.stats();
                r(p)?;
                costs.push(p.stats() - before);
                Ok::<_, MpcError>(())
            };
            let xa = p.input_a(0, (me == 0).then_some(&x[..]), n)?;
            let ya = p.input_a(1, (me == 1).then_some(&y[..]), n)?;
            let za = p.input_a(2, (me == 2).then_some(&y[..]), n)?;
            let xb = p.input_b(2, (me == 2).then_some(&x[..]), n)?;
            let yb = p.input_b(0, (me == 0).then_some(&y[..]), n)?;
            let prod = p.mul(&xa, &ya)?;
            let conj = p.and(&xb, &yb)?;
            let lt = p.lt(&xa, &ya, false)?;
            let mut table = vec![
                Column::Arith(xa.clone()),
                Column::Bool(xb.clone()),
                Column::Arith(prod.clone()),
            ];
            p.shuffle(&mut table)?;
            let (sa, sb) = match &table[..] {
                [Column::Arith(a), Column::Bool(b), Column::Arith(c)] => {
                    (vec![a.clone(), c.clone()], b.clone())
                }
                _ => unreachable!("shuffle keeps the column kinds"),
            };
            measured(p, &|p| p.check_consistent_a(&[&xa, &ya, &za, &prod]))?;
            measured(p, &|p| p.check_consistent_b(&[&xb, &yb, &conj, lt.words()]))?;
            measured(p, &|p| p.check_consistent_a(&[&sa[0], &sa[1]]))?;
            measured(p, &|p| p.check_consistent_b(&[&sb]))?;
            // Degenerate calls: no columns, an empty column.
            measured(p, &|p| p.check_consistent_a(&[]))?;
            measured(p, &|p| p.check_consistent_b(&[&BShare::zeros(0)]))?;
            // The sharings still open to the right values afterwards.
            let v = p.reveal_a_verified(&prod)?.into_inner();
            Ok((costs, v))
        })
        .unwrap();
        let prod: Vec<u64> = x.iter().zip(&y).map(|(a, b)| a.wrapping_mul(*b)).collect();
        for (i, (costs, v)) in out.iter().enumerate() {
            assert_eq!(v, &prod, "party {i}");
            assert_eq!(costs.len(), 6);
            for st in costs {
                assert_eq!(st.rounds, 2, "party {i}");
                assert_eq!(st.bytes_sent, 32 + 2, "party {i}: independent of n");
                assert_eq!(st.bytes_received, 32 + 2, "party {i}");
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Alteration {
    party: usize,
    /// Alter the `a` component (else `b`).
    side_a: bool,
    col: usize,
    word: usize,
    /// Non-zero XOR mask (often a single bit).
    mask: u64,
}

fn random_alteration(rng: &mut ChaCha20Rng, table: &Table) -> Option<Alteration> {
    let nonempty: Vec<usize> = (0..table.len())
        .filter(|&c| !table[c][0].0.is_empty())
        .collect();
    let col = *nonempty.get(rng.gen_range(0..nonempty.len().max(1)))?;
    let mask = if rng.gen_bool(0.5) {
        1u64 << rng.gen_range(0..64)
    } else {
        rng.gen_range(1..=u64::MAX)
    };
    Some(Alteration {
        party: rng.gen_range(0..3),
        side_a: rng.gen(),
        col,
        word: rng.gen_range(0..table[col][0].0.len()),
        mask,
    })
}

const ALTERATIONS: usize = 2000;

#[test]
fn every_altered_component_is_detected_by_the_right_party() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_c017);
    let (mut runs, mut by_a, mut by_b) = (0, 0, 0);
    while runs < ALTERATIONS {
        let arith = rng.gen();
        let mut table = random_table(&mut rng, arith);
        let Some(alt) = random_alteration(&mut rng, &table) else {
            continue;
        };
        runs += 1;
        let honest = table.clone();
        let comp = &mut table[alt.col][alt.party];
        let v = if alt.side_a { &mut comp.0 } else { &mut comp.1 };
        v[alt.word] ^= alt.mask;
        let detector = if alt.side_a {
            by_a += 1;
            prev(alt.party)
        } else {
            by_b += 1;
            alt.party
        };
        // The other holder of the altered component.
        let other = if alt.side_a {
            alt.party
        } else {
            next(alt.party)
        };
        let res = run3_over(
            InProcTransport::triple().map(|t| Box::new(t) as Box<dyn Transport>),
            Keys::Seeded(rng.gen()),
            |p| {
                // An honest check first: counters stay in step.
                check(p, &honest, arith).expect("the honest table passes");
                check(p, &table, arith)
            },
        );
        for (i, r) in res.iter().enumerate() {
            let (chk, detail) =
                check_err(r).unwrap_or_else(|| panic!("run {runs} {alt:?}: party {i} returned Ok"));
            if i == detector {
                assert_eq!(chk, "consistency", "run {runs} {alt:?}: {detail}");
                assert!(
                    detail.starts_with(&format!("party {i}: its copy of component x_{other}")),
                    "{detail}"
                );
                assert!(
                    detail.contains(&format!("party {other}'s copy")),
                    "{detail}"
                );
            } else {
                assert_eq!(
                    chk, "abort-signal",
                    "run {runs} {alt:?} party {i}: {detail}"
                );
                assert!(
                    detail.contains(&format!("party {detector}: its consistency check failed")),
                    "{detail}"
                );
            }
        }
    }
    eprintln!(
        "consistency: {runs} random alterations ({by_a} of an `a`, {by_b} of a `b`), \
         all detected by the predicted party, all three parties aborted in every run"
    );
    assert!(by_a > ALTERATIONS / 3 && by_b > ALTERATIONS / 3);
}

#[test]
fn without_the_check_an_inconsistent_sharing_opens_differently() {
    // What the check prevents: party 0's `b` (x_1) differs from party 1's
    // `a`. The semi-honest open gives party 0 and party 1 different values
    // without any error; the check refuses the sharing.
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let vals = vec![10u64, 20, 30];
    let mut comps = components(&vals, true, &mut rng);
    comps[0].1[1] ^= 1 << 17;
    let table: Table = vec![comps.clone()];
    let opened = run3(Keys::Seeded(4), |p| {
        let (a, b) = comps[p.id()].clone();
        let s = AShare::from_components(a, b).expect("lengths");
        Ok(p.reveal_a(&s, None)?.expect("open to all"))
    })
    .unwrap();
    assert_ne!(opened[0], opened[1], "the inconsistency shows in the open");
    let res = run3_over(
        InProcTransport::triple().map(|t| Box::new(t) as Box<dyn Transport>),
        Keys::Seeded(4),
        |p| check(p, &table, true),
    );
    assert_eq!(check_err(&res[0]).expect("party 0 aborts").0, "consistency");
    assert_eq!(
        check_err(&res[1]).expect("party 1 aborts").0,
        "abort-signal"
    );
    assert_eq!(
        check_err(&res[2]).expect("party 2 aborts").0,
        "abort-signal"
    );
}

/// Where an injection goes, in the second of two checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The digest round (one digest to prev).
    Digest,
    /// The abort round (status bytes).
    Abort,
}

const INJECTIONS: usize = 2000;

#[test]
fn tampered_check_messages_never_pass_everywhere() {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed_c0de);
    let (mut changed, mut digest_changed, mut abort_changed, mut selective) = (0, 0, 0, 0);
    for k in 0..INJECTIONS {
        let arith = rng.gen();
        let first = random_table(&mut rng, arith);
        let second = random_table(&mut rng, arith);
        let party = rng.gen_range(0..3);
        // To next in the digest round there is no message: nothing changes.
        let peer = (party + rng.gen_range(1..3)) % 3;
        let target = if rng.gen_bool(0.5) {
            Target::Digest
        } else {
            Target::Abort
        };
        let fault = random_fault(&mut rng);
        // Rounds: 0 setup, 1-2 first check, 3 digest, 4 abort.
        let round = if target == Target::Digest { 3 } else { 4 };
        let [t0, t1, t2] = InProcTransport::triple();
        let mut nets: [Option<Box<dyn Transport>>; 3] =
            [Some(Box::new(t0)), Some(Box::new(t1)), Some(Box::new(t2))];
        let inner = nets[party].take().expect("present");
        let faulty = FaultyTransport::new(inner, vec![Injection::at(round, peer, fault)]);
        let log = faulty.log();
        nets[party] = Some(Box::new(faulty));
        let res = run3_over(
            nets.map(|n| n.expect("present")),
            Keys::Seeded(k as u64),
            |p| {
                assert_eq!(p.stats().rounds, 1, "setup is round 0");
                check(p, &first, arith).expect("the first check is not tampered with");
                Ok(check_err(&check(p, &second, arith)))
            },
        );
        let res: Vec<Option<(String, String)>> = res
            .into_iter()
            .map(|r| r.expect("no transport or usage error"))
            .collect();
        let errs = res.iter().filter(|r| r.is_some()).count();
        let case = (party, peer, target, fault);
        if !log.changed_any() {
            assert_eq!(errs, 0, "injection {k} {case:?}: false alarm {res:?}");
            continue;
        }
        changed += 1;
        assert!(errs > 0, "injection {k} {case:?}: all three returned Ok");
        let (chk, detail) = res[peer]
            .clone()
            .unwrap_or_else(|| panic!("injection {k} {case:?}: the receiver returned Ok"));
        match target {
            Target::Digest => {
                digest_changed += 1;
                assert_eq!(peer, prev(party));
                assert_eq!(chk, "consistency", "injection {k} {case:?}: {detail}");
                assert!(
                    detail.contains(&format!("party {party}'s copy")),
                    "{detail}"
                );
                assert_eq!(errs, 3, "injection {k} {case:?}: {res:?}");
                for (i, r) in res.iter().enumerate() {
                    if i != peer {
                        let (c, _) = r.as_ref().expect("checked above");
                        assert_eq!(c, "abort-signal", "party {i}");
                    }
                }
            }
            Target::Abort => {
                abort_changed += 1;
                assert_eq!(chk, "abort-signal", "injection {k} {case:?}: {detail}");
                assert!(detail.contains(&format!("party {party}:")), "{detail}");
                // The others' shares are consistent: they may return Ok
                // (selective abort).
                if errs < 3 {
                    selective += 1;
                }
            }
        }
    }
    eprintln!(
        "consistency check, {INJECTIONS} random injections: {changed} changed a message, \
         all detected by the receiver; digest round: every party aborted in \
         {digest_changed}/{digest_changed}; abort round: receiver aborted in \
         {abort_changed}/{abort_changed}, the others returned Ok in {selective} \
         (selective abort)"
    );
    assert!(digest_changed > INJECTIONS / 5 && abort_changed > INJECTIONS / 5);
}

#[test]
fn replayed_digest_of_an_earlier_call_is_rejected() {
    // Check the same sharing twice; party 1 replays its digest of the first
    // call to party 0. Without the counter the replay would be the same
    // bytes and verify; with it, party 0 detects and every party aborts.
    for arith in [true, false] {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let table = random_table(&mut rng, arith);
        let [t0, t1, t2] = InProcTransport::triple();
        let faulty = FaultyTransport::new(t1, vec![Injection::at(3, 0, Fault::Replay)]);
        let log = faulty.log();
        let res = run3_over(
            [Box::new(t0), Box::new(faulty), Box::new(t2)],
            Keys::Seeded(3),
            |p| {
                check(p, &table, arith).expect("first call passes");
                check(p, &table, arith)
            },
        );
        let entries = log.entries();
        assert_eq!(entries.len(), 1);
        assert!(entries[0].changed, "digests of two calls must differ");
        assert_eq!(entries[0].len, 32);
        for (i, r) in res.iter().enumerate() {
            let (chk, _) = check_err(r).unwrap_or_else(|| panic!("party {i} returned Ok"));
            assert_eq!(
                chk,
                if i == 0 {
                    "consistency"
                } else {
                    "abort-signal"
                }
            );
        }
    }
}

#[test]
fn digests_of_the_same_shares_differ_between_calls_and_sessions() {
    // What a receiver sees of the same shares: a fresh digest per call and
    // per session, so digests cannot be compared across them.
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let table = random_table(&mut rng, true);
    let views = |seed: u64| {
        run3_with(Keys::Seeded(seed), true, |p| {
            check(p, &table, true)?;
            check(p, &table, true)
        })
        .unwrap()
        .map(|(_, view)| view)
    };
    let (s1, s2) = (views(1), views(2));
    for i in 0..3 {
        // Per call: the digest from next, then two status bytes.
        let digests = |v: &Vec<(usize, Vec<u8>)>| -> Vec<Vec<u8>> {
            assert_eq!(v.len(), 6, "party {i}'s view");
            v.iter()
                .filter(|(_, m)| m.len() == 32)
                .map(|(from, m)| {
                    assert_eq!(*from, next(i));
                    m.clone()
                })
                .collect()
        };
        let (d1, d2) = (digests(&s1[i]), digests(&s2[i]));
        assert_eq!(d1.len(), 2);
        assert_ne!(d1[0], d1[1], "party {i}: two calls");
        assert_ne!(d1[0], d2[0], "party {i}: two sessions");
    }
}
