//! Shared setup for engine tests: a real engine on a real redb file in a temp dir, with a recording provider
//! registered as "claude" (so the claude defaults apply) and "codex", and short timers.

#![allow(dead_code)]

#[path = "../support/wait.rs"]
mod wait;
#[allow(unused_imports)] // not every test crate waits
pub use wait::eventually;
#[path = "../support/metrics.rs"]
mod metrics;
#[allow(unused_imports)] // not every test crate reads metrics
pub use metrics::{handled, sample, sum};

use std::time::Duration;

use agent_store::config::{Config, ProviderConfig, ProviderKind};
use agent_store::messages::commands::{LiveEvent, StartOptions, StartRequest};
use agent_store::messages::wire::{RawMessage, SidecarEvent};
use agent_store::providers::Providers;
use agent_store::testkit::recording::Recording;
use agent_store::Engine;
use std::sync::Arc;
use tempfile::TempDir;

/// How long an engine test waits for what an actor does in its own time (`eventually`): generous, since the
/// machines are shared and noisy; a test that passes never waits it out.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct TestEngine {
    pub engine: Engine,
    pub provider: Recording,
    pub config: Config,
    pub dir: Arc<TempDir>,
}

/// Test timers: no stall and no cleanup unless a test asks, a short debounce.
pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.timers.persist_debounce = Duration::from_millis(50);
    config.timers.stall_after = Duration::from_secs(3600);
    config.timers.cleanup_grace = Duration::from_secs(3600);
    config.providers.insert(
        "codex".into(),
        ProviderConfig {
            kind: ProviderKind::Codex,
            command: vec!["codex".into()],
            default_model: None,
            host: None,
            adapter: None,
            allow_bypass_permissions: false,
        },
    );
    config
}

pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestEngine {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(&dir);
    tweak(&mut config);
    start_with(config, dir, Recording::new()).await
}

pub async fn start_with(config: Config, dir: Arc<TempDir>, provider: Recording) -> TestEngine {
    let mut providers = Providers::new();
    providers.insert("claude", Arc::new(provider.clone()));
    providers.insert("codex", Arc::new(provider.clone()));
    let engine = Engine::start(config.clone(), providers)
        .await
        .expect("engine starts");
    TestEngine {
        engine,
        provider,
        config,
        dir,
    }
}

impl TestEngine {
    /// Shuts this engine down and starts another on the same data directory.
    pub async fn restart(self) -> TestEngine {
        self.engine.shutdown().await;
        start_with(self.config, self.dir, self.provider).await
    }

    pub async fn start_session(&self, project: &str, prompt: &str) -> String {
        self.engine
            .start_agent(project, request("claude", prompt, StartOptions::default()))
            .await
            .expect("session starts")
            .session_id
    }

    pub async fn send(&self, events: Vec<SidecarEvent>) {
        self.engine.ingest(events, false).await.expect("ingest");
    }
}

pub fn request(provider: &str, prompt: &str, options: StartOptions) -> StartRequest {
    StartRequest {
        provider: provider.into(),
        prompt: prompt.into(),
        options,
    }
}

pub fn raw(id: &str, kind: &str, content: serde_json::Value) -> RawMessage {
    RawMessage {
        id: id.into(),
        kind: kind.into(),
        parent_id: None,
        content: content.into(),
        timestamp: 1_700_000_000_000,
    }
}

pub fn messages(session_id: &str, raws: Vec<RawMessage>) -> SidecarEvent {
    serde_json::from_value(serde_json::json!({
        "event": "agent.message",
        "payload": {"sessionId": session_id, "messages": raws},
    }))
    .unwrap()
}

pub fn status(session_id: &str, status: &str, error: Option<&str>) -> SidecarEvent {
    let mut payload = serde_json::json!({"sessionId": session_id, "status": status});
    if let Some(e) = error {
        payload["error"] = e.into();
    }
    serde_json::from_value(serde_json::json!({"event": "agent.status", "payload": payload}))
        .unwrap()
}

pub fn cost(session_id: &str, cost_usd: f64, input: u64, output: u64) -> SidecarEvent {
    serde_json::from_value(serde_json::json!({"event": "agent.cost", "payload": {
        "sessionId": session_id, "costUsd": cost_usd, "inputTokens": input, "outputTokens": output}}))
    .unwrap()
}

/// `n` text messages, with raw ids no other call of this process gives (ingest drops a raw id its
/// session has seen recently: a retry).
pub fn text(n: usize) -> Vec<RawMessage> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (0..n)
        .map(|i| {
            raw(
                &format!("t{call}-{i}"),
                "text",
                serde_json::json!({"text": format!("line {i}")}),
            )
        })
        .collect()
}

/// The next notification on a subscription, skipping other events.
pub async fn next_notification(
    sub: &mut agent_store::engine::Subscription,
    within: Duration,
) -> (String, agent_store::messages::wire::Variant) {
    let wait = async {
        loop {
            match sub.recv().await {
                Some(LiveEvent::Notification {
                    message, variant, ..
                }) => return (message, variant),
                Some(_) => continue,
                None => panic!("subscription closed"),
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .expect("a notification in time")
}
