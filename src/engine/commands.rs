//! The engine's commands: starting an agent (its request checked and completed from settings and
//! configuration), stop, prompt, clear, restore, purges, settings, a project's stall threshold, and
//! ingest. Each goes to the actor that serialises it: a project's actor (through its router, which holds
//! its arbiter's project directory), the routers, the supervisor (settings).

use super::cluster::Logged;
use super::{Engine, LOOKUPS};
use crate::actors::arbiters::project_of;
use crate::actors::blocking;
use crate::actors::router::StartIn;

use crate::error::CommandError;
use crate::messages::commands::{IngestOutcome, Settings, SettingsPatch, StartRequest, Started};
use crate::messages::project::{
    ClearSession, PromptSession, RestoreLast, SetStallThreshold, StartSession, StopSession,
};
use crate::messages::router::{PurgeProject, PurgeSession};
use crate::messages::supervisor::UpdateSettings;
use crate::messages::validate;
use crate::messages::wire::{ProjectHealth, SidecarEvent};
use crate::providers::StartSpec;
use std::sync::atomic::Ordering;

impl Engine {
    /// startAgent. On a provider failure the session exists in status error and the error carries its id.
    pub async fn start_agent(
        &self,
        project_id: &str,
        req: StartRequest,
    ) -> Result<Started, CommandError> {
        validate::project_id(project_id)?;
        let mut spec = self.resolve_start(req).await?;
        self.apply_policy(project_id, &mut spec)?;
        let started = self.start_in_project(project_id, spec).await?;
        self.record_start(&started.session_id).await?;
        Ok(started)
    }

    /// Hands the start to the project's router, which hands it to the project's actor on the same arbiter
    /// (started there if none), which answers here: one wait and one thread hop for the caller. A project
    /// going idle cannot lose it (the router holds starts for a project it is deactivating), but one
    /// stopped by force (a purge) drops it unanswered: then the router is asked again, as `ask_project`
    /// looks again after a closed mailbox.
    async fn start_in_project(
        &self,
        project_id: &str,
        spec: StartSpec,
    ) -> Result<Started, CommandError> {
        for _ in 0..LOOKUPS {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.router(project_id).do_send(StartIn {
                project_id: project_id.to_owned(),
                start: StartSession {
                    spec: spec.clone(),
                    reply,
                },
            });
            if let Ok(started) = answer.await {
                return started;
            }
        }
        Err(CommandError::ShuttingDown)
    }

