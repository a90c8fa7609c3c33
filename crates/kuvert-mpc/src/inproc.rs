//! Three parties in one process, connected by channels.
//!
//! Used by the deterministic protocol tests and by `kuvert bench micro`
//! (without `--net`). Unbounded channels are acceptable here because all
//! three parties live in the same address space and each round's volume is
//! fixed by the protocol.

use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};

use crate::transport::{Incoming, Outgoing, PartyId, Transport, TransportError, PARTIES};

/// How long a party waits for a peer before reporting it as stuck. Generous:
/// debug builds of large test vectors can be slow.
const RECV_TIMEOUT: Duration = Duration::from_secs(300);

/// One party's end of an in-process three-party network.
pub struct InProcTransport {
    me: PartyId,
    tx: [Option<Sender<Vec<u8>>>; PARTIES],
    rx: [Option<Receiver<Vec<u8>>>; PARTIES],
}

impl InProcTransport {
    /// Create the three connected ends, indexed by party id.
    pub fn triple() -> [InProcTransport; PARTIES] {
        let mut tx: [[Option<Sender<Vec<u8>>>; PARTIES]; PARTIES] = Default::default();
        let mut rx: [[Option<Receiver<Vec<u8>>>; PARTIES]; PARTIES] = Default::default();
        for from in 0..PARTIES {
            for to in 0..PARTIES {
                if from != to {
                    let (s, r) = unbounded();
                    tx[from][to] = Some(s);
                    rx[to][from] = Some(r);
                }
            }
        }
        let mut tx = tx.into_iter();
        let mut rx = rx.into_iter();
        std::array::from_fn(|me| InProcTransport {
            me,
            tx: tx.next().expect("three senders"),
            rx: rx.next().expect("three receivers"),
        })
    }
}

impl Transport for InProcTransport {
    fn party(&self) -> PartyId {
        self.me
    }

    fn round(
        &mut self,
        outgoing: &[Outgoing<'_>],
        incoming: &mut [Incoming<'_>],
    ) -> Result<(), TransportError> {
        for o in outgoing {
            let tx = self.tx[o.to].as_ref().ok_or_else(|| {
                TransportError::Local(format!("party {} cannot send to itself", self.me))
            })?;
            tx.send(o.data.to_vec())
                .map_err(|_| TransportError::PeerGone {
                    peer: o.to,
                    detail: "in-process peer has stopped".into(),
                })?;
        }
        for i in incoming.iter_mut() {
            let rx = self.rx[i.from].as_ref().ok_or_else(|| {
                TransportError::Local(format!("party {} cannot receive from itself", self.me))
            })?;
            let msg = rx.recv_timeout(RECV_TIMEOUT).map_err(|e| match e {
                RecvTimeoutError::Timeout => TransportError::Timeout {
                    peer: i.from,
                    seconds: RECV_TIMEOUT.as_secs(),
                },
                RecvTimeoutError::Disconnected => TransportError::PeerGone {
                    peer: i.from,
                    detail: "in-process peer has stopped".into(),
                },
            })?;
            if msg.len() != i.buf.len() {
                return Err(TransportError::Malformed {
                    peer: i.from,
                    detail: format!("expected {} bytes, got {}", i.buf.len(), msg.len()),
                });
            }
            i.buf.copy_from_slice(&msg);
        }
        Ok(())
    }
}
