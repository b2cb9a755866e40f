//! The supervisor's settings: updated one at a time, each persisted before it applies, a change of
//! retention enforced on every project at once (what it deletes, forgotten by the routers).

use actix::prelude::*;

use super::Supervisor;
use crate::actors::metrics::StopReason;
use crate::actors::settings;
use crate::error::CommandError;
use crate::messages::commands::Settings;
use crate::messages::supervisor::UpdateSettings;
use crate::storage::WriteOp;

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
                act.forget_sessions(evicted, StopReason::Retention);
                next
            });
            let _ = reply.send(answer);
            act.next_settings_update(ctx);
        }));
    }
}
