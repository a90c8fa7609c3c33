//! Simulation checks on small cases: for fixed inputs, every message a party
//! receives must be uniformly distributed, and its distribution must not
//! depend on the inputs. Runs each operation many times with independent
//! (seeded) keys and applies chi-square tests to the low and high nibble of
//! every received word, per position. A protocol that forgot a mask (e.g. a
//! product sent without its zero-sharing) fails these tests.

use kuvert_mpc::harness::{run3_with, Keys};
use kuvert_mpc::shuffle::Column;
use kuvert_mpc::{AShare, Party, Result};

const RUNS: usize = 1200;
/// chi-square(15) exceeds 60 with probability about 1e-7.
const CHI2_LIMIT: f64 = 60.0;

type Op = fn(&mut Party, &AShare, &AShare) -> Result<()>;

fn views(op: Op, x: &[u64], y: &[u64], seed0: u64) -> [Vec<Vec<u64>>; 3] {
    let mut out: [Vec<Vec<u64>>; 3] = Default::default();
    for run in 0..RUNS {
        let r = run3_with(Keys::Seeded(seed0 + run as u64), true, |p| {
            let a = p.input_a(0, (p.id() == 0).then_some(x), x.len())?;
            let b = p.input_a(1, (p.id() == 1).then_some(y), y.len())?;
            let _ = p.take_view();
            p.record_view();
            op(p, &a, &b)
        })
        .unwrap();
        for (i, (_, view)) in r.into_iter().enumerate() {
            let words: Vec<u64> = view
                .iter()
                .flat_map(|(_, m)| bytemuck::pod_collect_to_vec::<u8, u64>(m))
                .collect();
            out[i].push(words);
        }
    }
    out
}

fn nibble_counts(samples: &[Vec<u64>], pos: usize, shift: u32) -> [f64; 16] {
    let mut c = [0f64; 16];
    for s in samples {
        c[((s[pos] >> shift) & 15) as usize] += 1.0;
    }
    c
}

fn chi2_uniform(c: &[f64; 16]) -> f64 {
    let total: f64 = c.iter().sum();
    let e = total / 16.0;
    c.iter().map(|o| (o - e) * (o - e) / e).sum()
}

fn chi2_two_sample(a: &[f64; 16], b: &[f64; 16]) -> f64 {
    let mut s = 0.0;
    for k in 0..16 {
        let t = a[k] + b[k];
        if t > 0.0 {
            s += (a[k] - b[k]) * (a[k] - b[k]) / t;
        }
    }
    s
}

fn check(name: &str, op: Op) {
    let x1 = vec![0u64, 1, 1 << 63];
    let y1 = vec![u64::MAX, 1, 5];
    let x2 = vec![12345u64, u64::MAX, 7];
    let y2 = vec![3u64, 1 << 40, 7];
    let v1 = views(op, &x1, &y1, 1_000_000);
    let v2 = views(op, &x2, &y2, 9_000_000);
    for party in 0..3 {
        let len = v1[party][0].len();
        assert!(
            v1[party].iter().chain(&v2[party]).all(|v| v.len() == len),
            "{name}: view length varies"
        );
        for pos in 0..len {
            for shift in [0u32, 60] {
                let c1 = nibble_counts(&v1[party], pos, shift);
                let c2 = nibble_counts(&v2[party], pos, shift);
                let u = chi2_uniform(&c1);
                assert!(
                    u < CHI2_LIMIT,
                    "{name}: party {party} word {pos} (bits {shift}..) not uniform: chi2 = {u:.1}"
                );
                let d = chi2_two_sample(&c1, &c2);
                assert!(
                    d < CHI2_LIMIT,
                    "{name}: party {party} word {pos} depends on the inputs: chi2 = {d:.1}"
                );
            }
        }
    }
}

#[test]
fn view_of_multiplication() {
    check("mul", |p, a, b| p.mul(a, b).map(drop));
}

#[test]
fn view_of_and_and_a2b() {
    check("a2b+and", |p, a, b| {
        let x = p.a2b(a)?;
        let y = p.a2b(b)?;
        p.and(&x, &y).map(drop)
    });
}

#[test]
fn view_of_b2a() {
    check("b2a", |p, a, _| {
        let x = p.a2b(a)?;
        p.b2a(&x).map(drop)
    });
}

#[test]
fn view_of_comparisons_and_select() {
    check("lt/eq/select", |p, a, b| {
        let l = p.lt(a, b, true)?;
        let e = p.eq(a, b)?;
        let c = p.or_bits(&l, &e)?;
        p.select(&c, a, b).map(drop)
    });
}

#[test]
fn view_of_shuffle() {
    check("shuffle", |p, a, b| {
        let mut cols = vec![Column::Arith(a.clone()), Column::Arith(b.clone())];
        p.shuffle(&mut cols)
    });
}

/// The checker itself must be able to fail: a "multiplication" that sends
/// its local cross terms without the zero-sharing mask leaks, and is caught.
#[test]
#[should_panic(expected = "leaky: party")]
fn checker_catches_an_unmasked_product() {
    use kuvert_mpc::share::testing::parts_a;
    use kuvert_mpc::transport::{next, prev, Incoming, Outgoing};
    check("leaky", |p, a, b| {
        let ((xa, xb), (ya, yb)) = (parts_a(a), parts_a(b));
        let z: Vec<u64> = (0..xa.len())
            .map(|j| {
                xa[j]
                    .wrapping_mul(ya[j])
                    .wrapping_add(xa[j].wrapping_mul(yb[j]))
                    .wrapping_add(xb[j].wrapping_mul(ya[j]))
            })
            .collect();
        let zb: &[u8] = bytemuck::cast_slice(&z);
        let mut got = vec![0u8; zb.len()];
        let me = p.id();
        p.transport_mut().round(
            &[Outgoing {
                to: prev(me),
                data: zb,
            }],
            &mut [Incoming {
                from: next(me),
                buf: &mut got,
            }],
        )?;
        p.record_received(next(me), &got);
        Ok(())
    });
}
