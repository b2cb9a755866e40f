//! The two latency probes that watch the store from outside the request path.
//!
//! End to end (`e2e_ms`): one live subscription to every project (`engine.subscribe(None)` or
//! `GET /v1/events`). Each chunk's first message is matched by session id and message index to the time
//! its request left; chunks whose events the subscriber missed (lagged) have no sample.
//!
//! Persist lag (`persist_lag_ms`): up to `PERSIST_SAMPLES` projects are sampled. When a request carrying a
//! sampled project is acknowledged, the probe notes the time and the message count storage must reach (the
//! count before the run plus every message acknowledged for it so far), then polls the stored record
//! (`engine.stored_sessions` / `GET /v1/projects/{id}/sessions`, which read storage, not memory) until
//! the count is there. A sample is polled `POLL` after its ack and then again after an eighth of its age
//! so far (at least `POLL`): a lag of L is seen by L + max(`POLL`, L/8), so the figure is at most an
//! eighth (or 5 ms) over. A sample pending for 0.1 s is read 15 times instead of 20 at a fixed `POLL`,
//! for 1 s 34 times instead of 200. The samples due within `POLL` of a poll are read together: in-process
//! in one storage read, over HTTP as concurrent requests. The reads are work the store under test serves,
//! which the original's driver (it counts save replies) does not pay; one read a poll instead of one a
//! sample keeps that small (stop 36 measured one read a sample at 6–16 % of the in-process run's rate).
//! One sample per project is pending at a time. With `--durable` the ack already waits for the commit,
//! so the lag is near zero by design.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::content::message_index;
use super::plan::Ledger;
use super::stats::Stats;
use super::target::{LiveItem, Target};

/// How `persist_lag_ms` is measured, for the report.
pub const PERSIST_METHOD: &str =
    "after each ack of a sampled project (up to 32), poll its stored record's \
     messageCount until it covers every message acknowledged for it, 5 ms after the ack and then \
     every eighth of the sample's age (at least 5 ms), the samples due within 5 ms read together: \
     at most an eighth (or 5 ms) over";

/// Projects sampled for the persist lag.
pub const PERSIST_SAMPLES: usize = 32;
/// The first poll of a persist sample, and the shortest interval between polls.
const POLL: Duration = Duration::from_millis(5);
/// Later polls of a sample wait its age so far divided by this.
const BACKOFF: u32 = 8;

/// When a sample acknowledged at `acked_at` and read at `now` without result is read next.
fn next_poll(acked_at: Instant, now: Instant) -> Instant {
    now + (now.saturating_duration_since(acked_at) / BACKOFF).max(POLL)
}

