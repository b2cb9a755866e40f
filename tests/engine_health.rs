//! Project health and actor metrics, driven by a known workload through a real engine: the values must
//! move exactly as the workload says, and `/metrics` text must parse as Prometheus exposition.

mod engine_support;

use std::time::Duration;

use agent_store::messages::commands::{LiveEvent, Page, TopBy};
use agent_store::messages::wire::{ActivityState, AgentStatus};
use engine_support::*;
use serde_json::json;

#[actix_rt::test]
async fn stalled_project_tops_the_attention_queue_with_score_100() {
    let t = start(|_| {}).await;
    let mut sub = t.engine.subscribe(Some("slow".into())).await.unwrap();
    t.start_session("busy", "go").await;
    let slow = t.start_session("slow", "go").await;
    t.send(vec![messages(&slow, text(1))]).await;
    let h = t
        .engine
        .set_stall_threshold("slow", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(h.stall_threshold_ms, 300);
    let top = eventually(PATIENCE, || async {
        let all = t.engine.health().await.ok()?;
        (all[0].attention_score == 100).then_some(all)
    })
    .await;
    assert_eq!(top[0].project_id, "slow");
    assert_eq!(top[0].activity_state, ActivityState::Stalled);
    assert_eq!(
        top[0].attention_reason.as_deref(),
        Some("Stalled — 0 min since last activity")
    );
    assert!(top[0].idle_duration_ms >= 300);
    let busy = top.iter().find(|h| h.project_id == "busy").unwrap();
    assert_eq!(
        (busy.activity_state, busy.attention_score),
        (ActivityState::Idle, 0)
    );
    // The change to stalled was published on the live stream without any message arriving, and the
    // session's own stall notification followed the project's threshold too.
    let (mut stalled, mut notified) = (None, None);
    tokio::time::timeout(PATIENCE, async {
        while stalled.is_none() || notified.is_none() {
            match sub.recv().await {
                Some(LiveEvent::Health(h)) if h.activity_state == ActivityState::Stalled => {
                    stalled = Some(h)
                }
                Some(LiveEvent::Notification { message, .. }) => notified = Some(message),
                Some(_) => {}
                None => panic!("subscription closed"),
            }
        }
    })
    .await
    .expect("a project.health event and a notification for the stall");
    assert_eq!(stalled.unwrap().attention_score, 100);
    assert_eq!(
        notified.unwrap(),
        "Agent stalled on slow (no activity for 0 min)"
    );
}

#[actix_rt::test]
async fn burn_rate_matches_the_cost_deltas() {
    let t = start(|_| {}).await;
    let sid = t.start_session("burn", "go").await;
    t.send(vec![cost(&sid, 1.0, 100, 10)]).await;
    t.send(vec![cost(&sid, 1.2, 200, 20)]).await;
    let rate = |all: Vec<agent_store::messages::wire::ProjectHealth>| all[0].burn_rate_per_hour;
    assert_eq!(
        rate(t.engine.health().await.unwrap()),
        0.0,
        "snapshots under 4 s apart give no rate"
    );
    let began = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(4200)).await;
    t.send(vec![cost(&sid, 1.5, 300, 30)]).await;
    let elapsed_h = began.elapsed().as_secs_f64() / 3600.0;
    let measured = rate(t.engine.health().await.unwrap());
    // (1.5 - 1.0) over the span from the first snapshot; the span is at least what we slept.
    let expected_max = 0.5 / (4.2 / 3600.0);
    let expected_min = 0.5 / (elapsed_h + 0.5 / 3600.0);
    assert!(
        measured <= expected_max + 1e-6 && measured >= expected_min,
        "{measured} not within [{expected_min}, {expected_max}]"
    );
}

#[actix_rt::test]
async fn health_events_follow_changes_not_every_message() {
    let t = start(|_| {}).await;
    let mut sub = t.engine.subscribe(Some("events".into())).await.unwrap();
    let sid = t.start_session("events", "go").await;
    t.send(vec![messages(&sid, text(50))]).await;
    t.send(vec![messages(
        &sid,
        vec![raw(
            "c",
            "tool_call",
            json!({"name": "Bash", "input": {"command": "ls"}}),
        )],
    )])
    .await;
    for _ in 0..10 {
        t.send(vec![messages(&sid, text(1))]).await;
    }
    t.send(vec![messages(
        &sid,
        vec![raw("r", "tool_result", json!({"output": "ok"}))],
    )])
    .await;
    t.send(vec![status(&sid, "done", None)]).await;
    t.engine.flush().await.unwrap();
    let mut states = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
        if let LiveEvent::Health(h) = ev {
            states.push((h.activity_state, h.active_tool));
        }
    }
    assert_eq!(
        states,
        [
            (ActivityState::Idle, None),
            (ActivityState::Running, Some("Bash".to_string())),
            (ActivityState::Idle, None),
            (ActivityState::Inactive, None),
        ],
        "one event per change: start, tool start, tool end, done"
    );
}

