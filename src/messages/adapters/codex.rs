//! Codex's `codex exec --json`: `thread.started`, `turn.started`, `item.started` / `item.updated` /
//! `item.completed` (one item can be seen up to three times), `turn.completed` / `turn.failed`, and
//! non-fatal `error` lines.
//!
//! Item types and the tool names they show as (Claude Code's names where Codex does the same thing, so
//! the dashboard shows both providers alike):
//!
//! | item                | shows as                                                           |
//! |---------------------|--------------------------------------------------------------------|
//! | `agent_message`     | text, once completed                                               |
//! | `reasoning`         | thinking, once completed                                           |
//! | `command_execution` | tool call `Bash` `{command}`, then its output and exit code        |
//! | `file_change`       | tool call `Edit` `{file_path (one file only), changes}`, then a list of the changes |
//! | `mcp_tool_call`     | tool call `mcp__<server>__<tool>` with its arguments, then its result or error |
//! | `web_search`        | tool call `WebSearch` `{query}`, then an empty result (Codex reports none) |
//! | `todo_list`         | tool call `TodoWrite` `{todos}`, status on updates, a checklist when completed |
//! | `error`             | error, not terminal                                                |
//!
//! Top-level `error` lines: "Reconnecting... n/5 (reason)" is a retry (shown; health says "retrying:
//! reason"); any other is an error, which the `turn.failed` that usually follows with the same text does
//! not show a second time. `turn.completed` usage is the thread's running total.
//!
//! A tool call is emitted the first time its item is seen, its result when the item completes; an item
//! seen only as `item.completed` gives both. Nothing is emitted twice for one item.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::{count_at, message, str_at, timestamp_at, Adapter, AdapterEvent, RunIds};
use crate::messages::wire::{now_ms, UnixMs};

/// Reads `codex exec --json`.
pub struct CodexAdapter {
    ids: RunIds,
    /// Items whose tool call was emitted.
    called: HashSet<String>,
    /// Items whose final form (text, result, error) was emitted.
    finished: HashSet<String>,
    /// The thread's totals, as the last `turn.completed` reported them.
    input_tokens: u64,
    output_tokens: u64,
    /// The text of the last non-retry `error` line, which `turn.failed` repeats.
    last_error: Option<String>,
}

impl CodexAdapter {
    pub fn new() -> CodexAdapter {
        CodexAdapter {
            ids: RunIds::new("codex"),
            called: HashSet::new(),
            finished: HashSet::new(),
            input_tokens: 0,
            output_tokens: 0,
            last_error: None,
        }
    }

    fn turn_completed(&mut self, line: &Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        let usage = line.get("usage");
        // `input_tokens` already includes `cached_input_tokens` (OpenAI reports the cached part of the
        // prompt as a subset), so the cached count is not added again. The counts are the thread's
        // totals so far (a resumed thread goes on from its earlier runs): they are the session's totals
        // as they are, and this turn's share is the difference from the last ones seen.
        let total_input = count_at(usage, "input_tokens").max(self.input_tokens);
        let total_output = count_at(usage, "output_tokens").max(self.output_tokens);
        let input = total_input - self.input_tokens;
        let output = total_output - self.output_tokens;
        self.input_tokens = total_input;
        self.output_tokens = total_output;
        // Codex prints no price: the cost stays 0.
        out.push(AdapterEvent::Cost {
            cost_usd: 0.0,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
        });
        let content = json!({
            "costUsd": 0.0,
            "inputTokens": input,
            "cachedInputTokens": count_at(usage, "cached_input_tokens"),
            "outputTokens": output,
        });
        out.push(message(self.ids.fresh(), "cost", None, content, at));
        out.push(AdapterEvent::Finished(Ok(())));
    }

