//! One actor per project: its current session, the start guard, the cleanup grace after done/error and the
//! inputs of its health. Commands for a project are serialised here, so the original's double-start race
//! cannot happen: "starting" is a state of this actor, not a lock.
//!
//! Lifecycle (a virtual actor, as in Orleans): a project actor exists while it has work or a timer (a
//! starting or running session, the cleanup grace, a stop or prompt in flight, its own stall threshold).
//! Then it tells its router it is idle; the router asks it to stop (`Deactivate`), and it stops
//! unless something came meanwhile, returning its memory. A later command, event or read brings it back:
//! a project revived for a read restores its last stored session as loadLastSession would (`revive`).

mod commands;
mod inputs;
mod start;

mod control;

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::health::{HealthNews, HealthTracker};
use super::mailbox::{Mailbox, MailboxStats, Metered, Outbox};
use super::metrics::{ActorKind, Metrics, StopReason};
use super::router::{Revived, Router};
use super::session::{ProjectLink, SessionActor, SessionInit, SessionLinks, SessionShared};
use crate::error::CommandError;
use crate::messages::commands::LiveEvent;
use crate::messages::project::SessionReport;
use crate::messages::project::SetAwaiting;
use crate::messages::project::{
    ClearSession, ForgetSession, PromptSession, ReportHealth, ReportSummary, RestoreLast,
    SetStallThreshold, StartSession, StopSession,
};
use crate::messages::project::{Deactivate, Deactivated};
use crate::messages::router::{ProjectIdle, ReleaseCeiling};
use crate::messages::session::Detach;
use crate::messages::wire::{now_ms, AgentStatus, ProjectHealth};
use crate::providers::{EventSink, Provider};
use crate::storage::{SessionRecord, Store};

/// How long a project started for a message that never came (its caller went away) stays.
const UNUSED_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a project stays idle before it offers to stop: reads in a burst find it awake.
const IDLE_LINGER: std::time::Duration = std::time::Duration::from_millis(200);

pub use self::commands::{CurrentActor, CurrentSession};

/// The answer a stop waiting for a start in flight gets.
type StopReply = tokio::sync::oneshot::Sender<Result<Option<String>, CommandError>>;

/// What every project actor shares with the engine.
#[derive(Clone)]
pub struct ProjectLinks {
    /// Its router (which holds its arbiter's project directory), told when this project may stop.
    pub idle: Outbox<ProjectIdle>,
    /// The router of this project's arbiter: its sessions' routes, and where its provider's events go.
    pub router: Mailbox<Router>,
    pub store: Store,
    pub sink: EventSink,
    /// What this arbiter's sessions share; each project adds its own link.
    pub session: Arc<SessionShared>,
}

impl ProjectLinks {
    /// What a session of `project` (none: a session brought back for late events while its project
    /// sleeps) needs to reach the rest of the engine.
    pub fn session_links(&self, project: Option<ProjectLink>) -> SessionLinks {
        SessionLinks {
            shared: self.session.clone(),
            project,
        }
    }
}

/// The project's current session: its id and status, and its actor while it has one. A finished session
/// whose runner keeps nothing lets its actor go once stored (session/state.rs `let_go_when_finished`);
/// a command that needs the actor brings it back from storage (`session_actor`).
struct Current {
    /// One copy of the id for the project, its health and its router's route (`RegisterSession`): every
    /// live project holds its running session's id, and each `String` copy was a 48-byte allocation.
    session_id: Arc<str>,
    addr: Option<Mailbox<SessionActor>>,
    status: AgentStatus,
    provider: String,
}

impl Current {
    /// Its actor, if it is running.
    fn live(&self) -> Option<&Mailbox<SessionActor>> {
        self.addr.as_ref().filter(|a| a.connected())
    }
}

pub struct ProjectActor {
    project_id: String,
    links: Arc<ProjectLinks>,
    current: Option<Current>,
    starting: bool,
    cleanup: Option<SpawnHandle>,
    /// Stops asked for while a start was in flight: answered once the agent has started and been stopped.
    /// Boxed, as rare: 16 bytes less put the actor's task in jemalloc's 1,024-byte class, not 1,280.
    stops_waiting: Option<Box<[StopReply]>>,
    /// Stops, prompts and restores in flight: their futures run in this actor, which must outlive them.
    in_flight: usize,
    /// Told its router it is idle and not yet asked to stop.
    idle_told: bool,
    /// Idle, waiting `IDLE_LINGER` before telling its router.
    linger: Option<SpawnHandle>,
    /// The last stored session, to restore once started (a project revived for a read). Boxed: few
    /// projects have one, and every live project carries the field.
    revive: Option<Box<SessionRecord>>,
    last_id_ms: i64,
    health: HealthTracker,
    /// This project's stall threshold, when it differs from `timers.stall_after`.
    stall_override: Option<std::time::Duration>,
    /// What subscribers were last told of this project's health.
    last_health: Option<HealthNews>,
    stop_reason: StopReason,
    stats: Arc<MailboxStats>,
}

