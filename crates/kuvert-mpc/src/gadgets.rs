//! Composite protocols built from the primitives of [`crate::party`]:
//! conversions between arithmetic and boolean sharing, comparison, equality
//! and selection.
//!
//! The common trick (ABY3 §5): party 0 holds `x_0` and `x_1`, so it can add
//! them locally and boolean-share `t = x_0 + x_1` (one round, one word), while
//! `u = x_2` is already known to parties 1 and 2 and needs no communication
//! to become a (trivial) boolean sharing. What remains is a two-operand
//! boolean circuit on `t` and `u`, evaluated bit-sliced (see [`crate::bits`])
//! with log-depth prefix trees.
//!
//! Cost per element, 64-bit words (rounds; approx. bits sent by the busiest
//! party):
//!
//! | gadget | rounds | bits |
//! |---|---|---|
//! | `msb` | 8 | 64 + 64 + ~118 |
//! | `lt` (exact, signed or unsigned) | 9 | 3 × msb + 1 |
//! | `lt_bounded` (values in `[-2^62, 2^62)`) | 8 | msb |
//! | `eq` | 7 | 64 + 63 |
//! | `a2b` | 8 | 64 + 64 + ~321 |
//! | `b2a` | 9 | a2b's adder + 128 |
//! | `bit2a` | 2 | 64 + 64 |
//! | `select` | 3 | bit2a + 64 |

use crate::bits::{bits_to_words, gather, Sliced};
use crate::party::{check_len, Party, Result, Security};
use crate::share::{AShare, BShare, BitShare};
use crate::transport::{prev, PartyId};

/// Columns longer than this are processed in batches of this many elements
/// by the multi-round gadgets, which bounds their working memory (about 60
/// words per element of a batch) at the price of more rounds: a batch runs
/// in the gadget's minimal number of rounds. A multiple of 64.
pub const BATCH: usize = 1 << 20;

/// The trivial boolean sharing of component `m` of `x` (whose value is known
/// to party `m` as its first component and to party `m - 1` as its second):
/// `(x_m, 0)` at party `m`, `(0, x_m)` at party `m - 1`, zeros at the third.
fn trivial(me: PartyId, m: PartyId, x: &AShare) -> BShare {
    let n = x.len();
    if me == m {
        BShare::from_parts(x.a.clone(), vec![0; n])
    } else if me == prev(m) {
        BShare::from_parts(vec![0; n], x.b.clone())
    } else {
        BShare::zeros(n)
    }
}

fn batches(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n.div_ceil(BATCH).max(1)).map(move |i| i * BATCH..n.min((i + 1) * BATCH))
}

impl Party {
    /// Boolean sharings of `t = x_0 + x_1` (input by party 0) and of
    /// `u = f(x_2)` (trivial: parties 1 and 2 hold `x_2`). One round.
    /// Semi-honest mode only: in malicious mode party 0 could share a wrong
    /// `t`, so the gadgets use [`Party::sum_operands`] there, a carry-save
    /// layer on the trivial sharings of all three components.
    fn two_operands(&mut self, x: &AShare, f: impl Fn(u64) -> u64) -> Result<(BShare, BShare)> {
        debug_assert_ne!(self.security(), Security::Malicious);
        let n = x.len();
        let me = self.id();
        let t_vals: Option<Vec<u64>> = (me == 0).then(|| {
            x.a.iter()
                .zip(&x.b)
                .map(|(a, b)| a.wrapping_add(*b))
                .collect()
        });
        let t = self.input_b(0, t_vals.as_deref(), n)?;
        let u = match me {
            0 => BShare::zeros(n),
            1 => BShare::from_parts(vec![0; n], x.b.iter().map(|v| f(*v)).collect()),
            _ => BShare::from_parts(x.a.iter().map(|v| f(*v)).collect(), vec![0; n]),
        };
        Ok((t, u))
    }

