//! The runners on what the real CLIs print when their API cannot be used, replayed by the fake agents
//! (tests/fixtures/{claude,codex}/{api-401,offline}.*, recorded from claude 2.1.197 and codex 0.171.0, see
//! tests/fixtures/README.md): retries shown and reported as "retrying", errors shown once, stderr readable,
//! stall counting only progress, looping tool calls named, and the error of an earlier run cleared.

mod providers_support;

use std::path::Path;

use agent_store::messages::commands::Page;
use agent_store::messages::wire::{AgentSession, AgentStatus, MsgRole, ProjectHealth};
use providers_support::*;

fn fixture_str(path: &str) -> String {
    fixture(path).to_string_lossy().into_owned()
}

fn system_messages(s: &AgentSession) -> Vec<&str> {
    s.messages
        .iter()
        .filter(|m| m.role == MsgRole::System)
        .map(|m| m.content.as_str())
        .collect()
}

async fn health_of(h: &Harness, project: &str) -> ProjectHealth {
    h.engine
        .health()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.project_id == project)
        .expect("the project has health")
}

/// Waits until the project's attention reason is `reason`.
async fn attention(h: &Harness, project: &str, reason: &str) -> ProjectHealth {
    eventually(PATIENCE, || async {
        let health = health_of(h, project).await;
        (health.attention_reason.as_deref() == Some(reason)).then_some(health)
    })
    .await
}

/// The first `n` lines of a recording, as a transcript file in the harness's directory.
fn first_lines(h: &Harness, recording: &str, n: usize, name: &str) -> String {
    let text = std::fs::read_to_string(fixture(recording)).unwrap();
    let head: Vec<&str> = text.lines().take(n).collect();
    let path = h.path(name);
    std::fs::write(&path, head.join("\n") + "\n").unwrap();
    path.to_string_lossy().into_owned()
}

#[actix_rt::test]
async fn claude_against_a_401_api_shows_each_retry_and_the_error_once() {
    let h = start(|_, _| {}).await;
    let transcript = fixture_str("claude/api-401.jsonl");
    h.start_session(
        "p1",
        "claude",
        "Say hello.",
        &[("FAKE_TRANSCRIPT", &transcript), ("FAKE_EXIT", "1")],
    )
    .await
    .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(
        s.error.as_deref(),
        Some("Invalid API key · Fix external API key")
    );
    let system = system_messages(&s);
    let retries: Vec<&&str> = system
        .iter()
        .filter(|m| m.starts_with("API retry"))
        .collect();
    assert_eq!(retries.len(), 10, "{system:?}");
    assert_eq!(*retries[0], "API retry 1/10: 401 authentication_failed");
    let errors = s
        .messages
        .iter()
        .filter(|m| m.content.contains("Invalid API key"))
        .count();
    assert_eq!(errors, 1, "{system:?}");
    assert!(!s.messages.iter().any(|m| m.role == MsgRole::Assistant));
}

#[actix_rt::test]
async fn claude_retrying_is_attention_not_activity() {
    let h = start(|_, _| {}).await;
    // The init and the first three retries, then nothing: Claude is waiting to retry again.
    let transcript = first_lines(&h, "claude/api-401.jsonl", 4, "retrying.jsonl");
    h.start_session(
        "p1",
        "claude",
        "Say hello.",
        &[("FAKE_TRANSCRIPT", &transcript)],
    )
    .await
    .unwrap();
    let health = attention(&h, "p1", "retrying: 401 authentication_failed").await;
    assert_eq!(health.attention_score, 70);
    assert_eq!(h.session("p1").await.status, AgentStatus::Running);
    h.engine.stop_agent("p1").await.unwrap();
    // A stopped session retries nothing (the status reaches the project after the stop returns).
    eventually(PATIENCE, || async {
        (health_of(&h, "p1").await.attention_score == 0).then_some(())
    })
    .await;
}

/// Project p1's Codex, replaying its recorded run against an API that answers 401 (9 stderr lines).
async fn codex_against_a_401(h: &Harness) -> AgentSession {
    let transcript = fixture_str("codex/api-401.jsonl");
    let stderr = fixture_str("codex/api-401.stderr");
    let id = h
        .start_session(
            "p1",
            "codex",
            "Say hello.",
            &[
                ("FAKE_TRANSCRIPT", &transcript),
                ("FAKE_STDERR", &stderr),
                ("FAKE_EXIT", "1"),
            ],
        )
        .await
        .unwrap();
    // By its id, not by its project: once a finished session's cleanup grace has passed, its project no
    // longer names it (the original's projectSessionMap drops it), and a test that shortens the grace
    // may look too late to see the finish there.
    eventually(PATIENCE, || async {
        let s = h.engine.session(&id, Page::default()).await.ok()?;
        s.status.is_finished().then_some(s)
    })
    .await
}

