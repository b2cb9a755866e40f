//! Partition snapshots, so a node that takes a partition over rebuilds it from JetStream and losing a
//! node's disk loses nothing acknowledged. The owner of a partition writes, every
//! `cluster.snapshot_interval`, the partition's stored sessions (records, messages, seqId ceilings) to the
//! JetStream object store `agent_store_snapshots` as object `p<N>`, together with the ingest stream
//! sequence it had applied through when it took it. Its applier takes it between two messages, so the
//! snapshot holds exactly the effect of the stream up to that sequence (and whatever the node's own agents
//! added). A new owner imports the snapshot into its store and replays the stream after that sequence.
//!
//! A snapshot is a whole partition as one object (the object store chunks it): its cost grows with the
//! partition's stored data, which `retention` bounds on the owner.

use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::config::ClusterConfig;
use super::error::ClusterError;
use super::partition::{self, Partition};
use crate::engine::Engine;
use crate::engine::StoredSession;
use crate::messages::wire::now_ms;

pub const SNAPSHOT_BUCKET: &str = "agent_store_snapshots";

/// One partition as its owner stored it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub partition: Partition,
    /// The ingest stream sequence applied through when it was taken: the replay starts after it.
    pub through: u64,
    pub taken_at: u64,
    pub sessions: Vec<StoredSession>,
}

/// Where snapshots are kept.
#[derive(Clone)]
pub struct Snapshots {
    bucket: object_store::ObjectStore,
    partitions: u32,
    pub interval: Duration,
}

fn object(partition: Partition) -> String {
    format!("p{partition}")
}

impl Snapshots {
    /// Opens the snapshot bucket, creating it when absent.
    pub async fn open(
        js: &jetstream::Context,
        config: &ClusterConfig,
    ) -> Result<Snapshots, ClusterError> {
        let bucket = match js.get_object_store(SNAPSHOT_BUCKET).await {
            Ok(bucket) => bucket,
            Err(_) => {
                let created = js
                    .create_object_store(object_store::Config {
                        bucket: SNAPSHOT_BUCKET.into(),
                        num_replicas: config.replicas,
                        ..Default::default()
                    })
                    .await;
                match created {
                    Ok(bucket) => bucket,
                    // Another node created it meanwhile.
                    Err(e) => js
                        .get_object_store(SNAPSHOT_BUCKET)
                        .await
                        .map_err(|_| ClusterError::jetstream("opening the snapshot bucket", e))?,
                }
            }
        };
        Ok(Snapshots {
            bucket,
            partitions: config.partitions,
            interval: config.snapshot_interval,
        })
    }

    /// Takes and stores the partition's snapshot, applied through `through`. Answers how many sessions it
    /// holds; a partition with no projects here and nothing applied is not written.
    pub async fn save(
        &self,
        engine: &Engine,
        partition: Partition,
        through: u64,
    ) -> Result<usize, ClusterError> {
        let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("writing a snapshot", e);
        let projects: Vec<String> = engine
            .projects()
            .await
            .map_err(|e| failed(&e))?
            .into_iter()
            .map(|p| p.project_id)
            .filter(|p| partition::of_project(p, self.partitions) == partition)
            .collect();
        if projects.is_empty() && through == 0 {
            return Ok(0);
        }
        let sessions = engine
            .export_sessions(projects)
            .await
            .map_err(|e| failed(&e))?;
        let count = sessions.len();
        let snapshot = Snapshot {
            partition,
            through,
            taken_at: u64::try_from(now_ms()).unwrap_or(0),
            sessions,
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|e| failed(&e))?;
        self.bucket
            .put(object(partition).as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| failed(&e))?;
        Ok(count)
    }

    /// The partition's last snapshot, if one was ever written.
    pub async fn load(&self, partition: Partition) -> Result<Option<Snapshot>, ClusterError> {
        let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("reading a snapshot", e);
        let mut found = match self.bucket.get(object(partition)).await {
            Ok(found) => found,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(&e)),
        };
        let mut bytes = Vec::new();
        found
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| failed(&e))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| failed(&e))
    }
}
