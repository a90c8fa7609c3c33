//! [`TlsTransport`]: the engine's [`Transport`] between three node processes.
//!
//! # Connections
//! Each unordered pair of nodes shares exactly one TLS connection: node `i`
//! dials every node `j > i` (retrying while `j` starts, up to
//! [`NetConfig::connect_timeout`]) and accepts connections from every node
//! `j < i`. Identity comes from the certificates only: the dialler verifies
//! the server name `node-<j>`, the acceptor reads `node-<i>` from the
//! verified client certificate and refuses anything else (a party's client
//! certificate, a second connection from the same node, a node with a higher
//! id). The first frame in each direction is a `Hello` with the sender's id,
//! which must agree with its certificate.
//!
//! The acceptor runs each TLS handshake on its own thread, so a client that
//! connects and then stalls or trickles bytes holds only that thread, not
//! the session setup; at most 64 are in flight (the
//! oldest is closed to make room).
//!
//! # Rounds without deadlock and with bounded memory
//! Each link has one writer thread and one reader thread, which own the two
//! halves of the socket and share the rustls connection behind a mutex (held
//! only while encrypting or decrypting, never while blocked on the socket).
//! [`Transport::round`] cuts every outgoing message into chunks of
//! [`NetConfig::chunk_size`] bytes and waits, with one `select`, on "a
//! writer can take a chunk" and "a reader has a chunk" for every peer with
//! work left, so it always makes progress in whichever direction can move.
//! The channels between `round` and the threads hold at most
//! [`NetConfig::queue_chunks`] chunks, so memory per link is bounded by a few
//! chunks whatever the message size. Chunk buffers are recycled.
//!
//! # Failures
//! - No progress with a peer for [`NetConfig::io_timeout`] (default 30 s):
//!   `Timeout { peer }`.
//! - End of stream, reset, or the peer's orderly `Bye` in the middle of a
//!   round: `PeerGone { peer }`.
//! - A frame that does not decode, a message of another length or sequence
//!   number than this party expects, or a TLS record error:
//!   `Malformed { peer }`; the connection is dropped and the event logged.
//!
//! After any error the transport is unusable: later rounds fail at once.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Select, Sender};
use kuvert_mpc::transport::{Incoming, Outgoing, PartyId, Transport, TransportError, PARTIES};

use crate::frame::{self, FrameHeader, FrameKind, HEADER_LEN, MAX_PAYLOAD};
use crate::pki::PeerIdentity;
use crate::tls::{self, NodeTls};

/// Plaintext handed to rustls per lock, so the reader is never locked out
/// for long while a big chunk is encrypted.
const ENCRYPT_PIECE: usize = 256 << 10;
/// Socket read buffer of the reader threads.
const NET_READ: usize = 256 << 10;
/// Unfinished TLS handshakes on the node-to-node port at once; one more
/// closes the oldest.
const MAX_PENDING_HANDSHAKES: usize = 64;
/// Connections taken from the listener before results are looked at.
const ACCEPT_BATCH: usize = 16;

/// Settings of one node's transport.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// This node's id: 0, 1 or 2.
    pub party: PartyId,
    /// Address of every node, indexed by id. This node listens on its own
    /// entry (unless a listener is passed to
    /// [`TlsTransport::connect_with_listener`]).
    pub nodes: [SocketAddr; PARTIES],
    /// This node's TLS configurations (see [`NodeTls::load`]).
    pub tls: NodeTls,
    /// How long to keep trying to reach the other nodes at start-up.
    pub connect_timeout: Duration,
    /// How long a round waits without any progress with a peer before it
    /// gives up with `Timeout`.
    pub io_timeout: Duration,
    /// Bytes per data frame; at most [`MAX_PAYLOAD`].
    pub chunk_size: usize,
    /// Chunks in flight per direction and link (bounds memory).
    pub queue_chunks: usize,
}

impl NetConfig {
    /// Defaults: 30 s to connect, 30 s I/O deadline, 1 MiB chunks, 4 chunks
    /// queued per direction.
    pub fn new(party: PartyId, nodes: [SocketAddr; PARTIES], tls: NodeTls) -> NetConfig {
        NetConfig {
            party,
            nodes,
            tls,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(30),
            chunk_size: 1 << 20,
            queue_chunks: 4,
        }
    }
}

