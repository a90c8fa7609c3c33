//! Client-side replicated secret sharing of a table, and reconstruction by
//! a recipient.
//!
//! Every word `x` becomes three random components with `x = x_0 + x_1 + x_2`
//! (mod 2^64, [`ShareKind::Arithmetic`]) or `x = x_0 ^ x_1 ^ x_2`
//! ([`ShareKind::Boolean`]). Node `i` receives the pair `(x_i, x_{i+1})`, the
//! same layout as `kuvert_mpc::AShare`/`BShare` (components `a`, `b`). Any
//! one node's pair is uniformly random and independent of the table; any
//! two nodes together can reconstruct it.

use std::fmt;

use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::schema::{ColumnType, Schema};
use crate::table::{EncodedColumn, Table};

/// Which sharing a column uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    /// Additive mod 2^64 (for sums, products, comparisons via the engine).
    Arithmetic,
    /// XOR (for equality tests and bit operations).
    Boolean,
}

/// One node's share of one column. The words are laid out like the
/// cleartext column ([`EncodedColumn`]: word planes). Wiped on drop; `Debug`
/// prints no values.
#[derive(Clone, PartialEq, Eq)]
pub struct ColumnShares {
    pub name: String,
    pub ty: ColumnType,
    pub kind: ShareKind,
    /// The node this share belongs to (0, 1 or 2).
    pub party: usize,
    /// Component `x_party`.
    pub a: Vec<u64>,
    /// Component `x_{party+1}`.
    pub b: Vec<u64>,
}

impl fmt::Debug for ColumnShares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ColumnShares {{ name: {:?}, ty: {}, kind: {:?}, party: {}, words: {} }}",
            self.name,
            self.ty,
            self.kind,
            self.party,
            self.a.len()
        )
    }
}

impl Drop for ColumnShares {
    fn drop(&mut self) {
        self.a.zeroize();
        self.b.zeroize();
    }
}

/// One node's shares of a whole table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableShares {
    pub party: usize,
    pub rows: usize,
    pub schema: Schema,
    pub columns: Vec<ColumnShares>,
}

/// Why shares could not be put back together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("need the shares of at least two different nodes; got nodes {0:?}")]
    TooFew(Vec<usize>),
    #[error("node {0} is not 0, 1 or 2")]
    BadParty(usize),
    #[error("the shares do not describe the same column: {0}")]
    Mismatch(String),
    #[error("share message is malformed: {0}")]
    Decode(String),
    #[error("node {a} and node {b} disagree about component x_{component} at word {word}: at least one of them sent wrong shares")]
    Inconsistent {
        a: usize,
        b: usize,
        component: usize,
        word: usize,
    },
}

/// First bytes of an encoded [`TableShares`].
pub const SHARES_MAGIC: [u8; 4] = *b"KVSH";
/// Version of the [`TableShares`] encoding.
pub const SHARES_VERSION: u8 = 1;

