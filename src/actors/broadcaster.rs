//! Live events to subscribers (the SSE streams). Each event is framed once, here, and every subscriber gets
//! the same shared bytes (`Bytes` is reference-counted): 200 idle subscribers of a 12 MB batch hold one
//! copy of it, not 200. A message batch is framed only when a subscriber that sends frames (an SSE
//! stream) takes it: in-process subscribers read the events themselves, and framing every message's
//! content as JSON for nobody was the largest single cost of ingest. Each subscriber has its own buffer,
//! bounded both in events (`limits.subscriber_buffer`) and in the bytes waiting in it
//! (`limits.subscriber_buffer_bytes`; an unframed batch counts its messages' text): publishing never waits, so a slow subscriber cannot block a session
//! actor nor grow memory without bound. When a subscriber's buffer is full its events are dropped and
//! counted, and the next event it can take is
//! preceded by `LiveEvent::Lagged`, naming the sessions whose messages it missed and the last seqId it was
//! sent of each, so the stream can read the gap back from the engine. A notice still owed when the burst
//! ends is retried on a short interval, so a subscriber that fell behind learns of it without waiting for
//! another event.
//!
//! Every event is numbered and kept in the journal (src/actors/journal.rs) before it goes out, so a client
//! that reconnects with the last id it saw is sent what it missed (`Subscribe::after`): the replay and the
//! subscription are made in one step here, so nothing falls between them and nothing comes twice. The
//! journal's writes are handed to the persister in batches, on a short interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::journal::{Entry, EventId, Journal, LastEventId, Replay};
use super::mailbox::{MailboxStats, Metered};
use super::metrics::{ActorKind, Metrics, StopReason};
use super::persister::{PersisterHandle, TryWriteError};
use crate::error::CommandError;
use crate::messages::commands::LiveEvent;
use crate::messages::sse;
use crate::messages::wire::now_ms;
use crate::storage::WriteOp;

/// One live event as a subscriber receives it: the event, and its SSE frame shared with every other
/// subscriber (`None` for a lag notice, which the stream frames itself).
#[derive(Debug, Clone)]
pub struct Live {
    pub event: LiveEvent,
    pub frame: Option<Bytes>,
    /// Its place in the journal (a lag notice: the last event published before it).
    pub id: EventId,
}

/// The receiving end of a subscription. Dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<Live>,
    /// Bytes of the frames waiting in `rx`, shared with the broadcaster.
    queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next live event, with its frame if this subscription asked for frames (`Subscribe::framed`;
    /// every event but a message batch has one either way).
    pub async fn next(&mut self) -> Option<Live> {
        let live = self.rx.recv().await?;
        self.queued.fetch_sub(weight(&live), Ordering::Relaxed);
        Some(live)
    }

    /// The next live event (for in-process subscribers, which do not send frames).
    pub async fn recv(&mut self) -> Option<LiveEvent> {
        self.next().await.map(|live| live.event)
    }
}

struct Subscriber {
    project: Option<String>,
    /// Sends SSE frames: message batches are framed for it.
    framed: bool,
    tx: mpsc::Sender<Live>,
    /// Bytes of the frames waiting in its buffer.
    queued: Arc<AtomicUsize>,
    /// Events dropped since the last one delivered.
    missed: u64,
    /// For each session whose messages were dropped: the last seqId this subscriber was sent.
    gaps: HashMap<String, u64>,
    /// Last seqId delivered per session, so a gap knows where it starts.
    delivered: HashMap<String, u64>,
    /// The journal position of the last event delivered (or of the subscription): where a lag notice
    /// says the missed events start.
    last_sent: EventId,
}

/// The broadcaster actor.
pub struct Broadcaster {
    subscribers: Vec<Subscriber>,
    journal: Journal,
    persister: PersisterHandle,
    /// Journal writes not yet handed to the persister.
    unsaved: Vec<WriteOp>,
    buffer: usize,
    buffer_bytes: usize,
    stats: Arc<MailboxStats>,
    metrics: Arc<Metrics>,
}

impl Broadcaster {
    /// `buffer` and `buffer_bytes`: how many events, and how many bytes of frames, one subscriber may have
    /// waiting before it lags.
    pub fn new(
        buffer: usize,
        buffer_bytes: usize,
        journal: (Journal, PersisterHandle),
        stats: Arc<MailboxStats>,
        metrics: Arc<Metrics>,
    ) -> Broadcaster {
        Broadcaster {
            subscribers: Vec::new(),
            journal: journal.0,
            persister: journal.1,
            unsaved: Vec::new(),
            buffer: buffer.max(2),
            buffer_bytes,
            stats,
            metrics,
        }
    }

    /// Hands the journal's pending writes to the persister; keeps them for the next try when its queue is
    /// full, and gives up on them (the run is then not marked clean) past `MAX_UNSAVED`.
    fn save_journal(&mut self) {
        if let Some(prune) = self.journal.evict(now_ms()) {
            self.unsaved.push(prune);
        }
        if self.unsaved.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.unsaved);
        match self.persister.try_write_soon(ops) {
            Ok(_) => {}
            Err(TryWriteError::Full(ops)) if ops.len() < MAX_UNSAVED => self.unsaved = ops,
            Err(_) => self.journal.lost_one(),
        }
    }

    fn count_subscribers(&self) {
        self.metrics
            .sse_subscribers
            .set(self.subscribers.len() as i64);
    }
}

