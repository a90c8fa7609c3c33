//! The governed service from a party's desk: `kuvert analysis submit`,
//! `kuvert analysis approve ID` (online), `kuvert upload ID`, `kuvert result
//! ID`, `kuvert status ID`, `kuvert analysis describe ID`.
//!
//! The coordinator is reached over HTTP and trusted for nothing: every spec
//! fetched from it is hashed here and compared with the id the party typed,
//! approvals are signed here, shares are made here and sent straight to the
//! nodes, and sealed results are opened here. See docs/service.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use kuvert_data::{CsvOptions, Schema};
use kuvert_gov::approval::approve_spec;
use kuvert_gov::spec::{AnalysisId, AnalysisSpec, Validation};
use kuvert_gov::{Approval, PartyKey};
use kuvert_node::client::Nodes;
use serde_json::Value;

/// Where the coordinator is.
#[derive(Args, Debug, Clone)]
pub struct CoordArgs {
    /// The coordinator's base URL (the one `kuvert demo` or `kuvert
    /// coordinator` prints).
    #[arg(
        long,
        env = "KUVERT_COORDINATOR",
        default_value = "http://127.0.0.1:8080"
    )]
    pub coordinator: String,
}

/// Who this party is towards the nodes (mutually authenticated TLS).
#[derive(Args, Debug, Clone)]
pub struct PartyTlsArgs {
    /// The deployment PKI directory with ca.crt and this party's client
    /// certificate `party-NAME.crt` and key (from `kuvert pki init`).
    #[arg(long, env = "KUVERT_PKI")]
    pub pki: PathBuf,
    /// This party's name in the PKI (default: the name in the --key file,
    /// which is the party's id in the spec).
    #[arg(long = "as")]
    pub party: Option<String>,
}

/// `kuvert result ID --key KEY [--out FILE]`
#[derive(Args, Debug)]
pub struct ResultArgs {
    /// The analysis id.
    id: String,
    /// The recipient's key file (from `kuvert keygen`): its X25519 part
    /// opens the sealed result shares.
    #[arg(long)]
    key: PathBuf,
    /// Write the CSV here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    coord: CoordArgs,
    #[command(flatten)]
    tls: PartyTlsArgs,
}

pub fn result_cmd(a: ResultArgs) -> anyhow::Result<ExitCode> {
    result(&a.id, &a.key, a.out.as_deref(), &a.coord, &a.tls)
}

/// `kuvert status ID`
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The analysis id.
    id: String,
    /// Print the coordinator's JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// The deployment PKI directory: deletion receipts are verified against
    /// the node keys `node-N.gov.pub` in it.
    #[arg(long, env = "KUVERT_PKI")]
    pki: Option<PathBuf>,
    #[command(flatten)]
    coord: CoordArgs,
}

pub fn status_cmd(a: StatusArgs) -> anyhow::Result<ExitCode> {
    status(&a.id, a.json, a.pki.as_deref(), &a.coord)
}

/// A small blocking HTTP client for the coordinator's JSON API.
pub struct Coordinator {
    base: String,
    agent: ureq::Agent,
}

/// An error answer from the coordinator, with its status.
fn api_error(base: &str, path: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, resp) => {
            let body = resp.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or(body);
            anyhow!("the coordinator answered {code} to {path}: {msg}")
        }
        ureq::Error::Transport(t) => anyhow!(
            "cannot reach the coordinator at {base}: {t}. Is it running? \
             (set --coordinator or KUVERT_COORDINATOR)"
        ),
    }
}

