//! `kuvert keygen`, `kuvert analysis ...`, `kuvert audit verify`: the
//! offline governance commands (analysis specs and ids, approvals, DPIA
//! text, templates, audit chains). The work is in `kuvert-gov`; this module
//! parses flags and maps outcomes to exit codes: 0 ok, 1 a check said no
//! (approvals or audit chains do not verify) or the machine failed, 2 bad
//! input (a spec, key or approval file that does not parse or validate).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use kuvert_gov::approval::{approve_spec, load_approval};
use kuvert_gov::describe::approval_summary;
use kuvert_gov::spec::{parse_ed25519, AnalysisId, AnalysisSpec, Validation};
use kuvert_gov::{audit, describe, templates, Format, GovError, PartyKey};

#[derive(Subcommand, Debug)]
pub enum GovCommand {
    /// Make a party's keys: an Ed25519 key to sign approvals and receipts,
    /// and a post-quantum hybrid key (X-Wing: ML-KEM-768 + X25519) to
    /// receive sealed results.
    ///
    /// Writes OUT (secret, mode 0600, never overwritten) and OUT.pub (the
    /// public keys, JSON), and prints the two lines to paste into an
    /// analysis spec (`public_key = ...` for a contributor,
    /// `kem_public_key = ...` for a recipient).
    ///
    /// `--upgrade KEYFILE` gives a key file from before post-quantum sealing
    /// its X-Wing key in place, keeping its name and Ed25519 key.
    Keygen(KeygenArgs),
    /// Analysis specs: id, check, schema, approve, verify, describe, template.
    #[command(subcommand)]
    Analysis(AnalysisCommand),
    /// Tamper-evident audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// The secret key file to write, e.g. fk.key (OUT.pub is written beside it).
    #[arg(long, required_unless_present = "upgrade")]
    out: Option<PathBuf>,
    /// The party's name inside the files (default: OUT's file name without
    /// extension).
    #[arg(long)]
    name: Option<String>,
    /// Add a post-quantum result key (X-Wing) to KEYFILE, a key file made
    /// before sealed results became post-quantum: keeps its name, its
    /// Ed25519 key and its old X25519 line, rewrites KEYFILE (mode 0600)
    /// and KEYFILE.pub, and prints the new `kem_public_key` line for specs.
    #[arg(long, value_name = "KEYFILE", conflicts_with_all = ["out", "name"])]
    upgrade: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AnalysisCommand {
    /// Print the analysis id: SHA-256 of the spec's canonical form (see
    /// docs/governance.md). Every approval signs this id.
    Id {
        /// The analysis spec (TOML).
        spec: PathBuf,
        /// Accept placeholder keys (`placeholder:<label>`), for templates
        /// being filled in.
        #[arg(long)]
        template: bool,
        /// Print the canonical JSON that is hashed instead of the id.
        #[arg(long)]
        canonical: bool,
    },
    /// Validate a spec: ids, keys, table names, schemas, SQL, retention, DP;
    /// then compile every output as the nodes will (the SQL against the
    /// declared schemas, the [[dp]] section against the WITH PRIVACY
    /// clauses). Prints its id and a summary; exit 2 with the field and
    /// place, or the output, of the first problem.
    Check {
        /// The analysis spec (TOML).
        spec: PathBuf,
        /// Accept placeholder keys (`placeholder:<label>`).
        #[arg(long)]
        template: bool,
    },
    /// Print the JSON Schema of analysis specs (for editors and validators).
    Schema,
    /// Submit a spec to the coordinator; prints its id. Contributors then
    /// approve that id.
    Submit {
        /// The analysis spec (TOML), checked here first.
        spec: PathBuf,
        #[command(flatten)]
        coord: crate::service::CoordArgs,
    },
    /// Approve an analysis as a contributor: read what it does, then sign
    /// its id with your key.
    ///
    /// Prints a summary of the spec (to stderr): id, purpose, legal basis,
    /// the full SQL of every output with its recipients and their key
    /// fingerprints, the three nodes, ε per output and which outputs are
    /// exact, leakage opt-ins, retention, contributors and protocol. Then
    /// asks `Approve analysis ID as contributor NAME? [y/N]` on the
    /// terminal; anything but y/yes signs nothing (exit 1). Without a
    /// terminal it signs only with --yes, which is accepted only with
    /// --spec FILE: the spec you read, whose hash must be ID.
    ///
    /// Online (no --spec, or --spec with --coordinator/KUVERT_COORDINATOR):
    /// fetches the spec from the coordinator, checks that its hash is ID
    /// (and that --spec FILE's is too), signs, and posts the approval; every
    /// node checks it again. Offline (--spec FILE, no coordinator named, or
    /// --offline): refuses unless FILE's id is ID, and writes the approval
    /// to --out or stdout. Either way your key must be the one the spec
    /// names for you.
    Approve {
        /// The analysis id you agreed to (from `kuvert analysis submit` or
        /// `kuvert analysis id`).
        id: String,
        /// Your key file (from `kuvert keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The spec you read: the summary is of this file, and its hash
        /// must be ID.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Approve without asking (scripts). Only with --spec FILE.
        #[arg(long)]
        yes: bool,
        /// The federation file the three node operators gave you (checked:
        /// all three signatures). The spec's [[nodes]] must be exactly its
        /// nodes, or nothing is signed: your approval binds who computes.
        #[arg(long, env = "KUVERT_FEDERATION")]
        federation: Option<PathBuf>,
        /// With --spec: never contact the coordinator, even when one is
        /// named; write the approval to --out or stdout.
        #[arg(long, requires = "spec")]
        offline: bool,
        /// Also write the approval (JSON) here; offline without it: stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        coord: crate::service::CoordArgs,
    },
    /// Verify that every contributor approved this exact spec with the key
    /// the spec names (what each node checks before it accepts shares).
    /// Exit 1 naming the culprit when not.
    Verify {
        /// The analysis spec (TOML).
        spec: PathBuf,
        /// The approval files, comma-separated (or the flag repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        approvals: Vec<PathBuf>,
    },
    /// Write the DPIA text: purpose, legal basis, controllers and
    /// processors, inputs, what each party learns, DP, retention and
    /// deletion, approval state, audit trail.
    Describe {
        /// The analysis spec (TOML), or an analysis id: then the text comes
        /// from the coordinator, with its approvals and audit trail.
        spec: PathBuf,
        /// Approval files to report on, comma-separated.
        #[arg(long, value_delimiter = ',')]
        approvals: Vec<PathBuf>,
        /// Directory of audit logs (audit*.log, searched recursively); they
        /// must verify, and their records about this analysis are listed.
        #[arg(long)]
        audit_dir: Option<PathBuf>,
        /// md (Markdown) or html (a self-contained, accessible page).
        #[arg(long, value_enum, default_value_t = DescribeFormat::Md)]
        format: DescribeFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Accept placeholder keys (describe a template before keys exist).
        #[arg(long)]
        template: bool,
        #[command(flatten)]
        coord: crate::service::CoordArgs,
    },
    /// Print (or write) a ready-made spec of one of the six reference
    /// analyses, with placeholder keys and example legal references.
    ///
    /// quality-indicators (one contributor per region; by default the 21
    /// regions) and parallel-assistance (one per municipality; by default
    /// three) are generated from a list of contributors: --contributors
    /// FILE writes them for yours, with one table per contributor and the
    /// SQL over all of them.
    #[command(after_help = TEMPLATE_HELP)]
    Template {
        /// The template, e.g. overlapping-benefits (see --list).
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// List the templates.
        #[arg(long)]
        list: bool,
        /// Write to this file (not overwritten if it exists) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Generate quality-indicators or parallel-assistance for this list
        /// of contributors: a CSV file (UTF-8) with the header
        /// `id,organisation` (quality-indicators: `id,organisation,region`)
        /// and one line per contributor, in table order.
        #[arg(long, value_name = "FILE", conflicts_with = "list")]
        contributors: Option<PathBuf>,
    },
}

/// The `--contributors` format, with an example (`kuvert analysis template
/// --help`).
const TEMPLATE_HELP: &str = "\
A list of contributors (--contributors FILE) is CSV in UTF-8: a header naming
the columns, in any order, then one line per contributor, in table order:
  id            the contributor id: letters, digits, '-', '_', '.' (unique)
  organisation  its name, also the controller of its data
  region        quality-indicators only: the region's code (unique; e.g. the
                county code, 01 = Stockholm): the value of the region column
                in its rows and one group of the regions histogram
