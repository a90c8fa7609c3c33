//! Helpers shared by the malicious-security tests.

use rand::RngCore;

/// Random replicated components of `vals` (arithmetic over Z_2^64, or XOR
/// when `arith` is false): party `i` gets `(x_i, x_{i+1})`.
pub fn components(vals: &[u64], arith: bool, rng: &mut impl RngCore) -> [(Vec<u64>, Vec<u64>); 3] {
    let n = vals.len();
    let x0: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    let x1: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    let x2: Vec<u64> = (0..n)
        .map(|j| {
            if arith {
                vals[j].wrapping_sub(x0[j]).wrapping_sub(x1[j])
            } else {
                vals[j] ^ x0[j] ^ x1[j]
            }
        })
        .collect();
    let x = [x0, x1, x2];
    std::array::from_fn(|i| (x[i].clone(), x[(i + 1) % 3].clone()))
}
