//! A party's keys: Ed25519 to sign (approvals, deletion receipts, uploads)
//! and X-Wing (ML-KEM-768 + X25519, post-quantum hybrid) to receive sealed
//! results.
//!
//! The secret key file (`NAME.key`, mode 0600) is plain text:
//!
//! ```text
//! -----BEGIN KUVERT PARTY KEY-----
//! name: fk
//! ed25519-secret: <64 hex digits>
//! xwing-secret: <64 hex digits: the X-Wing seed>
//! -----END KUVERT PARTY KEY-----
//! ```
//!
//! The public file (`NAME.key.pub`) is JSON:
//! `{"name": "fk", "ed25519": "<hex>", "kem": "<base64>"}`; its two keys are
//! what an analysis spec's `public_key` (contributors) and `kem_public_key`
//! (recipients) hold.
//!
//! Key files from before post-quantum sealing have an `x25519-secret` line
//! and no `xwing-secret`. They still load and sign (the Ed25519 key is
//! unchanged), but cannot open sealed results: anything that needs the
//! result key fails with an error that says to run
//! `kuvert keygen --upgrade FILE`, which adds an `xwing-secret` in place
//! ([`PartyKey::upgrade_file`]) and keeps the name, the signing key and the
//! old `x25519-secret` line (unused by this release, but not destroyed).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use x_wing::{Decapsulator, KeyExport};
use zeroize::{Zeroize, Zeroizing};

use crate::error::GovError;
use crate::hex;

/// Domain tag of a contributor's signature over one node's shares of one
/// table (see [`PartyKey::sign_upload`]).
pub const UPLOAD_TAG: &[u8] = b"kuvert-upload-v1";

/// Domain tag of a node operator's signature over a federation file (the
/// same bytes as `kuvert_net::federation::FEDERATION_TAG`; a test checks).
pub const FEDERATION_TAG: &[u8] = b"kuvert-federation-v1\0";

/// Domain tag of a node's signature over a job's outcome in the nodes'
/// agreement before a malicious-mode job releases anything (see
/// [`outcome_message`] and `kuvert_node::agree`).
pub const OUTCOME_TAG: &[u8] = b"kuvert-job-outcome-v1\0";

/// The message a node signs to state a job's outcome: [`OUTCOME_TAG`], the
/// session's 32-byte tag (fresh per run, shared by the three nodes), the
/// node's index and the outcome byte.
pub fn outcome_message(session: &[u8; 32], node: u8, outcome: u8) -> Vec<u8> {
    let mut m = OUTCOME_TAG.to_vec();
    m.extend_from_slice(session);
    m.push(node);
    m.push(outcome);
    m
}

const BEGIN: &str = "-----BEGIN KUVERT PARTY KEY-----";
const END: &str = "-----END KUVERT PARTY KEY-----";

/// What to do about a key file without a post-quantum result key.
const NO_KEM: &str = "this key is from before post-quantum sealing: it has no xwing-secret, \
     so it cannot receive sealed results. Run `kuvert keygen --upgrade KEYFILE` to add one \
     (it keeps the name and the Ed25519 signing key), then put the kem_public_key it prints \
     into the spec as this recipient's key";

/// A party's secret keys. Zeroized on drop (the dalek and X-Wing types
/// zeroize themselves); deliberately neither `Debug`, `Clone` nor `Serialize`.
pub struct PartyKey {
    name: String,
    signing: SigningKey,
    /// The X-Wing decapsulation key (held as its 32-byte seed) that opens
    /// sealed results. `None` for a key file from before post-quantum
    /// sealing, until it is upgraded.
    kem: Option<x_wing::DecapsulationKey>,
    /// The X25519 secret of such an older file: kept, and written back, so
    /// that an upgrade never destroys key material. Unused by this release.
    legacy_x25519: Option<Zeroizing<[u8; 32]>>,
}

/// A party's public keys, as in its `.pub` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeys {
    pub name: String,
    /// Ed25519 verifying key, hex: a contributor's `public_key` in specs.
    pub ed25519: String,
    /// X-Wing public key (1216 bytes), base64: a recipient's
    /// `kem_public_key` in specs. Absent for a key from before post-quantum
    /// sealing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kem: Option<String>,
    /// The X25519 key that `.pub` files from before post-quantum sealing
    /// hold: read (so that those files still load) and never written.
    #[serde(default, rename = "x25519", skip_serializing)]
    pub legacy_x25519: Option<String>,
}

