//! Pseudorandom functions behind correlated randomness.
//!
//! Each party holds two of three AES-128 keys (`k_i` shared with the previous
//! party, `k_{i+1}` shared with the next one) plus one key known to all three.
//! Keys are drawn from the operating system's CSPRNG (or, in tests, from a
//! seeded ChaCha20 CSPRNG) when a session starts, travel once over the
//! authenticated transport, are never printed, and are wiped on drop.
//!
//! Output words for a given key are `AES_k(nonce · 2^64 + j)` for
//! j = 0, 1, ..., split into two little-endian u64 words per block. Every
//! protocol step draws with a fresh nonce, so the two holders of a key stay in
//! step even when only some parties draw in a given operation.

use aes::cipher::{KeyIvInit, StreamCipher};
use zeroize::{Zeroize, Zeroizing};

type Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Length of a PRF key in bytes.
pub const KEY_LEN: usize = 16;

/// One PRF key. Deliberately not `Debug`, `Clone` or serialisable.
pub struct Prf {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl Prf {
    /// Wrap key bytes; the caller's copy should be zeroized by the caller.
    pub fn new(key: [u8; KEY_LEN]) -> Prf {
        Prf {
            key: Zeroizing::new(key),
        }
    }

    /// Fill `out` with the PRF stream for `nonce`.
    pub fn fill(&self, nonce: u64, out: &mut [u64]) {
        out.fill(0);
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&nonce.to_be_bytes());
        let mut c = Ctr::new((&*self.key).into(), (&iv).into());
        c.apply_keystream(bytemuck::cast_slice_mut(out));
        iv.zeroize();
    }

    /// A fresh vector of `n` PRF words for `nonce`.
    pub fn words(&self, nonce: u64, n: usize) -> Vec<u64> {
        let mut v = vec![0u64; n];
        self.fill(nonce, &mut v);
        v
    }
}

/// The keys one party holds.
pub struct PartyKeys {
    /// `k_i`: shared with the previous party.
    pub prev: Prf,
    /// `k_{i+1}`: shared with the next party.
    pub next: Prf,
    /// Known to all three parties (common coins, e.g. public permutations).
    pub all: Prf,
    /// Known to this party only (its contributions to coin tosses), drawn
    /// from the session's CSPRNG like the others.
    pub own: Prf,
}

/// A uniformly random permutation of `0..n` drawn from a PRF stream
/// (Fisher–Yates with Lemire's unbiased bounded sampling).
pub fn permutation(prf: &Prf, nonce: u64, n: usize) -> Vec<u32> {
    assert!(n <= u32::MAX as usize, "permutation too large");
    let mut perm: Vec<u32> = (0..n as u32).collect();
    if n < 2 {
        return perm;
    }
    // Draw in blocks; rejections are rare, so draw more when needed.
    let mut pool = prf.words(nonce, n + 64);
    let mut refills = 0u64;
    let mut pos = 0usize;
    for i in (1..n).rev() {
        let bound = (i + 1) as u64;
        let j = loop {
            if pos == pool.len() {
                refills += 1;
                pool = prf.words(nonce ^ (refills << 48) ^ (1 << 47), 1024);
                pos = 0;
            }
            let r = pool[pos];
            pos += 1;
            let m = (r as u128) * (bound as u128);
            let lo = m as u64;
            if lo >= bound.wrapping_neg() % bound {
                break (m >> 64) as usize;
            }
        };
        perm.swap(i, j);
    }
    pool.zeroize();
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_nonce_and_repeat_by_key() {
        let a = Prf::new([7; 16]);
        let b = Prf::new([7; 16]);
        assert_eq!(a.words(1, 33), b.words(1, 33));
        assert_ne!(a.words(1, 8), a.words(2, 8));
        assert_ne!(a.words(1, 8), Prf::new([8; 16]).words(1, 8));
        // A prefix of a longer stream equals the shorter stream.
        assert_eq!(a.words(5, 100)[..31], a.words(5, 31)[..]);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let p = Prf::new([1; 16]);
        for n in [0usize, 1, 2, 3, 10, 1000] {
            let mut v = permutation(&p, 9, n);
            v.sort_unstable();
            assert_eq!(v, (0..n as u32).collect::<Vec<_>>());
        }
        assert_ne!(permutation(&p, 1, 50), permutation(&p, 2, 50));
    }

    #[test]
    fn permutation_is_roughly_uniform() {
        // Position of element 0 over many permutations of 4 elements.
        let p = Prf::new([3; 16]);
        let mut counts = [0u32; 4];
        for nonce in 0..4000u64 {
            let perm = permutation(&p, nonce, 4);
            let at = perm.iter().position(|&x| x == 0).unwrap();
            counts[at] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }
}
