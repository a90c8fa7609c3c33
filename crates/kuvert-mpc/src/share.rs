//! Replicated secret shares of whole columns.
//!
//! A value `x` is split as `x = x_0 + x_1 + x_2` (arithmetic, mod 2^64) or
//! `x = x_0 ^ x_1 ^ x_2` (boolean); party `i` holds the pair
//! `(x_i, x_{i+1})`, stored as the components `a` and `b`. Any one party's
//! pair is uniformly random and independent of `x`; any two parties together
//! hold all three components.
//!
//! Everything in this module is local (no communication). Share vectors are
//! wiped when dropped.

use std::ops::Range;

use zeroize::Zeroize;

use crate::transport::PartyId;

macro_rules! share_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Default)]
        pub struct $name {
            /// This party's component `x_i`.
            pub(crate) a: Vec<u64>,
            /// This party's component `x_{i+1}`.
            pub(crate) b: Vec<u64>,
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.a.zeroize();
                self.b.zeroize();
            }
        }

        impl std::fmt::Debug for $name {
            // Never print share values.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}[{} words]", stringify!($name), self.a.len())
            }
        }

        impl $name {
            pub(crate) fn from_parts(a: Vec<u64>, b: Vec<u64>) -> Self {
                debug_assert_eq!(a.len(), b.len());
                $name { a, b }
            }

            /// This party's shares from its two components `(x_i, x_{i+1})`,
            /// e.g. as a contributor sent them to a node. Lengths must agree.
            pub fn from_components(a: Vec<u64>, b: Vec<u64>) -> Option<Self> {
                (a.len() == b.len()).then_some($name { a, b })
            }

            /// This party's two components `(x_i, x_{i+1})`: shares, not
            /// cleartext (e.g. to send to a recipient, who combines them
            /// with another party's).
            pub fn components(&self) -> (&[u64], &[u64]) {
                (&self.a, &self.b)
            }

            /// An all-zero sharing of `n` zeros (valid for every party).
            pub fn zeros(n: usize) -> Self {
                $name {
                    a: vec![0; n],
                    b: vec![0; n],
                }
            }

            /// Number of words (elements, or 64-bit lanes for packed bits).
            pub fn len(&self) -> usize {
                self.a.len()
            }

            /// True when there are no words.
            pub fn is_empty(&self) -> bool {
                self.a.is_empty()
            }

            /// Copy of the words in `r`.
            pub fn slice(&self, r: Range<usize>) -> Self {
                $name {
                    a: self.a[r.clone()].to_vec(),
                    b: self.b[r].to_vec(),
                }
            }

            /// Concatenate shares.
            pub fn concat(parts: &[&Self]) -> Self {
                let n = parts.iter().map(|p| p.len()).sum();
                let mut a = Vec::with_capacity(n);
                let mut b = Vec::with_capacity(n);
                for p in parts {
                    a.extend_from_slice(&p.a);
                    b.extend_from_slice(&p.b);
                }
                $name { a, b }
            }

            /// Split into consecutive pieces of the given lengths.
            pub fn split(&self, lens: &[usize]) -> Vec<Self> {
                let mut at = 0;
                lens.iter()
                    .map(|&l| {
                        let s = self.slice(at..at + l);
                        at += l;
                        s
                    })
                    .collect()
            }

            /// Reorder words: `out[j] = self[perm[j]]`.
            pub fn permute(&self, perm: &[u32]) -> Self {
                $name {
                    a: perm.iter().map(|&p| self.a[p as usize]).collect(),
                    b: perm.iter().map(|&p| self.b[p as usize]).collect(),
                }
            }

            /// Add `pad` zero words at the end (a valid sharing of zeros).
            pub fn padded(&self, pad: usize) -> Self {
                let mut s = self.clone();
                s.a.resize(s.a.len() + pad, 0);
                s.b.resize(s.b.len() + pad, 0);
                s
            }
        }
    };
}

share_type!(
    AShare,
    "Arithmetic shares over Z_2^64 of a column, one word per element."
);
share_type!(
    BShare,
    "Boolean (XOR) shares of a column of 64-bit words. A word is either one 64-bit value, or 64 packed one-bit values (see [`BitShare`])."
);

