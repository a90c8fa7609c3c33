//! One computing party: its keys, its channel to the other two, and the
//! primitive protocols (input, reveal, multiplication, AND).
//!
//! Composite gadgets (comparison, conversions, shuffle) in the sibling
//! modules are written only in terms of these primitives and local share
//! arithmetic, so a maliciously secure variant can replace the primitives
//! (e.g. with verified multiplication and checked openings) without
//! touching the gadgets.
//!
//! # Security
//! Semi-honest, honest majority: one party may be corrupted and follow the
//! protocol while trying to learn more. Every message a party receives is
//! masked by a fresh zero-sharing or PRF output; only [`Party::reveal_a`],
//! [`Party::reveal_b`] (and gadgets that document a reveal) disclose values.
//! The primitives with a check against a *malicious* party so far are the
//! verified open in [`crate::verified`] and the share consistency check in
//! [`crate::consistency`].

use rand::{CryptoRng, RngCore};
use zeroize::Zeroize;

use crate::dzkp::{AndLog, MAX_BATCH_WORDS};
use crate::mac::MacState;
use crate::prf::{PartyKeys, Prf, KEY_LEN};
use crate::share::{extend_wiping, AShare, BShare};
use crate::transport::{next, prev, Incoming, Outgoing, PartyId, Transport, TransportError};

/// Errors of the protocol engine.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The caller broke an operation's contract (e.g. lengths differ, or the
    /// input owner passed no values). A bug in the caller, not a peer.
    #[error("invalid use of the engine: {0}")]
    Usage(String),
    /// The operation has no check against a malicious party yet and the
    /// session is in malicious mode ([`Party::require_semi_honest`]).
    /// Raised before the operation sends anything.
    #[error("{0}")]
    Unsupported(String),
    /// A consistency check of a verified protocol failed, here or (through
    /// the abort signal) at another party: some party sent a message that
    /// does not fit the honest protocol, or (check `"consistency"`) two
    /// parties hold different copies of a share component. `check` names
    /// the check (`"open"`, `"consistency"`, `"abort-signal"`); `detail`
    /// says what did not match and, where it can be told, which party's
    /// message or copy it was. The operation's values are withheld; the
    /// session must not continue.
    #[error("check {check:?} failed: {detail}")]
    Check { check: String, detail: String },
}

pub type Result<T> = std::result::Result<T, MpcError>;

/// Communication counters of one party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Communication rounds (every party counts every round of a protocol,
    /// also those in which it happens to send nothing).
    pub rounds: u64,
    /// Payload bytes this party sent.
    pub bytes_sent: u64,
    /// Payload bytes this party received.
    pub bytes_received: u64,
}

impl std::ops::Sub for Stats {
    type Output = Stats;
    fn sub(self, o: Stats) -> Stats {
        Stats {
            rounds: self.rounds - o.rounds,
            bytes_sent: self.bytes_sent - o.bytes_sent,
            bytes_received: self.bytes_received - o.bytes_received,
        }
    }
}

/// The adversary a session is secure against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// One party may look at everything it sees but follows the protocol.
    SemiHonest,
    /// One party may also deviate: security with abort. Every AND gate is
    /// proven ([`crate::dzkp`]) and every product over Z_2^64 and shuffle
    /// pass MAC-checked ([`crate::mac`]) before anything is opened, every
    /// open is verified ([`crate::verified`]), and operations that have no
    /// check (see [`Party::require_semi_honest`]: the shuffle of boolean
    /// columns) refuse to run.
    Malicious,
}

/// One of the three parties of a session.
pub struct Party {
    id: PartyId,
    net: Box<dyn Transport>,
    keys: PartyKeys,
    nonce: u64,
    stats: Stats,
    /// When set, a copy of every received message (the party's view).
    view: Option<Vec<(PartyId, Vec<u8>)>>,
    /// In malicious mode, the AND gates not yet proven.
    and_log: Option<AndLog>,
    /// In malicious mode, the MAC key and the products not yet checked.
    mac: Option<MacState>,
    /// Test tooling ([`crate::faulty`]): how this party deviates in its
    /// local computation. Empty unless a test sets it; never in a node.
    deviation: Deviation,
}

