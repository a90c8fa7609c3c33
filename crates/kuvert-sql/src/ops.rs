//! Oblivious relational building blocks on arithmetic shares: boolean
//! algebra on 0/1 values, key packing, the shuffle-then-sort with revealed
//! comparisons, segmented scans and reductions.
//!
//! Every function here is data-oblivious: the sequence of protocol steps
//! and message sizes depends only on the public lengths, except the sort,
//! which opens comparison outcomes between *distinct* keys (each key carries
//! its row's original index) after a secret uniform shuffle. The opened
//! outcomes then describe a uniformly random permutation, independent of
//! the data (the argument of Hamada et al., ICISC 2012), so they can be
//! simulated from the row count alone.

use kuvert_mpc::shuffle::Column;
use kuvert_mpc::{AShare, BShare, BitShare, Party, Result};

/// Public constant column.
pub(crate) fn constant(p: &Party, n: usize, v: u64) -> AShare {
    AShare::public(p.id(), &vec![v; n])
}

/// `1 - x` for a 0/1 column.
pub(crate) fn not01(p: &Party, x: &AShare) -> AShare {
    x.neg().add_public(p.id(), 1)
}

/// Products of many pairs in one round.
pub(crate) fn mul_many(p: &mut Party, pairs: &[(&AShare, &AShare)]) -> Result<Vec<AShare>> {
    let lens: Vec<usize> = pairs.iter().map(|(x, _)| x.len()).collect();
    let total: usize = lens.iter().sum();
    if total == 0 {
        return Ok(lens.iter().map(|_| AShare::zeros(0)).collect());
    }
    let xs: Vec<&AShare> = pairs.iter().map(|(x, _)| *x).collect();
    let ys: Vec<&AShare> = pairs.iter().map(|(_, y)| *y).collect();
    let prod = p.mul(&AShare::concat(&xs), &AShare::concat(&ys))?;
    Ok(prod.split(&lens))
}

pub(crate) fn mul(p: &mut Party, x: &AShare, y: &AShare) -> Result<AShare> {
    if x.is_empty() {
        return Ok(AShare::zeros(0));
    }
    p.mul(x, y)
}

/// OR of 0/1 columns.
pub(crate) fn or01(p: &mut Party, x: &AShare, y: &AShare) -> Result<AShare> {
    let xy = mul(p, x, y)?;
    Ok(x.add(y).sub(&xy))
}

/// A comparison result as a 0/1 arithmetic column.
pub(crate) fn bits01(p: &mut Party, b: &BitShare) -> Result<AShare> {
    if b.is_empty() {
        return Ok(AShare::zeros(0));
    }
    p.bit2a(b)
}

/// `x < y` as 0/1 for values whose difference lies in `[-2^62, 2^62)`.
pub(crate) fn lt01_bounded(p: &mut Party, x: &AShare, y: &AShare) -> Result<AShare> {
    if x.is_empty() {
        return Ok(AShare::zeros(0));
    }
    let b = p.lt_bounded(x, y)?;
    p.bit2a(&b)
}

/// `c ? x : y` with `c` a 0/1 arithmetic column.
pub(crate) fn choose(p: &mut Party, c: &AShare, x: &AShare, y: &AShare) -> Result<AShare> {
    Ok(y.add(&mul(p, c, &x.sub(y))?))
}

/// How one key word compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WordKind {
    /// Value in `[0, 2^62)`: the sign of the difference decides.
    Packed,
    /// Full 64-bit two's complement.
    Signed,
    /// Full 64-bit unsigned (text words).
    Unsigned,
}

/// One component of a sort or grouping key, most significant first.
pub(crate) enum Part {
    /// `v + offset` lies in `[0, 2^bits)`.
    Bounded { v: AShare, bits: u32, offset: u64 },
    /// A full 64-bit word.
    Full { v: AShare, signed: bool },
}

impl Part {
    /// The same component in descending order.
    pub(crate) fn desc(self, p: &Party) -> Part {
        match self {
            Part::Bounded { v, bits, offset } => {
                // (2^bits - 1) - (v + offset) = -v + (2^bits - 1 - offset)
                let top = if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                Part::Bounded {
                    v: v.neg().add_public(p.id(), top.wrapping_sub(offset)),
                    bits,
                    offset: 0,
                }
            }
            // !x = -1 - x reverses both signed and unsigned order.
            Part::Full { v, signed } => Part::Full {
                v: v.neg().add_public(p.id(), u64::MAX),
                signed,
            },
        }
    }
}

