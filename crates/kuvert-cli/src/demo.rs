//! `kuvert demo`: the whole governed flow on one machine, for any of the
//! six analysis templates (`--template NAME`, default overlapping-benefits).
//!
//! ```text
//! DIR/operators/    the three operators (kuvert_node::operators): operator-<i>/ca/ (its
//!                     own CA), operator-<i>/node/ (node i's key, made there, its
//!                     certificate, receipt key, node.toml, data/ with shares, sealed
//!                     results, receipts and audit-node<i>.log, node.log),
//!                     federation.toml (signed by all three), parties/ (the
//!                     agencies' CA and party certificates), service/ (the
//!                     coordinator's certificates)
//! DIR/keys/*.key      the parties' approval and sealing keys (kuvert keygen)
//! DIR/analysis.toml   the template, filled in
//! DIR/inputs/*.csv    the contributors' generated registers (cleartext:
//!                     this directory stands for the agencies' own machines)
//! DIR/coordinator/    coordinator.db (SQLite), audit-coordinator.log,
//!                     coordinator.log
//! DIR/results/*.csv   what each recipient reconstructed
//! ```
//!
//! Nodes and coordinator are separate `kuvert` processes talking TLS and
//! HTTPS on loopback; the parties' steps are the same library calls as
//! `kuvert analysis submit|approve`, `kuvert upload` and `kuvert result`,
//! and each is printed as the command a party would type.
//!
//! Who takes part comes from the template's spec: every contributor gets a
//! key and a client certificate, approves and uploads its tables; every
//! recipient fetches and opens its outputs; the first contributor submits.
//! Each opened output is checked against SQLite on the cleartext inputs
//! ([`check`]): exact outputs must be the same rows, differentially private
//! ones (`WITH PRIVACY`) within the noise bound.

mod check;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use kuvert_data::Schema;
use kuvert_gov::{AnalysisSpec, PartyKey};

use crate::service::{self, CoordArgs, Coordinator, PartyTlsArgs};

use check::{Input, Reference};

/// The template `kuvert demo` runs without `--template`.
const DEFAULT_TEMPLATE: &str = "overlapping-benefits";
/// The three organisations that run the demo's nodes.
const OPERATORS: [&str; 3] = [
    "Operator A (e.g. a state IT agency)",
    "Operator B (e.g. a university data centre)",
    "Operator C (e.g. a regional IT cooperative)",
];

/// `kuvert demo [--template NAME] [--data-dir DIR] [--serve]`
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The analysis template to run: overlapping-benefits, non-take-up,
    /// double-registration, opt-out, parallel-assistance or
    /// quality-indicators (`kuvert analysis template NAME` prints it).
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    template: String,
    /// Where everything goes (created; must be empty or absent). Default: a
    /// new temporary directory, kept afterwards so you can look around.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Rows in each agency's generated register (quality-indicators: patient
    /// episodes over all 21 regions, at least 21).
    #[arg(long, default_value_t = 2000)]
    rows: usize,
    /// Seed of the generated data (not of any secret: shares and keys come
    /// from the OS CSPRNG).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Address of the coordinator's API and web console (default: a free
    /// port on 127.0.0.1).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Keep the coordinator, the console and the nodes running after the
    /// flow, until Ctrl-C.
    #[arg(long)]
    serve: bool,
}

/// Who takes part, as the template names them.
struct Cast {
    /// The contributors, in the spec's order.
    contributors: Vec<String>,
    /// The recipients, in the spec's order.
    recipients: Vec<String>,
    /// Every party once: the contributors, then the recipients that
    /// contribute nothing.
    parties: Vec<String>,
    /// Who submits the analysis to the coordinator: the first contributor.
    submitter: String,
}

impl Cast {
    fn of(spec: &AnalysisSpec) -> anyhow::Result<Cast> {
        let contributors: Vec<String> = spec.contributors.iter().map(|c| c.id.clone()).collect();
        let recipients: Vec<String> = spec.recipients.iter().map(|r| r.id.clone()).collect();
        let mut parties = contributors.clone();
        for r in &recipients {
            if !parties.contains(r) {
                parties.push(r.clone());
            }
        }
        let submitter = contributors
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("the template {} names no contributor", spec.name))?;
        Ok(Cast {
            contributors,
            recipients,
            parties,
            submitter,
        })
    }
}

