//! The node's own privacy-budget ledger (docs/dp.md, "Budgets at the nodes").
//!
//! ```text
//!   account   = (contributor's Ed25519 key, dataset)      never a name the submitter writes
//!   limit     = kuvert_gov::BudgetLimit, signed by that contributor (kuvert budget set)
//!   demand    = one DP output × one account it reads: the (ε, δ) of its WITH PRIVACY
//!   register / GovRun   check: refused, naming the dataset and what remains, nothing charged
//!   computation start   charge (fsync'd to budget-ledger.json before any share is used)
//!   setup failed        refund (logged) — no share was used
//!   after the first query started  never refunded, whatever happens next
//! ```
//!
//! Every node keeps its own ledger and decides alone: the coordinator's
//! budget page is a view of what the nodes report. Releases compose by
//! basic composition (Σε ≤ ε_limit and Σδ ≤ δ_limit), the bound that holds
//! for any mix of mechanisms. A DP output that reads two tables of the same
//! account is charged once to it; a table read by several DP outputs is
//! charged for each. Repeating an analysis (a new run, or the same SQL
//! under a new spec) is charged again every time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use kuvert_gov::{AnalysisSpec, BudgetLimit};
use serde::{Deserialize, Serialize};

/// Slack for float sums against a limit.
const TOLERANCE: f64 = 1e-9;

/// At most this many accounts in all (a node's ledger does not grow
/// without bound).
pub const MAX_ACCOUNTS: usize = 100_000;

/// At most this many accounts created by one TLS party: anyone can sign a
/// limit with a key it made up, so without this one party could fill the
/// ledger and lock the real contributors out.
pub const MAX_ACCOUNTS_PER_PARTY: usize = 1_000;

/// One (DP output, account) pair an analysis would charge.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// The contributor's key, lowercase hex.
    pub key: String,
    /// The contributor's id in this spec (for messages only).
    pub contributor: String,
    pub dataset: String,
    pub output: String,
    pub epsilon: f64,
    pub delta: f64,
}

/// One charge to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    /// Which batch (one per computation start) made it.
    pub batch: u64,
    pub analysis: String,
    pub output: String,
    pub epsilon: f64,
    pub delta: f64,
    /// RFC 3339.
    pub charged_at: String,
    /// Set when the charge was returned before any share was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Refund>,
}

/// A refund: when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub at: String,
    pub reason: String,
}

/// One account: its signed limit and every charge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub contributor_key: String,
    pub dataset: String,
    pub limit: BudgetLimit,
    #[serde(default)]
    pub charges: Vec<Charge>,
    /// The TLS party that first brought a limit for this account.
    #[serde(default)]
    pub created_by: String,
}

impl Account {
    /// (ε, δ) spent: every charge that was not refunded.
    pub fn spent(&self) -> (f64, f64) {
        self.charges
            .iter()
            .filter(|c| c.refunded.is_none())
            .fold((0.0, 0.0), |(e, d), c| (e + c.epsilon, d + c.delta))
    }

    /// (ε, δ) left (never negative).
    pub fn remaining(&self) -> (f64, f64) {
        let (e, d) = self.spent();
        (
            (self.limit.epsilon - e).max(0.0),
            (self.limit.delta - d).max(0.0),
        )
    }

    fn releases(&self) -> usize {
        self.charges.iter().filter(|c| c.refunded.is_none()).count()
    }
}

/// What the file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LedgerFile {
    format: String,
    /// The last batch number handed out.
    last_batch: u64,
    accounts: Vec<Account>,
}

const FORMAT: &str = "kuvert-node-ledger-v1";

/// Why the ledger said no.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    #[error(
        "contributor {contributor:?} has set no privacy budget for its dataset {dataset:?} at this node, so output {output:?} (ε = {epsilon}) cannot be charged; nothing was charged. The contributor signs a limit with `kuvert budget set --key KEY --dataset {dataset} --epsilon E --delta D` (which sends it to all three nodes)"
    )]
    NoLimit {
        contributor: String,
        dataset: String,
        output: String,
        epsilon: f64,
    },
    #[error(transparent)]
    Exceeded(Box<Overdraw>),
    #[error("the budget limit is refused: {0}")]
    BadLimit(String),
    #[error("the budget ledger {}: {detail}; check the node's data directory", path.display())]
    Store { path: PathBuf, detail: String },
}

