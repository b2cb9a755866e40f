//! Sidecar ingest through JetStream. A node that receives a batch splits it by the partition of each
//! event's project (session ids are `<projectId>-<ms>`) and publishes one message per partition to the
//! ingest stream on `agent_store.ingest.<partition>`; it answers 202 only once JetStream has acknowledged
//! (stored, on every replica) each of them. The node holding a partition's lease applies that subject's
//! messages, in order, into its local engine through one durable consumer per partition, acknowledging
//! each after the engine committed it. A new owner takes over the same durable consumer and so starts at
//! the first message the old owner did not acknowledge.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::config::ClusterConfig;
use super::error::ClusterError;
use super::manager::Owned;
use super::metrics::ClusterMetrics;
use super::partition::{self, Partition};
use super::snapshot::Snapshots;
use super::takeover;
use crate::engine::Engine;
use crate::messages::commands::IngestOutcome;
use crate::messages::wire::SidecarEvent;

pub const INGEST_STREAM: &str = "AGENT_STORE_INGEST";

/// The stream sequence each partition has been applied through on this node, so a read can wait until
/// every batch acknowledged before it has been applied (read-your-writes across nodes).
/// It is also the floor below which a redelivered message is skipped, and each partition has a lock its
/// applier holds, so an applier started when a lease comes back waits for the previous one to finish.
#[derive(Default)]
pub struct Applied {
    partitions: std::sync::Mutex<HashMap<Partition, PartitionState>>,
}

