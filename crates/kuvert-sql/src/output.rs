//! The answer of a query: each node's shares of it, and the recipient's
//! reconstruction as a table and as CSV.
//!
//! ```text
//!  node i: execute() ─▶ ResultShares ─to_bytes()─▶ (TLS) ─from_bytes()─▶ recipient
//!  recipient: reconstruct(&[2 or 3 nodes' ResultShares]) ─▶ ResultTable ─write_csv()─▶ CSV
//! ```
//!
//! The recipient checks everything it is sent: with three nodes every
//! component is held by two of them and the copies must agree (a node that
//! altered its shares is named); the valid and null planes must open to 0
//! or 1; every value must be a valid encoding of its column type. Nothing
//! in this module panics on what a node sent.

use std::cmp::Ordering;
use std::io::Write;

use kuvert_data::ColumnType;
use kuvert_mpc::AShare;
use serde::{Deserialize, Serialize};

use crate::plan::{Field, OrderKey};

/// One node's shares of a query's answer (arithmetic sharing mod 2^64).
///
/// The rows are padded: `rows` is a public bound that depends only on the
/// input sizes; the rows that are part of the answer have valid = 1, the
/// others have every plane 0 (so the recipient learns nothing from them).
/// Rows are in a secret random order.
pub struct ResultShares {
    /// The node (0, 1, 2) these shares belong to.
    pub party: usize,
    pub fields: Vec<Field>,
    pub order_by: Vec<OrderKey>,
    /// LIMIT, already applied under MPC (at most `limit` valid rows).
    pub limit: Option<u64>,
    pub rows: usize,
    /// Per field, in order: its `ty.words()` word planes, then, if the field
    /// is nullable, a null plane (1 = NULL, and the word planes are 0).
    /// Last, the valid plane (1 = the row is part of the answer).
    pub planes: Vec<AShare>,
}

impl std::fmt::Debug for ResultShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ResultShares {{ party: {}, fields: {}, rows: {} }}",
            self.party,
            self.fields.len(),
            self.rows
        )
    }
}

/// First bytes of an encoded [`ResultShares`].
pub const RESULT_MAGIC: [u8; 4] = *b"KVRS";
/// Version of the [`ResultShares`] encoding.
pub const RESULT_VERSION: u8 = 1;
/// Largest accepted JSON header of an encoded [`ResultShares`].
pub const MAX_RESULT_HEADER: usize = 1 << 20;

/// Why result shares could not be decoded, reconstructed or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("result shares from node {node} are malformed: {reason}")]
    Decode { node: String, reason: String },
    #[error("need the result shares of at least two different nodes; got nodes {0:?}")]
    TooFew(Vec<usize>),
    #[error("node {0} is not 0, 1 or 2")]
    BadParty(usize),
    #[error("node {node} describes a different answer than node {other}: {what}. At least one of them is faulty; do not use this result")]
    Mismatch {
        node: usize,
        other: usize,
        what: String,
    },
    #[error("node {a} and node {b} disagree about component x_{component} of plane {plane} at row {row}: at least one of them sent wrong shares; do not use this result")]
    Inconsistent {
        a: usize,
        b: usize,
        component: usize,
        plane: usize,
        row: usize,
    },
    #[error("the {what} flag of padded row {row} opened to {value}, not 0 or 1: the shares are corrupt; do not use this result")]
    NotABit {
        what: &'static str,
        row: usize,
        value: u64,
    },
    #[error("row {row}, column {field:?}: {reason}")]
    BadValue {
        row: usize,
        field: String,
        reason: String,
    },
    #[error("cannot write the result: {0}")]
    Io(#[from] std::io::Error),
}

/// The header of the encoding (JSON).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    party: usize,
    fields: Vec<Field>,
    order_by: Vec<OrderKey>,
    limit: Option<u64>,
    rows: u64,
    planes: u64,
}

/// Number of planes a result with these fields has: each field's words,
/// a null plane per nullable field, and the valid plane.
pub fn plane_count(fields: &[Field]) -> usize {
    fields
        .iter()
        .map(|f| f.ty.words() + usize::from(f.nullable))
        .sum::<usize>()
        + 1
}