#[actix_rt::test]
async fn metrics_count_exactly_what_was_sent() {
    let t = start(|_| {}).await;
    let a = t.start_session("m-a", "go").await;
    let b = t.start_session("m-b", "go").await;
    t.send(vec![
        messages(&a, text(7)),
        messages(&b, text(5)),
        cost(&a, 0.1, 1, 1),
    ])
    .await;
    t.send(vec![
        messages("nobody-1", text(3)),
        status("nobody-1", "done", None),
    ])
    .await;
    t.send(vec![
        status(&a, "done", None),
        status(&b, "error", Some("x")),
    ])
    .await;
    t.engine.flush().await.unwrap();
    let text = t.engine.metrics_text();
    let kind = |k| sample(&text, "agent_store_events_ingested_total", &[("kind", k)]);
    assert_eq!(kind("agent.message"), 2.0);
    assert_eq!(kind("agent.status"), 2.0);
    assert_eq!(kind("agent.cost"), 1.0);
    assert_eq!(sample(&text, "agent_store_dead_letters_total", &[]), 2.0);
    assert_eq!(sample(&text, "agent_store_agent_messages_total", &[]), 12.0);
    assert_eq!(
        sample(
            &text,
            "agent_store_notifications_total",
            &[("variant", "success")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "agent_store_notifications_total",
            &[("variant", "error")]
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "agent_store_actors_alive", &[("actor", "session")]),
        2.0
    );
    assert_eq!(
        sample(&text, "agent_store_actors_alive", &[("actor", "project")]),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "agent_store_actors_started_total",
            &[("actor", "supervisor")]
        ),
        1.0
    );
    // Every message ever appended is stored: 12 from the agents plus the two prompts.
    assert_eq!(
        sample(&text, "agent_store_persisted_messages_total", &[]),
        14.0
    );
    assert_eq!(
        sample(&text, "agent_store_persist_dirty_sessions", &[]),
        0.0
    );
    assert!(sample(&text, "agent_store_commits_total", &[("result", "ok")]) >= 1.0);
    assert!(sample(&text, "agent_store_redb_file_size_bytes", &[]) > 0.0);
    assert!(sample(&text, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(
        handled(&text, "session", "Deliver") >= 1.0,
        "every message handled is counted per actor and message"
    );
    // Handling times are a sample: a thread's first message, then one in TIMED_EVERY drawn at random.
    let timed = sum(&text, "agent_store_message_handling_seconds_count", &[]);
    assert!(timed >= 1.0, "handling time is recorded: {text}");
}

#[actix_rt::test]
async fn mailbox_depth_rises_under_a_blocked_persister_and_returns_to_zero() {
    let t = start(|_| {}).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(t.start_session(&format!("held-{i}"), "go").await);
    }
    let guard = t.engine.hold_persister().await.unwrap();
    // Each status change queues a write behind the held persister.
    for id in &ids {
        t.send(vec![messages(id, text(2)), status(id, "done", None)])
            .await;
    }
    let depth = |text: &str| sample(text, "agent_store_mailbox_depth", &[("actor", "persister")]);
    let held = eventually(PATIENCE, || async {
        let text = t.engine.metrics_text();
        (depth(&text) >= 20.0).then_some(text)
    })
    .await;
    assert_eq!(
        sample(&held, "agent_store_persist_dirty_sessions", &[]),
        20.0
    );
    assert!(
        sample(
            &held,
            "agent_store_mailbox_depth_max",
            &[("actor", "persister")]
        ) >= 20.0
    );
    drop(guard);
    t.engine.flush().await.unwrap();
    let text = t.engine.metrics_text();
    assert_eq!(depth(&text), 0.0);
    assert_eq!(
        sample(&text, "agent_store_persist_dirty_sessions", &[]),
        0.0
    );
    for kind in ["supervisor", "router", "project", "session", "broadcaster"] {
        assert_eq!(
            sample(&text, "agent_store_mailbox_depth", &[("actor", kind)]),
            0.0,
            "{kind}"
        );
    }
}

#[actix_rt::test]
async fn debug_top_names_the_busiest_actors() {
    let t = start(|_| {}).await;
    let quiet = t.start_session("quiet", "go").await;
    let loud = t.start_session("loud", "go").await;
    t.send(vec![messages(&quiet, text(1))]).await;
    for _ in 0..30 {
        t.send(vec![messages(&loud, text(10))]).await;
    }
    // The loud session handled the most (its project hears only of what changes its health, not of
    // every batch: src/actors/session/activity.rs).
    let top = t.engine.debug_top(TopBy::Messages, 2).await.unwrap();
    assert_eq!(
        (top[0].actor.as_str(), top[0].project_id.as_str()),
        ("session", "loud"),
        "{top:?}"
    );
    assert_eq!(top[0].session_id.as_deref(), Some(loud.as_str()));
    assert!(top[0].messages_handled >= 30);
    let by_memory = t.engine.debug_top(TopBy::Memory, 1).await.unwrap();
    assert_eq!(by_memory[0].session_id.as_deref(), Some(loud.as_str()));
    assert!(by_memory[0].memory_bytes > 300 * 6);
}

#[actix_rt::test]
async fn a_finished_session_gives_its_window_back_once_stored() {
    let t = start(|_| {}).await;
    let sid = t.start_session("finished", "go").await;
    t.send(vec![messages(&sid, text(20))]).await;
    let held = || async {
        let top = t.engine.debug_top(TopBy::Memory, 10).await.unwrap();
        top.into_iter()
            .find(|e| e.session_id.as_deref() == Some(sid.as_str()))
            .map_or(0, |e| e.memory_bytes)
    };
    assert!(
        held().await > 20 * 100,
        "a running session keeps its window"
    );

    t.send(vec![status(&sid, "done", None)]).await;
    eventually(PATIENCE, || async { (held().await == 0).then_some(()) }).await;
    // Still attached (within the cleanup grace), and every message is read back from storage.
    let s = t
        .engine
        .get_session("finished", Page::default())
        .await
        .unwrap();
    assert_eq!(s.status, AgentStatus::Done);
    assert_eq!(s.messages.len(), 21);
    let seqs: Vec<u64> = s.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, (1..=21).collect::<Vec<_>>());
    let page = Page {
        after_seq: Some(15),
        limit: Some(3),
    };
    let tail = t.engine.get_session("finished", page).await.unwrap();
    let seqs: Vec<u64> = tail.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, vec![16, 17, 18]);
}

