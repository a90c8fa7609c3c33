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

/// Expand packed bits into one word (0 or 1) per element.
pub fn bits_to_words(packed: &[u64], n: usize) -> Vec<u64> {
    (0..n).map(|j| (packed[j / 64] >> (j % 64)) & 1).collect()
}

/// Bit-sliced boolean shares in block-major layout: for each block `q` of 64
/// elements, `k` consecutive plane words (word `q·k + j` holds bit `lo + j`
/// of the block's 64 elements). Keeping a block's planes together makes
/// transposition a streaming pass and the gathers of a circuit layer
/// cache-friendly.
#[derive(Clone, Debug)]
pub(crate) struct Sliced {
    pub(crate) s: BShare,
    pub(crate) k: usize,
}

impl Sliced {
    /// Number of 64-element blocks.
    pub(crate) fn blocks(&self) -> usize {
        self.s.len().checked_div(self.k).unwrap_or(0)
    }

    /// Planes `bits` of the words of `x` (missing elements read as zero).
    pub(crate) fn from_words(x: &BShare, bits: std::ops::Range<usize>) -> Sliced {
        Sliced::from_words_sparse(x, bits, [false, false])
    }

    /// As [`Sliced::from_words`], skipping the transposition of components
    /// the caller knows to be all zero (`zero = [a is zero, b is zero]`),
    /// as in trivial sharings.
    pub(crate) fn from_words_sparse(
        x: &BShare,
        bits: std::ops::Range<usize>,
        zero: [bool; 2],
    ) -> Sliced {
        let k = bits.len();
        let w = x.len().div_ceil(64);
        let conv = |words: &[u64]| -> Vec<u64> {
            let w = words.len().div_ceil(64);
            let mut out = vec![0u64; w * k];
            let mut block = [0u64; 64];
            for q in 0..w {
                let chunk = &words[q * 64..words.len().min(q * 64 + 64)];
                block[..chunk.len()].copy_from_slice(chunk);
                block[chunk.len()..].fill(0);
                transpose64(&mut block);
                out[q * k..(q + 1) * k].copy_from_slice(&block[bits.clone()]);
            }
            out
        };
        let a = if zero[0] { vec![0; w * k] } else { conv(&x.a) };
        let b = if zero[1] { vec![0; w * k] } else { conv(&x.b) };
        Sliced {
            s: BShare::from_parts(a, b),
            k,
        }
    }

    /// Words of `n` elements whose bits `0..k` are these planes (higher bits
    /// zero).
    pub(crate) fn to_words(&self, n: usize) -> BShare {
        let k = self.k;
        let conv = |planes: &[u64]| -> Vec<u64> {
            let mut out = vec![0u64; n];
            let mut block = [0u64; 64];
            for q in 0..n.div_ceil(64) {
                block[..k].copy_from_slice(&planes[q * k..(q + 1) * k]);
                block[k..].fill(0);
                transpose64(&mut block);
                let end = n.min(q * 64 + 64);
                out[q * 64..end].copy_from_slice(&block[..end - q * 64]);
            }
            out
        };
        BShare::from_parts(conv(&self.s.a), conv(&self.s.b))
    }

    /// One plane as packed bits (`blocks()` words).
    pub(crate) fn plane(&self, j: usize) -> BShare {
        let k = self.k;
        let w = self.blocks();
        BShare::from_parts(
            (0..w).map(|q| self.s.a[q * k + j]).collect(),
            (0..w).map(|q| self.s.b[q * k + j]).collect(),
        )
    }
}

/// For every block, the listed planes of each source in turn: the operand
/// layout of one circuit layer (block-major, `sum of idx lengths` words per
/// block). All sources must have the same number of blocks.
pub(crate) fn gather(srcs: &[(&Sliced, &[usize])]) -> Sliced {
    let k: usize = srcs.iter().map(|(_, idx)| idx.len()).sum();
    let w = srcs.first().map(|(s, _)| s.blocks()).unwrap_or(0);
    let mut a = Vec::with_capacity(w * k);
    let mut b = Vec::with_capacity(w * k);
    for q in 0..w {
        for (src, idx) in srcs {
            let base = q * src.k;
            a.extend(idx.iter().map(|&j| src.s.a[base + j]));
            b.extend(idx.iter().map(|&j| src.s.b[base + j]));
        }
    }
    Sliced {
        s: BShare::from_parts(a, b),
        k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bit `k` of element `e`, straight from the definition.
    fn bit(words: &[u64], e: usize, k: usize) -> u64 {
        words.get(e).map_or(0, |x| (x >> k) & 1)
    }

    proptest! {
        #[test]
        fn slicing_matches_definition_and_round_trips(
            words in prop::collection::vec(any::<u64>(), 0..300),
            lo in 0usize..64,
        ) {
            let x = BShare::from_parts(words.clone(), vec![0; words.len()]);
            let s = Sliced::from_words(&x, lo..64);
            let k = 64 - lo;
            for q in 0..s.blocks() {
                for j in 0..k {
                    let mut want = 0u64;
                    for r in 0..64 {
                        want |= bit(&words, 64 * q + r, lo + j) << r;
                    }
                    prop_assert_eq!(s.s.a[q * k + j], want);
                    prop_assert_eq!(s.plane(j).a[q], want);
                }
            }
            let full = Sliced::from_words(&x, 0..64);
            prop_assert_eq!(&full.to_words(words.len()).a, &words);
        }
    }
}
