//! A session stops by itself only through its router, and a stopped session's seqId ceiling is let go
//! here. `MayRetire`: the router holds the session's events back while it asks the actor to `Retire`
//! behind every event already sent; the answer either stopped it (events held meanwhile bring it back from
//! storage) or it stayed (they go to it). `SessionGone` drops the route of an actor that stopped on its
//! own account; `ReleaseCeiling` drops a ceiling once the project lets its session go
//! (src/actors/held_ceilings.rs).

use actix::prelude::*;

use super::Router;
use crate::actors::mailbox::Mailbox;
use crate::actors::metrics::StopReason;
use crate::actors::session::SessionActor;
use crate::messages::router::{MayRetire, ReleaseCeiling, SessionGone};
use crate::messages::session::{Discard, Retire, Retired};

impl Router {
    /// Drops a stopped session's seqId ceiling in storage (`PersisterHandle::release_seq`).
    fn drop_ceiling(&self, session_id: &str, ceiling: u64) {
        self.links
            .persister
            .release_seq(session_id.to_owned(), ceiling);
    }

    /// The session answered `Retire`: stopped (everything of it is stored), or stayed.
    fn retired(
        &mut self,
        session_id: String,
        addr: Mailbox<SessionActor>,
        answer: Retired,
        ctx: &mut Context<Self>,
    ) {
        let waiting = self.reviving.remove(&session_id).unwrap_or_default();
        if let Retired::Stopped { ceiling } = answer {
            if let Some(ceiling) = self.ceilings.stopped(&session_id, ceiling) {
                self.drop_ceiling(&session_id, ceiling);
            }
            if !waiting.is_empty() {
                // Held back while it stopped: read back from storage, which now holds all of it.
                self.reviving.insert(session_id.clone(), waiting);
                self.read_back(session_id, ctx);
            }
            return;
        }
        // It stayed, so it holds its own ceiling: a let-go asked meanwhile reached it as `Detach`.
        self.ceilings.forget(&session_id);
        if self.purging(&session_id) {
            // Taken by a purge while it was asked: it goes as the purge's sessions go.
            addr.do_send(Discard {
                reason: StopReason::Purge,
            });
            for w in waiting {
                w.settle(None);
            }
            return;
        }
        for w in waiting {
            w.settle(Some(&addr));
        }
        self.sessions.insert(session_id.into(), addr);
    }
}

impl Handler<SessionGone> for Router {
    type Result = ();

    fn handle(&mut self, msg: SessionGone, _: &mut Context<Self>) {
        if self
            .sessions
            .get(msg.session_id.as_str())
            .is_some_and(|a| a.instance() == msg.instance)
        {
            self.sessions.remove(msg.session_id.as_str());
            crate::actors::sparse::shrink_when_sparse(&mut self.sessions);
        }
    }
}

impl Handler<MayRetire> for Router {
    type Result = ();

    fn handle(&mut self, msg: MayRetire, ctx: &mut Context<Self>) {
        let routed = self
            .sessions
            .get(msg.session_id.as_str())
            .is_some_and(|a| a.instance() == msg.instance);
        if !routed {
            // No event reaches it through this router: it may stop as it asks, and nothing here holds a
            // ceiling for an actor it does not route.
            let asking = msg.retire.send(Retire);
            let session_id = msg.session_id;
            ctx.spawn(asking.into_actor(self).map(move |answer, act, _| {
                if let Ok(Retired::Stopped {
                    ceiling: Some(ceiling),
                }) = answer
                {
                    act.drop_ceiling(&session_id, ceiling);
                }
            }));
            return;
        }
        let Some(addr) = self.sessions.remove(msg.session_id.as_str()) else {
            return;
        };
        crate::actors::sparse::shrink_when_sparse(&mut self.sessions);
        // Events for it wait here until it has answered; `Retire` is behind every one sent before.
        self.reviving.insert(msg.session_id.clone(), Vec::new());
        let asking = msg.retire.send(Retire);
        let session_id = msg.session_id;
        ctx.spawn(
            // An actor gone without answering left its ceiling in storage: its next actor skips past it.
            async move { asking.await.unwrap_or(Retired::Stopped { ceiling: None }) }
                .into_actor(self)
                .map(move |answer, act, ctx| act.retired(session_id, addr, answer, ctx)),
        );
    }
}

impl Handler<ReleaseCeiling> for Router {
    type Result = ();

    fn handle(&mut self, msg: ReleaseCeiling, _: &mut Context<Self>) {
        // Waiting for its `Retire` answer (or a read back, which takes the ceiling over anyway).
        let retiring = self.reviving.contains_key(&msg.session_id);
        if let Some(ceiling) = self.ceilings.release(&msg.session_id, retiring) {
            self.drop_ceiling(&msg.session_id, ceiling);
        }
    }
}
