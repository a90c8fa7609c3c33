//! The AIM mechanism (McKenna, Mullins, Sheldon, Miklau 2022, "AIM: an
//! adaptive and iterative mechanism for differentially private synthetic
//! data"), on the workload of all 2-way marginals.
//!
//! With T = 16 d rounds planned, the initial noise is σ² = T / (2 · 0.9 ρ)
//! and the selection parameter ε = √(8 · 0.1 ρ / T). Every 1-way marginal
//! is measured first. Each round then
//!
//! 1. keeps the candidates (every 1-way and 2-way marginal) whose addition
//!    keeps the junction tree under `max_cells · ρ_used / ρ` cells;
//! 2. selects one with the exponential mechanism, quality
//!    w_r (‖M_r(D) − M_r(model)‖₁ − √(2/π) σ n_r), sensitivity max w_r
//!    (w_r = Σ over workload marginals W of |r ∩ W|), ε²/8-zCDP;
//! 3. measures it with the discrete Gaussian (1/(2σ²)-zCDP);
//! 4. refits the junction-tree model ([`crate::jtree`]) from the previous
//!    potentials (warm start);
//! 5. anneals: when the model's estimate of the selected marginal moved by
//!    at most √(2/π) σ n_r, halves σ and doubles ε.
//!
//! When less than twice a round's cost is left, the last round spends
//! exactly the rest (0.9 on the measurement, 0.1 on the selection). The
//! running total is kept in zCDP and never exceeds ρ.

use rand::RngCore;
use rayon::prelude::*;

use kuvert_dp::sample::{exponential_mechanism, Rational};

use crate::error::Result;
use crate::jtree::{model_cells, JtModel};
use crate::mst::measure;
use crate::pgm::{marginal_counts, Measurement};

/// Utility resolution of the exponential mechanism: qualities are divided
/// by the sensitivity, scaled by this and floored (sensitivity `SCALE`).
const SCALE: f64 = 64.0;

/// Settings of an AIM run.
#[derive(Clone, Debug)]
pub struct AimOptions {
    /// Largest junction tree (cells) once the whole budget is spent.
    pub max_cells: usize,
    /// Mirror-descent iterations after each measurement.
    pub round_iters: usize,
    /// Mirror-descent iterations of the final fit.
    pub final_iters: usize,
}

impl Default for AimOptions {
    fn default() -> Self {
        AimOptions {
            max_cells: 1_000_000,
            round_iters: 100,
            final_iters: 1000,
        }
    }
}

/// One round, for accounting.
#[derive(Clone, Debug, PartialEq)]
pub struct Round {
    /// ε of the selection (ε²/8-zCDP).
    pub epsilon: f64,
    /// Variance of the measurement noise (1/(2σ²)-zCDP).
    pub sigma2: f64,
    /// The selected marginal.
    pub attrs: Vec<usize>,
}

/// What an AIM run produced.
#[derive(Clone, Debug)]
pub struct AimRun {
    /// Every noisy measurement (the 1-way ones first), attributes sorted.
    pub measurements: Vec<Measurement>,
    /// Variance of the 1-way measurements.
    pub sigma2_one_way: f64,
    /// The selection rounds.
    pub rounds: Vec<Round>,
    /// The fitted model.
    pub model: JtModel,
    /// zCDP spent (≤ ρ).
    pub rho_used: f64,
    /// Final estimation loss.
    pub loss: f64,
}

impl AimRun {
    /// zCDP spent on the 1-way measurements, the selections and the
    /// measurements of the rounds, recomputed from the parameters.
    pub fn accounted(&self, d: usize) -> (f64, f64, f64) {
        let one = d as f64 / (2.0 * self.sigma2_one_way);
        let sel = self.rounds.iter().map(|r| r.epsilon.powi(2) / 8.0).sum();
        let meas = self.rounds.iter().map(|r| 0.5 / r.sigma2).sum();
        (one, sel, meas)
    }
}

