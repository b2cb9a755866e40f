//! The actor system: a supervisor for what is global, one router per arbiter on the ingest path, one
//! actor per project and per session spread over one arbiter per core, a persister thread that owns
//! storage writes, and a broadcaster for live events. The engine (src/engine) wires them and is the one
//! handle on them; nothing here knows the engine or the API.

pub mod adopt;
pub mod approvals;
pub mod arbiters;
pub mod broadcaster;
pub mod control;
pub mod health;
pub mod held_ceilings;
pub mod journal;
pub mod mailbox;
pub mod metrics;
pub mod persister;
pub mod project;
pub mod publisher;
pub mod restart;
pub mod router;
pub mod routes;
pub mod seq_block;
pub mod session;
pub mod settings;
pub mod sparse;
pub mod spend;
pub mod stderr_kept;
pub mod supervisor;
pub mod windows;

use crate::error::CommandError;

/// Runs a storage call on tokio's blocking pool, off every arbiter.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::storage::StorageError> + Send + 'static,
) -> Result<T, CommandError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CommandError::Storage(e.to_string()))?
        .map_err(CommandError::from)
}
