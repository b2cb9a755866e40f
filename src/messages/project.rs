//! What a project actor is told by its sessions: activity, cost and status for its health, and a stop
//! its session's budget or stall asks for. Sessions send these through the handles their project gave
//! them (`actors::session::ProjectLink`), never naming the project's actor.

use actix::prelude::*;

use crate::messages::wire::AgentStatus;

/// What one batch of a session's messages did, as health counts it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// The batch's net effect on the tool in flight (Some(Some(name)): a tool started; Some(None): the
    /// tool finished; None: neither).
    pub tool: Option<Option<String>>,
    /// Whether anything in it moved the work forward (`messages::progress`): only that resets the
    /// stall clock.
    pub progress: bool,
    /// The provider is retrying, and why.
    pub retrying: Option<String>,
    /// The batch's tool calls in order, as (name, input).
    pub calls: Vec<(String, String)>,
}

/// A batch of messages arrived; what it did, as health counts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProjectActivity {
    pub session_id: String,
    pub activity: Activity,
}

/// agent.cost arrived: a token and cost snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionCost {
    pub session_id: String,
    /// The session's model, whose context window sets the pressure.
    pub model: String,
    pub tokens: u64,
    pub cost_usd: f64,
}

/// A session's status changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionStatusChanged {
    pub session_id: String,
    pub status: AgentStatus,
    pub error: Option<String>,
}

/// Why a session is stopped with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltReason {
    Budget,
    Stall,
    /// A stall under `stall.action = "resume"`: once stopped, the session is resumed with a nudge
    /// (the engine resumes it: `Control::resume_stalled`).
    StallResume,
}

/// Stop the session's agent and leave the session in status error with `error`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Halt {
    pub session_id: String,
    pub error: String,
    pub reason: HaltReason,
}
