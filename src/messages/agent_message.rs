//! `AgentMessage`, the message as the store shows it, and its tool fields.
//!
//! Every message is kept for its whole life in a session's window, the persister's batches and the live
//! feeds, and most messages (texts, thinking, tool results) have no tool name, input or path. The three
//! optional strings (72 bytes) therefore sit in one box that is absent unless one of them is set, which
//! makes every shared message 64 bytes smaller: a stream of small messages allocates, and faults in,
//! that much less per message.
//!
//! Most tool calls show their path as their content: a Bash command's `content` and its `toolPath` are the
//! same command (when it is short enough not to be cut), a Read's or an Edit's both its `file_path`. Such
//! a path is held as `ToolPath::Content`, a pointer to nothing but the rule "the path is the content",
//! instead of a second copy of the string in every such message for as long as it is kept.
//!
//! On the wire nothing changed: the fields are flat (`toolName`, `toolInput`, `toolPath`) and omitted
//! when absent. Serialization is written by hand for that; deserialization and the OpenAPI schema go
//! through `FlatMessage`, the wire shape as a plain struct. Everything reads the path through
//! `AgentMessage::tool_path`, which resolves it.

use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use super::wire::{MsgRole, UnixMs};

/// A tool call's name, input and path. A message holds them boxed, and only when one is set.
#[derive(Debug, Clone)]
pub struct ToolFields {
    pub name: Option<String>,
    pub input: Option<String>,
    /// Read through `AgentMessage::tool_path`: it may be the message's content.
    pub path: Option<ToolPath>,
}

/// Where a tool call's path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolPath {
    Own(String),
    /// The path is the message's `content`, whatever that holds.
    Content,
}

impl ToolFields {
    /// The box for a message's `tool`: none when no field is set.
    pub fn boxed(
        name: Option<String>,
        input: Option<String>,
        path: Option<String>,
    ) -> Option<Box<Self>> {
        Self::boxed_at(name, input, path.map(ToolPath::Own))
    }

    /// `boxed`, with the path where it is (`ToolPath::Content`: the message's content).
    pub fn boxed_at(
        name: Option<String>,
        input: Option<String>,
        path: Option<ToolPath>,
    ) -> Option<Box<Self>> {
        if name.is_none() && input.is_none() && path.is_none() {
            return None;
        }
        Some(Box::new(Self { name, input, path }))
    }
}

/// A message as the store shows it. `seq_id` is assigned by the session actor: strictly increasing from 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "FlatMessage")]
pub struct AgentMessage {
    pub id: String,
    pub seq_id: u64,
    pub role: MsgRole,
    pub content: String,
    /// The tool fields; `ToolFields::boxed` leaves it `None` when there are none.
    pub tool: Option<Box<ToolFields>>,
    pub timestamp: UnixMs,
}

impl AgentMessage {
    pub fn tool_name(&self) -> Option<&str> {
        self.tool.as_ref()?.name.as_deref()
    }

    pub fn tool_input(&self) -> Option<&str> {
        self.tool.as_ref()?.input.as_deref()
    }

    pub fn tool_path(&self) -> Option<&str> {
        match self.tool.as_ref()?.path.as_ref()? {
            ToolPath::Own(path) => Some(path),
            ToolPath::Content => Some(&self.content),
        }
    }

    /// The tool fields in their wire order (name, input, path).
    pub fn tool_fields(&self) -> [Option<&str>; 3] {
        [self.tool_name(), self.tool_input(), self.tool_path()]
    }

    /// The bytes of the tool fields' text, for the size estimates of the window and the storage frame. A
    /// path held as the content counts too: the frame writes it, and the window's estimate stays what it
    /// was (it bounds memory; counting less would let the windows hold more messages).
    pub fn tool_len(&self) -> usize {
        self.tool_fields().iter().flatten().map(|s| s.len()).sum()
    }
}

/// Equal when every shown field is: a box holding no field equals no box.
impl PartialEq for AgentMessage {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.seq_id == other.seq_id
            && self.role == other.role
            && self.content == other.content
            && self.tool_fields() == other.tool_fields()
            && self.timestamp == other.timestamp
    }
}

impl Serialize for AgentMessage {
    /// `FlatMessage`'s shape, field for field, with the absent tool fields left out.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tools = [
            ("toolName", self.tool_name()),
            ("toolInput", self.tool_input()),
            ("toolPath", self.tool_path()),
        ];
        let present = tools.iter().filter(|(_, value)| value.is_some()).count();
        let mut out = serializer.serialize_struct("AgentMessage", 5 + present)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("seqId", &self.seq_id)?;
        out.serialize_field("role", &self.role)?;
        out.serialize_field("content", &self.content)?;
        for (key, value) in tools {
            match value {
                Some(value) => out.serialize_field(key, value)?,
                None => out.skip_field(key)?,
            }
        }
        out.serialize_field("timestamp", &self.timestamp)?;
        out.end()
    }
}

/// A message as the store shows it. `seq_id` is assigned by the session actor: strictly increasing from 1.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AgentMessage)]
pub struct FlatMessage {
    id: String,
    seq_id: u64,
    role: MsgRole,
    content: String,
    #[serde(default)]
    tool_name: Option<String>,
    #[serde(default)]
    tool_input: Option<String>,
    #[serde(default)]
    tool_path: Option<String>,
    #[schema(value_type = i64)]
    timestamp: UnixMs,
}

impl From<FlatMessage> for AgentMessage {
    fn from(flat: FlatMessage) -> Self {
        AgentMessage {
            id: flat.id,
            seq_id: flat.seq_id,
            role: flat.role,
            content: flat.content,
            tool: ToolFields::boxed(flat.tool_name, flat.tool_input, flat.tool_path),
            timestamp: flat.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tool: Option<Box<ToolFields>>) -> AgentMessage {
        AgentMessage {
            id: "a".into(),
            seq_id: 1,
            role: MsgRole::ToolCall,
            content: "ls".into(),
            tool,
            timestamp: 5,
        }
    }

    #[test]
    fn a_message_keeps_its_tool_fields_behind_one_pointer() {
        // Three inline `Option<String>`s made it 144 bytes.
        assert!(std::mem::size_of::<AgentMessage>() <= 80);
    }

    #[test]
    fn the_wire_shape_is_flat_and_reads_back() {
        let m = message(ToolFields::boxed(
            Some("Bash".into()),
            None,
            Some("/x".into()),
        ));
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"id":"a","seqId":1,"role":"tool-call","content":"ls","toolName":"Bash","toolPath":"/x","timestamp":5}"#
        );
        assert_eq!(serde_json::from_str::<AgentMessage>(&text).unwrap(), m);
        let plain = serde_json::to_string(&message(None)).unwrap();
        assert_eq!(
            plain,
            r#"{"id":"a","seqId":1,"role":"tool-call","content":"ls","timestamp":5}"#
        );
        assert!(serde_json::from_str::<AgentMessage>(&plain)
            .unwrap()
            .tool
            .is_none());
    }

    #[test]
    fn an_empty_box_is_no_box() {
        assert!(ToolFields::boxed(None, None, None).is_none());
        let empty = message(Some(Box::new(ToolFields {
            name: None,
            input: None,
            path: None,
        })));
        assert_eq!(empty, message(None));
    }
}
