//! What a router answers besides routing and its directory: the engine's look-ups of a live session
//! (`FindSession`), retention's deletions (`RetentionEvicted`, `ForgetSessions`), and the supervisor's
//! gathering over every router: a flush of every session (`FlushSessions`), the project list
//! (`SummarizeProjects`), every live project's health (`ProjectsHealth`) and `/v1/debug/top`'s rows (`TopActors`). None is on the ingest path.

use std::collections::HashSet;
use std::future::Future;

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::Router;
use crate::actors::arbiters::project_of;
use crate::actors::mailbox::{Mailbox, MailboxStats, Timed};
use crate::actors::metrics::ActorKind;
use crate::actors::metrics::StopReason;
use crate::actors::project::ProjectActor;
use crate::actors::session::SessionActor;
use crate::error::CommandError;
use crate::messages::commands::{ProjectSummary, TopEntry};
use crate::messages::project::{ForgetSession, ReportHealth, ReportSummary};
use crate::messages::router::{FlushSessions, ForgetSessions, RetentionEvicted};
use crate::messages::router::{ProjectsHealth, SummarizeProjects, TopActors};
use crate::messages::session::{Discard, FlushNow};
use crate::messages::wire::{ActivityState, ProjectHealth};

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

impl Router {
    /// Drops sessions that storage no longer holds: their actors stop without writing, their projects
    /// forget them.
    fn forget_sessions(&mut self, ids: Vec<String>, reason: StopReason) {
        for id in ids {
            // Deleted, its ceiling with it.
            self.ceilings.forget(&id);
            if let Some(addr) = self.sessions.remove(id.as_str()) {
                addr.do_send(Discard { reason });
            }
            if let Some(project) = self.projects.get(project_of(&id)) {
                project.mailbox().do_send(ForgetSession { session_id: id });
            }
        }
    }
}

impl Handler<RetentionEvicted> for Router {
    type Result = ();

    fn handle(&mut self, msg: RetentionEvicted, _: &mut Context<Self>) {
        self.metrics()
            .retention_evictions
            .inc_by(msg.session_ids.len() as u64);
        self.forget_sessions(msg.session_ids, StopReason::Retention);
    }
}

impl Handler<ForgetSessions> for Router {
    type Result = ();

    fn handle(&mut self, msg: ForgetSessions, _: &mut Context<Self>) {
        self.forget_sessions(msg.ids, msg.reason);
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

impl Handler<TopActors> for Router {
    type Result = Vec<TopEntry>;

    fn handle(&mut self, _: TopActors, _: &mut Context<Self>) -> Vec<TopEntry> {
        let projects = self
            .projects
            .iter()
            .map(|(id, slot)| top_entry(ActorKind::Project, id, None, slot.mailbox().stats()));
        let sessions = self.sessions.iter().map(|(id, m)| {
            top_entry(
                ActorKind::Session,
                project_of(id),
                Some(id.to_string()),
                m.stats(),
            )
        });
        projects.chain(sessions).collect()
    }
}

impl Handler<SummarizeProjects> for Router {
    type Result = ResponseFuture<Vec<ProjectSummary>>;

    fn handle(&mut self, msg: SummarizeProjects, _: &mut Context<Self>) -> Self::Result {
        let summaries = self.gather_from_projects(ReportSummary);
        // A project let go in this process shows no session, as its reads answer.
        let stored: Vec<_> = msg
            .stored
            .into_iter()
            .map(|(project_id, last)| {
                let last = last.filter(|_| !self.let_go.contains(&project_id));
                (project_id, last)
            })
            .collect();
        Box::pin(async move {
            let mut out = summaries.await;
            out.reserve(stored.len());
            // A stored project is listed from the index unless a live actor answered for it (one that
            // stopped before answering is listed from the index).
            let unanswered: Vec<_> = {
                let known: HashSet<&str> = out.iter().map(|p| p.project_id.as_str()).collect();
                stored
                    .into_iter()
                    .filter(|(p, _)| !known.contains(p.as_str()))
                    .collect()
            };
            out.extend(
                unanswered
                    .into_iter()
                    .map(|(project_id, last)| ProjectSummary {
                        health: ProjectHealth::quiet(&project_id, ActivityState::Inactive),
                        session_id: last.as_ref().map(|r| r.session_id.clone()),
                        status: last.map(|r| r.status),
                        project_id,
                    }),
            );
            out
        })
    }
}

impl Handler<ProjectsHealth> for Router {
    type Result = ResponseFuture<Vec<ProjectHealth>>;

    fn handle(&mut self, _: ProjectsHealth, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.gather_from_projects(ReportHealth))
    }
}

impl Router {
    /// Sends every live project one `ask` carrying a sender of one channel, and gathers what they send
    /// on it: one message per project, no answer future per project. The answer is complete once every
    /// project has sent or dropped its sender (one that stops before answering drops it).
    fn gather_from_projects<T, M>(
        &self,
        ask: impl Fn(mpsc::UnboundedSender<T>) -> M,
    ) -> impl Future<Output = Vec<T>> + 'static
    where
        T: 'static,
        M: Message + Send + 'static,
        M::Result: Send,
        ProjectActor: Handler<Timed<M>>,
    {
        let (gather, mut gathered) = mpsc::unbounded_channel();
        for slot in self.projects.values() {
            slot.mailbox().do_send(ask(gather.clone()));
        }
        drop(gather);
        let mut out = Vec::with_capacity(self.projects.len());
        async move {
            while let Some(answer) = gathered.recv().await {
                out.push(answer);
            }
            out
        }
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