/// Bits needed for values `0..n`.
pub(crate) fn bits_for(n: usize) -> u32 {
    (usize::BITS - n.saturating_sub(1).leading_zeros()).max(1)
}

pub(crate) const PACK_BITS: u32 = 62;

/// Pack key parts into as few words as possible (local, linear).
pub(crate) fn pack(p: &Party, parts: Vec<Part>, n: usize) -> (Vec<AShare>, Vec<WordKind>) {
    let (words, kinds, _) = pack_widths(p, parts, n);
    (words, kinds)
}

/// [`pack`], also returning the number of significant bits of each word
/// (64 for a full word; for a packed word, values lie in `[0, 2^width)`).
pub(crate) fn pack_widths(
    p: &Party,
    parts: Vec<Part>,
    n: usize,
) -> (Vec<AShare>, Vec<WordKind>, Vec<u32>) {
    let me = p.id();
    let mut words = Vec::new();
    let mut kinds = Vec::new();
    let mut widths = Vec::new();
    let mut acc: Option<(AShare, u32)> = None;
    for part in parts {
        match part {
            Part::Bounded { v, bits, offset } => {
                let v = v.add_public(me, offset);
                acc = Some(match acc.take() {
                    Some((a, used)) if used + bits <= PACK_BITS => {
                        (a.mul_public(1u64 << bits).add(&v), used + bits)
                    }
                    Some((a, used)) => {
                        words.push(a);
                        kinds.push(WordKind::Packed);
                        widths.push(used);
                        (v, bits)
                    }
                    None => (v, bits),
                });
            }
            Part::Full { v, signed } => {
                if let Some((a, used)) = acc.take() {
                    words.push(a);
                    kinds.push(WordKind::Packed);
                    widths.push(used);
                }
                words.push(v);
                widths.push(64);
                kinds.push(if signed {
                    WordKind::Signed
                } else {
                    WordKind::Unsigned
                });
            }
        }
    }
    if let Some((a, used)) = acc {
        words.push(a);
        kinds.push(WordKind::Packed);
        widths.push(used);
    }
    if words.is_empty() {
        words.push(constant(p, n, 0));
        kinds.push(WordKind::Packed);
        widths.push(1);
    }
    (words, kinds, widths)
}

/// Equality of key words (all words equal), as 0/1.
pub(crate) fn eq_words(p: &mut Party, xs: &[AShare], ys: &[AShare]) -> Result<AShare> {
    let m = xs.first().map(|x| x.len()).unwrap_or(0);
    if m == 0 {
        return Ok(AShare::zeros(0));
    }
    let xcat = AShare::concat(&xs.iter().collect::<Vec<_>>());
    let ycat = AShare::concat(&ys.iter().collect::<Vec<_>>());
    let e = p.eq(&xcat, &ycat)?;
    let all = p.bit2a(&e)?;
    let mut parts = all.split(&vec![m; xs.len()]).into_iter();
    let mut acc = parts.next().expect("one word");
    for w in parts {
        acc = p.mul(&acc, &w)?;
    }
    Ok(acc)
}

/// Pivots per segment of `m` rows: `2^b - 1` with `(s + 1)^2 * 8 <= m`, at
/// most 63 (one pivot for small segments).
fn pivots_for(m: usize) -> usize {
    let mut s = 1;
    while s < 63 && (2 * (s + 1)) * (2 * (s + 1)) * 8 <= m {
        s = 2 * s + 1;
    }
    s
}

