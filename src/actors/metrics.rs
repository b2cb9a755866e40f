//! Actor metrics: one Prometheus registry per engine, exposed at `GET /metrics`.
//!
//! Labels name actor types, messages and reasons only, never projects or sessions: 100,000 projects would
//! be 100,000 series. Per-actor detail lives in the mailbox stats behind `/v1/debug/top`. The mailbox
//! depths, waits and handling times are counted by the mailboxes themselves (`src/actors/mailbox.rs`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// The actor types that carry labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    Supervisor,
    Project,
    Session,
    Broadcaster,
    /// The persister thread: its job queue is its mailbox.
    Persister,
    /// One per arbiter: the session routes and the ingest path of that arbiter's projects.
    Router,
}

impl ActorKind {
    pub const ALL: [ActorKind; 6] = [
        ActorKind::Supervisor,
        ActorKind::Project,
        ActorKind::Session,
        ActorKind::Broadcaster,
        ActorKind::Persister,
        ActorKind::Router,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Supervisor => "supervisor",
            ActorKind::Project => "project",
            ActorKind::Session => "session",
            ActorKind::Broadcaster => "broadcaster",
            ActorKind::Persister => "persister",
            ActorKind::Router => "router",
        }
    }
}

pub use crate::messages::session::StopReason;
use crate::messages::wire::SidecarEvent;

/// Instrumented (actor, message) pairs whose children (handled count, handling time) are kept resolved;
/// there are about a hundred, and a pair past this many (none today) resolves its labels per message.
const HANDLING_SLOTS: usize = 256;

/// One message in this many on average, drawn at random where it is sent, has its mailbox wait and
/// handling time recorded (actors/mailbox.rs says why); `messages_handled_total` counts every one.
pub const TIMED_EVERY: u32 = 16;

/// Seconds buckets from 10 µs to 10 s: actor handling is microseconds, commits are milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric of one engine. Cheap to clone handles; hot paths hold pre-labelled children.
pub struct Metrics {
    pub registry: Registry,
    pub actors_alive: IntGaugeVec,
    pub actors_started: IntCounterVec,
    pub actors_stopped: IntCounterVec,
    pub actor_restarts: IntCounterVec,
    pub mailbox_depth: IntGaugeVec,
    /// Deepest single mailbox of each type since the previous scrape.
    pub mailbox_depth_max: IntGaugeVec,
    mailbox_high_water: [AtomicI64; 6],
    /// The per-type children of `mailbox_depth` and `mailbox_wait`, resolved once: every message touches them.
    pub(super) depth_of: [IntGauge; 6],
    /// The per-type children of `actors_alive` and `actors_started`: every session start and stop touches them.
    alive_of: [IntGauge; 6],
    started_of: [IntCounter; 6],
    /// The children of `actors_stopped` by type and reason: every session and project that stops counts.
    stopped_of: [[IntCounter; 5]; 6],
    pub(super) wait_of: [Histogram; 6],
    pub mailbox_wait: HistogramVec,
    pub handling: HistogramVec,
    /// The children of `handling`, one per (actor, message) pair at its `mailbox::MessageSlot` index,
    /// each resolved on the pair's first timed message.
    handling_of: Box<[OnceLock<Histogram>]>,
    /// Every message handled, by actor type and message: exact, where the timings are a sample.
    pub handled: IntCounterVec,
    /// The children of `handled`, as `handling_of`.
    handled_of: Box<[OnceLock<IntCounter>]>,
    pub messages_dropped: IntCounterVec,
    pub dead_letters: IntCounter,
    pub duplicate_messages: IntCounter,
    pub events_ingested: IntCounterVec,
    /// The children of `events_ingested`, by `SidecarEvent::kind_index`, resolved once.
    pub(super) ingested_of: [IntCounter; SidecarEvent::KINDS.len()],
    pub events_rejected: IntCounterVec,
    pub agent_messages: IntCounter,
    pub notifications: IntCounterVec,
    pub stalls: IntCounter,
    pub timer_arms: IntCounterVec,
    pub retention_evictions: IntCounter,
    pub dirty_sessions: IntGauge,
    pub persist_lag: Histogram,
    pub commit_duration: Histogram,
    pub commits: IntCounterVec,
    pub batch_rows: IntCounter,
    pub persisted_messages: IntCounter,
    pub persist_queue: IntGauge,
    pub redb_file_size: IntGauge,
    pub redb_cache_size: IntGauge,
    pub redb_cache_used: IntGauge,
    pub window_budget: IntGauge,
    pub window_used: IntGauge,
    pub window_trims: IntCounter,
    pub window_waits: IntCounter,
    pub storage_writable: IntGauge,
    pub corrupt_rows: IntCounter,
    pub sse_subscribers: IntGauge,
    pub sse_lagged: IntCounter,
    pub http_requests: IntCounterVec,
    /// Agents control (issue 15): spend by provider and model (never by project), budgets, approvals.
    pub cost_usd: prometheus::CounterVec,
    pub tokens: IntCounterVec,
    pub budget_exceeded: IntCounter,
    pub approvals: IntCounterVec,
}