At least 2 contributors (quality-indicators: at most 64). Quote a field that
holds a comma (\"Region Skåne, Syd\"); `;` separates when the header has no
comma; empty lines and lines starting with # are skipped. The tables are
region_01, region_02, ... or bistand_1, bistand_2, ... in the list's order.
A problem exits 2 naming the file, line and column.

Example:
  $ cat regions.csv
  id,organisation,region
  region-01,Region Stockholm,01
  region-12,Region Skåne,12
  region-14,Västra Götalandsregionen,14
  $ kuvert analysis template quality-indicators --contributors regions.csv --out qi.toml
  $ kuvert analysis check --template qi.toml

  $ cat kommuner.csv
  id,organisation
  kommun-2584,Socialnämnden i Kiruna kommun
  kommun-2580,Socialnämnden i Luleå kommun
  $ kuvert analysis template parallel-assistance --contributors kommuner.csv --out pa.toml";

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DescribeFormat {
    Md,
    Html,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify every audit log (files named audit*) under a directory: each
    /// hash chain, that logs of different nodes agree on each job's
    /// analysis id and input sizes, that every deletion receipt (files
    /// named receipt*.json under the directory, and --receipts) is pinned
    /// in its node's log, that every shares_deleted record has its receipt,
    /// and that each node's log holds what the other logs imply (a log cut
    /// short fails). One line per chain, then what is missing, then a
    /// summary; exit 1 on any failure, naming node, file and line.
    Verify {
        /// The directory to search (recursively).
        #[arg(long)]
        data_dir: PathBuf,
        /// More deletion receipt files (receipt JSON) to check.
        #[arg(long, num_args = 1..)]
        receipts: Vec<PathBuf>,
        /// Only the logs are at hand: do not require a receipt for every
        /// shares_deleted record (receipts found are still checked).
        #[arg(long)]
        logs_only: bool,
    },
}

pub fn run(cmd: GovCommand) -> anyhow::Result<ExitCode> {
    // The commands that talk to the coordinator.
    match cmd {
        GovCommand::Analysis(AnalysisCommand::Submit { spec, coord }) => {
            crate::service::submit(&spec, &coord)
        }
        GovCommand::Analysis(AnalysisCommand::Approve {
            id,
            key,
            spec,
            yes,
            federation,
            offline,
            out,
            coord,
        }) if spec.is_none() || (!offline && coordinator_named()) => {
            crate::service::approve_online(
                &id,
                &key,
                spec.as_deref(),
                yes,
                federation.as_deref(),
                out.as_deref(),
                &coord,
            )
        }
        GovCommand::Analysis(AnalysisCommand::Describe {
            spec,
            format,
            out,
            coord,
            ..
        }) if crate::service::looks_like_id(&spec.to_string_lossy()) => {
            crate::service::describe_online(
                &spec.to_string_lossy(),
                matches!(format, DescribeFormat::Html),
                out.as_deref(),
                &coord,
            )
        }
        cmd => run_offline(cmd),
    }
}

fn run_offline(cmd: GovCommand) -> anyhow::Result<ExitCode> {
    let result = match cmd {
        GovCommand::Keygen(a) => keygen(a),
        GovCommand::Analysis(c) => analysis(c),
        GovCommand::Audit(AuditCommand::Verify {
            data_dir,
            receipts,
            logs_only,
        }) => audit_verify(
            &data_dir,
            &audit::VerifyOptions {
                receipts,
                require_receipts: !logs_only,
            },
        ),
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(if e.is_user_error() { 2 } else { 1 }))
        }
    }
}