/// Compare rows `xi[k] < yi[k]` (positions in the shuffled table) of the
/// boolean key words and open the outcomes to all three nodes.
fn open_lt(p: &mut Party, keys: &SortKeys, xi: &[u32], yi: &[u32]) -> Result<Vec<bool>> {
    if xi.is_empty() {
        return Ok(Vec::new());
    }
    let keys = match keys {
        SortKeys::OneWord(w) => {
            let lt = p.lt_bounded(&w.permute(xi), &w.permute(yi))?;
            return Ok(p.reveal_bits(&lt, None)?.expect("opened to every party"));
        }
        SortKeys::Bool(k) => k,
    };
    let lt = lt_bool(p, keys, xi, yi)?;
    let open = p.reveal_b(&lt, None)?.expect("opened to every party");
    Ok((0..xi.len())
        .map(|i| (open[i / 64] >> (i % 64)) & 1 == 1)
        .collect())
}

/// The sort keys of a shuffled table, in the form the comparisons use.
pub(crate) enum SortKeys {
    /// The whole key fits one packed word (below `2^62`): the sign of the
    /// difference decides, one most-significant-bit extraction per
    /// comparison, which costs less computation than the bit-sliced
    /// comparator for the same bytes.
    OneWord(AShare),
    /// Several words: one bit-sliced comparator over all significant bits.
    Bool(BoolKeys),
}

/// Boolean sort keys in row-major form: the significant bits of all key
/// words of a row, concatenated (first word most significant) and cut into
/// `limbs` 64-bit limbs, most significant first; the first limb holds
/// `top` bits. Row `r`'s `2 * limbs` words (this party's two components,
/// limb by limb) lie together, so a comparison's random access to a row
/// touches one cache line.
pub(crate) struct BoolKeys {
    limbs: usize,
    top: u32,
    bits: u32,
    data: Vec<u64>,
}

impl BoolKeys {
    /// Concatenate boolean key words of `widths[w]` significant bits each.
    /// Shifts and XORs of XOR-shares are local (linear): each party shifts
    /// its components; bits of a component outside its word's range cancel
    /// out when the three parties' shares are combined.
    fn new(words: &[BShare], widths: &[u32], n: usize) -> BoolKeys {
        let bits: u32 = widths.iter().sum();
        let limbs = bits.div_ceil(64).max(1) as usize;
        let top = bits - 64 * (limbs as u32 - 1);
        let stride = 2 * limbs;
        let mut data = vec![0u64; n * stride];
        let mut off = bits;
        for (w, &ww) in words.iter().zip(widths) {
            off -= ww;
            // limb counted from the least significant end, and the shift in it
            let l = (off / 64) as usize;
            let sh = off % 64;
            let hi = limbs - 1 - l;
            let (ca, cb) = w.components();
            for (c, comp) in [ca, cb].into_iter().enumerate() {
                for (r, &v) in comp.iter().enumerate() {
                    let base = r * stride + c * limbs;
                    data[base + hi] ^= v << sh;
                    if sh != 0 && sh + ww > 64 {
                        data[base + hi - 1] ^= v >> (64 - sh);
                    }
                }
            }
        }
        BoolKeys {
            limbs,
            top,
            bits,
            data,
        }
    }
}

/// Bit planes of the rows `idx` of the keys, most significant bit first,
/// in plane-major layout: word `k * blocks + q` holds bit plane `k` of the
/// elements `64 q .. 64 q + 63` (element `64 q + r` at bit `r`).
/// Transposition is linear over XOR, so each component is transposed
/// locally.
fn planes_of(keys: &BoolKeys, idx: &[u32]) -> BShare {
    let blocks = idx.len().div_ceil(64);
    let (l, stride) = (keys.limbs, 2 * keys.limbs);
    let total = keys.bits as usize;
    let mut out_a = vec![0u64; total * blocks];
    let mut out_b = vec![0u64; total * blocks];
    let mut m = vec![[0u64; 64]; stride];
    for q in 0..blocks {
        let rows = &idx[64 * q..(64 * q + 64).min(idx.len())];
        if rows.len() < 64 {
            m.iter_mut().for_each(|x| x.fill(0));
        }
        for (r, &i) in rows.iter().enumerate() {
            let row = &keys.data[i as usize * stride..(i as usize + 1) * stride];
            for (j, &v) in row.iter().enumerate() {
                m[j][r] = v;
            }
        }
        let mut base = 0usize;
        for li in 0..l {
            let wl = if li == 0 { keys.top as usize } else { 64 };
            for (c, out) in [(0, &mut out_a), (1, &mut out_b)] {
                let t = &mut m[c * l + li];
                kuvert_mpc::bits::transpose64(t);
                for bit in 0..wl {
                    out[(base + wl - 1 - bit) * blocks + q] = t[bit];
                }
            }
            base += wl;
        }
    }
    BShare::from_components(out_a, out_b).expect("equal lengths")
}