/// Every metric of ours carries the service prefix; the process collector's keep their standard names.
fn prefixed(name: &str) -> String {
    format!("agent_store_{name}")
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(prefixed(name), help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(prefixed(name), help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(prefixed(name), help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(prefixed(name), help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(
        HistogramOpts::new(prefixed(name), help).buckets(LATENCY_BUCKETS.to_vec()),
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(prefixed(name), help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

/// Applies `f` to the child a (actor, message) pair keeps at `slot`, resolving it on first use; a slot past
/// the table's end resolves its labels every time.
fn with_child<T>(
    slots: &[OnceLock<T>],
    slot: usize,
    resolve: impl FnOnce() -> T,
    f: impl FnOnce(&T),
) {
    match slots.get(slot) {
        Some(child) => f(child.get_or_init(resolve)),
        None => f(&resolve()),
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let r = Registry::new();
        let mailbox_depth = gauge_vec(
            &r,
            "mailbox_depth",
            "Messages sent and not yet handled, summed over the actors of a type.",
            &["actor"],
        );
        let mailbox_wait = histogram_vec(
            &r,
            "mailbox_wait_seconds",
            &format!(
                "Time from send to the start of handling, by actor type; one message in {TIMED_EVERY} \
                 on average is timed, drawn at random."
            ),
            &["actor"],
        );
        let events_ingested = counter_vec(
            &r,
            "events_ingested_total",
            "Sidecar events routed, by kind.",
            &["kind"],
        );
        let actors_alive = gauge_vec(
            &r,
            "actors_alive",
            "Actors running now, by type.",
            &["actor"],
        );
        let actors_started = counter_vec(
            &r,
            "actors_started_total",
            "Actors started, by type.",
            &["actor"],
        );
        let actors_stopped = counter_vec(
            &r,
            "actors_stopped_total",
            "Actors stopped, by type and reason (completed, retention, purge, shutdown, failure).",
            &["actor", "reason"],
        );
        let m = Metrics {
            alive_of: ActorKind::ALL.map(|k| actors_alive.with_label_values(&[k.as_str()])),
            started_of: ActorKind::ALL.map(|k| actors_started.with_label_values(&[k.as_str()])),
            stopped_of: ActorKind::ALL.map(|k| {
                StopReason::ALL.map(|r| actors_stopped.with_label_values(&[k.as_str(), r.as_str()]))
            }),
            actors_alive,
            actors_started,
            actors_stopped,
            actor_restarts: counter_vec(
                &r,
                "actor_restarts_total",
                "Actors started again for state that had stopped (a stored session restored), by type.",
                &["actor"],
            ),
            mailbox_depth: mailbox_depth.clone(),
            mailbox_depth_max: gauge_vec(
                &r,
                "mailbox_depth_max",
                "Deepest single mailbox of a type since the previous scrape.",
                &["actor"],
            ),
            mailbox_high_water: Default::default(),
            depth_of: ActorKind::ALL.map(|k| mailbox_depth.with_label_values(&[k.as_str()])),
            wait_of: ActorKind::ALL.map(|k| mailbox_wait.with_label_values(&[k.as_str()])),
            mailbox_wait: mailbox_wait.clone(),
            handling: histogram_vec(
                &r,
                "message_handling_seconds",
                &format!(
                    "Time an actor spent handling a message, by actor type and message; one message \
                     in {TIMED_EVERY} on average is timed, drawn at random (messages_handled_total \
                     counts them all)."
                ),
                &["actor", "message"],
            ),
            handling_of: (0..HANDLING_SLOTS).map(|_| OnceLock::new()).collect(),
            handled: counter_vec(
                &r,
                "messages_handled_total",
                "Messages actors handled, by actor type and message.",
                &["actor", "message"],
            ),
            handled_of: (0..HANDLING_SLOTS).map(|_| OnceLock::new()).collect(),
            messages_dropped: counter_vec(
                &r,
                "messages_dropped_total",
                "Messages not delivered because the mailbox was full or closed.",
                &["actor", "reason"],
            ),
            dead_letters: counter(
                &r,
                "dead_letters_total",
                "Sidecar events for sessions this service does not hold (ignored, as the original did).",
            ),
            duplicate_messages: counter(
                &r,
                "duplicate_messages_total",
                "Ingested raw messages dropped because their session saw the same raw id recently (a retry).",
            ),
            ingested_of: SidecarEvent::KINDS.map(|k| events_ingested.with_label_values(&[k])),
            events_ingested,
            events_rejected: counter_vec(
                &r,
                "events_rejected_total",
                "Sidecar event batches refused, by reason.",
                &["reason"],
            ),
            agent_messages: counter(&r, "agent_messages_total", "Messages appended to sessions (after conversion)."),
            notifications: counter_vec(&r, "notifications_total", "Notifications sent, by variant.", &["variant"]),
            stalls: counter(&r, "stalls_total", "Stall notifications."),
            timer_arms: counter_vec(
                &r,
                "timer_arms_total",
                "Timers armed, by timer (health: a project publishing a stall its health reaches just after its session's report).",
                &["timer"],
            ),
            retention_evictions: counter(&r, "retention_evictions_total", "Sessions removed by retention."),
            dirty_sessions: gauge(&r, "persist_dirty_sessions", "Sessions with changes not yet committed."),
            persist_lag: histogram(
                &r,
                "persist_lag_seconds",
                "Time from a session's first unpersisted change to its commit.",
            ),
            commit_duration: histogram(&r, "commit_duration_seconds", "Duration of one group commit."),
            commits: counter_vec(&r, "commits_total", "Group commits, by result.", &["result"]),
            batch_rows: counter(&r, "persist_batch_rows_total", "Message batch rows written."),
            persisted_messages: counter(&r, "persisted_messages_total", "Messages written to storage."),
            persist_queue: gauge(&r, "persist_queue_jobs", "Write jobs waiting for the persister."),
            redb_file_size: gauge(&r, "redb_file_size_bytes", "Size of the redb file."),
            redb_cache_size: gauge(
                &r,
                "redb_cache_size_bytes",
                "redb's page cache bound (storage.cache_size).",
            ),
            redb_cache_used: gauge(&r, "redb_cache_used_bytes", "Bytes in redb's page cache now."),
            window_budget: gauge(
                &r,
                "window_budget_bytes",
                "Bytes all sessions' in-memory message windows may hold (limits.window_bytes).",
            ),
            window_used: gauge(
                &r,
                "window_used_bytes",
                "Bytes all sessions' in-memory message windows hold now.",
            ),
            window_trims: counter(
                &r,
                "window_trims_total",
                "Times a session let its stored messages go to keep the windows within limits.window_bytes.",
            ),
            window_waits: counter(
                &r,
                "window_waits_total",
                "Plain ingest batches answered only once storage made room (limits.window_bytes full of unstored messages, or a session past limits.messages_in_memory).",
            ),
            storage_writable: gauge(
                &r,
                "storage_writable",
                "1 while storage can commit, 0 after a failed commit or with the database file gone.",
            ),
            corrupt_rows: counter(
                &r,
                "storage_corrupt_rows_total",
                "Damaged stored rows (checksum or decoding failures) met by reads.",
            ),
            sse_subscribers: gauge(&r, "sse_subscribers", "Live event subscribers."),
            sse_lagged: counter(&r, "sse_lagged_events_total", "Live events dropped for subscribers that fell behind."),
            http_requests: counter_vec(
                &r,
                "http_requests_total",
                "HTTP requests, by route group and status class.",
                &["route", "status"],
            ),
            cost_usd: {
                let c = prometheus::CounterVec::new(
                    Opts::new(prefixed("cost_usd_total"), "Agent spend in USD, by provider and model."),
                    &["provider", "model"],
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            tokens: counter_vec(
                &r,
                "tokens_total",
                "Agent tokens, by provider, model and kind (input, output).",
                &["provider", "model", "kind"],
            ),
            budget_exceeded: counter(
                &r,
                "budget_exceeded_total",
                "Agents stopped because their project crossed a session or daily budget.",
            ),
            approvals: counter_vec(
                &r,
                "approvals_total",
                "Tool-permission requests answered, by decision (allow, deny, timeout, cancelled).",
                &["decision"],
            ),
            registry: r,
        };
        crate::providers::metrics::provider_metrics().register(&m.registry);

        let pc = prometheus::process_collector::ProcessCollector::for_self();
        // Process metrics are best effort: a platform without /proc simply has none.
        let _ = m.registry.register(Box::new(pc));
        for kind in ActorKind::ALL {
            m.mailbox_depth_max.with_label_values(&[kind.as_str()]);
        }
        // Shown at 0 from the start: most projects never arm one.
        m.timer_arms.with_label_values(&["health"]);
        Arc::new(m)
    }

    pub fn actor_started(&self, kind: ActorKind) {
        self.started_of[kind as usize].inc();
        self.alive_of[kind as usize].inc();
    }

    pub fn actor_stopped(&self, kind: ActorKind, reason: StopReason) {
        self.stopped_of[kind as usize][reason as usize].inc();
        self.alive_of[kind as usize].dec();
    }

    /// Records one message's handling time under its pair's child (`slot`: its `MessageSlot` index).
    pub(super) fn observe_handling(
        &self,
        slot: usize,
        kind: ActorKind,
        message: fn() -> &'static str,
        secs: f64,
    ) {
        let resolve = || self.handling.with_label_values(&[kind.as_str(), message()]);
        with_child(&self.handling_of, slot, resolve, |h| h.observe(secs));
    }

    /// Counts one message handled under its pair's child (`slot`: its `MessageSlot` index).
    pub(super) fn count_handled(
        &self,
        slot: usize,
        kind: ActorKind,
        message: fn() -> &'static str,
    ) {
        let resolve = || self.handled.with_label_values(&[kind.as_str(), message()]);
        with_child(&self.handled_of, slot, resolve, IntCounter::inc);
    }

    pub(super) fn high_water(&self, kind: ActorKind, depth: i64) {
        self.mailbox_high_water[kind as usize].fetch_max(depth, Ordering::Relaxed);
    }

    /// For queues not counted by a [`Mailbox`] (the persister's): the depth as read now.
    /// A message sent to an actor that had stopped.
    pub(super) fn dropped(&self, kind: ActorKind, reason: &str) {
        self.messages_dropped
            .with_label_values(&[kind.as_str(), reason])
            .inc();
    }

    pub fn set_mailbox_depth(&self, kind: ActorKind, depth: i64) {
        self.depth_of[kind as usize].set(depth);
        self.high_water(kind, depth);
    }

    /// Moves the high-water marks into their gauges and starts the next interval.
    pub fn before_scrape(&self) {
        for kind in ActorKind::ALL {
            let max = self.mailbox_high_water[kind as usize].swap(0, Ordering::Relaxed);
            self.mailbox_depth_max
                .with_label_values(&[kind.as_str()])
                .set(max);
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        self.before_scrape();
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

/// A batch's gathered answer counts its events here (messages/gather.rs).
impl crate::messages::gather::Tally for Metrics {
    fn tally(&self, accepted: &crate::messages::gather::Kinds, ignored: u64) {
        for (counter, &n) in self.ingested_of.iter().zip(accepted) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
        if ignored > 0 {
            self.dead_letters.inc_by(ignored);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_counts_under_its_actor_type_and_reason_and_leaves_the_alive_count() {
        let m = Metrics::new();
        for (i, reason) in StopReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "ALL is in declaration order");
        }
        m.actor_started(ActorKind::Session);
        m.actor_started(ActorKind::Session);
        m.actor_started(ActorKind::Project);
        m.actor_stopped(ActorKind::Session, StopReason::Purge);
        m.actor_stopped(ActorKind::Project, StopReason::Completed);
        let stopped = |kind: ActorKind, reason: StopReason| {
            m.actors_stopped
                .with_label_values(&[kind.as_str(), reason.as_str()])
                .get()
        };
        assert_eq!(stopped(ActorKind::Session, StopReason::Purge), 1);
        assert_eq!(stopped(ActorKind::Project, StopReason::Completed), 1);
        assert_eq!(stopped(ActorKind::Session, StopReason::Completed), 0);
        let alive = |kind: ActorKind| m.actors_alive.with_label_values(&[kind.as_str()]).get();
        assert_eq!(
            (alive(ActorKind::Session), alive(ActorKind::Project)),
            (1, 0)
        );
    }
}
