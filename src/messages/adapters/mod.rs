//! Provider stream adapters: each reads one provider's native output (Claude's `stream-json`, Codex's
//! `exec --json`, Ollama's `/api/chat` chunks), one parsed JSON value at a time, and says what it means in
//! the store's terms: raw messages for `agent.message`, cost totals, the provider's own session id, and
//! the end of the run.
//!
//! Adapters are pure: no I/O; the clock is read only for timestamps the provider did not give and for
//! the run tag below. Process runners
//! read stdout with [`parse_line`], feed each value to the adapter and forward the events; the `convert`
//! subcommand feeds a recorded transcript the same way.
//!
//! Ids: a raw message's id comes from the provider's own ids where they are unique for good (Claude's
//! message, tool-use and line ids). Where they are not (Codex numbers its items `item_0, item_1, ...` anew
//! in every process, Ollama has no ids at all), the id is scoped by a run tag that is unique per adapter
//! instance, so a follow-up run in the same session never repeats an id.

mod claude;
mod codex;
mod line;
mod ollama;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::Value;

use crate::config::ProviderKind;
use crate::messages::wire::{now_ms, RawMessage, UnixMs};

pub use claude::ClaudeAdapter;
pub use codex::CodexAdapter;
pub use line::{parse_line, NotJson};
pub use ollama::OllamaAdapter;

/// One thing a provider's stream said, in the store's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum AdapterEvent {
    /// A raw message for `agent.message` (text, thinking, tool_call, tool_result, init, error, status,
    /// compaction, cost ...), converted later by `convert::convert_raw_message`.
    Message(RawMessage),
    /// Totals so far, for `agent.cost` (never a per-line sum).
    Cost {
        cost_usd: f64,
        input_tokens: u64,
        output_tokens: u64,
    },
    /// The provider's own session or thread id, for resuming a follow-up.
    ProviderSession(String),
    /// The run ended: Ok → status done, Err(message) → status error.
    Finished(Result<(), String>),
}

/// Reads one provider's native stream, one parsed JSON value (one stdout line or one HTTP chunk) at a time.
pub trait Adapter: Send {
    fn feed(&mut self, value: &serde_json::Value, out: &mut Vec<AdapterEvent>);
}

/// The adapter for a provider kind (claude, codex, ollama).
///
/// Sidecar and synthetic providers have no native format of their own: what they say is taken to be raw
/// messages already (`{"id","type","content",...}`), passed on as they are; anything else is dropped. A
/// sidecar configured with `adapter = "claude"` etc. should be given that kind's adapter instead.
pub fn adapter_for(kind: ProviderKind) -> Box<dyn Adapter> {
    match kind {
        ProviderKind::Claude => Box::new(ClaudeAdapter::new()),
        ProviderKind::Codex => Box::new(CodexAdapter::new()),
        ProviderKind::Ollama => Box::new(OllamaAdapter::new()),
        ProviderKind::Sidecar | ProviderKind::Synthetic => Box::new(RawPassthrough),
    }
}

/// Values that already are raw messages.
struct RawPassthrough;

impl Adapter for RawPassthrough {
    fn feed(&mut self, value: &Value, out: &mut Vec<AdapterEvent>) {
        if let Ok(raw) = RawMessage::deserialize(value) {
            out.push(AdapterEvent::Message(raw));
        }
    }
}

/// Ids for one adapter instance: a tag unique to the instance (time of creation plus a process-wide
/// counter), then either the provider's local id or a running number.
struct RunIds {
    tag: String,
    next: u64,
}

impl RunIds {
    fn new(provider: &str) -> RunIds {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        RunIds {
            tag: format!("{provider}-{:x}.{instance:x}", now_ms()),
            next: 0,
        }
    }

    /// An id for something the provider gave no id.
    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.tag, self.next)
    }

    /// An id for something the provider named with an id unique only within this run.
    fn scoped(&self, local: &str) -> String {
        // ':' keeps these apart from the fresh ids whatever the provider's local id looks like.
        format!("{}:{local}", self.tag)
    }
}

/// A raw message event.
fn message(
    id: String,
    kind: &str,
    parent_id: Option<String>,
    content: Value,
    timestamp: UnixMs,
) -> AdapterEvent {
    AdapterEvent::Message(RawMessage {
        id,
        kind: kind.into(),
        parent_id,
        content: content.into(),
        timestamp,
    })
}