impl AShare {
    /// `self + other`.
    pub fn add(&self, o: &AShare) -> AShare {
        zip(self, o, u64::wrapping_add)
    }
    /// `self - other`.
    pub fn sub(&self, o: &AShare) -> AShare {
        zip(self, o, u64::wrapping_sub)
    }
    /// `-self`.
    pub fn neg(&self) -> AShare {
        AShare {
            a: self.a.iter().map(|x| x.wrapping_neg()).collect(),
            b: self.b.iter().map(|x| x.wrapping_neg()).collect(),
        }
    }
    /// `c * self` for a public constant `c`.
    pub fn mul_public(&self, c: u64) -> AShare {
        AShare {
            a: self.a.iter().map(|x| x.wrapping_mul(c)).collect(),
            b: self.b.iter().map(|x| x.wrapping_mul(c)).collect(),
        }
    }
    /// `self[j] * c[j]` for a public column `c`.
    pub fn mul_public_vec(&self, c: &[u64]) -> AShare {
        assert_eq!(c.len(), self.len(), "public column length");
        AShare {
            a: self
                .a
                .iter()
                .zip(c)
                .map(|(x, c)| x.wrapping_mul(*c))
                .collect(),
            b: self
                .b
                .iter()
                .zip(c)
                .map(|(x, c)| x.wrapping_mul(*c))
                .collect(),
        }
    }
    /// `self + c` for a public constant: only component `x_0` changes.
    pub fn add_public(&self, me: PartyId, c: u64) -> AShare {
        let mut s = self.clone();
        match me {
            0 => s.a.iter_mut().for_each(|x| *x = x.wrapping_add(c)),
            2 => s.b.iter_mut().for_each(|x| *x = x.wrapping_add(c)),
            _ => {}
        }
        s
    }
    /// A sharing of the public column `c` (no communication).
    pub fn public(me: PartyId, c: &[u64]) -> AShare {
        let z = vec![0; c.len()];
        match me {
            0 => AShare::from_parts(c.to_vec(), z),
            2 => AShare::from_parts(z, c.to_vec()),
            _ => AShare::from_parts(z.clone(), z),
        }
    }
    /// Sum of all elements (a one-element sharing).
    pub fn sum(&self) -> AShare {
        let fold = |v: &[u64]| v.iter().fold(0u64, |s, x| s.wrapping_add(*x));
        AShare::from_parts(vec![fold(&self.a)], vec![fold(&self.b)])
    }
}

impl BShare {
    /// `self ^ other`.
    pub fn xor(&self, o: &BShare) -> BShare {
        zipb(self, o, |x, y| x ^ y)
    }
    /// `self ^ c` for a public constant: only component `x_0` changes.
    pub fn xor_public(&self, me: PartyId, c: u64) -> BShare {
        let mut s = self.clone();
        match me {
            0 => s.a.iter_mut().for_each(|x| *x ^= c),
            2 => s.b.iter_mut().for_each(|x| *x ^= c),
            _ => {}
        }
        s
    }
    /// Bitwise NOT.
    pub fn not(&self, me: PartyId) -> BShare {
        self.xor_public(me, !0)
    }
    /// `self & c` for a public mask.
    pub fn and_public(&self, c: u64) -> BShare {
        BShare {
            a: self.a.iter().map(|x| x & c).collect(),
            b: self.b.iter().map(|x| x & c).collect(),
        }
    }
    /// Logical shift right of every word (a local, linear operation).
    pub fn shr(&self, k: u32) -> BShare {
        BShare {
            a: self.a.iter().map(|x| x >> k).collect(),
            b: self.b.iter().map(|x| x >> k).collect(),
        }
    }
    /// Shift left of every word.
    pub fn shl(&self, k: u32) -> BShare {
        BShare {
            a: self.a.iter().map(|x| x << k).collect(),
            b: self.b.iter().map(|x| x << k).collect(),
        }
    }
    /// A sharing of the public column `c` (no communication).
    pub fn public(me: PartyId, c: &[u64]) -> BShare {
        let z = vec![0; c.len()];
        match me {
            0 => BShare::from_parts(c.to_vec(), z),
            2 => BShare::from_parts(z, c.to_vec()),
            _ => BShare::from_parts(z.clone(), z),
        }
    }
}

fn zip(x: &AShare, y: &AShare, f: impl Fn(u64, u64) -> u64) -> AShare {
    assert_eq!(x.len(), y.len(), "share lengths differ");
    AShare {
        a: x.a.iter().zip(&y.a).map(|(p, q)| f(*p, *q)).collect(),
        b: x.b.iter().zip(&y.b).map(|(p, q)| f(*p, *q)).collect(),
    }
}

fn zipb(x: &BShare, y: &BShare, f: impl Fn(u64, u64) -> u64) -> BShare {
    assert_eq!(x.len(), y.len(), "share lengths differ");
    BShare {
        a: x.a.iter().zip(&y.a).map(|(p, q)| f(*p, *q)).collect(),
        b: x.b.iter().zip(&y.b).map(|(p, q)| f(*p, *q)).collect(),
    }
}

/// A column of `n` secret bits, packed 64 to a word (bit `j % 64` of word
/// `j / 64` is element `j`). Bits past `n` in the last word are padding and
/// carry no meaning.
#[derive(Clone, Debug, Default)]
pub struct BitShare {
    pub(crate) w: BShare,
    pub(crate) n: usize,
}

