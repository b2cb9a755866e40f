//! What a router is told: by its sessions (one has stopped, so its route goes unless a newer actor of
//! that id holds it; a finish's retention let others go), by its projects (one may stop), by the engine
//! (purges, flush, the reports over every project) and by the supervisor (retention's deletions). The
//! messages that hand out session and project actors' addresses stay beside the router
//! (actors/router.rs, actors/router/directory.rs).

use actix::prelude::*;

use crate::error::CommandError;
use crate::messages::commands::{ProjectSummary, TopEntry};
use crate::messages::session::{Retire, StopReason};

/// Told to its router when a session actor stops, so it drops the route.
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

/// A project has no work and no timer: it may stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProjectIdle {
    pub project_id: String,
    /// Which actor of that id (see `Mailbox::instance`).
    pub instance: usize,
}

/// The retention that rode with a session's finish (actors/persister.rs `Retain`) deleted these sessions
/// from storage: forget them in memory too (they are of the finished session's project, so of its router).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RetentionEvicted {
    pub session_ids: Vec<String>,
}

/// purgeSession: memory and storage.
/// Answers the ids of the live sessions it took (none, or this one).
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, CommandError>")]
pub struct PurgeSession {
    pub session_id: String,
}

/// purgeProjectSessions: every session of the project, memory and storage; the project actor too.
/// Answers the ids of the live sessions it took.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, CommandError>")]
pub struct PurgeProject {
    pub project_id: String,
}

/// Retention removed these sessions from storage: their actors stop without writing, their projects
/// forget them.
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

/// This router's projects and sessions for `/v1/debug/top`, read from their mailbox stats without
/// disturbing them.
#[derive(Message)]
#[rtype(result = "Vec<TopEntry>")]
pub struct TopActors;

/// This router's projects as `GET /v1/projects` lists them: the live ones as their actors tell, then
/// those of `stored` (storage's project index, of this router's slot) that no live actor answered for,
/// with their last session unless the project was let go in this process.
#[derive(Message)]
#[rtype(result = "Vec<ProjectSummary>")]
pub struct SummarizeProjects {
    pub stored: Vec<(String, Option<crate::storage::SessionRecord>)>,
}

/// The health of this router's live projects (`GET /v1/health`): each project adds its health alone to
/// one channel (`messages::project::ReportHealth`), where a summary would also copy its ids, and the router
/// would gather the answers' ids into a set.
#[derive(Message)]
#[rtype(result = "Vec<crate::messages::wire::ProjectHealth>")]
pub struct ProjectsHealth;
