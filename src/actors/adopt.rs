//! Cluster hook (src/cluster/snapshot.rs), kept apart from the engine's own logic: sessions leave a node
//! as what its store holds (`export_sessions`, for a partition snapshot in JetStream) and arrive on the
//! node that takes the partition over (`import_sessions`), written into its store under their own ids.
//! Nothing else is needed to serve them there: a read finds them in storage, and ingest for one of them
//! brings it back from storage like any session no actor holds (its router's late-event path).
//!
//! An imported session whose agent was a child of the lost node is marked as a restart marks it
//! (interrupted); its seqIds continue above the ceiling the snapshot carries, as after a restart.

use serde::{Deserialize, Serialize};

use super::blocking;
use super::persister::PersisterHandle;
use super::restart::external_providers;
use super::restart::INTERRUPTED;
use crate::config::Config;
use crate::error::CommandError;
use crate::messages::wire::{now_ms, AgentMessage, AgentStatus};
use crate::storage::{SessionRecord, Store, WriteOp};

/// A session as one node's store holds it: its record, every stored message, and the highest seqId it
/// may have handed out (its reserved ceiling, at least its last stored seqId).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSession {
    pub record: SessionRecord,
    pub messages: Vec<AgentMessage>,
    pub seq_ceiling: u64,
}

/// Every stored session of `projects`, with its messages.
pub async fn export_sessions(
    store: Store,
    projects: Vec<String>,
) -> Result<Vec<StoredSession>, CommandError> {
    blocking(move || {
        let mut out = Vec::new();
        for project in projects {
            for record in store.project_sessions(&project)? {
                out.push(stored(&store, record)?);
            }
        }
        Ok(out)
    })
    .await
}

/// One stored session with its messages, as a snapshot would carry it; None when storage lacks it.
pub async fn export_session(
    store: Store,
    session_id: String,
) -> Result<Option<StoredSession>, CommandError> {
    blocking(move || match store.session(&session_id)? {
        Some(record) => Ok(Some(stored(&store, record)?)),
        None => Ok(None),
    })
    .await
}

fn stored(
    store: &Store,
    record: SessionRecord,
) -> Result<StoredSession, crate::storage::StorageError> {
    let messages = store.messages(&record.session_id, 0, None, None)?;
    let ceiling = store.seq_ceiling(&record.session_id)?.unwrap_or(0);
    Ok(StoredSession {
        seq_ceiling: ceiling.max(record.last_seq),
        record,
        messages,
    })
}

/// Writes `sessions` into this node's store, each under its own id, its seqIds to continue above
/// `seq_ceiling + seq_margin`. A session this store already holds as far (same or higher last seqId)
/// is left alone. Answers how many were written.
pub async fn import_sessions(
    store: Store,
    persister: &PersisterHandle,
    config: &Config,
    sessions: Vec<StoredSession>,
    seq_margin: u64,
) -> Result<usize, CommandError> {
    let external = external_providers(config);
    let ops = blocking(move || {
        let mut ops = Vec::new();
        for mut session in sessions {
            let id = session.record.session_id.clone();
            if store
                .session(&id)?
                .is_some_and(|held| held.last_seq >= session.record.last_seq)
            {
                continue;
            }
            // Its agent was a child of the lost node: it is gone, as after a restart.
            if session.record.status == AgentStatus::Running
                && !external.contains(&session.record.provider)
            {
                session.record.status = AgentStatus::Error;
                session.record.error = Some(INTERRUPTED.to_owned());
                session.record.updated_at = now_ms();
            }
            ops.push(WriteOp::ReserveSeq {
                session_id: id.clone(),
                ceiling: session.seq_ceiling.saturating_add(seq_margin),
            });
            if !session.messages.is_empty() {
                ops.push(WriteOp::AppendMessages {
                    session_id: id,
                    messages: session.messages.into_iter().map(Into::into).collect(),
                });
            }
            ops.push(WriteOp::put_session(session.record));
        }
        Ok(ops)
    })
    .await?;
    let written = ops
        .iter()
        .filter(|op| matches!(op, WriteOp::PutSession(_)))
        .count();
    if written > 0 {
        persister.write(ops).await?;
    }
    Ok(written)
}