impl BitShare {
    pub(crate) fn new(w: BShare, n: usize) -> BitShare {
        debug_assert_eq!(w.len(), n.div_ceil(64));
        BitShare { w, n }
    }
    /// Number of bits.
    pub fn len(&self) -> usize {
        self.n
    }
    /// True when there are no bits.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// The packed words.
    pub fn words(&self) -> &BShare {
        &self.w
    }
    /// `self ^ other`.
    pub fn xor(&self, o: &BitShare) -> BitShare {
        assert_eq!(self.n, o.n, "bit column lengths differ");
        BitShare::new(self.w.xor(&o.w), self.n)
    }
    /// Logical NOT.
    pub fn not(&self, me: PartyId) -> BitShare {
        BitShare::new(self.w.not(me), self.n)
    }
    /// Split into consecutive pieces of the given lengths; every length but
    /// the last must be a multiple of 64 (pieces start at word boundaries).
    pub fn split_words(&self, lens: &[usize]) -> Vec<BitShare> {
        assert!(
            lens.iter().rev().skip(1).all(|l| l % 64 == 0),
            "pieces must start at word boundaries"
        );
        assert_eq!(lens.iter().sum::<usize>(), self.n, "lengths must add up");
        let words: Vec<usize> = lens.iter().map(|l| l.div_ceil(64)).collect();
        self.w
            .split(&words)
            .into_iter()
            .zip(lens)
            .map(|(w, &n)| BitShare::new(w, n))
            .collect()
    }
    /// Keep the first `n` bits, where `n` needs the same number of words
    /// (drops padding added to reach a word boundary).
    pub fn truncated(self, n: usize) -> BitShare {
        assert_eq!(
            n.div_ceil(64),
            self.w.len(),
            "truncation within the last word only"
        );
        BitShare::new(self.w, n)
    }
    /// A sharing of public bits.
    pub fn public(me: PartyId, bits: &[bool]) -> BitShare {
        BitShare::new(BShare::public(me, &pack_bits(bits)), bits.len())
    }
}

/// `v.extend_from_slice(more)`, but when `v` must grow, its old buffer is
/// wiped before it is freed (a plain `Vec` growth leaves a copy of every
/// share in freed memory). For the logs of pending checks, which grow
/// while shares are appended.
pub(crate) fn extend_wiping<T: Copy + Zeroize>(v: &mut Vec<T>, more: &[T]) {
    if v.capacity() - v.len() < more.len() {
        let mut grown = Vec::with_capacity((v.len() + more.len()).max(2 * v.capacity()));
        grown.extend_from_slice(v);
        v.zeroize();
        *v = grown;
    }
    v.extend_from_slice(more);
}

/// Pack booleans 64 to a word.
pub fn pack_bits(bits: &[bool]) -> Vec<u64> {
    let mut w = vec![0u64; bits.len().div_ceil(64)];
    for (j, &b) in bits.iter().enumerate() {
        w[j / 64] |= (b as u64) << (j % 64);
    }
    w
}

/// Unpack `n` bits.
pub fn unpack_bits(w: &[u64], n: usize) -> Vec<bool> {
    (0..n).map(|j| (w[j / 64] >> (j % 64)) & 1 == 1).collect()
}

/// Access to share components for tests and simulations in other crates.
/// Components are shares, not cleartext; still, production code has no use
/// for this module.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// The components `(x_i, x_{i+1})` of an arithmetic share.
    pub fn parts_a(s: &AShare) -> (Vec<u64>, Vec<u64>) {
        (s.a.clone(), s.b.clone())
    }
    /// The components `(x_i, x_{i+1})` of a boolean share.
    pub fn parts_b(s: &BShare) -> (Vec<u64>, Vec<u64>) {
        (s.a.clone(), s.b.clone())
    }
    /// Reinterpret packed words as a bit column of `n` bits.
    pub fn bits_from_words(w: BShare, n: usize) -> BitShare {
        BitShare::new(w, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_wiping_appends_in_order_across_growths() {
        let mut v: Vec<u64> = Vec::new();
        let mut want = Vec::new();
        for k in 0..40u64 {
            let more: Vec<u64> = (0..k % 7).map(|j| k * 100 + j).collect();
            extend_wiping(&mut v, &more);
            want.extend_from_slice(&more);
            assert_eq!(v, want);
        }
        // Growth at least doubles, so appends stay amortised O(1).
        let cap = v.capacity();
        let more = vec![1; cap - v.len() + 1];
        extend_wiping(&mut v, &more);
        assert!(v.capacity() >= 2 * cap);
    }
}
