//! The AND proofs of crate::dzkp: honest runs give the plaintext AND and
//! pass; one party's tampered AND message or proof message, or its wrong
//! local state, is caught at every honest party before anything is opened.

mod common;
use common::components;
use kuvert_mpc::harness::{run3_secure, Keys};
use kuvert_mpc::{BShare, Party, Result, Security};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn share(p: &Party, comps: &[(Vec<u64>, Vec<u64>); 3]) -> BShare {
    let (a, b) = comps[p.id()].clone();
    BShare::from_components(a, b).expect("equal lengths")
}

#[test]
fn honest_ands_pass_the_proof_and_open_to_the_plaintext() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for n in [1usize, 2, 3, 17, 100] {
        let x: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
        let y: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
        let w: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
        let (cx, cy, cw) = (
            components(&x, false, &mut rng),
            components(&y, false, &mut rng),
            components(&w, false, &mut rng),
        );
        let out = run3_secure(Keys::Seeded(n as u64), Security::Malicious, |p| {
            let xy = p.and(&share(p, &cx), &share(p, &cy))?;
            let xyw = p.and(&xy, &share(p, &cw))?;
            p.verify_ands()?;
            Ok(p.reveal_b(&xyw, None)?.expect("open to all"))
        })
        .expect("honest run");
        let want: Vec<u64> = (0..n).map(|j| x[j] & y[j] & w[j]).collect();
        for o in out {
            assert_eq!(o, want, "n = {n}");
        }
    }
}

#[test]
fn a_verified_reveal_checks_pending_ands_and_products_first() -> Result<()> {
    let x = vec![3u64, 5, 7];
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (cb, ca) = (
        components(&x, false, &mut rng),
        components(&x, true, &mut rng),
    );
    let out = run3_secure(Keys::Seeded(8), Security::Malicious, |p| {
        let b = p.and(&share(p, &cb), &share(p, &cb))?;
        let a = p.mul(&ashare(p, &ca), &ashare(p, &ca))?;
        let before = p.stats().rounds;
        let vb = p.reveal_b_verified(&b)?.into_inner();
        let proof_rounds = p.stats().rounds - before - 2;
        let before = p.stats().rounds;
        let va = p.reveal_a_verified(&a)?.into_inner();
        Ok((vb, va, proof_rounds, p.stats().rounds - before))
    })?;
    for (vb, va, proof_rounds, open_rounds) in out {
        assert_eq!(vb, x);
        assert_eq!(va, vec![9, 25, 49]);
        // The AND proof and the MAC check ran before the first open; the
        // second open had nothing left to check.
        assert!(proof_rounds > 6, "{proof_rounds}");
        assert_eq!(open_rounds, 2);
    }
    Ok(())
}

#[test]
fn a_reveal_proves_pending_ands_first() -> Result<()> {
    let x = vec![0xdead_beef_u64; 5];
    let y = vec![0x0ff0_0ff0_u64; 5];
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (cx, cy) = (
        components(&x, false, &mut rng),
        components(&y, false, &mut rng),
    );
    let out = run3_secure(Keys::Seeded(3), Security::Malicious, |p| {
        let z = p.and(&share(p, &cx), &share(p, &cy))?;
        let before = p.stats().rounds;
        let v = p.reveal_b(&z, Some(2))?;
        Ok((v, p.stats().rounds - before))
    })?;
    for (i, (v, rounds)) in out.iter().enumerate() {
        assert!(
            *rounds > 4,
            "the reveal ran the proof first ({rounds} rounds)"
        );
        if i == 2 {
            assert_eq!(v.as_deref(), Some(&[0xdead_beef & 0x0ff0_0ff0; 5][..]));
        } else {
            assert!(v.is_none());
        }
    }
    Ok(())
}

use kuvert_mpc::faulty::{Fault, FaultyTransport, Injection};
use kuvert_mpc::harness::run3_over_secure;
use kuvert_mpc::inproc::InProcTransport;
use kuvert_mpc::{MpcError, Transport};

