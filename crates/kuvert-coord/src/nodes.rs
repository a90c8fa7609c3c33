//! How the coordinator talks to the three nodes: the [`NodeApi`] trait, and
//! its real implementation over the nodes' TLS API as PKI party
//! `coordinator` ([`TlsNodes`]).
//!
//! The coordinator only ever sends `Register`, `GovRun` (with its audit
//! head, which each node countersigns into its own log), `GovStatus` and
//! `GovLedger` (to show the nodes' privacy budgets): it never uploads,
//! never fetches, and holds no key that opens a result.

use std::future::Future;
use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kuvert_gov::receipt::AuditHead;
use kuvert_gov::Approval;
use kuvert_net::tls;
use kuvert_node::budget::Account;
use kuvert_node::wire::{self, GovStatus, Request, Response};

/// A boxed future (the trait is used as `Arc<dyn NodeApi>`).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a node call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// No answer (connection refused, TLS failure, timeout): transient; the
    /// coordinator waits and asks again.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The node answered and said no (bad approval, altered spec, missing
    /// tables, ...): the reason is the node's own text.
    #[error("refused: {0}")]
    Refused(String),
}

/// The three nodes, as the coordinator uses them. Index `i` of each
/// returned array is node `i`'s answer.
pub trait NodeApi: Send + Sync + 'static {
    /// Send `Register{spec, approvals}` to every node.
    fn register<'a>(
        &'a self,
        spec_toml: &'a str,
        approvals: &'a [Approval],
    ) -> BoxFut<'a, [Result<(), NodeError>; 3]>;
    /// Send `GovRun` to every node, with the coordinator's audit head for
    /// the nodes to countersign.
    fn run<'a>(
        &'a self,
        analysis: &'a str,
        head: Option<AuditHead>,
    ) -> BoxFut<'a, [Result<(), NodeError>; 3]>;
    /// Every node's privacy-budget ledger (the nodes enforce the budgets;
    /// the coordinator only shows them).
    fn ledgers(&self) -> BoxFut<'_, [Result<Vec<Account>, NodeError>; 3]>;
    /// Ask every node for `GovStatus`.
    fn status<'a>(&'a self, analysis: &'a str) -> BoxFut<'a, [Result<GovStatus, NodeError>; 3]>;
}

/// The real nodes, over mutually authenticated TLS as party `coordinator`.
///
/// Each request opens its own connection with a timeout on the TCP
/// connect, the TLS handshake **and** every read and write, so a node that
/// accepts a connection and then says nothing costs one timeout, never a
/// blocked thread.
#[derive(Clone)]
pub struct TlsNodes {
    config: Arc<rustls::ClientConfig>,
    addrs: [SocketAddr; 3],
    timeout: Duration,
}

impl std::fmt::Debug for TlsNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsNodes {{ addrs: {:?} }}", self.addrs)
    }
}

/// Largest answer accepted from a node (status answers carry no payload;
/// a ledger carries every account's charges).
const MAX_ANSWER: u64 = 16 << 20;

impl TlsNodes {
    /// The party certificate `pki_dir/party-coordinator.crt` (and `.key`)
    /// is the coordinator's TLS identity. With a federation file, node `i`
    /// is reached only if it presents the key the (verified) federation
    /// lists; without one (development), `pki_dir/ca.crt` is the anchor.
    pub fn new(
        pki_dir: &Path,
        federation: Option<&Path>,
        addrs: [SocketAddr; 3],
        timeout: Duration,
    ) -> Result<Self, String> {
        let config = match federation {
            Some(f) => {
                let fed = kuvert_net::Federation::load_verified(f).map_err(|e| e.to_string())?;
                let id = kuvert_net::Identity::load_party(pki_dir, "coordinator").map_err(|e| {
                    format!("cannot load party \"coordinator\"'s TLS identity: {e}")
                })?;
                tls::pinned_client_config(
                    [0, 1, 2].map(|j| fed.nodes[j].fingerprint.clone()),
                    &format!("federation {:?}", fed.name),
                    &id,
                )
                .map_err(|e| e.to_string())?
            }
            None => tls::party_client_config(pki_dir, "coordinator")
                .map_err(|e| format!("cannot load party \"coordinator\"'s TLS identity: {e}"))?,
        };
        Ok(TlsNodes {
            config,
            addrs,
            timeout,
        })
    }

