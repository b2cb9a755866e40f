//! Server-Sent Events framing: how each live event is written on the `/v1/events` stream (event name, id
//! and one line of JSON data). Here, beside the events, because a live event is framed once, where it is
//! published, and every subscriber's stream sends the same shared bytes.

use bytes::Bytes;
use serde::Serialize;

use crate::messages::commands::LiveEvent;
use crate::messages::json_text;
use crate::messages::wire::{AgentStatus, SharedMessage, Variant};

/// A comment line: keeps idle connections open through proxies; clients ignore it.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Sent first, so the client sees the stream open before any event.
pub const OPENED: &[u8] = b": connected\n\n";

/// One event. JSON never holds a raw newline, so the data is always a single `data:` line.
fn frame(event: &str, id: Option<&str>, data: &impl Serialize) -> Option<Bytes> {
    let mut out = head(event, id, 128);
    if let Err(e) = serde_json::to_writer(&mut out, data) {
        tracing::error!(event, error = %e, "cannot encode a live event");
        return None;
    }
    out.extend_from_slice(b"\n\n");
    Some(Bytes::from(out))
}

/// A frame's lines up to its data: `event:`, the `id:` when there is one, and `data: `.
fn head(event: &str, id: Option<&str>, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusData<'a> {
    session_id: &'a str,
    project_id: &'a str,
    status: AgentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CostData<'a> {
    session_id: &'a str,
    project_id: &'a str,
    cost_usd: f64,
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationData<'a> {
    project_id: &'a str,
    message: &'a str,
    variant: Variant,
}

#[derive(Serialize)]
struct LaggedData {
    missed: u64,
}

/// `session.messages`, with id `<sessionId>:<last seqId>` so a reconnect resumes after it. `None` for an
/// empty slice.
/// Its data, `{sessionId, projectId, messages}`, is written by src/messages/json_text.rs (the hot path:
/// every message's content), byte for byte as serde_json would write it.
pub fn messages(session_id: &str, project_id: &str, messages: &[SharedMessage]) -> Option<Bytes> {
    let last = messages.last()?.seq_id;
    let id = format!("{session_id}:{last}");
    let size: usize = messages.iter().map(|m| m.content.len() + 96).sum();
    let mut out = head("session.messages", Some(&id), size + 160);
    json_text::write_messages_data(&mut out, session_id, project_id, messages);
    out.extend_from_slice(b"\n\n");
    Some(Bytes::from(out))
}

pub fn lagged(missed: u64) -> Option<Bytes> {
    frame("lagged", None, &LaggedData { missed })
}

#[derive(Serialize)]
struct ResetData<'a> {
    reason: &'a str,
}

/// `reset {reason}`: the server cannot send everything the client missed; live events follow, and the
/// client re-reads what it needs.
pub fn reset(reason: &str) -> Option<Bytes> {
    frame("reset", None, &ResetData { reason })
}

/// The frame of a published event, as every subscriber sends it; `None` for a lag notice, which is each
/// subscriber's own, and for an empty message batch.
pub fn of(event: &LiveEvent) -> Option<Bytes> {
    match event {
        LiveEvent::Messages {
            session_id,
            project_id,
            messages: batch,
        } => messages(session_id, project_id, batch),
        other_event => other(other_event, None),
    }
}

/// Every event but messages (which the stream filters first) and lag notices (which it answers itself),
/// with its journal id (`<epoch>.<n>`, src/actors/journal.rs).
pub fn other(event: &LiveEvent, id: Option<&str>) -> Option<Bytes> {
    match event {
        LiveEvent::Status {
            session_id,
            project_id,
            status,
            error,
        } => frame(
            "session.status",
            id,
            &StatusData {
                session_id,
                project_id,
                status: *status,
                error: error.as_deref(),
            },
        ),
        LiveEvent::Cost {
            session_id,
            project_id,
            cost_usd,
            input_tokens,
            output_tokens,
        } => frame(
            "session.cost",
            id,
            &CostData {
                session_id,
                project_id,
                cost_usd: *cost_usd,
                input_tokens: *input_tokens,
                output_tokens: *output_tokens,
            },
        ),
        LiveEvent::Notification {
            project_id,
            message,
            variant,
        } => frame(
            "notification",
            id,
            &NotificationData {
                project_id,
                message,
                variant: *variant,
            },
        ),
        LiveEvent::Health(health) => frame("project.health", id, health),
        LiveEvent::Control { event, data, .. } => frame(event, id, data),
        // Its own id (a session's `<sessionId>:<seqId>`) when it has one, else this node's journal id.
        LiveEvent::Remote {
            event,
            id: own,
            data,
            ..
        } => Some(raw(event, own.as_deref().or(id), data)),
        LiveEvent::Messages { .. } | LiveEvent::Lagged { .. } => None,
    }
}