/// Planes `ks` (each `blocks` words) of a plane-major column, concatenated.
fn take_planes(x: &BShare, blocks: usize, ks: impl Iterator<Item = usize>) -> BShare {
    let (a, b) = x.components();
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    for k in ks {
        oa.extend_from_slice(&a[k * blocks..(k + 1) * blocks]);
        ob.extend_from_slice(&b[k * blocks..(k + 1) * blocks]);
    }
    BShare::from_components(oa, ob).expect("equal lengths")
}

/// Lexicographic `row xi[k] < row yi[k]` over boolean key words (word 0
/// most significant; word `w` holds values below `2^widths[w]`), as packed
/// bits (bit `r` of word `q` is comparison `64 q + r`). One bit-sliced
/// comparator over all significant bits: per bit `lt = !x & y` and `eq =
/// !(x ^ y)`, then a log-depth tree joining a more significant group `h`
/// with a less significant one `l`: `lt = lt_h ^ (eq_h & lt_l)` (the two
/// cases exclude each other, so OR is XOR), `eq = eq_h & eq_l`. About
/// `3 B` AND gates for `B` significant bits in `1 + ceil(log2 B)` rounds,
/// and no arithmetic-to-boolean conversion per comparison: against two
/// most-significant-bit extractions and an equality for a two-word key,
/// about a third of the bytes.
pub(crate) fn lt_bool(p: &mut Party, keys: &BoolKeys, xi: &[u32], yi: &[u32]) -> Result<BShare> {
    let me = p.id();
    let blocks = xi.len().div_ceil(64);
    let x = planes_of(keys, xi);
    let y = planes_of(keys, yi);
    let mut k = keys.bits as usize;
    let mut lt = p.and(&x.not(me), &y)?;
    let mut eq = x.xor(&y).not(me);
    drop((x, y));
    while k > 1 {
        let pairs = k / 2;
        let odd = k % 2 == 1;
        let nk = pairs + odd as usize;
        let hi = (0..pairs).map(|i| 2 * i);
        let lo = (0..pairs).map(|i| 2 * i + 1);
        let eq_h = take_planes(&eq, blocks, hi.clone());
        let lt_h = take_planes(&lt, blocks, hi);
        let lt_l = take_planes(&lt, blocks, lo.clone());
        // equalities are needed only while another level follows
        let (nlt, neq) = if nk > 1 {
            let eq_l = take_planes(&eq, blocks, lo);
            let r = p.and(
                &BShare::concat(&[&eq_h, &eq_h]),
                &BShare::concat(&[&lt_l, &eq_l]),
            )?;
            let mut halves = r.split(&[pairs * blocks, pairs * blocks]).into_iter();
            let t = halves.next().expect("lt terms");
            let e = halves.next().expect("eq terms");
            (lt_h.xor(&t), e)
        } else {
            let t = p.and(&eq_h, &lt_l)?;
            (lt_h.xor(&t), BShare::zeros(0))
        };
        if odd {
            let last = std::iter::once(k - 1);
            lt = BShare::concat(&[&nlt, &take_planes(&lt, blocks, last.clone())]);
            eq = if nk > 1 {
                BShare::concat(&[&neq, &take_planes(&eq, blocks, last)])
            } else {
                neq
            };
        } else {
            lt = nlt;
            eq = neq;
        }
        k = nk;
    }
    Ok(lt)
}

