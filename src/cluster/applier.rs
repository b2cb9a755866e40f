//! Applying the ingest stream on a partition's owner. While a node holds a partition's lease, one applier
//! task reads the partition's subject through a consumer of its own, named for the node, the lease and a
//! generation (`p<N>-<node>-<token>-<gen>`), created to start right after the stream sequence this node
//! applied the partition through. So an owner's applied prefix is contiguous by construction: nothing
//! another node (a stale holder still finishing a batch) does to its own consumer moves this one, and
//! before it applies a message the applier knows nothing of the partition lies between its progress and
//! that message: the consumer's deliveries are numbered, and a missing number (a delivery lost on the way,
//! or taken by anyone else) drops the consumer for a new one starting after the progress again. A lost
//! delivery no later one reveals (the partition's last message) is noticed while the consumer is quiet
//! (src/cluster/stall.rs), and the consumer replaced the same way.
//!
//! Messages are applied in batches: whatever the consumer has delivered (up to `cluster.apply_batch`)
//! goes to the engine as one durable ingest, and the progress moves to the batch's last sequence once the
//! engine committed it. A batch the engine refused is retried as it was; a batch applied twice (the node
//! died between commit and progress) is absorbed by the engine's idempotent ingest.
//!
//! Before its first message the applier decides whether to rebuild the partition from JetStream
//! (src/cluster/appliers.rs, src/cluster/takeover.rs), and records itself as the partition's applier.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::appliers::{Appliers, LastApplier};
use super::error::ClusterError;
use super::ingest::{subject, Entry};
use super::manager::Owned;
use super::metrics::ClusterMetrics;
use super::partition::Partition;
use super::snapshot::Snapshots;
use super::stall::Stall;
use super::takeover;
use crate::engine::Engine;

/// The stream sequence each partition has been applied through on this node, so a read can wait until
/// every batch acknowledged before it has been applied (read-your-writes across nodes). Each partition
/// has a lock its applier holds, so an applier started when a lease comes back waits for the previous one
/// to finish.
#[derive(Default)]
pub struct Applied {
    partitions: std::sync::Mutex<HashMap<Partition, PartitionState>>,
}