    /// Boolean sharings of two words `t`, `u` with `t + u = x` (mod 2^64):
    /// [`Party::two_operands`] with `f` the identity. In malicious mode a
    /// carry-save layer instead of an adder: from the trivial sharings of
    /// `x_0`, `x_1`, `x_2`, `t = x_0 ^ x_1 ^ x_2` and `u = maj(x_0, x_1,
    /// x_2) << 1`, with `maj(a, b, c) = ((a ^ c) & (b ^ c)) ^ c`: one proven
    /// AND word per element and one round, where an adder took seven rounds
    /// and about five times the ANDs.
    fn sum_operands(&mut self, x: &AShare) -> Result<(BShare, BShare)> {
        if self.security() != Security::Malicious {
            return self.two_operands(x, |v| v);
        }
        let me = self.id();
        let (a, b, c) = (trivial(me, 0, x), trivial(me, 1, x), trivial(me, 2, x));
        let ac = a.xor(&c);
        let maj = self.and(&ac, &b.xor(&c))?.xor(&c);
        Ok((ac.xor(&b), maj.shl(1)))
    }

    /// [`Party::sum_operands`], bit-sliced into planes `0..64`, transposing
    /// only the components that are not zero by construction (semi-honest:
    /// the sharing of `t` has one zero component at parties 1 and 2, that
    /// of `u` at every party; malicious: none).
    /// Also returns `t ^ u` as words.
    fn two_operands_sliced(&mut self, x: &AShare) -> Result<(Sliced, Sliced, BShare)> {
        let me = self.id();
        let (t, u) = self.sum_operands(x)?;
        let (mut tz, uz) = match me {
            0 => ([false, false], [true, true]),
            1 => ([false, true], [true, false]),
            _ => ([true, false], [false, true]),
        };
        let mut uz = uz;
        if self.security() == Security::Malicious {
            // t and u came from the carry-save layer: no component is zero.
            tz = [false, false];
            uz = [false, false];
        }
        Ok((
            Sliced::from_words_sparse(&t, 0..64, tz),
            Sliced::from_words_sparse(&u, 0..64, uz),
            t.xor(&u),
        ))
    }

    /// Parallel-prefix (Sklansky) generate signals over the first `m` planes:
    /// given per-bit generate `g` and propagate `p`, returns planes `G[k]` =
    /// carry out of bits `0..=k`. `ceil(log2 m)` rounds.
    fn prefix_generate(&mut self, mut g: Sliced, mut p: Sliced, m: usize) -> Result<Sliced> {
        let w = g.blocks();
        let mut l = 0;
        while (1usize << l) < m {
            let half = 1usize << l;
            // Upper halves of each 2^(l+1) block: combine with the block's middle.
            let mut gk = Vec::new(); // positions updated: generate term
            let mut gmid = Vec::new();
            let mut pk = Vec::new(); // positions whose propagate is still needed
            let mut pmid = Vec::new();
            for k in 0..m {
                if (k >> l) & 1 == 1 {
                    let start = (k >> (l + 1)) << (l + 1);
                    let mid = start + half - 1;
                    gk.push(k);
                    gmid.push(mid);
                    if start != 0 {
                        pk.push(k);
                        pmid.push(mid);
                    }
                }
            }
            let xs = gather(&[(&p, &gk), (&p, &pk)]);
            let ys = gather(&[(&g, &gmid), (&p, &pmid)]);
            let r = self.and(&xs.s, &ys.s)?;
            let ops = gk.len() + pk.len();
            for q in 0..w {
                let rb = q * ops;
                for (i, &k) in gk.iter().enumerate() {
                    g.s.a[q * g.k + k] ^= r.a[rb + i];
                    g.s.b[q * g.k + k] ^= r.b[rb + i];
                }
                for (i, &k) in pk.iter().enumerate() {
                    p.s.a[q * p.k + k] = r.a[rb + gk.len() + i];
                    p.s.b[q * p.k + k] = r.b[rb + gk.len() + i];
                }
            }
            l += 1;
        }
        Ok(g)
    }