fn mode(template: bool) -> Validation {
    if template {
        Validation::AllowPlaceholders
    } else {
        Validation::Strict
    }
}

fn io(path: &Path, e: std::io::Error) -> GovError {
    GovError::Io {
        path: path.to_path_buf(),
        hint: "",
        source: e,
    }
}

fn write_out(out: Option<&Path>, text: &str, create_new: bool) -> Result<(), GovError> {
    match out {
        None => {
            let mut so = std::io::stdout().lock();
            so.write_all(text.as_bytes())
                .map_err(|e| io(Path::new("<stdout>"), e))
        }
        Some(p) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true);
            if create_new {
                opts.create_new(true);
            } else {
                opts.create(true).truncate(true);
            }
            let mut f = opts.open(p).map_err(|e| GovError::Io {
                path: p.to_path_buf(),
                hint: if create_new && e.kind() == std::io::ErrorKind::AlreadyExists {
                    "; a template never overwrites a file: choose another --out"
                } else {
                    "; check the directory exists and is writable"
                },
                source: e,
            })?;
            f.write_all(text.as_bytes()).map_err(|e| io(p, e))?;
            eprintln!("wrote {}", p.display());
            Ok(())
        }
    }
}

fn keygen(a: KeygenArgs) -> Result<ExitCode, GovError> {
    if let Some(path) = a.upgrade {
        let (key, pub_path) = PartyKey::upgrade_file(&path)?;
        println!("public_key = \"{}\"", key.public().ed25519);
        println!("kem_public_key = \"{}\"", key.kem_public()?.to_base64());
        eprintln!(
            "upgraded {} (same name and Ed25519 key, new post-quantum result key) and wrote {}; \
             put the kem_public_key line into the specs that name this party as a recipient",
            path.display(),
            pub_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let Some(out) = a.out else {
        // clap requires --out unless --upgrade is given.
        return Err(GovError::BadKey {
            origin: "kuvert keygen".into(),
            message: "give --out FILE (or --upgrade KEYFILE)".into(),
        });
    };
    let name = a.name.unwrap_or_else(|| {
        out.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "party".into())
    });
    let key = PartyKey::generate(&name);
    let pub_path = key.write(&out)?;
    println!("public_key = \"{}\"", key.public().ed25519);
    println!("kem_public_key = \"{}\"", key.kem_public()?.to_base64());
    eprintln!(
        "wrote {} (secret: keep it, mode 0600) and {} (public: share it)",
        out.display(),
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn analysis(c: AnalysisCommand) -> Result<ExitCode, GovError> {
    match c {
        AnalysisCommand::Id {
            spec,
            template,
            canonical,
        } => {
            let s = AnalysisSpec::load(&spec, mode(template))?;
            if canonical {
                println!("{}", s.canonical_json());
            } else {
                println!("{}", s.id());
            }
        }
        AnalysisCommand::Check { spec, template } => {
            let s = AnalysisSpec::load(&spec, mode(template))?;
            // Compile every output exactly as the nodes will before they
            // register it (SQL against the declared schemas, [[dp]] against
            // WITH PRIVACY), so a spec that cannot run is caught before
            // anyone approves it.
            if let Err(e) = kuvert_node::gov::compile_spec(&s) {
                eprintln!("error: {}: {e}", spec.display());
                return Ok(ExitCode::from(2));
            }
            let outputs: std::collections::BTreeSet<&str> = s
                .recipients
                .iter()
                .flat_map(|r| r.outputs.iter().map(|o| o.name.as_str()))
                .collect();
            println!("{}", s.id());
            eprintln!(
                "ok: {} ({} contributors, {} tables, {} recipients, {} outputs{})",
                spec.display(),
                s.contributors.len(),
                s.contributors.iter().map(|c| c.tables.len()).sum::<usize>(),
                s.recipients.len(),
                outputs.len(),
                if template {
                    "; placeholder keys allowed"
                } else {
                    ""
                }
            );
        }
        AnalysisCommand::Schema => {
            print!("{}", AnalysisSpec::json_schema());
        }
        AnalysisCommand::Submit { .. } => unreachable!("handled by run"),
        AnalysisCommand::Approve {
            id,
            key,
            spec,
            yes,
            federation,
            out,
            ..
        } => {
            let spec = spec.expect("online approval is handled by run");
            let expected: AnalysisId = id.parse()?;
            let s = local_spec(&spec, &expected)?;
            let k = PartyKey::load(&key)?;
            let who = contributor_for(&s, &k)?;
            if let Some(refused) = ask_approval(&s, &who, yes, federation.as_deref()) {
                return Ok(refused);
            }
            let a = approve_spec(&s, &expected, &k)?;
            let mut text = serde_json::to_string_pretty(&a).unwrap_or_default();
            text.push('\n');
            write_out(out.as_deref(), &text, false)?;
            eprintln!(
                "approved {} as contributor {:?}",
                a.analysis_id, a.contributor
            );
        }
        AnalysisCommand::Verify { spec, approvals } => {
            let s = AnalysisSpec::load(&spec, Validation::Strict)?;
            let list = approvals
                .iter()
                .map(|p| load_approval(p))
                .collect::<Result<Vec<_>, _>>()?;
            if let Err(e) = kuvert_gov::verify_approvals(&s, &list) {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
            println!("{}", s.id());
            eprintln!(
                "ok: approved by all {} contributors ({})",
                s.contributors.len(),
                s.contributors
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        AnalysisCommand::Describe {
            spec,
            approvals,
            audit_dir,
            format,
            out,
            template,
            ..
        } => {
            let s = AnalysisSpec::load(&spec, mode(template))?;
            let list = approvals
                .iter()
                .map(|p| load_approval(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut records = Vec::new();
            if let Some(dir) = audit_dir {
                let report = audit::verify_dir(&dir)?;
                if !report.ok() {
                    print_report(&report);
                    eprintln!(
                        "error: the audit logs under {} do not verify; a DPIA must not quote a broken trail \
                         (see `kuvert audit verify --data-dir {}`)",
                        dir.display(),
                        dir.display()
                    );
                    return Ok(ExitCode::from(1));
                }
                records = report
                    .records()
                    .into_iter()
                    .map(|(_, _, r)| r.clone())
                    .collect();
            }
            let f = match format {
                DescribeFormat::Md => Format::Markdown,
                DescribeFormat::Html => Format::Html,
            };
            write_out(out.as_deref(), &describe(&s, &list, &records, f), false)?;
        }
        AnalysisCommand::Template {
            name,
            list,
            out,
            contributors,
        } => {
            if list {
                for n in templates::names() {
                    let s = templates::spec(n)?;
                    println!("{n}\t{}", s.purpose);
                }
            } else if let Some(n) = name {
                let base = templates::get(&n)?;
                match contributors {
                    None => write_out(out.as_deref(), base, true)?,
                    Some(file) => {
                        if !templates::GENERATED.contains(&n.as_str()) {
                            eprintln!(
                                "error: --contributors: template {n} has a fixed set of contributors; only {} \
                                 are generated from a list. Write it with `kuvert analysis template {n} --out FILE` \
                                 and edit its [[contributors]]",
                                templates::GENERATED.join(" and ")
                            );
                            return Ok(ExitCode::from(2));
                        }
                        let text = read_list(&file)?;
                        let members =
                            templates::parse_members(&n, &text, &file.display().to_string())?;
                        write_out(out.as_deref(), &templates::generate(&n, &members)?, true)?;
                        eprintln!(
                            "{n} for the {} contributors of {}",
                            members.len(),
                            file.display()
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A list of contributors as text: UTF-8, or a syntax error (exit 2) at the
/// first byte that is not.
fn read_list(path: &Path) -> Result<String, GovError> {
    let bytes = std::fs::read(path).map_err(|e| GovError::Io {
        path: path.to_path_buf(),
        hint: "; give the CSV list of contributors (see `kuvert analysis template --help`)",
        source: e,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let good = std::str::from_utf8(good).unwrap_or_default();
        let line_start = good.rfind('\n').map(|i| i + 1).unwrap_or(0);
        GovError::Syntax {
            origin: path.display().to_string(),
            line: good.matches('\n').count() + 1,
            column: good[line_start..].chars().count() + 1,
            message: "not UTF-8 text; save the list as UTF-8 (in a spreadsheet: CSV UTF-8)".into(),
        }
    })
}

/// Whether this command names a coordinator (`--coordinator URL` or
/// `KUVERT_COORDINATOR`): then an approval with `--spec FILE` is also
/// checked against the coordinator's copy and posted to it.
fn coordinator_named() -> bool {
    std::env::var_os("KUVERT_COORDINATOR").is_some_and(|v| !v.is_empty())
        || std::env::args_os().any(|a| {
            let a = a.to_string_lossy();
            a == "--coordinator" || a.starts_with("--coordinator=")
        })
}

/// The message when nobody can be asked and `--yes` was not given.
pub(crate) const USE_YES_WITH_SPEC: &str = "use --yes with --spec FILE";

/// The spec file the approver read, refused unless its hash is `expected`.
pub(crate) fn local_spec(path: &Path, expected: &AnalysisId) -> Result<AnalysisSpec, GovError> {
    let s = AnalysisSpec::load(path, Validation::Strict)?;
    let actual = s.id();
    if actual != *expected {
        return Err(GovError::IdMismatch {
            given: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    Ok(s)
}

/// The id of the contributor whose key in `spec` is `key`'s (found before
/// anything is shown or signed, so the question can name it).
pub(crate) fn contributor_for(spec: &AnalysisSpec, key: &PartyKey) -> Result<String, GovError> {
    let vk = key.verifying_key();
    spec.contributors
        .iter()
        .find(|c| parse_ed25519(&c.public_key) == Some(vk))
        .map(|c| c.id.clone())
        .ok_or_else(|| GovError::UnknownContributor {
            contributor: format!(
                "(the holder of key {}, file name {:?})",
                key.public().ed25519,
                key.name()
            ),
            known: spec
                .contributors
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Show `contributor` what it is about to approve (the approval summary,
/// on stderr) and ask. `None`: approved, by the answer y/yes on the
/// terminal or by `yes` (which callers accept only with a spec file whose
/// hash is the id). `Some(code)`: not approved, the reason printed; the
/// caller must sign and send nothing.
pub(crate) fn ask_approval(
    spec: &AnalysisSpec,
    contributor: &str,
    yes: bool,
    federation: Option<&Path>,
) -> Option<ExitCode> {
    use std::io::{BufRead, IsTerminal};
    let id = spec.id();
    if let Some(f) = federation {
        if let Err(e) = nodes_are_the_federations(spec, f) {
            eprintln!("error: not approved, nothing was signed or sent: {e}");
            return Some(ExitCode::from(2));
        }
        eprintln!(
            "the spec's [[nodes]] are exactly the nodes of the federation in {}",
            f.display()
        );
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{}", approval_summary(spec));
    if yes {
        let _ = writeln!(
            err,
            "--yes: approving analysis {id} as contributor {contributor} without asking"
        );
        return None;
    }
    if !std::io::stdin().is_terminal() {
        let _ = writeln!(
            err,
            "error: not approved: there is no terminal to ask whether you approve (stdin is not \
             one), so nothing was signed or sent. To approve without a question, read the spec \
             and {USE_YES_WITH_SPEC} (the spec you read; its hash must be {id})"
        );
        return Some(ExitCode::from(2));
    }
    let _ = write!(
        err,
        "Approve analysis {id} as contributor {contributor}? [y/N] "
    );
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    let answer = line.trim().to_ascii_lowercase();
    if read.is_ok() && (answer == "y" || answer == "yes") {
        return None;
    }
    if line.is_empty() {
        eprintln!();
    }
    eprintln!("not approved: nothing was signed or sent");
    Some(ExitCode::from(1))
}

fn print_report(r: &audit::DirReport) {
    for c in &r.chains {
        match &c.result {
            Ok(recs) => println!(
                "ok    {}  {} records  head {}",
                c.path.display(),
                recs.len(),
                c.head().map(|(_, h)| h).unwrap_or(audit::GENESIS)
            ),
            Err(e) => println!("FAIL  {e}"),
        }
    }
    for x in &r.cross {
        println!("FAIL  {x}");
    }
    for (path, rc) in &r.receipts {
        if let Some(h) = &rc.audit_head {
            println!(
                "      receipt {} node {} job {} pins record {} hash {}",
                path.display(),
                rc.node,
                rc.job,
                h.records,
                h.hash
            );
        }
    }
    for h in &r.releases {
        println!(
            "      sealed result {} node {} output {} pins record {} hash {}",
            h.path.display(),
            h.node,
            h.output,
            h.audit_head.records,
            h.audit_head.hash
        );
    }
    for x in &r.missing {
        println!("FAIL  missing: {x}");
    }
}

fn audit_verify(dir: &Path, opts: &audit::VerifyOptions) -> Result<ExitCode, GovError> {
    let r = audit::verify_dir_with(dir, opts)?;
    print_report(&r);
    let records = r.records().len();
    let failed = r.chains.iter().filter(|c| c.result.is_err()).count();
    if r.chains.is_empty() {
        println!(
            "FAIL  no audit logs (files named audit*) under {}",
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    println!(
        "{} chains, {} records, {} receipts, {} broken chains, {} cross-file disagreements, \
         {} missing: {}",
        r.chains.len(),
        records,
        r.receipts.len(),
        failed,
        r.cross.len(),
        r.missing.len(),
        if r.ok() { "all verified" } else { "FAILED" }
    );
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The spec's `[[nodes]]` are exactly the (verified) federation's nodes, in
/// order; otherwise says which node differs.
pub(crate) fn nodes_are_the_federations(
    spec: &AnalysisSpec,
    federation: &Path,
) -> anyhow::Result<()> {
    let fed = kuvert_net::Federation::load_verified(federation)?;
    if spec.nodes.len() != 3 {
        anyhow::bail!("the spec names {} nodes, not three", spec.nodes.len());
    }
    for (j, n) in spec.nodes.iter().enumerate() {
        if n.fingerprint.trim() != fed.nodes[j].fingerprint {
            anyhow::bail!(
                "the spec names {} as node {j}, but federation {:?} ({}) lists {} ({}): this \
                 analysis would be computed by a node your operators did not agree on",
                n.fingerprint.trim(),
                fed.name,
                federation.display(),
                fed.nodes[j].fingerprint,
                fed.nodes[j].operator
            );
        }
    }
    Ok(())
}
