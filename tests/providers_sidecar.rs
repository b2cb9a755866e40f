//! The sidecar runner: one fake sidecar process (tests/fixtures/bin/fake-sidecar) speaking the original NDJSON
//! stdio protocol serves many sessions; its `agent_event`s are read by the Claude adapter. A sidecar that
//! crashes fails its running sessions with "Sidecar crashed" and is restarted with backoff (shortened here).

mod providers_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_store::config::{ProviderConfig, ProviderKind};
use agent_store::messages::wire::AgentStatus;
use agent_store::providers::{self, Backoff, SidecarProvider};
use agent_store::CommandError;
use providers_support::*;

fn backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(20),
        max: Duration::from_millis(80),
        tries: 5,
        stable_after: Duration::from_secs(300),
        // The tests wait for readiness, crashes and give-ups as events; six spawns of the fake on a loaded
        // machine may take longer than the service's default ten seconds.
        ready_timeout: PATIENCE,
    }
}

/// An engine whose provider "side" is the fake sidecar, started with `env` and restarted per `backoff`.
async fn harness(env: &[(&str, &str)], backoff: Backoff) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    let mut command = vec!["env".to_string()];
    for (k, v) in env {
        command.push(format!("{k}={v}"));
    }
    for file in ["spawns", "pids", "record"] {
        let var = format!("FAKE_{}", file.to_uppercase());
        command.push(format!("{var}={}", dir.path().join(file).display()));
    }
    command.push(fake("fake-sidecar"));
    config.providers.insert(
        "side".into(),
        ProviderConfig {
            kind: ProviderKind::Sidecar,
            command,
            default_model: Some("claude-sonnet-4-5".into()),
            host: None,
            adapter: Some(ProviderKind::Claude),
            allow_bypass_permissions: false,
        },
    );
    let mut providers = providers::from_config(&config).unwrap();
    let sidecar = SidecarProvider::from_config("side", &config, backoff).unwrap();
    providers.insert("side", Arc::new(sidecar));
    start_with(config, dir, providers).await
}

fn spawns(h: &Harness) -> usize {
    std::fs::read_to_string(h.path("spawns"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn queries(h: &Harness) -> Vec<serde_json::Value> {
    records(&h.path("record"))
        .into_iter()
        .filter(|r| r["type"] == "query")
        .collect()
}

#[actix_rt::test]
async fn one_sidecar_process_serves_several_sessions_to_done() {
    let h = harness(&[], backoff()).await;
    let a = h.start_session("p1", "side", "first", &[]).await.unwrap();
    let b = h.start_session("p2", "side", "second", &[]).await.unwrap();
    for project in ["p1", "p2"] {
        let s = h.finished(project).await;
        assert_done(&s);
        assert_eq!(s.messages.len(), 6);
        assert_eq!(s.cost_usd, 0.0421);
        assert_eq!(s.model, "claude-sonnet-4-5-20250929");
    }
    assert_eq!(spawns(&h), 1);
    let q = queries(&h);
    assert_eq!(q.len(), 2);
    assert_eq!(q[0]["sessionId"], a.as_str());
    assert_eq!(q[0]["provider"], "claude");
    assert_eq!(q[0]["prompt"], "first");
    assert_eq!(q[0]["model"], "claude-sonnet-4-5");
    assert_eq!(q[1]["sessionId"], b.as_str());
}

#[actix_rt::test]
async fn a_follow_up_is_a_query_that_resumes_the_provider_session() {
    let h = harness(&[], backoff()).await;
    h.start_session("p1", "side", "first", &[]).await.unwrap();
    assert_done(&h.finished("p1").await);
    h.engine.send_prompt("p1", "again".into()).await.unwrap();
    eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status == AgentStatus::Done && s.messages.len() == 12).then_some(())
    })
    .await;
    let q = queries(&h);
    assert_eq!(q[1]["prompt"], "again");
    assert_eq!(q[1]["resumeSessionId"], "fake-claude-session-1");
}