/// One random tampering: party `party`'s message to `peer` in `round`
/// (counted from the session setup, round 0), or, with `local`, a flipped
/// bit in the party's own copy of a component of `x` (wrong local state)
/// instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circ {
    /// `(x & y) & w` and `x & w` on boolean shares.
    Ands,
    /// Signed `x < y` and `x == w` on arithmetic shares (adders, prefix
    /// trees, and-reductions).
    Compare,
    /// `min(x, y)` by `select(x < y, x, y)`: comparison, A2B, AND with a
    /// spread bit, B2A with its opens to single parties.
    Select,
    /// `x·y·w` and `x·y` over Z_2^64 (MAC-checked products).
    Mul,
    /// The shuffle of the table `(x, y)`, opened (MAC-checked passes); the
    /// opened rows are compared as a multiset.
    Shuffle,
}

#[derive(Debug, Clone)]
struct Case {
    circ: Circ,
    party: usize,
    peer: usize,
    /// Tamper with local state instead of a message.
    local: bool,
    /// With `local` in a shuffle: apply a wrong permutation instead of
    /// holding a wrong share.
    wrong_perm: bool,
    round: u64,
    /// Rounds of the honest run after the setup.
    rounds: u64,
    fault: Fault,
    bit: usize,
    x: Vec<u64>,
    y: Vec<u64>,
    w: Vec<u64>,
    seed: u64,
}

/// The circuit under test, then an open to all.
fn circuit(p: &mut Party, circ: Circ, cx: &Comps, cy: &Comps, cw: &Comps) -> Result<Vec<u64>> {
    if circ == Circ::Shuffle {
        let mut cols = [
            kuvert_mpc::shuffle::Column::Arith(ashare(p, cx)),
            kuvert_mpc::shuffle::Column::Arith(ashare(p, cy)),
        ];
        p.shuffle(&mut cols)?;
        let [kuvert_mpc::shuffle::Column::Arith(x), kuvert_mpc::shuffle::Column::Arith(y)] = cols
        else {
            unreachable!("arithmetic in, arithmetic out")
        };
        let both = p
            .reveal_a(&AShare::concat(&[&x, &y]), None)?
            .expect("open to all");
        return Ok(sorted_rows(&both[..x.len()], &both[x.len()..]));
    }
    if circ == Circ::Mul {
        let (x, y, w) = (ashare(p, cx), ashare(p, cy), ashare(p, cw));
        let xy = p.mul(&x, &y)?;
        let xyw = p.mul(&xy, &w)?;
        let both = AShare::concat(&[&xyw, &xy]);
        return Ok(p.reveal_a(&both, None)?.expect("open to all"));
    }
    if circ == Circ::Select {
        let (x, y) = (ashare(p, cx), ashare(p, cy));
        let lt = p.lt(&x, &y, true)?;
        let min = p.select(&lt, &x, &y)?;
        return Ok(p.reveal_a(&min, None)?.expect("open to all"));
    }
    if circ == Circ::Compare {
        let (x, y, w) = (ashare(p, cx), ashare(p, cy), ashare(p, cw));
        let lt = p.lt(&x, &y, true)?;
        let eq = p.eq(&x, &w)?;
        let both = BShare::concat(&[lt.words(), eq.words()]);
        return Ok(p.reveal_b(&both, None)?.expect("open to all"));
    }
    let (x, y, w) = (share(p, cx), share(p, cy), share(p, cw));
    let xy = p.and(&x, &y)?;
    let xyw = p.and(&xy, &w)?;
    let xw = p.and(&x, &w)?;
    let both = BShare::concat(&[&xyw, &xw]);
    Ok(p.reveal_b(&both, None)?.expect("open to all"))
}

/// The rows `(x_j, y_j)` in sorted order, flattened.
fn sorted_rows(x: &[u64], y: &[u64]) -> Vec<u64> {
    let mut rows: Vec<(u64, u64)> = x.iter().copied().zip(y.iter().copied()).collect();
    rows.sort_unstable();
    rows.into_iter().flat_map(|(a, b)| [a, b]).collect()
}

