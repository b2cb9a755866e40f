//! The commands a project serialises besides the start (start.rs): stop, prompt, the current session, clear
//! and restore.
//! Each async step is counted in flight (`begin`/`end`) so the project never stops under it.

use std::sync::Arc;
use std::time::Instant;

use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;
use futures_util::future::Either;

use super::ProjectActor;
use crate::actors::mailbox::Mailbox;
use crate::actors::metrics::ActorKind;
use crate::actors::router::{BringBack, FindSession, RegisterSession};
use crate::actors::session::{Attach, SessionActor, SessionInit};
use crate::error::CommandError;
use crate::messages::project::{ClearSession, PromptSession, RestoreLast, StopSession};
use crate::messages::session::{AddUserMessage, SetStatus, ToAgent};
use crate::messages::wire::{AgentMessage, AgentStatus};
use crate::storage::SessionRecord;

impl Handler<StopSession> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<Option<String>, CommandError>>;

    fn handle(&mut self, _: StopSession, _: &mut Context<Self>) -> Self::Result {
        if self.starting {
            // Stopping now would reach no agent, and the start would then run one: wait for it instead.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut stops = self.stops_waiting.take().map(Vec::from).unwrap_or_default();
            stops.push(tx);
            self.stops_waiting = Some(stops.into_boxed_slice());
            self.begin();
            return Box::pin(
                fut::wrap_future(
                    async move { rx.await.unwrap_or(Err(CommandError::ShuttingDown)) },
                )
                .map(|result, act: &mut Self, ctx| {
                    act.end(ctx);
                    result
                }),
            );
        }
        let prepared = self.current().and_then(|cur| {
            let provider = self.provider(&cur.provider)?;
            Ok((
                cur.live().cloned(),
                cur.status,
                cur.session_id.to_string(),
                provider,
            ))
        });
        let (addr, status, session_id, provider) = match prepared {
            Ok(p) => p,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let stopping = match &addr {
            Some(addr) => Either::Left(addr.send(ToAgent::Stop)),
            // A finished session that let its actor go holds no runner: its provider answers for it, as it
            // would for the actor brought back.
            None => {
                let unknown = provider.unknown(&session_id);
                Either::Right(async move { Ok(unknown.stop().await) })
            }
        };
        self.begin();
        Box::pin(stopping.into_actor(self).map(move |result, act, ctx| {
            act.end(ctx);
            // A session actor already gone has no agent left to stop.
            result.unwrap_or(Ok(())).map_err(CommandError::Provider)?;
            if status.is_finished() {
                return Ok(None);
            }
            if let Some(addr) = addr {
                addr.do_send(SetStatus {
                    status: AgentStatus::Done,
                    error: None,
                });
            }
            Ok(Some(session_id))
        }))
    }
}

impl Handler<PromptSession> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<(), CommandError>>;

    fn handle(&mut self, msg: PromptSession, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.current().and_then(|cur| self.provider(&cur.provider)) {
            return Box::pin(fut::ready(Err(e)));
        }
        self.begin();
        Box::pin(
            self.session_actor()
                .then(|found, _, _| {
                    fut::wrap_future(async move {
                        let (_, addr) = found?;
                        // Refused before it is stored: a prompt the agent cannot take must not sit in the
                        // session unsent.
                        let answer = addr.send(ToAgent::CanPrompt).await;
                        Ok::<_, CommandError>((answer, addr))
                    })
                })
                .then(move |asked, act, ctx| {
                    let (answer, addr) = match asked {
                        Ok(asked) => asked,
                        Err(e) => return Either::Left(fut::ready(Err(e))),
                    };
                    let refused = match answer {
                        Ok(Ok(())) => None,
                        Ok(Err(why)) => Some(CommandError::Undeliverable(why)),
                        Err(_) => Some(CommandError::SessionNotFound),
                    };
                    if let Some(e) = refused {
                        return Either::Left(fut::ready(Err(e)));
                    }
                    act.cancel_cleanup(ctx);
                    if let Some(cur) = &mut act.current {
                        cur.status = AgentStatus::Running;
                    }
                    let now = Instant::now();
                    act.health.set_status(AgentStatus::Running, None);
                    act.health.record_activity(None, now);
                    act.health_changed();
                    addr.do_send(AddUserMessage {
                        prompt: msg.prompt.clone(),
                        at: now,
                    });
                    let sending = addr.send(ToAgent::Prompt(msg.prompt));
                    Either::Right(fut::wrap_future(async move {
                        sending
                            .await
                            .unwrap_or_else(|_| Err("the session is gone".into()))
                            .map_err(CommandError::Provider)
                    }))
                })
                .map(|result, act, ctx| {
                    act.end(ctx);
                    result
                }),
        )
    }
}