impl TableShares {
    /// Encode for sending to node `self.party` (inside TLS):
    ///
    /// ```text
    /// "KVSH" | version u8 = 1 | party u8 | 0u16 | rows u64 | schema length u32 |
    /// schema (compact form, UTF-8) | per column: kind u8 (0 arithmetic,
    /// 1 boolean), then the words of `a`, then of `b` (u64)
    /// ```
    /// All integers little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let schema = self.schema.to_compact();
        let words: usize = self.columns.iter().map(|c| c.a.len() * 2).sum();
        let mut out = Vec::with_capacity(20 + schema.len() + self.columns.len() + 8 * words);
        out.extend_from_slice(&SHARES_MAGIC);
        out.push(SHARES_VERSION);
        out.push(self.party as u8);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.rows as u64).to_le_bytes());
        out.extend_from_slice(&(schema.len() as u32).to_le_bytes());
        out.extend_from_slice(schema.as_bytes());
        for c in &self.columns {
            out.push(match c.kind {
                ShareKind::Arithmetic => 0,
                ShareKind::Boolean => 1,
            });
            for w in c.a.iter().chain(&c.b) {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Decode what [`TableShares::to_bytes`] wrote. Checks every length
    /// against the input before allocating; never panics on any input.
    pub fn from_bytes(bytes: &[u8]) -> Result<TableShares, ShareError> {
        let bad = |m: &str| ShareError::Decode(m.to_string());
        let mut r = bytes;
        let mut take = |n: usize| -> Result<&[u8], ShareError> {
            if r.len() < n {
                return Err(ShareError::Decode(format!(
                    "truncated: {n} more bytes expected, {} left",
                    r.len()
                )));
            }
            let (h, t) = r.split_at(n);
            r = t;
            Ok(h)
        };
        if take(4)? != SHARES_MAGIC {
            return Err(bad("not a kuvert share message (bad magic)"));
        }
        let version = take(1)?[0];
        if version != SHARES_VERSION {
            return Err(ShareError::Decode(format!(
                "version {version} is not supported (this is version {SHARES_VERSION})"
            )));
        }
        let party = take(1)?[0] as usize;
        if party > 2 {
            return Err(ShareError::BadParty(party));
        }
        if take(2)? != [0, 0] {
            return Err(bad("reserved bytes are not zero"));
        }
        let rows = u64::from_le_bytes(take(8)?.try_into().map_err(|_| bad("rows"))?);
        let slen =
            u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad("schema length"))?) as usize;
        let schema_text =
            std::str::from_utf8(take(slen)?).map_err(|_| bad("schema is not UTF-8"))?;
        let schema: Schema = schema_text
            .parse()
            .map_err(|e| ShareError::Decode(format!("schema: {e}")))?;
        let rows = usize::try_from(rows).map_err(|_| bad("row count too large"))?;
        let mut columns = Vec::with_capacity(schema.len());
        for col in schema.columns() {
            let kind = match take(1)?[0] {
                0 => ShareKind::Arithmetic,
                1 => ShareKind::Boolean,
                k => return Err(ShareError::Decode(format!("unknown share kind {k}"))),
            };
            let n = rows
                .checked_mul(col.ty.words())
                .filter(|n| n.checked_mul(16).is_some())
                .ok_or_else(|| bad("row count too large"))?;
            let mut read = |n: usize| -> Result<Vec<u64>, ShareError> {
                let b = take(n * 8)?;
                Ok(b.chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect())
            };
            let a = read(n)?;
            let b = read(n)?;
            columns.push(ColumnShares {
                name: col.name.clone(),
                ty: col.ty,
                kind,
                party,
                a,
                b,
            });
        }
        if !r.is_empty() {
            return Err(ShareError::Decode(format!(
                "{} bytes after the last column",
                r.len()
            )));
        }
        Ok(TableShares {
            party,
            rows,
            schema,
            columns,
        })
    }
}

/// Split `values` into three replicated shares; entry `i` is node `i`'s
/// pair `(x_i, x_{i+1})`.
pub fn share_words<R: RngCore + CryptoRng>(
    values: &[u64],
    kind: ShareKind,
    rng: &mut R,
) -> [(Vec<u64>, Vec<u64>); 3] {
    let n = values.len();
    let mut x0 = vec![0u64; n];
    let mut x1 = vec![0u64; n];
    for (a, b) in x0.iter_mut().zip(x1.iter_mut()) {
        *a = rng.next_u64();
        *b = rng.next_u64();
    }
    let x2: Vec<u64> = values
        .iter()
        .zip(x0.iter().zip(&x1))
        .map(|(v, (a, b))| match kind {
            ShareKind::Arithmetic => v.wrapping_sub(*a).wrapping_sub(*b),
            ShareKind::Boolean => v ^ a ^ b,
        })
        .collect();
    [(x0.clone(), x1.clone()), (x1, x2.clone()), (x2, x0)]
}

/// Share every column of `table` for the three nodes. Randomness must come
/// from a CSPRNG (`rand::rngs::OsRng` in production).
pub fn share_table<R: RngCore + CryptoRng>(
    table: &Table,
    kind: ShareKind,
    rng: &mut R,
) -> [TableShares; 3] {
    let mut out: [TableShares; 3] = std::array::from_fn(|party| TableShares {
        party,
        rows: table.rows(),
        schema: table.schema().clone(),
        columns: Vec::with_capacity(table.columns().len()),
    });
    for c in table.columns() {
        let pairs = share_words(&c.data, kind, rng);
        for (party, (a, b)) in pairs.into_iter().enumerate() {
            out[party].columns.push(ColumnShares {
                name: c.name.clone(),
                ty: c.ty,
                kind,
                party,
                a,
                b,
            });
        }
    }
    out
}

