//! Claude Code's `--output-format stream-json --verbose` (and the events of the older `--output-format
//! json` array, which are the same objects).
//!
//! Lines: `system` (subtype `init`, `compact_boundary`, task progress ...), `assistant` (one API message,
//! often spread over several lines, one content block each, all with the same `message.id` and each
//! repeating a partial `usage`), `user` (tool results), `result` (the run's totals and outcome) and
//! newer kinds (`rate_limit_event`, `stream_event`, ...). Usage is taken from the `result` line only:
//! summing the per-line usage would count one API message several times.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{count_at, message, str_at, timestamp_at, Adapter, AdapterEvent, RunIds};
use crate::messages::wire::{now_ms, UnixMs};

/// Reads Claude Code's stream-json.
pub struct ClaudeAdapter {
    ids: RunIds,
    /// Content blocks seen so far per API message id: since one API message arrives over several lines,
    /// a block's index within its line (always 0) does not tell blocks apart; its index within the
    /// message does.
    blocks_seen: HashMap<String, usize>,
}

impl ClaudeAdapter {
    pub fn new() -> ClaudeAdapter {
        ClaudeAdapter {
            ids: RunIds::new("claude"),
            blocks_seen: HashMap::new(),
        }
    }

    fn system(&mut self, line: &Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        let id = self.line_id(line);
        match str_at(line, "subtype") {
            Some("init") => {
                let mut content = Map::new();
                if let Some(model) = line.get("model") {
                    content.insert("model".into(), model.clone());
                }
                let session = str_at(line, "session_id").filter(|s| !s.is_empty());
                if let Some(session) = session {
                    content.insert("sessionId".into(), session.into());
                }
                out.push(message(id, "init", None, content.into(), at));
                if let Some(session) = session {
                    out.push(AdapterEvent::ProviderSession(session.to_owned()));
                }
            }
            Some("compact_boundary") => {
                let metadata = line.get("compact_metadata").cloned();
                out.push(message(
                    id,
                    "compaction",
                    None,
                    metadata.unwrap_or_else(|| json!({})),
                    at,
                ));
            }
            subtype => {
                // Task started/progress/notification, hooks, ...: kept small, the big fields (a
                // subagent's whole prompt) stay out.
                let mut content = Map::new();
                content.insert("subtype".into(), subtype.unwrap_or("").into());
                for (from, to) in [
                    ("status", "status"),
                    ("description", "description"),
                    ("tool_use_id", "toolUseId"),
                ] {
                    if let Some(v) = line.get(from).filter(|v| v.is_string()) {
                        content.insert(to.into(), v.clone());
                    }
                }
                out.push(message(id, "status", None, content.into(), at));
            }
        }
    }

    fn assistant(&mut self, line: &Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        let api_message = line.get("message");
        let message_id = api_message.and_then(|m| str_at(m, "id"));
        let Some(blocks) = api_message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
        else {
            return;
        };
        let parent = parent_of(line);
        for (index, block) in blocks.iter().enumerate() {
            let id = self.block_id(line, message_id, index);
            let (kind, content) = match str_at(block, "type") {
                Some("text") => ("text", json!({"text": field_or_empty(block, "text")})),
                Some("thinking") => (
                    "thinking",
                    json!({"text": field_or_empty(block, "thinking")}),
                ),
                Some("tool_use" | "server_tool_use" | "mcp_tool_use") => {
                    let mut content = Map::new();
                    content.insert("name".into(), field_or_empty(block, "name"));
                    // No input → no toolInput, as in the original.
                    if let Some(input) = block.get("input") {
                        content.insert("input".into(), input.clone());
                    }
                    // The tool-use id is unique for good, and tool results refer to it.
                    let id = str_at(block, "id").map(str::to_owned).unwrap_or(id);
                    out.push(message(id, "tool_call", parent.clone(), content.into(), at));
                    continue;
                }
                // redacted_thinking, results of server tools, images, kinds newer than this adapter.
                _ => continue,
            };
            out.push(message(id, kind, parent.clone(), content, at));
        }
    }