/// What the writer thread is asked to do.
enum ToWriter {
    /// A data frame: the buffer holds the 12-byte header and the payload.
    Frame(Vec<u8>),
    /// rustls has something to send (e.g. a key update answer).
    Flush,
    /// Send `Bye`, close the TLS session and the write half, and exit.
    Bye,
}

/// What the reader thread delivers.
enum FromReader {
    Data {
        seq: u32,
        end: bool,
        payload: Vec<u8>,
    },
    Failed(TransportError),
}

struct Link {
    tcp: TcpStream,
    to_writer: Option<Sender<ToWriter>>,
    from_reader: Option<Receiver<FromReader>>,
    /// Buffers the writer has finished with.
    spent_frames: Receiver<Vec<u8>>,
    /// Buffers handed back to the reader for reuse.
    recycle_payloads: Sender<Vec<u8>>,
    /// Why the writer stopped, if it failed.
    writer_error: Arc<Mutex<Option<String>>>,
    writer_done: Receiver<()>,
    reader_done: Receiver<()>,
    threads: Vec<JoinHandle<()>>,
    send_seq: u32,
    recv_seq: u32,
}

/// The TLS transport of one node. See the module docs.
pub struct TlsTransport {
    party: PartyId,
    links: Vec<Option<Link>>,
    io_timeout: Duration,
    chunk_size: usize,
    /// Set after the first error; every later round fails with it.
    broken: Option<(PartyId, String)>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("party", &self.party)
            .field("chunk_size", &self.chunk_size)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn local(e: impl std::fmt::Display) -> TransportError {
    TransportError::Local(e.to_string())
}

fn gone(peer: PartyId, detail: impl Into<String>) -> TransportError {
    TransportError::PeerGone {
        peer,
        detail: detail.into(),
    }
}

fn lock(conn: &Mutex<rustls::Connection>) -> MutexGuard<'_, rustls::Connection> {
    // A poisoned lock means a thread panicked while holding it; the
    // connection state is still memory-safe to use, and the link will fail
    // on its own if it is inconsistent.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

impl TlsTransport {
    /// Listen on `config.nodes[config.party]`, connect to the other two
    /// nodes, and start the I/O threads.
    pub fn connect(config: NetConfig) -> Result<TlsTransport, TransportError> {
        let addr = *config
            .nodes
            .get(config.party)
            .ok_or_else(|| local(format!("party id {} is not 0, 1 or 2", config.party)))?;
        let listener =
            TcpListener::bind(addr).map_err(|e| local(format!("cannot listen on {addr}: {e}")))?;
        TlsTransport::connect_with_listener(config, listener)
    }

