//! The actor system: a supervisor that routes, one actor per project and per session spread over one
//! arbiter per core, a persister thread that owns storage writes, and a broadcaster for live events.
//! `EngineParts` wires them together and implements the engine handle's calls.

pub mod adopt;
pub mod approvals;
pub mod arbiters;
pub mod broadcaster;
pub mod control;
mod engine_control;
pub mod health;
pub mod journal;
pub mod metrics;
pub mod persister;
pub mod project;
pub mod restart;
pub mod router;
pub mod routes;
pub mod seq_block;
pub mod session;
pub mod settings;
pub mod spend;
pub mod supervisor;
pub mod wake;
pub mod windows;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use self::arbiters::Arbiters;
use self::broadcaster::{Broadcaster, SaveJournal, Subscribe};
use self::metrics::{ActorKind, Mailbox, MailboxStats, Metrics};
use self::persister::{PersisterHandle, PersisterStats};
use self::project::{
    ClearSession, CurrentSession, PromptSession, RestoreLast, StartSession, StopSession,
};
use self::router::FindSession;
use self::session::{AgentStderr, SessionActor, Snapshot};
use self::supervisor::{
    DebugTop, FindProject, FlushAll, Found, GetSettings, HealthReport, ListProjects, Project,
    PurgeProject, PurgeSession, Supervisor, SupervisorParts, UpdateSettings,
};
use crate::config::Config;
use crate::engine::{Started, Subscription};
use crate::error::CommandError;
use crate::messages::commands::{
    IngestOutcome, LiveEvent, Page, ProjectSummary, SessionSummary, Settings, SettingsPatch,
    StartRequest, TopBy, TopEntry,
};
use crate::messages::validate;
use crate::messages::wire::{now_ms, AgentSession, ProjectHealth, SidecarEvent};
use crate::providers::{Providers, StartSpec};
use crate::storage::{SessionRecord, Store};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("storage could not be opened: {0}")]
    Join(String),
}

/// The error a session that was running when the process died is left with.
pub const INTERRUPTED: &str = "Interrupted: service restarted";

/// How many times a command looks its project up again when the actor stopped under it (each stop
/// needs the project to have gone idle in between, so more than one retry is already rare).
const LOOKUPS: usize = 8;

/// How many persist requests may wait for the persister before senders feel backpressure.
const PERSIST_QUEUE: usize = 4096;

pub struct EngineParts {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    supervisor: Mailbox<Supervisor>,
    /// One router per arbiter: ingest batches are split over them by projectId (`arbiters::slot`).
    routes: routes::Routes,
    broadcaster: Mailbox<Broadcaster>,
    /// Persister totals at the previous scrape, to turn them into counter increments.
    scraped: std::sync::Mutex<PersisterStats>,
    persister: PersisterHandle,
    store: Store,
    providers: Providers,
    /// Policies, spend, approvals (issue 15; actors/control.rs).
    control: Arc<control::Control>,
    ready: AtomicBool,
    shut_down: tokio::sync::Mutex<bool>,
    /// This run's journal epoch (src/actors/journal.rs).
    journal_epoch: u32,
    /// Sessions start-up recovery picked for resuming (src/actors/restart.rs), taken once the engine runs.
    to_resume: std::sync::Mutex<Vec<(String, String)>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::storage::StorageError> + Send + 'static,
) -> Result<T, CommandError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CommandError::Storage(e.to_string()))?
        .map_err(CommandError::from)
}

