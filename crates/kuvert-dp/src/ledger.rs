//! The privacy-budget ledger: one account per dataset (optionally per
//! contributor of that dataset), each with a fixed budget (ε_B, δ_B) and the
//! list of releases charged to it.
//!
//! Composition. The ε spent at δ_B is the smaller of two valid bounds:
//! * basic composition: (Σεᵢ, Σδᵢ), valid when Σδᵢ ≤ δ_B;
//! * Rényi composition of every release's RDP curve, converted at δ_B
//!   (only when δ_B > 0).
//!
//! Order of operations, enforced by types: [`DatasetLedger::check`] returns a
//! [`BudgetApproval`] (which only this module can create) or a
//! [`BudgetExceeded`] *before* any data is touched; the release runs; then
//! [`LedgerStore::commit`] consumes the approval and persists the record. A
//! failed release therefore charges nothing, and nothing is released
//! unaccounted.
//!
//! [`LedgerStore`] is the seam for the service, which will keep the same
//! records in its SQL store; [`FileLedger`] is the local JSON file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::accounting::{rdp_to_epsilon, RdpCurve};
use crate::DpError;

/// Slack for float comparisons against the budget.
const TOLERANCE: f64 = 1e-9;

/// A dataset account: the dataset's name and, for per-contributor budgets,
/// the contributor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetKey {
    /// Dataset name.
    pub dataset: String,
    /// Contributor (agency) whose budget this is, if budgets are per contributor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributor: Option<String>,
}

impl std::fmt::Display for DatasetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.contributor {
            Some(c) => write!(f, "dataset '{}' (contributor '{}')", self.dataset, c),
            None => write!(f, "dataset '{}'", self.dataset),
        }
    }
}

/// Total privacy budget of an account.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Total ε.
    pub epsilon: f64,
    /// Total δ (0 for a pure-ε budget).
    pub delta: f64,
}

/// What one release costs, as the mechanism was calibrated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseCost {
    /// The release's own (ε, δ) guarantee.
    pub epsilon: f64,
    /// δ of that guarantee.
    pub delta: f64,
    /// zCDP ρ when the mechanism is a (discrete) Gaussian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rho: Option<f64>,
    /// Rényi curves of the release's measurements (they compose by sum).
    pub rdp: Vec<RdpCurve>,
}

/// One release as recorded in the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// UTC time of the release, RFC 3339.
    pub time: String,
    /// SHA-256 of the normalised query text and its parameters.
    pub query_sha256: String,
    /// Mechanism name (e.g. "discrete_laplace").
    pub mechanism: String,
    /// The cost charged.
    #[serde(flatten)]
    pub cost: ReleaseCost,
}

/// One account: budget and history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetLedger {
    /// Which account.
    #[serde(flatten)]
    pub key: DatasetKey,
    /// Its budget, fixed when the account is created.
    pub budget: Budget,
    /// Releases charged so far, oldest first.
    pub releases: Vec<ReleaseRecord>,
}

/// Proof that a release fits the budget. Only [`DatasetLedger::check`]
/// creates one; [`LedgerStore::commit`] consumes it.
#[derive(Debug)]
pub struct BudgetApproval {
    key: DatasetKey,
    budget: Budget,
    cost: ReleaseCost,
    spent_after: f64,
}

impl BudgetApproval {
    /// The approved cost.
    pub fn cost(&self) -> &ReleaseCost {
        &self.cost
    }
    /// ε spent on the account once this release is committed.
    pub fn spent_after(&self) -> f64 {
        self.spent_after
    }
    /// Remaining ε once this release is committed.
    pub fn remaining_after(&self) -> f64 {
        (self.budget.epsilon - self.spent_after).max(0.0)
    }
}

