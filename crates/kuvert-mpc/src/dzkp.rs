//! Distributed zero-knowledge proofs that every AND message was honest
//! (Boneh–Boyle–Corrigan-Gibbs–Gilboa–Ishai, CRYPTO 2019, in the
//! replicated three-party setting of ipa-core's DZKP validator).
//!
//! # The statement
//! In [`Party::and`] party `i` sends its previous party the word
//!
//! ```text
//!   z_i = F(k_i) ^ F(k_{i+1}) ^ x_i·y_i ^ x_i·y_{i+1} ^ x_{i+1}·y_i
//! ```
//!
//! (bitwise, 64 AND gates per word). Each side of it is known to one of the
//! other two parties: the *left verifier* `L = i-1` holds `x_i, y_i, F(k_i)`
//! and received `z_i`; the *right verifier* `R = i+1` holds `x_{i+1},
//! y_{i+1}, F(k_{i+1})`. With `e = z_i ^ F(k_i) ^ x_i·y_i` (known to `L`)
//! and `f = F(k_{i+1})` (known to `R`) the message was honest iff, gate by
//! gate, `e + f = x_i·y_{i+1} + y_i·x_{i+1}` in GF(2^64) ([`crate::gf64`],
//! where bits multiply as AND). Only the prover `i` knows both sides.
//!
//! # The proof (per prover, all three at once)
//! 1. **Batching.** `L` and `R` share a PRF key the prover does not know
//!    (`k_{i+2}`). From it they draw random `γ_0 .. γ_{L-1}` and `β` (one
//!    per bit position), after the AND messages were sent, set `α_j = Π_l
//!    γ_l^{bit l of j}` for the words `j < W` (the batch padded to a power
//!    of two `W = 2^L`), and the claim for all gates `g = (word j, bit b)`
//!    becomes one inner product with `θ_g = α_j·β_b`:
//!    `⟨u, v⟩ = C_L + C_R`, `u = (θ·x_i ‖ θ·y_i)` (held by `L`),
//!    `v = (y_{i+1} ‖ x_{i+1})` (held by `R`), `C_L = Σ θ·e`, `C_R = Σ θ·f`.
//!    `R` then gives the prover the seed of `α, β`.
//! 2. **Halving** (as in the fully linear PCPs of BBCGI): with vectors of
//!    length `2h`, the prover sends `p(0), p(X)` of the degree-2 polynomial
//!    `p(t) = Σ_{k<h} (u_k + t(u_k + u_{k+h}))·(v_k + t(v_k + v_{k+h}))`,
//!    additively shared: `R`'s share comes from the PRF key `R` shares with
//!    the prover (never sent), `L`'s share is sent to `L`. `p(1) = C - p(0)`
//!    is implied, which is the sum check. `R` then sends the prover the
//!    challenge `r` (drawn from the verifiers' key, so unknown to the prover
//!    before its message); `L` and `R` fold their vector with `r` and take
//!    their shares of `p(r)` as the new claim.
//! 3. **Masked last step.** At length 2 each side is extended to a degree-2
//!    polynomial through a random third point the prover shares with that
//!    verifier (`ρ_u` with `L`, `ρ_v` with `R`); the prover sends shares of
//!    the degree-4 product at four points; at a last challenge `r ∉ {0, 1}`
//!    `L` sends `R` `(u(r), p_L(r))` and `R` sends `L` `(v(r), p_R(r))`, and
//!    each checks `u(r)·v(r) = p_L(r) + p_R(r)`. `u(r)` is one-time padded by
//!    `ρ_u`, `v(r)` by `ρ_v`, so neither verifier learns anything about the
//!    other's shares (zero knowledge); everything else a verifier sees is a
//!    share masked by a PRF output it does not know, or a challenge.
//! 4. **Abort round.** Every party reports its two verdicts; any failure, own
//!    or reported, stops every honest party with [`MpcError::Check`]
//!    (`check = "and-proof"` or `"abort-signal"`).
//!
//! # Soundness
//! If any AND message of the batch was wrong, the honest verifiers accept
//! with probability at most `(1 + L + 2·K + 4) / 2^64` for `K` halving
//! levels (`(1 + L)/2^64` for the batching: `β` first, a degree-1
//! polynomial, then `α`, a multilinear polynomial in the `L` values `γ`;
//! `2/2^64` per level and `4/2^64` at the end, Schwartz–Zippel): below
//! `2^-57` for batches up to [`MAX_BATCH_WORDS`] words (`L = 16`, `K = 22`:
//! `65/2^64 < 2^-57.9`). A cheating prover's choices are fixed before each
//! challenge it could exploit is drawn, and the challenges come from a key
//! it never sees. Derivation: docs/protocols.md.
//!
//! # The first levels run on the bits
//! Because `α` is a tensor product, gate `k + N/2^i` carries the weight
//! `γ_{L-i}·θ_k`, so the weight factors out of the halving folds: after
//! `f` folds a vector's element is `θ_k` times a linear form in `2^f` bits
//! of the AND transcript, with coefficients fixed by the challenges. A
//! level's polynomial is then `Σ_{i,j} c_i(t)·c'_j(t)·Σ_k θ_k (bit_i ∧
//! bit'_j)_k`, sums of `β` over set bits (byte tables) weighted by `α` per
//! word: no field product per gate. The prover does the first 2 levels
//! (3 for batches of 4096 words or more) this way and only then writes
//! out field vectors, a quarter (an eighth) of the gates long; the
//! verifiers write out their folded sides at the same point. The messages
//! are exactly those of the plain halving, so soundness and zero knowledge
//! are unchanged; a unit test compares every bit level with the halving on
//! the spelled-out field vectors.
//!
//! # Cost
//! Per batch of `w` AND words (`64·w` gates) and per party: `2K + 4` rounds
//! with `K = 6 + log2 W` (`W`: `w` rounded up to a power of two, at least
//! 2), and `24K + 82` bytes sent (16 per level and 8
//! per challenge, 16 for the seed, 32 for the last step, 32 in the exchange,
//! 2 status bytes) whatever the size: 610 bytes for a full batch of 2^22
//! gates, so an AND stays at about one bit sent per gate. Work is linear in
//! the gates (about 2 GF(2^64) products per gate for a full batch, and a
//! few byte-table lookups; before the bit levels it was 8) and memory is
//! bounded by the batch size: a party proves longer transcripts in batches of
//! [`MAX_BATCH_WORDS`] words, one after the other (so rounds grow with the
//! number of batches), and proves by itself once that many are pending.

