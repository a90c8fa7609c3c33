//! Oblivious shuffle of a table of secret-shared columns.
//!
//! Three passes; in pass `j` the pair of parties `(j, j+1)` applies a
//! permutation `π_j` drawn from the key they share, which party `j+2` does
//! not hold. The overall permutation `π_2 ∘ π_1 ∘ π_0` is therefore unknown
//! to every single party. In a pass the pair holds a two-out-of-two sharing
//! (`x_j + x_{j+1}` and `x_{j+2}`), permutes it locally, and reshares into
//! replicated form with fresh masks: the excluded party draws its new pair
//! from the PRF keys it shares with each of them, and the pair exchange one
//! masked word per element. Cost: 3 rounds, 2 words per element per column
//! sent by each party in total.
//!
//! # Malicious mode
//! A deviating party can add an error to any pass it takes part in (a
//! wrong message, a wrong permutation of its own component, a wrong copy of
//! a component): the pass output is the permuted input plus an error the
//! deviating party knows, but it cannot move a value from one row to
//! another (each pair member holds only a random-looking part of it). So
//! the shuffle carries SPDZ-wise MACs ([`crate::mac`]) through the passes:
//!
//! 1. each column is lifted to Z_2^128 and its MAC column `[αx']` computed
//!    with one replicated multiplication by the MAC key (one round);
//! 2. the three passes run on the pairs `(x', αx')` over Z_2^128 (the pass
//!    is linear, so an honest pass keeps every pair a valid MAC pair);
//! 3. every pass output is recorded for the MAC check ([`Party::verify_macs`],
//!    run before anything is opened): an error added in any pass, or to
//!    the MAC computation, survives in that pass's record and fails the
//!    check with probability at least 1 − 2^−57.9, whatever later passes do.
//!
//! Recording every pass (not only the last) is what defeats the
//! selective-failure attacks of Song et al. (NDSS 2024) on published
//! "malicious" shuffles: a party that adds an error before the honest
//! pair's pass and cancels it after would learn, from whether the job
//! aborts, where the honest permutation sent a row. Here the record of
//! the pass with the error fails the check whether or not it is cancelled
//! later, so an abort depends only on the deviation, never on a secret
//! permutation. Cost in malicious mode: 4 rounds (plus the pending check
//! when more than [`crate::mac::MAX_PENDING`] records wait) and, per
//! element and column, 80 bytes sent by each party (16 semi-honest).
//! Boolean columns have no MAC over GF(2) yet and are refused in malicious
//! mode.

use zeroize::Zeroize;

use crate::mac::{words128, Rep128};
use crate::party::{MpcError, Party, Result};
use crate::prf::permutation;
use crate::share::{AShare, BShare};
use crate::transport::next;

/// One column of a table to shuffle.
#[derive(Clone, Debug)]
pub enum Column {
    Arith(AShare),
    Bool(BShare),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Arith(s) => s.len(),
            Column::Bool(s) => s.len(),
        }
    }
}

impl Party {
    /// Permute the rows of the table (all columns by the same secret,
    /// uniformly random permutation) and re-randomise every share.
    pub fn shuffle(&mut self, cols: &mut [Column]) -> Result<()> {
        let n = cols.first().map(|c| c.len()).unwrap_or(0);
        if cols.iter().any(|c| c.len() != n) {
            return Err(MpcError::Usage("shuffle: columns differ in length".into()));
        }
        if self.mac_state().is_some() {
            if cols.iter().any(|c| matches!(c, Column::Bool(_))) {
                self.require_semi_honest("shuffling boolean columns")?;
            }
            return self.shuffle_maced(cols, n);
        }
        for j in 0..3 {
            self.shuffle_pass(j, cols, n)?;
        }
        Ok(())
    }

