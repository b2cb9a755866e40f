//! The engine: the one handle the HTTP API, the load generator, the cluster and tests hold. It wires the
//! actor system at start (storage, the persister thread, one arbiter per core with a router each, which holds
//! that arbiter's projects, the supervisor, the broadcaster) and turns each call into typed messages to those
//! actors, awaiting their answers. Dependencies point one way: api → engine → actors → messages, storage,
//! providers (tests/architecture.rs checks it).
//!
//! The calls are grouped by concern: `commands.rs` (start, stop, prompt, clear, restore, purge,
//! settings, ingest), `reads.rs` (sessions, projects, health), `live.rs` (live events and their journal),
//! `control.rs` (policies, approvals, cost), `resume.rs` (resuming with the provider's own resume) and
//! `cluster.rs` (the cluster's hooks); `start.rs` wires the actors.

#[cfg(test)]
mod ceiling_tests;
mod cluster;
mod commands;
mod control;
mod live;
#[cfg(test)]
mod offer_tests;
mod reads;
mod resume;
mod start;
#[cfg(test)]
mod test_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::actors::broadcaster::{Broadcaster, SaveJournal};
use crate::actors::control::Control;
use crate::actors::mailbox::Mailbox;
use crate::actors::metrics::{self, ActorKind, Metrics};
use crate::actors::persister::{PersisterHandle, PersisterStats};
use crate::actors::project::ProjectActor;
use crate::actors::router::Router;
use crate::actors::router::{FindProject, Found, Project};
use crate::actors::routes::Routes;
use crate::actors::supervisor::Supervisor;
use crate::actors::{blocking, persister};
use crate::config::Config;
use crate::error::CommandError;
use crate::messages::router::FlushSessions;
use crate::messages::validate;
use crate::providers::Providers;
use crate::storage::Store;

pub use crate::actors::adopt::StoredSession;
pub use crate::actors::approvals::Approval;
pub use crate::actors::arbiters::project_of_session;
pub use crate::actors::broadcaster::{Live, Subscription};
pub use crate::actors::journal::{Entry, EventId, LastEventId, Replay};
pub use crate::messages::commands::Started;
pub use cluster::{CommandLog, Logged};
pub use start::StartError;

/// How many times a command looks its project up again when the actor stopped under it (each stop
/// needs the project to have gone idle in between, so more than one retry is already rare).
const LOOKUPS: usize = 8;

/// A cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What the handle holds: the actors' mailboxes and the parts shared with them.
struct Inner {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    supervisor: Mailbox<Supervisor>,
    /// One router per arbiter: ingest batches are split over them by projectId (`arbiters::slot`).
    routes: Routes,
    broadcaster: Mailbox<Broadcaster>,
    /// Persister totals at the previous scrape, to turn them into counter increments.
    scraped: std::sync::Mutex<PersisterStats>,
    persister: PersisterHandle,
    store: Store,
    providers: Providers,
    /// Policies, spend, approvals (issue 15; actors/control.rs).
    control: Arc<Control>,
    ready: AtomicBool,
    shut_down: tokio::sync::Mutex<bool>,
    /// This run's journal epoch (src/actors/journal.rs).
    journal_epoch: u32,
    /// The stderr of sessions whose actor has stopped (`limits.stderr_kept`).
    stderr_kept: Arc<crate::actors::stderr_kept::KeptStderr>,
    /// The settings as last stored: starts and reads take them without asking the supervisor.
    settings: crate::actors::settings::SharedSettings,
    /// Cluster mode: where starts, purges and stops are recorded before they are answered (cluster.rs).
    log: std::sync::OnceLock<Arc<dyn CommandLog>>,
}