fn want(c: &Case) -> Vec<u64> {
    let n = c.x.len();
    if c.circ == Circ::Shuffle {
        return sorted_rows(&c.x, &c.y);
    }
    if c.circ == Circ::Mul {
        let xy: Vec<u64> = (0..n).map(|j| c.x[j].wrapping_mul(c.y[j])).collect();
        let mut v: Vec<u64> = (0..n).map(|j| xy[j].wrapping_mul(c.w[j])).collect();
        v.extend(xy);
        return v;
    }
    if c.circ == Circ::Select {
        return (0..n)
            .map(|j| (c.x[j] as i64).min(c.y[j] as i64) as u64)
            .collect();
    }
    if c.circ == Circ::Compare {
        let lt: Vec<bool> = (0..n).map(|j| (c.x[j] as i64) < (c.y[j] as i64)).collect();
        let eq: Vec<bool> = (0..n).map(|j| c.x[j] == c.w[j]).collect();
        let mut v = kuvert_mpc::share::pack_bits(&lt);
        v.extend(kuvert_mpc::share::pack_bits(&eq));
        return v;
    }
    let mut v: Vec<u64> = (0..n).map(|j| c.x[j] & c.y[j] & c.w[j]).collect();
    v.extend((0..n).map(|j| c.x[j] & c.w[j]));
    v
}

/// Rounds of an honest run after the setup (the range tampered with).
fn rounds_of(c: &Case, security: Security) -> u64 {
    let honest = Case {
        local: false,
        wrong_perm: false,
        ..c.clone()
    };
    let cs = shares_of(&honest);
    let r = run3_secure(Keys::Seeded(c.seed), security, |p| {
        circuit(p, c.circ, &cs.0, &cs.1, &cs.2)?;
        Ok(p.stats().rounds)
    })
    .expect("honest run");
    r[0] - 1
}

type Comps = [(Vec<u64>, Vec<u64>); 3];

fn shares_of(c: &Case) -> (Comps, Comps, Comps) {
    let mut rng = ChaCha20Rng::seed_from_u64(c.seed);
    let arith = c.circ != Circ::Ands;
    let mut cx = components(&c.x, arith, &mut rng);
    let cy = components(&c.y, arith, &mut rng);
    let cw = components(&c.w, arith, &mut rng);
    if c.local && !c.wrong_perm {
        // Wrong local state: the party's copy of its first component of x
        // differs from the copy its previous party holds.
        let j = c.bit % (64 * c.x.len());
        cx[c.party].0[j / 64] ^= 1 << (j % 64);
    }
    (cx, cy, cw)
}

fn random_case(rng: &mut ChaCha20Rng, circ: Circ, security: Security) -> Case {
    let n = rng.gen_range(1..24);
    let party = rng.gen_range(0..3);
    let mut c = Case {
        circ,
        party,
        peer: (party + rng.gen_range(1..3)) % 3,
        local: rng.gen_bool(0.125),
        wrong_perm: false,
        round: 0,
        rounds: 0,
        fault: match rng.gen_range(0..4) {
            0 | 1 => Fault::FlipBit {
                bit: rng.gen_range(0..1 << 20),
            },
            2 => Fault::Replay,
            _ => Fault::Substitute { seed: rng.gen() },
        },
        bit: rng.gen(),
        x: (0..n).map(|_| rng.gen()).collect(),
        y: (0..n).map(|_| rng.gen()).collect(),
        w: (0..n).map(|_| rng.gen()).collect(),
        seed: rng.gen(),
    };
    if circ != Circ::Ands {
        // Some equal pairs, so that `==` is not always false.
        for j in (0..n).step_by(3) {
            c.w[j] = c.x[j];
        }
    }
    // One case in eight tampers with local state; the others with a
    // message of any round after the setup. In a shuffle of at least two
    // rows, half the local cases permute wrongly.
    if circ == Circ::Shuffle && c.local && n >= 2 {
        c.wrong_perm = rng.gen_bool(0.5);
    }
    c.rounds = rounds_of(&c, security);
    if !c.local {
        c.round = rng.gen_range(1..=c.rounds);
    }
    c
}

