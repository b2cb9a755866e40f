//! Ollama's `/api/chat` and `/api/generate` NDJSON chunks (streamed, or one whole response when
//! `stream: false`).
//!
//! Each `/api/chat` chunk carries a piece of `message.thinking` and/or `message.content`, possibly
//! `message.tool_calls`; an `/api/generate` chunk carries its pieces as top-level `thinking` and `response`;
//! the chunk with `done: true` carries the counts (`prompt_eval_count`, `eval_count`, durations in
//! nanoseconds), any of which may be missing. A failure mid-stream arrives as `{"error": "..."}`.
//!
//! Every non-empty piece becomes its own message, as it arrives, so the dashboard shows the answer
//! growing. Ollama gives no ids: they are scoped by the adapter's run tag.

use serde_json::{json, Map, Value};

use super::{count_at, message, str_at, timestamp_at, Adapter, AdapterEvent, RunIds};
use crate::messages::wire::{now_ms, UnixMs};

/// Reads Ollama `/api/chat` and `/api/generate` chunks.
pub struct OllamaAdapter {
    ids: RunIds,
    /// Totals over the requests this adapter has seen.
    input_tokens: u64,
    output_tokens: u64,
}

impl OllamaAdapter {
    pub fn new() -> OllamaAdapter {
        OllamaAdapter {
            ids: RunIds::new("ollama"),
            input_tokens: 0,
            output_tokens: 0,
        }
    }

    fn done(&mut self, chunk: &Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        let input = count_at(Some(chunk), "prompt_eval_count");
        let output = count_at(Some(chunk), "eval_count");
        self.input_tokens = self.input_tokens.saturating_add(input);
        self.output_tokens = self.output_tokens.saturating_add(output);
        // A local model costs nothing per token.
        out.push(AdapterEvent::Cost {
            cost_usd: 0.0,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
        });
        let mut content = Map::new();
        content.insert("costUsd".into(), 0.0.into());
        content.insert("inputTokens".into(), input.into());
        content.insert("outputTokens".into(), output.into());
        if chunk.get("eval_duration").is_some_and(Value::is_number) {
            let nanos = count_at(Some(chunk), "eval_duration");
            content.insert("evalDurationMs".into(), (nanos / 1_000_000).into());
        }
        if let Some(reason) = chunk.get("done_reason").filter(|r| r.is_string()) {
            content.insert("doneReason".into(), reason.clone());
        }
        out.push(message(self.ids.fresh(), "cost", None, content.into(), at));
        out.push(AdapterEvent::Finished(Ok(())));
    }
}

impl OllamaAdapter {
    /// The non-empty `thinking` and text (`text_field`) pieces of one chunk object, thinking first.
    fn pieces(&mut self, obj: &Value, text_field: &str, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        for (field, kind) in [("thinking", "thinking"), (text_field, "text")] {
            if let Some(text) = str_at(obj, field).filter(|t| !t.is_empty()) {
                let content = json!({"text": text});
                out.push(message(self.ids.fresh(), kind, None, content, at));
            }
        }
    }
}

impl Default for OllamaAdapter {
    fn default() -> Self {
        OllamaAdapter::new()
    }
}

impl Adapter for OllamaAdapter {
    fn feed(&mut self, chunk: &Value, out: &mut Vec<AdapterEvent>) {
        let at = timestamp_at(chunk, "created_at").unwrap_or_else(now_ms);
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let text = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_owned);
            out.push(message(
                self.ids.fresh(),
                "error",
                None,
                json!({"message": text}),
                at,
            ));
            out.push(AdapterEvent::Finished(Err(text)));
            return;
        }
        // `/api/generate` streams the pieces at the top level (`response`), `/api/chat` inside `message`.
        self.pieces(chunk, "response", at, out);
        if let Some(msg) = chunk.get("message") {
            self.pieces(msg, "content", at, out);
            let calls = msg.get("tool_calls").and_then(Value::as_array);
            for call in calls.map(Vec::as_slice).unwrap_or_default() {
                let function = call.get("function");
                let mut content = Map::new();
                let name = function.and_then(|f| f.get("name")).cloned();
                content.insert("name".into(), name.unwrap_or(Value::Null));
                if let Some(arguments) = function.and_then(|f| f.get("arguments")) {
                    content.insert("input".into(), arguments.clone());
                }
                out.push(message(
                    self.ids.fresh(),
                    "tool_call",
                    None,
                    content.into(),
                    at,
                ));
            }
        }
        if chunk.get("done").and_then(Value::as_bool) == Some(true) {
            self.done(chunk, at, out);
        }
    }
}

#[cfg(test)]
mod tests;
