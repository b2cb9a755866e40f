//! One actor per session: the shell around `state::SessionState` (its messages, the seqId counter,
//! status, cost, model and where persistence stands) and `stall::StallClock`. The rules live in `state`
//! and `stall`, unit-tested without actix; this file owns the actor's life and timers, talks to the
//! persister, the project and the broadcaster, and answers readers. Batches come in through `ingest`
//! and are applied by `events`.

mod activity;
mod agent;
mod dedup;
mod events;
mod ingest;
mod link;
mod persist;
mod riders;
mod seq;
mod stall;
mod stall_timer;
pub mod state;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use self::riders::Riders;
use self::stall::StallClock;
use self::state::{Rules, SessionState};
use super::mailbox::{MailboxStats, Metered, Outbox};
use super::metrics::{ActorKind, Metrics, StopReason};
use super::persister::PersisterHandle;
use super::publisher::Publisher;
use super::settings::SharedSettings;
use super::windows::{WindowPart, WindowShare};
use crate::config::Config;
use crate::messages::commands::{LiveEvent, Page};
use crate::messages::project::{SessionReport, SessionStopped};
use crate::messages::router::RetentionEvicted;
use crate::messages::router::{MayRetire, SessionGone};
use crate::messages::session::Discard;
use crate::messages::session::{
    AddUserMessage, AgentStderr, Deliver, Detach, FlushNow, OfferSettled, SessionView, SetRunner,
    SetStallAfter, SetStatus, Snapshot, ToAgent,
};
use crate::messages::wire::{
    AgentMessage, AgentSession, AgentStatus, MsgRole, SharedMessage, UnixMs, Variant,
};
use crate::storage::{SessionRecord, WriteOp};

pub use self::link::{Attach, ProjectLink};

/// Everything a session actor needs to reach the rest of the engine.
#[derive(Clone)]
pub struct SessionLinks {
    /// What every session of its arbiter shares, one allocation for all of them (each handle in it is a
    /// channel sender whose clone allocates twice: a hundred thousand live sessions held eleven each).
    pub shared: Arc<SessionShared>,
    /// None for a session brought back for late events while its project sleeps.
    pub project: Option<ProjectLink>,
}

impl std::ops::Deref for SessionLinks {
    type Target = SessionShared;

    fn deref(&self) -> &SessionShared {
        &self.shared
    }
}

/// The handles every session of one arbiter (one router, and the projects placed with it) uses alike.
pub struct SessionShared {
    pub config: Arc<Config>,
    /// Its router, told which sessions the retention riding with a finish let go.
    pub evicted: Outbox<RetentionEvicted>,
    /// The retention settings a finish applies to its project.
    pub settings: SharedSettings,
    /// The router of this session's project, which holds its route until the session stops.
    pub gone: Outbox<SessionGone>,
    /// The same router, asked before a session stops by itself (`MayRetire`).
    pub retire: Outbox<MayRetire>,
    /// This arbiter's way to the broadcaster (a batch of events at a time).
    pub publisher: Arc<Publisher>,
    pub persister: PersisterHandle,
    pub metrics: Arc<Metrics>,
    /// This arbiter's part of the byte budget of every session's window together (`limits.window_bytes`).
    pub windows: Arc<WindowPart>,
    /// Policies, spend, approvals (issue 15).
    pub control: Arc<super::control::Control>,
    /// Where the session finds its agent's provider.
    pub providers: crate::providers::Providers,
    /// Where its agent's stderr goes when the session stops.
    pub stderr_kept: Arc<super::stderr_kept::KeptStderr>,
    /// The persistence rules (`rules`), the same for every session: shared, not 64 bytes copied into
    /// each live session's actor.
    pub rules: Arc<Rules>,
}

/// The persistence rules every session of this configuration follows.
pub fn rules(config: &Config) -> Rules {
    let (limits, timers) = (&config.limits, &config.timers);
    Rules {
        messages_in_memory: limits.messages_in_memory,
        debounce: timers.persist_debounce,
        retry: timers.persist_retry,
        retry_max: timers.persist_retry_max,
        seq_block: config.storage.seq_block,
    }
}

