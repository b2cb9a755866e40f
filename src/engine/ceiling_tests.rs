//! A finished session's seqId ceiling while its project holds it: left in storage by the finish, taken
//! over by the session's next actor, dropped when the project lets go. Engine level, reading storage:
//! the ceiling is not visible through the API.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::config::Config;
use crate::messages::commands::{Page, StartOptions, StartRequest};
use crate::messages::wire::SidecarEvent;
use crate::providers::synthetic::Synthetic;
use crate::providers::Providers;

fn event(kind: &str, payload: serde_json::Value) -> SidecarEvent {
    serde_json::from_value(serde_json::json!({"event": kind, "payload": payload})).unwrap()
}

fn text(session_id: &str, id: &str) -> SidecarEvent {
    let raw = serde_json::json!({"id": id, "type": "text", "content": {"text": id},
        "timestamp": 1_700_000_000_000u64});
    event(
        "agent.message",
        serde_json::json!({"sessionId": session_id, "messages": [raw]}),
    )
}

/// Waits until `check` holds, polling what the actors did in their own time.
async fn until(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn sessions_alive(engine: &Engine) -> i64 {
    engine
        .metrics()
        .actors_alive
        .with_label_values(&["session"])
        .get()
}

#[actix_rt::test]
async fn a_finished_sessions_ceiling_waits_for_its_project_and_its_next_actor_continues_right_after(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.timers.persist_debounce = Duration::from_millis(5);
    config.timers.stall_after = Duration::from_secs(3600);
    config.timers.cleanup_grace = Duration::from_secs(3600);
    let mut providers = Providers::new();
    providers.insert("synthetic", Arc::new(Synthetic));
    let engine = Engine::start(config, providers).await.unwrap();
    let request = StartRequest {
        provider: "synthetic".into(),
        prompt: "go".into(),
        options: StartOptions::default(),
    };
    let sid = engine.start_agent("c", request).await.unwrap().session_id;
    let done = event(
        "agent.status",
        serde_json::json!({"sessionId": sid, "status": "done"}),
    );
    let finish = vec![text(&sid, "a"), text(&sid, "b"), done];
    engine.ingest(finish, false).await.unwrap();
    // Finished and stored, its actor stops; the project (in its grace) still holds the session.
    until(|| sessions_alive(&engine) == 0).await;
    let store = engine.inner.store.clone();
    let held = store.seq_ceiling(&sid).unwrap();
    assert!(
        held.is_some_and(|c| c > 3),
        "the finish leaves the ceiling: {held:?}"
    );

    // A late message: the actor read back takes the ceiling over and continues right after seqId 3.
    engine.ingest(vec![text(&sid, "late")], true).await.unwrap();
    until(|| sessions_alive(&engine) == 0).await;
    let s = engine.session(&sid, Page::default()).await.unwrap();
    let seqs: Vec<u64> = s.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);

    // The project lets go: the ceiling is dropped.
    engine.clear_session("c").await.unwrap();
    until(|| store.seq_ceiling(&sid).unwrap().is_none()).await;
    engine.shutdown().await;
}
