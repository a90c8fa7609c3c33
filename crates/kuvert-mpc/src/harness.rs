//! Run a three-party computation inside one process, one thread per party.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::inproc::InProcTransport;
use crate::party::{Party, Result, Security};
use crate::transport::{Transport, PARTIES};

/// Where the parties' PRF keys come from.
#[derive(Clone, Copy, Debug)]
pub enum Keys {
    /// The operating system's CSPRNG (production, benchmarks).
    Os,
    /// A seeded ChaCha20 CSPRNG per party (reproducible tests).
    Seeded(u64),
}

/// Run `f` as each of the three parties in its own thread over an in-process
/// network, and return the three results (indexed by party).
pub fn run3<T, F>(keys: Keys, f: F) -> Result<[T; PARTIES]>
where
    T: Send,
    F: Fn(&mut Party) -> Result<T> + Sync,
{
    run3_secure(keys, Security::SemiHonest, f)
}

/// [`run3`] in a chosen adversary model.
pub fn run3_secure<T, F>(keys: Keys, security: Security, f: F) -> Result<[T; PARTIES]>
where
    T: Send,
    F: Fn(&mut Party) -> Result<T> + Sync,
{
    run3_inner(keys, security, false, |p| f(p)).map(|r| r.map(|(t, _)| t))
}

/// Set up one party of a test or benchmark session.
fn setup(net: Box<dyn Transport>, keys: Keys, security: Security) -> Result<Party> {
    match keys {
        Keys::Os => Party::setup_with(net, &mut rand::rngs::OsRng, security),
        Keys::Seeded(seed) => {
            let id = net.party();
            let mut rng = ChaCha20Rng::seed_from_u64(seed.wrapping_mul(3).wrapping_add(id as u64));
            Party::setup_with(net, &mut rng, security)
        }
    }
}

/// Like [`run3`], and also returns each party's received messages when
/// `record` is set (the party's view, for the simulation tests).
#[allow(clippy::type_complexity)]
pub fn run3_with<T, F>(
    keys: Keys,
    record: bool,
    f: F,
) -> Result<[(T, Vec<(usize, Vec<u8>)>); PARTIES]>
where
    T: Send,
    F: Fn(&mut Party) -> Result<T> + Sync,
{
    run3_inner(keys, Security::SemiHonest, record, f)
}

#[allow(clippy::type_complexity)]
fn run3_inner<T, F>(
    keys: Keys,
    security: Security,
    record: bool,
    f: F,
) -> Result<[(T, Vec<(usize, Vec<u8>)>); PARTIES]>
where
    T: Send,
    F: Fn(&mut Party) -> Result<T> + Sync,
{
    let nets = InProcTransport::triple().map(|t| Box::new(t) as Box<dyn Transport>);
    let [r0, r1, r2] = run3_over_secure(nets, keys, security, |party| {
        if record {
            party.record_view();
        }
        let out = f(party)?;
        Ok((out, party.take_view()))
    });
    Ok([r0?, r1?, r2?])
}

/// Run `f` as each of the three parties in its own thread over the given
/// transports (indexed by party id; e.g. [`InProcTransport::triple`] with
/// one end wrapped in a [`crate::faulty::FaultyTransport`]), and return each
/// party's own result, errors included: unlike [`run3`], one party's error
/// does not hide what the others returned.
pub fn run3_over<T, F>(
    nets: [Box<dyn Transport>; PARTIES],
    keys: Keys,
    f: F,
) -> [Result<T>; PARTIES]
where
    T: Send,
    F: Fn(&mut Party) -> Result<T> + Sync,
{
    run3_over_secure(nets, keys, Security::SemiHonest, f)
}

/// [`run3_over`] in a chosen adversary model.
pub fn run3_over_secure<T, F>(
    nets: [Box<dyn Transport>; PARTIES],
    keys: Keys,
    security: Security,
    f: F,
) -> [Result<T>; PARTIES]
where
    T: Send,
    F: Fn(&mut Party) -> Result<T> + Sync,
{
    let f = &f;
    let results: Vec<Result<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = nets
            .into_iter()
            .map(|net| {
                s.spawn(move || {
                    let mut party = setup(net, keys, security)?;
                    f(&mut party)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("party thread panicked"))
            .collect()
    });
    let mut it = results.into_iter();
    std::array::from_fn(|_| it.next().expect("three results"))
}
