//! Every operation against a plaintext evaluation, with seeded keys and
//! edge values (0, 1, 2^63, 2^64-1, small negatives).

use kuvert_mpc::harness::{run3, Keys};
use kuvert_mpc::shuffle::Column;
use kuvert_mpc::{AShare, BShare, BitShare, Party};
use proptest::prelude::*;

fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        1 => Just(0u64),
        1 => Just(1u64),
        1 => Just(1u64 << 63),
        1 => Just(u64::MAX),
        1 => Just((1u64 << 63) - 1),
        2 => (-5i64..5).prop_map(|v| v as u64),
        1 => (0u64..4).prop_map(|v| (1u64 << 63).wrapping_add(v).wrapping_sub(2)),
    ]
}

fn column(max: usize) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(word(), 0..max)
}

fn two_columns(max: usize) -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (0..max).prop_flat_map(|n| {
        (
            prop::collection::vec(word(), n),
            prop::collection::vec(word(), n),
            prop::collection::vec(any::<bool>(), n),
        )
            .prop_map(|(x, mut y, same)| {
                // Make some pairs equal so equality and ties are exercised.
                for j in 0..x.len() {
                    if same[j] {
                        y[j] = x[j];
                    }
                }
                (x, y)
            })
    })
}

/// Reconstruct from the three parties' shares, checking that the replicated
/// components agree (party i's second component is party i+1's first).
fn open_a(s: &[AShare; 3]) -> Vec<u64> {
    let parts: Vec<(Vec<u64>, Vec<u64>)> = s.iter().map(debug_parts_a).collect();
    for i in 0..3 {
        assert_eq!(
            parts[i].1,
            parts[(i + 1) % 3].0,
            "replication broken at party {i}"
        );
    }
    (0..parts[0].0.len())
        .map(|j| {
            parts[0].0[j]
                .wrapping_add(parts[1].0[j])
                .wrapping_add(parts[2].0[j])
        })
        .collect()
}

fn open_b(s: &[BShare; 3]) -> Vec<u64> {
    let parts: Vec<(Vec<u64>, Vec<u64>)> = s.iter().map(debug_parts_b).collect();
    for i in 0..3 {
        assert_eq!(
            parts[i].1,
            parts[(i + 1) % 3].0,
            "replication broken at party {i}"
        );
    }
    (0..parts[0].0.len())
        .map(|j| parts[0].0[j] ^ parts[1].0[j] ^ parts[2].0[j])
        .collect()
}

fn open_bits(s: &[BitShare; 3]) -> Vec<bool> {
    let w = open_b(&[
        s[0].words().clone(),
        s[1].words().clone(),
        s[2].words().clone(),
    ]);
    kuvert_mpc::share::unpack_bits(&w, s[0].len())
}

// The tests reach the components through reveal-free accessors.
fn debug_parts_a(s: &AShare) -> (Vec<u64>, Vec<u64>) {
    kuvert_mpc::share::testing::parts_a(s)
}
fn debug_parts_b(s: &BShare) -> (Vec<u64>, Vec<u64>) {
    kuvert_mpc::share::testing::parts_b(s)
}

fn share_a(p: &mut Party, owner: usize, v: &[u64]) -> AShare {
    let vals = (p.id() == owner).then_some(v);
    p.input_a(owner, vals, v.len()).unwrap()
}

fn share_b(p: &mut Party, owner: usize, v: &[u64]) -> BShare {
    let vals = (p.id() == owner).then_some(v);
    p.input_b(owner, vals, v.len()).unwrap()
}

