//! How session records and message batches are laid out as bytes in redb.
//!
//! Values are postcard, which is compact and fast but not self-describing: every field is always written,
//! in declaration order. The wire types cannot be used for that (their `skip_serializing_if` attributes
//! would make a field vanish and shift everything after it), so this file mirrors them in storage structs
//! that borrow their strings. Encoding a batch copies nothing but bytes; decoding borrows from the stored
//! value and allocates only the strings of the messages the caller keeps.
//!
//! Every value starts with a format byte so that a later migration can tell old layouts from new ones.
//! Enums are stored as explicit codes, not serde variant indexes, so reordering a wire enum cannot silently
//! change what stored bytes mean.

use serde::{Deserialize, Serialize, Serializer};

use super::{SessionRecord, StorageError};
use crate::messages::wire::{AgentMessage, AgentStatus, MsgRole, SharedMessage};

/// The layout of a `sessions` value.
const RECORD_FORMAT: u8 = 1;
/// The layout of a `messages` value: the format byte, the message count, then the messages.
const BATCH_FORMAT: u8 = 1;

#[derive(Serialize, Deserialize)]
struct StoredRecord<'a> {
    session_id: &'a str,
    project_id: &'a str,
    provider: &'a str,
    status: u8,
    cost_usd: f64,
    input_tokens: u64,
    output_tokens: u64,
    model: &'a str,
    #[serde(borrow)]
    error: Option<&'a str>,
    created_at: i64,
    updated_at: i64,
    last_seq: u64,
    message_count: u64,
    #[serde(borrow)]
    provider_session_id: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct StoredMessage<'a> {
    id: &'a str,
    seq_id: u64,
    role: u8,
    content: &'a str,
    #[serde(borrow)]
    tool_name: Option<&'a str>,
    #[serde(borrow)]
    tool_input: Option<&'a str>,
    #[serde(borrow)]
    tool_path: Option<&'a str>,
    timestamp: i64,
}

impl<'a> StoredMessage<'a> {
    fn of(m: &'a AgentMessage) -> StoredMessage<'a> {
        StoredMessage {
            id: &m.id,
            seq_id: m.seq_id,
            role: role_code(m.role),
            content: &m.content,
            tool_name: m.tool_name.as_deref(),
            tool_input: m.tool_input.as_deref(),
            tool_path: m.tool_path.as_deref(),
            timestamp: m.timestamp,
        }
    }

    fn to_message(&self) -> Result<AgentMessage, StorageError> {
        Ok(AgentMessage {
            id: self.id.to_owned(),
            seq_id: self.seq_id,
            role: role_of(self.role)?,
            content: self.content.to_owned(),
            tool_name: self.tool_name.map(str::to_owned),
            tool_input: self.tool_input.map(str::to_owned),
            tool_path: self.tool_path.map(str::to_owned),
            timestamp: self.timestamp,
        })
    }
}

/// Serialises a batch as a postcard sequence without first collecting the borrowed views into a Vec.
struct BatchRef<'a>(&'a [SharedMessage]);

impl Serialize for BatchRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| StoredMessage::of(m)))
    }
}

pub(super) fn encode_record(r: &SessionRecord) -> Result<Vec<u8>, StorageError> {
    let stored = StoredRecord {
        session_id: &r.session_id,
        project_id: &r.project_id,
        provider: &r.provider,
        status: status_code(r.status),
        cost_usd: r.cost_usd,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        model: &r.model,
        error: r.error.as_deref(),
        created_at: r.created_at,
        updated_at: r.updated_at,
        last_seq: r.last_seq,
        message_count: r.message_count,
        provider_session_id: r.provider_session_id.as_deref(),
    };
    postcard::to_extend(&stored, vec![RECORD_FORMAT])
        .map_err(|e| StorageError::Write(format!("encoding session {}: {e}", r.session_id)))
}

pub(super) fn decode_record(bytes: &[u8]) -> Result<SessionRecord, StorageError> {
    let body = body_of(bytes, RECORD_FORMAT, "session record")?;
    let s: StoredRecord = postcard::from_bytes(body)
        .map_err(|e| StorageError::Decode(format!("session record: {e}")))?;
    Ok(SessionRecord {
        session_id: s.session_id.to_owned(),
        project_id: s.project_id.to_owned(),
        provider: s.provider.to_owned(),
        status: status_of(s.status)?,
        cost_usd: s.cost_usd,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        model: s.model.to_owned(),
        error: s.error.map(str::to_owned),
        created_at: s.created_at,
        updated_at: s.updated_at,
        last_seq: s.last_seq,
        message_count: s.message_count,
        provider_session_id: s.provider_session_id.map(str::to_owned),
    })
}

pub(super) fn encode_batch(messages: &[SharedMessage]) -> Result<Vec<u8>, StorageError> {
    // Strings dominate the size; reserving for them avoids regrowing the buffer message by message.
    let guess: usize = messages
        .iter()
        .map(|m| 32 + m.id.len() + m.content.len())
        .sum();
    let mut out = Vec::with_capacity(1 + guess);
    out.push(BATCH_FORMAT);
    postcard::to_extend(&BatchRef(messages), out)
        .map_err(|e| StorageError::Write(format!("encoding a message batch: {e}")))
}

/// What to do with the next message of a batch, decided from its seqId before anything is allocated.
pub(super) enum Visit {
    Skip,
    Take,
    Stop,
}

