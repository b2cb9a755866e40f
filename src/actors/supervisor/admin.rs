//! The supervisor's global duties: forgetting what a finish's retention let go, purges of a session or a project
//! (memory and storage, with nothing coming back while the delete is in flight), and the settings,
//! updated one at a time.

use actix::prelude::*;
use futures_util::future::join_all;

use super::directory::Slot;
use super::{project_of, Supervisor};
use crate::actors::metrics::StopReason;

use crate::actors::router::TakeSessions;

use crate::actors::settings;
use crate::error::CommandError;
use crate::messages::commands::Settings;
use crate::messages::project::{Deactivate, ForgetSession};
use crate::messages::router::PurgeDone;
use crate::messages::session::Discard;
use crate::messages::supervisor::RetentionEvicted;
use crate::messages::supervisor::{PurgeProject, PurgeSession, UpdateSettings};
use crate::storage::WriteOp;

impl Handler<RetentionEvicted> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RetentionEvicted, _: &mut Context<Self>) {
        self.parts
            .metrics
            .retention_evictions
            .inc_by(msg.session_ids.len() as u64);
        self.forget_sessions(&msg.session_ids, StopReason::Retention);
    }
}

impl Handler<PurgeSession> for Supervisor {
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
        self.purge(TakeSessions::Session(msg.session_id), delete, |_| async {})
    }
}

impl Handler<PurgeProject> for Supervisor {
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
        self.purge(
            TakeSessions::Project(msg.project_id),
            delete,
            |taken| async move {
                if let Some(p) = project {
                    for session_id in taken {
                        let _ = p.send(ForgetSession { session_id }).await;
                    }
                    // Its memory goes with its data.
                    let _ = p.send(Deactivate { force: true }).await;
                }
            },
        )
    }
}

impl Supervisor {
    /// Runs a purge: the project's router drops the routes `take` names and lets nothing of them come
    /// back, and the project stays in `purging` (no revival by a read), until the session actors taken
    /// are discarded, `after` has run with their ids and `delete` is stored; answers those ids. The actors
    /// stop before the delete is queued, so no flush of theirs can land after it.
    fn purge<F>(
        &mut self,
        take: TakeSessions,
        delete: WriteOp,
        after: impl FnOnce(Vec<String>) -> F + 'static,
    ) -> ResponseActFuture<Self, Result<Vec<String>, CommandError>>
    where
        F: std::future::Future<Output = ()> + 'static,
    {
        let key = take.key().to_owned();
        self.purging.insert(key.clone());
        let router = self.router(take.project()).clone();
        let persister = self.parts.persister.clone();
        Box::pin(
            async move {
                let result = async {
                    let taken = router.send(take).await?;
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
                .await;
                router.do_send(PurgeDone(key.clone()));
                (key, result)
            }
            .into_actor(self)
            .map(move |(key, result), act, _| {
                act.purging.remove(&key);
                result
            }),
        )
    }
}

pub type SettingsReply = tokio::sync::oneshot::Sender<Result<Settings, CommandError>>;

impl Handler<UpdateSettings> for Supervisor {
    type Result = ResponseFuture<Result<Settings, CommandError>>;

    fn handle(&mut self, msg: UpdateSettings, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.settings_queue.push_back((msg.0, tx));
        if !self.settings_busy {
            self.next_settings_update(ctx);
        }
        Box::pin(async move { rx.await.unwrap_or(Err(CommandError::ShuttingDown)) })
    }
}

impl Supervisor {
    /// Starts the oldest queued settings update, if any, from the settings as they are now.
    fn next_settings_update(&mut self, ctx: &mut Context<Self>) {
        let Some((patch, reply)) = self.settings_queue.pop_front() else {
            self.settings_busy = false;
            return;
        };
        self.settings_busy = true;
        let now = self.parts.settings.get();
        let (next, writes) = settings::apply(&now, patch);
        let retention_changed = next.session_retention_count != now.session_retention_count
            || next.session_retention_days != now.session_retention_days;
        let persister = self.parts.persister.clone();
        let (keep, max_age) = (
            next.session_retention_count,
            settings::retention_age_ms(&next),
        );
        let job = async move {
            let ops = writes
                .into_iter()
                .map(|(key, value)| WriteOp::PutSetting { key, value })
                .collect();
            persister.write(ops).await?;
            let mut evicted = Vec::new();
            if retention_changed {
                // Every project in one transaction; running sessions are protected by their stored status.
                evicted = persister
                    .enforce_retention_everywhere(keep, max_age)
                    .await?;
            }
            Ok::<_, CommandError>(evicted)
        };
        ctx.spawn(job.into_actor(self).map(move |result, act, ctx| {
            let answer = result.map(|evicted| {
                act.parts.settings.set(next.clone());
                act.parts
                    .metrics
                    .retention_evictions
                    .inc_by(evicted.len() as u64);
                act.forget_sessions(&evicted, StopReason::Retention);
                next
            });
            let _ = reply.send(answer);
            act.next_settings_update(ctx);
        }));
    }
}
