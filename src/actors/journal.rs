//! The live-event journal: every event the broadcaster publishes, numbered, kept for
//! `server.sse_replay_window` within `server.sse_replay_bytes`, in memory and on disk (src/storage/journal.rs),
//! so that a client reconnecting to `/v1/events` with the last id it saw gets everything it missed for its
//! filter, exactly once and in order, across a restart too.
//!
//! Ids are `<epoch>.<n>`: the epoch is this run of the service (opened durably at start-up), `n` counts its
//! events, so an id is never given twice, even after a SIGKILL. `session.messages` events keep their v1 id
//! `<sessionId>:<last seqId>`, which the journal maps back to its position. A messages entry holds no
//! messages, only which session and up to which seqId: a replay reads them from the session, so the journal
//! adds no copy of message content to memory or disk. Other events (status, cost, notification, health) are
//! small and kept as their framed bytes.
//!
//! A client is told to `reset` when its id is older than what is kept, unknown, or belongs to a run that was
//! killed before it stored all its events (some may be missing).

use std::collections::{HashSet, VecDeque};
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::messages::wire::UnixMs;
use crate::storage::{StoredJournal, WriteOp};

/// A journal position: run (epoch) and event number. Ordered as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub epoch: u32,
    pub n: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.n)
    }
}

/// What a client's `Last-Event-ID` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastEventId {
    /// `<epoch>.<n>`: any event's id.
    Event(EventId),
    /// `<sessionId>:<seqId>`: a `session.messages` event's id (v1).
    Session { session_id: String, seq: u64 },
}

impl LastEventId {
    /// None for an empty id (no last event); Err for one that names nothing this server hands out.
    pub fn parse(text: &str) -> Result<Option<LastEventId>, &'static str> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if let Some((session_id, seq)) = text.rsplit_once(':') {
            let seq = seq
                .parse()
                .map_err(|_| "the seqId after ':' is not a number")?;
            if session_id.is_empty() {
                return Err("must be <sessionId>:<seqId> or <epoch>.<n>");
            }
            return Ok(Some(LastEventId::Session {
                session_id: session_id.to_owned(),
                seq,
            }));
        }
        let (epoch, n) = text
            .split_once('.')
            .ok_or("must be <sessionId>:<seqId> or <epoch>.<n>")?;
        match (epoch.parse(), n.parse()) {
            (Ok(epoch), Ok(n)) => Ok(Some(LastEventId::Event(EventId { epoch, n }))),
            _ => Err("must be <sessionId>:<seqId> or <epoch>.<n>"),
        }
    }
}

/// One journalled event.
#[derive(Debug, Clone)]
pub enum Entry {
    /// An event kept as the frame every subscriber was sent.
    Frame {
        id: EventId,
        at: UnixMs,
        project: String,
        frame: Bytes,
    },
    /// A batch of a session's messages, up to `last_seq`; read back from the session when replayed.
    Messages {
        id: EventId,
        at: UnixMs,
        project: String,
        session_id: String,
        last_seq: u64,
    },
}

impl Entry {
    pub fn id(&self) -> EventId {
        match self {
            Entry::Frame { id, .. } | Entry::Messages { id, .. } => *id,
        }
    }

    fn at(&self) -> UnixMs {
        match self {
            Entry::Frame { at, .. } | Entry::Messages { at, .. } => *at,
        }
    }

    pub fn project(&self) -> &str {
        match self {
            Entry::Frame { project, .. } | Entry::Messages { project, .. } => project,
        }
    }
}

/// An entry as stored: postcard, every field always written.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    at: i64,
    project: &'a str,
    /// Empty for a frame entry.
    session_id: &'a str,
    last_seq: u64,
    #[serde(serialize_with = "whole_bytes")]
    frame: &'a [u8],
}

/// Writes the frame as bytes: its length, then one copy. Serde's default for a `&[u8]` is a sequence of
/// `u8`, which postcard writes as the same bytes but one push at a time (with the reallocations between):
/// that loop was most of the journal's cost of an event. The bytes written are the same, so journals
/// stored by earlier builds read alike (and reading always took the frame as bytes).
fn whole_bytes<S: serde::Serializer>(frame: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(frame)
}

