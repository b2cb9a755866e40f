//! What the supervisor answers about everything it holds: the project list, the health report, a flush
//! of every live session and the busiest actors for `/v1/debug/top`.

use actix::prelude::*;
use futures_util::future::join_all;

use super::Supervisor;
use crate::actors::metrics::ActorKind;

use crate::actors::router::top_entry;
use crate::error::CommandError;
use crate::messages::commands::{ProjectSummary, TopBy, TopEntry};
use crate::messages::project::Summarize;
use crate::messages::router::{FlushSessions, TopSessions};
use crate::messages::supervisor::{DebugTop, FlushAll, HealthReport, ListProjects};
use crate::messages::wire::{ActivityState, ProjectHealth};

impl Handler<ListProjects> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Vec<ProjectSummary>, CommandError>>;

    fn handle(&mut self, _: ListProjects, _: &mut Context<Self>) -> Self::Result {
        let live: Vec<_> = self
            .projects
            .values()
            .map(|a| a.mailbox().send(Summarize))
            .collect();
        let store = self.parts.store.clone();
        let gather = async move {
            let out: Vec<ProjectSummary> = join_all(live)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect();
            // After start-up recovery, a stored session still running is one fed from outside that the
            // restart left running (src/actors/restart.rs): listed like the others.
            let stored = tokio::task::spawn_blocking(move || store.last_sessions())
                .await
                .map_err(|e| CommandError::Storage(e.to_string()))??;
            Ok::<_, CommandError>((out, stored))
        };
        Box::pin(gather.into_actor(self).map(|found, act, _| {
            let (mut out, stored) = found?;
            let known: std::collections::HashSet<String> =
                out.iter().map(|p| p.project_id.clone()).collect();
            out.extend(stored.into_iter().filter(|(p, _)| !known.contains(p)).map(
                |(project_id, last)| {
                    let last = last.filter(|_| !act.let_go.contains(&project_id));
                    ProjectSummary {
                        health: inactive_health(&project_id),
                        session_id: last.as_ref().map(|r| r.session_id.clone()),
                        status: last.map(|r| r.status),
                        project_id,
                    }
                },
            ));
            out.sort_by(|a, b| a.project_id.cmp(&b.project_id));
            Ok(out)
        }))
    }
}

fn inactive_health(project_id: &str) -> ProjectHealth {
    ProjectHealth {
        project_id: project_id.to_owned(),
        session_id: None,
        activity_state: ActivityState::Inactive,
        active_tool: None,
        idle_duration_ms: 0,
        burn_rate_per_hour: 0.0,
        context_pressure: None,
        attention_score: 0,
        attention_reason: None,
        stall_threshold_ms: 0,
    }
}

impl Handler<HealthReport> for Supervisor {
    type Result = ResponseFuture<Vec<ProjectHealth>>;

    fn handle(&mut self, _: HealthReport, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self
            .projects
            .values()
            .map(|a| a.mailbox().send(Summarize))
            .collect();
        Box::pin(async move {
            let mut out: Vec<ProjectHealth> = join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .map(|s| s.health)
                .collect();
            ProjectHealth::sort_by_attention(&mut out);
            out
        })
    }
}

impl Handler<FlushAll> for Supervisor {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, _: FlushAll, _: &mut Context<Self>) -> Self::Result {
        let flushes: Vec<_> = self
            .routes
            .all()
            .iter()
            .map(|r| r.send(FlushSessions))
            .collect();
        Box::pin(async move {
            for result in join_all(flushes).await {
                result??;
            }
            Ok(())
        })
    }
}

impl Handler<DebugTop> for Supervisor {
    type Result = ResponseFuture<Vec<TopEntry>>;

    fn handle(&mut self, msg: DebugTop, _: &mut Context<Self>) -> Self::Result {
        let projects: Vec<TopEntry> = self
            .projects
            .iter()
            .map(|(id, m)| top_entry(ActorKind::Project, id, None, m.mailbox().stats()))
            .collect();
        let sessions: Vec<_> = self
            .routes
            .all()
            .iter()
            .map(|r| r.send(TopSessions))
            .collect();
        Box::pin(async move {
            let mut all = projects;
            for entries in join_all(sessions).await.into_iter().flatten() {
                all.extend(entries);
            }
            let key = |e: &TopEntry| match msg.by {
                TopBy::Mailbox => e.mailbox_depth.max(0) as u64,
                TopBy::Messages => e.messages_handled,
                TopBy::Memory => e.memory_bytes,
            };
            all.sort_by(|a, b| {
                key(b)
                    .cmp(&key(a))
                    .then_with(|| a.project_id.cmp(&b.project_id))
            });
            all.truncate(msg.limit);
            all
        })
    }
}