/// The permutation that sorts the (already shuffled) key words ascending:
/// `perm[r]` = position of the row of rank `r`. Sample sort with opened
/// comparison outcomes: each segment takes its first `s` rows as pivots
/// (random, as the table is shuffled), orders them by comparing all pairs,
/// and every other row finds its bucket by binary search over the pivots
/// (`log2(s + 1)` comparisons, one batch per step across all segments).
/// About `1.16 n log2 n` comparisons with 15 pivots, against `1.39 n log2 n`
/// for one. Keys must be distinct.
fn quicksort(p: &mut Party, n: usize, keys: &SortKeys) -> Result<Vec<u32>> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut segs: Vec<(usize, usize)> = if n >= 2 { vec![(0, n)] } else { vec![] };
    while !segs.is_empty() {
        // 1. pivots of each segment, ordered by all-pairs comparisons
        let piv: Vec<usize> = segs.iter().map(|&(s, e)| pivots_for(e - s)).collect();
        let (mut xi, mut yi) = (Vec::new(), Vec::new());
        for (&(s, _), &k) in segs.iter().zip(&piv) {
            if k > 1 {
                for i in 0..k {
                    for j in i + 1..k {
                        xi.push(order[s + i]);
                        yi.push(order[s + j]);
                    }
                }
            }
        }
        let pair_lt = open_lt(p, keys, &xi, &yi)?;
        let mut at = 0;
        let mut sorted_piv: Vec<Vec<u32>> = Vec::with_capacity(segs.len());
        for (&(s, _), &k) in segs.iter().zip(&piv) {
            let mut rank = vec![0usize; k];
            if k > 1 {
                for i in 0..k {
                    for j in i + 1..k {
                        // pivot i < pivot j: j ranks above i
                        if pair_lt[at] {
                            rank[j] += 1;
                        } else {
                            rank[i] += 1;
                        }
                        at += 1;
                    }
                }
            }
            let mut sp = vec![0u32; k];
            for (i, r) in rank.into_iter().enumerate() {
                sp[r] = order[s + i];
            }
            sorted_piv.push(sp);
        }
        // 2. binary search of every other row among its segment's pivots
        // bucket bounds per row: pivot indices are below 64, one byte each
        let mut lo: Vec<Vec<u8>> = segs.iter().map(|&(s, e)| vec![0; e - s]).collect();
        let mut hi: Vec<Vec<u8>> = segs
            .iter()
            .zip(&piv)
            .map(|(&(s, e), &k)| vec![k as u8; e - s])
            .collect();
        loop {
            let (mut xi, mut yi) = (Vec::new(), Vec::new());
            for (g, &(s, e)) in segs.iter().enumerate() {
                let k = piv[g];
                for r in k..e - s {
                    if lo[g][r] < hi[g][r] {
                        let mid = (lo[g][r] + hi[g][r]) / 2;
                        xi.push(order[s + r]);
                        yi.push(sorted_piv[g][mid as usize]);
                    }
                }
            }
            if xi.is_empty() {
                break;
            }
            let less = open_lt(p, keys, &xi, &yi)?;
            drop((xi, yi));
            // the same walk as above, so the outcomes come in this order
            let mut outcome = less.into_iter();
            for (g, &(s, e)) in segs.iter().enumerate() {
                let k = piv[g];
                for r in k..e - s {
                    if lo[g][r] < hi[g][r] {
                        let mid = (lo[g][r] + hi[g][r]) / 2;
                        if outcome.next().expect("one outcome per comparison") {
                            hi[g][r] = mid;
                        } else {
                            lo[g][r] = mid + 1;
                        }
                    }
                }
            }
        }
        // 3. buckets in order, each pivot after its bucket
        let mut next = Vec::new();
        for (g, &(s, e)) in segs.iter().enumerate() {
            let k = piv[g];
            let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); k + 1];
            for r in k..e - s {
                buckets[lo[g][r] as usize].push(order[s + r]);
            }
            let mut at = s;
            for (b, bucket) in buckets.into_iter().enumerate() {
                let len = bucket.len();
                order[at..at + len].copy_from_slice(&bucket);
                if len >= 2 {
                    next.push((at, at + len));
                }
                at += len;
                if b < k {
                    order[at] = sorted_piv[g][b];
                    at += 1;
                }
            }
            debug_assert_eq!(at, e);
        }
        segs = next;
    }
    Ok(order)
}

