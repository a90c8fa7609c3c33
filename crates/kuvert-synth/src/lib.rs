//! # kuvert-synth: differentially private synthetic data
//!
//! A marginal-based synthesizer of the MST/AIM family (select marginals
//! privately, measure them with Gaussian noise under zCDP, fit a graphical
//! model consistent with the noisy measurements, sample from it), and the
//! evaluation of synthetic data against the real data it stands in for:
//! acceptance criteria, a quality report and a privacy report ([`eval`]).
//!
//! ```text
//!  schema   column kinds, the TOML schema configuration, kind inference
//!  domain   declared or DP-estimated domains, binning, encoding/decoding
//!  mst      the MST mechanism: 1-way measurements, private maximum
//!           spanning tree (exponential mechanism), 2-way measurements
//!  pgm      Private-PGM estimation on the tree: belief propagation and
//!           mirror descent; ancestral sampling
//!  aim      the AIM mechanism (opt-in): adaptive rounds of selection and
//!           measurement with budget annealing and a model-size cap
//!  jtree    Private-PGM on a junction tree (graphs with cycles, for AIM)
//!  model    the model file (JSON, `kuvert-synth-model/1`), sampling rows
//!  idgen    synthetic identity numbers
//!  bench    an Adult-like 15-column generator and TVD helpers
//! ```
//!
//! Typical use (the CLI does exactly this):
//!
//! ```no_run
//! # fn main() -> kuvert_synth::Result<()> {
//! use kuvert_synth::{fit, FitOptions, Model};
//! let table = kuvert_deid::table::Table::read("in.csv".as_ref())?;
//! let opts = FitOptions::new(1.0, 1e-6);
//! let mut rng = kuvert_dp::secure_rng()?;
//! let fitted = fit(&table, &opts, &mut rng, &mut |_| {})?;
//! fitted.model.save("out.model".as_ref())?;
//! let model = Model::load("out.model".as_ref())?;
//! let synthetic = model.sample(1000, &mut rng); // a kuvert_deid Table
//! synthetic.write_csv("syn.csv".as_ref())?;
//! # Ok(()) }
//! ```
//!
//! # Privacy
//!
//! Neighbouring datasets differ by one row (one person per row). The whole
//! fit is one release: its zCDP budget ρ is the largest with (ε, δ)-DP
//! after conversion (`kuvert_dp::accounting::zcdp_for_epsilon_delta`),
//! split as: 10 % for estimating undeclared domains (if any), then
//! equal thirds for the 1-way measurements, the selection of the tree and
//! the 2-way measurements (MST; AIM spends the rest as described in
//! [`aim`]). When a categorical domain must be estimated,
//! a tenth of δ is reserved for partition selection and ρ is computed for
//! the other nine tenths. All noise is the exact discrete Gaussian, drawn
//! from a CSPRNG; selection uses the exact exponential mechanism.
//!
//! # Security
//!
//! **Invariant: the model file contains only DP outputs and declared
//! or public parameters** — the declared schema, domains released by DP
//! (bounds, categories that passed the noisy threshold), the noisy
//! measurements, the privately selected tree, the potentials fitted to the
//! noisy measurements (post-processing), and ε, δ, ρ, the method and the
//! column kinds. It holds no input row, no true count (not even the number
//! of rows), and no identity number. Synthetic rows are sampled from the
//! model alone, so the same holds for them. Identity numbers are never
//! copied: they are modelled as birth-date bin and sex only and generated
//! afresh ([`idgen`]). A generated number may by chance be the number of a
//! real person (there are only 500 per birth date and sex), which reveals
//! nothing about the input. Tests check the invariant with a rare value
//! and every input identity number.
//!
//! Not covered by the DP guarantee: the kind of an *undeclared* column is
//! inferred from the format of its values (integer, date, identity number,
//! otherwise categorical); declare kinds in the schema to remove this.
//! Timing is not constant (rejection samplers).

#![forbid(unsafe_code)]

pub mod aim;
pub mod bench;
pub mod domain;
pub mod error;
pub mod eval;
pub mod idgen;
pub mod jtree;
pub mod model;
pub mod mst;
pub mod pgm;
pub mod schema;

pub use error::{Result, SynthError};
pub use model::{
    fit, fit_charged, plan_budget, split_holdout, Account, BudgetPlan, FitOptions, FitReport,
    Fitted, Method, Model, Progress,
};
pub use schema::{ColumnSpec, SchemaConfig};
