//! The shape of a run and its book-keeping.
//!
//! `Layout` cuts each project's messages into chunks (one `agent.message` event each) and groups chunks of
//! consecutive projects into ingest requests, round by round: every project gets its chunk 0, then every
//! project its chunk 1, and so on. A session's chunks are therefore requests apart by the whole project
//! count, which keeps them in order in practice without a per-session lock (the loss check does not rely
//! on order).
//!
//! `Ledger` records, lock-free, which chunks were acknowledged or failed (for the loss check), how many
//! messages each project had acknowledged (for the persist-lag probe) and when each chunk was sent (for the
//! end-to-end probe, in a small ring per project so memory stays flat however long the run).

use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// How messages are cut into events and events into requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub projects: usize,
    pub messages: usize,
    /// Messages per `agent.message` event (one session's chunk).
    pub per_event: usize,
    /// Events (projects) per ingest request.
    pub events_per_request: usize,
}

/// One ingest request: chunk `chunk` of every project in `projects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub chunk: usize,
    pub projects: Range<usize>,
}

impl Layout {
    /// `batch` is the number of messages a request should carry. When there are too few projects to fill
    /// a request with `per_event`-sized chunks, the chunks grow so requests still carry `batch` messages.
    pub fn new(projects: usize, messages: usize, per_event: usize, batch: usize) -> Layout {
        let projects = projects.max(1);
        let batch = batch.max(1);
        let per_event = per_event
            .max(batch.div_ceil(projects))
            .min(batch)
            .min(messages.max(1))
            .max(1);
        Layout {
            projects,
            messages,
            per_event,
            events_per_request: (batch / per_event).max(1),
        }
    }

    pub fn chunks(&self) -> usize {
        self.messages.div_ceil(self.per_event)
    }

    /// The message indices of one chunk.
    pub fn chunk_range(&self, chunk: usize) -> Range<usize> {
        let start = chunk * self.per_event;
        start..(start + self.per_event).min(self.messages)
    }

    /// Messages in one request.
    pub fn request_messages(&self, req: &Request) -> usize {
        req.projects.len() * self.chunk_range(req.chunk).len()
    }

    pub fn total_messages(&self) -> u64 {
        self.projects as u64 * self.messages as u64
    }

    /// Every request of the run, round by round.
    pub fn requests(self) -> impl Iterator<Item = Request> + Send + 'static {
        let (step, projects) = (self.events_per_request, self.projects);
        (0..self.chunks()).flat_map(move |chunk| {
            (0..projects).step_by(step).map(move |start| Request {
                chunk,
                projects: start..(start + step).min(projects),
            })
        })
    }

    /// Groups of projects for requests that carry one event (or a pair) per project.
    pub fn project_groups(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        let step = self.events_per_request;
        (0..self.projects)
            .step_by(step)
            .map(move |s| s..(s + step).min(self.projects))
    }
}

/// Send times kept per project: more than the chunks of one project that can be in flight at once.
const RING: usize = 8;
/// Bits of a ring slot holding the send time (µs since the run began: about 12 days).
const TIME_BITS: u32 = 40;

/// What happened to each chunk, shared by every request task.
pub struct Ledger {
    layout: Layout,
    words: usize,
    acked: Vec<AtomicU64>,
    failed: Vec<AtomicU64>,
    acked_messages: Vec<AtomicU32>,
    sent_at: Vec<AtomicU64>,
    epoch: Instant,
}

