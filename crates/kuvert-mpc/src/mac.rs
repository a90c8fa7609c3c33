//! Multiplication over Z_2^64 secure against one malicious party: SPDZ-wise
//! MACs over Z_2^128 (Abspoel–Dalskov–Escudero–Nof, "An efficient
//! passive-to-active compiler for honest-majority MPC over rings", ACNS
//! 2021; MP-SPDZ's `sy-rep-ring`), with `k = 64` bits of value and `s = 64`
//! bits of security.
//!
//! # Protocol
//! At session start the parties hold a replicated sharing of a random MAC
//! key `α` in Z_2^128 (each component drawn from the PRF key its two
//! holders share; no message). In malicious mode [`Party::mul`] of two
//! arithmetic columns `x, y` (shares over Z_2^64):
//!
//! 1. lifts both to Z_2^128 by zero-extending the components (`x'` ≡ `x`
//!    mod 2^64; the upper bits are garbage and are never opened);
//! 2. computes `z = x'·y'` and `[αx'] = [α]·[x']` (one round), then
//!    `[αz] = [αx']·[y']` (one round), all with the semi-honest replicated
//!    multiplication over Z_2^128;
//! 3. records `(z, αz)` for the check and returns `z` mod 2^64.
//!
//! The check ([`Party::verify_macs`], run before every open in malicious
//! mode and by itself every [`MAX_PENDING`] products): the parties toss a
//! common seed (commit with SHA-256, then open; two rounds), expand it to
//! coefficients `χ_j`, compute locally `[u] = Σ χ_j [z_j]` and `[w] = Σ χ_j
//! [αz_j]`, multiply `[t] = [w] − [α]·[u]` (one round), open `t` with the
//! verified open ([`crate::verified`], two rounds) and abort unless `t = 0`
//! in Z_2^128.
//!
//! # Soundness
//! A malicious party can add errors to any of the products it helps compute
//! (the additive attacks of replicated multiplication); with `z_j` wrong mod
//! 2^64 for some `j`, the check passes with probability at most
//! `2^(−s + log2(s + 1))` = 2^−57.9 for `s = 64` (the SPDZ2k bound that
//! ADEN21 carry over, with `χ` drawn after the products are fixed and `α`
//! never opened), or the
//! verified open breaks (a SHA-256 collision). The coins cannot be biased:
//! every party commits to its seed before it sees the others'.
//!
//! # Cost
//! Per product and party: 2 rounds and 48 bytes sent (semi-honest: 1 round,
//! 8 bytes); per check, 6 rounds and 164 bytes whatever the number
//! of products. Memory: 64 bytes per pending product.

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::party::{check_len, MpcError, Party, Result};
use crate::prf::{Prf, KEY_LEN};
use crate::share::{extend_wiping, AShare};
use crate::transport::{next, prev};
use crate::verified::{Kind, STATUS_FAIL_OPEN};

/// Pending products that trigger a check inside [`Party::mul`].
pub const MAX_PENDING: usize = 1 << 18;

/// Domain separator of the coin-toss commitments.
const COIN_DOMAIN: &[u8] = b"kuvert-mpc/mac-coins/v1\0";

/// Replicated components over Z_2^128: this party's `(c_i, c_{i+1})`.
#[derive(Default)]
pub(crate) struct Rep128 {
    pub a: Vec<u128>,
    pub b: Vec<u128>,
}

impl Drop for Rep128 {
    fn drop(&mut self) {
        self.a.zeroize();
        self.b.zeroize();
    }
}

/// A party's MAC state in malicious mode: its components of `α` and the
/// products not yet checked. Wiped on drop.
pub(crate) struct MacState {
    alpha: (u128, u128),
    z: Rep128,
    mz: Rep128,
}

impl MacState {
    pub(crate) fn pending(&self) -> usize {
        self.z.a.len()
    }
}

impl Drop for MacState {
    fn drop(&mut self) {
        self.alpha.0.zeroize();
        self.alpha.1.zeroize();
    }
}

pub(crate) fn words128(prf: &Prf, nonce: u64, n: usize) -> Vec<u128> {
    let w = prf.words(nonce, 2 * n);
    w.chunks_exact(2)
        .map(|c| c[0] as u128 | (c[1] as u128) << 64)
        .collect()
}

impl Party {
    /// Draw this party's components of the MAC key (no communication).
    pub(crate) fn mac_setup(&mut self) -> MacState {
        let nonce = self.fresh_nonce();
        MacState {
            alpha: (
                words128(&self.keys().prev, nonce, 1)[0],
                words128(&self.keys().next, nonce, 1)[0],
            ),
            z: Rep128::default(),
            mz: Rep128::default(),
        }
    }