    /// One request to node `i`, one answer.
    fn ask(&self, i: usize, req: &Request) -> Result<(Response, Vec<u8>), NodeError> {
        let addr = self.addrs[i];
        let un =
            |d: String| NodeError::Unreachable(format!("node {i} ({addr}) is unreachable: {d}"));
        let tcp = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| un(e.to_string()))?;
        let (conn, tcp) = tls::connect(tcp, &self.config, tls::node_server_name(i), self.timeout)
            .map_err(|e| un(e.to_string()))?;
        tls::set_timeouts(&tcp, Some(self.timeout)).map_err(|e| un(e.to_string()))?;
        let mut s = BufReader::new(rustls::StreamOwned::new(conn, tcp));
        wire::write_msg(s.get_mut(), req, &[]).map_err(|e| un(format!("sending failed: {e}")))?;
        let (resp, payload) = wire::read_msg::<_, Response>(&mut s, MAX_ANSWER).map_err(|e| {
            un(format!(
                "no answer within {} s: {e}",
                self.timeout.as_secs()
            ))
        })?;
        Ok((resp, payload))
    }

    async fn each<T: Send + 'static>(
        &self,
        req: Request,
        f: fn((Response, Vec<u8>)) -> Result<T, NodeError>,
    ) -> [Result<T, NodeError>; 3] {
        let req = Arc::new(req);
        let handles = [0, 1, 2].map(|i| {
            let me = self.clone();
            let req = req.clone();
            tokio::task::spawn_blocking(move || me.ask(i, &req).and_then(f))
        });
        let [h0, h1, h2] = handles;
        [join(h0).await, join(h1).await, join(h2).await]
    }
}

async fn join<T>(h: tokio::task::JoinHandle<Result<T, NodeError>>) -> Result<T, NodeError> {
    h.await
        .unwrap_or_else(|e| Err(NodeError::Unreachable(format!("client task failed: {e}"))))
}

fn ok_answer(r: Response) -> Result<(), NodeError> {
    match r {
        Response::Ok { .. } => Ok(()),
        Response::Error { message } => Err(NodeError::Refused(message)),
        other => Err(NodeError::Unreachable(format!(
            "unexpected answer {other:?}; is the node a current version?"
        ))),
    }
}

fn ledger_answer(r: (Response, Vec<u8>)) -> Result<Vec<Account>, NodeError> {
    match r {
        (Response::Ledger { accounts, .. }, payload) => {
            let a: Vec<Account> = serde_json::from_slice(&payload)
                .map_err(|e| NodeError::Unreachable(format!("unreadable ledger: {e}")))?;
            if a.len() as u64 != accounts {
                return Err(NodeError::Unreachable(
                    "the ledger's account count differs from its header".into(),
                ));
            }
            Ok(a)
        }
        (Response::Error { message }, _) => Err(NodeError::Refused(message)),
        (other, _) => Err(NodeError::Unreachable(format!(
            "unexpected answer {other:?}; is the node a current version?"
        ))),
    }
}

fn status_answer(r: Response) -> Result<GovStatus, NodeError> {
    match r {
        Response::GovStatus(s) => Ok(*s),
        Response::Error { message } => Err(NodeError::Refused(message)),
        other => Err(NodeError::Unreachable(format!(
            "unexpected answer {other:?}; is the node a current version?"
        ))),
    }
}

impl NodeApi for TlsNodes {
    fn register<'a>(
        &'a self,
        spec_toml: &'a str,
        approvals: &'a [Approval],
    ) -> BoxFut<'a, [Result<(), NodeError>; 3]> {
        let req = Request::Register {
            spec: spec_toml.to_string(),
            approvals: approvals.to_vec(),
        };
        Box::pin(self.each(req, |r| ok_answer(r.0)))
    }

    fn run<'a>(
        &'a self,
        analysis: &'a str,
        head: Option<AuditHead>,
    ) -> BoxFut<'a, [Result<(), NodeError>; 3]> {
        let req = Request::GovRun {
            analysis: analysis.to_string(),
            coordinator_head: head,
        };
        Box::pin(self.each(req, |r| ok_answer(r.0)))
    }

    fn ledgers(&self) -> BoxFut<'_, [Result<Vec<Account>, NodeError>; 3]> {
        let req = Request::GovLedger {
            contributor_key: None,
        };
        Box::pin(self.each(req, ledger_answer))
    }

    fn status<'a>(&'a self, analysis: &'a str) -> BoxFut<'a, [Result<GovStatus, NodeError>; 3]> {
        let req = Request::GovStatus {
            analysis: analysis.to_string(),
        };
        Box::pin(self.each(req, |r| status_answer(r.0)))
    }
}