#[actix_rt::test]
async fn a_running_project_holds_no_timer_of_its_own_its_sessions_stall_clock_tells_it() {
    let t = start(|_| {}).await;
    let arms = || {
        sample(
            &t.engine.metrics_text(),
            "agent_store_timer_arms_total",
            &[("timer", "health")],
        )
    };
    let before = arms();
    let sid = t.start_session("batch", "go").await;
    // One event per message, each moving the idle session's stall deadline a little later.
    let events: Vec<_> = (0..20_000)
        .map(|i| {
            messages(
                &sid,
                vec![raw(&format!("b{i}"), "text", json!({"text": "x"}))],
            )
        })
        .collect();
    t.send(events).await;
    let s = t
        .engine
        .get_session("batch", Page::default())
        .await
        .unwrap();
    assert_eq!(s.last_seq_id, 20_001);
    // The project has seen every event once it answers: its mailbox is in order behind them.
    let health = t.engine.health().await.unwrap();
    assert_eq!(health[0].activity_state, ActivityState::Idle);
    assert_eq!(
        arms() - before,
        0.0,
        "an idle running session's project arms no timer: the session reports its stall"
    );
}

#[actix_rt::test]
async fn a_busy_sessions_batches_reach_its_project_only_when_what_it_shows_changes() {
    let t = start(|_| {}).await;
    let sid = t.start_session("busy", "go").await;
    // How many reports of its sessions the project handled.
    let reports = || handled(&t.engine.metrics_text(), "project", "SessionReport");
    let health = || async {
        let all = t.engine.health().await.unwrap();
        all.into_iter().find(|h| h.project_id == "busy").unwrap()
    };
    t.send(vec![messages(&sid, text(1))]).await;
    // The project has seen every report once it answers: its mailbox is in order behind them.
    health().await;
    let before = reports();
    // A hundred turns alike: the same call, its result, a line of text.
    for i in 0..100 {
        let turn = vec![
            raw(
                &format!("c{i}"),
                "tool_call",
                json!({"name": "Bash", "input": {"command": "npm test"}}),
            ),
            raw(
                &format!("r{i}"),
                "tool_result",
                json!({"output": "1 failing"}),
            ),
            raw(&format!("t{i}"), "text", json!({"text": "again"})),
        ];
        t.send(vec![messages(&sid, turn)]).await;
    }
    let h = health().await;
    assert_eq!(
        reports() - before,
        1.0,
        "one report, the fifth call in a row beginning a loop; the other batches changed nothing shown"
    );
    assert_eq!(
        (
            h.activity_state,
            h.active_tool,
            h.attention_reason.as_deref()
        ),
        (ActivityState::Idle, None, Some("looping: Bash"))
    );
    let other = raw(
        "c-other",
        "tool_call",
        json!({"name": "Read", "input": {"file_path": "a.rs"}}),
    );
    t.send(vec![messages(&sid, vec![other])]).await;
    let h = health().await;
    assert_eq!(reports() - before, 2.0);
    assert_eq!(
        (
            h.activity_state,
            h.active_tool.as_deref(),
            h.attention_score
        ),
        (ActivityState::Running, Some("Read"), 0),
        "another call ends the loop, and its tool is in flight"
    );
}
