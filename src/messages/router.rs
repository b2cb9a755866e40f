//! What a router is told by its sessions: one has stopped, so its route goes (unless a newer actor of
//! that id holds it).

use actix::prelude::*;

/// Told to the supervisor when a session actor stops, so it drops the route.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionGone {
    pub session_id: String,
    /// Which actor of that id stopped (see `Mailbox::instance`): a newer one may already be registered.
    pub instance: usize,
}
