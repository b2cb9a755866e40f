//! The conversion rules, one test per rule of the original, named after it.

use serde_json::{json, Value};

use super::*;

fn raw(kind: &str, content: Value) -> RawMessage {
    RawMessage {
        id: "r1".into(),
        kind: kind.into(),
        parent_id: None,
        content: content.into(),
        timestamp: 1_700_000_000_123,
    }
}

fn convert(kind: &str, content: Value) -> AgentMessage {
    convert_raw_message(raw(kind, content)).expect("a message")
}

#[test]
fn text_becomes_assistant_with_id_timestamp_and_seq_id_zero() {
    let m = convert("text", json!({"text": "hello"}));
    assert_eq!(m.role, MsgRole::Assistant);
    assert_eq!(m.content, "hello");
    assert_eq!(
        (m.id.as_str(), m.seq_id, m.timestamp),
        ("r1", 0, 1_700_000_000_123)
    );
    assert_eq!(
        (m.tool_name(), m.tool_input(), m.tool_path()),
        (None, None, None)
    );
}

#[test]
fn text_uses_javascript_string_conversion() {
    assert_eq!(convert("text", json!({})).content, "");
    assert_eq!(convert("text", json!({"text": null})).content, "");
    assert_eq!(convert("text", json!({"text": 1.0})).content, "1");
    assert_eq!(
        convert("text", json!({"text": {"a": 1}})).content,
        "[object Object]"
    );
    assert_eq!(
        convert("text", json!({"text": ["a", 2, null]})).content,
        "a,2,"
    );
    assert_eq!(convert("text", json!("not an object")).content, "");
    assert_eq!(convert("text", Value::Null).content, "");
}

#[test]
fn thinking_becomes_thinking() {
    let m = convert("thinking", json!({"text": "hmm"}));
    assert_eq!((m.role, m.content.as_str()), (MsgRole::Thinking, "hmm"));
}

#[test]
fn tool_call_name_defaults_to_tool_only_when_null_or_absent() {
    assert_eq!(convert("tool_call", json!({})).tool_name(), Some("Tool"));
    assert_eq!(
        convert("tool_call", json!({"name": null})).tool_name(),
        Some("Tool")
    );
    assert_eq!(
        convert("tool_call", json!({"name": ""})).tool_name(),
        Some("")
    );
}

#[test]
fn tool_call_bash_shows_the_command_and_cuts_its_path_at_80_units() {
    let long = format!("echo {}", "x".repeat(100));
    let m = convert(
        "tool_call",
        json!({"name": "Bash", "input": {"command": long}}),
    );
    assert_eq!(m.role, MsgRole::ToolCall);
    assert_eq!(m.content, long);
    assert_eq!(m.tool_path(), Some(format!("{}...", &long[..80]).as_str()));
    let short = convert(
        "tool_call",
        json!({"name": "Bash", "input": {"command": "ls"}}),
    );
    assert_eq!(short.tool_path(), Some("ls"));
}

/// Where the message holds its tool path.
fn path_held(m: &AgentMessage) -> Option<&ToolPath> {
    m.tool.as_ref()?.path.as_ref()
}

#[test]
fn a_path_that_is_the_content_is_held_once() {
    let bash = convert(
        "tool_call",
        json!({"name": "Bash", "input": {"command": "cargo test"}}),
    );
    let read = convert(
        "tool_call",
        json!({"name": "Read", "input": {"file_path": "/src/lib.rs"}}),
    );
    for (m, path) in [(&bash, "cargo test"), (&read, "/src/lib.rs")] {
        assert_eq!((m.content.as_str(), m.tool_path()), (path, Some(path)));
        assert_eq!(path_held(m), Some(&ToolPath::Content));
        // On the wire as before: the path written out in full.
        let wire = serde_json::to_value(m).unwrap();
        assert_eq!(wire["toolPath"], path);
        assert_eq!(serde_json::from_value::<AgentMessage>(wire).unwrap(), *m);
    }
    // A cut command, or a path that is not what is shown, keeps its own.
    let long = convert(
        "tool_call",
        json!({"name": "Bash", "input": {"command": "x".repeat(100)}}),
    );
    let grep = convert(
        "tool_call",
        json!({"name": "Grep", "input": {"pattern": "x", "path": "/p"}}),
    );
    for m in [&long, &grep] {
        assert!(matches!(path_held(m), Some(ToolPath::Own(_))));
    }
}

