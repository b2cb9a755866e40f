//! What the engine's own tests share: an engine on a temporary redb file with the synthetic provider, its
//! events, and waiting for what the actors do in their own time.

use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::config::Config;
use crate::messages::commands::{StartOptions, StartRequest};
use crate::messages::wire::SidecarEvent;
use crate::providers::synthetic::Synthetic;
use crate::providers::Providers;

/// An engine whose project keeps its finished session for the whole test (a grace of an hour) and whose
/// sessions never stall; the directory holds its storage.
pub async fn engine() -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.timers.persist_debounce = Duration::from_millis(5);
    config.timers.stall_after = Duration::from_secs(3600);
    config.timers.cleanup_grace = Duration::from_secs(3600);
    let mut providers = Providers::new();
    providers.insert("synthetic", Arc::new(Synthetic));
    (Engine::start(config, providers).await.unwrap(), dir)
}

/// Starts a synthetic agent in `project_id`; answers its session id.
pub async fn start(engine: &Engine, project_id: &str) -> String {
    let request = StartRequest {
        provider: "synthetic".into(),
        prompt: "go".into(),
        options: StartOptions::default(),
    };
    engine
        .start_agent(project_id, request)
        .await
        .unwrap()
        .session_id
}

pub fn event(kind: &str, payload: serde_json::Value) -> SidecarEvent {
    serde_json::from_value(serde_json::json!({"event": kind, "payload": payload})).unwrap()
}

pub fn text(session_id: &str, id: &str) -> SidecarEvent {
    let raw = serde_json::json!({"id": id, "type": "text", "content": {"text": id},
        "timestamp": 1_700_000_000_000u64});
    event(
        "agent.message",
        serde_json::json!({"sessionId": session_id, "messages": [raw]}),
    )
}

pub fn done(session_id: &str) -> SidecarEvent {
    event(
        "agent.status",
        serde_json::json!({"sessionId": session_id, "status": "done"}),
    )
}

/// Waits until `check` holds, polling what the actors did in their own time.
pub async fn until(mut check: impl FnMut() -> bool) {
    eventually(|| std::future::ready(check().then_some(()))).await
}

/// Starts a session for `project`, sends it `texts` and its finish, and waits until its actor has stored
/// them and stopped (the project, in its grace, keeps its id); answers the session's id.
pub async fn finished(engine: &Engine, project: &str, texts: &[&str]) -> String {
    let sid = start(engine, project).await;
    let mut events: Vec<_> = texts.iter().map(|t| text(&sid, t)).collect();
    events.push(done(&sid));
    engine.ingest(events, false).await.unwrap();
    until(|| sessions_alive(engine) == 0).await;
    sid
}

/// Waits until `check` answers something, asking again while it does not.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn sessions_alive(engine: &Engine) -> i64 {
    engine
        .metrics()
        .actors_alive
        .with_label_values(&["session"])
        .get()
}