    /// Carry out of the whole group of the first `m` planes (generate of
    /// bits `0..m`), with a log-depth tree. Cheaper than
    /// [`Party::prefix_generate`] when only the final carry is needed.
    fn group_generate(&mut self, mut g: Sliced, mut p: Sliced, mut m: usize) -> Result<BShare> {
        if m == 0 {
            return Err(crate::MpcError::Usage("group_generate of no bits".into()));
        }
        let w = g.blocks();
        while m > 1 {
            let pairs = m / 2;
            let odd = m % 2 == 1;
            // Generate terms P_hi & G_lo for every pair; propagate terms
            // P_hi & P_lo for every pair but the lowest (its carry-in is 0).
            let his: Vec<usize> = (0..pairs).map(|i| 2 * i + 1).collect();
            let los: Vec<usize> = (0..pairs).map(|i| 2 * i).collect();
            let xs = gather(&[(&p, &his), (&p, &his[1..])]);
            let ys = gather(&[(&g, &los), (&p, &los[1..])]);
            let r = self.and(&xs.s, &ys.s)?;
            let ops = 2 * pairs - 1;
            let nm = pairs + odd as usize;
            let mut ng = BShare::zeros(w * nm);
            let mut np = BShare::zeros(w * nm);
            for q in 0..w {
                let (rb, gb, pb, ob) = (q * ops, q * g.k, q * p.k, q * nm);
                for i in 0..pairs {
                    ng.a[ob + i] = g.s.a[gb + 2 * i + 1] ^ r.a[rb + i];
                    ng.b[ob + i] = g.s.b[gb + 2 * i + 1] ^ r.b[rb + i];
                    if i > 0 {
                        np.a[ob + i] = r.a[rb + pairs + i - 1];
                        np.b[ob + i] = r.b[rb + pairs + i - 1];
                    }
                }
                if odd {
                    ng.a[ob + pairs] = g.s.a[gb + m - 1];
                    ng.b[ob + pairs] = g.s.b[gb + m - 1];
                    np.a[ob + pairs] = p.s.a[pb + m - 1];
                    np.b[ob + pairs] = p.s.b[pb + m - 1];
                }
            }
            g = Sliced { s: ng, k: nm };
            p = Sliced { s: np, k: nm };
            m = nm;
        }
        Ok(g.plane(0))
    }

    /// AND of all planes (a log-depth tree), as one plane.
    fn and_reduce(&mut self, mut x: Sliced) -> Result<BShare> {
        if x.k == 0 {
            return Err(crate::MpcError::Usage("and_reduce of nothing".into()));
        }
        while x.k > 1 {
            let pairs = x.k / 2;
            let los: Vec<usize> = (0..pairs).map(|i| 2 * i).collect();
            let his: Vec<usize> = (0..pairs).map(|i| 2 * i + 1).collect();
            let r = self.and(&gather(&[(&x, &los)]).s, &gather(&[(&x, &his)]).s)?;
            let r = Sliced { s: r, k: pairs };
            x = if x.k % 2 == 1 {
                let last = [x.k - 1];
                gather(&[(&r, &(0..pairs).collect::<Vec<_>>()), (&x, &last)])
            } else {
                r
            };
        }
        Ok(x.plane(0))
    }

    /// Sum of two boolean-shared 64-bit columns (mod 2^64), as boolean
    /// shares. Bit-sliced Sklansky adder: 1 + 6 rounds.
    pub fn add_bool(&mut self, x: &BShare, y: &BShare) -> Result<BShare> {
        check_len(x.len(), y.len())?;
        let n = x.len();
        let g = self.and(x, y)?;
        let p = x.xor(y);
        let gs = Sliced::from_words(&g, 0..63);
        let ps = Sliced::from_words(&p, 0..63);
        let carries = self.prefix_generate(gs, ps, 63)?.to_words(n);
        // Bit k of the sum is p_k ^ (carry out of bits 0..k-1).
        Ok(p.xor(&carries.shl(1)))
    }

