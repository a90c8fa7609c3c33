//! Verified open: opening a replicated sharing to all three parties so that
//! one malicious party cannot change the opened value without the honest
//! parties aborting.
//!
//! # Protocol
//! Party `i` holds `(x_i, x_{i+1})` and lacks `x_{i+2}`, which both of the
//! other parties hold: party `i+1` as its second component, party `i+2` as
//! its first. Per call, with `c` a fresh per-session operation counter:
//!
//! 1. **Open round.** Party `i` sends its second component `x_{i+1}` to
//!    `prev(i)` (n words, as in the semi-honest open) and the 32-byte digest
//!    `D(x_i) = SHA-256(domain ‖ kind ‖ tag_c ‖ c ‖ i ‖ n ‖ x_i)` of its first
//!    component to `next(i)`. `tag_c` is 32 bytes of PRF output of the
//!    common key for counter `c`, which binds digests to this session;
//!    `domain` and `kind` (arithmetic or boolean) separate them from any
//!    other use of SHA-256. Party `i` then checks that the vector received
//!    from `next(i)` hashes to the digest received from `prev(i)`.
//! 2. **Abort round.** Party `i` sends one status byte to each of its peers
//!    ([`STATUS_OK`] or [`STATUS_FAIL_OPEN`]); it returns the values only if
//!    its own check passed and both peers sent [`STATUS_OK`]. Any other
//!    byte (a failure report or a malformed status) is an abort.
//!
//! Cost per party and call: 2 rounds, `8n + 32 + 2` bytes sent (the plain
//! open: 1 round, `8n` bytes).
//!
//! The abort round is shared with the consistency check of
//! [`crate::consistency`], which reports its failure with
//! [`STATUS_FAIL_CONSISTENCY`].
//!
//! # What it guarantees (one corrupt party, honest majority)
//! - **No wrong value is accepted.** An honest party `i` accepts `x_{i+2}`
//!   only if the copy from `i+1` and the digest from `i+2` agree. One of the
//!   two senders is honest, so a value differing from the honest one passes
//!   only by a SHA-256 second preimage (work about 2^256) or, if the
//!   adversary could also choose the honest input, a collision (about
//!   2^128). The counter `c`, the session tag, the component index and the
//!   length `n` are hashed, so a digest or vector replayed from an earlier
//!   call (or another session, position or length) does not verify.
//! - **A failed check stops every honest party.** An honest party whose
//!   check fails sends [`STATUS_FAIL_OPEN`] to both peers, and an honest
//!   peer aborts on it, so when any honest party detects tampering no
//!   honest party returns values.
//! - **Selective abort only.** The corrupt party can send a failure report
//!   (or garbage) to one honest party and [`STATUS_OK`] to the other: then
//!   one honest party aborts and the other returns the *correct* values. The
//!   same holds when the corrupt party tampers with its status bytes.
//!   Unanimous abort would need a broadcast channel, which three parties
//!   with one corruption cannot build from point-to-point channels without
//!   signatures; the receiving node's error names the party that sent the
//!   status, and the operator treats any node's abort as the session's.
//! - It verifies the *opening* of the sharing the parties hold. Whether that
//!   sharing is the right one (inputs, multiplications, ANDs, shuffles) is
//!   still protected only against semi-honest parties.

use sha2::{Digest, Sha256};

use crate::party::{check_len, MpcError, Party, Result};
use crate::share::{AShare, BShare};
use crate::transport::{next, prev, PartyId};

/// Status byte of the abort round: "my check passed".
pub const STATUS_OK: u8 = 0x4f;
/// Status byte of the abort round: "my open check failed".
pub const STATUS_FAIL_OPEN: u8 = 0x58;
/// Status byte of the abort round: "my consistency check failed"
/// ([`crate::consistency`]).
pub const STATUS_FAIL_CONSISTENCY: u8 = 0x43;
/// Status byte of the abort round: "my check of an AND proof failed"
/// ([`crate::dzkp`]).
pub const STATUS_FAIL_AND_PROOF: u8 = 0x35;

/// Domain separator of the digests of the verified open.
const DOMAIN: &[u8] = b"kuvert-mpc/verified-open/v1\0";
/// Digest length in bytes (SHA-256).
pub const DIGEST_LEN: usize = 32;

