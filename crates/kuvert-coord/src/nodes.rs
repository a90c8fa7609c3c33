//! How the coordinator talks to the three nodes: the [`NodeApi`] trait, and
//! its real implementation over the nodes' TLS API as PKI party
//! `coordinator` ([`TlsNodes`]).
//!
//! The coordinator only ever sends `Register`, `GovRun` and `GovStatus`:
//! it never uploads, never fetches, and holds no key that opens a result.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use kuvert_gov::Approval;
use kuvert_node::client::{ClientError, Nodes};
use kuvert_node::wire::{GovStatus, Request, Response};

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
    /// Send `GovRun` to every node.
    fn run<'a>(&'a self, analysis: &'a str) -> BoxFut<'a, [Result<(), NodeError>; 3]>;
    /// Ask every node for `GovStatus`.
    fn status<'a>(&'a self, analysis: &'a str) -> BoxFut<'a, [Result<GovStatus, NodeError>; 3]>;
}

/// The real nodes, over mutually authenticated TLS as party `coordinator`.
#[derive(Debug, Clone)]
pub struct TlsNodes {
    nodes: Nodes,
}

impl TlsNodes {
    /// The party certificate `pki_dir/party-coordinator.crt` (and `.key`)
    /// is the coordinator's TLS identity.
    pub fn new(pki_dir: &Path, addrs: [SocketAddr; 3], timeout: Duration) -> Result<Self, String> {
        let mut nodes = Nodes::new(pki_dir, "coordinator", addrs).map_err(|e| e.to_string())?;
        nodes.timeout = timeout;
        Ok(TlsNodes { nodes })
    }

    async fn each<T: Send + 'static>(
        &self,
        req: Request,
        f: fn(usize, Response) -> Result<T, NodeError>,
    ) -> [Result<T, NodeError>; 3] {
        let mut handles = Vec::with_capacity(3);
        for i in 0..3 {
            let nodes = self.nodes.clone();
            let req = req.clone();
            handles.push(tokio::task::spawn_blocking(move || {
                let answer = nodes.connect(i).and_then(|mut c| c.ask(&req, &[]));
                match answer {
                    Ok((resp, _payload)) => f(i, resp),
                    Err(ClientError::Refused { message, .. }) => Err(NodeError::Refused(message)),
                    Err(e) => Err(NodeError::Unreachable(e.to_string())),
                }
            }));
        }
        let mut out: [Result<T, NodeError>; 3] = [
            Err(NodeError::Unreachable(String::new())),
            Err(NodeError::Unreachable(String::new())),
            Err(NodeError::Unreachable(String::new())),
        ];
        for (i, h) in handles.into_iter().enumerate() {
            out[i] = h.await.unwrap_or_else(|e| {
                Err(NodeError::Unreachable(format!("client task failed: {e}")))
            });
        }
        out
    }
}

fn ok_answer(_: usize, r: Response) -> Result<(), NodeError> {
    match r {
        Response::Ok { .. } => Ok(()),
        Response::Error { message } => Err(NodeError::Refused(message)),
        other => Err(NodeError::Unreachable(format!(
            "unexpected answer {other:?}; is the node a current version?"
        ))),
    }
}

fn status_answer(_: usize, r: Response) -> Result<GovStatus, NodeError> {
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
        Box::pin(self.each(req, ok_answer))
    }

    fn run<'a>(&'a self, analysis: &'a str) -> BoxFut<'a, [Result<(), NodeError>; 3]> {
        let req = Request::GovRun {
            analysis: analysis.to_string(),
        };
        Box::pin(self.each(req, ok_answer))
    }

    fn status<'a>(&'a self, analysis: &'a str) -> BoxFut<'a, [Result<GovStatus, NodeError>; 3]> {
        let req = Request::GovStatus {
            analysis: analysis.to_string(),
        };
        Box::pin(self.each(req, status_answer))
    }
}
