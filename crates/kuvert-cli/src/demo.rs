//! `kuvert demo`: the whole governed flow on one machine.
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
//! DIR/analysis.toml   the overlapping-benefits template, filled in
//! DIR/inputs/*.csv    the two agencies' generated registers (cleartext:
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

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use kuvert_gov::PartyKey;

use crate::service::{self, CoordArgs, Coordinator, PartyTlsArgs};

const ANALYSIS: &str = "overlapping-benefits";
/// The contributors, the recipient that only receives, and the coordinator.
const CONTRIBUTORS: [&str; 2] = ["fk", "kommun"];
const CONTROL: &str = "kontroll";
/// The three organisations that run the demo's nodes.
const OPERATORS: [&str; 3] = [
    "Operator A (e.g. a state IT agency)",
    "Operator B (e.g. a university data centre)",
    "Operator C (e.g. a regional IT cooperative)",
];

/// `kuvert demo [--data-dir DIR] [--serve]`
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where everything goes (created; must be empty or absent). Default: a
    /// new temporary directory, kept afterwards so you can look around.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Rows in each agency's generated register.
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

    eprintln!(
        "Kuvert demo: two agencies find persons who received both a social-insurance benefit and\n\
         economic assistance for overlapping periods, without either seeing the other's register.\n\
         Everything lives in {}",
        dir.display()
    );

    // 1. Three operators, each with its own CA; the federation; the
    //    agencies' certificates; the parties' keys.
    step(
        1,
        "three operators, each with its own CA; each node makes its own key; the federation they sign",
    );
    let client = [free_port()?, free_port()?, free_port()?];
    let mpc = [free_port()?, free_port()?, free_port()?];
    let mut parties: Vec<String> = CONTRIBUTORS.iter().map(|s| s.to_string()).collect();
    parties.push(CONTROL.into());
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
            parties: parties.clone(),
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
        "kuvert pki request --party fk --out {}; kuvert pki sign --ca AGENCIES-CA --csr ... --party fk   # and so for each agency",
        pki.display()
    ));
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir)?;
    let mut keys = Vec::new();
    for p in CONTRIBUTORS.iter().chain([&CONTROL]) {
        let path = keys_dir.join(format!("{p}.key"));
        cmd(&format!("kuvert keygen --out {}", path.display()));
        PartyKey::generate(p).write(&path)?;
        keys.push((p.to_string(), path));
    }
    let key_path = |name: &str| keys_dir.join(format!("{name}.key"));

    // 2. The analysis spec from the template.
    step(
        2,
        "the analysis spec, from the overlapping-benefits template",
    );
    let spec_path = dir.join("analysis.toml");
    cmd(&format!(
        "kuvert analysis template {ANALYSIS} --out {}   # then fill in keys and contact",
        spec_path.display()
    ));
    cmd(&format!(
        "kuvert federation nodes {} >> {}   # the three [[nodes]] the contributors approve",
        dep.federation.display(),
        spec_path.display()
    ));
    let template = kuvert_gov::templates::set_nodes(
        kuvert_gov::templates::get(ANALYSIS)?,
        &dep.spec_nodes().map_err(|e| anyhow!(e))?,
    )?;
    let spec_text = fill_template(&template, &keys)?;
    std::fs::write(&spec_path, &spec_text)?;

    // 3. Inputs.
    step(
        3,
        "the agencies' registers (generated; cleartext stays here)",
    );
    let inputs = dir.join("inputs");
    let files = kuvert_examples::gen::write_inputs(ANALYSIS, a.rows, a.seed, &inputs)?;
    for f in &files {
        eprintln!("  {}", f.display());
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
    // issues the client certificates; fk may submit; a console token for
    // the demo's operator.
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
             [[principal]]\nname = \"fk\"\nroles = [\"submitter\"]\n\n{}",
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
    // status) are fk's.
    let coord_ca = dep.service.join("ca.crt");
    let cargs = CoordArgs {
        coordinator_ca: Some(coord_ca.clone()),
        pki: Some(pki.clone()),
        ..CoordArgs::url(&url)
    };
    let coord = Coordinator::connect(&cargs, Some(&pki), Some("fk"))?;
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

    // 5. Submit and approve.
    step(5, "submit the analysis; both contributors approve its hash");
    cmd(&format!("kuvert analysis submit {}", spec_path.display()));
    let id = coord.submit(&spec_text, &spec_path.display().to_string())?;
    eprintln!("  {id}");
    for c in CONTRIBUTORS {
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
    let uploads = [("fk", "fk"), ("kommun", "ek")];
    for (party, table) in uploads {
        let path = inputs.join(format!("{table}.csv"));
        cmd(&format!(
            "kuvert upload {id} --table {table}={} --key {}",
            path.display(),
            key_path(party).display()
        ));
        let tls = PartyTlsArgs {
            pki: pki.clone(),
            party: None,
        };
        let code = service::upload(
            &id.to_hex(),
            &[format!("{table}={}", path.display())],
            &key_path(party),
            ',',
            &cargs,
            &tls,
        )?;
        if code != ExitCode::SUCCESS {
            bail!("the upload of {table} failed");
        }
    }

    // 7. Compute.
    step(
        7,
        "the nodes verify the approvals, compute under MPC, seal, delete, sign receipts",
    );
    wait_done(&mut children, &dir, &coord, &id)?;

    // 8. Results.
    step(
        8,
        "each recipient fetches its sealed result shares and opens them",
    );
    let results = dir.join("results");
    std::fs::create_dir_all(&results)?;
    let spec = kuvert_gov::AnalysisSpec::parse(&spec_text, "spec", kuvert_gov::Validation::Strict)?;
    let mut all_agree = true;
    for r in ["fk", CONTROL] {
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
        // The recipient's one output, checked against SQLite on the
        // cleartext inputs (which only this demo machine has).
        let output = if r == CONTROL { "ids" } else { "persons" };
        let reference = kuvert_examples::sqlite::reference(ANALYSIS, output, &inputs)?;
        let mut want = reference.rows.clone();
        let mut got: Vec<Vec<String>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        want.sort();
        got.sort();
        let agree = got == want;
        all_agree &= agree;
        let lines: Vec<&str> = text.lines().collect();
        let described = spec
            .recipient(r)
            .and_then(|x| x.outputs.iter().find(|o| o.name == output))
            .and_then(|o| o.description.clone())
            .unwrap_or_default();
        println!(
            "\n{r} receives {output:?} ({described}): {}",
            if agree {
                "same as SQLite on the cleartext inputs"
            } else {
                "DIFFERS FROM SQLite"
            }
        );
        for l in lines.iter().take(8) {
            println!("  {l}");
        }
        if lines.len() > 8 {
            println!(
                "  ... ({} rows in all, in {})",
                lines.len() - 1,
                out.display()
            );
        }
    }

    // Status with the receipts, and the audit chains.
    let v = coord.analysis(&id)?;
    println!("\n{}", service::status_text(&v, Some(&pki)));
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
            "KUVERT_COORDINATOR={url} KUVERT_COORDINATOR_CA={} KUVERT_COORDINATOR_PARTY=fk",
            coord_ca.display()
        ),
    );
    if !all_agree || !report.ok() || shares_left != 0 {
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
