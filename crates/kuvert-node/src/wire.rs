//! The client API of a node: what contributors and recipients send over
//! their mutually authenticated TLS connection.
//!
//! A message is `u32 header length (big-endian) | JSON header | u64 payload
//! length (big-endian) | payload`. Headers are small and typed; payloads
//! carry share words (little-endian u64) so that large columns are not
//! JSON-encoded. Both lengths are bounded before anything is allocated.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Largest accepted header: 1 MiB. A `Register` header carries the whole
/// spec, and a spec with 21 contributors and 22 recipients (each with a
/// 1.6 kB post-quantum result key and its outputs' SQL) is about 80 kB; the
/// bound holds a few hundred contributors. Read only after the TLS
/// handshake authenticated the party, and at most `max_connections` at
/// once.
pub const MAX_HEADER: usize = 1 << 20;

/// A request from a client (contributor, recipient or operator).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// This node's shares of a table. Payload: for every column, for every
    /// word plane, component `a` then component `b` (`rows` words each).
    Upload {
        job: String,
        table: String,
        /// Compact schema, `name:type,...`.
        schema: String,
        rows: u64,
    },
    /// Compute `program` over the job's tables; the result goes to `recipient`.
    Run {
        job: String,
        program: Program,
        recipient: String,
    },
    /// Where a job stands on this node.
    Status { job: String },
    /// The recipient's request for this node's result shares.
    Fetch { job: String },

    // ---- The governed service (docs/service.md) ----
    /// Register an approved analysis at this node. The node parses the spec
    /// (strict), computes its id, and verifies every contributor's approval
    /// itself (and, when its config has a trust list, that every
    /// contributor's key is on it) before it accepts any share for it.
    /// Idempotent. Sent by the coordinator; refused with a reason otherwise.
    Register {
        /// The spec's TOML text exactly as approved.
        spec: String,
        approvals: Vec<kuvert_gov::Approval>,
    },
    /// A contributor's shares of one table of a registered analysis.
    /// Payload as for [`Request::Upload`]. `signature` is the contributor's
    /// Ed25519 signature (hex) over [`upload_message`]; the node checks it
    /// against the key in the spec, the table against the contributor's
    /// tables, and the schema against the spec's schema.
    GovUpload {
        /// The analysis id (hex).
        analysis: String,
        contributor: String,
        table: String,
        schema: String,
        rows: u64,
        signature: String,
    },
    /// Run every output of a registered analysis whose tables are all in.
    /// Each of the three nodes must be told (the coordinator does it).
    GovRun {
        analysis: String,
        /// The coordinator's audit head when it asks (records, last hash):
        /// the node records it in its own log with its countersignature
        /// (`kuvert_gov::receipt::countersign_coordinator_head`), so the
        /// coordinator's chain cannot be rewritten before it unnoticed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        coordinator_head: Option<kuvert_gov::receipt::AuditHead>,
    },
    /// Where an analysis stands on this node.
    GovStatus { analysis: String },
    /// A recipient's request for its sealed results (only the recipient's
    /// own TLS identity may ask; the boxes open only with its X-Wing key).
    GovFetch { analysis: String, recipient: String },
    /// A contributor's signed privacy-budget limit for one of its datasets
    /// (`kuvert budget set`). Self-authenticating: the node verifies the
    /// contributor's signature, so anyone may carry it.
    GovBudget { limit: kuvert_gov::BudgetLimit },
    /// This node's privacy-budget accounts (of one contributor key, hex or
    /// base64, when given): answered with [`Response::Ledger`].
    GovLedger {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contributor_key: Option<String>,
    },
}

/// Domain tag of a contributor's upload signature.
pub const UPLOAD_TAG: &[u8] = kuvert_gov::keys::UPLOAD_TAG;

/// The message a contributor signs for one node's part of one table:
/// `UPLOAD_TAG || id (32 bytes) || node (1 byte) || len-prefixed contributor,
/// table and schema (u32 BE length each) || rows (u64 BE) || SHA-256 of the
/// payload`.
pub fn upload_message(
    id: &kuvert_gov::AnalysisId,
    node: u8,
    contributor: &str,
    table: &str,
    schema: &str,
    rows: u64,
    payload_sha256: &[u8; 32],
) -> Vec<u8> {
    let mut m = UPLOAD_TAG.to_vec();
    m.extend_from_slice(&id.0);
    m.push(node);
    for s in [contributor, table, schema] {
        m.extend_from_slice(&(s.len() as u32).to_be_bytes());
        m.extend_from_slice(s.as_bytes());
    }
    m.extend_from_slice(&rows.to_be_bytes());
    m.extend_from_slice(payload_sha256);
    m
}