/// A frame around JSON data already encoded (an event another node framed; see `parts`).
fn raw(event: &str, id: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = head(event, id, event.len() + data.len() + 64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A frame taken apart again, for cluster mode to carry it to other nodes: its event name, its id, and
/// its JSON data (a view of the frame's bytes, not a copy). `None` for anything `frame` did not write.
pub struct Parts<'a> {
    pub event: &'a str,
    pub id: Option<&'a str>,
    pub data: Bytes,
}

pub fn parts(frame: &Bytes) -> Option<Parts<'_>> {
    let text = std::str::from_utf8(frame).ok()?;
    let rest = text.strip_prefix("event: ")?;
    let (event, rest) = rest.split_once('\n')?;
    let (id, rest) = match rest.strip_prefix("id: ") {
        Some(rest) => {
            let (id, rest) = rest.split_once('\n')?;
            (Some(id), rest)
        }
        None => (None, rest),
    };
    let json = rest.strip_prefix("data: ")?.strip_suffix("\n\n")?;
    let start = text.len() - rest.len() + "data: ".len();
    Some(Parts {
        event,
        id,
        data: frame.slice(start..start + json.len()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::messages::wire::{AgentMessage, MsgRole};

    fn text(frame: Option<Bytes>) -> String {
        String::from_utf8(frame.unwrap().to_vec()).unwrap()
    }

    fn data(frame: &str) -> serde_json::Value {
        let line = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        serde_json::from_str(line).unwrap()
    }

    fn message(seq: u64, content: &str) -> SharedMessage {
        Arc::new(AgentMessage {
            id: format!("m{seq}"),
            seq_id: seq,
            role: MsgRole::Assistant,
            content: content.into(),
            tool: None,
            timestamp: 1,
        })
    }

    #[test]
    fn messages_carry_the_resume_id_and_one_data_line() {
        let batch = [message(4, "line one\nline two"), message(5, "b")];
        let f = text(messages("p-1", "p", &batch));
        assert!(
            f.starts_with("event: session.messages\nid: p-1:5\ndata: {"),
            "{f}"
        );
        assert!(f.ends_with("}\n\n"));
        assert_eq!(
            f.matches('\n').count(),
            4,
            "exactly three lines and a blank one: {f}"
        );
        let d = data(&f);
        assert_eq!(d["sessionId"], "p-1");
        assert_eq!(d["projectId"], "p");
        assert_eq!(d["messages"][0]["content"], "line one\nline two");
        assert_eq!(d["messages"][1]["seqId"], 5);
        assert!(messages("p-1", "p", &[]).is_none());
    }

    #[test]
    fn other_events_use_the_contract_names_and_shapes() {
        let f = text(other(
            &LiveEvent::Status {
                session_id: "p-1".into(),
                project_id: "p".into(),
                status: AgentStatus::Error,
                error: Some("boom".into()),
            },
            None,
        ));
        assert!(f.starts_with("event: session.status\ndata: "), "{f}");
        assert_eq!(
            data(&f),
            serde_json::json!({"sessionId":"p-1","projectId":"p","status":"error","error":"boom"})
        );
        let f = text(other(
            &LiveEvent::Cost {
                session_id: "p-1".into(),
                project_id: "p".into(),
                cost_usd: 0.25,
                input_tokens: 10,
                output_tokens: 20,
            },
            None,
        ));
        assert!(f.starts_with("event: session.cost\n"), "{f}");
        assert_eq!(data(&f)["costUsd"], 0.25);
        assert_eq!(data(&f)["outputTokens"], 20);
        let f = text(other(
            &LiveEvent::Notification {
                project_id: "p".into(),
                message: "Agent completed on p".into(),
                variant: Variant::Success,
            },
            None,
        ));
        assert!(f.starts_with("event: notification\n"), "{f}");
        assert_eq!(data(&f)["variant"], "success");
        let f = text(lagged(7));
        assert_eq!(f, "event: lagged\ndata: {\"missed\":7}\n\n");
        let f = text(other(
            &LiveEvent::Notification {
                project_id: "p".into(),
                message: "m".into(),
                variant: Variant::Info,
            },
            Some("2.9"),
        ));
        assert!(f.starts_with("event: notification\nid: 2.9\ndata: "), "{f}");
        let f = text(reset("gone"));
        assert_eq!(f, "event: reset\ndata: {\"reason\":\"gone\"}\n\n");
    }

    #[test]
    fn a_frame_taken_apart_frames_again_the_same_on_another_node() {
        let batch = [message(4, "a"), message(5, "b")];
        let original = messages("p-1", "p", &batch).unwrap();
        let got = parts(&original).unwrap();
        assert_eq!((got.event, got.id), ("session.messages", Some("p-1:5")));
        assert_eq!(
            data(&text(Some(original.clone())))["messages"][1]["seqId"],
            5
        );
        let remote = LiveEvent::Remote {
            project_id: "p".into(),
            event: got.event.into(),
            id: got.id.map(str::to_owned),
            data: got.data.clone(),
        };
        // Its own id wins over the journal id of the node that re-publishes it.
        assert_eq!(other(&remote, Some("3.1")).unwrap(), original);

        let status = other(
            &LiveEvent::Status {
                session_id: "p-1".into(),
                project_id: "p".into(),
                status: AgentStatus::Running,
                error: None,
            },
            Some("2.9"),
        )
        .unwrap();
        let got = parts(&status).unwrap();
        assert_eq!((got.event, got.id), ("session.status", Some("2.9")));
        let remote = LiveEvent::Remote {
            project_id: "p".into(),
            event: got.event.into(),
            id: None,
            data: got.data,
        };
        let f = text(other(&remote, Some("3.1")));
        assert!(
            f.starts_with("event: session.status\nid: 3.1\ndata: {"),
            "{f}"
        );
        assert_eq!(data(&f)["status"], "running");
        assert!(parts(&Bytes::from_static(b": keep-alive\n\n")).is_none());
    }
}
