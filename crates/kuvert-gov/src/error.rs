use std::path::PathBuf;

/// Everything that can go wrong in governance. Each variant names the
/// culprit (a file and line, a field of the spec, a contributor, an audit
/// line) and says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum GovError {
    // ---- input files ----------------------------------------------------
    #[error("{}: {source}{hint}", path.display())]
    Io {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },

    // ---- analysis specs ---------------------------------------------------
    /// A spec that parses but does not make sense. `field` is the path in
    /// the spec (`contributors[1].tables[0].schema`); `at` is
    /// `origin:line:column` of the offending value when it can be found.
    #[error("{at}{field}: {message}")]
    Invalid {
        at: String,
        field: String,
        message: String,
    },

    // ---- keys ---------------------------------------------------------------
    #[error("{origin}: {message}")]
    BadKey { origin: String, message: String },
    #[error(
        "{}: the key file can be read by other users (mode {mode:o}); run `chmod 600 {}` and check nobody copied it",
        path.display(), path.display()
    )]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error("{}: exists already; choose another --out or delete the old key deliberately", path.display())]
    KeyFileExists { path: PathBuf },

    // ---- approvals ----------------------------------------------------------
    #[error(
        "the approval of {contributor:?} is for analysis {approved}, not for this spec ({expected}): \
         the spec was changed after it was approved, or the wrong approval was given; ask {contributor:?} to approve {expected}"
    )]
    ApprovalForOtherAnalysis {
        contributor: String,
        approved: String,
        expected: String,
    },
    #[error(
        "an approval names contributor {contributor:?}, which the spec does not list (contributors: {known})"
    )]
    UnknownContributor { contributor: String, known: String },
    #[error(
        "the approval of {contributor:?} is signed with key {given}, but the spec names {expected} for it: \
         refuse it (someone else signed), or fix the spec's public_key and approve again"
    )]
    ApprovalKeyMismatch {
        contributor: String,
        given: String,
        expected: String,
    },
    #[error(
        "the approval of {contributor:?} has an invalid signature (forged or altered); ask {contributor:?} for a fresh approval"
    )]
    BadApprovalSignature { contributor: String },
    #[error("contributor {contributor:?} approved twice; give each approval once")]
    DuplicateApproval { contributor: String },
    #[error(
        "not approved by every contributor: missing {missing:?}; each of them must run `kuvert analysis approve {analysis_id} --key THEIR.key --spec SPEC`"
    )]
    MissingApprovals {
        analysis_id: String,
        missing: Vec<String>,
    },
    #[error("refusing to approve: the spec's id is {actual}, not {given}; check that you have the spec you agreed to")]
    IdMismatch { given: String, actual: String },

    // ---- sealed results -------------------------------------------------------
    #[error("cannot seal: {0}")]
    Seal(String),
    #[error(
        "cannot open the sealed result (analysis {analysis_id}, node {node}): it was not sealed to this key, \
         or it was altered, or its analysis id or node index was changed; ask the node to send it again"
    )]
    Open { analysis_id: String, node: u8 },
    #[error(
        "the sealed result is labelled for analysis {got_id} node {got_node}, but analysis {want_id} node {want_node} was expected"
    )]
    WrongBox {
        got_id: String,
        got_node: u8,
        want_id: String,
        want_node: u8,
    },

    // ---- audit ------------------------------------------------------------------
    #[error("{}:{line}: {message}", path.display())]
    Audit {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: an audit log file name must begin with \"audit\" (e.g. audit-node0.log)", path.display())]
    AuditName { path: PathBuf },
    #[error(
        "audit details must not hold nested values (key {key:?}): log sizes, counts and names only"
    )]
    AuditDetail { key: String },

    // ---- uploads ------------------------------------------------------------------
    #[error("refusing to sign: an upload message must begin with \"kuvert-upload-v1\" (build it with kuvert_node::wire::upload_message)")]
    NotAnUploadMessage,

    // ---- receipts -----------------------------------------------------------------
    #[error(
        "the deletion receipt of node {node} for job {job:?} does not verify against the given node key (forged, altered, or another node's key)"
    )]
    BadReceipt { node: u8, job: String },

    // ---- templates ------------------------------------------------------------------
    #[error("no template is called {name:?}; the templates are: {known}")]
    UnknownTemplate { name: String, known: String },
}

impl GovError {
    /// True when the user's input (a file's content, a flag, an approval, a
    /// sealed box) is at fault rather than the machine: the CLI exits 2.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            GovError::Io { .. } | GovError::Seal(_) | GovError::NotAnUploadMessage
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, hint: &'static str, source: std::io::Error) -> Self {
        GovError::Io {
            path: path.into(),
            hint,
            source,
        }
    }
}