/// A recipient's public result key: an X-Wing encapsulation key, the
/// ML-KEM-768 encapsulation key (1184 bytes) followed by an X25519 public
/// key (32), written in base64 in specs (`kem_public_key`) and `.pub`
/// files (`kem`).
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey(x_wing::EncapsulationKey);

impl KemPublicKey {
    /// Its length in bytes.
    pub const LEN: usize = x_wing::ENCAPSULATION_KEY_SIZE;

    /// From its bytes. Refuses another length, an ML-KEM part that fails
    /// the FIPS 203 modulus check, and an X25519 part of small order (which
    /// would leave the X25519 half without any secret).
    pub fn from_bytes(bytes: &[u8]) -> Option<KemPublicKey> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let x: [u8; 32] = bytes[Self::LEN - 32..].try_into().ok()?;
        // Clamping makes every X25519 scalar a multiple of the cofactor, so
        // a small-order point gives the all-zero secret for any scalar.
        let probe = x25519_dalek::StaticSecret::from([0x5a; 32]);
        if !probe
            .diffie_hellman(&x25519_dalek::PublicKey::from(x))
            .was_contributory()
        {
            return None;
        }
        x_wing::EncapsulationKey::try_from(bytes)
            .ok()
            .map(KemPublicKey)
    }

    /// From base64 (standard or URL-safe, padded or not), as in specs and
    /// `.pub` files.
    pub fn parse(s: &str) -> Option<KemPublicKey> {
        crate::spec::decode_base64_any(s).and_then(|b| KemPublicKey::from_bytes(&b))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }

    /// Standard padded base64: the form `kuvert keygen` prints and the
    /// canonical form of a spec holds.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_bytes())
    }

    pub(crate) fn inner(&self) -> &x_wing::EncapsulationKey {
        &self.0
    }
}

