//! One actor per project: its current session, the start guard, the cleanup grace after done/error and the
//! inputs of its health. Commands for a project are serialised here, so the original's double-start race
//! cannot happen: "starting" is a state of this actor, not a lock.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;

use super::broadcaster::Publish;
use super::health::HealthTracker;
use super::metrics::{ActorKind, Mailbox, MailboxStats, Metered, Metrics};
use super::session::{
    user_message, AddUserMessage, Attach, Detach, FlushNow, SessionActor, SessionInit,
    SessionLinks, SetStallAfter, SetStatus,
};
use super::supervisor::{FindSession, RegisterSession, Supervisor};
use super::wake::Wake;
use crate::engine::Started;
use crate::error::CommandError;
use crate::messages::commands::{LiveEvent, ProjectSummary};
use crate::messages::wire::{now_ms, AgentStatus, ProjectHealth};
use crate::providers::{EventSink, Provider, Providers, StartSpec};
use crate::storage::{SessionRecord, Store};

/// What every project actor shares with the engine.
#[derive(Clone)]
pub struct ProjectLinks {
    pub supervisor: Mailbox<Supervisor>,
    pub providers: Providers,
    pub store: Store,
    pub sink: EventSink,
    /// Session links without the project address, which each project fills in.
    pub session: SessionLinksBase,
}

