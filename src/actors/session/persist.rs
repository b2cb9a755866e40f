//! The session's way to storage: a flush (what `state::SessionState` says to write, with the spend's
//! ledger rows and the riders' ops, handed to the persister), what its commit changes, the window budget's
//! asks (`TrimWindow`, `FlushForRoom`), and retiring once nothing is left to write. The rules are
//! `state.rs`'s; this file is the actor's side of them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::riders::{RidingOutcome, RidingSettled, RidingWrite};
use super::state::{FlushStep, Next};
use super::SessionActor;
use crate::actors::persister::{Commit, Retain, TryWriteError, Written};
use crate::actors::settings::retention_age_ms;
use crate::error::CommandError;
use crate::messages::router::MayRetire;
use crate::messages::router::RetentionEvicted;
use crate::messages::session::{
    Discard, FlushForRoom, FlushNow, OfferSettled, Retire, Retired, TrimWindow,
};
use crate::storage::StorageError;

/// How long a session that could not stop (something was still sent to it) waits before it asks again.
const RETIRE_AGAIN: Duration = Duration::from_millis(50);

impl SessionActor {
    pub(super) fn flush_now(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.take_flush_timer() {
            ctx.cancel_future(t);
        }
        let hands_over = self.hands_over_ceiling();
        let mut no_riders = None;
        let riding = match &mut self.riders {
            Some(riders) => &mut riders.ceiling,
            None => &mut no_riders,
        };
        let (step, became_dirty) = self.state.begin_flush(Instant::now(), riding, hands_over);
        self.dirty_gauge(became_dirty);
        let ops = match step {
            FlushStep::Later => return,
            FlushStep::Clean { stop } => {
                if stop {
                    self.retire(ctx);
                }
                return;
            }
            // The ledger's rows travel with the record, so they are stored together or not at all.
            FlushStep::Write(mut ops) => {
                if let Some(spend) = &mut self.spend {
                    ops.extend(spend.take_ops(&self.state.record));
                }
                // Cloned: a failed write is retried with them.
                if let Some(riders) = &self.riders {
                    ops.extend(riders.ops.iter().cloned());
                }
                ops
            }
        };
        // A finish's retention of its project rides with its write: one job, in the same commit.
        let retain = self.state.retention_due().then(|| self.retention());
        // Nobody waiting for this write (a debounced flush, a synthetic session's first record): it may
        // wait a little for company in the persister, so that more writes share a commit.
        let commit = if self.state.awaited() {
            Commit::Now
        } else {
            Commit::Soon
        };
        match self
            .links
            .persister
            .try_write_then_retain(ops, retain, commit)
        {
            Ok(ack) => {
                let (upto, retention) = self.state.queued();
                // A write carrying the riders keeps its ack with them: a first batch may wait on it too
                // (riders.rs). Either way the ack resolves on this arbiter, so the write's buffers are
                // freed by the thread that made them.
                if let Some(riders) = &mut self.riders {
                    riders.write = Some(RidingWrite {
                        ack,
                        upto,
                        retention,
                    });
                    ctx.spawn(RidingSettled.map(|outcome, act, ctx| {
                        if let Some(outcome) = outcome {
                            act.riding_written(outcome, ctx);
                        }
                    }));
                    return;
                }
                ctx.spawn(
                    async move { ack.await.unwrap_or(Err(StorageError::Closed)) }
                        .into_actor(self)
                        .map(move |result, act, ctx| act.flush_done(upto, retention, result, ctx)),
                );
            }
            Err(TryWriteError::Full(_)) => {
                if let Some(spend) = &mut self.spend {
                    spend.not_stored();
                }
                if let Some(delay) = self.state.queue_full() {
                    self.arm_flush(delay, ctx);
                }
            }
            Err(TryWriteError::Closed) => self.state.closed(),
        }
    }

    /// The write carrying the riders settled: committed, they are stored (and the reservation among them
    /// holds), so they ride no more; failed, they ride with the retry.
    pub(super) fn riding_written(&mut self, outcome: RidingOutcome, ctx: &mut Context<Self>) {
        let RidingOutcome {
            result,
            upto,
            retention,
        } = outcome;
        if result.is_ok() {
            if let Some(ceiling) = self.riders.take().and_then(|r| r.ceiling) {
                self.state.seq.committed(ceiling);
            }
        }
        self.flush_done(upto, retention, result, ctx)
    }

