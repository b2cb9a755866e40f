//! Live events: subscriptions (all or one project's), and what a client that lagged or reconnected
//! missed, from the broadcaster's journal.

use super::Engine;
use crate::actors::broadcaster::Subscription;
use crate::actors::broadcaster::{ReplayAfter, Subscribe};
use crate::actors::journal::{EventId, LastEventId, Replay};
use crate::error::CommandError;
use crate::messages::validate;

impl Engine {
    /// Live events, all or one project's, through a bounded buffer, for a reader in this process: message
    /// batches come without an SSE frame (`Live::frame` is `None` for them), so none is made for it.
    pub async fn subscribe(
        &self,
        project_id: Option<String>,
    ) -> Result<Subscription, CommandError> {
        Ok(self.subscription(project_id, None, false).await?.0)
    }

    /// What a lagging subscriber missed since `after`, and the last id published (src/actors/journal.rs).
    pub async fn replay_after(
        &self,
        project_id: Option<String>,
        after: EventId,
    ) -> Result<(Replay, EventId), CommandError> {
        Ok(self
            .inner
            .broadcaster
            .addr()
            .send(ReplayAfter {
                project: project_id,
                after,
            })
            .await?)
    }

    /// Live events for an SSE stream, every one with its frame, and what a client whose last event was
    /// `after` missed (src/actors/journal.rs).
    pub async fn subscribe_after(
        &self,
        project_id: Option<String>,
        after: Option<LastEventId>,
    ) -> Result<(Subscription, Option<Replay>), CommandError> {
        self.subscription(project_id, after, true).await
    }

    async fn subscription(
        &self,
        project_id: Option<String>,
        after: Option<LastEventId>,
        framed: bool,
    ) -> Result<(Subscription, Option<Replay>), CommandError> {
        if let Some(p) = &project_id {
            validate::project_id(p)?;
        }
        Ok(self
            .inner
            .broadcaster
            .addr()
            .send(Subscribe {
                project: project_id,
                after,
                framed,
            })
            .await?)
    }
}