/// The time a value says it happened, if it says: a number of Unix milliseconds or an RFC 3339 UTC
/// timestamp (`2024-07-02T11:45:16.216898458Z`). Anything else → None, and the caller uses now.
fn timestamp_at(value: &Value, key: &str) -> Option<UnixMs> {
    match value.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as UnixMs)),
        Value::String(s) => {
            let at = humantime::parse_rfc3339(s).ok()?;
            let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
            UnixMs::try_from(since.as_millis()).ok()
        }
        _ => None,
    }
}

/// A string field, if it is one.
fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key)?.as_str()
}

/// A token count: a non-negative number, else 0 (counts may be missing or null on some lines).
fn count_at(value: Option<&Value>, key: &str) -> u64 {
    let Some(n) = value.and_then(|v| v.get(key)) else {
        return 0;
    };
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .unwrap_or(0)
}

/// Helpers for the adapters' tests: feed JSON lines, look at what came out.
#[cfg(test)]
mod testing {
    use super::{Adapter, AdapterEvent};
    use crate::messages::wire::RawMessage;

    /// Feeds each line (JSON text written in the test) and returns every event.
    pub(super) fn feed_all(adapter: &mut dyn Adapter, lines: &[&str]) -> Vec<AdapterEvent> {
        let mut out = Vec::new();
        for line in lines {
            let value = serde_json::from_str(line).expect("test lines are JSON");
            adapter.feed(&value, &mut out);
        }
        out
    }

    /// The raw messages among the events, in order.
    pub(super) fn raws(events: &[AdapterEvent]) -> Vec<&RawMessage> {
        events
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Message(raw) => Some(raw),
                _ => None,
            })
            .collect()
    }

    /// The kinds of the raw messages, in order.
    pub(super) fn kinds(events: &[AdapterEvent]) -> Vec<&str> {
        raws(events).iter().map(|r| r.kind.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adapter_for_picks_the_kind_s_adapter() {
        let mut out = Vec::new();
        adapter_for(ProviderKind::Claude).feed(
            &json!({"type": "system", "subtype": "init", "session_id": "s1", "model": "m"}),
            &mut out,
        );
        assert!(out.contains(&AdapterEvent::ProviderSession("s1".into())));
        out.clear();
        adapter_for(ProviderKind::Codex).feed(
            &json!({"type": "thread.started", "thread_id": "t1"}),
            &mut out,
        );
        assert!(out.contains(&AdapterEvent::ProviderSession("t1".into())));
        out.clear();
        adapter_for(ProviderKind::Ollama).feed(&json!({"error": "no model"}), &mut out);
        assert!(out.contains(&AdapterEvent::Finished(Err("no model".into()))));
    }

    #[test]
    fn sidecar_values_pass_as_raw_messages() {
        let mut out = Vec::new();
        let mut adapter = adapter_for(ProviderKind::Sidecar);
        adapter.feed(
            &json!({"id": "m1", "type": "text", "content": {"text": "hi"}, "timestamp": 5}),
            &mut out,
        );
        adapter.feed(&json!({"no": "id"}), &mut out);
        assert_eq!(out.len(), 1);
        let AdapterEvent::Message(raw) = &out[0] else {
            panic!("not a message: {out:?}")
        };
        assert_eq!(
            (raw.id.as_str(), raw.kind.as_str(), raw.timestamp),
            ("m1", "text", 5)
        );
    }

    #[test]
    fn run_ids_differ_between_instances() {
        let (mut a, b) = (RunIds::new("x"), RunIds::new("x"));
        assert_ne!(a.scoped("item_0"), b.scoped("item_0"));
        assert_ne!(a.fresh(), a.fresh());
    }

    #[test]
    fn timestamps_come_from_numbers_or_rfc3339() {
        let v = json!({"n": 1700000000123_i64, "f": 1.5e12, "s": "2024-07-02T11:45:16.216898458Z", "bad": "yesterday"});
        assert_eq!(timestamp_at(&v, "n"), Some(1_700_000_000_123));
        assert_eq!(timestamp_at(&v, "f"), Some(1_500_000_000_000));
        assert_eq!(timestamp_at(&v, "s"), Some(1_719_920_716_216));
        assert_eq!(timestamp_at(&v, "bad"), None);
        assert_eq!(timestamp_at(&v, "missing"), None);
    }

    #[test]
    fn counts_default_to_zero() {
        let v = json!({"a": 3, "b": null, "c": -1, "d": 2.0});
        assert_eq!(count_at(Some(&v), "a"), 3);
        assert_eq!(count_at(Some(&v), "b"), 0);
        assert_eq!(count_at(Some(&v), "c"), 0);
        assert_eq!(count_at(Some(&v), "d"), 2);
        assert_eq!(count_at(None, "a"), 0);
    }
}