/// Reconstruct a column from the shares of two or three nodes. With all
/// three, every component is held twice and the copies are compared, so a
/// single node that altered its shares is detected.
pub fn reconstruct(shares: &[&ColumnShares]) -> Result<Vec<u64>, ShareError> {
    let first = shares.first().ok_or(ShareError::TooFew(vec![]))?;
    let n = first.a.len();
    // components[k] = (node that supplied it, words)
    let mut comp: [Option<(usize, &[u64])>; 3] = [None, None, None];
    for s in shares {
        if s.party > 2 {
            return Err(ShareError::BadParty(s.party));
        }
        if s.name != first.name
            || s.ty != first.ty
            || s.kind != first.kind
            || s.a.len() != n
            || s.b.len() != n
        {
            return Err(ShareError::Mismatch(format!("{:?} vs {:?}", s, first)));
        }
        for (k, words) in [(s.party, &s.a[..]), ((s.party + 1) % 3, &s.b[..])] {
            match comp[k] {
                None => comp[k] = Some((s.party, words)),
                Some((other, prev)) => {
                    if let Some(word) = prev.iter().zip(words).position(|(x, y)| x != y) {
                        return Err(ShareError::Inconsistent {
                            a: other,
                            b: s.party,
                            component: k,
                            word,
                        });
                    }
                }
            }
        }
    }
    let [Some((_, x0)), Some((_, x1)), Some((_, x2))] = comp else {
        let mut parties: Vec<usize> = shares.iter().map(|s| s.party).collect();
        parties.sort_unstable();
        parties.dedup();
        return Err(ShareError::TooFew(parties));
    };
    Ok((0..n)
        .map(|j| match first.kind {
            ShareKind::Arithmetic => x0[j].wrapping_add(x1[j]).wrapping_add(x2[j]),
            ShareKind::Boolean => x0[j] ^ x1[j] ^ x2[j],
        })
        .collect())
}

