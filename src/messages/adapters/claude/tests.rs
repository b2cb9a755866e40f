//! Claude adapter rules, on small lines written for each rule.

use serde_json::json;

use super::ClaudeAdapter;
use crate::messages::adapters::testing::{feed_all, kinds, raws};
use crate::messages::adapters::AdapterEvent;

fn run(lines: &[&str]) -> Vec<AdapterEvent> {
    feed_all(&mut ClaudeAdapter::new(), lines)
}

const INIT: &str = r#"{"type":"system","subtype":"init","session_id":"sess-1","model":"claude-sonnet-4-6","tools":["Bash"],"uuid":"u-init"}"#;

#[test]
fn system_init_gives_init_with_model_and_the_provider_session() {
    let events = run(&[INIT]);
    let raw = raws(&events)[0];
    assert_eq!((raw.id.as_str(), raw.kind.as_str()), ("u-init", "init"));
    assert_eq!(
        raw.content,
        json!({"model": "claude-sonnet-4-6", "sessionId": "sess-1"})
    );
    assert_eq!(events[1], AdapterEvent::ProviderSession("sess-1".into()));
}

#[test]
fn system_compact_boundary_status_and_task_ends_are_notices() {
    let events = run(&[
        r#"{"type":"system","subtype":"compact_boundary","compact_metadata":{"trigger":"auto","pre_tokens":150000},"uuid":"u-c"}"#,
        r#"{"type":"system","subtype":"status","status":"compacting","uuid":"u-s"}"#,
        r#"{"type":"system","subtype":"status","status":null,"uuid":"u-s2"}"#,
        r#"{"type":"system","subtype":"task_notification","task_id":"t","status":"completed","summary":"QA review","uuid":"u-n"}"#,
    ]);
    assert_eq!(kinds(&events), ["notice", "notice", "status", "notice"]);
    let texts: Vec<&str> = raws(&events)
        .iter()
        .filter_map(|r| r.content["message"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "Context compacted (auto, 150000 tokens before)",
            "Status: compacting",
            "Task completed: QA review"
        ]
    );
}

#[test]
fn task_starts_are_notices_and_other_subtypes_status_without_big_fields() {
    let events = run(&[
        r#"{"type":"system","subtype":"task_started","task_id":"t","tool_use_id":"toolu_1","description":"QA","prompt":"a very long prompt","uuid":"u-t"}"#,
        r#"{"type":"system","subtype":"task_progress","task_id":"t","tool_use_id":"toolu_1","description":"Reading","prompt":"long","uuid":"u-p"}"#,
        r#"{"type":"system","subtype":"hook_response","uuid":"u-h"}"#,
    ]);
    assert_eq!(kinds(&events), ["notice", "status", "status"]);
    assert_eq!(raws(&events)[0].content["message"], "Task started: QA");
    assert_eq!(
        raws(&events)[1].content,
        json!({"subtype": "task_progress", "description": "Reading", "toolUseId": "toolu_1"})
    );
}

#[test]
fn api_retries_are_retries_with_status_and_error() {
    let events = run(&[
        r#"{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,"retry_delay_ms":2331.1,"error_status":401,"error":"authentication_failed","uuid":"u-r3"}"#,
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":618.7,"error_status":null,"error":"unknown","uuid":"u-r1"}"#,
    ]);
    assert_eq!(kinds(&events), ["retry", "retry"]);
    let r = raws(&events);
    assert_eq!(
        r[0].content["message"],
        "API retry 3/10: 401 authentication_failed"
    );
    assert_eq!(r[0].content["reason"], "401 authentication_failed");
    assert_eq!(r[1].content["reason"], "unknown");
}

#[test]
fn an_api_error_is_shown_once_not_as_an_assistant_reply_and_again_as_the_result() {
    let events = run(&[
        r#"{"type":"assistant","message":{"id":"m-syn","model":"<synthetic>","role":"assistant","content":[{"type":"text","text":"Invalid API key · Fix external API key"}]},"uuid":"u-a","error":"authentication_failed"}"#,
        r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":401,"result":"Invalid API key · Fix external API key","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"uuid":"u-r"}"#,
    ]);
    assert_eq!(kinds(&events), ["error", "cost"]);
    assert_eq!(
        raws(&events)[0].content["message"],
        "Invalid API key · Fix external API key"
    );
    assert_eq!(
        events.last(),
        Some(&AdapterEvent::Finished(Err(
            "Invalid API key · Fix external API key".into()
        )))
    );
}

