//! The hybrid post-quantum key exchange of every TLS connection:
//! X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem, TLS `NamedGroup` 0x11EC).
//!
//! Shares cross the network between agencies, and an adversary can record
//! the traffic today and decrypt it once a quantum computer breaks X25519
//! ("harvest now, decrypt later"). The ring provider has no ML-KEM, so this
//! module implements the group on RustCrypto's `ml-kem` (FIPS 203,
//! ML-KEM-768) and `x25519-dalek`; [`crate::tls::provider`] offers it first.
//!
//! Wire format (TLS 1.3 only; sizes in bytes):
//!
//! ```text
//! client key share  = ML-KEM-768 encapsulation key (1184) || X25519 public (32)
//! server key share  = ML-KEM-768 ciphertext (1088)        || X25519 public (32)
//! shared secret     = ML-KEM-768 shared secret (32)       || X25519 shared secret (32)
//! ```
//!
//! ML-KEM comes first in all three (for this group; the P-256 hybrid has the
//! classical part first). The 64-byte secret goes into the TLS 1.3 key
//! schedule as the (EC)DHE input, so the connection's keys stay secret as
//! long as *either* ML-KEM-768 or X25519 is unbroken.
//!
//! Checks: a share of the wrong length, an encapsulation key that fails the
//! FIPS 203 modulus check, and an X25519 public key that gives the all-zero
//! shared secret (a small-order point) are refused with
//! `PeerMisbehaved::InvalidKeyShare`, which aborts the handshake. A wrong
//! ciphertext of the right length is not detected by ML-KEM (implicit
//! rejection yields an unrelated secret); the handshake then fails at the
//! Finished messages.
//!
//! Randomness: ML-KEM key seeds, encapsulation randomness and X25519
//! secrets are drawn from the operating system's CSPRNG (`OsRng`); a failing
//! RNG is reported as `Error::FailedToGetRandomBytes`, never a panic.
//!
//! Key material: the X25519 secret and the ML-KEM decapsulation key are
//! wiped when the exchange ends (both types zeroize on drop), our copies of
//! seeds, encapsulation randomness and shared secrets are wiped after use,
//! and the concatenated secret lives in rustls' `SharedSecret`, which wipes
//! itself. Copies made inside `ml-kem` while computing (e.g. the seed's `d`
//! half during key generation) are not under our control.
//!
//! As a client, the exchange also offers its X25519 half as a plain X25519
//! share (`hybrid_component`), so a server without the hybrid group picks
//! X25519 in the same round trip, without a HelloRetryRequest, and the
//! X25519 key is generated once for both.

use ml_kem::kem::{Decapsulate, KeyExport, TryKeyInit};
use ml_kem::ml_kem_768;
use rand_core::{OsRng, RngCore};
use rustls::crypto::{ActiveKeyExchange, CompletedKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{Error, NamedGroup, PeerMisbehaved, ProtocolVersion};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// Length of an ML-KEM-768 encapsulation key.
pub const MLKEM768_ENCAPSULATION_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const MLKEM768_CIPHERTEXT_LEN: usize = 1088;
/// Length of an X25519 public key and of its shared secret.
pub const X25519_LEN: usize = 32;
/// Length of the client's key share.
pub const CLIENT_SHARE_LEN: usize = MLKEM768_ENCAPSULATION_KEY_LEN + X25519_LEN;
/// Length of the server's key share.
pub const SERVER_SHARE_LEN: usize = MLKEM768_CIPHERTEXT_LEN + X25519_LEN;
/// Length of the combined shared secret (ML-KEM's 32 bytes, then X25519's).
pub const SHARED_SECRET_LEN: usize = 32 + X25519_LEN;

/// The X25519MLKEM768 key exchange group, for a rustls `CryptoProvider`'s
/// `kx_groups`.
pub static X25519MLKEM768: &dyn SupportedKxGroup = &X25519MlKem768;

/// See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct X25519MlKem768;

fn invalid_share() -> Error {
    Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare)
}

/// `N` random bytes from the OS CSPRNG, wiped on drop.
fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, Error> {
    let mut b = Zeroizing::new([0u8; N]);
    OsRng
        .try_fill_bytes(&mut b[..])
        .map_err(|_| Error::FailedToGetRandomBytes)?;
    Ok(b)
}