use crate::gf64::{interpolate, run_kernel, Gf64, Kernel};
use crate::party::{Party, Result};
use crate::prf::{Prf, KEY_LEN};
use crate::transport::{next, prev};
use crate::verified::STATUS_FAIL_AND_PROOF;
use zeroize::Zeroize;

/// The largest batch one proof covers (a longer transcript is proven in
/// batches of this size, one after the other), and the pending AND words
/// that trigger a proof inside [`Party::and`]. Bounds the proof's working
/// memory (four field vectors of `64·W/4` elements after the bit levels:
/// 512 bytes per AND word of a full batch, 32 MiB in all); the
/// recorded transcript (7 words per AND word) is bounded by the largest
/// single AND call plus this.
pub const MAX_BATCH_WORDS: usize = 1 << 16;

/// Sub-stream tags under a proof's nonce.
const CHALLENGES: u64 = 1;
const PROOF_SHARES: u64 = 2;
const MASK_U: u64 = 3;
const MASK_V: u64 = 4;

/// What one party keeps of its AND gates until they are proven: its two
/// components of both operands, its two PRF outputs of the zero-sharing, and
/// the word it received from its next party. Wiped on drop.
#[derive(Default)]
pub(crate) struct AndLog {
    pub xa: Vec<u64>,
    pub xb: Vec<u64>,
    pub ya: Vec<u64>,
    pub yb: Vec<u64>,
    /// `F(k_i)` (key shared with the previous party).
    pub fp: Vec<u64>,
    /// `F(k_{i+1})` (key shared with the next party).
    pub fnx: Vec<u64>,
    /// `z_{i+1}`, received from the next party.
    pub zr: Vec<u64>,
    /// The proof's working vectors, kept across batches (see
    /// [`Party::prove_batch`]); wiped after each use and on drop.
    pub scratch: Scratch,
}

/// Wipe the first `used` elements of a proof buffer (all a batch wrote;
/// the folds only shortened it, leaving the rest in its spare capacity)
/// and empty it, keeping its capacity: wiping the whole capacity after
/// every small batch cost more than the proof, and refilling the vector
/// to wipe it wrote every element twice.
fn wipe_used(b: &mut Vec<Gf64>, used: usize) {
    let len = b.len();
    b.as_mut_slice().zeroize();
    let spare = b.spare_capacity_mut();
    let k = used.saturating_sub(len).min(spare.len());
    spare[..k].zeroize();
    b.clear();
}

/// Buffers for the four folded vectors of a proof.
#[derive(Default)]
pub(crate) struct Scratch {
    bufs: [Vec<Gf64>; 4],
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for b in &mut self.bufs {
            b.zeroize();
        }
    }
}

impl AndLog {
    pub fn words(&self) -> usize {
        self.xa.len()
    }

    /// The logged gates; the scratch buffers stay.
    fn take(&mut self) -> AndLog {
        let scratch = std::mem::take(&mut self.scratch);
        let gates = std::mem::take(self);
        self.scratch = scratch;
        gates
    }

    /// The words in `r`, borrowed.
    fn batch(&self, r: std::ops::Range<usize>) -> Batch<'_> {
        Batch {
            xa: &self.xa[r.clone()],
            xb: &self.xb[r.clone()],
            ya: &self.ya[r.clone()],
            yb: &self.yb[r.clone()],
            fp: &self.fp[r.clone()],
            fnx: &self.fnx[r.clone()],
            zr: &self.zr[r],
        }
    }
}

/// The part of an [`AndLog`] one proof covers.
struct Batch<'a> {
    xa: &'a [u64],
    xb: &'a [u64],
    ya: &'a [u64],
    yb: &'a [u64],
    fp: &'a [u64],
    fnx: &'a [u64],
    zr: &'a [u64],
}

