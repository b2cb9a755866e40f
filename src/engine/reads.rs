//! The engine's reads: a project's current session and any session by id (a live one's window completed
//! from storage, else storage alone), a session's stderr, the stored sessions of a project, the project
//! list, health and the busiest actors. Reads never create an actor for an id storage does not know.

use std::sync::Arc;

use super::Engine;
use futures_util::future::join_all;

use crate::actors::arbiters::{project_of, slot};
use crate::actors::blocking;
use crate::actors::mailbox::Mailbox;
use crate::actors::project::CurrentSession;
use crate::actors::router::FindSession;
use crate::actors::session::SessionActor;
use crate::error::CommandError;
use crate::messages::commands::{Page, ProjectSummary, SessionSummary, TopBy, TopEntry};
use crate::messages::router::{ProjectsHealth, SummarizeProjects, TopActors};
use crate::messages::session::{AgentStderr, Snapshot};
use crate::messages::validate;
use crate::messages::wire::{AgentSession, ProjectHealth};
use crate::storage::SessionRecord;

impl Engine {
    /// getSession: the project's current session, its messages paged by `page`.
    pub async fn get_session(
        &self,
        project_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        let (session_id, addr) = self
            .ask_project(project_id, false, || CurrentSession)
            .await?
            .ok_or(CommandError::NoSession)??;
        let read = match addr {
            Some(addr) => self.read_live(addr, page).await,
            None => Err(CommandError::SessionNotFound),
        };
        match read {
            // Finished and stored, it let its actor go (or its project went idle and let it stop
            // meanwhile): everything of it is in storage, unless late events brought it back.
            Err(CommandError::SessionNotFound) => self.session(&session_id, page).await,
            read => read,
        }
    }

    /// A live session's page: the in-memory window, completed from storage when the page starts earlier.
    async fn read_live(
        &self,
        addr: Mailbox<SessionActor>,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        let view = addr
            .send(Snapshot { page })
            .await
            .map_err(|_| CommandError::SessionNotFound)?;
        let mut session = view.session;
        let after = page.after_seq.unwrap_or(0);
        if after.saturating_add(1) < view.oldest_in_memory {
            let (store, id) = (self.inner.store.clone(), session.session_id.clone());
            let before = view.oldest_in_memory;
            let limit = page.limit;
            let older = blocking(move || store.messages(&id, after, Some(before), limit)).await?;
            let mut messages: Vec<_> = older.into_iter().map(Arc::new).collect();
            messages.append(&mut session.messages);
            session.messages = messages;
        }
        if let Some(limit) = page.limit {
            session.messages.truncate(limit);
        }
        Ok(session)
    }

    /// hasSession.
    pub async fn has_session(&self, project_id: &str) -> Result<bool, CommandError> {
        match self
            .ask_project(project_id, false, || CurrentSession)
            .await?
        {
            None | Some(Err(CommandError::NoSession)) => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(e),
        }
    }

    /// The project's stored sessions, newest first, without messages.
    pub async fn project_sessions(
        &self,
        project_id: &str,
    ) -> Result<Vec<SessionSummary>, CommandError> {
        validate::project_id(project_id)?;
        let (store, id) = (self.inner.store.clone(), project_id.to_owned());
        let records = blocking(move || store.project_sessions(&id)).await?;
        Ok(records.into_iter().map(summary).collect())
    }

    /// Several sessions as storage holds them (not their live state), one read for all; `None` for an id
    /// storage does not know. The load test's persist probe reads its samples through it.
    pub(crate) async fn stored_sessions(
        &self,
        session_ids: Vec<String>,
    ) -> Result<Vec<Option<SessionSummary>>, CommandError> {
        session_ids
            .iter()
            .try_for_each(|id| validate::session_id(id))?;
        let store = self.inner.store.clone();
        let records = blocking(move || store.sessions(&session_ids)).await?;
        Ok(records.into_iter().map(|r| r.map(summary)).collect())
    }

    /// The session's actor if it is in memory (nothing is read from storage, nothing is brought back).
    pub(super) async fn live_session(
        &self,
        session_id: &str,
    ) -> Result<Option<Mailbox<SessionActor>>, CommandError> {
        Ok(self
            .router(project_of(session_id))
            .send(FindSession {
                session_id: session_id.to_owned(),
            })
            .await?)
    }

