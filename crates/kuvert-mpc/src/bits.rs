//! Bit-slicing: turn a column of 64-bit words into 64 "planes" (plane `k`
//! holds bit `k` of every element, 64 elements per word) and back.
//!
//! Transposition is a bit permutation, hence linear over XOR: each party
//! transposes its two share components locally, with no communication.
//! Circuits on planes (adders, comparison trees) then spend one AND gate
//! per useful bit instead of one per 64-bit lane.

use crate::share::BShare;

/// In-place transpose of a 64×64 bit matrix: afterwards bit `r` of word `c`
/// equals bit `c` of word `r` before.
pub fn transpose64(m: &mut [u64; 64]) {
    let mut j = 32usize;
    let mut mask: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0usize;
        while k < 64 {
            let t = ((m[k] >> j) ^ m[k + j]) & mask;
            m[k + j] ^= t;
            m[k] ^= t << j;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

/// Planes `0..nbits` of a column of words: result `[k][q]` has bit `r` equal
/// to bit `k` of `words[64q + r]` (missing elements read as zero).
pub fn to_planes_raw(words: &[u64], nbits: usize) -> Vec<Vec<u64>> {
    let w = words.len().div_ceil(64);
    let mut planes = vec![vec![0u64; w]; nbits];
    let mut block = [0u64; 64];
    for q in 0..w {
        let chunk = &words[q * 64..words.len().min(q * 64 + 64)];
        block[..chunk.len()].copy_from_slice(chunk);
        block[chunk.len()..].fill(0);
        transpose64(&mut block);
        for (k, plane) in planes.iter_mut().enumerate() {
            plane[q] = block[k];
        }
    }
    planes
}

/// Inverse of [`to_planes_raw`]: `n` words from up to 64 planes (missing
/// planes read as zero).
pub fn from_planes_raw(planes: &[&[u64]], n: usize) -> Vec<u64> {
    let w = n.div_ceil(64);
    let mut out = vec![0u64; n];
    let mut block = [0u64; 64];
    for q in 0..w {
        block.fill(0);
        for (k, plane) in planes.iter().enumerate() {
            block[k] = plane[q];
        }
        transpose64(&mut block);
        let end = n.min(q * 64 + 64);
        out[q * 64..end].copy_from_slice(&block[..end - q * 64]);
    }
    out
}

/// Bit planes `0..nbits` of boolean shares of 64-bit words.
pub fn to_planes(x: &BShare, nbits: usize) -> Vec<BShare> {
    let a = to_planes_raw(&x.a, nbits);
    let b = to_planes_raw(&x.b, nbits);
    a.into_iter()
        .zip(b)
        .map(|(a, b)| BShare::from_parts(a, b))
        .collect()
}

/// Boolean shares of `n` words from bit planes.
pub fn from_planes(planes: &[BShare], n: usize) -> BShare {
    let a: Vec<&[u64]> = planes.iter().map(|p| &p.a[..]).collect();
    let b: Vec<&[u64]> = planes.iter().map(|p| &p.b[..]).collect();
    BShare::from_parts(from_planes_raw(&a, n), from_planes_raw(&b, n))
}

/// Expand packed bits into one word (0 or 1) per element.
pub fn bits_to_words(packed: &[u64], n: usize) -> Vec<u64> {
    (0..n).map(|j| (packed[j / 64] >> (j % 64)) & 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(words: &[u64]) -> Vec<Vec<u64>> {
        let w = words.len().div_ceil(64);
        let mut planes = vec![vec![0u64; w]; 64];
        for (e, x) in words.iter().enumerate() {
            for (k, plane) in planes.iter_mut().enumerate() {
                plane[e / 64] |= ((x >> k) & 1) << (e % 64);
            }
        }
        planes
    }

    proptest! {
        #[test]
        fn planes_match_naive_and_round_trip(words in prop::collection::vec(any::<u64>(), 0..300)) {
            let p = to_planes_raw(&words, 64);
            prop_assert_eq!(&p, &naive(&words));
            let refs: Vec<&[u64]> = p.iter().map(|v| &v[..]).collect();
            prop_assert_eq!(from_planes_raw(&refs, words.len()), words);
        }
    }
}
