//! Live events to subscribers (the SSE streams). Each event is framed once, here, and every subscriber gets
//! the same shared bytes (`Bytes` is reference-counted): 200 idle subscribers of a 12 MB batch hold one
//! copy of it, not 200. Each subscriber has its own buffer, bounded both in events
//! (`limits.subscriber_buffer`) and in the bytes of the frames waiting in it
//! (`limits.subscriber_buffer_bytes`): publishing never waits, so a slow subscriber cannot block a session
//! actor nor grow memory without bound. When a subscriber's buffer is full its events are dropped and
//! counted, and the next event it can take is
//! preceded by `LiveEvent::Lagged`, naming the sessions whose messages it missed and the last seqId it was
//! sent of each, so the stream can read the gap back from the engine. A notice still owed when the burst
//! ends is retried on a short interval, so a subscriber that fell behind learns of it without waiting for
//! another event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::metrics::{ActorKind, MailboxStats, Metered, Metrics, StopReason};
use crate::messages::commands::LiveEvent;
use crate::messages::sse;

/// One live event as a subscriber receives it: the event, and its SSE frame shared with every other
/// subscriber (`None` for a lag notice, which the stream frames itself).
#[derive(Debug, Clone)]
pub struct Live {
    pub event: LiveEvent,
    pub frame: Option<Bytes>,
}

/// The receiving end of a subscription. Dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<Live>,
    /// Bytes of the frames waiting in `rx`, shared with the broadcaster.
    queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next live event with its frame.
    pub async fn next(&mut self) -> Option<Live> {
        let live = self.rx.recv().await?;
        if let Some(frame) = &live.frame {
            self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
        }
        Some(live)
    }

    /// The next live event (for in-process subscribers, which do not send frames).
    pub async fn recv(&mut self) -> Option<LiveEvent> {
        self.next().await.map(|live| live.event)
    }
}

struct Subscriber {
    project: Option<String>,
    tx: mpsc::Sender<Live>,
    /// Bytes of the frames waiting in its buffer.
    queued: Arc<AtomicUsize>,
    /// Events dropped since the last one delivered.
    missed: u64,
    /// For each session whose messages were dropped: the last seqId this subscriber was sent.
    gaps: HashMap<String, u64>,
    /// Last seqId delivered per session, so a gap knows where it starts.
    delivered: HashMap<String, u64>,
}

/// The broadcaster actor. `live` counts subscribers so publishers can skip building events nobody reads.
pub struct Broadcaster {
    subscribers: Vec<Subscriber>,
    live: Arc<AtomicUsize>,
    buffer: usize,
    buffer_bytes: usize,
    stats: Arc<MailboxStats>,
    metrics: Arc<Metrics>,
}

impl Broadcaster {
    /// `buffer` and `buffer_bytes`: how many events, and how many bytes of frames, one subscriber may have
    /// waiting before it lags.
    pub fn new(
        live: Arc<AtomicUsize>,
        buffer: usize,
        buffer_bytes: usize,
        stats: Arc<MailboxStats>,
        metrics: Arc<Metrics>,
    ) -> Broadcaster {
        Broadcaster {
            subscribers: Vec::new(),
            live,
            buffer: buffer.max(2),
            buffer_bytes,
            stats,
            metrics,
        }
    }

    fn count_subscribers(&self) {
        self.live.store(self.subscribers.len(), Ordering::Relaxed);
        self.metrics
            .sse_subscribers
            .set(self.subscribers.len() as i64);
    }
}

impl Actor for Broadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.actor_started(ActorKind::Broadcaster);
        ctx.run_interval(LAG_RETRY, |act, _| {
            for sub in act.subscribers.iter_mut().filter(|s| s.missed > 0) {
                if sub.tx.capacity() >= 1 {
                    notify_lag(sub);
                }
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics
            .actor_stopped(ActorKind::Broadcaster, StopReason::Shutdown);
    }
}

impl Metered for Broadcaster {
    const KIND: ActorKind = ActorKind::Broadcaster;

    fn meter(&self) -> (&MailboxStats, &Metrics) {
        (&self.stats, &self.metrics)
    }
}

crate::instrument!(Broadcaster: Publish);

#[derive(Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe {
    pub project: Option<String>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub LiveEvent);

