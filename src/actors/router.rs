//! One router per arbiter: the directory of the projects placed on that arbiter (by a hash of the
//! projectId, `arbiters::slot`; router/directory.rs), their purges (router/purge.rs), the sessionId →
//! session actor routes of their sessions, and the ingest path for them. The engine splits a batch
//! by router and providers' event sinks are bound to their project's router, so no single actor carries
//! every event: the routers work in parallel, each next to the sessions it feeds. The routing key is the
//! projectId alone (a session id is `<projectId>-<ms>`), which is also how a cluster partitions.
//!
//! Events for a session no actor holds (it finished and was stored, its project let it go, or the process
//! restarted) bring it back from storage, as the original kept applying them. The read runs on the
//! blocking pool while the router goes on routing; batches for that session wait for it in arrival order,
//! so no second actor can race the first and nothing is applied out of order.
//!
//! A session stops by itself only through its router (`MayRetire`): the router holds that session's
//! events back while it asks the actor to `Retire` behind every event already sent, then either brings it
//! back for the events held meanwhile or, if it stayed, routes them to it. So no event reaches an actor
//! that has stopped. A session its project still holds leaves its seqId ceiling with the router as it
//! stops (`Retired::Stopped`); the router drops it when the project lets go (`ReleaseCeiling`), or hands
//! it to the session's next actor, which then continues right after the last stored seqId
//! (src/actors/held_ceilings.rs).

mod admin;
mod directory;
mod purge;
mod retire;

pub use self::admin::{top_entry, FindSession};
pub use self::directory::{FindProject, Found, Project, StartIn};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::arbiters::project_of;
use super::held_ceilings::HeldCeilings;
use super::mailbox::{Mailbox, MailboxStats, Metered};
use super::metrics::{ActorKind, Metrics, StopReason};
use super::project::ProjectLinks;
use super::session::{SessionActor, SessionInit, SessionLinks};
use crate::error::CommandError;
use crate::messages::commands::Ingest;
use crate::messages::gather::Tally;
use crate::messages::router::{FlushSessions, ForgetSessions, ProjectsHealth};
use crate::messages::router::{MayRetire, ProjectIdle, ReleaseCeiling, SessionGone};
use crate::messages::router::{PurgeProject, PurgeSession, RetentionEvicted};
use crate::messages::router::{SummarizeProjects, TopActors};
use crate::messages::session::{Deliver, OfferSettled};
use crate::messages::wire::{AgentMessage, SidecarEvent};
use crate::storage::SessionRecord;

/// What waits for a session being read back from storage (or retiring): a share of a batch, or a
/// project that wants the session's actor (`BringBack`).
enum Waiting {
    /// A share of a batch (its answer rides with it: dropped, the share counts as ignored).
    Share(Deliver),
    Actor(oneshot::Sender<Option<Mailbox<SessionActor>>>),
}

impl Waiting {
    /// Hands the waiter to `addr` (None: the session is not in storage), in arrival order.
    fn settle(self, addr: Option<&Mailbox<SessionActor>>) {
        match (self, addr) {
            (Waiting::Share(deliver), Some(addr)) => addr.do_send(deliver),
            // Its reply, dropped unanswered, counts the share as ignored.
            (Waiting::Share(_), None) => {}
            (Waiting::Actor(reply), addr) => {
                let _ = reply.send(addr.cloned());
            }
        }
    }
}

pub struct Router {
    /// What a session read back here needs (no project: a sleeping project let go of it anyway).
    links: SessionLinks,
    /// What every project actor of this arbiter shares: one allocation, not one copy a project.
    project_links: Arc<ProjectLinks>,
    /// This arbiter's projects: their actors and where each stands (router/directory.rs).
    projects: HashMap<String, directory::Slot>,
    /// This arbiter's projects that stopped with no current session in this process (router/directory.rs).
    let_go: directory::LetGo,
    sessions: HashMap<Arc<str>, Mailbox<SessionActor>>,
    /// Sessions being read back from storage, or asked to retire, with what waits for them in arrival
    /// order.
    reviving: HashMap<String, Vec<Waiting>>,
    /// Sessions and projects whose purge is in flight: nothing of them comes back (no route, no project
    /// actor for a read).
    purging: HashSet<String>,
    /// The seqId ceilings stopped sessions left here until their project lets go.
    ceilings: HeldCeilings,
    stats: Arc<MailboxStats>,
    /// The metrics, as each batch's gathered answer counts into them.
    tally: Arc<dyn Tally>,
}

