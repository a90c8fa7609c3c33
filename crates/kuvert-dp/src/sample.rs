//! Exact samplers over the integers.
//!
//! Every sampler here consumes only uniformly random *bits* and performs only
//! exact integer and rational arithmetic (arbitrary precision, `num-bigint`).
//! No floating-point number ever touches a sample, so the attacks on
//! textbook floating-point Laplace noise (Mironov 2012: the low bits of a
//! float sample reveal the unnoised value) do not apply: the output
//! distribution is *exactly* the stated one, given uniform random bits.
//!
//! The algorithms are those of Canonne, Kamath and Steinke, "The Discrete
//! Gaussian for Differential Privacy" (NeurIPS 2020), written from the paper:
//!
//! * [`bernoulli_exp`]: Bernoulli(exp(-γ)) for rational γ ≥ 0 (their Alg. 1);
//! * [`discrete_laplace`]: P(y) ∝ exp(-|y|/b) for rational b > 0 (Alg. 2);
//! * [`discrete_gaussian`]: P(y) ∝ exp(-y²/(2σ²)) for rational σ² > 0 (Alg. 3).
//!
//! Poisson and Skellam are our own construction, proven in the comments of
//! [`poisson`]: a rejection step on the same Bernoulli chain as Alg. 1.
//!
//! Parameters are [`Rational`]s. Every finite `f64` is a dyadic rational and
//! converts *exactly* ([`Rational::from_f64`]), so a mechanism calibrated in
//! `f64` is sampled with precisely the parameter the accounting used.

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use rand_core::RngCore;

use crate::DpError;

/// A non-negative rational number `num / den` with `den > 0`, exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rational {
    num: BigUint,
    den: BigUint,
}

impl Rational {
    /// `num / den`. Fails when `den` is zero.
    pub fn new(num: impl Into<BigUint>, den: impl Into<BigUint>) -> Result<Self, DpError> {
        let den = den.into();
        if den.is_zero() {
            return Err(DpError::InvalidParameter(
                "rational with zero denominator".into(),
            ));
        }
        Ok(Self {
            num: num.into(),
            den,
        })
    }

    /// The exact value of a finite, non-negative `f64` (which is always a
    /// dyadic rational `m · 2^e`).
    pub fn from_f64(x: f64) -> Result<Self, DpError> {
        if !x.is_finite() || x < 0.0 {
            return Err(DpError::InvalidParameter(format!(
                "noise parameter must be finite and non-negative, got {x}"
            )));
        }
        if x == 0.0 {
            return Ok(Self {
                num: BigUint::zero(),
                den: BigUint::one(),
            });
        }
        let bits = x.to_bits();
        let exp_bits = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        // value = mantissa * 2^(exponent)
        let (mantissa, exponent) = if exp_bits == 0 {
            (frac, -1074i64)
        } else {
            (frac | (1u64 << 52), exp_bits - 1075)
        };
        let m = BigUint::from(mantissa);
        let r = if exponent >= 0 {
            Self {
                num: m << (exponent as usize),
                den: BigUint::one(),
            }
        } else {
            Self {
                num: m,
                den: BigUint::one() << ((-exponent) as usize),
            }
        };
        Ok(r.reduced())
    }

    fn reduced(self) -> Self {
        let g = self.num.gcd(&self.den);
        if g.is_one() || g.is_zero() {
            return self;
        }
        Self {
            num: &self.num / &g,
            den: &self.den / &g,
        }
    }

    /// Numerator.
    pub fn numer(&self) -> &BigUint {
        &self.num
    }

    /// Denominator (never zero).
    pub fn denom(&self) -> &BigUint {
        &self.den
    }

    /// The value as `f64` (for display and accounting only, never for
    /// sampling). Exact for every rational made by [`Rational::from_f64`].
    pub fn to_f64(&self) -> f64 {
        if self.num.is_zero() {
            return 0.0;
        }
        // Keep the top 64 bits of each side; for a dyadic rational from an
        // f64 both truncations are exact and only the final scaling rounds.
        let ns = self.num.bits().saturating_sub(64);
        let ds = self.den.bits().saturating_sub(64);
        let n = (&self.num >> ns as usize).to_f64().unwrap_or(f64::MAX);
        let d = (&self.den >> ds as usize).to_f64().unwrap_or(f64::MAX);
        scale_pow2(n / d, ns as i64 - ds as i64)
    }

