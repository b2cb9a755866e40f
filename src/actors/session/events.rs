//! How a session applies what its agent reports: messages (seqIds, model, health activity, stall
//! clock), status changes (notifications, an immediate flush) and cost snapshots. Each change is
//! published to live subscribers and reported to the project for its health.

use std::time::Instant;

use actix::prelude::*;

use super::activity::Step;
use super::SessionActor;
use crate::messages::commands::LiveEvent;
use crate::messages::convert::{conversation_id, convert_raw_message, init_model};
use crate::messages::numbers;
use crate::messages::project::{Halt, HaltReason, SessionCost, SessionStatusChanged};
use crate::messages::wire::{
    now_ms, AgentStatus, CostPayload, MsgRole, RawMessage, Variant, MAX_STATUS_ERROR_BYTES,
};

impl SessionActor {
    /// With `dedupe`, raw messages whose id the session saw recently are dropped (a retried batch).
    pub(super) fn apply_messages(
        &mut self,
        mut raws: Vec<RawMessage>,
        dedupe: bool,
        ctx: &mut Context<Self>,
    ) {
        if dedupe {
            let before = raws.len();
            raws.retain(|raw| self.recent_ids.first_time(&raw.id));
            let dropped = before - raws.len();
            if dropped > 0 {
                self.links.metrics.duplicate_messages.inc_by(dropped as u64);
            }
        }
        let signals = crate::messages::progress::signals(&raws);
        let mut batch = Vec::with_capacity(raws.len());
        for raw in raws {
            if let Some(model) = init_model(&raw) {
                self.state.record.model = model;
                self.state.record_changed();
            }
            // Kept with the session so that it can be resumed, after a restart too (src/actors/restart.rs).
            if let Some(id) = conversation_id(&raw) {
                self.state.record.provider_session_id = Some(id);
                self.state.record_changed();
            }
            // Moves the raw message's strings into the stored one (src/messages/convert.rs).
            if let Some(msg) = convert_raw_message(raw) {
                batch.push(self.state.push(msg));
            }
        }
        if batch.is_empty() {
            return;
        }
        self.state.record.updated_at = now_ms();
        self.changed(ctx);
        self.prefetch_seq(ctx);
        self.links.metrics.agent_messages.inc_by(batch.len() as u64);
        self.window_changed();
        // Its project reads the time of the last progress rather than being told of every batch.
        let now = std::time::Instant::now();
        let since_progress = signals
            .progress
            .then(|| self.stats.progressed(now))
            .flatten()
            .map(|before| now.saturating_duration_since(before));
        let steps = batch.iter().filter_map(|m| match m.role {
            MsgRole::ToolCall => Some(Step::Call {
                name: m.tool_name(),
                input: m.tool_input().unwrap_or_default(),
            }),
            MsgRole::ToolResult => Some(Step::Result),
            _ => None,
        });
        let report = self.activity.fold(
            steps,
            signals.progress,
            signals.retrying,
            since_progress,
            self.stall.after(),
        );
        if let Some(activity) = report {
            self.tell_activity(activity);
        }
        // Only progress restarts the stall clock: an agent retrying its API for an hour has stalled.
        if signals.progress {
            self.stall.progressed();
            self.touch(ctx);
        }
        let (session_id, project_id) = self.ids();
        self.publish(move || LiveEvent::Messages {
            session_id,
            project_id,
            messages: batch.into(),
        });
    }

    /// Applies a status and writes the record at once.
    pub(super) fn apply_status(
        &mut self,
        status: AgentStatus,
        error: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        self.apply_status_at(status, error, Instant::now(), ctx);
    }

    /// `apply_status` of a status that came at `at`: a session running from then counts its silence from
    /// then (one stall timer, armed for what is left of the threshold).
    pub(super) fn apply_status_at(
        &mut self,
        status: AgentStatus,
        error: Option<String>,
        at: Instant,
        ctx: &mut Context<Self>,
    ) {
        self.set_status(status, error, at, ctx);
        self.flush_now(ctx);
    }

