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
//! The budget is split into one fixed part per arbiter (`WindowPart::split`): a session counts against its
//! arbiter's part, and only that arbiter's sessions are trimmed for it. Each part's recency order lives on
//! its arbiter's thread (a thread-local table keyed by the part), which is the only thread whose sessions
//! touch it: no lock, and no cache line moving between cores per batch (one mutex for all arbiters was
//! 2.6 % of an ingest profile). The parts are fixed at limit/N because projects, and with them their
//! sessions, are placed on arbiters by a hash of the project id: where the budget matters (thousands of
//! sessions) each arbiter holds about 1/N of the windows. A few sessions that all hash to one arbiter are
//! trimmed at its part, reading their older messages from storage sooner; the total stays within the limit
//! either way. Parts lending to each other were not taken: a part that borrowed while the others were
//! quiet could only give back when its own sessions are next touched, so the total could pass the limit
//! by up to (N-1)/N of it. What still crosses threads is the `/metrics` gauge of the total, one atomic add
//! per update.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::WeakRecipient;
use prometheus::{IntCounter, IntGauge};

use super::metrics::Metrics;
use crate::messages::session::{FlushForRoom, TrimWindow};

/// One arbiter's part of the budget, shared by the sessions placed on that arbiter.
pub struct WindowPart {
    /// Process-wide: keys this part's recency order in its thread's table.
    id: u64,
    limit: u64,
    /// `/metrics`: the bytes all parts hold, and the trims asked for.
    used_gauge: IntGauge,
    trims: IntCounter,
}

/// Numbers the parts of every budget of the process (tests run several engines on one thread).
static NEXT_PART: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The recency order of each part whose sessions run on this thread: on an arbiter, its one part.
    static ORDERS: RefCell<Vec<(u64, Recency)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's recency order of `part` (made on first use; dropped once no session is in
/// it). `None` only while the thread is being torn down, when nothing is left to trim.
fn with_order<R>(part: u64, f: impl FnOnce(&mut Recency) -> R) -> Option<R> {
    ORDERS
        .try_with(|orders| {
            let mut orders = orders.borrow_mut();
            let at = match orders.iter().position(|(id, _)| *id == part) {
                Some(at) => at,
                None => {
                    orders.push((part, Recency::default()));
                    orders.len() - 1
                }
            };
            let r = f(&mut orders[at].1);
            if orders[at].1.entries.is_empty() {
                orders.swap_remove(at);
            }
            r
        })
        .ok()
}

/// One part's sessions by when they were last touched.
#[derive(Default)]
struct Recency {
    /// Bytes this part's windows hold.
    used: u64,
    next_tick: u64,
    next_key: u64,
    /// Keyed by numbers this order hands out, never by what a client sends: a fixed fast hash is enough
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
    /// Bytes this part's windows hold that storage does not have yet (the sum of the entries' `unstored`).
    unstored: u64,
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

impl WindowPart {
    /// A budget of `limit` bytes in `parts` parts (one per arbiter; at least one), whose sizes add up to
    /// `limit`; shown in `metrics` (`agent_store_window_*`).
    pub fn split(limit: u64, parts: usize, metrics: &Metrics) -> Vec<Arc<WindowPart>> {
        metrics
            .window_budget
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
        let n = parts.max(1) as u64;
        (0..n)
            .map(|i| {
                Arc::new(WindowPart {
                    id: NEXT_PART.fetch_add(1, Ordering::Relaxed),
                    limit: limit / n + u64::from(i < limit % n),
                    used_gauge: metrics.window_used.clone(),
                    trims: metrics.window_trims.clone(),
                })
            })
            .collect()
    }

    /// A session's share, counted from now on; `trim` and `flush` reach the session when its part needs
    /// room. Joined, updated and dropped on the part's arbiter.
    pub fn join(
        self: &Arc<Self>,
        trim: WeakRecipient<TrimWindow>,
        flush: WeakRecipient<FlushForRoom>,
    ) -> WindowShare {
        let key = with_order(self.id, |order| order.join(trim, flush)).unwrap_or(u64::MAX);
        WindowShare {
            part: self.clone(),
            key,
            held: 0,
        }
    }

    /// Tells the least recently touched sessions holding stored messages to let them go, until what they
    /// give back covers the excess; then, if it is not covered, the least recently touched sessions
    /// holding unstored messages to write them.
    fn reclaim(&self, order: &mut Recency) {
        let mut excess = order
            .used
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
        self.unstored = self.unstored - entry.unstored + unstored;
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
            self.unstored -= entry.unstored;
        }
    }
}