    /// The adder on bit-sliced operands (planes `0..64`), with `p_words =
    /// x ^ y` as words; result as words.
    fn add_sliced(&mut self, x: Sliced, y: Sliced, p_words: BShare, n: usize) -> Result<BShare> {
        let g = Sliced {
            s: self.and(&x.s, &y.s)?,
            k: 64,
        };
        let p = Sliced {
            s: x.s.xor(&y.s),
            k: 64,
        };
        drop((x, y));
        let carries = self.prefix_generate(g, p, 63)?;
        // Bit k of the sum is p_k ^ (carry out of bits 0..k-1).
        let mut c = carries;
        c.k = 64;
        Ok(p_words.xor(&c.to_words(n).shl(1)))
    }

    /// Arithmetic to boolean conversion (bit decomposition).
    pub fn a2b(&mut self, x: &AShare) -> Result<BShare> {
        if x.len() <= BATCH {
            return self.a2b_batch(x);
        }
        let parts = batches(x.len())
            .map(|r| self.a2b_batch(&x.slice(r)))
            .collect::<Result<Vec<_>>>()?;
        Ok(BShare::concat(&parts.iter().collect::<Vec<_>>()))
    }

    fn a2b_batch(&mut self, x: &AShare) -> Result<BShare> {
        let n = x.len();
        let (t, u, p) = self.two_operands_sliced(x)?;
        self.add_sliced(t, u, p, n)
    }

    /// Boolean (64-bit words) to arithmetic conversion. Parties 0 and 1
    /// draw `y_1`, parties 1 and 2 draw `y_2`; party 1 shares `-(y_1 + y_2)`,
    /// the parties add it to `x` with a boolean adder and open the sum
    /// `y_0 = x - y_1 - y_2` to parties 0 and 2 only (it is uniformly random to
    /// each of them). The result is the arithmetic sharing `(y_0, y_1, y_2)`.
    ///
    /// In malicious mode party 1 could share a wrong `-(y_1 + y_2)`, so the
    /// parties instead add the trivial boolean sharings of `-y_1` (held by
    /// parties 0 and 1) and `-y_2` (held by parties 1 and 2) to `x` with a
    /// carry-save layer and one adder (all ANDs proven), and open `y_0` to
    /// parties 0 and 2 with the verified open, one at a time.
    pub fn b2a(&mut self, x: &BShare) -> Result<AShare> {
        if x.len() <= BATCH {
            return self.b2a_batch(x);
        }
        let parts = batches(x.len())
            .map(|r| self.b2a_batch(&x.slice(r)))
            .collect::<Result<Vec<_>>>()?;
        Ok(AShare::concat(&parts.iter().collect::<Vec<_>>()))
    }

    fn b2a_batch(&mut self, x: &BShare) -> Result<AShare> {
        let n = x.len();
        let me = self.id();
        let nonce = self.fresh_nonce();
        let (y1, y2) = match me {
            0 => (self.keys().next.words(nonce, n), Vec::new()),
            1 => (
                self.keys().prev.words(nonce, n),
                self.keys().next.words(nonce, n),
            ),
            _ => (Vec::new(), self.keys().prev.words(nonce, n)),
        };
        if self.security() == Security::Malicious {
            return self.b2a_proven(x, y1, y2);
        }
        let w: Option<Vec<u64>> = (me == 1).then(|| {
            y1.iter()
                .zip(&y2)
                .map(|(a, b)| a.wrapping_add(*b).wrapping_neg())
                .collect()
        });
        let wsh = self.input_b(1, w.as_deref(), n)?;
        let z = self.add_bool(x, &wsh)?;
        match me {
            0 => {
                let mut z2 = vec![0; n];
                self.round(&[], &mut [(1, &mut z2)])?;
                let y0 = (0..n).map(|j| z.a[j] ^ z.b[j] ^ z2[j]).collect();
                Ok(AShare::from_parts(y0, y1))
            }
            1 => {
                self.round(&[(0, &z.b), (2, &z.a)], &mut [])?;
                Ok(AShare::from_parts(y1, y2))
            }
            _ => {
                let mut z1 = vec![0; n];
                self.round(&[], &mut [(1, &mut z1)])?;
                let y0 = (0..n).map(|j| z.a[j] ^ z.b[j] ^ z1[j]).collect();
                Ok(AShare::from_parts(y2, y0))
            }
        }
    }

