//! Storage: SQLite (default) or PostgreSQL through sqlx's `any` driver.
//!
//! Every query uses `$N` placeholders, which both backends accept, and
//! only TEXT and BIGINT columns. State changes are compare-and-set
//! (`UPDATE ... WHERE state = $old`), so the scheduler and the HTTP
//! handlers never overwrite each other's transition.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use kuvert_gov::{Approval, DeletionReceipt};
use kuvert_node::wire::GovStatus;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

use crate::{now_ms, now_rfc3339, CoordError};

/// Where an analysis stands at the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the contributors' approvals.
    Submitted,
    /// Every contributor approved; not yet registered at all three nodes.
    Approved,
    /// Registered at all three nodes; waiting for the contributors' data.
    Registered,
    /// The nodes were told to run.
    Running,
    /// Every node sealed its results and (per the retention rule) deleted.
    Done,
    /// The run (or the registration) failed; `detail` says why and what to do.
    Failed,
    /// The result deadline passed.
    Expired,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Submitted,
        State::Approved,
        State::Registered,
        State::Running,
        State::Done,
        State::Failed,
        State::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Submitted => "submitted",
            State::Approved => "approved",
            State::Registered => "registered",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One analysis row.
#[derive(Debug, Clone)]
pub struct AnalysisRow {
    pub id: String,
    pub name: String,
    pub spec_toml: String,
    pub state: State,
    pub detail: String,
    pub submitted_at: String,
    pub updated_at: String,
    /// Unix ms since when some node has not answered; 0 when all answer.
    pub unreachable_since_ms: i64,
    /// The results' deadline at the nodes (RFC 3339), once done.
    pub deadline: String,
}

/// What the coordinator last heard from one node about one analysis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum NodeSeen {
    Status(Box<GovStatus>),
    Error(String),
}

#[derive(Debug)]
struct Embedded;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "dp_ledger",
        include_str!("../migrations/0002_dp_ledger.sql"),
    ),
    (
        3,
        "submitters",
        include_str!("../migrations/0003_submitters.sql"),
    ),
];

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The coordinator's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn db_err(e: sqlx::Error) -> CoordError {
    CoordError::Db(e.to_string())
}

