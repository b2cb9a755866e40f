//! The in-process handle to the engine: what the HTTP API, the load generator and tests call. Each method
//! sends one typed message into the actor system and awaits the answer; no state lives here.

use std::sync::Arc;

use crate::actors::approvals::Approval;
use crate::config::Config;
use crate::error::CommandError;
use crate::messages::commands::{
    IngestOutcome, Page, ProjectSummary, SessionSummary, Settings, SettingsPatch, StartRequest,
    TopBy, TopEntry,
};
use crate::messages::cost::{CostReport, ProjectCost};
use crate::messages::policy::{Policy, PolicyPatch};
use crate::messages::wire::{AgentSession, ProjectHealth, SidecarEvent};
use crate::providers::permissions::Decision;
use crate::providers::Providers;

pub use crate::actors::broadcaster::Subscription;

/// What `startAgent` answers on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub session_id: String,
}

/// A cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<crate::actors::EngineParts>,
}

impl Engine {
    /// Opens storage (marking sessions that were running when the process died as interrupted), starts
    /// the persister thread, one arbiter per core and the supervisor. Call inside an actix `System`.
    pub async fn start(
        config: Config,
        providers: Providers,
    ) -> Result<Engine, crate::actors::StartError> {
        let parts = crate::actors::EngineParts::start(Arc::new(config), providers).await?;
        let inner = Arc::new(parts);
        inner.enable_stall_resume();
        // Sessions to resume after the restart (resume.on_restart, resumeOnRestart) go on in the background.
        crate::actors::restart::resume_interrupted(inner.clone());
        Ok(Engine { inner })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The engine's metrics, for the edges (HTTP) to count what never reaches an actor.
    pub fn metrics(&self) -> &crate::actors::metrics::Metrics {
        &self.inner.metrics
    }

    /// startAgent. On a provider failure the session exists in status error and the error carries its id.
    pub async fn start_agent(
        &self,
        project_id: &str,
        req: StartRequest,
    ) -> Result<Started, CommandError> {
        self.inner.start_agent(project_id, req).await
    }

    // ── agents under control (issue 15; actors/engine_control.rs) ──────────────────────────────────────

    /// The project's policy in force.
    pub fn policy(&self, project_id: &str) -> Result<Policy, CommandError> {
        self.inner.policy(project_id)
    }

    /// Patches and stores the project's policy (`null` fields back to the defaults).
    pub async fn update_policy(
        &self,
        project_id: &str,
        patch: PolicyPatch,
    ) -> Result<Policy, CommandError> {
        self.inner.update_policy(project_id, patch).await
    }

    /// Pending tool-permission requests, oldest first.
    pub fn approvals(&self, project_id: Option<&str>) -> Result<Vec<Approval>, CommandError> {
        self.inner.approvals(project_id)
    }

    /// Answers a pending tool-permission request.
    pub async fn answer_approval(
        &self,
        session_id: &str,
        request_id: &str,
        decision: Decision,
    ) -> Result<(), CommandError> {
        self.inner
            .answer_approval(session_id, request_id, decision)
            .await
    }

    /// A project's spend from the cost ledger, days `from..=to`.
    pub async fn project_cost(
        &self,
        project_id: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<ProjectCost, CommandError> {
        self.inner.project_cost(project_id, from, to).await
    }

    /// Every project's spend, days `from..=to`.
    pub async fn cost(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<CostReport, CommandError> {
        self.inner.cost(from, to).await
    }

    /// Deletes a project's cost ledger (only a purge with `?ledger=true` asks for it).
    pub async fn purge_ledger(&self, project_id: &str) -> Result<(), CommandError> {
        self.inner.purge_ledger(project_id).await
    }

    /// stopAgent.
    pub async fn stop_agent(&self, project_id: &str) -> Result<(), CommandError> {
        self.inner.stop_agent(project_id).await
    }

    /// Resumes the project's finished session with its provider's own resume; `prompt` (else a default)
    /// goes to the agent (src/actors/restart.rs).
    pub async fn resume_session(
        &self,
        project_id: &str,
        prompt: Option<String>,
    ) -> Result<Started, CommandError> {
        self.inner
            .resume_session(project_id, prompt, crate::actors::restart::Why::Request)
            .await
    }

    /// sendPrompt: appends the user message, sets running, forwards the prompt to the provider.
    pub async fn send_prompt(&self, project_id: &str, prompt: String) -> Result<(), CommandError> {
        self.inner.send_prompt(project_id, prompt).await
    }

    /// getSession: the project's current session, its messages paged by `page`.
    pub async fn get_session(
        &self,
        project_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        self.inner.get_session(project_id, page).await
    }

    /// hasSession.
    pub async fn has_session(&self, project_id: &str) -> Result<bool, CommandError> {
        self.inner.has_session(project_id).await
    }

    /// clearSession: detaches a done/error session from its project; refuses a running one.
    pub async fn clear_session(&self, project_id: &str) -> Result<(), CommandError> {
        self.inner.clear_session(project_id).await
    }

    /// loadLastSession: restores the project's newest stored done/error session as its current one.
    pub async fn load_last_session(&self, project_id: &str) -> Result<bool, CommandError> {
        self.inner.load_last_session(project_id).await
    }

    /// The project's stored sessions, newest first, without messages.
    pub async fn project_sessions(
        &self,
        project_id: &str,
    ) -> Result<Vec<SessionSummary>, CommandError> {
        self.inner.project_sessions(project_id).await
    }

    /// purgeProjectSessions: memory and storage.
    pub async fn purge_project(&self, project_id: &str) -> Result<(), CommandError> {
        self.inner.purge_project(project_id).await
    }

    /// Any live or stored session by id.
    pub async fn session(
        &self,
        session_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        self.inner.session(session_id, page).await
    }

    /// The last lines a session's agent wrote to stderr (a sign of life, not progress).
    pub async fn session_stderr(
        &self,
        session_id: &str,
    ) -> Result<crate::providers::SessionStderr, CommandError> {
        self.inner.session_stderr(session_id).await
    }

    /// purgeSession: memory and storage.
    pub async fn purge_session(&self, session_id: &str) -> Result<(), CommandError> {
        self.inner.purge_session(session_id).await
    }

    /// Known projects with their current session and health.
    pub async fn projects(&self) -> Result<Vec<ProjectSummary>, CommandError> {
        self.inner.projects().await
    }

    /// Health of every known project, highest attention first.
    pub async fn health(&self) -> Result<Vec<ProjectHealth>, CommandError> {
        self.inner.health().await
    }

    /// Routes sidecar events to their sessions. With `durable`, answers after they are committed.
    pub async fn ingest(
        &self,
        events: Vec<SidecarEvent>,
        durable: bool,
    ) -> Result<IngestOutcome, CommandError> {
        self.inner.ingest(events, durable).await
    }

    pub async fn settings(&self) -> Result<Settings, CommandError> {
        self.inner.settings().await
    }

    /// Applies a partial update, persists it and applies retention at once.
    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<Settings, CommandError> {
        self.inner.update_settings(patch).await
    }

    /// Live events, all or one project's, through a bounded buffer.
    pub async fn subscribe(
        &self,
        project_id: Option<String>,
    ) -> Result<Subscription, CommandError> {
        self.inner.subscribe(project_id).await
    }

    /// Cluster hook (src/actors/adopt.rs): every stored session of `projects`, for a partition snapshot.
    pub async fn export_sessions(
        &self,
        projects: Vec<String>,
    ) -> Result<Vec<crate::actors::adopt::StoredSession>, CommandError> {
        self.inner.export_sessions(projects).await
    }

    /// Cluster hook (src/actors/adopt.rs): sessions another node stored, written here under their ids.
    pub async fn import_sessions(
        &self,
        sessions: Vec<crate::actors::adopt::StoredSession>,
        seq_margin: u64,
    ) -> Result<usize, CommandError> {
        self.inner.import_sessions(sessions, seq_margin).await
    }

    /// Cluster hook: a live event of a project another node runs, for this node's subscribers (see
    /// `LiveEvent::Remote`).
    pub async fn publish_remote(
        &self,
        event: crate::messages::commands::LiveEvent,
    ) -> Result<(), CommandError> {
        self.inner.publish_remote(event).await
    }

    /// What a lagging subscriber missed since `after`, and the last id published (src/actors/journal.rs).
    pub async fn replay_after(
        &self,
        project_id: Option<String>,
        after: crate::actors::journal::EventId,
    ) -> Result<
        (
            crate::actors::journal::Replay,
            crate::actors::journal::EventId,
        ),
        CommandError,
    > {
        self.inner.replay_after(project_id, after).await
    }

    /// `subscribe`, with what a client whose last event was `after` missed (src/actors/journal.rs).
    pub async fn subscribe_after(
        &self,
        project_id: Option<String>,
        after: Option<crate::actors::journal::LastEventId>,
    ) -> Result<(Subscription, Option<crate::actors::journal::Replay>), CommandError> {
        self.inner.subscribe_after(project_id, after).await
    }

    /// Sets (None: clears) a project's own stall threshold, overriding `timers.stall_after`.
    pub async fn set_stall_threshold(
        &self,
        project_id: &str,
        stall_after: Option<std::time::Duration>,
    ) -> Result<ProjectHealth, CommandError> {
        self.inner
            .set_stall_threshold(project_id, stall_after)
            .await
    }

    /// The busiest actors by mailbox depth, messages handled or memory (`/v1/debug/top`).
    pub async fn debug_top(&self, by: TopBy, limit: usize) -> Result<Vec<TopEntry>, CommandError> {
        self.inner.debug_top(by, limit).await
    }

    /// The Prometheus text exposition of the engine's metrics.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// Holds the persister (a stuck disk) until the guard is dropped: for backpressure tests.
    pub async fn hold_persister(
        &self,
    ) -> Result<crate::actors::persister::HoldGuard, CommandError> {
        self.inner.hold_persister().await
    }

    /// Storage open and able to commit, and actors up.
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// `is_ready`, with the reason when not.
    pub fn readiness(&self) -> Result<(), String> {
        self.inner.readiness()
    }

    /// Waits until everything accepted so far is committed to storage.
    pub async fn flush(&self) -> Result<(), CommandError> {
        self.inner.flush().await
    }

    /// Stops providers, flushes every pending message and closes storage. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}
