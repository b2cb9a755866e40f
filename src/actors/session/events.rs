//! How a session applies what its agent reports: messages (seqIds, model, health activity, stall
//! clock), status changes (notifications, an immediate flush) and cost snapshots. Each change is
//! published to live subscribers and reported to the project for its health.

use std::sync::atomic::Ordering;

use actix::prelude::*;

use super::SessionActor;
use crate::actors::project::{ProjectActivity, SessionCost, SessionStatusChanged};
use crate::messages::commands::LiveEvent;
use crate::messages::convert::{convert_raw_message, init_model, init_session};
use crate::messages::numbers;
use crate::messages::wire::{
    now_ms, AgentStatus, MsgRole, RawMessage, Variant, MAX_STATUS_ERROR_BYTES,
};

impl SessionActor {
    pub(super) fn apply_messages(&mut self, raws: Vec<RawMessage>, ctx: &mut Context<Self>) {
        let signals = crate::messages::progress::signals(&raws);
        let mut batch = Vec::with_capacity(raws.len());
        for raw in &raws {
            if let Some(model) = init_model(raw) {
                self.state.record.model = model;
                self.state.record_changed();
            }
            // Kept with the session so that it can be resumed, after a restart too (src/actors/restart.rs).
            if let Some(id) = init_session(raw) {
                self.state.record.provider_session_id = Some(id);
                self.state.record_changed();
            }
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
        self.stats
            .memory
            .store(self.state.window_bytes(), Ordering::Relaxed);
        // The batch's net effect on the tool in flight equals applying each message in order.
        let mut tool = None;
        let mut calls = Vec::new();
        for m in &batch {
            match m.role {
                MsgRole::ToolCall => {
                    tool = Some(m.tool_name.clone());
                    calls.push((
                        m.tool_name.clone().unwrap_or_default(),
                        m.tool_input.clone().unwrap_or_default(),
                    ));
                }
                MsgRole::ToolResult => tool = Some(None),
                _ => {}
            }
        }
        self.links.project.do_send(ProjectActivity {
            session_id: self.record().session_id.clone(),
            activity: crate::actors::health::Activity {
                tool,
                progress: signals.progress,
                retrying: signals.retrying,
                calls,
            },
        });
        // Only progress restarts the stall clock: an agent retrying its API for an hour has stalled.
        if signals.progress {
            self.touch(ctx);
        }
        let (session_id, project_id) = self.ids();
        self.publish(move || LiveEvent::Messages {
            session_id,
            project_id,
            messages: batch.into(),
        });
    }

    pub(super) fn apply_status(
        &mut self,
        status: AgentStatus,
        error: Option<String>,
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
        let (session_id, project_id) = self.ids();
        self.links.project.do_send(SessionStatusChanged {
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
            AgentStatus::Running => self.touch(ctx),
            AgentStatus::Idle => {}
        }
        if status.is_finished() {
            self.stall.disarm();
            if let Some(t) = self.stall_timer.take() {
                ctx.cancel_future(t);
            }
        }
        // The record is written at once on every status change; finished sessions flush their messages too.
        self.flush_now(ctx);
    }

    pub(super) fn apply_cost(
        &mut self,
        cost_usd: f64,
        input_tokens: u64,
        output_tokens: u64,
        ctx: &mut Context<Self>,
    ) {
        let record = &mut self.state.record;
        record.cost_usd = cost_usd;
        record.input_tokens = input_tokens;
        record.output_tokens = output_tokens;
        self.state.record_changed();
        self.changed(ctx);
        self.links.project.do_send(SessionCost {
            session_id: self.record().session_id.clone(),
            model: self.record().model.clone(),
            tokens: input_tokens.saturating_add(output_tokens),
            cost_usd,
        });
        let (session_id, project_id) = self.ids();
        self.publish(|| LiveEvent::Cost {
            session_id,
            project_id,
            cost_usd,
            input_tokens,
            output_tokens,
        });
    }
}
