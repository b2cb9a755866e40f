//! What the supervisor is told: by the actors below it (a project that may stop, a finished session
//! whose retention let others go; sent through the handles the supervisor gave them) and by the
//! engine (purges, settings, lists, health, flush, the busiest actors). The messages that hand out
//! project actors' addresses stay beside it (actors/supervisor/directory.rs).

use actix::prelude::*;

use crate::error::CommandError;
use crate::messages::commands::{ProjectSummary, Settings, SettingsPatch, TopBy, TopEntry};
use crate::messages::wire::ProjectHealth;

/// The retention that rode with a session's finish (actors/persister.rs `Retain`) deleted these sessions
/// from storage: forget them in memory too.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RetentionEvicted {
    pub session_ids: Vec<String>,
}

/// A project has no work and no timer: it may stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProjectIdle {
    pub project_id: String,
    /// Which actor of that id (see `Mailbox::instance`).
    pub instance: usize,
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

/// PUT /v1/settings: persisted first, then applied; retention changes are enforced on every project at once.
/// Updates run one at a time, each patching the settings the previous one left: two concurrent updates of
/// different keys both stay, in memory as in storage.
#[derive(Message)]
#[rtype(result = "Result<Settings, CommandError>")]
pub struct UpdateSettings(pub SettingsPatch);

/// Every project, live or stored: the live ones as their actors tell (only projects with work are live),
/// the others from storage's project index with their last finished session, which a read of them would
/// restore; a project let go in this process shows no session, as its reads answer.
#[derive(Message)]
#[rtype(result = "Result<Vec<ProjectSummary>, CommandError>")]
pub struct ListProjects;

/// Health of every live project, highest attention first.
#[derive(Message)]
#[rtype(result = "Vec<ProjectHealth>")]
pub struct HealthReport;

/// Every live session persists what it holds; answers when all of it is committed.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct FlushAll;

/// The busiest actors by mailbox depth, messages handled or memory, read from their mailbox stats without
/// disturbing them.
#[derive(Message)]
#[rtype(result = "Vec<TopEntry>")]
pub struct DebugTop {
    pub by: TopBy,
    pub limit: usize,
}
