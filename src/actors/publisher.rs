//! How the actors of one arbiter hand their live events to the broadcaster: a batch at a time.
//!
//! Every applied batch of messages, status change and cost publishes an event, and the broadcaster has a
//! thread of its own. Sent one by one, each event was a message across threads (an envelope, the mailbox's
//! counters and timings, often a wake-up of the broadcaster's thread): with a batch of one message per
//! session, as many as the messages ingested. Here an arbiter's events wait in its `Publisher` while its
//! actors run, and a task spawned on that arbiter by the first of them sends them all in one
//! `PublishMany` as soon as the running actor yields. The broadcaster numbers and journals them as if they
//! had come one by one.
//!
//! The order of the events of one arbiter's actors is kept (one queue, sent whole); events of different
//! arbiters were never ordered between them. The wait is that of the tasks already queued on the arbiter:
//! nothing is held for a timer.

use std::sync::{Arc, Mutex, PoisonError};

use super::broadcaster::{Broadcaster, PublishMany};
use super::mailbox::Mailbox;
use crate::messages::commands::LiveEvent;

/// One arbiter's way to the broadcaster. Only that arbiter's thread uses it (the lock is never contended;
/// it keeps the handle `Sync`, as it lives in the arbiter's shared `SessionShared`).
pub struct Publisher {
    broadcaster: Mailbox<Broadcaster>,
    waiting: Mutex<Vec<LiveEvent>>,
}

impl Publisher {
    pub fn new(broadcaster: Mailbox<Broadcaster>) -> Arc<Publisher> {
        Arc::new(Publisher {
            broadcaster,
            waiting: Mutex::new(Vec::new()),
        })
    }

    /// Queues `event`; the first of a batch spawns the send on this arbiter. Called from an actor (on an
    /// arbiter's thread, where tasks can be spawned).
    pub fn publish(self: &Arc<Self>, event: LiveEvent) {
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.push(event);
            waiting.len() == 1
        };
        if first {
            let me = self.clone();
            actix::spawn(async move { me.send() });
        }
    }

    fn send(&self) {
        let events =
            std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner));
        if !events.is_empty() {
            self.broadcaster.do_send(PublishMany(events));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::actors::broadcaster::Subscribe;
    use crate::actors::mailbox::MailboxStats;
    use crate::actors::metrics::{ActorKind, Metrics};
    use crate::actors::persister::PersisterHandle;
    use actix::Actor;

    fn cost(session: &str, usd: f64) -> LiveEvent {
        LiveEvent::Cost {
            session_id: session.into(),
            project_id: "p".into(),
            cost_usd: usd,
            input_tokens: 0,
            output_tokens: 0,
        }
    }

    #[actix_rt::test]
    async fn events_published_together_reach_the_broadcaster_in_one_message_in_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::Store::open(&dir.path().join("db.redb")).unwrap();
        let persister = PersisterHandle::spawn(store.clone(), 64);
        let journal = crate::actors::journal::Journal::new(
            store.journal_open(1 << 20).unwrap(),
            60_000,
            1 << 20,
            crate::messages::wire::now_ms(),
        );
        let (stats, metrics) = (Arc::new(MailboxStats::default()), Metrics::new());
        let (theirs, m) = (stats.clone(), metrics.clone());
        let addr = Broadcaster::new(64, 1 << 20, (journal, persister), theirs, m).start();
        let broadcaster = Mailbox::new(addr, stats.clone(), metrics, ActorKind::Broadcaster);
        let (mut sub, _) = broadcaster
            .addr()
            .send(Subscribe {
                project: None,
                after: None,
                framed: false,
            })
            .await
            .unwrap();
        let handled_before = stats.handled.load(Ordering::Relaxed);
        let publisher = Publisher::new(broadcaster);
        for i in 0..5 {
            publisher.publish(cost(&format!("s{i}"), i as f64));
        }
        for i in 0..5 {
            let event = tokio::time::timeout(Duration::from_secs(5), sub.recv())
                .await
                .expect("delivered")
                .expect("subscribed");
            assert!(
                matches!(&event, LiveEvent::Cost { session_id, .. } if *session_id == format!("s{i}")),
                "event {i} in its place: {event:?}"
            );
        }
        assert_eq!(
            stats.handled.load(Ordering::Relaxed) - handled_before,
            1,
            "five events, one message to the broadcaster"
        );
        // A later event starts a new batch.
        publisher.publish(cost("s5", 5.0));
        let event = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("delivered")
            .expect("subscribed");
        assert!(matches!(event, LiveEvent::Cost { session_id, .. } if session_id == "s5"));
    }
}