impl Coordinator {
    pub fn new(base: &str) -> Coordinator {
        Coordinator {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        self.agent
            .get(&self.url(path))
            .call()
            .map_err(|e| api_error(&self.base, path, e))?
            .into_string()
            .with_context(|| format!("reading the coordinator's answer to {path}"))
    }

    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let text = self.get_text(path)?;
        serde_json::from_str(&text)
            .with_context(|| format!("the coordinator's answer to {path} is not JSON"))
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> anyhow::Result<Value> {
        let text = self
            .agent
            .post(&self.url(path))
            .set("content-type", content_type)
            .send_string(body)
            .map_err(|e| api_error(&self.base, path, e))?
            .into_string()
            .with_context(|| format!("reading the coordinator's answer to {path}"))?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Submit a spec (TOML text); the coordinator's id must be the one
    /// computed here.
    pub fn submit(&self, toml_text: &str, origin: &str) -> anyhow::Result<AnalysisId> {
        let spec = AnalysisSpec::parse(toml_text, origin, Validation::Strict)?;
        let id = spec.id();
        let v = self.post("/api/analyses", "application/toml", toml_text)?;
        let theirs = v.get("id").and_then(|x| x.as_str()).unwrap_or_default();
        if theirs != id.to_hex() {
            bail!(
                "the coordinator named the analysis {theirs:?}, but its hash here is {id}: \
                 do not use this coordinator"
            );
        }
        Ok(id)
    }

    /// The spec of analysis `id`, checked: its hash must be `id`.
    pub fn spec(&self, id: &AnalysisId) -> anyhow::Result<(String, AnalysisSpec)> {
        let text = self.get_text(&format!("/api/analyses/{id}/spec"))?;
        let spec = AnalysisSpec::parse(&text, &format!("spec of {id}"), Validation::Strict)?;
        if spec.id() != *id {
            bail!(
                "the coordinator sent a spec whose hash is {}, not {id}: it was altered. \
                 Nothing was signed or sent; tell the other parties",
                spec.id()
            );
        }
        Ok((text, spec))
    }

    pub fn post_approval(&self, id: &AnalysisId, a: &Approval) -> anyhow::Result<Value> {
        self.post(
            &format!("/api/analyses/{id}/approvals"),
            "application/json",
            &serde_json::to_string(a)?,
        )
    }

    /// The nodes' client addresses, in node order.
    pub fn nodes(&self) -> anyhow::Result<[SocketAddr; 3]> {
        let v = self.get_json("/api/nodes")?;
        let list = v
            .as_array()
            .ok_or_else(|| anyhow!("/api/nodes is not a list"))?;
        let mut out = Vec::new();
        for (i, n) in list.iter().enumerate() {
            let addr = n
                .get("addr")
                .and_then(|a| a.as_str())
                .ok_or_else(|| anyhow!("/api/nodes entry {i} has no addr"))?;
            out.push(
                addr.parse::<SocketAddr>()
                    .with_context(|| format!("/api/nodes entry {i}: {addr:?}"))?,
            );
        }
        out.try_into()
            .map_err(|_| anyhow!("the coordinator does not list exactly three nodes"))
    }

    pub fn analysis(&self, id: &AnalysisId) -> anyhow::Result<Value> {
        self.get_json(&format!("/api/analyses/{id}"))
    }
}

/// Parse an analysis id the user typed.
pub fn parse_id(s: &str) -> anyhow::Result<AnalysisId> {
    s.trim().parse::<AnalysisId>().map_err(|e| {
        anyhow!("{e}. An analysis id is the 64 hex digits `kuvert analysis submit` printed")
    })
}

/// A node client for `key`'s party, with the node addresses from the
/// coordinator.
fn node_client(
    coord: &Coordinator,
    tls: &PartyTlsArgs,
    key: &PartyKey,
) -> anyhow::Result<(Nodes, String)> {
    let name = tls.party.clone().unwrap_or_else(|| key.name().to_string());
    let addrs = coord.nodes()?;
    let mut nodes = Nodes::new(&tls.pki, &name, addrs).with_context(|| {
        format!(
            "no TLS identity for party {name:?} in {} (expected party-{name}.crt and .key; \
             `kuvert pki issue-party` makes them)",
            tls.pki.display()
        )
    })?;
    nodes.timeout = Duration::from_secs(120);
    Ok((nodes, name))
}

/// `kuvert analysis submit SPEC`
pub fn submit(spec: &Path, coord: &CoordArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))?;
    let c = Coordinator::new(&coord.coordinator);
    let id = c.submit(&text, &spec.display().to_string())?;
    println!("{id}");
    eprintln!(
        "submitted to {}. Each contributor now reads the spec and approves it:\n  kuvert analysis approve {id} --key CONTRIBUTOR.key",
        c.base()
    );
    Ok(ExitCode::SUCCESS)
}

