//! How a session reaches the actors above it: the handles its project (and, through it, the router)
//! gave it; its project's is one handle for every report. The session never names its
//! parents' types, so the dependency runs one way: parent → child type, child → parent only through these messages
//! (src/messages/{project,router,supervisor}.rs).

use actix::prelude::*;

use std::sync::Arc;

use crate::actors::mailbox::ThinOutbox;
use crate::actors::metrics::{ActorKind, Metrics};
use crate::messages::project::SessionReport;

/// What a session tells its project, for its health and its stop decisions: one handle carrying every
/// report (`SessionReport`), not one per kind, since each handle is a channel sender of its own. Thin:
/// the session passes the engine's metrics it holds anyway.
#[derive(Clone)]
pub struct ProjectLink {
    pub reports: ThinOutbox<SessionReport>,
}

impl ProjectLink {
    pub fn tell(&self, report: impl Into<SessionReport>, metrics: &Arc<Metrics>) {
        self.reports
            .do_send(report.into(), metrics, ActorKind::Project);
    }
}

/// A project takes this session as its current one: the session reports to `project` from now on. With
/// `hold`, a command follows (a prompt, a resume, loadLastSession of a session still in memory) and the
/// session does not let its actor go before it; without, the project adopts a session read back for late
/// events, which still lets its actor go once what it holds is stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub project: ProjectLink,
    pub hold: bool,
    /// The project's stall threshold: a session read back from storage began with the configured one,
    /// and its stall clock must fire when the project's health turns stalled (`SessionStalled`).
    pub stall_after: std::time::Duration,
}
