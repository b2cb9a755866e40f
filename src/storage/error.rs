//! Storage errors. A newer or damaged file is refused, never overwritten.

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
    #[error("storage write failed: {0}")]
    Write(String),
    #[error("storage read failed: {0}")]
    Read(String),
    #[error("stored value cannot be decoded: {0}")]
    Decode(String),
    #[error("the persister has stopped")]
    Closed,
}