/// An analysis's state on one node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GovState {
    /// The node has never seen this analysis (not registered).
    Unknown,
    /// Registered and approved; waiting for tables (`missing` lists them).
    Waiting { missing: Vec<String> },
    /// All tables in; not yet told to run.
    Ready,
    /// Computing output `done` of `total` (plus per-query progress).
    /// `output` is empty while the node waits for the other two nodes to
    /// be asked to run it too.
    Running {
        output: String,
        done: u64,
        total: u64,
    },
    /// Sealed results are ready for the recipients until `deadline`
    /// (RFC 3339); inputs deleted as the retention rule says.
    Done { deadline: String },
    /// The run failed; nothing was released. `inputs_kept` says whether the
    /// input shares are still held (so the job can be run again).
    Failed {
        reason: String,
        refused: bool,
        inputs_kept: bool,
    },
    /// The result deadline passed: results, shares and keys are deleted.
    Expired,
}

/// One table as a node holds it (names and sizes only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub contributor: String,
    pub rows: u64,
}

/// One node's answer to [`Request::GovStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GovStatus {
    pub node: usize,
    pub analysis: String,
    pub state: GovState,
    /// Tables received so far (names and row counts; never values).
    #[serde(default)]
    pub tables: Vec<TableInfo>,
    /// While a query runs: operators done of the plan's total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Costs of the finished run on this node (all outputs together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<JobStats>,
    /// The node's signed deletion receipt, once it deleted the inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<kuvert_gov::DeletionReceipt>,
    /// When this node deletes everything it still holds of the analysis
    /// (RFC 3339, UTC): fixed at registration (the spec's deadline, or
    /// registration + N days), replaced by the result deadline when the
    /// job ends. Older nodes do not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_by: Option<String>,
}

/// One sealed output in a [`Response::Sealed`] answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SealedOutput {
    /// The output's name in the spec.
    pub output: String,
    /// HPKE box of this node's `ResultShares` bytes; the box binds the
    /// analysis id and node; the plaintext starts with the output name
    /// (u32 BE length + UTF-8) so a box cannot be passed off as another output.
    pub sealed: kuvert_gov::SealedBox,
    /// The node's audit head just after it logged this output's
    /// `result_sealed` record (that record's number and hash): a copy of
    /// the head held outside the node, which `kuvert audit verify` finds in
    /// the node's log. Older nodes do not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<kuvert_gov::receipt::AuditHead>,
}

/// A computation a node can run. Every node compiles the same program into
/// the same sequence of protocol steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Program {
    /// Sum of an integer column (one value).
    Sum { table: String, column: String },
    /// Number of rows whose integer or date column is below `limit`.
    CountBelow {
        table: String,
        column: String,
        limit: i64,
    },
    /// Differentially private sum: each value is clamped to `[lo, hi]` under
    /// MPC, the clamped values are summed, and every node adds its own
    /// secret Skellam noise (variance μ/2) inside the MPC, so that any two
    /// honest nodes' noise gives (ε, δ)-DP against the third node and the
    /// recipient, and no one knows the total noise. One row per person.
    NoisySum {
        table: String,
        column: String,
        lo: i64,
        hi: i64,
        epsilon: f64,
        delta: f64,
    },
    /// A SQL query over the job's tables (Kuvert's dialect, `docs/sql.md`).
    /// Every node plans it itself against the uploaded schemas; the result
    /// is a table, released to the recipient as result shares
    /// ([`Response::QueryResult`]). With `malicious` the nodes run it
    /// secure against one malicious node (kuvert-mpc's malicious mode):
    /// every AND gate proven, every product and shuffle pass MAC-checked,
    /// every open verified, DP noise drawn by pairs of nodes, and all checks
    /// passed before a result share is stored.
    Query {
        sql: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        malicious: bool,
    },
    /// Diagnostic: `rounds` multiplications of `n` random shared values, to
    /// check the nodes' links and measure them. Outputs nothing secret.
    Soak { rounds: u32, n: u32 },
}

impl Program {
    /// The tables the program reads.
    pub fn tables(&self) -> Vec<&str> {
        match self {
            Program::Sum { table, .. }
            | Program::CountBelow { table, .. }
            | Program::NoisySum { table, .. } => {
                vec![table]
            }
            Program::Soak { .. } => vec![],
            // The tables a query reads are known once it is planned.
            Program::Query { .. } => vec![],
        }
    }
}