/// Run a case; per party, the opened values or the failed check's name.
fn run_case(c: &Case, security: Security) -> (bool, [std::result::Result<Vec<u64>, String>; 3]) {
    let cs = shares_of(c);
    let [t0, t1, t2] = InProcTransport::triple();
    let mut nets: [Option<Box<dyn Transport>>; 3] =
        [Some(Box::new(t0)), Some(Box::new(t1)), Some(Box::new(t2))];
    let mut changed = c.local;
    let mut log = None;
    if !c.local {
        let inner = nets[c.party].take().expect("present");
        let faulty = FaultyTransport::new(inner, vec![Injection::at(c.round, c.peer, c.fault)]);
        log = Some(faulty.log());
        nets[c.party] = Some(Box::new(faulty));
    }
    let nets = nets.map(|n| n.expect("present"));
    let res = run3_over_secure(nets, Keys::Seeded(c.seed), security, |p| {
        if c.wrong_perm && p.id() == c.party {
            kuvert_mpc::faulty::deviate_permutations(p);
        }
        Ok(
            circuit(p, c.circ, &cs.0, &cs.1, &cs.2).map_err(|e| match e {
                MpcError::Check { check, .. } => check,
                // A peer that stopped after its own abort (selective abort:
                // the tampering party told only one honest party to abort).
                MpcError::Transport(_) => "peer-stopped".to_string(),
                other => panic!("expected a check failure, got {other}"),
            }),
        )
    });
    if let Some(log) = log {
        changed = log.changed_any();
    }
    (
        changed,
        res.map(|r| r.expect("no transport or usage error")),
    )
}

#[test]
fn every_tampered_and_message_proof_message_or_local_state_is_caught() {
    injections(Circ::Ands, 1500, 0xd2c9);
}

#[test]
fn every_tampering_of_a_comparison_is_caught() {
    injections(Circ::Compare, 400, 0xc0de);
}

#[test]
fn every_tampering_of_a_product_over_the_ring_is_caught() {
    injections(Circ::Mul, 1000, 0x3a11);
}

#[test]
fn the_same_tampering_silently_corrupts_semi_honest_products() {
    // Every flipped bit of a product message reaches the output.
    semi_honest_corruption(Circ::Mul, 2, 0x3a11, 9, 10);
}

#[test]
fn every_tampering_of_a_shuffle_pass_permutation_or_share_is_caught() {
    injections(Circ::Shuffle, 1000, 0x5f1e);
}

#[test]
fn the_same_tampering_silently_corrupts_semi_honest_shuffles() {
    // A flipped bit of a pass message lands in some row.
    semi_honest_corruption(Circ::Shuffle, 3, 0x5f1e, 9, 10);
}

#[test]
fn every_tampering_of_a_select_with_conversions_is_caught() {
    injections(Circ::Select, 200, 0x5e1e);
}