impl EngineParts {
    pub async fn start(
        config: Arc<Config>,
        providers: Providers,
    ) -> Result<EngineParts, StartError> {
        let path = config.database_path();
        let cache_size = usize::try_from(config.storage.cache_size.as_u64()).unwrap_or(usize::MAX);
        let recovery_config = config.clone();
        let replay_bytes =
            usize::try_from(config.server.sse_replay_bytes.as_u64()).unwrap_or(usize::MAX);
        let (store, stored_settings, recovery, stored_journal, (policies, spent_today)) =
            tokio::task::spawn_blocking(move || {
                let store = Store::open_with_cache(&path, cache_size)?;
                let recovery = restart::recover(&store, &recovery_config)?;
                let settings = store.settings()?;
                let journal = store.journal_open(replay_bytes)?;
                let policies = store.policies()?;
                let spent_today = store.spend_on(&control::day_of(now_ms()))?;
                Ok::<_, crate::storage::StorageError>((
                    store,
                    settings,
                    recovery,
                    journal,
                    (policies, spent_today),
                ))
            })
            .await
            .map_err(|e| StartError::Join(e.to_string()))??;

        let journal_epoch = stored_journal.epoch;
        let metrics = Metrics::new();
        let persister = PersisterHandle::spawn(store.clone(), PERSIST_QUEUE);
        persister.observe_commits(metrics.commit_duration.clone());
        store.observe_corrupt_rows(metrics.corrupt_rows.clone());
        metrics
            .redb_cache_size
            .set(i64::try_from(cache_size).unwrap_or(i64::MAX));
        metrics.actor_started(ActorKind::Persister);
        let control = Arbiter::new().handle();
        let broadcaster = {
            let (stats, m) = (Arc::new(MailboxStats::default()), metrics.clone());
            let buffer = config.limits.subscriber_buffer;
            let buffer_bytes = usize::try_from(config.limits.subscriber_buffer_bytes.as_u64())
                .unwrap_or(usize::MAX);
            let theirs = stats.clone();
            let window_ms =
                i64::try_from(config.server.sse_replay_window.as_millis()).unwrap_or(i64::MAX);
            let journal = (
                journal::Journal::new(stored_journal, window_ms, replay_bytes, now_ms()),
                persister.clone(),
            );
            let addr = Broadcaster::start_in_arbiter(&control, move |_| {
                Broadcaster::new(buffer, buffer_bytes, journal, theirs, m)
            });
            Mailbox::new(addr, stats, metrics.clone(), ActorKind::Broadcaster)
        };
        // Subscribers (reconnecting ones, through the journal) hear of what the restart did.
        for record in &recovery.interrupted {
            broadcaster.do_send(broadcaster::Publish(LiveEvent::Status {
                session_id: record.session_id.clone(),
                project_id: record.project_id.clone(),
                status: record.status,
                error: record.error.clone(),
            }));
        }
        let agents = control::Control::new(
            config.clone(),
            metrics.clone(),
            persister.clone(),
            broadcaster.clone(),
            policies,
            spent_today,
        );
        let parts = SupervisorParts {
            control: agents.clone(),
            settings: settings::load(&config, &stored_settings),
            config: config.clone(),
            arbiters: Arbiters::per_core(),
            providers: providers.clone(),
            store: store.clone(),
            persister: persister.clone(),
            broadcaster: broadcaster.clone(),
            metrics: metrics.clone(),
        };
        let stats = Arc::new(MailboxStats::default());
        let theirs = stats.clone();
        let m = metrics.clone();
        let (routers_tx, routers_rx) = tokio::sync::oneshot::channel();
        let addr = Supervisor::start_in_arbiter(&control, move |ctx| {
            let me = Mailbox::new(ctx.address(), theirs.clone(), m, ActorKind::Supervisor);
            let supervisor = Supervisor::new(parts, me, theirs);
            let _ = routers_tx.send(supervisor.routes().clone());
            supervisor
        });
        let supervisor = Mailbox::new(addr, stats, metrics.clone(), ActorKind::Supervisor);
        let routes = routers_rx
            .await
            .map_err(|_| StartError::Join("the supervisor did not start".into()))?;
        agents.set_supervisor(supervisor.clone(), routes.clone());
        Ok(EngineParts {
            control: agents,
            config,
            metrics,
            scraped: std::sync::Mutex::new(PersisterStats::default()),
            supervisor,
            routes,
            broadcaster,
            persister,
            store,
            providers,
            ready: AtomicBool::new(true),
            shut_down: tokio::sync::Mutex::new(false),
            to_resume: std::sync::Mutex::new(recovery.resume),
            journal_epoch,
        })
    }

    /// The router holding the routes of `project_id`'s sessions.
    fn router(&self, project_id: &str) -> &Mailbox<router::Router> {
        self.routes.of(project_id)
    }

    /// The project's actor, started if none (commands that create: start, stall threshold).
    async fn project(
        &self,
        project_id: &str,
    ) -> Result<Mailbox<project::ProjectActor>, CommandError> {
        validate::project_id(project_id)?;
        self.supervisor
            .send(Project {
                project_id: project_id.to_owned(),
                revive: None,
            })
            .await?
    }

