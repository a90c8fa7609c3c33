pub fn run(_a: RiskArgs) -> anyhow::Result<std::process::ExitCode> { Ok(std::process::ExitCode::SUCCESS) }
#[derive(clap::Args, Debug)] pub struct RiskArgs {}