impl ProjectLinks {
    /// What a session of `project` needs to reach the rest of the engine.
    pub fn session_links(&self, project: Mailbox<ProjectActor>) -> SessionLinks {
        let b = &self.session;
        SessionLinks {
            config: b.config.clone(),
            project,
            supervisor: self.supervisor.clone(),
            broadcaster: b.broadcaster.clone(),
            subscribers: b.subscribers.clone(),
            persister: b.persister.clone(),
            metrics: b.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct SessionLinksBase {
    pub config: Arc<crate::config::Config>,
    pub broadcaster: Mailbox<super::broadcaster::Broadcaster>,
    pub subscribers: Arc<std::sync::atomic::AtomicUsize>,
    pub persister: super::persister::PersisterHandle,
    pub metrics: Arc<Metrics>,
}

struct Current {
    session_id: String,
    addr: Mailbox<SessionActor>,
    status: AgentStatus,
    provider: String,
}

pub struct ProjectActor {
    project_id: String,
    links: Arc<ProjectLinks>,
    current: Option<Current>,
    starting: bool,
    cleanup: Option<SpawnHandle>,
    /// Stops asked for while a start was in flight: answered once the agent has started and been stopped.
    stops_waiting: Vec<tokio::sync::oneshot::Sender<Result<(), CommandError>>>,
    last_id_ms: i64,
    health: HealthTracker,
    /// This actor's own mailbox, handed to its sessions.
    me: Option<Mailbox<ProjectActor>>,
    /// This project's stall threshold, when it differs from `timers.stall_after`.
    stall_override: Option<std::time::Duration>,
    /// What subscribers were last told of this project's health.
    last_health: Option<HealthKey>,
    /// Wakes the project when an idle session would turn stalled, so the change is published on time.
    health_timer: Option<SpawnHandle>,
    wake: Wake,
    stats: Arc<MailboxStats>,
}

impl ProjectActor {
    pub fn new(
        project_id: String,
        links: Arc<ProjectLinks>,
        stats: Arc<MailboxStats>,
    ) -> ProjectActor {
        let stall_after = links.session.config.timers.stall_after;
        ProjectActor {
            project_id,
            links,
            current: None,
            starting: false,
            cleanup: None,
            stops_waiting: Vec::new(),
            last_id_ms: 0,
            health: HealthTracker::new(stall_after),
            me: None,
            stall_override: None,
            last_health: None,
            health_timer: None,
            wake: Wake::default(),
            stats,
        }
    }

    fn stall_after(&self) -> std::time::Duration {
        self.stall_override
            .unwrap_or(self.links.session.config.timers.stall_after)
    }

    /// Publishes `project.health` when the state or attention changed, never on every message, and
    /// wakes itself when an idle session would cross the stall threshold.
    fn health_changed(&mut self, ctx: &mut Context<Self>) {
        let health = self.health_now();
        let key = HealthKey::of(&health);
        if self.last_health.as_ref() != Some(&key) {
            self.last_health = Some(key);
            // Journalled for reconnecting clients whether or not anyone listens now.
            self.links
                .session
                .broadcaster
                .do_send(Publish(LiveEvent::Health(health.clone())));
        }
        // Armed once per change of deadline: activity moves it later, and the armed timer then fires
        // early and re-arms once (see `Wake`), so a batch of events costs no timer per event.
        let now = Instant::now();
        if let Some(at) = self.wake.want(self.health.stall_deadline(now)) {
            if let Some(t) = self.health_timer.take() {
                ctx.cancel_future(t);
            }
            self.metrics()
                .timer_arms
                .with_label_values(&["health"])
                .inc();
            // A millisecond past the deadline, so the state has turned when the timer fires.
            let after = at.saturating_duration_since(now) + std::time::Duration::from_millis(1);
            self.health_timer = Some(ctx.run_later(after, |act, ctx| {
                act.health_timer = None;
                act.wake.fired();
                act.health_changed(ctx);
            }));
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

    fn session_links(&self, ctx: &Context<Self>) -> SessionLinks {
        let project = self.me.clone().unwrap_or_else(|| {
            Mailbox::new(
                ctx.address(),
                self.stats.clone(),
                self.metrics().clone(),
                ActorKind::Project,
            )
        });
        self.links.session_links(project)
    }

    /// `<projectId>-<unix ms>`, unique even for two starts in one millisecond.
    fn next_session_id(&mut self) -> String {
        let ms = now_ms().max(self.last_id_ms + 1);
        self.last_id_ms = ms;
        format!("{}-{ms}", self.project_id)
    }

    fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, CommandError> {
        self.links.providers.get(name).ok_or_else(|| {
            CommandError::Provider(format!("provider {name} is no longer configured"))
        })
    }

    fn cancel_cleanup(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.cleanup.take() {
            ctx.cancel_future(h);
        }
    }

    /// Lets go of the current session; its data stays readable through the supervisor and storage.
    fn detach(&mut self, ctx: &mut Context<Self>) {
        self.cancel_cleanup(ctx);
        if let Some(cur) = self.current.take() {
            cur.addr.do_send(Detach);
        }
        self.health.set_session(None, Instant::now());
        self.health_changed(ctx);
    }

    fn attach(
        &mut self,
        session_id: String,
        addr: Mailbox<SessionActor>,
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

    fn is_current(&self, session_id: &str) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.session_id == session_id)
    }

    fn current(&self) -> Result<&Current, CommandError> {
        self.current.as_ref().ok_or(CommandError::NoSession)
    }

    fn health_now(&self) -> ProjectHealth {
        self.health.snapshot(&self.project_id, Instant::now())
    }
}

impl Actor for ProjectActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics().actor_started(ActorKind::Project);
        // A new project is inactive; only changes from here on are news.
        self.last_health = Some(HealthKey::of(&self.health_now()));
        self.me = Some(Mailbox::new(
            ctx.address(),
            self.stats.clone(),
            self.metrics().clone(),
            ActorKind::Project,
        ));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics()
            .actor_stopped(ActorKind::Project, super::metrics::StopReason::Purge);
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
            self.current.as_ref().map(|c| c.session_id.as_str()),
        )
    }
}

crate::instrument!(
    ProjectActor: StartSession,
    StopSession,
    PromptSession,
    CurrentSession,
    ClearSession,
    RestoreLast,
    ForgetSession,
    Summarize,
    ProjectActivity,
    SessionCost,
    SessionStatusChanged,
    SetStallThreshold,
);

/// startAgent, with the request already validated and its defaults resolved by the supervisor.
#[derive(Message)]
#[rtype(result = "Result<Started, CommandError>")]
pub struct StartSession {
    pub spec: StartSpec,
}

impl Handler<StartSession> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<Started, CommandError>>;

