//! A session's seqId block: which seqIds it may hand out without reserving more.
//!
//! The contract says a seqId, once sent anywhere, is never given to another message, even after a SIGKILL
//! took messages that were streamed live but not yet stored. So a session hands out seqIds only at or below
//! a ceiling already committed to storage (src/storage/sequence.rs), reserved a block (`storage.seq_block`)
//! ahead, the way a database hands out sequence values; a session brought back from storage continues above
//! the ceiling its previous life reserved. A new block is asked for when half of the current one is used, so
//! a session rarely waits for one; it waits (one group commit) only when a burst outruns the reservation.

use std::num::NonZeroU64;

/// The session actor's view of its block. Plain data; the actor does the I/O. The block's size
/// (`storage.seq_block`) is passed in where it matters, not kept: every session has the same one, in its
/// shared rules, and a copy here was 8 bytes more in every live session's task.
#[derive(Debug)]
pub struct SeqBlock {
    /// The highest seqId known to be committed as reserved.
    ceiling: u64,
    /// A session brought back from storage skips to here before its next seqId: the ceiling its previous
    /// life reserved (messages up to it may have been seen and lost).
    floor: u64,
    /// The ceiling of a reservation in flight, if any (never 0: a reservation is at least a block).
    /// NonZero: 8 bytes instead of 16, in every session actor's task.
    reserving: Option<NonZeroU64>,
    /// The stored ceiling is being dropped (`release`): nothing more is handed out before a new
    /// reservation above it commits.
    released: bool,
    /// Took its previous actor's ceiling over (`adopt`): storage holds that same ceiling, no floor.
    adopted: bool,
    /// `seq_ceilings` may hold a row for the session (src/storage/sequence.rs): a reservation was sent
    /// there, a ceiling was adopted, or a previous life left one. Else the only stored ceiling is the one
    /// its record holds (schema 11), which goes with the record's last write: nothing to release then.
    tabled: bool,
}

impl SeqBlock {
    /// A block for a session whose highest seqId so far is `last_seq`: nothing reserved past it yet.
    pub fn new(last_seq: u64) -> SeqBlock {
        SeqBlock {
            ceiling: last_seq,
            floor: 0,
            reserving: None,
            released: false,
            adopted: false,
            tabled: false,
        }
    }

    /// What storage holds for a session brought back: the ceiling its previous life reserved. Nothing
    /// to skip for a block that took that ceiling over (`adopt`).
    pub fn restored(&mut self, stored: Option<u64>) {
        if self.adopted {
            return;
        }
        if let Some(stored) = stored {
            // Held by the record or by `seq_ceilings`: a release drops either.
            self.tabled = true;
            self.floor = self.floor.max(stored);
            self.ceiling = self.ceiling.max(stored);
        }
    }

    /// The seqId the next one follows: `last_seq`, or the floor when that is higher. Once a message took
    /// a seqId past the floor the floor is spent.
    pub fn skip_to(&mut self, last_seq: u64) -> u64 {
        let next = last_seq.max(self.floor);
        self.floor = 0;
        next
    }

    /// Whether `n` more seqIds after `last_seq` are under the committed ceiling.
    pub fn covers(&self, last_seq: u64, n: u64) -> bool {
        !self.released && last_seq.max(self.floor).saturating_add(n) <= self.ceiling
    }

    /// Whether `n` more seqIds after `last_seq` fit under the reservation in flight, once it commits.
    pub fn covered_once_reserved(&self, last_seq: u64, n: u64) -> bool {
        self.reserving.is_some_and(|r| {
            !self.released && last_seq.max(self.floor).saturating_add(n) <= r.get()
        })
    }

    /// The ceiling to reserve so that `n` more seqIds fit, with a `block` to spare.
    pub fn wanted(&self, last_seq: u64, n: u64, block: u64) -> u64 {
        last_seq
            .max(self.floor)
            .max(self.ceiling)
            .saturating_add(n)
            .saturating_add(block.max(1))
    }

    /// The ceiling to reserve ahead of need, when less than half a `block` is left and nothing is in
    /// flight.
    pub fn prefetch(&mut self, last_seq: u64, block: u64) -> Option<u64> {
        let block = block.max(1);
        let next = last_seq.max(self.floor);
        if self.released
            || self.reserving.is_some()
            || self.ceiling.saturating_sub(next) >= block / 2
        {
            return None;
        }
        let ceiling = self.ceiling.max(next).saturating_add(block);
        self.reserving = NonZeroU64::new(ceiling);
        Some(ceiling)
    }

    /// The ceiling its previous actor left in storage, every seqId it handed out being stored
    /// (src/actors/held_ceilings.rs): a committed reservation this block takes as its own, so the next
    /// seqId follows the last stored one.
    pub fn adopt(&mut self, ceiling: u64) {
        self.committed(ceiling);
        self.adopted = true;
        self.tabled = true;
    }

    /// A reservation goes to `seq_ceilings` (not in the record).
    pub fn reserving_in_table(&mut self) {
        self.tabled = true;
    }

