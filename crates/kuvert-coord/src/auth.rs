//! Who may do what at the coordinator: principals, roles, the access file,
//! bearer tokens, console sessions and one-time login links.
//!
//! A **principal** is either the party named by a verified TLS client
//! certificate (its subject CN, a PKI party name such as `fk`), or the name
//! of a bearer token (`Authorization: Bearer T`), or a console session that
//! one of those two opened. The access file (`kuvert coordinator --access
//! FILE`, TOML) gives principals their global roles:
//!
//! ```toml
//! [[principal]]
//! name = "fk"                # a client certificate's CN (PKI party name)
//! roles = ["submitter"]
//!
//! [[token]]
//! name = "console-operator"
//! sha256 = "<64 hex digits>" # of the token; `kuvert coordinator token` makes one
//! roles = ["operator", "auditor"]
//! ```
//!
//! Two roles are also **implied per analysis** by its spec: a principal
//! whose name is a contributor id is that analysis' `contributor`, one whose
//! name is a recipient id its `recipient`. A `submitter` reads the analyses
//! it submitted. Which role each route needs is in [`crate::api::ROUTES`]
//! (and in `/openapi.json` as `x-kuvert-roles`).
//!
//! Tokens are stored only as SHA-256 hashes and compared in constant time.
//! Session ids, login-link tickets and CSRF secrets come from the OS CSPRNG
//! (through the TLS crypto provider); sessions live in memory and end after
//! [`SESSION_TTL`] or at logout (and when the coordinator restarts).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State as AxState};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{ApiError, Need};
use crate::Coordinator;

/// A global or per-analysis role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submits analyses; reads the analyses it submitted.
    Submitter,
    /// Approves (only for itself) and reads the analyses that name it as a
    /// contributor. Implied by the spec.
    Contributor,
    /// Reads the status and spec of the analyses that name it as a
    /// recipient. Implied by the spec.
    Recipient,
    /// Reads everything: analyses, audit log, budgets, DPIA texts.
    Auditor,
    /// Reads everything, triggers runs, sees health details.
    Operator,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Submitter,
        Role::Contributor,
        Role::Recipient,
        Role::Auditor,
        Role::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Contributor => "contributor",
            Role::Recipient => "recipient",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse a comma-separated role list (`operator,auditor`).
pub fn parse_roles(s: &str) -> Result<BTreeSet<Role>, String> {
    let mut out = BTreeSet::new();
    for r in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        out.insert(Role::parse(r).ok_or_else(|| unknown_role(r))?);
    }
    Ok(out)
}

fn unknown_role(r: &str) -> String {
    format!(
        "unknown role {r:?}; the roles are {}",
        Role::ALL.map(Role::as_str).join(", ")
    )
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A TLS client certificate that chains to a configured client CA.
    Certificate,
    /// A bearer token from the access file.
    Token,
    /// A console session opened with a token, a certificate or a login
    /// link.
    Session,
}

/// An authenticated principal and its global roles.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub via: Via,
    pub roles: BTreeSet<Role>,
    /// The session's key (SHA-256 of its id), for logout and CSRF.
    pub(crate) session: Option<[u8; 32]>,
}

impl Principal {
    /// "this certificate's party fk", "the token ops", ... for messages.
    pub fn describe(&self) -> String {
        match self.via {
            Via::Certificate => format!("this certificate's party {}", self.name),
            Via::Token => format!("the token {:?}", self.name),
            Via::Session => format!("the console session of {:?}", self.name),
        }
    }

    pub fn has(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }

    /// Operators and auditors read every analysis.
    pub fn reads_all(&self) -> bool {
        self.has(Role::Operator) || self.has(Role::Auditor)
    }
}

/// What the handlers see: the principal of the request (none on public
/// routes without credentials).
#[derive(Debug, Clone)]
pub struct Auth(pub Option<Principal>);

/// The party named by the connection's verified client certificate; set
/// by the HTTPS server on every request of that connection.
#[derive(Debug, Clone)]
pub(crate) struct ClientCert(pub String);

// ----- the access file -------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    #[serde(default)]
    principal: Vec<PrincipalEntry>,
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalEntry {
    name: String,
    roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    roles: Vec<String>,
}

struct TokenRow {
    name: String,
    hash: [u8; 32],
    roles: BTreeSet<Role>,
}

