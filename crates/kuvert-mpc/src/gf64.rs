//! The field GF(2^64) = GF(2)[X] / (X^64 + X^4 + X^3 + X + 1), in which the
//! distributed proofs of [`crate::dzkp`] check AND gates.
//!
//! A bit embeds as the field's 0 or 1, XOR is field addition, and AND of
//! bits is field multiplication, so the AND relation of replicated sharing
//! holds in the field exactly and a cheating prover is caught with
//! probability at least `1 - d/2^64` per check of a degree-`d` polynomial
//! (Schwartz–Zippel).
//!
//! Multiplication is carry-less: with the CPU's `PCLMULQDQ` instruction on
//! x86-64 when it has one (checked once at run time), a portable shift-and-
//! add loop otherwise. Both give the same results (tested).

use std::ops::{Add, AddAssign, Mul, MulAssign};
#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

/// An element of GF(2^64); bit `i` is the coefficient of `X^i`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Gf64(pub u64);

// Vectors of field elements derived from shares are wiped like shares.
impl zeroize::DefaultIsZeroes for Gf64 {}

impl std::fmt::Debug for Gf64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gf64({:#018x})", self.0)
    }
}

impl Gf64 {
    pub const ZERO: Gf64 = Gf64(0);
    pub const ONE: Gf64 = Gf64(1);
    /// The generator `X`; multiplying by it is a shift.
    pub const X: Gf64 = Gf64(2);

    /// `self · X` (cheap: a shift and a conditional reduction).
    #[inline]
    pub fn mul_x(self) -> Gf64 {
        let carry = self.0 >> 63;
        Gf64((self.0 << 1) ^ (carry * 0x1b))
    }

    /// `self^e` by square-and-multiply.
    pub fn pow(self, mut e: u128) -> Gf64 {
        let mut base = self;
        let mut acc = Gf64::ONE;
        while e > 0 {
            if e & 1 == 1 {
                acc *= base;
            }
            base *= base;
            e >>= 1;
        }
        acc
    }

    /// The multiplicative inverse (`None` for zero): `self^(2^64 - 2)`.
    pub fn inv(self) -> Option<Gf64> {
        (self != Gf64::ZERO).then(|| self.pow((1u128 << 64) - 2))
    }
}

// Addition in characteristic 2 is XOR.
#[allow(clippy::suspicious_arithmetic_impl)]
impl Add for Gf64 {
    type Output = Gf64;
    #[inline]
    fn add(self, o: Gf64) -> Gf64 {
        Gf64(self.0 ^ o.0)
    }
}

#[allow(clippy::suspicious_op_assign_impl)]
impl AddAssign for Gf64 {
    #[inline]
    fn add_assign(&mut self, o: Gf64) {
        self.0 ^= o.0;
    }
}

impl Mul for Gf64 {
    type Output = Gf64;
    #[inline]
    fn mul(self, o: Gf64) -> Gf64 {
        let (hi, lo) = clmul(self.0, o.0);
        Gf64(reduce(hi, lo))
    }
}

impl MulAssign for Gf64 {
    #[inline]
    fn mul_assign(&mut self, o: Gf64) {
        *self = *self * o;
    }
}

impl std::iter::Sum for Gf64 {
    fn sum<I: Iterator<Item = Gf64>>(iter: I) -> Gf64 {
        iter.fold(Gf64::ZERO, |a, b| a + b)
    }
}

/// Reduce `hi · X^64 + lo` modulo `X^64 + X^4 + X^3 + X + 1`
/// (`X^64 ≡ X^4 + X^3 + X + 1`, applied twice: the first pass leaves at
/// most 4 bits above `X^63`).
#[inline]
fn reduce(hi: u64, lo: u64) -> u64 {
    let over = (hi >> 63) ^ (hi >> 61) ^ (hi >> 60);
    let h = hi ^ over;
    lo ^ h ^ (h << 1) ^ (h << 3) ^ (h << 4)
}

/// Carry-less 64×64 → 128-bit product as `(hi, lo)`.
#[inline]
fn clmul(a: u64, b: u64) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_clmul() {
            let mut out = (0, 0);
            run_kernel(Kernel::Product {
                a,
                b,
                out: &mut out,
            });
            return out;
        }
    }
    clmul_soft(a, b)
}

