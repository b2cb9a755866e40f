//! The phases of a run against a target: start every session, stream the messages (`concurrency`
//! workers, each with one request in flight, taking requests from one `Schedule` with its optional rate
//! and deadline; a timeline tick a second), then finish every session (status done and cost, sent durable
//! so they are committed when acknowledged).
//!
//! Busy answers (HTTP 429/503, which apply nothing) are retried with backoff; any other failure is counted
//! and its chunks marked uncertain for the loss check, never retried, since the request may have been
//! applied and a retry would then duplicate it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::task::JoinSet;

use super::content::Content;
use super::payload::{Outgoing, Part};
use super::plan::{Layout, Ledger, Request};
use super::probes::PersistProbe;
use super::progress::Progress;
use super::schedule::Schedule;
use super::stats::Stats;
use super::target::{IngestAck, Target, TargetError};
use crate::messages::wire::now_ms;

/// How often a busy answer is retried before it counts as an error.
const BUSY_RETRIES: u32 = 50;

/// The waits between retries of a busy answer (HTTP 429/503, which applies nothing): 5 ms, doubling up
/// to 0.5 s, `BUSY_RETRIES` times; then the answer counts as an error. One per request being retried.
pub(super) struct BusyBackoff {
    attempt: u32,
    delay: Duration,
}

impl BusyBackoff {
    pub fn new() -> BusyBackoff {
        BusyBackoff {
            attempt: 0,
            delay: Duration::from_millis(5),
        }
    }

    /// Waits before the next retry; false (at once) when every retry is spent.
    pub async fn wait(&mut self) -> bool {
        if self.attempt == BUSY_RETRIES {
            return false;
        }
        self.attempt += 1;
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_millis(500));
        true
    }
}

/// Everything the request tasks share.
pub struct Run {
    pub target: Arc<Target>,
    pub content: Content,
    pub layout: Layout,
    pub sessions: Arc<Vec<String>>,
    pub ledger: Arc<Ledger>,
    pub stats: Arc<Stats>,
    pub persist: Option<PersistProbe>,
    pub durable: bool,
    pub concurrency: usize,
    pub rate: f64,
    pub duration: Option<Duration>,
}

