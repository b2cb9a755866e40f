//! Claude Code's `--output-format stream-json --verbose` (and the events of the older `--output-format
//! json` array, which are the same objects).
//!
//! Lines: `system` (subtype `init`, `api_retry`, `compact_boundary`, `status`, task notifications ...),
//! `assistant` (one API message, often spread over several lines, one content block each, all with the
//! same `message.id` and each repeating a partial `usage`; or Claude's synthetic reply to a failed API call,
//! marked `error`), `user` (tool results), `result` (the run's totals and outcome) and newer kinds
//! (`rate_limit_event`, `tool_progress`, `conversation_reset`, `stream_event`, ...). Usage is taken from
//! the `result` line only: summing the per-line usage would count one API message several times.
//!
//! Shown as system messages: init, retries (`retry`, which health reports as "retrying: <reason>"),
//! errors, compaction, status changes and task starts/ends (`notice`). Kept but not shown (`status`): task
//! progress, hooks, rate limits, tool progress. Skipped on purpose: `stream_event` partials (the whole
//! message follows) and unknown kinds; no line ever fails a run.

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
    /// The text of the last synthetic API-error reply, shown already.
    api_error: Option<String>,
}

impl ClaudeAdapter {
    pub fn new() -> ClaudeAdapter {
        ClaudeAdapter {
            ids: RunIds::new("claude"),
            blocks_seen: HashMap::new(),
            api_error: None,
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
            Some("api_retry") => out.push(message(id, "retry", None, retry_content(line), at)),
            Some("compact_boundary") => {
                let meta = line.get("compact_metadata");
                let trigger = meta.and_then(|m| str_at(m, "trigger")).unwrap_or("manual");
                let text = match meta
                    .and_then(|m| m.get("pre_tokens"))
                    .and_then(Value::as_u64)
                {
                    Some(n) => format!("Context compacted ({trigger}, {n} tokens before)"),
                    None => format!("Context compacted ({trigger})"),
                };
                out.push(notice(id, text, "compact_boundary", at));
            }
            Some("status") if str_at(line, "status").is_some() => {
                let text = format!("Status: {}", str_at(line, "status").unwrap_or(""));
                out.push(notice(id, text, "status", at));
            }
            Some("task_started") => {
                let text = format!(
                    "Task started: {}",
                    str_at(line, "description").unwrap_or("")
                );
                out.push(notice(id, text, "task_started", at));
            }
            Some("task_notification") => {
                let text = format!(
                    "Task {}: {}",
                    str_at(line, "status").unwrap_or("ended"),
                    str_at(line, "summary").unwrap_or("")
                );
                out.push(notice(id, text, "task_notification", at));
            }
            subtype => {
                // Task progress, hooks, ...: not shown, kept small; the big fields (a subagent's whole
                // prompt) stay out.
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
        if line.get("error").is_some_and(|e| !e.is_null()) {
            return self.api_error(line, at, out);
        }
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

    /// Claude's synthetic reply to a failed API call (`"error": "authentication_failed"`, model
    /// `<synthetic>`): shown once, as an error, not as something the model said; the `result` line that
    /// repeats it adds no second message.
    fn api_error(&mut self, line: &Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        let blocks = line
            .get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array);
        let text: Vec<&str> = blocks
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|b| str_at(b, "text"))
            .collect();
        let text = if text.is_empty() {
            format!("API error: {}", str_at(line, "error").unwrap_or("unknown"))
        } else {
            text.join("\n")
        };
        let id = format!("{}:error", self.line_id(line));
        out.push(message(
            id,
            "error",
            parent_of(line),
            json!({"message": text}),
            at,
        ));
        self.api_error = Some(text);
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
            if self.api_error.take().as_deref() == Some(text.as_str()) {
                // Already shown from the synthetic reply.
                out.push(AdapterEvent::Finished(Err(text)));
                return;
            }
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
            // A long tool still running: a sign of life, not shown.
            Some("tool_progress") => {
                let mut content = Map::new();
                content.insert("subtype".into(), "tool_progress".into());
                for (from, to) in [
                    ("tool_name", "toolName"),
                    ("tool_use_id", "toolUseId"),
                    ("elapsed_time_seconds", "elapsedSeconds"),
                ] {
                    if let Some(v) = line.get(from).filter(|v| !v.is_null()) {
                        content.insert(to.into(), v.clone());
                    }
                }
                let id = self.line_id(line);
                out.push(message(id, "status", None, content.into(), at));
            }
            // The conversation continues under a new id: a follow-up must resume that one.
            Some("conversation_reset") => {
                let new_id = ["newConversationId", "new_conversation_id", "session_id"]
                    .iter()
                    .find_map(|k| str_at(line, k).filter(|s| !s.is_empty()));
                if let Some(id) = new_id {
                    // Shown, and kept with the session: a resume (after a restart or a stall) must
                    // take the new id too, not only this run's follow-ups.
                    let text = format!("Conversation reset: it goes on as {id}");
                    let content = json!({"message": text, "conversationId": id});
                    out.push(message(self.line_id(line), "notice", None, content, at));
                    out.push(AdapterEvent::ProviderSession(id.to_owned()));
                }
            }
            // stream_event: partial messages (`--include-partial-messages`), which the whole `assistant`
            // line repeats; control requests and kinds newer than this adapter: nothing the store shows.
            _ => {}
        }
    }
}

/// `api_retry`: `{attempt, max_retries, retry_delay_ms, error_status, error}` as a shown retry with the
/// reason health reports ("401 authentication_failed").
fn retry_content(line: &Value) -> Value {
    let error = str_at(line, "error").unwrap_or("unknown");
    let reason = match line.get("error_status").and_then(Value::as_u64) {
        Some(status) => format!("{status} {error}"),
        None => error.to_owned(),
    };
    let attempt = line.get("attempt").and_then(Value::as_u64).unwrap_or(0);
    let text = match line.get("max_retries").and_then(Value::as_u64) {
        Some(max) => format!("API retry {attempt}/{max}: {reason}"),
        None => format!("API retry {attempt}: {reason}"),
    };
    let mut content = Map::new();
    content.insert("message".into(), text.into());
    content.insert("reason".into(), reason.into());
    content.insert("attempt".into(), attempt.into());
    if let Some(delay) = line.get("retry_delay_ms").filter(|d| d.is_number()) {
        content.insert("retryDelayMs".into(), delay.clone());
    }
    content.into()
}

/// A line worth showing as a system message (`subtype` says which kind of line it came from).
fn notice(id: String, text: String, subtype: &str, at: UnixMs) -> AdapterEvent {
    message(
        id,
        "notice",
        None,
        json!({"message": text, "subtype": subtype}),
        at,
    )
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
