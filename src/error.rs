//! Errors a caller of the engine can meet. Their `Display` is the text the API sends in
//! `{"ok": false, "error": ...}`: where the original store returned a string, it is the same string.

/// Why a command was refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("No session for project")]
    NoSession,
    #[error("Session not found")]
    SessionNotFound,
    #[error("Session start already in progress")]
    StartInProgress,
    #[error("Session already running")]
    AlreadyRunning,
    #[error("Session is running; stop it before clearing")]
    SessionRunning,
    /// Bad input; the message starts with the field it is about.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// Well formed but not permitted by the configuration (a provider's permission checks skipped without
    /// `allow_bypass_permissions`); the message starts with the field.
    #[error("{field}: {message}")]
    Forbidden { field: String, message: String },
    /// The provider could not start; the session exists in status error.
    #[error("{error}")]
    ProviderFailed { session_id: String, error: String },
    /// A follow-up the session's agent cannot take now (a Codex run reads no input); nothing was stored.
    #[error("{0}")]
    Undeliverable(String),
    /// The provider refused a stop or a prompt.
    #[error("{0}")]
    Provider(String),
    /// Storage failed; what was accepted before is kept and retried.
    #[error("storage unavailable: {0}")]
    Storage(String),
    #[error("the service is shutting down")]
    ShuttingDown,
    /// Cluster mode: the command could not be recorded in the cluster's ingest stream, so it was not
    /// carried out (a start is purged again) or not confirmed; the message says which, and to retry.
    #[error("{0}")]
    Unrecorded(String),
    /// No pending tool-permission request of that id: unknown, or already answered.
    #[error("Approval not found (unknown or already answered)")]
    ApprovalNotFound,
    /// The session's agent is no longer running, so nothing waits for the answer.
    #[error("Session no longer runs")]
    SessionEnded,
}

impl CommandError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> CommandError {
        CommandError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<crate::storage::StorageError> for CommandError {
    fn from(e: crate::storage::StorageError) -> Self {
        CommandError::Storage(e.to_string())
    }
}

impl From<actix::MailboxError> for CommandError {
    fn from(_: actix::MailboxError) -> Self {
        CommandError::ShuttingDown
    }
}