#[test]
fn conversation_reset_names_the_conversation_to_resume() {
    let events = run(&[
        INIT,
        r#"{"type":"conversation_reset","newConversationId":"sess-2"}"#,
    ]);
    let sessions: Vec<&AdapterEvent> = events
        .iter()
        .filter(|e| matches!(e, AdapterEvent::ProviderSession(_)))
        .collect();
    assert_eq!(
        sessions,
        [
            &AdapterEvent::ProviderSession("sess-1".into()),
            &AdapterEvent::ProviderSession("sess-2".into())
        ]
    );
    // Shown, and the session keeps the new id from it for a later resume.
    let notice = events
        .iter()
        .find_map(|e| match e {
            AdapterEvent::Message(m) if m.kind == "notice" => Some(m),
            _ => None,
        })
        .expect("a notice");
    assert_eq!(
        crate::messages::convert::conversation_id(notice).as_deref(),
        Some("sess-2")
    );
    assert_eq!(
        notice.content["message"],
        "Conversation reset: it goes on as sess-2"
    );
}

#[test]
fn tool_progress_is_kept_as_status_and_partials_are_skipped() {
    let events = run(&[
        r#"{"type":"tool_progress","tool_use_id":"toolu_9","tool_name":"Bash","parent_tool_use_id":null,"elapsed_time_seconds":31,"uuid":"u-tp"}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}},"uuid":"u-se"}"#,
    ]);
    assert_eq!(kinds(&events), ["status"]);
    assert_eq!(
        raws(&events)[0].content,
        json!({"subtype": "tool_progress", "toolName": "Bash", "toolUseId": "toolu_9", "elapsedSeconds": 31})
    );
    assert_eq!(events.len(), 1);
}

#[test]
fn assistant_blocks_give_text_thinking_and_tool_call() {
    let events = run(&[r#"{"type":"assistant","message":{"id":"msg_1","content":[
            {"type":"thinking","thinking":"hmm","signature":"sig"},
            {"type":"text","text":"Let me look."},
            {"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"/a.rs"}}
        ],"usage":{"input_tokens":3,"output_tokens":9}},"parent_tool_use_id":null,"uuid":"u-a"}"#]);
    assert_eq!(kinds(&events), ["thinking", "text", "tool_call"]);
    let r = raws(&events);
    assert_eq!(r[0].content, json!({"text": "hmm"}));
    assert_eq!(r[1].content, json!({"text": "Let me look."}));
    assert_eq!(
        r[2].content,
        json!({"name": "Read", "input": {"file_path": "/a.rs"}})
    );
    assert_eq!(r[2].id, "toolu_1");
    assert!(r.iter().all(|m| m.parent_id.is_none()));
    // No Cost from an assistant line: its usage is partial.
    assert!(!events
        .iter()
        .any(|e| matches!(e, AdapterEvent::Cost { .. })));
}

#[test]
fn one_api_message_over_several_lines_gets_distinct_ids() {
    // The older json form: no uuids, one block per line, the same message id on each line.
    let events = run(&[
        r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"text","text":"a"}]}}"#,
        r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"text","text":"b"}]}}"#,
        r#"{"type":"assistant","message":{"id":"msg_2","content":[{"type":"text","text":"c"}]}}"#,
    ]);
    let ids: Vec<&str> = raws(&events).iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["msg_1:0", "msg_1:1", "msg_2:0"]);
}

#[test]
fn subagent_lines_carry_the_parent_tool_use_id() {
    let events = run(&[
        r#"{"type":"assistant","message":{"id":"msg_s","content":[{"type":"tool_use","id":"toolu_s","name":"Bash","input":{"command":"ls"}}]},"parent_tool_use_id":"toolu_task"}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"toolu_s","content":"a.rs"}]},"parent_tool_use_id":"toolu_task"}"#,
    ]);
    for raw in raws(&events) {
        assert_eq!(raw.parent_id.as_deref(), Some("toolu_task"));
    }
}

#[test]
fn tool_result_string_content_and_is_error() {
    let events = run(&[
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"denied","is_error":true}]}}"#,
    ]);
    let raw = raws(&events)[0];
    assert_eq!(
        (raw.id.as_str(), raw.kind.as_str()),
        ("toolu_1:result", "tool_result")
    );
    assert_eq!(
        raw.content,
        json!({"output": "denied", "isError": true, "toolUseId": "toolu_1"})
    );
}

#[test]
fn tool_result_block_content_joins_the_text_blocks() {
    let events = run(&[
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":[
            {"type":"text","text":"one"},{"type":"image","source":{}},{"type":"text","text":"two"}]}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"u"}]}}"#,
    ]);
    let r = raws(&events);
    assert_eq!(r[0].content["output"], "one\ntwo");
    assert_eq!(r[0].content["isError"], false);
    assert_eq!(r[1].content["output"], "");
}

