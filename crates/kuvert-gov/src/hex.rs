//! Lowercase hex, the form every key, hash and signature takes in Kuvert's
//! files.

pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decode hex (either case) into exactly `N` bytes; `None` on any other input.
pub(crate) fn decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let s = super::encode(&bytes);
            prop_assert_eq!(s.len(), 64);
            prop_assert_eq!(super::decode_array::<32>(&s), Some(bytes));
            prop_assert_eq!(super::decode_array::<32>(&s.to_uppercase()), Some(bytes));
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(super::decode_array::<2>("abc"), None);
        assert_eq!(super::decode_array::<2>("abcg"), None);
        assert_eq!(super::decode_array::<2>("0a0b0c"), None);
        assert_eq!(super::encode(&[0, 255, 16]), "00ff10");
    }
}