impl Store {
    /// Connect (creating an SQLite file if needed) and run the embedded
    /// migrations.
    pub async fn open(url: &str) -> Result<Store, CoordError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        // One SQLite connection: writes never meet "database is locked"; the
        // coordinator's queries are small. PostgreSQL gets a real pool.
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 8 })
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|e| CoordError::Connect {
                url: redact(url),
                message: e.to_string(),
            })?;
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|e| CoordError::Migrate(e.to_string()))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| CoordError::Migrate(e.to_string()))?;
        Ok(Store { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Insert a new analysis; false when it was there already.
    pub async fn insert_analysis(
        &self,
        id: &str,
        name: &str,
        spec_toml: &str,
    ) -> Result<bool, CoordError> {
        let now = now_rfc3339();
        let r = sqlx::query(
            "INSERT INTO analyses (id, name, spec_toml, state, detail, submitted_at, submitted_ms, \
             updated_at, unreachable_since_ms, deadline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, '') \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(spec_toml)
        .bind(State::Submitted.as_str())
        .bind("waiting for every contributor's approval")
        .bind(now.clone())
        .bind(now_ms())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    fn row(r: &AnyRow) -> Result<AnalysisRow, CoordError> {
        let state: String = r.try_get("state").map_err(db_err)?;
        Ok(AnalysisRow {
            id: r.try_get("id").map_err(db_err)?,
            name: r.try_get("name").map_err(db_err)?,
            spec_toml: r.try_get("spec_toml").map_err(db_err)?,
            state: State::parse(&state).ok_or_else(|| {
                CoordError::Db(format!("unknown state {state:?} in the database"))
            })?,
            detail: r.try_get("detail").map_err(db_err)?,
            submitted_at: r.try_get("submitted_at").map_err(db_err)?,
            updated_at: r.try_get("updated_at").map_err(db_err)?,
            unreachable_since_ms: r.try_get("unreachable_since_ms").map_err(db_err)?,
            deadline: r.try_get("deadline").map_err(db_err)?,
        })
    }

    pub async fn analysis(&self, id: &str) -> Result<Option<AnalysisRow>, CoordError> {
        let r = sqlx::query("SELECT * FROM analyses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        r.as_ref().map(Store::row).transpose()
    }

    /// Record that `principal` submitted analysis `id` (idempotent).
    pub async fn add_submitter(&self, id: &str, principal: &str) -> Result<(), CoordError> {
        sqlx::query(
            "INSERT INTO submitters (analysis_id, principal, submitted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (analysis_id, principal) DO NOTHING",
        )
        .bind(id)
        .bind(principal)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Whether `principal` submitted analysis `id`.
    pub async fn is_submitter(&self, id: &str, principal: &str) -> Result<bool, CoordError> {
        let r = sqlx::query(
            "SELECT principal FROM submitters WHERE analysis_id = $1 AND principal = $2",
        )
        .bind(id)
        .bind(principal)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(r.is_some())
    }

    /// The ids of the analyses `principal` submitted.
    pub async fn submitted_by(&self, principal: &str) -> Result<Vec<String>, CoordError> {
        let rows = sqlx::query("SELECT analysis_id FROM submitters WHERE principal = $1")
            .bind(principal)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("analysis_id").map_err(db_err))
            .collect()
    }

    /// All analyses, newest first.
    pub async fn analyses(&self) -> Result<Vec<AnalysisRow>, CoordError> {
        let rows = sqlx::query("SELECT * FROM analyses ORDER BY submitted_ms DESC, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(Store::row).collect()
    }

    /// Analyses in one of `states`.
    pub async fn analyses_in(&self, states: &[State]) -> Result<Vec<AnalysisRow>, CoordError> {
        if states.is_empty() {
            return Ok(vec![]);
        }
        let marks: Vec<String> = (1..=states.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT * FROM analyses WHERE state IN ({}) ORDER BY submitted_ms DESC, id",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for st in states {
            q = q.bind(st.as_str());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(Store::row).collect()
    }

    /// Compare-and-set the state; true when this call made the change.
    pub async fn transition(
        &self,
        id: &str,
        from: &[State],
        to: State,
        detail: &str,
    ) -> Result<bool, CoordError> {
        for f in from {
            let r = sqlx::query(
                "UPDATE analyses SET state = $1, detail = $2, updated_at = $3, unreachable_since_ms = 0 \
                 WHERE id = $4 AND state = $5",
            )
            .bind(to.as_str())
            .bind(detail)
            .bind(now_rfc3339())
            .bind(id)
            .bind(f.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            if r.rows_affected() == 1 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Change the detail (and the unreachable mark) while in `state`.
    pub async fn set_detail(
        &self,
        id: &str,
        state: State,
        detail: &str,
        unreachable_since_ms: i64,
    ) -> Result<(), CoordError> {
        sqlx::query(
            "UPDATE analyses SET detail = $1, unreachable_since_ms = $2, updated_at = $3 \
             WHERE id = $4 AND state = $5 AND (detail <> $1 OR unreachable_since_ms <> $2)",
        )
        .bind(detail)
        .bind(unreachable_since_ms)
        .bind(now_rfc3339())
        .bind(id)
        .bind(state.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    pub async fn set_deadline(&self, id: &str, deadline: &str) -> Result<(), CoordError> {
        sqlx::query("UPDATE analyses SET deadline = $1 WHERE id = $2")
            .bind(deadline)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Store an approval (the first valid one per contributor is kept).
    pub async fn add_approval(&self, a: &Approval) -> Result<(), CoordError> {
        let json = serde_json::to_string(a).map_err(|e| CoordError::Db(e.to_string()))?;
        sqlx::query(
            "INSERT INTO approvals (analysis_id, contributor, approval, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (analysis_id, contributor) DO NOTHING",
        )
        .bind(a.analysis_id.to_hex())
        .bind(&a.contributor)
        .bind(json)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Approvals with the time each was received, in contributor order.
    pub async fn approvals(&self, id: &str) -> Result<Vec<(Approval, String)>, CoordError> {
        let rows = sqlx::query(
            "SELECT approval, received_at FROM approvals WHERE analysis_id = $1 ORDER BY contributor",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let json: String = r.try_get("approval").map_err(db_err)?;
                let at: String = r.try_get("received_at").map_err(db_err)?;
                let a: Approval =
                    serde_json::from_str(&json).map_err(|e| CoordError::Db(e.to_string()))?;
                Ok((a, at))
            })
            .collect()
    }

    pub async fn set_node_seen(
        &self,
        id: &str,
        node: usize,
        seen: &NodeSeen,
    ) -> Result<(), CoordError> {
        let json = serde_json::to_string(seen).map_err(|e| CoordError::Db(e.to_string()))?;
        sqlx::query(
            "INSERT INTO node_states (analysis_id, node, status, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (analysis_id, node) DO UPDATE SET status = $3, updated_at = $4",
        )
        .bind(id)
        .bind(node as i64)
        .bind(json)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Last seen state of each node (None: never asked).
    pub async fn nodes_seen(
        &self,
        id: &str,
    ) -> Result<[Option<(NodeSeen, String)>; 3], CoordError> {
        let rows =
            sqlx::query("SELECT node, status, updated_at FROM node_states WHERE analysis_id = $1")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        let mut out: [Option<(NodeSeen, String)>; 3] = [None, None, None];
        for r in rows {
            let node: i64 = r.try_get("node").map_err(db_err)?;
            let json: String = r.try_get("status").map_err(db_err)?;
            let at: String = r.try_get("updated_at").map_err(db_err)?;
            let seen: NodeSeen =
                serde_json::from_str(&json).map_err(|e| CoordError::Db(e.to_string()))?;
            if let Some(slot) = out.get_mut(node as usize) {
                *slot = Some((seen, at));
            }
        }
        Ok(out)
    }

    pub async fn add_receipt(&self, id: &str, r: &DeletionReceipt) -> Result<(), CoordError> {
        let json = serde_json::to_string(r).map_err(|e| CoordError::Db(e.to_string()))?;
        sqlx::query(
            "INSERT INTO receipts (analysis_id, node, receipt) VALUES ($1, $2, $3) \
             ON CONFLICT (analysis_id, node) DO NOTHING",
        )
        .bind(id)
        .bind(r.node as i64)
        .bind(json)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    pub async fn receipts(&self, id: &str) -> Result<Vec<DeletionReceipt>, CoordError> {
        let rows = sqlx::query("SELECT receipt FROM receipts WHERE analysis_id = $1 ORDER BY node")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let json: String = r.try_get("receipt").map_err(db_err)?;
                serde_json::from_str(&json).map_err(|e| CoordError::Db(e.to_string()))
            })
            .collect()
    }
}
