//! Evaluation of synthetic data against the real data: quality measures,
//! acceptance criteria and the privacy report.
