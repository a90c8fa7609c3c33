//! The analysis spec: what the parties agree, field by field, and its
//! identity (the SHA-256 of its canonical form).
//!
//! ```toml
//! name = "overlapping-benefits"
//! purpose = "..."
//! contact = "..."
//! protocol = "rss3-semi-honest"
//! [legal_basis]
//! reference = "OSL 10 kap. 27 §"
//! text = "..."
//! [[contributors]]
//! id = "fk"
//! organisation = "Försäkringskassan"
//! controller = "Försäkringskassan"
//! public_key = "<Ed25519, hex or base64, from `kuvert keygen`>"
//! tables = [{ name = "fk", schema = "pnr:idnr,fran:date,till:date,belopp:int" }]
//! [[recipients]]
//! id = "kontroll"
//! organisation = "..."
//! kem_public_key = "<X-Wing public key, base64, from `kuvert keygen`>"
//! outputs = [{ name = "ids", sql = "SELECT ...", description = "..." }]
//! [retention]
//! delete_shares_at_job_end = true
//! result_deadline = 30            # days, or "2027-06-30T00:00:00Z"
//! ```
//!
//! See `docs/governance.md` for every field and the canonical form.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::GovError;
use crate::{canonical, hex};

/// Replicated secret sharing over three nodes, honest majority,
/// semi-honest (passive) corruption.
pub const PROTOCOL_RSS3_SEMI_HONEST: &str = "rss3-semi-honest";

/// The same sharing, secure with abort against one node that deviates
/// from the protocol (kuvert-mpc's malicious mode): every AND gate proven,
/// every product and shuffle pass MAC-checked, every open verified, DP
/// noise drawn by pairs of nodes, and every check passed before a node
/// keeps a result share.
pub const PROTOCOL_RSS3_MALICIOUS: &str = "rss3-malicious";

/// Every protocol a spec may name.
pub const PROTOCOLS: [&str; 2] = [PROTOCOL_RSS3_SEMI_HONEST, PROTOCOL_RSS3_MALICIOUS];

/// Tag of the canonical document (part of what is hashed).
pub const CANONICAL_FORMAT: &str = "kuvert-analysis-v2";

/// A key written as `placeholder:<label>` stands for a key that is not
/// known yet (templates). It is accepted only with
/// [`Validation::AllowPlaceholders`], and nothing signed by or sealed to a
/// placeholder can exist.
pub const PLACEHOLDER_PREFIX: &str = "placeholder:";

/// An analysis as the parties agree it. Every field is part of the id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Kuvert analysis spec")]
pub struct AnalysisSpec {
    /// A short name, e.g. `overlapping-benefits` (not unique: the id is).
    pub name: String,
    /// Why the analysis is done, in words a legal officer can put in a DPIA.
    pub purpose: String,
    /// The legal basis for the processing.
    pub legal_basis: LegalBasis,
    /// Who puts data in: each contributor, its tables and its approval key.
    pub contributors: Vec<Contributor>,
    /// Who may read which output.
    pub recipients: Vec<Recipient>,
    /// The MPC protocol: `rss3-semi-honest` (secure against a node that
    /// follows the protocol and looks) or `rss3-malicious` (also against
    /// one node that deviates: security with abort; costs more, see
    /// docs/protocols.md).
    pub protocol: String,
    /// Named leakage beyond outputs and input sizes that the parties accept
    /// (empty by default: nothing but the outputs and the input sizes).
    #[serde(default)]
    pub leakage_opt_ins: Vec<LeakageOptIn>,
    /// When shares are deleted and how long a result may be fetched.
    pub retention: Retention,
    /// Who to contact about this analysis (a function's address, not a person's data).
    pub contact: String,
    /// Differential privacy per output (optional).
    #[serde(default)]
    pub dp: Vec<DpOutput>,
    /// The three compute nodes that may compute this analysis, in node
    /// order, each pinned by its TLS key's fingerprint. A contributor's
    /// approval therefore binds *who computes*: nodes refuse to register an
    /// analysis whose `[[nodes]]` are not their federation's, and clients
    /// send shares only to a node presenting the pinned key.
    #[serde(default)]
    pub nodes: Vec<SpecNode>,
}