/// A job's state on one node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Tables uploaded so far, no run requested.
    Waiting {
        tables: Vec<String>,
    },
    Running,
    /// Result shares are ready for the recipient.
    Done {
        recipient: String,
        outputs: u64,
    },
    /// The run failed; nothing was released. Inputs are kept, so the job
    /// can be run again.
    Failed {
        reason: String,
        /// True when the query cannot run on these inputs (e.g. a join
        /// too large for the oblivious operator the plan needs): the
        /// caller must change the query, a rerun will fail again. False
        /// for everything else (a node or link failed).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        refused: bool,
    },
    /// Nothing known about this job.
    Unknown,
}

/// How far a running query is: `done` operators of `total`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// What a finished job cost one node (for benchmarks and operators).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobStats {
    /// Communication rounds of the protocol (`kuvert_mpc::Party::stats`).
    pub rounds: u64,
    /// Payload bytes this node sent to the other nodes.
    pub bytes_sent: u64,
    /// Payload bytes this node received from the other nodes.
    pub bytes_received: u64,
    /// Wall-clock milliseconds from the job's start on this node (including
    /// connecting to the other nodes and the session setup) to its end.
    pub millis: u64,
    /// Milliseconds of the computation proper (after the session setup).
    pub compute_millis: u64,
    /// The node process's peak resident memory so far (VmHWM, KiB), where
    /// the operating system reports it.
    pub peak_rss_kib: Option<u64>,
}

/// A node's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Ok {
        message: String,
    },
    Status {
        node: usize,
        job: String,
        state: JobState,
        /// While a query runs: operators done of the plan's total.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<Progress>,
        /// When a job is done: what its protocol cost this node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stats: Option<JobStats>,
    },
    /// This node's result components; payload: `a` then `b`, `outputs` words each.
    Result {
        node: usize,
        outputs: u64,
    },
    /// This node's shares of a query's answer; payload:
    /// `kuvert_sql::output::ResultShares::to_bytes`.
    QueryResult {
        node: usize,
    },
    Error {
        message: String,
    },
    /// Answer to [`Request::GovStatus`].
    GovStatus(Box<GovStatus>),
    /// Answer to [`Request::GovFetch`]: the recipient's sealed outputs
    /// from this node (JSON array of [`SealedOutput`] in the payload).
    Sealed {
        node: usize,
        outputs: u64,
    },
    /// Answer to [`Request::GovLedger`]: JSON array of
    /// `kuvert_node::budget::Account` in the payload.
    Ledger {
        node: usize,
        accounts: u64,
    },
}

/// Write one message.
pub fn write_msg<W: Write, T: Serialize>(w: &mut W, header: &T, payload: &[u8]) -> io::Result<()> {
    let h = serde_json::to_vec(header).map_err(io::Error::other)?;
    w.write_all(&(h.len() as u32).to_be_bytes())?;
    w.write_all(&h)?;
    w.write_all(&(payload.len() as u64).to_be_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Read one message, refusing headers over [`MAX_HEADER`] and payloads over
/// `max_payload` bytes before reading them. The payload buffer grows as
/// bytes arrive (starting at 1 MiB at most), so memory follows what the
/// peer actually sent, not the length it announced.
pub fn read_msg<R: Read, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    max_payload: u64,
) -> io::Result<(T, Vec<u8>)> {
    read_msg_checked(r, |_: &T| Ok(max_payload))
}

/// [`read_msg`] with the payload limit decided from the header, before any
/// payload byte is read: `limit` returns the most bytes this request may
/// carry, or an error message that refuses the request outright (e.g. an
/// ungoverned upload at a production node is refused without receiving
/// its shares).
pub fn read_msg_checked<R: Read, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    limit: impl FnOnce(&T) -> Result<u64, String>,
) -> io::Result<(T, Vec<u8>)> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let hl = u32::from_be_bytes(len) as usize;
    if hl > MAX_HEADER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("header of {hl} bytes exceeds {MAX_HEADER}"),
        ));
    }
    let mut h = vec![0u8; hl];
    r.read_exact(&mut h)?;
    let header: T = serde_json::from_slice(&h).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("malformed header: {e}"))
    })?;
    let max_payload =
        limit(&header).map_err(|m| io::Error::new(io::ErrorKind::PermissionDenied, m))?;
    let mut pl = [0u8; 8];
    r.read_exact(&mut pl)?;
    let pl = u64::from_be_bytes(pl);
    if pl > max_payload {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("payload of {pl} bytes exceeds the limit of {max_payload}"),
        ));
    }
    // The buffer grows with the bytes that actually arrive, never from the
    // announced length alone: a peer that announces gigabytes and sends
    // little costs little memory.
    let mut payload = Vec::with_capacity(pl.min(PAYLOAD_CHUNK as u64) as usize);
    let got = r.take(pl).read_to_end(&mut payload)? as u64;
    if got < pl {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("payload ended after {got} of {pl} bytes"),
        ));
    }
    Ok((header, payload))
}

