//! A project's start of a session: refused while another start is in flight or an agent runs; a new
//! session actor (the prompt its first message) registered with the router, the provider asked to start the
//! agent, and stops that arrived meanwhile answered once it has (or has not) started. Counted in flight
//! (`begin`/`end`) like every command of the project (commands.rs).

use std::sync::Arc;

use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;

use super::ProjectActor;
use crate::actors::restart::start_op;
use crate::actors::router::RegisterSession;
use crate::actors::session::{user_message, SessionInit};
use crate::error::CommandError;
use crate::messages::commands::Started;
use crate::messages::project::StartSession;
use crate::messages::session::{FlushNow, SetRunner, SetStatus, ToAgent};
use crate::messages::wire::{now_ms, AgentStatus};
use crate::providers::StartSpec;
use crate::storage::SessionRecord;

impl Handler<StartSession> for ProjectActor {
    type Result = ();

    /// Answers the start's caller directly (`StartSession::reply`), when the agent has started.
    fn handle(&mut self, msg: StartSession, ctx: &mut Context<Self>) {
        let StartSession { spec, reply } = msg;
        let starting = self.start(spec, ctx);
        ctx.spawn(starting.map(move |result, _, _| {
            // A caller that went away no longer wants the answer; the session stays started.
            let _ = reply.send(result);
        }));
    }
}

impl ProjectActor {
    fn start(
        &mut self,
        mut spec: StartSpec,
        ctx: &mut Context<Self>,
    ) -> LocalBoxActorFuture<Self, Result<Started, CommandError>> {
        let refuse = |e| Box::pin(fut::ready(Err(e))) as LocalBoxActorFuture<Self, _>;
        if self.starting {
            return refuse(CommandError::StartInProgress);
        }
        let provider = match self.provider(&spec.provider) {
            Ok(p) => p,
            Err(e) => return refuse(e),
        };
        if let Some(cur) = &self.current {
            match cur.status {
                AgentStatus::Running => return refuse(CommandError::AlreadyRunning),
                // An idle agent may still be alive: stop it rather than leave it orphaned.
                AgentStatus::Idle => {
                    if let Some(addr) = &cur.addr {
                        addr.do_send(ToAgent::Stop);
                    }
                }
                AgentStatus::Done | AgentStatus::Error => {}
            }
        }
        self.detach(ctx);

        spec.session_id = self.next_session_id();
        spec.project_id = self.project_id.clone();
        let now = now_ms();
        let first = user_message(&spec.session_id, spec.prompt.clone(), now, true);
        let record = SessionRecord {
            model: spec.model.clone(),
            last_seq: 1,
            message_count: 1,
            ..SessionRecord::new(
                &spec.session_id,
                &self.project_id,
                &spec.provider,
                AgentStatus::Running,
                now,
            )
        };
        let mut first = first;
        first.seq_id = 1;
        let init = SessionInit {
            record,
            recent: vec![Arc::new(first)],
            persisted: false,
            stall_after: self.stall_after(),
            detached: false,
            start: start_op(&mut spec),
            ceiling: None,
            offered: false,
        };
        let addr = self.spawn_session(init, ctx);
        let shared_id: Arc<str> = spec.session_id.as_str().into();
        // Registered before the provider starts, so none of its output can arrive before the route exists.
        self.links.router.do_send(RegisterSession {
            session_id: shared_id.clone(),
            addr: addr.clone(),
        });
        self.attach(
            shared_id,
            Some(addr.clone()),
            AgentStatus::Running,
            spec.provider.clone(),
        );
        self.health_changed();
        self.starting = true;

        let session_id = spec.session_id.clone();
        let sink = self.links.sink.clone();
        // The record is committed before an agent of this process starts, so an accepted start survives a
        // crash (as "Interrupted") and shows in the project's history at once. A storage failure does not
        // stop the start: the session keeps retrying its write. An agent outside this process leaves
        // nothing here to outlive a crash: its start answers at once and its record (queued when the
        // session started) joins the next group commit, so starts are not one commit wait each.
        let recorded = (!provider.runs_outside()).then(|| addr.send(FlushNow));
        let started = async move {
            if let Some(recorded) = recorded {
                if let Ok(Err(e)) = recorded.await {
                    tracing::warn!(error = %e, "new session record not yet stored; retrying in the background");
                }
            }
            provider.start(spec, sink).await
        };
        Box::pin(started.into_actor(self).map(move |result, act, ctx| {
            act.starting = false;
            act.settle(ctx);
            let stops = act.stops_waiting.take().map(Vec::from).unwrap_or_default();
            match result {
                Ok(runner) => {
                    // The session holds its agent's runner from now on.
                    let stopping = (!stops.is_empty()).then(|| runner.stop());
                    addr.do_send(SetRunner {
                        runner,
                        keep: false,
                    });
                    if let Some(stopping) = stopping {
                        // A stop came while the agent was starting: it applies to the agent now running.
                        let (addr, stopped) = (addr.clone(), session_id.clone());
                        actix::spawn(async move {
                            let result = stopping
                                .await
                                .map(|()| Some(stopped))
                                .map_err(CommandError::Provider);
                            if result.is_ok() {
                                addr.do_send(SetStatus {
                                    status: AgentStatus::Done,
                                    error: None,
                                });
                            }
                            for stop in stops {
                                let _ = stop.send(result.clone());
                            }
                        });
                    }
                    Ok(Started { session_id })
                }
                Err(error) => {
                    addr.do_send(SetStatus {
                        status: AgentStatus::Error,
                        error: Some(error.clone()),
                    });
                    // Nothing started, so nothing is left to stop.
                    for stop in stops {
                        let _ = stop.send(Ok(None));
                    }
                    Err(CommandError::ProviderFailed { session_id, error })
                }
            }
        }))
    }
}