/// Matches live messages to send times.
pub fn e2e_handler(
    ledger: Arc<Ledger>,
    stats: Arc<Stats>,
    sessions: &[String],
) -> impl FnMut(LiveItem<'_>) + Send + 'static {
    let by_session: HashMap<String, usize> = sessions
        .iter()
        .enumerate()
        .map(|(p, s)| (s.clone(), p))
        .collect();
    let per_event = ledger.layout().per_event;
    move |item| match item {
        LiveItem::Message { session_id, id } => {
            // Only a chunk's first message is timed: the others are passed over before the session is
            // looked up (a hash of its id for every live message cost more than the rest of the probe).
            let Some(index) = message_index(id).filter(|i| i % per_event == 0) else {
                return;
            };
            let Some(&project) = by_session.get(session_id) else {
                return;
            };
            if let Some(sent) = ledger.sent_time(project, index / per_event) {
                stats.record_e2e(sent.elapsed());
            }
        }
        LiveItem::Lagged(missed) => Stats::add(&stats.lagged, missed),
    }
}

/// Lets the live stream deliver what is still in flight: waits while samples keep arriving (up to 2 s).
pub async fn drain_live(stats: &Stats) {
    let mut last = u64::MAX;
    for _ in 0..20 {
        let now = stats.e2e().samples;
        if now == last {
            return;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Sample {
    project: usize,
    /// The stored message count that shows the acknowledged messages are persisted.
    target: u64,
    acked_at: Instant,
}

/// A sample waiting for storage, and when it is read next.
struct Pending {
    sample: Sample,
    next: Instant,
}

/// The sending side of the persist-lag probe, called from request tasks.
pub struct PersistProbe {
    every: usize,
    baseline: HashMap<usize, u64>,
    tx: mpsc::UnboundedSender<Sample>,
}

/// The polling side; `finish` waits for what is pending.
pub struct PersistPoller {
    task: tokio::task::JoinHandle<()>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl PersistProbe {
    /// Reads the sampled sessions' message counts before the run (their prompt), then starts polling.
    pub async fn start(
        target: Arc<Target>,
        sessions: Arc<Vec<String>>,
        project_ids: Arc<Vec<String>>,
        stats: Arc<Stats>,
    ) -> (PersistProbe, PersistPoller) {
        let every = sessions.len().div_ceil(PERSIST_SAMPLES).max(1);
        let mut baseline = HashMap::new();
        for p in (0..sessions.len()).step_by(every) {
            let before = target.messages(&sessions[p]).await.map_or(0, |m| m.len());
            baseline.insert(p, before as u64);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn(poll(
            target,
            sessions,
            project_ids,
            stats,
            rx,
            pending.clone(),
        ));
        (
            PersistProbe {
                every,
                baseline,
                tx,
            },
            PersistPoller { task, pending },
        )
    }

    /// A request carrying `project` was acknowledged; `acked` is the project's acknowledged total.
    pub fn acked(&self, project: usize, acked: u32, at: Instant) {
        if project % self.every != 0 {
            return;
        }
        let base = self.baseline.get(&project).copied().unwrap_or(0);
        let _ = self.tx.send(Sample {
            project,
            target: base + acked as u64,
            acked_at: at,
        });
    }
}

impl PersistPoller {
    /// Waits up to `within` for pending samples to resolve, then stops polling.
    pub async fn finish(self, within: Duration) {
        let deadline = Instant::now() + within;
        // Samples sent just now may not have reached the poller's count yet.
        tokio::time::sleep(POLL * 2).await;
        while self.pending.load(std::sync::atomic::Ordering::Relaxed) > 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(POLL).await;
        }
        self.task.abort();
    }
}

async fn poll(
    target: Arc<Target>,
    sessions: Arc<Vec<String>>,
    project_ids: Arc<Vec<String>>,
    stats: Arc<Stats>,
    mut rx: mpsc::UnboundedReceiver<Sample>,
    pending_count: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut pending: HashMap<usize, Pending> = HashMap::new();
    let mut open = true;
    let take = |pending: &mut HashMap<usize, Pending>, s: Sample| {
        // A project with one pending keeps the older one.
        let next = s.acked_at + POLL;
        pending
            .entry(s.project)
            .or_insert(Pending { sample: s, next });
    };
    loop {
        while let Ok(s) = rx.try_recv() {
            take(&mut pending, s);
        }
        pending_count.store(pending.len(), std::sync::atomic::Ordering::Relaxed);
        // Until the earliest read is due, take new samples as they come (each is due `POLL` after its ack).
        let due = pending.values().map(|p| p.next).min();
        if open {
            tokio::select! {
                s = rx.recv() => {
                    match s {
                        Some(s) => take(&mut pending, s),
                        None => open = false,
                    }
                    continue;
                }
                () = sleep_until(due) => {}
            }
        } else if due.is_none() {
            return;
        } else {
            sleep_until(due).await;
        }
        // Every sample due before the next poll could come is read now, all in one read: a count read
        // early is timed when it is read, so it is no less precise, and the reads share one wake-up.
        let horizon = Instant::now() + POLL;
        let due: Vec<usize> = pending
            .iter()
            .filter(|(_, e)| e.next <= horizon)
            .map(|(&p, _)| p)
            .collect();
        let which: Vec<(&str, &str)> = due
            .iter()
            .map(|&p| (project_ids[p].as_str(), sessions[p].as_str()))
            .collect();
        // A failed read leaves every sample it carried to be read again.
        let counts = target
            .stored_counts(&which)
            .await
            .unwrap_or_else(|_| vec![None; due.len()]);
        let read_at = Instant::now();
        let read: HashMap<usize, Option<u64>> = due.into_iter().zip(counts).collect();
        pending.retain(|p, entry| {
            let Some(&stored) = read.get(p) else {
                return true;
            };
            let s = &entry.sample;
            if stored.is_some_and(|count| count >= s.target) {
                stats.record_persist(read_at.saturating_duration_since(s.acked_at));
                false
            } else {
                entry.next = next_poll(s.acked_at, read_at);
                true
            }
        });
        pending_count.store(pending.len(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sleeps until `at`; for ever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_read_again_after_an_eighth_of_its_age_and_never_sooner_than_the_poll() {
        let acked = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(next_poll(acked, acked + ms(5)), acked + ms(10));
        assert_eq!(next_poll(acked, acked + ms(40)), acked + ms(45));
        assert_eq!(next_poll(acked, acked + ms(800)), acked + ms(900));
    }
}
