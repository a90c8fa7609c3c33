//! `kuvert`: one binary for every role. Argument parsing lives here; the
//! work lives in the library crates.

use clap::{Parser, Subcommand};

mod bench;
mod deid;
mod risk;

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
    /// De-identify a table: pseudonymise, suppress, generalise to k-anonymity,
    /// l-diversity and t-closeness with the least information loss.
    Deid(Box<deid::DeidArgs>),
    /// Measure re-identification risk of a released table and run attack tests.
    Risk(Box<risk::RiskArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(b) => bench::run(b),
        Command::Deid(a) => deid::run(*a),
        Command::Risk(a) => risk::run(*a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
