//! Consistency check of replicated sharings: both copies of every component
//! agree, checked without revealing anything.
//!
//! # Protocol
//! Party `i` holds `(x_i, x_{i+1})` as `(a, b)`, so component `x_{i+1}` is
//! held twice: by party `i` as `b` and by party `i+1` as `a`. A contributor
//! (or a node) that hands out inconsistent shares makes the two copies
//! differ, and the sharing then has no well-defined value. Per call, over
//! all columns of the call at once, with `c` a fresh per-session operation
//! counter:
//!
//! 1. **Digest round.** Party `i` sends to `prev(i)` the 32-byte digest
//!    `D_i(a) = SHA-256(domain ‖ kind ‖ tag_c ‖ c ‖ i ‖ m ‖ (len_k ‖ a_k)_k)`
//!    of its `a` components of the `m` columns (`tag_c`: 32 bytes of PRF
//!    output of the common key for counter `c`, as in [`crate::verified`];
//!    its own `domain`; `kind` arithmetic or boolean). It compares the
//!    digest received from `next(i)` with `D_{i+1}(b)` of its own `b`
//!    components.
//! 2. **Abort round.** The status round of the verified open (one byte to
//!    each peer, [`crate::verified::STATUS_FAIL_CONSISTENCY`] on a
//!    mismatch); a party returns `Ok` only if its own comparison matched
//!    and both peers sent [`crate::verified::STATUS_OK`].
//!
//! Cost per party and call: 2 rounds, `32 + 2` bytes sent, independent of
//! the number of columns and their lengths (local SHA-256 of the party's
//! own columns).
//!
//! # What it guarantees (one corrupt party, honest majority)
//! - With all nodes honest, any difference between the two copies of any
//!   component (one contributor's inconsistent shares) makes the party that
//!   holds the copy as `b` fail, and the abort round stops the others.
//! - With one corrupt node `c`, the component `x_{c+2}` is held by the two
//!   honest nodes and its two copies are compared honestly, so they agree
//!   unless SHA-256 collides. The honest nodes' shares `(x_{c+1}, x_{c+2})`
//!   and `(x_{c+2}, x_c)` then define one value; what the corrupt node
//!   holds or claims for its own components does not matter to it.
//! - Digests leak nothing: party `i` hashes `x_i`, which the receiver
//!   `prev(i)` already holds, so the receiver can compute the digest itself
//!   and learns nothing new. The session tag and the counter make digests of
//!   the same shares differ between calls and sessions, so digests cannot be
//!   compared offline across sessions, and a digest replayed from an earlier
//!   call does not verify.
//! - It does *not* check that the shared value is in a range, is well
//!   formed, or is what the contributor meant; and the abort is selective,
//!   as in [`crate::verified`].

use sha2::Digest;

use crate::party::{Party, Result};
use crate::share::{AShare, BShare};
use crate::transport::{next, prev, PartyId};
use crate::verified::{digest_header, Kind, DIGEST_LEN, STATUS_FAIL_CONSISTENCY};

/// Domain separator of the digests of the consistency check.
const DOMAIN: &[u8] = b"kuvert-mpc/consistency/v1\0";

/// `SHA-256(domain ‖ kind ‖ tag ‖ counter ‖ component ‖ m ‖ (len ‖ words)*)`.
fn digest(
    kind: Kind,
    tag: &[u8],
    counter: u64,
    component: PartyId,
    cols: &[&[u64]],
) -> [u8; DIGEST_LEN] {
    let mut h = digest_header(DOMAIN, kind, tag, counter, component);
    h.update((cols.len() as u64).to_le_bytes());
    for col in cols {
        h.update((col.len() as u64).to_le_bytes());
        h.update(bytemuck::cast_slice::<u64, u8>(col));
    }
    h.finalize().into()
}

impl Party {
    /// Check that every component of the arithmetic sharings `xs` is held
    /// identically by the two parties that hold it (see
    /// [`crate::consistency`]). `Ok(())` only when this party's comparison
    /// matched and both peers reported success; otherwise
    /// [`crate::MpcError::Check`] with check `"consistency"` (this party
    /// found a mismatch) or `"abort-signal"` (a peer reported one, or sent a
    /// malformed status). Two rounds, 34 bytes sent, whatever `xs` holds.
    pub fn check_consistent_a(&mut self, xs: &[&AShare]) -> Result<()> {
        let a: Vec<&[u64]> = xs.iter().map(|x| &x.a[..]).collect();
        let b: Vec<&[u64]> = xs.iter().map(|x| &x.b[..]).collect();
        self.check_consistent(&a, &b, Kind::Arith)
    }

    /// As [`Party::check_consistent_a`], for boolean sharings.
    pub fn check_consistent_b(&mut self, xs: &[&BShare]) -> Result<()> {
        let a: Vec<&[u64]> = xs.iter().map(|x| &x.a[..]).collect();
        let b: Vec<&[u64]> = xs.iter().map(|x| &x.b[..]).collect();
        self.check_consistent(&a, &b, Kind::Bool)
    }

    fn check_consistent(&mut self, a: &[&[u64]], b: &[&[u64]], kind: Kind) -> Result<()> {
        let (me, nx, pv) = (self.id(), next(self.id()), prev(self.id()));
        let counter = self.fresh_nonce();
        let tag = self.keys().all.words(counter, DIGEST_LEN / 8);
        let tag = bytemuck::cast_slice::<u64, u8>(&tag);
        // `a` is component x_me; party prev(me) holds it as its `b`.
        let mine = digest(kind, tag, counter, me, a);
        // `b` is component x_nx; party nx holds it as its `a`.
        let expected = digest(kind, tag, counter, nx, b);

        let mut claimed = [0u8; DIGEST_LEN];
        self.round_bytes(&[(pv, &mine[..])], &mut [(nx, &mut claimed[..])])?;
        // Digests are not secret; the comparison need not be constant-time.
        let failure = (expected != claimed).then(|| {
            let words: usize = b.iter().map(|c| c.len()).sum();
            format!(
                "party {me}: its copy of component x_{nx} (its b; {} columns, {words} \
                 words) differs from party {nx}'s copy (its a), by the digest party \
                 {nx} sent; one of parties {me} and {nx} holds an inconsistent share \
                 (or party {nx} sent a wrong digest)",
                b.len()
            )
        });
        self.abort_round("consistency", STATUS_FAIL_CONSISTENCY, failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_binds_every_field() {
        let tag = [7u8; 32];
        let (x, y): (&[u64], &[u64]) = (&[1, 2, 3], &[4]);
        let base = digest(Kind::Arith, &tag, 256, 1, &[x, y]);
        assert_eq!(base, digest(Kind::Arith, &tag, 256, 1, &[x, y]));
        assert_ne!(base, digest(Kind::Bool, &tag, 256, 1, &[x, y]));
        assert_ne!(base, digest(Kind::Arith, &[8u8; 32], 256, 1, &[x, y]));
        assert_ne!(base, digest(Kind::Arith, &tag, 512, 1, &[x, y]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 2, &[x, y]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 1, &[&[1, 2, 3, 4]]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 1, &[&[1, 2], &[3, 4]]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 1, &[x, y, &[]]));
        assert_ne!(base, digest(Kind::Arith, &tag, 256, 1, &[x, &[5]]));
        // Not the verified open's digest of the same words.
        assert_ne!(
            digest(Kind::Arith, &tag, 256, 1, &[x]),
            crate::verified::digest(Kind::Arith, &tag, 256, 1, x)
        );
    }
}
