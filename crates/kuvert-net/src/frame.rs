//! Framing of the byte stream between two nodes.
//!
//! Inside the TLS stream every message travels as frames:
//!
//! ```text
//!  0        1         2      3       4             8             12
//!  +--------+---------+------+-------+-------------+-------------+--------------+
//!  | magic  | version | kind | flags | seq (u32 BE)| len (u32 BE)| payload ...  |
//!  | 0x4B   | 0x01    |      |       |             |             | len bytes    |
//!  +--------+---------+------+-------+-------------+-------------+--------------+
//! ```
//!
//! - `kind`: [`FrameKind::Hello`] (first frame on a connection: the sender's
//!   party id), [`FrameKind::Data`] (a piece of one round message),
//!   [`FrameKind::Bye`] (orderly close).
//! - `flags`: bit 0 ([`FLAG_END`]) marks the last frame of a round message;
//!   only `Data` frames may set it, and no other bit is defined.
//! - `seq`: for `Data`, the number of the round message this frame belongs to
//!   (counted per direction, from 0). A receiver that expects message `k` and
//!   sees another number knows the two sides disagree about the protocol.
//! - `len`: payload length, at most [`MAX_PAYLOAD`] (4 MiB). A larger value
//!   is refused before any payload is read, so a peer cannot make us
//!   allocate.
//!
//! Everything here is pure (no I/O) so that the decoder can be fuzzed; see
//! `fuzz/fuzz_targets/frame_decode.rs` and the property tests.

/// First byte of every frame (`'K'`).
pub const MAGIC: u8 = 0x4B;
/// Version of this framing. A peer speaking another version is refused.
pub const VERSION: u8 = 1;
/// Size of the frame header in bytes.
pub const HEADER_LEN: usize = 12;
/// Largest payload of one frame. Round messages larger than this are split.
pub const MAX_PAYLOAD: usize = 4 << 20;
/// Flag: this `Data` frame is the last one of its round message.
pub const FLAG_END: u8 = 0x01;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// First frame on a connection; payload: the sender's party id (1 byte).
    Hello = 1,
    /// A piece of a round message.
    Data = 2,
    /// The sender is closing the connection in an orderly way; empty payload.
    Bye = 3,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<FrameKind> {
        match b {
            1 => Some(FrameKind::Hello),
            2 => Some(FrameKind::Data),
            3 => Some(FrameKind::Bye),
            _ => None,
        }
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "bad magic byte {0:#04x} (expected 0x4b): the peer does not speak the kuvert node protocol"
    )]
    BadMagic(u8),
    #[error("framing version {0} is not supported (this node speaks version {VERSION}); upgrade the older node")]
    BadVersion(u8),
    #[error("unknown frame kind {0}")]
    BadKind(u8),
    #[error("frame flags {flags:#04x} are not valid for a {kind:?} frame")]
    BadFlags { kind: FrameKind, flags: u8 },
    #[error("frame payload of {len} bytes exceeds the maximum of {MAX_PAYLOAD} bytes")]
    TooLarge { len: u64 },
    #[error("{kind:?} frame has a payload of {len} bytes; expected {expected}")]
    BadLength {
        kind: FrameKind,
        len: u32,
        expected: u32,
    },
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: FrameKind,
    pub flags: u8,
    pub seq: u32,
    /// Payload length; never more than [`MAX_PAYLOAD`].
    pub len: u32,
}

impl FrameHeader {
    /// A `Data` header.
    pub fn data(seq: u32, len: usize, end: bool) -> Result<FrameHeader, FrameError> {
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge { len: len as u64 });
        }
        Ok(FrameHeader {
            kind: FrameKind::Data,
            flags: if end { FLAG_END } else { 0 },
            seq,
            len: len as u32,
        })
    }

    /// True for the last `Data` frame of a round message.
    pub fn is_end(&self) -> bool {
        self.flags & FLAG_END != 0
    }

    /// Serialise the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = MAGIC;
        h[1] = VERSION;
        h[2] = self.kind as u8;
        h[3] = self.flags;
        h[4..8].copy_from_slice(&self.seq.to_be_bytes());
        h[8..12].copy_from_slice(&self.len.to_be_bytes());
        h
    }

    /// Parse and validate a header. Checks everything that can be checked
    /// without the payload: magic, version, kind, flags, and length limits.
    pub fn decode(h: &[u8; HEADER_LEN]) -> Result<FrameHeader, FrameError> {
        if h[0] != MAGIC {
            return Err(FrameError::BadMagic(h[0]));
        }
        if h[1] != VERSION {
            return Err(FrameError::BadVersion(h[1]));
        }
        let kind = FrameKind::from_byte(h[2]).ok_or(FrameError::BadKind(h[2]))?;
        let flags = h[3];
        let allowed = if kind == FrameKind::Data { FLAG_END } else { 0 };
        if flags & !allowed != 0 {
            return Err(FrameError::BadFlags { kind, flags });
        }
        let seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        if len as u64 > MAX_PAYLOAD as u64 {
            return Err(FrameError::TooLarge { len: len as u64 });
        }
        let fixed = match kind {
            FrameKind::Hello => Some(1),
            FrameKind::Bye => Some(0),
            FrameKind::Data => None,
        };
        if let Some(expected) = fixed {
            if len != expected {
                return Err(FrameError::BadLength {
                    kind,
                    len,
                    expected,
                });
            }
        }
        Ok(FrameHeader {
            kind,
            flags,
            seq,
            len,
        })
    }
}

