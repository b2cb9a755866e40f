//! Cluster metrics, registered in the engine's registry so `GET /metrics` carries them: lease changes,
//! forwarding, live events between nodes, how far behind the stream each owned partition's apply is (replay
//! lag), and partitions whose progress fell behind what the stream keeps (replay gaps).

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct ClusterMetrics {
    /// `event`: acquired | released | lost (fenced or expired) | refused (held elsewhere).
    pub lease_changes: IntCounterVec,
    /// `outcome`: sent | answered | failed (requests this node forwarded to an owner), and served (requests
    /// it answered for another node).
    pub forwarded: IntCounterVec,
    /// Ingest messages stored in the partition's stream but not yet applied here.
    pub replay_lag: IntGaugeVec,
    /// Times an owned partition's progress was older than what the stream still keeps (its limits dropped
    /// messages after it, maybe of this partition): what they carried is lost here (docs/CLUSTER.md).
    pub replay_gaps: IntCounterVec,
    /// `stage`: published (a sidecar share or a logged command, acknowledged by JetStream) | applied (into the local engine) | skipped (a
    /// replayed duplicate) | rebuilt (a partition taken over, rebuilt from its snapshot) | snapshot |
    /// snapshot_failed (a partition's snapshot written to JetStream, or not).
    pub ingest: IntCounterVec,
    /// `outcome`: published (this node's live events sent to the others) | received (other nodes' events
    /// put into this node's streams) | dropped (not sent: this node's subscription lagged, or NATS refused).
    pub events: IntCounterVec,
}

impl ClusterMetrics {
    pub fn new(registry: &Registry) -> ClusterMetrics {
        let counter = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(
                Opts::new(format!("agent_store_cluster_{name}"), help),
                &[label],
            )
            .expect("valid metric");
            // Registered once per engine; a second cluster on the same registry keeps its own copy.
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let replay_lag = IntGaugeVec::new(
            Opts::new(
                "agent_store_cluster_replay_lag",
                "Ingest messages stored in JetStream for an owned partition and not yet applied here",
            ),
            &["partition"],
        )
        .expect("valid metric");
        let _ = registry.register(Box::new(replay_lag.clone()));
        let replay_gaps = IntCounterVec::new(
            Opts::new(
                "agent_store_cluster_replay_gaps_total",
                "Partitions whose applied progress was older than the oldest message the ingest stream keeps",
            ),
            &["partition"],
        )
        .expect("valid metric");
        let _ = registry.register(Box::new(replay_gaps.clone()));
        ClusterMetrics {
            replay_gaps,
            lease_changes: counter(
                "lease_changes_total",
                "Partition lease changes on this node",
                "event",
            ),
            forwarded: counter(
                "forwarded_total",
                "Requests forwarded to the owning node, and answered for other nodes",
                "outcome",
            ),
            replay_lag,
            ingest: counter(
                "ingest_total",
                "Sidecar ingest batches through JetStream",
                "stage",
            ),
            events: counter(
                "events_total",
                "Live events carried between nodes",
                "outcome",
            ),
        }
    }
}
