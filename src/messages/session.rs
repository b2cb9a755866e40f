//! What a session actor is told and asked: by its router (events, flush), its project (prompt, status,
//! detach, stall threshold, its agent's runner and what goes to it), readers (snapshot) and the window
//! budget (trim, flush for room).

use std::time::Duration;

use actix::prelude::*;

use crate::error::CommandError;
use crate::messages::commands::Page;
use crate::messages::gather::ShareReply;
use crate::messages::wire::{AgentSession, AgentStatus, SidecarEvent};
use crate::providers::{ProviderError, Runner, SessionStderr};

/// Sidecar events for this session, in the order they arrived. The session answers through `reply` (its
/// share of the batch's answer, messages/gather.rs); dropped unanswered, the share counts as ignored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub events: Vec<SidecarEvent>,
    pub durable: bool,
    /// Drop raw messages whose id this session saw recently (a retried batch).
    pub dedupe: bool,
    pub reply: ShareReply,
}

/// sendPrompt's half in the session: the user message, and status running.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddUserMessage {
    pub prompt: String,
    /// When the project counted the prompt as activity: the session's stall clock counts it from the same
    /// instant, so the session's stall report never comes after the project's health turned stalled.
    pub at: std::time::Instant,
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

/// The offer of this session (read back for late events) to its project is over: its project attached
/// it (that `Attach` is ahead of this in its mailbox) or none took it. It may stop from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OfferSettled;

/// Its router holds this session's events back: stop now if it still may (finished or let go, and all of
/// it stored); answers whether it stopped. Sent by the router through the session's mailbox after every
/// event it routed there, so none of them is behind it (`MayRetire`).
#[derive(Message)]
#[rtype(result = "Retired")]
pub struct Retire;

/// What a session asked to `Retire` did.
#[derive(actix::MessageResponse, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// Something came since: it stays.
    Stayed,
    /// It stopped, everything it handed out stored. `ceiling`: the seqId ceiling it left in storage for
    /// its router to hold until its project lets go (src/actors/held_ceilings.rs); None when it dropped
    /// its own (no project holds it).
    Stopped { ceiling: Option<u64> },
}

/// Persist everything accepted so far; answers when it is committed.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct FlushNow;

/// The project's stall threshold changed: restart the stall clock's timer with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStallAfter(pub Duration);

/// The runner of this session's agent, from its provider's start or adopt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRunner {
    pub runner: Box<dyn Runner>,
    /// Keep the runner the session already holds, if any: a resume of a session that ran in this
    /// process keeps what its runner learnt.
    pub keep: bool,
}

/// Asked of the session's agent.
#[derive(Message)]
#[rtype(result = "Result<(), ProviderError>")]
pub enum ToAgent {
    /// Whether a follow-up can reach it now (asked before the prompt is stored).
    CanPrompt,
    Prompt(String),
    /// Answers once the agent is gone.
    Stop,
}

/// The agent's stderr lines, if it runs a process.
#[derive(Message)]
#[rtype(result = "Option<SessionStderr>")]
pub struct AgentStderr;

/// Let go of every stored message in the window (those not yet stored stay).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TrimWindow;

/// Write what the window holds unstored now, without waiting for the debounce, so that it can be let go.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushForRoom;

/// Stop now without writing anything more: purge or retention already removed it from storage.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Discard {
    pub reason: StopReason,
}

/// Why an actor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its work is done (a finished session let go by its project and fully persisted).
    Completed,
    Retention,
    Purge,
    Shutdown,
    Failure,
}

impl StopReason {
    /// Every reason, in declaration order (`reason as usize` indexes it).
    pub const ALL: [StopReason; 5] = [
        StopReason::Completed,
        StopReason::Retention,
        StopReason::Purge,
        StopReason::Shutdown,
        StopReason::Failure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Completed => "completed",
            StopReason::Retention => "retention",
            StopReason::Purge => "purge",
            StopReason::Shutdown => "shutdown",
            StopReason::Failure => "failure",
        }
    }
}
