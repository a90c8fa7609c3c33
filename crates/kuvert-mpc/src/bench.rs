//! The micro benchmark behind `kuvert bench micro`: each primitive on a
//! whole column of `n` elements, measuring time, rounds and bytes sent per
//! party. The same routine runs over any transport (in-process threads or
//! TLS between node processes); measurement only, no output formatting.

use std::time::{Duration, Instant};

use rand::RngCore;

use crate::harness::{run3_secure, Keys};
use crate::party::{Party, Result, Security, Stats};
use crate::shuffle::Column;
use crate::{AShare, BShare};

/// The operations measured, in order.
/// `lt` is exact over the whole 64-bit range; `lt63` is [`Party::lt_bounded`]
/// (values in `[-2^62, 2^62)`), the semantics of most frameworks' "less".
/// `reveal` is the semi-honest open of an arithmetic column to all three
/// parties, `reveal_verified` the verified open of [`crate::verified`]
/// (one more round and 34 more bytes per call). Every one also runs in
/// malicious mode ([`Security::Malicious`]), timed with the checks of its
/// gates ([`Party::verify_all`]); `reveal` is then the verified open and
/// `shuffle` the MAC-carrying shuffle of one column.
pub const MICRO_OPS: [&str; 10] = [
    "mul",
    "and",
    "lt",
    "lt63",
    "eq",
    "a2b",
    "b2a",
    "shuffle",
    "reveal",
    "reveal_verified",
];

/// One operation's measurement at one party.
#[derive(Clone, Debug)]
pub struct OpMeasure {
    pub op: &'static str,
    pub n: usize,
    pub elapsed: Duration,
    pub stats: Stats,
}

/// One operation's result across the three parties.
#[derive(Clone, Debug)]
pub struct OpReport {
    pub op: &'static str,
    pub n: usize,
    /// Slowest party's wall-clock time.
    pub elapsed: Duration,
    pub rounds: u64,
    /// Mean over parties of bytes sent, per element.
    pub bytes_per_elem: f64,
    /// Busiest party's bytes sent, per element.
    pub max_bytes_per_elem: f64,
}

