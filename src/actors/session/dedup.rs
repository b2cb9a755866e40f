//! The raw message ids a session applied most recently, so a client that retries a batch (after a 503, a
//! timeout or a lost answer) does not duplicate its messages: ingest is idempotent per (sessionId, raw
//! message id) within the last `limits.ingest_dedup_ids` ids of that session.
//!
//! Ids are kept as 64-bit hashes (8 bytes each, whatever a client sends) in arrival order, so the memory
//! is bounded by configuration and grows only with what the session really received. The set lives with
//! the session actor; a session read back from storage (late events, a restart) starts with the ids of
//! the messages it read back.
//!
//! Every ingested message passes here, so the id is hashed once, with foldhash rather than std's SipHash
//! (which cost more than the rest of the check), seeded at random per session so a client cannot choose
//! ids whose hashes collide with another's. The other lookups use that already random key as it is.
//!
//! Most sessions hold a few dozen ids at most (a hundred thousand short sessions at once is a load this
//! store is built for), so below `SCAN_UP_TO` ids a look through the queue answers. Past it a small
//! filter answers first: almost every id is new, and the filter says so from one word, with no probe into
//! a hash set, no set to grow and nothing to remove when an id leaves the window. Only when the filter
//! says "maybe" (the id was seen, or rarely a false alarm) is the queue scanned. The filter takes 2 to 4
//! bytes an id (2 KiB for the default window of 1,000 ids, where a hash set of the same keys took ~18 KiB).

use std::collections::VecDeque;
use std::hash::BuildHasher;

/// Up to this many ids are looked up by a scan of `order` alone; past it the filter answers first.
const SCAN_UP_TO: usize = 32;

/// Keys a filter word holds before the filter is rebuilt: 8 bits a key at the fullest, which keeps false
/// alarms (each a scan of the queue) to a few in a hundred new ids.
const KEYS_PER_WORD: usize = 8;

pub struct RecentIds {
    order: VecDeque<u64>,
    /// Built when `order` grows past `SCAN_UP_TO`. Boxed (8 bytes inline), as few sessions have one and
    /// every session actor carries the field.
    filter: Option<Box<Filter>>,
    /// Turns an id into its 64-bit key; only ever compared within this set, so a per-set seed is enough.
    ids: foldhash::quality::RandomState,
    capacity: usize,
}

/// A blocked Bloom filter over the keys of `order`: each key sets four bits of one 64-bit word, so a check
/// reads one word. It never forgets a key (one pushed out of the window stays set until the next
/// rebuild): a stale or chance "maybe" only costs a scan of the queue, never a wrong answer.
struct Filter {
    words: Box<[u64]>,
    /// Keys set since it was built; at `room()` it is rebuilt from the queue.
    held: usize,
}

impl Filter {
    /// A filter of `keys`, with room for as many again, so rebuilds cost O(1) a key over time.
    fn of(keys: &VecDeque<u64>) -> Filter {
        let words = (keys.len() * 2)
            .div_ceil(KEYS_PER_WORD)
            .next_power_of_two()
            .max(1);
        let mut filter = Filter {
            words: vec![0; words].into_boxed_slice(),
            held: 0,
        };
        for &key in keys {
            filter.set(key);
        }
        filter
    }

    fn room(&self) -> usize {
        self.words.len() * KEYS_PER_WORD
    }

    /// The word of `key` (its low bits) and its four bits in it (from its high half).
    fn place(&self, key: u64) -> (usize, u64) {
        let word = key as usize & (self.words.len() - 1);
        let h = key >> 32;
        let bits = (1 << (h & 63))
            | (1 << ((h >> 6) & 63))
            | (1 << ((h >> 12) & 63))
            | (1 << ((h >> 18) & 63));
        (word, bits)
    }

    /// False: `key` was certainly not set. True: it may have been.
    fn may_hold(&self, key: u64) -> bool {
        let (word, bits) = self.place(key);
        self.words[word] & bits == bits
    }