    /// [`Party::b2a`] in malicious mode, given this party's `y_1` / `y_2`.
    fn b2a_proven(&mut self, x: &BShare, y1: Vec<u64>, y2: Vec<u64>) -> Result<AShare> {
        let n = x.len();
        let me = self.id();
        let neg = |v: &[u64]| -> Vec<u64> { v.iter().map(|w| w.wrapping_neg()).collect() };
        // Component 1 (parties 1 and 0) holds -y_1, component 2 (parties 2
        // and 1) holds -y_2.
        let (t1, t2) = match me {
            0 => (BShare::from_parts(vec![0; n], neg(&y1)), BShare::zeros(n)),
            1 => (
                BShare::from_parts(neg(&y1), vec![0; n]),
                BShare::from_parts(vec![0; n], neg(&y2)),
            ),
            _ => (BShare::zeros(n), BShare::from_parts(neg(&y2), vec![0; n])),
        };
        // Carry-save: x + t1 + t2 = (x ^ t1 ^ t2) + (maj(x, t1, t2) << 1).
        let xt = x.xor(&t1);
        let sum = xt.xor(&t2);
        let maj = self.and(&xt, &x.xor(&t2))?.xor(x);
        let z = self.add_bool(&sum, &maj.shl(1))?;
        let to0 = self.reveal_b(&z, Some(0))?;
        let to2 = self.reveal_b(&z, Some(2))?;
        Ok(match me {
            0 => AShare::from_parts(to0.expect("opened to party 0"), y1),
            1 => AShare::from_parts(y1, y2),
            _ => AShare::from_parts(y2, to2.expect("opened to party 2")),
        })
    }

    /// Bit injection: a column of secret bits to arithmetic shares of 0/1.
    /// Two rounds. With `c = d ^ e`, `d = c_0 ^ c_1` known to party 0 and
    /// `e = c_2` known to parties 1 and 2: party 0 shares `d = s_0 + r`
    /// (sending `s_0` to party 2); then `c = d + e - 2de` splits into
    /// `v_1 = r(1-2e)` (party 1) and `v_2 = s_0(1-2e) + e` (party 2), which
    /// parties 1 and 2 reshare into replicated form.
    ///
    /// In malicious mode: [`Party::b2a`] of the bits as words (an adder per
    /// element instead of two rounds, but every step proven).
    pub fn bit2a(&mut self, c: &BitShare) -> Result<AShare> {
        let n = c.len();
        let me = self.id();
        if self.security() == Security::Malicious {
            let words = BShare::from_parts(bits_to_words(&c.w.a, n), bits_to_words(&c.w.b, n));
            return self.b2a(&words);
        }
        let dvals: Option<Vec<u64>> = (me == 0).then(|| {
            let packed: Vec<u64> = c.w.a.iter().zip(&c.w.b).map(|(a, b)| a ^ b).collect();
            bits_to_words(&packed, n)
        });
        let s = self.input_a(0, dvals.as_deref(), n)?;
        let nonce = self.fresh_nonce();
        match me {
            0 => {
                let q0 = self.keys().prev.words(nonce, n);
                let q1 = self.keys().next.words(nonce, n);
                self.round(&[], &mut [])?;
                Ok(AShare::from_parts(q0, q1))
            }
            1 => {
                let e = bits_to_words(&c.w.b, n);
                let q1 = self.keys().prev.words(nonce, n);
                let m1: Vec<u64> = (0..n)
                    .map(|j| {
                        s.a[j]
                            .wrapping_mul(1u64.wrapping_sub(2 * e[j]))
                            .wrapping_sub(q1[j])
                    })
                    .collect();
                let mut m2 = vec![0; n];
                self.round(&[(2, &m1)], &mut [(2, &mut m2)])?;
                let q2 = m1
                    .iter()
                    .zip(&m2)
                    .map(|(a, b)| a.wrapping_add(*b))
                    .collect();
                Ok(AShare::from_parts(q1, q2))
            }
            _ => {
                let e = bits_to_words(&c.w.a, n);
                let q0 = self.keys().next.words(nonce, n);
                let m2: Vec<u64> = (0..n)
                    .map(|j| {
                        s.b[j]
                            .wrapping_mul(1u64.wrapping_sub(2 * e[j]))
                            .wrapping_add(e[j])
                            .wrapping_sub(q0[j])
                    })
                    .collect();
                let mut m1 = vec![0; n];
                self.round(&[(1, &m2)], &mut [(1, &mut m1)])?;
                let q2 = m1
                    .iter()
                    .zip(&m2)
                    .map(|(a, b)| a.wrapping_add(*b))
                    .collect();
                Ok(AShare::from_parts(q2, q0))
            }
        }
    }

