//! The cluster's hooks on a node's engine (src/cluster): a partition's stored sessions out and in
//! (src/actors/adopt.rs), and other nodes' live events into this node's streams.

use super::Engine;
use crate::actors::adopt::{self, StoredSession};
use crate::actors::broadcaster::Publish;
use crate::error::CommandError;
use crate::messages::commands::LiveEvent;

impl Engine {
    /// Every stored session of `projects`, for a partition snapshot.
    pub async fn export_sessions(
        &self,
        projects: Vec<String>,
    ) -> Result<Vec<StoredSession>, CommandError> {
        adopt::export_sessions(self.inner.store.clone(), projects).await
    }

    /// Sessions another node stored, written here under their ids, their seqIds to continue above
    /// their ceiling plus `seq_margin`; answers how many were written.
    pub async fn import_sessions(
        &self,
        sessions: Vec<StoredSession>,
        seq_margin: u64,
    ) -> Result<usize, CommandError> {
        let inner = &self.inner;
        adopt::import_sessions(
            inner.store.clone(),
            &inner.persister,
            &inner.config,
            sessions,
            seq_margin,
        )
        .await
    }

    /// A live event of a project another node runs, for this node's subscribers (see
    /// `LiveEvent::Remote`). Waits for the broadcaster to take it, so a flood is held back at NATS.
    pub async fn publish_remote(&self, event: LiveEvent) -> Result<(), CommandError> {
        Ok(self.inner.broadcaster.addr().send(Publish(event)).await?)
    }
}
