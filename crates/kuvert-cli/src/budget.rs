//! `kuvert budget set|show`: a contributor's privacy-budget limits, kept by
//! the nodes (docs/dp.md, "Budgets at the nodes").
//!
//! The contributor signs the limit on its own machine with its approval key
//! and sends it to the three nodes of the federation itself; each node
//! verifies the signature and keeps its own ledger. Nothing here goes
//! through the coordinator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use kuvert_gov::{BudgetLimit, PartyKey};
use kuvert_node::budget::Account;
use kuvert_node::client::Nodes;

/// `kuvert budget ...`
#[derive(Subcommand, Debug)]
pub enum BudgetCommand {
    /// Sign a privacy-budget limit for one of your datasets and send it to
    /// the three nodes.
    ///
    /// Every node charges each differentially private output of an analysis
    /// to the account (your approval key, dataset) of every table it reads,
    /// and refuses an analysis that would exceed the limit, or that reads a
    /// dataset you never gave a limit. A table without `dataset = ...` in
    /// the spec draws on your dataset `default`. Only a limit with a higher
    /// version replaces the current one (default: one above what the
    /// nodes hold), so a lower limit cannot be undone by replaying an old
    /// one.
    ///
    /// Example:
    ///   kuvert budget set --key fk.key --dataset default --epsilon 3 --delta 1e-5 \
    ///       --federation federation.toml --pki parties/
    Set(SetArgs),
    /// What the three nodes' ledgers hold for your key: limit, spent and
    /// remaining ε and δ per dataset, and every charge.
    ///
    /// Example:
    ///   kuvert budget show --key fk.key --federation federation.toml --pki parties/
    Show(ShowArgs),
}

/// How to reach the nodes.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The federation file (signed by all three operators): the nodes'
    /// addresses and pinned key fingerprints.
    #[arg(long, env = "KUVERT_FEDERATION")]
    federation: PathBuf,
    /// The directory with this party's TLS certificate `party-NAME.crt`
    /// and key (`kuvert pki request --party NAME`).
    #[arg(long, env = "KUVERT_PKI")]
    pki: PathBuf,
    /// This party's name in the PKI (default: the name in the --key file).
    #[arg(long = "as")]
    party: Option<String>,
}

/// `kuvert budget set`
#[derive(Args, Debug)]
pub struct SetArgs {
    /// Your approval key (from `kuvert keygen`; the key the specs name as
    /// your `public_key`).
    #[arg(long)]
    key: PathBuf,
    /// The dataset (letters, digits, '-', '_', '.'): what a spec's table
    /// names under `dataset = ...`.
    #[arg(long, default_value = kuvert_gov::spec::DEFAULT_DATASET)]
    dataset: String,
    /// Total ε all releases over the dataset may spend together.
    #[arg(long)]
    epsilon: f64,
    /// Total δ likewise (the nodes' noise is (ε, δ)-DP: give δ > 0).
    #[arg(long)]
    delta: f64,
    /// The limit's version (default: one above the highest the nodes hold).
    #[arg(long)]
    version: Option<u64>,
    /// Also write the signed limit here (JSON), for your records.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    nodes: NodeArgs,
}

/// `kuvert budget show`
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Your approval key (only its public half is used).
    #[arg(long)]
    key: PathBuf,
    /// Print JSON (one array of accounts per node) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    nodes: NodeArgs,
}

pub fn run(c: BudgetCommand) -> anyhow::Result<ExitCode> {
    match c {
        BudgetCommand::Set(a) => set(a),
        BudgetCommand::Show(a) => show(a),
    }
}

/// A client to the federation's three nodes as `key`'s party.
fn connect(a: &NodeArgs, key: &PartyKey) -> anyhow::Result<Nodes> {
    let fed = kuvert_net::Federation::load_verified(&a.federation)
        .with_context(|| format!("the federation file {}", a.federation.display()))?;
    let addrs = fed.api_addrs()?;
    let pins: [String; 3] = std::array::from_fn(|i| fed.nodes[i].fingerprint.clone());
    let name = a.party.clone().unwrap_or_else(|| key.name().to_string());
    let mut nodes = crate::service::pinned_nodes(
        &a.pki,
        &name,
        addrs,
        pins,
        &format!("federation {}", fed.name),
    )?;
    nodes.timeout = std::time::Duration::from_secs(30);
    Ok(nodes)
}

fn key_hex(key: &PartyKey) -> String {
    key.public().ed25519
}

fn ledgers(nodes: &Nodes, key: &PartyKey) -> anyhow::Result<[Vec<Account>; 3]> {
    let k = key_hex(key);
    let mut out: [Vec<Account>; 3] = Default::default();
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = nodes
            .gov_ledger(i, Some(&k))
            .with_context(|| format!("node {i}'s ledger"))?;
    }
    Ok(out)
}