impl Drop for AndLog {
    fn drop(&mut self) {
        for v in [
            &mut self.xa,
            &mut self.xb,
            &mut self.ya,
            &mut self.yb,
            &mut self.fp,
            &mut self.fnx,
            &mut self.zr,
        ] {
            v.zeroize();
        }
    }
}

/// The batching coefficients `α` (per word) and `β` (per bit position),
/// with byte tables for sums of `β` over the set bits of a word.
///
/// `α` is a tensor product, `α_j = Π_l γ_l^{bit l of j}` over the bits of
/// the word index (padded to a power of two `W`), so that gate `k + N/2^i`
/// (word `j + W/2^i`, same bit) has `θ = γ_{L-i}·θ_k`: the weight factors
/// out of the halving folds, and the first [`bit_levels`] levels run on
/// the bits with byte tables instead of one field product per gate.
struct Theta {
    alpha: Vec<Gf64>,
    /// `γ_0 .. γ_{L-1}`, `L = log2 W`.
    gamma: Vec<Gf64>,
    beta: [Gf64; 64],
    /// `bytes[i][v]` = `Σ β_{8i+t}` over the set bits `t` of `v`.
    bytes: Box<[[Gf64; 256]; 8]>,
}

/// Halving levels the prover runs on the bits before it writes out field
/// vectors (of `64·W/2^(m-1)` elements): the `m`-th level sums
/// `4^m` weighted bit products per word, so a third one pays only for
/// large batches. Needs `W >= 2^(m-1)` words.
fn bit_levels(w: usize) -> usize {
    if w >= 4096 {
        3
    } else {
        2
    }
}

/// Words in a padded batch: a power of two, at least 2 (so that the second
/// bit level pairs whole words).
fn padded_words(words: usize) -> usize {
    words.next_power_of_two().max(2)
}

impl Theta {
    /// `w` is the padded word count `W` (a power of two).
    fn from_seed(seed: [u64; 2], w: usize) -> Theta {
        debug_assert!(w.is_power_of_two());
        let l = w.trailing_zeros() as usize;
        let mut key = [0u8; KEY_LEN];
        key[..8].copy_from_slice(&seed[0].to_le_bytes());
        key[8..].copy_from_slice(&seed[1].to_le_bytes());
        let prf = Prf::new(key);
        key.zeroize();
        let stream = prf.words(0, l + 64);
        let gamma: Vec<Gf64> = stream[..l].iter().map(|w| Gf64(*w)).collect();
        let mut beta = [Gf64::ZERO; 64];
        for (b, w) in beta.iter_mut().zip(&stream[l..]) {
            *b = Gf64(*w);
        }
        let mut bytes = Box::new([[Gf64::ZERO; 256]; 8]);
        for (i, table) in bytes.iter_mut().enumerate() {
            for v in 1..256usize {
                let low = v.trailing_zeros() as usize;
                table[v] = table[v & (v - 1)] + beta[8 * i + low];
            }
        }
        let mut alpha = Vec::with_capacity(w);
        alpha.push(Gf64::ONE);
        for g in &gamma {
            let upper: Vec<Gf64> = alpha.iter().map(|a| *a * *g).collect();
            alpha.extend(upper);
        }
        Theta {
            alpha,
            gamma,
            beta,
            bytes,
        }
    }

    /// `Σ_j α_j B(w_j)`.
    fn weigh(&self, w: impl Iterator<Item = u64>) -> Gf64 {
        let mut acc = Gf64::ZERO;
        for (alpha, w) in self.alpha.iter().zip(w) {
            acc += *alpha * self.bits(w);
        }
        acc
    }

    /// `B(w) = Σ_{b set in w} β_b`.
    fn bits(&self, w: u64) -> Gf64 {
        let mut s = Gf64::ZERO;
        for (i, table) in self.bytes.iter().enumerate() {
            s += table[(w >> (8 * i)) as usize & 0xff];
        }
        s
    }

    /// The factor by which fold `i >= 1` (pairing word `j` with `j +
    /// W/2^i`) scales the upper element's weight: `γ_{L-i}`.
    fn fold_factor(&self, i: usize) -> Gf64 {
        self.gamma[self.gamma.len() - i]
    }