/// How a new or restored session begins.
pub struct SessionInit {
    pub record: SessionRecord,
    /// The most recent stored (or new, unpersisted) messages, in seq order.
    pub recent: Vec<SharedMessage>,
    /// Whether `recent` and the record are already in storage.
    pub persisted: bool,
    /// Silence after which a running session is stalled (the project's threshold).
    pub stall_after: Duration,
    /// Not its project's current session (brought back for late events): it stops once they are stored.
    pub detached: bool,
    /// A new session's start as stored for resuming it (src/storage/starts.rs): written with its record.
    pub start: Option<WriteOp>,
    /// The seqId ceiling its previous actor left in storage, handed over by its router
    /// (src/actors/held_ceilings.rs): a reservation it takes as its own, so it continues right after the
    /// last stored seqId instead of skipping past storage's ceiling.
    pub ceiling: Option<u64>,
    /// Read back for late events and offered to its project (`Revived`): it does not stop before it
    /// hears the offer is over (`OfferSettled`).
    pub offered: bool,
}

pub struct SessionActor {
    state: SessionState,
    stall: StallClock,
    /// The debounce or retry timer, valid while `state` says one is armed; and the stall timer, valid
    /// while `stall` says so. Not `Option`s: a `SpawnHandle` has no spare value, so each `Option` took 16
    /// bytes (every live session's task carries them; see the size test), and the flags that say whether
    /// a handle is valid are the ones the state machines keep anyway. Read through `take_*_timer`.
    flush_timer: SpawnHandle,
    stall_timer: SpawnHandle,
    /// Brought back from storage: reads its seqId ceiling before it takes any message (seq.rs).
    restored: bool,
    /// Asked its router whether it may stop (`MayRetire`), and not yet answered (`Retire`).
    retiring: bool,
    /// Stopped as its router asked (`Retire`): the router has dropped its route already.
    retired: bool,
    /// Stopped leaving its seqId ceiling in storage, handed to its router (`Retired::Stopped`).
    ceiling_handed: bool,
    /// Raw message ids applied recently, for idempotent ingest.
    recent_ids: dedup::RecentIds,
    /// What its project was told of its batches, and the loop detector (activity.rs).
    activity: activity::ActivityFold,
    stop_reason: StopReason,
    /// Cost over runs, the ledger's pending rows, budgets (actors/spend.rs). Boxed and made at the first
    /// cost event: until then it would hold nothing (its default), and 96 bytes inline in every live
    /// session kept the actor's task a jemalloc class up (the size test below).
    spend: Option<Box<super::spend::SessionSpend>>,
    stats: Arc<MailboxStats>,
    links: SessionLinks,
    /// This window's part of `limits.window_bytes`, from `started` on.
    window_share: Option<WindowShare>,
    /// Its agent's runner (agent.rs): a child of this session.
    runner: Option<Box<dyn crate::providers::Runner>>,
    /// Boxed: only a new session has riders, until its first write commits, and every live session
    /// carries the field (a few bytes less kept the actor's task in a smaller allocation class).
    riders: Option<Box<Riders>>,
}

impl SessionActor {
    pub fn new(init: SessionInit, links: SessionLinks, stats: Arc<MailboxStats>) -> SessionActor {
        let SessionInit {
            record,
            recent,
            persisted,
            stall_after,
            detached,
            start,
            ceiling,
            offered,
        } = init;
        // Read before `recent` moves into the state: a session read back remembers its stored ids.
        let recent_ids = dedup::RecentIds::seeded(links.config.limits.ingest_dedup_ids, &recent);
        let rules = links.rules.clone();
        let mut state = SessionState::new(record, recent, persisted, detached, rules);
        // A session brought back from storage holds no runner; a new one decides once its runner comes.
        state.let_go_when_finished = start.is_none();
        state.offered = offered;
        if let Some(ceiling) = ceiling {
            state.seq.adopt(ceiling);
        }
        SessionActor {
            state,
            stall: StallClock::new(stall_after, Instant::now()),
            flush_timer: SpawnHandle::default(),
            stall_timer: SpawnHandle::default(),
            // An adopting actor reads storage's ceiling too, and ignores it (`SeqBlock::adopt`): the read
            // waits behind the persister's queue, which a previous actor's writes may still be in.
            restored: persisted,
            retiring: false,
            retired: false,
            ceiling_handed: false,
            recent_ids,
            activity: Default::default(),
            stop_reason: StopReason::Completed,
            spend: None,
            stats,
            links,
            window_share: None,
            runner: None,
            riders: start.map(|op| {
                Box::new(Riders {
                    ops: vec![op],
                    ..Riders::default()
                })
            }),
        }
    }

    /// Reports the window's bytes (`/v1/debug/top`, the window budget); the budget may ask the least
    /// recently touched sessions to trim.
    pub(super) fn window_changed(&mut self) {
        let held = self.state.window_bytes();
        self.stats.memory.store(held, Ordering::Relaxed);
        if let Some(share) = &mut self.window_share {
            share.update(held, self.state.stored_bytes());
        }
    }

