//! What a session actor is told and asked: by the supervisor (events, flush, discard), by its project
//! (prompt, status, detach/attach, stall threshold) and by readers (snapshot).

use std::time::Duration;

use actix::prelude::*;

use super::super::metrics::StopReason;
use super::ProjectLink;
use crate::error::CommandError;
use crate::messages::commands::Page;
use crate::messages::wire::{AgentSession, AgentStatus, SidecarEvent};

/// Sidecar events for this session, in the order they arrived.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct Deliver {
    pub events: Vec<SidecarEvent>,
    pub durable: bool,
    /// Drop raw messages whose id this session saw recently (a retried batch).
    pub dedupe: bool,
}

/// sendPrompt's half in the session: the user message, and status running.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddUserMessage {
    pub prompt: String,
}

/// A status decided by the engine rather than the agent (stop → done, failed start → error).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    pub status: AgentStatus,
    pub error: Option<String>,
}

/// The session as getSession shows it, with the messages in memory after `page.after_seq`.
#[derive(Message)]
#[rtype(result = "SessionView")]
pub struct Snapshot {
    pub page: Page,
}

#[derive(actix::MessageResponse)]
pub struct SessionView {
    /// `messages` holds the in-memory messages after the page start (not yet limited).
    pub session: AgentSession,
    /// The lowest seqId held in memory; older ones are in storage.
    pub oldest_in_memory: u64,
}

/// The project let go of this session (cleanup grace or clear): it may stop once all is persisted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach;

/// Stop now without writing anything more: purge or retention already removed it from storage.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Discard {
    pub reason: StopReason,
}

/// Persist everything accepted so far; answers when it is committed.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct FlushNow;

/// The project's stall threshold changed: restart the stall clock's timer with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStallAfter(pub Duration);

/// A project took this session back (loadLastSession of a session still in memory): its link to tell.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub ProjectLink);