    /// Validates a start request and fills what it leaves out from settings and configuration.
    async fn resolve_start(&self, req: StartRequest) -> Result<StartSpec, CommandError> {
        let Some(provider) = self.inner.providers.get(&req.provider) else {
            let mut known: Vec<&str> = self.inner.providers.names().collect();
            known.sort_unstable();
            return Err(CommandError::invalid(
                "provider",
                format!(
                    "unknown provider {:?} (known: {})",
                    req.provider,
                    known.join(", ")
                ),
            ));
        };
        validate::prompt(
            "prompt",
            &req.prompt,
            self.inner.config.limits.max_prompt_bytes.as_u64(),
        )?;
        let o = req.options;
        let limits = &self.inner.config.limits;
        validate::start_options(&o, limits.max_prompt_bytes.as_u64())?;
        validate::extra_env(
            o.extra_env.as_ref(),
            validate::EnvLimits {
                max_keys: limits.max_extra_env,
                max_bytes: usize::try_from(limits.max_extra_env_bytes.as_u64())
                    .unwrap_or(usize::MAX),
            },
        )?;
        if let Some(cwd) = &o.cwd {
            validate::cwd("options.cwd", cwd)?;
        }
        for (i, dir) in o.additional_directories.iter().flatten().enumerate() {
            validate::cwd(&format!("options.additionalDirectories[{i}]"), dir)?;
        }
        // What the request itself asks for, before defaults: an option the provider cannot honour is
        // refused (400 naming it and the provider), never dropped.
        provider
            .check(&StartSpec {
                provider: req.provider.clone(),
                cwd: o.cwd.clone(),
                model: o.model.clone().unwrap_or_default(),
                system_prompt: o.system_prompt.clone(),
                max_turns: o.max_turns,
                permission_mode: o.permission_mode.clone(),
                claude_config_dir: o.claude_config_dir.clone(),
                extra_env: o.extra_env.clone().unwrap_or_default(),
                additional_directories: o.additional_directories.clone().unwrap_or_default(),
                worktree_name: o.worktree_name.clone(),
                ..StartSpec::default()
            })
            .map_err(|r| CommandError::invalid(r.option, r.message))?;
        let settings = self.inner.settings.get();
        let (mode_field, permission_mode) = match o.permission_mode {
            Some(mode) => ("options.permissionMode", Some(mode)),
            None => ("permission_mode", settings.permission_mode.clone()),
        };
        validate::permission_mode(
            mode_field,
            permission_mode.as_deref(),
            &req.provider,
            self.inner
                .config
                .providers
                .get(&req.provider)
                .is_some_and(|p| p.allow_bypass_permissions),
        )?;
        let provider_settings = settings
            .provider_settings
            .get(&req.provider)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let settings_model = provider_settings
            .get("defaultModel")
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        Ok(StartSpec {
            session_id: String::new(),
            project_id: String::new(),
            model: o
                .model
                .filter(|m| !m.is_empty())
                .or(settings_model)
                .unwrap_or_else(|| self.inner.config.default_model(&req.provider)),
            provider: req.provider,
            prompt: req.prompt,
            cwd: o.cwd.or_else(|| settings.default_cwd.clone()),
            system_prompt: o
                .system_prompt
                .or_else(|| settings.system_prompt_template.clone()),
            max_turns: o.max_turns,
            permission_mode,
            claude_config_dir: o.claude_config_dir,
            extra_env: o.extra_env.unwrap_or_default(),
            additional_directories: o.additional_directories.unwrap_or_default(),
            worktree_name: o.worktree_name,
            provider_settings,
            resume_on_restart: o.resume_on_restart.unwrap_or(false),
            ask_permissions: false,
            max_budget_usd: None,
        })
    }

    /// stopAgent. In cluster mode a stop of a session still going is recorded once carried out, so a node
    /// taking the project over holds it done rather than interrupted (src/engine/cluster.rs).
    pub async fn stop_agent(&self, project_id: &str) -> Result<(), CommandError> {
        let stopped = self
            .ask_project(project_id, false, || StopSession)
            .await?
            .ok_or(CommandError::NoSession)??;
        // The session the stop ended while it was going, named by the project actor (which waits for a
        // start in flight), so a stop during a start records the session that start made.
        if let Some(session_id) = stopped.filter(|_| self.logs_commands()) {
            let stopped = Logged::Stopped {
                project_id: project_id.to_owned(),
                session_id,
            };
            self.record(stopped, "stop (carried out on this node)")
                .await?;
        }
        Ok(())
    }

    /// sendPrompt: appends the user message, sets running, forwards the prompt to the provider.
    pub async fn send_prompt(&self, project_id: &str, prompt: String) -> Result<(), CommandError> {
        validate::project_id(project_id)?;
        validate::prompt(
            "prompt",
            &prompt,
            self.inner.config.limits.max_prompt_bytes.as_u64(),
        )?;
        self.ask_project(project_id, false, || PromptSession {
            prompt: prompt.clone(),
        })
        .await?
        .ok_or(CommandError::NoSession)?
    }

    /// clearSession: detaches a done/error session from its project; refuses a running one.
    pub async fn clear_session(&self, project_id: &str) -> Result<(), CommandError> {
        self.ask_project(project_id, false, || ClearSession)
            .await?
            .unwrap_or(Ok(()))
    }

