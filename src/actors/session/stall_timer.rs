//! The session actor's side of its stall clock (`stall::StallClock` holds the rules): arming the timer the
//! clock asks for, what a stalled session does when it fires (the warning, then the project's stall action),
//! and a new threshold.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::stall::StallCheck;
use super::SessionActor;
use crate::messages::project::SessionStalled;
use crate::messages::session::SetStallAfter;
use crate::messages::wire::{now_ms, Variant};

impl SessionActor {
    /// Activity restarts the stall clock (see `StallClock`).
    pub(super) fn touch(&mut self, ctx: &mut Context<Self>) {
        self.touch_at(Instant::now(), ctx);
    }

    /// Activity at `at`: a prompt counts from the instant its project's health counted it.
    pub(super) fn touch_at(&mut self, at: Instant, ctx: &mut Context<Self>) {
        if let Some(after) = self.stall.touch(at, self.running()) {
            self.arm_stall(after.saturating_sub(at.elapsed()), ctx);
        }
    }

    pub(super) fn set_stall_after(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if let Some(t) = self.take_stall_timer() {
            ctx.cancel_future(t);
        }
        if let Some(rest) = self.stall.set_after(after, Instant::now(), self.running()) {
            self.arm_stall(rest, ctx);
        }
    }

    /// Arms the timer `stall` asked for (it counts it armed from then on, until it fires).
    pub(super) fn arm_stall(&mut self, after: Duration, ctx: &mut Context<Self>) {
        self.stall_timer = ctx.run_later(after, |act, ctx| {
            match act.stall.fired(Instant::now(), act.running()) {
                StallCheck::Quiet => {}
                StallCheck::Rearm(rest) => act.arm_stall(rest, ctx),
                StallCheck::Stalled => {
                    // The project's health turns stalled now too: this report is what publishes it.
                    act.tell_project(SessionStalled {
                        session_id: act.record().session_id.clone(),
                    });
                    act.links.metrics.stalls.inc();
                    let mins = act.stall.after().as_secs() / 60;
                    let project_id = act.record().project_id.clone();
                    act.notify(
                        format!("Agent stalled on {project_id} (no activity for {mins} min)"),
                        Variant::Warning,
                    );
                    act.stall_action(mins);
                }
            }
        });
    }

    /// The project's stall action (issue 14) beyond the warning: `interrupt` stops the agent; `resume`
    /// stops it and has it resumed with a nudge, until `policy.stall_resumes` resumes in a row brought no
    /// progress (then it stops as `interrupt` does).
    fn stall_action(&mut self, mins: u64) {
        use crate::messages::policy::StallAction;
        use crate::messages::project::{Halt, HaltReason};
        let session_id = self.record().session_id.clone();
        let action = self
            .links
            .control
            .policy(&self.record().project_id)
            .stall
            .action;
        if action == StallAction::Notify {
            return;
        }
        // An agent waiting for a person's answer to a tool-permission request has not stalled: the
        // answer's own timeout (approvalTimeout) decides, and the session says why nothing was done.
        if self.links.control.approvals.count(&session_id) > 0 {
            let text =
                format!(
                "No progress for {mins} min while a tool-permission request waits for an answer: \
                 left to approvalTimeout, not {}",
                if action == StallAction::Resume { "resumed" } else { "interrupted" }
            );
            let id = format!("{session_id}-stall-{}", now_ms());
            self.links.control.system_message(&session_id, id, text);
            return;
        }
        let max = self.links.config.policy.stall_resumes;
        let mut error = format!("Stalled: no progress for {mins} min");
        let reason = match action {
            StallAction::Resume if self.stall.resume_again(max) => HaltReason::StallResume,
            StallAction::Resume => {
                error.push_str(&format!(" (resumes without progress: {max})"));
                HaltReason::Stall
            }
            _ => HaltReason::Stall,
        };
        self.tell_project(Halt {
            session_id,
            error,
            reason,
        });
    }
}

impl Handler<SetStallAfter> for SessionActor {
    type Result = ();

    fn handle(&mut self, SetStallAfter(after): SetStallAfter, ctx: &mut Context<Self>) {
        self.set_stall_after(after, ctx);
        // A batch skipped under the old threshold (activity.rs) may have been progress the project,
        // under its new one, shows stalled: it looks again.
        self.tell_activity(Default::default());
    }
}
