//! The coordinator's HTTPS server: TLS 1.3 (rustls with kuvert-net's
//! crypto provider, so the hybrid post-quantum key exchange applies here
//! too), optional client certificates verified against the configured
//! client CAs, and hyper's HTTP/1.1 on every accepted TLS stream.
//!
//! Plain HTTP is refused: a connection whose first byte is not a TLS
//! handshake record gets a short `400` that says to use `https://`, and is
//! closed; nothing is routed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kuvert_net::pki::{self, PeerIdentity};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::auth::ClientCert;
use crate::{Config, CoordError};

/// A TLS handshake (and the first byte before it) must come this fast.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive this fast (slow-loris guard).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many connections are served at once; more wait in the
/// kernel's accept queue.
const MAX_CONNECTIONS: usize = 512;

/// What to run to make the coordinator's server certificate.
pub const MAKE_CERT_HELP: &str = "make the coordinator's TLS certificate and key: on the \
coordinator's machine `kuvert pki request --server --host HOST --out DIR` (writes DIR/server.key \
and DIR/server.csr; HOST is the name or address its clients use), at the CA `kuvert pki sign \
--server --ca CA_DIR --csr DIR/server.csr --out DIR/server.crt`, then start with --tls-cert \
DIR/server.crt --tls-key DIR/server.key (and give the clients the CA's ca.crt)";

fn tls_err(what: &str, path: &Path, e: impl std::fmt::Display) -> CoordError {
    CoordError::Tls(format!("{what} {}: {e}", path.display()))
}

/// The client CAs in force: `config.client_ca`, or else the deployment
/// CA `pki_dir/ca.crt` when it exists.
pub fn client_cas(config: &Config) -> Vec<PathBuf> {
    if !config.client_ca.is_empty() {
        return config.client_ca.clone();
    }
    let ca = pki::PkiLayout::new(&config.pki_dir).ca_cert();
    if ca.exists() {
        vec![ca]
    } else {
        vec![]
    }
}

/// The rustls server configuration of `config`: its certificate and key,
/// TLS 1.3, client certificates optional but verified when sent.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, CoordError> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Err(CoordError::Tls(format!(
            "the coordinator serves only HTTPS and needs --tls-cert and --tls-key; {MAKE_CERT_HELP}"
        )));
    };
    let certs = pki::load_certs(cert).map_err(|e| tls_err("certificate", cert, e))?;
    let key_der = pki::load_key(key).map_err(|e| tls_err("key", key, e))?;
    let provider = kuvert_net::tls::provider();
    let cas = client_cas(config);
    let verifier = if cas.is_empty() {
        WebPkiClientVerifier::no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for ca in &cas {
            for c in pki::load_certs(ca).map_err(|e| tls_err("client CA", ca, e))? {
                roots.add(c).map_err(|e| tls_err("client CA", ca, e))?;
            }
        }
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| CoordError::Tls(format!("client CAs: {e}")))?
    };
    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| CoordError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            CoordError::Tls(format!(
                "{} and {} do not make a usable certificate and key: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(sc))
}

/// What a plain-HTTP request gets before the connection is closed.
fn plain_http_answer() -> String {
    let body = "This is the Kuvert coordinator: it speaks only HTTPS. Use https:// instead.\n";
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: \
         close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Serve `app` on `listener` over TLS until `stop` turns true; then let
/// the open connections finish (at most 5 s).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let stopped = stopped(stop);
    tokio::pin!(stopped);
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(io::Error::other)?,
            _ = &mut stopped => break,
        };
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let mut first = [0u8; 1];
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
                Ok(Ok(1)) => {}
                _ => return,
            }
            if first[0] != 0x16 {
                // Not a TLS handshake: most likely http://.
                let mut tcp = tcp;
                if first[0].is_ascii_uppercase() {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        tcp.write_all(plain_http_answer().as_bytes()),
                    )
                    .await;
                }
                let _ = tcp.shutdown().await;
                return;
            }
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake: {e}");
                    return;
                }
                Err(_) => return,
            };
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| match pki::peer_identity(c) {
                    Ok(PeerIdentity::Party(name)) => Some(ClientCert(name)),
                    // A node's certificate, or no usable name: no principal.
                    _ => None,
                });
            let svc =
                tower::ServiceExt::map_request(app, move |mut req: hyper::Request<Incoming>| {
                    if let Some(c) = &cert {
                        req.extensions_mut().insert(c.clone());
                    }
                    req
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// Ends when `rx` turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    loop {
        let done = *rx.borrow_and_update();
        if done || rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_answer_is_well_formed() {
        let text = super::plain_http_answer();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), len);
    }
}