/// Sign a limit with the key at `key_path` and send it to the three nodes
/// of `federation` as the key's party (TLS identity from `pki`). `version`
/// `None`: one above the highest the nodes hold for this dataset. Returns
/// each node's answer, or `Err` naming every node that refused.
#[allow(clippy::too_many_arguments)]
pub fn set_limit(
    key_path: &Path,
    dataset: &str,
    epsilon: f64,
    delta: f64,
    version: Option<u64>,
    federation: &Path,
    pki: &Path,
    out: Option<&Path>,
) -> anyhow::Result<Vec<String>> {
    let key = PartyKey::load(key_path)?;
    let nodes = connect(
        &NodeArgs {
            federation: federation.to_path_buf(),
            pki: pki.to_path_buf(),
            party: None,
        },
        &key,
    )?;
    send(&nodes, &key, dataset, epsilon, delta, version, out)
}

fn send(
    nodes: &Nodes,
    key: &PartyKey,
    dataset: &str,
    epsilon: f64,
    delta: f64,
    version: Option<u64>,
    out: Option<&Path>,
) -> anyhow::Result<Vec<String>> {
    let version = match version {
        Some(v) => v,
        None => {
            let all = ledgers(nodes, key)?;
            1 + all
                .iter()
                .flatten()
                .filter(|acc| acc.dataset == dataset)
                .map(|acc| acc.limit.version)
                .max()
                .unwrap_or(0)
        }
    };
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let limit = BudgetLimit::sign(key, dataset, epsilon, delta, version, &now)
        .map_err(|e| anyhow!("{e}"))?;
    if let Some(out) = out {
        write_new(out, &serde_json::to_string_pretty(&limit)?)?;
    }
    let mut answers = Vec::new();
    let mut refused = Vec::new();
    for i in 0..3 {
        match nodes.gov_budget_at(i, &limit) {
            Ok(m) => answers.push(m),
            Err(e) => refused.push(format!("node {i}: {e}")),
        }
    }
    if !refused.is_empty() {
        bail!(
            "{}\nThe limit is not in force at every node: each node refuses an analysis its own \
             ledger cannot pay. Fix the cause and run the same command again with --version \
             {version} (the nodes that took it answer that it is already there).",
            refused.join("\n")
        );
    }
    Ok(answers)
}

fn set(a: SetArgs) -> anyhow::Result<ExitCode> {
    let key = PartyKey::load(&a.key)?;
    let nodes = connect(&a.nodes, &key)?;
    match send(
        &nodes,
        &key,
        &a.dataset,
        a.epsilon,
        a.delta,
        a.version,
        a.out.as_deref(),
    ) {
        Ok(answers) => {
            for m in answers {
                println!("{m}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

fn show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let key = PartyKey::load(&a.key)?;
    let nodes = connect(&a.nodes, &key)?;
    let all = ledgers(&nodes, &key)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", ledger_text(&key_hex(&key), &all));
    let agree = all[0] == all[1] && all[1] == all[2];
    if !agree {
        eprintln!(
            "warning: the three nodes' ledgers differ (a node was down when a limit was set, or \
             refused a charge). Each node enforces its own: an analysis runs only if all three \
             can pay. Send the limit again with `kuvert budget set`."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The accounts of three nodes as a table a contributor reads.
pub fn ledger_text(key: &str, all: &[Vec<Account>; 3]) -> String {
    use std::fmt::Write;
    let mut s = format!("privacy budgets of key {key} at the three nodes\n");
    let mut datasets: Vec<&str> = all.iter().flatten().map(|a| a.dataset.as_str()).collect();
    datasets.sort_unstable();
    datasets.dedup();
    if datasets.is_empty() {
        s.push_str("  no limits: every differentially private output over your data is refused until you run `kuvert budget set`\n");
        return s;
    }
    for d in datasets {
        let _ = writeln!(s, "dataset {d}:");
        for (i, accs) in all.iter().enumerate() {
            match accs.iter().find(|a| a.dataset == d) {
                None => {
                    let _ = writeln!(s, "  node {i}: no limit");
                }
                Some(a) => {
                    let (se, sd) = a.spent();
                    let (re, rd) = a.remaining();
                    let refunded = a.charges.iter().filter(|c| c.refunded.is_some()).count();
                    let _ = writeln!(
                        s,
                        "  node {i}: limit ε = {} δ = {} (version {}), spent ε = {se:.6} δ = {sd:e}, remaining ε = {re:.6} δ = {rd:e}, {} charge(s){}",
                        a.limit.epsilon,
                        a.limit.delta,
                        a.limit.version,
                        a.charges.len() - refunded,
                        if refunded > 0 {
                            format!(", {refunded} refunded")
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        if let Some(a) = all[0].iter().find(|a| a.dataset == d) {
            for c in &a.charges {
                let _ = writeln!(
                    s,
                    "    {} analysis {} output {:?}: ε = {} δ = {}{}",
                    c.charged_at,
                    &c.analysis[..c.analysis.len().min(16)],
                    c.output,
                    c.epsilon,
                    c.delta,
                    c.refunded
                        .as_ref()
                        .map(|r| format!(" (refunded: {})", r.reason))
                        .unwrap_or_default()
                );
            }
        }
    }
    s
}
