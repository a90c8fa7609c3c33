//! The only door between the protocol engine and the outside world.
//!
//! The engine never opens sockets. It hands whole protocol rounds to a
//! [`Transport`]: "send these byte strings to these parties, and fill these
//! buffers with exactly this many bytes from those parties". Because the
//! receiver always knows how many bytes a round brings, no framing of
//! lengths is needed at this level, and a transport can stream a large round
//! in chunks (interleaving sends and receives) with bounded buffers.
//!
//! Implementations:
//! - [`crate::inproc::InProcTransport`]: three parties in one process, for
//!   deterministic tests and the in-process benchmark.
//! - the TLS transport of the `kuvert-net` crate, between node processes.

use std::fmt;

/// One of the three computing parties: 0, 1 or 2.
pub type PartyId = usize;

/// Number of computing parties. Replicated secret sharing as used here is
/// defined for exactly three.
pub const PARTIES: usize = 3;

/// The party after `p` in the ring 0 -> 1 -> 2 -> 0.
#[inline]
pub fn next(p: PartyId) -> PartyId {
    (p + 1) % PARTIES
}

/// The party before `p` in the ring 0 -> 1 -> 2 -> 0.
#[inline]
pub fn prev(p: PartyId) -> PartyId {
    (p + PARTIES - 1) % PARTIES
}

/// What went wrong talking to a peer. Every variant names the peer, so that
/// an operator can tell which node failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer closed the connection or could not be reached.
    #[error("party {peer} is unreachable or closed the connection: {detail}")]
    PeerGone { peer: PartyId, detail: String },
    /// Nothing arrived from the peer within the transport's deadline.
    #[error("party {peer} did not answer within {seconds} s")]
    Timeout { peer: PartyId, seconds: u64 },
    /// The peer sent something that does not fit the protocol (wrong size,
    /// malformed frame, wrong version). The connection is dropped.
    #[error("party {peer} sent a malformed message: {detail}")]
    Malformed { peer: PartyId, detail: String },
    /// A local I/O failure not attributable to a peer.
    #[error("transport failure: {0}")]
    Local(String),
}

impl TransportError {
    /// The peer this error is about, if any.
    pub fn peer(&self) -> Option<PartyId> {
        match self {
            TransportError::PeerGone { peer, .. }
            | TransportError::Timeout { peer, .. }
            | TransportError::Malformed { peer, .. } => Some(*peer),
            TransportError::Local(_) => None,
        }
    }
}

/// A message this party sends in a round.
pub struct Outgoing<'a> {
    pub to: PartyId,
    pub data: &'a [u8],
}

/// A message this party expects in a round: exactly `buf.len()` bytes.
pub struct Incoming<'a> {
    pub from: PartyId,
    pub buf: &'a mut [u8],
}

impl fmt::Debug for Outgoing<'_> {
    // Never print payloads: they are shares.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Outgoing {{ to: {}, len: {} }}",
            self.to,
            self.data.len()
        )
    }
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Incoming {{ from: {}, len: {} }}",
            self.from,
            self.buf.len()
        )
    }
}

/// Point-to-point, authenticated, ordered channels between the three parties.
///
/// A round is one call to [`Transport::round`]. Implementations must deliver
/// the messages of each (sender, receiver) pair in order, must not deadlock
/// when every party sends large messages around the ring at once, and should
/// keep their buffers bounded (stream in chunks, interleaving sends and
/// receives).
pub trait Transport: Send {
    /// This party's id (0, 1 or 2).
    fn party(&self) -> PartyId;

    /// Send every `Outgoing`, and fill every `Incoming` buffer completely.
    /// Returns when all incoming buffers are full and all outgoing data has
    /// been handed to the network.
    fn round(
        &mut self,
        outgoing: &[Outgoing<'_>],
        incoming: &mut [Incoming<'_>],
    ) -> Result<(), TransportError>;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn party(&self) -> PartyId {
        (**self).party()
    }
    fn round(
        &mut self,
        outgoing: &[Outgoing<'_>],
        incoming: &mut [Incoming<'_>],
    ) -> Result<(), TransportError> {
        (**self).round(outgoing, incoming)
    }
}
