//! The governed service from a party's desk: `kuvert analysis submit`,
//! `kuvert analysis approve ID` (online), `kuvert upload ID`, `kuvert result
//! ID`, `kuvert status ID`, `kuvert analysis describe ID`.
//!
//! The coordinator is reached over HTTPS and trusted for nothing: every spec
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

/// Where the coordinator is, and how this party proves who it is there
/// (HTTPS only). The credentials, in order: --coordinator-cert and
/// --coordinator-key; else this party's certificate `party-NAME.crt/.key`
/// in the PKI directory (--pki or KUVERT_PKI), NAME being the command's
/// party (--as, or the name in --key), else --coordinator-party, else the
/// only party certificate there. A bearer token in the environment
/// variable KUVERT_COORDINATOR_TOKEN is sent as well.
#[derive(Args, Debug, Clone)]
pub struct CoordArgs {
    /// The coordinator's base URL, https:// (the one `kuvert demo` or
    /// `kuvert coordinator` prints).
    #[arg(
        long,
        env = "KUVERT_COORDINATOR",
        default_value = "https://127.0.0.1:8080"
    )]
    pub coordinator: String,
    /// The CA certificate (PEM) that signed the coordinator's TLS
    /// certificate (default: ca.crt of the PKI directory).
    #[arg(long, env = "KUVERT_COORDINATOR_CA")]
    pub coordinator_ca: Option<PathBuf>,
    /// A client certificate (PEM) to present to the coordinator, instead
    /// of the party's from the PKI directory; with --coordinator-key.
    #[arg(long, env = "KUVERT_COORDINATOR_CERT")]
    pub coordinator_cert: Option<PathBuf>,
    /// The key of --coordinator-cert (PEM).
    #[arg(long, env = "KUVERT_COORDINATOR_KEY")]
    pub coordinator_key: Option<PathBuf>,
    /// The party whose certificate in the PKI directory is presented to
    /// the coordinator, for commands that name no party (submit, status,
    /// describe).
    #[arg(long, env = "KUVERT_COORDINATOR_PARTY")]
    pub coordinator_party: Option<String>,
    /// The PKI directory with the parties' certificates, when the caller
    /// knows it (`kuvert demo`); not a flag: the commands' --pki and
    /// KUVERT_PKI give it otherwise.
    #[arg(skip)]
    pub pki: Option<PathBuf>,
}

impl CoordArgs {
    /// The coordinator at `url`, with the default credentials.
    pub fn url(url: &str) -> CoordArgs {
        CoordArgs {
            coordinator: url.to_string(),
            coordinator_ca: None,
            coordinator_cert: None,
            coordinator_key: None,
            coordinator_party: None,
            pki: None,
        }
    }
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
    /// The recipient's key file (from `kuvert keygen`): its post-quantum
    /// X-Wing part opens the sealed result shares.
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

/// A small blocking HTTPS client for the coordinator's JSON API.
pub struct Coordinator {
    base: String,
    agent: ureq::Agent,
    /// Who we are there, for messages ("party fk's client certificate").
    who: String,
    /// The CA the coordinator's certificate must chain to, for messages.
    ca: PathBuf,
    token: Option<String>,
}

/// An error answer from the coordinator, with its status and what to do.
fn api_error(c: &Coordinator, path: &str, e: ureq::Error) -> anyhow::Error {
    let base = &c.base;
    match e {
        ureq::Error::Status(code, resp) => {
            let body = resp.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or(body);
            match code {
                401 => anyhow!(
                    "the coordinator at {base} answered 401 (not authenticated) to {path}; this \
                     client sent {}: {msg}\n\
                     Present this party's client certificate (the PKI directory --pki or \
                     KUVERT_PKI with party-NAME.crt and .key, and --as NAME, --key, or \
                     --coordinator-party NAME; or --coordinator-cert and --coordinator-key), or a \
                     token from the coordinator's operator in KUVERT_COORDINATOR_TOKEN",
                    c.who
                ),
                403 => anyhow!(
                    "the coordinator answered 403 (forbidden) to {path} for {}: {msg}",
                    c.who
                ),
                _ => anyhow!("the coordinator answered {code} to {path}: {msg}"),
            }
        }
        ureq::Error::Transport(t) => anyhow!(
            "cannot reach the coordinator at {base}: {t}. Is it running, and did the CA in {} \
             sign its certificate? (set --coordinator or KUVERT_COORDINATOR, and \
             --coordinator-ca or KUVERT_COORDINATOR_CA)",
            c.ca.display()
        ),
    }
}

/// The party certificates `party-NAME.crt` in a PKI directory.
fn party_certs(pki: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(pki)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_prefix("party-")
                .and_then(|r| r.strip_suffix(".crt"))
                .map(str::to_string)
        })
        .filter(|n| pki.join(format!("party-{n}.key")).exists())
        .collect();
    out.sort();
    out
}