/// One session's part of the budget; gives its bytes back when dropped.
pub struct WindowShare {
    part: Arc<WindowPart>,
    key: u64,
    held: u64,
}

impl WindowShare {
    /// The window now holds `held` bytes, `stored` of them already in storage; the session was just
    /// touched. May ask the least recently touched sessions of its part (this one included) to trim.
    pub fn update(&mut self, held: u64, stored: u64) {
        let part = &self.part;
        let was = std::mem::replace(&mut self.held, held);
        part.used_gauge.add(gauge_delta(was, held));
        let stored = stored.min(held);
        with_order(part.id, |order| {
            order.used = order.used.saturating_sub(was) + held;
            order.touch(self.key, stored, held - stored);
            if order.used > part.limit {
                part.reclaim(order);
            }
        });
    }

    /// The part's budget is filled by messages storage does not have yet: nothing
    /// can be let go until they are written, so a plain delivery waits for its session's write instead of
    /// adding more (the window budget then bounds unstored bytes too, not only the per-session count).
    /// Read from the part's order, not kept in the share: one more field would grow every session's task
    /// past its allocation class (actors/session.rs's size test).
    pub fn full_of_unstored(&self) -> bool {
        let limit = self.part.limit;
        with_order(self.part.id, |order| order.unstored > limit).unwrap_or(false)
    }
}

impl Drop for WindowShare {
    fn drop(&mut self) {
        self.part.used_gauge.add(gauge_delta(self.held, 0));
        with_order(self.part.id, |order| {
            order.used = order.used.saturating_sub(self.held);
            order.leave(self.key);
        });
    }
}