fn lt_plain(x: u64, y: u64, signed: bool) -> bool {
    if signed {
        (x as i64) < (y as i64)
    } else {
        x < y
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn input_and_reveal(x in column(150), owner in 0usize..3, to in 0usize..4, seed in any::<u64>()) {
        let to = (to < 3).then_some(to);
        let r = run3(Keys::Seeded(seed), |p| {
            let s = share_a(p, owner, &x);
            let b = share_b(p, owner, &x);
            Ok((s.clone(), b.clone(), p.reveal_a(&s, to)?, p.reveal_b(&b, to)?))
        }).unwrap();
        let [r0, r1, r2] = r;
        prop_assert_eq!(open_a(&[r0.0.clone(), r1.0.clone(), r2.0.clone()]), x.clone());
        prop_assert_eq!(open_b(&[r0.1.clone(), r1.1.clone(), r2.1.clone()]), x.clone());
        for (i, ri) in [&r0, &r1, &r2].into_iter().enumerate() {
            let learns = to.is_none() || to == Some(i);
            prop_assert_eq!(ri.2.is_some(), learns);
            prop_assert_eq!(ri.3.is_some(), learns);
            if learns {
                prop_assert_eq!(ri.2.as_ref().unwrap(), &x);
                prop_assert_eq!(ri.3.as_ref().unwrap(), &x);
            }
        }
    }

    #[test]
    fn linear_ops((x, y) in two_columns(100), c in word(), seed in any::<u64>()) {
        let r = run3(Keys::Seeded(seed), |p| {
            let a = share_a(p, 0, &x);
            let b = share_a(p, 1, &y);
            let me = p.id();
            Ok([a.add(&b), a.sub(&b), a.neg(), a.mul_public(c), a.add_public(me, c), a.sum()])
        }).unwrap();
        let get = |k: usize| open_a(&[r[0][k].clone(), r[1][k].clone(), r[2][k].clone()]);
        let n = x.len();
        prop_assert_eq!(get(0), (0..n).map(|j| x[j].wrapping_add(y[j])).collect::<Vec<_>>());
        prop_assert_eq!(get(1), (0..n).map(|j| x[j].wrapping_sub(y[j])).collect::<Vec<_>>());
        prop_assert_eq!(get(2), (0..n).map(|j| x[j].wrapping_neg()).collect::<Vec<_>>());
        prop_assert_eq!(get(3), (0..n).map(|j| x[j].wrapping_mul(c)).collect::<Vec<_>>());
        prop_assert_eq!(get(4), (0..n).map(|j| x[j].wrapping_add(c)).collect::<Vec<_>>());
        prop_assert_eq!(get(5), vec![x.iter().fold(0u64, |s, v| s.wrapping_add(*v))]);
    }

    #[test]
    fn mul_and_and((x, y) in two_columns(150), seed in any::<u64>()) {
        let r = run3(Keys::Seeded(seed), |p| {
            let a = share_a(p, 0, &x);
            let b = share_a(p, 2, &y);
            let ab = share_b(p, 1, &x);
            let bb = share_b(p, 0, &y);
            Ok((p.mul(&a, &b)?, p.and(&ab, &bb)?, ab.xor(&bb)))
        }).unwrap();
        let n = x.len();
        prop_assert_eq!(open_a(&[r[0].0.clone(), r[1].0.clone(), r[2].0.clone()]),
            (0..n).map(|j| x[j].wrapping_mul(y[j])).collect::<Vec<_>>());
        prop_assert_eq!(open_b(&[r[0].1.clone(), r[1].1.clone(), r[2].1.clone()]),
            (0..n).map(|j| x[j] & y[j]).collect::<Vec<_>>());
        prop_assert_eq!(open_b(&[r[0].2.clone(), r[1].2.clone(), r[2].2.clone()]),
            (0..n).map(|j| x[j] ^ y[j]).collect::<Vec<_>>());
    }

    #[test]
    fn conversions(x in column(150), seed in any::<u64>()) {
        let r = run3(Keys::Seeded(seed), |p| {
            let a = share_a(p, 1, &x);
            let b = share_b(p, 2, &x);
            Ok((p.a2b(&a)?, p.b2a(&b)?))
        }).unwrap();
        prop_assert_eq!(open_b(&[r[0].0.clone(), r[1].0.clone(), r[2].0.clone()]), x.clone());
        prop_assert_eq!(open_a(&[r[0].1.clone(), r[1].1.clone(), r[2].1.clone()]), x.clone());
    }

    #[test]
    fn add_bool_matches_wrapping_add((x, y) in two_columns(130), seed in any::<u64>()) {
        let r = run3(Keys::Seeded(seed), |p| {
            let a = share_b(p, 0, &x);
            let b = share_b(p, 1, &y);
            p.add_bool(&a, &b)
        }).unwrap();
        prop_assert_eq!(open_b(&r), (0..x.len()).map(|j| x[j].wrapping_add(y[j])).collect::<Vec<_>>());
    }

    #[test]
    fn comparisons((x, y) in two_columns(200), seed in any::<u64>()) {
        let r = run3(Keys::Seeded(seed), |p| {
            let a = share_a(p, 0, &x);
            let b = share_a(p, 1, &y);
            Ok((p.lt(&a, &b, true)?, p.lt(&a, &b, false)?, p.eq(&a, &b)?, p.msb(&a)?))
        }).unwrap();
        let n = x.len();
        prop_assert_eq!(open_bits(&[r[0].0.clone(), r[1].0.clone(), r[2].0.clone()]),
            (0..n).map(|j| lt_plain(x[j], y[j], true)).collect::<Vec<_>>());
        prop_assert_eq!(open_bits(&[r[0].1.clone(), r[1].1.clone(), r[2].1.clone()]),
            (0..n).map(|j| lt_plain(x[j], y[j], false)).collect::<Vec<_>>());
        prop_assert_eq!(open_bits(&[r[0].2.clone(), r[1].2.clone(), r[2].2.clone()]),
            (0..n).map(|j| x[j] == y[j]).collect::<Vec<_>>());
        prop_assert_eq!(open_bits(&[r[0].3.clone(), r[1].3.clone(), r[2].3.clone()]),
            (0..n).map(|j| x[j] >> 63 == 1).collect::<Vec<_>>());
    }

    #[test]
    fn bounded_less_than(x in prop::collection::vec(-(1i64 << 62)..(1i64 << 62), 0..150), seed in any::<u64>()) {
        // Pair each value with its neighbour (and itself) to get ties too.
        let xs: Vec<u64> = x.iter().map(|v| *v as u64).collect();
        let ys: Vec<u64> = x.iter().enumerate().map(|(j, v)| if j % 4 == 0 { *v as u64 } else { x[(j + 1) % x.len()] as u64 }).collect();
        let r = run3(Keys::Seeded(seed), |p| {
            let a = share_a(p, 0, &xs);
            let b = share_a(p, 1, &ys);
            p.lt_bounded(&a, &b)
        }).unwrap();
        prop_assert_eq!(open_bits(&r), (0..xs.len()).map(|j| (xs[j] as i64) < (ys[j] as i64)).collect::<Vec<_>>());
    }

    #[test]
    fn bit_injection_and_select((x, y) in two_columns(150), bits in prop::collection::vec(any::<bool>(), 150), seed in any::<u64>()) {
        let n = x.len();
        let c: Vec<bool> = bits[..n].to_vec();
        let packed = kuvert_mpc::share::pack_bits(&c);
        let r = run3(Keys::Seeded(seed), |p| {
            let cw = share_b(p, 2, &packed);
            let cb = kuvert_mpc::share::testing::bits_from_words(cw, n);
            let a = share_a(p, 0, &x);
            let b = share_a(p, 1, &y);
            Ok((p.bit2a(&cb)?, p.select(&cb, &a, &b)?, p.reveal_bits(&cb, None)?))
        }).unwrap();
        prop_assert_eq!(open_a(&[r[0].0.clone(), r[1].0.clone(), r[2].0.clone()]),
            c.iter().map(|&b| b as u64).collect::<Vec<_>>());
        prop_assert_eq!(open_a(&[r[0].1.clone(), r[1].1.clone(), r[2].1.clone()]),
            (0..n).map(|j| if c[j] { x[j] } else { y[j] }).collect::<Vec<_>>());
        prop_assert_eq!(r[1].2.clone().unwrap(), c);
    }

    #[test]
    fn shuffle_permutes_rows_consistently(x in column(200), seed in any::<u64>()) {
        // Column 2 is a boolean copy of column 1 tagged with the row index, so
        // we can check that rows stay together.
        let n = x.len();
        let idx: Vec<u64> = (0..n as u64).collect();
        let r = run3(Keys::Seeded(seed), |p| {
            let mut cols = vec![
                Column::Arith(share_a(p, 0, &x)),
                Column::Bool(share_b(p, 1, &idx)),
            ];
            p.shuffle(&mut cols)?;
            Ok(cols)
        }).unwrap();
        let col = |k: usize| -> [Column; 3] { [r[0][k].clone(), r[1][k].clone(), r[2][k].clone()] };
        let vals = match col(0) { [Column::Arith(a), Column::Arith(b), Column::Arith(c)] => open_a(&[a, b, c]), _ => unreachable!() };
        let ids = match col(1) { [Column::Bool(a), Column::Bool(b), Column::Bool(c)] => open_b(&[a, b, c]), _ => unreachable!() };
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, idx);
        for j in 0..n {
            prop_assert_eq!(vals[j], x[ids[j] as usize]);
        }
    }
}

