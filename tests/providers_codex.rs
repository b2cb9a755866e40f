//! The Codex runner, end to end: the real engine runs sessions on a fake `codex` that prints recorded
//! `codex exec --json` output and records its arguments.

mod providers_support;

use std::path::Path;

use agent_store::error::CommandError;
use agent_store::messages::commands::StartOptions;
use agent_store::messages::wire::{AgentStatus, MsgRole};
use providers_support::*;

#[actix_rt::test]
async fn a_session_runs_to_done_with_its_messages_and_cost() {
    let h = start(|_, _| {}).await;
    let record = h.path_str("record");
    let cwd = h.path("work");
    std::fs::create_dir(&cwd).unwrap();
    let options = StartOptions {
        cwd: Some(cwd.to_string_lossy().into()),
        model: Some("gpt-5-codex".into()),
        extra_env: Some([("FAKE_RECORD".to_string(), record.clone())].into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "codex", "-list the files", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    assert_eq!(s.messages[0].role, MsgRole::User);
    assert!(s
        .messages
        .iter()
        .any(|m| m.role == MsgRole::Assistant && m.content == "Two files: a.txt and b.txt."));
    assert!(s.messages.iter().any(|m| m.role == MsgRole::ToolCall));
    assert_eq!((s.input_tokens, s.output_tokens), (5000, 120));

    let records = records(Path::new(&record));
    let cwd = cwd.to_string_lossy();
    assert_eq!(
        records[0]["argv"],
        serde_json::json!([
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--model",
            "gpt-5-codex",
            "--cd",
            cwd,
            "--sandbox",
            "workspace-write",
            "--",
            "-list the files"
        ])
    );
    assert_eq!(records[0]["cwd"], cwd.as_ref());
    assert_eq!(records[0]["stdin_empty"], true);
}

#[actix_rt::test]
async fn a_follow_up_resumes_the_thread() {
    let h = start(|_, _| {}).await;
    let record = h.path_str("record");
    h.start_session("p1", "codex", "first", &[("FAKE_RECORD", &record)])
        .await
        .unwrap();
    assert_done(&h.finished("p1").await);
    h.engine.send_prompt("p1", "second".into()).await.unwrap();
    eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status == AgentStatus::Done && invocations(Path::new(&record)).len() == 2).then_some(())
    })
    .await;
    let runs = invocations(Path::new(&record));
    assert_eq!(
        runs[1],
        [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
            "resume",
            "fake-thread-1",
            "--",
            "second"
        ]
    );
}

#[actix_rt::test]
async fn a_follow_up_during_a_run_is_refused_not_stored() {
    let h = start(|_, _| {}).await;
    let record = h.path_str("record");
    h.start_session(
        "p1",
        "codex",
        "first",
        &[("FAKE_RECORD", &record), ("FAKE_MODE", "hang")],
    )
    .await
    .unwrap();
    // The run has printed its first line: it runs.
    eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.messages.len() > 1).then_some(())
    })
    .await;
    let refused = h.engine.send_prompt("p1", "second".into()).await;
    match refused {
        Err(CommandError::Undeliverable(why)) => {
            assert!(why.contains("takes no input while it runs"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let s = h.session("p1").await;
    assert_eq!(s.status, AgentStatus::Running);
    let users = s
        .messages
        .iter()
        .filter(|m| m.role == MsgRole::User)
        .count();
    assert_eq!(users, 1, "the refused prompt is not stored");
    h.engine.stop_agent("p1").await.unwrap();
    assert_eq!(invocations(Path::new(&record)).len(), 1);
}

#[actix_rt::test]
async fn a_crash_is_an_error_with_the_exit_status_and_stderr() {
    let h = start(|_, _| {}).await;
    h.start_session("p1", "codex", "go", &[("FAKE_MODE", "crash")])
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(
        s.error.as_deref(),
        Some("fake-codex exited with status 2: error: stream disconnected before completion")
    );
}

#[actix_rt::test]
async fn a_real_capture_cut_before_turn_completed_is_an_error() {
    let path = shared("codex/agentcmd__stream-output-multi-1.jsonl");
    let h = start(|_, _| {}).await;
    let transcript = path.to_string_lossy();
    h.start_session("p1", "codex", "go", &[("FAKE_TRANSCRIPT", &transcript)])
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(s.error.as_deref(), Some("Agent exited without a result"));
}

#[actix_rt::test]
async fn real_recordings_run_to_done_with_their_usage() {
    for file in [
        "agentcmd__stream-output-2.jsonl",
        "agentcmd__stream-output-3.jsonl",
        "agentcmd__stream-output-5.jsonl",
    ] {
        let path = shared(&format!("codex/{file}"));
        let usage = transcript_line(&path, "turn.completed")["usage"].clone();
        let h = start(|_, _| {}).await;
        let transcript = path.to_string_lossy();
        h.start_session(
            "p1",
            "codex",
            "go",
            &[("FAKE_TRANSCRIPT", &transcript), ("FAKE_MODE", "garbage")],
        )
        .await
        .unwrap();
        let s = h.finished("p1").await;
        assert_done(&s);
        assert_eq!(
            s.output_tokens,
            usage["output_tokens"].as_u64().unwrap(),
            "{file}"
        );
        h.engine.shutdown().await;
    }
}

#[actix_rt::test]
async fn options_codex_cannot_honour_are_refused_by_name_and_nothing_runs() {
    let h = start(|_, _| {}).await;
    let record = h.path_str("record");
    for (options, field) in [
        (
            StartOptions {
                max_turns: Some(3),
                ..StartOptions::default()
            },
            "options.maxTurns",
        ),
        (
            StartOptions {
                worktree_name: Some("feature".into()),
                ..StartOptions::default()
            },
            "options.worktreeName",
        ),
    ] {
        let options = StartOptions {
            extra_env: Some([("FAKE_RECORD".to_owned(), record.clone())].into()),
            ..options
        };
        match h
            .start_with_options("refused", "codex", "go", options)
            .await
        {
            Err(CommandError::Invalid { field: f, message }) => {
                assert_eq!(f, field);
                assert!(
                    message.starts_with("provider codex (codex) cannot honour it"),
                    "{message}"
                );
            }
            other => panic!("{field}: expected a refusal, got {other:?}"),
        }
    }
    assert!(
        invocations(Path::new(&record)).is_empty(),
        "codex never ran"
    );
}
