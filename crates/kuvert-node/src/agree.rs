//! The nodes' signed agreement on a job's outcome, so that an abort is
//! unanimous (malicious mode).
//!
//! # Why
//! Every check of the engine ends in an abort round in which each node
//! tells the others whether its own checks passed. A deviating node can
//! tell one honest node "failed" and the other "passed": after the *last*
//! such round the first honest node aborts while the second, whose values
//! are correct, would store its result shares and delete the inputs. The
//! answer stays correct (a recipient needs two nodes' shares), but the two
//! honest nodes disagree on whether the job ran, and the inputs are gone
//! at one of them, so it cannot be rerun. With three nodes and one of them
//! corrupt, no protocol over point-to-point channels alone can make the
//! honest nodes agree (Lamport, Shostak and Pease); with signatures it
//! takes two rounds (Dolev and Strong, 1983, with one fault).
//!
//! # Protocol
//! Once every output of a job is computed and verified, each node `i`
//! signs `outcome_message(session, i, ok)` with its receipt key (pinned
//! by the federation) and
//! 1. sends the signed outcome to both other nodes;
//! 2. relays to each the signed outcome it received from the third.
//!
//! A node keeps, for each other node `j`, the set of outcomes validly
//! signed by `j` for this session that reached it directly in round 1 or
//! relayed in round 2. It **commits** (stores the result shares, applies
//! the retention rule) only if its own outcome is OK and both sets are
//! exactly `{OK}`; otherwise it aborts: nothing is released and the inputs
//! stay for a rerun. `session` is [`kuvert_mpc::Party::session_tag`],
//! fresh per run and known to the three nodes, so a signed outcome cannot
//! be replayed from another run.
//!
//! # Why the honest nodes decide the same (one corrupt node, synchrony)
//! Call the honest nodes A and B and the corrupt one C. A's outcome reaches
//! B directly in round 1 and C cannot forge A's signature, so B's set for A
//! is exactly A's outcome; likewise A's set for B. Every outcome C sent A
//! in round 1 is relayed by A to B in round 2 and the other way round, so
//! A's and B's sets for C are the same. A commits only if its own, B's and
//! C's outcomes are OK, and then B sees the same three sets and commits
//! too. This needs messages between honest nodes to arrive within the
//! transport's time limit (a synchronous network); round-2 messages are
//! awaited [`ROUND2_WAITS`] times that limit, because an honest node may
//! first wait out a silent corrupt node in round 1.
//!
//! A node whose own computation failed does not take part: it closes its
//! connections, the others receive no outcome from it, and they abort.
//!
//! Cost: two rounds, 66 and 68 bytes to each peer, one signature and at
//! most four verifications per node.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use kuvert_gov::keys::outcome_message;
use kuvert_gov::PartyKey;
use kuvert_mpc::transport::{Incoming, Outgoing, PARTIES};
use kuvert_mpc::{Transport, TransportError};

/// The outcome byte of a node whose every check passed.
pub const OK: u8 = 1;
/// The outcome byte of a node that aborts.
pub const FAIL: u8 = 2;

/// How many times the transport's time limit a node waits for a round-2
/// message.
pub const ROUND2_WAITS: usize = 3;

const R1_LEN: usize = 2 + 64;
const R2_LEN: usize = 2 + R1_LEN;

/// What a node decided, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Store the results (every node's outcome was OK, as far as this node
    /// can tell, and the other honest node can tell the same).
    pub commit: bool,
    /// Per other node, what this node learned of its outcome.
    pub detail: String,
}

/// A signed outcome as sent in round 1.
fn r1(session: &[u8; 32], me: usize, outcome: u8, key: &PartyKey) -> [u8; R1_LEN] {
    let sig = key.sign_outcome(session, me as u8, outcome);
    let mut m = [0u8; R1_LEN];
    m[0] = 1;
    m[1] = outcome;
    m[2..].copy_from_slice(&sig.to_bytes());
    m
}

/// The outcome in a round-1 message if `signer` validly signed it for
/// `session`.
fn verify_r1(m: &[u8], session: &[u8; 32], signer: usize, key: &VerifyingKey) -> Option<u8> {
    if m.len() != R1_LEN || m[0] != 1 || !(m[1] == OK || m[1] == FAIL) {
        return None;
    }
    let sig = Signature::from_bytes(m[2..].try_into().ok()?);
    key.verify(&outcome_message(session, signer as u8, m[1]), &sig)
        .ok()
        .map(|_| m[1])
}

