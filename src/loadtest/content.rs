//! What the generator says: agent messages in the sidecar's `RawMessage` shapes (text, thinking,
//! tool_call, tool_result), prepared once and stamped per request.
//!
//! The mix follows the recorded Claude Code runs in `shared/transcripts`: tool calls and their results
//! dominate (one text and one thinking block per ten messages), calls are small (median ≈100 B of input),
//! results are large (median ≈8.6 KB) and text and thinking sit in between. `Sizes::Small` keeps the mix
//! but makes every content short, to measure the store's per-message cost rather than its byte rate.
//!
//! Each template keeps both forms a target needs: the `RawContent` for the in-process engine (shared by
//! every message made from it, so the engine copies only the fields it keeps, and the generator's own
//! cost stays out of the store's figures) and its serialised JSON for HTTP bodies, so a request costs
//! string concatenation, not serialisation.

use serde_json::{json, Value};

use crate::messages::wire::{
    CostPayload, MessagePayload, RawContent, RawMessage, SidecarEvent, StatusPayload, UnixMs,
};

/// Content sizes of the generated messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizes {
    /// Sizes as in the recorded provider runs (≈3 KB a message on average).
    #[default]
    Realistic,
    /// Short contents (≈100 B a message).
    Small,
}

/// The prefix of every generated message id; the rest is the message's index in its session.
pub const ID_PREFIX: &str = "lt-";

struct Template {
    kind: &'static str,
    content: RawContent,
    json: String,
}

impl Template {
    fn new(kind: &'static str, value: Value) -> Template {
        let json = value.to_string();
        Template {
            kind,
            content: RawContent::from(value).shared(),
            json,
        }
    }
}

/// The kind of message at each position of a ten-message turn.
const TURN: [&str; 10] = [
    "thinking",
    "tool_call",
    "tool_result",
    "tool_call",
    "tool_result",
    "text",
    "tool_call",
    "tool_result",
    "tool_call",
    "tool_result",
];

/// Prepared message contents, a few sizes per kind.
pub struct Content {
    text: Vec<Template>,
    thinking: Vec<Template>,
    tool_call: Vec<Template>,
    tool_result: Vec<Template>,
}

/// Prose of about `len` bytes (ASCII, so byte and char lengths agree).
fn prose(len: usize, seed: usize) -> String {
    const WORDS: [&str; 16] = [
        "the", "store", "session", "message", "actor", "persists", "batch", "project", "agent",
        "reads", "file", "writes", "test", "passes", "because", "change",
    ];
    let mut s = String::with_capacity(len + 16);
    let mut i = seed;
    while s.len() < len {
        s.push_str(WORDS[i % WORDS.len()]);
        i = i.wrapping_mul(31).wrapping_add(7);
        s.push(if i % 13 == 0 { '\n' } else { ' ' });
    }
    s.truncate(len);
    s
}

impl Content {
    pub fn new(sizes: Sizes) -> Content {
        let (text, thinking, output, edit): (&[usize], &[usize], &[usize], usize) = match sizes {
            Sizes::Realistic => (
                &[120, 600, 1700, 4000],
                &[300, 1300, 4000],
                &[300, 2000, 8600, 8600, 16000],
                400,
            ),
            Sizes::Small => (&[80], &[120], &[150], 60),
        };
        let texts = |kind, lens: &[usize]| {
            lens.iter()
                .enumerate()
                .map(|(i, &n)| Template::new(kind, json!({ "text": prose(n, i) })))
                .collect()
        };
        let tool_call = vec![
            Template::new(
                "tool_call",
                json!({"name": "Bash", "input": {"command": "cargo test --all-targets -- --nocapture"}}),
            ),
            Template::new(
                "tool_call",
                json!({"name": "Read", "input": {"file_path": "/work/project/src/actors/session.rs"}}),
            ),
            Template::new(
                "tool_call",
                json!({"name": "Edit", "input": {
                    "file_path": "/work/project/src/storage/store.rs",
                    "old_string": prose(edit / 2, 3),
                    "new_string": prose(edit / 2, 5),
                }}),
            ),
            Template::new(
                "tool_call",
                json!({"name": "Grep", "input": {"pattern": "fn apply", "path": "/work/project/src"}}),
            ),
        ];
        let tool_result = output
            .iter()
            .enumerate()
            .map(|(i, &n)| Template::new("tool_result", json!({ "output": prose(n, 11 + i) })))
            .collect();
        Content {
            text: texts("text", text),
            thinking: texts("thinking", thinking),
            tool_call,
            tool_result,
        }
    }