/// Sort rows obliviously by `parts` (most significant first), stably (ties
/// keep their original order). `payload` are the row planes to carry;
/// returns them sorted. Cost: one shuffle of keys and payload, one bit
/// decomposition of each key word per row, then about `1.1 n log2 n`
/// comparisons in `O(log n)` expected levels, each a bit-sliced comparator
/// over the significant key bits ([`lt_bool`]). The opened outcomes are
/// those of the module's argument: distinct keys (the row index is the last
/// part), shuffled, so a uniformly random permutation's.
pub(crate) fn sort(
    p: &mut Party,
    n: usize,
    mut parts: Vec<Part>,
    payload: Vec<AShare>,
) -> Result<Vec<AShare>> {
    if n <= 1 {
        return Ok(payload);
    }
    let iota: Vec<u64> = (0..n as u64).collect();
    parts.push(Part::Bounded {
        v: AShare::public(p.id(), &iota),
        bits: bits_for(n),
        offset: 0,
    });
    let (words, kinds, widths) = pack_widths(p, parts, n);
    let nw = words.len();
    let mut cols: Vec<Column> = words
        .into_iter()
        .chain(payload)
        .map(Column::Arith)
        .collect();
    p.shuffle(&mut cols)?;
    let mut planes: Vec<AShare> = cols
        .into_iter()
        .map(|c| match c {
            Column::Arith(a) => a,
            Column::Bool(_) => unreachable!("only arithmetic columns are shuffled here"),
        })
        .collect();
    let payload = planes.split_off(nw);
    if kinds == [WordKind::Packed] {
        let keys = SortKeys::OneWord(planes.pop().expect("one key word"));
        let perm = quicksort(p, n, &keys)?;
        drop(keys);
        return Ok(payload.into_iter().map(|c| c.permute(&perm)).collect());
    }
    // Several words: one bit decomposition of every key word, paid once per row; signed
    // words flip their sign bit so that they order as unsigned ones.
    let bits = p.a2b(&AShare::concat(&planes.iter().collect::<Vec<_>>()))?;
    drop(planes);
    let me = p.id();
    let words: Vec<BShare> = bits
        .split(&vec![n; nw])
        .into_iter()
        .zip(&kinds)
        .map(|(w, k)| match k {
            WordKind::Signed => w.xor_public(me, 1 << 63),
            _ => w,
        })
        .collect();
    drop(bits);
    let keys = SortKeys::Bool(BoolKeys::new(&words, &widths, n));
    drop(words);
    let perm = quicksort(p, n, &keys)?;
    drop(keys);
    // one plane at a time, so the old copy is freed before the next
    Ok(payload.into_iter().map(|c| c.permute(&perm)).collect())
}

/// Segment starts of a sorted table: 1 where the key words differ from the
/// previous row's (row 0 always starts a segment).
pub(crate) fn segment_starts(p: &mut Party, words: &[AShare]) -> Result<AShare> {
    let n = words[0].len();
    if n == 0 {
        return Ok(AShare::zeros(0));
    }
    let cur: Vec<AShare> = words.iter().map(|w| w.slice(1..n)).collect();
    let prev: Vec<AShare> = words.iter().map(|w| w.slice(0..n - 1)).collect();
    let same = eq_words(p, &cur, &prev)?;
    let first = constant(p, 1, 1);
    Ok(AShare::concat(&[&first, &not01(p, &same)]))
}

