//! Parity with the original store (`shared/seed/agent-store.svelte.ts.txt`), one test (at least) per
//! numbered item of the engine issue, against a real engine on a real redb file.

mod engine_support;

use std::collections::BTreeMap;
use std::time::Duration;

use agent_store::messages::commands::{Page, SettingsPatch, StartOptions};
use agent_store::messages::wire::{AgentStatus, MsgRole, Variant};
use agent_store::testkit::recording::Call;
use agent_store::CommandError;
use engine_support::*;
use serde_json::json;

#[actix_rt::test]
async fn parity_01_shapes_and_status_normalisation() {
    let t = start(|_| {}).await;
    let sid = t.start_session("shapes", "hello").await;
    t.send(vec![status(&sid, "compacting", None)]).await;
    let s = t
        .engine
        .get_session("shapes", Page::default())
        .await
        .unwrap();
    assert_eq!(
        s.status,
        AgentStatus::Idle,
        "unknown statuses normalise to idle"
    );
    let v = serde_json::to_value(&s).unwrap();
    for key in [
        "sessionId",
        "projectId",
        "provider",
        "status",
        "messages",
        "costUsd",
        "inputTokens",
        "outputTokens",
        "model",
        "createdAt",
        "updatedAt",
    ] {
        assert!(v.get(key).is_some(), "AgentSession has {key}: {v}");
    }
    assert!(v.get("error").is_none(), "absent error is omitted");
    let m = &v["messages"][0];
    assert_eq!(
        (m["role"].as_str(), m["seqId"].as_u64()),
        (Some("user"), Some(1))
    );
    for key in ["id", "content", "timestamp"] {
        assert!(m.get(key).is_some());
    }
}

#[actix_rt::test]
async fn parity_02_start_agent_ids_defaults_and_first_message() {
    let t = start(|_| {}).await;
    let sid = t.start_session("proj", "do the thing").await;
    let (project, ms) = sid.rsplit_once('-').unwrap();
    assert_eq!(project, "proj");
    assert!(ms.parse::<i64>().unwrap() > 1_600_000_000_000);

    let s = t.engine.get_session("proj", Page::default()).await.unwrap();
    assert_eq!(s.status, AgentStatus::Running);
    assert_eq!(
        s.model, "claude-opus-4-5",
        "claude's configured default model"
    );
    assert_eq!(s.messages.len(), 1);
    assert_eq!(
        (s.messages[0].seq_id, s.messages[0].role),
        (1, MsgRole::User)
    );
    assert_eq!(s.messages[0].content, "do the thing");
    assert_eq!(s.messages[0].id, format!("{sid}-user-0"));

    // A finished session is cleared by the next start; ids stay unique even within one millisecond.
    let mut ids = vec![sid.clone()];
    for _ in 0..5 {
        let last = ids.last().unwrap().clone();
        t.send(vec![status(&last, "done", None)]).await;
        ids.push(t.start_session("proj", "again").await);
    }
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    let current = t.engine.get_session("proj", Page::default()).await.unwrap();
    assert_eq!(&current.session_id, ids.last().unwrap());
}

#[actix_rt::test]
async fn parity_02_start_agent_reads_settings_when_options_omit_them() {
    let t = start(|_| {}).await;
    let cwd = t.dir.path().to_string_lossy().into_owned();
    let patch: SettingsPatch = serde_json::from_value(json!({
        "permission_mode": "plan",
        "system_prompt_template": "be brief",
        "default_cwd": cwd,
        "provider_settings": {"claude": {"defaultModel": "claude-sonnet-4-5"}},
    }))
    .unwrap();
    t.engine.update_settings(patch).await.unwrap();
    t.start_session("settings", "hi").await;
    let explicit = StartOptions {
        model: Some("explicit-model".into()),
        permission_mode: Some("acceptEdits".into()),
        ..Default::default()
    };
    t.send(vec![status(
        &t.engine
            .get_session("settings", Page::default())
            .await
            .unwrap()
            .session_id,
        "done",
        None,
    )])
    .await;
    t.engine
        .start_agent("settings", request("claude", "again", explicit))
        .await
        .unwrap();
    let starts: Vec<_> = t
        .provider
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Start(spec) => Some(*spec),
            _ => None,
        })
        .collect();
    assert_eq!(starts[0].permission_mode.as_deref(), Some("plan"));
    assert_eq!(starts[0].system_prompt.as_deref(), Some("be brief"));
    assert_eq!(starts[0].cwd.as_deref(), Some(cwd.as_str()));
    assert_eq!(starts[0].model, "claude-sonnet-4-5");
    assert_eq!(
        starts[1].model, "explicit-model",
        "options win over settings"
    );
    assert_eq!(starts[1].permission_mode.as_deref(), Some("acceptEdits"));
}