/// One compute node of an analysis (`[[nodes]]`, three of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecNode {
    /// The organisation that runs the node (as in the federation file).
    pub operator: String,
    /// Lowercase hex SHA-256 of the node certificate's
    /// SubjectPublicKeyInfo (DER): `kuvert pki fingerprint node-I.crt`, or
    /// `kuvert federation show`. `placeholder:<label>` in templates.
    pub fingerprint: String,
    /// The node's client API address (`host:port`), where contributors
    /// and recipients connect. Optional: without it clients take the
    /// address from the coordinator, and the pinned key still decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// True for a node key fingerprint: 64 lowercase hex digits.
pub fn is_fingerprint(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The legal basis: a reference to the provision and its text or summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalBasis {
    /// E.g. `OSL 10 kap. 27 §` or `SFB 110 kap. 31 §`.
    pub reference: String,
    /// What the provision allows, in words.
    pub text: String,
}

/// A party that puts tables into the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contributor {
    /// A short id used in approvals (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// The organisation that sends the data.
    pub organisation: String,
    /// The controller (personuppgiftsansvarig) of that data.
    pub controller: String,
    /// Ed25519 public key that signs this contributor's approval (hex or
    /// base64 of 32 bytes; `placeholder:<label>` in templates).
    pub public_key: String,
    /// The tables it contributes.
    pub tables: Vec<Table>,
}

/// One input table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The name the SQL uses (unique in the analysis).
    pub name: String,
    /// Compact schema `name:type,...` with types int, date, bool, idnr, text.
    pub schema: String,
    /// The contributor's dataset whose privacy budget this table draws on
    /// (letters, digits, `-`, `_`, `.`). Absent: the contributor's
    /// [`DEFAULT_DATASET`]. A node charges every differentially private
    /// output to the account (contributor's public key, dataset) of every
    /// table it reads, and only up to the limit the contributor signed for
    /// that account (`kuvert budget set`): a renamed table or organisation
    /// draws on the same account, and a dataset the contributor never
    /// gave a limit is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
}

/// The dataset a table without `dataset = ...` draws on.
pub const DEFAULT_DATASET: &str = "default";

impl Table {
    /// The dataset whose budget this table draws on.
    pub fn dataset_id(&self) -> &str {
        self.dataset
            .as_deref()
            .map(str::trim)
            .unwrap_or(DEFAULT_DATASET)
    }
}

/// A party that receives outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// A short id (may equal a contributor's id when the same party both
    /// contributes and receives).
    pub id: String,
    /// The organisation or function that receives.
    pub organisation: String,
    /// The post-quantum hybrid key the results are sealed to: an X-Wing
    /// public key (ML-KEM-768 + X25519, 1216 bytes) in base64, the `kem`
    /// field of the recipient's `.pub` file from `kuvert keygen`;
    /// `placeholder:<label>` in templates.
    pub kem_public_key: String,
    /// The outputs this recipient may read.
    pub outputs: Vec<Output>,
}

/// One output: a query and what it tells its reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The output's name. The same name under two recipients is the same
    /// output (its SQL must be identical).
    pub name: String,
    /// The query, in Kuvert's SQL dialect.
    pub sql: String,
    /// What the result tells its reader, in plain words (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A named leakage the parties accept, and who learns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakageOptIn {
    /// The operator's leakage name, e.g. `join-equality-pattern`.
    pub name: String,
    /// Who learns it: `nodes`, or contributor/recipient ids.
    pub learned_by: Vec<String>,
    /// What exactly is revealed, in plain words.
    pub statement: String,
}

/// Retention and deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Nodes delete input shares, intermediate state and session keys when
    /// the job ends (otherwise at the result deadline).
    pub delete_shares_at_job_end: bool,
    /// Until when sealed results may be fetched: a number of days after the
    /// job ends, or an RFC 3339 time (a string or a TOML date-time).
    pub result_deadline: Deadline,
}

/// A number of days after the job, or a fixed time.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Deadline {
    /// Days after the job ends (1 to 3650).
    Days(u32),
    /// An RFC 3339 time, e.g. `2027-06-30T00:00:00Z`.
    At(String),
}

