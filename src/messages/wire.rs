//! Wire types shared by every room: the shapes of `API.md` (`AgentMessage`, `AgentSession`, `RawMessage`,
//! sidecar events) and the status/role enums of the original store.
//!
//! Field names are camelCase on the wire, as in the original TypeScript store; optional fields are omitted
//! rather than sent as `null`, because the original's clients test them with `=== undefined`.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

pub use super::agent_message::{AgentMessage, ToolFields, ToolPath};
pub use super::raw_content::RawContent;
pub use super::raw_kind::RawKind;

/// Milliseconds since the Unix epoch, the unit of every timestamp on the wire.
pub type UnixMs = i64;

/// Now, in Unix milliseconds.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as UnixMs)
        .unwrap_or(0)
}

/// The status of a session. Anything a sidecar sends that is not one of these normalises to `Idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Idle,
    Running,
    Done,
    Error,
}

impl AgentStatus {
    /// The original's `normalizeStatus`: the four known names map to themselves, anything else to idle.
    pub fn normalize(status: &str) -> AgentStatus {
        match status {
            "running" => AgentStatus::Running,
            "done" => AgentStatus::Done,
            "error" => AgentStatus::Error,
            _ => AgentStatus::Idle,
        }
    }

    /// Done and error end a run: they trigger flush, cleanup grace and retention.
    pub fn is_finished(self) -> bool {
        matches!(self, AgentStatus::Done | AgentStatus::Error)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Idle => "idle",
            AgentStatus::Running => "running",
            AgentStatus::Done => "done",
            AgentStatus::Error => "error",
        }
    }
}

/// Who a displayed message comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum MsgRole {
    #[serde(rename = "user")]
    User,
    #[serde(rename = "assistant")]
    Assistant,
    #[serde(rename = "tool-call")]
    ToolCall,
    #[serde(rename = "tool-result")]
    ToolResult,
    #[serde(rename = "thinking")]
    Thinking,
    #[serde(rename = "system")]
    System,
}

impl MsgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MsgRole::User => "user",
            MsgRole::Assistant => "assistant",
            MsgRole::ToolCall => "tool-call",
            MsgRole::ToolResult => "tool-result",
            MsgRole::Thinking => "thinking",
            MsgRole::System => "system",
        }
    }
}

/// Messages are shared between the session window, the persister and live subscribers without copying.
pub type SharedMessage = Arc<AgentMessage>;

/// A session as `getSession` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSession {
    pub session_id: String,
    pub project_id: String,
    pub provider: String,
    pub status: AgentStatus,
    #[schema(value_type = Vec<super::agent_message::FlatMessage>)]
    pub messages: Vec<SharedMessage>,
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
    /// How many messages the session holds in all, whatever page `messages` is.
    pub message_count: u64,
    /// The highest seqId assigned so far.
    pub last_seq_id: u64,
}

/// A message as a sidecar (or a provider adapter) sends it, before conversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawMessage {
    pub id: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: RawKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Any JSON value; an object keeps its fields in order (see `RawContent`).
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub content: RawContent,
    #[serde(default = "now_ms", deserialize_with = "lenient_timestamp")]
    #[schema(value_type = i64)]
    pub timestamp: UnixMs,
}

/// Sidecars are JavaScript: a timestamp may arrive as a float. Anything non-numeric is refused.
fn lenient_timestamp<'de, D: Deserializer<'de>>(de: D) -> Result<UnixMs, D::Error> {
    let n = serde_json::Number::deserialize(de)?;
    if let Some(i) = n.as_i64() {
        Ok(i)
    } else if let Some(f) = n.as_f64() {
        Ok(f as UnixMs)
    } else {
        Err(serde::de::Error::custom("timestamp must be a number"))
    }
}

/// `agent.message` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePayload {
    pub session_id: String,
    pub messages: Vec<RawMessage>,
}

/// The longest status error a session keeps; a longer one (a whole stderr, say) is cut with a marker.
pub const MAX_STATUS_ERROR_BYTES: usize = 8 * 1024;

/// `agent.status` payload. `status` is kept as sent and normalised by the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusPayload {
    pub session_id: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `agent.cost` payload: totals so far, not deltas. The cost is a finite number ≥ 0; token counts are
/// integers (`5.0` included) and refused, naming the field, otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostPayload {
    pub session_id: String,
    #[serde(deserialize_with = "crate::messages::numbers::amount")]
    #[schema(minimum = 0)]
    pub cost_usd: f64,
    #[serde(deserialize_with = "crate::messages::numbers::integer")]
    pub input_tokens: u64,
    #[serde(deserialize_with = "crate::messages::numbers::integer")]
    pub output_tokens: u64,
    /// Which run of the agent these are the totals of, when a session has several (each follow-up or
    /// resume of a CLI agent is a new process counting from zero). Totals of a new run add to what the
    /// earlier runs spent; without it, the totals are the session's own (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
}

