//! Which nodes are alive: each node writes its record (id, URL, the partitions it holds) into a key-value
//! bucket every lease tick, with the lease TTL, so a node that stops writing drops out on its own. Only
//! partition assignment and `GET /v1/cluster` read it; ownership itself is decided by the leases.

use std::time::Duration;

use async_nats::header::NATS_MESSAGE_TTL;
use async_nats::jetstream::{self, kv};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::error::ClusterError;
use super::lease::{open_bucket, ttl_header};
use super::partition::Partition;

/// One node as `GET /v1/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub node_id: String,
    /// Where its HTTP API listens.
    pub url: String,
    /// The partitions it holds leases for.
    pub partitions: Vec<Partition>,
    /// Whether its record is fresh (written within the lease TTL).
    pub alive: bool,
}

/// The membership bucket.
#[derive(Clone)]
pub struct Members {
    js: jetstream::Context,
    kv: kv::Store,
    ttl: Duration,
}

impl Members {
    pub async fn open(
        js: jetstream::Context,
        bucket: &str,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Members, ClusterError> {
        let kv = open_bucket(&js, bucket, ttl, replicas).await?;
        Ok(Members { js, kv, ttl })
    }

    /// Writes this node's record, alive for one TTL.
    pub async fn heartbeat(&self, node: &NodeInfo) -> Result<(), ClusterError> {
        let value =
            serde_json::to_vec(node).map_err(|e| ClusterError::jetstream("heartbeat", e))?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_TTL, ttl_header(self.ttl));
        self.js
            .publish_with_headers(
                format!("$KV.{}.{}", self.kv.name, node.node_id),
                headers,
                Bytes::from(value),
            )
            .await
            .map_err(|e| ClusterError::jetstream("heartbeat", e))?
            .await
            .map_err(|e| ClusterError::jetstream("heartbeat", e))?;
        Ok(())
    }

    /// Every node whose record has not expired, sorted by id.
    pub async fn live(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| ClusterError::jetstream("listing nodes", e))?
            .try_collect()
            .await
            .map_err(|e| ClusterError::jetstream("listing nodes", e))?;
        let mut nodes = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self
                .kv
                .get(&key)
                .await
                .map_err(|e| ClusterError::jetstream("reading a node", e))?;
            if let Some(node) = value.and_then(|v| serde_json::from_slice::<NodeInfo>(&v).ok()) {
                nodes.push(NodeInfo {
                    alive: true,
                    ..node
                });
            }
        }
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }

    /// Removes this node's record at once (a clean stop), so peers rebalance without waiting.
    pub async fn leave(&self, node_id: &str) -> Result<(), ClusterError> {
        self.kv
            .delete(node_id)
            .await
            .map_err(|e| ClusterError::jetstream("leaving", e))
    }
}
