//! The Claude Code runner, end to end: the real engine runs sessions on a fake `claude` (a python script in
//! tests/fixtures/bin that prints recorded stream-json and records how it was invoked).

mod providers_support;

use std::path::Path;

use agent_store::messages::commands::StartOptions;
use agent_store::messages::wire::{AgentStatus, MsgRole};
use agent_store::CommandError;
use providers_support::*;

#[actix_rt::test]
async fn a_session_runs_to_done_with_its_messages_cost_and_model() {
    let h = start(|_, _| {}).await;
    let record = h.path_str("record");
    let cwd = h.path("work");
    std::fs::create_dir(&cwd).unwrap();
    let extra = h.path("extra");
    std::fs::create_dir(&extra).unwrap();
    let options = StartOptions {
        cwd: Some(cwd.to_string_lossy().into()),
        model: Some("claude-sonnet-4-5".into()),
        system_prompt: Some("Answer briefly.".into()),
        max_turns: Some(4),
        permission_mode: Some("acceptEdits".into()),
        claude_config_dir: Some("/tmp/claude-work-account".into()),
        extra_env: Some([("FAKE_RECORD".to_string(), record.clone())].into()),
        additional_directories: Some(vec![extra.to_string_lossy().into()]),
        worktree_name: None,
        resume_on_restart: None,
    };
    h.start_with_options("p1", "claude", "list the files", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    assert_eq!(
        roles(&s),
        [
            MsgRole::User,
            MsgRole::System,
            MsgRole::Thinking,
            MsgRole::ToolCall,
            MsgRole::ToolResult,
            MsgRole::Assistant
        ]
    );
    assert_eq!(s.messages[3].tool_name(), Some("Bash"));
    assert_eq!(
        s.messages[5].content,
        "There are 3 files: a.txt, b.txt and c.txt."
    );
    assert_eq!(s.cost_usd, 0.0421);
    assert_eq!((s.input_tokens, s.output_tokens), (1200, 85));
    assert_eq!(s.model, "claude-sonnet-4-5-20250929");

    let records = records(Path::new(&record));
    let argv = records[0]["argv"].as_array().unwrap().clone();
    let argv: Vec<&str> = argv.iter().map(|a| a.as_str().unwrap()).collect();
    let extra = extra.to_string_lossy();
    assert_eq!(
        argv,
        [
            "-p",
            "--output-format",
            "stream-json",
            "--input-format",
            "stream-json",
            "--verbose",
            "--model",
            "claude-sonnet-4-5",
            "--max-turns",
            "4",
            "--permission-mode",
            "acceptEdits",
            "--system-prompt",
            "Answer briefly.",
            "--add-dir",
            &extra
        ]
    );
    assert_eq!(records[0]["cwd"], cwd.to_string_lossy().as_ref());
    assert_eq!(
        records[0]["env"]["CLAUDE_CONFIG_DIR"],
        "/tmp/claude-work-account"
    );
    assert_eq!(records[0]["env"]["FAKE_RECORD"], record.as_str());
    assert_eq!(
        records[1]["stdin"],
        serde_json::json!({"type": "user", "message": {"role": "user",
            "content": [{"type": "text", "text": "list the files"}]}})
    );
}

#[actix_rt::test]
async fn a_follow_up_after_the_run_resumes_claudes_session_in_a_new_process() {
    let h = start(|_, _| {}).await;
    let record = h.path_str("record");
    h.start_session("p1", "claude", "first", &[("FAKE_RECORD", &record)])
        .await
        .unwrap();
    assert_done(&h.finished("p1").await);

    h.engine.send_prompt("p1", "and now?".into()).await.unwrap();
    let s = eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status == AgentStatus::Done && s.messages.len() > 6).then_some(s)
    })
    .await;
    assert_eq!(roles(&s).iter().filter(|r| **r == MsgRole::User).count(), 2);

    let runs = invocations(Path::new(&record));
    assert_eq!(runs.len(), 2);
    assert!(!runs[0].contains(&"--resume".to_string()));
    let at = runs[1]
        .iter()
        .position(|a| a == "--resume")
        .expect("--resume");
    assert_eq!(runs[1][at + 1], "fake-claude-session-1");
    let stdin: Vec<_> = records(Path::new(&record))
        .into_iter()
        .filter_map(|r| r.get("stdin").cloned())
        .collect();
    assert_eq!(stdin[1]["message"]["content"][0]["text"], "and now?");
}