#[actix_rt::test]
async fn codex_against_a_401_api_shows_the_error_once() {
    let h = start(|_, _| {}).await;
    let s = codex_against_a_401(&h).await;
    assert_eq!(s.status, AgentStatus::Error);
    let error = "unexpected status 401 Unauthorized: Incorrect API key provided: dummy., url: http://127.0.0.1:18402/v1/responses";
    assert_eq!(s.error.as_deref(), Some(error));
    let system = system_messages(&s);
    let final_errors = system
        .iter()
        .filter(|m| **m == format!("Error: {error}"))
        .count();
    assert_eq!(final_errors, 1, "{system:?}");
    // Nine reconnects (four over WebSocket, five over HTTPS), each shown as Codex worded it.
    let retries = system
        .iter()
        .filter(|m| m.starts_with("Reconnecting..."))
        .count();
    assert_eq!(retries, 9, "{system:?}");
    // Its stderr stays readable after the run.
    let log = h.engine.session_stderr(&s.session_id).await.unwrap();
    assert_eq!(log.lines.len(), 9, "{:?}", log.lines);
    assert!(log.lines[1].contains("Reading additional input from stdin"));
    assert!(log.last_line_at.is_some());
}

#[actix_rt::test]
async fn the_stderr_of_a_session_whose_actor_stopped_stays_readable() {
    let h = start(|c, _| c.timers.cleanup_grace = std::time::Duration::from_millis(50)).await;
    let s = codex_against_a_401(&h).await;
    // The cleanup grace lets the finished session go, and its actor (holding the runner) stops.
    eventually(PATIENCE, || async {
        let text = h.engine.metrics_text();
        text.lines()
            .any(|l| l == "agent_store_actors_alive{actor=\"session\"} 0")
            .then_some(())
    })
    .await;
    // Handed over as the actor stops (the runner answers for it asynchronously).
    let log = eventually(PATIENCE, || async {
        let log = h.engine.session_stderr(&s.session_id).await.unwrap();
        (!log.lines.is_empty()).then_some(log)
    })
    .await;
    assert_eq!(log.lines.len(), 9, "{:?}", log.lines);
    assert!(log.lines[1].contains("Reading additional input from stdin"));
    assert!(log.last_line_at.is_some());
}

#[actix_rt::test]
async fn codex_waiting_for_the_network_is_retrying_with_its_stderr_readable_while_it_runs() {
    let h = start(|_, _| {}).await;
    let transcript = fixture_str("codex/offline.jsonl");
    let stderr = fixture_str("codex/offline.stderr");
    let id = h
        .start_session(
            "p1",
            "codex",
            "Say hello.",
            &[
                ("FAKE_TRANSCRIPT", &transcript),
                ("FAKE_STDERR", &stderr),
                ("FAKE_MODE", "linger"),
            ],
        )
        .await
        .unwrap();
    attention(
        &h,
        "p1",
        "retrying: Connection failed: error sending request",
    )
    .await;
    let log = eventually(PATIENCE, || async {
        let log = h.engine.session_stderr(&id).await.unwrap();
        (log.lines.len() == 9).then_some(log)
    })
    .await;
    assert!(log.lines.iter().any(|l| l.contains("responses_websocket")));
    assert_eq!(h.session("p1").await.status, AgentStatus::Running);
    h.engine.stop_agent("p1").await.unwrap();
}

#[actix_rt::test]
async fn the_stderr_of_an_unknown_session_is_not_found() {
    let h = start(|_, _| {}).await;
    let err = h
        .engine
        .session_stderr("p1-1700000000000")
        .await
        .unwrap_err();
    assert_eq!(err, agent_store::CommandError::SessionNotFound);
}

#[actix_rt::test]
async fn the_same_tool_call_over_and_over_is_looping() {
    let h = start(|_, _| {}).await;
    let call = |n: usize| {
        serde_json::json!({"type": "assistant", "message": {"id": format!("msg_{n}"), "content": [
            {"type": "tool_use", "id": format!("toolu_{n}"), "name": "Bash", "input": {"command": "npm test"}}
        ]}, "uuid": format!("u-{n}")})
        .to_string()
    };
    let result = |n: usize| {
        serde_json::json!({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{n}"), "content": "1 failing"}
        ]}, "uuid": format!("r-{n}")})
        .to_string()
    };
    let lines: Vec<String> = (0..5).flat_map(|n| [call(n), result(n)]).collect();
    let path = h.path("loop.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let transcript = path.to_string_lossy();
    h.start_session(
        "p1",
        "claude",
        "fix the tests",
        &[("FAKE_TRANSCRIPT", &transcript)],
    )
    .await
    .unwrap();
    let health = attention(&h, "p1", "looping: Bash").await;
    assert_eq!(health.attention_score, 85);
    h.engine.stop_agent("p1").await.unwrap();
}

#[actix_rt::test]
async fn a_session_that_runs_again_after_an_error_no_longer_carries_it() {
    let h = start(|_, _| {}).await;
    let transcripts = format!(
        "{},{}",
        fixture_str("claude/api-401.jsonl"),
        fixture_str("claude/session.jsonl")
    );
    let counter = h.path_str("counter");
    h.start_session(
        "p1",
        "claude",
        "Say hello.",
        &[
            ("FAKE_TRANSCRIPT", &transcripts),
            ("FAKE_COUNTER", &counter),
        ],
    )
    .await
    .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    h.engine.send_prompt("p1", "again".into()).await.unwrap();
    eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status == AgentStatus::Done).then_some(())
    })
    .await;
    let s = h.session("p1").await;
    assert_eq!(s.error, None, "the first run's error is not the second's");
    // The first run's error message stays in the session's history.
    assert!(system_messages(&s)
        .iter()
        .any(|m| m.contains("Invalid API key")));
    assert_eq!(std::fs::read_to_string(Path::new(&counter)).unwrap(), "2");
}