/// A fresh X25519 key pair from the OS CSPRNG (the secret zeroizes on drop).
fn x25519_keypair() -> Result<(StaticSecret, PublicKey), Error> {
    let sk = StaticSecret::from(*random::<32>()?);
    let pk = PublicKey::from(&sk);
    Ok((sk, pk))
}

/// X25519 with the peer's public key, refusing a malformed share and the
/// all-zero result (RFC 7748 §6.1; RFC 8446 §7.4.2).
fn x25519_agree(sk: &StaticSecret, peer: &[u8]) -> Result<x25519_dalek::SharedSecret, Error> {
    let peer: [u8; X25519_LEN] = peer.try_into().map_err(|_| invalid_share())?;
    let ss = sk.diffie_hellman(&PublicKey::from(peer));
    if !ss.was_contributory() {
        return Err(invalid_share());
    }
    Ok(ss)
}

/// ML-KEM's 32 bytes, then X25519's: the order of this group.
fn combine(mlkem: &[u8], x25519: &[u8]) -> SharedSecret {
    let mut v = Vec::with_capacity(SHARED_SECRET_LEN);
    v.extend_from_slice(mlkem);
    v.extend_from_slice(x25519);
    SharedSecret::from(v)
}

impl SupportedKxGroup for X25519MlKem768 {
    /// Client side: a fresh ML-KEM-768 key pair and X25519 key pair.
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut seed = ml_kem::Seed::default();
        {
            let r = random::<64>()?;
            seed.copy_from_slice(&r[..]);
        }
        let dk = ml_kem_768::DecapsulationKey::from_seed(seed);
        seed.as_mut_slice().zeroize();
        let (x_sk, x_pk) = x25519_keypair()?;
        let mut share = Vec::with_capacity(CLIENT_SHARE_LEN);
        share.extend_from_slice(&dk.encapsulation_key().to_bytes());
        share.extend_from_slice(x_pk.as_bytes());
        Ok(Box::new(Active {
            mlkem: dk,
            x25519: x_sk,
            share,
        }))
    }

    /// Server side: encapsulate to the client's ML-KEM key, and X25519 with
    /// a fresh key pair.
    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        if client_share.len() != CLIENT_SHARE_LEN {
            return Err(invalid_share());
        }
        let (ek_bytes, x_peer) = client_share.split_at(MLKEM768_ENCAPSULATION_KEY_LEN);
        let ek = <ml_kem_768::EncapsulationKey as TryKeyInit>::new_from_slice(ek_bytes)
            .map_err(|_| invalid_share())?;
        let (x_sk, x_pk) = x25519_keypair()?;
        let x_ss = x25519_agree(&x_sk, x_peer)?;
        let mut m = ml_kem::B32::default();
        let drawn = OsRng.try_fill_bytes(&mut m);
        let encapsulated = drawn.map(|()| ek.encapsulate_deterministic(&m));
        m.as_mut_slice().zeroize();
        let (ct, mut m_ss) = encapsulated.map_err(|_| Error::FailedToGetRandomBytes)?;
        let secret = combine(&m_ss, x_ss.as_bytes());
        m_ss.as_mut_slice().zeroize();
        let mut pub_key = Vec::with_capacity(SERVER_SHARE_LEN);
        pub_key.extend_from_slice(&ct);
        pub_key.extend_from_slice(x_pk.as_bytes());
        Ok(CompletedKeyExchange {
            group: NamedGroup::X25519MLKEM768,
            pub_key,
            secret,
        })
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

/// The client's half-done exchange: its secrets and its key share.
struct Active {
    mlkem: ml_kem_768::DecapsulationKey,
    x25519: StaticSecret,
    /// Encapsulation key || X25519 public.
    share: Vec<u8>,
}