#[test]
fn shuffle_moves_rows() {
    let n = 1000usize;
    let idx: Vec<u64> = (0..n as u64).collect();
    let r = run3(Keys::Seeded(7), |p| {
        let mut cols = vec![Column::Arith(share_a(p, 0, &idx))];
        p.shuffle(&mut cols)?;
        let Column::Arith(s) = &cols[0] else {
            unreachable!()
        };
        p.reveal_a(s, None)
    })
    .unwrap();
    let out = r[0].clone().unwrap();
    let fixed = out
        .iter()
        .enumerate()
        .filter(|(i, v)| *i as u64 == **v)
        .count();
    // A uniform permutation of 1000 has about one fixed point.
    assert!(fixed < 10, "{fixed} fixed points: not shuffled");
}

#[test]
fn rounds_and_bytes_are_accounted() {
    let n = 1000usize;
    let x: Vec<u64> = (0..n as u64).collect();
    let r = run3(Keys::Seeded(1), |p| {
        let a = share_a(p, 0, &x);
        let before = p.stats();
        let _ = p.mul(&a, &a)?;
        let after_mul = p.stats() - before;
        let before = p.stats();
        let _ = p.lt(&a, &a, true)?;
        let after_lt = p.stats() - before;
        Ok((after_mul, after_lt))
    })
    .unwrap();
    for (mul, lt) in r.iter() {
        assert_eq!(mul.rounds, 1);
        assert_eq!(mul.bytes_sent, 8 * n as u64);
        assert_eq!(lt.rounds, 9);
    }
}