/// Work-efficient inclusive scan (Brent–Kung) of rows of `planes` under an
/// associative operator: `combine(p, left, right)` gets the gathered planes
/// of the left and right operands of one step (all the same length) and
/// returns the combined planes, which replace the right operands. About
/// `2n` combinations in `2 log2 n` steps, against `n log2 n` for the
/// Hillis–Steele form: the scans of GROUP BY, joins and interval overlaps
/// send an order of magnitude fewer bytes.
pub(crate) fn scan<F>(p: &mut Party, planes: Vec<AShare>, mut combine: F) -> Result<Vec<AShare>>
where
    F: FnMut(&mut Party, &[AShare], &[AShare]) -> Result<Vec<AShare>>,
{
    let n = planes.first().map(|x| x.len()).unwrap_or(0);
    if n < 2 {
        return Ok(planes);
    }
    let mut raw: Vec<(Vec<u64>, Vec<u64>)> = planes
        .iter()
        .map(|x| {
            let (a, b) = x.components();
            (a.to_vec(), b.to_vec())
        })
        .collect();
    drop(planes);
    let mut step = |p: &mut Party,
                    raw: &mut Vec<(Vec<u64>, Vec<u64>)>,
                    first: usize,
                    s: usize|
     -> Result<()> {
        let right: Vec<usize> = (first..n).step_by(2 * s).collect();
        if right.is_empty() {
            return Ok(());
        }
        let gather = |idx: &mut dyn Iterator<Item = usize>, plane: &(Vec<u64>, Vec<u64>)| {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for i in idx {
                a.push(plane.0[i]);
                b.push(plane.1[i]);
            }
            AShare::from_components(a, b).expect("equal lengths")
        };
        let l: Vec<AShare> = raw
            .iter()
            .map(|pl| gather(&mut right.iter().map(|&i| i - s), pl))
            .collect();
        let r: Vec<AShare> = raw
            .iter()
            .map(|pl| gather(&mut right.iter().copied(), pl))
            .collect();
        let out = combine(p, &l, &r)?;
        for (pl, o) in raw.iter_mut().zip(&out) {
            let (a, b) = o.components();
            for (k, &i) in right.iter().enumerate() {
                pl.0[i] = a[k];
                pl.1[i] = b[k];
            }
        }
        Ok(())
    };
    let mut s = 1;
    while s < n {
        step(p, &mut raw, 2 * s - 1, s)?;
        s *= 2;
    }
    s /= 2;
    while s >= 1 {
        if 3 * s - 1 < n {
            step(p, &mut raw, 3 * s - 1, s)?;
        }
        s /= 2;
    }
    Ok(raw
        .into_iter()
        .map(|(a, b)| AShare::from_components(a, b).expect("equal lengths"))
        .collect())
}

/// Segmented inclusive prefix sums: for each row, the sum of each column
/// over its segment up to and including the row. `starts` must have 1 at
/// row 0. Operator: `(f1, v1) . (f2, v2) = (f1 or f2, v2 + (1 - f2) v1)`,
/// one round per step.
pub(crate) fn seg_sum(p: &mut Party, starts: &AShare, cols: Vec<AShare>) -> Result<Vec<AShare>> {
    let k = cols.len();
    let mut planes = vec![starts.clone()];
    planes.extend(cols);
    let mut out = scan(p, planes, |p, l, r| {
        let g = not01(p, &r[0]);
        let mut pairs: Vec<(&AShare, &AShare)> = vec![(&l[0], &r[0])];
        pairs.extend(l[1..=k].iter().map(|x| (&g, x)));
        let prods = mul_many(p, &pairs)?;
        let mut res = vec![l[0].add(&r[0]).sub(&prods[0])];
        res.extend(r[1..=k].iter().zip(&prods[1..]).map(|(x, y)| x.add(y)));
        Ok(res)
    })?;
    out.remove(0);
    Ok(out)
}

/// Inclusive prefix maximum of values in `[0, 2^62)`, unsegmented.
pub(crate) fn prefix_max(p: &mut Party, v: AShare) -> Result<AShare> {
    let mut out = scan(p, vec![v], |p, l, r| {
        let c = lt01_bounded(p, &r[0], &l[0])?;
        Ok(vec![choose(p, &c, &l[0], &r[0])?])
    })?;
    Ok(out.pop().expect("one plane"))
}

/// Minimum (or maximum) of a column, by a tree of comparisons.
pub(crate) fn reduce_extreme(p: &mut Party, v: AShare, max: bool, signed: bool) -> Result<AShare> {
    let mut v = v;
    while v.len() > 1 {
        let h = v.len() / 2;
        let x = v.slice(0..h);
        let y = v.slice(h..2 * h);
        // take y when (max ? x < y : y < x)
        let c = if max {
            p.lt(&x, &y, signed)?
        } else {
            p.lt(&y, &x, signed)?
        };
        let c = p.bit2a(&c)?;
        let m = choose(p, &c, &y, &x)?;
        v = if v.len() % 2 == 1 {
            AShare::concat(&[&m, &v.slice(2 * h..v.len())])
        } else {
            m
        };
    }
    Ok(v)
}