    fn handle(&mut self, msg: StartSession, ctx: &mut Context<Self>) -> Self::Result {
        let refuse = |e| Box::pin(fut::ready(Err(e))) as Self::Result;
        if self.starting {
            return refuse(CommandError::StartInProgress);
        }
        let provider = match self.provider(&msg.spec.provider) {
            Ok(p) => p,
            Err(e) => return refuse(e),
        };
        if let Some(cur) = &self.current {
            match cur.status {
                AgentStatus::Running => return refuse(CommandError::AlreadyRunning),
                // An idle agent may still be alive: stop it rather than leave it orphaned.
                AgentStatus::Idle => {
                    if let Ok(p) = self.provider(&cur.provider) {
                        actix::spawn(p.stop(&cur.session_id));
                    }
                }
                AgentStatus::Done | AgentStatus::Error => {}
            }
        }
        self.detach(ctx);

        let mut spec = msg.spec;
        spec.session_id = self.next_session_id();
        spec.project_id = self.project_id.clone();
        super::restart::keep_start(&self.links.session.persister, &spec);
        let now = now_ms();
        let first = user_message(&spec.session_id, spec.prompt.clone(), now, true);
        let record = SessionRecord {
            session_id: spec.session_id.clone(),
            project_id: self.project_id.clone(),
            provider: spec.provider.clone(),
            status: AgentStatus::Running,
            cost_usd: 0.0,
            input_tokens: 0,
            output_tokens: 0,
            model: spec.model.clone(),
            error: None,
            created_at: now,
            updated_at: now,
            last_seq: 1,
            message_count: 1,
            provider_session_id: None,
        };
        let mut first = first;
        first.seq_id = 1;
        let init = SessionInit {
            record,
            recent: vec![Arc::new(first)],
            persisted: false,
            stall_after: self.stall_after(),
            detached: false,
        };
        let addr = self.spawn_session(init, ctx);
        // Registered before the provider starts, so none of its output can arrive before the route exists.
        self.links.supervisor.do_send(RegisterSession {
            session_id: spec.session_id.clone(),
            addr: addr.clone(),
        });
        self.attach(
            spec.session_id.clone(),
            addr.clone(),
            AgentStatus::Running,
            spec.provider.clone(),
        );
        self.health_changed(ctx);
        self.starting = true;

        let session_id = spec.session_id.clone();
        let sink = self.links.sink.clone();
        let stopper = provider.clone();
        let recorded = addr.send(FlushNow);
        // The record is committed before the agent starts, so an accepted start survives a crash (as
        // "Interrupted") and shows in the project's history at once. A storage failure does not stop the
        // start: the session keeps retrying its write.
        let started = async move {
            if let Ok(Err(e)) = recorded.await {
                tracing::warn!(error = %e, "new session record not yet stored; retrying in the background");
            }
            provider.start(spec, sink).await
        };
        Box::pin(started.into_actor(self).map(move |result, act, _| {
            act.starting = false;
            let stops = std::mem::take(&mut act.stops_waiting);
            match result {
                Ok(()) => {
                    if !stops.is_empty() {
                        // A stop came while the agent was starting: it applies to the agent now running.
                        let stopping = stopper.stop(&session_id);
                        let addr = addr.clone();
                        actix::spawn(async move {
                            let result = stopping.await.map_err(CommandError::Provider);
                            if result.is_ok() {
                                addr.do_send(SetStatus {
                                    status: AgentStatus::Done,
                                    error: None,
                                });
                            }
                            for stop in stops {
                                let _ = stop.send(result.clone());
                            }
                        });
                    }
                    Ok(Started { session_id })
                }
                Err(error) => {
                    addr.do_send(SetStatus {
                        status: AgentStatus::Error,
                        error: Some(error.clone()),
                    });
                    // Nothing started, so nothing is left to stop.
                    for stop in stops {
                        let _ = stop.send(Ok(()));
                    }
                    Err(CommandError::ProviderFailed { session_id, error })
                }
            }
        }))
    }
}