impl Engine {
    /// Opens storage (marking sessions that were running when the process died as interrupted), starts
    /// the persister thread, one arbiter per core and the supervisor. Call inside an actix `System`.
    /// Sessions to resume after the restart (resume.on_restart, resumeOnRestart) go on in the background.
    pub async fn start(config: Config, providers: Providers) -> Result<Engine, StartError> {
        let (inner, wiring) = start::wire(Arc::new(config), providers).await?;
        let engine = Engine {
            inner: Arc::new(inner),
        };
        engine.resume_in_background(wiring.to_resume, wiring.stalled);
        Ok(engine)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The engine's metrics, for the edges (HTTP) to count what never reaches an actor.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The router holding the routes of `project_id`'s sessions.
    fn router(&self, project_id: &str) -> &Mailbox<Router> {
        self.inner.routes.of(project_id)
    }

    /// The project's actor, started if none (commands that create: start, stall threshold), by its
    /// router, which holds the directory of its arbiter's projects.
    async fn project(&self, project_id: &str) -> Result<Mailbox<ProjectActor>, CommandError> {
        validate::project_id(project_id)?;
        self.router(project_id)
            .send(Project {
                project_id: project_id.to_owned(),
                revive: None,
            })
            .await?
    }

    /// The project's actor for a read or a command on its current session: the one in memory, or one
    /// brought back when storage holds a session of it (restoring its last session, as loadLastSession
    /// would). Storage is read here, off the router's thread; an id storage does not know never creates
    /// an actor.
    async fn existing_project(
        &self,
        project_id: &str,
    ) -> Result<Option<Mailbox<ProjectActor>>, CommandError> {
        validate::project_id(project_id)?;
        let id = project_id.to_owned();
        let found = self
            .router(project_id)
            .send(FindProject {
                project_id: id.clone(),
            })
            .await?;
        match found {
            Found::Live(project) => Ok(Some(project)),
            Found::LetGo => Ok(None),
            Found::Unknown => {
                let store = self.inner.store.clone();
                let last = blocking(move || store.last_session(&id)).await?;
                let Some(record) = last else {
                    return Ok(None);
                };
                let project = self
                    .router(project_id)
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
        ProjectActor: actix::Handler<crate::actors::mailbox::Timed<M>>,
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

    /// Holds the persister (a stuck disk) until the guard is dropped: for backpressure tests.
    pub async fn hold_persister(&self) -> Result<persister::HoldGuard, CommandError> {
        Ok(self.inner.persister.hold().await?)
    }

    /// The Prometheus text exposition, with the storage figures read now.
    pub fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        m.redb_file_size.set(self.inner.store.file_size() as i64);
        m.redb_cache_used
            .set(i64::try_from(self.inner.store.cache_used()).unwrap_or(i64::MAX));
        m.storage_writable
            .set(i64::from(self.inner.store.writable().is_ok()));
        let now = self.inner.persister.stats();
        {
            let mut last = self.inner.scraped.lock().unwrap_or_else(|p| p.into_inner());
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

    /// Storage open and able to commit, and actors up.
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Ok when the engine serves and storage can commit; else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.inner.ready.load(Ordering::Acquire) || !self.inner.supervisor.connected() {
            return Err("the engine is not up".into());
        }
        self.inner
            .store
            .writable()
            .map_err(|e| format!("storage cannot commit: {e}"))
    }

    /// Waits until everything accepted so far is committed to storage.
    pub async fn flush(&self) -> Result<(), CommandError> {
        let flushes = self
            .inner
            .routes
            .all()
            .iter()
            .map(|r| r.send(FlushSessions));
        for result in futures_util::future::join_all(flushes).await {
            result??;
        }
        self.inner.persister.barrier().await?;
        Ok(())
    }

    /// Stops providers, flushes every pending message and closes storage. Idempotent.
    pub async fn shutdown(&self) {
        let mut done = self.inner.shut_down.lock().await;
        if *done {
            return;
        }
        *done = true;
        self.inner.ready.store(false, Ordering::Release);
        for provider in self.inner.providers.all() {
            provider.shutdown().await;
        }
        let flushed = self.flush().await;
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "shutdown flush failed; unflushed messages are lost");
        }
        // The journal's last entries; a run that stored all of them is replayed across the restart.
        let journal_complete =
            matches!(self.inner.broadcaster.send(SaveJournal).await, Ok(Ok(true)));
        self.inner.persister.shutdown().await;
        if journal_complete {
            let (store, epoch) = (self.inner.store.clone(), self.inner.journal_epoch);
            if let Err(e) = blocking(move || store.journal_close(epoch)).await {
                tracing::warn!(error = %e, "journal not marked complete; clients resuming across the restart reset");
            }
        }
        if flushed.is_ok() {
            // Every seqId handed out is in a stored message: sessions continue right after their last one.
            let store = self.inner.store.clone();
            if let Err(e) = blocking(move || store.release_seq_ceilings()).await {
                tracing::warn!(error = %e, "seqId ceilings kept; sessions skip past them after the restart");
            }
        }
        self.inner
            .metrics
            .actor_stopped(ActorKind::Persister, metrics::StopReason::Shutdown);
        self.inner.store.close();
    }
}
