//! One actor per session: its messages (a bounded window in memory, the rest in storage), the monotonic
//! seqId counter, status, cost, model, the stall timer and the persistence debounce.
//!
//! Persistence: the first unpersisted change arms one debounce timer; when it fires, everything not yet
//! persisted goes to the persister as one batch row plus the session record. The timer is not re-armed by
//! later messages (the original's trailing debounce never wrote a session that kept talking), so a change is
//! persisted at most one debounce window after it arrived. Status changes and durable ingests flush at once.
//! One flush is in flight at a time; a failed one is retried with backoff and nothing is dropped meanwhile.
//! When more than `limits.messages_in_memory` messages wait for storage, a plain delivery is answered only
//! once storage has caught up: a provider's awaited event sink then stops reading its agent's output, so a
//! flood, a slow or a full disk holds memory bounded instead of growing it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::broadcaster::{Broadcaster, Publish};
use super::metrics::{ActorKind, Mailbox, MailboxStats, Metered, Metrics, StopReason};
use super::persister::{PersisterHandle, TryWriteError};
use super::project::{ProjectActivity, ProjectActor, SessionCost, SessionStatusChanged};
use super::supervisor::{EnforceRetention, Supervisor};
use crate::config::Config;
use crate::error::CommandError;
use crate::messages::commands::{LiveEvent, Page};
use crate::messages::convert::{convert_raw_message, init_model};
use crate::messages::numbers;
use crate::messages::wire::{
    now_ms, AgentMessage, AgentSession, AgentStatus, MsgRole, SharedMessage, SidecarEvent, UnixMs,
    Variant, MAX_STATUS_ERROR_BYTES,
};
use crate::storage::{SessionRecord, StorageError, WriteOp};

/// Everything a session actor needs to reach the rest of the engine.
#[derive(Clone)]
pub struct SessionLinks {
    pub config: Arc<Config>,
    pub project: Mailbox<ProjectActor>,
    pub supervisor: Mailbox<Supervisor>,
    pub broadcaster: Mailbox<Broadcaster>,
    pub subscribers: Arc<AtomicUsize>,
    pub persister: PersisterHandle,
    pub metrics: Arc<Metrics>,
    /// Policies, spend, approvals (issue 15).
    pub control: Arc<super::control::Control>,
}

/// Told to the supervisor when a session actor stops, so it drops the route.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionGone {
    pub session_id: String,
    /// Which actor of that id stopped (see `Mailbox::instance`): a newer one may already be registered.
    pub instance: usize,
}

/// Sidecar events for this session, in the order they arrived.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Deliver {
    pub events: Vec<SidecarEvent>,
    pub durable: bool,
}

/// sendPrompt's half in the session: the user message, and status running.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddUserMessage {
    pub prompt: String,
}

/// A status decided by the engine rather than the agent (stop → done, failed start → error).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    pub status: AgentStatus,
    pub error: Option<String>,
}

/// The session as getSession shows it, with the messages in memory after `page.after_seq`.
#[derive(Message)]
#[rtype(result = "SessionView")]
pub struct Snapshot {
    pub page: Page,
}

#[derive(actix::MessageResponse)]
pub struct SessionView {
    /// `messages` holds the in-memory messages after the page start (not yet limited).
    pub session: AgentSession,
    /// The lowest seqId held in memory; older ones are in storage.
    pub oldest_in_memory: u64,
}

/// The project let go of this session (cleanup grace or clear): it may stop once all is persisted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach;

/// Stop now without writing anything more: purge or retention already removed it from storage.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Discard {
    pub reason: StopReason,
}

/// Persist everything accepted so far; answers when it is committed.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct FlushNow;

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
}

type Waiter = oneshot::Sender<Result<(), CommandError>>;

#[derive(Default)]
struct Flush {
    timer: Option<SpawnHandle>,
    in_flight: bool,
    /// Asked to flush again while one was in flight.
    again: bool,
    backoff: Option<Duration>,
    /// Waiting for the next flush to start, and for the one in flight.
    pending: Vec<Waiter>,
    riding: Vec<Waiter>,
    /// Plain deliveries that found more than `limits.messages_in_memory` messages unpersisted: answered
    /// once storage has caught up (backpressure, so a flood cannot outgrow memory while storage lags).
    room: Vec<Waiter>,
}