impl ResultShares {
    /// Encode for sending to the recipient (inside TLS):
    ///
    /// ```text
    /// "KVRS" | version u8 = 1 | header length u32 | JSON header
    /// {party, fields, order_by, limit, rows, planes} |
    /// per plane: the `rows` words of component a, then of component b (u64)
    /// ```
    /// All integers little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            party: self.party,
            fields: self.fields.clone(),
            order_by: self.order_by.clone(),
            limit: self.limit,
            rows: self.rows as u64,
            planes: self.planes.len() as u64,
        };
        let h = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(9 + h.len() + 16 * self.rows * self.planes.len());
        out.extend_from_slice(&RESULT_MAGIC);
        out.push(RESULT_VERSION);
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
        out.extend_from_slice(&h);
        for p in &self.planes {
            let (a, b) = p.components();
            for w in a.iter().chain(b) {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Decode what [`ResultShares::to_bytes`] wrote. `node` names the
    /// sender in errors. Every length is checked against the input before
    /// anything is allocated; never panics on any input.
    pub fn from_bytes(bytes: &[u8], node: &str) -> Result<ResultShares, OutputError> {
        let bad = |reason: String| OutputError::Decode {
            node: node.to_string(),
            reason,
        };
        let mut r = bytes;
        let mut take = |n: usize| -> Result<&[u8], OutputError> {
            if r.len() < n {
                return Err(OutputError::Decode {
                    node: node.to_string(),
                    reason: format!("truncated: {n} more bytes expected, {} left", r.len()),
                });
            }
            let (h, t) = r.split_at(n);
            r = t;
            Ok(h)
        };
        if take(4)? != RESULT_MAGIC {
            return Err(bad("not kuvert result shares (bad magic)".into()));
        }
        let version = take(1)?[0];
        if version != RESULT_VERSION {
            return Err(bad(format!(
                "version {version} is not supported (this is version {RESULT_VERSION})"
            )));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(take(4)?);
        let hl = u32::from_le_bytes(len) as usize;
        if hl > MAX_RESULT_HEADER {
            return Err(bad(format!(
                "header of {hl} bytes exceeds {MAX_RESULT_HEADER}"
            )));
        }
        let header: Header =
            serde_json::from_slice(take(hl)?).map_err(|e| bad(format!("header: {e}")))?;
        if header.party > 2 {
            return Err(OutputError::BadParty(header.party));
        }
        let want = plane_count(&header.fields) as u64;
        if header.planes != want {
            return Err(bad(format!(
                "{} planes, but the fields need {want}",
                header.planes
            )));
        }
        for k in &header.order_by {
            if k.column >= header.fields.len() {
                return Err(bad(format!(
                    "ORDER BY column {} of {} columns",
                    k.column,
                    header.fields.len()
                )));
            }
        }
        let rows = usize::try_from(header.rows).map_err(|_| bad("row count too large".into()))?;
        let body = rows
            .checked_mul(16)
            .and_then(|b| b.checked_mul(want as usize))
            .ok_or_else(|| bad("row count too large".into()))?;
        let left = bytes.len().saturating_sub(9 + hl);
        if left != body {
            return Err(bad(format!(
                "{left} bytes of shares, but {rows} rows of {want} planes need {body}"
            )));
        }
        let mut planes = Vec::with_capacity(want as usize);
        for _ in 0..want {
            let mut read = |n: usize| -> Result<Vec<u64>, OutputError> {
                Ok(take(n * 8)?
                    .chunks_exact(8)
                    .map(|c| {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(c);
                        u64::from_le_bytes(w)
                    })
                    .collect())
            };
            let a = read(rows)?;
            let b = read(rows)?;
            planes.push(
                AShare::from_components(a, b)
                    .ok_or_else(|| bad("components differ in length".into()))?,
            );
        }
        Ok(ResultShares {
            party: header.party,
            fields: header.fields,
            order_by: header.order_by,
            limit: header.limit,
            rows,
            planes,
        })
    }
}

/// The answer in cleartext, on the recipient's machine: per row, per field,
/// `None` for NULL or the cell's words (`ty.words()` of them, encoded as
/// `kuvert_data::value::encode_cell` does). Rows are in the final order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultTable {
    pub fields: Vec<Field>,
    pub rows: Vec<Vec<Option<Vec<u64>>>>,
}

/// Reconstruct the answer from the result shares of two or three nodes.
///
/// With three nodes every component is held twice and the copies are
/// compared (a single node that altered its shares is detected and named).
/// Keeps the rows with valid = 1 (valid must open to 0 or 1), NULL where
/// the null plane is 1, sorts by `order_by` (see [`compare_rows`]) and
/// applies `limit` (again: the executor applied it under MPC already).
pub fn reconstruct(shares: &[ResultShares]) -> Result<ResultTable, OutputError> {
    let first = shares.first().ok_or(OutputError::TooFew(vec![]))?;
    for s in shares {
        if s.party > 2 {
            return Err(OutputError::BadParty(s.party));
        }
        let mismatch = |what: &str| OutputError::Mismatch {
            node: s.party,
            other: first.party,
            what: what.to_string(),
        };
        if s.fields != first.fields {
            return Err(mismatch("the columns differ"));
        }
        if s.order_by != first.order_by || s.limit != first.limit {
            return Err(mismatch("ORDER BY or LIMIT differ"));
        }
        if s.rows != first.rows {
            return Err(mismatch(&format!(
                "{} padded rows against {}",
                s.rows, first.rows
            )));
        }
        if s.planes.len() != plane_count(&first.fields) || s.planes.len() != first.planes.len() {
            return Err(mismatch("the number of planes is wrong"));
        }
        if s.planes.iter().any(|p| p.len() != s.rows) {
            return Err(mismatch("a plane has the wrong length"));
        }
    }
    for k in &first.order_by {
        if k.column >= first.fields.len() {
            return Err(OutputError::Mismatch {
                node: first.party,
                other: first.party,
                what: format!("ORDER BY names column {}", k.column),
            });
        }
    }
    let n = first.rows;
    // Open every plane: plane index -> words.
    let mut open = Vec::with_capacity(first.planes.len());
    for plane in 0..first.planes.len() {
        let mut comp: [Option<(usize, &[u64])>; 3] = [None, None, None];
        for s in shares {
            let (a, b) = s.planes[plane].components();
            for (k, words) in [(s.party, a), ((s.party + 1) % 3, b)] {
                match comp[k] {
                    None => comp[k] = Some((s.party, words)),
                    Some((other, prev)) => {
                        if let Some(row) = prev.iter().zip(words).position(|(x, y)| x != y) {
                            return Err(OutputError::Inconsistent {
                                a: other,
                                b: s.party,
                                component: k,
                                plane,
                                row,
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
            return Err(OutputError::TooFew(parties));
        };
        open.push(
            (0..n)
                .map(|j| x0[j].wrapping_add(x1[j]).wrapping_add(x2[j]))
                .collect::<Vec<u64>>(),
        );
    }
    let valid = open.last().map(|v| &v[..]).unwrap_or(&[]);
    let mut rows = Vec::new();
    for r in 0..n {
        match valid[r] {
            0 => continue,
            1 => {}
            value => {
                return Err(OutputError::NotABit {
                    what: "valid",
                    row: r,
                    value,
                })
            }
        }
        let mut row = Vec::with_capacity(first.fields.len());
        let mut at = 0;
        for f in &first.fields {
            let words: Vec<u64> = (0..f.ty.words()).map(|k| open[at + k][r]).collect();
            at += f.ty.words();
            let null = if f.nullable {
                let v = open[at][r];
                at += 1;
                match v {
                    0 => false,
                    1 => true,
                    value => {
                        return Err(OutputError::NotABit {
                            what: "null",
                            row: r,
                            value,
                        })
                    }
                }
            } else {
                false
            };
            if null {
                row.push(None);
            } else {
                kuvert_data::value::format_cell(f.ty, &words).map_err(|reason| {
                    OutputError::BadValue {
                        row: r,
                        field: f.name.clone(),
                        reason,
                    }
                })?;
                row.push(Some(words));
            }
        }
        rows.push(row);
    }
    let fields = first.fields.clone();
    rows.sort_by(|x, y| compare_rows(&fields, &first.order_by, x, y));
    if let Some(limit) = first.limit {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(ResultTable { fields, rows })
}

/// Order of two cells of type `ty`: ints and dates signed, identity numbers
/// numerically, text bytewise (the words are big-endian, zero-padded
/// bytes), bools false before true. NULL comes first, as in SQLite.
pub fn compare_cells(ty: ColumnType, x: &Option<Vec<u64>>, y: &Option<Vec<u64>>) -> Ordering {
    match (x, y) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match ty {
            ColumnType::Int | ColumnType::Date | ColumnType::Idnr => {
                let v = |w: &[u64]| w.first().map(|&u| u as i64).unwrap_or(0);
                v(a).cmp(&v(b))
            }
            ColumnType::Bool | ColumnType::Text => a.cmp(b),
        },
    }
}

/// The order of the answer: the `order_by` keys (DESC reverses, so NULLs
/// come last there), then ascending by every column to break ties (and
/// only that without ORDER BY), so that the output is deterministic.
pub fn compare_rows(
    fields: &[Field],
    order_by: &[OrderKey],
    x: &[Option<Vec<u64>>],
    y: &[Option<Vec<u64>>],
) -> Ordering {
    for k in order_by {
        let ty = fields[k.column].ty;
        let o = compare_cells(ty, &x[k.column], &y[k.column]);
        let o = if k.desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    for (i, f) in fields.iter().enumerate() {
        let o = compare_cells(f.ty, &x[i], &y[i]);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// One cell as the CSV shows it: ints decimal, dates `YYYY-MM-DD`, identity
/// numbers as 12 digits, bools `1`/`0` (as SQLite prints them), text as is,
/// NULL empty.
pub fn format_value(ty: ColumnType, cell: &Option<Vec<u64>>) -> Result<String, String> {
    match cell {
        None => Ok(String::new()),
        Some(w) if ty == ColumnType::Bool => match w.first() {
            Some(0) => Ok("0".into()),
            Some(1) => Ok("1".into()),
            _ => Err("not a boolean (0 or 1)".into()),
        },
        Some(w) => kuvert_data::value::format_cell(ty, w),
    }
}

/// Quote a CSV field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

impl ResultTable {
    /// Write the answer as CSV: a header of the field names, then one line
    /// per row (see [`format_value`]).
    pub fn write_csv<W: Write>(&self, mut w: W) -> Result<(), OutputError> {
        let header: Vec<_> = self.fields.iter().map(|f| csv_field(&f.name)).collect();
        writeln!(w, "{}", header.join(","))?;
        for (r, row) in self.rows.iter().enumerate() {
            let mut line = String::new();
            for (i, (f, cell)) in self.fields.iter().zip(row).enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let s = format_value(f.ty, cell).map_err(|reason| OutputError::BadValue {
                    row: r,
                    field: f.name.clone(),
                    reason,
                })?;
                line.push_str(&csv_field(&s));
            }
            writeln!(w, "{line}")?;
        }
        w.flush()?;
        Ok(())
    }

    /// The CSV as a string.
    pub fn to_csv_string(&self) -> Result<String, OutputError> {
        let mut out = Vec::new();
        self.write_csv(&mut out)?;
        String::from_utf8(out).map_err(|e| OutputError::Io(std::io::Error::other(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_data::share::{share_words, ShareKind};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn field(name: &str, ty: ColumnType, nullable: bool) -> Field {
        Field {
            name: name.into(),
            ty,
            nullable,
        }
    }

    /// Share cleartext planes (each `rows` long) for the three nodes.
    fn share(
        fields: &[Field],
        order_by: &[OrderKey],
        limit: Option<u64>,
        planes: &[Vec<u64>],
        seed: u64,
    ) -> Vec<ResultShares> {
        let rows = planes[0].len();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut out: Vec<ResultShares> = (0..3)
            .map(|party| ResultShares {
                party,
                fields: fields.to_vec(),
                order_by: order_by.to_vec(),
                limit,
                rows,
                planes: Vec::new(),
            })
            .collect();
        for p in planes {
            let pairs = share_words(p, ShareKind::Arithmetic, &mut rng);
            for (party, (a, b)) in pairs.into_iter().enumerate() {
                out[party]
                    .planes
                    .push(AShare::from_components(a, b).unwrap());
            }
        }
        out
    }

    fn text(s: &str) -> [u64; 4] {
        let mut w = [0u64; 4];
        kuvert_data::value::encode_cell(
            ColumnType::Text,
            s,
            kuvert_data::Date::today_utc(),
            &mut w,
        )
        .unwrap();
        w
    }

    /// A padded answer of five rows (two are padding) with every type and a
    /// nullable int; the oracle is written by hand.
    fn example() -> (Vec<Field>, Vec<Vec<u64>>) {
        let fields = vec![
            field("pnr", ColumnType::Idnr, false),
            field("namn", ColumnType::Text, false),
            field("fran", ColumnType::Date, false),
            field("ok", ColumnType::Bool, false),
            field("s", ColumnType::Int, true),
        ];
        let t: Vec<[u64; 4]> = ["b,c", "a", "", "ö\"x", ""]
            .iter()
            .map(|s| text(s))
            .collect();
        // rows: 0 valid, 1 padding, 2 valid (NULL s), 3 valid, 4 padding
        let planes = vec![
            vec![198112289874, 0, 191212121212, 197010632391, 0],
            t.iter().map(|w| w[0]).collect(),
            t.iter().map(|w| w[1]).collect(),
            t.iter().map(|w| w[2]).collect(),
            t.iter().map(|w| w[3]).collect(),
            vec![19782, 0, (-1i64) as u64, 0, 0],
            vec![1, 0, 0, 1, 0],
            vec![(-5i64) as u64, 0, 0, 42, 0],
            vec![0, 0, 1, 0, 0],
            vec![1, 0, 1, 1, 0],
        ];
        (fields, planes)
    }

    #[test]
    fn reconstructs_the_valid_rows_sorted_with_nulls_and_every_type() {
        let (fields, planes) = example();
        let s = share(&fields, &[], None, &planes, 1);
        let t = reconstruct(&s).unwrap();
        // No ORDER BY: ascending by all columns, pnr first.
        assert_eq!(
            t.to_csv_string().unwrap(),
            "pnr,namn,fran,ok,s\n\
             191212121212,,1969-12-31,0,\n\
             197010632391,\"ö\"\"x\",1970-01-01,1,42\n\
             198112289874,\"b,c\",2024-02-29,1,-5\n"
        );
        // Any two nodes give the same answer.
        for pair in [[0, 1], [1, 2], [0, 2]] {
            let s = share(&fields, &[], None, &planes, 1);
            let two: Vec<ResultShares> =
                s.into_iter().filter(|x| pair.contains(&x.party)).collect();
            assert_eq!(reconstruct(&two).unwrap(), t);
        }
    }

    #[test]
    fn order_by_is_type_aware_nulls_first_desc_reversed_and_limit_applies() {
        let (fields, planes) = example();
        // ORDER BY s DESC: 42, -5, NULL (NULL last when descending).
        let by_s_desc = [OrderKey {
            column: 4,
            desc: true,
        }];
        let t = reconstruct(&share(&fields, &by_s_desc, None, &planes, 2)).unwrap();
        let s: Vec<String> = t
            .rows
            .iter()
            .map(|r| format_value(ColumnType::Int, &r[4]).unwrap())
            .collect();
        assert_eq!(s, ["42", "-5", ""]);
        // ORDER BY fran (dates signed: 1969-12-31 before 1970-01-01) LIMIT 2.
        let by_date = [OrderKey {
            column: 2,
            desc: false,
        }];
        let t = reconstruct(&share(&fields, &by_date, Some(2), &planes, 3)).unwrap();
        assert_eq!(
            t.to_csv_string().unwrap(),
            "pnr,namn,fran,ok,s\n191212121212,,1969-12-31,0,\n197010632391,\"ö\"\"x\",1970-01-01,1,42\n"
        );
        // Text bytewise: "" < "a" < "b,c" < "ö\"x" (UTF-8 bytes of ö are high).
        let a = text("a");
        let b = text("b,c");
        let o = text("ö\"x");
        let e = text("");
        let mut v = vec![o.to_vec(), b.to_vec(), e.to_vec(), a.to_vec()];
        v.sort_by(|x, y| compare_cells(ColumnType::Text, &Some(x.clone()), &Some(y.clone())));
        assert_eq!(v, vec![e.to_vec(), a.to_vec(), b.to_vec(), o.to_vec()]);
        // Ints signed: -1 (u64::MAX) before 0.
        assert_eq!(
            compare_cells(ColumnType::Int, &Some(vec![u64::MAX]), &Some(vec![0])),
            Ordering::Less
        );
    }

    #[test]
    fn a_tampered_share_is_named_and_bad_flags_are_refused() {
        let (fields, planes) = example();
        let mut s = share(&fields, &[], None, &planes, 4);
        // Node 2's b is x_0; change row 3 of plane 5 (fran).
        let (a, b) = s[2].planes[5].components();
        let (a, mut b) = (a.to_vec(), b.to_vec());
        b[3] ^= 1;
        s[2].planes[5] = AShare::from_components(a, b).unwrap();
        match reconstruct(&s).unwrap_err() {
            OutputError::Inconsistent {
                a,
                b,
                component,
                plane,
                row,
            } => assert_eq!((a, b, component, plane, row), (0, 2, 0, 5, 3)),
            e => panic!("{e}"),
        }
        // A valid flag of 2 is refused, not read as true.
        let mut p = planes.clone();
        p[9][1] = 2;
        let e = reconstruct(&share(&fields, &[], None, &p, 5)).unwrap_err();
        assert!(
            e.to_string()
                .contains("valid flag of padded row 1 opened to 2"),
            "{e}"
        );
        // Null flag likewise.
        let mut p = planes.clone();
        p[8][0] = 7;
        assert!(matches!(
            reconstruct(&share(&fields, &[], None, &p, 6)),
            Err(OutputError::NotABit { what: "null", .. })
        ));
        // A value that is no valid encoding (an identity number of 3 digits).
        let mut p = planes;
        p[0][0] = 123;
        assert!(matches!(
            reconstruct(&share(&fields, &[], None, &p, 7)),
            Err(OutputError::BadValue { row: 0, .. })
        ));
        // One node is not enough.
        let (fields, planes) = example();
        let one: Vec<_> = share(&fields, &[], None, &planes, 8)
            .into_iter()
            .take(1)
            .collect();
        assert!(matches!(reconstruct(&one), Err(OutputError::TooFew(v)) if v == vec![0]));
        assert!(matches!(reconstruct(&[]), Err(OutputError::TooFew(_))));
    }

    #[test]
    fn nodes_that_disagree_about_the_shape_are_named() {
        let (fields, planes) = example();
        let mut s = share(&fields, &[], None, &planes, 9);
        s[1].limit = Some(1);
        match reconstruct(&s).unwrap_err() {
            OutputError::Mismatch { node, other, .. } => assert_eq!((node, other), (1, 0)),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn encoding_round_trips_and_refuses_damage() {
        let (fields, planes) = example();
        let order = [OrderKey {
            column: 1,
            desc: true,
        }];
        let s = share(&fields, &order, Some(7), &planes, 10);
        let bytes = s[1].to_bytes();
        assert_eq!(&bytes[..5], b"KVRS\x01");
        let back = ResultShares::from_bytes(&bytes, "1").unwrap();
        assert_eq!(back.party, 1);
        assert_eq!(back.fields, fields);
        assert_eq!(back.order_by, order);
        assert_eq!(back.limit, Some(7));
        assert_eq!(back.rows, 5);
        for (x, y) in back.planes.iter().zip(&s[1].planes) {
            assert_eq!(x.components(), y.components());
        }
        // Every truncation is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(ResultShares::from_bytes(&bytes[..cut], "1").is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(ResultShares::from_bytes(&extra, "1").is_err());
        let mut v2 = bytes.clone();
        v2[4] = 2;
        let e = ResultShares::from_bytes(&v2, "1").unwrap_err().to_string();
        assert!(e.contains("node 1") && e.contains("version 2"), "{e}");
        // A header that claims a huge row count is refused before allocating.
        let h = br#"{"party":0,"fields":[],"order_by":[],"limit":null,"rows":18446744073709551615,"planes":1}"#;
        let mut huge = b"KVRS\x01".to_vec();
        huge.extend((h.len() as u32).to_le_bytes());
        huge.extend(h);
        assert!(ResultShares::from_bytes(&huge, "0").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// What a node sends is untrusted: damaged encodings (bytes
        /// flipped, cut or appended) are refused or decode to something
        /// that reconstruction refuses or accepts, never a panic.
        #[test]
        fn damaged_result_shares_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
            tail in proptest::collection::vec(any::<u8>(), 0..24),
            seed in any::<u64>(),
        ) {
            let (fields, planes) = example();
            let order = [OrderKey { column: 4, desc: true }];
            let s = share(&fields, &order, Some(3), &planes, seed);
            let mut decoded = Vec::new();
            for (i, x) in s.iter().enumerate() {
                let mut b = x.to_bytes();
                if i == 1 {
                    for (at, v) in &flips {
                        let n = b.len();
                        b[at % n] ^= v;
                    }
                    b.truncate(b.len() - cut % 4.min(b.len()));
                    b.extend(&tail);
                }
                if let Ok(d) = ResultShares::from_bytes(&b, &i.to_string()) {
                    decoded.push(d);
                }
            }
            let _ = reconstruct(&decoded);
            if let Ok(t) = reconstruct(&decoded) {
                let _ = t.to_csv_string();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Against an independent oracle: keep the valid rows and sort the
        /// (i64, i64) tuples with Rust's tuple order (ORDER BY b DESC is
        /// the oracle's key (-b) with ties ascending).
        #[test]
        fn int_rows_match_a_plain_oracle(
            rows in proptest::collection::vec((any::<i64>(), -3i64..3, any::<bool>()), 0..40),
            desc in any::<bool>(),
            limit in proptest::option::of(0u64..50),
            seed in any::<u64>(),
        ) {
            let fields = vec![field("a", ColumnType::Int, false), field("b", ColumnType::Int, false)];
            let order = if desc { vec![OrderKey { column: 1, desc: true }] } else { vec![] };
            let planes = vec![
                rows.iter().map(|r| r.0 as u64).collect::<Vec<_>>(),
                rows.iter().map(|r| r.1 as u64).collect(),
                rows.iter().map(|r| u64::from(r.2)).collect(),
            ];
            let planes = if rows.is_empty() { vec![vec![]; 3] } else { planes };
            let mut s = share(&fields, &order, limit, &planes, seed);
            if rows.is_empty() {
                for x in &mut s { x.rows = 0; }
            }
            let t = reconstruct(&s).unwrap();
            let got: Vec<(i64, i64)> = t.rows.iter()
                .map(|r| (r[0].as_ref().unwrap()[0] as i64, r[1].as_ref().unwrap()[0] as i64))
                .collect();
            let mut want: Vec<(i64, i64)> = rows.iter().filter(|r| r.2).map(|r| (r.0, r.1)).collect();
            if desc {
                want.sort_by_key(|&(a, b)| (std::cmp::Reverse(b), a));
            } else {
                want.sort();
            }
            if let Some(l) = limit { want.truncate(l as usize); }
            prop_assert_eq!(got, want);
        }
    }
}