#[derive(Clone)]
struct PartitionState {
    progress: watch::Sender<u64>,
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
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

pub fn subject(partition: Partition) -> String {
    format!("agent_store.ingest.{partition}")
}

/// Opens (creating when absent) the ingest stream with the configured limits. Past `stream_max_bytes` new
/// publishes are refused, so a full stream costs a 503 at the edge, never a message already acknowledged.
pub async fn open_stream(
    js: &jetstream::Context,
    config: &ClusterConfig,
) -> Result<stream::Stream, ClusterError> {
    js.get_or_create_stream(stream::Config {
        name: INGEST_STREAM.into(),
        subjects: vec!["agent_store.ingest.*".into()],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_age: config.stream_max_age,
        max_bytes: i64::try_from(config.stream_max_bytes.as_u64()).unwrap_or(i64::MAX),
        storage: StorageType::File,
        num_replicas: config.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::jetstream("opening the ingest stream", e))
}

/// Publishes a parsed batch, one message per partition, and waits for every acknowledgement. `accepted`
/// counts the events JetStream stored; `ignored` those whose session id names no project.
pub async fn publish(
    js: &jetstream::Context,
    partitions: u32,
    events: Vec<SidecarEvent>,
    metrics: &ClusterMetrics,
) -> Result<IngestOutcome, ClusterError> {
    let mut outcome = IngestOutcome::default();
    let mut groups: BTreeMap<Partition, Vec<SidecarEvent>> = BTreeMap::new();
    for event in events {
        match partition::project_of_session(event.session_id()) {
            Some(project) => groups
                .entry(partition::of_project(project, partitions))
                .or_default()
                .push(event),
            None => outcome.ignored += 1,
        }
    }
    // Send every partition's message first, then wait for the acknowledgements together.
    let mut pending = Vec::with_capacity(groups.len());
    for (partition, events) in groups {
        let failed = |e: &dyn std::fmt::Display| ClusterError::Publish {
            partition,
            message: e.to_string(),
        };
        let payload = serde_json::to_vec(&events).map_err(|e| failed(&e))?;
        let ack = js
            .publish(subject(partition), Bytes::from(payload))
            .await
            .map_err(|e| failed(&e))?;
        pending.push((partition, events.len(), ack));
    }
    for (partition, count, ack) in pending {
        ack.await.map_err(|e| ClusterError::Publish {
            partition,
            message: e.to_string(),
        })?;
        outcome.accepted += count;
        metrics.ingest.with_label_values(&["published"]).inc();
    }
    Ok(outcome)
}

/// Runs one applier per partition this node holds, starting and stopping them as leases come and go.
pub async fn apply_owned(
    stream: stream::Stream,
    engine: Engine,
    mut owned: watch::Receiver<Owned>,
    ttl: Duration,
    metrics: ClusterMetrics,
    applied: std::sync::Arc<Applied>,
    snapshots: Snapshots,
) {
    // Each applier is told to stop rather than aborted: an abort while the engine applies a batch would
    // leave it applied but not recorded, and the next replay would apply it twice.
    let mut running: HashMap<Partition, (tokio::task::JoinHandle<()>, watch::Sender<bool>)> =
        HashMap::new();
    loop {
        let now: Vec<Partition> = owned.borrow_and_update().keys().copied().collect();
        running.retain(|partition, (task, stop)| {
            let keep = now.contains(partition) && !task.is_finished();
            if !keep {
                stop.send_replace(true);
                metrics
                    .replay_lag
                    .with_label_values(&[&partition.to_string()])
                    .set(0);
            }
            keep
        });
        for partition in now {
            running.entry(partition).or_insert_with(|| {
                let (stop, stopped) = watch::channel(false);
                let state = applied.state(partition);
                let applier = Applier {
                    partition,
                    engine: engine.clone(),
                    owned: owned.clone(),
                    ttl,
                    metrics: metrics.clone(),
                    progress: state.progress,
                    stop: stopped,
                    snapshots: snapshots.clone(),
                    next_snapshot: tokio::time::Instant::now() + snapshots.interval,
                };
                let task = tokio::spawn(apply_partition(stream.clone(), applier, state.lock));
                (task, stop)
            });
        }
        if owned.changed().await.is_err() {
            break;
        }
    }
    for (_, stop) in running.values() {
        stop.send_replace(true);
    }
}

/// Applies one partition's messages in order while this node holds its lease, reopening the partition's
/// consumer when its stream ends or fails (a NATS server lost, a reconnect).
async fn apply_partition(
    stream: stream::Stream,
    mut applier: Applier,
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
) {
    // The previous applier of this partition on this node, if any, finishes its batch first.
    let _turn = turn.lock().await;
    // Rebuilt from JetStream first when another node applied it last; retried until done or the lease
    // is gone, since applying on top of a store that lacks the partition would lose what it acknowledged.
    while applier.held() && !*applier.stop.borrow() {
        match applier.take_over(&stream).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(partition = applier.partition, error = %e, "cluster: rebuilding the partition failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    while applier.held() && !*applier.stop.borrow() {
        applier.consume(&stream).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Applier {
    partition: Partition,
    engine: Engine,
    owned: watch::Receiver<Owned>,
    ttl: Duration,
    metrics: ClusterMetrics,
    /// The stream sequence applied through on this node (see `Applied`): a redelivery at or below it (an
    /// acknowledgement lost on the way) is skipped.
    progress: watch::Sender<u64>,
    /// Turns true when the lease is gone: stop between two messages.
    stop: watch::Receiver<bool>,
    snapshots: Snapshots,
    /// When the partition's next snapshot is due (taken between two messages).
    next_snapshot: tokio::time::Instant,
}

impl Applier {
    /// Fencing: apply only under a lease this node surely still holds.
    fn held(&self) -> bool {
        self.owned
            .borrow()
            .get(&self.partition)
            .is_some_and(|lease| lease.is_fresh(self.ttl))
    }

    /// Rebuilds the partition from its snapshot and the stream when another node applied it last
    /// (src/cluster/takeover.rs).
    async fn take_over(&mut self, stream: &stream::Stream) -> Result<(), ClusterError> {
        let applied_here = *self.progress.borrow();
        let rebuilt = takeover::rebuild(
            stream,
            &self.snapshots,
            &self.engine,
            self.partition,
            applied_here,
            self.ttl.max(Duration::from_secs(2)),
        )
        .await?;
        if let Some(rebuilt) = rebuilt {
            tracing::info!(
                partition = self.partition,
                through = rebuilt.through,
                imported = rebuilt.imported,
                "cluster: partition rebuilt from JetStream; replaying the stream after its snapshot"
            );
            self.progress.send_replace(rebuilt.through);
            self.metrics.ingest.with_label_values(&["rebuilt"]).inc();
        }
        Ok(())
    }

    /// Writes the partition's snapshot, applied through the last message applied here; only under a
    /// lease this node surely still holds, so a node that lost it does not overwrite its successor's.
    async fn snapshot(&mut self) {
        self.next_snapshot = tokio::time::Instant::now() + self.snapshots.interval;
        if !self.held() {
            return;
        }
        let through = *self.progress.borrow();
        let outcome = match self
            .snapshots
            .save(&self.engine, self.partition, through)
            .await
        {
            Ok(_) => "snapshot",
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e, "cluster: snapshot failed");
                "snapshot_failed"
            }
        };
        self.metrics.ingest.with_label_values(&[outcome]).inc();
    }

    /// Reads the partition's durable consumer until it ends or the lease is lost. A message is
    /// acknowledged only after the engine committed it; one that arrives after the lease was lost is
    /// handed back for the next owner.
    async fn consume(&mut self, stream: &stream::Stream) {
        let partition = self.partition;
        let name = format!("p{partition}");
        let config = takeover::consumer_config(partition, 1, self.ttl.max(Duration::from_secs(2)));
        let consumer: jetstream::consumer::PullConsumer = match stream
            .get_or_create_consumer(&name, config)
            .await
        {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cluster: cannot open the partition's consumer");
                return;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cluster: cannot read the partition's stream");
                return;
            }
        };
        let lag = self
            .metrics
            .replay_lag
            .with_label_values(&[&partition.to_string()]);
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = self.stop.changed() => return,
                _ = tokio::time::sleep_until(self.next_snapshot) => {
                    self.snapshot().await;
                    continue;
                }
            };
            let Some(message) = next else { return };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "cluster: reading the partition's stream failed");
                    return;
                }
            };
            let Ok((sequence, pending)) = message.info().map(|i| (i.stream_sequence, i.pending))
            else {
                continue;
            };
            lag.set(i64::try_from(pending).unwrap_or(i64::MAX));
            if !self.held() {
                let _ = message.ack_with(AckKind::Nak(None)).await;
                return;
            }
            if sequence <= *self.progress.borrow() {
                self.metrics.ingest.with_label_values(&["skipped"]).inc();
                let _ = message.double_ack().await;
                continue;
            }
            let events: Vec<SidecarEvent> = match serde_json::from_slice(&message.payload) {
                Ok(events) => events,
                Err(e) => {
                    // Only this service publishes here; a message it cannot read would block the
                    // partition for good.
                    tracing::error!(partition, sequence, error = %e, "cluster: unreadable ingest message dropped");
                    let _ = message.ack_with(AckKind::Term).await;
                    self.progress.send_replace(sequence);
                    continue;
                }
            };
            match self.engine.ingest(events, true).await {
                Ok(outcome) => {
                    if outcome.ignored > 0 {
                        // Acknowledged at the edge, but this node holds no such session.
                        tracing::warn!(partition, sequence, ignored = outcome.ignored, "cluster: applied events for sessions this node does not hold were ignored");
                    }
                    self.progress.send_replace(sequence);
                    self.metrics.ingest.with_label_values(&["applied"]).inc();
                    if let Err(e) = message.double_ack().await {
                        tracing::warn!(partition, sequence, error = %e, "cluster: acknowledgement lost; the redelivery will be skipped");
                    }
                }
                Err(e) => {
                    tracing::warn!(partition, sequence, error = %e, "cluster: applying failed; retrying");
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_millis(200))))
                        .await;
                }
            }
        }
    }
}