    /// Replicated multiplication over Z_2^128 of several pairs in one round.
    pub(crate) fn mul128(&mut self, pairs: &[(&Rep128, &Rep128)]) -> Result<Vec<Rep128>> {
        let nonce = self.fresh_nonce();
        let total: usize = pairs.iter().map(|(x, _)| x.a.len()).sum();
        let zp = words128(&self.keys().prev, nonce, total);
        let zn = words128(&self.keys().next, nonce, total);
        let mut out: Vec<u128> = Vec::with_capacity(total);
        let mut k = 0;
        for (x, y) in pairs {
            check_len(x.a.len(), y.a.len())?;
            for j in 0..x.a.len() {
                let (xa, xb, ya, yb) = (x.a[j], x.b[j], y.a[j], y.b[j]);
                out.push(
                    zp[k]
                        .wrapping_sub(zn[k])
                        .wrapping_add(xa.wrapping_mul(ya))
                        .wrapping_add(xa.wrapping_mul(yb))
                        .wrapping_add(xb.wrapping_mul(ya)),
                );
                k += 1;
            }
        }
        let send: Vec<u64> = out
            .iter()
            .flat_map(|v| [*v as u64, (*v >> 64) as u64])
            .collect();
        let mut recv = vec![0u64; 2 * total];
        self.round(
            &[(prev(self.id()), &send)],
            &mut [(next(self.id()), &mut recv)],
        )?;
        let from_next: Vec<u128> = recv
            .chunks_exact(2)
            .map(|c| c[0] as u128 | (c[1] as u128) << 64)
            .collect();
        let mut res = Vec::with_capacity(pairs.len());
        let mut k = 0;
        for (x, _) in pairs {
            let n = x.a.len();
            res.push(Rep128 {
                a: out[k..k + n].to_vec(),
                b: from_next[k..k + n].to_vec(),
            });
            k += n;
        }
        // Shares and PRF output: wiped like shares.
        let (mut zp, mut zn, mut out, mut from_next) = (zp, zn, out, from_next);
        let (mut send, mut recv) = (send, recv);
        zp.zeroize();
        zn.zeroize();
        out.zeroize();
        from_next.zeroize();
        send.zeroize();
        recv.zeroize();
        Ok(res)
    }

    /// `n` copies of this party's components of the MAC key.
    pub(crate) fn mac_key_column(&mut self, n: usize) -> Result<Rep128> {
        let state = self
            .mac_state()
            .ok_or_else(|| MpcError::Usage("MAC key used outside malicious mode".into()))?;
        Ok(Rep128 {
            a: vec![state.alpha.0; n],
            b: vec![state.alpha.1; n],
        })
    }

    /// Record pairs `(x, [αx])` for the next MAC check (columns of equal
    /// length), and run the check when more than [`MAX_PENDING`] wait.
    pub(crate) fn record_maced(&mut self, x: &[Rep128], mx: &[Rep128]) -> Result<()> {
        let state = self
            .mac_state()
            .ok_or_else(|| MpcError::Usage("MAC record outside malicious mode".into()))?;
        for (v, m) in x.iter().zip(mx) {
            extend_wiping(&mut state.z.a, &v.a);
            extend_wiping(&mut state.z.b, &v.b);
            extend_wiping(&mut state.mz.a, &m.a);
            extend_wiping(&mut state.mz.b, &m.b);
        }
        if state.pending() >= MAX_PENDING {
            self.verify_macs()?;
        }
        Ok(())
    }

    /// [`Party::mul`] in malicious mode (see [`crate::mac`]).
    pub(crate) fn mul_maced(&mut self, x: &AShare, y: &AShare) -> Result<AShare> {
        check_len(x.len(), y.len())?;
        let n = x.len();
        let lift = |s: &AShare| Rep128 {
            a: s.a.iter().map(|v| *v as u128).collect(),
            b: s.b.iter().map(|v| *v as u128).collect(),
        };
        let (xl, yl) = (lift(x), lift(y));
        let alpha = self.mac_key_column(n)?;
        let mut r = self.mul128(&[(&xl, &yl), (&alpha, &xl)])?;
        let ax = r.pop().expect("two products");
        let z = r.pop().expect("two products");
        let mz = self.mul128(&[(&ax, &yl)])?.pop().expect("one product");
        let out = AShare::from_parts(
            z.a.iter().map(|v| *v as u64).collect(),
            z.b.iter().map(|v| *v as u64).collect(),
        );
        self.record_maced(&[z], &[mz])?;
        Ok(out)
    }