#[actix_rt::test]
async fn stop_asks_the_sidecar_and_keeps_it_running() {
    let h = harness(&[("FAKE_MODE", "slow")], backoff()).await;
    let id = h.start_session("p1", "side", "go", &[]).await.unwrap();
    eventually(PATIENCE, || async {
        (h.session("p1").await.messages.len() > 1).then_some(())
    })
    .await;
    h.engine.stop_agent("p1").await.unwrap();
    let stops: Vec<_> = records(&h.path("record"))
        .into_iter()
        .filter(|r| r["type"] == "stop")
        .collect();
    assert_eq!(
        stops,
        [serde_json::json!({"type": "stop", "sessionId": id})]
    );
    let s = h.session("p1").await;
    assert_eq!(s.status, AgentStatus::Done);
    assert_eq!(s.error, None);
    let pid = pids(&h.path("pids"))[0];
    assert!(running(pid));
    h.engine.shutdown().await;
    assert_gone(&[pid]);
}

#[actix_rt::test]
async fn an_error_from_the_sidecar_ends_the_session_in_error() {
    let h = harness(&[("FAKE_MODE", "fail-query")], backoff()).await;
    h.start_session("p1", "side", "go", &[]).await.unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(s.error.as_deref(), Some("model overloaded"));
}

#[actix_rt::test]
async fn a_crash_fails_running_sessions_and_the_restarted_sidecar_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("crashed-once");
    let marker = marker.to_string_lossy();
    let h = harness(
        &[
            ("FAKE_MODE", "crash-on-query"),
            ("FAKE_CRASH_ONCE", &marker),
        ],
        backoff(),
    )
    .await;
    h.start_session("p1", "side", "go", &[]).await.unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(s.error.as_deref(), Some("Sidecar crashed"));

    h.start_session("p2", "side", "go", &[]).await.unwrap();
    assert_done(&h.finished("p2").await);
    assert_eq!(spawns(&h), 2);
}

#[actix_rt::test]
async fn a_sidecar_that_keeps_crashing_is_given_up_after_the_last_try() {
    let h = harness(&[("FAKE_MODE", "crash-at-start")], backoff()).await;
    let err = h.start_session("p1", "side", "go", &[]).await.unwrap_err();
    let CommandError::ProviderFailed { error, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(error, "sidecar side keeps crashing; not restarted");
    // The first start and five restarts, then no more.
    assert_eq!(spawns(&h), 6);
    tokio::time::sleep(backoff().max * 3).await;
    assert_eq!(spawns(&h), 6);
    // A later start tries again from scratch.
    h.start_session("p2", "side", "go", &[]).await.unwrap_err();
    assert_eq!(spawns(&h), 12);
}

#[actix_rt::test]
async fn the_restart_count_starts_over_after_a_stable_run() {
    let stable = Duration::from_millis(300);
    let h = harness(
        &[("FAKE_MODE", "crash-on-query")],
        Backoff {
            tries: 1,
            stable_after: stable,
            ..backoff()
        },
    )
    .await;
    // Crashes at once: the single restart allowed is used.
    h.start_session("p1", "side", "go", &[]).await.unwrap();
    assert_eq!(
        h.finished("p1").await.error.as_deref(),
        Some("Sidecar crashed")
    );
    eventually(PATIENCE, || async { (spawns(&h) == 2).then_some(()) }).await;
    // The restarted sidecar runs past `stable_after` before it crashes: it is restarted again.
    tokio::time::sleep(stable * 2).await;
    h.start_session("p2", "side", "go", &[]).await.unwrap();
    assert_eq!(
        h.finished("p2").await.error.as_deref(),
        Some("Sidecar crashed")
    );
    eventually(PATIENCE, || async { (spawns(&h) == 3).then_some(()) }).await;
}

#[actix_rt::test]
async fn a_missing_sidecar_program_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.providers.insert(
        "side".into(),
        ProviderConfig {
            kind: ProviderKind::Sidecar,
            command: vec!["no-such-sidecar".into()],
            default_model: None,
            host: None,
            adapter: Some(ProviderKind::Codex),
            allow_bypass_permissions: false,
        },
    );
    let providers = providers::from_config(&config).unwrap();
    let h = start_with(config, dir, providers).await;
    let err = h.start_session("p1", "side", "go", &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no-such-sidecar not found on PATH (configure providers.side.command)"
    );
    assert!(!Path::new(&h.path("spawns")).exists());
}