/// `kuvert analysis approve ID --key KEY` without `--spec`: fetch, check,
/// sign, post.
pub fn approve_online(
    id: &str,
    key: &Path,
    out: Option<&Path>,
    coord: &CoordArgs,
) -> anyhow::Result<ExitCode> {
    let (id, c, spec, k) = checked_spec_and_key(id, key, coord)?;
    let a = approve_spec(&spec, &id, &k)?;
    if let Some(out) = out {
        let mut text = serde_json::to_string_pretty(&a)?;
        text.push('\n');
        std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let v = c.post_approval(&id, &a)?;
    let remaining: Vec<String> = v
        .get("remaining")
        .and_then(|r| r.as_array())
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    println!("approved {id} as contributor {:?}", a.contributor);
    if remaining.is_empty() {
        eprintln!("every contributor has approved: the nodes will accept data for it");
    } else {
        eprintln!("still to approve: {}", remaining.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// The analysis id, the coordinator, the spec fetched from it (its hash
/// checked against the id) and the party's key.
fn checked_spec_and_key(
    id: &str,
    key: &Path,
    coord: &CoordArgs,
) -> anyhow::Result<(AnalysisId, Coordinator, AnalysisSpec, PartyKey)> {
    let id = parse_id(id)?;
    let c = Coordinator::new(&coord.coordinator);
    let (_, spec) = c.spec(&id)?;
    let k = PartyKey::load(key)?;
    Ok((id, c, spec, k))
}

/// `kuvert upload ID --table NAME=PATH --key KEY`
pub fn upload(
    id: &str,
    tables: &[String],
    key: &Path,
    delimiter: char,
    coord: &CoordArgs,
    tls: &PartyTlsArgs,
) -> anyhow::Result<ExitCode> {
    let (id, c, spec, k) = checked_spec_and_key(id, key, coord)?;
    let me = spec
        .contributors
        .iter()
        .find(|x| kuvert_gov::spec::parse_ed25519(&x.public_key) == Some(k.verifying_key()))
        .ok_or_else(|| {
            anyhow!(
                "the key {} is not a contributor's key in analysis {id} (contributors: {})",
                key.display(),
                spec.contributors
                    .iter()
                    .map(|x| x.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let opts = CsvOptions {
        delimiter: delimiter as u8,
        ..CsvOptions::default()
    };
    // Read and validate every file before anything is sent.
    let mut loaded = Vec::new();
    for t in tables {
        let (name, path) = t
            .split_once('=')
            .ok_or_else(|| anyhow!("--table must be NAME=PATH.csv, got {t:?}"))?;
        let decl = me.tables.iter().find(|x| x.name == name).ok_or_else(|| {
            anyhow!(
                "contributor {:?} brings no table {name:?} in analysis {id} (its tables: {})",
                me.id,
                me.tables
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let schema = Schema::parse_compact(&decl.schema)
            .with_context(|| format!("the spec's schema of {name}"))?;
        match kuvert_data::read_csv_file(Path::new(path), &schema, &opts) {
            Ok(table) => loaded.push((name.to_string(), table)),
            Err(e) => {
                eprintln!("error: {e}\nNothing was sent. Fix the file and upload again.");
                return Ok(ExitCode::from(2));
            }
        }
    }
    wait_registered(&c, &id)?;
    let (nodes, _) = node_client(&c, tls, &k)?;
    for (name, table) in &loaded {
        let msgs = nodes.gov_upload(&id, &me.id, &k, name, table)?;
        for m in msgs {
            eprintln!("{m}");
        }
        println!(
            "uploaded {name}: {} rows, as shares to 3 nodes",
            table.rows()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Wait (up to a minute) until the coordinator has registered the
/// analysis at the nodes, which it does once every contributor approved.
fn wait_registered(c: &Coordinator, id: &AnalysisId) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let v = c.analysis(id)?;
        let state = s(&v, "state");
        match state {
            "registered" | "running" | "failed" => return Ok(()),
            "submitted" => {
                let waiting: Vec<&str> = v
                    .get("approvals")
                    .and_then(|a| a.as_array())
                    .into_iter()
                    .flatten()
                    .filter(|a| a.get("approved").and_then(|x| x.as_bool()) != Some(true))
                    .map(|a| s(a, "contributor"))
                    .collect();
                bail!(
                    "analysis {id} is not approved by every contributor yet (waiting for: {}); \
                     nothing was sent. Upload once they have approved",
                    waiting.join(", ")
                );
            }
            "done" | "expired" => bail!(
                "analysis {id} has already run ({state}); nothing was sent. \
                 A new run needs a new analysis"
            ),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "analysis {id} is approved but not yet registered at all three nodes after a minute \
                 ({}); nothing was sent. Check `kuvert status {id}`",
                s(&v, "detail")
            );
        }
        if !said {
            eprintln!("waiting for the coordinator to register the analysis at the nodes ...");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kuvert result ID --key KEY [--out FILE]`
pub fn result(
    id: &str,
    key: &Path,
    out: Option<&Path>,
    coord: &CoordArgs,
    tls: &PartyTlsArgs,
) -> anyhow::Result<ExitCode> {
    let (id, c, spec, k) = checked_spec_and_key(id, key, coord)?;
    let me = spec
        .recipients
        .iter()
        .find(|r| kuvert_gov::spec::parse_x25519(&r.public_key_x25519) == Some(k.x25519_public()))
        .ok_or_else(|| {
            anyhow!(
                "the key {} is not a recipient's key in analysis {id}; only the named recipients \
                 can open its results",
                key.display()
            )
        })?;
    let (nodes, _) = node_client(&c, tls, &k)?;
    let outputs = nodes.gov_fetch(&id, &me.id, &k)?;
    let text = results_csv(&outputs)?;
    match out {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// CSV of the outputs: one table as plain CSV; several, each after a
/// `# output NAME` line.
pub fn results_csv(
    outputs: &[(String, kuvert_sql::output::ResultTable)],
) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    for (name, table) in outputs {
        if outputs.len() > 1 {
            buf.extend_from_slice(format!("# output {name}\n").as_bytes());
        }
        table.write_csv(&mut buf)?;
    }
    Ok(String::from_utf8(buf)?)
}

/// `kuvert status ID`
pub fn status(
    id: &str,
    json: bool,
    pki: Option<&Path>,
    coord: &CoordArgs,
) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let c = Coordinator::new(&coord.coordinator);
    let v = c.analysis(&id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", status_text(&v, pki));
    Ok(ExitCode::SUCCESS)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

/// The human-readable status of an analysis (the coordinator's JSON),
/// with deletion receipts checked against the node keys in `pki` when
/// given.
pub fn status_text(v: &Value, pki: Option<&Path>) -> String {
    let mut o = String::new();
    o += &format!("analysis  {}\nname      {}\n", s(v, "id"), s(v, "name"));
    let (state, detail) = (s(v, "state"), s(v, "detail"));
    o += &format!("state     {state}");
    let detail = detail
        .strip_prefix(state)
        .map(|d| d.trim_start_matches(':').trim())
        .unwrap_or(detail);
    if !detail.is_empty() {
        o += &format!(" — {detail}");
    }
    o.push('\n');
    o += "approvals\n";
    for a in v
        .get("approvals")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let ok = a.get("approved").and_then(|x| x.as_bool()).unwrap_or(false);
        o += &format!(
            "  {:<12} {:<10} {}\n",
            s(a, "contributor"),
            if ok { "approved" } else { "waiting" },
            s(a, "organisation")
        );
    }
    o += "nodes\n";
    for n in v
        .get("nodes")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let idx = n.get("index").and_then(|x| x.as_u64()).unwrap_or(0);
        let st = n.get("state").cloned().unwrap_or(Value::Null);
        let line = match st.get("state") {
            Some(Value::Object(m)) => m
                .get("state")
                .and_then(|x| x.as_str())
                .unwrap_or("?")
                .to_string(),
            Some(Value::String(x)) => x.clone(),
            _ => st
                .get("error")
                .and_then(|x| x.as_str())
                .map(|e| format!("unreachable: {e}"))
                .unwrap_or_else(|| st.to_string()),
        };
        o += &format!("  node {idx}    {line}\n");
    }
    let receipts: Vec<kuvert_gov::DeletionReceipt> = v
        .get("receipts")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    o += "deletion receipts\n";
    if receipts.is_empty() {
        o += "  none yet\n";
    }
    for r in &receipts {
        let check = match pki.map(|p| node_gov_key(p, r.node as usize)) {
            Some(Ok(k)) => match r.verify(&k) {
                Ok(()) => "signature verified".to_string(),
                Err(e) => format!("SIGNATURE DOES NOT VERIFY: {e}"),
            },
            Some(Err(e)) => format!("not verified: {e}"),
            None => "not verified (give --pki to check the node's signature)".into(),
        };
        o += &format!(
            "  node {}  {}  deleted tables [{}], intermediate state: {}, session keys: {}; {check}\n",
            r.node,
            r.time,
            r.deleted.tables.join(", "),
            yes(r.deleted.intermediate_state),
            yes(r.deleted.session_keys),
        );
    }
    o
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Node `i`'s receipt-signing key from the PKI directory.
pub fn node_gov_key(pki: &Path, i: usize) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    let p = pki.join(format!("node-{i}.gov.pub"));
    let k = kuvert_gov::PublicKeys::load(&p)?;
    Ok(k.verifying_key()?)
}

/// `kuvert analysis describe ID` against the coordinator.
pub fn describe_online(
    id: &str,
    html: bool,
    out: Option<&Path>,
    coord: &CoordArgs,
) -> anyhow::Result<ExitCode> {
    let id = parse_id(id)?;
    let c = Coordinator::new(&coord.coordinator);
    // Check the spec the DPIA is about.
    c.spec(&id)?;
    let text = c.get_text(&format!(
        "/api/analyses/{id}/describe?format={}",
        if html { "html" } else { "md" }
    ))?;
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a describe/approve argument is an id rather than a file.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) && !Path::new(s).exists()
}