/// Deviations in a party's local computation, set by [`crate::faulty`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Deviation {
    /// Apply a wrong permutation in every shuffle pass.
    pub wrong_permutations: bool,
    /// `(pass, index, delta)`: add `delta` to this party's element `index`
    /// of its message in pass `pass` of every shuffle (and to its own copy
    /// of the result, so that its state stays consistent with it).
    pub pass_errors: Vec<(usize, usize, i64)>,
}

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party")
            .field("id", &self.id)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Party {
    /// Start a session: agree the pairwise and common PRF keys over `net`
    /// (one round). `rng` must be a CSPRNG: `rand::rngs::OsRng` in
    /// production, a seeded ChaCha20 generator in reproducible tests.
    pub fn setup<R: RngCore + CryptoRng>(net: Box<dyn Transport>, rng: &mut R) -> Result<Party> {
        Party::setup_with(net, rng, Security::SemiHonest)
    }

    /// [`Party::setup`] for a chosen adversary model. All three parties
    /// must choose the same.
    pub fn setup_with<R: RngCore + CryptoRng>(
        net: Box<dyn Transport>,
        rng: &mut R,
        security: Security,
    ) -> Result<Party> {
        let id = net.party();
        if id > 2 {
            return Err(MpcError::Usage(format!("party id {id} is not 0, 1 or 2")));
        }
        let mut mine = [0u8; KEY_LEN];
        let mut common = [0u8; KEY_LEN];
        rng.fill_bytes(&mut mine);
        rng.fill_bytes(&mut common);
        // To prev: our key k_i (it becomes prev's "next" key) and our common
        // contribution. To next: our common contribution.
        let mut to_prev = [0u8; 2 * KEY_LEN];
        to_prev[..KEY_LEN].copy_from_slice(&mine);
        to_prev[KEY_LEN..].copy_from_slice(&common);
        let mut from_next = [0u8; 2 * KEY_LEN];
        let mut from_prev = [0u8; KEY_LEN];
        let mut party = Party {
            id,
            net,
            keys: PartyKeys {
                prev: Prf::new([0; KEY_LEN]),
                next: Prf::new([0; KEY_LEN]),
                all: Prf::new([0; KEY_LEN]),
                own: Prf::new([0; KEY_LEN]),
            },
            nonce: 0,
            stats: Stats::default(),
            view: None,
            and_log: (security == Security::Malicious).then(AndLog::default),
            mac: None,
            deviation: Deviation::default(),
        };
        party.round_bytes(
            &[(prev(id), &to_prev[..]), (next(id), &common[..])],
            &mut [
                (next(id), &mut from_next[..]),
                (prev(id), &mut from_prev[..]),
            ],
        )?;
        let mut next_key = [0u8; KEY_LEN];
        next_key.copy_from_slice(&from_next[..KEY_LEN]);
        let mut all = [0u8; KEY_LEN];
        for j in 0..KEY_LEN {
            all[j] = common[j] ^ from_next[KEY_LEN + j] ^ from_prev[j];
        }
        let mut own = [0u8; KEY_LEN];
        rng.fill_bytes(&mut own);
        party.keys = PartyKeys {
            prev: Prf::new(mine),
            next: Prf::new(next_key),
            all: Prf::new(all),
            own: Prf::new(own),
        };
        own.zeroize();
        mine.zeroize();
        common.zeroize();
        to_prev.zeroize();
        from_next.zeroize();
        from_prev.zeroize();
        next_key.zeroize();
        all.zeroize();
        if security == Security::Malicious {
            party.mac = Some(party.mac_setup());
        }
        Ok(party)
    }

    /// This party's id.
    pub fn id(&self) -> PartyId {
        self.id
    }

    /// The adversary model of this session.
    pub fn security(&self) -> Security {
        if self.and_log.is_some() {
            Security::Malicious
        } else {
            Security::SemiHonest
        }
    }

    /// Refuse `op` in malicious mode: it has no check against a deviating
    /// party yet, so running it would silently downgrade the session.
    pub fn require_semi_honest(&self, op: &str) -> Result<()> {
        if self.and_log.is_some() {
            return Err(MpcError::Unsupported(format!(
                "{op} is not yet secure against a malicious party, so this \
                 computation cannot run in malicious mode; run it without \
                 --malicious (semi-honest) or leave that operation out"
            )));
        }
        Ok(())
    }

    pub(crate) fn and_log_mut(&mut self) -> Option<&mut AndLog> {
        self.and_log.as_mut()
    }

    pub(crate) fn deviation(&self) -> &Deviation {
        &self.deviation
    }

    pub(crate) fn deviation_mut(&mut self) -> &mut Deviation {
        &mut self.deviation
    }

    pub(crate) fn mac_state(&mut self) -> Option<&mut MacState> {
        self.mac.as_mut()
    }

    /// Run every pending check of malicious mode (AND proofs, then the MAC
    /// check of products); a no-op in semi-honest mode.
    pub fn verify_all(&mut self) -> Result<()> {
        self.verify_ands()?;
        self.verify_macs()
    }

    /// Vouch for `value` (this party's shares of a result, about to leave
    /// the session) once every pending check of this session's mode passed
    /// ([`Party::verify_all`]; nothing pending in semi-honest mode). Code
    /// that stores or sends results requires [`crate::Verified`], which
    /// only this crate constructs: validate before release, as a type.
    pub fn verified_result<T>(&mut self, value: T) -> Result<crate::Verified<T>> {
        self.verify_all()?;
        Ok(crate::Verified::new(value))
    }

    /// A fresh 32-byte value that all three parties get at the same call
    /// and none chose alone: PRF output of the key the session's coin toss
    /// made common, under a fresh nonce. For binding statements signed
    /// outside the engine (e.g. the nodes' signed agreement on a job's
    /// outcome) to this point of this session, so that they cannot be
    /// replayed into another. Every party must call it at the same point;
    /// it sends nothing. Public to the three parties, never secret.
    pub fn session_tag(&mut self) -> [u8; 32] {
        let nonce = self.fresh_nonce();
        let words = self.keys().all.words(nonce, 4);
        let mut tag = [0u8; 32];
        for (out, w) in tag.chunks_exact_mut(8).zip(words) {
            out.copy_from_slice(&w.to_le_bytes());
        }
        tag
    }

    /// Communication so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Give the transport back (e.g. to inspect a recorded view in tests).
    pub fn into_transport(self) -> Box<dyn Transport> {
        self.net
    }

    /// Mutable access to the transport.
    pub fn transport_mut(&mut self) -> &mut dyn Transport {
        &mut *self.net
    }

    /// Keep a copy of every message received from now on (simulation
    /// tests inspect a party's view; never enable this in a node).
    pub fn record_view(&mut self) {
        self.view = Some(Vec::new());
    }

    /// The messages recorded since [`Party::record_view`].
    pub fn take_view(&mut self) -> Vec<(PartyId, Vec<u8>)> {
        self.view.take().unwrap_or_default()
    }

    /// Add a message received outside [`Party`]'s own rounds to the
    /// recorded view (for tests that drive the transport directly).
    #[doc(hidden)]
    pub fn record_received(&mut self, from: PartyId, msg: &[u8]) {
        if let Some(v) = self.view.as_mut() {
            v.push((from, msg.to_vec()));
        }
    }

    pub(crate) fn keys(&self) -> &PartyKeys {
        &self.keys
    }

    /// A fresh nonce. Every party calls this the same number of times in the
    /// same order (every operation draws exactly once, whatever the role).
    pub(crate) fn fresh_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce << 8
    }

    pub(crate) fn round_bytes(
        &mut self,
        sends: &[(PartyId, &[u8])],
        recvs: &mut [(PartyId, &mut [u8])],
    ) -> Result<()> {
        let out: Vec<Outgoing<'_>> = sends
            .iter()
            .map(|(to, data)| Outgoing { to: *to, data })
            .collect();
        let mut inc: Vec<Incoming<'_>> = recvs
            .iter_mut()
            .map(|(from, buf)| Incoming { from: *from, buf })
            .collect();
        self.stats.rounds += 1;
        self.stats.bytes_sent += out.iter().map(|o| o.data.len() as u64).sum::<u64>();
        self.stats.bytes_received += inc.iter().map(|i| i.buf.len() as u64).sum::<u64>();
        self.net.round(&out, &mut inc)?;
        if let Some(v) = self.view.as_mut() {
            v.extend(inc.iter().map(|i| (i.from, i.buf.to_vec())));
        }
        Ok(())
    }

    /// A replicated sharing of `n` values whose every component is drawn by
    /// the two parties that hold it, from the PRF key only they share: with
    /// `sample(j, rng)` called for element `j` on a ChaCha20 generator
    /// seeded from that key (a fresh nonce per call), both holders get the
    /// same component, and the third party never sees it. No communication.
    ///
    /// Against one corrupt party this makes a distribution trustworthy
    /// without a proof: the corrupt party knows two components (the pairs it
    /// belongs to), the third is drawn honestly and hidden from it, and it
    /// cannot change a component it holds without disagreeing with the
    /// honest co-holder's copy, which every verified open and the
    /// recipient's comparison of result shares detect. Used for the DP
    /// noise in malicious mode: each component is a full Skellam sample.
    pub fn pair_sampled_a<E>(
        &mut self,
        n: usize,
        mut sample: impl FnMut(usize, &mut rand_chacha::ChaCha20Rng) -> std::result::Result<u64, E>,
    ) -> std::result::Result<AShare, E> {
        use rand::SeedableRng;
        let nonce = self.fresh_nonce();
        let seed_of = |prf: &Prf| {
            let mut seed = [0u8; 32];
            for (c, w) in seed.chunks_exact_mut(8).zip(prf.words(nonce, 4)) {
                c.copy_from_slice(&w.to_le_bytes());
            }
            seed
        };
        let (mut sa, mut sb) = (seed_of(&self.keys.prev), seed_of(&self.keys.next));
        let mut ra = rand_chacha::ChaCha20Rng::from_seed(sa);
        let mut rb = rand_chacha::ChaCha20Rng::from_seed(sb);
        sa.zeroize();
        sb.zeroize();
        let mut a = Vec::with_capacity(n);
        let mut b = Vec::with_capacity(n);
        for j in 0..n {
            a.push(sample(j, &mut ra)?);
            b.push(sample(j, &mut rb)?);
        }
        Ok(AShare::from_parts(a, b))
    }

    /// One communication round of 64-bit words. Every party must call this
    /// once per protocol round, even with nothing to send or receive.
    pub(crate) fn round(
        &mut self,
        sends: &[(PartyId, &[u64])],
        recvs: &mut [(PartyId, &mut [u64])],
    ) -> Result<()> {
        let s: Vec<(PartyId, &[u8])> = sends
            .iter()
            .map(|(p, d)| (*p, bytemuck::cast_slice::<u64, u8>(d)))
            .collect();
        let mut r: Vec<(PartyId, &mut [u8])> = recvs
            .iter_mut()
            .map(|(p, d)| (*p, bytemuck::cast_slice_mut::<u64, u8>(d)))
            .collect();
        self.round_bytes(&s, &mut r)
    }

    /// `F(k_i) - F(k_{i+1})`: this party's part of an arithmetic zero-sharing.
    pub(crate) fn zero_a(&self, nonce: u64, n: usize) -> Vec<u64> {
        let mut z = self.keys.prev.words(nonce, n);
        let t = self.keys.next.words(nonce, n);
        z.iter_mut()
            .zip(&t)
            .for_each(|(z, t)| *z = z.wrapping_sub(*t));
        z
    }

    /// `F(k_i) ^ F(k_{i+1})`: this party's part of a boolean zero-sharing.
    pub(crate) fn zero_b(&self, nonce: u64, n: usize) -> Vec<u64> {
        let mut z = self.keys.prev.words(nonce, n);
        let t = self.keys.next.words(nonce, n);
        z.iter_mut().zip(&t).for_each(|(z, t)| *z ^= *t);
        z
    }

    /// Synchronise the three parties (one tiny round around the ring in both
    /// directions). Benchmarks use it so that timings start together.
    pub fn barrier(&mut self) -> Result<()> {
        let (me, nx, pv) = (self.id, next(self.id), prev(self.id));
        let _ = me;
        let mut a = [0u8; 1];
        let mut b = [0u8; 1];
        self.round_bytes(
            &[(nx, &[1u8][..]), (pv, &[1u8][..])],
            &mut [(pv, &mut a[..]), (nx, &mut b[..])],
        )
    }

    // ----- input ---------------------------------------------------------

    /// Secret-share a column that party `owner` knows (arithmetic). The owner
    /// passes `Some(values)`, the others `None`; all pass the length `n`.
    /// One round; the owner sends `n` words to one party.
    pub fn input_a(&mut self, owner: PartyId, values: Option<&[u64]>, n: usize) -> Result<AShare> {
        let (a, b) = self.input(owner, values, n, u64::wrapping_sub)?;
        Ok(AShare::from_parts(a, b))
    }

    /// Secret-share a column of words that party `owner` knows (boolean).
    pub fn input_b(&mut self, owner: PartyId, values: Option<&[u64]>, n: usize) -> Result<BShare> {
        let (a, b) = self.input(owner, values, n, |x, y| x ^ y)?;
        Ok(BShare::from_parts(a, b))
    }

    /// Sharing `(v - r, r, 0)` rotated so the owner is first; `r` comes from
    /// the key the owner shares with its next party, and `v - r` is sent to
    /// the owner's previous party.
    fn input(
        &mut self,
        owner: PartyId,
        values: Option<&[u64]>,
        n: usize,
        minus: impl Fn(u64, u64) -> u64,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let nonce = self.fresh_nonce();
        if owner > 2 {
            return Err(MpcError::Usage(format!(
                "input owner {owner} is not a party"
            )));
        }
        if self.id == owner {
            let v =
                values.ok_or_else(|| MpcError::Usage("the input owner must pass values".into()))?;
            if v.len() != n {
                return Err(MpcError::Usage(format!(
                    "input has {} values, expected {n}",
                    v.len()
                )));
            }
            let r = self.keys.next.words(nonce, n);
            let s: Vec<u64> = v.iter().zip(&r).map(|(v, r)| minus(*v, *r)).collect();
            self.round(&[(prev(owner), &s)], &mut [])?;
            Ok((s, r))
        } else if self.id == next(owner) {
            let r = self.keys.prev.words(nonce, n);
            self.round(&[], &mut [])?;
            Ok((r, vec![0; n]))
        } else {
            let mut s = vec![0; n];
            self.round(&[], &mut [(owner, &mut s)])?;
            Ok((vec![0; n], s))
        }
    }

    // ----- reveal --------------------------------------------------------

    /// Open arithmetic shares to party `to`, or to everyone with `None`.
    /// Returns the values at the parties that learn them.
    /// In malicious mode the pending AND gates are proven first and the
    /// open is verified ([`crate::verified`]).
    pub fn reveal_a(&mut self, x: &AShare, to: Option<PartyId>) -> Result<Option<Vec<u64>>> {
        let third = self.reveal_third(&x.a, &x.b, to, crate::verified::Kind::Arith)?;
        Ok(third.map(|t| {
            x.a.iter()
                .zip(&x.b)
                .zip(&t)
                .map(|((a, b), c)| a.wrapping_add(*b).wrapping_add(*c))
                .collect()
        }))
    }

    /// Open boolean shares to party `to`, or to everyone with `None`.
    /// In malicious mode as [`Party::reveal_a`].
    pub fn reveal_b(&mut self, x: &BShare, to: Option<PartyId>) -> Result<Option<Vec<u64>>> {
        let third = self.reveal_third(&x.a, &x.b, to, crate::verified::Kind::Bool)?;
        Ok(third.map(|t| {
            x.a.iter()
                .zip(&x.b)
                .zip(&t)
                .map(|((a, b), c)| a ^ b ^ c)
                .collect()
        }))
    }

    /// Deliver the missing third component `x_{i+2}` to the receivers.
    fn reveal_third(
        &mut self,
        a: &[u64],
        b: &[u64],
        to: Option<PartyId>,
        kind: crate::verified::Kind,
    ) -> Result<Option<Vec<u64>>> {
        if self.and_log.is_some() {
            self.verify_all()?;
            return self.open_third_checked(a, b, to, kind);
        }
        let n = b.len();
        match to {
            None => {
                let mut t = vec![0; n];
                self.round(&[(prev(self.id), b)], &mut [(next(self.id), &mut t)])?;
                Ok(Some(t))
            }
            Some(t) if t > 2 => Err(MpcError::Usage(format!("reveal target {t} is not a party"))),
            Some(t) if t == self.id => {
                let mut third = vec![0; n];
                self.round(&[], &mut [(next(t), &mut third)])?;
                Ok(Some(third))
            }
            Some(t) if next(t) == self.id => {
                self.round(&[(t, b)], &mut [])?;
                Ok(None)
            }
            Some(_) => {
                self.round(&[], &mut [])?;
                Ok(None)
            }
        }
    }

    // ----- multiplication ---------------------------------------------

    /// Element-wise product of arithmetic shares. One round, one word sent
    /// per element per party.
    ///
    /// In malicious mode: with SPDZ-wise MACs over Z_2^128, checked before
    /// any open ([`crate::mac`]); two rounds, 48 bytes per element.
    pub fn mul(&mut self, x: &AShare, y: &AShare) -> Result<AShare> {
        if self.mac.is_some() {
            return self.mul_maced(x, y);
        }
        check_len(x.len(), y.len())?;
        let nonce = self.fresh_nonce();
        let n = x.len();
        let mut z = self.zero_a(nonce, n);
        for (j, z) in z.iter_mut().enumerate() {
            let (xa, xb, ya, yb) = (x.a[j], x.b[j], y.a[j], y.b[j]);
            *z = z
                .wrapping_add(xa.wrapping_mul(ya))
                .wrapping_add(xa.wrapping_mul(yb))
                .wrapping_add(xb.wrapping_mul(ya));
        }
        let mut zn = vec![0; n];
        self.round(&[(prev(self.id), &z)], &mut [(next(self.id), &mut zn)])?;
        Ok(AShare::from_parts(z, zn))
    }

    /// Element-wise AND of boolean shares (64 independent ANDs per word).
    /// One round, one word sent per word per party.
    ///
    /// In malicious mode the gates are recorded for [`Party::verify_ands`],
    /// which runs by itself once [`MAX_BATCH_WORDS`] words are pending.
    pub fn and(&mut self, x: &BShare, y: &BShare) -> Result<BShare> {
        check_len(x.len(), y.len())?;
        let nonce = self.fresh_nonce();
        let n = x.len();
        if self.and_log.is_some() {
            return self.and_logged(x, y, nonce);
        }
        let mut z = self.zero_b(nonce, n);
        for (j, z) in z.iter_mut().enumerate() {
            let (xa, xb, ya, yb) = (x.a[j], x.b[j], y.a[j], y.b[j]);
            *z ^= (xa & ya) ^ (xa & yb) ^ (xb & ya);
        }
        let mut zn = vec![0; n];
        self.round(&[(prev(self.id), &z)], &mut [(next(self.id), &mut zn)])?;
        Ok(BShare::from_parts(z, zn))
    }

    /// [`Party::and`] in malicious mode: the same messages, and a record of
    /// what the proof needs.
    fn and_logged(&mut self, x: &BShare, y: &BShare, nonce: u64) -> Result<BShare> {
        let n = x.len();
        let fp = self.keys.prev.words(nonce, n);
        let fnx = self.keys.next.words(nonce, n);
        let z: Vec<u64> = (0..n)
            .map(|j| {
                let (xa, xb, ya, yb) = (x.a[j], x.b[j], y.a[j], y.b[j]);
                fp[j] ^ fnx[j] ^ (xa & ya) ^ (xa & yb) ^ (xb & ya)
            })
            .collect();
        let mut zn = vec![0; n];
        self.round(&[(prev(self.id), &z)], &mut [(next(self.id), &mut zn)])?;
        let log = self.and_log.as_mut().expect("malicious mode");
        extend_wiping(&mut log.xa, &x.a);
        extend_wiping(&mut log.xb, &x.b);
        extend_wiping(&mut log.ya, &y.a);
        extend_wiping(&mut log.yb, &y.b);
        extend_wiping(&mut log.fp, &fp);
        extend_wiping(&mut log.fnx, &fnx);
        extend_wiping(&mut log.zr, &zn);
        let (mut fp, mut fnx) = (fp, fnx);
        fp.zeroize();
        fnx.zeroize();
        let pending = log.words();
        let out = BShare::from_parts(z, zn);
        if pending >= MAX_BATCH_WORDS {
            self.verify_ands()?;
        }
        Ok(out)
    }

    /// Several independent ANDs in one round: `out[k] = xs[k] & ys[k]`.
    pub fn and_many(&mut self, xs: &[&BShare], ys: &[&BShare]) -> Result<Vec<BShare>> {
        if xs.len() != ys.len() {
            return Err(MpcError::Usage("and_many: operand counts differ".into()));
        }
        let lens: Vec<usize> = xs.iter().map(|x| x.len()).collect();
        for (x, y) in xs.iter().zip(ys) {
            check_len(x.len(), y.len())?;
        }
        let x = BShare::concat(xs);
        let y = BShare::concat(ys);
        Ok(self.and(&x, &y)?.split(&lens))
    }
}

pub(crate) fn check_len(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(MpcError::Usage(format!(
            "operand lengths differ: {a} vs {b}"
        )));
    }
    Ok(())
}
