//! The classifier behind ML efficacy: multinomial logistic regression on
//! sparse features, trained by mini-batch Adam, deterministic with a seed.
//!
//! Features of a row (one value per slot, so every row has the same number
//! of non-zeros): a bias; for each categorical column the one-hot of its
//! category (at most [`MAX_LEVELS`] levels, the rest pooled); for each
//! numeric or date column the one-hot of its bin (the same bins as the
//! marginals, so the model can learn non-linear effects) plus the value
//! standardised with the real training data's mean and standard deviation
//! (0 when missing).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Most levels one categorical feature or the target keeps; rarer ones are pooled.
pub const MAX_LEVELS: usize = 64;

/// Rows of sparse features with a fixed number of slots per row.
#[derive(Debug, Clone, Default)]
pub struct Design {
    /// Feature index per slot, row-major.
    pub idx: Vec<u32>,
    /// Feature value per slot.
    pub val: Vec<f32>,
    /// Slots per row.
    pub slots: usize,
    /// Number of features.
    pub n_features: usize,
}

impl Design {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.idx.len().checked_div(self.slots).unwrap_or(0)
    }
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainParams {
    /// Passes over the data.
    pub epochs: usize,
    /// Rows per update.
    pub batch: usize,
    /// Adam step size.
    pub learning_rate: f32,
    /// L2 penalty.
    pub l2: f32,
    /// Seed of the row order.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            epochs: 8,
            batch: 128,
            learning_rate: 0.05,
            l2: 1e-5,
            seed: 1,
        }
    }
}

/// A trained model.
#[derive(Debug, Clone)]
pub struct Model {
    w: Vec<f32>,
    classes: usize,
}

fn logits(w: &[f32], k: usize, idx: &[u32], val: &[f32], out: &mut [f32]) {
    out.iter_mut().for_each(|x| *x = 0.0);
    for (&f, &v) in idx.iter().zip(val) {
        let row = &w[f as usize * k..f as usize * k + k];
        for (o, &wi) in out.iter_mut().zip(row) {
            *o += wi * v;
        }
    }
}

/// Train on `x` with labels `y` in `0..classes`.
pub fn train(x: &Design, y: &[u32], classes: usize, p: &TrainParams) -> Model {
    let k = classes.max(1);
    let nf = x.n_features;
    let mut w = vec![0f32; nf * k];
    let (mut m, mut v) = (vec![0f32; nf * k], vec![0f32; nf * k]);
    let mut g = vec![0f32; nf * k];
    let mut touched = vec![false; nf];
    let mut touched_list: Vec<u32> = Vec::new();
    let mut order: Vec<usize> = (0..x.rows()).collect();
    let mut rng = ChaCha20Rng::seed_from_u64(p.seed);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut t = 0i32;
    let mut z = vec![0f32; k];
    let s = x.slots;
    for _ in 0..p.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(p.batch.max(1)) {
            for &r in chunk {
                let (idx, val) = (&x.idx[r * s..r * s + s], &x.val[r * s..r * s + s]);
                logits(&w, k, idx, val, &mut z);
                let mx = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for zi in z.iter_mut() {
                    *zi = (*zi - mx).exp();
                    sum += *zi;
                }
                for (c, zi) in z.iter_mut().enumerate() {
                    *zi /= sum;
                    if c == y[r] as usize {
                        *zi -= 1.0;
                    }
                }
                for (&f, &vv) in idx.iter().zip(val) {
                    let f = f as usize;
                    if !touched[f] {
                        touched[f] = true;
                        touched_list.push(f as u32);
                    }
                    for c in 0..k {
                        g[f * k + c] += z[c] * vv;
                    }
                }
            }
            t += 1;
            let scale = 1.0 / chunk.len() as f32;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            // Sparse Adam: only features seen in the batch move (moments of
            // the others are not decayed), which keeps an update cheap.
            for &f in &touched_list {
                let f = f as usize;
                touched[f] = false;
                for i in f * k..f * k + k {
                    let gi = g[i] * scale + p.l2 * w[i];
                    g[i] = 0.0;
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    w[i] -= p.learning_rate * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                }
            }
            touched_list.clear();
        }
    }
    Model { w, classes: k }
}

impl Model {
    /// Most likely class of each row.
    pub fn predict(&self, x: &Design) -> Vec<u32> {
        let k = self.classes;
        let s = x.slots;
        let mut z = vec![0f32; k];
        (0..x.rows())
            .map(|r| {
                logits(
                    &self.w,
                    k,
                    &x.idx[r * s..r * s + s],
                    &x.val[r * s..r * s + s],
                    &mut z,
                );
                let mut best = 0;
                for c in 1..k {
                    if z[c] > z[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }
}

/// Accuracy and macro-F1 (mean over the classes that occur in `truth` of
/// `2TP / (2TP + FP + FN)`).
pub fn scores(truth: &[u32], pred: &[u32], classes: usize) -> (f64, f64) {
    if truth.is_empty() {
        return (0.0, 0.0);
    }
    let mut tp = vec![0u64; classes];
    let mut fp = vec![0u64; classes];
    let mut fn_ = vec![0u64; classes];
    let mut present = vec![false; classes];
    let mut right = 0u64;
    for (&t, &p) in truth.iter().zip(pred) {
        present[t as usize] = true;
        if t == p {
            right += 1;
            tp[t as usize] += 1;
        } else {
            fp[p as usize] += 1;
            fn_[t as usize] += 1;
        }
    }
    let mut f1 = 0.0;
    let mut n = 0.0;
    for c in 0..classes {
        if present[c] {
            let d = (2 * tp[c] + fp[c] + fn_[c]) as f64;
            f1 += if d > 0.0 { 2.0 * tp[c] as f64 / d } else { 0.0 };
            n += 1.0;
        }
    }
    (right as f64 / truth.len() as f64, f1 / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_by_hand() {
        // truth 0 0 1 1, pred 0 1 1 1: acc 3/4; F1(0) = 2/(2+0+1) = 2/3,
        // F1(1) = 4/(4+1+0) = 4/5; macro = (2/3 + 4/5)/2 = 11/15.
        let (a, f) = scores(&[0, 0, 1, 1], &[0, 1, 1, 1], 2);
        assert!((a - 0.75).abs() < 1e-12);
        assert!((f - 11.0 / 15.0).abs() < 1e-12);
        // A class only predicted, never true, lowers precision of nothing present.
        let (a, f) = scores(&[0, 0], &[0, 2], 3);
        assert_eq!(a, 0.5);
        assert!((f - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn learns_xor_of_one_hots() {
        // Features: bias, one-hot of a (2), one-hot of b (2), one-hot of the pair (4).
        let mut d = Design {
            slots: 4,
            n_features: 9,
            ..Default::default()
        };
        let mut y = Vec::new();
        for i in 0..400u32 {
            let (a, b) = (i % 2, (i / 2) % 2);
            d.idx.extend([0, 1 + a, 3 + b, 5 + a * 2 + b]);
            d.val.extend([1.0; 4]);
            y.push(a ^ b);
        }
        let m = train(&d, &y, 2, &TrainParams::default());
        assert_eq!(m.predict(&d), y);
    }
}
