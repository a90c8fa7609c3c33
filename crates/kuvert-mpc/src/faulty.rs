//! A fault-injecting transport: test tooling, like [`crate::inproc`].
//!
//! [`FaultyTransport`] wraps any [`Transport`] of one party and tampers with
//! chosen outgoing messages, to play a malicious party in tests of the
//! verified protocols (the party's protocol logic stays honest; its
//! messages do not). Rounds are numbered from 0 by the calls to
//! [`Transport::round`] on this wrapper, so the session setup of
//! [`crate::Party::setup`] is round 0 and the count matches
//! [`crate::Stats::rounds`] of the party.
//!
//! Every fault keeps the message's length, so the receiving transport never
//! blocks for missing bytes or rejects a frame: the tampering is visible to
//! the protocol, not to the transport. A [`FaultLog`] records each tampered
//! message and whether its bytes actually changed (flipping a bit always
//! does; zeros, a replay or random bytes can happen to equal the original).
//!
//! Never use it in a node.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::transport::{Incoming, Outgoing, PartyId, Transport, TransportError};

/// Make `party` deviate in its local state: from now on it applies a wrong
/// permutation (its first two entries swapped) to its own component in
/// every shuffle pass it takes part in, while its partner applies the
/// right one. Test tooling, like the transport below.
pub fn deviate_permutations(party: &mut crate::Party) {
    party.deviation_mut().wrong_permutations = true;
}

/// Make `party` add `delta` to element `index` (column-major over the
/// table's columns, and in malicious mode over the values then the MACs)
/// of its message in pass `pass` (0, 1 or 2) of every shuffle it takes
/// part in, and to its own copy of the pass result: an additive error that
/// leaves its state consistent, as a real attacker would. Test tooling.
pub fn add_in_shuffle_pass(party: &mut crate::Party, pass: usize, index: usize, delta: i64) {
    party.deviation_mut().pass_errors.push((pass, index, delta));
}

/// How many earlier messages per peer are kept for [`Fault::Replay`].
const HISTORY: usize = 16;

/// What to do to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Flip bit `bit % (8 · len)` (bit 0 is the lowest bit of byte 0).
    FlipBit { bit: usize },
    /// Send zeros of the same length instead.
    Drop,
    /// Send an earlier message to the same peer instead: the most recent one
    /// of the same length if any, otherwise the most recent one truncated or
    /// zero-padded to the length, otherwise zeros.
    Replay,
    /// Send random bytes of the same length (ChaCha20 seeded by `seed`, the
    /// round and the peer).
    Substitute { seed: u64 },
}

/// One fault applied to this party's messages to `peer` in `rounds`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub rounds: Range<u64>,
    pub peer: PartyId,
    pub fault: Fault,
}

impl Injection {
    /// `fault` on the message to `peer` in round `round` only.
    pub fn at(round: u64, peer: PartyId, fault: Fault) -> Injection {
        Injection {
            rounds: round..round + 1,
            peer,
            fault,
        }
    }
}

/// One message the wrapper tampered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tampered {
    pub round: u64,
    pub peer: PartyId,
    pub len: usize,
    pub fault: Fault,
    /// Whether the bytes sent differ from the honest message.
    pub changed: bool,
}

/// Shared record of the tampered messages; clone it before the transport is
/// moved into a [`crate::Party`].
#[derive(Clone, Debug, Default)]
pub struct FaultLog(Arc<Mutex<Vec<Tampered>>>);

impl FaultLog {
    /// Every tampered message so far.
    pub fn entries(&self) -> Vec<Tampered> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Whether any message's bytes were actually changed.
    pub fn changed_any(&self) -> bool {
        self.entries().iter().any(|t| t.changed)
    }
}

/// A [`Transport`] that tampers with this party's outgoing messages as
/// told by its [`Injection`]s. Incoming messages pass through untouched.
pub struct FaultyTransport<T: Transport> {
    inner: T,
    injections: Vec<Injection>,
    round: u64,
    /// Recently sent messages per peer (only kept when a replay is planned).
    history: [VecDeque<Vec<u8>>; 3],
    keep_history: bool,
    log: FaultLog,
}

impl<T: Transport> FaultyTransport<T> {
    /// Wrap `inner`, applying `injections` (the first one that matches a
    /// message's round and peer wins).
    pub fn new(inner: T, injections: Vec<Injection>) -> Self {
        let keep_history = injections.iter().any(|i| i.fault == Fault::Replay);
        FaultyTransport {
            inner,
            injections,
            round: 0,
            history: Default::default(),
            keep_history,
            log: FaultLog::default(),
        }
    }

    /// The record of tampered messages (shared with this transport).
    pub fn log(&self) -> FaultLog {
        self.log.clone()
    }

