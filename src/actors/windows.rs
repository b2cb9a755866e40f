//! The byte budget of all sessions' in-memory message windows together (`limits.window_bytes`).
//!
//! `limits.messages_in_memory` bounds one session's window by a count, which says little about memory
//! when messages are kilobytes each and there are thousands of sessions. Here every session reports what
//! its window holds and how much of that is already stored; when the total passes the budget, the least
//! recently touched sessions holding stored messages are told to let those go (`TrimWindow`), and reads of
//! them go to storage from then on. Messages not yet stored are never let go: while storage lags, the
//! per-session backpressure bounds them, as before.
//!
//! One mutex guards the recency order; sessions take it once per batch of messages and once per flush,
//! not per message.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::{Message, Recipient};
use prometheus::{IntCounter, IntGauge};

use super::metrics::Metrics;

/// Let go of every stored message in the window (those not yet stored stay).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TrimWindow;

/// The budget, shared by every session of the engine.
pub struct WindowBudget {
    limit: u64,
    used: AtomicU64,
    order: Mutex<Recency>,
    /// `/metrics`: the bytes held, and the trims asked for.
    used_gauge: IntGauge,
    trims: IntCounter,
}

/// Sessions by when they were last touched, oldest first.
#[derive(Default)]
struct Recency {
    next_tick: u64,
    by_tick: BTreeMap<u64, u64>,
    entries: HashMap<u64, Entry>,
    next_key: u64,
}

struct Entry {
    tick: u64,
    /// Bytes of stored messages the window holds: what a trim would give back.
    evictable: u64,
    trim: Recipient<TrimWindow>,
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

    /// A session's share, counted from now on; `trim` reaches the session when the budget needs room.
    pub fn join(self: &Arc<Self>, trim: Recipient<TrimWindow>) -> WindowShare {
        let mut order = self.lock();
        let key = order.next_key;
        order.next_key += 1;
        order.touch(key, 0, Some(trim));
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
    /// give back covers the excess.
    fn reclaim(&self, order: &mut Recency) {
        let mut excess = self.used().saturating_sub(self.limit);
        let mut victims = Vec::new();
        for key in order.by_tick.values() {
            if excess == 0 {
                break;
            }
            let entry = &order.entries[key];
            if entry.evictable > 0 {
                excess = excess.saturating_sub(entry.evictable);
                victims.push(*key);
            }
        }
        for key in victims {
            if let Some(entry) = order.entries.get_mut(&key) {
                // Counted as given back now, so the next reclaim picks other sessions meanwhile.
                entry.evictable = 0;
                entry.trim.do_send(TrimWindow);
                self.trims.inc();
            }
        }
    }
}

impl Recency {
    fn touch(&mut self, key: u64, evictable: u64, trim: Option<Recipient<TrimWindow>>) {
        let tick = self.next_tick;
        self.next_tick += 1;
        match self.entries.get_mut(&key) {
            Some(entry) => {
                self.by_tick.remove(&entry.tick);
                entry.tick = tick;
                entry.evictable = evictable;
            }
            None => {
                let Some(trim) = trim else { return };
                self.entries.insert(
                    key,
                    Entry {
                        tick,
                        evictable,
                        trim,
                    },
                );
            }
        }
        self.by_tick.insert(tick, key);
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
        order.touch(self.key, stored.min(held), None);
        if budget.used() > budget.limit {
            budget.reclaim(&mut order);
        }
    }
}

impl Drop for WindowShare {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
        self.budget.show();
        let mut order = self.budget.lock();
        if let Some(entry) = order.entries.remove(&self.key) {
            order.by_tick.remove(&entry.tick);
        }
    }
}
