//! A party's keys: Ed25519 to sign (approvals, deletion receipts) and
//! X25519 to receive sealed results.
//!
//! The secret key file (`NAME.key`, mode 0600) is plain text:
//!
//! ```text
//! -----BEGIN KUVERT PARTY KEY-----
//! name: fk
//! ed25519-secret: <64 hex digits>
//! x25519-secret: <64 hex digits>
//! -----END KUVERT PARTY KEY-----
//! ```
//!
//! The public file (`NAME.key.pub`) is JSON:
//! `{"name": "fk", "ed25519": "<hex>", "x25519": "<hex>"}`; its two keys are
//! what an analysis spec's `public_key` and `public_key_x25519` hold.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::error::GovError;
use crate::hex;

/// Domain tag of a contributor's signature over one node's shares of one
/// table (see [`PartyKey::sign_upload`]).
pub const UPLOAD_TAG: &[u8] = b"kuvert-upload-v1";

const BEGIN: &str = "-----BEGIN KUVERT PARTY KEY-----";
const END: &str = "-----END KUVERT PARTY KEY-----";

/// A party's secret keys. Zeroized on drop (both dalek types zeroize
/// themselves); deliberately neither `Debug`, `Clone` nor `Serialize`.
pub struct PartyKey {
    name: String,
    signing: SigningKey,
    x25519: StaticSecret,
}

/// A party's public keys, as in its `.pub` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeys {
    pub name: String,
    /// Ed25519 verifying key, hex.
    pub ed25519: String,
    /// X25519 public key, hex.
    pub x25519: String,
}

impl PartyKey {
    /// Fresh keys from the operating system's CSPRNG.
    pub fn generate(name: &str) -> PartyKey {
        PartyKey::generate_with(name, &mut rand_core::OsRng)
    }

    /// Fresh keys from `rng` (tests pass a seeded ChaCha20; everything else
    /// uses [`PartyKey::generate`]).
    pub fn generate_with<R: RngCore + CryptoRng>(name: &str, rng: &mut R) -> PartyKey {
        let signing = SigningKey::generate(rng);
        let x25519 = StaticSecret::random_from_rng(rng);
        PartyKey {
            name: name.to_string(),
            signing,
            x25519,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn x25519_public(&self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(&self.x25519)
    }

    pub fn public(&self) -> PublicKeys {
        PublicKeys {
            name: self.name.clone(),
            ed25519: hex::encode(self.verifying_key().as_bytes()),
            x25519: hex::encode(self.x25519_public().as_bytes()),
        }
    }

    /// Sign `message` (callers build domain-separated messages).
    pub(crate) fn sign(&self, message: &[u8]) -> ed25519_dalek::Signature {
        self.signing.sign(message)
    }

    /// Sign a contributor's upload message for one node (built by
    /// `kuvert_node::wire::upload_message`, which begins with
    /// [`UPLOAD_TAG`]). Any message without that prefix is refused, so this
    /// door cannot be used to sign an approval or a deletion receipt (their
    /// messages begin with other tags).
    pub fn sign_upload(&self, message: &[u8]) -> Result<ed25519_dalek::Signature, GovError> {
        if !message.starts_with(UPLOAD_TAG) {
            return Err(GovError::NotAnUploadMessage);
        }
        Ok(self.signing.sign(message))
    }

    /// The X25519 secret, for HPKE decapsulation (zeroized on drop).
    pub(crate) fn x25519_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.x25519.to_bytes())
    }

    /// The key file's text (zeroized on drop).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut ed = Zeroizing::new(hex::encode(self.signing.as_bytes()));
        let mut x = Zeroizing::new(hex::encode(self.x25519.as_bytes()));
        let text = Zeroizing::new(format!(
            "{BEGIN}\nname: {}\ned25519-secret: {}\nx25519-secret: {}\n{END}\n",
            self.name, *ed, *x
        ));
        ed.zeroize();
        x.zeroize();
        text
    }

    /// Parse a key file's text. `origin` names it in errors.
    pub fn from_text(text: &str, origin: &str) -> Result<PartyKey, GovError> {
        let bad = |message: String| GovError::BadKey {
            origin: origin.to_string(),
            message,
        };
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(BEGIN) {
            return Err(bad(format!(
                "not a Kuvert party key file (first line must be {BEGIN}); make one with `kuvert keygen`"
            )));
        }
        let (mut name, mut ed, mut x) = (None, None, None);
        let mut ended = false;
        for line in lines.by_ref() {
            if line == END {
                ended = true;
                break;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| bad("a line is not `field: value`; the file is damaged".into()))?;
            let v = v.trim();
            match k.trim() {
                "name" => name = Some(v.to_string()),
                "ed25519-secret" => {
                    ed = Some(Zeroizing::new(hex::decode_array::<32>(v).ok_or_else(
                        || bad("ed25519-secret is not 64 hex digits; the file is damaged".into()),
                    )?))
                }
                "x25519-secret" => {
                    x = Some(Zeroizing::new(hex::decode_array::<32>(v).ok_or_else(
                        || bad("x25519-secret is not 64 hex digits; the file is damaged".into()),
                    )?))
                }
                other => return Err(bad(format!("unknown field {other:?}"))),
            }
        }
        if !ended {
            return Err(bad(format!("missing {END}; the file is truncated")));
        }
        let (Some(name), Some(ed), Some(x)) = (name, ed, x) else {
            return Err(bad(
                "the file needs name, ed25519-secret and x25519-secret".into()
            ));
        };
        Ok(PartyKey {
            name,
            signing: SigningKey::from_bytes(&ed),
            x25519: StaticSecret::from(*x),
        })
    }

    /// Write `path` (mode 0600, refusing to overwrite) and `path.pub`.
    /// Returns the public file's path.
    pub fn write(&self, path: &Path) -> Result<PathBuf, GovError> {
        if self.name.is_empty() || self.name.chars().any(char::is_control) {
            return Err(GovError::BadKey {
                origin: path.display().to_string(),
                message: format!(
                    "the key name {:?} must be non-empty and on one line; give another --name",
                    self.name
                ),
            });
        }
        if path.exists() {
            return Err(GovError::KeyFileExists {
                path: path.to_path_buf(),
            });
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let hint = "; check the directory exists and is writable";
        let mut f = opts.open(path).map_err(|e| GovError::io(path, hint, e))?;
        f.write_all(self.to_text().as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| GovError::io(path, hint, e))?;
        let pub_path = pub_path(path);
        let mut text = serde_json::to_string_pretty(&self.public()).unwrap_or_default();
        text.push('\n');
        std::fs::write(&pub_path, text).map_err(|e| GovError::io(&pub_path, hint, e))?;
        Ok(pub_path)
    }

    /// Read a key file; refuses one that group or others can read.
    pub fn load(path: &Path) -> Result<PartyKey, GovError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path)
                .map_err(|e| GovError::io(path, "; give the .key file from `kuvert keygen`", e))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(GovError::KeyFileMode {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| GovError::io(path, "; give the .key file from `kuvert keygen`", e))?,
        );
        PartyKey::from_text(&text, &path.display().to_string())
    }
}

