//! The byte budget of all sessions' in-memory message windows together (`limits.window_bytes`).
//!
//! `limits.messages_in_memory` bounds one session's window by a count, which says little about memory
//! when messages are kilobytes each and there are thousands of sessions. Here every session reports what
//! its window holds and how much of that is already stored; when the total passes the budget, the least
//! recently touched sessions holding stored messages are told to let those go (`TrimWindow`), and reads of
//! them go to storage from then on. Messages not yet stored are never let go: while storage lags, the
//! per-session backpressure bounds them, as before.
//!
//! When what is stored cannot cover the excess (a burst that has not reached storage yet, which the
//! persistence debounce would otherwise hold for its whole window), the least recently touched sessions
//! holding unstored messages are told to write them now (`FlushForRoom`); once written they are stored
//! bytes, and the next reclaim lets them go.
//!
//! One mutex guards the recency order; sessions take it once per batch of messages and once per flush,
//! not per message.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::WeakRecipient;
use prometheus::{IntCounter, IntGauge};

use super::metrics::Metrics;
use crate::messages::session::{FlushForRoom, TrimWindow};

/// The budget, shared by every session of the engine.
pub struct WindowBudget {
    limit: u64,
    used: AtomicU64,
    order: Mutex<Recency>,
    /// `/metrics`: the bytes held, and the trims asked for.
    used_gauge: IntGauge,
    trims: IntCounter,
}

/// Sessions by when they were last touched.
#[derive(Default)]
struct Recency {
    next_tick: u64,
    next_key: u64,
    /// Keyed by numbers this budget hands out, never by what a client sends: a fixed fast hash is enough
    /// (every batch of messages looks its session up here).
    entries: HashMap<u64, Entry, foldhash::fast::FixedState>,
    /// Last touch → session, for the sessions holding stored messages only, least recently touched first:
    /// a reclaim walks only those it may trim, however many sessions hold nothing to give back.
    evictable: BTreeMap<u64, u64>,
    /// Bytes asked back from sessions that have not trimmed yet, so that the reclaims meanwhile do not ask
    /// other sessions for the same bytes again.
    asked: u64,
    /// Last touch → session, for the sessions holding unstored messages not yet asked to flush, least
    /// recently touched first.
    flushable: BTreeMap<u64, u64>,
    /// Unstored bytes of the sessions asked to flush that have not stored them yet.
    flushing: u64,
}

struct Entry {
    tick: u64,
    /// Bytes of stored messages the window holds: what a trim would give back.
    evictable: u64,
    /// What this session was asked to give back and has not reported on since.
    asked: u64,
    /// Bytes the window holds that storage does not have yet.
    unstored: u64,
    /// The unstored bytes it held when asked to flush, until it reports fewer (0: not asked).
    flush_asked: u64,
    /// Weak: a strong handle clones a channel sender (two allocations each), and the session's own
    /// handles already keep it alive; a session gone cannot be asked anything.
    trim: WeakRecipient<TrimWindow>,
    flush: WeakRecipient<FlushForRoom>,
}

