//! The raw message ids a session applied most recently, so a client that retries a batch (after a 503, a
//! timeout or a lost answer) does not duplicate its messages: ingest is idempotent per (sessionId, raw
//! message id) within the last `limits.ingest_dedup_ids` ids of that session.
//!
//! Ids are kept as 64-bit hashes (8 bytes each, whatever a client sends) in arrival order, so the memory
//! is bounded by configuration and grows only with what the session really received. The set lives with
//! the session actor; a session read back from storage (late events, a restart) starts with the ids of
//! the messages it read back.
//!
//! Every ingested message passes here, so the hashing is foldhash rather than std's SipHash (which cost
//! more than the rest of the check): the id's hash is seeded at random per session, so a client cannot
//! choose ids whose hashes collide with another's; the set then hashes those already random keys with
//! foldhash's fast variant.
//!
//! Most sessions hold a few dozen ids at most (a hundred thousand short sessions at once is a load this
//! store is built for), so the set is built only past `SCAN_UP_TO` ids: below that a look through the
//! queue costs less than hashing into a set, and the set's table (~200 bytes a session) is not held.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

/// Up to this many ids are looked up by a scan of `order`; past it through `seen`.
const SCAN_UP_TO: usize = 32;

pub struct RecentIds {
    order: VecDeque<u64>,
    /// Built when `order` grows past `SCAN_UP_TO`: then it holds exactly the keys of `order`. Boxed (8
    /// bytes inline instead of 40), as few sessions have one and every session actor carries the field.
    #[allow(clippy::box_collection)]
    seen: Option<Box<HashSet<u64, foldhash::fast::RandomState>>>,
    /// Turns an id into its 64-bit key; only ever compared within this set, so a per-set seed is enough.
    ids: foldhash::quality::RandomState,
    capacity: usize,
}

impl RecentIds {
    /// Remembers up to `capacity` ids (0: no deduplication). Allocates nothing until used.
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            order: VecDeque::new(),
            seen: None,
            ids: foldhash::quality::RandomState::default(),
            capacity,
        }
    }

    /// Remembers the ids of `messages` already stored (a session read back from storage): a message's id
    /// is its raw message's.
    pub fn seeded(capacity: usize, messages: &[crate::messages::wire::SharedMessage]) -> RecentIds {
        let mut ids = RecentIds::new(capacity);
        let skip = messages.len().saturating_sub(capacity);
        for m in &messages[skip..] {
            ids.first_time(&m.id);
        }
        ids
    }

    /// True the first time `id` is seen within the window (and remembers it); false for a repeat. An
    /// empty id is never a repeat: it names nothing.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.capacity == 0 || id.is_empty() {
            return true;
        }
        let key = self.ids.hash_one(id);
        let repeat = match &mut self.seen {
            Some(seen) => !seen.insert(key),
            None => self.order.contains(&key),
        };
        if repeat {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                if let Some(seen) = &mut self.seen {
                    seen.remove(&old);
                }
            }
        }
        if self.seen.is_none() && self.order.len() > SCAN_UP_TO {
            self.seen = Some(Box::new(self.order.iter().copied().collect()));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_refused_within_the_window_and_forgotten_after() {
        let mut ids = RecentIds::new(3);
        assert!(ids.first_time("a"));
        assert!(!ids.first_time("a"));
        for id in ["b", "c", "d"] {
            assert!(ids.first_time(id));
        }
        assert!(
            ids.first_time("a"),
            "pushed out of the window by three newer ids"
        );
        assert!(!ids.first_time("d"));
        assert_eq!(ids.order.len(), 3);
        assert!(ids.seen.is_none(), "a few ids are looked up by a scan");
    }

    #[test]
    fn past_the_scan_limit_the_set_takes_over_and_agrees_with_the_window() {
        let window = SCAN_UP_TO + 10;
        let mut ids = RecentIds::new(window);
        let id = |i: usize| format!("m{i}");
        for i in 0..=SCAN_UP_TO {
            assert!(ids.first_time(&id(i)));
        }
        assert!(ids.seen.is_some(), "built once past the scan limit");
        for i in 0..=SCAN_UP_TO {
            assert!(!ids.first_time(&id(i)), "{} is remembered", id(i));
        }
        for i in SCAN_UP_TO + 1..window + 5 {
            assert!(ids.first_time(&id(i)));
        }
        // The five oldest were pushed out of the window, in the set too.
        for i in 0..5 {
            assert!(ids.first_time(&id(i)), "{} was forgotten", id(i));
        }
        assert_eq!(ids.order.len(), window);
        assert_eq!(ids.seen.as_ref().map(|s| s.len()), Some(window));
    }

    #[test]
    fn empty_ids_and_a_zero_window_never_deduplicate() {
        let mut ids = RecentIds::new(3);
        assert!(ids.first_time(""));
        assert!(ids.first_time(""));
        let mut off = RecentIds::new(0);
        assert!(off.first_time("a"));
        assert!(off.first_time("a"));
    }
}