    /// The project's actor for a read or a command on its current session: the one in memory, or one
    /// brought back when storage holds a session of it (restoring its last session, as loadLastSession
    /// would). Storage is read here, off the supervisor's thread; an id storage does not know never
    /// creates an actor.
    async fn existing_project(
        &self,
        project_id: &str,
    ) -> Result<Option<Mailbox<project::ProjectActor>>, CommandError> {
        validate::project_id(project_id)?;
        let id = project_id.to_owned();
        let found = self
            .supervisor
            .send(FindProject {
                project_id: id.clone(),
            })
            .await?;
        match found {
            Found::Live(project) => Ok(Some(project)),
            Found::LetGo => Ok(None),
            Found::Unknown => {
                let store = self.store.clone();
                let last = blocking(move || store.last_session(&id)).await?;
                let Some(record) = last else {
                    return Ok(None);
                };
                let project = self
                    .supervisor
                    .send(Project {
                        project_id: project_id.to_owned(),
                        revive: Some(record),
                    })
                    .await??;
                Ok(Some(project))
            }
        }
    }

    /// Sends `make()` to the project's actor (started if `create`; else only an existing or stored one).
    /// An idle project may stop between the lookup and the send: its mailbox then closes without
    /// handling the message, and the project is looked up again.
    async fn ask_project<M>(
        &self,
        project_id: &str,
        create: bool,
        make: impl Fn() -> M,
    ) -> Result<Option<M::Result>, CommandError>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        project::ProjectActor: actix::Handler<metrics::Timed<M>>,
    {
        for _ in 0..LOOKUPS {
            let project = if create {
                Some(self.project(project_id).await?)
            } else {
                self.existing_project(project_id).await?
            };
            let Some(project) = project else {
                return Ok(None);
            };
            match project.send(make()).await {
                Ok(answer) => return Ok(Some(answer)),
                Err(actix::MailboxError::Closed) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CommandError::ShuttingDown)
    }

    pub async fn start_agent(
        &self,
        project_id: &str,
        req: StartRequest,
    ) -> Result<Started, CommandError> {
        validate::project_id(project_id)?;
        let mut spec = self.resolve_start(req).await?;
        self.apply_policy(project_id, &mut spec)?;
        let started = self
            .ask_project(project_id, true, || StartSession { spec: spec.clone() })
            .await?;
        started.ok_or(CommandError::ShuttingDown)?
    }

    /// Validates a start request and fills what it leaves out from settings and configuration.
    async fn resolve_start(&self, req: StartRequest) -> Result<StartSpec, CommandError> {
        let Some(provider) = self.providers.get(&req.provider) else {
            let mut known: Vec<&str> = self.providers.names().collect();
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
            self.config.limits.max_prompt_bytes.as_u64(),
        )?;
        let o = req.options;
        let limits = &self.config.limits;
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
        let settings = self.supervisor.send(GetSettings).await?;
        let (mode_field, permission_mode) = match o.permission_mode {
            Some(mode) => ("options.permissionMode", Some(mode)),
            None => ("permission_mode", settings.permission_mode.clone()),
        };
        validate::permission_mode(
            mode_field,
            permission_mode.as_deref(),
            &req.provider,
            self.config
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
                .unwrap_or_else(|| self.config.default_model(&req.provider)),
            provider: req.provider,
            prompt: req.prompt,
            cwd: o.cwd.or(settings.default_cwd),
            system_prompt: o.system_prompt.or(settings.system_prompt_template),
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

    pub async fn stop_agent(&self, project_id: &str) -> Result<(), CommandError> {
        self.ask_project(project_id, false, || StopSession)
            .await?
            .ok_or(CommandError::NoSession)?
    }

    pub async fn send_prompt(&self, project_id: &str, prompt: String) -> Result<(), CommandError> {
        validate::project_id(project_id)?;
        validate::prompt(
            "prompt",
            &prompt,
            self.config.limits.max_prompt_bytes.as_u64(),
        )?;
        self.ask_project(project_id, false, || PromptSession {
            prompt: prompt.clone(),
        })
        .await?
        .ok_or(CommandError::NoSession)?
    }

    pub async fn get_session(
        &self,
        project_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        let (session_id, addr) = self
            .ask_project(project_id, false, || CurrentSession)
            .await?
            .ok_or(CommandError::NoSession)??;
        match self.read_live(addr, page).await {
            // Its project went idle and let it stop meanwhile: everything of it is in storage.
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
            let (store, id) = (self.store.clone(), session.session_id.clone());
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

    pub async fn clear_session(&self, project_id: &str) -> Result<(), CommandError> {
        self.ask_project(project_id, false, || ClearSession)
            .await?
            .unwrap_or(Ok(()))
    }

    /// Brings a project's actor up only when storage holds a session it can restore.
    pub async fn load_last_session(&self, project_id: &str) -> Result<bool, CommandError> {
        if let Some(restored) = self.ask_project(project_id, false, || RestoreLast).await? {
            return restored;
        }
        // Let go in this process (or unknown): a project is started only for a restorable session.
        let (store, id) = (self.store.clone(), project_id.to_owned());
        let last = blocking(move || store.last_session(&id)).await?;
        if !last.is_some_and(|r| r.status.is_finished()) {
            return Ok(false);
        }
        self.ask_project(project_id, true, || RestoreLast)
            .await?
            .unwrap_or(Ok(false))
    }

    pub async fn project_sessions(
        &self,
        project_id: &str,
    ) -> Result<Vec<SessionSummary>, CommandError> {
        validate::project_id(project_id)?;
        let (store, id) = (self.store.clone(), project_id.to_owned());
        let records = blocking(move || store.project_sessions(&id)).await?;
        Ok(records.into_iter().map(summary).collect())
    }

    pub async fn purge_project(&self, project_id: &str) -> Result<(), CommandError> {
        validate::project_id(project_id)?;
        self.supervisor
            .send(PurgeProject {
                project_id: project_id.to_owned(),
            })
            .await?
    }

    pub async fn session(
        &self,
        session_id: &str,
        page: Page,
    ) -> Result<AgentSession, CommandError> {
        validate::session_id(session_id).map_err(|_| CommandError::SessionNotFound)?;
        let live = self
            .router(supervisor::project_of(session_id))
            .send(FindSession {
                session_id: session_id.to_owned(),
            })
            .await?;
        if let Some(addr) = live {
            if let Ok(session) = self.read_live(addr, page).await {
                return Ok(session);
            }
        }
        let (store, id) = (self.store.clone(), session_id.to_owned());
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

    /// The last stderr lines of a session's agent; none for a provider that runs no process for it, or
    /// once the provider has forgotten the session.
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
        let live = self
            .router(supervisor::project_of(session_id))
            .send(FindSession {
                session_id: session_id.to_owned(),
            })
            .await?;
        let stderr = match live {
            Some(session) => session.send(AgentStderr).await.ok().flatten(),
            None => None,
        };
        Ok(stderr.unwrap_or_else(|| crate::providers::SessionStderr {
            session_id: session_id.to_owned(),
            ..Default::default()
        }))
    }

    pub async fn purge_session(&self, session_id: &str) -> Result<(), CommandError> {
        validate::session_id(session_id)?;
        self.supervisor
            .send(PurgeSession {
                session_id: session_id.to_owned(),
            })
            .await?
    }

    pub async fn projects(&self) -> Result<Vec<ProjectSummary>, CommandError> {
        self.supervisor.send(ListProjects).await?
    }

    pub async fn health(&self) -> Result<Vec<ProjectHealth>, CommandError> {
        Ok(self.supervisor.send(HealthReport).await?)
    }

    pub async fn ingest(
        &self,
        events: Vec<SidecarEvent>,
        durable: bool,
    ) -> Result<IngestOutcome, CommandError> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(CommandError::ShuttingDown);
        }
        self.routes.ingest(events, durable, true).await
    }

    pub async fn settings(&self) -> Result<Settings, CommandError> {
        Ok(self.supervisor.send(GetSettings).await?)
    }

    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<Settings, CommandError> {
        validate::settings(&patch, self.config.limits.max_prompt_bytes.as_u64())?;
        self.supervisor.send(UpdateSettings(patch)).await?
    }

    pub async fn subscribe(
        &self,
        project_id: Option<String>,
    ) -> Result<Subscription, CommandError> {
        if let Some(p) = &project_id {
            validate::project_id(p)?;
        }
        Ok(self
            .broadcaster
            .addr()
            .send(Subscribe {
                project: project_id,
                after: None,
            })
            .await?
            .0)
    }

    /// Cluster hook (src/cluster/events.rs): puts an event another node published into this node's live
    /// streams and journal. Waits for the broadcaster to take it, so a flood is held back at NATS.
    pub async fn publish_remote(&self, event: LiveEvent) -> Result<(), CommandError> {
        Ok(self
            .broadcaster
            .addr()
            .send(broadcaster::Publish(event))
            .await?)
    }

    /// What a lagging subscriber missed since `after` (see `broadcaster::ReplayAfter`).
    pub async fn replay_after(
        &self,
        project_id: Option<String>,
        after: journal::EventId,
    ) -> Result<(journal::Replay, journal::EventId), CommandError> {
        Ok(self
            .broadcaster
            .addr()
            .send(broadcaster::ReplayAfter {
                project: project_id,
                after,
            })
            .await?)
    }

    /// `subscribe`, first answering what a client whose last event was `after` missed (the journal's
    /// replay, or why it cannot be replayed).
    pub async fn subscribe_after(
        &self,
        project_id: Option<String>,
        after: Option<journal::LastEventId>,
    ) -> Result<(Subscription, Option<journal::Replay>), CommandError> {
        if let Some(p) = &project_id {
            validate::project_id(p)?;
        }
        Ok(self
            .broadcaster
            .addr()
            .send(Subscribe {
                project: project_id,
                after,
            })
            .await?)
    }

    /// Sets (None: clears) a project's own stall threshold; answers its health after the change.
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
        self.control
            .set_stall_after(project_id, stall_after)
            .await?;
        self.ask_project(project_id, true, || project::SetStallThreshold(stall_after))
            .await?
            .ok_or(CommandError::ShuttingDown)
    }

    /// Holds the persister until the guard is dropped (see `PersisterHandle::hold`).
    pub async fn hold_persister(&self) -> Result<persister::HoldGuard, CommandError> {
        Ok(self.persister.hold().await?)
    }

    /// The busiest actors, for `/v1/debug/top`.
    pub async fn debug_top(&self, by: TopBy, limit: usize) -> Result<Vec<TopEntry>, CommandError> {
        Ok(self.supervisor.send(DebugTop { by, limit }).await?)
    }

    /// The Prometheus text exposition, with the storage figures read now.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        m.redb_file_size.set(self.store.file_size() as i64);
        m.redb_cache_used
            .set(i64::try_from(self.store.cache_used()).unwrap_or(i64::MAX));
        m.storage_writable
            .set(i64::from(self.store.writable().is_ok()));
        let now = self.persister.stats();
        {
            let mut last = self.scraped.lock().unwrap_or_else(|p| p.into_inner());
            m.commits
                .with_label_values(&["ok"])
                .inc_by(now.commits_ok.saturating_sub(last.commits_ok));
            m.commits
                .with_label_values(&["failed"])
                .inc_by(now.commits_failed.saturating_sub(last.commits_failed));
            m.batch_rows
                .inc_by(now.rows_written.saturating_sub(last.rows_written));
            m.persisted_messages
                .inc_by(now.messages_written.saturating_sub(last.messages_written));
            *last = now;
        }
        m.persist_queue.set(now.queued_jobs as i64);
        m.set_mailbox_depth(ActorKind::Persister, now.queued_jobs as i64);
        m.render()
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Ok when the engine serves and storage can commit; else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Acquire) || !self.supervisor.connected() {
            return Err("the engine is not up".into());
        }
        self.store
            .writable()
            .map_err(|e| format!("storage cannot commit: {e}"))
    }