    fn is_zero(&self) -> bool {
        self.num.is_zero()
    }
}

/// `v · 2^e`, in steps that stay in the normal range until the last one,
/// so the result is rounded once.
fn scale_pow2(mut v: f64, mut e: i64) -> f64 {
    while e > 500 {
        v *= 2f64.powi(500);
        e -= 500;
    }
    while e < -500 {
        v *= 2f64.powi(-500);
        e += 500;
    }
    v * 2f64.powi(e as i32)
}

/// Uniform integer in `[0, m)` by rejection on random bytes (exactly
/// uniform; expected fewer than two draws). `m` must be positive.
pub(crate) fn uniform_below<R: RngCore + ?Sized>(rng: &mut R, m: &BigUint) -> BigUint {
    debug_assert!(!m.is_zero());
    if let Some(m64) = m.to_u64() {
        return BigUint::from(uniform_u64(rng, m64));
    }
    let bits = m.bits();
    let nbytes = bits.div_ceil(8) as usize;
    let excess = (nbytes as u64 * 8 - bits) as u32;
    let mut buf = vec![0u8; nbytes];
    loop {
        rng.fill_bytes(&mut buf);
        buf[0] &= 0xffu8.checked_shr(excess).unwrap_or(0);
        let x = BigUint::from_bytes_be(&buf);
        if &x < m {
            return x;
        }
    }
}

/// Uniform integer in `[0, m)`, `m > 0`, exactly uniform: Lemire's
/// multiply-and-reject method ("Fast random integer generation in an
/// interval", 2019). The high word of x·m is uniform on [0, m) once the low
/// words below (2^64 − m) mod m are rejected; that remainder is only
/// computed in the rare case the low word is below m.
pub(crate) fn uniform_u64<R: RngCore + ?Sized>(rng: &mut R, m: u64) -> u64 {
    debug_assert!(m > 0);
    let mut prod = rng.next_u64() as u128 * m as u128;
    if (prod as u64) < m {
        let threshold = m.wrapping_neg() % m;
        while (prod as u64) < threshold {
            prod = rng.next_u64() as u128 * m as u128;
        }
    }
    (prod >> 64) as u64
}

/// Bernoulli(num/den), exact. Requires `num <= den`, `den > 0`.
pub(crate) fn bernoulli_rational<R: RngCore + ?Sized>(
    rng: &mut R,
    num: &BigUint,
    den: &BigUint,
) -> bool {
    uniform_below(rng, den) < *num
}

fn bernoulli_u64<R: RngCore + ?Sized>(rng: &mut R, num: u64, den: u64) -> bool {
    uniform_u64(rng, den) < num
}

/// Bernoulli(exp(-γ)) for γ = num/den ∈ [0, 1] (CKS Alg. 1, first part):
/// draw A_k ~ Bernoulli(γ/k) for k = 1, 2, ... until the first A_k = 0;
/// P(first zero at k) = γ^{k-1}/(k-1)! - γ^k/k!, so P(k odd) = exp(-γ).
fn bernoulli_exp_le1<R: RngCore + ?Sized>(rng: &mut R, num: &BigUint, den: &BigUint) -> bool {
    let mut k: u64 = 1;
    loop {
        let d = den * BigUint::from(k);
        if bernoulli_rational(rng, num, &d) {
            k += 1;
        } else {
            return k % 2 == 1;
        }
    }
}

/// Bernoulli(exp(-1)), the inner step of the large-γ case and of the
/// geometric draws in [`discrete_laplace`] (u64 fast path of the chain).
fn bernoulli_exp_minus_one<R: RngCore + ?Sized>(rng: &mut R) -> bool {
    let mut k: u64 = 1;
    loop {
        if bernoulli_u64(rng, 1, k) {
            k += 1;
        } else {
            return k % 2 == 1;
        }
    }
}

/// Bernoulli(exp(-γ)) for rational γ = num/den ≥ 0, exact (CKS Alg. 1):
/// exp(-γ) = exp(-1)^⌊γ⌋ · exp(-(γ - ⌊γ⌋)), each factor an independent draw,
/// stopping at the first failure.
pub fn bernoulli_exp<R: RngCore + ?Sized>(rng: &mut R, gamma: &Rational) -> bool {
    let (whole, rem) = gamma.num.div_rem(&gamma.den);
    let mut i = BigUint::zero();
    while i < whole {
        if !bernoulli_exp_minus_one(rng) {
            return false;
        }
        i += 1u32;
    }
    bernoulli_exp_le1(rng, &rem, &gamma.den)
}

