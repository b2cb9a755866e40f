//! The supervisor routes: sidecar events by sessionId to session actors, commands by projectId to project
//! actors (created on first use, on the project's arbiter). It holds the settings and enforces retention.
//! The routing tables are its own state; nothing else reads them, so they need no lock.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::join_all;

mod admin;
mod directory;
mod reports;

pub use self::admin::{
    EnforceRetention, GetSettings, PurgeProject, PurgeSession, SettingsReply, UpdateSettings,
};
pub use self::directory::{FindProject, Found, Project, ProjectIdle};
pub use self::reports::{DebugTop, FlushAll, HealthReport, ListProjects};

use super::arbiters::Arbiters;
use super::metrics::{ActorKind, Mailbox, MailboxStats, Metered, Metrics, StopReason};
use super::persister::PersisterHandle;
use super::project::{ForgetSession, ProjectLinks, SessionLinksBase};
use super::session::{Deliver, Discard, SessionActor, SessionGone, SessionInit};
use crate::config::Config;
use crate::error::CommandError;
use crate::messages::commands::{Ingest, IngestOutcome, Settings, SettingsPatch};
use crate::providers::{EventSink, Providers};
use crate::storage::Store;

/// What the supervisor is built from.
pub struct SupervisorParts {
    pub config: Arc<Config>,
    pub arbiters: Arbiters,
    pub providers: Providers,
    pub store: Store,
    pub persister: PersisterHandle,
    pub broadcaster: Mailbox<super::broadcaster::Broadcaster>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Policies, spend, approvals (issue 15).
    pub control: Arc<super::control::Control>,
}

pub struct Supervisor {
    parts: SupervisorParts,
    /// Shared by every project actor: one allocation, not one copy a project.
    links: Arc<ProjectLinks>,
    projects: HashMap<String, directory::Slot>,
    /// Projects that stopped with no current session in this process (see `directory`).
    let_go: directory::LetGo,
    sessions: HashMap<String, Mailbox<SessionActor>>,
    /// Settings updates waiting for the one in flight (`settings_busy`).
    settings_queue: std::collections::VecDeque<(SettingsPatch, SettingsReply)>,
    settings_busy: bool,
    /// Sessions and projects whose purge is in flight.
    purging: std::collections::HashSet<String>,
    stats: Arc<MailboxStats>,
}

/// The project a session id belongs to: ids are `<projectId>-<unix ms>`.
pub fn project_of(session_id: &str) -> &str {
    session_id.rsplit_once('-').map_or(session_id, |(p, _)| p)
}

impl Supervisor {
    /// `me` is this supervisor's own mailbox, whose stats it shares.
    pub fn new(
        parts: SupervisorParts,
        me: Mailbox<Supervisor>,
        stats: Arc<MailboxStats>,
    ) -> Supervisor {
        let links = Arc::new(ProjectLinks {
            sink: EventSink::new(me.addr().clone().recipient())
                .with_permissions(parts.control.clone()),
            supervisor: me,
            providers: parts.providers.clone(),
            store: parts.store.clone(),
            session: SessionLinksBase {
                config: parts.config.clone(),
                broadcaster: parts.broadcaster.clone(),
                persister: parts.persister.clone(),
                metrics: parts.metrics.clone(),
                windows: super::windows::WindowBudget::new(
                    parts.config.limits.window_bytes.as_u64(),
                    &parts.metrics,
                ),
                control: parts.control.clone(),
            },
        });
        Supervisor {
            parts,
            links,
            projects: HashMap::new(),
            let_go: Default::default(),
            sessions: HashMap::new(),
            settings_queue: Default::default(),
            settings_busy: false,
            purging: Default::default(),
            stats,
        }
    }

