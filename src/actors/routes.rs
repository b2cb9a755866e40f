//! Every router, in arbiter order, and which one a project belongs to (`arbiters::slot`, a hash of the
//! projectId alone). The engine, the control parts and restarts hold this one cheap handle to reach the
//! routers; an ingest batch is split over them here, so the routers work in parallel.

use std::sync::Arc;

use super::arbiters::project_of;
use super::arbiters::slot;
use super::mailbox::Mailbox;
use super::router::Router;
use crate::error::CommandError;
use crate::messages::commands::{Ingest, IngestOutcome};
use crate::messages::gather::gather;
use crate::messages::wire::SidecarEvent;

#[derive(Clone)]
pub struct Routes(Arc<[Mailbox<Router>]>);

impl Routes {
    pub fn new(routers: Vec<Mailbox<Router>>) -> Routes {
        assert!(!routers.is_empty(), "at least one router");
        Routes(routers.into())
    }

    /// The router holding the routes of `project_id`'s sessions.
    pub fn of(&self, project_id: &str) -> &Mailbox<Router> {
        &self.0[slot(project_id, self.0.len())]
    }

    pub fn all(&self) -> &[Mailbox<Router>] {
        &self.0
    }

    /// Delivers a batch: split by router (each event's session's project's), each share in its original
    /// order. The answer comes once every share was delivered, so an error says the same about the rest
    /// of the batch as with one router (docs/API.md, "What an answer means for the batch").
    pub async fn ingest(
        &self,
        events: Vec<SidecarEvent>,
        durable: bool,
        dedupe: bool,
    ) -> Result<IngestOutcome, CommandError> {
        let n = self.0.len();
        let mut shares: Vec<Vec<SidecarEvent>> = vec![Vec::new(); n];
        let slot_of = |e: &SidecarEvent| slot(project_of(e.session_id()), n);
        // A batch for one project (a sidecar's, most often) goes on as it is, not event by event.
        let one = match events.first() {
            _ if n == 1 => Some(0),
            Some(first) => {
                let project = project_of(first.session_id());
                let same = events.iter().all(|e| project_of(e.session_id()) == project);
                same.then(|| slot_of(first))
            }
            None => None,
        };
        match one {
            Some(s) => shares[s] = events,
            None => {
                for event in events {
                    shares[slot_of(&event)].push(event);
                }
            }
        }
        // Each router hands its sessions their shares; the sessions' answers are gathered into one.
        let (gathering, answer) = gather();
        for (router, events) in self.0.iter().zip(shares) {
            if !events.is_empty() {
                router.do_send(Ingest {
                    events,
                    durable,
                    dedupe,
                    answer: gathering.batch(),
                });
            }
        }
        drop(gathering);
        answer.await
    }
}