#[actix_rt::test]
async fn after_a_conversation_reset_the_stored_conversation_is_the_new_one() {
    let h = start(|_, _| {}).await;
    // The recorded session with a conversation_reset after its init line.
    let recorded = std::fs::read_to_string(fixture("claude/session.jsonl")).unwrap();
    let mut lines: Vec<&str> = recorded.lines().collect();
    lines.insert(
        1,
        r#"{"type":"conversation_reset","newConversationId":"fake-claude-session-2"}"#,
    );
    let transcript = h.path("reset.jsonl");
    std::fs::write(&transcript, lines.join("\n") + "\n").unwrap();
    let record = h.path_str("record");
    h.start_session(
        "reset",
        "claude",
        "first",
        &[
            ("FAKE_TRANSCRIPT", &transcript.to_string_lossy()),
            ("FAKE_RECORD", &record),
        ],
    )
    .await
    .unwrap();
    let s = h.finished("reset").await;
    assert_done(&s);
    assert!(
        s.messages
            .iter()
            .any(|m| m.content == "Conversation reset: it goes on as fake-claude-session-2"),
        "the reset is shown"
    );
    // A resume reads the conversation from the stored session record.
    h.engine
        .resume_session("reset", Some("go on".into()))
        .await
        .unwrap();
    let runs = eventually(PATIENCE, || async {
        let runs = invocations(Path::new(&record));
        (runs.len() == 2).then_some(runs)
    })
    .await;
    assert!(
        runs[1]
            .windows(2)
            .any(|w| w == ["--resume", "fake-claude-session-2"]),
        "{:?}",
        runs[1]
    );
    h.engine.stop_agent("reset").await.unwrap();
}

#[actix_rt::test]
async fn a_follow_up_during_the_run_is_written_to_the_running_claude() {
    let h = start(|_, _| {}).await;
    let record = h.path_str("record");
    h.start_session(
        "p1",
        "claude",
        "first",
        &[("FAKE_RECORD", &record), ("FAKE_DELAY", "0.2")],
    )
    .await
    .unwrap();
    h.engine.send_prompt("p1", "second".into()).await.unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    // Both transcripts were played by one process: two prompts on stdin, one invocation.
    let records = records(Path::new(&record));
    assert_eq!(
        records.iter().filter(|r| r.get("argv").is_some()).count(),
        1
    );
    assert_eq!(
        records.iter().filter(|r| r.get("stdin").is_some()).count(),
        2
    );
    assert_eq!(
        roles(&s)
            .iter()
            .filter(|r| **r == MsgRole::Assistant)
            .count(),
        2
    );
}

#[actix_rt::test]
async fn a_crash_is_an_error_with_the_exit_status_and_the_tail_of_stderr() {
    let h = start(|_, _| {}).await;
    h.start_session("p1", "claude", "go", &[("FAKE_MODE", "crash")])
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    let error = s.error.unwrap();
    assert!(
        error.starts_with("fake-claude exited with status 3: "),
        "{error}"
    );
    assert!(error.ends_with("fatal: simulated crash"), "{error}");
}

#[actix_rt::test]
async fn a_stream_without_a_result_is_an_error() {
    let h = start(|_, _| {}).await;
    h.start_session("p1", "claude", "go", &[("FAKE_MODE", "noresult")])
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(s.error.as_deref(), Some("Agent exited without a result"));
}

#[actix_rt::test]
async fn non_json_lines_and_a_truncated_last_line_do_not_disturb_the_session() {
    let h = start(|_, _| {}).await;
    h.start_session("p1", "claude", "go", &[("FAKE_MODE", "garbage,truncated")])
        .await
        .unwrap();
    let s = h.finished("p1").await;
    // The result line came without its newline and still counted.
    assert_done(&s);
    assert_eq!(s.messages.len(), 6);
    assert_eq!(s.cost_usd, 0.0421);
}

