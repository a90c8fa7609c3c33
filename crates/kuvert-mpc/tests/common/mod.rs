//! Helpers shared by the malicious-security tests.

use kuvert_mpc::faulty::Fault;
use rand::{Rng, RngCore};

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

/// A random fault: a flipped bit, zeros, a replay or random bytes, equally
/// likely.
#[allow(dead_code)] // not every test binary that includes this uses it
pub fn random_fault(rng: &mut impl Rng) -> Fault {
    match rng.gen_range(0..4) {
        0 => Fault::FlipBit {
            bit: rng.gen_range(0..1 << 20),
        },
        1 => Fault::Drop,
        2 => Fault::Replay,
        _ => Fault::Substitute { seed: rng.gen() },
    }
}