/// The current session's id and actor, for getSession. A finished session may have no actor (it let it go
/// once stored), and the actor may stop before the reader reaches it: the id then reads from storage.
#[derive(Message)]
#[rtype(result = "Result<(String, Option<Mailbox<SessionActor>>), CommandError>")]
pub struct CurrentSession;

impl Handler<CurrentSession> for ProjectActor {
    type Result = Result<(String, Option<Mailbox<SessionActor>>), CommandError>;

    fn handle(&mut self, _: CurrentSession, ctx: &mut Context<Self>) -> Self::Result {
        let cur = self.current()?;
        let answer = (cur.session_id.to_string(), cur.live().cloned());
        self.settle(ctx);
        Ok(answer)
    }
}

/// The current session's id and actor, brought back from storage if it let its actor go: for what only
/// the actor can do (a resume hands it a runner).
#[derive(Message)]
#[rtype(result = "Result<(String, Mailbox<SessionActor>), CommandError>")]
pub struct CurrentActor;

impl Handler<CurrentActor> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<(String, Mailbox<SessionActor>), CommandError>>;

    fn handle(&mut self, _: CurrentActor, _: &mut Context<Self>) -> Self::Result {
        self.begin();
        Box::pin(self.session_actor().map(|result, act, ctx| {
            act.end(ctx);
            result
        }))
    }
}

impl Handler<ClearSession> for ProjectActor {
    type Result = Result<(), CommandError>;

    fn handle(&mut self, _: ClearSession, ctx: &mut Context<Self>) -> Self::Result {
        match &self.current {
            None => Ok(()),
            Some(cur) if cur.status.is_finished() => {
                self.detach(ctx);
                self.settle(ctx);
                Ok(())
            }
            Some(_) => Err(CommandError::SessionRunning),
        }
    }
}

impl Handler<RestoreLast> for ProjectActor {
    type Result = ResponseActFuture<Self, Result<bool, CommandError>>;

    fn handle(&mut self, _: RestoreLast, _: &mut Context<Self>) -> Self::Result {
        if self.busy_with_a_live_session() {
            return Box::pin(fut::ready(Ok(false)));
        }
        let store = self.links.store.clone();
        let window = self.links.session.config.limits.messages_in_memory as u64;
        let project_id = self.project_id.clone();
        let read = async move {
            tokio::task::spawn_blocking(move || -> Result<_, CommandError> {
                let Some(record) = store.last_session(&project_id)? else {
                    return Ok(None);
                };
                let after = record.last_seq.saturating_sub(window);
                let recent = store.messages(&record.session_id, after, None, None)?;
                Ok(Some((record, recent)))
            })
            .await
            .map_err(|e| CommandError::Storage(e.to_string()))?
        };
        self.begin();
        Box::pin(
            read.into_actor(self)
                .then(|found, act, _| match found {
                    Ok(Some((record, recent))) => act.restore(record, recent).boxed_local(),
                    Ok(None) => fut::ready(Ok(false)).boxed_local(),
                    Err(e) => fut::ready(Err(e)).boxed_local(),
                })
                .map(|result, act, ctx| {
                    act.end(ctx);
                    result
                }),
        )
    }
}