impl Actor for Broadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.actor_started(ActorKind::Broadcaster);
        ctx.run_interval(JOURNAL_SAVE, |act, _| act.save_journal());
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

crate::instrument!(Broadcaster: Publish, PublishMany, SaveJournal);

/// What a subscriber that lagged after `after` missed, and the last id published so far (everything up to
/// it is in the answer or was delivered; later events come through the subscription).
#[derive(Message)]
#[rtype(result = "(Replay, EventId)")]
pub struct ReplayAfter {
    pub project: Option<String>,
    pub after: EventId,
}

impl Handler<ReplayAfter> for Broadcaster {
    type Result = MessageResult<ReplayAfter>;

    fn handle(&mut self, msg: ReplayAfter, _: &mut Context<Self>) -> Self::Result {
        let replay = self
            .journal
            .replay(&LastEventId::Event(msg.after), msg.project.as_deref());
        MessageResult((replay, self.journal.last_id()))
    }
}

/// A new subscriber; with `after`, it is first sent what it missed since that event (the replay).
#[derive(Message)]
#[rtype(result = "(Subscription, Option<Replay>)")]
pub struct Subscribe {
    pub project: Option<String>,
    pub after: Option<LastEventId>,
    /// Whether the subscriber sends each event's SSE frame (an HTTP stream) or reads the events in
    /// process; message batches are framed only for the first kind.
    pub framed: bool,
}

/// Stores every journal entry so far; answers whether the journal of this run is complete (a shutdown then
/// marks the run clean).
#[derive(Message)]
#[rtype(result = "Result<bool, CommandError>")]
pub struct SaveJournal;

impl Handler<SaveJournal> for Broadcaster {
    type Result = ResponseFuture<Result<bool, CommandError>>;

    fn handle(&mut self, _: SaveJournal, _: &mut Context<Self>) -> Self::Result {
        let ops = std::mem::take(&mut self.unsaved);
        let complete = self.journal.complete();
        let persister = self.persister.clone();
        Box::pin(async move {
            persister.write(ops).await?;
            Ok(complete)
        })
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub LiveEvent);

/// Events of one arbiter's actors, in the order they were published (src/actors/publisher.rs).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishMany(pub Vec<LiveEvent>);

impl Handler<Subscribe> for Broadcaster {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let replay = msg
            .after
            .map(|after| self.journal.replay(&after, msg.project.as_deref()));
        let (tx, rx) = mpsc::channel(self.buffer);
        let queued = Arc::new(AtomicUsize::new(0));
        self.subscribers.push(Subscriber {
            project: msg.project,
            framed: msg.framed,
            tx,
            queued: queued.clone(),
            missed: 0,
            gaps: HashMap::new(),
            delivered: HashMap::new(),
            last_sent: self.journal.last_id(),
        });
        self.count_subscribers();
        MessageResult((Subscription { rx, queued }, replay))
    }
}

impl Handler<Publish> for Broadcaster {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _: &mut Context<Self>) {
        self.publish(event);
        self.count_subscribers();
    }
}

impl Handler<PublishMany> for Broadcaster {
    type Result = ();

    fn handle(&mut self, PublishMany(events): PublishMany, _: &mut Context<Self>) {
        for event in events {
            self.publish(event);
        }
        self.count_subscribers();
    }
}

impl Broadcaster {
    /// Numbers and journals one event and hands it to every subscriber that wants it.
    fn publish(&mut self, event: LiveEvent) {
        let project = event.project_id();
        let id = self.journal.next_id();
        let at = now_ms();
        // Messages are journalled as a reference (the session holds them); other events as their frame,
        // which is also what every subscriber is sent.
        let framed = match &event {
            LiveEvent::Messages {
                session_id,
                project_id,
                messages,
            } => {
                if let Some(last) = messages.last() {
                    let op =
                        self.journal
                            .push_messages(id, at, project_id, session_id, last.seq_id);
                    self.unsaved.push(op);
                }
                None
            }
            other => {
                let frame = sse::other(other, Some(&id.to_string()));
                if let (Some(frame), Some(project)) = (&frame, project) {
                    let op = self.journal.push(Entry::Frame {
                        id,
                        at,
                        project: project.to_owned(),
                        frame: frame.clone(),
                    });
                    self.unsaved.push(op);
                }
                frame
            }
        };
        if self.unsaved.len() >= SAVE_AT {
            self.save_journal();
        }
        // Framed on first use, once for every subscriber that sends frames; the others share it unframed.
        let (mut with_frame, mut without): (Option<Live>, Option<Live>) = (None, None);
        let budget = self.buffer_bytes;
        self.subscribers.retain_mut(|sub| {
            if sub.tx.is_closed() {
                return false;
            }
            if let (Some(want), Some(got)) = (&sub.project, project) {
                if want != got {
                    return true;
                }
            }
            let live = if sub.framed {
                with_frame.get_or_insert_with(|| Live {
                    frame: framed.clone().or_else(|| sse::of(&event)),
                    event: event.clone(),
                    id,
                })
            } else {
                without.get_or_insert_with(|| Live {
                    frame: framed.clone(),
                    event: event.clone(),
                    id,
                })
            };
            if !deliver(sub, live, budget) {
                self.metrics.sse_lagged.inc();
            }
            true
        });
    }
}

