//! The directory of the projects placed on this router's arbiter (`arbiters::slot` of the projectId): where
//! each project's actor stands, and the lifecycle handshake that lets an idle project stop. Each router
//! holds the directory of its own projects, so a start or a command's look-up goes from the caller
//! straight to the project's arbiter, which finds or creates the actor there: no global actor, and no
//! second thread hop, on the way.
//!
//! A project actor exists while it has work or a timer. When idle it says so (`ProjectIdle`); its
//! router marks it deactivating and asks it to stop (`Deactivate`). Lookups that arrive meanwhile wait
//! for the answer, so a project never has two actors: once it stopped, the next lookup starts a new one,
//! and a command that reached the stopped one (sent before the mark) fails with a closed mailbox and is
//! looked up again by the engine. Projects that stopped with no current session (let go after the cleanup
//! grace, or cleared) are remembered by a 64-bit hash of their id, so a read of them does not bring their
//! last session back within this process, as before; after a restart every stored project revives.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{Revived, Router};
use crate::actors::arbiters::project_of;
use crate::actors::mailbox::{Mailbox, MailboxStats};
use crate::actors::metrics::ActorKind;
use crate::actors::project::ProjectActor;
use crate::messages::project::{Deactivate, Deactivated, StartSession};
use crate::messages::router::ProjectIdle;
use crate::storage::SessionRecord;

/// Where a project's actor stands.
pub(super) enum Slot {
    Live(Mailbox<ProjectActor>),
    /// Asked to stop; lookups wait for its answer.
    Deactivating(Mailbox<ProjectActor>, Vec<Waiting>),
}

impl Slot {
    pub(super) fn mailbox(&self) -> &Mailbox<ProjectActor> {
        match self {
            Slot::Live(m) | Slot::Deactivating(m, _) => m,
        }
    }
}

/// A lookup waiting for a deactivation's answer.
pub(super) enum Waiting {
    Find(oneshot::Sender<Found>),
    Get(
        Option<Box<SessionRecord>>,
        oneshot::Sender<Mailbox<ProjectActor>>,
    ),
    /// A start, handed on to the project's actor once the slot is settled (boxed: rare, and large).
    Start(Box<StartSession>),
}

/// What `FindProject` found.
pub enum Found {
    Live(Mailbox<ProjectActor>),
    /// Its session was let go (or it is being purged): no current session, and no actor for a read.
    LetGo,
    /// No actor: storage may hold it (the engine reads that off this thread).
    Unknown,
}

/// Projects let go in this process, by a hash of their id: 8 bytes each, whatever the id's length.
#[derive(Default)]
pub(super) struct LetGo(HashSet<u64>);

impl LetGo {
    fn key(project_id: &str) -> u64 {
        // DefaultHasher::new() has fixed keys: the same id always gives the same key.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        project_id.hash(&mut h);
        h.finish()
    }

    pub(super) fn contains(&self, project_id: &str) -> bool {
        self.0.contains(&Self::key(project_id))
    }

    pub(super) fn set(&mut self, project_id: &str, let_go: bool) {
        let key = Self::key(project_id);
        if let_go {
            self.0.insert(key);
        } else {
            self.0.remove(&key);
        }
    }
}

impl Router {
    /// The project's actor, started if none (with `revive`, its last stored session, to restore).
    pub(super) fn project(
        &mut self,
        project_id: &str,
        revive: Option<SessionRecord>,
    ) -> Mailbox<ProjectActor> {
        if let Some(slot) = self.projects.get(project_id) {
            return slot.mailbox().clone();
        }
        let id = project_id.to_owned();
        let stats = Arc::new(MailboxStats::default());
        // On this router's arbiter, which is the project's.
        let addr = ProjectActor::new(id, self.project_links.clone(), stats.clone(), revive).start();
        let mailbox = Mailbox::new(addr, stats, self.metrics().clone(), ActorKind::Project);
        self.projects
            .insert(project_id.to_owned(), Slot::Live(mailbox.clone()));
        mailbox
    }

    fn found(&self, project_id: &str) -> Found {
        if let Some(slot) = self.projects.get(project_id) {
            return Found::Live(slot.mailbox().clone());
        }
        // A project's purge in flight keeps it down, as a let-go does.
        if self.purging.contains(project_id) || self.let_go.contains(project_id) {
            Found::LetGo
        } else {
            Found::Unknown
        }
    }

    /// Answers lookups that waited for a deactivation, now that the slot is settled.
    pub(super) fn resolve(&mut self, project_id: &str, waiting: Vec<Waiting>) {
        for w in waiting {
            match w {
                Waiting::Find(tx) => {
                    let _ = tx.send(self.found(project_id));
                }
                Waiting::Get(revive, tx) => {
                    let _ = tx.send(self.project(project_id, revive.map(|r| *r)));
                }
                Waiting::Start(start) => self.project(project_id, None).do_send(*start),
            }
        }
    }