#[actix_rt::test]
async fn parity_02_model_defaults_per_provider_from_config() {
    let t = start(|_| {}).await;
    t.engine
        .start_agent(
            "codex-model",
            request("codex", "hi", StartOptions::default()),
        )
        .await
        .unwrap();
    let s = t
        .engine
        .get_session("codex-model", Page::default())
        .await
        .unwrap();
    assert_eq!(
        s.model, "",
        "codex has no configured default: the agent chooses, never a Claude model"
    );
    t.start_session("claude-model", "hi").await;
    let s = t
        .engine
        .get_session("claude-model", Page::default())
        .await
        .unwrap();
    assert_eq!(s.model, "claude-opus-4-5");
}

#[actix_rt::test]
async fn parity_02_a_start_is_announced_live_with_its_prompt() {
    use agent_store::messages::commands::LiveEvent;
    let t = start(|_| {}).await;
    let mut sub = t.engine.subscribe(Some("live".into())).await.unwrap();
    let sid = t.start_session("live", "hello there").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(PATIENCE, sub.recv())
            .await
            .expect("events in time")
        {
            Some(LiveEvent::Status {
                session_id, status, ..
            }) => seen.push(format!("{session_id} {status:?}")),
            Some(LiveEvent::Messages {
                session_id,
                messages,
                ..
            }) => seen.push(format!(
                "{session_id} {} {}",
                messages[0].seq_id, messages[0].content
            )),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    assert_eq!(
        seen,
        [format!("{sid} Running"), format!("{sid} 1 hello there")]
    );
}

/// A message batch is framed as SSE only for a subscriber that sends frames (an HTTP stream): an
/// in-process reader gets the same events with no frame made for it.
#[actix_rt::test]
async fn a_message_batch_is_framed_only_for_subscribers_that_send_frames() {
    use agent_store::messages::commands::LiveEvent;
    let t = start(|_| {}).await;
    let mut in_process = t.engine.subscribe(Some("frames".into())).await.unwrap();
    let (mut stream, _) = t
        .engine
        .subscribe_after(Some("frames".into()), None)
        .await
        .unwrap();
    let sid = t.start_session("frames", "hello frames").await;
    for (sub, framed) in [(&mut in_process, false), (&mut stream, true)] {
        let live = loop {
            let live = tokio::time::timeout(PATIENCE, sub.next())
                .await
                .expect("events in time")
                .expect("open");
            if matches!(live.event, LiveEvent::Messages { .. }) {
                break live;
            }
            // Every other event is framed for the journal either way.
            assert!(live.frame.is_some(), "{:?}", live.event);
        };
        match &live.frame {
            Some(frame) => {
                let text = String::from_utf8(frame.to_vec()).unwrap();
                assert!(framed, "framed for an in-process reader: {text}");
                assert!(
                    text.starts_with(&format!("event: session.messages\nid: {sid}:1\n")),
                    "{text}"
                );
                assert!(text.contains("\"content\":\"hello frames\""), "{text}");
            }
            None => assert!(!framed, "an SSE stream got a batch without its frame"),
        }
    }
}

#[actix_rt::test]
async fn parity_02_provider_start_failure_leaves_session_in_error() {
    let t = start(|_| {}).await;
    t.provider.fail_start(Some("claude not found on PATH"));
    let err = t
        .engine
        .start_agent("failing", request("claude", "hi", StartOptions::default()))
        .await
        .unwrap_err();
    let CommandError::ProviderFailed { session_id, error } = err else {
        panic!("expected ProviderFailed, got {err:?}");
    };
    assert_eq!(error, "claude not found on PATH");
    let s = eventually(PATIENCE, || async {
        let s = t.engine.session(&session_id, Page::default()).await.ok()?;
        (s.status == AgentStatus::Error).then_some(s)
    })
    .await;
    assert_eq!(s.error.as_deref(), Some("claude not found on PATH"));
    // The failed session is not running, so a new start is allowed at once.
    t.provider.fail_start(None);
    t.start_session("failing", "again").await;
}

#[actix_rt::test]
async fn parity_02_start_guard_refuses_a_second_start_while_starting_or_running() {
    let t = start(|_| {}).await;
    t.provider.delay_start(Some(Duration::from_millis(300)));
    let engine = t.engine.clone();
    let first = actix_rt::spawn(async move {
        engine
            .start_agent("guard", request("claude", "one", StartOptions::default()))
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = t
        .engine
        .start_agent("guard", request("claude", "two", StartOptions::default()))
        .await;
    assert_eq!(second.unwrap_err(), CommandError::StartInProgress);
    first.await.unwrap().unwrap();
    t.provider.delay_start(None);
    let third = t
        .engine
        .start_agent("guard", request("claude", "three", StartOptions::default()))
        .await;
    assert_eq!(third.unwrap_err(), CommandError::AlreadyRunning);
    assert_eq!(
        CommandError::StartInProgress.to_string(),
        "Session start already in progress"
    );
    assert_eq!(
        CommandError::AlreadyRunning.to_string(),
        "Session already running"
    );
}

#[actix_rt::test]
async fn parity_03_extra_env_refused_keys_are_named_and_nothing_starts() {
    let t = start(|_| {}).await;
    let mut env = BTreeMap::new();
    env.insert("ANTHROPIC_API_KEY".to_string(), "k".to_string());
    env.insert("CLAUDE_CODE_X".to_string(), "k".to_string());
    env.insert("FINE".to_string(), "v".to_string());
    let options = StartOptions {
        extra_env: Some(env),
        ..Default::default()
    };
    let err = t
        .engine
        .start_agent("env", request("claude", "hi", options))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, CommandError::Invalid { ref field, .. } if field == "options.extraEnv"),
        "{err:?}"
    );
    assert!(
        msg.contains("ANTHROPIC_API_KEY") && msg.contains("CLAUDE_CODE_X") && !msg.contains("FINE")
    );
    assert!(t.provider.calls().is_empty(), "nothing started");
    assert!(!t.engine.has_session("env").await.unwrap());
}

#[actix_rt::test]
async fn parity_04_agent_message_converts_sequences_and_feeds_health() {
    let t = start(|_| {}).await;
    let sid = t.start_session("conv", "go").await;
    t.send(vec![messages(
        &sid,
        vec![
            raw(
                "i",
                "init",
                json!({"model": "claude-sonnet-4-6", "sessionId": "abc"}),
            ),
            raw("a", "text", json!({"text": "hello"})),
            raw("b", "thinking", json!({"text": "hmm"})),
            raw(
                "c",
                "tool_call",
                json!({"name": "Read", "input": {"file_path": "/x/y.rs"}}),
            ),
            raw("d", "cost", json!({})),
            raw("e", "compaction", json!({})),
            raw("f", "something-new", json!({})),
        ],
    )])
    .await;
    let h = t.engine.health().await.unwrap();
    let h = h.iter().find(|h| h.project_id == "conv").unwrap();
    assert_eq!(
        h.active_tool.as_deref(),
        Some("Read"),
        "a tool-call starts a tool"
    );
    t.send(vec![messages(
        &sid,
        vec![
            raw("g", "tool_result", json!({"output": "contents"})),
            raw("h", "error", json!({})),
        ],
    )])
    .await;
    let s = t.engine.get_session("conv", Page::default()).await.unwrap();
    let roles: Vec<_> = s.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            MsgRole::User,
            MsgRole::System,
            MsgRole::Assistant,
            MsgRole::Thinking,
            MsgRole::ToolCall,
            MsgRole::ToolResult,
            MsgRole::System
        ]
    );
    let seqs: Vec<_> = s.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(s.model, "claude-sonnet-4-6", "init sets the model");
    assert_eq!(
        s.messages[1].content,
        "Session initialized (claude-sonnet-4-6)"
    );
    assert_eq!(s.messages[4].tool_path(), Some("/x/y.rs"));
    assert_eq!(s.messages[6].content, "Error: Unknown error");
    let h = t.engine.health().await.unwrap();
    let h = h.iter().find(|h| h.project_id == "conv").unwrap();
    assert_eq!(h.active_tool, None, "a tool-result ends the tool");
}

