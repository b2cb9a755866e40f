//! A new session's riders: the writes that go with its record until a write of it is committed (what it
//! was started with; its first seqId reservation is held by the record itself, seq.rs
//! `first_reservation`), and that write's outcome while it is in flight.
//!
//! The write's ack is kept here, not in the task that sent the write, because two parts of the actor wait
//! for it: the flush that sent it (persist.rs), and a first batch that arrived before it committed and
//! needs the seqIds its reservation holds (seq.rs `reserve_then`). That batch holds the mailbox
//! (`ctx.wait`), and actix polls nothing else of the actor meanwhile, so whichever of the two polls the ack
//! first handles the outcome (persist.rs `riding_written`) and the other finds nothing left. Waiting on the
//! write that is queued anyway saves the first batch a reservation write of its own (one job and one
//! `seq_ceilings` write per start) and keeps what that wait was for: an acknowledged batch's session is
//! stored.

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
    /// The ceiling the record's write reserves (`SessionRecord::seq_ceiling`).
    pub ceiling: Option<u64>,
    /// The write carrying them, while it is in flight.
    pub write: Option<RidingWrite>,
}

/// A write carrying the riders, sent and not yet settled.
pub(super) struct RidingWrite {
    pub ack: Ack,
    /// What the flush that sent it hands to `flush_done`.
    pub upto: u64,
    pub retention: bool,
}

/// A riding write's outcome, with what its flush hands to `flush_done`.
pub(super) struct RidingOutcome {
    pub result: Result<Written, StorageError>,
    pub upto: u64,
    pub retention: bool,
}

/// Resolves with the outcome of the riding write in flight, once it is committed or failed; with nothing
/// when none is in flight (the other waiter took it).
pub(super) struct RidingSettled;

impl ActorFuture<SessionActor> for RidingSettled {
    type Output = Option<RidingOutcome>;

    fn poll(
        self: Pin<&mut Self>,
        act: &mut SessionActor,
        _: &mut actix::Context<SessionActor>,
        task: &mut Context<'_>,
    ) -> Poll<Option<RidingOutcome>> {
        let Some(riders) = act.riders.as_mut() else {
            return Poll::Ready(None);
        };
        let Some(write) = riders.write.as_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(Pin::new(&mut write.ack).poll(task));
        let RidingWrite {
            upto, retention, ..
        } = riders.write.take().expect("polled above");
        Poll::Ready(Some(RidingOutcome {
            result: result.unwrap_or(Err(StorageError::Closed)),
            upto,
            retention,
        }))
    }
}
