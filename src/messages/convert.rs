//! The original store's `convertRawMessage`: how a raw message from a sidecar or a provider adapter
//! becomes the message the store shows, or nothing.
//!
//! The rules are the original's, line for line, including its JavaScript semantics (see `js`): a client
//! that compared the two stores must see the same `content`, `toolInput` and `toolPath` strings. Where the
//! original would have thrown, the choice made here is documented at the rule.

mod js;

use std::borrow::Cow;

use crate::messages::json_node::Node;
use crate::messages::wire::{AgentMessage, MsgRole, RawContent, RawMessage, ToolFields, ToolPath};

/// Bash commands longer than this many UTF-16 units are cut in `toolPath`.
const TOOL_PATH_MAX_UNITS: usize = 80;
/// Tool results longer than this many lines are cut.
const TOOL_RESULT_MAX_LINES: usize = 500;

/// The original convertRawMessage: Some(message with seq_id 0) or None for types that show nothing.
///
/// It takes the raw message by value: the id and the strings the message shows (a text, a tool's name,
/// its output) are moved out of the parsed JSON, not copied, so a message's content is written once
/// between the parse and the storage encoding. `seq_id` is left at 0: the session assigns it when it
/// appends the message.
pub fn convert_raw_message(raw: RawMessage) -> Option<AgentMessage> {
    let RawMessage {
        id,
        kind,
        mut content,
        timestamp,
        ..
    } = raw;
    let message = |role: MsgRole, content: String| AgentMessage {
        id,
        seq_id: 0,
        role,
        content,
        tool: None,
        timestamp,
    };
    match kind.as_str() {
        "text" => Some(message(
            MsgRole::Assistant,
            take_string_or(&mut content, "text", ""),
        )),
        "thinking" => Some(message(
            MsgRole::Thinking,
            take_string_or(&mut content, "text", ""),
        )),
        "tool_call" => {
            let name = take_string_or(&mut content, "name", "Tool");
            let input = content.get("input");
            // JSON.stringify(undefined) is undefined: the key is left out. `null` prints as "null".
            let tool_input = input.map(js::stringify_pretty);
            let shown = format_tool_input(&name, input, tool_input.as_deref());
            // A Bash command or a file path is usually both: held once, as the content.
            let tool_path = extract_tool_path(&name, input).map(|path| {
                if path == shown {
                    ToolPath::Content
                } else {
                    ToolPath::Own(path.into_owned())
                }
            });
            Some(AgentMessage {
                tool: ToolFields::boxed_at(Some(name), tool_input, tool_path),
                ..message(MsgRole::ToolCall, shown)
            })
        }
        "tool_result" => {
            let text = match content.take("output") {
                Some(Node::String(s)) => s,
                Some(other) => js::stringify_pretty(&other),
                // The original called `undefined.split` here and threw, losing the whole batch; an
                // empty result is what a reader expects of a tool that printed nothing.
                None => String::new(),
            };
            Some(message(
                MsgRole::ToolResult,
                truncate_output(text, TOOL_RESULT_MAX_LINES),
            ))
        }
        "init" => {
            let model = string_or(&content, "model", "");
            let shown = if model.is_empty() {
                "Session initialized".to_owned()
            } else {
                format!("Session initialized ({model})")
            };
            Some(message(MsgRole::System, shown))
        }
        "error" => {
            let shown = format!("Error: {}", string_or(&content, "message", "Unknown error"));
            Some(message(MsgRole::System, shown))
        }
        // Kinds added by this store's own adapters (not the original's): what a provider said that the
        // user should see, as it said it (an API retry, a compaction, a task ending).
        "retry" | "notice" => {
            let shown = take_string_or(&mut content, "message", "");
            Some(message(MsgRole::System, shown)).filter(|m| !m.content.is_empty())
        }
        // cost, status, compaction, unknown and anything else show nothing.
        _ => None,
    }
}

/// For an `init` raw message: the model it names (non-empty), which sets the session's model.
pub fn init_model(raw: &RawMessage) -> Option<String> {
    if raw.kind != "init" {
        return None;
    }
    Some(string_or(&raw.content, "model", "")).filter(|m| !m.is_empty())
}

/// The provider's own conversation id an init message names (Claude's session id, Codex's thread id), or a
/// conversation reset moves to, which a resume needs.
pub fn conversation_id(raw: &RawMessage) -> Option<String> {
    let id = match raw.kind.as_str() {
        "init" => string_or(&raw.content, "sessionId", ""),
        // An adapter's notice that the conversation goes on under a new id (Claude's conversation_reset).
        "notice" if raw.content.get("conversationId").is_some() => {
            string_or(&raw.content, "conversationId", "")
        }
        _ => return None,
    };
    Some(id).filter(|s| !s.is_empty())
}

/// `String(c?.[name] ?? fallback)`: `??` replaces both undefined and null, and nothing else (an empty
/// string or a 0 stays).
fn string_or(content: &RawContent, name: &str, fallback: &str) -> String {
    match content.get(name) {
        None | Some(Node::Null) => fallback.to_owned(),
        Some(v) => js::string_of(v),
    }
}

/// `string_or`, moving a string out of the content rather than copying it.
fn take_string_or(content: &mut RawContent, name: &str, fallback: &str) -> String {
    match content.take(name) {
        None | Some(Node::Null) => fallback.to_owned(),
        Some(Node::String(s)) => s,
        Some(v) => js::string_of(&v),
    }
}

/// The original `formatToolInput`: the Bash command, else the file path, else the whole input as pretty
/// JSON (`pretty`, written once for `toolInput` too); nothing for a falsy input.
fn format_tool_input(name: &str, input: Option<&Node>, pretty: Option<&str>) -> String {
    if !js::truthy(input) {
        return String::new();
    }
    if name == "Bash" {
        if let Some(command) = string_prop(input, "command") {
            return command.to_owned();
        }
    }
    if let Some(path) = string_prop(input, "file_path") {
        return path.to_owned();
    }
    pretty.unwrap_or_default().to_owned()
}

/// The original `extractToolPath`: `file_path`, else `path`, else (for Bash) the command cut at 80 UTF-16
/// units plus "...". Borrowed from the input where it is there as it is.
fn extract_tool_path<'a>(name: &str, input: Option<&'a Node>) -> Option<Cow<'a, str>> {
    if !js::truthy(input) {
        return None;
    }
    if let Some(path) = string_prop(input, "file_path").or_else(|| string_prop(input, "path")) {
        return Some(Cow::Borrowed(path));
    }
    if name != "Bash" {
        return None;
    }
    let command = string_prop(input, "command")?;
    if js::utf16_len(command) > TOOL_PATH_MAX_UNITS {
        Some(Cow::Owned(format!(
            "{}...",
            js::utf16_prefix(command, TOOL_PATH_MAX_UNITS)
        )))
    } else {
        Some(Cow::Borrowed(command))
    }
}

/// `typeof input[key] === 'string'`: only an object input has properties.
fn string_prop<'a>(input: Option<&'a Node>, key: &str) -> Option<&'a str> {
    input?.get(key)?.as_str()
}

/// The original `truncateOutput`: at most `max_lines` lines, then a line saying how many were left out.
/// Text within the limit is handed back as it is, without a copy.
fn truncate_output(text: String, max_lines: usize) -> String {
    // Counted with memchr: a tool's output is the largest text that passes here.
    let total = memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1;
    if total <= max_lines {
        return text;
    }
    let kept: Vec<&str> = text.split('\n').take(max_lines).collect();
    format!(
        "{}\n... ({} more lines)",
        kept.join("\n"),
        total - max_lines
    )
}

#[cfg(test)]
mod tests;