fn encode(entry: &Entry) -> Vec<u8> {
    match entry {
        Entry::Frame {
            at, project, frame, ..
        } => to_bytes(&Stored {
            at: *at,
            project,
            session_id: "",
            last_seq: 0,
            frame,
        }),
        Entry::Messages {
            at,
            project,
            session_id,
            last_seq,
            ..
        } => encode_messages(*at, project, session_id, *last_seq),
    }
}

/// Encoded into a buffer of the size the entry can take at most (each varint and length prefix at its
/// widest), so the encoding never reallocates.
fn to_bytes(stored: &Stored<'_>) -> Vec<u8> {
    let most = 3 * 10 + 2 * 5 + stored.project.len() + stored.session_id.len() + stored.frame.len();
    postcard::to_extend(stored, Vec::with_capacity(most)).unwrap_or_default()
}

/// An `Entry::Messages` as stored, from borrowed ids.
fn encode_messages(at: UnixMs, project: &str, session_id: &str, last_seq: u64) -> Vec<u8> {
    to_bytes(&Stored {
        at,
        project,
        session_id,
        last_seq,
        frame: &[],
    })
}

fn decode(id: EventId, bytes: &[u8]) -> Option<Entry> {
    let s: Stored<'_> = postcard::from_bytes(bytes).ok()?;
    Some(if s.session_id.is_empty() {
        Entry::Frame {
            id,
            at: s.at,
            project: s.project.to_owned(),
            frame: Bytes::copy_from_slice(s.frame),
        }
    } else {
        Entry::Messages {
            id,
            at: s.at,
            project: s.project.to_owned(),
            session_id: s.session_id.to_owned(),
            last_seq: s.last_seq,
        }
    })
}

/// What a reconnecting client is sent before live events.
#[derive(Debug, Clone)]
pub enum Replay {
    /// Everything it missed for its filter, oldest first.
    Entries(Vec<Entry>),
    /// It cannot be told everything it missed: `reset {reason}`, then live events.
    Reset(String),
}

/// Events are packed, encoded, into chunks of about this many bytes: a few allocations for hundreds of
/// events instead of three per event. So the byte budget is what the journal really holds, and its
/// long-lived entries do not pin pages that the short-lived allocations around them would have returned.
/// (With one allocation per event, a 32 MiB budget kept ~90 MiB more resident after a 100,000-project load
/// test: BENCHMARKS.md.)
const CHUNK_BYTES: usize = 64 * 1024;

/// Where one entry's encoding ends in its chunk, and what eviction and lookups need without decoding it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: EventId,
    at: UnixMs,
    end: u32,
}

/// Consecutive entries, encoded back to back in one buffer that never reallocates.
struct Chunk {
    slots: Vec<Slot>,
    data: Vec<u8>,
}

impl Chunk {
    fn with_room(bytes: usize) -> Chunk {
        Chunk {
            slots: Vec::new(),
            data: Vec::with_capacity(bytes.max(CHUNK_BYTES)),
        }
    }