    pub async fn flush(&self) -> Result<(), CommandError> {
        self.supervisor.send(FlushAll).await??;
        self.persister.barrier().await?;
        Ok(())
    }

    pub async fn shutdown(&self) {
        let mut done = self.shut_down.lock().await;
        if *done {
            return;
        }
        *done = true;
        self.ready.store(false, Ordering::Release);
        for provider in self.providers.all() {
            provider.shutdown().await;
        }
        let flushed = self.flush().await;
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "shutdown flush failed; unflushed messages are lost");
        }
        // The journal's last entries; a run that stored all of them is replayed across the restart.
        let journal_complete = matches!(self.broadcaster.send(SaveJournal).await, Ok(Ok(true)));
        self.persister.shutdown().await;
        if journal_complete {
            let (store, epoch) = (self.store.clone(), self.journal_epoch);
            if let Err(e) = blocking(move || store.journal_close(epoch)).await {
                tracing::warn!(error = %e, "journal not marked complete; clients resuming across the restart reset");
            }
        }
        if flushed.is_ok() {
            // Every seqId handed out is in a stored message: sessions continue right after their last one.
            let store = self.store.clone();
            if let Err(e) = blocking(move || store.release_seq_ceilings()).await {
                tracing::warn!(error = %e, "seqId ceilings kept; sessions skip past them after the restart");
            }
        }
        self.metrics
            .actor_stopped(ActorKind::Persister, metrics::StopReason::Shutdown);
        self.store.close();
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