    /// As [`TlsTransport::connect`], with a listener the caller bound.
    pub fn connect_with_listener(
        config: NetConfig,
        listener: TcpListener,
    ) -> Result<TlsTransport, TransportError> {
        let me = config.party;
        if me >= PARTIES {
            return Err(local(format!("party id {me} is not 0, 1 or 2")));
        }
        if config.chunk_size == 0 || config.chunk_size > MAX_PAYLOAD {
            return Err(local(format!(
                "chunk size {} must be between 1 and {MAX_PAYLOAD} bytes",
                config.chunk_size
            )));
        }
        let deadline = Instant::now() + config.connect_timeout;
        let mut conns: Vec<Option<(rustls::Connection, TcpStream)>> =
            (0..PARTIES).map(|_| None).collect();

        // Dial upwards first, then accept from below: the highest node only
        // accepts, so the waits cannot form a cycle.
        for (j, slot) in conns.iter_mut().enumerate().skip(me + 1) {
            let addr = config.nodes[j];
            let tcp = tls::tcp_connect_retry(addr, deadline)
                .map_err(|e| gone(j, format!("cannot connect to node {j} at {addr}: {e}")))?;
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            let (conn, tcp) = tls::connect(tcp, &config.tls.client, tls::node_server_name(j), left)
                .map_err(|e| gone(j, e.to_string()))?;
            let mut conn = rustls::Connection::Client(conn);
            let tcp = hello(&mut conn, tcp, me, j, left)?;
            *slot = Some((conn, tcp));
        }
        listener
            .set_nonblocking(true)
            .map_err(|e| local(format!("listener: {e}")))?;
        // Handshakes run concurrently, one scoped thread per accepted
        // socket, so a client that connects and then stalls (or trickles
        // bytes) holds only its own thread, never the session setup. The
        // results come back over a channel; identities are checked here.
        let config = &config;
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        std::thread::scope(|s| {
            // Handshakes in flight: a clone of each socket, to end it.
            let mut pending: std::collections::BTreeMap<u64, (SocketAddr, TcpStream)> =
                std::collections::BTreeMap::new();
            let mut next_key = 0u64;
            let result = (|| -> Result<(), TransportError> {
                while (0..me).any(|j| conns[j].is_none()) {
                    if Instant::now() >= deadline {
                        let missing: Vec<_> = (0..me).filter(|j| conns[*j].is_none()).collect();
                        return Err(TransportError::Timeout {
                            peer: missing[0],
                            seconds: config.connect_timeout.as_secs(),
                        });
                    }
                    let mut accepted = 0;
                    while accepted < ACCEPT_BATCH {
                        let (tcp, from) = match listener.accept() {
                            Ok(x) => x,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(local(format!("accept: {e}"))),
                        };
                        accepted += 1;
                        let watch = match tcp.set_nonblocking(false).and_then(|()| tcp.try_clone())
                        {
                            Ok(w) => w,
                            Err(e) => {
                                tracing::warn!(peer = %from, error = %e, node = me, "cannot use an accepted socket; closed");
                                continue;
                            }
                        };
                        if pending.len() >= MAX_PENDING_HANDSHAKES {
                            // Real nodes finish their handshake in
                            // milliseconds: the oldest unfinished one is
                            // the likeliest to be a stalled client.
                            if let Some((_, (old, sock))) = pending.pop_first() {
                                let _ = sock.shutdown(Shutdown::Both);
                                tracing::warn!(peer = %old, node = me, limit = MAX_PENDING_HANDSHAKES,
                                    "too many unfinished TLS handshakes; closed the oldest");
                            }
                        }
                        let left = deadline
                            .saturating_duration_since(Instant::now())
                            .clamp(Duration::from_secs(1), Duration::from_secs(10));
                        let key = next_key;
                        next_key += 1;
                        let tx = done_tx.clone();
                        let spawned = std::thread::Builder::new()
                            .name(format!("node{me}-handshake"))
                            .spawn_scoped(s, move || {
                                let r = tls::accept(tcp, &config.tls.server, left);
                                let _ = tx.send((key, from, left, r));
                            });
                        match spawned {
                            Ok(_) => {
                                pending.insert(key, (from, watch));
                            }
                            Err(e) => {
                                let _ = watch.shutdown(Shutdown::Both);
                                tracing::warn!(peer = %from, error = %e, node = me, "cannot start a handshake thread; connection closed");
                            }
                        }
                    }
                    let wait = if accepted > 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(5)
                    };
                    let Ok((key, from, left, done)) = done_rx.recv_timeout(wait) else {
                        continue;
                    };
                    pending.remove(&key);
                    let Ok((conn, tcp, id)) = done else {
                        continue; // logged by tls::accept; keep waiting for the real nodes
                    };
                    let j = match id {
                        PeerIdentity::Node(j) if j < me && conns[j].is_none() => j,
                        other => {
                            tracing::warn!(peer = %from, identity = ?other, node = me,
                                "refused connection: only nodes with a lower id connect to this node, once each");
                            continue;
                        }
                    };
                    let mut conn = rustls::Connection::Server(conn);
                    match hello(&mut conn, tcp, me, j, left) {
                        Ok(tcp) => conns[j] = Some((conn, tcp)),
                        Err(e) => {
                            tracing::warn!(peer = %from, error = %e, "hello exchange failed");
                            continue;
                        }
                    }
                }
                Ok(())
            })();
            // End the handshakes still in flight, so the scope's threads
            // finish now rather than at their timeout.
            for (_, sock) in pending.values() {
                let _ = sock.shutdown(Shutdown::Both);
            }
            result
        })?;

        let mut links: Vec<Option<Link>> = (0..PARTIES).map(|_| None).collect();
        for (j, c) in conns.into_iter().enumerate() {
            if let Some((conn, tcp)) = c {
                links[j] = Some(start_link(j, conn, tcp, config.queue_chunks.max(1))?);
            }
        }
        tracing::info!(
            node = me,
            "connected to both other nodes over mutually authenticated TLS 1.3"
        );
        Ok(TlsTransport {
            party: me,
            links,
            io_timeout: config.io_timeout,
            chunk_size: config.chunk_size,
            broken: None,
        })
    }