impl Router {
    /// `links`: for the sessions it reads back; `project_links`: for the projects it starts.
    pub fn new(
        links: SessionLinks,
        project_links: Arc<ProjectLinks>,
        stats: Arc<MailboxStats>,
    ) -> Router {
        let tally = links.metrics.clone();
        Router {
            tally,
            links,
            project_links,
            projects: HashMap::new(),
            let_go: Default::default(),
            sessions: HashMap::new(),
            reviving: HashMap::new(),
            purging: HashSet::new(),
            ceilings: HeldCeilings::default(),
            stats,
        }
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.links.metrics
    }

    fn purging(&self, session_id: &str) -> bool {
        self.purging.contains(session_id) || self.purging.contains(project_of(session_id))
    }

    /// Reads `session_id` back from storage on the blocking pool; batches wait in `reviving`.
    fn read_back(&mut self, session_id: String, ctx: &mut Context<Self>) {
        let store = self.project_links.store.clone();
        let window = self.links.config.limits.messages_in_memory as u64;
        let id = session_id.clone();
        let read = async move {
            tokio::task::spawn_blocking(move || -> Result<_, CommandError> {
                let Some(record) = store.session(&id)? else {
                    return Ok(None);
                };
                let after = record.last_seq.saturating_sub(window);
                let recent = store.messages(&id, after, None, None)?;
                Ok(Some((record, recent)))
            })
            .await
            .map_err(|e| CommandError::Storage(e.to_string()))?
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |found, act, _| act.read_done(session_id, found)),
        );
    }

    fn read_done(
        &mut self,
        session_id: String,
        found: Result<Option<(SessionRecord, Vec<AgentMessage>)>, CommandError>,
    ) {
        let waiting = self.reviving.remove(&session_id).unwrap_or_default();
        // Whatever comes of the read, the ceiling its last actor left is no longer held here: the actor
        // brought back takes it over (a registered or purged one has its own, a deleted session none).
        let ceiling = self.ceilings.adopt(&session_id);
        // A project may have registered the session meanwhile (a restore), or a purge begun.
        let addr = match self.sessions.get(session_id.as_str()) {
            Some(addr) => Some(addr.clone()),
            None if self.purging(&session_id) => None,
            None => match found {
                Ok(Some((record, recent))) => {
                    // A project's command waiting for it (`BringBack`) attaches it itself.
                    let offer = !waiting.iter().any(|w| matches!(w, Waiting::Actor(_)));
                    Some(self.revive(record, recent, ceiling, offer))
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, session_id, "cannot read a session back for late events");
                    None
                }
            },
        };
        // Sent in arrival order, so the session applies them in that order.
        for w in waiting {
            w.settle(addr.as_ref());
        }
    }

    /// Waits for the session (read back from storage, or retiring), reading it back if nothing did yet.
    fn wait_for(&mut self, session_id: &str, waiting: Waiting, ctx: &mut Context<Self>) {
        match self.reviving.get_mut(session_id) {
            Some(queue) => queue.push(waiting),
            None => {
                self.reviving.insert(session_id.to_owned(), vec![waiting]);
                self.read_back(session_id.to_owned(), ctx);
            }
        }
    }

    /// Starts a stored session's actor again, detached from its project: it applies what it is sent and
    /// stops once that is stored (unless an event makes it run again). With `offer`, its project is told
    /// (`Revived`) if it is in memory.
    fn revive(
        &mut self,
        record: SessionRecord,
        recent: Vec<AgentMessage>,
        ceiling: Option<u64>,
        offer: bool,
    ) -> Mailbox<SessionActor> {
        let init = SessionInit {
            recent: recent.into_iter().map(Arc::new).collect(),
            persisted: true,
            stall_after: self.links.config.timers.stall_after,
            detached: true,
            start: None,
            ceiling,
            offered: offer,
            record,
        };
        let session_id = init.record.session_id.clone();
        let stats = Arc::new(MailboxStats::default());
        // On this router's own arbiter, which is its project's.
        let addr = SessionActor::new(init, self.links.clone(), stats.clone()).start();
        self.metrics()
            .actor_restarts
            .with_label_values(&[ActorKind::Session.as_str()])
            .inc();
        let mailbox = Mailbox::new(addr, stats, self.metrics().clone(), ActorKind::Session);
        self.sessions
            .insert(session_id.as_str().into(), mailbox.clone());
        if offer {
            // Its project may still be in memory (in its cleanup grace, say): it attaches the session, so
            // what the late events change reaches the project's health as it did before the actor let go.
            self.offer(Revived {
                session_id,
                offer: Offer(mailbox.clone()),
            });
        }
        mailbox
    }
}

