//! `kuvert bench ...`

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Micro benchmark of the MPC primitives (three parties in this process).
    Micro {
        /// Elements per operation.
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        /// Print a JSON object as the last line.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        BenchCommand::Micro { n, json } => {
            let _ = (n, json);
            anyhow::bail!("not built yet")
        }
    }
}