pub struct SessionActor {
    record: SessionRecord,
    window: VecDeque<SharedMessage>,
    persisted_seq: u64,
    record_dirty: bool,
    flush: Flush,
    last_activity: Instant,
    stall_timer: Option<SpawnHandle>,
    stall_after: Duration,
    detached: bool,
    /// A finished status awaits its commit; retention runs after it, so it sees this session as finished.
    retention_due: bool,
    /// When the oldest change not yet committed was made (persist lag), if any.
    dirty_since: Option<Instant>,
    /// Approximate bytes held by the window (for `/v1/debug/top`).
    window_bytes: u64,
    stop_reason: StopReason,
    /// Cost over runs, the ledger's pending rows, budgets (actors/spend.rs).
    spend: super::spend::SessionSpend,
    stats: Arc<MailboxStats>,
    links: SessionLinks,
}

impl SessionActor {
    pub fn new(init: SessionInit, links: SessionLinks, stats: Arc<MailboxStats>) -> SessionActor {
        let SessionInit {
            record,
            recent,
            persisted,
            stall_after,
            detached,
        } = init;
        let persisted_seq = if persisted {
            record.last_seq
        } else {
            recent.first().map_or(record.last_seq, |m| m.seq_id - 1)
        };
        let window_bytes = recent.iter().map(|m| approx_size(m)).sum();
        SessionActor {
            persisted_seq,
            record_dirty: !persisted,
            record,
            window: recent.into(),
            flush: Flush::default(),
            last_activity: Instant::now(),
            stall_timer: None,
            stall_after,
            detached,
            retention_due: false,
            dirty_since: None,
            window_bytes,
            stop_reason: StopReason::Completed,
            spend: Default::default(),
            stats,
            links,
        }
    }

    fn id(&self) -> &str {
        &self.record.session_id
    }

    fn publish(&self, event: impl FnOnce() -> LiveEvent) {
        if self.links.subscribers.load(Ordering::Relaxed) > 0 {
            self.links.broadcaster.do_send(Publish(event()));
        }
    }