fn to_i128_saturating(x: &BigInt) -> i128 {
    // Only reachable beyond 2^127, with probability below 2^-100 for any
    // scale that fits in memory; saturating keeps the function total.
    x.to_i128().unwrap_or(if x.sign() == Sign::Minus {
        i128::MIN
    } else {
        i128::MAX
    })
}

/// Discrete Laplace: P(Y = y) = (1-q)/(1+q) · q^|y| with q = exp(-1/b),
/// for rational scale `b > 0` (CKS Alg. 2). Variance 2q/(1-q)².
pub fn discrete_laplace<R: RngCore + ?Sized>(
    rng: &mut R,
    scale: &Rational,
) -> Result<i128, DpError> {
    if scale.is_zero() {
        return Err(DpError::InvalidParameter(
            "discrete Laplace scale must be positive".into(),
        ));
    }
    Ok(to_i128_saturating(&discrete_laplace_big(rng, scale)))
}

fn discrete_laplace_big<R: RngCore + ?Sized>(rng: &mut R, scale: &Rational) -> BigInt {
    // scale = t/s.
    let t = &scale.num;
    let s = &scale.den;
    loop {
        // U uniform in [0, t), kept with probability exp(-U/t): U is then
        // distributed ∝ exp(-U/t) on [0, t).
        let u = uniform_below(rng, t);
        let keep = bernoulli_exp(
            rng,
            &Rational {
                num: u.clone(),
                den: t.clone(),
            },
        );
        if !keep {
            continue;
        }
        // V geometric: P(V = v) ∝ exp(-v).
        let mut v = BigUint::zero();
        while bernoulli_exp_minus_one(rng) {
            v += 1u32;
        }
        // X = U + tV has P(X = x) ∝ exp(-x/t); Y = ⌊X/s⌋ ∝ exp(-y s/t).
        let x = u + t * v;
        let y = x / s;
        let negative = rng.next_u32() & 1 == 1;
        if negative && y.is_zero() {
            continue; // avoid counting zero twice
        }
        let y = BigInt::from_biguint(Sign::Plus, y);
        return if negative { -y } else { y };
    }
}

/// Discrete Gaussian: P(Y = y) ∝ exp(-y²/(2σ²)) for rational σ² > 0
/// (CKS Alg. 3): rejection from a discrete Laplace of integer scale
/// t = ⌊σ⌋ + 1, accepting with probability exp(-(|y| - σ²/t)²/(2σ²)).
pub fn discrete_gaussian<R: RngCore + ?Sized>(
    rng: &mut R,
    sigma2: &Rational,
) -> Result<i128, DpError> {
    if sigma2.is_zero() {
        return Err(DpError::InvalidParameter(
            "discrete Gaussian variance must be positive".into(),
        ));
    }
    let a = &sigma2.num;
    let b = &sigma2.den;
    // ⌊σ⌋ = ⌊sqrt(⌊a/b⌋)⌋.
    let t = (a / b).sqrt() + 1u32;
    let lap = Rational {
        num: t.clone(),
        den: BigUint::one(),
    };
    let two_a_b_t2 = BigUint::from(2u32) * a * b * &t * &t;
    loop {
        let y = discrete_laplace_big(rng, &lap);
        let abs_y = y.magnitude();
        // γ = (|y| t b - a)² / (2 a b t²)
        let ytb = abs_y * &t * b;
        let diff = if ytb >= *a { &ytb - a } else { a - &ytb };
        let gamma = Rational {
            num: &diff * &diff,
            den: two_a_b_t2.clone(),
        };
        if bernoulli_exp(rng, &gamma) {
            return Ok(to_i128_saturating(&y));
        }
    }
}