    /// Applies a status that came at `at`; the caller writes the record at once (a batch once all its
    /// events are applied, so a finish's status and cost are one write and a durable answer waits for one
    /// commit, not two).
    pub(super) fn set_status(
        &mut self,
        status: AgentStatus,
        error: Option<String>,
        at: Instant,
        ctx: &mut Context<Self>,
    ) {
        // Errors come from agents and sidecars: kept, but never a megabyte of them.
        let error = error.map(|e| numbers::bounded(e, MAX_STATUS_ERROR_BYTES));
        let record = &mut self.state.record;
        record.status = status;
        if error.is_some() {
            record.error = error.clone();
        } else if status == AgentStatus::Running {
            // Running again: the last run's error is history (its message stays in the session).
            record.error = None;
        }
        record.updated_at = now_ms();
        let stored_error = record.error.clone();
        self.state.status_changed(status);
        self.activity.status_changed(status);
        let (session_id, project_id) = self.ids();
        self.tell_project(SessionStatusChanged {
            session_id: session_id.clone(),
            status,
            error: stored_error.clone(),
        });
        self.publish(|| LiveEvent::Status {
            session_id,
            project_id: project_id.clone(),
            status,
            error: stored_error,
        });
        match status {
            AgentStatus::Done => {
                self.notify(format!("Agent completed on {project_id}"), Variant::Success)
            }
            AgentStatus::Error => self.notify(
                format!(
                    "Agent error on {project_id}: {}",
                    error.as_deref().unwrap_or("unknown")
                ),
                Variant::Error,
            ),
            AgentStatus::Running => {
                // A budget may stop it again (no spend yet: none stopped it).
                if let Some(spend) = &mut self.spend {
                    spend.running();
                }
                self.touch_at(at, ctx)
            }
            AgentStatus::Idle => {}
        }
        if status.is_finished() {
            if let Some(t) = self.take_stall_timer() {
                ctx.cancel_future(t);
            }
        }
    }

    /// Cost totals: added up over the agent's runs, recorded for the ledger, held against the budgets
    /// (actors/spend.rs).
    pub(super) fn apply_cost(&mut self, p: CostPayload, ctx: &mut Context<Self>) {
        let totals = crate::actors::spend::Totals {
            usd: p.cost_usd,
            input: p.input_tokens,
            output: p.output_tokens,
        };
        let spend = self.spend.get_or_insert_with(Default::default);
        let increase = spend.apply(&mut self.state.record, p.run, totals);
        if !increase.is_zero() {
            let exceeded = spend.account(increase, &self.state.record, &self.links, now_ms());
            if let Some(e) = exceeded.filter(|_| self.running()) {
                let r = &self.state.record;
                self.links
                    .control
                    .announce_budget(&r.project_id, &r.session_id, &e);
                self.tell_project(Halt {
                    session_id: r.session_id.clone(),
                    error: e.error(),
                    reason: HaltReason::Budget,
                });
            }
        }
        let record = &self.state.record;
        let (cost_usd, input_tokens, output_tokens) =
            (record.cost_usd, record.input_tokens, record.output_tokens);
        self.state.record_changed();
        self.changed(ctx);
        self.tell_project(self.cost_report());
        let (session_id, project_id) = self.ids();
        self.publish(|| LiveEvent::Cost {
            session_id,
            project_id,
            cost_usd,
            input_tokens,
            output_tokens,
        });
    }

    /// The cost and tokens its project's health tracks.
    fn cost_report(&self) -> SessionCost {
        let record = self.record();
        SessionCost {
            session_id: record.session_id.clone(),
            model: record.model.clone(),
            tokens: record.input_tokens.saturating_add(record.output_tokens),
            cost_usd: record.cost_usd,
        }
    }

    /// Tells a project that has just attached this session its status and cost as they stand.
    pub(super) fn tell_project_where_it_stands(&self) {
        let record = self.record();
        self.tell_project(SessionStatusChanged {
            session_id: record.session_id.clone(),
            status: record.status,
            error: record.error.clone(),
        });
        self.tell_project(self.cost_report());
    }
}