#[actix_rt::test]
async fn parity_05_agent_status_notifies_persists_and_flushes_at_once() {
    // A debounce far longer than the test: whatever is stored was flushed by the status change.
    let t = start(|c| c.timers.persist_debounce = Duration::from_secs(600)).await;
    let mut sub = t.engine.subscribe(None).await.unwrap();
    let sid = t.start_session("status", "go").await;
    t.send(vec![messages(&sid, text(3))]).await;
    t.send(vec![status(&sid, "done", None)]).await;
    assert_eq!(
        next_notification(&mut sub, PATIENCE).await,
        ("Agent completed on status".to_string(), Variant::Success)
    );
    let stored = eventually(PATIENCE, || async {
        let s = t.engine.project_sessions("status").await.ok()?;
        (s.first()?.message_count == 4).then_some(s)
    })
    .await;
    assert_eq!(stored[0].status, AgentStatus::Done);

    let sid = t.start_session("status", "again").await;
    t.send(vec![status(&sid, "error", Some("boom"))]).await;
    assert_eq!(
        next_notification(&mut sub, PATIENCE).await,
        ("Agent error on status: boom".to_string(), Variant::Error)
    );
    let sid = t.start_session("status", "third").await;
    t.send(vec![status(&sid, "error", None)]).await;
    assert_eq!(
        next_notification(&mut sub, PATIENCE).await.0,
        "Agent error on status: unknown"
    );
}