/// Poisson(γ) for rational γ = n/d ∈ [0, 1/2], exact.
///
/// Proposal: run the chain of [`bernoulli_exp_le1`] and let K be the number
/// of successes before the first failure, so P(K ≥ k) = γ^k/k! and
/// P(K = k) = γ^k/k! · (1 - γ/(k+1)). Accept K = k with probability
/// a_k = (1-γ)(k+1)/(k+1-γ) ∈ (0, 1] (a rational number). The accepted law
/// is ∝ γ^k/k! · (1 - γ/(k+1)) · (k+1)/(k+1-γ) = γ^k/k!, i.e. Poisson(γ).
/// The acceptance rate is (1-γ)e^γ ≥ 0.82 for γ ≤ 1/2.
fn poisson_small<R: RngCore + ?Sized>(rng: &mut R, n: u64, d: u64) -> u64 {
    debug_assert!(2 * (n as u128) <= d as u128);
    if n == 0 {
        return 0;
    }
    loop {
        let mut k: u64 = 0;
        // success at step j = k+1 with probability γ/(k+1) = n/(d(k+1))
        while uniform_u128(rng, d as u128 * (k as u128 + 1)) < n as u128 {
            k += 1;
        }
        // a_k = (d-n)(k+1) / ((k+1)d - n)
        let k1 = k as u128 + 1;
        let num = (d - n) as u128 * k1;
        let den = k1 * d as u128 - n as u128;
        if uniform_u128(rng, den) < num {
            return k;
        }
    }
}

fn uniform_u128<R: RngCore + ?Sized>(rng: &mut R, m: u128) -> u128 {
    debug_assert!(m > 0);
    if m <= u64::MAX as u128 {
        return uniform_u64(rng, m as u64) as u128;
    }
    let limit = u128::MAX - (u128::MAX % m);
    loop {
        let x = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
        if x < limit {
            return x % m;
        }
    }
}

/// Largest Poisson mean [`poisson`] accepts (2^40): its expected cost is
/// O(√λ) cheap Bernoulli draws.
pub const MAX_POISSON_MEAN: u64 = 1 << 40;

/// Below this mean, [`poisson`] sums Poisson(1/2) pieces (at most 128).
const POISSON_SPLIT_BELOW: u64 = 64;

/// Poisson(λ) for rational λ ≥ 0, exact.
///
/// * λ < 64: λ is split into ⌊2λ⌋ pieces of 1/2 and a remainder in
///   [0, 1/2), each drawn by [`poisson_small`] (Poisson is closed under
///   summation).
/// * 64 ≤ λ ≤ 2^40 (numerator and denominator below 2^64): rejection
///   sampling with a rational envelope, see [`poisson_large`]; O(√λ).
pub fn poisson<R: RngCore + ?Sized>(rng: &mut R, lambda: &Rational) -> Result<u64, DpError> {
    let too_large = || {
        DpError::InvalidParameter(format!(
            "Poisson mean {:.4e} is outside the exact sampler's range (at most {MAX_POISSON_MEAN}, \
             with numerator and denominator below 2^64); use the discrete Gaussian",
            lambda.to_f64()
        ))
    };
    let whole = (&lambda.num / &lambda.den).to_u64().ok_or_else(too_large)?;
    if whole >= POISSON_SPLIT_BELOW {
        let (Some(a), Some(b)) = (lambda.num.to_u64(), lambda.den.to_u64()) else {
            return Err(too_large());
        };
        if whole > MAX_POISSON_MEAN {
            return Err(too_large());
        }
        return Ok(poisson_large(rng, a, b));
    }
    let two_n = &lambda.num << 1usize;
    let (halves, rem_num) = two_n.div_rem(&lambda.den); // 2λ = halves + rem/den
    let halves = halves.to_u64().ok_or_else(too_large)?;
    let mut total: u64 = 0;
    for _ in 0..halves {
        total += poisson_small(rng, 1, 2);
    }
    if !rem_num.is_zero() {
        // remainder γ = rem/(2 den) < 1/2
        let den2 = &lambda.den << 1usize;
        match (rem_num.to_u64(), den2.to_u64()) {
            (Some(n), Some(d)) => total += poisson_small(rng, n, d),
            _ => total += poisson_small_big(rng, &rem_num, &den2),
        }
    }
    Ok(total)
}

fn bernoulli_u128<R: RngCore + ?Sized>(rng: &mut R, num: u128, den: u128) -> bool {
    uniform_u128(rng, den) < num
}