impl std::fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KemPublicKey({}...)", &self.to_base64()[..16])
    }
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
        let mut key = PartyKey {
            name: name.to_string(),
            signing,
            kem: None,
            legacy_x25519: None,
        };
        key.add_kem_with(rng);
        key
    }

    /// A fresh X-Wing key (its seed drawn from `rng`).
    fn add_kem_with<R: RngCore + CryptoRng>(&mut self, rng: &mut R) {
        let mut seed = Zeroizing::new([0u8; x_wing::DECAPSULATION_KEY_SIZE]);
        rng.fill_bytes(&mut seed[..]);
        self.kem = Some(x_wing::DecapsulationKey::from(*seed));
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// True when this key can receive sealed results (it has an X-Wing key).
    pub fn has_kem(&self) -> bool {
        self.kem.is_some()
    }

    /// The public result key (a recipient's `kem_public_key`). Fails, saying
    /// how to upgrade, for a key file from before post-quantum sealing.
    pub fn kem_public(&self) -> Result<KemPublicKey, GovError> {
        self.kem_secret()
            .map(|dk| KemPublicKey(dk.encapsulation_key().clone()))
    }

    /// The X-Wing decapsulation key, for opening sealed results.
    pub(crate) fn kem_secret(&self) -> Result<&x_wing::DecapsulationKey, GovError> {
        self.kem.as_ref().ok_or_else(|| GovError::BadKey {
            origin: format!("the key of {:?}", self.name),
            message: NO_KEM.into(),
        })
    }

    pub fn public(&self) -> PublicKeys {
        PublicKeys {
            name: self.name.clone(),
            ed25519: hex::encode(self.verifying_key().as_bytes()),
            kem: self.kem_public().ok().map(|k| k.to_base64()),
            legacy_x25519: None,
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

    /// Sign a job outcome ([`outcome_message`]): this door signs nothing
    /// else (approvals, receipts, uploads and federations use other tags).
    pub fn sign_outcome(
        &self,
        session: &[u8; 32],
        node: u8,
        outcome: u8,
    ) -> ed25519_dalek::Signature {
        self.signing.sign(&outcome_message(session, node, outcome))
    }

    /// Sign a federation file (`kuvert federation sign`): the message is
    /// [`FEDERATION_TAG`] followed by the file's 32-byte hash, so this door
    /// signs nothing else (approvals, receipts and uploads use other tags).
    pub fn sign_federation(&self, federation_hash: &[u8; 32]) -> ed25519_dalek::Signature {
        let mut m = FEDERATION_TAG.to_vec();
        m.extend_from_slice(federation_hash);
        self.signing.sign(&m)
    }

    /// The key file's text (zeroized on drop).
    pub fn to_text(&self) -> Zeroizing<String> {
        // Reserved up front, so that no secret is left behind in a buffer
        // that a reallocation abandons.
        let mut text = Zeroizing::new(String::with_capacity(400 + self.name.len()));
        text.push_str(BEGIN);
        text.push_str("\nname: ");
        text.push_str(&self.name);
        text.push('\n');
        {
            let mut line = |field: &str, secret: &[u8]| {
                let mut h = Zeroizing::new(hex::encode(secret));
                text.push_str(field);
                text.push_str(": ");
                text.push_str(&h);
                text.push('\n');
                h.zeroize();
            };
            line("ed25519-secret", self.signing.as_bytes());
            if let Some(k) = &self.kem {
                line("xwing-secret", k.as_bytes());
            }
            if let Some(x) = &self.legacy_x25519 {
                line("x25519-secret", &x[..]);
            }
        }
        text.push_str(END);
        text.push('\n');
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
        let (mut name, mut ed, mut kem, mut x) = (None, None, None, None);
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
                "xwing-secret" => {
                    kem = Some(Zeroizing::new(hex::decode_array::<32>(v).ok_or_else(
                        || bad("xwing-secret is not 64 hex digits; the file is damaged".into()),
                    )?))
                }
                // Files from before post-quantum sealing (kept, unused).
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
        let (Some(name), Some(ed)) = (name, ed) else {
            return Err(bad(
                "the file needs name, ed25519-secret and xwing-secret".into()
            ));
        };
        Ok(PartyKey {
            name,
            signing: SigningKey::from_bytes(&ed),
            kem: kem.map(|s| x_wing::DecapsulationKey::from(*s)),
            legacy_x25519: x,
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
        self.write_secret(path)?;
        self.write_pub(path)
    }

    /// Create `path` (mode 0600, never overwriting) holding the key file.
    fn write_secret(&self, path: &Path) -> Result<(), GovError> {
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
            .map_err(|e| GovError::io(path, hint, e))
    }

    /// Write `path.pub` and return its path.
    fn write_pub(&self, path: &Path) -> Result<PathBuf, GovError> {
        let hint = "; check the directory exists and is writable";
        let pub_path = pub_path(path);
        let mut text = serde_json::to_string_pretty(&self.public()).unwrap_or_default();
        text.push('\n');
        std::fs::write(&pub_path, text).map_err(|e| GovError::io(&pub_path, hint, e))?;
        Ok(pub_path)
    }

    /// `kuvert keygen --upgrade`: give a key file from before post-quantum
    /// sealing its X-Wing result key. Keeps the name, the Ed25519 signing
    /// key and the old `x25519-secret` line, adds an `xwing-secret` drawn
    /// from the OS CSPRNG, and replaces `path` (mode 0600) through a
    /// temporary file beside it and a rename, so that a crash leaves either
    /// the old or the new file; then rewrites `path.pub`. Refuses a file
    /// that has an X-Wing key already. Returns the upgraded key and the
    /// public file's path.
    pub fn upgrade_file(path: &Path) -> Result<(PartyKey, PathBuf), GovError> {
        let mut key = PartyKey::load(path)?;
        if key.kem.is_some() {
            return Err(GovError::BadKey {
                origin: path.display().to_string(),
                message: "has a post-quantum result key (xwing-secret) already; nothing to upgrade"
                    .into(),
            });
        }
        key.add_kem_with(&mut rand_core::OsRng);
        let mut tmp = path.as_os_str().to_os_string();
        tmp.push(".upgrading");
        let tmp = PathBuf::from(tmp);
        if tmp.exists() {
            return Err(GovError::BadKey {
                origin: tmp.display().to_string(),
                message: format!(
                    "is left over from an interrupted upgrade; check that {} is intact, delete the \
                     leftover file, and upgrade again",
                    path.display()
                ),
            });
        }
        key.write_secret(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            GovError::io(path, "; the key file is unchanged", e)
        })?;
        let pub_path = key.write_pub(path)?;
        Ok((key, pub_path))
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
            message: format!("{e}; a .pub file is JSON with name, ed25519 and kem"),
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
            text.replace("xwing-secret: ", "xwing-secret: zz"),
            text.replace("ed25519-secret: ", "ed25519-secret: 00"),
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
        assert_ne!(a.public().kem, b.public().kem);
    }

    /// A key file as releases before post-quantum sealing wrote it.
    fn legacy_text(k: &PartyKey) -> String {
        format!(
            "{BEGIN}\nname: {}\ned25519-secret: {}\nx25519-secret: {}\n{END}\n",
            k.name,
            hex::encode(k.signing.as_bytes()),
            "11".repeat(32)
        )
    }

    #[test]
    fn old_key_files_sign_but_must_be_upgraded_to_receive() {
        let k = PartyKey::generate_with("fk", &mut rand_chacha::ChaCha20Rng::seed_from_u64(4));
        let old = PartyKey::from_text(&legacy_text(&k), "old.key").unwrap();
        assert!(!old.has_kem());
        assert_eq!(old.verifying_key(), k.verifying_key());
        assert_eq!(old.public().kem, None);
        let e = old.kem_public().unwrap_err().to_string();
        assert!(e.contains("kuvert keygen --upgrade"), "{e}");
        // Its .pub file, with the old "x25519" field, still loads.
        let old_pub = format!(
            r#"{{"name": "fk", "ed25519": "{}", "x25519": "{}"}}"#,
            old.public().ed25519,
            "22".repeat(32)
        );
        let p: PublicKeys = serde_json::from_str(&old_pub).unwrap();
        assert_eq!(p.kem, None);
        assert!(!serde_json::to_string(&p).unwrap().contains("x25519"));
    }

    #[test]
    fn upgrade_adds_a_kem_key_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fk.key");
        let k = PartyKey::generate_with("fk", &mut rand_chacha::ChaCha20Rng::seed_from_u64(5));
        std::fs::write(&path, legacy_text(&k)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let (up, pub_path) = PartyKey::upgrade_file(&path).unwrap();
        assert!(up.has_kem());
        let loaded = PartyKey::load(&path).unwrap();
        assert_eq!(loaded.public(), up.public());
        assert_eq!(loaded.verifying_key(), k.verifying_key());
        assert_eq!(loaded.name(), "fk");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("x25519-secret: {}", "11".repeat(32))));
        assert!(text.contains("xwing-secret: "));
        assert_eq!(PublicKeys::load(&pub_path).unwrap(), up.public());
        assert!(up.public().kem.is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Once is enough.
        let e = PartyKey::upgrade_file(&path).err().unwrap().to_string();
        assert!(e.contains("already"), "{e}");
        assert!(!dir.path().join("fk.key.upgrading").exists());
    }

    #[test]
    fn kem_public_keys_parse_and_refuse_garbage() {
        let k = PartyKey::generate_with("r", &mut rand_chacha::ChaCha20Rng::seed_from_u64(6));
        let pk = k.kem_public().unwrap();
        let bytes = pk.to_bytes();
        assert_eq!(bytes.len(), KemPublicKey::LEN);
        assert_eq!(KemPublicKey::parse(&pk.to_base64()), Some(pk.clone()));
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(KemPublicKey::parse(&url), Some(pk.clone()));
        assert_eq!(k.public().kem, Some(pk.to_base64()));
        // Wrong length.
        assert!(KemPublicKey::from_bytes(&bytes[1..]).is_none());
        assert!(KemPublicKey::parse("AAAA").is_none());
        assert!(KemPublicKey::parse("not base64!").is_none());
        // An X25519 part of small order (0 and 1 are such points).
        for point in [0u8, 1] {
            let mut b = bytes.clone();
            b[KemPublicKey::LEN - 32..].fill(0);
            b[KemPublicKey::LEN - 32] = point;
            assert!(KemPublicKey::from_bytes(&b).is_none(), "{point}");
        }
        // ML-KEM coefficients >= q fail the modulus check.
        let mut b = bytes.clone();
        b[..384].fill(0xff);
        assert!(KemPublicKey::from_bytes(&b).is_none());
        assert!(format!("{pk:?}").starts_with("KemPublicKey("));
    }
}