    fn record(&self) -> &SessionRecord {
        &self.state.record
    }

    fn ids(&self) -> (String, String) {
        let r = self.record();
        (r.session_id.clone(), r.project_id.clone())
    }

    fn running(&self) -> bool {
        self.record().status == AgentStatus::Running
    }

    /// Its project's current session, not let go of: it leaves its seqId ceiling in storage as it stops
    /// and hands it to its router, which holds it until the project lets go (src/actors/held_ceilings.rs).
    /// Otherwise nobody would drop it later, so its finishing write does.
    fn hands_over_ceiling(&self) -> bool {
        self.links.project.is_some() && !self.state.detached
    }

    /// Tells the project (if it holds this session's link) what happened, for its health.
    fn tell_project(&self, msg: impl Into<SessionReport>) {
        if let Some(project) = &self.links.project {
            project.tell(msg, &self.links.metrics);
        }
    }

    fn tell_activity(&self, activity: crate::messages::project::Activity) {
        self.tell_project(crate::messages::project::ProjectActivity {
            session_id: self.record().session_id.clone(),
            activity,
        });
    }

    /// Every event goes to the broadcaster, subscribers or not: its journal keeps them for clients that
    /// reconnect (src/actors/journal.rs).
    fn publish(&self, event: impl FnOnce() -> LiveEvent) {
        self.links.publisher.publish(event());
    }

    fn notify(&self, message: String, variant: Variant) {
        self.links
            .metrics
            .notifications
            .with_label_values(&[variant.as_str()])
            .inc();
        let project_id = self.record().project_id.clone();
        self.publish(|| LiveEvent::Notification {
            project_id,
            message,
            variant,
        });
    }

    fn dirty_gauge(&self, became_dirty: bool) {
        if became_dirty {
            self.links.metrics.dirty_sessions.inc();
        }
    }

    /// A change waits for storage: arm the debounce if the state asks for it.
    fn changed(&mut self, ctx: &mut Context<Self>) {
        let (timer, became_dirty) = self.state.changed(Instant::now());
        self.dirty_gauge(became_dirty);
        if let Some(after) = timer {
            self.arm_flush(after, ctx);
        }
    }

    /// Arms the timer `state` asked for (it counts it armed from then on).
    fn arm_flush(&mut self, after: Duration, ctx: &mut Context<Self>) {
        self.flush_timer = ctx.run_later(after, |act, ctx| {
            // It fired: `flush_now` finds none to cancel.
            act.state.take_timer();
            act.flush_now(ctx);
        });
    }

    /// The debounce or retry timer, if one is armed (it is disarmed now: the caller cancels it).
    fn take_flush_timer(&mut self) -> Option<SpawnHandle> {
        self.state.take_timer().then_some(self.flush_timer)
    }

    /// The stall timer, if one is armed (it is disarmed now: the caller cancels it).
    pub(super) fn take_stall_timer(&mut self) -> Option<SpawnHandle> {
        self.stall.take_armed().then_some(self.stall_timer)
    }

    fn view(&self, page: Page) -> SessionView {
        let after = page.after_seq.unwrap_or(0);
        let window = self.state.window();
        let start = window.partition_point(|m| m.seq_id <= after);
        let r = self.record();
        SessionView {
            oldest_in_memory: window.front().map_or(r.last_seq + 1, |m| m.seq_id),
            session: AgentSession {
                session_id: r.session_id.clone(),
                project_id: r.project_id.clone(),
                provider: r.provider.clone(),
                status: r.status,
                messages: window.range(start..).cloned().collect(),
                cost_usd: r.cost_usd,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                model: r.model.clone(),
                error: r.error.clone(),
                created_at: r.created_at,
                updated_at: r.updated_at,
                message_count: r.message_count,
                last_seq_id: r.last_seq,
            },
        }
    }
}

