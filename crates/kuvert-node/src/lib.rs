//! # kuvert-node: the compute node and its clients
//!
//! ```text
//! contributor ──upload shares──▶ node i (server.rs) ──TlsTransport──▶ other nodes
//!                                  │  exec.rs: program on shares (kuvert-mpc)
//! recipient  ◀──result shares────  ┘
//! ```
//!
//! Architecture invariant: a node only ever holds shares. Contributors share
//! their tables on their own machines ([`client::Nodes::upload`]); the
//! recipient reconstructs on its own machine ([`client::Nodes::fetch`]);
//! a node releases result shares only to the recipient named when the job
//! was started, and only after the whole computation succeeded.
//!
//! # Security
//! Semi-honest nodes, honest majority (see `kuvert-mpc`). Every connection
//! is TLS 1.3 with certificates from the deployment CA. Job approval by all
//! contributors (signed analysis specs) is not enforced yet: any party with
//! a certificate can start a program over a job's tables, and names the
//! recipient. That is the next step (the governed service).

pub mod client;
pub mod config;
pub mod exec;
pub mod infer;
pub mod local;
pub mod server;
pub mod wire;
