//! Range checks of contributed columns, under MPC (malicious mode).
//!
//! The plan packs several bounded values into one sort key word and
//! compares bounded types by the sign of their difference
//! ([`crate::exec::bounded`]: dates in 22 bits after an offset, identity
//! numbers in 40, booleans in 1). An honest client's encoding is always in
//! range, but a contributor that runs a modified client could upload shares
//! of, say, a "date" of 2^50: packed into a key word it would carry into
//! the neighbouring key part and reorder *other* contributors' rows, so
//! that joins and groups pair rows that do not match. One deviating
//! contributor must be able to spoil at most its own rows, never the
//! answer about others.
//!
//! So in malicious mode every node checks each bounded column of a table
//! the first time a query reads it. For `w = v + offset` the value is in
//! range iff `msb(w) = 0` and `msb(w - 2^bits) = 1` (both differences read
//! as two's complement): the first says `0 <= w < 2^63`, the second `w <
//! 2^bits` there. Both sign bits of all bounded columns are extracted in
//! one batch (the comparisons' own circuit, covered by the AND proofs),
//! combined with one AND, and the per-row "out of range" bits are opened
//! with the verified open after every pending check.
//!
//! **What the open reveals.** Only which rows of that column are out of
//! range. For a table an honest client uploaded these bits are all zero,
//! known in advance, so nothing about its values is revealed; a contributor
//! that deviated learns nothing it did not choose. Any set bit stops the
//! query at every node (all three open the same bits) with check
//! `"input-range"`, naming the table, the column, how many rows and the
//! first of them; no answer is released and the stored shares are kept for
//! the operators to delete or replace.
//!
//! Cost per bounded column and row: two sign-bit extractions and one AND
//! (about two comparisons), plus one bit opened.

use kuvert_data::ColumnType;
use kuvert_mpc::{AShare, MpcError, Party};

use crate::exec::{bounded, ExecError, InputTable};

/// Check every bounded column of `table` (see the module docs). Returns
/// [`MpcError::Check`] with check `"input-range"` if a value is out of
/// range; only call it in malicious mode, at every node at the same point.
pub(crate) fn check_ranges(p: &mut Party, table: &str, t: &InputTable) -> Result<(), ExecError> {
    let n = t.rows;
    let mut checked: Vec<(&str, ColumnType, u64, u32, &AShare)> = Vec::new();
    let mut at = 0;
    for c in t.schema.columns() {
        if let Some((offset, bits)) = bounded(c.ty) {
            checked.push((&c.name, c.ty, offset, bits, &t.columns[at]));
        }
        at += c.ty.words();
    }
    if n == 0 || checked.is_empty() {
        return Ok(());
    }
    let me = p.id();
    let pad = n.next_multiple_of(64) - n;
    // For each column: w = v + offset and w - 2^bits, each padded to whole
    // words (padding 0 is in range for every bounded type: offset >= 0).
    let mut words = Vec::with_capacity(2 * checked.len());
    for (_, _, offset, bits, v) in &checked {
        let w = v.add_public(me, *offset);
        words.push(w.add_public(me, (1u64 << bits).wrapping_neg()).padded(pad));
        words.push(w.padded(pad));
    }
    let refs: Vec<&AShare> = words.iter().collect();
    let signs = p.msb(&AShare::concat(&refs))?;
    drop(words);
    let np = n + pad;
    let parts = signs.split_words(&vec![np; 2 * checked.len()]);
    // In range iff msb(w - 2^bits) AND NOT msb(w); all columns in one AND.
    let below: Vec<&kuvert_mpc::BShare> = parts.iter().step_by(2).map(|b| b.words()).collect();
    let nonneg: Vec<kuvert_mpc::BShare> = parts
        .iter()
        .skip(1)
        .step_by(2)
        .map(|b| b.words().not(me))
        .collect();
    let nonneg: Vec<&kuvert_mpc::BShare> = nonneg.iter().collect();
    let ok = p.and(
        &kuvert_mpc::BShare::concat(&below),
        &kuvert_mpc::BShare::concat(&nonneg),
    )?;
    let bad = p.reveal_b_verified(&ok.not(me))?.into_inner();
    let per = np / 64;
    for (k, (name, ty, offset, bits, _)) in checked.iter().enumerate() {
        let col = &bad[k * per..(k + 1) * per];
        let mut count = 0usize;
        let mut first = None;
        for (j, w) in col.iter().enumerate() {
            let mut w = *w;
            if j == per - 1 && !n.is_multiple_of(64) {
                w &= (1u64 << (n % 64)) - 1;
            }
            if w != 0 && first.is_none() {
                first = Some(64 * j + w.trailing_zeros() as usize);
            }
            count += w.count_ones() as usize;
        }
        if let Some(row) = first {
            let shifted = if *offset == 0 {
                "value".to_string()
            } else {
                format!("value + {offset}")
            };
            return Err(MpcError::Check {
                check: "input-range".into(),
                detail: format!(
                    "table {table:?}, column {name:?} ({}): {count} of {n} rows hold values outside \
                     the type's range (first: row {}; the plan assumes 0 <= {shifted} < 2^{bits}). \
                     The contributor's shares were not made by an honest client: ask it to \
                     upload the table again; the query released nothing",
                    ty.name(),
                    row + 1,
                ),
            }
            .into());
        }
    }
    Ok(())
}
