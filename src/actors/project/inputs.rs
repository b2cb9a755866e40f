//! What a project learns from its sessions and its router (activity, cost, status changes, a purged
//! or evicted session) and what it answers about itself (summary, stall threshold). Health is computed
//! from these inputs; a finished session starts the cleanup grace.

use std::time::Instant;

use actix::prelude::*;

use super::{Current, ProjectActor};

use super::Revived;
use crate::actors::session::Attach;

use crate::messages::commands::ProjectSummary;
use crate::messages::project::{ForgetSession, ReportHealth, ReportSummary, SetStallThreshold};
use crate::messages::project::{
    ProjectActivity, SessionCost, SessionReport, SessionStatusChanged, SessionStopped,
};
use crate::messages::session::{SetStallAfter, ToAgent};
use crate::messages::wire::ProjectHealth;

impl Handler<ForgetSession> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: ForgetSession, ctx: &mut Context<Self>) {
        if self.is_current(&msg.session_id) {
            self.cancel_cleanup(ctx);
            if let Some(cur) = self.current.take() {
                // A purged running session's agent must not outlive it.
                if let Some(addr) = cur.addr.filter(|_| !cur.status.is_finished()) {
                    addr.do_send(ToAgent::Stop);
                }
            }
            self.health.set_session(None, Instant::now());
            self.health_changed();
        }
        self.settle(ctx);
    }
}

impl Handler<ReportSummary> for ProjectActor {
    type Result = ();

    fn handle(&mut self, ReportSummary(gather): ReportSummary, _: &mut Context<Self>) {
        // A list whose caller went away no longer wants it.
        let _ = gather.send(ProjectSummary {
            project_id: self.project_id.clone(),
            session_id: self.current.as_ref().map(|c| c.session_id.to_string()),
            status: self.current.as_ref().map(|c| c.status),
            health: self.health_now(),
        });
    }
}

impl Handler<ReportHealth> for ProjectActor {
    type Result = ();

    fn handle(&mut self, ReportHealth(gather): ReportHealth, _: &mut Context<Self>) {
        // A poll whose caller went away no longer wants it.
        let _ = gather.send(self.health_now());
    }
}

// ── health inputs, from the project's sessions ─────────────────────────────────────────────────────────

impl Handler<SessionReport> for ProjectActor {
    type Result = ();

    fn handle(&mut self, report: SessionReport, ctx: &mut Context<Self>) {
        match report {
            SessionReport::Activity(m) => Handler::<ProjectActivity>::handle(self, m, ctx),
            SessionReport::Status(m) => Handler::<SessionStatusChanged>::handle(self, m, ctx),
            SessionReport::Cost(m) => Handler::<SessionCost>::handle(self, m, ctx),
            SessionReport::Halt(m) => {
                Handler::<crate::messages::project::Halt>::handle(self, m, ctx)
            }
            SessionReport::Stopped(m) => self.session_stopped(m),
            SessionReport::Stalled(m) => {
                if self.is_current(&m.session_id) {
                    self.stall_reported(ctx);
                }
            }
        }
    }
}

impl ProjectActor {
    /// Its current session's actor stopped (finished and stored): the project keeps the id and status.
    fn session_stopped(&mut self, msg: SessionStopped) {
        let stopped = |c: &Current| {
            *c.session_id == *msg.session_id
                && c.addr
                    .as_ref()
                    .is_some_and(|a| a.instance() == msg.instance)
        };
        if self.current.as_ref().is_some_and(stopped) {
            // Its last progress is read from its stats before the project lets go of them.
            self.catch_up();
            if let Some(cur) = &mut self.current {
                cur.addr = None;
            }
        }
    }
}

/// Its current session's actor was read back from storage (late events for it, while this project kept
/// only its id and status): adopted, so the session tells this project what they change.
impl Handler<Revived> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: Revived, ctx: &mut Context<Self>) {
        let link = self.link(ctx);
        self.catch_up();
        let stall_after = self.stall_after();
        if let Some(cur) = self
            .current
            .as_mut()
            .filter(|c| *c.session_id == *msg.session_id && c.live().is_none())
        {
            let addr = msg.offer.session().clone();
            addr.do_send(Attach {
                project: link,
                hold: false,
                stall_after,
            });
            cur.addr = Some(addr);
        }
        // The offer drops here, after the `Attach`: the session may stop from now on.
    }
}

impl Handler<ProjectActivity> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: ProjectActivity, _: &mut Context<Self>) {
        if !self.is_current(&msg.session_id) {
            return;
        }
        self.health.record(msg.activity, Instant::now());
        self.health_changed();
    }
}

impl Handler<SessionCost> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: SessionCost, _: &mut Context<Self>) {
        if self.is_current(&msg.session_id) {
            let limit = self.links.session.config.health.context_limit(&msg.model);
            self.health.set_context_limit(limit);
            self.health
                .record_token_snapshot(msg.tokens, msg.cost_usd, Instant::now());
            self.health_changed();
        }
    }
}

impl Handler<SessionStatusChanged> for ProjectActor {
    type Result = ();

    fn handle(&mut self, msg: SessionStatusChanged, ctx: &mut Context<Self>) {
        if self.is_current(&msg.session_id) {
            if let Some(cur) = &mut self.current {
                cur.status = msg.status;
            }
            self.health
                .report_status(msg.status, msg.error, Instant::now());
            self.health_changed();
            self.cancel_cleanup(ctx);
            if msg.status.is_finished() {
                let grace = self.links.session.config.timers.cleanup_grace;
                let session_id = msg.session_id.clone();
                self.cleanup = Some(ctx.run_later(grace, move |act, ctx| {
                    act.cleanup = None;
                    let still_finished = act
                        .current
                        .as_ref()
                        .is_some_and(|c| *c.session_id == *session_id && c.status.is_finished());
                    if still_finished {
                        act.detach(ctx);
                    }
                    act.settle(ctx);
                }));
            }
            self.settle(ctx);
        }
    }
}

impl Handler<SetStallThreshold> for ProjectActor {
    type Result = ProjectHealth;

    fn handle(
        &mut self,
        SetStallThreshold(after): SetStallThreshold,
        ctx: &mut Context<Self>,
    ) -> ProjectHealth {
        self.stall_override = after;
        let stall_after = self.stall_after();
        self.health.set_stall_after(stall_after);
        if let Some(addr) = self.current.as_ref().and_then(|c| c.addr.as_ref()) {
            addr.do_send(SetStallAfter(stall_after));
        }
        self.health_changed();
        self.settle(ctx);
        self.health_now()
    }
}