impl WindowBudget {
    /// A budget of `limit` bytes, shown in `metrics` (`agent_store_window_*`).
    pub fn new(limit: u64, metrics: &Metrics) -> Arc<WindowBudget> {
        metrics
            .window_budget
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        Arc::new(WindowBudget {
            limit,
            used: AtomicU64::new(0),
            order: Mutex::new(Recency::default()),
            used_gauge: metrics.window_used.clone(),
            trims: metrics.window_trims.clone(),
        })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes all windows hold now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// A session's share, counted from now on; `trim` and `flush` reach the session when the budget needs
    /// room.
    pub fn join(
        self: &Arc<Self>,
        trim: WeakRecipient<TrimWindow>,
        flush: WeakRecipient<FlushForRoom>,
    ) -> WindowShare {
        let key = self.lock().join(trim, flush);
        WindowShare {
            budget: self.clone(),
            key,
            held: 0,
        }
    }

    fn show(&self) {
        self.used_gauge
            .set(i64::try_from(self.used()).unwrap_or(i64::MAX));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recency> {
        self.order.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the least recently touched sessions holding stored messages to let them go, until what they
    /// give back covers the excess; then, if it is not covered, the least recently touched sessions
    /// holding unstored messages to write them.
    fn reclaim(&self, order: &mut Recency) {
        let mut excess = self
            .used()
            .saturating_sub(self.limit.saturating_add(order.asked));
        let mut victims = Vec::new();
        for key in order.evictable.values() {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(order.entries[key].evictable);
            victims.push(*key);
        }
        for key in victims {
            let Some(entry) = order.entries.get_mut(&key) else {
                continue;
            };
            order.evictable.remove(&entry.tick);
            entry.asked = std::mem::take(&mut entry.evictable);
            order.asked += entry.asked;
            if let Some(trim) = entry.trim.upgrade() {
                trim.do_send(TrimWindow);
            }
            self.trims.inc();
        }
        excess = excess.saturating_sub(order.flushing);
        let mut flushers = Vec::new();
        for key in order.flushable.values() {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(order.entries[key].unstored);
            flushers.push(*key);
        }
        for key in flushers {
            let Some(entry) = order.entries.get_mut(&key) else {
                continue;
            };
            order.flushable.remove(&entry.tick);
            entry.flush_asked = entry.unstored;
            order.flushing += entry.unstored;
            if let Some(flush) = entry.flush.upgrade() {
                flush.do_send(FlushForRoom);
            }
        }
    }
}

impl Recency {
    fn join(&mut self, trim: WeakRecipient<TrimWindow>, flush: WeakRecipient<FlushForRoom>) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        let tick = self.tick();
        self.entries.insert(
            key,
            Entry {
                tick,
                evictable: 0,
                asked: 0,
                unstored: 0,
                flush_asked: 0,
                trim,
                flush,
            },
        );
        key
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// The session was touched and now holds `evictable` stored bytes and `unstored` others; what it was
    /// asked to trim is settled, and so is a flush it was asked for once it holds fewer unstored bytes.
    fn touch(&mut self, key: u64, evictable: u64, unstored: u64) {
        let tick = self.tick();
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if entry.evictable > 0 {
            self.evictable.remove(&entry.tick);
        }
        if entry.unstored > 0 && entry.flush_asked == 0 {
            self.flushable.remove(&entry.tick);
        }
        self.asked -= std::mem::take(&mut entry.asked);
        if entry.flush_asked > 0 && unstored < entry.flush_asked {
            self.flushing -= std::mem::take(&mut entry.flush_asked);
        }
        entry.tick = tick;
        entry.evictable = evictable;
        entry.unstored = unstored;
        if evictable > 0 {
            self.evictable.insert(tick, key);
        }
        if unstored > 0 && entry.flush_asked == 0 {
            self.flushable.insert(tick, key);
        }
    }

    fn leave(&mut self, key: u64) {
        if let Some(entry) = self.entries.remove(&key) {
            super::sparse::shrink_when_sparse(&mut self.entries);
            if entry.evictable > 0 {
                self.evictable.remove(&entry.tick);
            }
            if entry.unstored > 0 && entry.flush_asked == 0 {
                self.flushable.remove(&entry.tick);
            }
            self.asked -= entry.asked;
            self.flushing -= entry.flush_asked;
        }
    }
}

/// One session's part of the budget; gives its bytes back when dropped.
pub struct WindowShare {
    budget: Arc<WindowBudget>,
    key: u64,
    held: u64,
}

impl WindowShare {
    /// The window now holds `held` bytes, `stored` of them already in storage; the session was just
    /// touched. May ask the least recently touched sessions (this one included) to trim.
    pub fn update(&mut self, held: u64, stored: u64) {
        let budget = &self.budget;
        if held >= self.held {
            budget.used.fetch_add(held - self.held, Ordering::Relaxed);
        } else {
            budget.used.fetch_sub(self.held - held, Ordering::Relaxed);
        }
        self.held = held;
        budget.show();
        let mut order = budget.lock();
        let stored = stored.min(held);
        order.touch(self.key, stored, held - stored);
        if budget.used() > budget.limit {
            budget.reclaim(&mut order);
        }
    }
}

impl Drop for WindowShare {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
        self.budget.show();
        self.budget.lock().leave(self.key);
    }
}