/// Columns longer than one batch are split into batches; the joined result
/// must equal the plaintext evaluation across the batch boundary.
#[test]
fn gadgets_across_batch_boundary() {
    use kuvert_mpc::gadgets::BATCH;
    let n = BATCH + 130;
    let x: Vec<u64> = (0..n as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let y: Vec<u64> = (0..n as u64)
        .map(|i| {
            if i % 3 == 0 {
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            } else {
                i << 40
            }
        })
        .collect();
    let r = run3(Keys::Seeded(11), |p| {
        let a = share_a(p, 0, &x);
        let b = share_a(p, 1, &y);
        let lt = p.lt(&a, &b, false)?;
        let eq = p.eq(&a, &b)?;
        let bits = p.a2b(&a)?;
        let back = p.b2a(&bits)?;
        Ok((
            p.reveal_bits(&lt, Some(0))?,
            p.reveal_bits(&eq, Some(0))?,
            p.reveal_a(&back, Some(0))?,
        ))
    })
    .unwrap();
    let (lt, eq, back) = r[0].clone();
    let (lt, eq, back) = (lt.unwrap(), eq.unwrap(), back.unwrap());
    assert_eq!(back, x);
    for j in 0..n {
        assert_eq!(lt[j], x[j] < y[j], "lt at {j}");
        assert_eq!(eq[j], x[j] == y[j], "eq at {j}");
    }
}
