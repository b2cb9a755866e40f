//! Which node applied each partition last: one key `p<N>` in the JetStream key-value bucket
//! `agent_store_appliers`, naming the node and the lease it applied under. A node writes it, under its
//! lease, before it applies anything of the partition, so the next node to take the partition knows
//! whether anyone applied it since it did itself.
//!
//! That is the whole rebuild decision (src/cluster/applier.rs): a node whose store is the last applier's
//! (the record names it, and it applied the partition in this process) continues from its own progress;
//! any other node rebuilds the partition from its snapshot and the stream after it (src/cluster/takeover.rs),
//! since the last applier's store may hold what the stream does not (sessions started there, their
//! records) and its own copy may be behind.

use async_nats::jetstream::{self, kv, stream::StorageType};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::ClusterError;
use super::partition::Partition;

pub const APPLIER_BUCKET: &str = "agent_store_appliers";

/// The node that applied a partition last, and the lease (its acquisition token) it applied under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastApplier {
    pub node_id: String,
    pub token: u64,
}

/// The bucket of last appliers.
#[derive(Clone)]
pub struct Appliers {
    kv: kv::Store,
}

fn key(partition: Partition) -> String {
    format!("p{partition}")
}

impl Appliers {
    /// Opens the bucket, creating it when absent.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Appliers, ClusterError> {
        let config = kv::Config {
            bucket: APPLIER_BUCKET.into(),
            history: 1,
            storage: StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        let kv = match js.create_key_value(config).await {
            Ok(kv) => kv,
            // Another node created it first, or it exists from an earlier run.
            Err(_) => js
                .get_key_value(APPLIER_BUCKET)
                .await
                .map_err(|e| ClusterError::jetstream("opening the appliers bucket", e))?,
        };
        Ok(Appliers { kv })
    }

    /// The node that applied `partition` last; None when nobody has.
    pub async fn last(&self, partition: Partition) -> Result<Option<LastApplier>, ClusterError> {
        let value = self
            .kv
            .get(key(partition))
            .await
            .map_err(|e| ClusterError::jetstream("reading a partition's last applier", e))?;
        // A value this release cannot read names no node this one could be: rebuild.
        Ok(value.map(|v| {
            serde_json::from_slice(&v).unwrap_or(LastApplier {
                node_id: String::new(),
                token: 0,
            })
        }))
    }

    /// Records this node as the partition's applier from now on.
    pub async fn claim(
        &self,
        partition: Partition,
        applier: &LastApplier,
    ) -> Result<(), ClusterError> {
        let failed = |e: &dyn std::fmt::Display| {
            ClusterError::jetstream("recording a partition's applier", e)
        };
        let value = serde_json::to_vec(applier).map_err(|e| failed(&e))?;
        self.kv
            .put(key(partition), Bytes::from(value))
            .await
            .map_err(|e| failed(&e))?;
        Ok(())
    }
}
