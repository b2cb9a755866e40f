//! The actor system: a supervisor that routes, one actor per project and per session spread over one
//! arbiter per core, a persister thread that owns storage writes, and a broadcaster for live events.

pub mod broadcaster;
pub mod persister;

use std::sync::Arc;

use crate::config::Config;
use crate::engine::{Started, Subscription};
use crate::error::CommandError;
use crate::messages::commands::{
    IngestOutcome, Page, ProjectSummary, SessionSummary, Settings, SettingsPatch, StartRequest,
};
use crate::messages::wire::{AgentSession, ProjectHealth, SidecarEvent};
use crate::providers::Providers;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

/// PLACEHOLDER: the lead fills this in; the signatures are final.
pub struct EngineParts {
    pub config: Arc<Config>,
}

#[allow(unused_variables)]
impl EngineParts {
    pub async fn start(
        config: Arc<Config>,
        providers: Providers,
    ) -> Result<EngineParts, StartError> {
        todo!()
    }
    pub async fn start_agent(
        &self,
        project_id: &str,
        req: StartRequest,
    ) -> Result<Started, CommandError> {
        todo!()
    }
    pub async fn stop_agent(&self, project_id: &str) -> Result<(), CommandError> {
        todo!()
    }
    pub async fn send_prompt(&self, project_id: &str, prompt: String) -> Result<(), CommandError> {
        todo!()
    }
    pub async fn get_session(
        &self,
        project_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        todo!()
    }
    pub async fn has_session(&self, project_id: &str) -> Result<bool, CommandError> {
        todo!()
    }
    pub async fn clear_session(&self, project_id: &str) -> Result<(), CommandError> {
        todo!()
    }
    pub async fn load_last_session(&self, project_id: &str) -> Result<bool, CommandError> {
        todo!()
    }
    pub async fn project_sessions(
        &self,
        project_id: &str,
    ) -> Result<Vec<SessionSummary>, CommandError> {
        todo!()
    }
    pub async fn purge_project(&self, project_id: &str) -> Result<(), CommandError> {
        todo!()
    }
    pub async fn session(
        &self,
        session_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        todo!()
    }
    pub async fn purge_session(&self, session_id: &str) -> Result<(), CommandError> {
        todo!()
    }
    pub async fn projects(&self) -> Result<Vec<ProjectSummary>, CommandError> {
        todo!()
    }
    pub async fn health(&self) -> Result<Vec<ProjectHealth>, CommandError> {
        todo!()
    }
    pub async fn ingest(
        &self,
        events: Vec<SidecarEvent>,
        durable: bool,
    ) -> Result<IngestOutcome, CommandError> {
        todo!()
    }
    pub async fn settings(&self) -> Result<Settings, CommandError> {
        todo!()
    }
    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<Settings, CommandError> {
        todo!()
    }
    pub async fn subscribe(
        &self,
        project_id: Option<String>,
    ) -> Result<Subscription, CommandError> {
        todo!()
    }
    pub fn is_ready(&self) -> bool {
        todo!()
    }
    pub async fn flush(&self) -> Result<(), CommandError> {
        todo!()
    }
    pub async fn shutdown(&self) {
        todo!()
    }
}