#[cfg(target_arch = "x86_64")]
fn has_clmul() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("sse2")
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn has_clmul() -> bool {
    false
}

#[cfg(test)]
thread_local! {
    /// Tests force the one-at-a-time path to check it on CPUs that have
    /// the wide one.
    static NARROW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(all(test, target_arch = "x86_64"))]
fn narrow_forced() -> bool {
    NARROW.with(|n| n.get())
}

#[cfg(all(not(test), target_arch = "x86_64"))]
fn narrow_forced() -> bool {
    false
}

/// Whether the CPU multiplies four pairs at once (AVX-512 VPCLMULQDQ); the
/// bulk kernels then run eight elements per step.
#[cfg(target_arch = "x86_64")]
fn has_wide_clmul() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        has_clmul()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
    })
}

/// Bulk field operations over slices, run with the product inlined: with
/// the CPU's carry-less multiply where it has one, portably otherwise.
pub enum Kernel<'a> {
    /// One carry-less product `a·b` (128 bits, unreduced), as `(hi, lo)`.
    Product {
        a: u64,
        b: u64,
        out: &'a mut (u64, u64),
    },
    /// `lo[k] ← lo[k] + r·(lo[k] + hi[k])`: a halving fold at `r`.
    Fold {
        lo: &'a mut [Gf64],
        hi: &'a [Gf64],
        r: Gf64,
    },
    /// `out = [Σ u0·v0, Σ (u0 + X(u0+u1))·(v0 + X(v0+v1))]` over the
    /// halves `(u0, u1)` of `u` and `(v0, v1)` of `v`.
    Level {
        u: &'a [Gf64],
        v: &'a [Gf64],
        out: &'a mut [Gf64; 2],
    },
    /// `out += Σ a_k·b_k` (the products summed unreduced, one reduction
    /// at the end).
    Dot {
        a: &'a [Gf64],
        b: &'a [Gf64],
        out: &'a mut Gf64,
    },
    /// For each word `j < alpha.len()` and bit `b < 64`, with `code =
    /// codes[64j + b]`: append `α_j·table[b·width + code]`.
    FoldBits {
        alpha: &'a [Gf64],
        table: &'a [Gf64],
        width: usize,
        codes: &'a [u8],
        out: &'a mut Vec<Gf64>,
    },
}

/// Run a [`Kernel`].
pub fn run_kernel(k: Kernel<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_clmul() {
            let wide = has_wide_clmul() && !narrow_forced();
            // SAFETY: `kernels_x86` only needs the CPU features pclmulqdq and
            // sse2, which `has_clmul` has just confirmed at run time, and
            // `kernels_avx512` in addition avx512f and vpclmulqdq, which
            // `has_wide_clmul` has confirmed. This is the crate's one
            // unsafe block (see its Cargo.toml).
            #[allow(unsafe_code)]
            unsafe {
                if wide {
                    kernels_avx512(k)
                } else {
                    kernels_x86(k)
                }
            };
            return;
        }
    }
    kernels_soft(k)
}

/// The kernels' bodies, generic in the product `$mul(u64, u64) -> u64`
/// (reduced) and the unreduced product `$clmul`.
macro_rules! kernel_bodies {
    ($k:expr, $mul:ident, $clmul:ident) => {
        match $k {
            Kernel::Product { a, b, out } => *out = $clmul(a, b),
            Kernel::Fold { lo, hi, r } => {
                for (a, b) in lo.iter_mut().zip(hi) {
                    a.0 ^= $mul(r.0, a.0 ^ b.0);
                }
            }
            Kernel::Level { u, v, out } => {
                let h = u.len() / 2;
                let (mut p0, mut px) = ((0u64, 0u64), (0u64, 0u64));
                for k in 0..h {
                    let (u0, u1, v0, v1) = (u[k], u[k + h], v[k], v[k + h]);
                    let a = $clmul(u0.0, v0.0);
                    p0 = (p0.0 ^ a.0, p0.1 ^ a.1);
                    let ux = u0 + (u0 + u1).mul_x();
                    let vx = v0 + (v0 + v1).mul_x();
                    let b = $clmul(ux.0, vx.0);
                    px = (px.0 ^ b.0, px.1 ^ b.1);
                }
                *out = [Gf64(reduce(p0.0, p0.1)), Gf64(reduce(px.0, px.1))];
            }
            Kernel::Dot { a, b, out } => {
                let mut acc = (0u64, 0u64);
                for (x, y) in a.iter().zip(b) {
                    let p = $clmul(x.0, y.0);
                    acc = (acc.0 ^ p.0, acc.1 ^ p.1);
                }
                *out += Gf64(reduce(acc.0, acc.1));
            }
            Kernel::FoldBits {
                alpha,
                table,
                width,
                codes,
                out,
            } => {
                for (a, codes) in alpha.iter().zip(codes.chunks_exact(64)) {
                    for (b, code) in codes.iter().enumerate() {
                        out.push(Gf64($mul(a.0, table[b * width + *code as usize].0)));
                    }
                }
            }
        }
    };
}

