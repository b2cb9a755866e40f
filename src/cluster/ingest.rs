//! Sidecar ingest through JetStream. A node that receives a batch splits it by the partition of each
//! event's project (session ids are `<projectId>-<ms>`) and publishes one message per partition to the
//! ingest stream on `agent_store.ingest.<partition>`; it answers 202 only once JetStream has acknowledged
//! (stored, on every replica) each of them. The node holding a partition's lease applies that subject's
//! messages, in order, into its local engine (src/cluster/applier.rs).

use std::collections::BTreeMap;

use async_nats::jetstream;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use bytes::Bytes;

use serde::{Deserialize, Serialize};

use super::config::ClusterConfig;
use super::error::ClusterError;
use super::metrics::ClusterMetrics;
use super::partition::{self, Partition};
use crate::engine::project_of_session;
use crate::engine::StoredSession;
use crate::messages::commands::IngestOutcome;
use crate::messages::wire::SidecarEvent;

pub const INGEST_STREAM: &str = "AGENT_STORE_INGEST";

/// One message of the ingest stream: a share of a sidecar batch, or a command its owner carried out
/// (src/cluster/commands.rs) that a node taking the partition over must replay in order with the events:
/// a session started (its record and first messages, so the node knows it before its events, whether or
/// not a snapshot holds it), sessions purged (so they do not come back from their start and events), a
/// session stopped (done, not interrupted).
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    Events(Vec<SidecarEvent>),
    Started {
        started: Box<StoredSession>,
    },
    Purged {
        purged: Vec<String>,
    },
    /// `by` names the node run that carried the stop out (`commands::Log::origin`): it does not replay
    /// its own stop, which a later command of its own may already have overtaken.
    Stopped {
        stopped: String,
        by: String,
    },
}

impl Entry {
    pub fn read(payload: &[u8]) -> Result<Entry, serde_json::Error> {
        serde_json::from_slice(payload)
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
        match project_of_session(event.session_id()) {
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

/// Publishes one entry to the partition's subject and waits for JetStream to store it, so everything
/// acknowledged after it comes after it in the stream.
pub async fn publish_entry(
    js: &jetstream::Context,
    partition: Partition,
    entry: &Entry,
) -> Result<(), ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::Publish {
        partition,
        message: e.to_string(),
    };
    let payload = serde_json::to_vec(entry).map_err(|e| failed(&e))?;
    js.publish(subject(partition), Bytes::from(payload))
        .await
        .map_err(|e| failed(&e))?
        .await
        .map_err(|e| failed(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_share_and_a_start_read_back_as_themselves() {
        let events: Vec<SidecarEvent> = serde_json::from_str(
            r#"[{"event":"agent.status","payload":{"sessionId":"p-1","status":"done"}}]"#,
        )
        .unwrap();
        let bytes = serde_json::to_vec(&events).unwrap();
        assert!(matches!(Entry::read(&bytes), Ok(Entry::Events(e)) if e.len() == 1));
        assert!(Entry::read(b"{\"started\":{}}").is_err());
        let purged = serde_json::to_vec(&Entry::Purged {
            purged: vec!["p-1".into()],
        })
        .unwrap();
        assert!(matches!(Entry::read(&purged), Ok(Entry::Purged { purged }) if purged == ["p-1"]));
        let stopped = serde_json::to_vec(&Entry::Stopped {
            stopped: "p-1".into(),
            by: "a.1".into(),
        })
        .unwrap();
        assert!(
            matches!(Entry::read(&stopped), Ok(Entry::Stopped { stopped, by }) if stopped == "p-1" && by == "a.1")
        );
        assert!(Entry::read(b"not json").is_err());
    }
}