    /// `p(0)` and `p(X)` of halving level `l = rs.len()`, computed on the
    /// bits. After the folds at `rs`, a side's element `k` is a linear
    /// form in `2^(l+1)` bits ([`Sources`]), with the weight `θ_k` factored
    /// out on the weighted side; the level's polynomial is that of one more
    /// fold at the variable `t`, so
    /// `p(t) = Σ_{i,j} cu_i(t)·cv_j(t)·Σ_k θ_k (u-bit_i ∧ v-bit_j)_k`, and
    /// each inner sum is `Σ_j α_j B(·)` over the words.
    fn bit_level_poly(&self, u: [&[u64]; 2], v: [&[u64]; 2], rs: &[Gf64], w: usize) -> [Gf64; 2] {
        let l = rs.len();
        let su = Sources::new(u, l + 1, w);
        let sv = Sources::new(v, l + 1, w);
        let n = su.count();
        // The inner sums, in chunks of words that stay in cache.
        const CHUNK: usize = 256;
        let span = w >> l;
        let mut sums = vec![Gf64::ZERO; n * n];
        let mut gu = vec![0u64; CHUNK * n];
        let mut gv = vec![0u64; CHUNK * n];
        let mut buf = vec![Gf64::ZERO; CHUNK];
        for start in (0..span).step_by(CHUNK) {
            let len = CHUNK.min(span - start);
            su.gather(start..start + len, &mut gu);
            sv.gather(start..start + len, &mut gv);
            for i in 0..n {
                for j in 0..n {
                    for (k, b) in buf[..len].iter_mut().enumerate() {
                        *b = self.bits(gu[k * n + i] & gv[k * n + j]);
                    }
                    run_kernel(Kernel::Dot {
                        a: &self.alpha[start..start + len],
                        b: &buf[..len],
                        out: &mut sums[i * n + j],
                    });
                }
            }
        }
        let mut out = [Gf64::ZERO; 2];
        for (o, t) in out.iter_mut().zip([Gf64::ZERO, Gf64::X]) {
            let mut with_t = rs.to_vec();
            with_t.push(t);
            let cu = coefficients(&with_t, |i| self.fold_factor(i));
            let cv = coefficients(&with_t, |_| Gf64::ONE);
            for i in 0..n {
                let mut row = Gf64::ZERO;
                for j in 0..n {
                    row += cv[j] * sums[i * n + j];
                }
                *o += cu[i] * row;
            }
        }
        buf.zeroize();
        gu.zeroize();
        gv.zeroize();
        sums.zeroize();
        out
    }

    /// The weighted side `θ·(first ‖ second)` after the folds at `rs`
    /// (`64·W/2^(rs.len()-1)` elements), into `out` (its buffer reused).
    fn fold_bits(&self, src: [&[u64]; 2], rs: &[Gf64], w: usize, out: &mut Vec<Gf64>) {
        let s = Sources::new(src, rs.len(), w);
        let form = subset_sums(&coefficients(rs, |i| self.fold_factor(i)));
        let table: Vec<Gf64> = self
            .beta
            .iter()
            .flat_map(|b| form.iter().map(move |c| *b * *c))
            .collect();
        let mut codes = s.codes();
        out.clear();
        out.reserve(codes.len());
        run_kernel(Kernel::FoldBits {
            alpha: &self.alpha[..s.span()],
            table: &table,
            width: form.len(),
            codes: &codes,
            out,
        });
        codes.zeroize();
    }
}

/// The plain side `(first ‖ second)` after the folds at `rs`, into `out`
/// (its buffer reused).
fn fold_bits_plain(src: [&[u64]; 2], rs: &[Gf64], w: usize, out: &mut Vec<Gf64>) {
    let s = Sources::new(src, rs.len(), w);
    let form = subset_sums(&coefficients(rs, |_| Gf64::ONE));
    let mut codes = s.codes();
    out.clear();
    out.extend(codes.iter().map(|c| form[*c as usize]));
    codes.zeroize();
}

/// Transpose an 8×8 bit matrix held in a word (bit `c` of byte `r` moves to
/// bit `r` of byte `c`; Hacker's Delight, 7-3).
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00aa_00aa_00aa_00aa;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_cccc_0000_cccc;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_f0f0_f0f0;
    x ^ t ^ (t << 28)
}

/// The bits a side's element reads after `folds` folds (`folds >= 1`):
/// fold 0 pairs the two parts gate by gate, fold `i >= 1` pairs word `j`
/// with word `j + W/2^i`. Element `64j + b` (`j < W/2^(folds-1)`) reads
/// bit `b` of source `s + 2q`: part `s`, word `j + offset(q)` with
/// `offset(q) = Σ_i (bit i-1 of q)·W/2^i` (zero past the batch).
struct Sources<'a> {
    parts: [&'a [u64]; 2],
    offsets: Vec<usize>,
    span: usize,
}