impl Ledger {
    pub fn new(layout: Layout, epoch: Instant) -> Ledger {
        let words = layout.chunks().div_ceil(64).max(1);
        let atomics = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Ledger {
            layout,
            words,
            acked: atomics(layout.projects * words),
            failed: atomics(layout.projects * words),
            acked_messages: (0..layout.projects).map(|_| AtomicU32::new(0)).collect(),
            sent_at: atomics(layout.projects * RING),
            epoch,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn bit(&self, project: usize, chunk: usize) -> (usize, u64) {
        (project * self.words + chunk / 64, 1u64 << (chunk % 64))
    }

    /// Notes when a chunk leaves, for the end-to-end probe.
    pub fn mark_sent(&self, project: usize, chunk: usize, at: Instant) {
        let micros = at.duration_since(self.epoch).as_micros() as u64 & ((1 << TIME_BITS) - 1);
        let tag = ((chunk as u64 + 1) << TIME_BITS) | micros;
        self.sent_at[project * RING + chunk % RING].store(tag, Ordering::Relaxed);
    }

    /// When the chunk was sent, if its slot was not reused since.
    pub fn sent_time(&self, project: usize, chunk: usize) -> Option<Instant> {
        let tag = self
            .sent_at
            .get(project * RING + chunk % RING)?
            .load(Ordering::Relaxed);
        if tag >> TIME_BITS != chunk as u64 + 1 {
            return None;
        }
        let micros = tag & ((1 << TIME_BITS) - 1);
        Some(self.epoch + std::time::Duration::from_micros(micros))
    }

    /// The server acknowledged the chunk: it must be stored exactly once. Answers the project's acked count.
    pub fn ack(&self, project: usize, chunk: usize) -> u32 {
        let (word, mask) = self.bit(project, chunk);
        self.acked[word].fetch_or(mask, Ordering::Relaxed);
        let n = self.layout.chunk_range(chunk).len() as u32;
        self.acked_messages[project].fetch_add(n, Ordering::Relaxed) + n
    }

    /// The request failed: the chunk may or may not have been applied.
    pub fn fail(&self, project: usize, chunk: usize) {
        let (word, mask) = self.bit(project, chunk);
        self.failed[word].fetch_or(mask, Ordering::Relaxed);
    }

    /// What the loss check expects of one project's session.
    pub fn expectation(&self, project: usize) -> Expectation {
        let (start, end) = (project * self.words, (project + 1) * self.words);
        let load = |v: &[AtomicU64]| {
            v[start..end]
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .collect()
        };
        Expectation {
            layout: self.layout,
            acked: load(&self.acked),
            failed: load(&self.failed),
        }
    }
}

/// One session's acknowledged and uncertain chunks, as bitsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub layout: Layout,
    pub acked: Vec<u64>,
    pub failed: Vec<u64>,
}

impl Expectation {
    fn has(bits: &[u64], chunk: usize) -> bool {
        bits.get(chunk / 64)
            .is_some_and(|w| w & (1 << (chunk % 64)) != 0)
    }

    pub fn is_acked(&self, chunk: usize) -> bool {
        Expectation::has(&self.acked, chunk)
    }

    pub fn is_uncertain(&self, chunk: usize) -> bool {
        !self.is_acked(chunk) && Expectation::has(&self.failed, chunk)
    }

    pub fn acked_count(&self) -> u64 {
        (0..self.layout.chunks())
            .filter(|&c| self.is_acked(c))
            .map(|c| self.layout.chunk_range(c).len() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cover_every_message_once() {
        let layout = Layout::new(23, 57, 10, 100);
        let mut seen = vec![0u32; 23 * 57];
        for req in layout.requests() {
            for p in req.projects.clone() {
                for m in layout.chunk_range(req.chunk) {
                    seen[p * 57 + m] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }

    #[test]
    fn chunks_grow_when_projects_cannot_fill_a_batch() {
        let layout = Layout::new(1, 1000, 10, 100);
        assert_eq!((layout.per_event, layout.events_per_request), (100, 1));
        let layout = Layout::new(20, 50, 10, 100);
        assert_eq!((layout.per_event, layout.events_per_request), (10, 10));
        assert!(layout
            .requests()
            .all(|r| layout.request_messages(&r) == 100));
    }

    #[test]
    fn ring_forgets_a_reused_slot() {
        let epoch = Instant::now();
        let ledger = Ledger::new(Layout::new(2, 100, 1, 1), epoch);
        ledger.mark_sent(1, 3, epoch);
        assert!(ledger.sent_time(1, 3).is_some());
        ledger.mark_sent(1, 3 + RING, epoch);
        assert!(ledger.sent_time(1, 3).is_none());
        assert!(ledger.sent_time(0, 3).is_none());
    }

    #[test]
    fn expectation_counts_acked_chunks_only() {
        let ledger = Ledger::new(Layout::new(2, 25, 10, 10), Instant::now());
        assert_eq!(ledger.ack(1, 2), 5);
        ledger.fail(1, 0);
        let e = ledger.expectation(1);
        assert!(e.is_acked(2) && !e.is_acked(0) && !e.is_acked(1));
        assert_eq!(e.acked_count(), 5);
        assert!(e.is_uncertain(0) && !e.is_uncertain(1));
        assert_eq!(ledger.expectation(0).acked_count(), 0);
    }
}