#[test]
fn user_prompts_and_text_blocks_give_nothing() {
    let events = run(&[
        r#"{"type":"user","message":{"role":"user","content":"hello"}}"#,
        r#"{"type":"user","message":{"role":"user","content":[{"type":"text","text":"subagent prompt"}]}}"#,
    ]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn usage_repeated_over_several_lines_is_not_summed() {
    let events = run(&[
        r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"a"}],"usage":{"input_tokens":4,"cache_read_input_tokens":100,"output_tokens":8}}}"#,
        r#"{"type":"assistant","message":{"id":"m","content":[{"type":"tool_use","id":"t","name":"Bash","input":{}}],"usage":{"input_tokens":4,"cache_read_input_tokens":100,"output_tokens":50}}}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.25,"usage":{"input_tokens":4,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":50},"duration_ms":900,"uuid":"u-r"}"#,
    ]);
    let costs: Vec<&AdapterEvent> = events
        .iter()
        .filter(|e| matches!(e, AdapterEvent::Cost { .. }))
        .collect();
    assert_eq!(
        costs,
        [&AdapterEvent::Cost {
            cost_usd: 0.25,
            input_tokens: 114,
            output_tokens: 50
        }]
    );
    let cost_raw = raws(&events)
        .into_iter()
        .find(|r| r.kind == "cost")
        .unwrap();
    assert_eq!(
        cost_raw.content,
        json!({"costUsd": 0.25, "inputTokens": 114, "outputTokens": 50, "durationMs": 900})
    );
    assert_eq!(events.last(), Some(&AdapterEvent::Finished(Ok(()))));
}

#[test]
fn result_with_is_error_but_subtype_success_is_an_error() {
    let events = run(&[
        r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: Unable to connect to API (EAI_AGAIN)","total_cost_usd":0.5,"usage":{"input_tokens":6,"output_tokens":1},"uuid":"u-r"}"#,
    ]);
    let text = "API Error: Unable to connect to API (EAI_AGAIN)";
    assert_eq!(kinds(&events), ["cost", "error"]);
    assert_eq!(raws(&events)[1].content, json!({"message": text}));
    assert_eq!(
        events.last(),
        Some(&AdapterEvent::Finished(Err(text.into())))
    );
}

#[test]
fn result_with_another_subtype_is_an_error_named_after_it() {
    let events = run(&[
        r#"{"type":"result","subtype":"error_max_turns","is_error":false,"num_turns":3}"#,
        r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["boom","bang"]}"#,
    ]);
    let finished: Vec<&AdapterEvent> = events
        .iter()
        .filter(|e| matches!(e, AdapterEvent::Finished(_)))
        .collect();
    assert_eq!(
        finished,
        [
            &AdapterEvent::Finished(Err("Claude run ended with error_max_turns".into())),
            &AdapterEvent::Finished(Err("boom; bang".into()))
        ]
    );
    // Neither line has cost or usage: no Cost that would reset the session's totals to zero.
    assert!(!events
        .iter()
        .any(|e| matches!(e, AdapterEvent::Cost { .. })));
}

#[test]
fn rate_limits_give_status_and_unknown_lines_give_nothing() {
    let events = run(&[
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning"},"uuid":"u-rl"}"#,
        r#"{"type":"stream_event","event":{"type":"content_block_delta"}}"#,
        r#"{"type":"something_new","x":1}"#,
        r#"{"no_type":true}"#,
        r#"[1,2,3]"#,
        r#""just a string""#,
    ]);
    assert_eq!(kinds(&events), ["status"]);
    assert_eq!(events.len(), 1);
}

#[test]
fn a_line_timestamp_is_used_when_present() {
    let events = run(&[
        r#"{"type":"assistant","timestamp":"2025-01-02T03:04:05.678Z","message":{"id":"m","content":[{"type":"text","text":"a"}]}}"#,
    ]);
    assert_eq!(raws(&events)[0].timestamp, 1_735_787_045_678);
}

#[test]
fn fallback_ids_are_unique_without_uuids() {
    let events = run(&[
        r#"{"type":"system","subtype":"init","session_id":"s"}"#,
        r#"{"type":"system","subtype":"init","session_id":"s"}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"x"},{"type":"tool_result","content":"y"}]}}"#,
    ]);
    let mut ids: Vec<&str> = raws(&events).iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}
