//! What a router answers besides routing: the engine's look-ups of a live session (`FindSession`), a
//! purge's taking of routes and its end (`TakeSessions`, `PurgeDone`), retention's deletions
//! (`ForgetSessions`), a flush of every session (`FlushSessions`) and `/v1/debug/top`'s rows
//! (`TopSessions`). Each reads or drops routes in the router's table; none is on the ingest path.

use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::join_all;

use super::Router;
use crate::actors::mailbox::{Mailbox, MailboxStats};
use crate::actors::metrics::ActorKind;
use crate::actors::session::SessionActor;
use crate::actors::supervisor::project_of;
use crate::error::CommandError;
use crate::messages::commands::TopEntry;
use crate::messages::router::{FlushSessions, ForgetSessions, PurgeDone, TopSessions};
use crate::messages::session::{Discard, FlushNow};

/// The live actor of a session, if it is in memory.
#[derive(Message)]
#[rtype(result = "Option<Mailbox<SessionActor>>")]
pub struct FindSession {
    pub session_id: String,
}

impl Handler<FindSession> for Router {
    type Result = Option<Mailbox<SessionActor>>;

    fn handle(&mut self, msg: FindSession, _: &mut Context<Self>) -> Self::Result {
        self.sessions
            .get(msg.session_id.as_str())
            .filter(|a| a.connected())
            .cloned()
    }
}

/// A purge begins: drop the routes of one session or of every session of a project, and let nothing of
/// them come back until `PurgeDone`. Answers the actors taken, to be stopped before the delete.
#[derive(Message)]
#[rtype(result = "Vec<(String, Mailbox<SessionActor>)>")]
pub enum TakeSessions {
    Session(String),
    Project(String),
}

impl TakeSessions {
    /// The session or project id being purged.
    pub fn key(&self) -> &str {
        match self {
            TakeSessions::Session(id) | TakeSessions::Project(id) => id,
        }
    }

    /// The project whose router holds the routes.
    pub fn project(&self) -> &str {
        match self {
            TakeSessions::Session(id) => project_of(id),
            TakeSessions::Project(id) => id,
        }
    }
}

impl Handler<TakeSessions> for Router {
    type Result = Vec<(String, Mailbox<SessionActor>)>;

    fn handle(&mut self, msg: TakeSessions, _: &mut Context<Self>) -> Self::Result {
        match msg {
            TakeSessions::Session(id) => {
                // The purge deletes the ceiling with the session.
                self.ceilings.forget(&id);
                self.purging.insert(id.clone());
                self.sessions
                    .remove(id.as_str())
                    .map(|a| (id, a))
                    .into_iter()
                    .collect()
            }
            TakeSessions::Project(project_id) => {
                let ids: Vec<Arc<str>> = self
                    .sessions
                    .keys()
                    .filter(|id| project_of(id) == project_id)
                    .cloned()
                    .collect();
                self.ceilings.forget_project(&project_id);
                self.purging.insert(project_id);
                ids.into_iter()
                    .filter_map(|id| self.sessions.remove(&id).map(|a| (id.to_string(), a)))
                    .collect()
            }
        }
    }
}

impl Handler<PurgeDone> for Router {
    type Result = ();

    fn handle(&mut self, PurgeDone(id): PurgeDone, _: &mut Context<Self>) {
        self.purging.remove(&id);
    }
}

impl Handler<ForgetSessions> for Router {
    type Result = ();

    fn handle(&mut self, msg: ForgetSessions, _: &mut Context<Self>) {
        for id in msg.ids {
            // Deleted by retention, its ceiling with it.
            self.ceilings.forget(&id);
            if let Some(addr) = self.sessions.remove(id.as_str()) {
                addr.do_send(Discard { reason: msg.reason });
            }
        }
    }
}

impl Handler<FlushSessions> for Router {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, _: FlushSessions, _: &mut Context<Self>) -> Self::Result {
        let flushes: Vec<_> = self.sessions.values().map(|a| a.send(FlushNow)).collect();
        Box::pin(async move {
            // A session that stopped meanwhile had nothing left to write; only storage failures count.
            for result in join_all(flushes).await {
                if let Ok(Err(e @ CommandError::Storage(_))) = result {
                    return Err(e);
                }
            }
            Ok(())
        })
    }
}

impl Handler<TopSessions> for Router {
    type Result = Vec<TopEntry>;

    fn handle(&mut self, _: TopSessions, _: &mut Context<Self>) -> Vec<TopEntry> {
        self.sessions
            .iter()
            .map(|(id, m)| {
                top_entry(
                    ActorKind::Session,
                    project_of(id),
                    Some(id.to_string()),
                    m.stats(),
                )
            })
            .collect()
    }
}

/// One `/v1/debug/top` row from an actor's mailbox stats.
pub fn top_entry(
    actor: ActorKind,
    project_id: &str,
    session_id: Option<String>,
    stats: &MailboxStats,
) -> TopEntry {
    use std::sync::atomic::Ordering::Relaxed;
    TopEntry {
        actor: actor.as_str().to_owned(),
        project_id: project_id.to_owned(),
        session_id,
        mailbox_depth: stats.depth.load(Relaxed),
        messages_handled: stats.handled.load(Relaxed),
        memory_bytes: stats.memory.load(Relaxed),
    }
}
