//! The scheduler: one round ([`Coordinator::tick`]) looks at every analysis
//! that is not finished and moves it on. Everything it needs is in the
//! database, so a restarted coordinator resumes where the old one stopped.
//!
//! ```text
//! submitted --all approvals--> approved --Register at 3 nodes--> registered
//! registered --3 nodes Ready--> running (GovRun) --3 nodes Done--> done --deadline--> expired
//! running --a node Failed / silent past node_timeout_secs--> failed --POST run--> running
//! approved --a node refuses (approvals, SQL, its privacy-budget ledger)--> failed (nothing sent)
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use kuvert_gov::{AnalysisSpec, AuditEvent, Validation};
use kuvert_node::wire::{GovState, GovStatus};
use sha2::{Digest, Sha256};

use crate::nodes::NodeError;
use crate::store::{AnalysisRow, NodeSeen, State};
use crate::{fmt_ms, now_ms, CoordError, Coordinator};

/// What a POST /run found.
#[derive(Debug)]
pub enum RunRequest {
    Started,
    NotReady(String),
}

impl Coordinator {
    /// One scheduler round over every unfinished analysis (concurrently;
    /// each node call is bounded by the call timeout).
    pub async fn tick(&self) -> Result<(), CoordError> {
        let rows = self
            .inner
            .store
            .analyses_in(&[
                State::Submitted,
                State::Approved,
                State::Registered,
                State::Running,
                State::Done,
            ])
            .await?;
        let mut set = tokio::task::JoinSet::new();
        for a in rows {
            let me = self.clone();
            set.spawn(async move {
                let id = a.id.clone();
                (id, me.step(a).await)
            });
        }
        let mut first_err = None;
        while let Some(r) = set.join_next().await {
            match r {
                Ok((_, Ok(()))) => {}
                Ok((id, Err(e))) => {
                    tracing::warn!(analysis = %id, "scheduler: {e}");
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(CoordError::Db(format!("scheduler task failed: {e}")));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.inner.node_timeout_secs.clamp(1, 10))
    }

    async fn step(&self, a: AnalysisRow) -> Result<(), CoordError> {
        match a.state {
            State::Submitted => {
                // Normally done by the approval handler; here after a crash
                // between storing the last approval and the transition.
                if self.remaining_approvals(&a).await?.is_empty() {
                    self.mark_approved(&a.id).await?;
                }
                Ok(())
            }
            State::Approved => self.register(&a).await,
            State::Registered | State::Running => self.poll(&a).await,
            State::Done => self.maybe_expire(&a).await,
            State::Failed | State::Expired => Ok(()),
        }
    }

    pub(crate) fn spec_of(a: &AnalysisRow) -> Result<AnalysisSpec, CoordError> {
        AnalysisSpec::parse(
            &a.spec_toml,
            &format!("analysis {}", a.id),
            Validation::Strict,
        )
        .map_err(|e| CoordError::Db(format!("stored spec does not parse any more: {e}")))
    }

    /// Contributors whose valid approval is missing.
    pub(crate) async fn remaining_approvals(
        &self,
        a: &AnalysisRow,
    ) -> Result<Vec<String>, CoordError> {
        let spec = Coordinator::spec_of(a)?;
        let have: Vec<_> = self
            .inner
            .store
            .approvals(&a.id)
            .await?
            .into_iter()
            .map(|(ap, _)| ap)
            .collect();
        Ok(kuvert_gov::approval_status(&spec, &have)
            .into_iter()
            .filter(|(c, s)| {
                *s != kuvert_gov::ApprovalState::Approved && spec.contributor(c).is_some()
            })
            .map(|(c, _)| c)
            .collect())
    }

    pub(crate) async fn mark_approved(&self, id: &str) -> Result<(), CoordError> {
        if self
            .inner
            .store
            .transition(
                id,
                &[State::Submitted],
                State::Approved,
                "approved by every contributor; registering at the three nodes",
            )
            .await?
        {
            self.wake();
        }
        Ok(())
    }

    /// Time out a node call as a whole: a hung node never hangs the round.
    pub(crate) async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = [Result<T, NodeError>; 3]>,
    ) -> [Result<T, NodeError>; 3] {
        let t = self.call_timeout();
        match tokio::time::timeout(t, f).await {
            Ok(r) => r,
            Err(_) => {
                let e = || {
                    Err(NodeError::Unreachable(format!(
                        "no answer within {} s",
                        t.as_secs()
                    )))
                };
                [e(), e(), e()]
            }
        }
    }

    /// Move the analysis from one of `from` to `failed` with `detail`, and
    /// log `event` (for this analysis) when this call made the change.
    async fn fail(
        &self,
        a: &AnalysisRow,
        from: &[State],
        detail: &str,
        event: AuditEvent,
    ) -> Result<(), CoordError> {
        if self
            .inner
            .store
            .transition(&a.id, from, State::Failed, detail)
            .await?
        {
            self.audit(event.analysis(parse_id(&a.id)?))?;
        }
        Ok(())
    }

    /// Register the approved analysis at the three nodes. Each node checks
    /// the approvals, the `[[nodes]]`, the SQL and its own privacy-budget
    /// ledger itself; a refusal (e.g. a budget that cannot pay) fails the
    /// analysis with the node's reason, before any data moves.
    async fn register(&self, a: &AnalysisRow) -> Result<(), CoordError> {
        let approvals: Vec<_> = self
            .inner
            .store
            .approvals(&a.id)
            .await?
            .into_iter()
            .map(|(ap, _)| ap)
            .collect();
        let answers = self
            .bounded(self.inner.nodes.register(&a.spec_toml, &approvals))
            .await;
        for (i, r) in answers.iter().enumerate() {
            if let Err(e) = r {
                let seen = NodeSeen::Error(format!("registration: {e}"));
                self.inner.store.set_node_seen(&a.id, i, &seen).await?;
            }
        }
        if let Some((i, why)) = answers.iter().enumerate().find_map(|(i, r)| match r {
            Err(NodeError::Refused(m)) => Some((i, m.clone())),
            _ => None,
        }) {
            let detail = format!(
                "node {i} refused the analysis: {why}. Nothing was sent or run; fix the cause \
                 (the spec, an approval, or the node's trusted_keys) and submit the corrected analysis"
            );
            self.fail(
                a,
                &[State::Approved],
                &detail,
                AuditEvent::new("coordinator", "job.failed")
                    .detail("node", i as u64)
                    .detail("stage", "register"),
            )
            .await?;
            return Ok(());
        }
        if self.note_unreachable(a, &answers).await? {
            return Ok(());
        }
        if self
            .inner
            .store
            .transition(
                &a.id,
                &[State::Approved],
                State::Registered,
                "registered at all three nodes; waiting for each contributor's data \
                 (kuvert upload ID --table NAME=FILE --key KEY)",
            )
            .await?
        {
            self.audit(
                AuditEvent::new("coordinator", "analysis.registered").analysis(parse_id(&a.id)?),
            )?;
        }
        Ok(())
    }

    /// Record unreachable nodes in the detail. True when some node did not
    /// answer (the caller stops there). A running job fails once a node
    /// stayed silent past `node_timeout_secs`.
    async fn note_unreachable<T>(
        &self,
        a: &AnalysisRow,
        answers: &[Result<T, NodeError>; 3],
    ) -> Result<bool, CoordError> {
        let silent: Vec<(usize, &str)> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Err(NodeError::Unreachable(m)) => Some((i, m.as_str())),
                _ => None,
            })
            .collect();
        if silent.is_empty() {
            return Ok(false);
        }
        let now = now_ms();
        let since = if a.unreachable_since_ms > 0 {
            a.unreachable_since_ms
        } else {
            now
        };
        let who = silent
            .iter()
            .map(|(i, m)| {
                if m.starts_with(&format!("node {i}")) {
                    m.to_string()
                } else {
                    format!("node {i}: {m}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let limit_ms = (self.inner.node_timeout_secs as i64).saturating_mul(1000);
        if a.state == State::Running && now - since >= limit_ms {
            let detail = format!(
                "failed: {who}; no answer since {} (more than {} s) during the run. Nothing was \
                 released. Bring the node back, then ask to run again (POST /api/analyses/{}/run); \
                 the inputs are kept unless the node says otherwise",
                fmt_ms(since),
                self.inner.node_timeout_secs,
                a.id
            );
            self.fail(
                a,
                &[State::Running],
                &detail,
                AuditEvent::new("coordinator", "job.failed")
                    .detail("reason", "node unreachable")
                    .detail(
                        "nodes",
                        silent
                            .iter()
                            .map(|(i, _)| i.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
            )
            .await?;
        } else {
            let detail = format!(
                "{who}; no answer since {}; the analysis stays {} and is retried every round{}",
                fmt_ms(since),
                a.state,
                if a.state == State::Running {
                    format!(
                        " (it fails after {} s without an answer)",
                        self.inner.node_timeout_secs
                    )
                } else {
                    String::new()
                }
            );
            self.inner
                .store
                .set_detail(&a.id, a.state, &detail, since)
                .await?;
        }
        Ok(true)
    }

    async fn poll(&self, a: &AnalysisRow) -> Result<(), CoordError> {
        let answers = self.bounded(self.inner.nodes.status(&a.id)).await;
        for (i, r) in answers.iter().enumerate() {
            let seen = match r {
                Ok(s) => NodeSeen::Status(Box::new(s.clone())),
                Err(e) => NodeSeen::Error(e.to_string()),
            };
            self.inner.store.set_node_seen(&a.id, i, &seen).await?;
        }
        if self.note_unreachable(a, &answers).await? {
            return Ok(());
        }
        let st: Vec<GovStatus> = answers
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Ok(s) => s,
                // A refusal of a status request: report it as the node's state.
                Err(e) => GovStatus {
                    node: i,
                    analysis: a.id.clone(),
                    state: GovState::Failed {
                        reason: e.to_string(),
                        refused: false,
                        inputs_kept: true,
                    },
                    tables: vec![],
                    progress: None,
                    stats: None,
                    receipt: None,
                    delete_by: None,
                },
            })
            .collect();
        let states: Vec<&GovState> = st.iter().map(|s| &s.state).collect();

        // A failure on any node fails the job.
        if let Some((i, reason, refused, kept)) = st.iter().find_map(|s| match &s.state {
            GovState::Failed {
                reason,
                refused,
                inputs_kept,
            } => Some((s.node, reason.clone(), *refused, *inputs_kept)),
            _ => None,
        }) {
            let next = if refused {
                "the query cannot run on these inputs: change the spec and submit a new analysis"
            } else if kept {
                "the inputs are kept: fix the cause, then ask to run again (POST /api/analyses/ID/run)"
            } else {
                "the inputs were deleted: the contributors must upload again before a new run"
            };
            let detail = format!(
                "failed on node {i}: {reason}. Nothing was released; {}",
                next.replace("ID", &a.id)
            );
            self.fail(
                a,
                &[State::Registered, State::Running],
                &detail,
                AuditEvent::new("coordinator", "job.failed")
                    .detail("node", i as u64)
                    .detail("inputs_kept", kept),
            )
            .await?;
            return Ok(());
        }
        if states.iter().all(|s| matches!(s, GovState::Done { .. })) {
            return self.finish(a, &st).await;
        }
        if states.iter().any(|s| matches!(s, GovState::Expired)) {
            return self
                .expire(a, "the nodes report the results' deadline has passed")
                .await;
        }
        if states.iter().any(|s| matches!(s, GovState::Unknown)) {
            // A node lost (or never got) the registration: register again.
            let approvals: Vec<_> = self
                .inner
                .store
                .approvals(&a.id)
                .await?
                .into_iter()
                .map(|(ap, _)| ap)
                .collect();
            let r = self
                .bounded(self.inner.nodes.register(&a.spec_toml, &approvals))
                .await;
            let bad: Vec<String> = r
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("node {i} {e}")))
                .collect();
            let detail = if bad.is_empty() {
                "a node did not know the analysis; registered it there again".to_string()
            } else {
                format!(
                    "a node does not know the analysis; registering again failed: {}",
                    bad.join("; ")
                )
            };
            self.inner
                .store
                .set_detail(&a.id, a.state, &detail, 0)
                .await?;
            return Ok(());
        }
        if states.iter().all(|s| matches!(s, GovState::Ready)) {
            // Registered: all data is in. Running: the run message was lost
            // (e.g. the coordinator stopped in between): send it again.
            self.send_run(a, &[State::Registered, State::Running], [true; 3])
                .await?;
            return Ok(());
        }
        let ready = [0, 1, 2].map(|i| matches!(states[i], GovState::Ready));
        if a.state == State::Running
            && ready.iter().any(|r| *r)
            && states.iter().all(|s| {
                matches!(
                    s,
                    GovState::Ready | GovState::Running { .. } | GovState::Done { .. }
                )
            })
        {
            // The run reached only some nodes (one was unreachable when it
            // was sent): tell the others. Only their refusals count.
            self.send_run(a, &[State::Running], ready).await?;
            return Ok(());
        }
        // Waiting for data, or running.
        let mut missing = BTreeSet::new();
        let mut progress = Vec::new();
        for s in &st {
            match &s.state {
                GovState::Waiting { missing: m } => missing.extend(m.iter().cloned()),
                GovState::Running {
                    output,
                    done,
                    total,
                } => progress.push(format!("node {}: output {output} ({done}/{total})", s.node)),
                GovState::Done { .. } => progress.push(format!("node {}: done", s.node)),
                _ => {}
            }
        }
        let detail = if !missing.is_empty() {
            format!(
                "waiting for data: tables {} not uploaded yet",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else if !progress.is_empty() {
            format!("running: {}", progress.join("; "))
        } else {
            a.detail.clone()
        };
        self.inner
            .store
            .set_detail(&a.id, a.state, &detail, 0)
            .await
    }

    /// Move to `running` (from one of `from`) and send GovRun.
    /// `care[i]`: whether node i's refusal fails the job (false for a node
    /// that already runs when the run is sent again).
    async fn send_run(
        &self,
        a: &AnalysisRow,
        from: &[State],
        care: [bool; 3],
    ) -> Result<bool, CoordError> {
        let first = a.state != State::Running;
        if first
            && !self
                .inner
                .store
                .transition(
                    &a.id,
                    from,
                    State::Running,
                    "running: the nodes were told to run",
                )
                .await?
        {
            return Ok(false);
        }
        if first {
            self.audit(AuditEvent::new("coordinator", "job.started").analysis(parse_id(&a.id)?))?;
        }
        // The nodes countersign the coordinator's audit head into their own
        // logs, so this log cannot be rewritten before it unnoticed.
        let head = self.audit_head()?;
        let answers = self.bounded(self.inner.nodes.run(&a.id, Some(head))).await;
        if let Some((i, why)) = answers.iter().enumerate().find_map(|(i, r)| match r {
            Err(NodeError::Refused(m)) if care[i] => Some((i, m.clone())),
            _ => None,
        }) {
            let detail = format!(
                "node {i} refused to run: {why}. Nothing was released; fix the cause, then ask to \
                 run again (POST /api/analyses/{}/run)",
                a.id
            );
            self.fail(
                a,
                &[State::Running],
                &detail,
                AuditEvent::new("coordinator", "job.failed")
                    .detail("node", i as u64)
                    .detail("stage", "run"),
            )
            .await?;
        }
        // Unreachable nodes: the next round's status poll sees them.
        Ok(true)
    }

    /// Every node is done: keep the receipts, log their hashes.
    async fn finish(&self, a: &AnalysisRow, st: &[GovStatus]) -> Result<(), CoordError> {
        let mut deadline = String::new();
        let mut ev = AuditEvent::new("coordinator", "job.done").analysis(parse_id(&a.id)?);
        let mut n_receipts = 0;
        let mut invalid = Vec::new();
        for s in st {
            if let GovState::Done { deadline: d } = &s.state {
                if deadline.is_empty() || d < &deadline {
                    deadline = d.clone();
                }
            }
            if let Some(r) = &s.receipt {
                if self.check_receipt(r) == crate::ReceiptCheck::Invalid
                    || r.node as usize != s.node
                {
                    invalid.push(s.node);
                }
                self.inner.store.add_receipt(&a.id, r).await?;
                let json = serde_json::to_vec(r).unwrap_or_default();
                let h: String = Sha256::digest(&json)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                ev = ev.detail(&format!("receipt_sha256_node{}", s.node), h);
                n_receipts += 1;
            }
        }
        self.inner.store.set_deadline(&a.id, &deadline).await?;
        let mut detail = format!(
            "done: results sealed for their recipients until {deadline} (kuvert result {} --key KEY); \
             {n_receipts} of 3 deletion receipts",
            a.id
        );
        for i in &invalid {
            detail.push_str(&format!(
                "; WARNING: node {i}'s deletion receipt does not verify against its key \
                 node-{i}.gov.pub in the PKI directory: ask the node's operator why"
            ));
            ev = ev.detail(&format!("receipt_invalid_node{i}"), true);
        }
        if self
            .inner
            .store
            .transition(
                &a.id,
                &[State::Registered, State::Running],
                State::Done,
                &detail,
            )
            .await?
        {
            self.audit(ev.detail("receipts", n_receipts as u64))?;
        }
        Ok(())
    }

    async fn maybe_expire(&self, a: &AnalysisRow) -> Result<(), CoordError> {
        let Ok(d) = time::OffsetDateTime::parse(
            &a.deadline,
            &time::format_description::well_known::Rfc3339,
        ) else {
            return Ok(());
        };
        if time::OffsetDateTime::now_utc() >= d {
            self.expire(
                a,
                "the results' deadline passed; the nodes delete the sealed results",
            )
            .await?;
        }
        Ok(())
    }

    async fn expire(&self, a: &AnalysisRow, why: &str) -> Result<(), CoordError> {
        if self
            .inner
            .store
            .transition(
                &a.id,
                &[State::Registered, State::Running, State::Done],
                State::Expired,
                &format!("expired: {why}"),
            )
            .await?
        {
            self.audit(
                AuditEvent::new("coordinator", "analysis.expired").analysis(parse_id(&a.id)?),
            )?;
        }
        Ok(())
    }

    /// POST /run: run now if all three nodes are ready (or failed with
    /// their inputs kept).
    pub(crate) async fn request_run(&self, a: &AnalysisRow) -> Result<RunRequest, CoordError> {
        match a.state {
            State::Submitted | State::Approved => {
                return Ok(RunRequest::NotReady(format!(
                    "the analysis is {}: it runs once every contributor approved and all three \
                     nodes registered it",
                    a.state
                )))
            }
            State::Done | State::Expired => {
                return Ok(RunRequest::NotReady(format!(
                    "the analysis is {} already; submit a new analysis to compute again",
                    a.state
                )))
            }
            State::Running => {
                return Ok(RunRequest::NotReady(
                    "the analysis is running already".into(),
                ))
            }
            State::Registered | State::Failed => {}
        }
        let answers = self.bounded(self.inner.nodes.status(&a.id)).await;
        let mut why = Vec::new();
        for (i, r) in answers.iter().enumerate() {
            match r {
                Ok(s) => match &s.state {
                    GovState::Ready
                    | GovState::Failed {
                        inputs_kept: true,
                        refused: false,
                        ..
                    } => {}
                    GovState::Waiting { missing } => {
                        why.push(format!("node {i} waits for tables {}", missing.join(", ")))
                    }
                    other => why.push(format!("node {i} is {}", gov_state_text(other))),
                },
                Err(e) => why.push(format!("node {i} {e}")),
            }
        }
        if !why.is_empty() {
            return Ok(RunRequest::NotReady(format!(
                "not ready to run: {}",
                why.join("; ")
            )));
        }
        if self.send_run(a, &[a.state], [true; 3]).await? {
            self.wake();
            Ok(RunRequest::Started)
        } else {
            Ok(RunRequest::NotReady(
                "the analysis changed state meanwhile; look at its status".into(),
            ))
        }
    }
}

/// A node state in words (console and messages).
pub fn gov_state_text(s: &GovState) -> String {
    match s {
        GovState::Unknown => "unknown (not registered)".into(),
        GovState::Waiting { missing } => format!("waiting for {}", missing.join(", ")),
        GovState::Ready => "ready".into(),
        GovState::Running {
            output,
            done,
            total,
        } => format!("running {output} ({done}/{total})"),
        GovState::Done { deadline } => format!("done (results until {deadline})"),
        GovState::Failed {
            reason,
            inputs_kept,
            ..
        } => format!(
            "failed: {reason} (inputs {})",
            if *inputs_kept { "kept" } else { "deleted" }
        ),
        GovState::Expired => "expired".into(),
    }
}

pub(crate) fn parse_id(id: &str) -> Result<kuvert_gov::AnalysisId, CoordError> {
    id.parse()
        .map_err(|e| CoordError::Db(format!("stored id {id:?} is not an analysis id: {e}")))
}
