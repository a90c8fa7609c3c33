//! `kuvert`: one binary for every role. Argument parsing lives here; the
//! work lives in the library crates.

use clap::{Parser, Subcommand};

mod bench;
mod budget;
mod coordinator;
mod deid;
mod demo;
mod dp;
mod example;
mod federation;
mod gov;
mod node;
mod pki;
mod risk;
mod run;
mod service;
mod synth;
mod synth_eval;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// MPC operators allocate and free column buffers of tens of megabytes many
/// times per second. By default mimalloc hands freed memory back to the OS
/// after a short delay, and every reuse then pays first-touch page faults
/// (measured: up to 60% of a comparison's time, 15× more page faults).
/// Keep freed memory mapped instead: a node's peak is bounded anyway, since
/// long columns are processed in batches (`kuvert_mpc::gadgets::BATCH`).
fn configure_allocator() {
    /// `mi_option_purge_delay` in mimalloc v2's `mi_option_t`.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set only stores an integer in mimalloc's option
    // table; it is thread-safe and valid at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// Kuvert: compute on several agencies' data without anyone seeing it.
///
/// Three independent nodes hold secret shares of the data (replicated
/// secret sharing, honest majority). No single node, and no coordinator,
/// ever sees a cleartext value; only the named recipient reconstructs
/// the declared result.
#[derive(Parser, Debug)]
#[command(name = "kuvert", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure the engine: rounds, bytes per party and throughput.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Deployment certificates: CA, compute nodes, parties.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// The federation file: the three nodes, their operators' CAs and key
    /// fingerprints, signed by all three operators.
    #[command(subcommand)]
    Federation(federation::FederationCommand),
    /// Run a compute node (one of the three).
    Node(node::NodeArgs),
    /// Contributor: validate a CSV, secret-share it on this machine and send
    /// each node only its shares.
    Upload(node::UploadArgs),
    /// Start a job on the three nodes, or see where it stands.
    #[command(subcommand)]
    Job(node::JobCommand),
    /// Recipient: fetch the result shares from the nodes and reconstruct
    /// the result on this machine.
    Fetch(node::FetchArgs),
    /// Differential privacy: local releases, ε planning, error curves, budgets.
    #[command(subcommand)]
    Dp(dp::DpCommand),
    /// De-identify a table: pseudonymise, suppress, generalise to k-anonymity,
    /// l-diversity and t-closeness with the least information loss.
    Deid(Box<deid::DeidArgs>),
    /// Measure re-identification risk of a released table and run attack tests.
    Risk(Box<risk::RiskArgs>),
    /// Differentially private synthetic data: fit a model (MST) to a table,
    /// sample synthetic rows from it, benchmark.
    Synth(Box<synth::SynthArgs>),
    /// The six reference analyses: list them, generate synthetic inputs,
    /// compute the plaintext reference answer in SQLite.
    #[command(subcommand)]
    Example(example::ExampleCommand),
    /// Answer one SQL query over CSV files with three local nodes under MPC
    /// (TLS on 127.0.0.1, throw-away PKI), and print the answer as CSV.
    Run(Box<run::RunArgs>),
    /// The whole governed flow on this machine: three operators' PKI, the
    /// coordinator and three nodes on loopback, the agencies of a template
    /// (overlapping-benefits by default, `--template NAME` for any of the
    /// six); submit, approve, upload, compute, sealed results checked
    /// against SQLite, deletion receipts, audit.
    Demo(demo::DemoArgs),
    /// Recipient of a governed analysis: fetch the sealed result shares
    /// from the nodes, open them with your key and reconstruct the result
    /// on this machine (CSV).
    Result(service::ResultArgs),
    /// Where a governed analysis stands: approvals, job state per node,
    /// signed deletion receipts (from the coordinator).
    Status(service::StatusArgs),
    /// Contributor: your privacy-budget limits, which the three nodes keep
    /// and enforce (`set` signs and sends one, `show` reads the ledgers).
    #[command(subcommand)]
    Budget(budget::BudgetCommand),
    /// Governance: `keygen`, `analysis` (id, check, approve, verify,
    /// describe, template) and `audit verify`.
    #[command(flatten)]
    Gov(gov::GovCommand),
    /// The service operator's coordinator: catalogue of analyses, approval
    /// collection, scheduling of the three nodes, status, audit, OpenAPI
    /// document and web console. Never holds keys, shares or results.
    Coordinator(Box<coordinator::CoordinatorArgs>),
}

fn main() -> std::process::ExitCode {
    configure_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(b) => bench::run(b),
        Command::Pki(p) => pki::run(p),
        Command::Federation(f) => federation::run(f),
        Command::Node(a) => node::node(a),
        Command::Upload(a) => node::upload(a),
        Command::Job(c) => node::job(c),
        Command::Fetch(a) => node::fetch(a),
        Command::Dp(c) => dp::run(c),
        Command::Deid(a) => deid::run(*a),
        Command::Risk(a) => risk::run(*a),
        Command::Synth(a) => synth::run(*a),
        Command::Example(c) => example::run(c),
        Command::Run(a) => run::run(*a),
        Command::Demo(a) => demo::run(a),
        Command::Result(a) => service::result_cmd(a),
        Command::Status(a) => service::status_cmd(a),
        Command::Gov(c) => gov::run(c),
        Command::Budget(c) => budget::run(c),
        Command::Coordinator(a) => coordinator::run(*a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