    fn note_dirty(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
            self.links.metrics.dirty_sessions.inc();
        }
    }

    fn notify(&self, message: String, variant: Variant) {
        self.links
            .metrics
            .notifications
            .with_label_values(&[variant.as_str()])
            .inc();
        let project_id = self.record.project_id.clone();
        self.publish(|| LiveEvent::Notification {
            project_id,
            message,
            variant,
        });
    }

    fn append(&mut self, message: AgentMessage, ctx: &mut Context<Self>) -> SharedMessage {
        let shared = self.push(message);
        self.record.updated_at = now_ms();
        self.mark_dirty(ctx);
        shared
    }

    /// Gives `message` the next seqId and puts it in the window; the caller stamps and schedules.
    fn push(&mut self, mut message: AgentMessage) -> SharedMessage {
        self.record.last_seq += 1;
        self.record.message_count += 1;
        message.seq_id = self.record.last_seq;
        let shared = Arc::new(message);
        self.window_bytes += approx_size(&shared);
        self.window.push_back(shared.clone());
        shared
    }

    fn apply_messages(
        &mut self,
        raws: Vec<crate::messages::wire::RawMessage>,
        ctx: &mut Context<Self>,
    ) {
        let signals = crate::messages::progress::signals(&raws);
        let mut batch = Vec::with_capacity(raws.len());
        for raw in &raws {
            if let Some(model) = init_model(raw) {
                self.record.model = model;
                self.record_dirty = true;
            }
            if let Some(msg) = convert_raw_message(raw) {
                batch.push(self.push(msg));
            }
        }
        if batch.is_empty() {
            return;
        }
        self.record.updated_at = now_ms();
        self.mark_dirty(ctx);
        self.links.metrics.agent_messages.inc_by(batch.len() as u64);
        self.stats
            .memory
            .store(self.window_bytes, Ordering::Relaxed);
        // The batch's net effect on the tool in flight equals applying each message in order.
        let mut tool = None;
        let mut calls = Vec::new();
        for m in &batch {
            match m.role {
                MsgRole::ToolCall => {
                    tool = Some(m.tool_name.clone());
                    calls.push((
                        m.tool_name.clone().unwrap_or_default(),
                        m.tool_input.clone().unwrap_or_default(),
                    ));
                }
                MsgRole::ToolResult => tool = Some(None),
                _ => {}
            }
        }
        self.links.project.do_send(ProjectActivity {
            session_id: self.record.session_id.clone(),
            activity: super::health::Activity {
                tool,
                progress: signals.progress,
                retrying: signals.retrying,
                calls,
            },
        });
        // Only progress restarts the stall clock: an agent retrying its API for an hour has stalled.
        if signals.progress {
            self.touch(ctx);
        }
        let (session_id, project_id) = (
            self.record.session_id.clone(),
            self.record.project_id.clone(),
        );
        self.publish(move || LiveEvent::Messages {
            session_id,
            project_id,
            messages: batch.into(),
        });
    }

    fn apply_status(
        &mut self,
        status: AgentStatus,
        error: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        // Errors come from agents and sidecars: kept, but never a megabyte of them.
        let error = error.map(|e| numbers::bounded(e, MAX_STATUS_ERROR_BYTES));
        self.record.status = status;
        if error.is_some() {
            self.record.error = error.clone();
        } else if status == AgentStatus::Running {
            // Running again: the last run's error is history (its message stays in the session).
            self.record.error = None;
        }
        self.record.updated_at = now_ms();
        self.record_dirty = true;
        let (session_id, project_id) = (
            self.record.session_id.clone(),
            self.record.project_id.clone(),
        );
        let stored_error = self.record.error.clone();
        self.links.project.do_send(SessionStatusChanged {
            session_id: session_id.clone(),
            status,
            error: stored_error.clone(),
        });
        self.publish(|| LiveEvent::Status {
            session_id,
            project_id: project_id.clone(),
            status,
            error: stored_error,
        });
        match status {
            AgentStatus::Done => {
                self.notify(format!("Agent completed on {project_id}"), Variant::Success)
            }
            AgentStatus::Error => self.notify(
                format!(
                    "Agent error on {project_id}: {}",
                    error.as_deref().unwrap_or("unknown")
                ),
                Variant::Error,
            ),
            AgentStatus::Running => {
                self.spend.running();
                self.touch(ctx)
            }
            AgentStatus::Idle => {}
        }
        if status.is_finished() {
            if let Some(t) = self.stall_timer.take() {
                ctx.cancel_future(t);
            }
            self.retention_due = true;
        }
        // The record is written at once on every status change; finished sessions flush their messages too.
        self.flush_now(ctx);
    }

    fn apply_cost(&mut self, p: crate::messages::wire::CostPayload, ctx: &mut Context<Self>) {
        let totals = super::spend::Totals {
            usd: p.cost_usd,
            input: p.input_tokens,
            output: p.output_tokens,
        };
        let increase = self.spend.apply(&mut self.record, p.run, totals);
        if !increase.is_zero() {
            let exceeded = self
                .spend
                .account(increase, &self.record, &self.links, now_ms());
            if let Some(e) = exceeded.filter(|_| self.record.status == AgentStatus::Running) {
                let r = &self.record;
                self.links
                    .control
                    .announce_budget(&r.project_id, &r.session_id, &e);
                self.links.project.do_send(super::project::Halt {
                    session_id: r.session_id.clone(),
                    error: e.error(),
                    reason: super::project::HaltReason::Budget,
                });
            }
        }
        let (cost_usd, input_tokens, output_tokens) = (
            self.record.cost_usd,
            self.record.input_tokens,
            self.record.output_tokens,
        );
        self.record_dirty = true;
        self.mark_dirty(ctx);
        self.links.project.do_send(SessionCost {
            session_id: self.record.session_id.clone(),
            model: self.record.model.clone(),
            tokens: input_tokens.saturating_add(output_tokens),
            cost_usd,
        });
        let (session_id, project_id) = (
            self.record.session_id.clone(),
            self.record.project_id.clone(),
        );
        self.publish(|| LiveEvent::Cost {
            session_id,
            project_id,
            cost_usd,
            input_tokens,
            output_tokens,
        });
    }

    // ── stall timer ─────────────────────────────────────────────────────────────────────────────────────

    /// Activity restarts the stall clock. One timer per session, re-armed only when it fires early, so a
    /// busy session does not create a timer per message.
    fn touch(&mut self, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        if self.stall_timer.is_none() && self.record.status == AgentStatus::Running {
            self.arm_stall(self.stall_after, ctx);
        }
    }

    fn arm_stall(&mut self, after: Duration, ctx: &mut Context<Self>) {
        self.stall_timer = Some(ctx.run_later(after, |act, ctx| {
            act.stall_timer = None;
            if act.record.status != AgentStatus::Running {
                return;
            }
            let stall_after = act.stall_after;
            let idle = act.last_activity.elapsed();
            if idle >= stall_after {
                act.links.metrics.stalls.inc();
                let mins = stall_after.as_secs() / 60;
                let project_id = act.record.project_id.clone();
                act.notify(
                    format!("Agent stalled on {project_id} (no activity for {mins} min)"),
                    Variant::Warning,
                );
                // The project's stall action (issue 14): notify is the above; interrupt stops it.
                let action = act.links.control.policy(&project_id).stall.action;
                if action == crate::messages::policy::StallAction::Interrupt {
                    act.links.project.do_send(super::project::Halt {
                        session_id: act.record.session_id.clone(),
                        error: format!("Stalled: no progress for {mins} min"),
                        reason: super::project::HaltReason::Stall,
                    });
                }
            } else {
                act.arm_stall(stall_after - idle, ctx);
            }
        }));
    }

    // ── persistence ─────────────────────────────────────────────────────────────────────────────────────

    fn is_clean(&self) -> bool {
        !self.record_dirty && self.persisted_seq >= self.record.last_seq && !self.flush.in_flight
    }

    /// More messages wait for storage than a session may hold beyond its window.
    fn over_memory_bound(&self) -> bool {
        let unpersisted = self.record.last_seq - self.persisted_seq;
        unpersisted > self.links.config.limits.messages_in_memory as u64
    }

    fn mark_dirty(&mut self, ctx: &mut Context<Self>) {
        self.note_dirty();
        if self.flush.timer.is_none() && !self.flush.in_flight {
            let debounce = self.links.config.timers.persist_debounce;
            self.flush.timer = Some(ctx.run_later(debounce, |act, ctx| {
                act.flush.timer = None;
                act.flush_now(ctx);
            }));
        }
    }

    fn flush_now(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.flush.timer.take() {
            ctx.cancel_future(t);
        }
        if self.flush.in_flight {
            self.flush.again = true;
            return;
        }
        let unpersisted = (self.record.last_seq - self.persisted_seq) as usize;
        if unpersisted == 0 && !self.record_dirty {
            for w in self.flush.pending.drain(..) {
                let _ = w.send(Ok(()));
            }
            self.stop_if_let_go(ctx);
            return;
        }
        self.note_dirty();
        let mut ops = Vec::with_capacity(2);
        if unpersisted > 0 {
            let start = self.window.len() - unpersisted;
            ops.push(WriteOp::AppendMessages {
                session_id: self.record.session_id.clone(),
                messages: self.window.range(start..).cloned().collect(),
            });
        }
        // The ledger's rows travel with the record, so they are stored together or not at all.
        ops.extend(self.spend.take_ops(&self.record));
        ops.push(WriteOp::PutSession(self.record.clone()));
        let upto = self.record.last_seq;
        match self.links.persister.try_write(ops) {
            Ok(ack) => {
                let retention = std::mem::take(&mut self.retention_due);
                self.flush.in_flight = true;
                self.flush.again = false;
                self.record_dirty = false;
                self.flush.riding = std::mem::take(&mut self.flush.pending);
                ctx.spawn(
                    async move { ack.await.unwrap_or(Err(StorageError::Closed)) }
                        .into_actor(self)
                        .map(move |result, act, ctx| act.flush_done(upto, retention, result, ctx)),
                );
            }
            Err(TryWriteError::Full(_)) => {
                self.spend.not_stored();
                self.retry_later(None, ctx)
            }
            Err(TryWriteError::Closed) => {
                for w in self
                    .flush
                    .pending
                    .drain(..)
                    .chain(self.flush.room.drain(..))
                {
                    let _ = w.send(Err(CommandError::ShuttingDown));
                }
            }
        }
    }

    fn flush_done(
        &mut self,
        upto: u64,
        retention: bool,
        result: Result<(), StorageError>,
        ctx: &mut Context<Self>,
    ) {
        self.flush.in_flight = false;
        let riding = std::mem::take(&mut self.flush.riding);
        match result {
            Ok(()) => {
                self.persisted_seq = upto;
                self.spend.stored();
                if retention {
                    self.links.supervisor.do_send(EnforceRetention {
                        project_id: self.record.project_id.clone(),
                    });
                }
                self.flush.backoff = None;
                for w in riding {
                    let _ = w.send(Ok(()));
                }
                let limit = self.links.config.limits.messages_in_memory;
                while self.window.len() > limit
                    && self
                        .window
                        .front()
                        .is_some_and(|m| m.seq_id <= self.persisted_seq)
                {
                    if let Some(m) = self.window.pop_front() {
                        self.window_bytes -= approx_size(&m);
                    }
                }
                // A finished session is read rarely and all of it is in storage now: reads go there,
                // and memory holds only what live sessions are still writing.
                if self.record.status != AgentStatus::Running && self.is_clean() {
                    self.window = VecDeque::new();
                    self.window_bytes = 0;
                }
                self.stats
                    .memory
                    .store(self.window_bytes, Ordering::Relaxed);
                if let (Some(since), true) = (self.dirty_since, self.is_clean()) {
                    self.links
                        .metrics
                        .persist_lag
                        .observe(since.elapsed().as_secs_f64());
                    self.links.metrics.dirty_sessions.dec();
                    self.dirty_since = None;
                }
                if !self.over_memory_bound() {
                    for w in self.flush.room.drain(..) {
                        let _ = w.send(Ok(()));
                    }
                }
                if self.flush.again || !self.flush.pending.is_empty() || !self.flush.room.is_empty()
                {
                    self.flush_now(ctx);
                } else if !self.is_clean() {
                    self.mark_dirty(ctx);
                } else {
                    self.stop_if_let_go(ctx);
                }
            }
            Err(e) => {
                // Everything stays in memory and is written again; a durable caller learns it is not yet safe.
                self.record_dirty = true;
                self.spend.not_stored();
                self.retention_due |= retention;
                let err = CommandError::from(e);
                for w in riding {
                    let _ = w.send(Err(err.clone()));
                }
                self.retry_later(Some(err), ctx);
            }
        }
    }

    /// A session its project let go of stops once everything it holds is stored.
    fn stop_if_let_go(&mut self, ctx: &mut Context<Self>) {
        if self.detached && self.record.status != AgentStatus::Running && self.is_clean() {
            ctx.stop();
        }
    }

    fn retry_later(&mut self, error: Option<CommandError>, ctx: &mut Context<Self>) {
        let timers = &self.links.config.timers;
        let delay = self.flush.backoff.map_or(timers.persist_retry, |d| {
            (d * 2).min(timers.persist_retry_max)
        });
        self.flush.backoff = Some(delay);
        if let Some(err) = error {
            tracing::warn!(session_id = %self.record.session_id, error = %err, retry_in = ?delay, "persist failed");
        }
        if self.flush.timer.is_none() {
            self.flush.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.flush.timer = None;
                act.flush_now(ctx);
            }));
        }
    }

    fn view(&self, page: Page) -> SessionView {
        let after = page.after_seq.unwrap_or(0);
        let start = self.window.partition_point(|m| m.seq_id <= after);
        let r = &self.record;
        SessionView {
            oldest_in_memory: self.window.front().map_or(r.last_seq + 1, |m| m.seq_id),
            session: AgentSession {
                session_id: r.session_id.clone(),
                project_id: r.project_id.clone(),
                provider: r.provider.clone(),
                status: r.status,
                messages: self.window.range(start..).cloned().collect(),
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
        tool_name: None,
        tool_input: None,
        tool_path: None,
        timestamp,
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.links.metrics.actor_started(ActorKind::Session);
        if !self.is_clean() {
            // A new session: subscribers hear of it at once, its status and its prompt.
            let (session_id, project_id) = (
                self.record.session_id.clone(),
                self.record.project_id.clone(),
            );
            let (status, error) = (self.record.status, self.record.error.clone());
            let messages: Arc<[SharedMessage]> = self.window.iter().cloned().collect();
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
        if self.record.status == AgentStatus::Running {
            self.touch(ctx);
        }
        if !self.is_clean() {
            self.flush_now(ctx);
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.links
            .metrics
            .actor_stopped(ActorKind::Session, self.stop_reason);
        if self.dirty_since.take().is_some() {
            self.links.metrics.dirty_sessions.dec();
        }
        for w in self
            .flush
            .pending
            .drain(..)
            .chain(self.flush.riding.drain(..))
        {
            let _ = w.send(Err(CommandError::SessionNotFound));
        }
        // Plain deliveries were taken; what became of the session since is not their concern.
        for w in self.flush.room.drain(..) {
            let _ = w.send(Ok(()));
        }
        self.links.supervisor.do_send(SessionGone {
            session_id: self.record.session_id.clone(),
            instance: Arc::as_ptr(&self.stats) as usize,
        });
    }
}

impl Handler<Deliver> for SessionActor {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) -> Self::Result {
        for event in msg.events {
            match event {
                SidecarEvent::Message(p) => self.apply_messages(p.messages, ctx),
                SidecarEvent::Status(p) => {
                    self.apply_status(AgentStatus::normalize(&p.status), p.error, ctx)
                }
                SidecarEvent::Cost(p) => self.apply_cost(p, ctx),
            }
        }
        if !msg.durable && !self.over_memory_bound() {
            return Box::pin(async { Ok(()) });
        }
        let (tx, rx) = oneshot::channel();
        if msg.durable {
            self.flush.pending.push(tx);
        } else {
            // Held until storage catches up; a failing write keeps it waiting while it is retried.
            self.flush.room.push(tx);
        }
        self.flush_now(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(CommandError::ShuttingDown)) })
    }
}