    /// What retention keeps of this session's project, by the settings now.
    fn retention(&self) -> Retain {
        let settings = self.links.settings.get();
        Retain {
            project_id: self.record().project_id.clone(),
            keep: settings.session_retention_count,
            max_age_ms: retention_age_ms(&settings),
        }
    }

    fn flush_done(
        &mut self,
        upto: u64,
        retention: bool,
        result: Result<Written, StorageError>,
        ctx: &mut Context<Self>,
    ) {
        let (evicted, result) = match result {
            Ok(written) => (written.evicted, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        if let Some(spend) = &mut self.spend {
            match &result {
                Ok(()) => spend.stored(),
                Err(_) => spend.not_stored(),
            }
        }
        let (after, error) = self.state.written(upto, retention, result, Instant::now());
        if let Some(err) = error {
            tracing::warn!(session_id = %self.record().session_id, error = %err, retry_in = ?self.state.backoff(), "persist failed");
        }
        if after.retention && !evicted.is_empty() {
            self.links.evicted.do_send(RetentionEvicted {
                session_ids: evicted,
            });
        }
        self.window_changed();
        if let Some(lag) = after.clean_after {
            self.links.metrics.persist_lag.observe(lag.as_secs_f64());
            self.links.metrics.dirty_sessions.dec();
        }
        match after.next {
            Next::Nothing => {}
            Next::Flush => self.flush_now(ctx),
            Next::Debounce(d) | Next::Retry(d) => self.arm_flush(d, ctx),
            Next::Stop => self.retire(ctx),
        }
    }

    /// It may stop: its router holds its events back and asks it to `Retire` behind those already sent,
    /// so none reaches a stopped actor (messages/router.rs `MayRetire`).
    pub(super) fn retire(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.retiring, true) {
            return;
        }
        self.links.retire.do_send(MayRetire {
            session_id: self.record().session_id.clone(),
            instance: self.stats.instance(),
            retire: ctx.address().recipient(),
        });
    }
}

/// Its router asks it to stop, behind every event it routed here: it stops unless something came since.
impl Handler<Retire> for SessionActor {
    type Result = Retired;

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) -> Retired {
        self.retiring = false;
        // Anything sent through a mailbox and not yet handled (a read, a command, or a batch whose sender
        // waits for room and so has not queued it yet) keeps it: it stays, and tries again later.
        let waiting = self.stats.depth.load(Ordering::Relaxed) > 0;
        let may = self.state.may_stop();
        if may && !waiting {
            self.retired = true;
            self.ceiling_handed = self.hands_over_ceiling() && !self.state.seq.released();
            ctx.stop();
            return Retired::Stopped {
                ceiling: self.ceiling_handed.then(|| self.state.seq.ceiling()),
            };
        }
        if may {
            // Once what waits is handled (a read changes nothing that would ask again), it asks again.
            ctx.run_later(RETIRE_AGAIN, |act, ctx| {
                if act.state.may_stop() {
                    act.retire(ctx);
                }
            });
        }
        Retired::Stayed
    }
}

impl Handler<Discard> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: Discard, ctx: &mut Context<Self>) {
        self.stop_reason = msg.reason;
        ctx.stop();
    }
}

impl Handler<FlushNow> for SessionActor {
    type Result = ResponseFuture<Result<(), CommandError>>;

    fn handle(&mut self, _: FlushNow, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.state.wait_for_flush(tx);
        self.flush_now(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(CommandError::ShuttingDown)) })
    }
}

/// Its offer to its project is over (attached, or no project took it): it stops now if it may, which it
/// would have asked when its last write committed.
impl Handler<OfferSettled> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: OfferSettled, ctx: &mut Context<Self>) {
        if self.state.offer_settled() {
            self.retire(ctx);
        }
    }
}

/// The window budget needs room: let the stored messages go (sent by the budget, not through a `Mailbox`).
impl Handler<TrimWindow> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: TrimWindow, _: &mut Context<Self>) {
        self.state.trim_stored();
        self.window_changed();
    }
}

impl Handler<FlushForRoom> for SessionActor {
    type Result = ();

    /// The window budget needs room that only this session's unstored messages can give, once written.
    fn handle(&mut self, _: FlushForRoom, ctx: &mut Context<Self>) {
        self.flush_now(ctx);
    }
}