    /// A session read back here is offered to its project, only if that is in memory (and not stopping).
    /// Otherwise the offer drops here, and the session may stop once its late events are stored.
    pub(super) fn offer(&self, revived: Revived) {
        if let Some(Slot::Live(project)) = self.projects.get(project_of(&revived.session_id)) {
            project.do_send(revived);
        }
    }

    fn deactivated(&mut self, project_id: String, instance: usize, answer: Deactivated) {
        let Some(Slot::Deactivating(mailbox, _)) = self.projects.get(&project_id) else {
            return;
        };
        if mailbox.instance() != instance {
            return;
        }
        let Some(Slot::Deactivating(mailbox, waiting)) = self.projects.remove(&project_id) else {
            return;
        };
        crate::actors::sparse::shrink_when_sparse(&mut self.projects);
        if answer.stopped {
            self.let_go.set(&project_id, !answer.had_session);
        } else {
            self.projects
                .insert(project_id.clone(), Slot::Live(mailbox));
        }
        self.resolve(&project_id, waiting);
    }
}

/// The actor of a project if it is in memory; else whether storage may hold it. Reads never create one.
#[derive(Message)]
#[rtype(result = "Found")]
pub struct FindProject {
    pub project_id: String,
}

impl Handler<FindProject> for Router {
    type Result = ResponseFuture<Found>;

    fn handle(&mut self, msg: FindProject, _: &mut Context<Self>) -> Self::Result {
        if let Some(Slot::Deactivating(_, waiting)) = self.projects.get_mut(&msg.project_id) {
            let (tx, rx) = oneshot::channel();
            waiting.push(Waiting::Find(tx));
            return Box::pin(async move { rx.await.unwrap_or(Found::Unknown) });
        }
        let found = self.found(&msg.project_id);
        Box::pin(async move { found })
    }
}

/// The actor of a project, started on first use; `revive` is its last stored session, which a project
/// started for a read restores.
#[derive(Message)]
#[rtype(result = "Result<Mailbox<ProjectActor>, crate::error::CommandError>")]
pub struct Project {
    pub project_id: String,
    pub revive: Option<SessionRecord>,
}

impl Handler<Project> for Router {
    type Result = ResponseFuture<Result<Mailbox<ProjectActor>, crate::error::CommandError>>;

    fn handle(&mut self, msg: Project, _: &mut Context<Self>) -> Self::Result {
        if let Some(Slot::Deactivating(_, waiting)) = self.projects.get_mut(&msg.project_id) {
            let (tx, rx) = oneshot::channel();
            waiting.push(Waiting::Get(msg.revive.map(Box::new), tx));
            return Box::pin(async move {
                rx.await
                    .map_err(|_| crate::error::CommandError::ShuttingDown)
            });
        }
        let mailbox = self.project(&msg.project_id, msg.revive);
        Box::pin(async move { Ok(mailbox) })
    }
}

/// startAgent for a project: its actor, started if none on this arbiter, is handed the start, and answers
/// its caller (`StartSession::reply`) itself: a start costs the caller one wait and one hop to the
/// project's arbiter, instead of a lookup here and then a send to the project. Should the project stop
/// before it handles the start, the reply is dropped unanswered and the caller looks again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartIn {
    pub project_id: String,
    pub start: StartSession,
}

impl Handler<StartIn> for Router {
    type Result = ();

    fn handle(&mut self, msg: StartIn, _: &mut Context<Self>) {
        if let Some(Slot::Deactivating(_, waiting)) = self.projects.get_mut(&msg.project_id) {
            waiting.push(Waiting::Start(Box::new(msg.start)));
            return;
        }
        self.project(&msg.project_id, None).do_send(msg.start);
    }
}

impl Handler<ProjectIdle> for Router {
    type Result = ();

    fn handle(&mut self, msg: ProjectIdle, ctx: &mut Context<Self>) {
        let Some(Slot::Live(mailbox)) = self.projects.get(&msg.project_id) else {
            return;
        };
        if mailbox.instance() != msg.instance {
            return;
        }
        let mailbox = mailbox.clone();
        let asking = mailbox.send(Deactivate { force: false });
        self.projects.insert(
            msg.project_id.clone(),
            Slot::Deactivating(mailbox, Vec::new()),
        );
        let (project_id, instance) = (msg.project_id, msg.instance);
        ctx.spawn(asking.into_actor(self).map(move |answer, act, _| {
            // A mailbox that closed under the question: the actor is gone either way.
            let answer = answer.unwrap_or(Deactivated {
                stopped: true,
                had_session: false,
            });
            act.deactivated(project_id, instance, answer);
        }));
    }
}