/// A value that passed the checks of a verified protocol at this party
/// (and, through the abort round, at the two others).
///
/// Only this crate constructs it, so code that must not act on unchecked
/// values can require `Verified<_>` in its signature ("validate before
/// reveal" as a type). The contents are opened, public values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub(crate) fn new(value: T) -> Self {
        Verified(value)
    }

    /// The verified value.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// A reference to the verified value.
    pub fn get(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Which sharing is opened or checked (hashed, so arithmetic and boolean
/// digests differ).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Arith,
    Bool,
}

impl Kind {
    pub(crate) fn byte(self) -> u8 {
        match self {
            Kind::Arith => b'A',
            Kind::Bool => b'B',
        }
    }
}

/// `SHA-256(domain ‖ kind ‖ tag ‖ counter ‖ component ‖ n ‖ words)`, the
/// words as sent on the wire.
pub(crate) fn digest(
    kind: Kind,
    tag: &[u8],
    counter: u64,
    component: PartyId,
    words: &[u64],
) -> [u8; DIGEST_LEN] {
    let mut h = digest_header(DOMAIN, kind, tag, counter, component);
    h.update((words.len() as u64).to_le_bytes());
    h.update(bytemuck::cast_slice::<u64, u8>(words));
    h.finalize().into()
}

/// A SHA-256 state over `domain ‖ kind ‖ tag ‖ counter ‖ component`, the
/// common start of the digests of the verified protocols.
pub(crate) fn digest_header(
    domain: &[u8],
    kind: Kind,
    tag: &[u8],
    counter: u64,
    component: PartyId,
) -> Sha256 {
    let mut h = Sha256::new();
    h.update(domain);
    h.update([kind.byte()]);
    h.update(tag);
    h.update(counter.to_le_bytes());
    h.update([component as u8]);
    h
}

fn status_name(s: u8) -> String {
    match s {
        STATUS_OK => "ok".into(),
        STATUS_FAIL_OPEN => "its open check failed".into(),
        STATUS_FAIL_CONSISTENCY => "its consistency check failed".into(),
        STATUS_FAIL_AND_PROOF => "its check of an AND proof failed".into(),
        other => format!("malformed status byte {other:#04x}"),
    }
}

impl Party {
    /// Open arithmetic shares to all three parties, with a check against one
    /// malicious party (see [`crate::verified`]). Returns the values only
    /// when all checks passed here and both peers reported success;
    /// otherwise [`MpcError::Check`]. Two rounds, `8n + 34` bytes sent.
    ///
    /// In malicious mode the pending AND gates and products are checked
    /// first ([`Party::verify_all`]).
    pub fn reveal_a_verified(&mut self, x: &AShare) -> Result<Verified<Vec<u64>>> {
        self.verify_all()?;
        let third = self.open_third_verified(&x.a, &x.b, Kind::Arith)?;
        Ok(Verified::new(
            x.a.iter()
                .zip(&x.b)
                .zip(&third)
                .map(|((a, b), c)| a.wrapping_add(*b).wrapping_add(*c))
                .collect(),
        ))
    }

    /// Open boolean shares to all three parties, with a check against one
    /// malicious party; as [`Party::reveal_a_verified`].
    pub fn reveal_b_verified(&mut self, x: &BShare) -> Result<Verified<Vec<u64>>> {
        self.verify_all()?;
        let third = self.open_third_verified(&x.a, &x.b, Kind::Bool)?;
        Ok(Verified::new(
            x.a.iter()
                .zip(&x.b)
                .zip(&third)
                .map(|((a, b), c)| a ^ b ^ c)
                .collect(),
        ))
    }

    /// The open round and the abort round; returns `x_{i+2}` only when every
    /// check passed.
    pub(crate) fn open_third_verified(
        &mut self,
        a: &[u64],
        b: &[u64],
        kind: Kind,
    ) -> Result<Vec<u64>> {
        check_len(a.len(), b.len())?;
        let (me, nx, pv) = (self.id(), next(self.id()), prev(self.id()));
        let n = b.len();
        let counter = self.fresh_nonce();
        let tag = self.keys().all.words(counter, DIGEST_LEN / 8);
        let tag = bytemuck::cast_slice::<u64, u8>(&tag);
        let mine = digest(kind, tag, counter, me, a);

        let mut third = vec![0u64; n];
        let mut claimed = [0u8; DIGEST_LEN];
        self.round_bytes(
            &[(pv, bytemuck::cast_slice(b)), (nx, &mine[..])],
            &mut [
                (nx, bytemuck::cast_slice_mut(&mut third)),
                (pv, &mut claimed[..]),
            ],
        )?;
        self.finish_open(kind, tag, counter, &third, &claimed)?;
        Ok(third)
    }

    /// The receiver's side of a verified open: compare the component
    /// received from the next party with the digest received from the
    /// previous one, then the abort round.
    fn finish_open(
        &mut self,
        kind: Kind,
        tag: &[u8],
        counter: u64,
        third: &[u64],
        claimed: &[u8; DIGEST_LEN],
    ) -> Result<()> {
        let (me, nx, pv) = (self.id(), next(self.id()), prev(self.id()));
        let n = third.len();
        // Digests are not secret; the comparison need not be constant-time.
        let ok = digest(kind, tag, counter, pv, third) == *claimed;
        let failure = (!ok).then(|| {
            format!(
                "party {me}: the component x_{pv} ({n} words) received from party {nx} \
                 does not match the digest of it received from party {pv}; one of \
                 parties {nx} and {pv} sent an inconsistent message"
            )
        });
        self.abort_round("open", STATUS_FAIL_OPEN, failure)
    }

    /// The verified open to all (`to = None`) or to one party: the receiver
    /// gets the missing component from one neighbour and its digest from the
    /// other, then all three run the abort round. Returns the missing
    /// component at the receivers. Two rounds.
    pub(crate) fn open_third_checked(
        &mut self,
        a: &[u64],
        b: &[u64],
        to: Option<PartyId>,
        kind: Kind,
    ) -> Result<Option<Vec<u64>>> {
        let t = match to {
            None => return self.open_third_verified(a, b, kind).map(Some),
            Some(t) if t > 2 => {
                return Err(MpcError::Usage(format!("reveal target {t} is not a party")))
            }
            Some(t) => t,
        };
        check_len(a.len(), b.len())?;
        let me = self.id();
        let n = b.len();
        let counter = self.fresh_nonce();
        let tag = self.keys().all.words(counter, DIGEST_LEN / 8);
        let tag = bytemuck::cast_slice::<u64, u8>(&tag);
        if me == t {
            let (nx, pv) = (next(me), prev(me));
            let mut third = vec![0u64; n];
            let mut claimed = [0u8; DIGEST_LEN];
            self.round_bytes(
                &[],
                &mut [
                    (nx, bytemuck::cast_slice_mut(&mut third)),
                    (pv, &mut claimed[..]),
                ],
            )?;
            self.finish_open(kind, tag, counter, &third, &claimed)?;
            Ok(Some(third))
        } else if me == next(t) {
            self.round_bytes(&[(t, bytemuck::cast_slice(b))], &mut [])?;
            self.abort_round("open", STATUS_FAIL_OPEN, None)?;
            Ok(None)
        } else {
            let mine = digest(kind, tag, counter, me, a);
            self.round_bytes(&[(t, &mine[..])], &mut [])?;
            self.abort_round("open", STATUS_FAIL_OPEN, None)?;
            Ok(None)
        }
    }

    /// The abort round shared by the verified protocols: send one status
    /// byte to each peer ([`STATUS_OK`], or `fail_status` when `failure`
    /// holds this party's own failed check), then fail unless the own check
    /// passed and both peers sent [`STATUS_OK`]. An own failure is reported
    /// as check `check` with `failure` as the detail (plus the peers'
    /// statuses); a peer's failure report or malformed status as check
    /// `"abort-signal"`, naming that peer. One round, 2 bytes sent.
    pub(crate) fn abort_round(
        &mut self,
        check: &str,
        fail_status: u8,
        failure: Option<String>,
    ) -> Result<()> {
        let (me, nx, pv) = (self.id(), next(self.id()), prev(self.id()));
        let status = if failure.is_none() {
            STATUS_OK
        } else {
            fail_status
        };
        let mut from_next = [0u8; 1];
        let mut from_prev = [0u8; 1];
        self.round_bytes(
            &[(nx, &[status][..]), (pv, &[status][..])],
            &mut [(nx, &mut from_next[..]), (pv, &mut from_prev[..])],
        )?;

        if let Some(detail) = failure {
            return Err(MpcError::Check {
                check: check.into(),
                detail: format!(
                    "{detail} (peer status: party {nx}: {}, party {pv}: {})",
                    status_name(from_next[0]),
                    status_name(from_prev[0])
                ),
            });
        }
        let bad: Vec<String> = [(nx, from_next[0]), (pv, from_prev[0])]
            .iter()
            .filter(|(_, s)| *s != STATUS_OK)
            .map(|(p, s)| format!("party {p}: {}", status_name(*s)))
            .collect();
        if !bad.is_empty() {
            return Err(MpcError::Check {
                check: "abort-signal".into(),
                detail: format!(
                    "party {me}: own {check} check passed, but a peer signalled abort ({})",
                    bad.join("; ")
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_binds_every_field() {
        let tag = [7u8; 32];
        let base = digest(Kind::Arith, &tag, 256, 1, &[1, 2, 3]);
        assert_eq!(base, digest(Kind::Arith, &tag, 256, 1, &[1, 2, 3]));
        assert_ne!(base, digest(Kind::Bool, &tag, 256, 1, &[1, 2, 3]));
        assert_ne!(base, digest(Kind::Arith, &[8u8; 32], 256, 1, &[1, 2, 3]));
        assert_ne!(base, digest(Kind::Arith, &tag, 512, 1, &[1, 2, 3]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 2, &[1, 2, 3]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 1, &[1, 2, 4]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 1, &[1, 2]));
    }

    #[test]
    fn status_bytes_are_far_apart() {
        // A single flipped bit never turns one status into another.
        let all = [
            STATUS_OK,
            STATUS_FAIL_OPEN,
            STATUS_FAIL_CONSISTENCY,
            STATUS_FAIL_AND_PROOF,
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert!((x ^ y).count_ones() > 1, "{x:#04x} vs {y:#04x}");
            }
        }
    }
}