/// How often lag notices still owed are retried.
const LAG_RETRY: Duration = Duration::from_millis(100);

/// How often the journal's writes are handed to the persister, and how many make a batch go at once.
const JOURNAL_SAVE: Duration = Duration::from_millis(20);
const SAVE_AT: usize = 256;
/// Journal writes kept while the persister's queue is full; past this they are given up.
const MAX_UNSAVED: usize = 65_536;

/// Sends the subscriber its lag notice; needs a free slot.
fn notify_lag(sub: &mut Subscriber) {
    let notice = Live {
        id: sub.last_sent,
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

/// What an event counts against a subscriber's byte budget: its frame, or for a message batch sent
/// unframed the text of its messages (what its frame would mostly be); a lag notice counts nothing.
fn weight(live: &Live) -> usize {
    match (&live.frame, &live.event) {
        (Some(frame), _) => frame.len(),
        (None, LiveEvent::Messages { messages, .. }) => messages
            .iter()
            .map(|m| m.content.len() + m.tool_input().map_or(0, str::len) + 64)
            .sum(),
        (None, _) => 0,
    }
}

/// Sends one event to one subscriber, first telling it what it missed if it had lagged. Answers whether
/// the event was delivered (false: dropped and counted for the next lag notice).
fn deliver(sub: &mut Subscriber, live: &Live, budget: usize) -> bool {
    let event = &live.event;
    let len = weight(live);
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
            sub.last_sent = live.id;
            if let LiveEvent::Messages {
                session_id,
                messages,
                ..
            } = event
            {
                if let Some(last) = messages.last() {
                    // A session already known costs no copy of its id.
                    match sub.delivered.get_mut(session_id) {
                        Some(seq) => *seq = last.seq_id,
                        None => {
                            sub.delivered.insert(session_id.clone(), last.seq_id);
                        }
                    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::messages::wire::{AgentMessage, MsgRole};

    fn batch(session: &str, project: &str) -> LiveEvent {
        let message = AgentMessage {
            id: "m1".into(),
            seq_id: 1,
            role: MsgRole::Assistant,
            content: "hello".into(),
            tool: None,
            timestamp: 0,
        };
        LiveEvent::Messages {
            session_id: session.into(),
            project_id: project.into(),
            messages: vec![Arc::new(message)].into(),
        }
    }

    async fn subscribe(
        to: &Addr<Broadcaster>,
        project: Option<&str>,
        framed: bool,
    ) -> Subscription {
        let subscribe = Subscribe {
            project: project.map(str::to_owned),
            after: None,
            framed,
        };
        to.send(subscribe).await.expect("broadcaster running").0
    }

    async fn next(sub: &mut Subscription) -> Live {
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("delivered")
            .expect("subscribed")
    }

    /// Every subscriber that wants an event gets it whole, framed only for those that send frames, and a
    /// subscriber of another project gets nothing.
    #[actix_rt::test]
    async fn each_subscriber_that_wants_an_event_gets_it_whole_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::Store::open(&dir.path().join("db.redb")).unwrap();
        let persister = PersisterHandle::spawn(store.clone(), 64);
        let journal = Journal::new(
            store.journal_open(1 << 20).unwrap(),
            60_000,
            1 << 20,
            now_ms(),
        );
        let stats = Arc::new(MailboxStats::default());
        let addr =
            Broadcaster::new(64, 1 << 20, (journal, persister), stats, Metrics::new()).start();
        let mut all = subscribe(&addr, None, false).await;
        let mut p = subscribe(&addr, Some("p"), false).await;
        let mut q = subscribe(&addr, Some("q"), false).await;
        let mut p_framed = subscribe(&addr, Some("p"), true).await;
        let mut all_framed = subscribe(&addr, None, true).await;
        for (session, project) in [("s1", "p"), ("s2", "q"), ("s3", "p")] {
            addr.send(Publish(batch(session, project))).await.unwrap();
        }
        let expect = [
            (&mut all, false, vec!["s1", "s2", "s3"]),
            (&mut p, false, vec!["s1", "s3"]),
            (&mut q, false, vec!["s2"]),
            (&mut p_framed, true, vec!["s1", "s3"]),
            (&mut all_framed, true, vec!["s1", "s2", "s3"]),
        ];
        for (sub, framed, sessions) in expect {
            for want in sessions {
                let live = next(sub).await;
                let LiveEvent::Messages {
                    session_id,
                    messages,
                    ..
                } = &live.event
                else {
                    panic!("a message batch: {:?}", live.event);
                };
                assert_eq!(session_id, want);
                assert_eq!(messages[0].content, "hello");
                assert_eq!(live.frame.is_some(), framed, "framed only for SSE streams");
            }
        }
    }
}