/// Accepts an integer (days), a string, or a TOML date-time literal
/// (`result_deadline = 2027-06-30T00:00:00Z`, kept as its RFC 3339 text).
impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Deadline, D::Error> {
        struct V;
        const HINT: &str =
            "a number of days (e.g. 30) or an RFC 3339 time (e.g. \"2027-06-30T00:00:00Z\")";
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Deadline;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(HINT)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Deadline, E> {
                u32::try_from(v)
                    .map(Deadline::Days)
                    .map_err(|_| E::custom(format!("{v} days is too many; give 1 to 3650")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Deadline, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("{v} days: give 1 to 3650")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Deadline, E> {
                Ok(Deadline::At(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Deadline, A::Error> {
                // The toml crate hands a date-time literal over as a
                // one-entry map holding its text.
                let Some((_, text)) = m.next_entry::<String, String>()? else {
                    return Err(serde::de::Error::custom(HINT));
                };
                Ok(Deadline::At(text))
            }
        }
        d.deserialize_any(V)
    }
}

/// Differential privacy of one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpOutput {
    /// The output's name (as under `recipients.outputs`).
    pub output: String,
    /// Privacy loss ε of this output's release (> 0).
    pub epsilon: f64,
    /// δ of this output's release (0 for pure ε-DP; below 1).
    #[serde(default)]
    pub delta: f64,
}

/// How strict [`AnalysisSpec::validate`] is about keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Every key must be a real key (what nodes and approvals require).
    Strict,
    /// Keys may be `placeholder:<label>` (templates being filled in).
    AllowPlaceholders,
}

/// The identity of an analysis: SHA-256 of its canonical form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnalysisId(pub [u8; 32]);

impl AnalysisId {
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl fmt::Display for AnalysisId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for AnalysisId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnalysisId({})", self.to_hex())
    }
}

impl FromStr for AnalysisId {
    type Err = GovError;
    fn from_str(s: &str) -> Result<AnalysisId, GovError> {
        hex::decode_array::<32>(s.trim())
            .map(AnalysisId)
            .ok_or_else(|| GovError::Invalid {
                at: String::new(),
                field: "analysis id".into(),
                message: format!(
                    "{s:?} is not an analysis id (64 hex digits, as printed by `kuvert analysis id`)"
                ),
            })
    }
}

impl Serialize for AnalysisId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for AnalysisId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AnalysisId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Decode a 32-byte key written as hex (64 digits) or base64 (standard or
/// URL-safe, padded or not).
pub fn decode_key32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if let Some(k) = hex::decode_array::<32>(s) {
        return Some(k);
    }
    decode_base64_any(s).and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
}

/// Bytes from base64 in any of the usual spellings (standard or URL-safe,
/// padded or not), as keys are pasted into specs and `.pub` files.
pub fn decode_base64_any(s: &str) -> Option<Vec<u8>> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines.iter().find_map(|e| e.decode(s.trim()).ok())
}

/// The Ed25519 key the spec names, if it is a valid (non-weak) point.
pub fn parse_ed25519(s: &str) -> Option<ed25519_dalek::VerifyingKey> {
    let bytes = decode_key32(s)?;
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()?;
    (!vk.is_weak()).then_some(vk)
}

/// The X25519 key the spec names, if it is not all zero.
pub fn parse_x25519(s: &str) -> Option<x25519_dalek::PublicKey> {
    let bytes = decode_key32(s)?;
    (bytes != [0u8; 32]).then(|| x25519_dalek::PublicKey::from(bytes))
}

fn is_placeholder(s: &str) -> bool {
    s.trim().starts_with(PLACEHOLDER_PREFIX)
}

/// One semantic problem before it is located in the source.
struct Problem {
    field: String,
    message: String,
    /// The offending text, to find its line in the source.
    needle: Option<String>,
    /// Which occurrence of the needle (0 = first).
    nth: usize,
}

impl AnalysisSpec {
    /// True when the nodes must run this analysis secure against one
    /// deviating node ([`PROTOCOL_RSS3_MALICIOUS`]).
    pub fn malicious(&self) -> bool {
        self.protocol == PROTOCOL_RSS3_MALICIOUS
    }

    /// Parse a spec from TOML text and validate it. `origin` names the
    /// source in errors (a file name).
    pub fn parse(src: &str, origin: &str, mode: Validation) -> Result<AnalysisSpec, GovError> {
        let spec: AnalysisSpec = toml::from_str(src).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(src, s.start)).unwrap_or((1, 1));
            GovError::Syntax {
                origin: origin.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        if let Err(p) = spec.check(mode) {
            let at = span_of(src, &p.field)
                .map(|at| line_col(src, at))
                .or_else(|| p.needle.as_deref().and_then(|n| locate(src, n, p.nth)))
                .map(|(l, c)| format!("{origin}:{l}:{c}: "))
                .unwrap_or_else(|| format!("{origin}: "));
            return Err(GovError::Invalid {
                at,
                field: p.field,
                message: p.message,
            });
        }
        Ok(spec)
    }

