//! Provider faults end to end, with real agent processes (the fakes in tests/fixtures/bin), where the
//! runners' own tests (tests/providers_*.rs: crashes, garbage lines, over-long lines, a sidecar given up
//! after its last try) do not already prove the guarantee:
//!
//! - an agent that hangs silently brings the stall notification, and can still be stopped;
//! - an agent that floods output faster than storage takes it is held back (the awaited event sink
//!   stops reading its stdout), so the messages in memory stay bounded, and nothing is lost;
//! - a sidecar that crash-loops fails its own sessions while every other session is served as usual.

mod providers_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_store::config::{ProviderConfig, ProviderKind};
use agent_store::messages::commands::{LiveEvent, Page};
use agent_store::messages::wire::{AgentStatus, Variant};
use agent_store::providers::{self, Backoff, SidecarProvider};
use providers_support::*;

#[actix_rt::test]
async fn a_silent_agent_brings_the_stall_notification_and_can_still_be_stopped() {
    let h = start(|c, _| c.timers.stall_after = Duration::from_millis(300)).await;
    let mut live = h.engine.subscribe(Some("rel-hang".into())).await.unwrap();
    let pids = h.path("pids");
    h.start_session(
        "rel-hang",
        "claude",
        "go",
        &[("FAKE_MODE", "hang"), ("FAKE_PIDS", pids.to_str().unwrap())],
    )
    .await
    .unwrap();
    let agent = wait_pids(&pids, 1).await;
    let stalled = tokio::time::timeout(PATIENCE, async {
        loop {
            match live.recv().await {
                Some(LiveEvent::Notification {
                    message, variant, ..
                }) if message.starts_with("Agent stalled on") => return (message, variant),
                Some(_) => continue,
                None => panic!("the live stream ended"),
            }
        }
    })
    .await
    .expect("a stall notification in time");
    assert_eq!(
        stalled,
        (
            "Agent stalled on rel-hang (no activity for 0 min)".to_owned(),
            Variant::Warning
        )
    );
    assert!(
        running(agent[0]),
        "stalled is not dead: the agent still runs"
    );
    assert_eq!(h.session("rel-hang").await.status, AgentStatus::Running);

    h.engine.stop_agent("rel-hang").await.unwrap();
    assert_eq!(h.session("rel-hang").await.status, AgentStatus::Done);
    assert_gone(&agent);
}

/// A Claude stream-json transcript of `n` assistant lines and a result, written to `path`.
fn flood_transcript(path: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&serde_json::json!({"type": "assistant", "uuid": format!("u{i}"),
            "message": {"id": format!("msg_{i}"), "role": "assistant",
                "content": [{"type": "text", "text": format!("flood line {i} {}", "z".repeat(200))}]}})
        .to_string());
        text.push('\n');
    }
    text.push_str(r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","total_cost_usd":0.5,"usage":{"input_tokens":1,"output_tokens":2}}"#);
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[actix_rt::test]
async fn a_flooding_agent_is_held_back_by_storage_and_loses_nothing() {
    const LINES: usize = 5000;
    const IN_MEMORY: usize = 100;
    let h = start(|c, _| c.limits.messages_in_memory = IN_MEMORY).await;
    let transcript = h.path("flood.jsonl");
    flood_transcript(&transcript, LINES);
    // The persister is held before the agent says anything: storage takes nothing for a while.
    let sid = h
        .start_session(
            "rel-flood",
            "claude",
            "go",
            &[
                ("FAKE_TRANSCRIPT", transcript.to_str().unwrap()),
                ("FAKE_DELAY", "0"),
            ],
        )
        .await
        .unwrap();
    let hold = h.engine.hold_persister().await.unwrap();

    // While storage is stuck, the agent writes as fast as it can; what the session holds stays bounded.
    let mut most = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = h.engine.session(&sid, Page::default()).await.unwrap();
        most = most.max(s.last_seq_id);
    }
    eprintln!("at most {most} messages taken while storage was held");
    assert!(
        most > IN_MEMORY as u64 / 2,
        "the agent's output reached the session: {most}"
    );
    assert!(
        most <= 3 * IN_MEMORY as u64,
        "{most} messages taken while storage took none: no backpressure"
    );

    drop(hold);
    let s = h.finished("rel-flood").await;
    assert_done(&s);
    h.engine.flush().await.unwrap();
    let stored = h
        .engine
        .session(&sid, Page::default())
        .await
        .unwrap()
        .messages;
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    for i in 0..LINES {
        let id = format!("msg_{i}:0");
        assert!(
            stored.iter().any(|m| m.id == id),
            "{id} was lost (of {})",
            stored.len()
        );
    }
}

fn backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(20),
        max: Duration::from_millis(80),
        tries: 3,
        stable_after: Duration::from_secs(300),
        ready_timeout: Duration::from_secs(10),
    }
}

#[actix_rt::test]
async fn a_crash_looping_sidecar_fails_its_sessions_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.providers.insert(
        "side".into(),
        ProviderConfig {
            kind: ProviderKind::Sidecar,
            command: vec![
                "env".into(),
                "FAKE_MODE=crash-on-query".into(),
                fake("fake-sidecar"),
            ],
            default_model: Some("claude-sonnet-4-5".into()),
            host: None,
            adapter: Some(ProviderKind::Claude),
            allow_bypass_permissions: false,
        },
    );
    let mut all = providers::from_config(&config).unwrap();
    let sidecar = SidecarProvider::from_config("side", &config, backoff()).unwrap();
    all.insert("side", Arc::new(sidecar));
    let h = start_with(config, dir, all).await;

    // Sidecar sessions crash again and again while a Claude session runs beside them.
    let mut sidecar_projects = Vec::new();
    for i in 0..3 {
        let project = format!("rel-side{i}");
        // A start may itself be refused once the sidecar is given up: either way its session errs.
        let _ = h.start_session(&project, "side", "go", &[]).await;
        sidecar_projects.push(project);
    }
    h.start_session("rel-steady", "claude", "go", &[])
        .await
        .unwrap();
    for project in &sidecar_projects {
        let s = h.finished(project).await;
        assert_eq!(s.status, AgentStatus::Error, "{project}");
        let error = s.error.unwrap_or_default();
        // Which words it ends with depends on when the start met the loop: in a crash, given up, or
        // between a crash and its restart (a loaded machine widens that window).
        assert!(
            error == "Sidecar crashed"
                || error.contains("keeps crashing")
                || error.contains("is not running"),
            "{project}: {error}"
        );
    }
    assert_done(&h.finished("rel-steady").await);

    // The service stays up: ready, and new sessions of other providers start and finish.
    assert!(h.engine.is_ready());
    h.start_session("rel-after", "codex", "go", &[])
        .await
        .unwrap();
    assert_done(&h.finished("rel-after").await);
}