/// stopAgent.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct StopSession;

impl Handler<StopSession> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;

    fn handle(&mut self, _: StopSession, _: &mut Context<Self>) -> Self::Result {
        if self.starting {
            // Stopping now would reach no agent, and the start would then run one: wait for it instead.
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.stops_waiting.push(tx);
            return Box::pin(fut::wrap_future(async move {
                rx.await.unwrap_or(Err(CommandError::ShuttingDown))
            }));
        }
        let prepared = self.current().and_then(|cur| {
            Ok((
                self.provider(&cur.provider)?,
                cur.session_id.clone(),
                cur.addr.clone(),
                cur.status,
            ))
        });
        let (provider, session_id, addr, status) = match prepared {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let stopping = provider.stop(&session_id);
        Box::pin(stopping.into_actor(self).map(move |result, _, _| {
            result.map_err(CommandError::Provider)?;
            if !status.is_finished() {
                addr.do_send(SetStatus {
                    status: AgentStatus::Done,
                    error: None,
                });
            }
            Ok(())
        }))
    }
}

/// sendPrompt.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct PromptSession {
    pub prompt: String,
}

impl Handler<PromptSession> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;

    fn handle(&mut self, msg: PromptSession, ctx: &mut Context<Self>) -> Self::Result {
        let prepared = self.current().and_then(|cur| {
            if !cur.addr.connected() {
                return Err(CommandError::SessionNotFound);
            }
            Ok((
                self.provider(&cur.provider)?,
                cur.session_id.clone(),
                cur.addr.clone(),
            ))
        });
        let (provider, session_id, addr) = match prepared {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        // Refused before it is stored: a prompt the agent cannot take must not sit in the session unsent.
        if let Err(why) = provider.accepts_prompt(&session_id) {
            return Box::pin(fut::ready(Err(CommandError::Undeliverable(why))));
        }
        self.cancel_cleanup(ctx);
        if let Some(cur) = &mut self.current {
            cur.status = AgentStatus::Running;
        }
        self.health.set_status(AgentStatus::Running, None);
        self.health.record_activity(None, Instant::now());
        self.health_changed(ctx);
        addr.do_send(AddUserMessage {
            prompt: msg.prompt.clone(),
        });
        let sending = provider.prompt(&session_id, msg.prompt);
        Box::pin(
            sending
                .into_actor(self)
                .map(|result, _, _| result.map_err(CommandError::Provider)),
        )
    }
}

/// The current session's actor, for getSession.
#[derive(Message)]
#[rtype(result = "Result<Mailbox<SessionActor>, CommandError>")]
pub struct CurrentSession;

impl Handler<CurrentSession> for ProjectActor {
    type Result = Result<Mailbox<SessionActor>, CommandError>;

    fn handle(&mut self, _: CurrentSession, _: &mut Context<Self>) -> Self::Result {
        Ok(self.current()?.addr.clone())
    }
}

/// clearSession: only a done/error session is let go.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct ClearSession;

impl Handler<ClearSession> for ProjectActor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, _: ClearSession, ctx: &mut Context<Self>) -> Self::Result {
        match &self.current {
            None => Ok(()),
            Some(cur) if cur.status.is_finished() => {
                self.detach(ctx);
                Ok(())
            }
            Some(_) => Err(CommandError::SessionRunning),
        }
    }
}

/// loadLastSession.
#[derive(Message)]
#[rtype(result = "Result<bool, CommandError>")]
pub struct RestoreLast;

