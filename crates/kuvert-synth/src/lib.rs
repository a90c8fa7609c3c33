//! # kuvert-synth: differentially private synthetic data
//!
//! A marginal-based synthesizer of the MST/AIM family (select marginals
//! privately, measure them with Gaussian noise under zCDP, fit a graphical
//! model consistent with the noisy measurements, sample from it), and the
//! evaluation of synthetic data against the real data it stands in for:
//! acceptance criteria, a quality report and a privacy report ([`eval`]).

#![forbid(unsafe_code)]

pub mod eval;
