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
//!    (`k_{i+2}`). From it they draw random `α` (one per word) and `β` (one
//!    per bit position), after the AND messages were sent, and the claim for
//!    all gates `g = (word j, bit b)` becomes one inner product with
//!    `θ_g = α_j·β_b`:
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
//! with probability at most `(2 + 2·K + 4) / 2^64` for `K` halving levels
//! (`2/2^64` for the batching: `β` first, then `α`; `2/2^64` per level and
//! `4/2^64` at the end, Schwartz–Zippel): below `2^-58` for batches up to
//! [`MAX_BATCH_WORDS`] words (`K = 22`: `50/2^64 < 2^-58`). A cheating prover's choices are
//! fixed before each challenge it could exploit is drawn, and the
//! challenges come from a key it never sees. Derivation: docs/protocols.md.
//!
//! # Cost
//! Per batch of `w` AND words (`64·w` gates) and per party: `2K + 4` rounds
//! with `K = log2(128·w) - 1`, and `24K + 82` bytes sent (16 per level and 8
//! per challenge, 16 for the seed, 32 for the last step, 32 in the exchange,
//! 2 status bytes) whatever the size: 610 bytes for a full batch of 2^22
//! gates, so an AND stays at about one bit sent per gate. Work is linear in
//! the gates (about 8 GF(2^64) products per gate: the first level runs on
//! the bits with byte tables) and memory is bounded by
//! the batch size: a party proves longer transcripts in batches of
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
/// memory (about 2 KiB per AND word of the batch, 128 MiB in all); the
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

