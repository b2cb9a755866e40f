//! The engine calls of agents under control (issue 15): a project's policy, the pending approvals and
//! their answers, the cost ledger. Kept apart from the session commands.

use super::Engine;
use crate::actors::approvals::{Approval, NotPending};
use crate::actors::blocking;

use crate::error::CommandError;
use crate::messages::commands::Page;
use crate::messages::cost::{self, CostReport, ProjectCost};
use crate::messages::policy::{ApprovalMode, Policy, PolicyPatch};
use crate::messages::project::SetStallThreshold;
use crate::messages::validate;
use crate::messages::wire::{now_ms, AgentStatus};
use crate::providers::permissions::Decision;
use crate::providers::StartSpec;
use crate::storage::WriteOp;

impl Engine {
    /// What the project's policy asks of a start: the permission channel, the agent's own budget guard;
    /// a project over its daily budget starts nothing.
    pub(super) fn apply_policy(
        &self,
        project_id: &str,
        spec: &mut StartSpec,
    ) -> Result<(), CommandError> {
        let policy = self.inner.control.policy(project_id);
        if let Some(limit) = policy.budget.daily_usd {
            let spent = self.inner.control.spent_today(project_id, now_ms());
            if spent > limit {
                return Err(CommandError::Forbidden {
                    field: "budget.dailyUsd".into(),
                    message: format!(
                        "Budget exceeded: ${spent:.2} of ${limit:.2} (daily); nothing starts until tomorrow (UTC) or a higher budget"
                    ),
                });
            }
        }
        spec.ask_permissions = policy.approvals == ApprovalMode::Ask;
        spec.max_budget_usd = policy.budget.session_usd;
        Ok(())
    }

    pub fn policy(&self, project_id: &str) -> Result<Policy, CommandError> {
        validate::project_id(project_id)?;
        Ok(self.inner.control.policy(project_id))
    }

    pub async fn update_policy(
        &self,
        project_id: &str,
        patch: PolicyPatch,
    ) -> Result<Policy, CommandError> {
        validate::project_id(project_id)?;
        let policy = self.inner.control.update_policy(project_id, patch).await?;
        // The project's health and its session's stall timer follow the policy's stall.after at once.
        self.ask_project(project_id, false, || SetStallThreshold(None))
            .await?;
        Ok(policy)
    }

    /// Pending tool-permission requests, oldest first.
    pub fn approvals(&self, project_id: Option<&str>) -> Result<Vec<Approval>, CommandError> {
        if let Some(p) = project_id {
            validate::project_id(p)?;
        }
        Ok(self.inner.control.approvals.list(project_id))
    }

    /// Answers one; 404 when nothing of that id waits, 409 when the session's agent no longer runs.
    pub async fn answer_approval(
        &self,
        session_id: &str,
        request_id: &str,
        decision: Decision,
    ) -> Result<(), CommandError> {
        validate::session_id(session_id).map_err(|_| CommandError::SessionNotFound)?;
        match self
            .inner
            .control
            .resolve(session_id, request_id, decision, "api")
        {
            Ok(()) => Ok(()),
            Err(NotPending::Unknown) => {
                let page = Page {
                    after_seq: None,
                    limit: Some(0),
                };
                match self.session(session_id, page).await {
                    Ok(s) if s.status != AgentStatus::Running => Err(CommandError::SessionEnded),
                    Ok(_) | Err(CommandError::SessionNotFound) => {
                        Err(CommandError::ApprovalNotFound)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    pub async fn project_cost(
        &self,
        project_id: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<ProjectCost, CommandError> {
        validate::project_id(project_id)?;
        let (from, to) = (cost::day_param("from", from)?, cost::day_param("to", to)?);
        let (store, id) = (self.inner.store.clone(), project_id.to_owned());
        let rows = blocking(move || store.spend(Some(&id), from.as_deref(), to.as_deref())).await?;
        Ok(cost::project_cost(project_id, &rows))
    }

    pub async fn cost(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<CostReport, CommandError> {
        let (from, to) = (cost::day_param("from", from)?, cost::day_param("to", to)?);
        let store = self.inner.store.clone();
        let rows = blocking(move || store.spend(None, from.as_deref(), to.as_deref())).await?;
        Ok(cost::report(&rows))
    }

    /// A project purge that takes its cost ledger too (`DELETE /v1/projects/{id}?ledger=true`).
    pub async fn purge_ledger(&self, project_id: &str) -> Result<(), CommandError> {
        validate::project_id(project_id)?;
        self.inner
            .persister
            .write(vec![WriteOp::DeleteLedger {
                project_id: project_id.to_owned(),
            }])
            .await?;
        Ok(())
    }
}
