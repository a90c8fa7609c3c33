//! `kuvert federation ...`: the file in which the three node operators
//! list their nodes and sign the list (docs/deployment.md, step 3).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use kuvert_net::federation::{self, FedNode, Federation};

#[derive(Subcommand, Debug)]
pub enum FederationCommand {
    /// Operator, on the node's machine: create the node's Ed25519 key that
    /// signs deletion receipts and the federation file (node-I.gov.key,
    /// mode 0600, never leaves the machine; node-I.gov.pub, public).
    /// Kept if it exists.
    Keygen {
        /// This node's index: 0, 1 or 2.
        #[arg(long)]
        id: usize,
        /// The node's key directory (its pki_dir in node.toml).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Operator: write this node's entry (one [[nodes]] table) for the
    /// federation file, from the operator's CA certificate, the node's
    /// certificate and its receipt key. Send the entry file to the other
    /// two operators; it holds no secret.
    Entry {
        /// This node's index: 0, 1 or 2 (agreed among the operators).
        #[arg(long)]
        id: usize,
        /// The organisation that runs this node.
        #[arg(long)]
        operator: String,
        /// host:port where the other nodes reach this node's MPC listener.
        #[arg(long)]
        mpc: String,
        /// host:port where contributors, recipients and the coordinator
        /// reach this node's client API.
        #[arg(long)]
        api: String,
        /// The operator's CA certificate (ca.crt from `kuvert pki ca init`).
        #[arg(long)]
        ca: PathBuf,
        /// The node's certificate (node-I.crt signed by that CA).
        #[arg(long)]
        cert: PathBuf,
        /// The node's public receipt key (node-I.gov.pub, from `kuvert
        /// federation keygen`).
        #[arg(long)]
        signing_pub: PathBuf,
        /// Where to write the entry (TOML).
        #[arg(long)]
        out: PathBuf,
    },
    /// Anyone: assemble the three entries into an unsigned federation file
    /// and print its hash (each operator compares the hash out of band
    /// before signing).
    Assemble {
        /// The federation's name, e.g. "kuvert-sweden".
        #[arg(long)]
        name: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// The three entry files from `kuvert federation entry`.
        #[arg(required = true, num_args = 3)]
        entries: Vec<PathBuf>,
    },
    /// Operator: sign the federation file with this node's receipt key
    /// (node-I.gov.key, which never leaves the node's machine). The file
    /// is updated in place with the signature added.
    Sign {
        /// The federation file.
        file: PathBuf,
        /// This node's index.
        #[arg(long)]
        id: usize,
        /// The node's receipt key file (node-I.gov.key).
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a federation file: structure, all three signatures; print its
    /// hash and the nodes. Exit 1 if it does not verify.
    Verify {
        /// The federation file.
        file: PathBuf,
    },
    /// Print the three [[nodes]] tables an analysis spec needs for this
    /// federation (operator, key fingerprint, endpoint), ready to paste.
    Nodes {
        /// The federation file.
        file: PathBuf,
    },
}

pub fn run(cmd: FederationCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FederationCommand::Keygen { id, dir } => {
            if id > 2 {
                bail!("--id {id}: nodes are 0, 1 and 2");
            }
            let written = kuvert_node::gov::ensure_signing_key(&dir, id)?;
            if written.is_empty() {
                eprintln!(
                    "{} exists: kept",
                    kuvert_node::gov::signing_key_path(&dir, id).display()
                );
            }
            for w in written {
                eprintln!("wrote {}", w.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        FederationCommand::Entry {
            id,
            operator,
            mpc,
            api,
            ca,
            cert,
            signing_pub,
            out,
        } => {
            if id > 2 {
                bail!("--id {id}: nodes are 0, 1 and 2");
            }
            let key = kuvert_gov::PublicKeys::load(&signing_pub)
                .and_then(|k| k.verifying_key())
                .with_context(|| {
                    format!("{}: not a node's public receipt key", signing_pub.display())
                })?;
            let hexkey = kuvert_node::gov::encode_hex(&key.to_bytes());
            let entry = federation::entry(id, &operator, &mpc, &api, &ca, &cert, &hexkey)?;
            let text = toml::to_string_pretty(&entry)?;
            std::fs::write(
                &out,
                format!("# Federation entry of node {id}, run by {operator}.\n{text}"),
            )
            .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {}: node {id}, key fingerprint {}\nnext: send it to the other two operators; \
                 `kuvert federation assemble` joins the three entries",
                out.display(),
                entry.fingerprint
            );
            Ok(ExitCode::SUCCESS)
        }
        FederationCommand::Assemble { name, out, entries } => {
            let mut nodes = Vec::new();
            for p in &entries {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                let n: FedNode = toml::from_str(&text)
                    .with_context(|| format!("{}: not a federation entry", p.display()))?;
                nodes.push(n);
            }
            let fed = Federation::new(&name, nodes)?;
            std::fs::write(&out, fed.to_toml())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("{}", fed.hash_hex());
            eprintln!(
                "wrote {} (unsigned). Each operator compares this hash with the others by phone or \
                 in person, then signs:\n  kuvert federation sign {} --id I --key node-I.gov.key",
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        FederationCommand::Sign { file, id, key } => {
            let mut fed = Federation::load(&file)?;
            if id > 2 {
                bail!("--id {id}: nodes are 0, 1 and 2");
            }
            let k = kuvert_gov::PartyKey::load(&key)?;
            let sig = k.sign_federation(&fed.hash());
            fed.add_signature(id, &sig.to_bytes()).map_err(|e| {
                anyhow!(
                    "{e}\n(the key {} is not node {id}'s signing_key in the file)",
                    key.display()
                )
            })?;
            std::fs::write(&file, fed.to_toml())
                .with_context(|| format!("cannot write {}", file.display()))?;
            let missing: Vec<String> = (0..3)
                .filter(|n| !fed.signatures.iter().any(|s| s.node == *n))
                .map(|n| n.to_string())
                .collect();
            eprintln!(
                "node {id} signed federation {} ({})",
                fed.name,
                fed.hash_hex()
            );
            if missing.is_empty() {
                eprintln!("all three operators have signed: give the file to every node (federation = ... in node.toml), the coordinator and the parties");
            } else {
                eprintln!("still to sign: node {}", missing.join(", node "));
            }
            Ok(ExitCode::SUCCESS)
        }
        FederationCommand::Verify { file } => {
            let fed = Federation::load(&file)?;
            println!("federation {:?}\nhash {}", fed.name, fed.hash_hex());
            for n in &fed.nodes {
                println!(
                    "node {}  {}  mpc {}  api {}  key {}",
                    n.id, n.operator, n.mpc, n.api, n.fingerprint
                );
            }
            match fed.verify() {
                Ok(()) => {
                    println!("signatures: all three verify");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        FederationCommand::Nodes { file } => {
            let fed = Federation::load_verified(&file)?;
            let nodes = kuvert_node::operators::spec_nodes(&fed);
            let text = kuvert_gov::templates::set_nodes("", &nodes)?;
            print!(
                "# The compute nodes of federation {:?} ({}).\n{text}",
                fed.name,
                fed.hash_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