    /// The memory it holds.
    fn size(&self) -> usize {
        self.data.capacity() + self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    fn fits(&self, bytes: usize) -> bool {
        self.data.len() + bytes <= self.data.capacity()
    }

    fn encoded(&self, i: usize) -> &[u8] {
        let start = match i {
            0 => 0,
            _ => self.slots[i - 1].end as usize,
        };
        &self.data[start..self.slots[i].end as usize]
    }
}

pub struct Journal {
    epoch: u32,
    /// The next event's number in this epoch.
    next: u64,
    /// Oldest first.
    chunks: VecDeque<Chunk>,
    /// Entries at the front of the first chunk that were evicted (past the window) but whose chunk is still
    /// in use.
    skip: usize,
    /// Every event published after this one is held (it may be held itself): a client whose last event is
    /// older may have missed one that is gone. Ids that were never journalled (an event published with
    /// nothing to keep) and the `<epoch>.0` of a client that subscribed before the first event do not
    /// matter, only what was evicted or not loaded does.
    floor: EventId,
    /// The memory the chunks hold.
    bytes: usize,
    window_ms: i64,
    max_bytes: usize,
    /// Earlier epochs that stored every event before they ended.
    clean: HashSet<u32>,
    /// An entry of this epoch could not be stored: it must not be marked clean.
    lost: bool,
}

impl Journal {
    /// The journal of a new run, holding what the previous runs stored within the window.
    pub fn new(stored: StoredJournal, window_ms: i64, max_bytes: usize, now: UnixMs) -> Journal {
        let mut journal = Journal {
            epoch: stored.epoch,
            next: 1,
            chunks: VecDeque::new(),
            skip: 0,
            floor: EventId {
                epoch: stored.epoch,
                n: 0,
            },
            bytes: 0,
            window_ms,
            max_bytes,
            clean: stored.clean.into_iter().collect(),
            lost: false,
        };
        for ((epoch, n), bytes) in stored.entries {
            if let Ok(stored) = postcard::from_bytes::<Stored<'_>>(&bytes) {
                let id = EventId { epoch, n };
                // What came before the oldest stored entry was pruned.
                journal.floor = journal.floor.min(id);
                journal.append(id, stored.at, &bytes);
            }
        }
        journal.evict(now);
        journal
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The id the next event gets.
    pub fn next_id(&mut self) -> EventId {
        let id = EventId {
            epoch: self.epoch,
            n: self.next,
        };
        self.next += 1;
        id
    }

    /// The newest id given so far (`<epoch>.0` before the first).
    pub fn last_id(&self) -> EventId {
        EventId {
            epoch: self.epoch,
            n: self.next - 1,
        }
    }

    /// Keeps `entry`; answers the write that stores it.
    pub fn push(&mut self, entry: Entry) -> WriteOp {
        let encoded = encode(&entry);
        self.push_encoded(entry.id(), entry.at(), encoded)
    }

    /// Keeps the reference to a session's messages up to `last_seq` (an `Entry::Messages`), written from
    /// the event's own ids: a message batch's entry costs no copy of them (every batch has one).
    pub fn push_messages(
        &mut self,
        id: EventId,
        at: UnixMs,
        project: &str,
        session_id: &str,
        last_seq: u64,
    ) -> WriteOp {
        self.push_encoded(id, at, encode_messages(at, project, session_id, last_seq))
    }

    fn push_encoded(&mut self, id: EventId, at: UnixMs, encoded: Vec<u8>) -> WriteOp {
        self.append(id, at, &encoded);
        WriteOp::JournalAppend {
            epoch: id.epoch,
            n: id.n,
            entry: encoded,
        }
    }

    fn append(&mut self, id: EventId, at: UnixMs, encoded: &[u8]) {
        if !self.chunks.back().is_some_and(|c| c.fits(encoded.len())) {
            let chunk = Chunk::with_room(encoded.len());
            self.bytes += chunk.size();
            self.chunks.push_back(chunk);
        }
        let Some(chunk) = self.chunks.back_mut() else {
            return;
        };
        let before = chunk.size();
        chunk.data.extend_from_slice(encoded);
        let end = u32::try_from(chunk.data.len()).unwrap_or(u32::MAX);
        chunk.slots.push(Slot { id, at, end });
        self.bytes = self.bytes + chunk.size() - before;
    }

    /// Drops what is past the window or over the byte budget; answers the write that prunes storage the
    /// same way, if anything went.
    pub fn evict(&mut self, now: UnixMs) -> Option<WriteOp> {
        let mut dropped = false;
        while let Some(front) = self.chunks.front() {
            let over_budget = self.bytes > self.max_bytes;
            let past_window = front.slots[self.skip..]
                .iter()
                .take_while(|s| now - s.at > self.window_ms)
                .count();
            let whole = over_budget || self.skip + past_window == front.slots.len();
            if whole && (over_budget || self.chunks.len() > 1) {
                if let Some(last) = front.slots.last() {
                    self.floor = self.floor.max(last.id);
                }
                self.bytes -= front.size();
                self.chunks.pop_front();
                self.skip = 0;
                dropped = true;
                continue;
            }
            dropped |= past_window > 0;
            self.skip += past_window;
            if let Some(last) = self.skip.checked_sub(1).map(|i| front.slots[i]) {
                self.floor = self.floor.max(last.id);
            }
            break;
        }
        let keep_from = self.entries_from(0, 0).next().map_or(
            EventId {
                epoch: self.epoch,
                n: self.next,
            },
            |(slot, _)| slot.id,
        );
        dropped.then_some(WriteOp::JournalPrune {
            epoch: keep_from.epoch,
            n: keep_from.n,
        })
    }

