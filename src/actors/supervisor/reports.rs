//! What the supervisor answers about every project, gathered from the routers (each holds its arbiter's
//! projects and sessions): the project list, the health report, a flush of every live session and the
//! busiest actors for `/v1/debug/top`.

use actix::prelude::*;
use futures_util::future::join_all;

use super::Supervisor;
use crate::actors::arbiters::slot;
use crate::error::CommandError;
use crate::messages::commands::{ProjectSummary, TopBy, TopEntry};
use crate::messages::router::{FlushSessions, SummarizeProjects, TopActors};
use crate::messages::supervisor::{DebugTop, FlushAll, HealthReport, ListProjects};
use crate::messages::wire::ProjectHealth;

impl Handler<ListProjects> for Supervisor {
    type Result = ResponseFuture<Result<Vec<ProjectSummary>, CommandError>>;

    fn handle(&mut self, _: ListProjects, _: &mut Context<Self>) -> Self::Result {
        let store = self.parts.store.clone();
        let routes = self.routes.clone();
        Box::pin(async move {
            // After start-up recovery, a stored session still running is one fed from outside that the
            // restart left running (src/actors/restart.rs): listed like the others.
            let stored = tokio::task::spawn_blocking(move || store.last_sessions())
                .await
                .map_err(|e| CommandError::Storage(e.to_string()))??;
            let routers = routes.all();
            let mut shares = vec![Vec::new(); routers.len()];
            for (project_id, last) in stored {
                shares[slot(&project_id, routers.len())].push((project_id, last));
            }
            let asks = routers
                .iter()
                .zip(shares)
                .map(|(router, stored)| router.send(SummarizeProjects { stored }));
            let mut out = Vec::new();
            for summaries in join_all(asks).await {
                out.extend(summaries?);
            }
            out.sort_by(|a, b| a.project_id.cmp(&b.project_id));
            Ok(out)
        })
    }
}

impl Handler<HealthReport> for Supervisor {
    type Result = ResponseFuture<Vec<ProjectHealth>>;

    fn handle(&mut self, _: HealthReport, _: &mut Context<Self>) -> Self::Result {
        let asks: Vec<_> = self
            .routes
            .all()
            .iter()
            .map(|r| r.send(SummarizeProjects { stored: Vec::new() }))
            .collect();
        Box::pin(async move {
            let mut out: Vec<ProjectHealth> = join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .flatten()
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
        let asks: Vec<_> = self
            .routes
            .all()
            .iter()
            .map(|r| r.send(TopActors))
            .collect();
        Box::pin(async move {
            let mut all: Vec<TopEntry> = join_all(asks)
                .await
                .into_iter()
                .flatten()
                .flatten()
                .collect();
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
