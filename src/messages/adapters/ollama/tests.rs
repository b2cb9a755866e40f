//! Ollama adapter rules, on small chunks written for each rule.

use serde_json::json;

use super::OllamaAdapter;
use crate::messages::adapters::testing::{feed_all, kinds, raws};
use crate::messages::adapters::AdapterEvent;

fn run(lines: &[&str]) -> Vec<AdapterEvent> {
    feed_all(&mut OllamaAdapter::new(), lines)
}

#[test]
fn thinking_and_content_pieces_become_messages_and_empty_ones_are_skipped() {
    let events = run(&[
        r#"{"model":"qwen3","created_at":"2025-05-01T10:00:00.5Z","message":{"role":"assistant","content":"","thinking":"Let me"},"done":false}"#,
        r#"{"model":"qwen3","message":{"role":"assistant","content":"Hi","thinking":""},"done":false}"#,
        r#"{"model":"qwen3","message":{"role":"assistant","content":""},"done":false}"#,
    ]);
    assert_eq!(kinds(&events), ["thinking", "text"]);
    let r = raws(&events);
    assert_eq!(r[0].content, json!({"text": "Let me"}));
    assert_eq!(r[0].timestamp, 1_746_093_600_500);
    assert_eq!(r[1].content, json!({"text": "Hi"}));
    assert_ne!(r[0].id, r[1].id);
    assert!(!events
        .iter()
        .any(|e| matches!(e, AdapterEvent::Finished(_))));
}

#[test]
fn tool_calls_become_one_tool_call_each() {
    let events = run(&[
        r#"{"message":{"role":"assistant","content":"","tool_calls":[
            {"function":{"name":"get_weather","arguments":{"city":"Boston"}}},
            {"function":{"name":"no_args"}}]},"done":false}"#,
    ]);
    assert_eq!(kinds(&events), ["tool_call", "tool_call"]);
    let r = raws(&events);
    assert_eq!(
        r[0].content,
        json!({"name": "get_weather", "input": {"city": "Boston"}})
    );
    assert_eq!(r[1].content, json!({"name": "no_args"}));
}

#[test]
fn done_gives_cost_with_counts_and_eval_duration_then_finishes() {
    let events = run(&[
        r#"{"message":{"role":"assistant","content":"."},"done_reason":"stop","done":true,"prompt_eval_count":10,"eval_count":239,"eval_duration":2381751000}"#,
    ]);
    assert_eq!(kinds(&events), ["text", "cost"]);
    assert!(events.contains(&AdapterEvent::Cost {
        cost_usd: 0.0,
        input_tokens: 10,
        output_tokens: 239
    }));
    assert_eq!(
        raws(&events)[1].content,
        json!({"costUsd": 0.0, "inputTokens": 10, "outputTokens": 239, "evalDurationMs": 2381, "doneReason": "stop"})
    );
    assert_eq!(events.last(), Some(&AdapterEvent::Finished(Ok(()))));
}

#[test]
fn done_without_counts_still_finishes_with_zero_counts() {
    let events = run(&[r#"{"done":true,"done_reason":"load"}"#]);
    assert!(events.contains(&AdapterEvent::Cost {
        cost_usd: 0.0,
        input_tokens: 0,
        output_tokens: 0
    }));
    assert!(raws(&events)[0].content.get("evalDurationMs").is_none());
    assert_eq!(events.last(), Some(&AdapterEvent::Finished(Ok(()))));
}

#[test]
fn an_error_chunk_inside_a_stream_is_an_error_that_ends_the_run() {
    let events = run(&[
        r#"{"message":{"role":"assistant","content":"Par"},"done":false}"#,
        r#"{"error":"an error was encountered while running the model: unexpected EOF"}"#,
    ]);
    let text = "an error was encountered while running the model: unexpected EOF";
    assert_eq!(kinds(&events), ["text", "error"]);
    assert_eq!(raws(&events)[1].content, json!({"message": text}));
    assert_eq!(
        events.last(),
        Some(&AdapterEvent::Finished(Err(text.into())))
    );
}

#[test]
fn a_non_string_error_is_shown_as_json() {
    let events = run(&[r#"{"error":{"code":500}}"#]);
    assert_eq!(
        events.last(),
        Some(&AdapterEvent::Finished(Err(r#"{"code":500}"#.into())))
    );
}

#[test]
fn chunks_without_a_message_give_nothing() {
    let events = run(&[
        r#"{"model":"x","done":false}"#,
        r#"{"status":"pulling"}"#,
        "[]",
    ]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn generate_chunks_give_thinking_and_text_and_their_done_finishes() {
    let events = run(&[
        r#"{"model":"qwen3","created_at":"2025-01-01T00:00:00Z","response":"","thinking":"Let me see","done":false}"#,
        r#"{"model":"qwen3","created_at":"2025-01-01T00:00:01Z","response":"Hello","done":false}"#,
        r#"{"model":"qwen3","created_at":"2025-01-01T00:00:02Z","response":"","done":true,"done_reason":"stop","context":[1,2],"prompt_eval_count":12,"eval_count":5}"#,
    ]);
    assert_eq!(kinds(&events), ["thinking", "text", "cost"]);
    assert_eq!(raws(&events)[1].content, json!({"text": "Hello"}));
    assert_eq!(events.last(), Some(&AdapterEvent::Finished(Ok(()))));
}