/// Per-segment minimum or maximum, inclusive prefix form: each row gets
/// the extreme of its segment up to itself.
pub(crate) fn seg_extreme(
    p: &mut Party,
    starts: &AShare,
    v: AShare,
    max: bool,
    signed: bool,
) -> Result<AShare> {
    let mut out = scan(p, vec![starts.clone(), v], |p, l, r| {
        let (fl, vl, fr, vr) = (&l[0], &l[1], &r[0], &r[1]);
        // does the left operand's value win?
        let c = if max {
            p.lt(vr, vl, signed)?
        } else {
            p.lt(vl, vr, signed)?
        };
        let c = bits01(p, &c)?;
        let g = not01(p, fr);
        let mut prods = mul_many(p, &[(&c, &g), (fl, fr)])?;
        let ff = prods.pop().expect("flags");
        let take = prods.pop().expect("take");
        Ok(vec![fl.add(fr).sub(&ff), choose(p, &take, vl, vr)?])
    })?;
    Ok(out.pop().expect("value plane"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_mpc::harness::{run3, Keys};
    use proptest::prelude::*;

    /// Secret-share `vals` (party 0 inputs them; everybody else learns
    /// nothing from the sharing).
    fn secret(p: &mut Party, vals: &[u64]) -> Result<AShare> {
        let me = p.id();
        p.input_a(0, (me == 0).then_some(vals), vals.len())
    }

    /// Rows (flag, signed, unsigned, bounded) sorted under MPC by
    /// (flag, signed desc?, unsigned, bounded), returning the original row
    /// indices in sorted order, next to the plaintext stable sort.
    fn check_sort(rows: &[(bool, i64, u64, u64)], desc: bool, seed: u64) {
        let n = rows.len();
        let out = run3(Keys::Seeded(seed), |p| {
            let f: Vec<u64> = rows.iter().map(|r| r.0 as u64).collect();
            let s: Vec<u64> = rows.iter().map(|r| r.1 as u64).collect();
            let u: Vec<u64> = rows.iter().map(|r| r.2).collect();
            let b: Vec<u64> = rows.iter().map(|r| r.3).collect();
            let idx: Vec<u64> = (0..n as u64).collect();
            let (f, s, u, b, idx) = (
                secret(p, &f)?,
                secret(p, &s)?,
                secret(p, &u)?,
                secret(p, &b)?,
                secret(p, &idx)?,
            );
            let sp = Part::Full { v: s, signed: true };
            let parts = vec![
                Part::Bounded {
                    v: f,
                    bits: 1,
                    offset: 0,
                },
                if desc { sp.desc(p) } else { sp },
                Part::Full {
                    v: u,
                    signed: false,
                },
                Part::Bounded {
                    v: b,
                    bits: 20,
                    offset: 3,
                },
            ];
            let sorted = sort(p, n, parts, vec![idx])?;
            Ok(p.reveal_a(&sorted[0], None)?.expect("opened"))
        })
        .unwrap();
        let mut want: Vec<usize> = (0..n).collect();
        want.sort_by_key(|&i| {
            let r = rows[i];
            // signed order as unsigned: flip the sign bit; descending: complement
            let s = r.1 as u64 ^ (1 << 63);
            (r.0, if desc { !s } else { s }, r.2, r.3)
        });
        let want: Vec<u64> = want.into_iter().map(|i| i as u64).collect();
        for o in &out {
            assert_eq!(o, &want);
        }
    }

    #[test]
    fn sort_mixed_keys_with_extremes_and_ties() {
        let mut rows = Vec::new();
        let ss = [i64::MIN, -1, 0, 1, i64::MAX, -(1 << 40), 1 << 33];
        let us = [0, 1, u64::MAX, 1 << 63, 7];
        for i in 0..300u64 {
            rows.push((
                i % 3 == 0,
                ss[(i as usize * 3 + i as usize / 5) % ss.len()],
                us[(i as usize * 5 / 3) % us.len()],
                (i * 37) % 11 + (1 << 19),
            ));
        }
        check_sort(&rows, false, 1);
        check_sort(&rows, true, 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn sort_matches_stable_plaintext_sort(
            rows in prop::collection::vec((any::<bool>(), -3i64..3, 0u64..3, 0u64..4), 0..90),
            big in any::<i64>(),
            desc in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rows = rows;
            if let Some(r) = rows.first_mut() {
                r.1 = big;
            }
            check_sort(&rows, desc, seed);
        }
    }
}
