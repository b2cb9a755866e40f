//! Codex adapter rules, on small lines written for each rule.

use serde_json::json;

use super::CodexAdapter;
use crate::messages::adapters::testing::{feed_all, kinds, raws};
use crate::messages::adapters::AdapterEvent;

fn run(lines: &[&str]) -> Vec<AdapterEvent> {
    feed_all(&mut CodexAdapter::new(), lines)
}

fn finished(events: &[AdapterEvent]) -> Vec<&AdapterEvent> {
    events
        .iter()
        .filter(|e| matches!(e, AdapterEvent::Finished(_)))
        .collect()
}

#[test]
fn thread_started_gives_init_and_the_provider_session() {
    let events = run(&[r#"{"type":"thread.started","thread_id":"th-1"}"#]);
    assert_eq!(kinds(&events), ["init"]);
    assert_eq!(raws(&events)[0].content, json!({"sessionId": "th-1"}));
    assert_eq!(events[1], AdapterEvent::ProviderSession("th-1".into()));
}

#[test]
fn turn_started_gives_status_and_no_end() {
    let events = run(&[r#"{"type":"turn.started"}"#]);
    assert_eq!(kinds(&events), ["status"]);
    assert!(finished(&events).is_empty());
}

#[test]
fn turn_completed_gives_cost_totals_and_done() {
    let events = run(&[
        r#"{"type":"turn.completed","usage":{"input_tokens":6040,"cached_input_tokens":4992,"output_tokens":129}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":6140,"cached_input_tokens":0,"output_tokens":130}}"#,
    ]);
    let costs: Vec<&AdapterEvent> = events
        .iter()
        .filter(|e| matches!(e, AdapterEvent::Cost { .. }))
        .collect();
    // Cached tokens are part of input_tokens, not added again; the counts are the thread's running
    // totals, taken as they are, and each turn's cost message shows its own share.
    assert_eq!(
        costs,
        [
            &AdapterEvent::Cost {
                cost_usd: 0.0,
                input_tokens: 6040,
                output_tokens: 129
            },
            &AdapterEvent::Cost {
                cost_usd: 0.0,
                input_tokens: 6140,
                output_tokens: 130
            }
        ]
    );
    assert_eq!(raws(&events)[0].content["cachedInputTokens"], 4992);
    assert_eq!(raws(&events)[1].content["inputTokens"], 100);
    assert_eq!(raws(&events)[1].content["outputTokens"], 1);
    assert_eq!(finished(&events), [&AdapterEvent::Finished(Ok(())); 2]);
}

#[test]
fn turn_failed_is_an_error_that_ends_the_run() {
    let events = run(&[r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#]);
    assert_eq!(kinds(&events), ["error"]);
    assert_eq!(
        raws(&events)[0].content,
        json!({"message": "stream disconnected"})
    );
    assert_eq!(
        finished(&events),
        [&AdapterEvent::Finished(Err("stream disconnected".into()))]
    );
}

#[test]
fn error_lines_and_error_items_are_errors_that_do_not_end_the_run() {
    let events = run(&[
        r#"{"type":"error","message":"quota warning"}"#,
        r#"{"type":"item.completed","item":{"id":"item_3","type":"error","message":"model fallback"}}"#,
    ]);
    assert_eq!(kinds(&events), ["error", "error"]);
    assert_eq!(
        raws(&events)[1].content,
        json!({"message": "model fallback"})
    );
    assert!(finished(&events).is_empty());
}

#[test]
fn reconnecting_lines_are_retries_with_their_reason() {
    let events = run(&[
        r#"{"type":"error","message":"Reconnecting... 2/5 (stream disconnected before completion: Connection refused (os error 111))"}"#,
        r#"{"type":"error","message":"Reconnecting... waiting for network (Connection failed: error sending request)"}"#,
    ]);
    assert_eq!(kinds(&events), ["retry", "retry"]);
    let r = raws(&events);
    assert_eq!(
        r[0].content["reason"],
        "stream disconnected before completion: Connection refused (os error 111)"
    );
    assert_eq!(
        r[1].content["reason"],
        "Connection failed: error sending request"
    );
    assert!(finished(&events).is_empty());
}

#[test]
fn the_error_that_turn_failed_repeats_is_shown_once() {
    let text = "unexpected status 401 Unauthorized: Incorrect API key provided: dummy., url: http://127.0.0.1:18402/v1/responses";
    let error = json!({"type": "error", "message": text}).to_string();
    let failed = json!({"type": "turn.failed", "error": {"message": text}}).to_string();
    let events = run(&[&error, &failed]);
    assert_eq!(kinds(&events), ["error"]);
    assert_eq!(
        finished(&events),
        [&AdapterEvent::Finished(Err(text.into()))]
    );
}

#[test]
fn agent_message_and_reasoning_show_once_completed() {
    let events = run(&[
        r#"{"type":"item.started","item":{"id":"item_0","type":"agent_message","text":""}}"#,
        r#"{"type":"item.updated","item":{"id":"item_0","type":"agent_message","text":"Hel"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"Hello"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_1","type":"reasoning","text":"**Plan**"}}"#,
    ]);
    assert_eq!(kinds(&events), ["text", "thinking"]);
    let r = raws(&events);
    assert_eq!(r[0].content, json!({"text": "Hello"}));
    assert_eq!(r[1].content, json!({"text": "**Plan**"}));
    assert_ne!(r[0].id, r[1].id);
}

#[test]
fn command_execution_gives_bash_call_on_start_and_result_on_completion() {
    let events = run(&[
        r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"","status":"in_progress"}}"#,
        r#"{"type":"item.updated","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"a","status":"in_progress"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"a\nb\n","exit_code":0,"status":"completed"}}"#,
    ]);
    assert_eq!(kinds(&events), ["tool_call", "tool_result"]);
    let r = raws(&events);
    assert_eq!(
        r[0].content,
        json!({"name": "Bash", "input": {"command": "bash -lc ls"}})
    );
    assert_eq!(
        r[1].content,
        json!({"output": "a\nb\n", "exitCode": 0, "isError": false})
    );
    assert_eq!(r[1].id, format!("{}:result", r[0].id));
}

#[test]
fn command_execution_seen_only_completed_gives_both_and_flags_failure() {
    let events = run(&[
        r#"{"type":"item.completed","item":{"id":"item_2","type":"command_execution","command":"false","aggregated_output":"","exit_code":1,"status":"failed"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_2","type":"command_execution","command":"false","aggregated_output":"","exit_code":1,"status":"failed"}}"#,
    ]);
    assert_eq!(kinds(&events), ["tool_call", "tool_result"]);
    assert_eq!(raws(&events)[1].content["isError"], true);
}

#[test]
fn item_completed_only_file_change_gives_edit_call_and_result() {
    let events = run(&[
        r#"{"type":"item.completed","item":{"id":"item_1","type":"file_change","changes":[{"path":"/tmp/hello.txt","kind":"add"}],"status":"completed"}}"#,
    ]);
    assert_eq!(kinds(&events), ["tool_call", "tool_result"]);
    let r = raws(&events);
    assert_eq!(
        r[0].content,
        json!({"name": "Edit", "input": {"file_path": "/tmp/hello.txt", "changes": [{"path": "/tmp/hello.txt", "kind": "add"}]}})
    );
    assert_eq!(
        r[1].content,
        json!({"output": "add /tmp/hello.txt", "isError": false})
    );
}

#[test]
fn file_change_of_several_files_names_no_single_path_and_reports_failure() {
    let events = run(&[
        r#"{"type":"item.completed","item":{"id":"item_1","type":"file_change","changes":[{"path":"a","kind":"update"},{"path":"b","kind":"delete"}],"status":"failed"}}"#,
    ]);
    let r = raws(&events);
    assert!(r[0].content["input"].get("file_path").is_none());
    assert_eq!(
        r[1].content,
        json!({"output": "Patch failed\nupdate a\ndelete b", "isError": true})
    );
}

#[test]
fn mcp_tool_call_is_named_after_server_and_tool() {
    let events = run(&[
        r#"{"type":"item.started","item":{"id":"item_5","type":"mcp_tool_call","server":"fs","tool":"read_file","arguments":{"path":"/x"},"result":null,"error":null,"status":"in_progress"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_5","type":"mcp_tool_call","server":"fs","tool":"read_file","arguments":{"path":"/x"},"result":{"content":[{"type":"text","text":"data"}],"structured_content":null},"error":null,"status":"completed"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_6","type":"mcp_tool_call","server":"fs","tool":"read_file","arguments":null,"result":null,"error":{"message":"not found"},"status":"failed"}}"#,
    ]);
    assert_eq!(
        kinds(&events),
        ["tool_call", "tool_result", "tool_call", "tool_result"]
    );
    let r = raws(&events);
    assert_eq!(
        r[0].content,
        json!({"name": "mcp__fs__read_file", "input": {"path": "/x"}})
    );
    assert_eq!(r[1].content, json!({"output": "data", "isError": false}));
    assert_eq!(r[2].content, json!({"name": "mcp__fs__read_file"}));
    assert_eq!(
        r[3].content,
        json!({"output": "not found", "isError": true})
    );
}

#[test]
fn web_search_is_a_websearch_call_with_an_empty_result() {
    let events = run(&[
        r#"{"type":"item.started","item":{"id":"item_7","type":"web_search","query":"rust actix"}}"#,
        r#"{"type":"item.completed","item":{"id":"item_7","type":"web_search","query":"rust actix"}}"#,
    ]);
    let r = raws(&events);
    assert_eq!(
        r[0].content,
        json!({"name": "WebSearch", "input": {"query": "rust actix"}})
    );
    assert_eq!(r[1].content, json!({"output": "", "isError": false}));
}

#[test]
fn todo_list_is_a_todowrite_call_with_status_updates_and_a_checklist() {
    let events = run(&[
        r#"{"type":"item.started","item":{"id":"item_0","type":"todo_list","items":[{"text":"one","completed":false},{"text":"two","completed":false}]}}"#,
        r#"{"type":"item.updated","item":{"id":"item_0","type":"todo_list","items":[{"text":"one","completed":true},{"text":"two","completed":false}]}}"#,
        r#"{"type":"item.completed","item":{"id":"item_0","type":"todo_list","items":[{"text":"one","completed":true},{"text":"two","completed":true}]}}"#,
    ]);
    assert_eq!(kinds(&events), ["tool_call", "status", "tool_result"]);
    let r = raws(&events);
    assert_eq!(r[0].content["name"], "TodoWrite");
    assert_eq!(r[1].content["todos"][0]["completed"], true);
    assert_eq!(r[2].content["output"], "[x] one\n[x] two");
}

#[test]
fn the_same_item_ids_in_two_runs_give_different_message_ids() {
    let line =
        r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"hi"}}"#;
    let (first, second) = (run(&[line]), run(&[line]));
    assert_ne!(raws(&first)[0].id, raws(&second)[0].id);
}

#[test]
fn unknown_lines_and_items_give_nothing() {
    let events = run(&[
        r#"{"type":"session.configured"}"#,
        r#"{"type":"item.completed","item":{"id":"item_9","type":"brand_new_item"}}"#,
        r#"{"type":"item.completed"}"#,
        r#"{"no_type":1}"#,
    ]);
    assert!(events.is_empty(), "{events:?}");
}