#[derive(Clone)]
struct PartitionState {
    progress: watch::Sender<u64>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Applied {
    fn state(&self, partition: Partition) -> PartitionState {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(partition)
            .or_insert_with(|| PartitionState {
                progress: watch::Sender::new(0),
                lock: Default::default(),
            })
            .clone()
    }

    /// The stream sequence `partition` is applied through on this node.
    pub fn through(&self, partition: Partition) -> u64 {
        *self.state(partition).progress.borrow()
    }

    /// Waits until `partition` is applied through `sequence`, or `within` passed; answers whether it is.
    pub async fn wait(&self, partition: Partition, sequence: u64, within: Duration) -> bool {
        let mut applied = self.state(partition).progress.subscribe();
        tokio::time::timeout(within, applied.wait_for(|s| *s >= sequence))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// What every applier of a node shares.
#[derive(Clone)]
pub struct Shared {
    pub stream: stream::Stream,
    pub engine: Engine,
    pub node_id: String,
    /// This node run, as its logged stops name it (src/cluster/commands.rs).
    pub origin: String,
    pub ttl: Duration,
    pub batch: usize,
    pub metrics: ClusterMetrics,
    pub applied: Arc<Applied>,
    pub snapshots: Snapshots,
    pub appliers: Appliers,
    /// Turns true on a clean stop: each applier writes a final snapshot and ends, so a successor replays
    /// little.
    pub closing: watch::Receiver<bool>,
}

/// Runs one applier per partition this node holds, starting and stopping them as leases come and go;
/// returns once every applier ended after `closing` turned true.
pub async fn apply_owned(shared: Shared, mut owned: watch::Receiver<Owned>) {
    let mut closing = shared.closing.clone();
    // Each applier is told to stop rather than aborted: an abort while the engine applies a batch would
    // leave it applied but not recorded, and the next replay would apply it twice.
    let mut running: HashMap<Partition, (tokio::task::JoinHandle<()>, watch::Sender<bool>)> =
        HashMap::new();
    loop {
        let now: Owned = owned.borrow_and_update().clone();
        running.retain(|partition, (task, stop)| {
            let keep = now.contains_key(partition) && !task.is_finished();
            if !keep {
                stop.send_replace(true);
                shared
                    .metrics
                    .replay_lag
                    .with_label_values(&[&partition.to_string()])
                    .set(0);
            }
            keep
        });
        for (partition, lease) in now {
            running.entry(partition).or_insert_with(|| {
                let (stop, stopped) = watch::channel(false);
                let state = shared.applied.state(partition);
                let applier = Applier {
                    partition,
                    token: lease.token,
                    shared: shared.clone(),
                    owned: owned.clone(),
                    progress: state.progress,
                    stop: stopped,
                    next_snapshot: tokio::time::Instant::now() + shared.snapshots.interval,
                    consumer: None,
                    generation: 0,
                    delivered: 0,
                    gap_checked: None,
                };
                (tokio::spawn(apply_partition(applier, state.lock)), stop)
            });
        }
        tokio::select! {
            changed = owned.changed() => if changed.is_err() { break },
            true = closed(&mut closing) => break,
        }
    }
    for (task, stop) in running.into_values() {
        if !*closing.borrow() {
            stop.send_replace(true);
        }
        let _ = task.await;
    }
}

/// Waits until `closing` turns true; false when it never will (the cluster handle is gone).
async fn closed(closing: &mut watch::Receiver<bool>) -> bool {
    closing.wait_for(|c| *c).await.is_ok()
}

/// Applies one partition's messages in order while this node holds its lease, reopening its consumer
/// when the consumer's stream ends or fails (a NATS server lost, a reconnect) and replacing it on a gap.
async fn apply_partition(mut applier: Applier, turn: Arc<tokio::sync::Mutex<()>>) {
    // The previous applier of this partition on this node, if any, finishes its batch first.
    let _turn = turn.lock().await;
    // Rebuilt from JetStream first when another node applied it last; retried until done or the lease
    // is gone, since applying on top of a store that lacks the partition would lose what it acknowledged.
    let mut ready = false;
    while !ready && applier.resumes().await {
        match applier.take_over().await {
            Ok(()) => ready = true,
            Err(e) => {
                tracing::warn!(partition = applier.partition, error = %e, "cluster: taking the partition over failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    while ready && applier.resumes().await {
        if let Err(e) = applier.consume().await {
            tracing::warn!(partition = applier.partition, error = %e, "cluster: applying the partition paused; reopening its consumer");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // A clean stop: the final snapshot, through everything applied here, before the lease is released.
    if ready && *applier.shared.closing.borrow() {
        applier.snapshot().await;
    }
    applier.drop_consumer().await;
}

struct Applier {
    partition: Partition,
    /// The lease this applier runs under (its acquisition token): part of its consumer's name.
    token: u64,
    shared: Shared,
    owned: watch::Receiver<Owned>,
    /// The stream sequence applied through on this node (see `Applied`).
    progress: watch::Sender<u64>,
    /// Turns true when the lease is gone: stop between two batches.
    stop: watch::Receiver<bool>,
    /// When the partition's next snapshot is due (taken between two batches).
    next_snapshot: tokio::time::Instant,
    /// The consumer this applier reads, once created.
    consumer: Option<String>,
    generation: u32,
    /// The last delivery number (consumer sequence) seen on `consumer`: the next must be one above it.
    delivered: u64,
    /// The progress last checked against the oldest message the stream keeps (`check_gap`).
    gap_checked: Option<u64>,
}

/// Why `consume` returned early.
enum Pause {
    /// The consumer missed a delivery: replace it.
    Gap { expected: u64, got: u64 },
    /// The consumer delivers nothing while the stream holds the partition's messages after `through`:
    /// replace it.
    Stalled { through: u64 },
    /// NATS failed; reopen the same consumer.
    Nats(ClusterError),
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pause::Gap { expected, got } => write!(
                f,
                "delivery {got} arrived where {expected} was due (one was lost or taken elsewhere)"
            ),
            Pause::Stalled { through } => write!(
                f,
                "the stream holds messages of the partition after {through} that the consumer does not \
                 deliver (one was lost or taken elsewhere)"
            ),
            Pause::Nats(e) => e.fmt(f),
        }
    }
}

impl Applier {
    /// Fencing: apply only under a lease this node surely still holds.
    fn held(&self) -> bool {
        self.owned
            .borrow()
            .get(&self.partition)
            .is_some_and(|lease| lease.is_fresh(self.shared.ttl))
    }

    /// Told to stop: the lease is gone, or the node is stopping.
    fn stopped(&self) -> bool {
        *self.stop.borrow() || *self.shared.closing.borrow()
    }

    /// Waits while the lease is not surely fresh by this node's clock (a renewal is late: it may yet
    /// succeed, or the lease manager drops the partition and this applier is told to stop); answers
    /// whether to go on.
    async fn resumes(&self) -> bool {
        while !self.stopped() {
            if self.held() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Rebuilds the partition from its snapshot and the stream unless this node applied it last in this
    /// process, then records this node as its applier: before anything is applied under this lease.
    async fn take_over(&mut self) -> Result<(), ClusterError> {
        let me = LastApplier {
            node_id: self.shared.node_id.clone(),
            token: self.token,
        };
        let progress = *self.progress.borrow();
        let last = self.shared.appliers.last(self.partition).await?;
        let continues = progress > 0 && last.as_ref().is_some_and(|l| l.node_id == me.node_id);
        if last.is_some() && !continues {
            let rebuilt = takeover::rebuild(
                &self.shared.stream,
                &self.shared.snapshots,
                &self.shared.engine,
                self.partition,
            )
            .await?;
            tracing::info!(
                partition = self.partition,
                through = rebuilt.through,
                imported = rebuilt.imported,
                last_applier = last.map(|l| l.node_id).unwrap_or_default(),
                "cluster: partition rebuilt from JetStream; replaying the stream after its snapshot"
            );
            self.progress.send_replace(rebuilt.through);
            self.shared
                .metrics
                .ingest
                .with_label_values(&["rebuilt"])
                .inc();
        }
        if !self.held() {
            return Err(ClusterError::Lease(super::LeaseError::Fenced {
                partition: self.partition,
                token: self.token,
            }));
        }
        self.shared.appliers.claim(self.partition, &me).await
    }

    /// Writes the partition's snapshot, applied through the last batch applied here; only under a lease
    /// this node surely still holds, so a node that lost it does not overwrite its successor's.
    async fn snapshot(&mut self) {
        self.next_snapshot = tokio::time::Instant::now() + self.shared.snapshots.interval;
        if !self.held() {
            return;
        }
        self.advance_idle().await;
        let through = *self.progress.borrow();
        let outcome = match self
            .shared
            .snapshots
            .save(&self.shared.engine, self.partition, through)
            .await
        {
            Ok(_) => "snapshot",
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e, "cluster: snapshot failed");
                "snapshot_failed"
            }
        };
        self.shared
            .metrics
            .ingest
            .with_label_values(&[outcome])
            .inc();
    }

    /// The consumer to read: the current one while it exists, else a new one starting right after the
    /// progress.
    async fn open(&mut self) -> Result<PullConsumer, ClusterError> {
        let stream = self.shared.stream.clone();
        if let Some(name) = &self.consumer {
            if let Ok(consumer) = stream.get_consumer(name).await {
                return Ok(consumer);
            }
        }
        self.generation += 1;
        let name = format!(
            "p{}-{}-{}-{}",
            self.partition, self.shared.node_id, self.token, self.generation
        );
        let start = *self.progress.borrow() + 1;
        self.check_gap(start - 1).await;
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subject(self.partition),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                // The progress is the applier's own; nothing is acknowledged to anyone.
                ack_policy: AckPolicy::None,
                // A node that dies leaves no consumer behind for long.
                inactive_threshold: (self.shared.ttl * 3).max(Duration::from_secs(30)),
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::jetstream("creating a partition's consumer", e))?;
        self.consumer = Some(name);
        self.delivered = 0;
        Ok(consumer)
    }

    /// While nothing of the partition lies after the progress, moves the progress to the stream's last
    /// sequence, so a partition without traffic does not fall behind what the stream keeps (`check_gap`)
    /// and a snapshot of it says how far the stream goes. The stream's end is read before the partition's
    /// last message: none of the partition's can lie between the progress and that end.
    async fn advance_idle(&mut self) {
        let stream = &self.shared.stream;
        let Ok(info) = stream.get_info().await else {
            return;
        };
        let (end, progress) = (info.state.last_sequence, *self.progress.borrow());
        if end <= progress {
            return;
        }
        let idle = match stream
            .get_last_raw_message_by_subject(&subject(self.partition))
            .await
        {
            Ok(last) => last.sequence <= progress,
            Err(e) => matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound),
        };
        if idle {
            self.progress.send_replace(end);
        }
    }

    /// A node whose progress is older than what the stream still keeps (`stream_max_age` dropped the
    /// messages after it) would go on from the oldest message kept as if nothing were missing: count it
    /// and say so, once per progress. The stream cannot tell whether the dropped messages were this
    /// partition's, so this is a possible gap; `advance_idle` keeps an idle partition's progress current.
    async fn check_gap(&mut self, progress: u64) {
        if self.gap_checked == Some(progress) {
            return;
        }
        let first = match self.shared.stream.get_info().await {
            Ok(info) => info.state.first_sequence,
            // Checked when the consumer is next opened.
            Err(_) => return,
        };
        self.gap_checked = Some(progress);
        if first > progress + 1 {
            let partition = self.partition;
            self.shared
                .metrics
                .replay_gaps
                .with_label_values(&[&partition.to_string()])
                .inc();
            tracing::error!(
                partition,
                applied_through = progress,
                first_kept = first,
                "cluster: the ingest stream no longer holds the messages after this partition's progress \
                 (stream_max_age dropped them); whatever of this partition they carried is lost here"
            );
        }
    }

    async fn drop_consumer(&mut self) {
        if let Some(name) = self.consumer.take() {
            if let Err(e) = self.shared.stream.delete_consumer(&name).await {
                tracing::debug!(partition = self.partition, error = %e, "cluster: consumer not deleted; it expires");
            }
        }
    }

    /// Reads the consumer and applies what it delivers, batch by batch, until the lease is lost (Ok) or
    /// the consumer must be reopened or replaced (Err).
    async fn consume(&mut self) -> Result<(), Pause> {
        let partition = self.partition;
        let consumer = self.open().await.map_err(Pause::Nats)?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.shared.batch)
            .messages()
            .await
            .map_err(|e| Pause::Nats(ClusterError::jetstream("reading a partition", e)))?;
        let lag = self
            .shared
            .metrics
            .replay_lag
            .with_label_values(&[&partition.to_string()]);
        let mut closing = self.shared.closing.clone();
        // Half the lease's time to live: a consumer stalled since its last delivery is replaced within
        // one and a half TTLs of it (a tick to see it quiet, two looks), before a read waiting for the
        // partition (two TTLs) gives up.
        let every = self.shared.ttl / 2;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stall = Stall::new(self.delivered);
        loop {
            let first = tokio::select! {
                next = messages.next() => next,
                _ = self.stop.changed() => return Ok(()),
                true = closed(&mut closing) => return Ok(()),
                _ = tokio::time::sleep_until(self.next_snapshot) => {
                    self.snapshot().await;
                    continue;
                }
                _ = ticks.tick() => {
                    if self.stalled(&mut stall).await {
                        self.drop_consumer().await;
                        return Err(Pause::Stalled { through: *self.progress.borrow() });
                    }
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < self.shared.batch {
                match messages.next().now_or_never() {
                    Some(next) => batch.push(next),
                    None => break,
                }
            }
            // What is contiguous with the progress, in order; the first failure or gap ends the batch.
            let mut payloads: Vec<(u64, Bytes)> = Vec::new();
            let mut pause = None;
            for next in batch {
                let message = match next {
                    Some(Ok(message)) => message,
                    Some(Err(e)) => {
                        pause = Some(Pause::Nats(ClusterError::jetstream(
                            "reading a partition",
                            e,
                        )));
                        break;
                    }
                    None => {
                        pause = Some(Pause::Nats(ClusterError::jetstream(
                            "reading a partition",
                            "the consumer's stream ended",
                        )));
                        break;
                    }
                };
                let Ok(info) = message.info() else { continue };
                if info.consumer_sequence != self.delivered + 1 {
                    pause = Some(Pause::Gap {
                        expected: self.delivered + 1,
                        got: info.consumer_sequence,
                    });
                    break;
                }
                self.delivered = info.consumer_sequence;
                lag.set(i64::try_from(info.pending).unwrap_or(i64::MAX));
                payloads.push((info.stream_sequence, message.payload.clone()));
            }
            if !payloads.is_empty() && !self.apply(&payloads).await {
                // Delivered but not applied: the next consumer starts after the progress again.
                self.drop_consumer().await;
                return Ok(());
            }
            match pause {
                None => {}
                Some(gap @ Pause::Gap { .. }) => {
                    self.drop_consumer().await;
                    return Err(gap);
                }
                Some(other) => return Err(other),
            }
        }
    }

    /// At a tick of `consume`: whether the consumer missed the partition's last messages (see `Stall`).
    /// Looks at the stream only while the consumer is quiet; a failed look finds nothing missing. A
    /// consumer paused in JetStream is held on purpose (by an operator, or a test holding the partition
    /// back) and is left alone.
    async fn stalled(&self, stall: &mut Stall) -> bool {
        if !stall.quiet(self.delivered) {
            return false;
        }
        let stream = &self.shared.stream;
        let progress = *self.progress.borrow();
        let waiting = stream
            .get_last_raw_message_by_subject(&subject(self.partition))
            .await
            .is_ok_and(|last| last.sequence > progress);
        if !stall.looked(progress, waiting) {
            return false;
        }
        let Some(name) = &self.consumer else {
            return true;
        };
        !stream
            .consumer_info(name)
            .await
            .is_ok_and(|info| info.paused)
    }

    /// Applies one batch (stream sequence and payload of each message, in order): its events as one engine
    /// ingest, split only where a session start comes between them. Retried until the engine committed
    /// all of it; answers false when told to stop first (the batch is left to the next owner).
    async fn apply(&mut self, payloads: &[(u64, Bytes)]) -> bool {
        let partition = self.partition;
        let Some(&(through, _)) = payloads.last() else {
            return true;
        };
        let mut first = true;
        loop {
            if !self.resumes().await {
                return false;
            }
            let steps = steps(partition, payloads, first);
            first = false;
            match self.apply_steps(steps).await {
                Ok(()) => {
                    self.progress.send_replace(through);
                    self.shared
                        .metrics
                        .ingest
                        .with_label_values(&["applied"])
                        .inc_by(payloads.len() as u64);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(partition, through, error = %e, "cluster: applying failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn apply_steps(&self, steps: Vec<Entry>) -> Result<(), crate::error::CommandError> {
        let engine = &self.shared.engine;
        for step in steps {
            match step {
                Entry::Events(events) => {
                    let outcome = engine.ingest(events, true).await?;
                    if outcome.ignored > 0 {
                        // Acknowledged at the edge, but this node holds no such session.
                        tracing::warn!(partition = self.partition, ignored = outcome.ignored, "cluster: applied events for sessions this node does not hold were ignored");
                    }
                }
                // Known here already when this node started it (or holds it as far): left alone.
                Entry::Started { started } => {
                    let margin = engine.config().storage.seq_block;
                    engine.import_sessions(vec![*started], margin).await?;
                }
                // Replayed wherever it came from: deleting what is already gone changes nothing, and it
                // removes a session a replayed start brought back here meanwhile.
                Entry::Purged { purged } => engine.replay_purge(purged).await?,
                Entry::Stopped { stopped, by } if by != self.shared.origin => {
                    engine.replay_stop(&stopped).await?
                }
                // This node run stopped it itself; a prompt since may have set it going again.
                Entry::Stopped { .. } => {}
            }
        }
        Ok(())
    }
}

/// A batch's messages in order, consecutive event shares merged into one ingest. An unreadable message
/// (only this service publishes here) is dropped, logged once (`log`), rather than block the partition.
fn steps(partition: Partition, payloads: &[(u64, Bytes)], log: bool) -> Vec<Entry> {
    let mut steps: Vec<Entry> = Vec::new();
    for (sequence, payload) in payloads {
        match (Entry::read(payload), steps.last_mut()) {
            (Ok(Entry::Events(more)), Some(Entry::Events(events))) => events.extend(more),
            (Ok(entry), _) => steps.push(entry),
            (Err(e), _) if log => {
                tracing::error!(partition, sequence, error = %e, "cluster: unreadable ingest message dropped")
            }
            (Err(_), _) => {}
        }
    }
    steps
}