/// `count` random tamperings of `circ` in malicious mode.
fn injections(circ: Circ, count: usize, seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (mut tampered, mut caught, mut harmless) = (0, 0, 0);
    for _ in 0..count {
        let c = random_case(&mut rng, circ, Security::Malicious);
        let (changed, out) = run_case(&c, Security::Malicious);
        if !changed {
            // A replay or substitution that happened to equal the original.
            for o in &out {
                assert_eq!(o.as_ref().ok(), Some(&want(&c)), "{c:?}");
            }
            continue;
        }
        tampered += 1;
        let want = want(&c);
        let honest: Vec<(usize, &std::result::Result<Vec<u64>, String>)> = (0..3)
            .filter(|i| *i != c.party)
            .map(|i| (i, &out[i]))
            .collect();
        // No honest party ever holds a wrong value.
        for (i, o) in &honest {
            if let Ok(v) = o {
                assert_eq!(*v, want, "honest party {i} released a wrong value in {c:?}");
            }
        }
        if honest.iter().all(|(_, o)| o.is_ok()) {
            // Not caught, and nothing released is wrong: only a message
            // error confined to the MAC's (or the lifted value's) upper 64
            // bits can do that, where the check covers values mod 2^64,
            // not MACs (crate::mac). Anything else must be caught.
            assert!(
                matches!(circ, Circ::Mul | Circ::Shuffle) && !c.local,
                "a tampering went unnoticed in {c:?}"
            );
            harmless += 1;
            continue;
        }
        let mut named = false;
        for (_, o) in &honest {
            if let Err(check) = o {
                assert!(
                    [
                        "and-proof",
                        "mac",
                        "coins",
                        "abort-signal",
                        "open",
                        "peer-stopped"
                    ]
                    .contains(&check.as_str()),
                    "{check} {c:?}"
                );
                named |= check != "peer-stopped";
            }
            // An honest party with (correct) values beside one that
            // stopped: selective abort (crate::verified).
        }
        assert!(named, "no honest party named the failed check in {c:?}");
        caught += 1;
    }
    // Rounds in which a party sends nothing to the chosen peer leave
    // nothing to tamper with.
    assert!(tampered > count / 2, "{tampered}");
    assert!(
        harmless * 10 < tampered,
        "{harmless} of {tampered} unnoticed"
    );
    eprintln!(
        "malicious mode, {circ:?}: {caught} of {tampered} tamperings caught, {harmless} \
         unnoticed that changed no released value; no wrong value released"
    );
}

#[test]
fn the_same_tampering_silently_corrupts_semi_honest_ands() {
    // A flipped bit reaches the output unless it is masked by a zero bit
    // of the other operand of a later AND.
    semi_honest_corruption(Circ::Ands, 3, 0xd2c9, 2, 3);
}

/// 300 runs of `circ` in semi-honest mode with one flipped bit in a
/// message of its first `rounds` rounds (its multiplications or ANDs, sent
/// to the previous party only) or in local state: no run may fail, and at
/// least `num/den` of them must release a wrong answer.
fn semi_honest_corruption(circ: Circ, rounds: u64, seed: u64, num: usize, den: usize) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (mut wrong, mut runs) = (0, 0);
    for _ in 0..300 {
        let mut c = random_case(&mut rng, circ, Security::SemiHonest);
        if !c.local && c.round > rounds {
            c.round = 1 + c.round % rounds;
        }
        c.fault = Fault::FlipBit { bit: c.bit };
        c.peer = (c.party + 2) % 3;
        if circ == Circ::Shuffle {
            // The pass in which the party sends its permuted component to
            // its next party.
            c.round = 1 + c.party as u64;
            c.peer = (c.party + 1) % 3;
        }
        let (_, out) = run_case(&c, Security::SemiHonest);
        runs += 1;
        if out.iter().any(|o| o.as_ref().is_ok_and(|v| *v != want(&c))) {
            wrong += 1;
        }
        assert!(
            out.iter().all(|o| o.is_ok()),
            "semi-honest mode has no checks"
        );
    }
    assert!(wrong * den >= runs * num, "{wrong} of {runs}");
    eprintln!(
        "semi-honest mode, {circ:?}: {wrong} of {runs} runs released a wrong result unnoticed"
    );
}

use kuvert_mpc::AShare;

fn ashare(p: &Party, comps: &Comps) -> AShare {
    let (a, b) = comps[p.id()].clone();
    AShare::from_components(a, b).expect("equal lengths")
}