/// Poisson(λ), λ = a/b with m = ⌊λ⌋ ∈ [64, 2^40], exact, by rejection.
///
/// Let f(k) = P(k)/P(m) (m is a mode, so f ≤ 1); f is a product of the
/// ratios λ/(m+i) (k > m) or (m−i)/λ (k < m), each ≤ 1. With w = ⌊√m⌋ the
/// envelope is g(k) = 1 on [m−w, m+w], g(m+w+t) = r_R^t with
/// r_R = λ/(m+w+1), and g(m−w−t) = r_L^t with r_L = (m−w)/λ (t ≥ 1). Then
/// f ≤ g, because every ratio beyond the window is at most the tail ratio.
/// The proposal ∝ g is sampled exactly (region by its rational mass,
/// uniform in the window, geometric tails by Bernoulli(r) runs), and k is
/// accepted with probability f(k)/g(k), written as a product of rationals
/// each ≤ 1 and drawn as independent Bernoullis (stopping at the first
/// failure). Accepted k are ∝ f, i.e. Poisson(λ). Expected cost O(√λ)
/// draws; the acceptance rate is about √(2π)/4 ≈ 0.63.
fn poisson_large<R: RngCore + ?Sized>(rng: &mut R, a: u64, b: u64) -> u64 {
    let m = a / b;
    debug_assert!((POISSON_SPLIT_BELOW..=MAX_POISSON_MEAN).contains(&m));
    let w = m.isqrt();
    let (a, b) = (a as u128, b as u128);
    let (m128, w128) = (m as u128, w as u128);
    // r_R = a / rr_den, r_L = rl_num / a (both < 1, as m+1 > λ ≥ m > m−w).
    let rr_den = b * (m128 + w128 + 1);
    let rl_num = b * (m128 - w128);
    // Masses: window 2w+1; right tail a/(rr_den − a); left tail rl_num/(a − rl_num).
    let dr = BigUint::from(rr_den - a);
    let dl = BigUint::from(a - rl_num);
    let window = BigUint::from(2 * w128 + 1) * &dr * &dl;
    let right = BigUint::from(a) * &dl;
    let left = BigUint::from(rl_num) * &dr;
    let total = &window + &right + &left;
    loop {
        let u = uniform_below(rng, &total);
        // Proposal k as an offset from m (i128: |offset| < 2^41 + tail).
        let offset: i128 = if u < window {
            uniform_u128(rng, 2 * w128 + 1) as i128 - w as i128
        } else if u < &window + &right {
            let mut t: i128 = 1;
            while bernoulli_u128(rng, a, rr_den) {
                t += 1;
            }
            w as i128 + t
        } else {
            let mut t: i128 = 1;
            while bernoulli_u128(rng, rl_num, a) {
                t += 1;
            }
            -(w as i128) - t
        };
        let k = m as i128 + offset;
        if k < 0 {
            continue;
        }
        let accepted = if offset >= 0 {
            let j = offset as u128;
            (1..=j.min(w128)).all(|i| bernoulli_u128(rng, a, b * (m128 + i)))
                && (w128 + 1..=j).all(|i| bernoulli_u128(rng, m128 + w128 + 1, m128 + i))
        } else {
            let j = (-offset) as u128;
            (0..j.min(w128)).all(|i| bernoulli_u128(rng, b * (m128 - i), a))
                && (w128..j).all(|i| bernoulli_u128(rng, m128 - i, m128 - w128))
        };
        if accepted {
            return k as u64;
        }
    }
}

/// [`poisson_small`] with arbitrary-precision parameters (rare: only for
/// λ whose exact denominator exceeds 2^63).
fn poisson_small_big<R: RngCore + ?Sized>(rng: &mut R, n: &BigUint, d: &BigUint) -> u64 {
    loop {
        let mut k: u64 = 0;
        while bernoulli_rational(rng, n, &(d * BigUint::from(k + 1))) {
            k += 1;
        }
        let k1 = BigUint::from(k + 1);
        let num = (d - n) * &k1;
        let den = &k1 * d - n;
        if bernoulli_rational(rng, &num, &den) {
            return k;
        }
    }
}