/// One sidecar event, as posted to `/v1/sidecar/events` or produced by a provider runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "event", content = "payload")]
pub enum SidecarEvent {
    #[serde(rename = "agent.message")]
    Message(MessagePayload),
    #[serde(rename = "agent.status")]
    Status(StatusPayload),
    #[serde(rename = "agent.cost")]
    Cost(CostPayload),
}

impl SidecarEvent {
    pub fn session_id(&self) -> &str {
        match self {
            SidecarEvent::Message(p) => &p.session_id,
            SidecarEvent::Status(p) => &p.session_id,
            SidecarEvent::Cost(p) => &p.session_id,
        }
    }

    /// The metric labels of the event kinds, by `kind_index`.
    pub const KINDS: [&'static str; 3] = ["agent.message", "agent.status", "agent.cost"];

    /// The event kind's place in `KINDS`.
    pub fn kind_index(&self) -> usize {
        match self {
            SidecarEvent::Message(_) => 0,
            SidecarEvent::Status(_) => 1,
            SidecarEvent::Cost(_) => 2,
        }
    }

    /// The metric label of the event kind.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }
}

/// Toast variants of the original dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Success,
    Warning,
    Error,
    Info,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Success => "success",
            Variant::Warning => "warning",
            Variant::Error => "error",
            Variant::Info => "info",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_normalises_unknown_names_to_idle() {
        assert_eq!(AgentStatus::normalize("running"), AgentStatus::Running);
        assert_eq!(AgentStatus::normalize("done"), AgentStatus::Done);
        assert_eq!(AgentStatus::normalize("error"), AgentStatus::Error);
        assert_eq!(AgentStatus::normalize("idle"), AgentStatus::Idle);
        assert_eq!(AgentStatus::normalize("compacting"), AgentStatus::Idle);
        assert_eq!(AgentStatus::normalize(""), AgentStatus::Idle);
    }

    #[test]
    fn sidecar_events_parse_in_the_api_shape() {
        let ev: SidecarEvent = serde_json::from_str(
            r#"{"event":"agent.message","payload":{"sessionId":"p-1","messages":[
                {"id":"m1","type":"text","content":{"text":"hi"},"timestamp":1700000000000.5}]}}"#,
        )
        .unwrap();
        match ev {
            SidecarEvent::Message(p) => {
                assert_eq!(p.session_id, "p-1");
                assert_eq!(p.messages[0].kind, "text");
                assert_eq!(p.messages[0].timestamp, 1_700_000_000_000);
            }
            other => panic!("wrong event {other:?}"),
        }
    }

    #[test]
    fn optional_message_fields_are_omitted_not_null() {
        let m = AgentMessage {
            id: "a".into(),
            seq_id: 1,
            role: MsgRole::ToolCall,
            content: "ls".into(),
            tool: ToolFields::boxed(Some("Bash".into()), None, None),
            timestamp: 5,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["role"], "tool-call");
        assert_eq!(v["seqId"], 1);
        assert_eq!(v["toolName"], "Bash");
        assert!(v.get("toolInput").is_none());
    }
}

/// How a project looks to someone deciding where to look next (see issue "Project health").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActivityState {
    Inactive,
    Running,
    Idle,
    Stalled,
}

#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, actix::MessageResponse, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectHealth {
    pub project_id: String,
    pub session_id: Option<String>,
    pub activity_state: ActivityState,
    pub active_tool: Option<String>,
    pub idle_duration_ms: u64,
    pub burn_rate_per_hour: f64,
    pub context_pressure: Option<f64>,
    pub attention_score: u32,
    pub attention_reason: Option<String>,
    /// The project's stall threshold (its own, or the configured `timers.stall_after`).
    pub stall_threshold_ms: u64,
}

impl ProjectHealth {
    /// A project's health with nothing going on: no session, no tool, no spend, nothing asking for
    /// attention, in `state` (a project known only from storage is `Inactive`).
    pub fn quiet(project_id: &str, state: ActivityState) -> ProjectHealth {
        ProjectHealth {
            project_id: project_id.to_owned(),
            session_id: None,
            activity_state: state,
            active_tool: None,
            idle_duration_ms: 0,
            burn_rate_per_hour: 0.0,
            context_pressure: None,
            attention_score: 0,
            attention_reason: None,
            stall_threshold_ms: 0,
        }
    }

    /// Orders a health list as `GET /v1/health` answers it: highest attentionScore first, then by project.
    pub fn sort_by_attention(list: &mut [ProjectHealth]) {
        list.sort_by(|a, b| {
            b.attention_score
                .cmp(&a.attention_score)
                .then_with(|| a.project_id.cmp(&b.project_id))
        });
    }
}
