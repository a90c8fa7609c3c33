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
        self.require_semi_honest("the resharing shuffle")?;
        let n = cols.first().map(|c| c.len()).unwrap_or(0);
        if cols.iter().any(|c| c.len() != n) {
            return Err(MpcError::Usage("shuffle: columns differ in length".into()));
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
            let perm = permutation(pk, nonce | 1, n);
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
