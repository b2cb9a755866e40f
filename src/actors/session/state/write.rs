//! The write cycle of a session's state: what an immediate flush writes (`begin_flush`), the persister
//! taking it (`queued`) or refusing it (`queue_full`, `closed`), its outcome (`written`) and the retry backoff.
//! One write is in flight at a time; a flush asked for meanwhile runs once it completes. The data these
//! steps read and change, and the rules, are in `super` (state.rs).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{approx_size, SessionState};
use crate::error::CommandError;
use crate::messages::wire::AgentStatus;
use crate::storage::{EncodedBatch, StorageError, WriteOp};

/// What `begin_flush` decided.
#[derive(Debug)]
pub enum FlushStep {
    /// Nothing to write; waiters were answered. `stop`: the session may stop now (let go and clean).
    Clean { stop: bool },
    /// A write is in flight: it flushes again once that one completes.
    Later,
    /// Hand these to the persister, then report `queued`, `queue_full` or `closed`.
    Write(Vec<WriteOp>),
}

/// What to do after a write completed (`written`).
#[derive(Debug, PartialEq)]
pub struct AfterWrite {
    /// A finished status was committed, and with it the retention of the project that rode with it.
    pub retention: bool,
    /// The session became clean: how long its oldest change waited (persist lag).
    pub clean_after: Option<Duration>,
    pub next: Next,
}

#[derive(Debug, PartialEq)]
pub enum Next {
    Nothing,
    /// Flush again at once (asked for while in flight).
    Flush,
    /// Arm the debounce timer for this long.
    Debounce(Duration),
    /// Retry the write after this long (it failed).
    Retry(Duration),
    /// Let go and clean: stop the actor.
    Stop,
}