    /// Most significant bit of each element (the sign in two's complement).
    pub fn msb(&mut self, x: &AShare) -> Result<BitShare> {
        self.batched_bits(x.len(), |p, r| p.msb_batch(&x.slice(r)))
    }

    /// Run a bit-valued gadget batch by batch and join the packed results
    /// (batches are whole words, since `BATCH` is a multiple of 64).
    fn batched_bits(
        &mut self,
        n: usize,
        mut f: impl FnMut(&mut Party, std::ops::Range<usize>) -> Result<BitShare>,
    ) -> Result<BitShare> {
        if n <= BATCH {
            return f(self, 0..n);
        }
        let parts = batches(n).map(|r| f(self, r)).collect::<Result<Vec<_>>>()?;
        let words = BShare::concat(&parts.iter().map(|b| &b.w).collect::<Vec<_>>());
        Ok(BitShare::new(words, n))
    }

    fn msb_batch(&mut self, x: &AShare) -> Result<BitShare> {
        let n = x.len();
        let (t, u, _) = self.two_operands_sliced(x)?;
        // Generate and propagate per bit, computed on the planes directly.
        let g = Sliced {
            s: self.and(&t.s, &u.s)?,
            k: 64,
        };
        let p = Sliced {
            s: t.s.xor(&u.s),
            k: 64,
        };
        let p63 = p.plane(63);
        let carry = self.group_generate(g, p, 63)?;
        Ok(BitShare::new(p63.xor(&carry), n))
    }

    /// Exact less-than over the full 64-bit range: `x < y`, reading the
    /// words as signed (two's complement) or unsigned integers. The top bits
    /// of `x`, `y` and `x - y` are extracted together (one batch), then
    /// `lt = md ^ ((mx ^ my) & (sel ^ md))` with `sel = mx` (signed) or `my`
    /// (unsigned).
    pub fn lt(&mut self, x: &AShare, y: &AShare, signed: bool) -> Result<BitShare> {
        check_len(x.len(), y.len())?;
        if x.len() <= BATCH {
            return self.lt_batch(x, y, signed);
        }
        self.batched_bits(x.len(), |p, r| {
            p.lt_batch(&x.slice(r.clone()), &y.slice(r), signed)
        })
    }

    fn lt_batch(&mut self, x: &AShare, y: &AShare, signed: bool) -> Result<BitShare> {
        let n = x.len();
        let w = n.div_ceil(64);
        let pad = w * 64 - n;
        let cat = AShare::concat(&[&x.padded(pad), &y.padded(pad), &x.sub(y).padded(pad)]);
        let m = self.msb_batch(&cat)?;
        drop(cat);
        let mut parts = m.w.split(&[w, w, w]).into_iter();
        let (mx, my, md) = (
            parts.next().expect("mx"),
            parts.next().expect("my"),
            parts.next().expect("md"),
        );
        let sel = if signed { mx.xor(&md) } else { my.xor(&md) };
        let t = self.and(&mx.xor(&my), &sel)?;
        Ok(BitShare::new(md.xor(&t), n))
    }