/// The parsed access file: certificate principals' roles and the tokens.
#[derive(Default)]
pub struct Access {
    certs: BTreeMap<String, BTreeSet<Role>>,
    tokens: Vec<TokenRow>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Access {{ principals: {:?}, tokens: {} }}",
            self.certs.keys().collect::<Vec<_>>(),
            self.tokens.len()
        )
    }
}

impl Access {
    /// No principal has a global role (only the roles implied by specs).
    pub fn empty() -> Access {
        Access::default()
    }

    /// Read and check an access file.
    pub fn load(path: &Path) -> Result<Access, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the access file {}: {e}", path.display()))?;
        Access::parse(&text).map_err(|e| format!("access file {}: {e}", path.display()))
    }

    /// Parse the TOML text of an access file.
    pub fn parse(text: &str) -> Result<Access, String> {
        let f: AccessFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let roles = |list: &[String], who: &str| -> Result<BTreeSet<Role>, String> {
            list.iter()
                .map(|r| Role::parse(r).ok_or_else(|| format!("{who}: {}", unknown_role(r))))
                .collect()
        };
        let mut a = Access::default();
        for p in &f.principal {
            kuvert_net::pki::validate_party_name(&p.name).map_err(|e| {
                format!(
                    "[[principal]] {:?}: {e} (a principal is a client certificate's party name)",
                    p.name
                )
            })?;
            let r = roles(&p.roles, &format!("[[principal]] {:?}", p.name))?;
            if a.certs.insert(p.name.clone(), r).is_some() {
                return Err(format!("[[principal]] {:?} is listed twice", p.name));
            }
        }
        let mut names = BTreeSet::new();
        for t in &f.token {
            if t.name.trim().is_empty() || t.name.len() > 100 {
                return Err("[[token]] needs a name of 1 to 100 characters".into());
            }
            if !names.insert(t.name.clone()) {
                return Err(format!("[[token]] {:?} is listed twice", t.name));
            }
            let hash = parse_hash(&t.sha256).ok_or_else(|| {
                format!(
                    "[[token]] {:?}: sha256 must be 64 hex digits (the line `kuvert coordinator token` printed)",
                    t.name
                )
            })?;
            if a.tokens.iter().any(|x| x.hash == hash) {
                return Err(format!(
                    "[[token]] {:?} has the same hash as another token",
                    t.name
                ));
            }
            a.tokens.push(TokenRow {
                name: t.name.clone(),
                hash,
                roles: roles(&t.roles, &format!("[[token]] {:?}", t.name))?,
            });
        }
        Ok(a)
    }

    /// The global roles of a client certificate's party.
    pub fn cert_roles(&self, name: &str) -> BTreeSet<Role> {
        self.certs.get(name).cloned().unwrap_or_default()
    }

    /// The token's principal, if `token` is one of the access file's. Every
    /// stored hash is compared, in constant time.
    pub fn token(&self, token: &str) -> Option<Principal> {
        let h: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            if ct_eq(&t.hash, &h) {
                found = Some(t);
            }
        }
        found.map(|t| Principal {
            name: t.name.clone(),
            via: Via::Token,
            roles: t.roles.clone(),
            session: None,
        })
    }
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    d == 0
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `n` bytes from the OS CSPRNG (the TLS provider's secure random).
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    kuvert_net::tls::provider()
        .secure_random
        .fill(&mut b)
        .expect("the operating system's random number generator failed");
    b
}

/// A new bearer token: `kvt_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    format!("kvt_{}", hex(&random::<32>()))
}

/// The SHA-256 (hex) of a token, as the access file stores it.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The `[[token]]` stanza of the access file for a token.
pub fn token_stanza(name: &str, roles: &BTreeSet<Role>, token: &str) -> String {
    let roles: Vec<String> = roles.iter().map(|r| format!("{:?}", r.as_str())).collect();
    format!(
        "[[token]]\nname = {}\nsha256 = \"{}\"\nroles = [{}]\n",
        toml_string(name),
        token_hash(token),
        roles.join(", ")
    )
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ----- sessions and login links -----------------------------------------

/// How long a console session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a one-time login link stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(300);
/// The session cookie (`__Host-`: Secure, Path=/, no Domain).
pub const SESSION_COOKIE: &str = "__Host-kuvert-session";
/// At most this many sessions (and tickets) at once; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    principal: Principal,
    csrf: String,
    expires: Instant,
}

struct Ticket {
    principal: Principal,
    expires: Instant,
}