impl Handler<Subscribe> for Broadcaster {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = mpsc::channel(self.buffer);
        let queued = Arc::new(AtomicUsize::new(0));
        self.subscribers.push(Subscriber {
            project: msg.project,
            tx,
            queued: queued.clone(),
            missed: 0,
            gaps: HashMap::new(),
            delivered: HashMap::new(),
        });
        self.count_subscribers();
        MessageResult(Subscription { rx, queued })
    }
}

impl Handler<Publish> for Broadcaster {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _: &mut Context<Self>) {
        let project = event.project_id().map(str::to_owned);
        // Framed on first use, once for every subscriber.
        let mut live: Option<Live> = None;
        let budget = self.buffer_bytes;
        self.subscribers.retain_mut(|sub| {
            if sub.tx.is_closed() {
                return false;
            }
            if let (Some(want), Some(got)) = (&sub.project, &project) {
                if want != got {
                    return true;
                }
            }
            let live = live.get_or_insert_with(|| Live {
                frame: sse::of(&event),
                event: event.clone(),
            });
            if !deliver(sub, live, budget) {
                self.metrics.sse_lagged.inc();
            }
            true
        });
        self.count_subscribers();
    }
}

/// How often lag notices still owed are retried.
const LAG_RETRY: Duration = Duration::from_millis(100);

/// Sends the subscriber its lag notice; needs a free slot.
fn notify_lag(sub: &mut Subscriber) {
    let notice = Live {
        event: LiveEvent::Lagged {
            missed: sub.missed,
            resume: sub.gaps.drain().collect(),
        },
        frame: None,
    };
    match sub.tx.try_send(notice) {
        Ok(()) => sub.missed = 0,
        // Full or closed: keep what is owed for the next try.
        Err(e) => {
            if let LiveEvent::Lagged { resume, .. } = e.into_inner().event {
                sub.gaps.extend(resume);
            }
        }
    }
}

/// Whether a frame of `len` bytes fits in the subscriber's byte budget. A subscriber with nothing waiting
/// takes any one frame, so an event larger than the budget is still delivered to a reader that keeps up.
fn fits(sub: &Subscriber, len: usize, budget: usize) -> bool {
    let queued = sub.queued.load(Ordering::Relaxed);
    queued == 0 || queued + len <= budget
}

/// Sends one event to one subscriber, first telling it what it missed if it had lagged. Answers whether
/// the event was delivered (false: dropped and counted for the next lag notice).
fn deliver(sub: &mut Subscriber, live: &Live, budget: usize) -> bool {
    let event = &live.event;
    let len = live.frame.as_ref().map_or(0, Bytes::len);
    if sub.missed > 0 {
        // The lag notice needs a free slot and the event another one; otherwise keep counting.
        if sub.tx.capacity() >= 2 && fits(sub, len, budget) {
            notify_lag(sub);
        }
        if sub.missed > 0 {
            record_miss(sub, event);
            return false;
        }
    }
    if !fits(sub, len, budget) {
        record_miss(sub, event);
        return false;
    }
    // Counted before it is sent, so the receiver never counts out more than was counted in.
    sub.queued.fetch_add(len, Ordering::Relaxed);
    match sub.tx.try_send(live.clone()) {
        Ok(()) => {
            if let LiveEvent::Messages {
                session_id,
                messages,
                ..
            } = event
            {
                if let Some(last) = messages.last() {
                    sub.delivered.insert(session_id.clone(), last.seq_id);
                }
            }
            true
        }
        Err(_) => {
            sub.queued.fetch_sub(len, Ordering::Relaxed);
            record_miss(sub, event);
            false
        }
    }
}

fn record_miss(sub: &mut Subscriber, event: &LiveEvent) {
    sub.missed += 1;
    if let LiveEvent::Messages { session_id, .. } = event {
        let last_sent = sub.delivered.get(session_id).copied().unwrap_or(0);
        sub.gaps.entry(session_id.clone()).or_insert(last_sent);
    }
}