    /// The entries held from chunk `c`, slot `i` on (the first chunk's evicted ones left out).
    fn entries_from(&self, c: usize, i: usize) -> impl DoubleEndedIterator<Item = (Slot, &[u8])> {
        self.chunks
            .range(c..)
            .enumerate()
            .flat_map(move |(k, chunk)| {
                let from = if c + k == 0 {
                    self.skip.max(i)
                } else if k == 0 {
                    i
                } else {
                    0
                };
                (from..chunk.slots.len()).map(move |j| (chunk.slots[j], chunk.encoded(j)))
            })
    }

    /// Where the first entry after `id` is (or would go).
    fn after(&self, id: EventId) -> (usize, usize) {
        let c = self
            .chunks
            .partition_point(|chunk| chunk.slots.last().is_some_and(|s| s.id <= id));
        let i = self
            .chunks
            .get(c)
            .map_or(0, |chunk| chunk.slots.partition_point(|s| s.id <= id));
        (c, i)
    }

    /// An entry of this epoch was not stored (storage refused it).
    pub fn lost_one(&mut self) {
        self.lost = true;
    }

    /// Whether every entry of this epoch was handed to storage.
    pub fn complete(&self) -> bool {
        !self.lost
    }

    /// What a client whose last event was `after`, filtered to `project`, missed.
    pub fn replay(&self, after: &LastEventId, project: Option<&str>) -> Replay {
        let position = match after {
            LastEventId::Event(id) => *id,
            LastEventId::Session { session_id, seq } => {
                let found = self.entries_from(0, 0).rev().find_map(|(slot, bytes)| {
                    let stored: Stored<'_> = postcard::from_bytes(bytes).ok()?;
                    (stored.session_id == session_id && stored.last_seq == *seq).then_some(slot.id)
                });
                match found {
                    Some(id) => id,
                    None => {
                        return Replay::Reset(format!(
                            "{session_id}:{seq} is no longer held; that session's messages follow, other events are not replayed"
                        ))
                    }
                }
            }
        };
        if position > self.last_id() {
            return Replay::Reset(format!("unknown event id {position}"));
        }
        if (position.epoch..self.epoch).any(|e| !self.clean.contains(&e)) {
            return Replay::Reset(format!(
                "the service was stopped after event {position} before it stored every event"
            ));
        }
        if position < self.floor {
            return Replay::Reset(format!("event {position} is older than the replay window"));
        }
        let (c, i) = self.after(position);
        Replay::Entries(
            self.entries_from(c, i)
                .filter_map(|(slot, bytes)| {
                    let stored: Stored<'_> = postcard::from_bytes(bytes).ok()?;
                    if project.is_some_and(|p| p != stored.project) {
                        return None;
                    }
                    decode(slot.id, bytes)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: EventId, project: &str, at: UnixMs) -> Entry {
        Entry::Frame {
            id,
            at,
            project: project.into(),
            frame: Bytes::from_static(b"event: x\n\n"),
        }
    }

    fn journal(epoch: u32, clean: Vec<u32>) -> Journal {
        Journal::new(
            StoredJournal {
                epoch,
                entries: Vec::new(),
                clean,
            },
            600_000,
            1 << 20,
            0,
        )
    }

    #[test]
    fn ids_parse_as_events_or_v1_session_ids_and_empty_is_none() {
        assert_eq!(LastEventId::parse(" ").unwrap(), None);
        assert_eq!(
            LastEventId::parse("3.17").unwrap(),
            Some(LastEventId::Event(EventId { epoch: 3, n: 17 }))
        );
        assert_eq!(
            LastEventId::parse("p.x-1-17:5").unwrap(),
            Some(LastEventId::Session {
                session_id: "p.x-1-17".into(),
                seq: 5
            })
        );
        assert!(LastEventId::parse("nonsense").is_err());
        assert!(LastEventId::parse("p-1:x").is_err());
    }

    #[test]
    fn a_replay_is_everything_after_the_position_for_the_filter() {
        let mut j = journal(1, vec![]);
        for project in ["a", "b", "a"] {
            let id = j.next_id();
            j.push(frame(id, project, 0));
        }
        let after = LastEventId::Event(EventId { epoch: 1, n: 1 });
        let Replay::Entries(all) = j.replay(&after, None) else {
            panic!()
        };
        assert_eq!(all.iter().map(|e| e.id().n).collect::<Vec<_>>(), [2, 3]);
        let Replay::Entries(a) = j.replay(&after, Some("a")) else {
            panic!()
        };
        assert_eq!(a.iter().map(|e| e.id().n).collect::<Vec<_>>(), [3]);
        assert!(matches!(
            j.replay(&LastEventId::Event(EventId { epoch: 1, n: 9 }), None),
            Replay::Reset(_)
        ));
    }

    #[test]
    fn what_is_past_the_window_or_from_a_killed_run_resets() {
        let stored = StoredJournal {
            epoch: 3,
            entries: vec![
                ((1, 1), encode(&frame(EventId { epoch: 1, n: 1 }, "a", 0))),
                ((2, 1), encode(&frame(EventId { epoch: 2, n: 1 }, "a", 0))),
            ],
            clean: vec![2],
        };
        let j = Journal::new(stored, 600_000, 1 << 20, 1_000);
        // Epoch 1 was killed: events after 1.1 may be missing.
        assert!(matches!(
            j.replay(&LastEventId::Event(EventId { epoch: 1, n: 1 }), None),
            Replay::Reset(_)
        ));
        // Epoch 2 ended cleanly: replay across the restart.
        assert!(matches!(
            j.replay(&LastEventId::Event(EventId { epoch: 2, n: 1 }), None),
            Replay::Entries(e) if e.is_empty()
        ));
        let mut old = Journal::new(
            StoredJournal {
                epoch: 1,
                ..StoredJournal::default()
            },
            10,
            1 << 20,
            0,
        );
        let id = old.next_id();
        old.push(frame(id, "a", 0));
        let id2 = old.next_id();
        old.push(frame(id2, "a", 100));
        assert!(old.evict(100).is_some());
        // A client that saw the evicted event missed only what is still held...
        assert!(matches!(
            old.replay(&LastEventId::Event(id), None),
            Replay::Entries(e) if e.iter().map(Entry::id).eq([id2])
        ));
        // ...one that saw less may have missed the evicted one.
        assert!(matches!(
            old.replay(&LastEventId::Event(EventId { epoch: 1, n: 0 }), None),
            Replay::Reset(_)
        ));
    }

    #[test]
    fn a_client_whose_last_event_was_never_journalled_gets_what_followed() {
        let mut j = journal(1, vec![]);
        // Subscribed before the first event: its last id is 1.0.
        let before_any = j.last_id();
        let first = j.next_id();
        j.push(frame(first, "a", 0));
        // An id given to an event with nothing to keep.
        let unkept = j.next_id();
        let second = j.next_id();
        j.push(frame(second, "a", 0));
        for (after, expected) in [(before_any, vec![first, second]), (unkept, vec![second])] {
            let Replay::Entries(e) = j.replay(&LastEventId::Event(after), None) else {
                panic!("{after} is within what the journal holds")
            };
            assert_eq!(e.iter().map(Entry::id).collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn the_budget_is_the_memory_held_and_the_oldest_events_go_first() {
        let max = 4 * CHUNK_BYTES;
        let mut j = Journal::new(StoredJournal::default(), 600_000, max, 0);
        let mut ids = Vec::new();
        for k in 0..20_000u32 {
            let id = j.next_id();
            ids.push(id);
            j.push(Entry::Frame {
                id,
                at: 0,
                project: format!("p{}", k % 7),
                frame: Bytes::from(k.to_string().repeat(40)),
            });
            j.evict(0);
            assert!(
                j.bytes <= max,
                "{} bytes held over a budget of {max}",
                j.bytes
            );
            assert_eq!(j.bytes, j.chunks.iter().map(Chunk::size).sum::<usize>());
        }
        assert!(matches!(
            j.replay(&LastEventId::Event(ids[0]), None),
            Replay::Reset(_)
        ));
        let Replay::Entries(recent) = j.replay(&LastEventId::Event(ids[19_989]), Some("p3")) else {
            panic!("a recent event is held")
        };
        let expected: Vec<u32> = (19_990..20_000).filter(|k| k % 7 == 3).collect();
        let got: Vec<(u64, Bytes)> = recent
            .iter()
            .map(|e| match e {
                Entry::Frame { id, frame, .. } => (id.n, frame.clone()),
                Entry::Messages { .. } => panic!("only frames were pushed"),
            })
            .collect();
        assert_eq!(
            got,
            expected
                .iter()
                .map(|k| (u64::from(k + 1), Bytes::from(k.to_string().repeat(40))))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_messages_entry_written_from_borrowed_ids_is_the_entry_itself() {
        let (mut owned, mut borrowed) = (journal(1, vec![]), journal(1, vec![]));
        let (id, also) = (owned.next_id(), borrowed.next_id());
        assert_eq!(id, also);
        let op = owned.push(Entry::Messages {
            id,
            at: 7,
            project: "p".into(),
            session_id: "p-1".into(),
            last_seq: 4,
        });
        let op_borrowed = borrowed.push_messages(id, 7, "p", "p-1", 4);
        let bytes = |op: WriteOp| match op {
            WriteOp::JournalAppend { entry, .. } => entry,
            _ => panic!("a journal append"),
        };
        let stored = bytes(op_borrowed);
        assert_eq!(bytes(op), stored, "stored alike");
        assert!(matches!(
            decode(id, &stored),
            Some(Entry::Messages { at: 7, project, session_id, last_seq: 4, .. })
                if project == "p" && session_id == "p-1"
        ));
    }

    #[test]
    fn entries_are_stored_as_the_bytes_earlier_builds_wrote() {
        // How builds before the frame was written as bytes encoded an entry (serde's derive, the frame a
        // sequence of u8).
        #[derive(Serialize)]
        struct Earlier<'a> {
            at: i64,
            project: &'a str,
            session_id: &'a str,
            last_seq: u64,
            frame: &'a [u8],
        }
        let long = "x".repeat(300);
        for (at, project, session_id, last_seq, frame) in [
            (7, "p", "", 0, b"event: session.status\n\n".as_slice()),
            (-1, long.as_str(), "", 0, long.as_bytes()),
            (i64::MAX, "p", "p-1", u64::MAX, b"".as_slice()),
        ] {
            let now = to_bytes(&Stored {
                at,
                project,
                session_id,
                last_seq,
                frame,
            });
            let earlier = postcard::to_stdvec(&Earlier {
                at,
                project,
                session_id,
                last_seq,
                frame,
            })
            .unwrap();
            assert_eq!(now, earlier);
            let back: Stored<'_> = postcard::from_bytes(&now).unwrap();
            assert_eq!((back.project, back.frame), (project, frame));
        }
    }

    #[test]
    fn a_v1_session_id_maps_to_its_messages_entry() {
        let mut j = journal(1, vec![]);
        let id = j.next_id();
        j.push(Entry::Messages {
            id,
            at: 0,
            project: "p".into(),
            session_id: "p-1".into(),
            last_seq: 4,
        });
        let id2 = j.next_id();
        j.push(frame(id2, "p", 0));
        let after = LastEventId::Session {
            session_id: "p-1".into(),
            seq: 4,
        };
        assert!(matches!(j.replay(&after, None), Replay::Entries(e) if e.len() == 1));
        let unknown = LastEventId::Session {
            session_id: "p-1".into(),
            seq: 3,
        };
        assert!(matches!(j.replay(&unknown, None), Replay::Reset(_)));
    }
}