    fn item(&mut self, item: &Value, completed: bool, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        // Items without an id cannot be recognised when seen again; each sighting stands alone.
        let key = str_at(item, "id").map_or_else(|| self.ids.fresh(), str::to_owned);
        let kind = str_at(item, "type").or_else(|| str_at(item, "item_type"));
        match kind {
            Some("agent_message" | "assistant_message") if completed => self.once(
                &key,
                "text",
                json!({"text": text_of(item, "text")}),
                at,
                out,
            ),
            Some("reasoning") if completed => self.once(
                &key,
                "thinking",
                json!({"text": text_of(item, "text")}),
                at,
                out,
            ),
            Some("command_execution") => {
                let input = json!({"command": text_of(item, "command")});
                self.call(&key, "Bash", Some(input), at, out);
                if completed {
                    self.result(&key, command_result(item), at, out);
                }
            }
            Some("file_change") => {
                self.call(&key, "Edit", Some(file_change_input(item)), at, out);
                if completed {
                    self.result(&key, file_change_result(item), at, out);
                }
            }
            Some("mcp_tool_call") => {
                let name = format!(
                    "mcp__{}__{}",
                    str_at(item, "server").unwrap_or("unknown"),
                    str_at(item, "tool").unwrap_or("unknown")
                );
                let input = item.get("arguments").filter(|a| !a.is_null()).cloned();
                self.call(&key, &name, input, at, out);
                if completed {
                    self.result(&key, mcp_result(item), at, out);
                }
            }
            Some("web_search") => {
                let input = json!({"query": text_of(item, "query")});
                self.call(&key, "WebSearch", Some(input), at, out);
                if completed {
                    self.result(&key, json!({"output": "", "isError": false}), at, out);
                }
            }
            Some("todo_list") => self.todo_list(&key, item, completed, at, out),
            Some("error") => {
                let content = json!({"message": text_of(item, "message")});
                self.once(&key, "error", content, at, out);
            }
            // Messages not yet completed, and item types newer than this adapter.
            _ => {}
        }
    }

    fn todo_list(
        &mut self,
        key: &str,
        item: &Value,
        completed: bool,
        at: UnixMs,
        out: &mut Vec<AdapterEvent>,
    ) {
        let todos = item.get("items").cloned().unwrap_or_else(|| json!([]));
        if self.called.contains(key) && !completed {
            // A step changed: not a new tool call, but worth telling live listeners.
            out.push(message(
                self.ids.fresh(),
                "status",
                None,
                json!({"todos": todos}),
                at,
            ));
            return;
        }
        self.call(key, "TodoWrite", Some(json!({"todos": todos})), at, out);
        if completed {
            let checklist: Vec<String> = todos
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    let done = t.get("completed").and_then(Value::as_bool) == Some(true);
                    format!(
                        "[{}] {}",
                        if done { "x" } else { " " },
                        str_at(t, "text").unwrap_or("")
                    )
                })
                .collect();
            let content = json!({"output": checklist.join("\n"), "isError": false});
            self.result(key, content, at, out);
        }
    }

    /// The tool call for an item, the first time the item is seen.
    fn call(
        &mut self,
        key: &str,
        name: &str,
        input: Option<Value>,
        at: UnixMs,
        out: &mut Vec<AdapterEvent>,
    ) {
        if !self.called.insert(key.to_owned()) {
            return;
        }
        let mut content = Map::new();
        content.insert("name".into(), name.into());
        if let Some(input) = input {
            content.insert("input".into(), input);
        }
        out.push(message(
            self.ids.scoped(key),
            "tool_call",
            None,
            content.into(),
            at,
        ));
    }

    /// The tool result for an item, once.
    fn result(&mut self, key: &str, content: Value, at: UnixMs, out: &mut Vec<AdapterEvent>) {
        if self.finished.insert(key.to_owned()) {
            let id = format!("{}:result", self.ids.scoped(key));
            out.push(message(id, "tool_result", None, content, at));
        }
    }

    /// A message that is whole only once the item completes (text, thinking, error), once.
    fn once(
        &mut self,
        key: &str,
        kind: &str,
        content: Value,
        at: UnixMs,
        out: &mut Vec<AdapterEvent>,
    ) {
        if self.finished.insert(key.to_owned()) {
            out.push(message(self.ids.scoped(key), kind, None, content, at));
        }
    }
}

impl Default for CodexAdapter {
    fn default() -> Self {
        CodexAdapter::new()
    }
}