/// The coordinator's authentication state.
pub(crate) struct AuthState {
    pub(crate) access: Access,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    tickets: Mutex<HashMap<[u8; 32], Ticket>>,
    /// Keys the CSRF tokens of certificate principals.
    secret: [u8; 32],
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn prune<T>(map: &mut HashMap<[u8; 32], T>, expires: impl Fn(&T) -> Instant) {
    let now = Instant::now();
    map.retain(|_, v| expires(v) > now);
    while map.len() >= MAX_SESSIONS {
        let oldest = map.iter().min_by_key(|(_, v)| expires(v)).map(|(k, _)| *k);
        match oldest {
            Some(k) => map.remove(&k),
            None => break,
        };
    }
}

impl AuthState {
    pub(crate) fn new(access: Access) -> AuthState {
        AuthState {
            access,
            sessions: Mutex::new(HashMap::new()),
            tickets: Mutex::new(HashMap::new()),
            secret: random::<32>(),
        }
    }

    /// Open a session for `p`; its id (the cookie's value).
    pub(crate) fn new_session(&self, p: &Principal) -> String {
        let id = hex(&random::<32>());
        let key = key_of(&id);
        let mut principal = p.clone();
        principal.via = Via::Session;
        principal.session = Some(key);
        let mut m = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        prune(&mut m, |s: &Session| s.expires);
        m.insert(
            key,
            Session {
                principal,
                csrf: hex(&random::<32>()),
                expires: Instant::now() + SESSION_TTL,
            },
        );
        id
    }

    fn session(&self, id: &str) -> Option<Principal> {
        let m = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&key_of(id))
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.principal.clone())
    }

    pub(crate) fn end_session(&self, p: &Principal) {
        if let Some(k) = p.session {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&k);
        }
    }

    /// A one-time login ticket for `p`.
    pub(crate) fn new_ticket(&self, p: &Principal) -> String {
        let id = hex(&random::<32>());
        let mut m = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        prune(&mut m, |t: &Ticket| t.expires);
        let mut principal = p.clone();
        principal.session = None;
        m.insert(
            key_of(&id),
            Ticket {
                principal,
                expires: Instant::now() + TICKET_TTL,
            },
        );
        id
    }

    /// Use up a ticket: its principal, if it is known and not expired.
    pub(crate) fn redeem(&self, ticket: &str) -> Option<Principal> {
        let mut m = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&key_of(ticket))
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.principal)
    }

    /// The CSRF token that console forms of `p` carry: the session's own
    /// random one, or for a certificate a keyed hash of its name. Bearer
    /// tokens need none (a browser never sends them by itself).
    pub(crate) fn csrf(&self, p: &Principal) -> Option<String> {
        match (p.via, p.session) {
            (Via::Session, Some(k)) => self
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&k)
                .map(|s| s.csrf.clone()),
            (Via::Certificate, _) => {
                let mut h = Sha256::new();
                h.update(self.secret);
                h.update(b"csrf/certificate/");
                h.update(p.name.as_bytes());
                Some(hex(&h.finalize()))
            }
            _ => None,
        }
    }

    /// Check a console form's CSRF token.
    pub(crate) fn check_csrf(&self, p: &Principal, got: Option<&str>) -> Result<(), ApiError> {
        match self.csrf(p) {
            None if p.via == Via::Token => Ok(()),
            Some(want) if got.is_some_and(|g| ct_eq(&key_of(g), &key_of(&want))) => Ok(()),
            _ => Err(ApiError(
                StatusCode::FORBIDDEN,
                "the form's security token is missing or stale (an old page, or a form from \
                 another site); reload the page and send the form again"
                    .into(),
            )),
        }
    }
}

/// The `Set-Cookie` value that opens a session.
pub(crate) fn session_cookie(id: &str) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value that ends it.
pub(crate) fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

// ----- the middleware ----------------------------------------------------

/// A refused request's body is read up to this size before the answer.
const DRAIN_LIMIT: usize = 2 << 20;

fn unauthorized(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::UNAUTHORIZED, msg.into())
}

const NO_CREDENTIALS: &str = "no credentials: present a client certificate issued by one of this \
coordinator's client CAs (kuvert: --pki DIR with the party's certificate, or --coordinator-cert \
and --coordinator-key), or a bearer token from its access file (Authorization: Bearer TOKEN; \
kuvert: KUVERT_COORDINATOR_TOKEN), or log in to the console at /login";

