//! What callers ask of the engine and what it answers: the command and query shapes behind the HTTP API
//! and the in-process handle, and the live events it publishes. Parsed and validated at the edge; actors
//! receive these typed values.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::messages::gather::{gather, Answer, Batch};
use crate::messages::wire::{
    AgentStatus, ProjectHealth, SharedMessage, SidecarEvent, UnixMs, Variant,
};

/// `startAgent`'s options, as the original's `StartOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartOptions {
    pub cwd: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    #[serde(default, deserialize_with = "crate::messages::numbers::opt_integer")]
    pub max_turns: Option<u32>,
    pub permission_mode: Option<String>,
    pub claude_config_dir: Option<String>,
    pub extra_env: Option<BTreeMap<String, String>>,
    pub additional_directories: Option<Vec<String>>,
    pub worktree_name: Option<String>,
    /// Resume this session with its provider's own resume after a service restart (else as
    /// `resume.on_restart` says).
    pub resume_on_restart: Option<bool>,
}

/// The body of `POST /v1/projects/{projectId}/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRequest {
    pub provider: String,
    pub prompt: String,
    #[serde(default)]
    pub options: StartOptions,
}

/// What `startAgent` answers on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub session_id: String,
}

/// A session its stall stopped under `stall.action = "resume"`, for the engine to resume with a nudge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StallResume {
    pub project_id: String,
    pub session_id: String,
}

/// A page of a session's messages: those with seqId above `after_seq`, at most `limit` of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub after_seq: Option<u64>,
    pub limit: Option<usize>,
}

/// A batch of sidecar events (or one router's share of it) for a router to route. The router hands each
/// session its share and is done with it; the sessions' answers are gathered into the batch's `Answer`,
/// which the sender awaits (messages/gather.rs). With `durable`, that waits until every message of the
/// batch is committed to storage. Sent without waiting for room in the router's mailbox: the sender
/// awaits the answer, so it has one batch in flight at a time.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Ingest {
    pub events: Vec<SidecarEvent>,
    pub durable: bool,
    /// Drop raw messages whose id the session saw recently (`limits.ingest_dedup_ids`): set for batches
    /// a client may retry (the HTTP ingest); provider adapters read each line once and need no check.
    pub dedupe: bool,
    pub answer: Batch,
}

impl Ingest {
    /// A whole batch for one router, and its answer.
    pub fn new(events: Vec<SidecarEvent>, durable: bool, dedupe: bool) -> (Ingest, Answer) {
        let (gathering, answer) = gather();
        let ingest = Ingest {
            events,
            durable,
            dedupe,
            answer: gathering.batch(),
        };
        (ingest, answer)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    /// Events routed to a live session.
    pub accepted: usize,
    /// Events for sessions this service does not hold (the original ignored them too).
    pub ignored: usize,
}

/// A stored session without its messages (`GET /v1/projects/{projectId}/sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub session_id: String,
    pub project_id: String,
    pub provider: String,
    pub status: AgentStatus,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[schema(value_type = i64)]
    pub created_at: UnixMs,
    #[schema(value_type = i64)]
    pub updated_at: UnixMs,
    pub message_count: u64,
}

/// A known project (`GET /v1/projects`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSummary {
    pub project_id: String,
    pub session_id: Option<String>,
    pub status: Option<AgentStatus>,
    pub health: ProjectHealth,
}

/// The settings the original kept, under the original's snake_case keys.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, actix::MessageResponse, utoipa::ToSchema,
)]
pub struct Settings {
    pub permission_mode: Option<String>,
    pub system_prompt_template: Option<String>,
    pub default_cwd: Option<String>,
    /// provider name → that provider's settings (`defaultModel`, `num_ctx`, `think`, ...).
    pub provider_settings: serde_json::Map<String, serde_json::Value>,
    pub session_retention_count: u32,
    pub session_retention_days: u32,
}

/// `PUT /v1/settings`: only the keys present change; `null` clears a text setting.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default, deserialize_with = "nullable")]
    pub permission_mode: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub system_prompt_template: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_cwd: Option<Option<String>>,
    pub provider_settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// A number, or a numeric string as the original stored it; clamped to 1..=50.
    #[serde(default, deserialize_with = "lenient_int")]
    pub session_retention_count: Option<i64>,
    /// Clamped to 1..=365.
    #[serde(default, deserialize_with = "lenient_int")]
    pub session_retention_days: Option<i64>,
}

/// Tells "absent" (outer None) from "null" (Some(None)).
fn nullable<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(de).map(Some)
}

/// A JSON integer (`5.0` included, `5.5` refused), or a numeric string; clamped later, so only its being a
/// whole number matters.
fn lenient_int<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    match serde_json::Value::deserialize(de)? {
        serde_json::Value::Number(n) => crate::messages::numbers::whole(&n)
            .map(|i| Some(i.clamp(i64::MIN.into(), i64::MAX.into()) as i64))
            .ok_or_else(|| serde::de::Error::custom(format!("must be an integer, got {n}"))),
        serde_json::Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("must be an integer")),
        _ => Err(serde::de::Error::custom("must be an integer")),
    }
}

/// What live subscribers (SSE) receive. Messages are shared, not copied, per subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    Messages {
        session_id: String,
        project_id: String,
        messages: Arc<[SharedMessage]>,
    },
    Status {
        session_id: String,
        project_id: String,
        status: AgentStatus,
        error: Option<String>,
    },
    Cost {
        session_id: String,
        project_id: String,
        cost_usd: f64,
        input_tokens: u64,
        output_tokens: u64,
    },
    Notification {
        project_id: String,
        message: String,
        variant: Variant,
    },
    Health(ProjectHealth),
    /// Agents under control (issue 15): `session.approval`, `session.approval.resolved`,
    /// `budget.exceeded`; `data` is the event's JSON as the contract shapes it.
    Control {
        project_id: String,
        event: &'static str,
        data: serde_json::Value,
    },
    /// Cluster mode: an event of a project another node runs, as that node framed it (the SSE event
    /// name, `id` only for `session.messages`: `<sessionId>:<last seqId>`, and the JSON data), put into
    /// this node's stream so every node's `/v1/events` carries every project (src/cluster/events.rs).
    /// Never published to other nodes again, so events do not loop.
    Remote {
        project_id: String,
        event: String,
        id: Option<String>,
        data: bytes::Bytes,
    },
    /// The subscriber fell behind and `missed` events were dropped for it. `resume` lists, per session
    /// whose messages were among them, the last seqId it was sent: read the rest from the engine.
    Lagged {
        missed: u64,
        resume: Vec<(String, u64)>,
    },
}

impl LiveEvent {
    /// The project an event belongs to, for `?projectId=` filters; `None` for events meant for everyone.
    pub fn project_id(&self) -> Option<&str> {
        match self {
            LiveEvent::Messages { project_id, .. }
            | LiveEvent::Status { project_id, .. }
            | LiveEvent::Cost { project_id, .. }
            | LiveEvent::Notification { project_id, .. }
            | LiveEvent::Control { project_id, .. }
            | LiveEvent::Remote { project_id, .. } => Some(project_id),
            LiveEvent::Health(h) => Some(&h.project_id),
            LiveEvent::Lagged { .. } => None,
        }
    }
}

/// What `/v1/debug/top` ranks actors by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TopBy {
    Mailbox,
    Messages,
    Memory,
}

/// One of the busiest actors: the place for per-project detail that metrics labels must not carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopEntry {
    pub actor: String,
    pub project_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    pub mailbox_depth: i64,
    pub messages_handled: u64,
    pub memory_bytes: u64,
}
