//! A session's data and the rules of its persistence, as a plain state machine: no actix, no timers, no
//! I/O. The session actor (`super`) owns the timers and the persister; it asks this type what to do and
//! reports back what happened, so every rule here is unit-tested without an actor. Its stall clock is
//! the same kind of type, in stall.rs. The write cycle (flush, queued, written, retries) is in state/write.rs.
//!
//! Persistence: the first unpersisted change asks for one debounce timer; when it fires, everything not
//! yet persisted is written as one batch plus the session record. Later changes do not push the timer
//! back (a session that keeps talking is still written within one window). Status changes and durable
//! ingests flush at once. One write is in flight at a time; a failed one is retried with backoff and
//! nothing is dropped meanwhile. When more than `messages_in_memory` messages wait for storage, plain
//! deliveries are answered only once storage has caught up (backpressure).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::actors::seq_block::SeqBlock;
use crate::error::CommandError;
use crate::messages::wire::{AgentMessage, AgentStatus, SharedMessage, ToolFields};
use crate::storage::SessionRecord;

mod write;

pub use self::write::{AfterWrite, FlushStep, Next};

/// Someone waiting for a flush (or for room) to complete.
pub type Waiter = oneshot::Sender<Result<(), CommandError>>;

/// The configuration the rules depend on.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Messages kept in memory once persisted; also the unpersisted count past which plain deliveries wait.
    pub messages_in_memory: usize,
    pub debounce: Duration,
    pub retry: Duration,
    pub retry_max: Duration,
    /// seqIds reserved durably at a time (`storage.seq_block`, src/actors/seq_block.rs).
    pub seq_block: u64,
}

/// A session's record, its window of messages and where persistence stands.
pub struct SessionState {
    pub record: SessionRecord,
    /// The seqIds it may hand out: reserved durably ahead of use (src/actors/seq_block.rs).
    pub seq: SeqBlock,
    window: VecDeque<SharedMessage>,
    /// Approximate bytes held by the window (for `/v1/debug/top` and `limits.window_bytes`).
    window_bytes: u64,
    /// The part of `window_bytes` not yet stored, which the window budget never lets go.
    unstored_bytes: u64,
    /// `unstored_bytes` when the write in flight was built: stored once it commits.
    flushing_bytes: u64,
    persisted_seq: u64,
    /// seqIds skipped (`push`) since the write in flight was built: `written` counts them as stored too,
    /// since its `upto` was taken before the skip.
    skipped_in_flight: u64,
    record_dirty: bool,
    /// The actor holds a debounce or retry timer.
    timer: bool,
    in_flight: bool,
    /// Asked to flush again while a write was in flight.
    again: bool,
    /// A finished status awaits its commit; the project's retention rides with that write, after it in the
    /// same transaction, so it sees this session finished.
    retention_due: bool,
    /// When the oldest change not yet committed was made.
    dirty_since: Option<Instant>,
    /// Not its project's current session: it stops once everything is stored.
    pub detached: bool,
    /// Nothing but storage holds this session once it is finished (it has no runner, or one that keeps
    /// nothing): it stops once finished and stored even while its project holds it (a virtual actor), and
    /// comes back from storage for a later event, read or command.
    pub let_go_when_finished: bool,
    /// Brought back (or asked) for a command that follows (a prompt, a resume): it does not let go by
    /// itself until it runs again or its project lets it go.
    pub held: bool,
    /// Read back for late events and offered to its project (`Revived`, by its router): it does
    /// not stop before the offer is settled, so the project's `Attach`, if one comes, finds it alive and
    /// the project's health hears what the late events changed.
    pub offered: bool,
    /// Who waits for storage, and the retry backoff: only while someone waits or a write failed.
    waits: Option<Box<Waits>>,
    /// Shared by every session (the actor's `SessionShared::rules`).
    rules: Arc<Rules>,
}

/// The part of a session's persistence that is rarely anything: who waits for a write and how long the
/// next retry waits. Most sessions never hold a waiter (plain deliveries under the memory bound are
/// answered at once) and never see a write fail, so these live in one box, made when needed and dropped
/// once empty again: inline they were 88 bytes in every live session's actor (a jemalloc class more).
#[derive(Default)]
struct Waits {
    /// Waiting for the next write to start, and for the one in flight.
    pending: Vec<Waiter>,
    riding: Vec<Waiter>,
    /// Plain deliveries held while more than `messages_in_memory` messages are unpersisted.
    room: Vec<Waiter>,
    backoff: Option<Duration>,
}