impl SessionState {
    /// Decides what an immediate flush does. The caller has cancelled its timer (`take_timer`).
    /// `riding` and `hands_over` are what the actor holds of the seqId ceiling, which a last write
    /// settles (`last_write`): the first reservation riding in a record write not yet committed
    /// (riders.rs), and whether its router is to hold the session's `seq_ceilings` row for the project.
    pub fn begin_flush(
        &mut self,
        now: Instant,
        riding: &mut Option<u64>,
        hands_over: bool,
    ) -> (FlushStep, bool) {
        if self.in_flight {
            self.again = true;
            return (FlushStep::Later, false);
        }
        let unpersisted = (self.record.last_seq - self.persisted_seq) as usize;
        if unpersisted == 0 && !self.record_dirty {
            if let Some(waits) = &mut self.waits {
                for w in waits.pending.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
            self.tidy_waits();
            // Only a session its project let go of stops here: one that stops by itself once finished does
            // so when the write that finished it commits (`written`), not when a command asks it to flush.
            return (
                FlushStep::Clean {
                    stop: self.detached && self.may_stop(),
                },
                false,
            );
        }
        let became_dirty = self.note_dirty(now);
        let mut ops = Vec::with_capacity(2);
        if unpersisted > 0 {
            let start = self.window.len() - unpersisted;
            let session_id = self.record.session_id.clone();
            // Encoded here, on the session's arbiter, so the one writer thread only inserts bytes.
            let messages = &self.window.make_contiguous()[start..];
            ops.push(match EncodedBatch::encode(session_id.clone(), messages) {
                Ok(batch) => WriteOp::AppendEncoded(batch),
                // The writer encodes it again and reports the failure as a failed write.
                Err(_) => WriteOp::AppendMessages {
                    session_id,
                    messages: messages.to_vec(),
                },
            });
        }
        self.flushing_bytes = self.unstored_bytes;
        let release = self
            .stops_once_stored()
            .then(|| self.last_write(riding, hands_over))
            .flatten();
        ops.push(WriteOp::put_session(self.record.clone()));
        ops.extend(release);
        (FlushStep::Write(ops), became_dirty)
    }

    /// Its last write (`stops_once_stored`) stores everything it handed out, so the record that write
    /// stores holds no ceiling: a later actor continues right after the last stored seqId, and nothing
    /// has to rewrite the record afterwards (100,000 sessions finishing together), nor does its stop
    /// write a job of its own. The first reservation that was to ride in this very record (`riding`) is
    /// not made after all. Answers the release of a `seq_ceilings` row the session may have, unless its
    /// router is to hold that row for the project (`hands_over`).
    fn last_write(&mut self, riding: &mut Option<u64>, hands_over: bool) -> Option<WriteOp> {
        self.record.seq_ceiling = 0;
        if let Some(ceiling) = riding.take() {
            self.seq.failed(ceiling);
        }
        if hands_over && self.seq.tabled() {
            return None;
        }
        let ceiling = self.seq.release();
        self.seq.tabled().then(|| WriteOp::ReleaseSeq {
            session_id: self.record.session_id.clone(),
            ceiling,
        })
    }

    /// Whether the next write carries the project's retention (a finished status is in it).
    pub fn retention_due(&self) -> bool {
        self.retention_due
    }

    /// The persister took the write: answers `(upto, retention)` for `written`.
    pub fn queued(&mut self) -> (u64, bool) {
        let retention = std::mem::take(&mut self.retention_due);
        self.in_flight = true;
        self.again = false;
        self.record_dirty = false;
        if let Some(waits) = &mut self.waits {
            waits.riding = std::mem::take(&mut waits.pending);
        }
        (self.record.last_seq, retention)
    }

    /// The persister's queue is full: retry after the returned delay (a timer the actor arms, if none).
    pub fn queue_full(&mut self) -> Option<Duration> {
        self.retry_later()
    }

    /// The persister is gone (shutdown): everyone waiting learns it.
    pub fn closed(&mut self) {
        if let Some(waits) = &mut self.waits {
            for w in waits.pending.drain(..).chain(waits.room.drain(..)) {
                let _ = w.send(Err(CommandError::ShuttingDown));
            }
        }
        self.tidy_waits();
    }

    /// A write (`upto`, `retention` from `queued`) completed with `result`.
    pub fn written(
        &mut self,
        upto: u64,
        retention: bool,
        result: Result<(), StorageError>,
        now: Instant,
    ) -> (AfterWrite, Option<CommandError>) {
        self.in_flight = false;
        let skipped = std::mem::take(&mut self.skipped_in_flight);
        let riding = self
            .waits
            .as_mut()
            .map(|w| std::mem::take(&mut w.riding))
            .unwrap_or_default();
        if let Err(e) = result {
            // Everything stays in memory and is written again; a durable caller learns it is not yet safe.
            self.record_dirty = true;
            self.retention_due |= retention;
            let err = CommandError::from(e);
            for w in riding {
                let _ = w.send(Err(err.clone()));
            }
            let next = self.retry_later().map_or(Next::Nothing, Next::Retry);
            let after = AfterWrite {
                retention: false,
                clean_after: None,
                next,
            };
            return (after, Some(err));
        }
        self.persisted_seq = upto + skipped;
        self.unstored_bytes = self.unstored_bytes.saturating_sub(self.flushing_bytes);
        if let Some(waits) = &mut self.waits {
            waits.backoff = None;
        }
        for w in riding {
            let _ = w.send(Ok(()));
        }
        while self.window.len() > self.rules.messages_in_memory
            && self
                .window
                .front()
                .is_some_and(|m| m.seq_id <= self.persisted_seq)
        {
            if let Some(m) = self.window.pop_front() {
                self.window_bytes -= approx_size(&m);
            }
        }
        // A finished session is read rarely and all of it is in storage now: reads go there, and memory
        // holds only what live sessions are still writing.
        if self.record.status != AgentStatus::Running && self.is_clean() {
            self.window = VecDeque::new();
            self.window_bytes = 0;
            self.unstored_bytes = 0;
        }
        let clean_after = match (self.dirty_since, self.is_clean()) {
            (Some(since), true) => {
                self.dirty_since = None;
                Some(now.saturating_duration_since(since))
            }
            _ => None,
        };
        if !self.over_memory_bound() {
            if let Some(waits) = &mut self.waits {
                for w in waits.room.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
        }
        self.tidy_waits();
        let next = if self.again || self.awaited() {
            Next::Flush
        } else if !self.is_clean() {
            match self.changed(now).0 {
                Some(d) => Next::Debounce(d),
                None => Next::Nothing,
            }
        } else if self.may_stop() {
            Next::Stop
        } else {
            Next::Nothing
        };
        let after = AfterWrite {
            retention,
            clean_after,
            next,
        };
        (after, None)
    }

    fn retry_later(&mut self) -> Option<Duration> {
        let (retry, retry_max) = (self.rules.retry, self.rules.retry_max);
        let backoff = &mut self.waits().backoff;
        let delay = backoff.map_or(retry, |d| (d * 2).min(retry_max));
        *backoff = Some(delay);
        if self.timer {
            return None;
        }
        self.timer = true;
        Some(delay)
    }

    /// The delay the next retry would use (for the log line).
    pub fn backoff(&self) -> Option<Duration> {
        self.waits.as_ref().and_then(|w| w.backoff)
    }
}
