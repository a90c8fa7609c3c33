//! # kuvert-node: the compute node and its clients
//!
//! ```text
//! contributor ──upload shares──▶ node i (server.rs) ──TlsTransport──▶ other nodes
//!                                  │  exec.rs: program on shares (kuvert-mpc)
//! recipient  ◀──result shares────  ┘
//! ```
//!
//! Programs: fixed ones (sum, count-below, noisy sum, soak) and SQL queries
//! ([`wire::Program::Query`]): each node plans the SQL itself against the
//! uploaded schemas (`kuvert_sql::prepare`, deterministic, so the three
//! agree), runs it with `kuvert_sql::execute` and keeps its shares of the
//! answer for the recipient, who reconstructs with
//! `kuvert_sql::output::reconstruct` ([`client::Nodes::fetch_table`]).
//! [`local`] starts three nodes on this machine for `kuvert run` and the
//! benchmarks; [`infer`] guesses column types for CSVs without a schema.
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
//!
//! A query's nodes learn the input sizes and nothing else from the
//! executor (see `kuvert_sql`); what a node reports in its status (progress
//! in operators, rounds, bytes, time, peak memory) depends only on the plan
//! and the input sizes. A node refuses a query it cannot plan before any
//! protocol step. The recipient checks the replicated components of the
//! result shares, so a single node that alters its shares is named and no
//! answer is produced. [`local`] keeps a run's PKI keys and shares in a
//! temporary directory that is deleted at the end, also on Ctrl-C
//! ([`local::abort_all`]); a `kill -9` of the parent leaves it behind, but
//! the nodes still exit (they watch a pipe from the parent).

pub mod client;
pub mod config;
pub mod exec;
pub mod gov;
pub mod infer;
pub mod local;
pub mod server;
pub mod wire;
