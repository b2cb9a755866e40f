//! Purges of a session or a project (memory and storage): the router that holds the project's directory
//! and its sessions' routes drops them at once, lets nothing of them come back (no route, no project
//! actor for a read) while the delete is in flight, and answers once storage no longer holds them.

use actix::prelude::*;
use futures_util::future::join_all;

use super::directory::Slot;
use super::Router;
use crate::actors::arbiters::project_of;
use crate::actors::mailbox::Mailbox;
use crate::actors::metrics::StopReason;
use crate::actors::session::SessionActor;
use crate::error::CommandError;
use crate::messages::project::{Deactivate, ForgetSession};
use crate::messages::router::{PurgeProject, PurgeSession};
use crate::messages::session::Discard;
use crate::storage::WriteOp;

/// What a purge takes: one session, or every session of a project.
enum Take {
    Session(String),
    Project(String),
}

impl Take {
    /// The session or project id being purged.
    fn key(&self) -> &str {
        match self {
            Take::Session(id) | Take::Project(id) => id,
        }
    }
}

impl Handler<PurgeSession> for Router {
    type Result = ResponseActFuture<Self, Result<Vec<String>, CommandError>>;

    fn handle(&mut self, msg: PurgeSession, _: &mut Context<Self>) -> Self::Result {
        if let Some(project) = self
            .projects
            .get(project_of(&msg.session_id))
            .map(Slot::mailbox)
        {
            project.do_send(ForgetSession {
                session_id: msg.session_id.clone(),
            });
        }
        let delete = WriteOp::DeleteSession {
            session_id: msg.session_id.clone(),
        };
        self.purge(Take::Session(msg.session_id), delete, |_| async {})
    }
}

impl Handler<PurgeProject> for Router {
    type Result = ResponseActFuture<Self, Result<Vec<String>, CommandError>>;

    fn handle(&mut self, msg: PurgeProject, _: &mut Context<Self>) -> Self::Result {
        let project = match self.projects.remove(&msg.project_id) {
            Some(Slot::Live(m)) => Some(m),
            Some(Slot::Deactivating(m, waiting)) => {
                self.resolve(&msg.project_id, waiting);
                Some(m)
            }
            None => None,
        };
        let delete = WriteOp::DeleteProject {
            project_id: msg.project_id.clone(),
        };
        self.purge(Take::Project(msg.project_id), delete, |taken| async move {
            if let Some(p) = project {
                for session_id in taken {
                    let _ = p.send(ForgetSession { session_id }).await;
                }
                // Its memory goes with its data.
                let _ = p.send(Deactivate { force: true }).await;
            }
        })
    }
}

impl Router {
    /// Drops the routes `take` names and marks its key purging; answers the actors taken, to be stopped
    /// before the delete.
    fn take(&mut self, take: &Take) -> Vec<(String, Mailbox<SessionActor>)> {
        self.purging.insert(take.key().to_owned());
        match take {
            Take::Session(id) => {
                // The purge deletes the ceiling with the session.
                self.ceilings.forget(id);
                self.sessions
                    .remove(id.as_str())
                    .map(|a| (id.clone(), a))
                    .into_iter()
                    .collect()
            }
            Take::Project(project_id) => {
                let ids: Vec<std::sync::Arc<str>> = self
                    .sessions
                    .keys()
                    .filter(|id| project_of(id) == project_id)
                    .cloned()
                    .collect();
                self.ceilings.forget_project(project_id);
                ids.into_iter()
                    .filter_map(|id| self.sessions.remove(&id).map(|a| (id.to_string(), a)))
                    .collect()
            }
        }
    }

    /// Runs a purge: the routes `take` names go, and its key stays in `purging` (no route and no project
    /// actor comes back) until the session actors taken are discarded, `after` has run with their ids
    /// and `delete` is stored; answers those ids. The actors stop before the delete is queued, so no
    /// flush of theirs can land after it.
    fn purge<F>(
        &mut self,
        take: Take,
        delete: WriteOp,
        after: impl FnOnce(Vec<String>) -> F + 'static,
    ) -> ResponseActFuture<Self, Result<Vec<String>, CommandError>>
    where
        F: std::future::Future<Output = ()> + 'static,
    {
        let taken = self.take(&take);
        let key = take.key().to_owned();
        let persister = self.links.persister.clone();
        Box::pin(
            async move {
                join_all(taken.iter().map(|(_, session)| {
                    session.send(Discard {
                        reason: StopReason::Purge,
                    })
                }))
                .await;
                let ids: Vec<String> = taken.into_iter().map(|(id, _)| id).collect();
                after(ids.clone()).await;
                persister.write(vec![delete]).await?;
                Ok(ids)
            }
            .into_actor(self)
            .map(move |result, act, _| {
                act.purging.remove(&key);
                result
            }),
        )
    }
}