    /// Signed less-than for values known to lie in `[-2^62, 2^62)` (dates,
    /// amounts, counts: almost every column a query compares): then `x - y`
    /// cannot overflow and `x < y` is just its sign bit, a third of the
    /// work of the exact [`Party::lt`]. Outside that range the answer may be
    /// wrong, so callers must know the bound (the SQL layer does, from the
    /// column types). This is also what most MPC frameworks call "less".
    pub fn lt_bounded(&mut self, x: &AShare, y: &AShare) -> Result<BitShare> {
        check_len(x.len(), y.len())?;
        self.msb(&x.sub(y))
    }

    /// Equality `x == y`: with `d = x - y`, `d = 0` iff `d_0 + d_1 = -d_2`, and
    /// the two sides are held by party 0 and by parties 1 and 2; the result
    /// is the AND of all bits of `!(t ^ u)`. 1 + 6 rounds.
    pub fn eq(&mut self, x: &AShare, y: &AShare) -> Result<BitShare> {
        check_len(x.len(), y.len())?;
        if x.len() <= BATCH {
            return self.eq_batch(x, y);
        }
        self.batched_bits(x.len(), |p, r| p.eq_batch(&x.slice(r.clone()), &y.slice(r)))
    }

    fn eq_batch(&mut self, x: &AShare, y: &AShare) -> Result<BitShare> {
        let n = x.len();
        let d = x.sub(y);
        let e = if self.security() == Security::Malicious {
            // No party may input a value of its own: split d into t + u by
            // the carry-save layer, and use that t + u = 0 (mod 2^64) iff
            // t ^ u = (t | u) << 1 (the carry into every bit must equal
            // that bit of t ^ u, so carry_{k+1} = t_k | u_k). Two proven
            // AND words instead of an adder.
            let (t, u) = self.sum_operands(&d)?;
            let g = self.and(&t, &u)?;
            let p = t.xor(&u);
            let or = p.xor(&g);
            p.xor(&or.shl(1)).not(self.id())
        } else {
            let (t, u) = self.two_operands(&d, |v| v.wrapping_neg())?;
            t.xor(&u).not(self.id())
        };
        let r = self.and_reduce(Sliced::from_words(&e, 0..64))?;
        Ok(BitShare::new(r, n))
    }

    /// Element-wise AND of bit columns.
    pub fn and_bits(&mut self, x: &BitShare, y: &BitShare) -> Result<BitShare> {
        check_len(x.len(), y.len())?;
        Ok(BitShare::new(self.and(&x.w, &y.w)?, x.len()))
    }

    /// Element-wise OR of bit columns.
    pub fn or_bits(&mut self, x: &BitShare, y: &BitShare) -> Result<BitShare> {
        let a = self.and_bits(x, y)?;
        Ok(x.xor(y).xor(&a))
    }

    /// `c ? x : y` element-wise: `y + bit2a(c) · (x - y)`. Three rounds.
    ///
    /// In malicious mode (no proven multiplication yet) the difference is
    /// converted to boolean, ANDed with the bit spread over the word, and
    /// converted back: `y + b2a(spread(c) & a2b(x - y))`.
    pub fn select(&mut self, c: &BitShare, x: &AShare, y: &AShare) -> Result<AShare> {
        check_len(x.len(), y.len())?;
        check_len(c.len(), x.len())?;
        if self.security() == Security::Malicious {
            let n = c.len();
            let spread = |packed: &[u64]| -> Vec<u64> {
                bits_to_words(packed, n)
                    .into_iter()
                    .map(|b| b.wrapping_neg())
                    .collect()
            };
            let mask = BShare::from_parts(spread(&c.w.a), spread(&c.w.b));
            let d = self.a2b(&x.sub(y))?;
            let picked = self.and(&mask, &d)?;
            return Ok(y.add(&self.b2a(&picked)?));
        }
        let ca = self.bit2a(c)?;
        let diff = x.sub(y);
        Ok(y.add(&self.mul(&ca, &diff)?))
    }

    /// Open a bit column to one party or to all.
    pub fn reveal_bits(
        &mut self,
        c: &BitShare,
        to: Option<crate::PartyId>,
    ) -> Result<Option<Vec<bool>>> {
        Ok(self
            .reveal_b(&c.w, to)?
            .map(|w| crate::share::unpack_bits(&w, c.len())))
    }
}
