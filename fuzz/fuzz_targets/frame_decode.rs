//! Fuzz the frame decoder: it must never panic, never claim more bytes than
//! it was given, never accept a payload over the limit, and whatever it
//! accepts must re-encode to the same bytes.
#![no_main]

use kuvert_net::frame::{self, HEADER_LEN, MAX_PAYLOAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Decode a stream of frames, as a reader would.
    while let Ok(Some((f, used))) = frame::decode(rest) {
        assert!(used <= rest.len());
        assert_eq!(used, HEADER_LEN + f.payload.len());
        assert!(f.payload.len() <= MAX_PAYLOAD);
        let mut again = Vec::new();
        frame::encode_into(&f.header, f.payload, &mut again);
        assert_eq!(&again[..], &rest[..used]);
        rest = &rest[used..];
    }
});