impl Waits {
    fn is_empty(&self) -> bool {
        self.pending.is_empty()
            && self.riding.is_empty()
            && self.room.is_empty()
            && self.backoff.is_none()
    }
}

impl SessionState {
    /// `recent`: the newest messages, in seq order; `persisted`: whether they and the record are stored.
    pub fn new(
        record: SessionRecord,
        recent: Vec<SharedMessage>,
        persisted: bool,
        detached: bool,
        rules: Arc<Rules>,
    ) -> SessionState {
        let persisted_seq = if persisted {
            record.last_seq
        } else {
            recent.first().map_or(record.last_seq, |m| m.seq_id - 1)
        };
        let unstored_bytes = recent
            .iter()
            .filter(|m| m.seq_id > persisted_seq)
            .map(|m| approx_size(m))
            .sum();
        SessionState {
            seq: SeqBlock::new(record.last_seq),
            window_bytes: recent.iter().map(|m| approx_size(m)).sum(),
            unstored_bytes,
            flushing_bytes: 0,
            window: recent.into(),
            persisted_seq,
            skipped_in_flight: 0,
            record_dirty: !persisted,
            record,
            timer: false,
            in_flight: false,
            again: false,
            retention_due: false,
            dirty_since: None,
            detached,
            let_go_when_finished: false,
            held: false,
            offered: false,
            waits: None,
            rules,
        }
    }

    fn waits(&mut self) -> &mut Waits {
        self.waits.get_or_insert_with(Default::default)
    }

    /// Lets the box go once nobody waits and no backoff is running.
    fn tidy_waits(&mut self) {
        if self.waits.as_ref().is_some_and(|w| w.is_empty()) {
            self.waits = None;
        }
    }

    /// The ceiling to reserve so that `n` more seqIds fit, with a block to spare (`SeqBlock::wanted`).
    pub fn seq_wanted(&self, n: u64) -> u64 {
        self.seq
            .wanted(self.record.last_seq, n, self.rules.seq_block)
    }

    /// The ceiling to reserve ahead of need, if less than half a block is left (`SeqBlock::prefetch`).
    pub fn seq_prefetch(&mut self) -> Option<u64> {
        self.seq
            .prefetch(self.record.last_seq, self.rules.seq_block)
    }

    pub fn window(&self) -> &VecDeque<SharedMessage> {
        &self.window
    }

    pub fn window_bytes(&self) -> u64 {
        self.window_bytes
    }

    /// The part of the window already in storage: what `trim_stored` would give back.
    pub fn stored_bytes(&self) -> u64 {
        self.window_bytes.saturating_sub(self.unstored_bytes)
    }

    /// Lets go of every stored message in the window (the window budget needs room); reads of them go to
    /// storage. Messages not yet stored, or in a write still in flight, stay.
    pub fn trim_stored(&mut self) {
        while self
            .window
            .front()
            .is_some_and(|m| m.seq_id <= self.persisted_seq)
        {
            if let Some(m) = self.window.pop_front() {
                self.window_bytes -= approx_size(&m);
            }
        }
        if self.window.is_empty() {
            // Its buffer too: a trim comes from memory pressure, and a finished session stays trimmed
            // (100,000 of them held 12 MB of empty buffers).
            self.window = VecDeque::new();
        }
    }

    /// Nothing waits for storage.
    pub fn is_clean(&self) -> bool {
        !self.record_dirty && self.persisted_seq >= self.record.last_seq && !self.in_flight
    }

    /// More messages wait for storage than a session may hold beyond its window.
    pub fn over_memory_bound(&self) -> bool {
        self.record.last_seq - self.persisted_seq > self.rules.messages_in_memory as u64
    }

    /// Gives `message` the next seqId and puts it in the window.
    pub fn push(&mut self, mut message: AgentMessage) -> SharedMessage {
        // A previous life may have handed out seqIds up to its ceiling that storage never got: skip them.
        // Both counters move, so the count of messages awaiting storage stays what it was.
        let next = self.seq.skip_to(self.record.last_seq);
        let skipped = next - self.record.last_seq;
        self.persisted_seq += skipped;
        if self.in_flight {
            self.skipped_in_flight += skipped;
        }
        self.record.last_seq = next;
        self.record.last_seq += 1;
        self.record.message_count += 1;
        message.seq_id = self.record.last_seq;
        let shared = Arc::new(message);
        let size = approx_size(&shared);
        self.window_bytes += size;
        self.unstored_bytes += size;
        self.window.push_back(shared.clone());
        shared
    }