impl PublicKeys {
    pub fn load(path: &Path) -> Result<PublicKeys, GovError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GovError::io(path, "; give the .pub file from `kuvert keygen`", e))?;
        serde_json::from_str(&text).map_err(|e| GovError::Syntax {
            origin: path.display().to_string(),
            line: e.line(),
            column: e.column(),
            message: format!("{e}; a .pub file is JSON with name, ed25519 and x25519"),
        })
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey, GovError> {
        crate::spec::parse_ed25519(&self.ed25519).ok_or_else(|| GovError::BadKey {
            origin: format!("public keys of {:?}", self.name),
            message: "ed25519 is not a valid Ed25519 public key".into(),
        })
    }
}

/// `NAME.key` -> `NAME.key.pub`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".pub");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn upload_signatures_only_for_upload_messages() {
        use ed25519_dalek::Verifier;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let k = PartyKey::generate_with("fk", &mut rng);
        let mut msg = UPLOAD_TAG.to_vec();
        msg.extend_from_slice(b"rest of the message");
        let sig = k.sign_upload(&msg).unwrap();
        assert!(k.verifying_key().verify(&msg, &sig).is_ok());
        // An approval or a deletion receipt cannot be signed through it.
        for other in [&b"kuvert-approval-v1xxxx"[..], b"kuvert-deletion-v1{}", b""] {
            assert!(matches!(
                k.sign_upload(other),
                Err(GovError::NotAnUploadMessage)
            ));
        }
    }

    #[test]
    fn text_round_trip_keeps_both_keys() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let k = PartyKey::generate_with("fk", &mut rng);
        let back = PartyKey::from_text(&k.to_text(), "test").unwrap();
        assert_eq!(back.public(), k.public());
        assert_eq!(back.name(), "fk");
        // The signing key really is the same: a signature verifies.
        let sig = back.sign(b"m");
        k.verifying_key().verify_strict(b"m", &sig).unwrap();
    }

    #[test]
    fn damaged_files_are_refused() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let k = PartyKey::generate_with("a", &mut rng);
        let text = k.to_text();
        for bad in [
            text.replace(BEGIN, "-----BEGIN SOMETHING-----"),
            text.replace(END, ""),
            text.replace("x25519-secret: ", "x25519-secret: zz"),
            text.replace("name: a\n", ""),
        ] {
            assert!(matches!(
                PartyKey::from_text(&bad, "t"),
                Err(GovError::BadKey { .. })
            ));
        }
    }

    #[test]
    fn names_that_would_break_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "a\nb", "a\rb"] {
            let k = PartyKey::generate_with(bad, &mut rand_chacha::ChaCha20Rng::seed_from_u64(3));
            assert!(matches!(
                k.write(&dir.path().join("k.key")),
                Err(GovError::BadKey { .. })
            ));
        }
        let k = PartyKey::generate_with("fk", &mut rand_chacha::ChaCha20Rng::seed_from_u64(3));
        let pub_path = k.write(&dir.path().join("k.key")).unwrap();
        assert_eq!(
            PartyKey::load(&dir.path().join("k.key")).unwrap().public(),
            k.public()
        );
        assert_eq!(PublicKeys::load(&pub_path).unwrap(), k.public());
        assert!(matches!(
            k.write(&dir.path().join("k.key")),
            Err(GovError::KeyFileExists { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join("k.key");
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
            assert!(matches!(
                PartyKey::load(&p),
                Err(GovError::KeyFileMode { mode: 0o640, .. })
            ));
        }
    }

    #[test]
    fn os_rng_keys_differ() {
        let a = PartyKey::generate("a");
        let b = PartyKey::generate("a");
        assert_ne!(a.public().ed25519, b.public().ed25519);
        assert_ne!(a.public().x25519, b.public().x25519);
    }
}