    fn tamper(&self, fault: Fault, peer: PartyId, honest: &[u8]) -> Vec<u8> {
        let len = honest.len();
        match fault {
            Fault::FlipBit { bit } => {
                let mut m = honest.to_vec();
                if len > 0 {
                    let bit = bit % (8 * len);
                    m[bit / 8] ^= 1 << (bit % 8);
                }
                m
            }
            Fault::Drop => vec![0; len],
            Fault::Replay => {
                let hist = &self.history[peer];
                let old = hist
                    .iter()
                    .rev()
                    .find(|m| m.len() == len)
                    .or_else(|| hist.back());
                let mut m = old.cloned().unwrap_or_default();
                m.resize(len, 0);
                m
            }
            Fault::Substitute { seed } => {
                let mut rng = ChaCha20Rng::seed_from_u64(
                    seed ^ self.round.rotate_left(32) ^ (peer as u64).rotate_left(48),
                );
                let mut m = vec![0; len];
                rng.fill_bytes(&mut m);
                m
            }
        }
    }
}

impl<T: Transport> Transport for FaultyTransport<T> {
    fn party(&self) -> PartyId {
        self.inner.party()
    }

    fn round(
        &mut self,
        outgoing: &[Outgoing<'_>],
        incoming: &mut [Incoming<'_>],
    ) -> Result<(), TransportError> {
        let round = self.round;
        self.round += 1;
        let mut replaced: Vec<Option<Vec<u8>>> = Vec::with_capacity(outgoing.len());
        for o in outgoing {
            let inj = self
                .injections
                .iter()
                .find(|i| i.peer == o.to && i.rounds.contains(&round));
            replaced.push(inj.map(|inj| {
                let m = self.tamper(inj.fault, o.to, o.data);
                if let Ok(mut log) = self.log.0.lock() {
                    log.push(Tampered {
                        round,
                        peer: o.to,
                        len: m.len(),
                        fault: inj.fault,
                        changed: m[..] != *o.data,
                    });
                }
                m
            }));
        }
        let sent: Vec<Outgoing<'_>> = outgoing
            .iter()
            .zip(&replaced)
            .map(|(o, r)| Outgoing {
                to: o.to,
                data: r.as_deref().unwrap_or(o.data),
            })
            .collect();
        if self.keep_history {
            for o in &sent {
                if let Some(h) = self.history.get_mut(o.to) {
                    if h.len() == HISTORY {
                        h.pop_front();
                    }
                    h.push_back(o.data.to_vec());
                }
            }
        }
        self.inner.round(&sent, incoming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inproc::InProcTransport;

    /// Party 0 sends `msgs` to party 1 round by round through the wrapper;
    /// returns what party 1 received.
    fn relay(injections: Vec<Injection>, msgs: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Tampered>) {
        let [t0, mut t1, _t2] = InProcTransport::triple();
        let mut f = FaultyTransport::new(t0, injections);
        let log = f.log();
        let mut got = Vec::new();
        for m in msgs {
            f.round(&[Outgoing { to: 1, data: m }], &mut []).unwrap();
            let mut buf = vec![0u8; m.len()];
            t1.round(
                &[],
                &mut [Incoming {
                    from: 0,
                    buf: &mut buf,
                }],
            )
            .unwrap();
            got.push(buf);
        }
        (got, log.entries())
    }

    #[test]
    fn faults_hit_only_their_round_and_peer() {
        let msgs = vec![vec![1u8, 2, 3], vec![4, 5, 6], vec![7, 8, 9, 10]];
        let (got, log) = relay(vec![Injection::at(1, 1, Fault::FlipBit { bit: 9 })], &msgs);
        assert_eq!(got[0], msgs[0]);
        assert_eq!(got[1], vec![4, 5 ^ 2, 6]);
        assert_eq!(got[2], msgs[2]);
        assert_eq!(log.len(), 1);
        assert!(log[0].changed);
        let (got, log) = relay(vec![Injection::at(1, 2, Fault::Drop)], &msgs);
        assert_eq!(
            got, msgs,
            "a fault for party 2 must not touch party 1's messages"
        );
        assert!(log.is_empty());
    }

    #[test]
    fn drop_replay_substitute_keep_length() {
        let msgs = vec![vec![1u8, 2, 3], vec![9u8; 5], vec![4, 5, 6], vec![0u8; 3]];
        let (got, log) = relay(
            vec![
                Injection::at(2, 1, Fault::Replay),
                Injection::at(1, 1, Fault::Substitute { seed: 5 }),
                Injection::at(3, 1, Fault::Drop),
            ],
            &msgs,
        );
        assert_eq!(got[1].len(), 5);
        assert_ne!(got[1], msgs[1]);
        assert_eq!(
            got[2], msgs[0],
            "replay picks the latest message of equal length"
        );
        assert_eq!(got[3], vec![0u8; 3]);
        let changed: Vec<bool> = log.iter().map(|t| t.changed).collect();
        assert_eq!(
            changed,
            vec![true, true, false],
            "zeros over zeros change nothing"
        );
        // Replay with no message of equal length: truncated or padded.
        let (got, _) = relay(
            vec![Injection {
                rounds: 1..3,
                peer: 1,
                fault: Fault::Replay,
            }],
            &[vec![1u8, 2, 3], vec![5u8; 2], vec![6u8; 4]],
        );
        assert_eq!(got[1], vec![1, 2]);
        assert_eq!(got[2], vec![1, 2, 0, 0]);
    }
}