fn send(t: &mut dyn Transport, to: usize, data: &[u8]) {
    // A peer that is gone simply gets nothing; the agreement goes on with
    // the other.
    let _ = t.round(&[Outgoing { to, data }], &mut []);
}

fn recv(t: &mut dyn Transport, from: usize, buf: &mut [u8], waits: usize) -> bool {
    for _ in 0..waits {
        match t.round(&[], &mut [Incoming { from, buf }]) {
            Ok(()) => return true,
            Err(TransportError::Timeout { .. }) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// Run the agreement at node `me` with its own outcome `mine` (see the
/// module docs). `keys[j]` is node `j`'s receipt-signing key. Never fails:
/// anything missing, late or malformed counts against committing.
pub fn agree(
    t: &mut dyn Transport,
    me: usize,
    session: &[u8; 32],
    mine: bool,
    key: &PartyKey,
    keys: &[VerifyingKey; PARTIES],
) -> Verdict {
    let others = [(me + 1) % PARTIES, (me + 2) % PARTIES];
    let own = r1(session, me, if mine { OK } else { FAIL }, key);
    for j in others {
        send(t, j, &own);
    }
    // Round 1: each other node's signed outcome, as it reached this node.
    let mut direct: [Option<[u8; R1_LEN]>; PARTIES] = [None; PARTIES];
    let mut seen: [Vec<u8>; PARTIES] = Default::default();
    for j in others {
        let mut buf = [0u8; R1_LEN];
        if recv(t, j, &mut buf, 1) {
            if let Some(o) = verify_r1(&buf, session, j, &keys[j]) {
                direct[j] = Some(buf);
                seen[j].push(o);
            }
        }
    }
    // Round 2: relay to each the third node's message.
    for j in others {
        let k = 3 - me - j;
        let mut m = [0u8; R2_LEN];
        m[0] = 2;
        if let Some(d) = &direct[k] {
            m[1] = 1;
            m[2..].copy_from_slice(d);
        }
        send(t, j, &m);
    }
    for j in others {
        let k = 3 - me - j;
        let mut buf = [0u8; R2_LEN];
        if recv(t, j, &mut buf, ROUND2_WAITS) && buf[0] == 2 && buf[1] == 1 {
            if let Some(o) = verify_r1(&buf[2..], session, k, &keys[k]) {
                if !seen[k].contains(&o) {
                    seen[k].push(o);
                }
            }
        }
    }
    let mut commit = mine;
    let mut parts = Vec::new();
    for j in [0, 1, 2].into_iter().filter(|j| *j != me) {
        let s = &seen[j];
        let what = match (s.contains(&OK), s.contains(&FAIL)) {
            (true, false) => "confirmed that every check passed",
            (false, true) => "reported a failed check",
            (true, true) => "signed both outcomes (it deviated)",
            (false, false) => "sent no signed outcome (it failed, stopped or deviated)",
        };
        if !(s.len() == 1 && s[0] == OK) {
            commit = false;
        }
        parts.push(format!("node {j} {what}"));
    }
    Verdict {
        commit,
        detail: parts.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_mpc::inproc::InProcTransport;

    /// What the corrupt node sends one honest node in round 1.
    #[derive(Clone, Copy, Debug)]
    enum R1 {
        Nothing,
        Signed(u8),
        Forged,
    }

    /// What it sends one honest node in round 2.
    #[derive(Clone, Copy, Debug)]
    enum R2 {
        Nothing,
        /// The other honest node's genuine round-1 message.
        Relay,
        /// A message claiming to be the other honest node's, with the
        /// opposite outcome and a signature by the corrupt node.
        Forged,
    }

    fn keys() -> ([PartyKey; 3], [VerifyingKey; 3]) {
        let k = [0, 1, 2].map(|i| PartyKey::generate(&format!("node-{i}")));
        let v = [0, 1, 2].map(|i| k[i].verifying_key());
        (k, v)
    }

    /// Honest nodes 0 and 1 with outcomes `oks`, corrupt node 2 scripted:
    /// it reads their round-1 messages, sends `r1[h]` and `r2[h]` to
    /// honest node `h`, then disconnects. Returns the honest verdicts.
    fn run(oks: [bool; 2], r1s: [R1; 2], r2s: [R2; 2], replay: bool) -> [Verdict; 2] {
        let (k, v) = keys();
        let session = [7u8; 32];
        let [t0, t1, mut t2] = InProcTransport::triple();
        std::thread::scope(|s| {
            let h = [t0, t1].into_iter().enumerate().map(|(i, mut t)| {
                let (k, v) = (&k, &v);
                s.spawn(move || agree(&mut t, i, &session, oks[i], &k[i], v))
            });
            let honest: Vec<_> = h.collect();
            // The corrupt node.
            let mut got = [[0u8; R1_LEN]; 2];
            for (h, buf) in got.iter_mut().enumerate() {
                t2.round(&[], &mut [Incoming { from: h, buf }]).unwrap();
            }
            for (h, r1s_h) in r1s.iter().enumerate() {
                let m = match *r1s_h {
                    R1::Nothing => None,
                    R1::Signed(o) if replay => {
                        // A genuine signature, but for another session.
                        Some(r1(&[8u8; 32], 2, o, &k[2]))
                    }
                    R1::Signed(o) => Some(r1(&session, 2, o, &k[2])),
                    R1::Forged => {
                        let mut m = r1(&session, 2, OK, &k[2]);
                        m[10] ^= 1;
                        Some(m)
                    }
                };
                if let Some(m) = m {
                    send(&mut t2, h, &m);
                }
            }
            for (h, r2s_h) in r2s.iter().enumerate() {
                let other = 1 - h;
                let inner = match *r2s_h {
                    R2::Nothing => continue,
                    R2::Relay => got[other],
                    R2::Forged => {
                        let flipped = if got[other][1] == OK { FAIL } else { OK };
                        let mut m = r1(&session, 2, flipped, &k[2]);
                        m[1] = flipped;
                        m
                    }
                };
                let mut m = [0u8; R2_LEN];
                m[0] = 2;
                m[1] = 1;
                m[2..].copy_from_slice(&inner);
                send(&mut t2, h, &m);
            }
            drop(t2);
            let out: Vec<Verdict> = honest.into_iter().map(|h| h.join().unwrap()).collect();
            [out[0].clone(), out[1].clone()]
        })
    }

    /// Every combination of the honest nodes' outcomes and of what the
    /// corrupt node sends each of them in both rounds (nothing, a signed
    /// OK or FAIL, a forged signature; no relay, a genuine relay, a forged
    /// one; and genuine signatures from another session): the honest nodes
    /// always decide the same, commit only if both are OK, and commit when
    /// the corrupt node behaves as an honest OK node would.
    #[test]
    fn the_honest_nodes_always_decide_the_same() {
        let r1s = [R1::Nothing, R1::Signed(OK), R1::Signed(FAIL), R1::Forged];
        let r2s = [R2::Nothing, R2::Relay, R2::Forged];
        let mut cases = 0;
        for oks in [[true, true], [true, false], [false, true], [false, false]] {
            for a in r1s {
                for b in r1s {
                    for x in r2s {
                        for y in r2s {
                            for replay in [false, true] {
                                let [v0, v1] = run(oks, [a, b], [x, y], replay);
                                let case = format!("{oks:?} {a:?} {b:?} {x:?} {y:?} {replay}");
                                assert_eq!(v0.commit, v1.commit, "{case}: {v0:?} / {v1:?}");
                                if v0.commit {
                                    assert_eq!(oks, [true, true], "{case}");
                                }
                                let behaves =
                                    matches!((a, b), (R1::Signed(OK), R1::Signed(OK))) && !replay;
                                if oks == [true, true] && behaves {
                                    assert!(v0.commit, "{case}: {v0:?}");
                                }
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 4 * 4 * 3 * 3 * 2);
    }

    /// Three honest nodes commit when all passed, and all abort when one
    /// failed; the failing node's state is named.
    #[test]
    fn honest_nodes_commit_only_when_all_passed() {
        let (k, v) = keys();
        for failing in [None, Some(1usize)] {
            let ts = InProcTransport::triple();
            let out: Vec<Verdict> = std::thread::scope(|s| {
                let hs: Vec<_> = ts
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut t)| {
                        let (k, v) = (&k, &v);
                        s.spawn(move || agree(&mut t, i, &[1u8; 32], failing != Some(i), &k[i], v))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for (i, verdict) in out.iter().enumerate() {
                assert_eq!(verdict.commit, failing.is_none(), "node {i}: {verdict:?}");
                if failing.is_some() && i != 1 {
                    assert!(
                        verdict.detail.contains("node 1 reported a failed check"),
                        "{verdict:?}"
                    );
                }
            }
        }
    }
}
