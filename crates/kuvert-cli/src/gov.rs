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
use kuvert_gov::spec::{AnalysisId, AnalysisSpec, Validation};
use kuvert_gov::{audit, describe, templates, Format, GovError, PartyKey};

#[derive(Subcommand, Debug)]
pub enum GovCommand {
    /// Make a party's keys: an Ed25519 key to sign approvals and receipts,
    /// and an X25519 key to receive sealed results.
    ///
    /// Writes OUT (secret, mode 0600, never overwritten) and OUT.pub (the
    /// public keys, JSON), and prints the two lines to paste into an
    /// analysis spec (`public_key = ...`, `public_key_x25519 = ...`).
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
    #[arg(long)]
    out: PathBuf,
    /// The party's name inside the files (default: OUT's file name without
    /// extension).
    #[arg(long)]
    name: Option<String>,
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
    /// Validate a spec: ids, keys, table names, schemas, SQL, retention, DP.
    /// Prints its id and a summary; exit 2 with the field and place of the
    /// first problem.
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
    /// Approve an analysis as a contributor: sign its id with your key.
    ///
    /// Online (no --spec): fetches the spec from the coordinator, checks
    /// that its hash is ID, signs, and posts the approval; every node checks
    /// it again. Offline (--spec FILE): refuses unless FILE's id is ID, and
    /// writes the approval to --out or stdout. Either way your key must be
    /// the one the spec names for you.
    Approve {
        /// The analysis id you agreed to (from `kuvert analysis submit` or
        /// `kuvert analysis id`).
        id: String,
        /// Your key file (from `kuvert keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The spec you read (offline approval).
        #[arg(long)]
        spec: Option<PathBuf>,
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
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DescribeFormat {
    Md,
    Html,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify every audit log (files named audit*) under a directory: each
    /// hash chain, and that logs of different nodes agree on each job's
    /// analysis id and input sizes. One line per chain, then a summary;
    /// exit 1 on any failure, naming file and line.
    Verify {
        /// The directory to search (recursively).
        #[arg(long)]
        data_dir: PathBuf,
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
            spec: None,
            out,
            coord,
        }) => crate::service::approve_online(&id, &key, out.as_deref(), &coord),
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
        GovCommand::Audit(AuditCommand::Verify { data_dir }) => audit_verify(&data_dir),
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
    let name = a.name.unwrap_or_else(|| {
        a.out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "party".into())
    });
    let key = PartyKey::generate(&name);
    let pub_path = key.write(&a.out)?;
    let p = key.public();
    println!("public_key = \"{}\"", p.ed25519);
    println!("public_key_x25519 = \"{}\"", p.x25519);
    eprintln!(
        "wrote {} (secret: keep it, mode 0600) and {} (public: share it)",
        a.out.display(),
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
            id, key, spec, out, ..
        } => {
            let spec = spec.expect("online approval is handled by run");
            let expected: AnalysisId = id.parse()?;
            let s = AnalysisSpec::load(&spec, Validation::Strict)?;
            let k = PartyKey::load(&key)?;
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
        AnalysisCommand::Template { name, list, out } => {
            if list {
                for n in templates::names() {
                    let s = templates::spec(n)?;
                    println!("{n}\t{}", s.purpose);
                }
            } else if let Some(n) = name {
                write_out(out.as_deref(), templates::get(&n)?, true)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
}

fn audit_verify(dir: &Path) -> Result<ExitCode, GovError> {
    let r = audit::verify_dir(dir)?;
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
        "{} chains, {} records, {} broken chains, {} cross-file disagreements: {}",
        r.chains.len(),
        records,
        failed,
        r.cross.len(),
        if r.ok() { "all verified" } else { "FAILED" }
    );
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