/// Wipe the first `used` elements of a proof buffer (all a batch of
/// `used` gates wrote; the folds only shortened it) and empty it, keeping
/// its capacity: wiping the whole capacity after every small batch cost
/// more than the proof.
fn wipe_used(b: &mut Vec<Gf64>, used: usize) {
    if b.len() < used {
        b.resize(used, Gf64::ZERO);
    }
    b[..used].zeroize();
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
struct Theta {
    alpha: Vec<Gf64>,
    beta: [Gf64; 64],
    /// `bytes[i][v]` = `Σ β_{8i+t}` over the set bits `t` of `v`.
    bytes: Box<[[Gf64; 256]; 8]>,
}

impl Theta {
    fn from_seed(seed: [u64; 2], words: usize) -> Theta {
        let mut key = [0u8; KEY_LEN];
        key[..8].copy_from_slice(&seed[0].to_le_bytes());
        key[8..].copy_from_slice(&seed[1].to_le_bytes());
        let prf = Prf::new(key);
        key.zeroize();
        let stream = prf.words(0, words + 64);
        let mut beta = [Gf64::ZERO; 64];
        for (b, w) in beta.iter_mut().zip(&stream[words..]) {
            *b = Gf64(*w);
        }
        let mut bytes = Box::new([[Gf64::ZERO; 256]; 8]);
        for (i, table) in bytes.iter_mut().enumerate() {
            for v in 1..256usize {
                let low = v.trailing_zeros() as usize;
                table[v] = table[v & (v - 1)] + beta[8 * i + low];
            }
        }
        Theta {
            alpha: stream[..words].iter().map(|w| Gf64(*w)).collect(),
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

    /// `p(0)` and `p(X)` of the first halving level, computed on the bits:
    /// with `u = (θ·a ‖ θ·b)` and `v = (d ‖ c)` (each part padded to the
    /// same power of two), gate `k` contributes
    /// `θ_k (a + X(a + b))(d + X(d + c)) = θ_k (E0 + X·E1 + X^2·E2)` with the
    /// bits `E0 = ad`, `E1 = a(d + c) + d(a + b)`, `E2 = (a + b)(d + c)`,
    /// so each is a sum of `α_j B(E_j)` over the words: three products per
    /// word instead of several per gate.
    fn first_level_poly(&self, a: &[u64], b: &[u64], d: &[u64], c: &[u64]) -> [Gf64; 2] {
        let e0 = self.weigh((0..a.len()).map(|j| a[j] & d[j]));
        let e1 = self.weigh((0..a.len()).map(|j| (a[j] & (d[j] ^ c[j])) ^ (d[j] & (a[j] ^ b[j]))));
        let e2 = self.weigh((0..a.len()).map(|j| (a[j] ^ b[j]) & (d[j] ^ c[j])));
        [e0, e0 + e1.mul_x() + e2.mul_x().mul_x()]
    }

    /// The weighted side after the first fold at `r`:
    /// `θ_k (a_k + r(a_k + b_k))`, padded with zeros to `len`, into `out`
    /// (its old contents dropped, its buffer reused).
    fn fold_bits(&self, a: &[u64], b: &[u64], r: Gf64, len: usize, out: &mut Vec<Gf64>) {
        let table: [[Gf64; 4]; 64] =
            std::array::from_fn(|i| fold_codes(r).map(|c| c * self.beta[i]));
        out.clear();
        out.reserve(len);
        run_kernel(Kernel::FoldBits {
            alpha: &self.alpha,
            table: &table,
            first: a,
            second: b,
            out,
        });
        out.resize(len, Gf64::ZERO);
    }
}

/// `t + r(t + s)` for the bit pairs `(t, s)` = (0,0), (1,0), (0,1), (1,1),
/// indexed by `t | s << 1`.
fn fold_codes(r: Gf64) -> [Gf64; 4] {
    [Gf64::ZERO, Gf64::ONE + r, r, Gf64::ONE]
}

/// The plain side after the first fold at `r`: `d_k + r(d_k + c_k)`,
/// padded with zeros to `len`, into `out` (its buffer reused).
fn fold_bits_plain(d: &[u64], c: &[u64], r: Gf64, len: usize, out: &mut Vec<Gf64>) {
    let codes = fold_codes(r);
    out.clear();
    out.reserve(len);
    for (d, c) in d.iter().zip(c) {
        for b in 0..64 {
            out.push(codes[((d >> b) & 1 | ((c >> b) & 1) << 1) as usize]);
        }
    }
    out.resize(len, Gf64::ZERO);
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
        // of two, `K = log2(half)` halving levels bring them to length 2.
        let half = (64 * words).next_power_of_two();
        let levels = half.trailing_zeros() as usize;
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
        let theta_prover = Theta::from_seed(seed, words);
        let theta_left = Theta::from_seed([ch_as_left[0], ch_as_left[1]], words);
        let theta_right = Theta::from_seed([ch_as_right[0], ch_as_right[1]], words);

        // Prover: u = θ(x_i ‖ y_i), v = (y_{i+1} ‖ x_{i+1}), each part
        // padded to `half`. The first level runs on the bits.
        let first = theta_prover.first_level_poly(log.xa, log.ya, log.yb, log.xb);
        // Left verifier of nx: x_{nx} = my xb, y_{nx} = my yb, F(k_{nx}) =
        // my fnx; e = z_{nx} ^ F(k_{nx}) ^ x_{nx} y_{nx}.
        let mut l_claim =
            theta_left.weigh((0..words).map(|j| log.zr[j] ^ log.fnx[j] ^ (log.xb[j] & log.yb[j])));
        // Right verifier of pv: x_{pv+1} = my xa, y_{pv+1} = my ya,
        // f = F(k_{pv+1}) = my fp.
        let mut r_claim = theta_right.weigh(log.fp.iter().copied());

        let (from_prover, r_prover) =
            self.level_rounds(first, &shares_as_prover, &ch_as_right, 0)?;
        // The four folded vectors (2 KiB per word of the batch) live in
        // buffers kept across batches: allocating them afresh made the
        // kernel zero new pages for every batch (a third of the time).
        let mut scratch = self
            .and_log_mut()
            .map(|l| std::mem::take(&mut l.scratch))
            .unwrap_or_default();
        let [pu, pv_, lu, rv] = &mut scratch.bufs;
        theta_prover.fold_bits(log.xa, log.ya, r_prover, half, pu);
        fold_bits_plain(log.yb, log.xb, r_prover, half, pv_);
        let r_left = challenge(&ch_as_left, 0);
        l_claim = next_claim(l_claim, from_prover[0], from_prover[1], r_left);
        theta_left.fold_bits(log.xb, log.yb, r_left, half, lu);
        let r_right = challenge(&ch_as_right, 0);
        r_claim = next_claim(
            r_claim,
            Gf64(shares_as_right[0]),
            Gf64(shares_as_right[1]),
            r_right,
        );
        fold_bits_plain(log.ya, log.xa, r_right, half, rv);

        for level in 1..levels {
            let p = level_poly(pu, pv_);
            let (from_prover, r_prover) =
                self.level_rounds(p, &shares_as_prover, &ch_as_right, level)?;
            fold(pu, r_prover);
            fold(pv_, r_prover);
            let r_left = challenge(&ch_as_left, level);
            l_claim = next_claim(l_claim, from_prover[0], from_prover[1], r_left);
            fold(lu, r_left);
            let r_right = challenge(&ch_as_right, level);
            r_claim = next_claim(
                r_claim,
                Gf64(shares_as_right[2 * level]),
                Gf64(shares_as_right[2 * level + 1]),
                r_right,
            );
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
        wipe_used(lu, half);
        let r_right = last_challenge(&ch_as_right, levels);
        let rs = |k: usize| Gf64(shares_as_right[base + k]);
        let r_vals = [rs(0), r_claim + rs(0), rs(1), rs(2), rs(3)];
        let r_share = interpolate(&LAST_POINTS, &r_vals, r_right);
        let r_side = ext(rv, rho_v_right, r_right);
        wipe_used(rv, half);
        wipe_used(pu, half);
        wipe_used(pv_, half);
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

    #[test]
    fn the_bit_level_first_level_equals_the_spelled_out_one() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for words in [1usize, 3, 8, 13] {
            let col =
                |rng: &mut ChaCha20Rng| -> Vec<u64> { (0..words).map(|_| rng.gen()).collect() };
            let (a, b, c, d) = (col(&mut rng), col(&mut rng), col(&mut rng), col(&mut rng));
            let theta = Theta::from_seed([rng.gen(), rng.gen()], words);
            let half = (64 * words).next_power_of_two();
            let u = spelled_out(Some(&theta), &a, &b, half);
            let v = spelled_out(None, &d, &c, half);
            assert_eq!(theta.first_level_poly(&a, &b, &d, &c), level_poly(&u, &v));
            let r = Gf64(rng.gen());
            let (mut fu, mut fv) = (u.clone(), v.clone());
            fold(&mut fu, r);
            fold(&mut fv, r);
            let (mut got_u, mut got_v) = (vec![Gf64::ONE; 3], Vec::new());
            theta.fold_bits(&a, &b, r, half, &mut got_u);
            fold_bits_plain(&d, &c, r, half, &mut got_v);
            assert_eq!(got_u, fu);
            assert_eq!(got_v, fv);
            // The claim: Σ θ (a d + b c) is the inner product (in
            // characteristic 2 the field sum of bits is their XOR).
            let ip: Gf64 = u.iter().zip(&v).map(|(x, y)| *x * *y).sum();
            assert_eq!(
                ip,
                theta.weigh((0..words).map(|j| (a[j] & d[j]) ^ (b[j] & c[j])))
            );
        }
    }
}
