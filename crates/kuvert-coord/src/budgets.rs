//! The privacy budgets as the nodes report them. The coordinator keeps no
//! ledger of its own and decides nothing about budgets: each node keeps,
//! checks and charges its own (`kuvert_node::budget`), with limits the
//! contributors sign. This is what `GET /api/budgets` and the console's
//! budget page show: every account of every node, side by side, and
//! whether the three agree.

use std::collections::BTreeMap;

use kuvert_node::budget::{Account, Charge};
use serde::Serialize;

use crate::nodes::NodeError;
use crate::{CoordError, Coordinator};

/// One node's view of one account.
#[derive(Debug, Clone, Serialize)]
pub struct NodeAccount {
    pub node: usize,
    pub limit_epsilon: f64,
    pub limit_delta: f64,
    pub limit_version: u64,
    pub spent_epsilon: f64,
    pub spent_delta: f64,
    pub remaining_epsilon: f64,
    pub remaining_delta: f64,
    /// Charges not refunded.
    pub releases: usize,
    pub refunds: usize,
}

/// One account (contributor key, dataset) across the three nodes.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetRow {
    pub contributor_key: String,
    /// The contributor ids and organisations stored analyses give this key.
    pub contributors: Vec<String>,
    pub dataset: String,
    /// Node `i`'s account, `None` when node `i` has none (or did not answer).
    pub nodes: [Option<NodeAccount>; 3],
    /// All three nodes answered and hold the same limit and charges.
    pub agree: bool,
    /// The charges as the first node that has the account lists them.
    pub charges: Vec<Charge>,
}

/// What the nodes reported.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetView {
    pub accounts: Vec<BudgetRow>,
    /// Nodes that did not answer, and why.
    pub unreachable: Vec<String>,
}

fn node_account(node: usize, a: &Account) -> NodeAccount {
    let (se, sd) = a.spent();
    let (re, rd) = a.remaining();
    let refunds = a.charges.iter().filter(|c| c.refunded.is_some()).count();
    NodeAccount {
        node,
        limit_epsilon: a.limit.epsilon,
        limit_delta: a.limit.delta,
        limit_version: a.limit.version,
        spent_epsilon: se,
        spent_delta: sd,
        remaining_epsilon: re,
        remaining_delta: rd,
        releases: a.charges.len() - refunds,
        refunds,
    }
}

/// Put three nodes' answers side by side (`names`: contributor key ->
/// the names analyses give it).
pub fn view(
    answers: [Result<Vec<Account>, NodeError>; 3],
    names: &BTreeMap<String, Vec<String>>,
) -> BudgetView {
    let mut unreachable = Vec::new();
    let mut rows: BTreeMap<(String, String), [Option<Account>; 3]> = BTreeMap::new();
    for (i, a) in answers.into_iter().enumerate() {
        match a {
            Ok(accounts) => {
                for acc in accounts {
                    let k = (acc.contributor_key.clone(), acc.dataset.clone());
                    rows.entry(k).or_default()[i] = Some(acc);
                }
            }
            Err(e) => unreachable.push(format!("node {i}: {e}")),
        }
    }
    let all_answered = unreachable.is_empty();
    let accounts = rows
        .into_iter()
        .map(|((key, dataset), per)| {
            let agree = all_answered
                && per.iter().all(|a| a.is_some())
                && per.windows(2).all(|w| {
                    let (a, b) = (w[0].as_ref().unwrap(), w[1].as_ref().unwrap());
                    a.limit == b.limit && a.charges == b.charges
                });
            let charges = per
                .iter()
                .flatten()
                .next()
                .map(|a| a.charges.clone())
                .unwrap_or_default();
            BudgetRow {
                contributors: names.get(&key).cloned().unwrap_or_default(),
                contributor_key: key,
                dataset,
                nodes: std::array::from_fn(|i| per[i].as_ref().map(|a| node_account(i, a))),
                agree,
                charges,
            }
        })
        .collect();
    BudgetView {
        accounts,
        unreachable,
    }
}

impl Coordinator {
    /// Ask the three nodes for their ledgers and put them side by side.
    pub async fn budgets(&self) -> Result<BudgetView, CoordError> {
        let answers = self.bounded(self.inner.nodes.ledgers()).await;
        let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in self.inner.store.analyses().await? {
            let Ok(spec) = Self::spec_of(&a) else {
                continue;
            };
            for c in &spec.contributors {
                if let Some(k) = kuvert_gov::spec::parse_ed25519(&c.public_key) {
                    let key = crate::auth::hex(k.as_bytes());
                    let name = format!("{} ({})", c.id, c.organisation);
                    let v = names.entry(key).or_default();
                    if !v.contains(&name) {
                        v.push(name);
                    }
                }
            }
        }
        Ok(view(answers, &names))
    }
}