    /// Check every product since the last check (see [`crate::mac`]). Every
    /// party must call it at the same point; a no-op without pending
    /// products or in semi-honest mode. On failure every honest party
    /// returns [`MpcError::Check`] (`check = "mac"`, or `"coins"` /
    /// `"open"` / `"abort-signal"` for the steps of the check itself).
    pub fn verify_macs(&mut self) -> Result<()> {
        let Some(state) = self.mac_state() else {
            return Ok(());
        };
        if state.pending() == 0 {
            return Ok(());
        }
        let z = std::mem::take(&mut state.z);
        let mz = std::mem::take(&mut state.mz);
        let alpha = state.alpha;
        let n = z.a.len();

        let seed = self.toss_coins()?;
        let chi = words128(&Prf::new(seed), 0, n);
        let dot = |v: &[u128]| {
            v.iter()
                .zip(&chi)
                .fold(0u128, |acc, (v, c)| acc.wrapping_add(v.wrapping_mul(*c)))
        };
        let u = Rep128 {
            a: vec![dot(&z.a)],
            b: vec![dot(&z.b)],
        };
        let w = (dot(&mz.a), dot(&mz.b));
        let al = Rep128 {
            a: vec![alpha.0],
            b: vec![alpha.1],
        };
        let au = self.mul128(&[(&al, &u)])?.pop().expect("one product");
        let t = (w.0.wrapping_sub(au.a[0]), w.1.wrapping_sub(au.b[0]));
        let split = |v: u128| [v as u64, (v >> 64) as u64];
        let third = self.open_third_verified(&split(t.0), &split(t.1), Kind::Arith)?;
        let t =
            t.0.wrapping_add(t.1)
                .wrapping_add(third[0] as u128 | (third[1] as u128) << 64);
        // Every honest party opened the same (verified) t, so they agree.
        if t != 0 {
            return Err(MpcError::Check {
                check: "mac".into(),
                detail: format!(
                    "party {}: the MAC check of {n} products over Z_2^64 failed: a party \
                     sent a wrong multiplication message or used a wrong share",
                    self.id()
                ),
            });
        }
        Ok(())
    }

    /// A common random seed no party could bias: each commits to its
    /// contribution (SHA-256), then all open; any mismatch aborts.
    fn toss_coins(&mut self) -> Result<[u8; KEY_LEN]> {
        let (me, nx, pv) = (self.id(), next(self.id()), prev(self.id()));
        let counter = self.fresh_nonce();
        // This party's contribution: PRF output of its private key (drawn
        // from the session's CSPRNG), unpredictable to the others.
        let words = self.keys().own.words(counter, 2);
        let mut mine = [0u8; KEY_LEN];
        mine[..8].copy_from_slice(&words[0].to_le_bytes());
        mine[8..].copy_from_slice(&words[1].to_le_bytes());
        let commit = |party: usize, seed: &[u8]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(COIN_DOMAIN);
            h.update(counter.to_le_bytes());
            h.update([party as u8]);
            h.update(seed);
            h.finalize().into()
        };
        let c_mine = commit(me, &mine);
        let (mut c_nx, mut c_pv) = ([0u8; 32], [0u8; 32]);
        self.round_bytes(
            &[(nx, &c_mine[..]), (pv, &c_mine[..])],
            &mut [(nx, &mut c_nx[..]), (pv, &mut c_pv[..])],
        )?;
        let (mut s_nx, mut s_pv) = ([0u8; KEY_LEN], [0u8; KEY_LEN]);
        self.round_bytes(
            &[(nx, &mine[..]), (pv, &mine[..])],
            &mut [(nx, &mut s_nx[..]), (pv, &mut s_pv[..])],
        )?;
        let mut bad = Vec::new();
        if commit(nx, &s_nx) != c_nx {
            bad.push(nx);
        }
        if commit(pv, &s_pv) != c_pv {
            bad.push(pv);
        }
        let failure = (!bad.is_empty()).then(|| {
            format!(
                "party {me}: the coin toss of the MAC check failed: the seed of party {:?} \
                 does not match its commitment",
                bad
            )
        });
        self.abort_round("coins", STATUS_FAIL_OPEN, failure)?;
        let mut seed = [0u8; KEY_LEN];
        for k in 0..KEY_LEN {
            seed[k] = mine[k] ^ s_nx[k] ^ s_pv[k];
        }
        mine.zeroize();
        Ok(seed)
    }
}