/// A release that would exceed its account's budget.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "privacy budget of {key} would be exceeded: budget ε = {budget_epsilon} (δ = {budget_delta}), \
     already spent ε = {spent:.6} in {releases} release(s), remaining ε = {remaining:.6}; \
     this release asks for ε = {requested_epsilon} (δ = {requested_delta}), which would bring the \
     total to ε = {would_spend:.6}. Ask for a smaller --epsilon (at most the remaining ε), or \
     release less."
)]
pub struct BudgetExceeded {
    /// The account.
    pub key: DatasetKey,
    /// Budget ε.
    pub budget_epsilon: f64,
    /// Budget δ.
    pub budget_delta: f64,
    /// ε already spent.
    pub spent: f64,
    /// Number of releases so far.
    pub releases: usize,
    /// Budget ε minus spent ε.
    pub remaining: f64,
    /// The refused release's ε.
    pub requested_epsilon: f64,
    /// The refused release's δ.
    pub requested_delta: f64,
    /// Total ε spent had it been allowed (infinite when its δ does not fit).
    pub would_spend: f64,
}

impl DatasetLedger {
    /// A fresh account.
    pub fn new(key: DatasetKey, budget: Budget) -> Result<Self, DpError> {
        crate::accounting::check_eps_delta(budget.epsilon, budget.delta)?;
        Ok(Self {
            key,
            budget,
            releases: Vec::new(),
        })
    }

    fn spent_of<'a>(&self, costs: impl Iterator<Item = &'a ReleaseCost> + Clone) -> f64 {
        let (sum_eps, sum_delta) = costs
            .clone()
            .fold((0.0, 0.0), |(e, d), c| (e + c.epsilon, d + c.delta));
        let mut best = f64::INFINITY;
        if sum_delta <= self.budget.delta + TOLERANCE * self.budget.delta {
            best = sum_eps;
        }
        // The Rényi route is valid only when every release has its curves:
        // a release charged by (ε, δ) alone (e.g. an analysis output
        // declared in a spec) would otherwise drop out of the sum.
        if self.budget.delta > 0.0 && costs.clone().all(|c| !c.rdp.is_empty()) {
            let curves: Vec<RdpCurve> = costs.flat_map(|c| c.rdp.iter().cloned()).collect();
            best = best.min(rdp_to_epsilon(&curves, self.budget.delta));
        }
        best
    }

    /// ε spent so far at the account's δ.
    pub fn spent(&self) -> f64 {
        self.spent_of(self.releases.iter().map(|r| &r.cost))
    }

    /// Budget ε minus spent ε (never negative).
    pub fn remaining(&self) -> f64 {
        (self.budget.epsilon - self.spent()).max(0.0)
    }

    /// Decides, before any computation, whether `cost` fits.
    pub fn check(&self, cost: ReleaseCost) -> Result<BudgetApproval, BudgetExceeded> {
        let spent = self.spent();
        let after = self.spent_of(
            self.releases
                .iter()
                .map(|r| &r.cost)
                .chain(std::iter::once(&cost)),
        );
        if after <= self.budget.epsilon * (1.0 + TOLERANCE) {
            Ok(BudgetApproval {
                key: self.key.clone(),
                budget: self.budget,
                cost,
                spent_after: after,
            })
        } else {
            Err(BudgetExceeded {
                key: self.key.clone(),
                budget_epsilon: self.budget.epsilon,
                budget_delta: self.budget.delta,
                spent,
                releases: self.releases.len(),
                remaining: (self.budget.epsilon - spent).max(0.0),
                requested_epsilon: cost.epsilon,
                requested_delta: cost.delta,
                would_spend: after,
            })
        }
    }
}

/// Where accounts live. The file implementation is [`FileLedger`]; the
/// service implements the same trait over its SQL store.
pub trait LedgerStore {
    /// The account for `key`, if it exists.
    fn load(&self, key: &DatasetKey) -> Result<Option<DatasetLedger>, DpError>;

    /// The account for `key`, created with `budget` when it does not exist.
    /// A `budget` that differs from an existing account's is an error (the
    /// budget is fixed at creation). `None` requires the account to exist.
    fn open(&mut self, key: &DatasetKey, budget: Option<Budget>) -> Result<DatasetLedger, DpError> {
        match (self.load(key)?, budget) {
            (Some(l), None) => Ok(l),
            (Some(l), Some(b)) if l.budget == b => Ok(l),
            (Some(l), Some(b)) => Err(DpError::InvalidParameter(format!(
                "{key} already has budget ε = {} (δ = {}), but ε = {} (δ = {}) was given; \
                 a budget is fixed when the account is created: drop --budget or use a new ledger",
                l.budget.epsilon, l.budget.delta, b.epsilon, b.delta
            ))),
            (None, Some(b)) => DatasetLedger::new(key.clone(), b),
            (None, None) => Err(DpError::InvalidParameter(format!(
                "{key} has no account in the ledger yet: give --budget to create it"
            ))),
        }
    }