/// What an account lacks for an analysis (boxed in [`BudgetError`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the privacy budget of contributor {contributor:?}'s dataset {dataset:?} does not allow this analysis: limit ε = {limit_epsilon} (δ = {limit_delta}), spent ε = {spent_epsilon} (δ = {spent_delta}) in {releases} release(s), remaining ε = {remaining_epsilon} (δ = {remaining_delta}); this analysis asks for ε = {asked_epsilon} (δ = {asked_delta}) over output(s) {outputs}. Nothing was charged; ask for less, or the contributor may raise its limit with `kuvert budget set`"
)]
pub struct Overdraw {
    pub contributor: String,
    pub dataset: String,
    pub limit_epsilon: f64,
    pub limit_delta: f64,
    pub spent_epsilon: f64,
    pub spent_delta: f64,
    pub releases: usize,
    pub remaining_epsilon: f64,
    pub remaining_delta: f64,
    pub asked_epsilon: f64,
    pub asked_delta: f64,
    pub outputs: String,
}

/// The (output, account) pairs that `spec`'s differentially private
/// outputs charge: each output's `WITH PRIVACY` (ε, δ), as the nodes
/// compile it, on the account of every table it reads. Specs that do not
/// compile have been refused before this is called; an output that does
/// not compile here is an error all the same.
pub fn demands(spec: &AnalysisSpec) -> Result<Vec<Demand>, String> {
    let mut catalog = kuvert_sql::Catalog::new();
    let mut owner: BTreeMap<&str, (String, String, String)> = BTreeMap::new();
    for c in &spec.contributors {
        let key = kuvert_gov::spec::parse_ed25519(&c.public_key)
            .map(|k| crate::gov::encode_hex(k.as_bytes()))
            .ok_or_else(|| format!("contributor {:?} has no valid key", c.id))?;
        for t in &c.tables {
            let s = kuvert_data::Schema::parse_compact(&t.schema)
                .map_err(|e| format!("table {}: {e}", t.name))?;
            catalog.add(&t.name, s);
            owner.insert(
                t.name.as_str(),
                (key.clone(), c.id.clone(), t.dataset_id().to_string()),
            );
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &spec.recipients {
        for o in &r.outputs {
            if !seen.insert(o.name.clone()) {
                continue;
            }
            let q = kuvert_sql::prepare(o.sql.trim(), &catalog)
                .map_err(|e| format!("output {:?}: {e}", o.name))?;
            let Some(p) = &q.privacy else { continue };
            let mut accounts = BTreeSet::new();
            for t in q.tables() {
                let (key, contributor, dataset) = owner
                    .get(t.as_str())
                    .ok_or_else(|| format!("output {:?} reads unknown table {t}", o.name))?;
                if accounts.insert((key.clone(), dataset.clone())) {
                    out.push(Demand {
                        key: key.clone(),
                        contributor: contributor.clone(),
                        dataset: dataset.clone(),
                        output: o.name.clone(),
                        epsilon: p.epsilon,
                        delta: p.delta,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A node's ledger, kept in one JSON file written atomically and synced.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: LedgerFile,
    /// [`MAX_ACCOUNTS_PER_PARTY`] (smaller in tests).
    party_cap: usize,
}

fn now() -> String {
    crate::gov::rfc3339(time::OffsetDateTime::now_utc())
}

impl Ledger {
    /// Open (or create, empty) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, BudgetError> {
        let store = |e: String| BudgetError::Store {
            path: path.to_path_buf(),
            detail: e,
        };
        let file = match std::fs::read(path) {
            Ok(b) => {
                let f: LedgerFile = serde_json::from_slice(&b).map_err(|e| store(e.to_string()))?;
                if f.format != FORMAT {
                    return Err(store(format!("format {:?} is not {FORMAT:?}", f.format)));
                }
                // Every limit must still verify: a ledger edited by hand
                // to raise a limit is refused rather than trusted.
                for a in &f.accounts {
                    a.limit
                        .verify()
                        .map_err(|e| store(format!("the limit of {:?}: {e}", a.dataset)))?;
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LedgerFile {
                format: FORMAT.into(),
                ..LedgerFile::default()
            },
            Err(e) => return Err(store(e.to_string())),
        };
        Ok(Ledger {
            path: path.to_path_buf(),
            file,
            party_cap: MAX_ACCOUNTS_PER_PARTY,
        })
    }

    fn save(&self) -> Result<(), BudgetError> {
        let store = |e: std::io::Error| BudgetError::Store {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(store)?;
        let tmp = dir.join(".budget-ledger.json.tmp");
        let mut bytes = serde_json::to_vec_pretty(&self.file).unwrap_or_default();
        bytes.push(b'\n');
        let mut f = std::fs::File::create(&tmp).map_err(store)?;
        f.write_all(&bytes).map_err(store)?;
        f.sync_all().map_err(store)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(store)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn account(&self, key: &str, dataset: &str) -> Option<&Account> {
        self.file
            .accounts
            .iter()
            .find(|a| a.contributor_key == key && a.dataset == dataset)
    }

    /// Every account (of `key` only, when given).
    pub fn accounts(&self, key: Option<&str>) -> Vec<Account> {
        self.file
            .accounts
            .iter()
            .filter(|a| key.is_none_or(|k| a.contributor_key == k))
            .cloned()
            .collect()
    }

    /// Set a contributor's limit (verified; only a higher version replaces
    /// the current one), brought by TLS party `party`. Returns the account
    /// as it now stands.
    pub fn set_limit(&mut self, limit: BudgetLimit, party: &str) -> Result<Account, BudgetError> {
        limit.verify().map_err(BudgetError::BadLimit)?;
        let dataset = limit.dataset.clone();
        let key = limit
            .key_hex()
            .ok_or_else(|| BudgetError::BadLimit("the contributor key is invalid".into()))?;
        let i = self
            .file
            .accounts
            .iter()
            .position(|a| a.contributor_key == key && a.dataset == limit.dataset);
        match i {
            Some(i) => {
                let a = &mut self.file.accounts[i];
                if limit.version <= a.limit.version {
                    if limit == a.limit {
                        return Ok(a.clone());
                    }
                    return Err(BudgetError::BadLimit(format!(
                        "dataset {:?} already has limit version {} (ε = {}, δ = {}); a new limit needs a higher --version",
                        limit.dataset, a.limit.version, a.limit.epsilon, a.limit.delta
                    )));
                }
                a.limit = limit;
            }
            None => {
                if self.file.accounts.len() >= MAX_ACCOUNTS {
                    return Err(BudgetError::BadLimit(format!(
                        "this node's ledger already holds {MAX_ACCOUNTS} accounts"
                    )));
                }
                let mine = self
                    .file
                    .accounts
                    .iter()
                    .filter(|a| a.created_by == party)
                    .count();
                if mine >= self.party_cap {
                    return Err(BudgetError::BadLimit(format!(
                        "party {party:?} already created {} accounts at this node",
                        self.party_cap
                    )));
                }
                self.file.accounts.push(Account {
                    contributor_key: key.clone(),
                    dataset: limit.dataset.clone(),
                    limit,
                    charges: Vec::new(),
                    created_by: party.to_string(),
                });
            }
        }
        self.save()?;
        let a = self
            .file
            .accounts
            .iter()
            .find(|a| a.contributor_key == key && a.dataset == dataset);
        Ok(a.cloned().expect("just written"))
    }

    /// What the accounts `demands` draw on have left, in words
    /// ("contributor "fk"'s dataset "default": remaining ε = 0.5 (δ = ...)";
    /// "no limit" for an account without one); empty without demands.
    pub fn remaining_text(&self, demands: &[Demand]) -> String {
        let mut seen = BTreeSet::new();
        let mut parts = Vec::new();
        for d in demands {
            if !seen.insert((d.key.as_str(), d.dataset.as_str())) {
                continue;
            }
            parts.push(match self.account(&d.key, &d.dataset) {
                Some(a) => {
                    let (re, rd) = a.remaining();
                    format!(
                        "contributor {:?}'s dataset {:?}: remaining ε = {re} (δ = {rd})",
                        d.contributor, d.dataset
                    )
                }
                None => format!(
                    "contributor {:?}'s dataset {:?}: no limit set",
                    d.contributor, d.dataset
                ),
            });
        }
        parts.join("; ")
    }

    /// Whether every account can pay its share of `demands` (nothing is
    /// charged). The first account that cannot is named.
    pub fn check(&self, demands: &[Demand]) -> Result<(), BudgetError> {
        let mut per: BTreeMap<(&str, &str), Vec<&Demand>> = BTreeMap::new();
        for d in demands {
            per.entry((&d.key, &d.dataset)).or_default().push(d);
        }
        for ((key, dataset), ds) in per {
            let Some(a) = self.account(key, dataset) else {
                let d = ds[0];
                return Err(BudgetError::NoLimit {
                    contributor: d.contributor.clone(),
                    dataset: d.dataset.clone(),
                    output: d.output.clone(),
                    epsilon: d.epsilon,
                });
            };
            let asked_e: f64 = ds.iter().map(|d| d.epsilon).sum();
            let asked_d: f64 = ds.iter().map(|d| d.delta).sum();
            let (se, sd) = a.spent();
            let fits = |spent: f64, asked: f64, limit: f64| {
                spent + asked <= limit + TOLERANCE * limit.max(1e-300)
            };
            if !(fits(se, asked_e, a.limit.epsilon) && fits(sd, asked_d, a.limit.delta)) {
                let (re, rd) = a.remaining();
                return Err(BudgetError::Exceeded(Box::new(Overdraw {
                    contributor: ds[0].contributor.clone(),
                    dataset: dataset.to_string(),
                    limit_epsilon: a.limit.epsilon,
                    limit_delta: a.limit.delta,
                    spent_epsilon: se,
                    spent_delta: sd,
                    releases: a.releases(),
                    remaining_epsilon: re,
                    remaining_delta: rd,
                    asked_epsilon: asked_e,
                    asked_delta: asked_d,
                    outputs: ds
                        .iter()
                        .map(|d| format!("{:?}", d.output))
                        .collect::<Vec<_>>()
                        .join(", "),
                })));
            }
        }
        Ok(())
    }

    /// Check, then charge every demand of `analysis` as one batch, synced
    /// to disk before it returns. Returns the batch number (for a refund
    /// before any share is used). All or nothing.
    pub fn charge(&mut self, analysis: &str, demands: &[Demand]) -> Result<u64, BudgetError> {
        self.check(demands)?;
        let batch = self.file.last_batch + 1;
        let at = now();
        let before = self.file.accounts.clone();
        for d in demands {
            let a = self
                .file
                .accounts
                .iter_mut()
                .find(|a| a.contributor_key == d.key && a.dataset == d.dataset)
                .expect("checked above");
            a.charges.push(Charge {
                batch,
                analysis: analysis.into(),
                output: d.output.clone(),
                epsilon: d.epsilon,
                delta: d.delta,
                charged_at: at.clone(),
                refunded: None,
            });
        }
        self.file.last_batch = batch;
        if let Err(e) = self.save() {
            self.file.accounts = before;
            self.file.last_batch = batch - 1;
            return Err(e);
        }
        Ok(batch)
    }

    /// Return the charges of `batch` (the computation never used a share).
    /// Returns how many charges were refunded.
    pub fn refund(&mut self, batch: u64, reason: &str) -> Result<usize, BudgetError> {
        let at = now();
        let mut n = 0;
        for c in self
            .file
            .accounts
            .iter_mut()
            .flat_map(|a| a.charges.iter_mut())
            .filter(|c| c.batch == batch && c.refunded.is_none())
        {
            c.refunded = Some(Refund {
                at: at.clone(),
                reason: reason.into(),
            });
            n += 1;
        }
        if n > 0 {
            self.save()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuvert_gov::PartyKey;
    use rand_chacha::rand_core::SeedableRng;

    fn key(seed: u64) -> PartyKey {
        PartyKey::generate_with("c", &mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
    }

    fn demand(k: &PartyKey, dataset: &str, output: &str, e: f64) -> Demand {
        Demand {
            key: crate::gov::encode_hex(k.verifying_key().as_bytes()),
            contributor: "c".into(),
            dataset: dataset.into(),
            output: output.into(),
            epsilon: e,
            delta: 1e-6,
        }
    }

    #[test]
    fn charges_add_up_to_the_limit_and_no_further_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget-ledger.json");
        let k = key(1);
        let mut l = Ledger::open(&path).unwrap();
        let d = [demand(&k, "default", "o", 1.0)];
        assert!(matches!(l.check(&d), Err(BudgetError::NoLimit { .. })));
        l.set_limit(
            BudgetLimit::sign(&k, "default", 2.5, 1e-5, 1, "t").unwrap(),
            "t",
        )
        .unwrap();
        l.charge("a1", &d).unwrap();
        l.charge("a1", &d).unwrap();
        let e = l.charge("a1", &d).unwrap_err().to_string();
        assert!(e.contains("remaining ε = 0.5"), "{e}");
        assert!(e.contains("\"default\""), "{e}");
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.accounts(None)[0].spent().0, 2.0);
        assert!(l.check(&[demand(&k, "default", "o", 0.5)]).is_ok());
    }

    #[test]
    fn a_refund_returns_exactly_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(2);
        let mut l = Ledger::open(&dir.path().join("l.json")).unwrap();
        l.set_limit(BudgetLimit::sign(&k, "d", 1.0, 1e-5, 1, "t").unwrap(), "t")
            .unwrap();
        let b1 = l.charge("a", &[demand(&k, "d", "o", 0.4)]).unwrap();
        let _b2 = l.charge("b", &[demand(&k, "d", "o", 0.4)]).unwrap();
        assert_eq!(l.refund(b1, "setup failed").unwrap(), 1);
        assert_eq!(l.refund(b1, "again").unwrap(), 0);
        let (e, _) = l.accounts(None)[0].spent();
        assert!((e - 0.4).abs() < 1e-12);
    }

    #[test]
    fn limits_replace_only_with_a_higher_version_and_must_verify() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(3);
        let mut l = Ledger::open(&dir.path().join("l.json")).unwrap();
        l.set_limit(BudgetLimit::sign(&k, "d", 1.0, 1e-5, 2, "t").unwrap(), "t")
            .unwrap();
        let e = l
            .set_limit(BudgetLimit::sign(&k, "d", 9.0, 1e-5, 1, "t").unwrap(), "t")
            .unwrap_err();
        assert!(e.to_string().contains("higher --version"), "{e}");
        let mut forged = BudgetLimit::sign(&k, "d", 1.0, 1e-5, 3, "t").unwrap();
        forged.epsilon = 50.0;
        assert!(matches!(
            l.set_limit(forged, "t"),
            Err(BudgetError::BadLimit(_))
        ));
        l.set_limit(BudgetLimit::sign(&k, "d", 0.5, 1e-5, 3, "t").unwrap(), "t")
            .unwrap();
        assert_eq!(l.accounts(None)[0].limit.epsilon, 0.5);
    }

    #[test]
    fn a_ledger_file_with_a_raised_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.json");
        let k = key(4);
        let mut l = Ledger::open(&path).unwrap();
        l.set_limit(BudgetLimit::sign(&k, "d", 1.0, 1e-5, 1, "t").unwrap(), "t")
            .unwrap();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["accounts"][0]["limit"]["epsilon"], "1");
        v["accounts"][0]["limit"]["epsilon"] = "100".into();
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = Ledger::open(&path).unwrap_err().to_string();
        assert!(e.contains("does not verify"), "{e}");
    }

    #[test]
    fn one_party_cannot_fill_the_ledger_with_made_up_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("l.json")).unwrap();
        l.party_cap = 2;
        for seed in 10..12 {
            l.set_limit(
                BudgetLimit::sign(&key(seed), "d", 1.0, 1e-5, 1, "t").unwrap(),
                "mallory",
            )
            .unwrap();
        }
        let e = l
            .set_limit(
                BudgetLimit::sign(&key(12), "d", 1.0, 1e-5, 1, "t").unwrap(),
                "mallory",
            )
            .unwrap_err();
        assert!(e.to_string().contains("already created 2"), "{e}");
        // Another party (the real contributor) is not locked out, and a
        // new version of an existing account is not a new account.
        l.set_limit(
            BudgetLimit::sign(&key(13), "d", 1.0, 1e-5, 1, "t").unwrap(),
            "fk",
        )
        .unwrap();
        l.set_limit(
            BudgetLimit::sign(&key(10), "d", 0.5, 1e-5, 2, "t").unwrap(),
            "mallory",
        )
        .unwrap();
    }

    #[test]
    fn two_outputs_over_one_account_are_summed() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(5);
        let mut l = Ledger::open(&dir.path().join("l.json")).unwrap();
        l.set_limit(BudgetLimit::sign(&k, "d", 1.0, 1e-5, 1, "t").unwrap(), "t")
            .unwrap();
        let both = [demand(&k, "d", "a", 0.6), demand(&k, "d", "b", 0.6)];
        let e = l.check(&both).unwrap_err().to_string();
        assert!(e.contains("ε = 1.2"), "{e}");
    }
}