#[test]
fn products_comparisons_conversions_and_select_run_in_malicious_mode_against_the_plaintext() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let edge = [0u64, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 5];
    let n = 70;
    let x: Vec<u64> = (0..n)
        .map(|j| if j < 36 { edge[j % 6] } else { rng.gen() })
        .collect();
    let y: Vec<u64> = (0..n)
        .map(|j| {
            if j < 36 {
                edge[j / 6]
            } else if j % 5 == 0 {
                x[j]
            } else {
                rng.gen()
            }
        })
        .collect();
    let (cx, cy) = (
        components(&x, true, &mut rng),
        components(&y, true, &mut rng),
    );
    let out = run3_secure(Keys::Seeded(5), Security::Malicious, |p| {
        let (xs, ys) = (ashare(p, &cx), ashare(p, &cy));
        let lts = p.lt(&xs, &ys, true)?;
        let ltu = p.lt(&xs, &ys, false)?;
        let eq = p.eq(&xs, &ys)?;
        let msb = p.msb(&xs)?;
        let bits = p.a2b(&xs)?;
        let back = p.b2a(&bits)?;
        let injected = p.bit2a(&ltu)?;
        let picked = p.select(&lts, &xs, &ys)?;
        let prod = p.mul(&xs, &ys)?;
        let square = p.mul(&prod, &prod)?;
        let arith = AShare::concat(&[&back, &injected, &picked, &prod, &square]);
        let arith = p.reveal_a(&arith, None)?.expect("all");
        Ok((
            p.reveal_bits(&lts, None)?.expect("all"),
            p.reveal_bits(&ltu, None)?.expect("all"),
            p.reveal_bits(&eq, None)?.expect("all"),
            p.reveal_bits(&msb, None)?.expect("all"),
            p.reveal_b(&bits, None)?.expect("all"),
            arith,
        ))
    })
    .expect("honest run");
    for o in &out {
        for j in 0..n {
            assert_eq!(o.0[j], (x[j] as i64) < (y[j] as i64), "signed {j}");
            assert_eq!(o.1[j], x[j] < y[j], "unsigned {j}");
            assert_eq!(o.2[j], x[j] == y[j], "eq {j}");
            assert_eq!(o.3[j], x[j] >> 63 == 1, "msb {j}");
        }
        assert_eq!(o.4, x);
        assert_eq!(o.5[..n], x[..], "b2a");
        for j in 0..n {
            assert_eq!(o.5[n + j], (x[j] < y[j]) as u64, "bit2a {j}");
            let pick = if (x[j] as i64) < (y[j] as i64) {
                x[j]
            } else {
                y[j]
            };
            assert_eq!(o.5[2 * n + j], pick, "select {j}");
            let prod = x[j].wrapping_mul(y[j]);
            assert_eq!(o.5[3 * n + j], prod, "mul {j}");
            assert_eq!(o.5[4 * n + j], prod.wrapping_mul(prod), "mul {j}");
        }
    }
}