    /// The template of message `index` of `project`: the kind by its place in the turn, the size varied
    /// by a cheap hash so projects do not march in step.
    fn template(&self, project: usize, index: usize) -> &Template {
        let set = match TURN[index % TURN.len()] {
            "text" => &self.text,
            "thinking" => &self.thinking,
            "tool_call" => &self.tool_call,
            _ => &self.tool_result,
        };
        let h = (project as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(index as u64 / TURN.len() as u64)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
        &set[(h >> 33) as usize % set.len()]
    }

    /// The raw message `index` of `project`, for the in-process engine.
    pub fn raw(&self, project: usize, index: usize, timestamp: UnixMs) -> RawMessage {
        let t = self.template(project, index);
        RawMessage {
            id: message_id(index),
            kind: t.kind.into(),
            parent_id: None,
            content: t.content.clone(),
            timestamp,
        }
    }

    /// Appends raw message `index` of `project` as JSON to `out`.
    pub fn write_raw_json(&self, out: &mut String, project: usize, index: usize, ts: UnixMs) {
        use std::fmt::Write;
        let t = self.template(project, index);
        let _ = write!(
            out,
            r#"{{"id":"{ID_PREFIX}{index}","type":"{}","content":{},"timestamp":{ts}}}"#,
            t.kind, t.json
        );
    }

    /// Content bytes of one message, as sent.
    pub fn content_len(&self, project: usize, index: usize) -> usize {
        self.template(project, index).json.len()
    }
}

/// The id of message `index`: `lt-` and the index (written without `format!`: one per generated message).
pub fn message_id(index: usize) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(index);
    let mut id = String::with_capacity(ID_PREFIX.len() + digits.len());
    id.push_str(ID_PREFIX);
    id.push_str(digits);
    id
}

/// The message index a generated id carries, or None for any other message (the prompt, say).
pub fn message_index(id: &str) -> Option<usize> {
    id.strip_prefix(ID_PREFIX)?.parse().ok()
}

/// An `agent.message` event.
pub fn message_event(session_id: &str, messages: Vec<RawMessage>) -> SidecarEvent {
    SidecarEvent::Message(MessagePayload {
        session_id: session_id.to_owned(),
        messages,
    })
}

/// The end of a generated run: status done, then the totals a real agent would report.
pub fn finish_events(session_id: &str, messages: usize) -> [SidecarEvent; 2] {
    let tokens = messages as u64 * 400;
    [
        SidecarEvent::Status(StatusPayload {
            session_id: session_id.to_owned(),
            status: "done".into(),
            error: None,
        }),
        SidecarEvent::Cost(CostPayload {
            session_id: session_id.to_owned(),
            cost_usd: messages as f64 * 0.0021,
            input_tokens: tokens,
            output_tokens: tokens / 4,
            run: None,
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::wire::SidecarEvent;

    #[test]
    fn json_form_parses_to_the_same_raw_message() {
        let content = Content::new(Sizes::Realistic);
        for index in 0..30 {
            let mut out = String::new();
            content.write_raw_json(&mut out, 7, index, 1_700_000_000_000);
            let parsed: RawMessage = serde_json::from_str(&out).expect("valid json");
            assert_eq!(parsed, content.raw(7, index, 1_700_000_000_000));
            assert_eq!(message_index(&parsed.id), Some(index));
        }
    }

    #[test]
    fn mix_has_every_kind_and_realistic_sizes() {
        let content = Content::new(Sizes::Realistic);
        let raws: Vec<_> = (0..1000).map(|i| content.raw(i / 10, i, 0)).collect();
        for kind in ["text", "thinking", "tool_call", "tool_result"] {
            assert!(raws.iter().any(|r| r.kind == kind), "{kind} missing");
        }
        let mean = (0..1000)
            .map(|i| content.content_len(i / 10, i))
            .sum::<usize>()
            / 1000;
        assert!((1500..6000).contains(&mean), "mean content {mean} B");
        let small = Content::new(Sizes::Small);
        assert!((0..100).all(|i| small.content_len(0, i) < 300));
    }

    #[test]
    fn finish_events_are_status_done_then_cost() {
        let [status, cost] = finish_events("p-1", 10);
        assert!(matches!(status, SidecarEvent::Status(ref s) if s.status == "done"));
        assert!(matches!(cost, SidecarEvent::Cost(ref c) if c.input_tokens == 4000));
    }
}
