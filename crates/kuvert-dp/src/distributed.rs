//! Accounting for noise generated *inside* the MPC by the nodes themselves.
//!
//! Setting: `nodes` computing parties (Kuvert: 3), of which at least
//! `honest` (Kuvert: 2, honest majority) follow the protocol and keep their
//! noise secret. Each node samples Skellam noise of variance μ/h locally,
//! secret-shares it, and the shares are added to the secret-shared result
//! before it is opened. A corrupt node knows its own noise and can subtract
//! it, so the noise that protects the output *against it* is the sum of the
//! honest nodes' noise. Because Skellam is closed under summation, any `h`
//! honest nodes together contribute exactly Skellam(μ) noise: the central
//! Skellam guarantee for variance μ holds against any coalition of at most
//! `nodes − h` nodes. (A discrete Gaussian would not do: a sum of discrete
//! Gaussians is not a discrete Gaussian, and its privacy would need a
//! separate analysis.)
//!
//! The price: the released value carries the noise of *all* nodes,
//! variance `nodes · μ/h`, i.e. `nodes/h` times (3/2 for Kuvert) the variance
//! a trusted curator would add, √(nodes/h) ≈ 1.22 times the standard deviation.
//! Against a central *discrete Gaussian* at the same (ε, δ) the overhead is
//! slightly larger, because the Skellam RDP bound has an extra term; see
//! [`DistributedSkellam::overhead_vs_central_gaussian`].

use crate::accounting::{skellam_variances_for, zcdp_for_epsilon_delta};
use crate::sample::{skellam, Rational};
use crate::DpError;
use rand_core::{CryptoRng, RngCore};

/// Distributed Skellam noise among `nodes` parties of which at least
/// `honest` are honest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DistributedSkellam {
    nodes: u32,
    honest: u32,
}

/// Numbers for one (ε, δ, sensitivity) setting of the distributed mechanism.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OverheadReport {
    /// Variance μ the honest nodes' noise must reach (central Skellam).
    pub central_skellam_variance: f64,
    /// Variance each node adds: μ / honest.
    pub per_node_variance: f64,
    /// Variance of the noise in the released value: nodes · μ / honest.
    pub released_variance: f64,
    /// Variance of a central discrete Gaussian at the same (ε, δ).
    pub central_gaussian_variance: f64,
    /// std(released) / std(central Skellam) = √(nodes/honest).
    pub std_overhead_vs_central_skellam: f64,
    /// std(released) / std(central discrete Gaussian).
    pub std_overhead_vs_central_gaussian: f64,
}

impl DistributedSkellam {
    /// Kuvert's setting: 3 nodes, any 2 honest.
    pub const KUVERT: DistributedSkellam = DistributedSkellam {
        nodes: 3,
        honest: 2,
    };

    /// Kuvert's malicious mode: the noise is a replicated sharing whose
    /// three components are each drawn by the two nodes that hold it, from
    /// the key they share (kuvert-mpc `Party::pair_sampled_a`), so a corrupt
    /// node cannot bias the distribution. It knows two of the components,
    /// so the one drawn by the honest pair alone must carry the central
    /// variance μ: three "contributors", one of them hidden. The release
    /// carries 3μ, √3 ≈ 1.73 times the standard deviation of central noise
    /// (against √1.5 ≈ 1.22 for [`DistributedSkellam::KUVERT`]).
    pub const PAIRWISE: DistributedSkellam = DistributedSkellam {
        nodes: 3,
        honest: 1,
    };

    /// `nodes` parties, at least `honest` of them honest (1 ≤ honest ≤ nodes).
    pub fn new(nodes: u32, honest: u32) -> Result<Self, DpError> {
        if honest == 0 || honest > nodes {
            return Err(DpError::InvalidParameter(format!(
                "need 1 ≤ honest ≤ nodes, got honest={honest}, nodes={nodes}"
            )));
        }
        Ok(Self { nodes, honest })
    }

    /// Variance each node samples so that any `honest` of them reach `mu`.
    pub fn per_node_variance(&self, mu: f64) -> f64 {
        mu / self.honest as f64
    }