/// Sends one request, retrying busy answers; records latency, bytes and errors. `sent_at` is when the
/// first attempt leaves (read by the caller, which needs it too); answers the ack and when it came.
async fn send(
    target: &Target,
    stats: &Stats,
    out: &Outgoing<'_>,
    durable: bool,
    sent_at: Instant,
) -> Result<(IngestAck, Instant), TargetError> {
    // Only message requests are measured: finishing requests are durable and few, and would blur them.
    let measured = matches!(out.part, Part::Messages(_));
    let mut backoff = BusyBackoff::new();
    let mut started = sent_at;
    loop {
        let result = target.ingest(out, durable).await;
        let answered = Instant::now();
        if measured {
            stats.record_latency(answered.saturating_duration_since(started));
        }
        Stats::add(&stats.requests, 1);
        match result {
            Ok((ack, bytes)) => {
                Stats::add(&stats.bytes, bytes as u64);
                return Ok((ack, answered));
            }
            Err(e) if e.is_busy() && backoff.wait().await => {
                Stats::add(&stats.retries, 1);
                started = Instant::now();
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts a session for every project, `concurrency` at a time; answers the session ids in order.
pub async fn start_sessions(
    target: &Target,
    project_ids: &Arc<Vec<String>>,
    concurrency: usize,
    progress: &mut Progress,
) -> Result<Vec<String>, TargetError> {
    progress.phase("setup", project_ids.len() as u64, "sessions");
    let started = Instant::now();
    let rate = |n: u64| n as f64 / started.elapsed().as_secs_f64().max(1e-6);
    let sessions = match target {
        // On a thread of its own (target/starter.rs); this one only shows its progress meanwhile.
        Target::Http(http) => {
            let done = Arc::new(AtomicU64::new(0));
            let all = http.start_sessions(project_ids.clone(), concurrency, done.clone());
            let mut all = std::pin::pin!(all);
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    sessions = &mut all => break sessions?,
                    _ = tick.tick() => {
                        let n = done.load(Ordering::Relaxed);
                        progress.update(n, rate(n), 0);
                    }
                }
            }
        }
        Target::InProcess(engine) => {
            let mut results = futures_util::stream::iter(project_ids.iter())
                .map(|id| engine.start_session(id))
                .buffered(concurrency);
            let mut sessions = Vec::with_capacity(project_ids.len());
            while let Some(result) = results.next().await {
                sessions.push(result?);
                if sessions.len() % 256 == 0 {
                    let n = sessions.len() as u64;
                    progress.update(n, rate(n), 0);
                }
            }
            sessions
        }
    };
    let n = sessions.len() as u64;
    progress.update(n, rate(n), 0);
    Ok(sessions)
}

impl Run {
    fn outgoing(&self, part: Part) -> Outgoing<'_> {
        Outgoing {
            content: &self.content,
            layout: &self.layout,
            sessions: &self.sessions,
            part,
            timestamp: now_ms(),
        }
    }

    async fn send_messages(&self, req: Request) {
        let sent_at = Instant::now();
        for p in req.projects.clone() {
            self.ledger.mark_sent(p, req.chunk, sent_at);
        }
        let out = self.outgoing(Part::Messages(req.clone()));
        let n = out.messages() as u64;
        Stats::add(&self.stats.sent, n);
        match send(&self.target, &self.stats, &out, self.durable, sent_at).await {
            Ok((ack, at)) if ack.ignored == 0 => {
                for p in req.projects {
                    let acked = self.ledger.ack(p, req.chunk);
                    if let Some(probe) = &self.persist {
                        probe.acked(p, acked, at);
                    }
                }
                Stats::add(&self.stats.acked, n);
            }
            Ok((ack, _)) => {
                // Which events were ignored is not said: the whole request is uncertain.
                Stats::add(&self.stats.ignored, ack.ignored as u64);
                self.fail(
                    &req,
                    format!("{} events ignored (unknown session)", ack.ignored),
                );
            }
            Err(e) => self.fail(&req, e.to_string()),
        }
    }

    fn fail(&self, req: &Request, error: String) {
        for p in req.projects.clone() {
            self.ledger.fail(p, req.chunk);
        }
        self.stats.error(error);
    }

    /// Sends every request (until the deadline, if any): `concurrency` workers, one request in flight
    /// each. A worker is a task for the whole phase, so a request costs no task, permit or join of its own.
    async fn dispatch(self: Arc<Self>) {
        let schedule = Arc::new(Mutex::new(Schedule::new(
            self.layout,
            Instant::now(),
            self.rate,
            self.duration,
        )));
        let mut workers = JoinSet::new();
        for _ in 0..self.concurrency.max(1) {
            workers.spawn(self.clone().work(schedule.clone()));
        }
        while workers.join_next().await.is_some() {}
    }

    /// One worker: the schedule's next request, sent and answered, until the schedule has none.
    async fn work(self: Arc<Self>, schedule: Arc<Mutex<Schedule>>) {
        loop {
            // The clock is read only when a deadline needs it; the lock is held for the hand-out alone.
            let next = schedule
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .next_at(Instant::now);
            let Some((req, at)) = next else {
                return;
            };
            if let Some(at) = at {
                tokio::time::sleep_until(at.into()).await;
            }
            self.send_messages(req).await;
        }
    }

    /// The stream phase; answers its duration. Ticks the timeline and the progress once a second.
    pub async fn stream(self: &Arc<Self>, progress: &mut Progress) -> Duration {
        progress.phase("stream", self.layout.total_messages(), "messages");
        let start = Instant::now();
        let mut dispatcher = tokio::spawn(self.clone().dispatch());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut dispatcher => break,
                _ = tick.tick() => {
                    let point = self.stats.tick(start.elapsed().as_secs_f64());
                    progress.update(Stats::get(&self.stats.acked), point.messages_per_s, Stats::get(&self.stats.errors));
                }
            }
        }
        let elapsed = start.elapsed();
        // A last sliver of an interval would plot a meaningless rate (its latencies are in the totals),
        // unless it is the whole run.
        let t = elapsed.as_secs_f64();
        if self.stats.since_tick(t) >= 0.25 || self.stats.timeline().is_empty() {
            self.stats.tick(t);
        }
        progress.update(
            Stats::get(&self.stats.acked),
            0.0,
            Stats::get(&self.stats.errors),
        );
        elapsed
    }

    /// Status done and cost for every project, durable, `concurrency` requests at a time.
    pub async fn finish(self: &Arc<Self>, progress: &mut Progress) {
        progress.phase("finish", self.layout.projects as u64, "sessions");
        let mut done = 0u64;
        let mut results = futures_util::stream::iter(self.layout.project_groups())
            .map(|group| async move {
                let n = group.len() as u64;
                let out = self.outgoing(Part::Finish(group));
                (
                    n,
                    send(&self.target, &self.stats, &out, true, Instant::now()).await,
                )
            })
            .buffer_unordered(self.concurrency);
        while let Some((n, result)) = results.next().await {
            match result {
                Ok((ack, _)) if ack.ignored == 0 => {}
                Ok((ack, _)) => {
                    Stats::add(&self.stats.ignored, ack.ignored as u64);
                    self.stats
                        .error(format!("{} finishing events ignored", ack.ignored));
                }
                Err(e) => self.stats.error(e.to_string()),
            }
            done += n;
            progress.update(done, 0.0, Stats::get(&self.stats.errors));
        }
    }
}
