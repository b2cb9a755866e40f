//! PLACEHOLDER — the storage helper replaces this file; the public signatures are final.
use tokio::sync::oneshot;

use crate::storage::{StorageError, Store, WriteOp};

/// Resolves when the write it belongs to is committed (or failed).
pub type Ack = oneshot::Receiver<Result<(), StorageError>>;

#[derive(Debug)]
pub enum TryWriteError {
    /// The persister's queue is full: keep the ops and try again later (backpressure).
    Full(Vec<WriteOp>),
    Closed,
}

#[derive(Clone)]
pub struct PersisterHandle {}

#[allow(unused_variables)]
impl PersisterHandle {
    /// Starts the persister thread, the only writer of `store`, with a queue of `capacity` requests.
    pub fn spawn(store: Store, capacity: usize) -> PersisterHandle {
        todo!()
    }
    /// Queues a write without waiting; the ack resolves after its group commit.
    pub fn try_write(&self, ops: Vec<WriteOp>) -> Result<Ack, TryWriteError> {
        todo!()
    }
    /// Queues a write, waiting for queue space, and waits for its commit.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        todo!()
    }
    /// Applies retention to one project in storage; answers the evicted session ids.
    pub async fn enforce_retention(
        &self,
        project_id: String,
        keep: u32,
        max_age_ms: i64,
        protect: Vec<String>,
    ) -> Result<Vec<String>, StorageError> {
        todo!()
    }
    /// Resolves once everything queued before it is committed.
    pub async fn barrier(&self) -> Result<(), StorageError> {
        todo!()
    }
    /// Commits what is queued, then stops the thread and waits for it. Later writes answer Closed.
    pub async fn shutdown(&self) {
        todo!()
    }
}