impl ProjectActor {
    /// `revive`: the project's last stored session, restored as its current one once started.
    pub fn new(
        project_id: String,
        links: Arc<ProjectLinks>,
        stats: Arc<MailboxStats>,
        revive: Option<SessionRecord>,
    ) -> ProjectActor {
        let stall_after = links.session.control.policy(&project_id).stall.after;
        ProjectActor {
            project_id,
            links,
            current: None,
            starting: false,
            cleanup: None,
            stops_waiting: None,
            in_flight: 0,
            idle_told: false,
            linger: None,
            revive: revive.map(Box::new),
            last_id_ms: 0,
            health: HealthTracker::new(stall_after),
            stall_override: None,
            last_health: None,
            stop_reason: StopReason::Completed,
            stats,
        }
    }

    fn stall_after(&self) -> std::time::Duration {
        self.stall_override.unwrap_or_else(|| {
            self.links
                .session
                .control
                .policy(&self.project_id)
                .stall
                .after
        })
    }

    /// Publishes `project.health` when the state or attention changed, never on every message.
    fn health_changed(&mut self) {
        self.catch_up();
        let now = Instant::now();
        if self.health.news_since(&mut self.last_health, now) {
            // Journalled for reconnecting clients whether or not anyone listens now.
            let health = self.health.snapshot(&self.project_id, now);
            self.links
                .session
                .publisher
                .publish(LiveEvent::Health(health));
        }
    }

    /// Its session's stall clock fired (`SessionStalled`): time alone turned its idle session stalled, and
    /// nothing else would tell this project. The project holds no timer of its own for that (100,000
    /// running projects held 100,000): the session's clock counts the same activity against the same
    /// threshold. The project takes a batch's activity a moment after its session, though; if by the
    /// health's own clock the stall is still ahead, a one-shot timer publishes it then.
    fn stall_reported(&mut self, ctx: &mut Context<Self>) {
        self.health_changed();
        let now = Instant::now();
        if let Some(at) = self.health.stall_deadline(now) {
            self.metrics()
                .timer_arms
                .with_label_values(&["health"])
                .inc();
            // A millisecond past the deadline, so the state has turned when the timer fires.
            let after = at.saturating_duration_since(now) + std::time::Duration::from_millis(1);
            ctx.run_later(after, |act, _| act.health_changed());
        }
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.links.session.metrics
    }

    /// Starts a session actor on this project's arbiter, with a counted mailbox.
    fn spawn_session(&self, init: SessionInit, ctx: &Context<Self>) -> Mailbox<SessionActor> {
        let stats = Arc::new(MailboxStats::default());
        let addr = SessionActor::new(init, self.session_links(ctx), stats.clone()).start();
        Mailbox::new(addr, stats, self.metrics().clone(), ActorKind::Session)
    }

    /// This actor's mailbox, made when a session needs it rather than kept: a kept one is a channel sender
    /// (two allocations) per live project, and cloning it allocates as much as making one.
    fn mailbox(&self, ctx: &Context<Self>) -> Mailbox<ProjectActor> {
        Mailbox::new(
            ctx.address(),
            self.stats.clone(),
            self.metrics().clone(),
            ActorKind::Project,
        )
    }

    fn session_links(&self, ctx: &Context<Self>) -> SessionLinks {
        self.links.session_links(Some(self.link(ctx)))
    }

    /// What a session of this project is given to reach it.
    fn link(&self, ctx: &Context<Self>) -> ProjectLink {
        ProjectLink {
            reports: self.mailbox(ctx).thin_outbox(),
        }
    }

    /// `<projectId>-<unix ms>`, unique even for two starts in one millisecond.
    fn next_session_id(&mut self) -> String {
        let ms = now_ms().max(self.last_id_ms + 1);
        self.last_id_ms = ms;
        format!("{}-{ms}", self.project_id)
    }

    fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, CommandError> {
        self.links.session.providers.get(name).ok_or_else(|| {
            CommandError::Provider(format!("provider {name} is no longer configured"))
        })
    }

    fn cancel_cleanup(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.cleanup.take() {
            ctx.cancel_future(h);
        }
    }

    /// Lets go of the current session, if any: its actor (if it has one) stops once all is stored, and
    /// the router drops the seqId ceiling a stopped one left (src/actors/held_ceilings.rs).
    fn let_go(&mut self) {
        if let Some(cur) = self.current.take() {
            if let Some(addr) = cur.addr {
                addr.do_send(Detach);
            }
            self.links.router.do_send(ReleaseCeiling {
                session_id: cur.session_id.to_string(),
            });
        }
    }

    /// Lets go of the current session; its data stays readable through the supervisor and storage.
    fn detach(&mut self, ctx: &mut Context<Self>) {
        self.cancel_cleanup(ctx);
        self.let_go();
        self.health.set_session(None, Instant::now());
        self.health_changed();
    }

    fn attach(
        &mut self,
        session_id: Arc<str>,
        addr: Option<Mailbox<SessionActor>>,
        status: AgentStatus,
        provider: String,
    ) {
        self.health
            .set_session(Some(session_id.clone()), Instant::now());
        self.health.set_status(status, None);
        self.current = Some(Current {
            session_id,
            addr,
            status,
            provider,
        });
    }

