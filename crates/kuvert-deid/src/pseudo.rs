//! Pseudonymisation with a secret key kept in a separate key file.
//!
//! * `hmac`: HMAC-SHA-256 of the value; irreversible, deterministic (the
//!   same value and key give the same pseudonym, so tables stay linkable).
//! * `siv`: AES-SIV (RFC 5297, AES-256) deterministic encryption;
//!   reversible with the key (`kuvert deid reidentify`).
//!
//! Both are keyed by sub-keys derived from one 64-byte master key with
//! HMAC-SHA-256 and a fixed label, so one key file serves both. An optional
//! `domain` string is bound into every pseudonym (as HMAC prefix / SIV
//! associated data): pseudonyms made with different domains do not link.

use crate::error::{DeidError, Result};
use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

const KEY_PREFIX: &str = "kuvert-deid-key-v1:";

/// Pseudonymisation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Keyed HMAC-SHA-256 (irreversible).
    #[default]
    Hmac,
    /// AES-SIV deterministic encryption (reversible with the key).
    Siv,
}

/// The secret keys. Not `Debug`, not `Serialize`; zeroized on drop.
pub struct Keys {
    hmac: Zeroizing<[u8; 32]>,
    siv: Zeroizing<[u8; 64]>,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Keys {
    fn from_master(master: &[u8; 64]) -> Keys {
        let mut siv = Zeroizing::new([0u8; 64]);
        siv[..32].copy_from_slice(&hmac_sha256(master, &[b"kuvert-deid aes-siv 1"]));
        siv[32..].copy_from_slice(&hmac_sha256(master, &[b"kuvert-deid aes-siv 2"]));
        Keys {
            hmac: Zeroizing::new(hmac_sha256(master, &[b"kuvert-deid hmac-sha256"])),
            siv,
        }
    }

    /// Create a new random key file (refuses to overwrite; mode 0600 on Unix).
    pub fn generate(path: &Path) -> Result<()> {
        let mut master = Zeroizing::new([0u8; 64]);
        OsRng.fill_bytes(&mut master[..]);
        let text = Zeroizing::new(format!(
            "# Kuvert de-identification key. Keep it secret and apart from the data:\n# whoever holds it can link HMAC pseudonyms and decrypt SIV pseudonyms.\n{KEY_PREFIX}{}\n",
            hex(&master[..])
        ));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let io = |e: std::io::Error| DeidError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                DeidError::Key {
                    path: path.display().to_string(),
                    message: "already exists; refusing to overwrite a key (pseudonyms made with it would become unlinkable). Choose another path or delete it deliberately".into(),
                }
            } else {
                io(e)
            }
        })?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(())
    }

    /// Load a key file written by [`Keys::generate`].
    pub fn load(path: &Path) -> Result<Keys> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| DeidError::Io {
            path: path.display().to_string(),
            source: e,
        })?);
        let kerr = |m: &str| DeidError::Key {
            path: path.display().to_string(),
            message: m.to_string(),
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(KEY_PREFIX))
            .ok_or_else(|| kerr("no `kuvert-deid-key-v1:` line; create a key with `kuvert deid keygen --out FILE`"))?;
        let bytes = Zeroizing::new(
            unhex(&line[KEY_PREFIX.len()..]).ok_or_else(|| kerr("the key is not valid hex"))?,
        );
        if bytes.len() != 64 {
            return Err(kerr("the key must be 64 bytes (128 hex digits)"));
        }
        let mut master = Zeroizing::new([0u8; 64]);
        master.copy_from_slice(&bytes);
        Ok(Keys::from_master(&master))
    }

    /// Keys for tests, from a seed. Never use for real data.
    pub fn from_seed_for_tests(seed: u64) -> Keys {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let mut master = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(&mut master[..]);
        Keys::from_master(&master)
    }

    /// Pseudonym of `value` in `domain`.
    pub fn pseudonymize(&self, method: Method, domain: &str, value: &str) -> String {
        match method {
            Method::Hmac => hex(&hmac_sha256(
                &self.hmac[..],
                &[domain.as_bytes(), &[0u8], value.as_bytes()],
            )),
            Method::Siv => {
                let mut c = Aes256Siv::new((&self.siv[..]).into());
                match c.encrypt([domain.as_bytes()], value.as_bytes()) {
                    Ok(ct) => hex(&ct),
                    Err(_) => unreachable!("AES-SIV encryption of a short value cannot fail"),
                }
            }
        }
    }

    /// Invert an SIV pseudonym; `None` if the key or domain is wrong or the value was altered.
    pub fn decrypt(&self, domain: &str, pseudonym: &str) -> Option<String> {
        let ct = unhex(pseudonym.trim())?;
        let mut c = Aes256Siv::new((&self.siv[..]).into());
        let pt = c.decrypt([domain.as_bytes()], &ct).ok()?;
        String::from_utf8(pt).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_deterministic_and_keyed() {
        let a = Keys::from_seed_for_tests(1);
        let b = Keys::from_seed_for_tests(2);
        let p = a.pseudonymize(Method::Hmac, "", "198112189876");
        assert_eq!(p, a.pseudonymize(Method::Hmac, "", "198112189876"));
        assert_ne!(p, b.pseudonymize(Method::Hmac, "", "198112189876"));
        assert_ne!(p, a.pseudonymize(Method::Hmac, "other", "198112189876"));
        assert_eq!(p.len(), 64);
    }

    #[test]
    fn hmac_matches_rfc4231_vector() {
        // RFC 4231 test case 2 checks our HMAC plumbing.
        let out = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn siv_round_trips_and_detects_tampering() {
        let k = Keys::from_seed_for_tests(3);
        let p = k.pseudonymize(Method::Siv, "d", "Anna Svensson");
        assert_eq!(p, k.pseudonymize(Method::Siv, "d", "Anna Svensson"));
        assert_eq!(k.decrypt("d", &p).as_deref(), Some("Anna Svensson"));
        assert_eq!(k.decrypt("e", &p), None);
        assert_eq!(Keys::from_seed_for_tests(4).decrypt("d", &p), None);
        let mut bad = p.clone().into_bytes();
        bad[40] = if bad[40] == b'0' { b'1' } else { b'0' };
        assert_eq!(k.decrypt("d", &String::from_utf8(bad).unwrap()), None);
    }

    #[test]
    fn key_file_round_trip_and_no_overwrite() {
        let dir = std::env::temp_dir().join(format!("kuvert-deid-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.key");
        let _ = std::fs::remove_file(&p);
        Keys::generate(&p).unwrap();
        let k1 = Keys::load(&p).unwrap();
        let k2 = Keys::load(&p).unwrap();
        assert_eq!(
            k1.pseudonymize(Method::Hmac, "", "x"),
            k2.pseudonymize(Method::Hmac, "", "x")
        );
        assert!(Keys::generate(&p).is_err());
        std::fs::write(&p, "nonsense").unwrap();
        assert!(Keys::load(&p).is_err());
    }
}