/// Initial capacity of a payload buffer; it grows as bytes arrive.
const PAYLOAD_CHUNK: usize = 1 << 20;

/// Little-endian bytes of words.
pub fn words_to_bytes(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Words from little-endian bytes (length must be a multiple of 8).
pub fn bytes_to_words(b: &[u8]) -> Option<Vec<u64>> {
    b.len().is_multiple_of(8).then(|| {
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    })
}

/// Job ids and table names end up in file names: 1 to 64 characters of
/// `a-z`, `0-9`, `_` and `-`.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {s:?} is not valid: use 1 to 64 characters a-z, 0-9, '_' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let mut buf = Vec::new();
        let req = Request::Run {
            job: "j1".into(),
            program: Program::CountBelow {
                table: "t".into(),
                column: "c".into(),
                limit: -3,
            },
            recipient: "r".into(),
        };
        write_msg(&mut buf, &req, &[1, 2, 3]).unwrap();
        let (got, pl): (Request, Vec<u8>) = read_msg(&mut &buf[..], 10).unwrap();
        assert_eq!(got, req);
        assert_eq!(pl, vec![1, 2, 3]);
        let e = read_msg::<_, Request>(&mut &buf[..], 2).unwrap_err();
        assert!(e.to_string().contains("exceeds the limit"), "{e}");
        let mut huge = (MAX_HEADER as u32 + 1).to_be_bytes().to_vec();
        huge.extend([0u8; 16]);
        assert!(read_msg::<_, Request>(&mut &huge[..], 10).is_err());
        assert!(check_name("job", "a-b_1").is_ok());
        assert!(check_name("job", "../x").is_err());
        assert!(check_name("job", "").is_err());
    }

    #[test]
    fn an_announced_payload_is_not_reserved_before_it_arrives() {
        // A header announcing 2^40 bytes (1 TiB) with no limit, then 10
        // bytes and the end of the stream: a reader that reserved from
        // the prefix would abort on the allocation; this one errors out.
        let mut buf = Vec::new();
        let req = Request::Status { job: "j".into() };
        let h = serde_json::to_vec(&req).unwrap();
        buf.extend((h.len() as u32).to_be_bytes());
        buf.extend(&h);
        buf.extend((1u64 << 40).to_be_bytes());
        buf.extend([7u8; 10]);
        let e = read_msg::<_, Request>(&mut &buf[..], u64::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(
            e.to_string().contains("after 10 of 1099511627776 bytes"),
            "{e}"
        );
        // The same with u64::MAX announced.
        let at = 4 + h.len();
        buf[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        let e = read_msg::<_, Request>(&mut &buf[..], u64::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        // A payload larger than the first chunk still arrives whole, also
        // when the reader hands it over in small pieces.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.0.len()).min(4099);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let big: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 251) as u8).collect();
        let mut buf = Vec::new();
        write_msg(&mut buf, &req, &big).unwrap();
        let (got, pl): (Request, Vec<u8>) = read_msg(&mut Trickle(&buf), big.len() as u64).unwrap();
        assert_eq!((got, pl == big), (req, true));
    }

    #[test]
    fn query_programs_and_status_costs_round_trip() {
        let req = Request::Run {
            job: "j".into(),
            program: Program::Query {
                sql: "SELECT 1".into(),
                malicious: false,
            },
            recipient: "r".into(),
        };
        let mut buf = Vec::new();
        write_msg(&mut buf, &req, &[]).unwrap();
        assert_eq!(read_msg::<_, Request>(&mut &buf[..], 0).unwrap().0, req);
        let st = Response::Status {
            node: 1,
            job: "j".into(),
            state: JobState::Running,
            progress: Some(Progress { done: 3, total: 9 }),
            stats: Some(JobStats {
                rounds: 7,
                bytes_sent: 1 << 40,
                bytes_received: 5,
                millis: 12,
                compute_millis: 10,
                peak_rss_kib: None,
            }),
        };
        let mut buf = Vec::new();
        write_msg(&mut buf, &st, &[]).unwrap();
        assert_eq!(read_msg::<_, Response>(&mut &buf[..], 0).unwrap().0, st);
        // A status without the new fields (an older node) still reads.
        let old = r#"{"response":"status","node":0,"job":"j","state":{"state":"running"}}"#;
        let got: Response = serde_json::from_str(old).unwrap();
        assert!(matches!(
            got,
            Response::Status {
                progress: None,
                stats: None,
                ..
            }
        ));
    }
}