    fn user(&mut self, line: &Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        // A plain string is a prompt echoed back (`--replay-user-messages`); text blocks are a subagent's
        // prompt. The store shows the user's prompts itself, so only tool results are read here.
        let Some(blocks) = line
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
        else {
            return;
        };
        let parent = parent_of(line);
        for block in blocks {
            if str_at(block, "type") != Some("tool_result") {
                continue;
            }
            let tool_use_id = str_at(block, "tool_use_id");
            let id = match tool_use_id {
                Some(t) => format!("{t}:result"),
                None => self.ids.fresh(),
            };
            let output = match block.get("content") {
                None | Some(Value::Null) => Value::from(""),
                Some(Value::Array(parts)) => Value::from(
                    parts
                        .iter()
                        .filter(|p| str_at(p, "type") == Some("text"))
                        .filter_map(|p| str_at(p, "text"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                Some(other) => other.clone(),
            };
            let is_error = block.get("is_error").and_then(Value::as_bool) == Some(true);
            let mut content = Map::new();
            content.insert("output".into(), output);
            content.insert("isError".into(), is_error.into());
            if let Some(t) = tool_use_id {
                content.insert("toolUseId".into(), t.into());
            }
            out.push(message(
                id,
                "tool_result",
                parent.clone(),
                content.into(),
                at,
            ));
        }
    }

    fn result(&mut self, line: &Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        let id = self.line_id(line);
        let usage = line.get("usage");
        let cost_usd = line.get("total_cost_usd").and_then(Value::as_f64);
        if cost_usd.is_some() || usage.is_some() {
            // Input tokens as billed: fresh input plus cache writes plus cache reads, which the API
            // reports apart (`input_tokens` alone is often single digits on a cached run).
            let input_tokens = count_at(usage, "input_tokens")
                .saturating_add(count_at(usage, "cache_creation_input_tokens"))
                .saturating_add(count_at(usage, "cache_read_input_tokens"));
            let output_tokens = count_at(usage, "output_tokens");
            let cost_usd = cost_usd.unwrap_or(0.0);
            out.push(AdapterEvent::Cost {
                cost_usd,
                input_tokens,
                output_tokens,
            });
            let mut content = Map::new();
            content.insert("costUsd".into(), cost_usd.into());
            content.insert("inputTokens".into(), input_tokens.into());
            content.insert("outputTokens".into(), output_tokens.into());
            for (from, to) in [("duration_ms", "durationMs"), ("num_turns", "numTurns")] {
                if let Some(v) = line.get(from).filter(|v| v.is_number()) {
                    content.insert(to.into(), v.clone());
                }
            }
            out.push(message(
                format!("{id}:cost"),
                "cost",
                None,
                content.into(),
                at,
            ));
        }
        let subtype = str_at(line, "subtype");
        let is_error = line.get("is_error").and_then(Value::as_bool) == Some(true);
        if is_error || subtype != Some("success") {
            let text = failure_text(line, subtype);
            out.push(message(
                format!("{id}:error"),
                "error",
                None,
                json!({"message": text}),
                at,
            ));
            out.push(AdapterEvent::Finished(Err(text)));
        } else {
            out.push(AdapterEvent::Finished(Ok(())));
        }
    }

    /// The line's own uuid (unique for good), else a fresh id (the older json form has no uuids).
    fn line_id(&mut self, line: &Value) -> String {
        match str_at(line, "uuid") {
            Some(uuid) => uuid.to_owned(),
            None => self.ids.fresh(),
        }
    }

    /// `<message id>:<block index within the message>`, else `<line uuid>:<index in line>`, else fresh.
    fn block_id(&mut self, line: &Value, message_id: Option<&str>, index: usize) -> String {
        if let Some(message_id) = message_id {
            let seen = self.blocks_seen.entry(message_id.to_owned()).or_insert(0);
            let n = *seen;
            *seen += 1;
            return format!("{message_id}:{n}");
        }
        match str_at(line, "uuid") {
            Some(uuid) => format!("{uuid}:{index}"),
            None => self.ids.fresh(),
        }
    }
}

impl Default for ClaudeAdapter {
    fn default() -> Self {
        ClaudeAdapter::new()
    }
}

impl Adapter for ClaudeAdapter {
    fn feed(&mut self, line: &Value, out: &mut Vec<AdapterEvent>) {
        let at = timestamp_at(line, "timestamp").unwrap_or_else(now_ms);
        match str_at(line, "type") {
            Some("system") => self.system(line, at, out),
            Some("assistant") => self.assistant(line, at, out),
            Some("user") => self.user(line, at, out),
            Some("result") => self.result(line, at, out),
            Some("rate_limit_event") => {
                let info = line.get("rate_limit_info").cloned().unwrap_or(Value::Null);
                let id = self.line_id(line);
                out.push(message(id, "status", None, json!({"rateLimit": info}), at));
            }
            // stream_event (partial messages), control requests, kinds newer than this adapter: nothing
            // the store shows or counts.
            _ => {}
        }
    }
}

/// `parent_tool_use_id`: the Task tool call a subagent's line belongs to.
fn parent_of(line: &Value) -> Option<String> {
    str_at(line, "parent_tool_use_id").map(str::to_owned)
}

fn field_or_empty(block: &Value, key: &str) -> Value {
    block.get(key).cloned().unwrap_or_else(|| Value::from(""))
}

/// What to tell the user about a failed run: Claude's own words (`result`, or newer CLIs' `errors`), else
/// the subtype (`error_max_turns`, `error_during_execution`).
fn failure_text(line: &Value, subtype: Option<&str>) -> String {
    if let Some(text) = str_at(line, "result").filter(|t| !t.trim().is_empty()) {
        return text.to_owned();
    }
    let errors: Vec<&str> = line
        .get("errors")
        .and_then(Value::as_array)
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    format!("Claude run ended with {}", subtype.unwrap_or("no result"))
}

#[cfg(test)]
mod tests;
