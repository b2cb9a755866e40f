//! Sidecar ingest through JetStream. A node that receives a batch splits it by the partition of each
//! event's project (session ids are `<projectId>-<ms>`) and publishes one message per partition to the
//! ingest stream on `agent_store.ingest.<partition>`; it answers 202 only once JetStream has acknowledged
//! (stored, on every replica) each of them. The node holding a partition's lease applies that subject's
//! messages, in order, into its local engine through one durable consumer per partition, acknowledging
//! each after the engine committed it. A new owner takes over the same durable consumer and so starts at
//! the first message the old owner did not acknowledge.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
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
use crate::engine::Engine;
use crate::messages::commands::IngestOutcome;
use crate::messages::wire::SidecarEvent;

pub const INGEST_STREAM: &str = "AGENT_STORE_INGEST";

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
) {
    let mut running: HashMap<Partition, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let now: Vec<Partition> = owned.borrow_and_update().keys().copied().collect();
        running.retain(|partition, task| {
            let keep = now.contains(partition) && !task.is_finished();
            if !keep {
                task.abort();
                metrics
                    .replay_lag
                    .with_label_values(&[&partition.to_string()])
                    .set(0);
            }
            keep
        });
        for partition in now {
            running.entry(partition).or_insert_with(|| {
                tokio::spawn(apply_partition(
                    stream.clone(),
                    partition,
                    engine.clone(),
                    owned.clone(),
                    ttl,
                    metrics.clone(),
                ))
            });
        }
        if owned.changed().await.is_err() {
            break;
        }
    }
    for task in running.values() {
        task.abort();
    }
}

/// Applies one partition's messages in order while this node holds its lease. A message is acknowledged
/// only after the engine committed it; one that arrives after the lease was lost is left unacknowledged
/// for the next owner.
async fn apply_partition(
    stream: stream::Stream,
    partition: Partition,
    engine: Engine,
    owned: watch::Receiver<Owned>,
    ttl: Duration,
    metrics: ClusterMetrics,
) {
    let name = format!("p{partition}");
    let lag = metrics
        .replay_lag
        .with_label_values(&[&partition.to_string()]);
    let consumer = match stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subject(partition),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                // A message a lost owner held comes back to the next one this long after its delivery.
                ack_wait: ttl.max(Duration::from_secs(2)),
                max_ack_pending: 1,
                ..Default::default()
            },
        )
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
    // The stream sequence last applied: a redelivery of it (an acknowledgement lost on the way) is skipped.
    let mut applied: u64 = 0;
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(partition, error = %e, "cluster: reading the partition's stream failed");
                continue;
            }
        };
        let Ok(info) = message.info().map(|i| (i.stream_sequence, i.pending)) else {
            continue;
        };
        let (sequence, pending) = info;
        lag.set(i64::try_from(pending).unwrap_or(i64::MAX));
        // Fencing: apply only under a lease this node surely still holds.
        let held = owned
            .borrow()
            .get(&partition)
            .is_some_and(|lease| lease.is_fresh(ttl));
        if !held {
            let _ = message.ack_with(AckKind::Nak(None)).await;
            break;
        }
        if sequence <= applied {
            metrics.ingest.with_label_values(&["skipped"]).inc();
            let _ = message.double_ack().await;
            continue;
        }
        let events: Vec<SidecarEvent> = match serde_json::from_slice(&message.payload) {
            Ok(events) => events,
            Err(e) => {
                // Only this service publishes here; a message it cannot read would block the partition.
                tracing::error!(partition, sequence, error = %e, "cluster: unreadable ingest message dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        match engine.ingest(events, true).await {
            Ok(_) => {
                applied = sequence;
                metrics.ingest.with_label_values(&["applied"]).inc();
                if let Err(e) = message.double_ack().await {
                    tracing::warn!(partition, sequence, error = %e, "cluster: acknowledgement lost; it will be redelivered and skipped");
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
