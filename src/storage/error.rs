//! Storage errors. A newer or damaged file is refused, never overwritten; a damaged row is reported with
//! the session it belongs to, never served.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
    #[error("{path} was written by a newer agent-store (schema {found}, this build knows {supported}); refusing to open it")]
    NewerSchema {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("{path} is damaged or not an agent-store database: {message}")]
    Damaged { path: String, message: String },
    /// The data dir held a database (its marker says so) but the file is gone: starting empty would lose
    /// it silently.
    #[error("{path} is missing, but {marker} says this data dir held a database; restore the file, or delete {marker} to start with an empty database")]
    Missing { path: String, marker: String },
    /// The file at the database path is no longer the one this process opened (deleted or replaced):
    /// commits would go to a file nobody will open again, so none is made.
    #[error("the database file {path} {message}; nothing more is committed until it is back (restore it, or restart)")]
    FileGone { path: String, message: String },
    #[error("storage write failed: {0}")]
    Write(String),
    #[error("storage read failed: {0}")]
    Read(String),
    /// A stored row fails its checksum or cannot be decoded.
    #[error("session {session_id}: stored {what} is damaged: {message}")]
    Corrupt {
        session_id: String,
        what: String,
        message: String,
    },
    #[error("the persister has stopped")]
    Closed,
}

impl StorageError {
    /// Whether the error is the machine's (disk, file) rather than one row's: only those make storage
    /// unable to commit.
    pub fn is_machine(&self) -> bool {
        !matches!(self, StorageError::Corrupt { .. })
    }
}
