//! The engine's command log in cluster mode (`crate::engine::CommandLog`): a start, purge or stop the
//! owner carried out goes into the ingest stream on its partition's subject as an `ingest::Entry`, and the
//! engine answers the client once JetStream stored it. A node taking the partition over then replays it
//! in order with the events around it (src/cluster/applier.rs, src/cluster/takeover.rs).
//!
//! What is not logged, and why: a prompt's effect on a new owner is the agent's, which ran on the lost
//! node and is interrupted there either way (its user message goes with the agent's output since the last
//! snapshot, docs/CLUSTER.md); settings are global, not a partition's, and live in each node's own store.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::ingest::{self, Entry};
use super::metrics::ClusterMetrics;
use super::partition;
use crate::engine::{CommandLog, Logged};

/// Publishes logged commands to the ingest stream.
pub struct Log {
    pub js: async_nats::jetstream::Context,
    pub partitions: u32,
    /// This node run (node id and a start-up nonce): a stop it logged is not replayed on it.
    pub origin: String,
    pub metrics: ClusterMetrics,
}

impl CommandLog for Log {
    fn record(&self, command: Logged) -> BoxFuture<'static, Result<(), String>> {
        let (project_id, entry) = match command {
            Logged::Started(session) => (
                session.record.project_id.clone(),
                Entry::Started {
                    started: Box::new(session),
                },
            ),
            Logged::Purged {
                project_id,
                session_ids,
            } => (
                project_id,
                Entry::Purged {
                    purged: session_ids,
                },
            ),
            Logged::Stopped {
                project_id,
                session_id,
            } => (
                project_id,
                Entry::Stopped {
                    stopped: session_id,
                    by: self.origin.clone(),
                },
            ),
        };
        let (js, published) = (
            self.js.clone(),
            self.metrics.ingest.with_label_values(&["published"]),
        );
        let partition = partition::of_project(&project_id, self.partitions);
        async move {
            ingest::publish_entry(&js, partition, &entry)
                .await
                .map_err(|e| e.to_string())?;
            published.inc();
            Ok(())
        }
        .boxed()
    }
}
