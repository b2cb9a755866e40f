//! What a project actor is told: by its sessions (activity, cost and status for its health, a stop its
//! session's budget or stall asks for; sent through the handles their project gave them,
//! `actors::session::ProjectLink`), by the engine (its commands: start, stop, prompt, clear, restore,
//! stall threshold) and by its router (forget a session, summarize, report its health, deactivate). The
//! message that hands out its session actor's address stays beside it (actors/project/commands.rs).

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::error::CommandError;
use crate::messages::commands::{ProjectSummary, Started};
use crate::messages::wire::{AgentStatus, ProjectHealth};
use crate::providers::StartSpec;

/// What a batch of a session's messages changed of what its project shows (see
/// `actors::session::activity`: a batch that changes none of it is not reported; the time of the last
/// progress the project reads from the session's mailbox stats, `MailboxStats::progress_at`).
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
    /// The tool called over and over began (Some(Some(name)): the same call `LOOP_REPEATS` times in a
    /// row) or ended (Some(None)); None: no change.
    pub looping: Option<Option<String>>,
}

/// A tool call (name and input) as the loop detector compares it. Seeded at random once per process, so
/// no call can be chosen to collide with another.
pub fn call_digest(name: &str, input: &str) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::LazyLock<foldhash::quality::RandomState> =
        std::sync::LazyLock::new(Default::default);
    SEED.hash_one((name, input))
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

/// The session's stall clock fired: no activity for its whole threshold. The project's health counts the
/// same activity against the same threshold, so this is when its idle session turns stalled; the project
/// publishes that, with no timer of its own (src/actors/project.rs `stall_reported`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionStalled {
    pub session_id: String,
}

/// Any of a session's reports to its project, through the one handle the session holds
/// (src/actors/session/link.rs).
#[derive(Message)]
#[rtype(result = "()")]
pub enum SessionReport {
    Activity(ProjectActivity),
    Status(SessionStatusChanged),
    Cost(SessionCost),
    Halt(Halt),
    Stopped(SessionStopped),
    Stalled(SessionStalled),
}

/// The session's actor stopped (finished and stored, or let go): the project keeps its id and status
/// only, and brings the actor back from storage when a command needs it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionStopped {
    pub session_id: String,
    /// Which actor of that id stopped (see `Mailbox::instance`): a newer one may already be attached.
    pub instance: usize,
}

impl From<SessionStopped> for SessionReport {
    fn from(m: SessionStopped) -> SessionReport {
        SessionReport::Stopped(m)
    }
}

impl From<SessionStalled> for SessionReport {
    fn from(m: SessionStalled) -> SessionReport {
        SessionReport::Stalled(m)
    }
}

impl From<ProjectActivity> for SessionReport {
    fn from(m: ProjectActivity) -> SessionReport {
        SessionReport::Activity(m)
    }
}

impl From<SessionStatusChanged> for SessionReport {
    fn from(m: SessionStatusChanged) -> SessionReport {
        SessionReport::Status(m)
    }
}

impl From<SessionCost> for SessionReport {
    fn from(m: SessionCost) -> SessionReport {
        SessionReport::Cost(m)
    }
}

impl From<Halt> for SessionReport {
    fn from(m: Halt) -> SessionReport {
        SessionReport::Halt(m)
    }
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

/// startAgent, with the request already validated and its defaults resolved by the engine. It reaches the
/// project through its router (which finds or creates the project's actor on its arbiter and hands it on),
/// and the project answers `reply` itself: the caller waits once, not for a lookup and then for the start. A
/// reply dropped unanswered means the project stopped before it handled the start (look it up again).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartSession {
    pub spec: StartSpec,
    pub reply: oneshot::Sender<Result<Started, CommandError>>,
}

/// stopAgent. Answers the id of the session it stopped while it was going (not finished), which the
/// cluster records; `None` when the session was already finished or its start failed.
#[derive(Message)]
#[rtype(result = "Result<Option<String>, CommandError>")]
pub struct StopSession;

/// sendPrompt.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct PromptSession {
    pub prompt: String,
}

/// clearSession: only a done/error session is let go.
#[derive(Message)]
#[rtype(result = "Result<(), CommandError>")]
pub struct ClearSession;

/// loadLastSession.
#[derive(Message)]
#[rtype(result = "Result<bool, CommandError>")]
pub struct RestoreLast;

/// A session of this project was purged or evicted: forget it if it is the current one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetSession {
    pub session_id: String,
}

/// The project as `GET /v1/projects` lists it, sent on its router's gathering channel, as
/// [`ReportHealth`] sends its health: a list of 100,000 live projects is then 100,000 messages and one
/// channel, not 100,000 requests with an answer channel and a future each for the router to poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportSummary(pub mpsc::UnboundedSender<ProjectSummary>);

/// The project's health alone, as `GET /v1/health` lists it (a poll builds no summary around it), sent
/// on its router's gathering channel. A poll of 100,000 projects is then 100,000 messages and one
/// channel the router drains until every project has sent or dropped its sender (a project that stopped
/// with the ask in its mailbox drops it), not 100,000 requests with an answer channel and a future each
/// for the router to poll (which cost most of a poll's ~1.8 CPU-s).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportHealth(pub mpsc::UnboundedSender<ProjectHealth>);

/// This project's own stall threshold (None: back to `timers.stall_after`). Applies to health and to the
/// current session's stall notification at once.
#[derive(Message)]
#[rtype(result = "ProjectHealth")]
pub struct SetStallThreshold(pub Option<std::time::Duration>);

/// How many tool-permission requests of a session wait for an answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetAwaiting {
    pub session_id: String,
    pub count: usize,
}

/// Its router agrees this project may stop. It stops unless work came meanwhile (then it offers
/// again once idle). Answers whether it stopped and whether it still had a current session.
#[derive(Message)]
#[rtype(result = "Deactivated")]
pub struct Deactivate {
    /// Purge: stop whatever the state.
    pub force: bool,
}

#[derive(Debug, Clone, Copy, actix::MessageResponse)]
pub struct Deactivated {
    pub stopped: bool,
    /// It stopped holding a (finished) current session: a read revives it with that session.
    pub had_session: bool,
}