#[actix_rt::test]
async fn parity_06_agent_cost_sets_totals_and_records_a_snapshot() {
    let t = start(|_| {}).await;
    let sid = t.start_session("cost", "go").await;
    t.send(vec![cost(&sid, 0.5, 150_000, 20_000)]).await;
    t.send(vec![cost(&sid, 0.75, 160_000, 25_000)]).await;
    let s = t.engine.get_session("cost", Page::default()).await.unwrap();
    assert_eq!(
        (s.cost_usd, s.input_tokens, s.output_tokens),
        (0.75, 160_000, 25_000)
    );
    let h = t.engine.health().await.unwrap();
    let h = h.iter().find(|h| h.project_id == "cost").unwrap();
    let pressure = h.context_pressure.unwrap();
    assert!(
        (pressure - 185_000.0 / 200_000.0).abs() < 1e-9,
        "{pressure}"
    );
    assert_eq!(h.attention_score, 80);
}

#[actix_rt::test]
async fn parity_07_stall_notifies_after_configured_silence() {
    let t = start(|c| c.timers.stall_after = Duration::from_millis(300)).await;
    let mut sub = t.engine.subscribe(Some("stall".into())).await.unwrap();
    let sid = t.start_session("stall", "go").await;
    // Activity keeps it alive...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        t.send(vec![messages(&sid, text(1))]).await;
    }
    let early = tokio::time::timeout(
        Duration::from_millis(150),
        next_notification(&mut sub, PATIENCE),
    )
    .await;
    assert!(early.is_err(), "no stall while active: {early:?}");
    // ...silence does not.
    let (message, variant) = next_notification(&mut sub, PATIENCE).await;
    assert_eq!(message, "Agent stalled on stall (no activity for 0 min)");
    assert_eq!(variant, Variant::Warning);
}

