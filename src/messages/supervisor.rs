//! What the supervisor is told, by the engine: settings, and the reports over every project (lists,
//! health, flush, the busiest actors), which it gathers from the routers. Starts, look-ups and purges
//! go to the project's router, which holds its arbiter's project directory (src/messages/router.rs).

use actix::prelude::*;

use crate::error::CommandError;
use crate::messages::commands::{ProjectSummary, Settings, SettingsPatch, TopBy, TopEntry};
use crate::messages::wire::ProjectHealth;

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