/// Decodes a batch row, appending to `out` the messages `visit` takes, in stored order.
pub(super) fn decode_batch(
    bytes: &[u8],
    mut visit: impl FnMut(u64) -> Visit,
    out: &mut Vec<AgentMessage>,
) -> Result<(), StorageError> {
    let body = body_of(bytes, BATCH_FORMAT, "message batch")?;
    let (count, mut rest) = postcard::take_from_bytes::<u64>(body)
        .map_err(|e| StorageError::Decode(format!("message batch length: {e}")))?;
    for _ in 0..count {
        let (m, next) = postcard::take_from_bytes::<StoredMessage>(rest)
            .map_err(|e| StorageError::Decode(format!("message in batch: {e}")))?;
        rest = next;
        match visit(m.seq_id) {
            Visit::Skip => {}
            Visit::Take => out.push(m.to_message()?),
            Visit::Stop => break,
        }
    }
    Ok(())
}

fn body_of<'a>(bytes: &'a [u8], format: u8, what: &str) -> Result<&'a [u8], StorageError> {
    match bytes.split_first() {
        Some((&f, body)) if f == format => Ok(body),
        Some((f, _)) => Err(StorageError::Decode(format!(
            "{what} has format {f}, this build reads format {format}"
        ))),
        None => Err(StorageError::Decode(format!("{what} is empty"))),
    }
}

fn status_code(s: AgentStatus) -> u8 {
    match s {
        AgentStatus::Idle => 0,
        AgentStatus::Running => 1,
        AgentStatus::Done => 2,
        AgentStatus::Error => 3,
    }
}

fn status_of(code: u8) -> Result<AgentStatus, StorageError> {
    Ok(match code {
        0 => AgentStatus::Idle,
        1 => AgentStatus::Running,
        2 => AgentStatus::Done,
        3 => AgentStatus::Error,
        other => {
            return Err(StorageError::Decode(format!(
                "status: unknown code {other}"
            )))
        }
    })
}

fn role_code(r: MsgRole) -> u8 {
    match r {
        MsgRole::User => 0,
        MsgRole::Assistant => 1,
        MsgRole::ToolCall => 2,
        MsgRole::ToolResult => 3,
        MsgRole::Thinking => 4,
        MsgRole::System => 5,
    }
}

fn role_of(code: u8) -> Result<MsgRole, StorageError> {
    Ok(match code {
        0 => MsgRole::User,
        1 => MsgRole::Assistant,
        2 => MsgRole::ToolCall,
        3 => MsgRole::ToolResult,
        4 => MsgRole::Thinking,
        5 => MsgRole::System,
        other => return Err(StorageError::Decode(format!("role: unknown code {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn message(seq: u64, role: MsgRole, tool: Option<&str>) -> SharedMessage {
        Arc::new(AgentMessage {
            id: format!("m{seq}"),
            seq_id: seq,
            role,
            content: format!("content {seq} ✓"),
            tool_name: tool.map(str::to_owned),
            tool_input: None,
            tool_path: tool.map(|_| "/src/lib.rs".to_owned()),
            timestamp: 1_700_000_000_000 + seq as i64,
        })
    }

    #[test]
    fn a_batch_round_trips_with_absent_optional_fields() {
        // Absent fields in the middle of a message are where skip_serializing_if would break postcard.
        let batch = vec![
            message(1, MsgRole::User, None),
            message(2, MsgRole::ToolCall, Some("Bash")),
            message(3, MsgRole::System, None),
        ];
        let bytes = encode_batch(&batch).unwrap();
        let mut out = Vec::new();
        decode_batch(&bytes, |_| Visit::Take, &mut out).unwrap();
        let expected: Vec<AgentMessage> = batch.iter().map(|m| (**m).clone()).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn decoding_stops_when_told_and_skips_unwanted() {
        let batch: Vec<_> = (1..=5)
            .map(|s| message(s, MsgRole::Assistant, None))
            .collect();
        let bytes = encode_batch(&batch).unwrap();
        let mut out = Vec::new();
        let visit = |seq| match seq {
            2 => Visit::Skip,
            5 => Visit::Stop,
            _ => Visit::Take,
        };
        decode_batch(&bytes, visit, &mut out).unwrap();
        let seqs: Vec<u64> = out.iter().map(|m| m.seq_id).collect();
        assert_eq!(seqs, vec![1, 3, 4]);
    }

    #[test]
    fn a_record_round_trips() {
        let r = SessionRecord {
            session_id: "s".into(),
            project_id: "p".into(),
            provider: "claude".into(),
            status: AgentStatus::Error,
            cost_usd: 0.25,
            input_tokens: 10,
            output_tokens: 20,
            model: "m".into(),
            error: None,
            created_at: 1,
            updated_at: 2,
            last_seq: 3,
            message_count: 3,
            provider_session_id: Some("thread".into()),
        };
        assert_eq!(decode_record(&encode_record(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn unknown_formats_and_truncation_are_decode_errors() {
        let batch = vec![message(1, MsgRole::User, None)];
        let mut bytes = encode_batch(&batch).unwrap();
        let truncated = &bytes[..bytes.len() - 3];
        let mut out = Vec::new();
        assert!(matches!(
            decode_batch(truncated, |_| Visit::Take, &mut out),
            Err(StorageError::Decode(_))
        ));
        bytes[0] = 99;
        let err = decode_batch(&bytes, |_| Visit::Take, &mut out).unwrap_err();
        assert!(matches!(err, StorageError::Decode(ref m) if m.contains("format 99")));
        assert!(matches!(decode_record(&[]), Err(StorageError::Decode(_))));
    }
}