    /// Whether `seq_ceilings` may hold a row for the session (`tabled`).
    pub fn tabled(&self) -> bool {
        self.tabled
    }

    /// The highest seqId known to be reserved.
    pub fn ceiling(&self) -> u64 {
        self.ceiling
    }

    /// The session is about to stop: its stored ceiling is dropped with its last write (a later actor
    /// continues right after its last stored seqId), so nothing more is handed out under it. Answers the
    /// ceiling to drop.
    pub fn release(&mut self) -> u64 {
        self.released = true;
        self.ceiling
    }

    /// Whether the ceiling was released (`release`) and nothing reserved since.
    pub fn released(&self) -> bool {
        self.released
    }

    /// A reservation up to `ceiling` is committed.
    pub fn committed(&mut self, ceiling: u64) {
        if ceiling > self.ceiling {
            // A reservation above the released ceiling: storage holds it whatever the release did.
            self.released = false;
        }
        self.ceiling = self.ceiling.max(ceiling);
        if self.reserving.is_some_and(|r| r.get() <= ceiling) {
            self.reserving = None;
        }
    }

    /// The reservation up to `ceiling` failed: the next need asks again.
    pub fn failed(&mut self, ceiling: u64) {
        if self.reserving.is_some_and(|r| r.get() == ceiling) {
            self.reserving = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_session_reserves_before_it_hands_out_and_prefetches_at_half_a_block() {
        let mut b = SeqBlock::new(1);
        assert!(!b.covers(1, 1));
        assert_eq!(b.prefetch(1, 100), Some(101));
        assert_eq!(
            b.prefetch(1, 100),
            None,
            "one reservation in flight at a time"
        );
        b.committed(101);
        assert!(b.covers(1, 100) && !b.covers(1, 101));
        assert_eq!(b.prefetch(40, 100), None);
        assert_eq!(b.prefetch(60, 100), Some(201));
    }

    #[test]
    fn a_restored_session_continues_above_the_ceiling_of_its_previous_life() {
        let mut b = SeqBlock::new(7);
        b.restored(Some(120));
        assert!(
            !b.covers(7, 1),
            "the next seqId is 121, past the committed 120"
        );
        assert_eq!(b.wanted(7, 3, 100), 223);
        b.committed(223);
        assert_eq!(b.skip_to(7), 120);
        assert_eq!(b.skip_to(121), 121, "the floor is spent once");
        let mut clean = SeqBlock::new(7);
        clean.restored(None);
        assert_eq!(clean.skip_to(7), 7);
    }

    #[test]
    fn an_adopted_ceiling_is_a_reservation_and_no_floor() {
        let mut b = SeqBlock::new(7);
        b.adopt(120);
        b.restored(Some(120));
        assert!(b.covers(7, 113) && !b.covers(7, 114));
        assert_eq!(
            b.skip_to(7),
            7,
            "the next seqId is 8, right after the stored 7"
        );
    }

    #[test]
    fn a_released_block_hands_out_nothing_until_a_reservation_above_it_commits() {
        let mut b = SeqBlock::new(1);
        b.committed(101);
        assert_eq!(b.release(), 101);
        assert!(!b.covers(5, 1) && b.released());
        assert_eq!(b.prefetch(5, 100), None);
        // The reservation that rode with the same write does not undo the release.
        b.committed(101);
        assert!(b.released());
        let wanted = b.wanted(5, 1, 100);
        b.committed(wanted);
        assert!(!b.released() && b.covers(5, 1));
    }

    #[test]
    fn a_reservation_in_flight_covers_what_fits_under_it() {
        let mut b = SeqBlock::new(0);
        assert!(!b.covered_once_reserved(0, 1), "nothing in flight");
        let c = b.prefetch(0, 100).unwrap();
        assert!(b.covered_once_reserved(0, 100) && !b.covered_once_reserved(0, 101));
        assert!(!b.covers(0, 1), "not before it commits");
        b.committed(c);
        assert!(!b.covered_once_reserved(0, 1), "no longer in flight");
    }

    #[test]
    fn a_failed_reservation_is_asked_for_again() {
        let mut b = SeqBlock::new(1);
        let c = b.prefetch(1, 10).unwrap();
        b.failed(c);
        assert_eq!(b.prefetch(1, 10), Some(c));
    }

    /// Only a block that reserved in `seq_ceilings`, adopted a ceiling or found one stored may have a row
    /// there: a new session whose only reservation its record holds has none to release.
    #[test]
    fn a_block_knows_whether_seq_ceilings_may_hold_a_row_for_it() {
        let mut fresh = SeqBlock::new(1);
        assert_eq!(fresh.prefetch(1, 100), Some(101));
        fresh.committed(101);
        assert!(!fresh.tabled(), "the first block, held by the record");
        fresh.reserving_in_table();
        assert!(fresh.tabled());
        let mut adopted = SeqBlock::new(7);
        adopted.adopt(120);
        assert!(adopted.tabled());
        let (mut found, mut none) = (SeqBlock::new(7), SeqBlock::new(7));
        found.restored(Some(120));
        none.restored(None);
        assert!(found.tabled() && !none.tabled());
    }
}