    /// The record changed (status, cost, model): it is written with the next flush.
    pub fn record_changed(&mut self) {
        self.record_dirty = true;
    }

    /// Notes the first unpersisted change; true when the session just became dirty.
    pub fn note_dirty(&mut self, now: Instant) -> bool {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(now);
            return true;
        }
        false
    }

    /// A change waits for storage: the debounce the actor should arm, if no timer or write is pending.
    /// The second value is `note_dirty`'s.
    pub fn changed(&mut self, now: Instant) -> (Option<Duration>, bool) {
        let became_dirty = self.note_dirty(now);
        if self.timer || self.in_flight {
            return (None, became_dirty);
        }
        self.timer = true;
        (Some(self.rules.debounce), became_dirty)
    }

    /// The actor's debounce or retry timer fired, or is to be cancelled for an immediate flush: true when
    /// one was armed (its handle is valid: the actor keeps no flag of its own beside this one).
    pub fn take_timer(&mut self) -> bool {
        std::mem::take(&mut self.timer)
    }

    pub fn wait_for_flush(&mut self, waiter: Waiter) {
        self.waits().pending.push(waiter);
    }

    /// Whether somebody waits for the next write: a durable delivery or a flush, or a delivery held for
    /// room.
    pub fn awaited(&self) -> bool {
        self.waits
            .as_ref()
            .is_some_and(|w| !w.pending.is_empty() || !w.room.is_empty())
    }

    /// A plain delivery over the memory bound: answered once storage caught up.
    pub fn wait_for_room(&mut self, waiter: Waiter) {
        self.waits().room.push(waiter);
    }

    /// A status was applied: the record is written, a finished one has retention ride with that write, and
    /// a running one lets go of the hold a command took.
    pub fn status_changed(&mut self, status: AgentStatus) {
        self.record_dirty = true;
        if status.is_finished() {
            self.retention_due = true;
        }
        if status == AgentStatus::Running {
            // The command it was held for came: its next finish lets it go again.
            self.held = false;
        }
    }

    /// The project let go of this session; true when it may stop at once.
    pub fn detach(&mut self) -> bool {
        self.detached = true;
        self.held = false;
        self.may_stop()
    }

    /// Not running, fully stored, and either let go of by its project or finished with nothing but
    /// storage holding it (`let_go_when_finished`, unless `held`); never while its offer to its project
    /// is unsettled (`offered`).
    pub fn may_stop(&self) -> bool {
        self.stops_once_stored() && self.is_clean() && !self.offered
    }

    /// Its offer to its project was settled (attached, or no project took it): true when it may stop now.
    pub fn offer_settled(&mut self) -> bool {
        self.offered = false;
        self.may_stop()
    }

    /// It will stop once what it holds is stored (unless something comes meanwhile): its last write may
    /// carry what its stop would otherwise write on its own (the seqId ceiling's release).
    pub fn stops_once_stored(&self) -> bool {
        let status = self.record.status;
        let alone = self.let_go_when_finished && !self.held && status.is_finished();
        (self.detached || alone) && status != AgentStatus::Running
    }

    /// The actor stops: waiters learn their fate. True when it stopped dirty (for the dirty gauge).
    pub fn stopping(&mut self) -> bool {
        if let Some(waits) = self.waits.take() {
            let Waits {
                pending,
                riding,
                room,
                ..
            } = *waits;
            for w in pending.into_iter().chain(riding) {
                let _ = w.send(Err(CommandError::SessionNotFound));
            }
            // Plain deliveries were taken; what became of the session since is not their concern.
            for w in room {
                let _ = w.send(Ok(()));
            }
        }
        self.dirty_since.take().is_some()
    }
}

/// What a message costs the window, roughly: its text plus its allocations, the shared one with the
/// `Arc`'s two counts and its tool box. The window's byte budget bounds how many messages memory holds,
/// so an estimate below what a message really takes lets the budget hold more of them than it should.
pub fn approx_size(m: &AgentMessage) -> u64 {
    (ARC_COUNTS
        + std::mem::size_of::<AgentMessage>()
        + m.id.len()
        + m.content.len()
        + m.tool
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<ToolFields>())
        + m.tool_len()) as u64
}

/// The strong and weak counts an `Arc` allocates before its value.
const ARC_COUNTS: usize = 2 * std::mem::size_of::<usize>();

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
