//! How a session reaches the actors above it: the handles its project (and, through it, the router and
//! the supervisor) gave it, one per message it may send. The session never names its parents' types, so
//! the dependency runs one way: parent → child type, child → parent only through these messages
//! (src/messages/{project,router,supervisor}.rs).

use actix::prelude::*;

use crate::actors::mailbox::Outbox;
use crate::messages::project::{Halt, ProjectActivity, SessionCost, SessionStatusChanged};

/// What a session tells its project, for its health and its stop decisions.
#[derive(Clone)]
pub struct ProjectLink {
    pub activity: Outbox<ProjectActivity>,
    pub status: Outbox<SessionStatusChanged>,
    pub cost: Outbox<SessionCost>,
    pub halt: Outbox<Halt>,
}

/// A report a session makes to its project, and which of the link's handles carries it.
pub trait Report: Message<Result = ()> + Send + Sized + 'static {
    fn via(link: &ProjectLink) -> &Outbox<Self>;
}

impl Report for ProjectActivity {
    fn via(link: &ProjectLink) -> &Outbox<Self> {
        &link.activity
    }
}

impl Report for SessionStatusChanged {
    fn via(link: &ProjectLink) -> &Outbox<Self> {
        &link.status
    }
}

impl Report for SessionCost {
    fn via(link: &ProjectLink) -> &Outbox<Self> {
        &link.cost
    }
}

impl Report for Halt {
    fn via(link: &ProjectLink) -> &Outbox<Self> {
        &link.halt
    }
}

/// A project took this session back (loadLastSession of a session still in memory): its link to tell.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub ProjectLink);