    /// Read and validate a spec file.
    pub fn load(path: &Path, mode: Validation) -> Result<AnalysisSpec, GovError> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| GovError::io(path, "; give the analysis spec's TOML file", e))?;
        AnalysisSpec::parse(&src, &path.display().to_string(), mode)
    }

    /// Check the spec's consistency (see `docs/governance.md`, "Validation").
    pub fn validate(&self, mode: Validation) -> Result<(), GovError> {
        self.check(mode).map_err(|p| GovError::Invalid {
            at: String::new(),
            field: p.field,
            message: p.message,
        })
    }

    fn check(&self, mode: Validation) -> Result<(), Problem> {
        let fail = |field: String, message: String, needle: Option<&str>, nth: usize| {
            Err(Problem {
                field,
                message,
                needle: needle.map(str::to_string),
                nth,
            })
        };
        for (field, v) in [
            ("name", &self.name),
            ("purpose", &self.purpose),
            ("legal_basis.reference", &self.legal_basis.reference),
            ("legal_basis.text", &self.legal_basis.text),
            ("contact", &self.contact),
        ] {
            if v.trim().is_empty() {
                return fail(
                    field.into(),
                    "is empty; say it in words (it goes into the approval and the DPIA text)"
                        .into(),
                    None,
                    0,
                );
            }
        }
        if !PROTOCOLS.contains(&self.protocol.as_str()) {
            return fail(
                "protocol".into(),
                format!(
                    "unknown protocol {:?}; choose {PROTOCOL_RSS3_SEMI_HONEST:?} or \
                     {PROTOCOL_RSS3_MALICIOUS:?} (secure against one node that deviates)",
                    self.protocol
                ),
                Some(&self.protocol),
                0,
            );
        }
        if self.nodes.len() != 3 {
            return fail(
                "nodes".into(),
                format!(
                    "names {} compute nodes; an analysis names exactly three [[nodes]], each with \
                     its operator and key fingerprint (`kuvert federation nodes FEDERATION` prints them)",
                    self.nodes.len()
                ),
                None,
                0,
            );
        }
        let mut prints = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let f = format!("nodes[{i}]");
            if n.operator.trim().is_empty() {
                return fail(
                    format!("{f}.operator"),
                    "is empty; name the organisation that runs this node".into(),
                    None,
                    0,
                );
            }
            let fp = n.fingerprint.trim();
            let placeholder_ok = mode == Validation::AllowPlaceholders && is_placeholder(fp);
            if !placeholder_ok && !is_fingerprint(fp) {
                return fail(
                    format!("{f}.fingerprint"),
                    format!(
                        "{fp:?} is not a node key fingerprint (64 lowercase hex digits: the SHA-256 \
                         of the node certificate's public key, `kuvert pki fingerprint node-{i}.crt`)"
                    ),
                    Some(fp),
                    0,
                );
            }
            if !prints.insert(fp) {
                return fail(
                    format!("{f}.fingerprint"),
                    "is listed twice; the three nodes must have three different keys".into(),
                    Some(fp),
                    1,
                );
            }
            if let Some(e) = &n.endpoint {
                let t = e.trim();
                if t.is_empty() || t.contains(char::is_whitespace) || !t.contains(':') {
                    return fail(
                        format!("{f}.endpoint"),
                        format!("{e:?} is not host:port"),
                        Some(e),
                        0,
                    );
                }
            }
        }
        if self.contributors.is_empty() {
            return fail(
                "contributors".into(),
                "no contributors; add at least one [[contributors]] with its tables".into(),
                None,
                0,
            );
        }
        if self.recipients.is_empty() {
            return fail(
                "recipients".into(),
                "no recipients; add at least one [[recipients]] with its outputs".into(),
                None,
                0,
            );
        }

        let mut contributor_ids = BTreeSet::new();
        let mut table_names: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, c) in self.contributors.iter().enumerate() {
            let f = format!("contributors[{i}]");
            if let Err(m) = check_id(&c.id) {
                return fail(format!("{f}.id"), m, Some(&c.id), 0);
            }
            if !contributor_ids.insert(c.id.as_str()) {
                return fail(
                    format!("{f}.id"),
                    format!(
                        "contributor id {:?} is used twice; give each contributor its own id",
                        c.id
                    ),
                    Some(&c.id),
                    1,
                );
            }
            for (field, v) in [
                ("organisation", &c.organisation),
                ("controller", &c.controller),
            ] {
                if v.trim().is_empty() {
                    return fail(
                        format!("{f}.{field}"),
                        format!("is empty; name the {field} of contributor {:?}", c.id),
                        None,
                        0,
                    );
                }
            }
            if let Err(m) = check_key(&c.public_key, KeyKind::Ed25519, mode) {
                return fail(format!("{f}.public_key"), m, Some(&c.public_key), 0);
            }
            if c.tables.is_empty() {
                return fail(
                    format!("{f}.tables"),
                    format!(
                        "contributor {:?} contributes no table; list its tables",
                        c.id
                    ),
                    None,
                    0,
                );
            }
            for (j, t) in c.tables.iter().enumerate() {
                let tf = format!("{f}.tables[{j}]");
                if let Err(m) = check_sql_name(&t.name) {
                    return fail(format!("{tf}.name"), m, Some(&t.name), 0);
                }
                let seen = table_names.entry(t.name.as_str()).or_insert(0);
                *seen += 1;
                if *seen > 1 {
                    return fail(
                        format!("{tf}.name"),
                        format!(
                            "table name {:?} is used twice; every table of an analysis needs its own name",
                            t.name
                        ),
                        Some(&t.name),
                        *seen - 1,
                    );
                }
                if let Some(d) = &t.dataset {
                    if let Err(m) = check_id(d.trim()) {
                        return fail(
                            format!("{tf}.dataset"),
                            format!("dataset of table {:?}: {m}", t.name),
                            Some(d),
                            0,
                        );
                    }
                }
                if let Err(e) = kuvert_data::Schema::parse_compact(t.schema.trim()) {
                    return fail(
                        format!("{tf}.schema"),
                        format!("table {:?}: {e}", t.name),
                        Some(&t.schema),
                        0,
                    );
                }
            }
        }

        let mut recipient_ids = BTreeSet::new();
        let mut outputs: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, r) in self.recipients.iter().enumerate() {
            let f = format!("recipients[{i}]");
            if let Err(m) = check_id(&r.id) {
                return fail(format!("{f}.id"), m, Some(&r.id), 0);
            }
            if !recipient_ids.insert(r.id.as_str()) {
                return fail(
                    format!("{f}.id"),
                    format!(
                        "recipient id {:?} is used twice; list all of a recipient's outputs under one [[recipients]]",
                        r.id
                    ),
                    Some(&r.id),
                    1,
                );
            }
            if r.organisation.trim().is_empty() {
                return fail(
                    format!("{f}.organisation"),
                    format!("is empty; name the organisation of recipient {:?}", r.id),
                    None,
                    0,
                );
            }
            if let Err(m) = check_key(&r.kem_public_key, KeyKind::Kem, mode) {
                return fail(format!("{f}.kem_public_key"), m, Some(&r.kem_public_key), 0);
            }
            if r.outputs.is_empty() {
                return fail(
                    format!("{f}.outputs"),
                    format!("recipient {:?} receives no output; list its outputs", r.id),
                    None,
                    0,
                );
            }
            let mut own = BTreeSet::new();
            for (j, o) in r.outputs.iter().enumerate() {
                let of = format!("{f}.outputs[{j}]");
                if let Err(m) = check_sql_name(&o.name) {
                    return fail(format!("{of}.name"), m, Some(&o.name), 0);
                }
                if !own.insert(o.name.as_str()) {
                    return fail(
                        format!("{of}.name"),
                        format!("recipient {:?} lists output {:?} twice", r.id, o.name),
                        Some(&o.name),
                        1,
                    );
                }
                if o.sql.trim().is_empty() {
                    return fail(
                        format!("{of}.sql"),
                        format!("output {:?} has empty SQL; give the query", o.name),
                        Some(&o.name),
                        0,
                    );
                }
                match outputs.get(o.name.as_str()) {
                    Some(other) if other.trim() != o.sql.trim() => {
                        return fail(
                            format!("{of}.sql"),
                            format!(
                                "output {:?} is given to several recipients with different SQL; \
                                 one name is one output: rename one of them or make the SQL identical",
                                o.name
                            ),
                            Some(o.sql.trim()),
                            0,
                        );
                    }
                    _ => {
                        outputs.insert(o.name.as_str(), o.sql.as_str());
                    }
                }
            }
        }

        for (i, l) in self.leakage_opt_ins.iter().enumerate() {
            let f = format!("leakage_opt_ins[{i}]");
            if l.name.trim().is_empty() || l.statement.trim().is_empty() {
                return fail(
                    f,
                    "a leakage opt-in needs a name and a statement of what it reveals".into(),
                    None,
                    0,
                );
            }
            if l.learned_by.is_empty() {
                return fail(
                    format!("{f}.learned_by"),
                    "say who learns it: \"nodes\" or contributor/recipient ids".into(),
                    Some(&l.name),
                    0,
                );
            }
            for who in &l.learned_by {
                if who != "nodes"
                    && !contributor_ids.contains(who.as_str())
                    && !recipient_ids.contains(who.as_str())
                {
                    return fail(
                        format!("{f}.learned_by"),
                        format!(
                            "{who:?} is neither \"nodes\" nor a contributor or recipient id of this spec"
                        ),
                        Some(who),
                        0,
                    );
                }
            }
        }

        match &self.retention.result_deadline {
            Deadline::Days(d) if *d == 0 || *d > 3650 => {
                return fail(
                    "retention.result_deadline".into(),
                    format!("{d} days: give 1 to 3650 days, or an RFC 3339 time"),
                    None,
                    0,
                );
            }
            Deadline::At(s) => {
                if time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .is_err()
                {
                    return fail(
                        "retention.result_deadline".into(),
                        format!(
                            "{s:?} is not an RFC 3339 time such as \"2027-06-30T00:00:00Z\" (or give a number of days)"
                        ),
                        Some(s),
                        0,
                    );
                }
            }
            Deadline::Days(_) => {}
        }

        let mut dp_seen = BTreeSet::new();
        for (i, d) in self.dp.iter().enumerate() {
            let f = format!("dp[{i}]");
            if !outputs.contains_key(d.output.as_str()) {
                return fail(
                    format!("{f}.output"),
                    format!(
                        "no recipient receives an output {:?}; outputs: {}",
                        d.output,
                        outputs.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                    Some(&d.output),
                    0,
                );
            }
            if !dp_seen.insert(d.output.as_str()) {
                return fail(
                    format!("{f}.output"),
                    format!("output {:?} has two dp entries; give one", d.output),
                    Some(&d.output),
                    1,
                );
            }
            if !(d.epsilon.is_finite() && d.epsilon > 0.0) {
                return fail(
                    format!("{f}.epsilon"),
                    format!("ε = {} : give a finite ε > 0", d.epsilon),
                    None,
                    0,
                );
            }
            if !(d.delta.is_finite() && (0.0..1.0).contains(&d.delta)) {
                return fail(
                    format!("{f}.delta"),
                    format!("δ = {} : give 0 ≤ δ < 1", d.delta),
                    None,
                    0,
                );
            }
        }
        Ok(())
    }

    /// The canonical document (see `docs/governance.md`, "Canonical form").
    pub fn canonical_value(&self) -> Value {
        let key = |s: &str| -> String {
            if is_placeholder(s) {
                s.trim().to_string()
            } else {
                decode_key32(s)
                    .map(|k| hex::encode(&k))
                    .unwrap_or_else(|| s.trim().to_string())
            }
        };
        // A result key in standard padded base64 (it may be written in any
        // base64 alphabet); placeholders and invalid keys as written.
        let kem_key = |s: &str| -> String {
            crate::keys::KemPublicKey::parse(s)
                .map(|k| k.to_base64())
                .unwrap_or_else(|| s.trim().to_string())
        };
        let schema = |s: &str| -> String {
            kuvert_data::Schema::parse_compact(s.trim())
                .map(|sc| sc.to_compact())
                .unwrap_or_else(|_| s.trim().to_string())
        };
        let deadline = match &self.retention.result_deadline {
            Deadline::Days(d) => json!({ "days": d }),
            Deadline::At(s) => {
                let fmt = &time::format_description::well_known::Rfc3339;
                let norm = time::OffsetDateTime::parse(s, fmt)
                    .ok()
                    .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(fmt).ok())
                    .unwrap_or_else(|| s.clone());
                json!({ "at": norm })
            }
        };
        json!({
            "format": CANONICAL_FORMAT,
            "name": self.name,
            "purpose": self.purpose,
            "legal_basis": { "reference": self.legal_basis.reference, "text": self.legal_basis.text },
            "contributors": self.contributors.iter().map(|c| json!({
                "id": c.id,
                "organisation": c.organisation,
                "controller": c.controller,
                "public_key": key(&c.public_key),
                "tables": c.tables.iter().map(|t| {
                    let mut v = json!({
                        "name": t.name,
                        "schema": schema(&t.schema),
                    });
                    // Only when written, so that specs without datasets
                    // keep their ids.
                    if let Some(d) = &t.dataset {
                        v["dataset"] = json!(d.trim());
                    }
                    v
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "recipients": self.recipients.iter().map(|r| json!({
                "id": r.id,
                "organisation": r.organisation,
                "kem_public_key": kem_key(&r.kem_public_key),
                "outputs": r.outputs.iter().map(|o| json!({
                    "name": o.name,
                    "sql": o.sql.trim(),
                    "description": o.description,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "protocol": self.protocol,
            "leakage_opt_ins": self.leakage_opt_ins.iter().map(|l| json!({
                "name": l.name,
                "learned_by": l.learned_by,
                "statement": l.statement,
            })).collect::<Vec<_>>(),
            "retention": {
                "delete_shares_at_job_end": self.retention.delete_shares_at_job_end,
                "result_deadline": deadline,
            },
            "contact": self.contact,
            "dp": self.dp.iter().map(|d| json!({
                "output": d.output,
                "epsilon": decimal(d.epsilon),
                "delta": decimal(d.delta),
            })).collect::<Vec<_>>(),
            "nodes": self.nodes.iter().map(|n| json!({
                "operator": n.operator,
                "fingerprint": n.fingerprint.trim(),
                "endpoint": n.endpoint.as_deref().map(str::trim),
            })).collect::<Vec<_>>(),
        })
    }

    /// The canonical JSON text that the id hashes.
    pub fn canonical_json(&self) -> String {
        canonical::to_string(&self.canonical_value())
    }

    /// The analysis id: SHA-256 of [`Self::canonical_json`].
    pub fn id(&self) -> AnalysisId {
        AnalysisId(Sha256::digest(self.canonical_json().as_bytes()).into())
    }

    /// The contributor with this id.
    pub fn contributor(&self, id: &str) -> Option<&Contributor> {
        self.contributors.iter().find(|c| c.id == id)
    }

    /// The recipient with this id.
    pub fn recipient(&self, id: &str) -> Option<&Recipient> {
        self.recipients.iter().find(|r| r.id == id)
    }

    /// The JSON Schema of the TOML spec (as committed in
    /// `crates/kuvert-gov/schema/analysis.schema.json`).
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(AnalysisSpec);
        let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// ε and δ in the canonical form: Rust's shortest round-trip decimal
/// (`1`, `0.5`, `0.000001`), never an exponent.
pub(crate) fn decimal(x: f64) -> String {
    format!("{x}")
}

#[derive(Clone, Copy)]
enum KeyKind {
    Ed25519,
    /// A recipient's X-Wing result key.
    Kem,
}

fn check_key(s: &str, kind: KeyKind, mode: Validation) -> Result<(), String> {
    if is_placeholder(s) {
        return match mode {
            Validation::AllowPlaceholders => Ok(()),
            Validation::Strict => Err(format!(
                "{s:?} is a placeholder; put the party's real key here (the line `{}` that `kuvert keygen` printed, or the \"{}\" field of its .pub file)",
                match kind {
                    KeyKind::Ed25519 => "public_key = ...",
                    KeyKind::Kem => "kem_public_key = ...",
                },
                match kind {
                    KeyKind::Ed25519 => "ed25519",
                    KeyKind::Kem => "kem",
                }
            )),
        };
    }
    match kind {
        KeyKind::Ed25519 if parse_ed25519(s).is_some() => Ok(()),
        KeyKind::Kem if crate::keys::KemPublicKey::parse(s).is_some() => Ok(()),
        KeyKind::Ed25519 => Err(format!(
            "{s:?} is not a valid Ed25519 public key (32 bytes as 64 hex digits or base64); copy it from the party's .pub file"
        )),
        KeyKind::Kem if decode_key32(s).is_some() => Err(format!(
            "{s:?} is a 32-byte key, not a post-quantum result key: results are sealed with X-Wing \
             (1216 bytes, base64). Copy the \"kem\" field of the recipient's .pub file; a key file \
             from before post-quantum sealing gets one with `kuvert keygen --upgrade KEYFILE`"
        )),
        KeyKind::Kem => Err(format!(
            "{} is not a valid X-Wing public key (1216 bytes in base64); copy the \"kem\" field of the recipient's .pub file (`kuvert keygen`)",
            abbreviate(s)
        )),
    }
}

/// A long key in an error message: its first and last characters.
fn abbreviate(s: &str) -> String {
    let s = s.trim();
    let n = s.chars().count();
    if n <= 40 {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(16).collect();
        let tail: String = s.chars().skip(n - 8).collect();
        format!("\"{head}...{tail}\" ({n} characters)")
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("id {id:?}: use 1 to 64 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "id {id:?}: use only letters a-z, A-Z, digits, '-', '_' and '.'"
        ));
    }
    if id == "nodes" {
        return Err("id \"nodes\" is reserved (it names the compute nodes in learned_by)".into());
    }
    Ok(())
}

fn check_sql_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("name {name:?}: use 1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "name {name:?}: use only letters a-z, A-Z, digits and '_' (it is used in SQL)"
        ));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("name {name:?} must not start with a digit"));
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte offset `at`.
pub(crate) fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = &src[..src.floor_char_boundary_compat(at)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Byte offset of the value at `field` (`contributors[1].tables[0].name`)
/// in the TOML source, from the parser's spans.
fn span_of(src: &str, field: &str) -> Option<usize> {
    enum Node<'a> {
        Item(&'a toml_edit::Item),
        Table(&'a toml_edit::Table),
        Value(&'a toml_edit::Value),
    }
    let doc = toml_edit::ImDocument::parse(src).ok()?;
    let mut node = Node::Table(doc.as_table());
    for seg in field.split('.') {
        let (key, index) = match seg.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (seg, None),
        };
        node = match node {
            Node::Item(i) => Node::Item(i.as_table_like()?.get(key)?),
            Node::Table(t) => Node::Item(t.get(key)?),
            Node::Value(v) => Node::Value(v.as_inline_table()?.get(key)?),
        };
        if let Some(ix) = index {
            node = match node {
                Node::Item(toml_edit::Item::ArrayOfTables(a)) => Node::Table(a.get(ix)?),
                Node::Item(toml_edit::Item::Value(toml_edit::Value::Array(a))) => {
                    Node::Value(a.get(ix)?)
                }
                Node::Value(toml_edit::Value::Array(a)) => Node::Value(a.get(ix)?),
                _ => return None,
            };
        }
    }
    let span = match node {
        Node::Item(i) => i.span(),
        Node::Table(t) => t.span(),
        Node::Value(v) => v.span(),
    }?;
    Some(span.start)
}

/// Line and column of the `nth` occurrence of `needle` in `src`, preferring
/// its quoted form (`"needle"`).
fn locate(src: &str, needle: &str, nth: usize) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    let quoted = format!("\"{needle}\"");
    let find = |pat: &str, shift: usize| {
        src.match_indices(pat)
            .nth(nth)
            .map(|(i, _)| line_col(src, i + shift))
    };
    find(&quoted, 1).or_else(|| find(needle, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let src = "ab\nåäö = 1\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 3), (2, 1));
        // "åäö" is 6 bytes; byte 9 is the '='... after "åäö " (7 bytes).
        assert_eq!(line_col(src, 10), (2, 5));
        assert_eq!(locate(src, "1", 0), Some((2, 7)));
    }

    #[test]
    fn keys_in_hex_and_base64_decode_alike() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i * 7 + 1) as u8);
        let hex = crate::hex::encode(&bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(decode_key32(&hex), Some(bytes));
        assert_eq!(decode_key32(&b64), Some(bytes));
        assert_eq!(decode_key32(&b64url), Some(bytes));
        assert_eq!(decode_key32("abcd"), None);
    }
}
