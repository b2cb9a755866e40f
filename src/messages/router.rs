//! What a router is told: by its sessions (one has stopped, so its route goes unless a newer actor of
//! that id holds it), and by the supervisor (purges, flush, the busiest sessions). The messages that hand
//! out session actors' addresses stay beside the router (actors/router.rs).

use actix::prelude::*;

use crate::error::CommandError;
use crate::messages::commands::TopEntry;
use crate::messages::session::{Retire, StopReason};

/// Told to the supervisor when a session actor stops, so it drops the route.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionGone {
    pub session_id: String,
    /// Which actor of that id stopped (see `Mailbox::instance`): a newer one may already be registered.
    pub instance: usize,
}

/// A session may stop (finished or let go, and all of it stored): its router holds events for it back,
/// asks it to `Retire` behind everything already routed to it, then brings it back from storage for the
/// events held meanwhile, or routes them to it again if it stayed. So no event is sent to an actor that
/// has stopped, and a session never has two actors.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MayRetire {
    pub session_id: String,
    /// Which actor of that id asks (see `Mailbox::instance`).
    pub instance: usize,
    pub retire: Recipient<Retire>,
}

/// A project let go of its session (grace, clear, deactivation): the router drops the seqId ceiling the
/// session's stopped actor left with it, if it holds one (src/actors/held_ceilings.rs).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseCeiling {
    pub session_id: String,
}

/// The purge of this session or project id is over (storage no longer holds it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PurgeDone(pub String);

/// Retention removed these sessions from storage: their actors stop without writing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetSessions {
    pub ids: Vec<String>,
    pub reason: StopReason,
}

/// Every session of this router persists what it holds; answers when all of it is committed.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct FlushSessions;

/// This router's sessions for `/v1/debug/top`, read from their mailbox stats without disturbing them.
#[derive(Message)]
#[rtype(result = "Vec<TopEntry>")]
pub struct TopSessions;
