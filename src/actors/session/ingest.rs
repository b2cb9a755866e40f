//! How a batch enters a session: `Deliver` (a share of an ingest batch) and `AddUserMessage` (a prompt).
//! Each waits for seqIds first if the reserved block does not cover it, is applied (events.rs), and is
//! answered at once or, when durable or held for room, once storage has it.

use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{user_message, SessionActor};
use crate::actors::windows::WindowShare;
use crate::error::CommandError;
use crate::messages::commands::LiveEvent;
use crate::messages::session::{AddUserMessage, Deliver};
use crate::messages::wire::{now_ms, AgentStatus, SidecarEvent};

/// What applying a batch came to: answered at once, or once storage has it (or has room).
enum Applied {
    Now,
    Later(oneshot::Receiver<Result<(), CommandError>>),
}

/// The answer a batch waits for (the session stopped: shutting down).
async fn answer(rx: oneshot::Receiver<Result<(), CommandError>>) -> Result<(), CommandError> {
    rx.await.unwrap_or(Err(CommandError::ShuttingDown))
}

impl Handler<Deliver> for SessionActor {
    type Result = ();

    /// Most batches are answered at once, in the handler; a batch that waits (durable, or for room, or for
    /// its seqIds) answers from a task once it may.
    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        let Deliver {
            events,
            durable,
            dedupe,
            reply,
        } = msg;
        let n = events
            .iter()
            .map(|e| match e {
                SidecarEvent::Message(p) => p.messages.len() as u64,
                _ => 0,
            })
            .sum();
        if self.state.seq.covers(self.record().last_seq, n) {
            match self.deliver(events, durable, dedupe, ctx) {
                Applied::Now => reply.answer(Ok(())),
                Applied::Later(rx) => {
                    actix::spawn(async move { reply.answer(answer(rx).await) });
                }
            }
            return;
        }
        let (tx, rx) = oneshot::channel();
        self.reserve_then(n, ctx, move |act, ctx| {
            match act.deliver(events, durable, dedupe, ctx) {
                Applied::Now => {
                    let _ = tx.send(Ok(()));
                }
                Applied::Later(later) => {
                    actix::spawn(async move {
                        let _ = tx.send(answer(later).await);
                    });
                }
            }
        });
        actix::spawn(async move { reply.answer(answer(rx).await) });
    }
}

impl SessionActor {
    fn deliver(
        &mut self,
        events: Vec<SidecarEvent>,
        durable: bool,
        dedupe: bool,
        ctx: &mut Context<Self>,
    ) -> Applied {
        // The record is written at once on a status change (finished sessions flush their messages too),
        // once the whole batch is applied.
        let mut status_changed = false;
        for event in events {
            match event {
                SidecarEvent::Message(p) => self.apply_messages(p.messages, dedupe, ctx),
                SidecarEvent::Status(p) => {
                    self.set_status(
                        AgentStatus::normalize(&p.status),
                        p.error,
                        Instant::now(),
                        ctx,
                    );
                    status_changed = true;
                }
                SidecarEvent::Cost(p) => self.apply_cost(p, ctx),
            }
        }
        // The budget's part is asked last (a look-up on this thread): a durable batch, or one past the
        // count bound, waits anyway.
        if !durable
            && !self.state.over_memory_bound()
            && !self
                .window_share
                .as_ref()
                .is_some_and(WindowShare::full_of_unstored)
        {
            if status_changed {
                self.flush_now(ctx);
            }
            return Applied::Now;
        }
        let (tx, rx) = oneshot::channel();
        if durable {
            self.state.wait_for_flush(tx);
        } else {
            // Held until storage catches up; a failing write keeps it waiting while it is retried.
            self.links.metrics.window_waits.inc();
            self.state.wait_for_room(tx);
        }
        self.flush_now(ctx);
        Applied::Later(rx)
    }
}

impl Handler<AddUserMessage> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: AddUserMessage, ctx: &mut Context<Self>) {
        if self.state.seq.covers(self.record().last_seq, 1) {
            self.add_user_message(msg, ctx);
        } else {
            self.reserve_then(1, ctx, move |act, ctx| act.add_user_message(msg, ctx));
        }
    }
}

impl SessionActor {
    fn add_user_message(
        &mut self,
        AddUserMessage { prompt, at }: AddUserMessage,
        ctx: &mut Context<Self>,
    ) {
        let message = user_message(&self.record().session_id, prompt, now_ms(), false);
        let shared = self.state.push(message);
        self.window_changed();
        self.state.record.updated_at = now_ms();
        self.changed(ctx);
        self.prefetch_seq(ctx);
        let (session_id, project_id) = self.ids();
        self.publish(|| LiveEvent::Messages {
            session_id,
            project_id,
            messages: vec![shared].into(),
        });
        self.state.detached = false;
        if self.running() {
            self.touch_at(at, ctx);
        } else {
            // Running from the prompt's instant, as its project's health counts it: the stall timer never
            // fires after the health turned stalled (the project publishes that when it hears of it).
            self.apply_status_at(AgentStatus::Running, None, at, ctx);
        }
    }
}