impl Coordinator {
    /// The coordinator of `args`, with the default credentials.
    pub fn new(args: &CoordArgs) -> anyhow::Result<Coordinator> {
        Coordinator::connect(args, None, None)
    }

    /// The coordinator of `args` over HTTPS, as `party` (the command's
    /// --as or --key party) with the PKI directory `pki` (the command's
    /// --pki; else KUVERT_PKI). See [`CoordArgs`] for the order.
    pub fn connect(
        args: &CoordArgs,
        pki: Option<&Path>,
        party: Option<&str>,
    ) -> anyhow::Result<Coordinator> {
        let url = args.coordinator.trim().trim_end_matches('/');
        if let Some(rest) = url.strip_prefix("http://") {
            bail!(
                "{url}: the coordinator speaks only HTTPS; use https://{rest} \
                 (--coordinator or KUVERT_COORDINATOR)"
            );
        }
        if !url.starts_with("https://") {
            bail!(
                "{url:?} is not a coordinator URL: give https://HOST:PORT (--coordinator or \
                 KUVERT_COORDINATOR)"
            );
        }
        let env_pki = std::env::var_os("KUVERT_PKI")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let pki = pki
            .map(Path::to_path_buf)
            .or_else(|| args.pki.clone())
            .or(env_pki);
        let ca = match (&args.coordinator_ca, &pki) {
            (Some(ca), _) => ca.clone(),
            (None, Some(p)) if p.join("ca.crt").exists() => p.join("ca.crt"),
            _ => bail!(
                "which CA signed the coordinator's certificate? Give --coordinator-ca FILE (or \
                 KUVERT_COORDINATOR_CA), or the PKI directory whose ca.crt it is (--pki or \
                 KUVERT_PKI); the coordinator's operator has the file"
            ),
        };
        let roots = kuvert_net::pki::load_roots(&ca)
            .with_context(|| format!("the coordinator's CA {}", ca.display()))?;
        let identity = match (&args.coordinator_cert, &args.coordinator_key) {
            (Some(cert), Some(key)) => Some((
                format!("the client certificate {}", cert.display()),
                kuvert_net::pki::Identity::load(cert, key)
                    .context("--coordinator-cert/--coordinator-key")?,
            )),
            (Some(_), None) | (None, Some(_)) => bail!(
                "give --coordinator-cert and --coordinator-key together (the client certificate \
                 and its key)"
            ),
            (None, None) => {
                let explicit = args.coordinator_party.as_deref();
                let name = party.or(explicit).map(str::to_string).or_else(|| {
                    let only = pki.as_deref().map(party_certs).unwrap_or_default();
                    (only.len() == 1).then(|| only[0].clone())
                });
                match (name, &pki) {
                    (Some(n), Some(dir)) if dir.join(format!("party-{n}.crt")).exists() => Some((
                        format!("party {n}'s client certificate"),
                        kuvert_net::pki::Identity::load_party(dir, &n)
                            .with_context(|| format!("party {n}'s TLS identity"))?,
                    )),
                    (Some(n), _) if explicit == Some(n.as_str()) => bail!(
                        "no client certificate for party {n:?}: expected party-{n}.crt and .key \
                         in the PKI directory (--pki or KUVERT_PKI)"
                    ),
                    _ => None,
                }
            }
        };
        let token = std::env::var("KUVERT_COORDINATOR_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let builder = rustls::ClientConfig::builder_with_provider(kuvert_net::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| anyhow!("TLS: {e}"))?
            .with_root_certificates(roots);
        let (who, config) = match identity {
            Some((who, id)) => (
                who,
                builder
                    .with_client_auth_cert(id.certs.clone(), id.clone_key())
                    .map_err(|e| anyhow!("the client certificate and key do not match: {e}"))?,
            ),
            None if token.is_some() => ("the token in KUVERT_COORDINATOR_TOKEN".into(), {
                builder.with_no_client_auth()
            }),
            None => ("no credentials".into(), builder.with_no_client_auth()),
        };
        let who = match (&token, who.as_str()) {
            (Some(_), w) if !w.starts_with("the token") => {
                format!("{w} (and the token in KUVERT_COORDINATOR_TOKEN)")
            }
            _ => who,
        };
        Ok(Coordinator {
            base: url.to_string(),
            agent: ureq::AgentBuilder::new()
                .tls_config(std::sync::Arc::new(config))
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .build(),
            who,
            ca,
            token,
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let r = self.agent.request(method, &self.url(path));
        match &self.token {
            Some(t) => r.set("authorization", &format!("Bearer {t}")),
            None => r,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        self.request("GET", path)
            .call()
            .map_err(|e| api_error(self, path, e))?
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
            .request("POST", path)
            .set("content-type", content_type)
            .send_string(body)
            .map_err(|e| api_error(self, path, e))?
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

/// A node client for `key`'s party towards the nodes that `spec` (already
/// checked against its id) names: each node is pinned to the key
/// fingerprint in the approved `[[nodes]]`. Addresses come from the spec's
/// `endpoint`s, else from the coordinator; either way a node answering with
/// another key is refused before anything is sent.
fn node_client(
    coord: &Coordinator,
    tls: &PartyTlsArgs,
    key: &PartyKey,
    id: &AnalysisId,
    spec: &AnalysisSpec,
) -> anyhow::Result<(Nodes, String)> {
    let name = tls.party.clone().unwrap_or_else(|| key.name().to_string());
    let pins: [String; 3] = spec
        .nodes
        .iter()
        .map(|n| n.fingerprint.trim().to_string())
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| anyhow!("analysis {id} does not name three nodes"))?;
    let addrs = match spec_endpoints(spec)? {
        Some(a) => a,
        None => coord.nodes()?,
    };
    let mut nodes = pinned_nodes(
        &tls.pki,
        &name,
        addrs,
        pins,
        &format!("the approved analysis {id}"),
    )?;
    nodes.timeout = Duration::from_secs(120);
    Ok((nodes, name))
}

/// A client to three nodes pinned to `pins`, as party `name` (its TLS
/// identity from `pki`), with an error that says how to get one.
pub fn pinned_nodes(
    pki: &Path,
    name: &str,
    addrs: [SocketAddr; 3],
    pins: [String; 3],
    what: &str,
) -> anyhow::Result<Nodes> {
    Nodes::pinned(pki, name, addrs, pins, what).with_context(|| {
        format!(
            "no TLS identity for party {name:?} in {} (expected party-{name}.crt and .key; \
             `kuvert pki request --party {name}` and your CA's `kuvert pki sign` make them)",
            pki.display()
        )
    })
}

/// The nodes' client addresses from the spec's `endpoint`s, if all three
/// are given.
fn spec_endpoints(spec: &AnalysisSpec) -> anyhow::Result<Option<[SocketAddr; 3]>> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for (j, n) in spec.nodes.iter().enumerate() {
        let Some(e) = &n.endpoint else {
            return Ok(None);
        };
        let a = e
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve node {j}'s endpoint {e:?} from the spec"))?
            .next()
            .ok_or_else(|| anyhow!("node {j}'s endpoint {e:?} resolves to nothing"))?;
        out.push(a);
    }
    Ok(out.try_into().ok())
}

/// `kuvert analysis submit SPEC`
pub fn submit(spec: &Path, coord: &CoordArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))?;
    let c = Coordinator::new(coord)?;
    let id = c.submit(&text, &spec.display().to_string())?;
    println!("{id}");
    eprintln!(
        "submitted to {}. Each contributor now reads the spec and approves it:\n  kuvert analysis approve {id} --key CONTRIBUTOR.key",
        c.base()
    );
    Ok(ExitCode::SUCCESS)
}

/// `kuvert analysis approve ID --key KEY [--spec FILE [--yes]]` against
/// the coordinator: fetch the spec and check its hash is ID (and, with
/// `local_spec`, that the file's is too), show the approval summary (of the
/// file when given), ask (see [`crate::gov::ask_approval`]; `yes` only with
/// `local_spec`), and only then sign and post. Refused: exit 2 for bad
/// input (`--yes` without a spec file, a file of another id, a key that is
/// no contributor's), exit 1 when the answer is not yes; nothing signed or
/// sent either way.
pub fn approve_online(
    id: &str,
    key: &Path,
    local_spec: Option<&Path>,
    yes: bool,
    federation: Option<&Path>,
    out: Option<&Path>,
    coord: &CoordArgs,
) -> anyhow::Result<ExitCode> {
    let refuse = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        Ok(ExitCode::from(2))
    };
    if yes && local_spec.is_none() {
        return refuse(&format!(
            "--yes is accepted only together with --spec FILE, the spec you read (its hash must \
             be the id): {}; nothing was signed or sent",
            crate::gov::USE_YES_WITH_SPEC
        ));
    }
    let parsed = match parse_id(id) {
        Ok(parsed) => parsed,
        Err(e) => return refuse(&e),
    };
    let local = match local_spec {
        Some(p) => match crate::gov::local_spec(p, &parsed) {
            Ok(s) => Some(s),
            Err(e) => return refuse(&format!("{e}; nothing was signed or sent")),
        },
        None => None,
    };
    let (id, c, fetched, k) = checked_spec_and_key(id, key, coord, None)?;
    // Both hash to `id`: the file is the coordinator's spec.
    let spec = local.unwrap_or(fetched);
    let who = match crate::gov::contributor_for(&spec, &k) {
        Ok(who) => who,
        Err(e) => return refuse(&format!("refusing to approve: {e}")),
    };
    if let Some(refused) = crate::gov::ask_approval(&spec, &who, yes, federation) {
        return Ok(refused);
    }
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

/// The analysis id, the coordinator (reached as the key's party, or
/// `tls`'s), the spec fetched from it (its hash checked against the id) and
/// the party's key.
fn checked_spec_and_key(
    id: &str,
    key: &Path,
    coord: &CoordArgs,
    tls: Option<&PartyTlsArgs>,
) -> anyhow::Result<(AnalysisId, Coordinator, AnalysisSpec, PartyKey)> {
    let id = parse_id(id)?;
    let k = PartyKey::load(key)?;
    let party = tls
        .and_then(|t| t.party.clone())
        .unwrap_or_else(|| k.name().to_string());
    let c = Coordinator::connect(coord, tls.map(|t| t.pki.as_path()), Some(&party))?;
    let (_, spec) = c.spec(&id)?;
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
    let (id, c, spec, k) = checked_spec_and_key(id, key, coord, Some(tls))?;
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
    let (nodes, _) = node_client(&c, tls, &k, &id, &spec)?;
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
            "registered" | "running" => return Ok(()),
            "failed" => bail!(
                "analysis {id} has failed at the coordinator ({}); nothing was sent. A failed \
                 analysis (for example refused for its privacy budget) takes no uploads; see \
                 `kuvert status {id}`",
                s(&v, "detail")
            ),
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
    let (id, c, spec, k) = checked_spec_and_key(id, key, coord, Some(tls))?;
    let mine = k.kem_public()?;
    let me = spec
        .recipients
        .iter()
        .find(|r| kuvert_gov::KemPublicKey::parse(&r.kem_public_key).as_ref() == Some(&mine))
        .ok_or_else(|| {
            anyhow!(
                "the key {} is not a recipient's key in analysis {id}; only the named recipients \
                 can open its results",
                key.display()
            )
        })?;
    let (nodes, _) = node_client(&c, tls, &k, &id, &spec)?;
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
    let c = Coordinator::connect(coord, pki, None)?;
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
        // When the node deletes what it holds (fixed at registration,
        // the result deadline once the job ended); older nodes send none.
        let by = st
            .get("delete_by")
            .and_then(|x| x.as_str())
            .map(|t| {
                if line == "expired" {
                    format!("; deleted (due {t})")
                } else {
                    format!("; deletes by {t}")
                }
            })
            .unwrap_or_default();
        o += &format!("  node {idx}    {line}{by}\n");
    }
    let mut receipts: Vec<kuvert_gov::DeletionReceipt> = v
        .get("receipts")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    // Receipts the nodes reported for analyses that did not end as done
    // (deleted at the deletion time without a run) are in their status.
    for n in v
        .get("nodes")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let r = n
            .get("state")
            .and_then(|st| st.get("receipt"))
            .cloned()
            .and_then(|r| serde_json::from_value::<kuvert_gov::DeletionReceipt>(r).ok());
        if let Some(r) = r {
            if !receipts
                .iter()
                .any(|x| x.node == r.node && x.signature == r.signature)
            {
                receipts.push(r);
            }
        }
    }
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
    let c = Coordinator::new(coord)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_each_nodes_deletion_time() {
        let t = "2027-01-02T03:04:05Z";
        let v = serde_json::json!({
            "id": "ab", "name": "n", "state": "registered", "detail": "",
            "approvals": [],
            "nodes": [
                {"index": 0, "state": {"node": 0, "analysis": "ab", "state": {"state": "ready"}, "delete_by": t}},
                {"index": 1, "state": {"node": 1, "analysis": "ab", "state": {"state": "expired"}, "delete_by": t}},
                {"index": 2, "state": {"node": 2, "analysis": "ab", "state": {"state": "ready"}}},
            ],
            "receipts": [],
        });
        let o = status_text(&v, None);
        assert!(
            o.contains(&format!("node 0    ready; deletes by {t}\n")),
            "{o}"
        );
        assert!(
            o.contains(&format!("node 1    expired; deleted (due {t})\n")),
            "{o}"
        );
        assert!(o.contains("node 2    ready\n"), "{o}");
        assert!(o.contains("none yet"), "{o}");
    }
}
