//! The cluster's hooks on a node's engine (src/cluster): a partition's stored sessions out and in
//! (src/actors/adopt.rs), other nodes' live events into this node's streams, and the command log.
//!
//! In cluster mode a node that takes a project's partition over rebuilds it from JetStream: the owner's
//! last snapshot and the ingest stream after it. Whatever the owner did that changes what a session is,
//! and that the stream would not otherwise say, must be in the stream too, in order with the ingest, or a
//! new owner gets it wrong: a session started after the snapshot would be unknown, a purged one would come
//! back from its start and events, a stopped one would be taken for interrupted. So the engine hands each
//! start, purge and stop to the `CommandLog` the cluster gives it, and answers the client only once the log
//! holds it. Single-node mode has no log and pays nothing.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::Engine;
use crate::actors::adopt::{self, StoredSession};
use crate::actors::broadcaster::Publish;
use crate::error::CommandError;
use crate::messages::commands::LiveEvent;
use crate::messages::session::FlushNow;
use crate::messages::wire::{SidecarEvent, StatusPayload};

/// A command this node carried out, for the cluster's log.
#[derive(Debug, Clone)]
pub enum Logged {
    /// A session started here, as its store holds it: record, first messages, seqId ceiling.
    Started(StoredSession),
    /// Sessions purged here, by id (one, or every stored session of a project): a replay deletes these
    /// and no others, so a session started after the purge is never taken with it.
    Purged {
        project_id: String,
        session_ids: Vec<String>,
    },
    /// A project's current session stopped by its client.
    Stopped {
        project_id: String,
        session_id: String,
    },
}

/// Where the engine records the commands a new owner must replay (the cluster's ingest stream). Answers
/// once the command is stored there, or why not.
pub trait CommandLog: Send + Sync {
    fn record(&self, command: Logged) -> BoxFuture<'static, Result<(), String>>;
}

impl Engine {
    /// Cluster mode: from now on every start, purge and stop is recorded in `log` before it is answered.
    /// Set once, before the node serves; a second call is ignored.
    pub fn record_commands_in(&self, log: Arc<dyn CommandLog>) {
        let _ = self.inner.log.set(log);
    }

    /// Whether commands are recorded (cluster mode).
    pub(super) fn logs_commands(&self) -> bool {
        self.inner.log.get().is_some()
    }

    /// Records `command` in the log, when there is one.
    pub(super) async fn record(&self, command: Logged, what: &str) -> Result<(), CommandError> {
        let Some(log) = self.inner.log.get() else {
            return Ok(());
        };
        log.record(command).await.map_err(|e| {
            CommandError::Unrecorded(format!(
                "the {what} could not be recorded in the cluster's ingest stream ({e}); retry"
            ))
        })
    }

    /// A session this node just started goes into the log as stored, so whatever the client sends for it
    /// afterwards comes after it there. Should that fail, the session is purged and the start refused
    /// (retry): a node taking the partition over before the next snapshot would not know it and would
    /// ignore every message acknowledged for it.
    pub(super) async fn record_start(&self, session_id: &str) -> Result<(), CommandError> {
        if !self.logs_commands() {
            return Ok(());
        }
        let recorded = async {
            let stored = self.stored_session(session_id).await?;
            self.record(Logged::Started(stored), "session").await
        }
        .await;
        if let Err(e) = recorded {
            tracing::warn!(%session_id, error = %e, "cluster: a started session is not in the ingest stream; refused");
            if let Err(purge) = self.purge_here(session_id).await {
                tracing::warn!(%session_id, error = %purge, "cluster: a refused start was not purged");
            }
            return Err(e);
        }
        Ok(())
    }

    /// A session as this node's store holds it, once everything it accepted so far is committed.
    async fn stored_session(&self, session_id: &str) -> Result<StoredSession, CommandError> {
        let live = self.live_session(session_id).await?;
        if let Some(session) = live {
            session.send(FlushNow).await??;
        }
        adopt::export_session(self.inner.store.clone(), session_id.to_owned())
            .await?
            .ok_or(CommandError::SessionNotFound)
    }

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

    /// Replays a purge from the log: these sessions are gone here too (already gone is fine). Not
    /// recorded again.
    pub async fn replay_purge(&self, session_ids: Vec<String>) -> Result<(), CommandError> {
        for session_id in session_ids {
            self.purge_here(&session_id).await?;
        }
        Ok(())
    }

    /// Replays a stop another node carried out: the session is done here, as its client asked, rather
    /// than interrupted (its agent ran on the other node). Through ingest, as a sidecar status would.
    pub async fn replay_stop(&self, session_id: &str) -> Result<(), CommandError> {
        let done = SidecarEvent::Status(StatusPayload {
            session_id: session_id.to_owned(),
            status: "done".into(),
            error: None,
        });
        self.ingest(vec![done], true).await.map(|_| ())
    }

    /// A live event of a project another node runs, for this node's subscribers (see
    /// `LiveEvent::Remote`). Waits for the broadcaster to take it, so a flood is held back at NATS.
    pub async fn publish_remote(&self, event: LiveEvent) -> Result<(), CommandError> {
        Ok(self.inner.broadcaster.addr().send(Publish(event)).await?)
    }
}