/// What the parties have once the nodes and the coordinator run and the
/// spec is written, before it is submitted: see [`before_approval`]. (The
/// nodes' client addresses and the federation are in scope at the call, to
/// add here when a step needs them.)
struct Setup<'a> {
    /// The filled-in spec (DIR/analysis.toml).
    spec: &'a AnalysisSpec,
    spec_path: &'a Path,
    /// Each party's key file (DIR/keys/<id>.key).
    keys_dir: &'a Path,
    /// The parties' PKI directory (their client certificates, the nodes'
    /// receipt keys).
    pki: &'a Path,
    /// How the parties reach the coordinator.
    cargs: &'a CoordArgs,
    /// The federation file (the nodes' addresses and pinned keys).
    federation: &'a Path,
}

/// The demo's child processes; killed when dropped (and, through their
/// closed stdin, when this process dies).
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Children {
    fn check_alive(&mut self, dir: &Path) -> anyhow::Result<()> {
        for (name, c) in &mut self.0 {
            if let Some(st) = c.try_wait()? {
                bail!(
                    "{name} exited ({st}); its log: {}",
                    dir.join(log_of(name)).display()
                );
            }
        }
        Ok(())
    }
}

fn log_of(name: &str) -> String {
    match name {
        "coordinator" => "coordinator/coordinator.log".into(),
        n => match n.strip_prefix("node-") {
            Some(i) => format!("operators/operator-{i}/node/node.log"),
            None => format!("{n}.log"),
        },
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(kuvert_node::local::free_loopback_port()?)
}

fn step(n: usize, what: &str) {
    eprintln!("\n[{n}/8] {what}");
}

fn cmd(line: &str) {
    eprintln!("  $ {line}");
}

pub fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let name = a.template.as_str();
    // The template, parsed: who contributes which tables, who receives
    // which outputs.
    let template_spec = kuvert_gov::templates::spec(name)?;
    let cast = Cast::of(&template_spec)?;
    let dir = match &a.data_dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                bail!(
                    "{} is not empty: give a new or empty --data-dir (the demo never overwrites)",
                    d.display()
                );
            }
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("kuvert-demo-")
            .tempdir()?
            .keep(),
    };
    let exe = std::env::current_exe().context("cannot find the kuvert binary")?;
    let _ = ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: stopping the demo's nodes and coordinator");
        // The children see their stdin close and exit.
        std::process::exit(130);
    });

    if name == DEFAULT_TEMPLATE {
        eprintln!(
            "Kuvert demo: two agencies find persons who received both a social-insurance benefit and\n\
             economic assistance for overlapping periods, without either seeing the other's register.\n\
             Everything lives in {}",
            dir.display()
        );
    } else {
        eprintln!(
            "Kuvert demo, template {name}: {}\n\
             {} contributors, {} recipients. Everything lives in {}",
            template_spec.purpose,
            cast.contributors.len(),
            cast.recipients.len(),
            dir.display()
        );
    }

    // 1. Three operators, each with its own CA; the federation; the
    //    parties' certificates; the parties' keys.
    step(
        1,
        "three operators, each with its own CA; each node makes its own key; the federation they sign",
    );
    let client = [free_port()?, free_port()?, free_port()?];
    let mpc = [free_port()?, free_port()?, free_port()?];
    let ops = dir.join("operators");
    for (i, org) in OPERATORS.iter().enumerate() {
        let op = ops.join(format!("operator-{i}"));
        eprintln!("  # operator {i}, on its CA machine and on node {i}'s machine:");
        cmd(&format!(
            "kuvert pki ca init --org \"{}\" --out {}",
            org,
            op.join("ca").display()
        ));
        cmd(&format!(
            "kuvert pki request --node {i} --host 127.0.0.1 --out {}   # the key stays here",
            op.join("node").display()
        ));
        cmd(&format!(
            "kuvert pki sign --ca {} --csr {} --node {i}",
            op.join("ca").display(),
            op.join(format!("node/node-{i}.csr")).display()
        ));
        cmd(&format!(
            "kuvert federation keygen --id {i} --dir {}",
            op.join("node").display()
        ));
    }
    cmd(&format!(
        "kuvert federation assemble --name kuvert-demo --out {} ENTRY-0 ENTRY-1 ENTRY-2   # then each operator: kuvert federation sign",
        ops.join("federation.toml").display()
    ));
    let dep = kuvert_node::operators::setup(
        &ops,
        &kuvert_node::operators::Plan {
            name: "kuvert-demo".into(),
            operators: OPERATORS.map(String::from),
            mpc,
            api: client,
            parties: cast.parties.clone(),
            days: 30,
        },
    )
    .map_err(|e| anyhow!(e))?;
    let fed = kuvert_net::Federation::load_verified(&dep.federation)?;
    eprintln!(
        "  federation {} signed by all three operators",
        fed.hash_hex()
    );
    // The parties' view: their certificates from the agencies' CA, and
    // the nodes' public receipt keys from the federation.
    let pki = dep.parties.clone();
    cmd(&format!(
        "kuvert pki request --party {s} --out {}; kuvert pki sign --ca AGENCIES-CA --csr ... --party {s}   # and so for each agency",
        pki.display(),
        s = cast.submitter
    ));
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir)?;
    let mut keys = Vec::new();
    for p in &cast.parties {
        let path = keys_dir.join(format!("{p}.key"));
        cmd(&format!("kuvert keygen --out {}", path.display()));
        PartyKey::generate(p).write(&path)?;
        keys.push((p.to_string(), path));
    }
    let key_path = |party: &str| keys_dir.join(format!("{party}.key"));

    // 2. The analysis spec from the template.
    step(2, &format!("the analysis spec, from the {name} template"));
    let spec_path = dir.join("analysis.toml");
    cmd(&format!(
        "kuvert analysis template {name} --out {}   # then fill in keys and contact",
        spec_path.display()
    ));
    cmd(&format!(
        "kuvert federation nodes {} >> {}   # the three [[nodes]] the contributors approve",
        dep.federation.display(),
        spec_path.display()
    ));
    let template = kuvert_gov::templates::set_nodes(
        kuvert_gov::templates::get(name)?,
        &dep.spec_nodes().map_err(|e| anyhow!(e))?,
    )?;
    let spec_text = fill_template(&template, &keys)?;
    std::fs::write(&spec_path, &spec_text)?;
    let spec = AnalysisSpec::parse(&spec_text, "spec", kuvert_gov::Validation::Strict)?;

    // 3. Inputs.
    step(
        3,
        "the agencies' registers (generated; cleartext stays here)",
    );
    let inputs_dir = dir.join("inputs");
    let inputs = write_template_inputs(&spec, a.rows, a.seed, &inputs_dir)?;
    for i in &inputs {
        eprintln!("  {}", i.path.display());
    }

    // 4. Nodes and coordinator.
    step(
        4,
        "three compute nodes (TLS 1.3) and the coordinator on 127.0.0.1",
    );
    let listen = match a.listen {
        Some(l) => l,
        None => free_port()?,
    };
    let mut children = Children(Vec::new());
    for i in 0..3 {
        // Each operator's node.toml (production mode: the federation, the
        // client CAs; no dev_mode), written by operators::setup.
        let nd = dep.node_dirs[i].clone();
        let cfg_path = dep.node_config(i);
        cmd(&format!("kuvert node --config {}", cfg_path.display()));
        let log = std::fs::File::create(nd.join("node.log"))?;
        let child = Command::new(&exe)
            .args(["node", "--exit-with-parent", "--config"])
            .arg(&cfg_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        children.0.push((format!("node-{i}"), child));
    }
    let cdir = dir.join("coordinator");
    std::fs::create_dir_all(&cdir)?;
    let nodes_arg = client
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // HTTPS with the service operator's certificate; the agencies' CA
    // issues the client certificates; the submitter may submit; a console
    // token for the demo's operator.
    let tls_cert = dep.service.join("server.crt");
    let tls_key = dep.service.join("server.key");
    let client_ca = pki.join("ca.crt");
    let access = cdir.join("access.toml");
    cmd(&format!(
        "kuvert coordinator token --name demo-console --roles operator,auditor   # its [[token]] goes into {}",
        access.display()
    ));
    let console_token = kuvert_coord::auth::new_token();
    let roles = kuvert_coord::auth::parse_roles("operator,auditor").map_err(|e| anyhow!(e))?;
    std::fs::write(
        &access,
        format!(
            "# Who may do what at the demo's coordinator (docs/service.md).\n\
             # Parties by their client certificate's name; their roles in an\n\
             # analysis (contributor, recipient) come from its spec.\n\
             [[principal]]\nname = \"{}\"\nroles = [\"submitter\"]\n\n{}",
            cast.submitter,
            kuvert_coord::auth::token_stanza("demo-console", &roles, &console_token)
        ),
    )?;
    let coord_flags = format!(
        "--tls-cert {} --tls-key {} --client-ca {} --access {}",
        tls_cert.display(),
        tls_key.display(),
        client_ca.display(),
        access.display()
    );
    cmd(&format!(
        "kuvert coordinator --data-dir {} --listen {listen} --pki {} --federation {} {coord_flags}",
        cdir.display(),
        dep.service.display(),
        dep.federation.display()
    ));
    let log = std::fs::File::create(cdir.join("coordinator.log"))?;
    let child = Command::new(&exe)
        .args(["coordinator", "--exit-with-parent", "--data-dir"])
        .arg(&cdir)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--pki")
        .arg(&dep.service)
        .arg("--federation")
        .arg(&dep.federation)
        .arg("--tls-cert")
        .arg(&tls_cert)
        .arg("--tls-key")
        .arg(&tls_key)
        .arg("--client-ca")
        .arg(&client_ca)
        .arg("--access")
        .arg(&access)
        .args(["--nodes", &nodes_arg, "--poll-ms", "200"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    children.0.push(("coordinator".into(), child));
    let url = format!("https://{listen}");
    // The parties trust the service operator's CA for the coordinator and
    // present their own certificates; the demo's own calls (submit,
    // status) are the submitter's.
    let coord_ca = dep.service.join("ca.crt");
    let cargs = CoordArgs {
        coordinator_ca: Some(coord_ca.clone()),
        pki: Some(pki.clone()),
        ..CoordArgs::url(&url)
    };
    let coord = Coordinator::connect(&cargs, Some(&pki), Some(&cast.submitter))?;
    wait_until(
        &mut children,
        &dir,
        Duration::from_secs(30),
        "the coordinator to start",
        || Ok(coord.get_text("/api/health").is_ok()),
    )?;
    eprintln!(
        "  export KUVERT_COORDINATOR={url} KUVERT_COORDINATOR_CA={} KUVERT_PKI={}",
        coord_ca.display(),
        pki.display()
    );

    // Each contributor's own steps before the analysis is submitted.
    before_approval(&Setup {
        spec: &spec,
        spec_path: &spec_path,
        keys_dir: &keys_dir,
        pki: &pki,
        cargs: &cargs,
        federation: &dep.federation,
    })?;

    // 5. Submit and approve.
    step(
        5,
        &match cast.contributors.len() {
            2 => "submit the analysis; both contributors approve its hash".to_string(),
            n => format!("submit the analysis; all {n} contributors approve its hash"),
        },
    );
    cmd(&format!("kuvert analysis submit {}", spec_path.display()));
    let id = coord.submit(&spec_text, &spec_path.display().to_string())?;
    eprintln!("  {id}");
    for c in &cast.contributors {
        // The contributor has read the spec it wrote (DIR/analysis.toml):
        // --yes with that file, whose hash must be the id.
        cmd(&format!(
            "kuvert analysis approve {id} --key {} --spec {} --federation {} --yes",
            key_path(c).display(),
            spec_path.display(),
            dep.federation.display()
        ));
        let code = service::approve_online(
            &id.to_hex(),
            &key_path(c),
            Some(&spec_path),
            true,
            Some(&dep.federation),
            None,
            &cargs,
        )?;
        if code != ExitCode::SUCCESS {
            bail!("{c} did not approve analysis {id}");
        }
    }
    wait_state(
        &mut children,
        &dir,
        &coord,
        &id,
        &["registered", "waiting", "ready", "running", "done"],
    )?;

    // 6. Upload.
    step(
        6,
        "each agency shares its register locally and sends each node only its shares",
    );
    for c in &cast.contributors {
        let tables: Vec<String> = inputs
            .iter()
            .filter(|i| &i.contributor == c)
            .map(|i| format!("{}={}", i.table, i.path.display()))
            .collect();
        cmd(&format!(
            "kuvert upload {id} {} --key {}",
            tables
                .iter()
                .map(|t| format!("--table {t}"))
                .collect::<Vec<_>>()
                .join(" "),
            key_path(c).display()
        ));
        let tls = PartyTlsArgs {
            pki: pki.clone(),
            party: None,
        };
        let code = service::upload(&id.to_hex(), &tables, &key_path(c), ',', &cargs, &tls)?;
        if code != ExitCode::SUCCESS {
            bail!("the upload of {c}'s tables ({}) failed", tables.join(", "));
        }
    }

    // 7. Compute.
    step(
        7,
        "the nodes verify the approvals, compute under MPC, seal, delete, sign receipts",
    );
    let compute_started = Instant::now();
    wait_done(&mut children, &dir, &coord, &id)?;
    let compute = compute_started.elapsed();

    // 8. Results.
    step(
        8,
        "each recipient fetches its sealed result shares and opens them",
    );
    let results = dir.join("results");
    std::fs::create_dir_all(&results)?;
    // The plaintext reference: SQLite over the cleartext inputs (which
    // only this demo machine has).
    let reference = Reference::load(&inputs)?;
    let (mut checked, mut exact, mut noisy) = (0usize, 0usize, 0usize);
    let mut disagree: Vec<String> = Vec::new();
    for r in &cast.recipients {
        let out = results.join(format!("{r}.csv"));
        cmd(&format!(
            "kuvert result {id} --key {} --out {}",
            key_path(r).display(),
            out.display()
        ));
        let tls = PartyTlsArgs {
            pki: pki.clone(),
            party: None,
        };
        service::result(&id.to_hex(), &key_path(r), Some(&out), &cargs, &tls)?;
        let text = std::fs::read_to_string(&out)?;
        let recipient = spec
            .recipient(r)
            .ok_or_else(|| anyhow!("{r} is no recipient of the spec"))?;
        let names: Vec<String> = recipient.outputs.iter().map(|o| o.name.clone()).collect();
        let opened = check::split_outputs(&text, &names)
            .with_context(|| format!("reading {}", out.display()))?;
        for o in &recipient.outputs {
            let got = &opened[&o.name];
            // The template's own SQL, run by SQLite on the cleartext inputs.
            let verdict = reference
                .check(&o.sql, got)
                .with_context(|| format!("checking output {:?} of {r}", o.name))?;
            checked += 1;
            if !verdict.agrees() {
                disagree.push(format!("{r}/{}", o.name));
            } else if check::privacy_clause(&o.sql).is_some() {
                noisy += 1;
            } else {
                exact += 1;
            }
            println!(
                "\n{r} receives {:?} ({}): {}",
                o.name,
                o.description.clone().unwrap_or_default(),
                verdict.describe()
            );
            let lines = std::iter::once(&got.header).chain(&got.rows);
            for l in lines.clone().take(8) {
                println!("  {}", l.join(","));
            }
            if got.rows.len() > 7 {
                println!(
                    "  ... ({} rows in all, in {})",
                    got.rows.len(),
                    out.display()
                );
            }
        }
    }
    let all_agree = disagree.is_empty() && checked > 0;
    println!(
        "\nanswers: {}",
        if all_agree {
            format!(
                "all {checked} outputs agree with SQLite on the cleartext inputs ({exact} same as \
                 SQLite, {noisy} within the noise bound)"
            )
        } else {
            format!(
                "{} of {checked} outputs DISAGREE with SQLite: {}",
                disagree.len(),
                disagree.join(", ")
            )
        }
    );

    // Status with the receipts, and the audit chains.
    let v = coord.analysis(&id)?;
    println!("\n{}", service::status_text(&v, Some(&pki)));
    let receipts = verified_receipts(&v, &pki, &id, &inputs);
    println!(
        "deletion receipts: {} of 3 nodes signed one for this analysis that verifies and names every input table",
        receipts
    );
    let report = kuvert_gov::verify_dir(&dir)?;
    println!(
        "audit: {} hash-chained logs under {}: {}",
        report.chains.len(),
        dir.display(),
        if report.ok() {
            "all verify, and the nodes agree"
        } else {
            "DO NOT VERIFY"
        }
    );
    let shares_left = count_files(&dir, ".shares")?;
    println!("share files left at the nodes: {shares_left}");
    println!(
        "time: {:.1} s for the whole flow, {:.1} s for the compute step (from the last upload to done)",
        started.elapsed().as_secs_f64(),
        compute.as_secs_f64()
    );

    println!(
        "\nDone in {:.1} s. Look around:\n\
         \x20 console      {url}/   (Swedish; {url}/?lang=en for English){}\n\
         \x20 login        {url}/login with this console token (roles operator and auditor; printed only here):\n\
         \x20 token        {console_token}\n\
         \x20 status       {env} kuvert status {id} --pki {}\n\
         \x20 DPIA text    {env} kuvert analysis describe {id} --format html --out dpia.html\n\
         \x20 audit        kuvert audit verify --data-dir {}\n\
         \x20 files        {}  (inputs/ is the agencies' side; operators/operator-*/node/data hold only shares, now deleted)",
        started.elapsed().as_secs_f64(),
        if a.serve {
            ""
        } else {
            "  — only while running: add --serve"
        },
        pki.display(),
        dir.display(),
        dir.display(),
        env = format!(
            "KUVERT_COORDINATOR={url} KUVERT_COORDINATOR_CA={} KUVERT_COORDINATOR_PARTY={}",
            coord_ca.display(),
            cast.submitter
        ),
    );
    if !all_agree || !report.ok() || shares_left != 0 || receipts != 3 {
        return Ok(ExitCode::from(1));
    }
    if a.serve {
        println!("\nServing the console at {url}/ — Ctrl-C to stop.");
        // A process that stops (or is stopped, to try what happens) is
        // reported once; the rest keep serving.
        let mut reported = std::collections::BTreeSet::new();
        loop {
            std::thread::sleep(Duration::from_secs(1));
            for (name, c) in &mut children.0 {
                if let Ok(Some(st)) = c.try_wait() {
                    if reported.insert(name.clone()) {
                        eprintln!(
                            "{name} stopped ({st}); its log: {}",
                            dir.join(log_of(name)).display()
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Each contributor's own steps after the spec is written and the nodes
/// and the coordinator run, before the analysis is submitted and any
/// contributor approves it. Per-contributor setup at the nodes goes here
/// (for example, for an analysis with differentially private outputs, each
/// contributor's signed privacy-budget limit, which the nodes check when the
/// analysis is registered).
///
/// Today each contributor checks what it brings to the approval: that the
/// filled-in spec names its own approval key (as `kuvert analysis check`
/// shows it), and that its client certificate for the coordinator and the
/// nodes is in the PKI directory, so that a later refusal cannot come from
/// a mix-up of keys or certificates.
fn before_approval(s: &Setup) -> anyhow::Result<()> {
    for c in &s.spec.contributors {
        let key_path = s.keys_dir.join(format!("{}.key", c.id));
        let key = PartyKey::load(&key_path)?;
        if kuvert_gov::spec::parse_ed25519(&c.public_key) != Some(key.verifying_key()) {
            bail!(
                "the spec {} names another public key for contributor {} than its key {}; \
                 fill in its .pub file's ed25519 key and run `kuvert analysis check {}`",
                s.spec_path.display(),
                c.id,
                key_path.display(),
                s.spec_path.display()
            );
        }
        Coordinator::connect(s.cargs, Some(s.pki), Some(&c.id)).with_context(|| {
            format!(
                "contributor {} has no usable client certificate in {} (party-{}.crt and .key); \
                 issue one with `kuvert pki request --party {}` and `kuvert pki sign`",
                c.id,
                s.pki.display(),
                c.id,
                c.id
            )
        })?;
    }
    eprintln!(
        "  each of the {} contributors finds its own key in {} and has its client certificate",
        s.spec.contributors.len(),
        s.spec_path.display()
    );
    set_budgets(s)
}

/// With DP outputs, every contributor signs a privacy-budget limit for its
/// datasets and sends it to the three nodes (`kuvert budget set`): the
/// nodes refuse any DP output over a dataset without one. The demo's
/// limit is twice what this analysis spends (a policy for each controller
/// to choose, not a rule).
fn set_budgets(s: &Setup) -> anyhow::Result<()> {
    if s.spec.dp.is_empty() {
        return Ok(());
    }
    let eps: f64 = s.spec.dp.iter().map(|d| d.epsilon).sum();
    let delta: f64 = s.spec.dp.iter().map(|d| d.delta).sum();
    // Rounded to three significant digits (10 × 2e-6 is 1.9999999999999998e-5).
    let round = |x: f64| format!("{x:.2e}").parse::<f64>().unwrap_or(x);
    let (limit_eps, limit_delta) = (round(2.0 * eps), round(10.0 * delta));
    let mut said = 0;
    for c in &s.spec.contributors {
        let key_path = s.keys_dir.join(format!("{}.key", c.id));
        let mut datasets: Vec<&str> = c.tables.iter().map(|t| t.dataset_id()).collect();
        datasets.dedup();
        for d in datasets {
            if said < 2 {
                cmd(&format!(
                    "kuvert budget set --key {} --dataset {d} --epsilon {limit_eps} --delta {limit_delta} --federation {} --pki {}",
                    key_path.display(),
                    s.federation.display(),
                    s.pki.display()
                ));
            } else if said == 2 {
                eprintln!("  ... and so for every contributor");
            }
            said += 1;
            crate::budget::set_limit(
                &key_path,
                d,
                limit_eps,
                limit_delta,
                None,
                s.federation,
                s.pki,
                None,
            )
            .with_context(|| format!("contributor {}'s budget for dataset {d}", c.id))?;
        }
    }
    eprintln!(
        "  {said} budget limit(s) of ε = {limit_eps}, δ = {limit_delta} signed by the contributors and kept by each node; this analysis spends ε = {eps}, δ = {delta} on each"
    );
    Ok(())
}

/// Generate the contributors' tables in `dir` as the template declares
/// them (`tables = [{ name, schema }]`): the reference generator of
/// kuvert-examples where its schemas are the template's, its variant with
/// a `pnr` column where the template adds one (quality-indicators).
fn write_template_inputs(
    spec: &AnalysisSpec,
    rows: usize,
    seed: u64,
    dir: &Path,
) -> anyhow::Result<Vec<Input>> {
    let name = spec.name.as_str();
    let mut declared = Vec::new();
    for c in &spec.contributors {
        for t in &c.tables {
            let schema = Schema::parse_compact(&t.schema)
                .with_context(|| format!("the template's schema of table {}", t.name))?;
            declared.push((c.id.clone(), t.name.clone(), schema));
        }
    }
    let analysis = kuvert_examples::get(name).with_context(|| {
        format!(
            "the demo generates inputs with kuvert-examples' generators; template {name} has none"
        )
    })?;
    let reference = |t: &str| analysis.table(t).map(|x| x.schema.to_compact());
    let with_pnr = |t: &str| {
        kuvert_examples::gen::schema_with_pnr(name, t)
            .ok()
            .flatten()
    };
    let mismatch = |schema_of: &dyn Fn(&str) -> Option<String>| {
        declared.iter().find_map(|(_, t, s)| {
            let generated = schema_of(t);
            let same = generated
                .as_deref()
                .and_then(|g| Schema::parse_compact(g).ok())
                .is_some_and(|g| &g == s);
            (!same).then(|| {
                format!(
                    "table {t}: the template declares {}, the generator writes {}",
                    s.to_compact(),
                    generated.unwrap_or_else(|| "no such table".into())
                )
            })
        })
    };
    let paths = match (mismatch(&reference), mismatch(&with_pnr)) {
        (None, _) => kuvert_examples::gen::write_inputs(name, rows, seed, dir)?,
        (Some(_), None) => kuvert_examples::gen::write_inputs_with_pnr(name, rows, seed, dir)?,
        (Some(a), Some(b)) => bail!(
            "no generator writes the tables of template {name} ({a}; with pnr: {b}); extend \
             kuvert_examples::gen so that its tables match the template's"
        ),
    };
    declared
        .into_iter()
        .map(|(contributor, table, schema)| {
            let path = dir.join(format!("{table}.csv"));
            if !paths.contains(&path) {
                bail!("the generator wrote no {}", path.display());
            }
            Ok(Input {
                table,
                contributor,
                schema,
                path,
            })
        })
        .collect()
}

/// How many of the three nodes signed a deletion receipt for analysis `id`
/// that verifies under the node's key in `pki` and names every input table.
fn verified_receipts(
    v: &serde_json::Value,
    pki: &Path,
    id: &kuvert_gov::AnalysisId,
    inputs: &[Input],
) -> usize {
    let receipts: Vec<kuvert_gov::DeletionReceipt> = v
        .get("receipts")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    let mut nodes = std::collections::BTreeSet::new();
    for r in &receipts {
        let ok = r.analysis_id == *id
            && service::node_gov_key(pki, r.node as usize).is_ok_and(|k| r.verify(&k).is_ok())
            && inputs.iter().all(|i| r.deleted.tables.contains(&i.table));
        if ok && r.node < 3 {
            nodes.insert(r.node);
        }
    }
    nodes.len()
}

/// Fill the template's placeholders with the parties' keys.
fn fill_template(template: &str, keys: &[(String, PathBuf)]) -> anyhow::Result<String> {
    let mut text = template.to_string();
    for (name, path) in keys {
        let key = PartyKey::load(path)?;
        let k = key.public();
        // The result key first: `public_key = "placeholder:X"` is also the
        // tail of `kem_public_key = "placeholder:X"`.
        text = text
            .replace(
                &format!("kem_public_key = \"placeholder:{name}\""),
                &format!("kem_public_key = \"{}\"", key.kem_public()?.to_base64()),
            )
            .replace(
                &format!("public_key = \"placeholder:{name}\""),
                &format!("public_key = \"{}\"", k.ed25519),
            );
    }
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("contact = ") {
            out.push_str("contact = \"mpc-demo@example.invalid (the demo's analysis owner)\"");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    kuvert_gov::AnalysisSpec::parse(&out, "the demo's spec", kuvert_gov::Validation::Strict)?;
    Ok(out)
}

fn wait_until(
    children: &mut Children,
    dir: &Path,
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        children.check_alive(dir)?;
        if f()? {
            return Ok(());
        }
        if t.elapsed() > limit {
            bail!(
                "gave up waiting for {what} after {} s; see the logs under {}",
                limit.as_secs(),
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state_of(v: &serde_json::Value) -> (String, String) {
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    (s("state"), s("detail"))
}

fn wait_state(
    children: &mut Children,
    dir: &Path,
    coord: &Coordinator,
    id: &kuvert_gov::AnalysisId,
    want: &[&str],
) -> anyhow::Result<()> {
    wait_until(
        children,
        dir,
        Duration::from_secs(60),
        "the nodes to register the analysis",
        || {
            let (state, detail) = state_of(&coord.analysis(id)?);
            if state == "failed" {
                bail!("the analysis failed: {detail}");
            }
            Ok(want.contains(&state.as_str()))
        },
    )
}

fn wait_done(
    children: &mut Children,
    dir: &Path,
    coord: &Coordinator,
    id: &kuvert_gov::AnalysisId,
) -> anyhow::Result<()> {
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let mut last = String::new();
    let r = wait_until(
        children,
        dir,
        Duration::from_secs(600),
        "the job to finish",
        || {
            let v = coord.analysis(id)?;
            let (state, detail) = state_of(&v);
            let line = if detail.is_empty() {
                state.clone()
            } else if detail.starts_with(&state) {
                detail.clone()
            } else {
                format!("{state}: {detail}")
            };
            if line != last {
                match &bar {
                    Some(b) => b.set_message(line.clone()),
                    None => eprintln!("  {line}"),
                }
                last = line;
            }
            match state.as_str() {
                "done" => Ok(true),
                "failed" | "expired" => bail!(
                    "the job did not finish: {detail}. Nothing was released; the logs are under {}",
                    dir.display()
                ),
                _ => Ok(false),
            }
        },
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r?;
    eprintln!("  done");
    Ok(())
}

fn count_files(dir: &Path, suffix: &str) -> anyhow::Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            n += count_files(&p, suffix)?;
        } else if p.to_string_lossy().ends_with(suffix) {
            n += 1;
        }
    }
    Ok(n)
}