    fn shuffle_pass(&mut self, j: usize, cols: &mut [Column], n: usize) -> Result<()> {
        let nonce = self.fresh_nonce();
        let me = self.id();
        let total = n * cols.len();
        let (a_party, b_party) = (j, next(j));
        if me == a_party || me == b_party {
            // The pair's common key: A's next key, B's prev key.
            let pk = if me == a_party {
                &self.keys().next
            } else {
                &self.keys().prev
            };
            let perm = self.pass_permutation(pk, nonce, n);
            // Mask for the component the excluded party will share with us.
            let mk = if me == a_party {
                &self.keys().prev
            } else {
                &self.keys().next
            };
            let mask = mk.words(nonce | 2, total);
            let mut msg = Vec::with_capacity(total);
            for (ci, c) in cols.iter().enumerate() {
                let m = &mask[ci * n..(ci + 1) * n];
                match c {
                    Column::Arith(s) => {
                        // A: x_j + x_{j+1}; B: x_{j+2}.
                        let y = |i: usize| {
                            if me == a_party {
                                s.a[i].wrapping_add(s.b[i])
                            } else {
                                s.b[i]
                            }
                        };
                        msg.extend(
                            perm.iter()
                                .zip(m)
                                .map(|(&p, m)| y(p as usize).wrapping_sub(*m)),
                        );
                    }
                    Column::Bool(s) => {
                        let y = |i: usize| {
                            if me == a_party {
                                s.a[i] ^ s.b[i]
                            } else {
                                s.b[i]
                            }
                        };
                        msg.extend(perm.iter().zip(m).map(|(&p, m)| y(p as usize) ^ m));
                    }
                }
            }
            for (at, delta) in self.pass_errors(j, total) {
                msg[at] = msg[at].wrapping_add(delta as u64);
            }
            let other = if me == a_party { b_party } else { a_party };
            let mut got = vec![0u64; total];
            self.round(&[(other, &msg)], &mut [(other, &mut got)])?;
            for (ci, c) in cols.iter_mut().enumerate() {
                let r = ci * n..(ci + 1) * n;
                let m = mask[r.clone()].to_vec();
                let (mine, theirs) = (&msg[r.clone()], &got[r]);
                match c {
                    Column::Arith(_) => {
                        let mid: Vec<u64> = mine
                            .iter()
                            .zip(theirs)
                            .map(|(x, y)| x.wrapping_add(*y))
                            .collect();
                        *c = Column::Arith(if me == a_party {
                            AShare::from_parts(m, mid)
                        } else {
                            AShare::from_parts(mid, m)
                        });
                    }
                    Column::Bool(_) => {
                        let mid: Vec<u64> = mine.iter().zip(theirs).map(|(x, y)| x ^ y).collect();
                        *c = Column::Bool(if me == a_party {
                            BShare::from_parts(m, mid)
                        } else {
                            BShare::from_parts(mid, m)
                        });
                    }
                }
            }
        } else {
            // Excluded party: new pair (s_{j+2}, s_j) from its prev and next keys.
            let s_prev = self.keys().prev.words(nonce | 2, total);
            let s_next = self.keys().next.words(nonce | 2, total);
            self.round(&[], &mut [])?;
            for (ci, c) in cols.iter_mut().enumerate() {
                let r = ci * n..(ci + 1) * n;
                let (a, b) = (s_prev[r.clone()].to_vec(), s_next[r].to_vec());
                *c = match c {
                    Column::Arith(_) => Column::Arith(AShare::from_parts(a, b)),
                    Column::Bool(_) => Column::Bool(BShare::from_parts(a, b)),
                };
            }
        }
        Ok(())
    }
}

impl Party {
    /// The permutation of a pass: drawn from the pair's common key (a
    /// party told to deviate by [`crate::faulty::deviate_permutations`]
    /// swaps its first two entries).
    fn pass_permutation(&self, pair_key: &crate::prf::Prf, nonce: u64, n: usize) -> Vec<u32> {
        let mut perm = permutation(pair_key, nonce | 1, n);
        if self.deviation().wrong_permutations && n >= 2 {
            perm.swap(0, 1);
        }
        perm
    }

    /// The errors a deviating party adds to its part of pass `j`
    /// ([`crate::faulty::add_in_shuffle_pass`]): `(index, delta)`.
    fn pass_errors(&self, j: usize, total: usize) -> Vec<(usize, i64)> {
        if total == 0 {
            return Vec::new();
        }
        self.deviation()
            .pass_errors
            .iter()
            .filter(|e| e.0 == j)
            .map(|e| (e.1 % total, e.2))
            .collect()
    }