impl ActiveKeyExchange for Active {
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, Error> {
        if server_share.len() != SERVER_SHARE_LEN {
            return Err(invalid_share());
        }
        let (ct, x_peer) = server_share.split_at(MLKEM768_CIPHERTEXT_LEN);
        let ct = ml_kem_768::Ciphertext::try_from(ct).map_err(|_| invalid_share())?;
        let x_ss = x25519_agree(&self.x25519, x_peer)?;
        let mut m_ss = self.mlkem.decapsulate(&ct);
        let secret = combine(&m_ss, x_ss.as_bytes());
        m_ss.as_mut_slice().zeroize();
        Ok(secret)
    }

    /// The X25519 half, offered as a plain X25519 share too.
    fn hybrid_component(&self) -> Option<(NamedGroup, &[u8])> {
        Some((
            NamedGroup::X25519,
            &self.share[MLKEM768_ENCAPSULATION_KEY_LEN..],
        ))
    }

    /// The server chose plain X25519: finish that half only.
    fn complete_hybrid_component(
        self: Box<Self>,
        server_share: &[u8],
    ) -> Result<SharedSecret, Error> {
        let ss = x25519_agree(&self.x25519, server_share)?;
        Ok(SharedSecret::from(&ss.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.share
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_x25519() -> &'static dyn SupportedKxGroup {
        rustls::crypto::ring::kx_group::X25519
    }

    #[test]
    fn round_trip_with_random_keys() {
        for _ in 0..8 {
            let client = X25519MLKEM768.start().unwrap();
            assert_eq!(client.group(), NamedGroup::X25519MLKEM768);
            assert_eq!(client.pub_key().len(), CLIENT_SHARE_LEN);
            let server = X25519MLKEM768.start_and_complete(client.pub_key()).unwrap();
            assert_eq!(server.group, NamedGroup::X25519MLKEM768);
            assert_eq!(server.pub_key.len(), SERVER_SHARE_LEN);
            let c = client.complete(&server.pub_key).unwrap();
            assert_eq!(c.secret_bytes().len(), SHARED_SECRET_LEN);
            assert_eq!(c.secret_bytes(), server.secret.secret_bytes());
        }
        // Fresh keys every time.
        let a = X25519MLKEM768.start().unwrap();
        let b = X25519MLKEM768.start().unwrap();
        assert_ne!(a.pub_key(), b.pub_key());
    }

    /// The server side against the primitives directly: the secret is the
    /// ML-KEM secret first, then X25519 (checked with ring's X25519, an
    /// independent implementation), and the share is ciphertext || X25519.
    #[test]
    fn server_layout_follows_the_draft() {
        let mut seed = ml_kem::Seed::default();
        seed.copy_from_slice(&[7u8; 64]);
        let dk = ml_kem_768::DecapsulationKey::from_seed(seed);
        let ring_x = ring_x25519().start().unwrap();
        let mut share = dk.encapsulation_key().to_bytes().to_vec();
        share.extend_from_slice(ring_x.pub_key());
        let server = X25519MLKEM768.start_and_complete(&share).unwrap();
        let (ct, x_pub) = server.pub_key.split_at(MLKEM768_CIPHERTEXT_LEN);
        let m_ss = dk.decapsulate(&ml_kem_768::Ciphertext::try_from(ct).unwrap());
        let x_ss = ring_x.complete(x_pub).unwrap();
        let s = server.secret.secret_bytes();
        assert_eq!(&s[..32], &m_ss[..]);
        assert_eq!(&s[32..], x_ss.secret_bytes());
    }

    /// The client side likewise: we play the server with the primitives.
    #[test]
    fn client_layout_follows_the_draft() {
        let client = X25519MLKEM768.start().unwrap();
        let (ek, x_pub) = client.pub_key().split_at(MLKEM768_ENCAPSULATION_KEY_LEN);
        let ek = <ml_kem_768::EncapsulationKey as TryKeyInit>::new_from_slice(ek).unwrap();
        let (ct, m_ss) = ek.encapsulate_deterministic(&ml_kem::B32::from([9u8; 32]));
        let ring_x = ring_x25519().start_and_complete(x_pub).unwrap();
        let mut share = ct.to_vec();
        share.extend_from_slice(&ring_x.pub_key);
        let s = client.complete(&share).unwrap();
        assert_eq!(&s.secret_bytes()[..32], &m_ss[..]);
        assert_eq!(&s.secret_bytes()[32..], ring_x.secret.secret_bytes());
    }

    #[test]
    fn hybrid_component_is_plain_x25519() {
        let client = X25519MLKEM768.start().unwrap();
        let (group, share) = client.hybrid_component().unwrap();
        assert_eq!(group, NamedGroup::X25519);
        assert_eq!(share, &client.pub_key()[MLKEM768_ENCAPSULATION_KEY_LEN..]);
        let server = ring_x25519().start_and_complete(share).unwrap();
        let s = client.complete_hybrid_component(&server.pub_key).unwrap();
        assert_eq!(s.secret_bytes(), server.secret.secret_bytes());
    }

    fn is_invalid_share<T>(r: Result<T, Error>) -> bool {
        matches!(
            r,
            Err(Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare))
        )
    }

    #[test]
    fn malformed_client_shares_are_refused() {
        let good = X25519MLKEM768.start().unwrap().pub_key().to_vec();
        for len in [
            0,
            32,
            CLIENT_SHARE_LEN - 1,
            CLIENT_SHARE_LEN + 1,
            SERVER_SHARE_LEN,
        ] {
            let mut s = good.clone();
            s.resize(len, 1);
            assert!(
                is_invalid_share(X25519MLKEM768.start_and_complete(&s)),
                "{len}"
            );
        }
        // Coefficients >= q: fails the FIPS 203 modulus check.
        let mut s = good.clone();
        s[..MLKEM768_ENCAPSULATION_KEY_LEN - 32].fill(0xff);
        assert!(is_invalid_share(X25519MLKEM768.start_and_complete(&s)));
        // X25519 points whose shared secret is all zero (small order).
        for point in [[0u8; 32], {
            let mut p = [0u8; 32];
            p[0] = 1;
            p
        }] {
            let mut s = good.clone();
            s[MLKEM768_ENCAPSULATION_KEY_LEN..].copy_from_slice(&point);
            assert!(is_invalid_share(X25519MLKEM768.start_and_complete(&s)));
        }
        // The unmodified share works.
        assert!(X25519MLKEM768.start_and_complete(&good).is_ok());
    }

    #[test]
    fn malformed_server_shares_are_refused() {
        let fresh = || {
            let c = X25519MLKEM768.start().unwrap();
            let s = X25519MLKEM768.start_and_complete(c.pub_key()).unwrap();
            (c, s.pub_key)
        };
        for len in [
            0,
            32,
            SERVER_SHARE_LEN - 1,
            SERVER_SHARE_LEN + 1,
            CLIENT_SHARE_LEN,
        ] {
            let (c, mut s) = fresh();
            s.resize(len, 1);
            assert!(is_invalid_share(c.complete(&s)), "{len}");
        }
        let (c, mut s) = fresh();
        s[MLKEM768_CIPHERTEXT_LEN..].fill(0);
        assert!(is_invalid_share(c.complete(&s)));
        // The plain X25519 half refuses the same.
        let (c, _) = fresh();
        assert!(is_invalid_share(c.complete_hybrid_component(&[0u8; 32])));
        let (c, _) = fresh();
        assert!(is_invalid_share(c.complete_hybrid_component(&[5u8; 31])));
        // A tampered ciphertext is not detected here (implicit rejection)
        // but gives another secret, so the handshake fails later.
        let c = X25519MLKEM768.start().unwrap();
        let server = X25519MLKEM768.start_and_complete(c.pub_key()).unwrap();
        let mut s = server.pub_key.clone();
        s[0] ^= 1;
        let got = c.complete(&s).unwrap();
        assert_ne!(got.secret_bytes(), server.secret.secret_bytes());
        // ... in the ML-KEM half only.
        assert_eq!(
            &got.secret_bytes()[32..],
            &server.secret.secret_bytes()[32..]
        );
    }

    #[test]
    fn only_for_tls13() {
        assert!(X25519MLKEM768.usable_for_version(ProtocolVersion::TLSv1_3));
        assert!(!X25519MLKEM768.usable_for_version(ProtocolVersion::TLSv1_2));
        assert_eq!(u16::from(X25519MLKEM768.name()), 0x11ec);
    }
}