#[test]
fn tool_call_path_cut_never_splits_a_character() {
    // 79 ASCII units then an emoji (two UTF-16 units): JavaScript would keep half the pair.
    let command = format!("{}😀tail", "a".repeat(79));
    let m = convert(
        "tool_call",
        json!({"name": "Bash", "input": {"command": command}}),
    );
    assert_eq!(
        m.tool_path(),
        Some(format!("{}...", "a".repeat(79)).as_str())
    );
    // 80 units exactly is not cut.
    let exact = format!("{}😀", "a".repeat(78));
    let m = convert(
        "tool_call",
        json!({"name": "Bash", "input": {"command": exact}}),
    );
    assert_eq!(m.tool_path(), Some(exact.as_str()));
}

#[test]
fn tool_call_file_path_wins_over_path_and_command() {
    let m = convert(
        "tool_call",
        json!({"name": "Bash", "input": {"command": "ls", "file_path": "/f", "path": "/p"}}),
    );
    assert_eq!(m.content, "ls"); // formatToolInput prefers the Bash command
    assert_eq!(m.tool_path(), Some("/f")); // extractToolPath prefers file_path
    let m = convert(
        "tool_call",
        json!({"name": "Grep", "input": {"pattern": "x", "path": "/p"}}),
    );
    assert_eq!(m.tool_path(), Some("/p"));
    assert_eq!(m.content, "{\n  \"pattern\": \"x\",\n  \"path\": \"/p\"\n}");
}

#[test]
fn tool_call_other_input_is_pretty_json_in_original_key_order() {
    let input: Value = serde_json::from_str(
        r#"{"url": "https://x", "count": 2.0, "nested": {"b": 1, "a": [true]}}"#,
    )
    .unwrap();
    let m = convert("tool_call", json!({"name": "WebFetch", "input": input}));
    let expected =
        "{\n  \"url\": \"https://x\",\n  \"count\": 2,\n  \"nested\": {\n    \"b\": 1,\n    \
                    \"a\": [\n      true\n    ]\n  }\n}";
    assert_eq!(m.content, expected);
    assert_eq!(m.tool_input(), Some(expected));
    assert_eq!(m.tool_path(), None);
}

#[test]
fn tool_call_tool_input_is_omitted_only_when_input_is_absent() {
    let m = convert("tool_call", json!({"name": "X"}));
    assert_eq!(
        (m.content.as_str(), m.tool_input(), m.tool_path()),
        ("", None, None)
    );
    let m = convert("tool_call", json!({"name": "X", "input": null}));
    assert_eq!((m.content.as_str(), m.tool_input()), ("", Some("null")));
}

#[test]
fn tool_call_falsy_input_shows_nothing_but_keeps_tool_input() {
    for (input, stringified) in [
        (json!(""), "\"\""),
        (json!(0), "0"),
        (json!(false), "false"),
    ] {
        let m = convert("tool_call", json!({"name": "X", "input": input}));
        assert_eq!(m.content, "");
        assert_eq!(m.tool_input(), Some(stringified));
        assert_eq!(m.tool_path(), None);
    }
}

#[test]
fn tool_call_non_object_input_is_stringified_and_has_no_path() {
    let m = convert("tool_call", json!({"name": "Bash", "input": "ls -la"}));
    assert_eq!(m.content, "\"ls -la\"");
    assert_eq!(m.tool_path(), None);
    let m = convert("tool_call", json!({"name": "X", "input": []}));
    assert_eq!((m.content.as_str(), m.tool_input()), ("[]", Some("[]")));
}

#[test]
fn tool_result_string_output_is_kept_as_is() {
    let m = convert("tool_result", json!({"output": "a\n  b\n"}));
    assert_eq!(
        (m.role, m.content.as_str()),
        (MsgRole::ToolResult, "a\n  b\n")
    );
    assert_eq!(m.tool_name(), None);
}