    /// Its session's last progress, read from the session's mailbox stats: batches that changed nothing
    /// else the project shows were not reported (session/activity.rs). Before its actor is let go too.
    fn catch_up(&mut self) {
        let session = self.current.as_ref().and_then(|c| c.addr.as_ref());
        if let Some(at) = session.and_then(|s| s.stats().progress_at()) {
            self.health.progressed(at);
        }
    }

    fn is_current(&self, session_id: &str) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| &*c.session_id == session_id)
    }

    fn current(&self) -> Result<&Current, CommandError> {
        self.current.as_ref().ok_or(CommandError::NoSession)
    }

    fn health_now(&mut self) -> ProjectHealth {
        self.catch_up();
        self.health.snapshot(&self.project_id, Instant::now())
    }

    // ── lifecycle ───────────────────────────────────────────────────────────────────────────────────────

    /// No work and no timer: nothing would be lost if this actor stopped now.
    fn is_idle(&self) -> bool {
        !self.starting
            && self.in_flight == 0
            && self.cleanup.is_none()
            && self.stops_waiting.is_none()
            && self.stall_override.is_none()
            && self.current.as_ref().is_none_or(|c| c.status.is_finished())
    }

    /// Called after every change of work or timers: an idle project offers to stop, once, if it is still
    /// idle after `IDLE_LINGER` (so a burst of reads does not stop and revive it per read).
    fn settle(&mut self, ctx: &mut Context<Self>) {
        if self.idle_told || self.linger.is_some() || !self.is_idle() {
            return;
        }
        self.linger = Some(ctx.run_later(IDLE_LINGER, |act, _| {
            act.linger = None;
            if act.idle_told || !act.is_idle() {
                return;
            }
            act.idle_told = true;
            act.links.idle.do_send(ProjectIdle {
                project_id: act.project_id.clone(),
                instance: act.stats.instance(),
            });
        }));
    }

    /// Begins an async step (stop, prompt, restore) whose future runs in this actor.
    fn begin(&mut self) {
        self.in_flight += 1;
    }

    fn end(&mut self, ctx: &mut Context<Self>) {
        self.in_flight -= 1;
        self.settle(ctx);
    }
}

impl Actor for ProjectActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics().actor_started(ActorKind::Project);
        // A new project is inactive; only changes from here on are news.
        self.health
            .news_since(&mut self.last_health, Instant::now());
        if let Some(record) = self.revive.take().map(|r| *r) {
            // Revived for a read: its last session comes back before any message is handled.
            self.in_flight += 1;
            ctx.wait(
                self.restore(record, Vec::new())
                    .map(|_, act, _| act.in_flight -= 1),
            );
        }
        // Started for a command or a read, it settles after handling it (not before: the stop would race
        // the very message it was started for). Should that message never come, it settles after this.
        ctx.run_later(UNUSED_AFTER, |act, ctx| act.settle(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics()
            .actor_stopped(ActorKind::Project, self.stop_reason);
    }
}

impl Handler<Deactivate> for ProjectActor {
    type Result = Deactivated;

    fn handle(&mut self, msg: Deactivate, ctx: &mut Context<Self>) -> Deactivated {
        self.idle_told = false;
        if !msg.force && !self.is_idle() {
            return Deactivated {
                stopped: false,
                had_session: self.current.is_some(),
            };
        }
        if msg.force {
            self.stop_reason = StopReason::Purge;
        }
        let had_session = self.current.is_some();
        // A finished, fully stored session stops with its project; its data stays in storage.
        self.let_go();
        ctx.stop();
        Deactivated {
            stopped: true,
            had_session,
        }
    }
}

impl Metered for ProjectActor {
    const KIND: ActorKind = ActorKind::Project;

    fn meter(&self) -> (&MailboxStats, &Metrics) {
        (&self.stats, self.metrics())
    }

    fn ids(&self) -> (&str, Option<&str>) {
        (
            &self.project_id,
            self.current.as_ref().map(|c| &*c.session_id),
        )
    }
}

crate::instrument!(
    ProjectActor: StartSession,
    StopSession,
    PromptSession,
    CurrentSession,
    CurrentActor,
    ClearSession,
    RestoreLast,
    ForgetSession,
    ReportSummary,
    ReportHealth,
    SessionReport,
    Revived,
    SetStallThreshold,
    SetAwaiting,
    Deactivate,
);
#[cfg(test)]
mod tests {
    /// A tokio task is its future plus 104 bytes (header 32, scheduler and id 24, trailer 48), rounded up
    /// to 128: a project's future of at most 920 bytes makes a 1,024-byte task, jemalloc's 1,024 class;
    /// a few bytes more make it 1,152, in the 1,280 class: 256 bytes more for every live project.
    #[test]
    fn a_project_actors_task_fits_the_1024_byte_class() {
        let future = std::mem::size_of::<
            actix::dev::ContextFut<super::ProjectActor, actix::Context<super::ProjectActor>>,
        >();
        assert!(future <= 920, "the project's future is {future} bytes");
    }
}