impl Handler<AddUserMessage> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: AddUserMessage, ctx: &mut Context<Self>) {
        let message = user_message(self.id(), msg.prompt, now_ms(), false);
        let shared = self.append(message, ctx);
        let (session_id, project_id) = (
            self.record.session_id.clone(),
            self.record.project_id.clone(),
        );
        self.publish(|| LiveEvent::Messages {
            session_id,
            project_id,
            messages: vec![shared].into(),
        });
        self.detached = false;
        if self.record.status != AgentStatus::Running {
            self.apply_status(AgentStatus::Running, None, ctx);
        } else {
            self.touch(ctx);
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
        self.detached = true;
        if self.is_clean() && self.record.status != AgentStatus::Running {
            ctx.stop();
        }
    }
}

impl Handler<Discard> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Discard, ctx: &mut Context<Self>) {
        self.stop_reason = msg.reason;
        ctx.stop();
    }
}

impl Handler<FlushNow> for SessionActor {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, _: FlushNow, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flush.pending.push(tx);
        self.flush_now(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(CommandError::ShuttingDown)) })
    }
}

/// A project took this session back (loadLastSession of a session still in memory).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach;

impl Handler<Attach> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: Attach, _: &mut Context<Self>) {
        self.detached = false;
    }
}

/// What a message costs the window, roughly: its text plus fixed overhead.
fn approx_size(m: &AgentMessage) -> u64 {
    (std::mem::size_of::<AgentMessage>()
        + m.id.len()
        + m.content.len()
        + m.tool_name.as_ref().map_or(0, String::len)
        + m.tool_input.as_ref().map_or(0, String::len)
        + m.tool_path.as_ref().map_or(0, String::len)) as u64
}

impl Metered for SessionActor {
    const KIND: ActorKind = ActorKind::Session;

    fn meter(&self) -> (&MailboxStats, &Metrics) {
        (&self.stats, &self.links.metrics)
    }

    fn ids(&self) -> (&str, Option<&str>) {
        (&self.record.project_id, Some(&self.record.session_id))
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
    SetStallAfter
);

/// The project's stall threshold changed: restart the stall clock's timer with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStallAfter(pub Duration);

impl Handler<SetStallAfter> for SessionActor {
    type Result = ();

    fn handle(&mut self, SetStallAfter(after): SetStallAfter, ctx: &mut Context<Self>) {
        self.stall_after = after;
        if let Some(t) = self.stall_timer.take() {
            ctx.cancel_future(t);
        }
        if self.record.status == AgentStatus::Running {
            let idle = self.last_activity.elapsed();
            self.arm_stall(after.saturating_sub(idle), ctx);
        }
    }
}
