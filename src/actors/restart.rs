//! What a restart does to the sessions that were running when the previous process ended, and resuming a
//! session with its provider's own resume.
//!
//! - A session whose agent lives outside this process (the `synthetic` provider: a sidecar posting over
//!   HTTP, a load generator) was not cut off by the restart: it stays running and its events keep landing.
//! - A session whose agent was a child of the previous process (Claude, Codex, Ollama, a stdio sidecar) lost
//!   it: it is marked error "Interrupted: service restarted". When `resume.on_restart = "resume"`, or the
//!   session was started with `resumeOnRestart`, it is then resumed: the provider takes it back with the
//!   conversation id it named (Claude `--resume <session id>`, Codex `exec resume <thread id>`) or, for
//!   Ollama, the history, and the session gets the system message "Resumed after a service restart" and a
//!   prompt to go on.
//! - `POST /v1/projects/{id}/session/resume` does the same on demand for a finished session.
//! - A session stopped by its stall under `stall.action = "resume"` (issue 14) is resumed the same way,
//!   with the nudge prompt `policy.stall_nudge` and the system message "Resumed after a stall".
//!
//! What a resume needs is stored with the session: what it was started with (src/storage/starts.rs, written
//! before its agent starts) and the provider's conversation id (the session record, from the agent's init
//! message).

use std::collections::HashSet;
use std::sync::Arc;

use super::control::Control;
use super::project::CurrentSession;
use super::session::{FlushNow, SetRunner, Snapshot};
use super::{blocking, EngineParts, INTERRUPTED};
use crate::config::{Config, OnRestart, ProviderKind};
use crate::engine::Started;
use crate::error::CommandError;
use crate::messages::commands::Page;
use crate::messages::validate;
use crate::messages::wire::{now_ms, MessagePayload, MsgRole, RawMessage, SidecarEvent};
use crate::providers::{EventSink, Resume, StartSpec};
use crate::storage::{SessionRecord, StorageError, Store, WriteOp};

/// The system message a session resumed after a restart gets.
pub const RESUMED_AFTER_RESTART: &str = "Resumed after a service restart";
/// The system message a session resumed on demand gets.
pub const RESUMED_ON_REQUEST: &str = "Resumed on request";
/// The system message a session resumed after its stall stopped it gets.
pub const RESUMED_AFTER_STALL: &str = "Resumed after a stall";
/// The prompt a resumed session's agent is given when the caller gave none.
pub const RESUME_PROMPT: &str = "Continue where you left off.";

/// Why a session is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Restart,
    Request,
    Stall,
}

/// The configured providers whose agents run outside this process.
pub fn external_providers(config: &Config) -> HashSet<String> {
    config
        .providers
        .iter()
        .filter(|(_, p)| p.kind == ProviderKind::Synthetic)
        .map(|(name, _)| name.clone())
        .collect()
}

/// What start-up recovery did.
pub struct Recovery {
    /// The sessions it marked error "Interrupted: service restarted" (subscribers are told).
    pub interrupted: Vec<SessionRecord>,
    /// Those of them to resume, as (projectId, sessionId).
    pub resume: Vec<(String, String)>,
}

/// Start-up recovery, on the freshly opened store: sessions whose agent was a child of the previous
/// process become error "Interrupted: service restarted"; some are then to be resumed.
pub fn recover(store: &Store, config: &Config) -> Result<Recovery, StorageError> {
    let external = external_providers(config);
    let interrupted =
        store.mark_interrupted_where(INTERRUPTED, now_ms(), |r| !external.contains(&r.provider))?;
    if !interrupted.is_empty() {
        tracing::warn!(
            count = interrupted.len(),
            "sessions interrupted by the last shutdown"
        );
    }
    let mut resume = Vec::new();
    for record in &interrupted {
        let wanted = config.resume.on_restart == OnRestart::Resume
            || stored_start(store, record)?.is_some_and(|s| s.resume_on_restart);
        if wanted {
            resume.push((record.project_id.clone(), record.session_id.clone()));
        }
    }
    Ok(Recovery {
        interrupted,
        resume,
    })
}