/// A whole frame borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub payload: &'a [u8],
}

/// Decode the first frame of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only a prefix of a valid frame (read
/// more), `Ok(Some((frame, consumed)))` when a whole frame is there, and an
/// error as soon as the header is invalid (even before the payload arrived).
/// Never panics, whatever the input.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = FrameHeader::decode(h)?;
    let end = HEADER_LEN + header.len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((
        Frame {
            header,
            payload: &buf[HEADER_LEN..end],
        },
        end,
    )))
}

/// Append one frame (header and payload) to `out`.
pub fn encode_into(header: &FrameHeader, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert_eq!(header.len as usize, payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_data_frame() {
        let h = FrameHeader::data(7, 5, true).unwrap();
        let mut buf = Vec::new();
        encode_into(&h, b"hello", &mut buf);
        buf.extend_from_slice(b"trailing");
        let (f, used) = decode(&buf).unwrap().unwrap();
        assert_eq!(used, HEADER_LEN + 5);
        assert_eq!(f.header, h);
        assert!(f.header.is_end());
        assert_eq!(f.payload, b"hello");
        // Hand-written bytes of the same header.
        assert_eq!(&buf[..HEADER_LEN], &[0x4B, 1, 2, 1, 0, 0, 0, 7, 0, 0, 0, 5]);
    }

    #[test]
    fn prefixes_ask_for_more() {
        let h = FrameHeader::data(0, 3, false).unwrap();
        let mut buf = Vec::new();
        encode_into(&h, b"abc", &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_is_refused_from_the_header_alone() {
        let mut h = [0x4B, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        h[8..12].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_be_bytes());
        assert_eq!(
            decode(&h),
            Err(FrameError::TooLarge {
                len: MAX_PAYLOAD as u64 + 1
            })
        );
        assert!(FrameHeader::data(0, MAX_PAYLOAD + 1, false).is_err());
        assert!(FrameHeader::data(0, MAX_PAYLOAD, false).is_ok());
    }

    #[test]
    fn each_header_field_is_checked() {
        let good = FrameHeader::data(1, 0, true).unwrap().encode();
        let mut b = good;
        b[0] = 0x4C;
        assert_eq!(decode(&b), Err(FrameError::BadMagic(0x4C)));
        let mut b = good;
        b[1] = 2;
        assert_eq!(decode(&b), Err(FrameError::BadVersion(2)));
        let mut b = good;
        b[2] = 9;
        assert_eq!(decode(&b), Err(FrameError::BadKind(9)));
        let mut b = good;
        b[3] = 0x03;
        assert!(matches!(decode(&b), Err(FrameError::BadFlags { .. })));
        // Hello must carry exactly one byte, Bye none.
        let hello = [0x4B, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0];
        assert!(matches!(decode(&hello), Err(FrameError::BadLength { .. })));
        let bye = [0x4B, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode(&bye).unwrap().unwrap().0.header.kind, FrameKind::Bye);
    }

    proptest! {
        // The decoder must never panic and never claim more bytes than given;
        // what it accepts must re-encode to the same bytes.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((f, used))) = decode(&bytes) {
                prop_assert!(used <= bytes.len());
                let mut again = Vec::new();
                encode_into(&f.header, f.payload, &mut again);
                prop_assert_eq!(&again[..], &bytes[..used]);
            }
        }

        // Random headers with a valid magic and version, so that the
        // deeper checks are reached often.
        #[test]
        fn random_headers_never_panic(kind in 0u8..6, flags in any::<u8>(), seq in any::<u32>(),
                                      len in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut b = vec![MAGIC, VERSION, kind, flags];
            b.extend_from_slice(&seq.to_be_bytes());
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&tail);
            if let Ok(Some((f, used))) = decode(&b) {
                prop_assert_eq!(used, HEADER_LEN + f.payload.len());
                prop_assert!(f.payload.len() <= MAX_PAYLOAD);
            }
        }

        #[test]
        fn encode_decode_round_trip(seq in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..300), end in any::<bool>()) {
            let h = FrameHeader::data(seq, payload.len(), end).unwrap();
            let mut buf = Vec::new();
            encode_into(&h, &payload, &mut buf);
            let (f, used) = decode(&buf).unwrap().unwrap();
            prop_assert_eq!(used, buf.len());
            prop_assert_eq!(f.header, h);
            prop_assert_eq!(f.payload, &payload[..]);
        }
    }
}