    fn set(&mut self, key: u64) {
        let (word, bits) = self.place(key);
        self.words[word] |= bits;
        self.held += 1;
    }
}

impl RecentIds {
    /// Remembers up to `capacity` ids (0: no deduplication). Allocates nothing until used.
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            order: VecDeque::new(),
            filter: None,
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
        let maybe_seen = self.filter.as_ref().is_none_or(|f| f.may_hold(key));
        if maybe_seen && self.order.contains(&key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            // Its bits stay in the filter until the next rebuild: a "maybe" that the scan answers.
            self.order.pop_front();
        }
        match &mut self.filter {
            Some(filter) if filter.held < filter.room() => filter.set(key),
            // Full (of keys, some perhaps gone from the window): rebuilt from the queue, `key` included.
            Some(filter) => **filter = Filter::of(&self.order),
            None if self.order.len() > SCAN_UP_TO => {
                self.filter = Some(Box::new(Filter::of(&self.order)))
            }
            None => {}
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
        assert!(ids.filter.is_none(), "a few ids are looked up by a scan");
    }

    #[test]
    fn past_the_scan_limit_the_filter_answers_first_and_agrees_with_the_window() {
        let window = SCAN_UP_TO + 10;
        let mut ids = RecentIds::new(window);
        let id = |i: usize| format!("m{i}");
        for i in 0..=SCAN_UP_TO {
            assert!(ids.first_time(&id(i)));
        }
        assert!(ids.filter.is_some(), "built once past the scan limit");
        for i in 0..=SCAN_UP_TO {
            assert!(!ids.first_time(&id(i)), "{} is remembered", id(i));
        }
        for i in SCAN_UP_TO + 1..window + 5 {
            assert!(ids.first_time(&id(i)));
        }
        // The five oldest were pushed out of the window, though their bits may still be in the filter.
        for i in 0..5 {
            assert!(ids.first_time(&id(i)), "{} was forgotten", id(i));
        }
        assert_eq!(ids.order.len(), window);
    }

    #[test]
    fn through_many_rebuilds_it_answers_exactly_as_the_window() {
        // Ids repeat at every distance, inside the window and past it, over many rebuilds of the filter.
        let window = 100;
        let mut ids = RecentIds::new(window);
        let mut recent: VecDeque<String> = VecDeque::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut rebuilds = 0;
        let mut repeats = 0;
        for n in 0..20_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // A third are new; the rest repeat one of the last 200 (half of them still in the window).
            let id = match rng % 3 {
                0 => format!("new-{n}"),
                _ => recent
                    .get(recent.len().saturating_sub(1 + (rng >> 8) as usize % 200))
                    .cloned()
                    .unwrap_or_else(|| format!("new-{n}")),
            };
            let in_window = recent.iter().rev().take(window).any(|r| *r == id);
            let held = ids.filter.as_ref().map(|f| f.held);
            assert_eq!(ids.first_time(&id), !in_window, "id {id} at step {n}");
            if in_window {
                repeats += 1;
                continue;
            }
            // A new id is set in the filter, or the filter was rebuilt (and holds fewer).
            if held.is_some_and(|h| ids.filter.as_ref().is_some_and(|f| f.held <= h)) {
                rebuilds += 1;
            }
            recent.push_back(id);
            if recent.len() > 2 * window {
                recent.pop_front();
            }
        }
        assert!(rebuilds > 10, "{rebuilds} rebuilds");
        assert!(repeats > 1_000, "{repeats} repeats");
    }

    #[test]
    fn a_full_window_holds_a_filter_of_a_few_bytes_an_id() {
        let window = 1000;
        let mut ids = RecentIds::new(window);
        for i in 0..10 * window {
            assert!(ids.first_time(&format!("m{i}")));
        }
        let filter = ids.filter.as_ref().expect("built");
        let bytes = std::mem::size_of_val(&*filter.words);
        assert!(
            bytes <= window * 4,
            "{bytes} bytes of filter for {window} ids"
        );
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