/// Reconstruct a whole table from the shares of two or three nodes.
pub fn reconstruct_table(shares: &[&TableShares]) -> Result<Table, ShareError> {
    let first = shares.first().ok_or(ShareError::TooFew(vec![]))?;
    let mut columns = Vec::with_capacity(first.columns.len());
    for (ci, c) in first.columns.iter().enumerate() {
        let mut cs = Vec::with_capacity(shares.len());
        for s in shares {
            if s.rows != first.rows
                || s.schema != first.schema
                || s.columns.len() != first.columns.len()
            {
                return Err(ShareError::Mismatch("the tables differ in shape".into()));
            }
            cs.push(&s.columns[ci]);
        }
        columns.push(EncodedColumn {
            name: c.name.clone(),
            ty: c.ty,
            data: reconstruct(&cs)?,
        });
    }
    Table::from_columns(first.schema.clone(), first.rows, columns)
        .map_err(|e| ShareError::Mismatch(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{
        reconstruct, reconstruct_table, share_table, share_words, ColumnShares, ColumnType,
        ShareError, ShareKind, Table, TableShares,
    };
    use crate::table::{read_csv, CsvOptions};
    use crate::value::Date;
    use proptest::prelude::{any, prop_assert_eq, proptest};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use rand_core::RngCore;

    fn table() -> Table {
        let csv = "pnr,amount,kind\n811228-9874,-5,a\n701063-2391,7,åäö\n";
        let opts = CsvOptions {
            delimiter: b',',
            today: Date {
                year: 2026,
                month: 11,
                day: 23,
            },
        };
        read_csv(
            csv.as_bytes(),
            "t.csv",
            &"pnr:idnr,amount:int,kind:text".parse().unwrap(),
            &opts,
        )
        .unwrap()
    }

    #[test]
    fn any_two_nodes_reconstruct_the_table() {
        let t = table();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for kind in [ShareKind::Arithmetic, ShareKind::Boolean] {
            let s = share_table(&t, kind, &mut rng);
            for pair in [[0, 1], [1, 2], [0, 2]] {
                let r = reconstruct_table(&[&s[pair[0]], &s[pair[1]]]).unwrap();
                assert_eq!(r, t);
            }
            assert_eq!(reconstruct_table(&[&s[0], &s[1], &s[2]]).unwrap(), t);
            assert!(matches!(
                reconstruct_table(&[&s[1]]),
                Err(ShareError::TooFew(_))
            ));
        }
    }

    #[test]
    fn node_i_holds_components_i_and_i_plus_1() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let v = [10u64, u64::MAX];
        let s = share_words(&v, ShareKind::Arithmetic, &mut rng);
        for i in 0..3 {
            assert_eq!(
                s[i].1,
                s[(i + 1) % 3].0,
                "x_(i+1) is node i's b and node i+1's a"
            );
        }
        for (j, want) in v.iter().enumerate() {
            assert_eq!(
                s[0].0[j].wrapping_add(s[1].0[j]).wrapping_add(s[2].0[j]),
                *want
            );
        }
    }

    #[test]
    fn a_tampered_share_is_detected_with_three_nodes() {
        let t = table();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut s = share_table(&t, ShareKind::Arithmetic, &mut rng);
        s[2].columns[1].b[1] ^= 1; // node 2's copy of x_0
        let e = reconstruct(&[&s[0].columns[1], &s[1].columns[1], &s[2].columns[1]]).unwrap_err();
        assert_eq!(
            e,
            ShareError::Inconsistent {
                a: 0,
                b: 2,
                component: 0,
                word: 1
            }
        );
    }

    #[test]
    fn encoding_round_trips_and_refuses_damage() {
        let t = table();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let s = share_table(&t, ShareKind::Boolean, &mut rng);
        let bytes = s[1].to_bytes();
        // Header by hand: magic, version 1, party 1, reserved, 2 rows.
        assert_eq!(
            &bytes[..16],
            b"KVSH\x01\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00"
        );
        assert_eq!(TableShares::from_bytes(&bytes).unwrap(), s[1]);
        for cut in [0, 3, 10, 20, bytes.len() - 1] {
            assert!(TableShares::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TableShares::from_bytes(&longer).is_err());
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(
            matches!(TableShares::from_bytes(&v2), Err(ShareError::Decode(m)) if m.contains("version 2"))
        );
        // A huge row count is refused without allocating.
        let mut huge = bytes.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(TableShares::from_bytes(&huge).is_err());
    }

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), keep_header in any::<bool>()) {
            if keep_header && bytes.len() >= 8 {
                bytes[..8].copy_from_slice(b"KVSH\x01\x00\x00\x00");
            }
            let _ = TableShares::from_bytes(&bytes);
        }

        #[test]
        fn share_then_reconstruct(values in proptest::collection::vec(any::<u64>(), 0..50), seed in any::<u64>(), boolean in any::<bool>()) {
            let kind = if boolean { ShareKind::Boolean } else { ShareKind::Arithmetic };
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let pairs = share_words(&values, kind, &mut rng);
            let cols: Vec<ColumnShares> = pairs.into_iter().enumerate().map(|(party, (a, b))| ColumnShares {
                name: "x".into(), ty: ColumnType::Int, kind, party, a, b,
            }).collect();
            prop_assert_eq!(reconstruct(&[&cols[0], &cols[2]]).unwrap(), values.clone());
            prop_assert_eq!(reconstruct(&[&cols[2], &cols[1], &cols[0]]).unwrap(), values.clone());
            // One node's pair alone says nothing: its components are the
            // generator's output, not functions of the values.
            let mut fresh = ChaCha20Rng::seed_from_u64(seed);
            let mut r = Vec::new();
            for _ in 0..values.len() { r.push((RngCore::next_u64(&mut fresh), RngCore::next_u64(&mut fresh))); }
            prop_assert_eq!(cols[0].a.clone(), r.iter().map(|p| p.0).collect::<Vec<_>>());
            prop_assert_eq!(cols[0].b.clone(), r.iter().map(|p| p.1).collect::<Vec<_>>());
        }
    }
}