impl<'a> Sources<'a> {
    fn new(parts: [&'a [u64]; 2], folds: usize, w: usize) -> Sources<'a> {
        let offsets = (0..1usize << (folds - 1))
            .map(|q| {
                (1..folds)
                    .filter(|i| q >> (i - 1) & 1 == 1)
                    .map(|i| w >> i)
                    .sum()
            })
            .collect();
        Sources {
            parts,
            offsets,
            span: w >> (folds - 1),
        }
    }

    fn count(&self) -> usize {
        2 * self.offsets.len()
    }

    /// Words per source.
    fn span(&self) -> usize {
        self.span
    }

    /// Per element `64j + b` (`j < span()`), its code: bit `s` is bit `b` of
    /// source `s` (at most 8 sources).
    fn codes(&self) -> Vec<u8> {
        let n = self.count();
        debug_assert!(n <= 8);
        let mut g = [0u64; 8];
        let mut out = vec![0u8; 64 * self.span];
        for (j, codes) in out.chunks_exact_mut(64).enumerate() {
            self.gather(j..j + 1, &mut g[..n]);
            for (i, chunk) in codes.chunks_exact_mut(8).enumerate() {
                // Byte i of each source is row s of an 8×8 bit matrix;
                // transposed, byte t holds bit 8i + t of every source.
                let mut m = 0u64;
                for (s, w) in g[..n].iter().enumerate() {
                    m |= ((w >> (8 * i)) & 0xff) << (8 * s);
                }
                chunk.copy_from_slice(&transpose8(m).to_le_bytes());
            }
        }
        g.zeroize();
        out
    }

    /// The source words of words `range`, `count()` per word, into `out`.
    fn gather(&self, range: std::ops::Range<usize>, out: &mut [u64]) {
        let n = self.count();
        for (k, j) in range.enumerate() {
            for (q, off) in self.offsets.iter().enumerate() {
                for (s, part) in self.parts.iter().enumerate() {
                    out[k * n + s + 2 * q] = part.get(j + off).copied().unwrap_or(0);
                }
            }
        }
    }
}

/// The coefficients of a side's linear form over its [`Sources`] after
/// folds at `rs`: source `s + 2q` gets `(1 + r_0 | r_0)` for part `s` =
/// 0 | 1, times, per fold `i >= 1`, `1 + r_i` if bit `i-1` of `q` is clear
/// and `r_i·g(i)` if set (`g` is the weight's factor, 1 on the plain side).
fn coefficients(rs: &[Gf64], g: impl Fn(usize) -> Gf64) -> Vec<Gf64> {
    let mut c = vec![Gf64::ONE + rs[0], rs[0]];
    for (i, r) in rs.iter().enumerate().skip(1) {
        let upper = *r * g(i);
        let lower = Gf64::ONE + *r;
        let mut next: Vec<Gf64> = c.iter().map(|x| *x * lower).collect();
        next.extend(c.iter().map(|x| *x * upper));
        c = next;
    }
    c
}

/// `form[code]` = the sum of `c_s` over the set bits `s` of `code`.
fn subset_sums(c: &[Gf64]) -> Vec<Gf64> {
    let mut form = vec![Gf64::ZERO; 1 << c.len()];
    for code in 1..form.len() {
        form[code] = form[code & (code - 1)] + c[code.trailing_zeros() as usize];
    }
    form
}

/// `p(0)` and `p(X)` of one halving level.
fn level_poly(u: &[Gf64], v: &[Gf64]) -> [Gf64; 2] {
    let mut out = [Gf64::ZERO; 2];
    run_kernel(Kernel::Level {
        u,
        v,
        out: &mut out,
    });
    out
}

/// Fold a vector with challenge `r`: `w_k + r(w_k + w_{k+h})`.
fn fold(w: &mut Vec<Gf64>, r: Gf64) {
    let h = w.len() / 2;
    let (lo, hi) = w.split_at_mut(h);
    run_kernel(Kernel::Fold { lo, hi, r });
    w.truncate(h);
}

/// A verifier's share of the next claim: its shares of `p(0), p(1), p(X)`
/// interpolated at `r`.
fn next_claim(claim: Gf64, p0: Gf64, px: Gf64, r: Gf64) -> Gf64 {
    interpolate(&LEVEL_POINTS, &[p0, claim + p0, px], r)
}

/// Both verifier roles after halving level `level`: the left verifier's
/// claim from the prover's shares it received, the right verifier's from
/// its own PRF shares, each at its challenge. Returns the two challenges
/// (as left verifier, as right verifier) to fold with.
fn verifier_claims(
    level: usize,
    from_prover: [Gf64; 2],
    claims: [&mut Gf64; 2],
    challenges: [&[u64]; 2],
    shares_as_right: &[u64],
) -> (Gf64, Gf64) {
    let [l_claim, r_claim] = claims;
    let r_left = challenge(challenges[0], level);
    *l_claim = next_claim(*l_claim, from_prover[0], from_prover[1], r_left);
    let r_right = challenge(challenges[1], level);
    *r_claim = next_claim(
        *r_claim,
        Gf64(shares_as_right[2 * level]),
        Gf64(shares_as_right[2 * level + 1]),
        r_right,
    );
    (r_left, r_right)
}

const LEVEL_POINTS: [Gf64; 3] = [Gf64(0), Gf64(1), Gf64(2)];
/// Points of the last step's degree-4 product: `0, 1` and the three sent.
const LAST_POINTS: [Gf64; 5] = [Gf64(0), Gf64(1), Gf64(2), Gf64(3), Gf64(4)];

/// Words of a challenge stream: the seed of `θ` (2 words), one challenge per
/// level, the last challenge.
fn challenge(stream: &[u64], level: usize) -> Gf64 {
    Gf64(stream[2 + level])
}

/// The last challenge, kept outside `{0, 1}` (where one side's mask would
/// vanish).
fn last_challenge(stream: &[u64], levels: usize) -> Gf64 {
    let r = stream[2 + levels];
    Gf64(if r < 2 { r + 2 } else { r })
}

fn field_bytes(v: &[Gf64]) -> Vec<u8> {
    v.iter().flat_map(|g| g.0.to_le_bytes()).collect()
}

fn read_field(bytes: &[u8]) -> Vec<Gf64> {
    bytes
        .chunks_exact(8)
        .map(|c| Gf64(u64::from_le_bytes(c.try_into().expect("8 bytes"))))
        .collect()
}

impl Party {
    /// Prove and verify every AND gate since the last proof (see
    /// [`crate::dzkp`]). Every party must call it at the same point; a
    /// no-op without pending gates or in semi-honest mode. On failure every
    /// honest party returns [`MpcError::Check`] and the session must end.
    pub fn verify_ands(&mut self) -> Result<()> {
        let Some(log) = self.and_log_mut() else {
            return Ok(());
        };
        if log.words() == 0 {
            return Ok(());
        }
        let log = log.take();
        // One proof per batch of at most MAX_BATCH_WORDS words, one after
        // the other, so that a single large AND call cannot make a proof's
        // working memory unbounded.
        let words = log.words();
        for start in (0..words).step_by(MAX_BATCH_WORDS) {
            self.prove_batch(&log.batch(start..words.min(start + MAX_BATCH_WORDS)))?;
        }
        Ok(())
    }

    /// The two rounds of one halving level: the prover's shares of `p(0),
    /// p(X)` to its left verifier (the right verifier's shares are PRF
    /// output it never sends), then the right verifier's challenge to its
    /// prover. Returns what this party received as left verifier and as
    /// prover.
    fn level_rounds(
        &mut self,
        p: [Gf64; 2],
        shares_as_prover: &[u64],
        ch_as_right: &[u64],
        level: usize,
    ) -> Result<([Gf64; 2], Gf64)> {
        let (nx, pv) = (next(self.id()), prev(self.id()));
        let to_left = [
            p[0] + Gf64(shares_as_prover[2 * level]),
            p[1] + Gf64(shares_as_prover[2 * level + 1]),
        ];
        let mut got = [0u8; 16];
        self.round_bytes(&[(pv, &field_bytes(&to_left))], &mut [(nx, &mut got[..])])?;
        let from_prover = read_field(&got);
        let r_out = ch_as_right[2 + level].to_le_bytes();
        let mut r_in = [0u8; 8];
        self.round_bytes(&[(pv, &r_out[..])], &mut [(nx, &mut r_in[..])])?;
        Ok((
            [from_prover[0], from_prover[1]],
            Gf64(u64::from_le_bytes(r_in)),
        ))
    }

    fn prove_batch(&mut self, log: &Batch<'_>) -> Result<()> {
        let (me, nx, pv) = (self.id(), next(self.id()), prev(self.id()));
        let words = log.xa.len();
        // Each half of the vectors (64 gates per word) is padded to a power
        // of two `64·W`, `K = log2(half)` halving levels bring them to
        // length 2.
        let w = padded_words(words);
        let half = 64 * w;
        let levels = half.trailing_zeros() as usize;
        let bit_levels = bit_levels(w);
        let nonce = self.fresh_nonce();

        // The two challenge streams: as left verifier of `nx` (key shared
        // with `pv`, the right verifier of `nx`), and as right verifier of
        // `pv` (key shared with `nx`).
        let ch_as_left = self.keys().prev.words(nonce | CHALLENGES, levels + 3);
        let ch_as_right = self.keys().next.words(nonce | CHALLENGES, levels + 3);
        // Proof shares: the right verifier's part, from the key the prover
        // shares with it.
        let shares_as_prover = self.keys().next.words(nonce | PROOF_SHARES, 2 * levels + 4);
        let shares_as_right = self.keys().prev.words(nonce | PROOF_SHARES, 2 * levels + 4);
        let rho_u_prover = Gf64(self.keys().prev.words(nonce | MASK_U, 1)[0]);
        let rho_u_left = Gf64(self.keys().next.words(nonce | MASK_U, 1)[0]);
        let rho_v_prover = Gf64(self.keys().next.words(nonce | MASK_V, 1)[0]);
        let rho_v_right = Gf64(self.keys().prev.words(nonce | MASK_V, 1)[0]);

        // Round: the right verifier gives its prover the seed of θ.
        let mut seed_bytes = [0u8; 16];
        let seed_out: Vec<u8> = ch_as_right[..2]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        self.round_bytes(&[(pv, &seed_out)], &mut [(nx, &mut seed_bytes[..])])?;
        let seed = [
            u64::from_le_bytes(seed_bytes[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(seed_bytes[8..].try_into().expect("8 bytes")),
        ];
        let theta_prover = Theta::from_seed(seed, w);
        let theta_left = Theta::from_seed([ch_as_left[0], ch_as_left[1]], w);
        let theta_right = Theta::from_seed([ch_as_right[0], ch_as_right[1]], w);

        // Prover: u = θ(x_i ‖ y_i), v = (y_{i+1} ‖ x_{i+1}). Left verifier
        // of nx: x_{nx} = my xb, y_{nx} = my yb, F(k_{nx}) = my fnx, so its
        // side is θ(xb ‖ yb) and e = z_{nx} ^ F(k_{nx}) ^ x_{nx} y_{nx}.
        // Right verifier of pv: x_{pv+1} = my xa, y_{pv+1} = my ya, f =
        // F(k_{pv+1}) = my fp, its side (ya ‖ xa).
        let (u_src, v_src) = ([log.xa, log.ya], [log.yb, log.xb]);
        let (lu_src, rv_src) = ([log.xb, log.yb], [log.ya, log.xa]);
        let mut l_claim =
            theta_left.weigh((0..words).map(|j| log.zr[j] ^ log.fnx[j] ^ (log.xb[j] & log.yb[j])));
        let mut r_claim = theta_right.weigh(log.fp.iter().copied());

        // The first levels run on the bits (see `Theta`): every party
        // keeps the challenges it folds with.
        let (mut rp, mut rl, mut rr) = (Vec::new(), Vec::new(), Vec::new());
        for level in 0..bit_levels {
            let p = theta_prover.bit_level_poly(u_src, v_src, &rp, w);
            let (from_prover, r_prover) =
                self.level_rounds(p, &shares_as_prover, &ch_as_right, level)?;
            rp.push(r_prover);
            let (r_left, r_right) = verifier_claims(
                level,
                from_prover,
                [&mut l_claim, &mut r_claim],
                [&ch_as_left, &ch_as_right],
                &shares_as_right,
            );
            rl.push(r_left);
            rr.push(r_right);
        }
        // The four folded vectors (64·W/2^(m-1) elements each) live in
        // buffers kept across batches: allocating them afresh made the
        // kernel zero new pages for every batch.
        let mut scratch = self
            .and_log_mut()
            .map(|l| std::mem::take(&mut l.scratch))
            .unwrap_or_default();
        let [pu, pv_, lu, rv] = &mut scratch.bufs;
        theta_prover.fold_bits(u_src, &rp, w, pu);
        fold_bits_plain(v_src, &rp, w, pv_);
        theta_left.fold_bits(lu_src, &rl, w, lu);
        fold_bits_plain(rv_src, &rr, w, rv);
        let used = pu.len();

        for level in bit_levels..levels {
            let p = level_poly(pu, pv_);
            let (from_prover, r_prover) =
                self.level_rounds(p, &shares_as_prover, &ch_as_right, level)?;
            fold(pu, r_prover);
            fold(pv_, r_prover);
            let (r_left, r_right) = verifier_claims(
                level,
                from_prover,
                [&mut l_claim, &mut r_claim],
                [&ch_as_left, &ch_as_right],
                &shares_as_right,
            );
            fold(lu, r_left);
            fold(rv, r_right);
        }

        // Last step: degree-2 extensions through the masks; the prover
        // shares the product at 0, X, X+1, X^2 (its value at 1 is implied).
        let base = 2 * levels;
        let ext =
            |w: &[Gf64], rho: Gf64, t: Gf64| interpolate(&LEVEL_POINTS, &[w[0], w[1], rho], t);
        let sent = [
            LAST_POINTS[0],
            LAST_POINTS[2],
            LAST_POINTS[3],
            LAST_POINTS[4],
        ];
        let to_left: Vec<Gf64> = sent
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                ext(pu, rho_u_prover, t) * ext(pv_, rho_v_prover, t)
                    + Gf64(shares_as_prover[base + k])
            })
            .collect();
        let mut got = [0u8; 32];
        self.round_bytes(&[(pv, &field_bytes(&to_left))], &mut [(nx, &mut got[..])])?;
        let from_prover = read_field(&got);

        // Each verifier's share of the product polynomial at the last
        // challenge, and its own side's extension there.
        let r_left = last_challenge(&ch_as_left, levels);
        let l_vals = [
            from_prover[0],
            l_claim + from_prover[0],
            from_prover[1],
            from_prover[2],
            from_prover[3],
        ];
        let l_share = interpolate(&LAST_POINTS, &l_vals, r_left);
        let l_side = ext(lu, rho_u_left, r_left);
        wipe_used(lu, used);
        let r_right = last_challenge(&ch_as_right, levels);
        let rs = |k: usize| Gf64(shares_as_right[base + k]);
        let r_vals = [rs(0), r_claim + rs(0), rs(1), rs(2), rs(3)];
        let r_share = interpolate(&LAST_POINTS, &r_vals, r_right);
        let r_side = ext(rv, rho_v_right, r_right);
        wipe_used(rv, used);
        wipe_used(pu, used);
        wipe_used(pv_, used);
        // Wiped, capacity kept: back for the next batch.
        if let Some(log) = self.and_log_mut() {
            log.scratch = scratch;
        }

        // Exchange between the two verifiers of each prover: as left
        // verifier of nx, to its right verifier pv; as right verifier of pv,
        // to its left verifier nx.
        let mut from_pv = [0u8; 16];
        let mut from_nx = [0u8; 16];
        self.round_bytes(
            &[
                (pv, &field_bytes(&[l_side, l_share])),
                (nx, &field_bytes(&[r_side, r_share])),
            ],
            &mut [(pv, &mut from_pv[..]), (nx, &mut from_nx[..])],
        )?;
        // As left verifier of nx: pv sent (v(r), p_R(r)).
        let [v_r, p_r]: [Gf64; 2] = read_field(&from_pv).try_into().expect("2 elements");
        let left_ok = l_side * v_r == l_share + p_r;
        // As right verifier of pv: nx sent (u(r), p_L(r)).
        let [u_r, p_l]: [Gf64; 2] = read_field(&from_nx).try_into().expect("2 elements");
        let right_ok = u_r * r_side == p_l + r_share;

        let failure = match (left_ok, right_ok) {
            (true, true) => None,
            (l, r) => {
                let mut who = Vec::new();
                if !l {
                    who.push(format!("party {nx} (checked with party {pv})"));
                }
                if !r {
                    who.push(format!("party {pv} (checked with party {nx})"));
                }
                Some(format!(
                    "party {me}: the proof that the AND messages of {words} words ({} gates) \
                     were honest failed for prover {}; that party sent a wrong AND message \
                     or proof, or its co-verifier a wrong value",
                    64 * words,
                    who.join(" and ")
                ))
            }
        };
        self.abort_round("and-proof", STATUS_FAIL_AND_PROOF, failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_used_empties_a_buffer_and_keeps_its_capacity() {
        let mut b = vec![Gf64::ONE; 64];
        b.truncate(3);
        let cap = b.capacity();
        wipe_used(&mut b, 64);
        assert!(b.is_empty());
        assert_eq!(b.capacity(), cap);
        // A shorter batch next: only its part is written and wiped.
        b.resize(16, Gf64::ONE);
        wipe_used(&mut b, 16);
        assert!(b.is_empty() && b.capacity() == cap);
    }
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// `(θ·first ‖ θ·second)` gate by gate, or the plain bits without `θ`,
    /// each part padded to `half`: the vectors the bit-level first level
    /// stands for.
    fn spelled_out(theta: Option<&Theta>, first: &[u64], second: &[u64], half: usize) -> Vec<Gf64> {
        let mut out = Vec::new();
        for part in [first, second] {
            for (j, w) in part.iter().enumerate() {
                for b in 0..64 {
                    let bit = Gf64(w >> b & 1);
                    out.push(match theta {
                        Some(t) => t.alpha[j] * t.beta[b] * bit,
                        None => bit,
                    });
                }
            }
            out.resize(out.len().next_multiple_of(half), Gf64::ZERO);
        }
        out
    }

    /// Every bit level's polynomial, and the vectors written out after
    /// them, equal the generic halving on the spelled-out field vectors
    /// (for both numbers of bit levels, batches of 1 word up to a few
    /// hundred, words past the batch zero).
    #[test]
    fn the_bit_levels_equal_the_spelled_out_halving() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for words in [1usize, 2, 3, 8, 13, 300] {
            let col =
                |rng: &mut ChaCha20Rng| -> Vec<u64> { (0..words).map(|_| rng.gen()).collect() };
            let (a, b, c, d) = (col(&mut rng), col(&mut rng), col(&mut rng), col(&mut rng));
            let w = padded_words(words);
            let theta = Theta::from_seed([rng.gen(), rng.gen()], w);
            let half = 64 * w;
            // The tensor structure the folds rely on.
            for i in 1..=w.trailing_zeros() as usize {
                for j in 0..w >> i {
                    assert_eq!(
                        theta.alpha[j + (w >> i)],
                        theta.alpha[j] * theta.fold_factor(i)
                    );
                }
            }
            for m in 1..=3usize.min(1 + w.trailing_zeros() as usize) {
                let mut u = spelled_out(Some(&theta), &a, &b, half);
                let mut v = spelled_out(None, &d, &c, half);
                let mut rs = Vec::new();
                for _ in 0..m {
                    assert_eq!(
                        theta.bit_level_poly([&a, &b], [&d, &c], &rs, w),
                        level_poly(&u, &v),
                        "words {words}, level {}",
                        rs.len()
                    );
                    let r = Gf64(rng.gen());
                    fold(&mut u, r);
                    fold(&mut v, r);
                    rs.push(r);
                }
                let (mut got_u, mut got_v) = (vec![Gf64::ONE; 3], Vec::new());
                theta.fold_bits([&a, &b], &rs, w, &mut got_u);
                fold_bits_plain([&d, &c], &rs, w, &mut got_v);
                assert_eq!(got_u, u, "words {words}, {m} bit levels");
                assert_eq!(got_v, v, "words {words}, {m} bit levels");
            }
            // The claim: Σ θ (a d + b c) is the inner product (in
            // characteristic 2 the field sum of bits is their XOR).
            let u = spelled_out(Some(&theta), &a, &b, half);
            let v = spelled_out(None, &d, &c, half);
            let ip: Gf64 = u.iter().zip(&v).map(|(x, y)| *x * *y).sum();
            assert_eq!(
                ip,
                theta.weigh((0..words).map(|j| (a[j] & d[j]) ^ (b[j] & c[j])))
            );
        }
    }
}