impl Handler<RestoreLast> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<bool, CommandError>>;

    fn handle(&mut self, _: RestoreLast, _: &mut Context<Self>) -> Self::Result {
        if self.starting
            || self
                .current
                .as_ref()
                .is_some_and(|c| !c.status.is_finished())
        {
            return Box::pin(fut::ready(Ok(false)));
        }
        let store = self.links.store.clone();
        let supervisor = self.links.supervisor.clone();
        let window = self.links.session.config.limits.messages_in_memory as u64;
        let project_id = self.project_id.clone();
        let read = async move {
            let found = tokio::task::spawn_blocking(move || -> Result<_, CommandError> {
                let Some(record) = store.last_session(&project_id)? else {
                    return Ok(None);
                };
                if !record.status.is_finished() {
                    return Ok(None);
                }
                let after = record.last_seq.saturating_sub(window);
                let recent = store.messages(&record.session_id, after, None, None)?;
                Ok(Some((record, recent)))
            })
            .await
            .map_err(|e| CommandError::Storage(e.to_string()))??;
            let Some((record, recent)) = found else {
                return Ok(None);
            };
            let live = supervisor
                .send(FindSession {
                    session_id: record.session_id.clone(),
                })
                .await?;
            Ok::<_, CommandError>(Some((record, recent, live)))
        };
        Box::pin(read.into_actor(self).map(|result, act, ctx| {
            let Some((record, recent, live)) = result? else {
                return Ok(false);
            };
            // A start may have won the race while storage was read: never overwrite it.
            if act.starting
                || act
                    .current
                    .as_ref()
                    .is_some_and(|c| !c.status.is_finished())
            {
                return Ok(false);
            }
            if act.is_current(&record.session_id) {
                return Ok(true);
            }
            act.detach(ctx);
            let addr = match live {
                Some(addr) => {
                    addr.do_send(Attach);
                    addr
                }
                None => {
                    let init = SessionInit {
                        recent: recent.into_iter().map(Arc::new).collect(),
                        record: record.clone(),
                        persisted: true,
                        stall_after: act.stall_after(),
                        detached: false,
                    };
                    act.metrics()
                        .actor_restarts
                        .with_label_values(&[ActorKind::Session.as_str()])
                        .inc();
                    let addr = act.spawn_session(init, ctx);
                    act.links.supervisor.do_send(RegisterSession {
                        session_id: record.session_id.clone(),
                        addr: addr.clone(),
                    });
                    addr
                }
            };
            act.last_id_ms = act.last_id_ms.max(record.created_at);
            act.attach(record.session_id, addr, record.status, record.provider);
            act.health.set_status(record.status, record.error);
            act.health_changed(ctx);
            Ok(true)
        }))
    }
}

/// A session of this project was purged or evicted: forget it if it is the current one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetSession {
    pub session_id: String,
}

impl Handler<ForgetSession> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: ForgetSession, ctx: &mut Context<Self>) {
        if self.is_current(&msg.session_id) {
            self.cancel_cleanup(ctx);
            if let Some(cur) = self.current.take() {
                // A purged running session's agent must not outlive it.
                if !cur.status.is_finished() {
                    if let Ok(p) = self.provider(&cur.provider) {
                        actix::spawn(p.stop(&cur.session_id));
                    }
                }
            }
            self.health.set_session(None, Instant::now());
            self.health_changed(ctx);
        }
    }
}

/// The project as `GET /v1/projects` lists it.
#[derive(Message)]
#[rtype(result = "ProjectSummary")]
pub struct Summarize;

impl Handler<Summarize> for ProjectActor {
    type Result = ProjectSummary;

    fn handle(&mut self, _: Summarize, _: &mut Context<Self>) -> Self::Result {
        ProjectSummary {
            project_id: self.project_id.clone(),
            session_id: self.current.as_ref().map(|c| c.session_id.clone()),
            status: self.current.as_ref().map(|c| c.status),
            health: self.health_now(),
        }
    }
}