    /// Drops evicted or purged sessions from memory: their actors stop without writing, their projects
    /// forget them.
    fn forget_sessions(&mut self, ids: &[String], reason: StopReason) {
        for id in ids {
            if let Some(addr) = self.sessions.remove(id) {
                addr.do_send(Discard { reason });
            }
            if let Some(project) = self
                .projects
                .get(project_of(id))
                .map(directory::Slot::mailbox)
            {
                project.do_send(ForgetSession {
                    session_id: id.clone(),
                });
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.parts.metrics.actor_started(ActorKind::Supervisor);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.parts
            .metrics
            .actor_stopped(ActorKind::Supervisor, StopReason::Shutdown);
    }
}

impl Metered for Supervisor {
    const KIND: ActorKind = ActorKind::Supervisor;

    fn meter(&self) -> (&MailboxStats, &Metrics) {
        (&self.stats, &self.parts.metrics)
    }
}

crate::instrument!(
    Supervisor: Ingest,
    RegisterSession,
    SessionGone,
    FindSession,
    FindProject,
    Project,
    ProjectIdle,
    EnforceRetention,
    PurgeSession,
    PurgeProject,
    GetSettings,
    UpdateSettings,
    ListProjects,
    HealthReport,
    FlushAll,
    DebugTop,
);

impl Handler<Ingest> for Supervisor {
    type Result = ResponseActFuture<Self, Result<IngestOutcome, CommandError>>;

    fn handle(&mut self, msg: Ingest, ctx: &mut Context<Self>) -> Self::Result {
        // Events for a session no actor holds (its project let it go after the cleanup grace) bring it back
        // from storage, as the original kept applying them. The read holds this mailbox (`wait`), so no
        // later batch for the same session can race it into a second actor.
        let mut unknown: Vec<String> = Vec::new();
        for event in &msg.events {
            let id = event.session_id();
            // A purge in flight has not yet deleted what storage holds: nothing of it comes back.
            let purging = self.purging.contains(id) || self.purging.contains(project_of(id));
            if !purging && !self.sessions.contains_key(id) && !unknown.iter().any(|u| u == id) {
                unknown.push(id.to_owned());
            }
        }
        if !unknown.is_empty() {
            let store = self.parts.store.clone();
            let window = self.parts.config.limits.messages_in_memory as u64;
            let read = async move {
                tokio::task::spawn_blocking(move || stored_sessions(&store, unknown, window))
                    .await
                    .map_err(|e| CommandError::Storage(e.to_string()))?
            };
            ctx.wait(read.into_actor(self).map(|found, act, _| match found {
                Ok(found) => {
                    for (record, recent) in found {
                        act.revive(record, recent);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read sessions back for late events"),
            }));
        }
        // Runs after the read above: an actor's waiting futures come before its other futures.
        Box::pin(
            fut::wrap_future::<_, Self>(async {})
                .then(move |_, act, _| fut::wrap_future(act.route(msg))),
        )
    }
}

/// The stored sessions among `ids`, each with its most recent `window` messages.
fn stored_sessions(
    store: &Store,
    ids: Vec<String>,
    window: u64,
) -> Result<
    Vec<(
        crate::storage::SessionRecord,
        Vec<crate::messages::wire::AgentMessage>,
    )>,
    CommandError,
> {
    let mut found = Vec::new();
    for id in ids {
        if let Some(record) = store.session(&id)? {
            let recent = store.messages(&id, record.last_seq.saturating_sub(window), None, None)?;
            found.push((record, recent));
        }
    }
    Ok(found)
}

impl Supervisor {
    /// Starts a stored session's actor again, detached from its project: it applies what it is sent and
    /// stops once that is stored (unless an event makes it run again).
    fn revive(
        &mut self,
        record: crate::storage::SessionRecord,
        recent: Vec<crate::messages::wire::AgentMessage>,
    ) {
        if self.sessions.contains_key(&record.session_id) {
            return;
        }
        // Its project is told only if awake: a sleeping project has let go of this session anyway.
        let project = self.live_project(&record.project_id);
        let links = self.links.session_links(project);
        let init = SessionInit {
            recent: recent.into_iter().map(Arc::new).collect(),
            persisted: true,
            stall_after: self.parts.config.timers.stall_after,
            detached: true,
            record,
        };
        let session_id = init.record.session_id.clone();
        let arbiter = self.parts.arbiters.for_project(&init.record.project_id);
        let stats = Arc::new(MailboxStats::default());
        let theirs = stats.clone();
        let addr = SessionActor::start_in_arbiter(&arbiter, move |_| {
            SessionActor::new(init, links, theirs)
        });
        self.parts
            .metrics
            .actor_restarts
            .with_label_values(&[ActorKind::Session.as_str()])
            .inc();
        let mailbox = Mailbox::new(addr, stats, self.parts.metrics.clone(), ActorKind::Session);
        self.sessions.insert(session_id, mailbox);
    }

    /// Routes a batch to the sessions that hold its events.
    fn route(
        &mut self,
        msg: Ingest,
    ) -> futures_util::future::BoxFuture<'static, Result<IngestOutcome, CommandError>> {
        // One Deliver per session per batch, events in their original order within each session.
        let mut outcome = IngestOutcome::default();
        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut batches: Vec<(
            Mailbox<SessionActor>,
            Vec<crate::messages::wire::SidecarEvent>,
        )> = Vec::new();
        // Counted per kind here and added once per batch: a labelled counter costs a hash and a lock.
        let mut by_kind: Vec<(&'static str, u64)> = Vec::with_capacity(3);
        for event in msg.events {
            let Some(addr) = self.sessions.get(event.session_id()) else {
                outcome.ignored += 1;
                continue;
            };
            match by_kind.iter_mut().find(|(k, _)| *k == event.kind()) {
                Some((_, n)) => *n += 1,
                None => by_kind.push((event.kind(), 1)),
            }
            outcome.accepted += 1;
            let slot = *slots
                .entry(event.session_id().to_owned())
                .or_insert_with(|| {
                    batches.push((addr.clone(), Vec::new()));
                    batches.len() - 1
                });
            batches[slot].1.push(event);
        }

        for (kind, n) in by_kind {
            self.parts
                .metrics
                .events_ingested
                .with_label_values(&[kind])
                .inc_by(n);
        }
        self.parts
            .metrics
            .dead_letters
            .inc_by(outcome.ignored as u64);
        let (durable, dedupe) = (msg.durable, msg.dedupe);
        let (counts, sends): (Vec<usize>, Vec<_>) = batches
            .into_iter()
            .map(|(addr, events)| {
                let deliver = Deliver {
                    events,
                    durable,
                    dedupe,
                };
                (deliver.events.len(), addr.send(deliver))
            })
            .unzip();
        let dead_letters = self.parts.metrics.dead_letters.clone();
        Box::pin(async move {
            for (count, result) in counts.into_iter().zip(join_all(sends).await) {
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    // The session stopped while the batch was on its way: as if it were unknown.
                    Err(_) => {
                        outcome.accepted -= count;
                        outcome.ignored += count;
                        dead_letters.inc_by(count as u64);
                    }
                }
            }
            Ok(outcome)
        })
    }
}

/// A project started or restored a session actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSession {
    pub session_id: String,
    pub addr: Mailbox<SessionActor>,
}

impl Handler<RegisterSession> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RegisterSession, _: &mut Context<Self>) {
        self.sessions.insert(msg.session_id, msg.addr);
    }
}

impl Handler<SessionGone> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionGone, _: &mut Context<Self>) {
        if self
            .sessions
            .get(&msg.session_id)
            .is_some_and(|a| a.instance() == msg.instance)
        {
            self.sessions.remove(&msg.session_id);
        }
    }
}

/// The live actor of a session, if it is in memory.
#[derive(Message)]
#[rtype(result = "Option<Mailbox<SessionActor>>")]
pub struct FindSession {
    pub session_id: String,
}

impl Handler<FindSession> for Supervisor {
    type Result = Option<Mailbox<SessionActor>>;

    fn handle(&mut self, msg: FindSession, _: &mut Context<Self>) -> Self::Result {
        self.sessions
            .get(&msg.session_id)
            .filter(|a| a.connected())
            .cloned()
    }
}
