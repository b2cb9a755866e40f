//! Resuming a finished session with its provider's own resume (src/actors/restart.rs says when and
//! why): on request, after a restart (the sessions start-up recovery picked), and after a stall under
//! `stall.action = "resume"` (the actors ask for it through a channel, as they never hold the engine).

use super::Engine;
use crate::actors::blocking;
use crate::actors::project::CurrentActor;
use crate::actors::restart::{
    Why, RESUMED_AFTER_RESTART, RESUMED_AFTER_STALL, RESUMED_ON_REQUEST, RESUME_PROMPT,
};

use crate::config::ProviderKind;
use crate::error::CommandError;
use crate::messages::commands::{Page, StallResume, Started};
use crate::messages::session::{FlushNow, SetRunner, Snapshot};
use crate::messages::validate;
use crate::messages::wire::{now_ms, MessagePayload, MsgRole, RawMessage, SidecarEvent};
use crate::providers::{EventSink, Resume, StartSpec};

impl Engine {
    /// Resumes, in the background, the sessions start-up recovery picked, then every stalled session
    /// the actors ask to resume, for as long as the engine runs (the task holds it weakly).
    pub(super) fn resume_in_background(
        &self,
        after_restart: Vec<(String, String)>,
        mut stalled: tokio::sync::mpsc::UnboundedReceiver<StallResume>,
    ) {
        let engine = std::sync::Arc::downgrade(&self.inner);
        actix::spawn(async move {
            let Some(inner) = engine.upgrade() else {
                return;
            };
            Engine { inner }.resume_after_restart(after_restart).await;
            while let Some(StallResume {
                project_id,
                session_id,
            }) = stalled.recv().await
            {
                let Some(inner) = engine.upgrade() else {
                    return;
                };
                // One at a time is enough: a stall resume is rare, and each is its own session's.
                Engine { inner }
                    .resume_after_stall(project_id, session_id)
                    .await;
            }
        });
    }

    async fn resume_after_restart(&self, sessions: Vec<(String, String)>) {
        for (project_id, session_id) in sessions {
            match self.resume(&project_id, None, Why::Restart, None).await {
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
    }

    /// A session its stall stopped (`stall.action = "resume"`), resumed with the nudge prompt. A resume
    /// that cannot be made (its provider has none, a later session replaced it) is said in the session,
    /// which then stays stopped with its stall error.
    async fn resume_after_stall(&self, project_id: String, session_id: String) {
        let nudge = self.inner.config.policy.stall_nudge.clone();
        match self
            .resume(&project_id, Some(nudge), Why::Stall, Some(&session_id))
            .await
        {
            Ok(_) => tracing::info!(%session_id, "stalled session resumed with a nudge"),
            Err(e) => {
                tracing::warn!(%session_id, error = %e, "cannot resume the stalled session");
                self.inner.control.system_message(
                    &session_id,
                    format!("{session_id}-stall-resume-{}", now_ms()),
                    format!("Not resumed after the stall: {e}"),
                );
            }
        }
    }

    /// Resumes the project's finished session with its provider's own resume; `prompt` (else a default)
    /// goes to the agent.
    pub async fn resume_session(
        &self,
        project_id: &str,
        prompt: Option<String>,
    ) -> Result<Started, CommandError> {
        self.resume(project_id, prompt, Why::Request, None).await
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
                self.inner.config.limits.max_prompt_bytes.as_u64(),
            )?;
        }
        // The project's last session becomes its current one, as loadLastSession makes it.
        self.load_last_session(project_id).await?;
        let project = self
            .existing_project(project_id)
            .await?
            .ok_or(CommandError::NoSession)?;
        // Its actor takes the runner: one that let go once finished is brought back from storage.
        let (_, session) = project.send(CurrentActor).await??;
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
        let provider = self.inner.providers.get(&view.provider).ok_or_else(|| {
            CommandError::Undeliverable(format!(
                "provider {} is no longer configured",
                view.provider
            ))
        })?;
        // The record holds the conversation id once it is stored.
        session.send(FlushNow).await??;
        let store = self.inner.store.clone();
        let id = view.session_id.clone();
        let window = self.inner.config.limits.messages_in_memory as u64;
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
        let kind = self
            .inner
            .config
            .providers
            .get(&view.provider)
            .map(|p| p.kind);
        if matches!(kind, Some(ProviderKind::Claude | ProviderKind::Codex))
            && conversation.is_none()
        {
            return Err(cannot("its agent never named its conversation"));
        }
        let history = conversation_of(history);
        let sink = EventSink::new(self.router(project_id).addr().clone().recipient())
            .with_permissions(self.inner.control.clone());
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
                    content: serde_json::json!({ "message": notice }).into(),
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