// ── health inputs, from the project's sessions ─────────────────────────────────────────────────────────

/// A batch of messages arrived; what it did, as health counts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProjectActivity {
    pub session_id: String,
    pub activity: super::health::Activity,
}

impl Handler<ProjectActivity> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: ProjectActivity, ctx: &mut Context<Self>) {
        if !self.is_current(&msg.session_id) {
            return;
        }
        self.health.record(msg.activity, Instant::now());
        self.health_changed(ctx);
    }
}

/// agent.cost arrived: a token and cost snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionCost {
    pub session_id: String,
    /// The session's model, whose context window sets the pressure.
    pub model: String,
    pub tokens: u64,
    pub cost_usd: f64,
}

impl Handler<SessionCost> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: SessionCost, ctx: &mut Context<Self>) {
        if self.is_current(&msg.session_id) {
            let limit = self.links.session.config.health.context_limit(&msg.model);
            self.health.set_context_limit(limit);
            self.health
                .record_token_snapshot(msg.tokens, msg.cost_usd, Instant::now());
            self.health_changed(ctx);
        }
    }
}

/// A session's status changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionStatusChanged {
    pub session_id: String,
    pub status: AgentStatus,
    pub error: Option<String>,
}

impl Handler<SessionStatusChanged> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: SessionStatusChanged, ctx: &mut Context<Self>) {
        if self.is_current(&msg.session_id) {
            if let Some(cur) = &mut self.current {
                cur.status = msg.status;
            }
            self.health.set_status(msg.status, msg.error);
            self.health_changed(ctx);
            self.cancel_cleanup(ctx);
            if msg.status.is_finished() {
                let grace = self.links.session.config.timers.cleanup_grace;
                let session_id = msg.session_id.clone();
                self.cleanup = Some(ctx.run_later(grace, move |act, ctx| {
                    act.cleanup = None;
                    let still_finished = act
                        .current
                        .as_ref()
                        .is_some_and(|c| c.session_id == session_id && c.status.is_finished());
                    if still_finished {
                        act.detach(ctx);
                    }
                }));
            }
        }
    }
}

/// This project's own stall threshold (None: back to `timers.stall_after`). Applies to health and to the
/// current session's stall notification at once.
#[derive(Message)]
#[rtype(result = "ProjectHealth")]
pub struct SetStallThreshold(pub Option<std::time::Duration>);

impl Handler<SetStallThreshold> for ProjectActor {
    type Result = ProjectHealth;

    fn handle(
        &mut self,
        SetStallThreshold(after): SetStallThreshold,
        ctx: &mut Context<Self>,
    ) -> ProjectHealth {
        self.stall_override = after;
        let stall_after = self.stall_after();
        self.health.set_stall_after(stall_after);
        if let Some(cur) = &self.current {
            cur.addr.do_send(SetStallAfter(stall_after));
        }
        self.health_changed(ctx);
        self.health_now()
    }
}

/// The parts of a project's health whose change is news: not the idle clock or the burn rate, which move
/// all the time.
#[derive(Debug, Clone, PartialEq)]
struct HealthKey {
    session_id: Option<String>,
    state: crate::messages::wire::ActivityState,
    active_tool: Option<String>,
    score: u32,
    reason: Option<String>,
}

impl HealthKey {
    fn of(h: &ProjectHealth) -> HealthKey {
        // The stalled reason counts minutes; a new minute is not a new state.
        let reason = match h.activity_state {
            crate::messages::wire::ActivityState::Stalled => None,
            _ => h.attention_reason.clone(),
        };
        HealthKey {
            session_id: h.session_id.clone(),
            state: h.activity_state,
            active_tool: h.active_tool.clone(),
            score: h.attention_score,
            reason,
        }
    }
}