#[actix_rt::test]
async fn a_line_of_several_megabytes_is_read_whole() {
    let h = start(|_, _| {}).await;
    h.start_session("p1", "claude", "go", &[("FAKE_MODE", "huge")])
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    assert!(s
        .messages
        .iter()
        .any(|m| m.role == MsgRole::Assistant && m.content.len() == 3 * 1024 * 1024));
}

#[actix_rt::test]
async fn a_line_over_the_limit_is_skipped_with_an_error_message_and_the_run_goes_on() {
    let h = start(|c, _| c.limits.max_line = bytesize::ByteSize::mib(1)).await;
    h.start_session("p1", "claude", "go", &[("FAKE_MODE", "huge")])
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    let note = s
        .messages
        .iter()
        .find(|m| m.content.contains("limits.max_line"))
        .expect("an error message about the long line");
    assert_eq!(note.role, MsgRole::System);
    assert!(s.messages.iter().all(|m| m.content.len() < 1024 * 1024));
    assert_eq!(s.cost_usd, 0.0421);
}

#[actix_rt::test]
async fn a_real_recording_with_subagents_runs_to_done_with_its_total_cost() {
    let path = shared("claude/obers_ui__014042a4__subagents_qa_review.jsonl");
    let result = transcript_line(&path, "result");
    let h = start(|_, _| {}).await;
    let transcript = path.to_string_lossy();
    h.start_session(
        "p1",
        "claude",
        "review",
        &[("FAKE_TRANSCRIPT", &transcript), ("FAKE_DELAY", "0")],
    )
    .await
    .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    assert_eq!(s.cost_usd, result["total_cost_usd"].as_f64().unwrap());
    assert_eq!(s.model, "claude-sonnet-4-6");
    assert!(s.messages.len() > 50);
}

#[actix_rt::test]
async fn a_real_recording_that_ends_in_an_api_error_is_an_error() {
    let path = shared("claude/obers_ui__2fe20a88__subagents_api_error_EAI_AGAIN.jsonl");
    let h = start(|_, _| {}).await;
    let transcript = path.to_string_lossy();
    h.start_session(
        "p1",
        "claude",
        "review",
        &[("FAKE_TRANSCRIPT", &transcript), ("FAKE_DELAY", "0")],
    )
    .await
    .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
}

#[actix_rt::test]
async fn a_missing_binary_is_a_clear_start_error() {
    let h = start(|c, _| {
        c.providers.get_mut("claude").unwrap().command = vec!["claude-not-installed-here".into()];
    })
    .await;
    let err = h
        .start_session("p1", "claude", "go", &[])
        .await
        .unwrap_err();
    let CommandError::ProviderFailed { error, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(
        error,
        "claude-not-installed-here not found on PATH (configure providers.claude.command)"
    );
    let s = h.session("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
}

#[actix_rt::test]
async fn follow_ups_a_busy_claude_cannot_take_are_refused_not_stored() {
    let h = start(|_, _| {}).await;
    // The agent prints its init line and then reads nothing more: its stdin pipe fills, then the queue.
    h.start_session("busy", "claude", "first", &[("FAKE_MODE", "hang")])
        .await
        .unwrap();
    eventually(PATIENCE, || async {
        (h.session("busy").await.messages.len() > 1).then_some(())
    })
    .await;
    let big = "x".repeat(256 * 1024);
    let mut accepted = 0;
    let why = loop {
        match h.engine.send_prompt("busy", big.clone()).await {
            Ok(()) => accepted += 1,
            Err(CommandError::Undeliverable(why)) => break why,
            Err(other) => panic!("expected a refusal, got {other:?}"),
        }
        assert!(accepted < 64, "never refused");
    };
    assert!(why.contains("follow-ups waiting already"), "{why}");
    let s = h.session("busy").await;
    let users = roles(&s).iter().filter(|r| **r == MsgRole::User).count();
    assert_eq!(users, 1 + accepted, "the refused follow-up is not stored");
    assert_eq!(s.status, AgentStatus::Running);
    h.engine.stop_agent("busy").await.unwrap();
}
