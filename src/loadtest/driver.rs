//! The phases of a run against a target: start every session, stream the messages (bounded in-flight
//! requests, an optional rate and deadline, a timeline tick a second), then finish every session (status
//! done and cost, sent durable so they are committed when acknowledged).
//!
//! Busy answers (HTTP 429/503, which apply nothing) are retried with backoff; any other failure is counted
//! and its chunks marked uncertain for the loss check, never retried, since the request may have been
//! applied and a retry would then duplicate it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::content::Content;
use super::payload::{Outgoing, Part};
use super::plan::{Layout, Ledger, Request};
use super::probes::PersistProbe;
use super::progress::Progress;
use super::stats::Stats;
use super::target::{IngestAck, Target, TargetError};
use crate::messages::wire::now_ms;

/// How often a busy answer is retried before it counts as an error.
pub(super) const BUSY_RETRIES: u32 = 50;

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

/// Sends one request, retrying busy answers; records latency, bytes and errors.
async fn send(
    target: &Target,
    stats: &Stats,
    out: &Outgoing<'_>,
    durable: bool,
) -> Result<IngestAck, TargetError> {
    // Only message requests are measured: finishing requests are durable and few, and would blur them.
    let measured = matches!(out.part, Part::Messages(_));
    let mut backoff = Duration::from_millis(5);
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let result = target.ingest(out, durable).await;
        if measured {
            stats.record_latency(started.elapsed());
        }
        Stats::add(&stats.requests, 1);
        match result {
            Ok((ack, bytes)) => {
                Stats::add(&stats.bytes, bytes as u64);
                return Ok(ack);
            }
            Err(e) if e.is_busy() && attempt < BUSY_RETRIES => {
                attempt += 1;
                Stats::add(&stats.retries, 1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
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
        match send(&self.target, &self.stats, &out, self.durable).await {
            Ok(ack) if ack.ignored == 0 => {
                let at = Instant::now();
                for p in req.projects {
                    let acked = self.ledger.ack(p, req.chunk);
                    if let Some(probe) = &self.persist {
                        probe.acked(p, acked, at);
                    }
                }
                Stats::add(&self.stats.acked, n);
            }
            Ok(ack) => {
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

    /// Sends every request (until the deadline, if any), at most `concurrency` in flight.
    async fn dispatch(self: Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let start = Instant::now();
        let deadline = self.duration.map(|d| start + d);
        let mut scheduled = 0u64;
        for req in self.layout.requests() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if self.rate > 0.0 {
                let at = start + Duration::from_secs_f64(scheduled as f64 / self.rate);
                tokio::time::sleep_until(at.into()).await;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            scheduled += self.layout.request_messages(&req) as u64;
            let run = self.clone();
            tasks.spawn(async move {
                run.send_messages(req).await;
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
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
                (n, send(&self.target, &self.stats, &out, true).await)
            })
            .buffer_unordered(self.concurrency);
        while let Some((n, result)) = results.next().await {
            match result {
                Ok(ack) if ack.ignored == 0 => {}
                Ok(ack) => {
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