    /// Any live or stored session by id.
    pub async fn session(
        &self,
        session_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        validate::session_id(session_id).map_err(|_| CommandError::SessionNotFound)?;
        let live = self.live_session(session_id).await?;
        if let Some(addr) = live {
            if let Ok(session) = self.read_live(addr, page).await {
                return Ok(session);
            }
        }
        let (store, id) = (self.inner.store.clone(), session_id.to_owned());
        let after = page.after_seq.unwrap_or(0);
        let found = blocking(move || {
            let Some(record) = store.session(&id)? else {
                return Ok(None);
            };
            let messages = store.messages(&id, after, None, page.limit)?;
            Ok(Some((record, messages)))
        })
        .await?;
        let (record, messages) = found.ok_or(CommandError::SessionNotFound)?;
        Ok(stored_session(record, messages))
    }

    /// The last lines a session's agent wrote to stderr (a sign of life, not progress).
    pub async fn session_stderr(
        &self,
        session_id: &str,
    ) -> Result<crate::providers::SessionStderr, CommandError> {
        // Only which provider ran it: no messages.
        let page = Page {
            after_seq: None,
            limit: Some(0),
        };
        self.session(session_id, page).await?;
        let live = self.live_session(session_id).await?;
        let stderr = match live {
            Some(session) => session.send(AgentStderr).await.ok().flatten(),
            None => None,
        }
        // Its actor has stopped (or holds no runner, read back for late events): what it left.
        .or_else(|| self.inner.stderr_kept.get(session_id));
        Ok(stderr.unwrap_or_else(|| crate::providers::SessionStderr {
            session_id: session_id.to_owned(),
            ..Default::default()
        }))
    }

    /// Every project, live or stored: storage's project index (with each project's last session, which a
    /// read of it would restore) shared out to the routers by arbiter; each answers for its live projects
    /// as their actors tell, and shows no session for a project it let go in this process, as its reads
    /// answer. After start-up recovery, a stored session still running is one fed from outside that the
    /// restart left running (src/actors/restart.rs): listed like the others.
    pub async fn projects(&self) -> Result<Vec<ProjectSummary>, CommandError> {
        let store = self.inner.store.clone();
        let stored = blocking(move || store.last_sessions()).await?;
        let routers = self.inner.routes.all();
        let mut shares = vec![Vec::new(); routers.len()];
        for (project_id, last) in stored {
            shares[slot(&project_id, routers.len())].push((project_id, last));
        }
        let asks = routers
            .iter()
            .zip(shares)
            .map(|(router, stored)| router.send(SummarizeProjects { stored }));
        let mut out = Vec::new();
        for summaries in join_all(asks).await {
            out.extend(summaries?);
        }
        out.sort_by(|a, b| a.project_id.cmp(&b.project_id));
        Ok(out)
    }

    /// Health of every live project, highest attention first.
    pub async fn health(&self) -> Result<Vec<ProjectHealth>, CommandError> {
        let asks = self
            .inner
            .routes
            .all()
            .iter()
            .map(|r| r.send(ProjectsHealth));
        let mut out: Vec<ProjectHealth> = join_all(asks)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .flatten()
            .collect();
        ProjectHealth::sort_by_attention(&mut out);
        Ok(out)
    }

    /// The busiest actors by mailbox depth, messages handled or memory (`/v1/debug/top`), read from their
    /// mailbox stats without disturbing them.
    pub async fn debug_top(&self, by: TopBy, limit: usize) -> Result<Vec<TopEntry>, CommandError> {
        let asks = self.inner.routes.all().iter().map(|r| r.send(TopActors));
        let mut all: Vec<TopEntry> = join_all(asks)
            .await
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        let key = |e: &TopEntry| match by {
            TopBy::Mailbox => e.mailbox_depth.max(0) as u64,
            TopBy::Messages => e.messages_handled,
            TopBy::Memory => e.memory_bytes,
        };
        all.sort_by(|a, b| {
            key(b)
                .cmp(&key(a))
                .then_with(|| a.project_id.cmp(&b.project_id))
        });
        all.truncate(limit);
        Ok(all)
    }
}

fn summary(r: SessionRecord) -> SessionSummary {
    SessionSummary {
        session_id: r.session_id,
        project_id: r.project_id,
        provider: r.provider,
        status: r.status,
        cost_usd: r.cost_usd,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        model: r.model,
        error: r.error,
        created_at: r.created_at,
        updated_at: r.updated_at,
        message_count: r.message_count,
    }
}

fn stored_session(
    r: SessionRecord,
    messages: Vec<crate::messages::wire::AgentMessage>,
) -> AgentSession {
    AgentSession {
        session_id: r.session_id,
        project_id: r.project_id,
        provider: r.provider,
        status: r.status,
        messages: messages.into_iter().map(Arc::new).collect(),
        cost_usd: r.cost_usd,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        model: r.model,
        error: r.error,
        created_at: r.created_at,
        updated_at: r.updated_at,
        message_count: r.message_count,
        last_seq_id: r.last_seq,
    }
}