fn kernels_soft(k: Kernel<'_>) {
    #[inline]
    fn mul(a: u64, b: u64) -> u64 {
        let (hi, lo) = clmul_soft(a, b);
        reduce(hi, lo)
    }
    kernel_bodies!(k, mul, clmul_soft)
}

/// Safe to call only where the CPU has pclmulqdq and sse2 (hence the
/// caller's `unsafe`); the intrinsics are safe inside it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse2")]
fn kernels_x86(k: Kernel<'_>) {
    kernel_bodies!(k, mul_x86, clmul_x86)
}

/// The bulk kernels eight elements at a time (four carry-less products per
/// instruction, reduced with two more), the rest as [`kernels_x86`]. Safe to
/// call only where the CPU has avx512f, vpclmulqdq, pclmulqdq and sse2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse2")]
fn kernels_avx512(k: Kernel<'_>) {
    use std::arch::x86_64::{
        __m512i, _mm512_and_si512, _mm512_clmulepi64_epi128, _mm512_set1_epi64,
        _mm512_setzero_si512, _mm512_slli_epi64, _mm512_srai_epi64, _mm512_unpacklo_epi64,
        _mm512_xor_si512,
    };
    let load = |s: &[Gf64]| -> __m512i {
        bytemuck::cast::<[u64; 8], __m512i>(std::array::from_fn(|i| s[i].0))
    };
    let poly = _mm512_set1_epi64(0x1b);
    // The low word of each 128-bit lane of `p`, reduced: `lo + hi·0x1b`
    // (at most 68 bits) `+ (its bits above 64)·0x1b`.
    let reduce_lanes = |p: __m512i| -> __m512i {
        let t = _mm512_clmulepi64_epi128(p, poly, 0x01);
        let t2 = _mm512_clmulepi64_epi128(t, poly, 0x01);
        _mm512_xor_si512(p, _mm512_xor_si512(t, t2))
    };
    // The 128-bit lanes of the unreduced sum `acc`, folded and reduced.
    let finish = |acc: __m512i| -> Gf64 {
        let w = bytemuck::cast::<__m512i, [u64; 8]>(acc);
        let (mut lo, mut hi) = (0u64, 0u64);
        for lane in w.chunks_exact(2) {
            lo ^= lane[0];
            hi ^= lane[1];
        }
        Gf64(reduce(hi, lo))
    };
    match k {
        Kernel::Fold { lo, hi, r } => {
            let n = lo.len().min(hi.len()) / 8 * 8;
            let rv = _mm512_set1_epi64(r.0 as i64);
            for (a, b) in lo[..n].chunks_exact_mut(8).zip(hi[..n].chunks_exact(8)) {
                let d = _mm512_xor_si512(load(a), load(b));
                let even = reduce_lanes(_mm512_clmulepi64_epi128(d, rv, 0x00));
                let odd = reduce_lanes(_mm512_clmulepi64_epi128(d, rv, 0x01));
                let prod = bytemuck::cast::<__m512i, [u64; 8]>(_mm512_unpacklo_epi64(even, odd));
                for (x, p) in a.iter_mut().zip(prod) {
                    x.0 ^= p;
                }
            }
            let (lo, hi) = (&mut lo[n..], &hi[n..]);
            kernels_x86(Kernel::Fold { lo, hi, r });
        }
        Kernel::Level { u, v, out } if u.len() / 2 % 8 == 0 => {
            let h = u.len() / 2;
            let (mut p0, mut px) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            let mul_x = |x: __m512i| {
                _mm512_xor_si512(
                    _mm512_slli_epi64(x, 1),
                    _mm512_and_si512(_mm512_srai_epi64(x, 63), poly),
                )
            };
            for k in (0..h).step_by(8) {
                let (u0, u1) = (load(&u[k..]), load(&u[k + h..]));
                let (v0, v1) = (load(&v[k..]), load(&v[k + h..]));
                p0 = _mm512_xor_si512(p0, _mm512_clmulepi64_epi128(u0, v0, 0x00));
                p0 = _mm512_xor_si512(p0, _mm512_clmulepi64_epi128(u0, v0, 0x11));
                let ux = _mm512_xor_si512(u0, mul_x(_mm512_xor_si512(u0, u1)));
                let vx = _mm512_xor_si512(v0, mul_x(_mm512_xor_si512(v0, v1)));
                px = _mm512_xor_si512(px, _mm512_clmulepi64_epi128(ux, vx, 0x00));
                px = _mm512_xor_si512(px, _mm512_clmulepi64_epi128(ux, vx, 0x11));
            }
            *out = [finish(p0), finish(px)];
        }
        Kernel::Dot { a, b, out } => {
            let n = a.len().min(b.len()) / 8 * 8;
            let mut acc = _mm512_setzero_si512();
            for (x, y) in a[..n].chunks_exact(8).zip(b[..n].chunks_exact(8)) {
                let (x, y) = (load(x), load(y));
                acc = _mm512_xor_si512(acc, _mm512_clmulepi64_epi128(x, y, 0x00));
                acc = _mm512_xor_si512(acc, _mm512_clmulepi64_epi128(x, y, 0x11));
            }
            *out += finish(acc);
            kernels_x86(Kernel::Dot {
                a: &a[n..],
                b: &b[n..],
                out,
            });
        }
        Kernel::FoldBits {
            alpha,
            table,
            width,
            codes,
            out,
        } => {
            for (a, codes) in alpha.iter().zip(codes.chunks_exact(64)) {
                let av = _mm512_set1_epi64(a.0 as i64);
                for (b8, codes) in codes.chunks_exact(8).enumerate() {
                    let t: [u64; 8] =
                        std::array::from_fn(|i| table[(8 * b8 + i) * width + codes[i] as usize].0);
                    let t = bytemuck::cast::<[u64; 8], __m512i>(t);
                    let even = reduce_lanes(_mm512_clmulepi64_epi128(t, av, 0x00));
                    let odd = reduce_lanes(_mm512_clmulepi64_epi128(t, av, 0x01));
                    let prod =
                        bytemuck::cast::<__m512i, [u64; 8]>(_mm512_unpacklo_epi64(even, odd));
                    out.extend(prod.iter().map(|p| Gf64(*p)));
                }
            }
        }
        other => kernels_x86(other),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse2")]
#[inline]
fn mul_x86(a: u64, b: u64) -> u64 {
    let (hi, lo) = clmul_x86(a, b);
    reduce(hi, lo)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse2")]
#[inline]
fn clmul_x86(a: u64, b: u64) -> (u64, u64) {
    use std::arch::x86_64::{
        _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set_epi64x, _mm_srli_si128,
    };
    let x = _mm_set_epi64x(0, a as i64);
    let y = _mm_set_epi64x(0, b as i64);
    let p = _mm_clmulepi64_si128(x, y, 0);
    let lo = _mm_cvtsi128_si64(p) as u64;
    let hi = _mm_cvtsi128_si64(_mm_srli_si128(p, 8)) as u64;
    (hi, lo)
}

/// Portable carry-less multiplication (4-bit windows).
fn clmul_soft(a: u64, b: u64) -> (u64, u64) {
    // Table of a · w for every 4-bit w, as 128-bit values.
    let mut table = [0u128; 16];
    for (w, t) in table.iter_mut().enumerate() {
        for bit in 0..4 {
            if w >> bit & 1 == 1 {
                *t ^= (a as u128) << bit;
            }
        }
    }
    let mut acc = 0u128;
    for nib in (0..16).rev() {
        acc = (acc << 4) ^ table[((b >> (4 * nib)) & 0xf) as usize];
    }
    ((acc >> 64) as u64, acc as u64)
}

/// The value at `r` of the polynomial of degree `< points.len()` through
/// `(points[k], values[k])` (Lagrange). The points must be distinct.
pub fn interpolate(points: &[Gf64], values: &[Gf64], r: Gf64) -> Gf64 {
    debug_assert_eq!(points.len(), values.len());
    let mut acc = Gf64::ZERO;
    for (k, (&pk, &vk)) in points.iter().zip(values).enumerate() {
        let mut num = Gf64::ONE;
        let mut den = Gf64::ONE;
        for (m, &pm) in points.iter().enumerate() {
            if m != k {
                num *= r + pm;
                den *= pk + pm;
            }
        }
        acc += vk * num * den.inv().expect("interpolation points are distinct");
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// Remainder of `a` divided by `b` in GF(2)[X] (polynomials as bit masks).
    fn poly_rem(mut a: u128, b: u128) -> u128 {
        let db = 127 - b.leading_zeros();
        while a != 0 && 127 - a.leading_zeros() >= db {
            a ^= b << (127 - a.leading_zeros() - db);
        }
        a
    }

    fn poly_gcd(mut a: u128, mut b: u128) -> u128 {
        while b != 0 {
            let r = poly_rem(a, b);
            a = b;
            b = r;
        }
        a
    }

    #[test]
    fn the_modulus_is_irreducible() {
        // Rabin: P of degree 64 is irreducible iff X^(2^64) ≡ X mod P and
        // gcd(X^(2^32) - X, P) = 1 (32 = 64 / 2, the only prime factor).
        let mut t = Gf64::X;
        for _ in 0..32 {
            t = t * t;
        }
        let p: u128 = (1u128 << 64) | 0x1b;
        assert_eq!(poly_gcd(p, (t + Gf64::X).0 as u128), 1);
        for _ in 32..64 {
            t = t * t;
        }
        assert_eq!(t, Gf64::X);
    }

    #[test]
    fn hardware_and_portable_products_agree_and_the_field_laws_hold() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for _ in 0..2000 {
            let (a, b, c) = (Gf64(rng.gen()), Gf64(rng.gen()), Gf64(rng.gen()));
            assert_eq!(clmul(a.0, b.0), clmul_soft(a.0, b.0));
            assert_eq!(a * b, b * a);
            assert_eq!((a * b) * c, a * (b * c));
            assert_eq!(a * (b + c), a * b + a * c);
            assert_eq!(a.mul_x(), a * Gf64::X);
            if a != Gf64::ZERO {
                assert_eq!(a * a.inv().unwrap(), Gf64::ONE);
            }
        }
        assert_eq!(Gf64::ZERO.inv(), None);
        // Bits multiply as AND.
        for (x, y) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert_eq!(Gf64(x) * Gf64(y), Gf64(x & y));
        }
    }

    /// Both carry-less paths (eight-wide where the CPU has AVX-512
    /// VPCLMULQDQ, and one at a time) against the portable kernels and the
    /// scalar operations.
    #[test]
    fn kernels_agree_with_the_scalar_operations_and_each_other() {
        for narrow in [false, true] {
            NARROW.with(|n| n.set(narrow));
            kernels_agree(narrow);
        }
        NARROW.with(|n| n.set(false));
    }

    fn kernels_agree(narrow: bool) {
        let mut rng = ChaCha20Rng::seed_from_u64(3 + narrow as u64);
        let u: Vec<Gf64> = (0..64).map(|_| Gf64(rng.gen())).collect();
        let v: Vec<Gf64> = (0..64).map(|_| Gf64(rng.gen())).collect();
        let r = Gf64(rng.gen());
        let mut out = [Gf64::ZERO; 2];
        run_kernel(Kernel::Level {
            u: &u,
            v: &v,
            out: &mut out,
        });
        let mut soft = [Gf64::ZERO; 2];
        kernels_soft(Kernel::Level {
            u: &u,
            v: &v,
            out: &mut soft,
        });
        let h = 32;
        let p0: Gf64 = (0..h).map(|k| u[k] * v[k]).sum();
        let px: Gf64 = (0..h)
            .map(|k| (u[k] + Gf64::X * (u[k] + u[k + h])) * (v[k] + Gf64::X * (v[k] + v[k + h])))
            .sum();
        assert_eq!(out, [p0, px]);
        assert_eq!(soft, out);
        let (mut lo, mut lo_soft) = (u[..32].to_vec(), u[..32].to_vec());
        run_kernel(Kernel::Fold {
            lo: &mut lo,
            hi: &u[32..],
            r,
        });
        kernels_soft(Kernel::Fold {
            lo: &mut lo_soft,
            hi: &u[32..],
            r,
        });
        for k in 0..32 {
            assert_eq!(lo[k], u[k] + r * (u[k] + u[k + 32]));
        }
        assert_eq!(lo, lo_soft);
        // FoldBits with codes of 3 bits.
        let table: Vec<Gf64> = (0..64 * 8).map(|_| Gf64(rng.gen())).collect();
        let codes: Vec<u8> = (0..128).map(|_| rng.gen_range(0..8)).collect();
        let (mut w, mut w_soft) = (Vec::new(), Vec::new());
        let fb = |out| Kernel::FoldBits {
            alpha: &u[..2],
            table: &table,
            width: 8,
            codes: &codes,
            out,
        };
        run_kernel(fb(&mut w));
        kernels_soft(fb(&mut w_soft));
        for j in 0..2 {
            for b in 0..64 {
                let code = codes[64 * j + b] as usize;
                assert_eq!(w[64 * j + b], u[j] * table[8 * b + code]);
            }
        }
        assert_eq!(w, w_soft);
        // Dot accumulates into its output.
        let (mut d, mut d_soft) = (Gf64::ONE, Gf64::ONE);
        run_kernel(Kernel::Dot {
            a: &u,
            b: &v,
            out: &mut d,
        });
        kernels_soft(Kernel::Dot {
            a: &u,
            b: &v,
            out: &mut d_soft,
        });
        let want: Gf64 = Gf64::ONE + u.iter().zip(&v).map(|(x, y)| *x * *y).sum::<Gf64>();
        assert_eq!((d, d_soft), (want, want));
        // Lengths that leave a remainder past the eight-wide steps, and a
        // level too short for them.
        for n in [1usize, 7, 13, 35] {
            let mut d = Gf64::ZERO;
            run_kernel(Kernel::Dot {
                a: &u[..n],
                b: &v[..n],
                out: &mut d,
            });
            assert_eq!(d, u[..n].iter().zip(&v[..n]).map(|(x, y)| *x * *y).sum());
            let mut lo = u[..n].to_vec();
            run_kernel(Kernel::Fold {
                lo: &mut lo,
                hi: &v[..n],
                r,
            });
            for k in 0..n {
                assert_eq!(lo[k], u[k] + r * (u[k] + v[k]));
            }
        }
        for h in [1usize, 2, 4, 8, 16] {
            let mut out = [Gf64::ZERO; 2];
            run_kernel(Kernel::Level {
                u: &u[..2 * h],
                v: &v[..2 * h],
                out: &mut out,
            });
            let p0: Gf64 = (0..h).map(|k| u[k] * v[k]).sum();
            let px: Gf64 = (0..h)
                .map(|k| {
                    (u[k] + Gf64::X * (u[k] + u[k + h])) * (v[k] + Gf64::X * (v[k] + v[k + h]))
                })
                .sum();
            assert_eq!(out, [p0, px], "h = {h}");
        }
    }

    #[test]
    fn interpolation_recovers_a_polynomial() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let coef: Vec<Gf64> = (0..5).map(|_| Gf64(rng.gen())).collect();
        let eval = |t: Gf64| coef.iter().rev().fold(Gf64::ZERO, |acc, &c| acc * t + c);
        let pts = [Gf64(0), Gf64(1), Gf64(2), Gf64(3), Gf64(4)];
        let vals: Vec<Gf64> = pts.iter().map(|&p| eval(p)).collect();
        for _ in 0..20 {
            let r = Gf64(rng.gen());
            assert_eq!(interpolate(&pts, &vals, r), eval(r));
        }
    }
}