/// The first message of every session: the prompt, as user message seqId 1.
pub fn user_message(
    session_id: &str,
    prompt: String,
    timestamp: UnixMs,
    first: bool,
) -> AgentMessage {
    let id = if first {
        format!("{session_id}-user-0")
    } else {
        format!("{session_id}-user-{timestamp}")
    };
    AgentMessage {
        id,
        seq_id: 0,
        role: MsgRole::User,
        content: prompt,
        tool: None,
        timestamp,
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.links.metrics.actor_started(ActorKind::Session);
        if !self.state.is_clean() {
            // A new session: subscribers hear of it at once, its status and its prompt.
            let (session_id, project_id) = self.ids();
            let (status, error) = (self.record().status, self.record().error.clone());
            let messages: Arc<[SharedMessage]> = self.state.window().iter().cloned().collect();
            self.publish(|| LiveEvent::Status {
                session_id: session_id.clone(),
                project_id: project_id.clone(),
                status,
                error,
            });
            self.publish(|| LiveEvent::Messages {
                session_id,
                project_id,
                messages,
            });
        }
        // Deep mailboxes are fine here: callers await their sends, so the queue is bounded by them.
        ctx.set_mailbox_capacity(256);
        let me = ctx.address().downgrade();
        self.window_share = Some(
            self.links
                .windows
                .join(me.clone().recipient(), me.recipient()),
        );
        self.window_changed();
        if self.restored {
            self.read_seq_ceiling(ctx);
        } else {
            self.first_reservation();
        }
        // What is left of the threshold since the session was made, not since now: its project counted
        // its new session from the moment it took it, just after that, and its health must not turn
        // stalled before this clock fires (the project publishes the stall when it hears of it).
        if let Some(after) = self.stall.arm(Instant::now(), self.running()) {
            self.arm_stall(after, ctx);
        }
        if !self.state.is_clean() {
            self.flush_now(ctx);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.links
            .metrics
            .actor_stopped(ActorKind::Session, self.stop_reason);
        if self.state.stopping() {
            self.links.metrics.dirty_sessions.dec();
        }
        let released = self.state.seq.released() || self.ceiling_handed;
        if self.state.is_clean() && matches!(self.stop_reason, StopReason::Completed) && !released {
            self.release_seq();
        }
        self.let_agent_go();
        let (session_id, instance) = (self.record().session_id.clone(), self.stats.instance());
        // Its project keeps only the id and status from now on (and brings it back when it must).
        self.tell_project(SessionStopped {
            session_id: session_id.clone(),
            instance,
        });
        if !self.retired {
            // Stopped through its router (`Retire`), which dropped the route then.
            self.links.gone.do_send(SessionGone {
                session_id,
                instance,
            });
        }
    }
}

impl Handler<SetStatus> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, ctx: &mut Context<Self>) {
        self.apply_status(msg.status, msg.error, ctx);
    }
}

impl Handler<Snapshot> for SessionActor {
    type Result = SessionView;

    fn handle(&mut self, msg: Snapshot, _: &mut Context<Self>) -> SessionView {
        self.view(msg.page)
    }
}

impl Handler<Detach> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: Detach, ctx: &mut Context<Self>) {
        if self.state.detach() {
            self.retire(ctx);
        }
    }
}

impl Handler<Attach> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) {
        let Attach {
            project,
            hold,
            stall_after,
        } = msg;
        let was_detached = std::mem::replace(&mut self.state.detached, false);
        // Taken back for a command that follows: it waits for it rather than letting go.
        self.state.held |= hold;
        self.links.project = Some(project);
        if stall_after != self.stall.after() {
            self.set_stall_after(stall_after, ctx);
        }
        let told = self.activity.attached();
        self.tell_activity(told);
        if was_detached {
            // What it applied while no project heard (late events): the project's health catches up.
            self.tell_project_where_it_stands();
        }
    }
}

impl Metered for SessionActor {
    const KIND: ActorKind = ActorKind::Session;

    fn meter(&self) -> (&MailboxStats, &Metrics) {
        (&self.stats, &self.links.metrics)
    }

    fn ids(&self) -> (&str, Option<&str>) {
        let r = self.record();
        (&r.project_id, Some(&r.session_id))
    }
}

crate::instrument!(
    SessionActor: Deliver,
    AddUserMessage,
    SetStatus,
    Snapshot,
    Detach,
    Discard,
    FlushNow,
    Attach,
    OfferSettled,
    SetStallAfter,
    SetRunner,
    ToAgent,
    AgentStderr,
);

#[cfg(test)]
mod tests {
    /// A tokio task is its future plus 104 bytes, rounded up to 128 (actors/project.rs says how): a session's
    /// future of at most 920 bytes makes a 1,024-byte task, jemalloc's 1,024 class; 8 bytes more make it
    /// 1,152, in the 1,280 class: 256 bytes more for every running session (issue #12's 100,000 projects
    /// hold one each). What keeps it there: the spend and the waiters boxed until used, the rules shared,
    /// the timers' handles without `Option`s, the stall threshold in milliseconds (912 bytes at stop 31:
    /// 8 to spare).
    #[test]
    fn a_session_actors_task_fits_the_1024_byte_class() {
        let future = std::mem::size_of::<
            actix::dev::ContextFut<super::SessionActor, actix::Context<super::SessionActor>>,
        >();
        assert!(future <= 920, "the session's future is {future} bytes");
    }
}