/// The principal of a request, from (in this order) its bearer token, the
/// connection's client certificate, or its session cookie (GET requests
/// and console forms only). A bearer token that is not valid is an error,
/// whatever else the request carries.
fn resolve(c: &Coordinator, req: &Request, api: bool) -> Result<Option<Principal>, ApiError> {
    let st = &c.inner.auth;
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        let v = h.to_str().unwrap_or_default().trim();
        let token = match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => {
                return Err(unauthorized(
                    "the Authorization header must be `Bearer TOKEN` (a token from the \
                     coordinator's access file)",
                ))
            }
        };
        return st.access.token(token).map(Some).ok_or_else(|| {
            unauthorized(
                "this bearer token is not valid on this coordinator (mistyped, or not in its \
                 access file); ask its operator for a token (kuvert coordinator token)",
            )
        });
    }
    if let Some(ClientCert(name)) = req.extensions().get::<ClientCert>() {
        return Ok(Some(Principal {
            name: name.clone(),
            via: Via::Certificate,
            roles: st.access.cert_roles(name),
            session: None,
        }));
    }
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    if safe || !api {
        if let Some(id) = cookie(req.headers(), SESSION_COOKIE) {
            return Ok(st.session(id));
        }
    }
    Ok(None)
}

/// A POST from a browser must come from the coordinator's own pages:
/// `Origin` (when sent) must be this host, and `Sec-Fetch-Site` must not
/// say cross-site. Clients that send neither (kuvert, curl) pass.
fn same_origin(req: &Request) -> Result<(), ApiError> {
    let h = req.headers();
    let refuse = || {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            "a form or request from another site was refused; use the coordinator's own pages"
                .into(),
        ))
    };
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return refuse();
        }
    }
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if origin != format!("https://{host}") {
            return refuse();
        }
    }
    Ok(())
}

/// The message of a 403 for want of a global role.
pub(crate) fn lacks_role(p: &Principal, roles: &[Role]) -> ApiError {
    let need = roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    let fix = match p.via {
        Via::Certificate => "ask its operator to add it to the access file (a [[principal]] entry)",
        _ => "ask its operator to add the role to the token's [[token]] entry in the access file",
    };
    ApiError(
        StatusCode::FORBIDDEN,
        format!(
            "{} has no role {need} on this coordinator; {fix}",
            p.describe()
        ),
    )
}

/// Authenticate every routed request and enforce the route's [`Need`]:
/// 401 without credentials, 403 without a global role the route needs.
/// Per-analysis roles are checked by the handlers, which know the spec.
pub(crate) async fn middleware(
    AxState(c): AxState<Coordinator>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = matched.map(|m| m.as_str().to_string()).unwrap_or_default();
    let method = if req.method() == Method::HEAD {
        "get".to_string()
    } else {
        req.method().as_str().to_ascii_lowercase()
    };
    let api = path.starts_with("/api/") || path == "/openapi.json";
    let need = crate::api::need(&method, &path);
    let lang = crate::console::lang_of(req.uri().query());
    let fail = |e: ApiError, req: Request| async move {
        // Read (and drop) what the client is still sending, so that it
        // gets this answer rather than a reset connection.
        let (parts, body) = req.into_parts();
        let _ = axum::body::to_bytes(body, DRAIN_LIMIT).await;
        let req = Request::from_parts(parts, axum::body::Body::empty());
        if api {
            let mut r = e.into_response();
            if r.status() == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"kuvert coordinator\""),
                );
            }
            r
        } else if e.0 == StatusCode::UNAUTHORIZED && req.method() == Method::GET {
            crate::console::to_login(lang, req.uri())
        } else {
            crate::console::error_response(lang, req.uri().path(), e)
        }
    };
    if req.method() == Method::POST {
        if let Err(e) = same_origin(&req) {
            return fail(e, req).await;
        }
    }
    let principal = match resolve(&c, &req, api) {
        Ok(p) => p,
        Err(e) => return fail(e, req).await,
    };
    match (need, &principal) {
        (Need::Public, _) => {}
        (_, None) => return fail(unauthorized(NO_CREDENTIALS), req).await,
        (Need::Global(roles), Some(p)) if !roles.iter().any(|r| p.has(*r)) => {
            return fail(lacks_role(p, roles), req).await
        }
        _ => {}
    }
    req.extensions_mut().insert(Auth(principal));
    next.run(req).await
}