impl OpReport {
    /// Elements per second.
    pub fn per_sec(&self) -> f64 {
        self.n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Run the micro benchmark as one party (all three parties call this with
/// the same `n` and `ops`). Inputs are random columns shared by party 0.
pub fn micro_party(
    p: &mut Party,
    n: usize,
    ops: &[&'static str],
    mut progress: impl FnMut(&str),
) -> Result<Vec<OpMeasure>> {
    let mut rng = rand::rngs::OsRng;
    let me = p.id();
    let rand_col = |rng: &mut rand::rngs::OsRng| -> Vec<u64> {
        let mut v = vec![0u64; n];
        if me == 0 {
            rng.fill_bytes(bytemuck::cast_slice_mut(&mut v));
        }
        v
    };
    let (xv, yv) = (rand_col(&mut rng), rand_col(&mut rng));
    let x = p.input_a(0, (me == 0).then_some(&xv[..]), n)?;
    let y = p.input_a(0, (me == 0).then_some(&yv[..]), n)?;
    let xb = p.input_b(0, (me == 0).then_some(&xv[..]), n)?;
    let yb = p.input_b(0, (me == 0).then_some(&yv[..]), n)?;
    drop((xv, yv));
    let mut out = Vec::new();
    for &op in ops {
        // One untimed run first: the timed run then measures the steady
        // state of a long-lived node (buffers already mapped), not the
        // operating system's first-touch page faults.
        p.barrier()?;
        run_op(p, op, &x, &y, &xb, &yb)?;
        p.verify_all()?;
        p.barrier()?;
        let before = p.stats();
        let start = Instant::now();
        run_op(p, op, &x, &y, &xb, &yb)?;
        // In malicious mode the proof of the operation's AND gates and the
        // check of its products are part of its cost (no-ops otherwise).
        p.verify_all()?;
        let elapsed = start.elapsed();
        out.push(OpMeasure {
            op,
            n,
            elapsed,
            stats: p.stats() - before,
        });
        progress(op);
    }
    Ok(out)
}

fn run_op(p: &mut Party, op: &str, x: &AShare, y: &AShare, xb: &BShare, yb: &BShare) -> Result<()> {
    match op {
        "mul" => drop(p.mul(x, y)?),
        "and" => drop(p.and(xb, yb)?),
        "lt" => drop(p.lt(x, y, true)?),
        "lt63" => drop(p.lt_bounded(x, y)?),
        "eq" => drop(p.eq(x, y)?),
        "a2b" => drop(p.a2b(x)?),
        "b2a" => drop(p.b2a(xb)?),
        "reveal" => drop(p.reveal_a(x, None)?),
        "reveal_verified" => drop(p.reveal_a_verified(x)?),
        "shuffle" => {
            let mut cols = vec![Column::Arith(x.clone())];
            p.shuffle(&mut cols)?;
        }
        other => {
            return Err(crate::MpcError::Usage(format!(
                "unknown benchmark op {other}"
            )))
        }
    }
    Ok(())
}

/// Combine the three parties' measurements of each operation.
pub fn combine(per_party: &[Vec<OpMeasure>]) -> Vec<OpReport> {
    let ops = per_party.first().map(|v| v.len()).unwrap_or(0);
    (0..ops)
        .map(|k| {
            let ms: Vec<&OpMeasure> = per_party.iter().map(|v| &v[k]).collect();
            let n = ms[0].n.max(1) as f64;
            let sent: Vec<f64> = ms.iter().map(|m| m.stats.bytes_sent as f64 / n).collect();
            OpReport {
                op: ms[0].op,
                n: ms[0].n,
                elapsed: ms.iter().map(|m| m.elapsed).max().unwrap_or_default(),
                rounds: ms.iter().map(|m| m.stats.rounds).max().unwrap_or(0),
                bytes_per_elem: sent.iter().sum::<f64>() / sent.len() as f64,
                max_bytes_per_elem: sent.iter().cloned().fold(0.0, f64::max),
            }
        })
        .collect()
}

/// The whole micro benchmark with three parties as threads of this process.
pub fn micro_inproc(
    n: usize,
    ops: &[&'static str],
    progress: impl Fn(&str) + Sync,
) -> Result<Vec<OpReport>> {
    micro_inproc_secure(n, ops, Security::SemiHonest, progress)
}

/// [`micro_inproc`] in a chosen adversary model.
pub fn micro_inproc_secure(
    n: usize,
    ops: &[&'static str],
    security: Security,
    progress: impl Fn(&str) + Sync,
) -> Result<Vec<OpReport>> {
    let per_party = run3_secure(Keys::Os, security, |p| {
        let me = p.id();
        micro_party(p, n, ops, |op| {
            if me == 0 {
                progress(op)
            }
        })
    })?;
    Ok(combine(&per_party))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_open_costs_one_round_and_34_bytes_more() {
        let n = 1000;
        let r = micro_inproc(n, &["reveal", "reveal_verified"], |_| {}).unwrap();
        assert_eq!((r[0].op, r[0].rounds), ("reveal", 1));
        assert_eq!((r[1].op, r[1].rounds), ("reveal_verified", 2));
        assert_eq!(r[0].bytes_per_elem, 8.0);
        assert_eq!(r[1].bytes_per_elem, (8 * n + 34) as f64 / n as f64);
        assert_eq!(r[1].max_bytes_per_elem, r[1].bytes_per_elem);
    }

    #[test]
    fn malicious_and_costs_about_one_bit_per_gate_plus_the_proof() {
        // 2^12 words: the proof's bytes are a few hundred per party in all.
        let n = 1 << 12;
        let semi = micro_inproc(n, &["and"], |_| {}).unwrap();
        let mal = micro_inproc_secure(n, &["and"], Security::Malicious, |_| {}).unwrap();
        assert_eq!(semi[0].bytes_per_elem, 8.0);
        let extra = (mal[0].bytes_per_elem - 8.0) * n as f64;
        assert!(
            extra > 0.0 && extra < 1024.0,
            "proof bytes per party: {extra}"
        );
        assert!(mal[0].rounds > semi[0].rounds);
    }

    #[test]
    fn malicious_mul_costs_48_bytes_per_product_plus_the_check() {
        let n = 1 << 12;
        let mal = micro_inproc_secure(n, &["mul"], Security::Malicious, |_| {}).unwrap();
        let extra = (mal[0].bytes_per_elem - 48.0) * n as f64;
        assert!(
            extra > 0.0 && extra < 512.0,
            "check bytes per party: {extra}"
        );
        // 2 for the product, 6 for the check (coins 3, product 1, open 2).
        assert_eq!(mal[0].rounds, 2 + 6);
        assert_eq!(extra, 164.0);
    }

    #[test]
    fn malicious_shuffle_costs_80_bytes_per_element_plus_the_check() {
        let n = 1 << 12;
        let mal = micro_inproc_secure(n, &["shuffle"], Security::Malicious, |_| {}).unwrap();
        let semi = micro_inproc_secure(n, &["shuffle"], Security::SemiHonest, |_| {}).unwrap();
        // Semi-honest: two passes of one word per party (mean over parties).
        assert_eq!(semi[0].bytes_per_elem, 16.0);
        // The MACs (16) and two passes of two 128-bit words (64), then one
        // MAC check of the three pass records (164 bytes in all).
        let extra = (mal[0].bytes_per_elem - 80.0) * n as f64;
        assert_eq!(extra, 164.0);
        assert_eq!(mal[0].rounds, 4 + 6);
        assert_eq!(semi[0].rounds, 3);
    }
}