/// Skellam with variance μ: X - Y for independent X, Y ~ Poisson(μ/2).
/// Closed under summation: the sum of independent Skellams with variances
/// μ₁, μ₂ is Skellam with variance μ₁ + μ₂, which is what makes it the noise
/// for distributed generation (see [`crate::distributed`]).
pub fn skellam<R: RngCore + ?Sized>(rng: &mut R, variance: &Rational) -> Result<i128, DpError> {
    let half = Rational {
        num: variance.num.clone(),
        den: &variance.den << 1usize,
    }
    .reduced();
    let x = poisson(rng, &half)?;
    let y = poisson(rng, &half)?;
    Ok(x as i128 - y as i128)
}

/// The exponential mechanism, sampled exactly: returns index `i` with
/// probability ∝ exp(ε·u_i / (2Δ)), for integer utilities `u_i` of
/// sensitivity `Δ` (ε/(2Δ) is the rational `eps_over_2delta`).
///
/// Rejection sampling: pick `i` uniformly and accept with probability
/// exp(-(u* - u_i)·ε/(2Δ)) where u* = max u; the accepted law is ∝ exp(ε u_i/(2Δ)).
/// This is also *report-noisy-max with Gumbel noise*, which has exactly the
/// same output distribution.
pub fn exponential_mechanism<R: RngCore + ?Sized>(
    rng: &mut R,
    utilities: &[i64],
    eps_over_2delta: &Rational,
) -> Result<usize, DpError> {
    let max = *utilities.iter().max().ok_or_else(|| {
        DpError::InvalidParameter("exponential mechanism needs candidates".into())
    })?;
    let n = utilities.len() as u64;
    loop {
        let i = uniform_u64(rng, n) as usize;
        let gap = BigUint::from((max as i128 - utilities[i] as i128) as u128);
        let gamma = Rational {
            num: gap * &eps_over_2delta.num,
            den: eps_over_2delta.den.clone(),
        };
        if bernoulli_exp(rng, &gamma) {
            return Ok(i);
        }
    }
}

/// k-ary randomized response with parameter ε: reports the true category
/// with probability e^ε/(e^ε + k - 1), any other with 1/(e^ε + k - 1).
/// Exact, by rejection: draw a uniform category, accept the true one
/// always and any other with probability exp(-ε).
pub fn randomized_response<R: RngCore + ?Sized>(
    rng: &mut R,
    true_category: usize,
    categories: usize,
    epsilon: &Rational,
) -> Result<usize, DpError> {
    if categories < 2 || true_category >= categories {
        return Err(DpError::InvalidParameter(format!(
            "randomized response needs at least 2 categories and a true category below {categories}"
        )));
    }
    loop {
        let c = uniform_u64(rng, categories as u64) as usize;
        if c == true_category || bernoulli_exp(rng, epsilon) {
            return Ok(c);
        }
    }
}