/// A batch's events per session, sessions in the order they first appear, each one's events in their
/// order; a group's session is its first event's. A batch most often names one session (a sidecar's, or
/// one session's share of a load): that batch is handed on as it is, without a copy or a look-up per event.
/// Otherwise each event's group is found by its session id as the batch holds it, and the events are then
/// moved into their groups: no id is copied.
fn group_by_session(events: Vec<SidecarEvent>) -> Vec<Vec<SidecarEvent>> {
    if let Some(first) = events.first() {
        let id = first.session_id();
        if events.iter().all(|e| e.session_id() == id) {
            return vec![events];
        }
    }
    let mut sizes: Vec<usize> = Vec::new();
    let group_of: Vec<usize> = {
        let mut slots: HashMap<&str, usize, foldhash::fast::RandomState> = HashMap::default();
        events
            .iter()
            .map(|event| {
                let group = *slots.entry(event.session_id()).or_insert(sizes.len());
                if group == sizes.len() {
                    sizes.push(0);
                }
                sizes[group] += 1;
                group
            })
            .collect()
    };
    let mut groups: Vec<Vec<SidecarEvent>> = sizes.into_iter().map(Vec::with_capacity).collect();
    for (event, group) in events.into_iter().zip(group_of) {
        groups[group].push(event);
    }
    groups
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.metrics().actor_started(ActorKind::Router);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.metrics()
            .actor_stopped(ActorKind::Router, StopReason::Shutdown);
    }
}

impl Metered for Router {
    const KIND: ActorKind = ActorKind::Router;

    fn meter(&self) -> (&MailboxStats, &Metrics) {
        (&self.stats, &self.links.metrics)
    }
}

crate::instrument!(
    Router: Ingest,
    StartIn,
    FindProject,
    Project,
    ProjectIdle,
    RegisterSession,
    SessionGone,
    MayRetire,
    ReleaseCeiling,
    BringBack,
    FindSession,
    PurgeSession,
    PurgeProject,
    RetentionEvicted,
    ForgetSessions,
    FlushSessions,
    SummarizeProjects,
    ProjectsHealth,
    TopActors,
);

/// Hands each session its share; the sessions answer the batch's sender themselves (messages/gather.rs),
/// so a batch costs the router no task and no answer of its own.
impl Handler<Ingest> for Router {
    type Result = ();

    fn handle(&mut self, msg: Ingest, ctx: &mut Context<Self>) {
        let batch = msg.answer.open(&self.tally);
        // One Deliver per session per batch, events in their original order within each session.
        let (durable, dedupe) = (msg.durable, msg.dedupe);
        for events in group_by_session(msg.events) {
            let id = events[0].session_id();
            if self.purging(id) {
                batch.ignored(events.len());
                continue;
            }
            // Counted per kind here and added to the counters once per batch, when it is answered.
            let mut by_kind = [0; SidecarEvent::KINDS.len()];
            for e in &events {
                by_kind[e.kind_index()] += 1;
            }
            let reply = batch.share(events.len(), by_kind);
            match self.sessions.get(id) {
                Some(addr) => addr.do_send(Deliver {
                    events,
                    durable,
                    dedupe,
                    reply,
                }),
                None => {
                    // A session to read back first (rare): its id is kept apart from the events it waits with.
                    let id = id.to_owned();
                    let deliver = Deliver {
                        events,
                        durable,
                        dedupe,
                        reply,
                    };
                    self.wait_for(&id, Waiting::Share(deliver), ctx);
                }
            }
        }
    }
}