#[actix_rt::test]
async fn parity_08_debounced_persistence_writes_only_new_messages() {
    let t = start(|c| c.timers.persist_debounce = Duration::from_millis(300)).await;
    let sid = t.start_session("debounce", "go").await;
    t.send(vec![messages(&sid, text(5))]).await;
    let stored = t.engine.project_sessions("debounce").await.unwrap();
    assert_eq!(
        stored[0].message_count, 1,
        "the new messages wait for the debounce"
    );
    eventually(PATIENCE, || async {
        let s = t.engine.project_sessions("debounce").await.ok()?;
        (s[0].message_count == 6).then_some(())
    })
    .await;
    t.send(vec![messages(&sid, text(2))]).await;
    t.engine.flush().await.unwrap();
    // The stored history has each message exactly once: no batch was written twice.
    let t = t.restart().await;
    let s = t.engine.session(&sid, Page::default()).await.unwrap();
    let seqs: Vec<_> = s.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn parity_09_commands_answer_with_the_original_strings() {
    let t = start(|_| {}).await;
    assert_eq!(
        t.engine.stop_agent("none").await.unwrap_err().to_string(),
        "No session for project"
    );
    assert_eq!(
        t.engine
            .send_prompt("none", "hi".into())
            .await
            .unwrap_err()
            .to_string(),
        "No session for project"
    );
    assert_eq!(
        t.engine
            .get_session("none", Page::default())
            .await
            .unwrap_err(),
        CommandError::NoSession
    );
    assert!(!t.engine.has_session("none").await.unwrap());
    assert_eq!(
        t.engine
            .session("none-1", Page::default())
            .await
            .unwrap_err()
            .to_string(),
        "Session not found"
    );

    let sid = t.start_session("cmds", "first").await;
    assert!(t.engine.has_session("cmds").await.unwrap());
    assert_eq!(
        t.engine.clear_session("cmds").await.unwrap_err(),
        CommandError::SessionRunning
    );
    t.engine.send_prompt("cmds", "second".into()).await.unwrap();
    let s = t.engine.get_session("cmds", Page::default()).await.unwrap();
    assert_eq!(s.messages.last().unwrap().content, "second");
    assert_eq!(s.messages.last().unwrap().role, MsgRole::User);
    t.engine.stop_agent("cmds").await.unwrap();
    let s = t.engine.get_session("cmds", Page::default()).await.unwrap();
    assert_eq!(s.status, AgentStatus::Done);
    assert!(t.provider.calls().contains(&Call::Prompt {
        session_id: sid.clone(),
        prompt: "second".into()
    }));
    assert!(t.provider.calls().contains(&Call::Stop {
        session_id: sid.clone()
    }));
    t.engine.clear_session("cmds").await.unwrap();
    assert!(!t.engine.has_session("cmds").await.unwrap());
    // Cleared, not forgotten: its data stays readable.
    assert_eq!(
        t.engine
            .session(&sid, Page::default())
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
}

#[actix_rt::test]
async fn parity_10_cleanup_grace_detaches_a_finished_session() {
    let t = start(|c| c.timers.cleanup_grace = Duration::from_millis(200)).await;
    let sid = t.start_session("grace", "go").await;
    t.send(vec![messages(&sid, text(2)), status(&sid, "done", None)])
        .await;
    assert!(
        t.engine.has_session("grace").await.unwrap(),
        "attached during the grace"
    );
    eventually(PATIENCE, || async {
        (!t.engine.has_session("grace").await.ok()?).then_some(())
    })
    .await;
    let s = t.engine.session(&sid, Page::default()).await.unwrap();
    assert_eq!((s.status, s.messages.len()), (AgentStatus::Done, 3));
    // Detached and fully persisted, the session actor stops: memory holds only live sessions. Later
    // events for it bring it back from storage and apply, as the original kept applying them.
    let alive = || {
        t.engine
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("agent_store_actors_alive{actor=\"session\"}"))
            .map(str::to_owned)
    };
    eventually(PATIENCE, || async {
        (alive().as_deref() == Some("agent_store_actors_alive{actor=\"session\"} 0")).then_some(())
    })
    .await;
    let out = t
        .engine
        .ingest(vec![messages(&sid, text(1))], false)
        .await
        .unwrap();
    assert_eq!((out.accepted, out.ignored), (1, 0));
    assert!(
        !t.engine.has_session("grace").await.unwrap(),
        "brought back, but not as the project's current session"
    );
}

#[actix_rt::test]
async fn parity_11_load_last_session_restores_done_sessions_only() {
    let t = start(|_| {}).await;
    assert!(
        !t.engine.load_last_session("restore").await.unwrap(),
        "nothing stored"
    );
    let sid = t.start_session("restore", "go").await;
    t.send(vec![messages(&sid, text(4)), status(&sid, "done", None)])
        .await;
    let t = t.restart().await;
    assert!(t.engine.load_last_session("restore").await.unwrap());
    let s = t
        .engine
        .get_session("restore", Page::default())
        .await
        .unwrap();
    assert_eq!(
        (s.session_id.as_str(), s.status, s.messages.len()),
        (sid.as_str(), AgentStatus::Done, 5)
    );
    // The seqId counter resumes from the highest stored.
    t.engine
        .send_prompt("restore", "more".into())
        .await
        .unwrap();
    let s = t
        .engine
        .get_session(
            "restore",
            Page {
                after_seq: Some(5),
                limit: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(s.messages.iter().map(|m| m.seq_id).collect::<Vec<_>>(), [6]);

    // Never over a running session.
    t.send(vec![status(&sid, "done", None)]).await;
    let running = t.start_session("restore", "new").await;
    assert!(!t.engine.load_last_session("restore").await.unwrap());
    assert_eq!(
        t.engine
            .get_session("restore", Page::default())
            .await
            .unwrap()
            .session_id,
        running
    );
}

#[actix_rt::test]
async fn parity_11_a_running_session_is_not_restored_and_comes_back_interrupted() {
    let t = start(|_| {}).await;
    let sid = t.start_session("interrupted", "go").await;
    t.send(vec![messages(&sid, text(2))]).await;
    let t = t.restart().await;
    let s = t.engine.session(&sid, Page::default()).await.unwrap();
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(s.error.as_deref(), Some("Interrupted: service restarted"));
    assert!(
        t.engine.load_last_session("interrupted").await.unwrap(),
        "an error session is restorable"
    );
}

#[actix_rt::test]
async fn parity_12_retention_keeps_the_newest_in_memory_and_storage() {
    let t = start(|_| {}).await;
    let patch: SettingsPatch =
        serde_json::from_value(json!({"session_retention_count": 2})).unwrap();
    assert_eq!(
        t.engine
            .update_settings(patch)
            .await
            .unwrap()
            .session_retention_count,
        2
    );
    let mut ids = Vec::new();
    for i in 0..4 {
        let sid = t.start_session("keep", &format!("run {i}")).await;
        t.send(vec![messages(&sid, text(1)), status(&sid, "done", None)])
            .await;
        ids.push(sid);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let kept = eventually(PATIENCE, || async {
        let s = t.engine.project_sessions("keep").await.ok()?;
        (s.len() == 2).then_some(s)
    })
    .await;
    let kept: Vec<_> = kept.iter().map(|s| s.session_id.clone()).collect();
    assert_eq!(kept, [ids[3].clone(), ids[2].clone()], "newest first");
    assert_eq!(
        t.engine
            .session(&ids[0], Page::default())
            .await
            .unwrap_err(),
        CommandError::SessionNotFound
    );

    let clamped: SettingsPatch = serde_json::from_value(
        json!({"session_retention_count": 500, "session_retention_days": 0}),
    )
    .unwrap();
    let s = t.engine.update_settings(clamped).await.unwrap();
    assert_eq!(
        (s.session_retention_count, s.session_retention_days),
        (50, 1)
    );
}

#[actix_rt::test]
async fn parity_12_retention_never_removes_a_running_session() {
    let t = start(|_| {}).await;
    let patch: SettingsPatch =
        serde_json::from_value(json!({"session_retention_count": 1})).unwrap();
    t.engine.update_settings(patch).await.unwrap();
    let other = t.start_session("run-a", "long").await;
    for _ in 0..3 {
        let sid = t.start_session("run-b", "short").await;
        t.send(vec![status(&sid, "done", None)]).await;
    }
    t.engine.flush().await.unwrap();
    let s = t.engine.session(&other, Page::default()).await.unwrap();
    assert_eq!(s.status, AgentStatus::Running);
    eventually(PATIENCE, || async {
        (t.engine.project_sessions("run-b").await.ok()?.len() == 1).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn parity_13_purge_session_and_project_from_memory_and_storage() {
    let t = start(|_| {}).await;
    let a = t.start_session("purge", "one").await;
    t.send(vec![messages(&a, text(2)), status(&a, "done", None)])
        .await;
    let b = t.start_session("purge", "two").await;
    t.engine.flush().await.unwrap();
    t.engine.purge_session(&a).await.unwrap();
    assert_eq!(
        t.engine.session(&a, Page::default()).await.unwrap_err(),
        CommandError::SessionNotFound
    );
    let left: Vec<_> = t
        .engine
        .project_sessions("purge")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(left, std::slice::from_ref(&b));

    t.engine.purge_project("purge").await.unwrap();
    assert!(t.engine.project_sessions("purge").await.unwrap().is_empty());
    assert_eq!(
        t.engine.session(&b, Page::default()).await.unwrap_err(),
        CommandError::SessionNotFound
    );
    assert!(!t.engine.has_session("purge").await.unwrap());
    // Events for a purged session are ignored, as for any unknown session.
    let outcome = t
        .engine
        .ingest(vec![messages(&b, text(1))], false)
        .await
        .unwrap();
    assert_eq!((outcome.accepted, outcome.ignored), (0, 1));
    // Nothing comes back after a restart either.
    let t = t.restart().await;
    assert!(t.engine.project_sessions("purge").await.unwrap().is_empty());
}