fn stored_start(store: &Store, record: &SessionRecord) -> Result<Option<StartSpec>, StorageError> {
    Ok(store
        .session_start(&record.session_id)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Keeps what a session was started with, for resuming it; queued before the session's first flush, so
/// it is committed by the time the session is.
pub fn keep_start(persister: &super::persister::PersisterHandle, spec: &StartSpec) {
    let kept = StartSpec {
        prompt: String::new(),
        ..spec.clone()
    };
    match serde_json::to_vec(&kept) {
        Ok(start) => {
            let op = WriteOp::PutStart {
                session_id: spec.session_id.clone(),
                start,
            };
            if persister.try_write(vec![op]).is_err() {
                tracing::warn!(session_id = %spec.session_id, "start not stored: this session cannot be resumed after a restart");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode a session's start"),
    }
}

/// Resumes, in the background, the sessions start-up recovery picked.
pub fn resume_interrupted(parts: Arc<EngineParts>) {
    let sessions = std::mem::take(&mut *parts.to_resume.lock().unwrap_or_else(|p| p.into_inner()));
    if sessions.is_empty() {
        return;
    }
    actix::spawn(async move {
        for (project_id, session_id) in sessions {
            match parts.resume_session(&project_id, None, Why::Restart).await {
                Ok(started) if started.session_id == session_id => {
                    tracing::info!(%session_id, "session resumed after the restart")
                }
                Ok(started) => tracing::warn!(%session_id, resumed = %started.session_id,
                    "a later session of the project was resumed instead"),
                Err(e) => {
                    tracing::warn!(%session_id, error = %e, "cannot resume the session after the restart")
                }
            }
        }
    });
}

/// Resumes, in the background, a session its stall stopped (`stall.action = "resume"`), with the nudge
/// prompt. A resume that cannot be made (its provider has none, a later session replaced it) is said in
/// the session, which then stays stopped with its stall error.
pub fn resume_after_stall(control: &Control, project_id: String, session_id: String) {
    let Some(parts) = control.engine() else {
        return;
    };
    let nudge = parts.config.policy.stall_nudge.clone();
    actix::spawn(async move {
        match parts
            .resume(&project_id, Some(nudge), Why::Stall, Some(&session_id))
            .await
        {
            Ok(_) => tracing::info!(%session_id, "stalled session resumed with a nudge"),
            Err(e) => {
                tracing::warn!(%session_id, error = %e, "cannot resume the stalled session");
                parts.control.system_message(
                    &session_id,
                    format!("{session_id}-stall-resume-{}", now_ms()),
                    format!("Not resumed after the stall: {e}"),
                );
            }
        }
    });
}

impl EngineParts {
    /// Lets a stall resume the engine's sessions (`resume_after_stall`); called once it is in its `Arc`.
    pub fn enable_stall_resume(self: &Arc<Self>) {
        self.control.set_engine(Arc::downgrade(self));
    }

    /// Resumes the project's last session, which must be finished, with its provider's own resume.
    pub async fn resume_session(
        &self,
        project_id: &str,
        prompt: Option<String>,
        why: Why,
    ) -> Result<Started, CommandError> {
        self.resume(project_id, prompt, why, None).await
    }

    /// `resume_session`; with `only`, nothing happens unless that session is still the project's last.
    async fn resume(
        &self,
        project_id: &str,
        prompt: Option<String>,
        why: Why,
        only: Option<&str>,
    ) -> Result<Started, CommandError> {
        validate::project_id(project_id)?;
        if let Some(prompt) = &prompt {
            validate::prompt(
                "prompt",
                prompt,
                self.config.limits.max_prompt_bytes.as_u64(),
            )?;
        }
        // The project's last session becomes its current one, as loadLastSession makes it.
        self.load_last_session(project_id).await?;
        let project = self
            .existing_project(project_id)
            .await?
            .ok_or(CommandError::NoSession)?;
        let (_, session) = project.send(CurrentSession).await??;
        let view = session
            .send(Snapshot {
                page: Page {
                    after_seq: Some(u64::MAX),
                    limit: Some(0),
                },
            })
            .await?
            .session;
        if only.is_some_and(|id| id != view.session_id) {
            return Err(CommandError::Undeliverable(format!(
                "a later session ({}) replaced it",
                view.session_id
            )));
        }
        if !view.status.is_finished() {
            return Err(CommandError::AlreadyRunning);
        }
        let provider = self.providers.get(&view.provider).ok_or_else(|| {
            CommandError::Undeliverable(format!(
                "provider {} is no longer configured",
                view.provider
            ))
        })?;
        // The record holds the conversation id once it is stored.
        session.send(FlushNow).await??;
        let store = self.store.clone();
        let id = view.session_id.clone();
        let window = self.config.limits.messages_in_memory as u64;
        let (start, record, history) = blocking(move || {
            let start = store.session_start(&id)?;
            let record = store.session(&id)?;
            let after = record
                .as_ref()
                .map_or(0, |r| r.last_seq.saturating_sub(window));
            let history = store.messages(&id, after, None, None)?;
            Ok((start, record, history))
        })
        .await?;
        let cannot = |why: &str| {
            CommandError::Undeliverable(format!(
                "session {} cannot be resumed: {why}",
                view.session_id
            ))
        };
        let mut spec: StartSpec = match start {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| cannot(&format!("its stored start does not decode: {e}")))?,
            None => return Err(cannot("what it was started with was not stored")),
        };
        spec.session_id = view.session_id.clone();
        spec.project_id = project_id.to_owned();
        // The project's policy as it is now (issue 15): permission channel, budget guard, daily budget.
        self.apply_policy(project_id, &mut spec)?;
        let conversation = record.and_then(|r| r.provider_session_id);
        let kind = self.config.providers.get(&view.provider).map(|p| p.kind);
        if matches!(kind, Some(ProviderKind::Claude | ProviderKind::Codex))
            && conversation.is_none()
        {
            return Err(cannot("its agent never named its conversation"));
        }
        let history = conversation_of(history);
        let sink = EventSink::new(self.router(project_id).addr().clone().recipient())
            .with_permissions(self.control.clone());
        let runner = provider
            .adopt(
                spec,
                Resume {
                    conversation,
                    history,
                },
                sink,
            )
            .map_err(CommandError::Undeliverable)?;
        // A session that ran in this process keeps its runner and what it learnt.
        session.do_send(SetRunner { runner, keep: true });
        let notice = match why {
            Why::Restart => RESUMED_AFTER_RESTART,
            Why::Request => RESUMED_ON_REQUEST,
            Why::Stall => RESUMED_AFTER_STALL,
        };
        let at = now_ms();
        self.ingest(
            vec![SidecarEvent::Message(MessagePayload {
                session_id: view.session_id.clone(),
                messages: vec![RawMessage {
                    id: format!("{}-resumed-{at}", view.session_id),
                    kind: "notice".into(),
                    parent_id: None,
                    content: serde_json::json!({ "message": notice }),
                    timestamp: at,
                }],
            })],
            false,
        )
        .await?;
        self.send_prompt(project_id, prompt.unwrap_or_else(|| RESUME_PROMPT.into()))
            .await?;
        Ok(Started {
            session_id: view.session_id,
        })
    }
}

/// The user and assistant turns of a session's messages, oldest first: an answer streamed as several
/// assistant messages is one turn, as the provider had it.
fn conversation_of(messages: Vec<crate::messages::wire::AgentMessage>) -> Vec<(MsgRole, String)> {
    let mut turns: Vec<(MsgRole, String)> = Vec::new();
    for m in messages {
        match (m.role, turns.last_mut()) {
            (MsgRole::Assistant, Some((MsgRole::Assistant, text))) => text.push_str(&m.content),
            (MsgRole::User | MsgRole::Assistant, _) => turns.push((m.role, m.content)),
            _ => {}
        }
    }
    turns
}