/// A project started or restored a session actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterSession {
    /// Shared with its project's `Current`: the route's key is no copy of its own.
    pub session_id: Arc<str>,
    pub addr: Mailbox<SessionActor>,
}

impl Handler<RegisterSession> for Router {
    type Result = ();

    fn handle(&mut self, msg: RegisterSession, _: &mut Context<Self>) {
        // A restored actor reads storage's ceiling itself and continues above it.
        self.ceilings.forget(&msg.session_id);
        self.sessions.insert(msg.session_id, msg.addr);
    }
}

/// The actor of a session, brought back from storage if it is not in memory (a project's command needs
/// it: a follow-up, a resume). None: storage does not hold the session.
#[derive(Message)]
#[rtype(result = "Option<Mailbox<SessionActor>>")]
pub struct BringBack {
    pub session_id: String,
}

impl Handler<BringBack> for Router {
    type Result = ResponseFuture<Option<Mailbox<SessionActor>>>;

    fn handle(&mut self, msg: BringBack, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(addr) = self
            .sessions
            .get(msg.session_id.as_str())
            .filter(|a| a.connected())
        {
            let addr = addr.clone();
            return Box::pin(async move { Some(addr) });
        }
        if self.purging(&msg.session_id) {
            return Box::pin(async { None });
        }
        let (reply, answer) = oneshot::channel();
        self.wait_for(&msg.session_id, Waiting::Actor(reply), ctx);
        Box::pin(async move { answer.await.ok().flatten() })
    }
}

/// A session's actor was read back from storage, detached, for late events: its router hands it to its
/// project if that is in memory, and the project attaches it if it is its current session and holds no
/// live actor of it. Never creates a project.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revived {
    pub session_id: String,
    pub offer: Offer,
}

/// The session a `Revived` offers. However the offer ends (its project attached the session, no project
/// in memory took it, a mailbox closed under it), dropping it tells the session (`OfferSettled`), behind
/// the project's `Attach` when there was one; until then the session does not stop. Otherwise it could
/// store its late events and stop before the `Attach` reached it, and its project's health would miss
/// what they changed.
pub struct Offer(Mailbox<SessionActor>);

impl Offer {
    pub fn session(&self) -> &Mailbox<SessionActor> {
        &self.0
    }
}

impl Drop for Offer {
    fn drop(&mut self) {
        self.0.do_send(OfferSettled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::wire::StatusPayload;

    fn status(session: &str, n: usize) -> SidecarEvent {
        SidecarEvent::Status(StatusPayload {
            session_id: session.to_owned(),
            status: n.to_string(),
            error: None,
        })
    }

    fn groups_of(events: Vec<SidecarEvent>) -> Vec<(String, Vec<String>)> {
        group_by_session(events)
            .into_iter()
            .map(|evs| {
                let id = evs[0].session_id().to_owned();
                let order = evs
                    .into_iter()
                    .map(|e| match e {
                        SidecarEvent::Status(p) => p.status,
                        _ => unreachable!(),
                    })
                    .collect();
                (id, order)
            })
            .collect()
    }

    #[test]
    fn a_batch_is_grouped_by_session_in_first_appearance_and_event_order() {
        let events = vec![
            status("a-1", 0),
            status("b-1", 1),
            status("a-1", 2),
            status("c-1", 3),
        ];
        assert_eq!(
            groups_of(events),
            [
                ("a-1".to_owned(), vec!["0".to_owned(), "2".to_owned()]),
                ("b-1".to_owned(), vec!["1".to_owned()]),
                ("c-1".to_owned(), vec!["3".to_owned()]),
            ]
        );
    }

    #[test]
    fn a_batch_naming_many_sessions_is_grouped_the_same_way() {
        // Many sessions, interleaved: each keeps its events in order, sessions in first appearance.
        let events: Vec<_> = (0..200)
            .map(|i| status(&format!("p{}-1", i % 40), i))
            .collect();
        let groups = groups_of(events);
        assert_eq!(groups.len(), 40);
        for (g, (id, order)) in groups.iter().enumerate() {
            assert_eq!(id, &format!("p{g}-1"));
            let want: Vec<String> = (0..5).map(|k| (g + 40 * k).to_string()).collect();
            assert_eq!(order, &want);
        }
    }
}