    /// [`Party::shuffle`] in malicious mode, arithmetic columns only (see
    /// the module documentation).
    fn shuffle_maced(&mut self, cols: &mut [Column], n: usize) -> Result<()> {
        let lifted: Vec<Rep128> = cols
            .iter()
            .map(|c| match c {
                Column::Arith(s) => Rep128 {
                    a: s.a.iter().map(|v| *v as u128).collect(),
                    b: s.b.iter().map(|v| *v as u128).collect(),
                },
                Column::Bool(_) => unreachable!("refused above"),
            })
            .collect();
        let alpha = self.mac_key_column(n)?;
        let pairs: Vec<(&Rep128, &Rep128)> = lifted.iter().map(|x| (&alpha, x)).collect();
        let macs = self.mul128(&pairs)?;
        drop(alpha);
        // Values then MACs, all columns, as one table of 128-bit columns.
        let mut table: Vec<Rep128> = lifted;
        table.extend(macs);
        let k = cols.len();
        for j in 0..3 {
            self.pass128(j, &mut table, n)?;
            self.record_maced(&table[..k], &table[k..])?;
        }
        for (c, x) in cols.iter_mut().zip(&table[..k]) {
            *c = Column::Arith(AShare::from_parts(
                x.a.iter().map(|v| *v as u64).collect(),
                x.b.iter().map(|v| *v as u64).collect(),
            ));
        }
        Ok(())
    }

    /// One pass of the shuffle over replicated components in Z_2^128 (the
    /// same message pattern as [`Party::shuffle`]'s passes, two words per
    /// element).
    fn pass128(&mut self, j: usize, cols: &mut [Rep128], n: usize) -> Result<()> {
        let nonce = self.fresh_nonce();
        let me = self.id();
        let total = n * cols.len();
        let (a_party, b_party) = (j, next(j));
        if me != a_party && me != b_party {
            let s_prev = words128(&self.keys().prev, nonce | 2, total);
            let s_next = words128(&self.keys().next, nonce | 2, total);
            self.round(&[], &mut [])?;
            for (ci, c) in cols.iter_mut().enumerate() {
                let r = ci * n..(ci + 1) * n;
                *c = Rep128 {
                    a: s_prev[r.clone()].to_vec(),
                    b: s_next[r].to_vec(),
                };
            }
            return Ok(());
        }
        let (pk, mk) = if me == a_party {
            (&self.keys().next, &self.keys().prev)
        } else {
            (&self.keys().prev, &self.keys().next)
        };
        let mask = words128(mk, nonce | 2, total);
        let perm = self.pass_permutation(pk, nonce, n);
        let mut mine: Vec<u128> = Vec::with_capacity(total);
        for (ci, c) in cols.iter().enumerate() {
            let m = &mask[ci * n..(ci + 1) * n];
            // A holds x_j + x_{j+1} of the two-out-of-two sharing, B x_{j+2}.
            mine.extend(perm.iter().zip(m).map(|(&p, m)| {
                let p = p as usize;
                let y = if me == a_party {
                    c.a[p].wrapping_add(c.b[p])
                } else {
                    c.b[p]
                };
                y.wrapping_sub(*m)
            }));
        }
        for (at, delta) in self.pass_errors(j, total) {
            mine[at] = mine[at].wrapping_add(delta as i128 as u128);
        }
        let other = if me == a_party { b_party } else { a_party };
        let send: Vec<u64> = mine
            .iter()
            .flat_map(|v| [*v as u64, (*v >> 64) as u64])
            .collect();
        let mut got = vec![0u64; 2 * total];
        self.round(&[(other, &send)], &mut [(other, &mut got)])?;
        for (ci, c) in cols.iter_mut().enumerate() {
            let r = ci * n..(ci + 1) * n;
            let mid: Vec<u128> = mine[r.clone()]
                .iter()
                .zip(got[2 * r.start..2 * r.end].chunks_exact(2))
                .map(|(x, y)| x.wrapping_add(y[0] as u128 | (y[1] as u128) << 64))
                .collect();
            let m = mask[r].to_vec();
            *c = if me == a_party {
                Rep128 { a: m, b: mid }
            } else {
                Rep128 { a: mid, b: m }
            };
        }
        let (mut mine, mut mask, mut send, mut got) = (mine, mask, send, got);
        mine.zeroize();
        mask.zeroize();
        send.zeroize();
        got.zeroize();
        Ok(())
    }
}
