//! The session's side of its seqId block (src/actors/seq_block.rs): reserving seqIds durably before they
//! are handed out, ahead of need, and learning after a restart where the previous life's reservation ended.

use actix::prelude::*;

use super::riders::RidingSettled;
use super::SessionActor;
use crate::storage::{StorageError, WriteOp};

impl SessionActor {
    /// The write that reserves this session's seqIds up to `ceiling`, in `seq_ceilings`.
    fn reserve_op(&mut self, ceiling: u64) -> WriteOp {
        self.state.seq.reserving_in_table();
        WriteOp::ReserveSeq {
            session_id: self.record().session_id.clone(),
            ceiling,
        }
    }

    /// Reserves seqIds for `n` more messages, holding the mailbox until the reservation is committed, then
    /// runs `then`: nothing else this session does can overtake it, so events keep their order.
    pub(super) fn reserve_then(
        &mut self,
        n: u64,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        if self.riding_reservation_covers(n) {
            self.wait_for_riders(n, ctx, then);
            return;
        }
        let ceiling = self.state.seq_wanted(n);
        let persister = self.links.persister.clone();
        let ops = vec![self.reserve_op(ceiling)];
        ctx.wait(
            async move { persister.write(ops).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    match result {
                        Ok(()) => act.state.seq.committed(ceiling),
                        // Storage refuses writes: the messages are kept and retried as ever, but their
                        // seqIds are not yet safe from reuse should the process die before it recovers.
                        Err(e) => tracing::warn!(session_id = %act.record().session_id, error = %e,
                            "cannot reserve seqIds; handing them out unreserved"),
                    }
                    then(act, ctx);
                }),
        );
    }

    /// Reserves the next block when less than half of this one is left, without waiting for it.
    pub(super) fn prefetch_seq(&mut self, ctx: &mut Context<Self>) {
        let Some(ceiling) = self.state.seq_prefetch() else {
            return;
        };
        let ops = vec![self.reserve_op(ceiling)];
        match self.links.persister.try_write_soon(ops) {
            Ok(ack) => {
                ctx.spawn(
                    async move { ack.await.unwrap_or(Err(StorageError::Closed)) }
                        .into_actor(self)
                        .map(move |result, act, _| match result {
                            Ok(_) => act.state.seq.committed(ceiling),
                            Err(_) => act.state.seq.failed(ceiling),
                        }),
                );
            }
            Err(_) => self.state.seq.failed(ceiling),
        }
    }

    /// A new session's first reservation is held by its record (schema 11, `SessionRecord::seq_ceiling`):
    /// the record's first write reserves it, one job and no `seq_ceilings` row. A batch that comes before
    /// that write commits waits for it (`wait_for_riders`), although the reservation could be used before
    /// it commits: that wait is what makes a session whose batches were acknowledged exist after a crash
    /// (without it a SIGKILL right after the first batch took the whole session).
    pub(super) fn first_reservation(&mut self) {
        let Some(ceiling) = self.state.seq_prefetch() else {
            return;
        };
        self.state.record.seq_ceiling = ceiling;
        self.riders.get_or_insert_with(Box::default).ceiling = Some(ceiling);
    }

    /// Whether the riders' write is in flight with a reservation that `n` more seqIds fit under.
    fn riding_reservation_covers(&self, n: u64) -> bool {
        self.riders.as_ref().is_some_and(|r| r.write.is_some())
            && self
                .state
                .seq
                .covered_once_reserved(self.record().last_seq, n)
    }

    /// Holds the mailbox until the riders' write in flight settles, then runs `then`: the batch waits for
    /// the write that is queued anyway rather than a reservation of its own (riders.rs).
    fn wait_for_riders(
        &mut self,
        n: u64,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        // Somebody waits for that write now: an empty write that is waited on ends the wait for company
        // of the group it joins (persister/linger.rs), as the reservation it replaces did. Not awaited.
        let _ = self.links.persister.try_write(Vec::new());
        ctx.wait(RidingSettled.map(move |outcome, act, ctx| {
            // Handled here, as its flush would right after: its outcome says what the batch may use.
            if let Some(outcome) = outcome {
                act.riding_written(outcome, ctx);
            }
            // As when a reservation of its own fails: the write is retried with the riders.
            if !act.state.seq.covers(act.record().last_seq, n) {
                tracing::warn!(session_id = %act.record().session_id,
                    "cannot reserve seqIds; handing them out unreserved");
            }
            then(act, ctx);
        }));
    }

    /// A session brought back from storage learns the ceiling its previous life reserved before it takes
    /// a message. Writes queued before (its previous actor's release) are committed first.
    pub(super) fn read_seq_ceiling(&mut self, ctx: &mut Context<Self>) {
        let persister = self.links.persister.clone();
        let id = self.record().session_id.clone();
        let read = async move {
            let _ = persister.barrier().await;
            let store = persister.store().clone();
            tokio::task::spawn_blocking(move || store.seq_ceiling(&id))
                .await
                .map_err(|e| StorageError::Read(e.to_string()))?
        };
        ctx.wait(read.into_actor(self).map(|found, act, _| match found {
            Ok(stored) => act.state.seq.restored(stored),
            Err(e) => {
                tracing::warn!(session_id = %act.record().session_id, error = %e, "cannot read the seqId ceiling")
            }
        }));
    }

    /// Every seqId this actor handed out is stored: a later actor of the session continues right after
    /// them instead of above the reservation.
    pub(super) fn release_seq(&self) {
        self.links
            .persister
            .release_seq(self.record().session_id.clone(), self.state.seq.ceiling());
    }
}
