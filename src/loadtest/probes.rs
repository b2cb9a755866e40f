//! The two latency probes that watch the store from outside the request path.
//!
//! End to end (`e2e_ms`): one live subscription to every project (`engine.subscribe(None)` or
//! `GET /v1/events`). Each chunk's first message is matched by session id and message index to the time
//! its request left; chunks whose events the subscriber missed (lagged) have no sample.
//!
//! Persist lag (`persist_lag_ms`): up to `PERSIST_SAMPLES` projects are sampled. When a request carrying a
//! sampled project is acknowledged, the probe notes the time and the message count storage must reach (the
//! count before the run plus every message acknowledged for it so far), then polls the stored record
//! (`engine.project_sessions` / `GET /v1/projects/{id}/sessions`, which read storage, not memory) every
//! `POLL` until the count is there. One sample per project is pending at a time; the lag includes up to one
//! poll interval. With `--durable` the ack already waits for the commit, so the lag is near zero by design.

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
     messageCount every 5 ms until it covers every message acknowledged for it";

/// Projects sampled for the persist lag.
pub const PERSIST_SAMPLES: usize = 32;
/// How often pending persist samples are polled.
const POLL: Duration = Duration::from_millis(5);

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
    let mut pending: HashMap<usize, Sample> = HashMap::new();
    loop {
        // Take new samples; a project with one pending keeps the older one.
        while let Ok(s) = rx.try_recv() {
            pending.entry(s.project).or_insert(s);
        }
        pending_count.store(pending.len(), std::sync::atomic::Ordering::Relaxed);
        if pending.is_empty() {
            match rx.recv().await {
                Some(s) => {
                    pending.insert(s.project, s);
                    continue;
                }
                None => return,
            }
        }
        let mut done = Vec::new();
        for (&p, s) in &pending {
            if let Ok(Some(count)) = target.stored_count(&project_ids[p], &sessions[p]).await {
                if count >= s.target {
                    stats.record_persist(s.acked_at.elapsed());
                    done.push(p);
                }
            }
        }
        for p in done {
            pending.remove(&p);
        }
        pending_count.store(pending.len(), std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(POLL).await;
    }
}
