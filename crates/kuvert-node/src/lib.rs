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
//! [`gov`] is the governed service (docs/service.md, "Nodes"): analyses
//! whose spec and approvals the node verified itself, uploads signed by
//! the approving contributor, every output run and sealed (HPKE) to its
//! recipient, input shares deleted with a signed receipt, every step in
//! the node's hash-chained audit log.
//!
//! # Security
//! Honest majority (see `kuvert-mpc`): semi-honest nodes by default; an
//! analysis approved with `protocol = "rss3-malicious"` runs secure with
//! abort against one deviating node, and ends with the nodes' signed
//! agreement on its outcome ([`agree`]), so that either every honest node
//! stores its results or none does. Every connection is TLS 1.3 with
//! certificates from the deployment CA.
//!
//! Governed analyses ([`gov`]): a node accepts shares for, and runs, only an
//! analysis whose spec it parsed strictly and whose every contributor's
//! approval it verified itself (and whose contributor keys are on its
//! trust list, if it has one); the coordinator that sends `Register` and
//! `GovRun` cannot change the spec, the SQL or a key without every
//! approval failing. Each upload carries the contributor's Ed25519
//! signature over the analysis id, the node index, table, schema, row
//! count and the SHA-256 of the shares, checked against the key in the
//! approved spec. Results leave a node only sealed to the recipient's
//! post-quantum hybrid result key (X-Wing, `kem_public_key`) from the
//! spec, and only to a TLS client whose certificate
//! names that recipient; a failed run releases nothing. The three nodes
//! agree on which analysis they run before the session starts, so an
//! analysis is never computed against another's inputs. What a node
//! stores and logs are shares, names, sizes and hashes only. Deletion is
//! of files and in-memory buffers; the share buffers are dropped, not
//! overwritten (kuvert-mpc's share types do not zeroize), and the file
//! system may keep deleted blocks (use encrypted storage on the nodes).
//!
//! The ungoverned jobs (`Upload`/`Run`/`Status`/`Fetch`, used by `kuvert
//! run` and the benchmarks) predate approvals: any party with a
//! certificate can start a program over a job's tables and names the
//! recipient. A node serves them only with `dev_mode = true` in its
//! `node.toml` ([`config::NodeConfig::dev_mode`], default false, allowed
//! only when every address is a loopback address; [`local`] sets it);
//! otherwise it refuses them, stores nothing and logs the refusal.
//!
//! Denial of service (docs/service.md, "Denial of service"): one thread
//! per client connection; connections are capped per IP address
//! (`max_connections_per_peer`, 16) and in all (`max_connections`, 256),
//! and closed before the TLS handshake over a cap; a handshake must finish
//! within 10 s; a client silent for `client_idle_timeout_secs` (300) is
//! disconnected; an upload's buffer grows with the bytes received, not
//! from the announced length. The node-to-node port handshakes each
//! connection on its own thread (`kuvert_net::TlsTransport`), so a stalled
//! client cannot hold up a job's session setup.
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

pub mod agree;
pub mod budget;
pub mod client;
pub mod config;
pub mod exec;
pub mod gov;
pub mod infer;
pub mod local;
pub mod operators;
pub mod server;
pub mod wire;
