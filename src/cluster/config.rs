//! `[cluster]`: whether this node joins a cluster, where its NATS servers are, and how projects are split
//! into partitions and leased. Off by default: a node alone needs nothing but its binary.

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Join the cluster (also `serve --cluster`).
    pub enabled: bool,
    /// NATS server URLs, comma-separated; the client fails over between them.
    pub nats_url: String,
    /// This node's name, unique in the cluster; empty: the host name and the HTTP port.
    pub node_id: String,
    /// How many partitions projects are hashed into. Fixed for the life of a cluster's data: changing it
    /// moves projects between partitions.
    pub partitions: u32,
    /// How long a partition lease lives without renewal: a lost node's partitions move after this long.
    /// JetStream's per-message TTLs count whole seconds, so at least 1 s.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// The URL other nodes and operators reach this node at (`GET /v1/cluster`); empty: `http://` and the
    /// address the server listens on.
    pub advertise_url: String,
    /// JetStream replicas of the cluster's streams and buckets (1, or 3 on a three-server NATS cluster).
    pub replicas: usize,
    /// How long the ingest stream keeps a message (per partition subject, as a whole stream limit).
    #[serde(with = "humantime_serde")]
    pub stream_max_age: Duration,
    /// The most bytes the ingest stream keeps; past it new publishes are refused (not acknowledged)
    /// rather than old, maybe unapplied, messages dropped.
    pub stream_max_bytes: bytesize::ByteSize,
    /// How long a forwarded request waits for the owning node's answer.
    #[serde(with = "humantime_serde")]
    pub forward_timeout: Duration,
    /// How often the owner of a partition writes its snapshot to JetStream (src/cluster/snapshot.rs): a
    /// node taking the partition over replays the ingest stream from the last one.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Duration,
    /// The most ingest messages (each one partition's share of a client batch) a partition's owner applies
    /// as one engine ingest; also how many its consumer delivers ahead. 1 by default: on this project's
    /// benchmark (BENCHMARKS.md, "Stop 22") batches of 8 and 64 accepted 0.6× as fast as single messages.
    pub apply_batch: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            nats_url: "nats://127.0.0.1:4222".into(),
            node_id: String::new(),
            partitions: 64,
            lease_ttl: Duration::from_secs(10),
            advertise_url: String::new(),
            replicas: 1,
            stream_max_age: Duration::from_secs(7 * 24 * 3600),
            stream_max_bytes: bytesize::ByteSize::gib(10),
            forward_timeout: Duration::from_secs(30),
            snapshot_interval: Duration::from_secs(30),
            apply_batch: 1,
        }
    }
}

impl ClusterConfig {
    /// Checks the ranges serde cannot; only when the cluster is enabled.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: format!("cluster.{key}"),
            message: message.into(),
        };
        if self.nats_url.split(',').all(|u| u.trim().is_empty()) {
            return Err(invalid("nats_url", "must name at least one NATS server"));
        }
        if !(1..=4096).contains(&self.partitions) {
            return Err(invalid("partitions", "must be within 1..=4096"));
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err(invalid("lease_ttl", "must be at least 1s"));
        }
        if !self.node_id.is_empty() && !crate::cluster::is_token(&self.node_id) {
            return Err(invalid(
                "node_id",
                "may hold only letters, digits, '_' and '-' (it is part of NATS subjects)",
            ));
        }
        if !matches!(self.replicas, 1..=5) {
            return Err(invalid("replicas", "must be within 1..=5"));
        }
        if self.forward_timeout.is_zero() {
            return Err(invalid("forward_timeout", "must be above zero"));
        }
        if self.snapshot_interval < Duration::from_millis(100) {
            return Err(invalid("snapshot_interval", "must be at least 100ms"));
        }
        if !(1..=10_000).contains(&self.apply_batch) {
            return Err(invalid("apply_batch", "must be within 1..=10000"));
        }
        Ok(())
    }

    /// The lease TTL as JetStream counts it: whole seconds, rounded up.
    pub fn lease_ttl_secs(&self) -> u64 {
        self.lease_ttl.as_secs() + u64::from(self.lease_ttl.subsec_nanos() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_shipped_file_says_the_built_in_defaults() {
        let c = Config::from_toml(include_str!("../../config/default.toml")).unwrap();
        assert_eq!(
            format!("{:?}", c.cluster),
            format!("{:?}", ClusterConfig::default())
        );
        assert!(!c.cluster.enabled);
    }

    #[test]
    fn bad_values_are_named_only_when_enabled() {
        let on = |extra: &str| Config::from_toml(&format!("[cluster]\nenabled = true\n{extra}"));
        assert!(on("").is_ok());
        let e = on("lease_ttl = \"500ms\"").unwrap_err();
        assert!(e.to_string().contains("cluster.lease_ttl"), "{e}");
        let e = on("partitions = 0").unwrap_err();
        assert!(e.to_string().contains("cluster.partitions"), "{e}");
        let e = on("node_id = \"a.b\"").unwrap_err();
        assert!(e.to_string().contains("cluster.node_id"), "{e}");
        let e = on("nats_url = \" , \"").unwrap_err();
        assert!(e.to_string().contains("cluster.nats_url"), "{e}");
        assert!(Config::from_toml("[cluster]\npartitions = 0").is_ok());
        let e = Config::from_toml("[cluster]\nleases = 3").unwrap_err();
        assert!(e.to_string().contains("leases"), "{e}");
    }

    #[test]
    fn the_deployed_cluster_nodes_are_valid_and_distinct() {
        let nodes = [
            include_str!("../../deploy/cluster/node-1.toml"),
            include_str!("../../deploy/cluster/node-2.toml"),
            include_str!("../../deploy/cluster/node-3.toml"),
        ]
        .map(|text| Config::from_toml(text).unwrap().cluster);
        for node in &nodes {
            assert!(node.enabled);
            assert_eq!(node.replicas, 3);
            assert_eq!(node.nats_url.split(',').count(), 3);
        }
        let ids: std::collections::BTreeSet<_> = nodes.iter().map(|n| &n.node_id).collect();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn the_lease_ttl_rounds_up_to_whole_seconds() {
        let mut c = ClusterConfig {
            lease_ttl: Duration::from_millis(1500),
            ..ClusterConfig::default()
        };
        assert_eq!(c.lease_ttl_secs(), 2);
        c.lease_ttl = Duration::from_secs(3);
        assert_eq!(c.lease_ttl_secs(), 3);
    }
}