impl ProjectActor {
    /// The current session's id and actor; an actor it let go (finished and stored) is brought back from
    /// storage through its router (which also holds any actor brought back for late events) and attached.
    fn session_actor(
        &mut self,
    ) -> LocalBoxActorFuture<Self, Result<(String, Mailbox<SessionActor>), CommandError>> {
        let cur = match self.current() {
            Ok(cur) => cur,
            Err(e) => return fut::ready(Err(e)).boxed_local(),
        };
        let session_id = cur.session_id.to_string();
        if let Some(addr) = cur.live() {
            return fut::ready(Ok((session_id, addr.clone()))).boxed_local();
        }
        let router = self.links.router.clone();
        let wanted = BringBack {
            session_id: session_id.clone(),
        };
        async move { router.send(wanted).await }
            .into_actor(self)
            .map(move |found, act, ctx| {
                let addr = found?.ok_or(CommandError::SessionNotFound)?;
                let link = act.link(ctx);
                let stall_after = act.stall_after();
                // The project may have moved on while storage was read (a start, a clear).
                let cur = act
                    .current
                    .as_mut()
                    .filter(|c| *c.session_id == *session_id)
                    .ok_or(CommandError::NoSession)?;
                if let Some(live) = cur.live() {
                    return Ok((session_id, live.clone()));
                }
                addr.do_send(Attach {
                    project: link,
                    hold: true,
                    stall_after,
                });
                cur.addr = Some(addr.clone());
                Ok((session_id, addr))
            })
            .boxed_local()
    }

    /// A start in flight or a session that is not finished: nothing may replace it.
    fn busy_with_a_live_session(&self) -> bool {
        self.starting
            || self
                .current
                .as_ref()
                .is_some_and(|c| !c.status.is_finished())
    }

    /// Makes `record`, the project's last stored session, its current one (as
    /// loadLastSession): the router's live actor of it if there is one, else a new actor holding
    /// `recent`. Answers whether the project now holds it.
    pub(super) fn restore(
        &mut self,
        record: SessionRecord,
        recent: Vec<AgentMessage>,
    ) -> impl ActorFuture<Self, Output = Result<bool, CommandError>> + 'static {
        let router = self.links.router.clone();
        let session_id = record.session_id.clone();
        // A stored session still running with no actor of this project is one fed from outside, which a
        // restart left running (src/actors/restart.rs): it is restored like a finished one.
        async move {
            let live = router.send(FindSession { session_id }).await?;
            Ok::<_, CommandError>(Some(live))
        }
        .into_actor(self)
        .map(move |found, act, ctx| {
            let Some(live) = found? else {
                return Ok(false);
            };
            // A start may have won the race while storage was read: never overwrite it.
            if act.busy_with_a_live_session() {
                return Ok(false);
            }
            if act.is_current(&record.session_id) {
                return Ok(true);
            }
            act.detach(ctx);
            // One copy of the id for the project, its health and (for a live actor) its router's route.
            let session_id: Arc<str> = record.session_id.as_str().into();
            let addr = match live {
                Some(addr) => {
                    addr.do_send(Attach {
                        project: act.link(ctx),
                        hold: true,
                        stall_after: act.stall_after(),
                    });
                    Some(addr)
                }
                // Finished and stored: the project keeps its id and status, and reads go to storage; a
                // command that needs its actor brings it back (`session_actor`).
                None if record.status.is_finished() => None,
                None => {
                    let init = SessionInit {
                        recent: recent.into_iter().map(Arc::new).collect(),
                        record: record.clone(),
                        persisted: true,
                        stall_after: act.stall_after(),
                        detached: false,
                        start: None,
                        // Reads storage's ceiling: it continues above whatever a previous life reserved.
                        ceiling: None,
                        offered: false,
                    };
                    act.metrics()
                        .actor_restarts
                        .with_label_values(&[ActorKind::Session.as_str()])
                        .inc();
                    let addr = act.spawn_session(init, ctx);
                    act.links.router.do_send(RegisterSession {
                        session_id: session_id.clone(),
                        addr: addr.clone(),
                    });
                    Some(addr)
                }
            };
            act.last_id_ms = act.last_id_ms.max(record.created_at);
            act.attach(session_id, addr, record.status, record.provider);
            act.health.set_status(record.status, record.error);
            act.health_changed();
            Ok(true)
        })
    }
}
