//! Builders shared by the storage and persister tests.
#![allow(dead_code)] // each test binary uses its own part of this

use std::ops::RangeInclusive;
use std::sync::Arc;

use agent_store::messages::wire::{AgentMessage, AgentStatus, MsgRole, SharedMessage, ToolFields};
use agent_store::storage::{SessionRecord, Store, WriteOp};

pub fn record(session: &str, project: &str, status: AgentStatus, updated_at: i64) -> SessionRecord {
    SessionRecord {
        session_id: session.into(),
        project_id: project.into(),
        provider: "claude".into(),
        status,
        cost_usd: 0.5,
        input_tokens: 100,
        output_tokens: 200,
        model: "sonnet".into(),
        error: None,
        created_at: 1,
        updated_at,
        last_seq: 0,
        message_count: 0,
        provider_session_id: Some(format!("provider-{session}")),
        seq_ceiling: 0,
    }
}

pub fn put(session: &str, project: &str, status: AgentStatus, updated_at: i64) -> WriteOp {
    WriteOp::put_session(record(session, project, status, updated_at))
}

pub fn message(seq: u64) -> AgentMessage {
    let tool = seq % 3 == 0;
    AgentMessage {
        id: format!("msg-{seq}"),
        seq_id: seq,
        role: if tool {
            MsgRole::ToolCall
        } else {
            MsgRole::Assistant
        },
        content: format!("message number {seq}"),
        tool: ToolFields::boxed(
            tool.then(|| "Bash".to_owned()),
            tool.then(|| "{\"command\":\"ls\"}".to_owned()),
            None,
        ),
        timestamp: 1_700_000_000_000 + seq as i64,
    }
}

pub fn batch(seqs: RangeInclusive<u64>) -> Vec<SharedMessage> {
    seqs.map(|s| Arc::new(message(s))).collect()
}

pub fn append(session: &str, seqs: RangeInclusive<u64>) -> WriteOp {
    WriteOp::AppendMessages {
        session_id: session.into(),
        messages: batch(seqs),
    }
}

pub fn seqs(messages: &[AgentMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq_id).collect()
}

/// Each project with its latest session's id (`Store::last_sessions`), the record required.
pub fn latest_sessions(store: &Store) -> Vec<(String, String)> {
    store
        .last_sessions()
        .unwrap()
        .into_iter()
        .map(|(p, r)| (p, r.expect("a record").session_id))
        .collect()
}