/// The roles `p` holds for one analysis: its global operator and auditor
/// roles, contributor and recipient as the spec names it, and submitter if
/// it submitted this analysis.
pub(crate) async fn analysis_roles(
    c: &Coordinator,
    p: &Principal,
    id: &str,
    spec: &kuvert_gov::AnalysisSpec,
) -> Result<BTreeSet<Role>, ApiError> {
    let mut r = BTreeSet::new();
    for g in [Role::Operator, Role::Auditor] {
        if p.has(g) {
            r.insert(g);
        }
    }
    if spec.contributors.iter().any(|x| x.id == p.name) {
        r.insert(Role::Contributor);
    }
    if spec.recipients.iter().any(|x| x.id == p.name) {
        r.insert(Role::Recipient);
    }
    if p.has(Role::Submitter) && c.inner.store.is_submitter(id, &p.name).await? {
        r.insert(Role::Submitter);
    }
    Ok(r)
}

/// 403 unless `p` holds one of `allowed` for analysis `id`; its roles there.
pub(crate) async fn require_analysis(
    c: &Coordinator,
    p: &Principal,
    id: &str,
    spec: &kuvert_gov::AnalysisSpec,
    allowed: &[Role],
) -> Result<BTreeSet<Role>, ApiError> {
    let have = analysis_roles(c, p, id, spec).await?;
    if allowed.iter().any(|r| have.contains(r)) {
        return Ok(have);
    }
    let who = allowed
        .iter()
        .map(|r| match r {
            Role::Submitter => "the principal that submitted it",
            Role::Contributor => "its contributors",
            Role::Recipient => "its recipients",
            Role::Auditor => "auditors",
            Role::Operator => "operators",
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError(
        StatusCode::FORBIDDEN,
        format!(
            "{} may not do this for analysis {id}: only {who} may; ask the coordinator's \
             operator if {} should have a role here",
            p.describe(),
            p.name
        ),
    ))
}

/// The principal of a handler's request (the middleware put it there).
pub(crate) fn principal(auth: &Auth) -> Result<&Principal, ApiError> {
    auth.0.as_ref().ok_or_else(|| unauthorized(NO_CREDENTIALS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_file_parses_and_checks() {
        let t = new_token();
        let text = format!(
            "[[principal]]\nname = \"fk\"\nroles = [\"submitter\"]\n\n{}",
            token_stanza("ops", &parse_roles("operator,auditor").unwrap(), &t)
        );
        let a = Access::parse(&text).unwrap();
        assert_eq!(a.cert_roles("fk"), BTreeSet::from([Role::Submitter]));
        assert!(a.cert_roles("kommun").is_empty());
        let p = a.token(&t).unwrap();
        assert_eq!(p.name, "ops");
        assert_eq!(p.roles, BTreeSet::from([Role::Operator, Role::Auditor]));
        assert!(a.token("kvt_wrong").is_none());
        assert!(Access::parse("[[principal]]\nname = \"FK\"\nroles = []\n").is_err());
        assert!(
            Access::parse("[[principal]]\nname = \"fk\"\nroles = [\"admin\"]\n")
                .unwrap_err()
                .contains("submitter, contributor")
        );
        assert!(Access::parse("[[token]]\nname = \"x\"\nsha256 = \"ab\"\nroles = []\n").is_err());
        assert!(Access::parse("[[nobody]]\n").is_err());
        assert!(parse_roles("operator, bogus").is_err());
    }

    #[test]
    fn sessions_and_tickets() {
        let st = AuthState::new(Access::empty());
        let p = Principal {
            name: "ops".into(),
            via: Via::Token,
            roles: BTreeSet::from([Role::Operator]),
            session: None,
        };
        let id = st.new_session(&p);
        let s = st.session(&id).unwrap();
        assert_eq!(s.via, Via::Session);
        let csrf = st.csrf(&s).unwrap();
        assert!(st.check_csrf(&s, Some(&csrf)).is_ok());
        assert!(st.check_csrf(&s, Some("nope")).is_err());
        assert!(st.check_csrf(&s, None).is_err());
        st.end_session(&s);
        assert!(st.session(&id).is_none());
        let t = st.new_ticket(&p);
        assert_eq!(st.redeem(&t).unwrap().name, "ops");
        assert!(st.redeem(&t).is_none(), "a ticket is used once");
    }
}