/// Unbiased estimate of category frequencies from k-ary randomized
/// responses: f̂_c = (n_c/n - r)/(p - r) with p = e^ε/(e^ε+k-1), r = 1/(e^ε+k-1).
pub fn randomized_response_estimate(counts: &[u64], epsilon: f64) -> Vec<f64> {
    let k = counts.len() as f64;
    let n: u64 = counts.iter().sum();
    let e = epsilon.exp();
    let p = e / (e + k - 1.0);
    let r = 1.0 / (e + k - 1.0);
    counts
        .iter()
        .map(|&c| {
            if n == 0 {
                0.0
            } else {
                (c as f64 / n as f64 - r) / (p - r)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn f64_to_rational_is_exact() {
        let r = Rational::from_f64(0.1).unwrap();
        assert_eq!(r.denom(), &(BigUint::one() << 55usize));
        assert_eq!(r.numer(), &BigUint::from(3602879701896397u64));
        assert_eq!(r.to_f64(), 0.1);
        let r = Rational::from_f64(3.0).unwrap();
        assert_eq!(
            (r.numer().clone(), r.denom().clone()),
            (3u32.into(), 1u32.into())
        );
        assert!(Rational::from_f64(-1.0).is_err());
        assert!(Rational::from_f64(f64::NAN).is_err());
    }

    #[test]
    fn uniform_below_is_in_range_and_covers() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let m = BigUint::from(5u32) << 70usize;
        let mut seen_high = false;
        for _ in 0..200 {
            let x = uniform_below(&mut rng, &m);
            assert!(x < m);
            seen_high |= x > (BigUint::from(4u32) << 70usize);
        }
        assert!(seen_high);
    }

    #[test]
    fn uniform_u64_is_uniform() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        for m in [1u64, 2, 3, 7, 10] {
            let n = 70_000u64;
            let mut c = vec![0u64; m as usize];
            for _ in 0..n {
                c[uniform_u64(&mut rng, m) as usize] += 1;
            }
            // chi-square with m-1 dof; 40 is far beyond the 1e-6 tail for m ≤ 10
            let e = n as f64 / m as f64;
            let chi: f64 = c.iter().map(|&o| (o as f64 - e).powi(2) / e).sum();
            assert!(chi < 40.0, "m={m}: {c:?}");
        }
        // Large m near 2^64 exercises the rejection branch.
        let m = u64::MAX / 3 * 2;
        let above = (0..10_000)
            .filter(|_| uniform_u64(&mut rng, m) >= m / 2)
            .count();
        assert!((4_700..5_300).contains(&above), "{above}");
    }

    #[test]
    fn bernoulli_exp_matches_probability() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for &(n, d) in &[(1u32, 3u32), (5, 2), (0, 1)] {
            let g = Rational::new(n, d).unwrap();
            let trials = 40_000;
            let hits = (0..trials).filter(|_| bernoulli_exp(&mut rng, &g)).count();
            let p = (-(n as f64) / d as f64).exp();
            let sd = (p * (1.0 - p) / trials as f64).sqrt().max(1e-9);
            let z = (hits as f64 / trials as f64 - p) / sd;
            assert!(z.abs() < 5.0, "γ={n}/{d}: z={z}");
        }
    }

    #[test]
    fn randomized_response_rates() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let eps = Rational::from_f64(1.0).unwrap();
        let trials = 30_000;
        let mut counts = [0u64; 3];
        for _ in 0..trials {
            counts[randomized_response(&mut rng, 1, 3, &eps).unwrap()] += 1;
        }
        let e = 1f64.exp();
        let p = e / (e + 2.0);
        let z = (counts[1] as f64 / trials as f64 - p) / (p * (1.0 - p) / trials as f64).sqrt();
        assert!(z.abs() < 5.0, "z={z}");
        let est = randomized_response_estimate(&counts, 1.0);
        assert!(
            (est[1] - 1.0).abs() < 0.05 && est[0].abs() < 0.05,
            "{est:?}"
        );
    }

    #[test]
    fn exponential_mechanism_weights() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let u = [0i64, 1, 3];
        let c = Rational::new(1u32, 2u32).unwrap(); // weights exp(u/2)
        let trials = 30_000;
        let mut counts = [0f64; 3];
        for _ in 0..trials {
            counts[exponential_mechanism(&mut rng, &u, &c).unwrap()] += 1.0;
        }
        let w: Vec<f64> = u.iter().map(|&x| (x as f64 / 2.0).exp()).collect();
        let total: f64 = w.iter().sum();
        for i in 0..3 {
            let p = w[i] / total;
            let z = (counts[i] / trials as f64 - p) / (p * (1.0 - p) / trials as f64).sqrt();
            assert!(z.abs() < 5.0, "candidate {i}: z={z}");
        }
        assert!(exponential_mechanism(&mut rng, &[], &c).is_err());
    }

    #[test]
    fn poisson_mean_and_limit() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let lam = Rational::new(7u32, 3u32).unwrap();
        let n = 20_000;
        let mean = (0..n)
            .map(|_| poisson(&mut rng, &lam).unwrap() as f64)
            .sum::<f64>()
            / n as f64;
        let z = (mean - 7.0 / 3.0) / (7.0f64 / 3.0 / n as f64).sqrt();
        assert!(z.abs() < 5.0, "z={z}");
        let huge = Rational::new(BigUint::from(MAX_POISSON_MEAN) * 4u32, 1u32).unwrap();
        assert!(poisson(&mut rng, &huge).is_err());
        // Large means take the rejection path; its mean and variance are λ.
        let lam = Rational::new(2_000_001u32, 2u32).unwrap();
        let xs: Vec<f64> = (0..4000)
            .map(|_| poisson(&mut rng, &lam).unwrap() as f64)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        assert!(
            ((mean - 1_000_000.5) / (1_000_000.5f64 / 4000.0).sqrt()).abs() < 5.0,
            "{mean}"
        );
        assert!((0.9e6..1.1e6).contains(&var), "{var}");
    }
}