/// `to - from` for the gauge of bytes held (window sizes are far below `i64::MAX`).
fn gauge_delta(from: u64, to: u64) -> i64 {
    i64::try_from(to).unwrap_or(i64::MAX) - i64::try_from(from).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use actix::{Actor, Addr, Context, Handler, Message, MessageResult};

    use super::*;

    /// A session stand-in: counts what the budget asks of it.
    #[derive(Default)]
    struct Probe {
        trims: usize,
        flushes: usize,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<TrimWindow> for Probe {
        type Result = ();
        fn handle(&mut self, _: TrimWindow, _: &mut Context<Self>) {
            self.trims += 1;
        }
    }

    impl Handler<FlushForRoom> for Probe {
        type Result = ();
        fn handle(&mut self, _: FlushForRoom, _: &mut Context<Self>) {
            self.flushes += 1;
        }
    }

    /// (trims, flushes) so far: handled after every message the budget sent before it (one mailbox).
    #[derive(Message)]
    #[rtype(result = "(usize, usize)")]
    struct Asked;

    impl Handler<Asked> for Probe {
        type Result = MessageResult<Asked>;
        fn handle(&mut self, _: Asked, _: &mut Context<Self>) -> MessageResult<Asked> {
            MessageResult((self.trims, self.flushes))
        }
    }

    fn session(part: &Arc<WindowPart>) -> (Addr<Probe>, WindowShare) {
        let addr = Probe::default().start();
        let weak = addr.downgrade();
        let share = part.join(weak.clone().recipient(), weak.recipient());
        (addr, share)
    }

    async fn asked(addr: &Addr<Probe>) -> (usize, usize) {
        addr.send(Asked).await.expect("probe alive")
    }

    /// Parts of 1,000 bytes each (two: 2,000 in all), and the engine's metrics they report to.
    fn two_parts() -> (Arc<Metrics>, Vec<Arc<WindowPart>>) {
        let metrics = Metrics::new();
        let parts = WindowPart::split(2_000, 2, &metrics);
        (metrics, parts)
    }

    #[test]
    fn the_parts_add_up_to_the_limit() {
        let metrics = Metrics::new();
        let parts = WindowPart::split(1_001, 3, &metrics);
        assert_eq!(
            parts.iter().map(|p| p.limit).collect::<Vec<_>>(),
            [334, 334, 333]
        );
        assert_eq!(metrics.window_budget.get(), 1_001);
        assert_eq!(WindowPart::split(10, 0, &metrics).len(), 1);
    }

    #[actix_rt::test]
    async fn a_part_over_its_share_trims_its_least_recently_touched_stored_session() {
        let (metrics, parts) = two_parts();
        let (old, mut old_share) = session(&parts[0]);
        let (new, mut new_share) = session(&parts[0]);
        old_share.update(600, 600);
        new_share.update(600, 600);
        assert_eq!(
            asked(&old).await,
            (1, 0),
            "the least recently touched trims"
        );
        assert_eq!(asked(&new).await, (0, 0));
        assert_eq!(metrics.window_used.get(), 1_200);
        assert_eq!(metrics.window_trims.get(), 1);
        // Until it reports, its bytes count as asked for: the next batch asks nobody again.
        new_share.update(700, 700);
        assert_eq!(asked(&new).await, (0, 0));
        old_share.update(0, 0);
        assert_eq!(metrics.window_used.get(), 700);
    }

    #[actix_rt::test]
    async fn unstored_messages_are_never_trimmed_but_written_early() {
        let (_metrics, parts) = two_parts();
        let (unstored, mut unstored_share) = session(&parts[0]);
        let (stored, mut stored_share) = session(&parts[0]);
        unstored_share.update(900, 0);
        stored_share.update(300, 300);
        // 200 over: the stored session (touched last) trims, and the unstored one is not trimmed.
        assert_eq!(asked(&unstored).await, (0, 0));
        assert_eq!(asked(&stored).await, (1, 0));
        // Over by more than anything stored can give: the unstored session is asked to write.
        unstored_share.update(1_100, 0);
        assert_eq!(asked(&unstored).await, (0, 1));
        // Asked once until it reports fewer unstored bytes.
        unstored_share.update(1_150, 0);
        assert_eq!(asked(&unstored).await, (0, 1));
        // Written: now stored, so the next reclaim lets it go.
        unstored_share.update(1_150, 1_150);
        assert_eq!(asked(&unstored).await, (1, 1));
    }

    #[actix_rt::test]
    async fn a_part_filled_by_unstored_bytes_alone_is_full_until_they_are_stored() {
        let (_metrics, parts) = two_parts();
        let (_a, mut a_share) = session(&parts[0]);
        let (_b, mut b_share) = session(&parts[0]);
        let (_c, mut c_share) = session(&parts[1]);
        // Over the part's 1,000, but mostly stored: a trim makes room, so nobody waits.
        a_share.update(800, 800);
        b_share.update(400, 0);
        assert!(!b_share.full_of_unstored());
        // Unstored bytes alone pass the part's budget: nothing can be let go until they are written.
        a_share.update(700, 0);
        assert!(a_share.full_of_unstored());
        b_share.update(400, 0);
        assert!(b_share.full_of_unstored(), "the whole part is full");
        c_share.update(900, 0);
        assert!(!c_share.full_of_unstored(), "the other part has room");
        // Written: the part has room again at its sessions' next update.
        a_share.update(700, 700);
        assert!(!a_share.full_of_unstored());
        // A session that leaves takes its unstored bytes with it.
        b_share.update(1_100, 0);
        assert!(b_share.full_of_unstored());
        drop(b_share);
        a_share.update(700, 0);
        assert!(!a_share.full_of_unstored());
    }

    #[actix_rt::test]
    async fn one_part_full_does_not_trim_the_sessions_of_another() {
        let (metrics, parts) = two_parts();
        let (a, mut a_share) = session(&parts[0]);
        let (b, mut b_share) = session(&parts[1]);
        // Each within its own part, 1,800 of the 2,000 in all: nobody trims.
        a_share.update(900, 900);
        b_share.update(900, 900);
        // The second part passes its own 1,000 while the first is touched later: only its session trims,
        // though the first part's session is now the least recently touched of the two.
        a_share.update(950, 950);
        b_share.update(1_100, 1_100);
        assert_eq!(asked(&a).await, (0, 0));
        assert_eq!(asked(&b).await, (1, 0));
        assert_eq!(metrics.window_used.get(), 2_050);
    }

    #[actix_rt::test]
    async fn a_dropped_share_gives_its_bytes_back_to_its_part() {
        let (metrics, parts) = two_parts();
        let (gone, mut gone_share) = session(&parts[0]);
        let (kept, mut kept_share) = session(&parts[0]);
        gone_share.update(800, 800);
        drop(gone_share);
        drop(gone);
        assert_eq!(metrics.window_used.get(), 0);
        // The part's 1,000 are free again: 900 more trim nobody.
        kept_share.update(900, 900);
        assert_eq!(asked(&kept).await, (0, 0));
        assert_eq!(metrics.window_used.get(), 900);
        // Past it, the one session left is the one asked.
        kept_share.update(1_200, 1_200);
        assert_eq!(asked(&kept).await, (1, 0));
    }
}