    /// loadLastSession: restores the project's newest stored done/error session as its current one.
    pub async fn load_last_session(&self, project_id: &str) -> Result<bool, CommandError> {
        if let Some(restored) = self.ask_project(project_id, false, || RestoreLast).await? {
            return restored;
        }
        // Let go in this process (or unknown): a project is started only for a restorable session.
        let (store, id) = (self.inner.store.clone(), project_id.to_owned());
        let last = blocking(move || store.last_session(&id)).await?;
        if !last.is_some_and(|r| r.status.is_finished()) {
            return Ok(false);
        }
        self.ask_project(project_id, true, || RestoreLast)
            .await?
            .unwrap_or(Ok(false))
    }

    /// purgeProjectSessions: memory and storage. In cluster mode the purge is recorded first, naming the
    /// project's stored sessions (src/engine/cluster.rs); a live session the purge then took that the
    /// record did not name (started between the read and the purge) is recorded before the answer, so a
    /// node replaying the partition does not bring it back from its start.
    pub async fn purge_project(&self, project_id: &str) -> Result<(), CommandError> {
        validate::project_id(project_id)?;
        let mut named = Vec::new();
        if self.logs_commands() {
            let sessions = self.project_sessions(project_id).await?;
            named = sessions.into_iter().map(|s| s.session_id).collect();
            let purged = Logged::Purged {
                project_id: project_id.to_owned(),
                session_ids: named.clone(),
            };
            self.record(purged, "purge").await?;
        }
        let taken = self
            .router(project_id)
            .send(PurgeProject {
                project_id: project_id.to_owned(),
            })
            .await??;
        let unnamed: Vec<String> = taken.into_iter().filter(|id| !named.contains(id)).collect();
        if self.logs_commands() && !unnamed.is_empty() {
            let purged = Logged::Purged {
                project_id: project_id.to_owned(),
                session_ids: unnamed,
            };
            self.record(purged, "purge").await?;
        }
        Ok(())
    }

    /// purgeSession: memory and storage. In cluster mode the purge is recorded first.
    pub async fn purge_session(&self, session_id: &str) -> Result<(), CommandError> {
        validate::session_id(session_id)?;
        let purged = Logged::Purged {
            project_id: project_of(session_id).to_owned(),
            session_ids: vec![session_id.to_owned()],
        };
        self.record(purged, "purge").await?;
        self.purge_here(session_id).await
    }

    /// Purges a session on this node only (a refused start, a replayed purge).
    pub(super) async fn purge_here(&self, session_id: &str) -> Result<(), CommandError> {
        validate::session_id(session_id)?;
        self.router(project_of(session_id))
            .send(PurgeSession {
                session_id: session_id.to_owned(),
            })
            .await??;
        Ok(())
    }

    /// Routes sidecar events to their sessions. With `durable`, answers after they are committed.
    pub async fn ingest(
        &self,
        events: Vec<SidecarEvent>,
        durable: bool,
    ) -> Result<IngestOutcome, CommandError> {
        if !self.inner.ready.load(Ordering::Acquire) {
            return Err(CommandError::ShuttingDown);
        }
        self.inner.routes.ingest(events, durable, true).await
    }

    pub async fn settings(&self) -> Result<Settings, CommandError> {
        Ok(Settings::clone(&self.inner.settings.get()))
    }

    /// Applies a partial update, persists it and applies retention at once.
    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<Settings, CommandError> {
        validate::settings(&patch, self.inner.config.limits.max_prompt_bytes.as_u64())?;
        self.inner.supervisor.send(UpdateSettings(patch)).await?
    }

    /// Sets (None: clears) a project's own stall threshold, overriding `timers.stall_after`.
    pub async fn set_stall_threshold(
        &self,
        project_id: &str,
        stall_after: Option<std::time::Duration>,
    ) -> Result<ProjectHealth, CommandError> {
        if stall_after.is_some_and(|d| d.is_zero()) {
            return Err(CommandError::invalid("stallAfter", "must be above zero"));
        }
        validate::project_id(project_id)?;
        // The shorthand for the policy's stall.after: stored with the policy.
        self.inner
            .control
            .set_stall_after(project_id, stall_after)
            .await?;
        self.ask_project(project_id, true, || SetStallThreshold(stall_after))
            .await?
            .ok_or(CommandError::ShuttingDown)
    }
}