#[test]
fn tool_result_other_output_is_pretty_json() {
    let m = convert("tool_result", json!({"output": {"ok": true, "n": 3.0}}));
    assert_eq!(m.content, "{\n  \"ok\": true,\n  \"n\": 3\n}");
    assert_eq!(
        convert("tool_result", json!({"output": null})).content,
        "null"
    );
    assert_eq!(
        convert("tool_result", json!({"output": 1.5})).content,
        "1.5"
    );
}

#[test]
fn tool_result_without_output_is_empty_where_the_original_threw() {
    assert_eq!(convert("tool_result", json!({})).content, "");
    assert_eq!(convert("tool_result", json!("text")).content, "");
}

#[test]
fn tool_result_is_cut_to_500_lines_with_a_count_of_the_rest() {
    let text: Vec<String> = (1..=502).map(|i| format!("line {i}")).collect();
    let m = convert("tool_result", json!({"output": text.join("\n")}));
    let lines: Vec<&str> = m.content.split('\n').collect();
    assert_eq!(lines.len(), 501);
    assert_eq!(lines[499], "line 500");
    assert_eq!(lines[500], "... (2 more lines)");
    // 500 lines exactly (a trailing newline makes a 501st, empty line) is the limit.
    let exact: Vec<String> = (1..=500).map(|i| i.to_string()).collect();
    let m = convert("tool_result", json!({"output": exact.join("\n")}));
    assert_eq!(m.content, exact.join("\n"));
    let m = convert(
        "tool_result",
        json!({"output": format!("{}\n", exact.join("\n"))}),
    );
    assert!(m.content.ends_with("500\n... (1 more lines)"));
}

#[test]
fn init_names_the_model_in_parentheses() {
    let r = raw(
        "init",
        json!({"model": "claude-opus-4-5", "sessionId": "abc"}),
    );
    let m = convert_raw_message(r.clone()).unwrap();
    assert_eq!(
        (m.role, m.content.as_str()),
        (MsgRole::System, "Session initialized (claude-opus-4-5)")
    );
    assert_eq!(init_model(&r).as_deref(), Some("claude-opus-4-5"));
}

#[test]
fn init_without_a_model_has_no_parentheses_and_sets_no_model() {
    for content in [json!({}), json!({"model": null}), json!({"model": ""})] {
        let r = raw("init", content);
        assert_eq!(
            convert_raw_message(r.clone()).unwrap().content,
            "Session initialized"
        );
        assert_eq!(init_model(&r), None);
    }
    assert_eq!(init_model(&raw("text", json!({"model": "m"}))), None);
}

#[test]
fn error_shows_the_message_or_unknown_error() {
    let m = convert("error", json!({"message": "boom"}));
    assert_eq!(
        (m.role, m.content.as_str()),
        (MsgRole::System, "Error: boom")
    );
    assert_eq!(convert("error", json!({})).content, "Error: Unknown error");
    assert_eq!(
        convert("error", json!({"message": null})).content,
        "Error: Unknown error"
    );
    assert_eq!(convert("error", json!({"message": ""})).content, "Error: ");
}

#[test]
fn cost_status_compaction_unknown_and_other_types_show_nothing() {
    for kind in [
        "cost",
        "status",
        "compaction",
        "unknown",
        "user",
        "",
        "TEXT",
    ] {
        assert_eq!(
            convert_raw_message(raw(kind, json!({"text": "x"}))),
            None,
            "{kind}"
        );
    }
}

#[test]
fn retries_and_notices_become_system_messages_as_worded() {
    let m = convert(
        "retry",
        json!({"message": "API retry 1/10: 401 authentication_failed", "reason": "401 authentication_failed"}),
    );
    assert_eq!(m.role, MsgRole::System);
    assert_eq!(m.content, "API retry 1/10: 401 authentication_failed");
    let m = convert("notice", json!({"message": "Task completed: QA"}));
    assert_eq!(
        (m.role, m.content.as_str()),
        (MsgRole::System, "Task completed: QA")
    );
    assert!(convert_raw_message(raw("notice", json!({}))).is_none());
}
