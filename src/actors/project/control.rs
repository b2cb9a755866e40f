//! The project actor's part in agents under control (issue 15): stopping its session's agent with an
//! error when a budget or a stall policy says so (and, for a stall under `resume`, handing it to the resume), and counting the session's pending tool-permission
//! requests into health. Kept apart from the project's own commands; the decisions are made elsewhere
//! (actors/control.rs, actors/approvals.rs, the session's stall timer), this only carries them out.

use actix::prelude::*;

use super::ProjectActor;

use crate::messages::project::SetAwaiting;
use crate::messages::project::{Halt, HaltReason};
use crate::messages::session::{SetStatus, ToAgent};
use crate::messages::wire::AgentStatus;

impl Handler<Halt> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: Halt, ctx: &mut Context<Self>) {
        let Some(cur) = self
            .current
            .as_ref()
            .filter(|c| *c.session_id == *msg.session_id && !c.status.is_finished())
        else {
            return;
        };
        // Not finished, so its actor is in memory (only a finished session lets it go).
        let Some(addr) = cur.addr.clone() else {
            return;
        };
        let session_id = cur.session_id.to_string();
        if msg.reason == HaltReason::Budget {
            self.health.set_budget_exceeded();
        }
        let error = msg.error;
        let resume = (msg.reason == HaltReason::StallResume)
            .then(|| (self.links.session.control.clone(), self.project_id.clone()));
        ctx.spawn(
            async move {
                if let Ok(Err(e)) = addr.send(ToAgent::Stop).await {
                    tracing::warn!(session = %session_id, error = %e, "could not stop the agent");
                }
                let stopped = addr
                    .send(SetStatus {
                        status: AgentStatus::Error,
                        error: Some(error),
                    })
                    .await;
                // Resumed only once the session shows the stop, so the resume finds it finished.
                if let (Some((control, project_id)), Ok(())) = (resume, stopped) {
                    control.resume_stalled(project_id, session_id);
                }
            }
            .into_actor(self),
        );
        self.health_changed();
    }
}

impl Handler<SetAwaiting> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: SetAwaiting, _: &mut Context<Self>) {
        if self.is_current(&msg.session_id) {
            self.health.set_awaiting(msg.count);
            self.health_changed();
        }
    }
}
