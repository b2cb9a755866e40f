//! A new session's riders: the writes that go with its record until a write of it is committed (what it
//! was started with, and its first seqId reservation), and that write's outcome while it is in flight.
//!
//! The outcome is kept here, not in the task that sent the write, because two parts of the actor wait for
//! it: the flush that sent it (persist.rs), and a first batch that arrived before it committed and needs
//! the seqIds its reservation holds (seq.rs `reserve_then`). That batch holds the mailbox (`ctx.wait`),
//! and actix polls nothing else of the actor meanwhile, so the batch's wait polls the ack itself and
//! leaves the outcome for the flush, which takes it right after. Waiting on the write that is queued
//! anyway saves the first batch a reservation write of its own (one job and one `seq_ceilings` write per
//! start) and keeps what that wait was for: an acknowledged batch's session is stored.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix::prelude::*;

use super::SessionActor;
use crate::actors::persister::{Ack, Written};
use crate::storage::{StorageError, WriteOp};

/// A new session's writes that ride with its record until a write of it is committed. A start then costs
/// the persister one job, and neither write can be dropped by a full queue, as a job of its own could.
#[derive(Default)]
pub(super) struct Riders {
    pub ops: Vec<WriteOp>,
    /// The ceiling the reservation among `ops` commits.
    pub ceiling: Option<u64>,
    /// The write carrying them, while it is in flight.
    pub write: Option<RidingWrite>,
}

/// A write carrying the riders, sent and not yet handled by its flush.
pub(super) struct RidingWrite {
    ack: Ack,
    /// What the flush that sent it hands to `flush_done`.
    pub upto: u64,
    pub retention: bool,
    /// Its outcome, once its ack resolved.
    outcome: Option<Result<Written, StorageError>>,
}

impl RidingWrite {
    pub fn new(ack: Ack, upto: u64, retention: bool) -> RidingWrite {
        RidingWrite {
            ack,
            upto,
            retention,
            outcome: None,
        }
    }

    /// Ready once the write is committed or failed; the outcome stays for `take_outcome`.
    fn poll_settled(&mut self, task: &mut Context<'_>) -> Poll<&Result<Written, StorageError>> {
        if self.outcome.is_none() {
            let result = ready!(Pin::new(&mut self.ack).poll(task));
            self.outcome = Some(result.unwrap_or(Err(StorageError::Closed)));
        }
        Poll::Ready(self.outcome.as_ref().expect("set above"))
    }

    /// Whether it is committed, once settled.
    pub fn committed(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    /// The outcome, once settled (`RidingSettled`).
    pub fn take_outcome(&mut self) -> Result<Written, StorageError> {
        self.outcome.take().unwrap_or(Err(StorageError::Closed))
    }
}

/// Resolves once the riding write in flight is committed or failed (at once when none is in flight).
pub(super) struct RidingSettled;

impl ActorFuture<SessionActor> for RidingSettled {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut SessionActor,
        _: &mut actix::Context<SessionActor>,
        task: &mut Context<'_>,
    ) -> Poll<()> {
        if let Some(write) = act.riders.as_mut().and_then(|r| r.write.as_mut()) {
            ready!(write.poll_settled(task));
        }
        Poll::Ready(())
    }
}