impl Adapter for CodexAdapter {
    fn feed(&mut self, line: &Value, out: &mut Vec<AdapterEvent>) {
        let at = timestamp_at(line, "timestamp").unwrap_or_else(now_ms);
        match str_at(line, "type") {
            Some("thread.started") => {
                let thread = str_at(line, "thread_id").filter(|t| !t.is_empty());
                let content = match thread {
                    Some(t) => json!({"sessionId": t}),
                    None => json!({}),
                };
                out.push(message(self.ids.fresh(), "init", None, content, at));
                if let Some(thread) = thread {
                    out.push(AdapterEvent::ProviderSession(thread.to_owned()));
                }
            }
            Some("turn.started") => {
                let content = json!({"status": "turn.started"});
                out.push(message(self.ids.fresh(), "status", None, content, at));
            }
            Some("turn.completed") => self.turn_completed(line, at, out),
            Some("turn.failed") => {
                let text = line
                    .get("error")
                    .and_then(|e| str_at(e, "message"))
                    .unwrap_or("Codex turn failed")
                    .to_owned();
                // Codex prints the fatal error as an `error` line first, then the same text here.
                if self.last_error.take().as_deref() != Some(text.as_str()) {
                    let content = json!({"message": text});
                    out.push(message(self.ids.fresh(), "error", None, content, at));
                }
                out.push(AdapterEvent::Finished(Err(text)));
            }
            // "Reconnecting... 2/5 (...)": Codex retries on its own; shown, and reported to health as a
            // retry, which is not progress.
            Some("error") if retry_reason(line).is_some() => {
                let text = text_of(line, "message");
                let reason = retry_reason(line).unwrap_or_default();
                let content = json!({"message": text, "reason": reason});
                out.push(message(self.ids.fresh(), "retry", None, content, at));
            }
            // Another stream error; `turn.failed` is what ends the run.
            Some("error") => {
                let text = str_at(line, "message").unwrap_or("").to_owned();
                let content = json!({"message": text});
                out.push(message(self.ids.fresh(), "error", None, content, at));
                self.last_error = Some(text);
            }
            Some(phase @ ("item.started" | "item.updated" | "item.completed")) => {
                if let Some(item) = line.get("item") {
                    self.item(item, phase == "item.completed", at, out);
                }
            }
            _ => {}
        }
    }
}

/// For Codex's "Reconnecting... 2/5 (stream disconnected ...: reason)" lines, the reason in brackets (or
/// the whole text after "Reconnecting..."); None for other errors.
fn retry_reason(line: &Value) -> Option<String> {
    let text = str_at(line, "message")?
        .strip_prefix("Reconnecting...")?
        .trim();
    let reason = match (text.find('('), text.rfind(')')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    };
    Some(reason.trim().to_owned())
}

/// A string field as a JSON string, "" when missing.
fn text_of(value: &Value, key: &str) -> Value {
    Value::from(str_at(value, key).unwrap_or(""))
}

fn command_result(item: &Value) -> Value {
    let exit_code = item.get("exit_code").cloned().unwrap_or(Value::Null);
    let failed = matches!(str_at(item, "status"), Some("failed" | "declined"))
        || exit_code.as_i64().is_some_and(|c| c != 0);
    json!({
        "output": text_of(item, "aggregated_output"),
        "exitCode": exit_code,
        "isError": failed,
    })
}

fn changes_of(item: &Value) -> &[Value] {
    item.get("changes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `{file_path, changes}`: the path of a one-file change is named so that the dashboard shows it as the
/// tool's path, as it does for Claude's Edit.
fn file_change_input(item: &Value) -> Value {
    let changes = changes_of(item);
    let mut input = Map::new();
    if let [only] = changes {
        if let Some(path) = only.get("path").filter(|p| p.is_string()) {
            input.insert("file_path".into(), path.clone());
        }
    }
    input.insert("changes".into(), Value::from(changes.to_vec()));
    input.into()
}

/// One line per change (`add /path`), after a line naming the status when the patch did not apply.
fn file_change_result(item: &Value) -> Value {
    let status = str_at(item, "status").unwrap_or("completed");
    let mut lines: Vec<String> = Vec::new();
    if status != "completed" {
        lines.push(format!("Patch {status}"));
    }
    for change in changes_of(item) {
        let kind = str_at(change, "kind").unwrap_or("update");
        lines.push(format!("{kind} {}", str_at(change, "path").unwrap_or("?")));
    }
    json!({"output": lines.join("\n"), "isError": status == "failed"})
}

/// The error's message; else the result's text blocks; else its structured content; else the result.
fn mcp_result(item: &Value) -> Value {
    if let Some(error) = item.get("error").filter(|e| !e.is_null()) {
        let text = str_at(error, "message").map_or_else(|| error.to_string(), str::to_owned);
        return json!({"output": text, "isError": true});
    }
    let result = item.get("result").cloned().unwrap_or(Value::Null);
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| blocks.iter().filter_map(|b| str_at(b, "text")).collect())
        .unwrap_or_default();
    let output = if !texts.is_empty() {
        Value::from(texts.join("\n"))
    } else if let Some(structured) = result.get("structured_content").filter(|s| !s.is_null()) {
        structured.clone()
    } else {
        result
    };
    let failed = str_at(item, "status") == Some("failed");
    json!({"output": output, "isError": failed})
}

#[cfg(test)]
mod tests;