    /// Persists a release whose budget was approved. Must be atomic: after
    /// an error, the store is unchanged.
    fn commit(&mut self, approval: BudgetApproval, record: ReleaseMeta) -> Result<(), DpError>;
}

/// What the caller adds to an approved cost to form the record.
#[derive(Clone, Debug)]
pub struct ReleaseMeta {
    /// UTC time, RFC 3339.
    pub time: String,
    /// SHA-256 hex of the query.
    pub query_sha256: String,
    /// Mechanism name.
    pub mechanism: String,
}

/// The on-disk format of [`FileLedger`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LedgerFile {
    /// Format tag, `kuvert-dp-ledger/1`.
    pub format: String,
    /// All accounts.
    pub accounts: Vec<DatasetLedger>,
}

const FORMAT: &str = "kuvert-dp-ledger/1";

/// A ledger in one JSON file, rewritten atomically (temporary file in the
/// same directory, fsync, rename) on every commit. No locking: one writer
/// at a time.
#[derive(Debug)]
pub struct FileLedger {
    path: PathBuf,
    contents: LedgerFile,
}

impl FileLedger {
    /// Opens `path`, or starts an empty ledger if it does not exist.
    pub fn open_file(path: &Path) -> Result<Self, DpError> {
        let contents = match std::fs::read_to_string(path) {
            Ok(text) => {
                let f: LedgerFile =
                    serde_json::from_str(&text).map_err(|e| DpError::BadLedger {
                        path: path.to_path_buf(),
                        message: format!("line {} column {}: {e}", e.line(), e.column()),
                    })?;
                if f.format != FORMAT {
                    return Err(DpError::BadLedger {
                        path: path.to_path_buf(),
                        message: format!("format is '{}', expected '{FORMAT}'", f.format),
                    });
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LedgerFile {
                format: FORMAT.into(),
                accounts: Vec::new(),
            },
            Err(e) => {
                return Err(DpError::Io {
                    path: path.to_path_buf(),
                    cause: e,
                })
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            contents,
        })
    }

    /// All accounts (for display).
    pub fn accounts(&self) -> &[DatasetLedger] {
        &self.contents.accounts
    }

    fn save(&self, contents: &LedgerFile) -> Result<(), DpError> {
        use std::io::Write;
        let io = |e| DpError::Io {
            path: self.path.clone(),
            cause: e,
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ledger".into());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let text = serde_json::to_string_pretty(contents).map_err(|e| DpError::BadLedger {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

impl LedgerStore for FileLedger {
    fn load(&self, key: &DatasetKey) -> Result<Option<DatasetLedger>, DpError> {
        Ok(self
            .contents
            .accounts
            .iter()
            .find(|a| &a.key == key)
            .cloned())
    }

    fn commit(&mut self, approval: BudgetApproval, meta: ReleaseMeta) -> Result<(), DpError> {
        let mut next = self.contents.clone();
        let record = ReleaseRecord {
            time: meta.time,
            query_sha256: meta.query_sha256,
            mechanism: meta.mechanism,
            cost: approval.cost,
        };
        match next.accounts.iter_mut().find(|a| a.key == approval.key) {
            Some(a) => a.releases.push(record),
            None => next.accounts.push(DatasetLedger {
                key: approval.key,
                budget: approval.budget,
                releases: vec![record],
            }),
        }
        self.save(&next)?;
        self.contents = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DatasetKey {
        DatasetKey {
            dataset: "benefits".into(),
            contributor: None,
        }
    }

    fn pure(eps: f64) -> ReleaseCost {
        ReleaseCost {
            epsilon: eps,
            delta: 0.0,
            rho: None,
            rdp: vec![RdpCurve::Pure { epsilon: eps }],
        }
    }

    fn meta() -> ReleaseMeta {
        ReleaseMeta {
            time: "2026-01-01T00:00:00Z".into(),
            query_sha256: "00".into(),
            mechanism: "discrete_laplace".into(),
        }
    }

    #[test]
    fn releases_without_renyi_curves_count_under_an_approximate_budget() {
        // Charged by (ε, δ) alone: the Rényi route must not make them free.
        let bare = |eps: f64| ReleaseCost {
            epsilon: eps,
            delta: 1e-7,
            rho: None,
            rdp: vec![],
        };
        let mut l = DatasetLedger::new(
            key(),
            Budget {
                epsilon: 1.0,
                delta: 1e-5,
            },
        )
        .unwrap();
        for _ in 0..3 {
            let a = l.check(bare(0.3)).expect("fits");
            l.releases.push(ReleaseRecord {
                time: meta().time,
                query_sha256: meta().query_sha256,
                mechanism: "spec".into(),
                cost: a.cost().clone(),
            });
        }
        assert!((l.spent() - 0.9).abs() < 1e-9, "{}", l.spent());
        let e = l.check(bare(0.3)).unwrap_err();
        assert!((e.remaining - 0.1).abs() < 1e-9);
        // One release with curves among bare ones: still the plain sum.
        assert!(l.check(pure(0.05)).is_ok());
        assert!(l.check(pure(0.2)).is_err());
    }

    #[test]
    fn pure_budget_composes_by_sum_and_refuses_overdraft() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let mut store = FileLedger::open_file(&path).unwrap();
        let budget = Some(Budget {
            epsilon: 1.0,
            delta: 0.0,
        });
        for _ in 0..4 {
            let acct = store.open(&key(), budget).unwrap();
            let ok = acct.check(pure(0.25)).unwrap();
            store.commit(ok, meta()).unwrap();
        }
        let acct = store.open(&key(), None).unwrap();
        assert!((acct.spent() - 1.0).abs() < 1e-12);
        let err = acct.check(pure(0.01)).unwrap_err();
        assert_eq!(err.releases, 4);
        assert!(err.remaining < 1e-9);
        assert!(err.to_string().contains("remaining ε = 0.000000"), "{err}");
        // Persisted: a fresh handle sees the same four releases.
        let again = FileLedger::open_file(&path).unwrap();
        assert_eq!(again.load(&key()).unwrap().unwrap().releases.len(), 4);
        // The budget cannot be changed afterwards.
        let mut again = again;
        assert!(again
            .open(
                &key(),
                Some(Budget {
                    epsilon: 5.0,
                    delta: 0.0
                })
            )
            .is_err());
    }

    #[test]
    fn rdp_composition_beats_basic_for_many_gaussian_releases() {
        let acct = DatasetLedger {
            key: key(),
            budget: Budget {
                epsilon: 10.0,
                delta: 1e-6,
            },
            releases: (0..100)
                .map(|_| ReleaseRecord {
                    time: String::new(),
                    query_sha256: String::new(),
                    mechanism: "discrete_gaussian".into(),
                    cost: ReleaseCost {
                        epsilon: 0.5,
                        delta: 1e-8,
                        rho: Some(0.005),
                        rdp: vec![RdpCurve::Zcdp { rho: 0.005 }],
                    },
                })
                .collect(),
        };
        // Basic: 100 × 0.5 = 50. zCDP: ρ = 0.5 ⇒ ε ≈ 5.0 at δ = 1e-6.
        let s = acct.spent();
        let expect = crate::accounting::zcdp_to_epsilon(0.5, 1e-6);
        assert!((s - expect).abs() < 1e-9 && s < 6.0, "{s}");
    }

    #[test]
    fn delta_needs_a_delta_budget() {
        let acct = DatasetLedger::new(
            key(),
            Budget {
                epsilon: 100.0,
                delta: 0.0,
            },
        )
        .unwrap();
        let cost = ReleaseCost {
            epsilon: 0.1,
            delta: 1e-9,
            rho: Some(0.001),
            rdp: vec![RdpCurve::Zcdp { rho: 0.001 }],
        };
        let err = acct.check(cost).unwrap_err();
        assert!(err.would_spend.is_infinite());
    }

    #[test]
    fn corrupt_ledger_is_reported_with_location() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.json");
        std::fs::write(&path, "{\n  \"format\": 3").unwrap();
        let e = FileLedger::open_file(&path).unwrap_err().to_string();
        assert!(e.contains("l.json") && e.contains("line 2"), "{e}");
    }
}