/// Runs AIM on column-major coded `data` with zCDP budget `rho`;
/// `progress` gets the share of ρ spent so far.
pub fn run<R: RngCore + ?Sized>(
    data: &[Vec<u32>],
    sizes: &[usize],
    rho: f64,
    opts: &AimOptions,
    rng: &mut R,
    progress: &mut dyn FnMut(f64),
) -> Result<AimRun> {
    let d = sizes.len();
    let t_rounds = (16 * d) as f64;
    let mut sigma2 = t_rounds / (2.0 * 0.9 * rho);
    let mut eps = (8.0 * 0.1 * rho / t_rounds).sqrt();
    if d < 2 {
        sigma2 = d.max(1) as f64 / (2.0 * rho);
    }
    let sigma2_one_way = sigma2;
    let mut measurements = Vec::new();
    for a in 0..d {
        measurements.push(measure(data, sizes, &[a], sigma2, rng)?);
    }
    let mut rho_used = d as f64 * 0.5 / sigma2;
    let mut sets: Vec<Vec<usize>> = (0..d).map(|a| vec![a]).collect();
    let mut model = JtModel::uniform(sizes.to_vec(), &sets);
    let mut loss = model.fit(&measurements, opts.round_iters);
    let mut rounds = Vec::new();
    if d < 2 {
        return Ok(AimRun {
            measurements,
            sigma2_one_way,
            rounds,
            model,
            rho_used,
            loss,
        });
    }
    // Candidates, their weights and true marginals (the data's part of the
    // quality; only ever used through the exponential mechanism).
    let mut cands: Vec<Vec<usize>> = (0..d).map(|a| vec![a]).collect();
    for a in 0..d {
        for b in a + 1..d {
            cands.push(vec![a, b]);
        }
    }
    let weight = |r: &[usize]| -> f64 {
        let mut w = 0usize;
        for a in 0..d {
            for b in a + 1..d {
                w += r.iter().filter(|&&x| x == a || x == b).count();
            }
        }
        w as f64
    };
    let weights: Vec<f64> = cands.iter().map(|c| weight(c)).collect();
    let sens = weights.iter().copied().fold(0.0, f64::max);
    let truth: Vec<Vec<f64>> = cands
        .iter()
        .map(|c| {
            marginal_counts(data, sizes, c)
                .into_iter()
                .map(|x| x as f64)
                .collect()
        })
        .collect();
    let bias_of =
        |s2: f64, cells: usize| (2.0 / std::f64::consts::PI).sqrt() * s2.sqrt() * cells as f64;
    loop {
        let remaining = rho - rho_used;
        let cost = 0.5 / sigma2 + eps * eps / 8.0;
        let last = remaining < 2.0 * cost;
        if last {
            // A hair below the rest, so rounding never overspends.
            sigma2 = (1.0 + 1e-9) / (2.0 * 0.9 * remaining);
            eps = (8.0 * 0.1 * remaining * (1.0 - 1e-9)).sqrt();
        }
        rho_used += 0.5 / sigma2 + eps * eps / 8.0;
        progress(rho_used / rho);
        let limit = opts.max_cells as f64 * rho_used / rho;
        let eligible: Vec<usize> = (0..cands.len())
            .into_par_iter()
            .filter(|&i| {
                if sets.contains(&cands[i]) || model.clique_of(&cands[i]).is_some() {
                    return true;
                }
                let mut s = sets.clone();
                s.push(cands[i].clone());
                model_cells(sizes, &s) as f64 <= limit
            })
            .collect();
        let mu = model.marginals();
        let total = model.total;
        let ests: Vec<Vec<f64>> = eligible
            .par_iter()
            .map(|&i| {
                model
                    .query(&mu, &cands[i])
                    .into_iter()
                    .map(|p| p * total)
                    .collect()
            })
            .collect();
        let utils: Vec<i64> = eligible
            .iter()
            .zip(&ests)
            .map(|(&i, e)| {
                let l1: f64 = truth[i].iter().zip(e).map(|(t, x)| (t - x).abs()).sum();
                let q = weights[i] * (l1 - bias_of(sigma2, e.len()));
                (q / sens * SCALE).floor() as i64
            })
            .collect();
        let half = Rational::from_f64(eps / (2.0 * SCALE))?;
        let pick = exponential_mechanism(rng, &utils, &half)?;
        let ci = eligible[pick];
        let attrs = cands[ci].clone();
        let before = ests[pick].clone();
        measurements.push(measure(data, sizes, &attrs, sigma2, rng)?);
        rounds.push(Round {
            epsilon: eps,
            sigma2,
            attrs: attrs.clone(),
        });
        if !sets.contains(&attrs) {
            sets.push(attrs.clone());
        }
        model = if model.clique_of(&attrs).is_some() {
            model
        } else {
            JtModel::warm(&model, &sets)
        };
        let iters = if last {
            opts.final_iters
        } else {
            opts.round_iters
        };
        loss = model.fit(&measurements, iters);
        if last {
            break;
        }
        let mu = model.marginals();
        let after: Vec<f64> = model
            .query(&mu, &attrs)
            .into_iter()
            .map(|p| p * model.total)
            .collect();
        let moved: f64 = after.iter().zip(&before).map(|(a, b)| (a - b).abs()).sum();
        if moved <= bias_of(sigma2, after.len()) {
            sigma2 /= 4.0;
            eps *= 2.0;
        }
    }
    Ok(AimRun {
        measurements,
        sigma2_one_way,
        rounds,
        model,
        rho_used,
        loss,
    })
}