#[test]
fn operations_without_a_check_refuse_to_run_in_malicious_mode() {
    let out = run3_secure(Keys::Seeded(9), Security::Malicious, |p| {
        let me = p.id();
        let a = AShare::public(me, &[1, 2, 3]);
        let b = BShare::public(me, &[1, 2, 3]);
        let bits = p.eq(&a, &a)?;
        // Boolean columns have no MAC over GF(2) yet.
        let mut cols = [
            kuvert_mpc::shuffle::Column::Arith(a.clone()),
            kuvert_mpc::shuffle::Column::Bool(b.clone()),
        ];
        let _ = &bits;
        let refused = [p.shuffle(&mut cols).err()];
        Ok(refused.map(|e| match e {
            Some(MpcError::Unsupported(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }))
    })
    .expect("refusals are not failures");
    for m in &out[0] {
        assert!(
            m.contains("not yet secure against a malicious party"),
            "{m}"
        );
    }
}

/// A single AND call longer than one proof batch is proven in batches; a
/// flipped bit in the second batch is caught too.
#[test]
fn long_and_calls_are_proven_in_batches() {
    let n = kuvert_mpc::dzkp::MAX_BATCH_WORDS + 3;
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let x: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
    let y: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
    let (cx, cy) = (
        components(&x, false, &mut rng),
        components(&y, false, &mut rng),
    );
    for tamper in [false, true] {
        let [t0, t1, t2] = InProcTransport::triple();
        let t1: Box<dyn Transport> = if tamper {
            // Party 1's AND message (round 1) to party 0, in the last words.
            let bit = 64 * (n - 2) + 17;
            Box::new(FaultyTransport::new(
                t1,
                vec![Injection::at(1, 0, Fault::FlipBit { bit })],
            ))
        } else {
            Box::new(t1)
        };
        let out = run3_over_secure(
            [Box::new(t0), t1, Box::new(t2)],
            Keys::Seeded(4),
            Security::Malicious,
            |p| {
                // The call proves by itself: its pending words exceed a batch.
                let rounds = p.stats().rounds;
                let z = p.and(&share(p, &cx), &share(p, &cy))?;
                let and_rounds = p.stats().rounds - rounds;
                Ok((and_rounds, p.reveal_b(&z, None)?.expect("all")))
            },
        );
        for o in out {
            if tamper {
                assert!(
                    matches!(o, Err(MpcError::Check { .. })),
                    "{:?}",
                    o.map(|v| v.0)
                );
            } else {
                let (proof_rounds, v) = o.expect("honest");
                // The AND, then two batches: (2K + 4) rounds each, K = 22
                // and K = 8.
                assert_eq!(proof_rounds, 1 + 48 + 20);
                assert!(v.iter().enumerate().all(|(j, w)| *w == x[j] & y[j]));
            }
        }
    }
}

/// A large malicious-mode shuffle opens to a permutation of its rows (the
/// plaintext oracle: the same multiset of rows), not the identity, and
/// records every pass for the MAC check.
#[test]
fn a_malicious_shuffle_permutes_rows_and_checks_every_pass() {
    let n = 3000;
    let mut rng = ChaCha20Rng::seed_from_u64(0x5ff1e);
    let x: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
    let y: Vec<u64> = (0..n as u64).collect();
    let cx = components(&x, true, &mut rng);
    let cy = components(&y, true, &mut rng);
    let out = run3_secure(Keys::Seeded(5), Security::Malicious, |p| {
        let mut cols = [
            kuvert_mpc::shuffle::Column::Arith(ashare(p, &cx)),
            kuvert_mpc::shuffle::Column::Arith(ashare(p, &cy)),
        ];
        let before = p.stats();
        p.shuffle(&mut cols)?;
        let used = p.stats() - before;
        let [kuvert_mpc::shuffle::Column::Arith(a), kuvert_mpc::shuffle::Column::Arith(b)] = cols
        else {
            unreachable!()
        };
        let opened = p.reveal_a(&AShare::concat(&[&a, &b]), None)?.expect("all");
        Ok((opened, used))
    })
    .expect("honest run");
    let (opened, used) = &out[0];
    assert_eq!(out[1].0, *opened);
    assert_eq!(out[2].0, *opened);
    let (sx, sy) = opened.split_at(n);
    assert_eq!(sorted_rows(sx, sy), sorted_rows(&x, &y));
    assert_ne!(sy, &y[..], "the rows were not moved");
    for (j, row) in sy.iter().enumerate() {
        assert_eq!(sx[j], x[*row as usize], "a row was torn apart");
    }
    // One round for the MACs, three passes; 16 bytes per element and
    // column for the MACs and 32 for each of the two passes a party takes
    // part in.
    assert_eq!(used.rounds, 4);
    assert_eq!(used.bytes_sent, (n * 2 * (16 + 32 * 2)) as u64);
}

/// The selective-failure attack of Song et al. (NDSS 2024) on MAC-checked
/// shuffles: party 0 adds `δ` to row `a` in pass 0 (its pass with party 1),
/// the honest pair's pass 1 moves the row to a place party 0 does not know,
/// and party 0 subtracts `δ` from row `g` in pass 2 (its pass with party
/// 2), keeping its own state consistent. With only the final rows checked,
/// the one guess `g` where the row landed would pass and tell party 0
/// where the honest permutation sent it. Every pass is recorded for the
/// check, so every guess aborts.
#[test]
fn cancelling_an_error_after_the_honest_pass_still_aborts_every_guess() {
    let n = 8usize;
    let mut rng = ChaCha20Rng::seed_from_u64(0xa77ac);
    let x: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
    let y: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
    let cx = components(&x, true, &mut rng);
    let cy = components(&y, true, &mut rng);
    let attack = |guess: usize, security: Security| {
        run3_secure(Keys::Seeded(77), security, |p| {
            if p.id() == 0 {
                kuvert_mpc::faulty::add_in_shuffle_pass(p, 0, 3, 0x1234_5678);
                kuvert_mpc::faulty::add_in_shuffle_pass(p, 2, guess, -0x1234_5678);
            }
            Ok(
                circuit(p, Circ::Shuffle, &cx, &cy, &cy).map_err(|e| match e {
                    MpcError::Check { check, .. } => check,
                    MpcError::Transport(_) => "peer-stopped".to_string(),
                    other => panic!("expected a check failure, got {other}"),
                }),
            )
        })
        .expect("no transport or usage error")
    };
    let want = sorted_rows(&x, &y);
    // The attack is real: in semi-honest mode exactly one guess restores
    // every row (the others leave two wrong rows behind).
    let right: Vec<usize> = (0..n)
        .filter(|g| attack(*g, Security::SemiHonest)[1].as_ref() == Ok(&want))
        .collect();
    assert_eq!(right.len(), 1, "{right:?}");
    // In malicious mode every guess, the right one included, aborts both
    // honest parties before anything is opened.
    for g in 0..n {
        let out = attack(g, Security::Malicious);
        for (i, o) in out.iter().enumerate().skip(1) {
            assert_eq!(
                o.as_ref().err().map(String::as_str),
                Some("mac"),
                "guess {g}: honest party {i}"
            );
        }
    }
}

/// Pair-sampled sharings (the DP noise of malicious mode): both holders of
/// each component draw the same value, the sharing passes the consistency
/// check, and a party that changes its copy of a component it drew is
/// caught by the verified open.
#[test]
fn pair_sampled_components_agree_and_a_changed_copy_is_caught() {
    let draw = |p: &mut Party| {
        p.pair_sampled_a(50, |j, rng| {
            Ok::<u64, MpcError>(rng.gen::<u64>() ^ j as u64)
        })
    };
    let honest = run3_secure(Keys::Seeded(3), Security::Malicious, |p| {
        let x = draw(p)?;
        p.check_consistent_a(&[&x])?;
        Ok(p.reveal_a(&x, None)?.expect("all"))
    })
    .expect("honest run");
    assert_eq!(honest[0], honest[1]);
    assert_eq!(honest[1], honest[2]);
    assert!(honest[0].iter().any(|v| *v != honest[0][0]));
    let cheat = run3_secure(Keys::Seeded(3), Security::Malicious, |p| {
        let mut x = draw(p)?;
        if p.id() == 1 {
            let (a, b) = x.components();
            let mut a = a.to_vec();
            a[7] = a[7].wrapping_add(1000);
            x = AShare::from_components(a, b.to_vec()).expect("equal lengths");
        }
        Ok(p.reveal_a(&x, None)
            .map(|v| v.expect("all"))
            .map_err(|e| match e {
                MpcError::Check { check, .. } => check,
                MpcError::Transport(_) => "peer-stopped".into(),
                other => panic!("{other}"),
            }))
    })
    .expect("no transport error");
    // No honest party holds a wrong value; at least one names the check.
    for i in [0, 2] {
        if let Ok(v) = &cheat[i] {
            assert_eq!(v, &honest[0], "party {i}");
        }
    }
    assert!(
        [0, 2]
            .iter()
            .any(|i| cheat[*i].as_ref().err().map(String::as_str) == Some("open")),
        "{cheat:?}"
    );
}

/// Empty tables and tables without columns shuffle in malicious mode too.
#[test]
fn empty_tables_shuffle_in_malicious_mode() {
    let out = run3_secure(Keys::Seeded(4), Security::Malicious, |p| {
        let mut none: [kuvert_mpc::shuffle::Column; 0] = [];
        p.shuffle(&mut none)?;
        let mut empty = [kuvert_mpc::shuffle::Column::Arith(AShare::zeros(0))];
        p.shuffle(&mut empty)?;
        p.verify_all()?;
        Ok(empty
            .iter()
            .all(|c| matches!(c, kuvert_mpc::shuffle::Column::Arith(s) if s.is_empty())))
    })
    .expect("honest run");
    assert_eq!(out, [true, true, true]);
}
