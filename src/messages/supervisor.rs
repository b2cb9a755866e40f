//! What the supervisor is told by the actors below it: a project that may stop, a project whose
//! finished session asks for retention. Sent through the handles the supervisor gave them.

use actix::prelude::*;

/// A session of the project finished and its final record is committed: apply retention to the project,
/// in storage and in memory. Running sessions are protected by their stored status.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EnforceRetention {
    pub project_id: String,
}

/// A project has no work and no timer: it may stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProjectIdle {
    pub project_id: String,
    /// Which actor of that id (see `Mailbox::instance`).
    pub instance: usize,
}
