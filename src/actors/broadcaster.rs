//! Live events to subscribers (the SSE streams). Each subscriber has its own bounded buffer: publishing
//! never waits, so a slow subscriber cannot block a session actor nor grow memory without bound. When a
//! subscriber's buffer is full its events are dropped and counted, and the next event it can take is
//! preceded by `LiveEvent::Lagged`, naming the sessions whose messages it missed and the last seqId it was
//! sent of each, so the stream can read the gap back from the engine. A notice still owed when the burst
//! ends is retried on a short interval, so a subscriber that fell behind learns of it without waiting for
//! another event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::metrics::{ActorKind, MailboxStats, Metered, Metrics, StopReason};
use crate::messages::commands::LiveEvent;

/// The receiving end of a subscription. Dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<LiveEvent>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<LiveEvent> {
        self.rx.recv().await
    }
}

struct Subscriber {
    project: Option<String>,
    tx: mpsc::Sender<LiveEvent>,
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
    stats: Arc<MailboxStats>,
    metrics: Arc<Metrics>,
}

impl Broadcaster {
    /// `buffer`: how many events one subscriber may have waiting before it lags.
    pub fn new(
        live: Arc<AtomicUsize>,
        buffer: usize,
        stats: Arc<MailboxStats>,
        metrics: Arc<Metrics>,
    ) -> Broadcaster {
        Broadcaster {
            subscribers: Vec::new(),
            live,
            buffer: buffer.max(2),
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
        self.subscribers.push(Subscriber {
            project: msg.project,
            tx,
            missed: 0,
            gaps: HashMap::new(),
            delivered: HashMap::new(),
        });
        self.count_subscribers();
        MessageResult(Subscription { rx })
    }
}

impl Handler<Publish> for Broadcaster {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _: &mut Context<Self>) {
        let project = event.project_id().map(str::to_owned);
        self.subscribers.retain_mut(|sub| {
            if sub.tx.is_closed() {
                return false;
            }
            if let (Some(want), Some(got)) = (&sub.project, &project) {
                if want != got {
                    return true;
                }
            }
            if !deliver(sub, &event) {
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
    let notice = LiveEvent::Lagged {
        missed: sub.missed,
        resume: sub.gaps.drain().collect(),
    };
    match sub.tx.try_send(notice) {
        Ok(()) => sub.missed = 0,
        // Full or closed: keep what is owed for the next try.
        Err(e) => {
            if let LiveEvent::Lagged { resume, .. } = e.into_inner() {
                sub.gaps.extend(resume);
            }
        }
    }
}

/// Sends one event to one subscriber, first telling it what it missed if it had lagged. Answers whether
/// the event was delivered (false: dropped and counted for the next lag notice).
fn deliver(sub: &mut Subscriber, event: &LiveEvent) -> bool {
    if sub.missed > 0 {
        // The lag notice needs a free slot and the event another one; otherwise keep counting.
        if sub.tx.capacity() >= 2 {
            notify_lag(sub);
        }
        if sub.missed > 0 {
            record_miss(sub, event);
            return false;
        }
    }
    match sub.tx.try_send(event.clone()) {
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