    /// Close every link in an orderly way (send `Bye`, flush, wait briefly
    /// for the peer's close). Dropping the transport does the same.
    pub fn close(self) {}

    /// Drop every connection at once, without `Bye`, as if the process had
    /// crashed. For tests of the other parties' error handling.
    #[doc(hidden)]
    pub fn abort(mut self) {
        for l in self.links.iter_mut().flatten() {
            let _ = l.tcp.shutdown(Shutdown::Both);
        }
    }

    fn fail(&mut self, e: TransportError) -> TransportError {
        let peer = e.peer().unwrap_or(self.party);
        if let TransportError::Malformed { peer, detail } = &e {
            tracing::warn!(peer, reason = %detail, "dropping connection after a malformed message");
        } else {
            tracing::warn!(error = %e, "transport failed");
        }
        if let Some(Some(l)) = self.links.get(peer) {
            if !matches!(e, TransportError::Timeout { .. }) {
                let _ = l.tcp.shutdown(Shutdown::Both);
            }
        }
        self.broken = Some((peer, e.to_string()));
        e
    }

    fn round_inner(
        &mut self,
        outgoing: &[Outgoing<'_>],
        incoming: &mut [Incoming<'_>],
    ) -> Result<(), TransportError> {
        // Per peer: the queue of messages to send and to receive, in order.
        let mut out_q: [Vec<&[u8]>; PARTIES] = Default::default();
        for o in outgoing {
            self.check_peer(o.to)?;
            if !o.data.is_empty() {
                out_q[o.to].push(o.data);
            }
        }
        let mut in_q: [Vec<&mut [u8]>; PARTIES] = Default::default();
        for i in incoming.iter_mut() {
            self.check_peer(i.from)?;
            if !i.buf.is_empty() {
                in_q[i.from].push(&mut *i.buf);
            }
        }
        // Progress cursors: (message index, byte offset).
        let mut out_pos = [(0usize, 0usize); PARTIES];
        let mut in_pos = [(0usize, 0usize); PARTIES];
        let mut last_progress = [Instant::now(); PARTIES];
        let chunk = self.chunk_size;

        loop {
            let mut sel = Select::new();
            // (peer, is_send) for each registered operation, in order.
            let mut ops: Vec<(PartyId, bool)> = Vec::with_capacity(2 * PARTIES);
            for p in 0..PARTIES {
                let Some(link) = self.links[p].as_ref() else {
                    continue;
                };
                if out_pos[p].0 < out_q[p].len() {
                    let Some(tx) = link.to_writer.as_ref() else {
                        return Err(gone(p, "link already closed"));
                    };
                    sel.send(tx);
                    ops.push((p, true));
                }
                if in_pos[p].0 < in_q[p].len() {
                    let Some(rx) = link.from_reader.as_ref() else {
                        return Err(gone(p, "link already closed"));
                    };
                    sel.recv(rx);
                    ops.push((p, false));
                }
            }
            if ops.is_empty() {
                return Ok(());
            }
            // The deadline runs from the oldest progress among the peers we
            // still wait for; that peer is blamed on timeout.
            let (stalest, since) = ops
                .iter()
                .map(|(p, _)| (*p, last_progress[*p]))
                .min_by_key(|(_, t)| *t)
                .unwrap_or((ops[0].0, Instant::now()));
            let oper = match sel.select_deadline(since + self.io_timeout) {
                Ok(oper) => oper,
                Err(_) => {
                    return Err(TransportError::Timeout {
                        peer: stalest,
                        seconds: self.io_timeout.as_secs(),
                    })
                }
            };
            let (p, is_send) = ops[oper.index()];
            let link = self.links[p].as_ref().ok_or_else(|| gone(p, "no link"))?;
            if is_send {
                let (mi, off) = out_pos[p];
                let msg = out_q[p][mi];
                let n = (msg.len() - off).min(chunk);
                let end = off + n == msg.len();
                let header = FrameHeader::data(link.send_seq, n, end).map_err(local)?;
                let mut buf = link.spent_frames.try_recv().unwrap_or_default();
                buf.clear();
                buf.reserve(HEADER_LEN + n);
                buf.extend_from_slice(&header.encode());
                buf.extend_from_slice(&msg[off..off + n]);
                let tx = link
                    .to_writer
                    .as_ref()
                    .ok_or_else(|| gone(p, "link already closed"))?;
                if oper.send(tx, ToWriter::Frame(buf)).is_err() {
                    let why = link
                        .writer_error
                        .lock()
                        .ok()
                        .and_then(|e| e.clone())
                        .unwrap_or_else(|| "connection closed".into());
                    return Err(gone(p, why));
                }
                out_pos[p] = if end { (mi + 1, 0) } else { (mi, off + n) };
                if end {
                    if let Some(l) = self.links[p].as_mut() {
                        l.send_seq = l.send_seq.wrapping_add(1);
                    }
                }
            } else {
                let rx = link
                    .from_reader
                    .as_ref()
                    .ok_or_else(|| gone(p, "link already closed"))?;
                let msg = match oper.recv(rx) {
                    Ok(m) => m,
                    Err(_) => return Err(gone(p, "connection closed")),
                };
                let (seq, end, payload) = match msg {
                    FromReader::Data { seq, end, payload } => (seq, end, payload),
                    FromReader::Failed(e) => return Err(e),
                };
                let (mi, off) = in_pos[p];
                let want = link.recv_seq;
                let dst = &mut in_q[p][mi];
                if seq != want {
                    return Err(TransportError::Malformed {
                        peer: p,
                        detail: format!("got a piece of message {seq}, expected message {want}: the nodes disagree about the protocol"),
                    });
                }
                let total = dst.len();
                let have = off + payload.len();
                if have > total || (end && have != total) || (!end && have == total) {
                    return Err(TransportError::Malformed {
                        peer: p,
                        detail: format!(
                            "message {seq} is {}{have} bytes long, expected exactly {total}",
                            if end { "" } else { "at least " }
                        ),
                    });
                }
                dst[off..have].copy_from_slice(&payload);
                let _ = link.recycle_payloads.try_send(payload);
                in_pos[p] = if end { (mi + 1, 0) } else { (mi, have) };
                if end {
                    if let Some(l) = self.links[p].as_mut() {
                        l.recv_seq = l.recv_seq.wrapping_add(1);
                    }
                }
            }
            last_progress[p] = Instant::now();
        }
    }

    fn check_peer(&self, p: PartyId) -> Result<(), TransportError> {
        if p >= PARTIES || p == self.party || self.links[p].is_none() {
            return Err(local(format!(
                "party {} cannot exchange messages with party {p}",
                self.party
            )));
        }
        Ok(())
    }
}

impl Transport for TlsTransport {
    fn party(&self) -> PartyId {
        self.party
    }

    fn round(
        &mut self,
        outgoing: &[Outgoing<'_>],
        incoming: &mut [Incoming<'_>],
    ) -> Result<(), TransportError> {
        if let Some((peer, why)) = &self.broken {
            return Err(gone(
                *peer,
                format!("the transport failed earlier ({why}); start a new session"),
            ));
        }
        match self.round_inner(outgoing, incoming) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl Drop for TlsTransport {
    fn drop(&mut self) {
        let grace = self.io_timeout.min(Duration::from_secs(10));
        let broken = self.broken.is_some();
        for l in self.links.iter_mut().flatten() {
            if broken {
                // Nothing more will be exchanged; do not wait for anyone.
                let _ = l.tcp.shutdown(Shutdown::Both);
            } else if let Some(tx) = l.to_writer.as_ref() {
                let _ = tx.send_timeout(ToWriter::Bye, grace);
            }
            l.to_writer.take();
            // The reader now discards whatever still arrives.
            l.from_reader.take();
        }
        for l in self.links.iter_mut().flatten() {
            // Let the writer flush what the last round queued, then wait
            // for the peer's own close, so that neither side resets a
            // connection that still holds the other's data. A stuck peer
            // gets `grace`, then the connection is cut.
            let _ = l.writer_done.recv_timeout(grace);
            let _ = l.reader_done.recv_timeout(grace);
            let _ = l.tcp.shutdown(Shutdown::Both);
            for t in l.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

/// Exchange `Hello` frames on a fresh connection and check that the peer
/// calls itself `peer`.
fn hello(
    conn: &mut rustls::Connection,
    mut tcp: TcpStream,
    me: PartyId,
    peer: PartyId,
    timeout: Duration,
) -> Result<TcpStream, TransportError> {
    let h = FrameHeader {
        kind: FrameKind::Hello,
        flags: 0,
        seq: 0,
        len: 1,
    };
    let mut msg = h.encode().to_vec();
    msg.push(me as u8);
    let r: Result<(), TransportError> = (|| {
        tls::set_timeouts(&tcp, Some(timeout)).map_err(local)?;
        tls::write_plain_all(conn, &mut tcp, &msg)
            .map_err(|e| gone(peer, format!("hello: {e}")))?;
        let mut got = [0u8; HEADER_LEN + 1];
        tls::read_plain_exact(conn, &mut tcp, &mut got)
            .map_err(|e| gone(peer, format!("hello: {e}")))?;
        let malformed = |detail: String| TransportError::Malformed { peer, detail };
        match frame::decode(&got) {
            Ok(Some((f, _))) if f.header.kind == FrameKind::Hello => {
                if f.payload[0] as usize != peer {
                    return Err(malformed(format!(
                        "hello says party {}, but the certificate is node-{peer}",
                        f.payload[0]
                    )));
                }
            }
            Ok(_) => return Err(malformed("first frame is not a hello".into())),
            Err(e) => return Err(malformed(e.to_string())),
        }
        tls::set_timeouts(&tcp, None).map_err(local)?;
        let _ = tcp.set_nodelay(true);
        Ok(())
    })();
    r.map(|()| tcp)
}

fn start_link(
    peer: PartyId,
    mut conn: rustls::Connection,
    tcp: TcpStream,
    depth: usize,
) -> Result<Link, TransportError> {
    // Chunks are bounded by our own queues; let rustls buffer a whole piece.
    conn.set_buffer_limit(None);
    let conn = Arc::new(Mutex::new(conn));
    let (to_writer, writer_rx) = bounded::<ToWriter>(depth);
    let (reader_tx, from_reader) = bounded::<FromReader>(depth);
    let (spent_tx, spent_frames) = bounded::<Vec<u8>>(depth + 2);
    let (recycle_payloads, recycle_rx) = bounded::<Vec<u8>>(depth + 2);
    let (writer_done_tx, writer_done) = bounded::<()>(0);
    let (reader_done_tx, reader_done) = bounded::<()>(0);
    let writer_error = Arc::new(Mutex::new(None));

    let w_tcp = tcp.try_clone().map_err(local)?;
    let r_tcp = tcp.try_clone().map_err(local)?;
    let w = {
        let conn = conn.clone();
        let err = writer_error.clone();
        std::thread::Builder::new()
            .name(format!("kuvert-net-w{peer}"))
            .spawn(move || {
                let _done = writer_done_tx;
                if let Err(e) = writer_loop(&conn, w_tcp, writer_rx, spent_tx) {
                    tracing::debug!(peer, error = %e, "writer stopped");
                    if let Ok(mut slot) = err.lock() {
                        *slot = Some(e.to_string());
                    }
                }
            })
            .map_err(local)?
    };
    let r = {
        let flush = to_writer.clone();
        std::thread::Builder::new()
            .name(format!("kuvert-net-r{peer}"))
            .spawn(move || {
                let _done = reader_done_tx;
                reader_loop(peer, &conn, r_tcp, reader_tx, recycle_rx, flush);
            })
            .map_err(local)?
    };
    Ok(Link {
        tcp,
        to_writer: Some(to_writer),
        from_reader: Some(from_reader),
        spent_frames,
        recycle_payloads,
        writer_error,
        writer_done,
        reader_done,
        threads: vec![w, r],
        send_seq: 0,
        recv_seq: 0,
    })
}

/// Encrypt `plain` (in pieces, releasing the lock between them) and write
/// the records to the socket.
fn send_plain(
    conn: &Mutex<rustls::Connection>,
    tcp: &mut TcpStream,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    for piece in plain.chunks(ENCRYPT_PIECE) {
        {
            let mut c = lock(conn);
            c.writer().write_all(piece)?;
            while c.wants_write() {
                c.write_tls(out)?;
            }
        }
        tcp.write_all(out)?;
        out.clear();
    }
    Ok(())
}

fn flush_tls(
    conn: &Mutex<rustls::Connection>,
    tcp: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    {
        let mut c = lock(conn);
        while c.wants_write() {
            c.write_tls(out)?;
        }
    }
    tcp.write_all(out)?;
    out.clear();
    Ok(())
}

fn writer_loop(
    conn: &Mutex<rustls::Connection>,
    mut tcp: TcpStream,
    rx: Receiver<ToWriter>,
    spent: Sender<Vec<u8>>,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(ENCRYPT_PIECE + 4096);
    for msg in rx {
        match msg {
            ToWriter::Frame(buf) => {
                send_plain(conn, &mut tcp, &buf, &mut out)?;
                let _ = spent.try_send(buf);
            }
            ToWriter::Flush => flush_tls(conn, &mut tcp, &mut out)?,
            ToWriter::Bye => {
                let bye = FrameHeader {
                    kind: FrameKind::Bye,
                    flags: 0,
                    seq: 0,
                    len: 0,
                };
                send_plain(conn, &mut tcp, &bye.encode(), &mut out)?;
                lock(conn).send_close_notify();
                flush_tls(conn, &mut tcp, &mut out)?;
                let _ = tcp.shutdown(Shutdown::Write);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reassembles frames from the decrypted stream.
struct Assembler {
    header: [u8; HEADER_LEN],
    header_filled: usize,
    /// The frame being filled: header, payload buffer, bytes filled.
    body: Option<(FrameHeader, Vec<u8>, usize)>,
}

enum Pumped {
    /// No more plaintext for now.
    Idle,
    /// The peer sent `Bye` or TLS close_notify.
    Closed,
}

impl Assembler {
    /// Move all decrypted plaintext out of `conn` into complete frames.
    fn pump(
        &mut self,
        conn: &mut rustls::Connection,
        pool: &Receiver<Vec<u8>>,
        ready: &mut Vec<FromReader>,
    ) -> Result<Pumped, String> {
        loop {
            let r = match &mut self.body {
                None => conn.reader().read(&mut self.header[self.header_filled..]),
                Some((_, buf, filled)) => conn.reader().read(&mut buf[*filled..]),
            };
            let n = match r {
                Ok(0) => return Ok(Pumped::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Pumped::Idle),
                Err(e) => return Err(e.to_string()),
            };
            match &mut self.body {
                None => {
                    self.header_filled += n;
                    if self.header_filled < HEADER_LEN {
                        continue;
                    }
                    self.header_filled = 0;
                    let h = FrameHeader::decode(&self.header).map_err(|e| e.to_string())?;
                    match h.kind {
                        FrameKind::Data => {
                            let mut buf = pool.try_recv().unwrap_or_default();
                            buf.clear();
                            buf.resize(h.len as usize, 0);
                            if h.len == 0 {
                                ready.push(FromReader::Data {
                                    seq: h.seq,
                                    end: h.is_end(),
                                    payload: buf,
                                });
                            } else {
                                self.body = Some((h, buf, 0));
                            }
                        }
                        FrameKind::Bye => return Ok(Pumped::Closed),
                        FrameKind::Hello => return Err("unexpected second hello".into()),
                    }
                }
                Some((h, buf, filled)) => {
                    *filled += n;
                    if *filled == buf.len() {
                        let (seq, end) = (h.seq, h.is_end());
                        if let Some((_, payload, _)) = self.body.take() {
                            ready.push(FromReader::Data { seq, end, payload });
                        }
                    }
                }
            }
        }
    }
}

fn reader_loop(
    peer: PartyId,
    conn: &Mutex<rustls::Connection>,
    mut tcp: TcpStream,
    tx: Sender<FromReader>,
    pool: Receiver<Vec<u8>>,
    flush: Sender<ToWriter>,
) {
    let mut net = vec![0u8; NET_READ];
    let mut asm = Assembler {
        header: [0; HEADER_LEN],
        header_filled: 0,
        body: None,
    };
    let mut ready = Vec::new();
    // Set once `round` is no longer listening (transport dropped).
    let mut draining = false;
    let deliver = |ready: &mut Vec<FromReader>, draining: &mut bool| {
        for m in ready.drain(..) {
            if !*draining && tx.send(m).is_err() {
                *draining = true;
            }
        }
    };
    let fail = |e: TransportError, draining: bool| {
        if !draining {
            let _ = tx.send(FromReader::Failed(e));
        }
    };
    // Plaintext may already be buffered from the hello exchange.
    let mut first = true;
    loop {
        let n = if first {
            first = false;
            0
        } else {
            match tcp.read(&mut net) {
                Ok(0) => {
                    fail(gone(peer, "connection closed (no orderly close)"), draining);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    fail(gone(peer, format!("connection failed: {e}")), draining);
                    return;
                }
            }
        };
        let status = {
            let mut c = lock(conn);
            let mut slice = &net[..n];
            let mut status = Ok(Pumped::Idle);
            loop {
                if !slice.is_empty() {
                    if let Err(e) = c.read_tls(&mut slice) {
                        status = Err(TransportError::Malformed {
                            peer,
                            detail: format!("TLS: {e}"),
                        });
                        break;
                    }
                    if let Err(e) = c.process_new_packets() {
                        status = Err(match e {
                            rustls::Error::AlertReceived(a) => {
                                gone(peer, format!("peer sent TLS alert {a:?}"))
                            }
                            e => TransportError::Malformed {
                                peer,
                                detail: format!("TLS: {e}"),
                            },
                        });
                        break;
                    }
                }
                match asm.pump(&mut c, &pool, &mut ready) {
                    Ok(Pumped::Idle) => {}
                    Ok(Pumped::Closed) => {
                        status = Ok(Pumped::Closed);
                        break;
                    }
                    Err(detail) => {
                        status = Err(TransportError::Malformed { peer, detail });
                        break;
                    }
                }
                if slice.is_empty() {
                    break;
                }
            }
            if c.wants_write() {
                let _ = flush.try_send(ToWriter::Flush);
            }
            status
        };
        deliver(&mut ready, &mut draining);
        match status {
            Ok(Pumped::Idle) => {}
            Ok(Pumped::Closed) => {
                fail(gone(peer, "the node closed the session"), draining);
                return;
            }
            Err(e) => {
                if let TransportError::Malformed { detail, .. } = &e {
                    tracing::warn!(peer, reason = %detail, "malformed data from node; dropping the connection");
                    let _ = tcp.shutdown(Shutdown::Both);
                }
                fail(e, draining);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients that connect to the node-to-node ports before the session
    /// starts and then stall (silent, or a partial ClientHello, or one byte
    /// at a time) do not hold up the real nodes' handshakes: each handshake
    /// has its own thread. (Accepting them one after the other, the first
    /// silent socket alone would take the whole connect timeout.)
    #[test]
    fn stalled_clients_do_not_hold_up_the_session_setup() {
        let dir = std::env::temp_dir().join(format!(
            "kuvert-net-stall-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        crate::pki::init(&dir, &crate::pki::InitOptions::default()).unwrap();
        let ls: Vec<TcpListener> = (0..PARTIES)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: [SocketAddr; PARTIES] = std::array::from_fn(|i| ls[i].local_addr().unwrap());
        // Queued on nodes 1 and 2 before they accept anything, so they are
        // the first sockets each acceptor sees.
        let mut stalled = Vec::new();
        for addr in &addrs[1..] {
            for k in 0..3 {
                let mut t = TcpStream::connect(addr).unwrap();
                if k == 1 {
                    // A TLS record header announcing a 512-byte
                    // handshake message, then the first byte of it.
                    t.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
                }
                stalled.push(t);
            }
        }
        let trickle_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trickler = {
            let stop = Arc::clone(&trickle_stop);
            let mut t = TcpStream::connect(addrs[2]).unwrap();
            std::thread::spawn(move || {
                let hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];
                for b in hello.iter().cycle() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) || t.write_all(&[*b]).is_err()
                    {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let started = Instant::now();
        let results: Vec<Result<(), TransportError>> = std::thread::scope(|s| {
            let hs: Vec<_> = ls
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    let dir = &dir;
                    s.spawn(move || {
                        let mut c = NetConfig::new(i, addrs, NodeTls::load(dir, i).unwrap());
                        c.connect_timeout = Duration::from_secs(6);
                        c.io_timeout = Duration::from_secs(6);
                        TlsTransport::connect_with_listener(c, l).map(TlsTransport::close)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let took = started.elapsed();
        trickle_stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = trickler.join();
        drop(stalled);
        let _ = std::fs::remove_dir_all(&dir);
        for (i, r) in results.iter().enumerate() {
            assert!(r.is_ok(), "node {i}: {r:?}");
        }
        assert!(took < Duration::from_secs(4), "the setup took {took:?}");
    }
}