    /// Variance ratio of released noise over central noise: nodes/honest.
    pub fn variance_overhead(&self) -> f64 {
        self.nodes as f64 / self.honest as f64
    }

    /// Standard-deviation ratio: √(nodes/honest) (≈ 1.2247 for 3 and 2).
    pub fn std_overhead(&self) -> f64 {
        self.variance_overhead().sqrt()
    }

    /// One node's share of the noise for a release calibrated to central
    /// variance `mu` (exact Skellam sample of variance μ/honest).
    pub fn sample_node_noise<R: RngCore + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        mu: f64,
    ) -> Result<i128, DpError> {
        let v = Rational::from_f64(self.per_node_variance(mu))?;
        skellam(rng, &v)
    }

    /// Per-node Skellam variances for a release of several measurements
    /// with sensitivities `(l1, l2)`, at total (ε, δ) against any coalition
    /// of `nodes − honest` nodes: the central calibration
    /// ([`skellam_variances_for`]) divided by `honest`.
    pub fn per_node_variances(
        &self,
        epsilon: f64,
        delta: f64,
        sensitivities: &[(f64, f64)],
    ) -> Result<Vec<f64>, DpError> {
        Ok(skellam_variances_for(epsilon, delta, sensitivities)?
            .into_iter()
            .map(|mu| self.per_node_variance(mu))
            .collect())
    }

    /// The full comparison for a single scalar query with sensitivities
    /// (l1, l2) released at (ε, δ).
    pub fn overhead_vs_central_gaussian(
        &self,
        epsilon: f64,
        delta: f64,
        l1: f64,
        l2: f64,
    ) -> Result<OverheadReport, DpError> {
        let mu = skellam_variances_for(epsilon, delta, &[(l1, l2)])?[0];
        let rho = zcdp_for_epsilon_delta(epsilon, delta)?;
        let gauss_var = l2 * l2 / (2.0 * rho);
        let released = mu * self.variance_overhead();
        Ok(OverheadReport {
            central_skellam_variance: mu,
            per_node_variance: self.per_node_variance(mu),
            released_variance: released,
            central_gaussian_variance: gauss_var,
            std_overhead_vs_central_skellam: self.std_overhead(),
            std_overhead_vs_central_gaussian: (released / gauss_var).sqrt(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn kuvert_overhead_numbers() {
        let d = DistributedSkellam::KUVERT;
        assert_eq!(d.variance_overhead(), 1.5);
        assert!((d.std_overhead() - 1.224_744_871).abs() < 1e-9);
        assert_eq!(d.per_node_variance(30.0), 15.0);
        assert!(DistributedSkellam::new(3, 0).is_err());
        assert!(DistributedSkellam::new(3, 4).is_err());
        let r = d.overhead_vs_central_gaussian(1.0, 1e-6, 1.0, 1.0).unwrap();
        // Skellam needs at least the Gaussian's variance; the overhead is at
        // least the pure √1.5 and, at this ε, not much more.
        assert!(r.central_skellam_variance >= r.central_gaussian_variance);
        assert!(r.std_overhead_vs_central_gaussian >= 1.2247);
        assert!(r.std_overhead_vs_central_gaussian < 1.35, "{r:?}");
        let per = d.per_node_variances(1.0, 1e-6, &[(1.0, 1.0)]).unwrap();
        assert!((per[0] - r.per_node_variance).abs() < 1e-9);
    }

    #[test]
    fn pairwise_components_each_carry_the_central_variance() {
        let d = DistributedSkellam::PAIRWISE;
        assert_eq!(d.per_node_variance(30.0), 30.0);
        assert_eq!(d.variance_overhead(), 3.0);
        assert!((d.std_overhead() - 3f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn two_honest_nodes_sum_to_central_variance() {
        // Sum of two nodes' noise: variance μ (what a corrupt third node faces).
        let d = DistributedSkellam::KUVERT;
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mu = 40.0;
        let n = 6000;
        let s: Vec<f64> = (0..n)
            .map(|_| {
                (d.sample_node_noise(&mut rng, mu).unwrap()
                    + d.sample_node_noise(&mut rng, mu).unwrap()) as f64
            })
            .collect();
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!((0.9 * mu..1.1 * mu).contains(&var), "variance {var}");
    }
}
