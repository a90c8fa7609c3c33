//! `kuvert pki ...`: the deployment's certificates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use kuvert_net::pki::{self, InitOptions, PkiError, WrittenFile};

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create a new deployment PKI: a CA, one certificate per compute node
    /// and one client certificate per party.
    ///
    /// Writes DIR/ca.crt and DIR/ca.key (keep the CA key offline),
    /// DIR/node-<i>.crt/.key (node i, DNS names node-<i> and localhost, IP
    /// 127.0.0.1), DIR/node-<i>.gov.key/.gov.pub (node i's key that signs
    /// deletion receipts, and its public part for the parties) and
    /// DIR/party-<name>.crt/.key (CN = name). Keys get mode
    /// 0600, certificates 0644. Give each operator only its own key.
    Init {
        /// Directory to create. Refused if it exists and is not empty,
        /// unless --force.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Number of compute nodes (kuvert runs exactly 3).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Comma-separated party names (contributors and recipients):
        /// lower-case letters, digits and '-', e.g. fk,malmo-stad.
        #[arg(long, value_delimiter = ',', value_name = "NAME,NAME,...")]
        parties: Vec<String>,
        /// Validity of node and party certificates in days (the CA gets ten
        /// times as long, at most 20 years).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Overwrite files in an existing directory.
        #[arg(long)]
        force: bool,
    },
    /// Issue a new certificate and key from an existing CA: a new party, or
    /// the rotation of one node's or party's key (see docs/deployment.md).
    Issue {
        /// The PKI directory holding ca.crt and ca.key.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Issue for compute node I (0, 1 or 2).
        #[arg(
            long,
            value_name = "I",
            conflicts_with = "party",
            required_unless_present = "party"
        )]
        node: Option<usize>,
        /// Issue for the party NAME.
        #[arg(long, value_name = "NAME")]
        party: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace the existing certificate and key of that node or party.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    let result = match cmd {
        PkiCommand::Init {
            out,
            nodes,
            parties,
            days,
            force,
        } => match pki::init(
            &out,
            &InitOptions {
                nodes,
                parties: parties.into_iter().filter(|p| !p.is_empty()).collect(),
                validity_days: days,
                force,
            },
        ) {
            Ok(mut files) => {
                // The nodes' deletion-receipt signing keys (the governed service).
                let keys = kuvert_node::gov::ensure_signing_keys(&out)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                files.extend(keys.into_iter().map(receipt_key_file));
                Ok(files)
            }
            Err(e) => Err(e),
        },
        PkiCommand::Issue {
            dir,
            node,
            party,
            days,
            force,
        } => match (node, party) {
            (Some(i), None) => pki::issue_node(&dir, i, days, force),
            (None, Some(p)) => pki::issue_party(&dir, &p, days, force),
            _ => unreachable!("clap requires exactly one of --node and --party"),
        },
    };
    match result {
        Ok(files) => {
            print_written(&files);
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (PkiError::DirExists { .. }
            | PkiError::FileExists { .. }
            | PkiError::BadPartyName { .. }
            | PkiError::BadNodeCount(_)
            | PkiError::BadNode(_)
            | PkiError::BadValidity(_)),
        ) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

/// Describe a node's receipt key file written by `ensure_signing_keys`.
fn receipt_key_file(path: PathBuf) -> WrittenFile {
    let secret = path.extension().is_some_and(|x| x == "key");
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let node = name
        .trim_start_matches("node-")
        .chars()
        .next()
        .unwrap_or('?');
    let what = if secret {
        format!("node {node}'s deletion-receipt signing key (give only to node {node})")
    } else {
        format!("node {node}'s receipt verification key (give to every party)")
    };
    WrittenFile { path, what, secret }
}

/// One line per file on stdout: mode, path, what it is.
fn print_written(files: &[WrittenFile]) {
    for f in files {
        let mode = if f.secret { "0600" } else { "0644" };
        println!("{mode}  {}  {}", f.path.display(), f.what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_the_nodes_receipt_keys_too() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pki");
        let code = run(PkiCommand::Init {
            out: out.clone(),
            nodes: 3,
            parties: vec!["fk".into()],
            days: 30,
            force: false,
        })
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        for i in 0..3 {
            let key = kuvert_node::gov::signing_key_path(&out, i);
            assert!(
                kuvert_gov::PartyKey::load(&key).is_ok(),
                "{}",
                key.display()
            );
            kuvert_node::gov::node_public_key(&out, i).unwrap();
        }
        assert_eq!(
            receipt_key_file(out.join("node-2.gov.key")).what,
            "node 2's deletion-receipt signing key (give only to node 2)"
        );
        assert!(!receipt_key_file(out.join("node-1.gov.pub")).secret);
    }
}
