//! Sessions across restarts of the real `agent-store serve` binary (API.md "Sessions across restarts"):
//!
//! - a seqId sent on the live stream is never given to another message, even when a SIGKILL took the
//!   message before it was stored;
//! - sessions fed from outside (the synthetic provider, a sidecar posting over HTTP) keep running across a
//!   SIGTERM and a SIGKILL: their status stays and their events land;
//! - child agents are error "Interrupted: service restarted" by default, and resumed with the provider's
//!   own resume (checked on the fake CLIs' argv) when `resumeOnRestart` or `resume.on_restart` says so, or
//!   on demand through `POST /v1/projects/{id}/session/resume`.

mod reliability_support;

#[path = "support/wait.rs"]
mod wait;

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use reliability_support::sse::{self, seq_ids};
use reliability_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wait::eventually;

/// Long enough that nothing is stored by the debounce during a test: only status changes and durable
/// ingests are.
const NO_DEBOUNCE: Duration = Duration::from_secs(600);

fn text(session: &str, id: &str) -> Value {
    json!({"event": "agent.message", "payload": {"sessionId": session,
        "messages": [{"id": id, "type": "text", "content": {"text": id}}]}})
}

async fn ingest(server: &Server, events: Value) -> Value {
    let (status, body) = server
        .call(
            server
                .request(Method::POST, "/v1/sidecar/events")
                .json(&events),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

async fn restart(mut server: Server, signal: Signal, config: &Path, data: &Path) -> Server {
    match signal {
        Signal::SIGKILL => server.kill().await,
        _ => {
            let (status, _) = server.terminate(PATIENCE).await;
            assert!(
                status.success(),
                "SIGTERM ends the server cleanly: {status}"
            );
        }
    }
    serve(config, data, &[]).await
}

/// From schema 11 a new session's first seqId block is held by its record alone (its start writes no
/// `seq_ceilings` row), so this is also the SIGKILL test of that: with `Store::seq_ceiling` ignoring the
/// record's ceiling, `d` got seqId 2 (checked at stop 34).
#[tokio::test]
async fn seq_ids_streamed_before_a_sigkill_are_never_given_to_another_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), NO_DEBOUNCE, "");
    let server = serve(&config, &data, &[]).await;
    let mut live = server.events("?projectId=seq", None).await;
    let sid = server.start("seq", "synthetic", json!({})).await;
    ingest(
        &server,
        json!([text(&sid, "a"), text(&sid, "b"), text(&sid, "c")]),
    )
    .await;
    // Streamed live (seqIds 2..=4), never stored: the debounce is far away.
    let mut seen = Vec::new();
    live.until(|e| {
        if e.event == "session.messages" {
            seen.extend(seq_ids(e));
        }
        seen.contains(&4)
    })
    .await;
    assert_eq!(seen, vec![1, 2, 3, 4]);

    let server = restart(server, Signal::SIGKILL, &config, &data).await;
    let stored = server.session(&sid).await;
    assert_eq!(
        stored["messages"].as_array().unwrap().len(),
        1,
        "only the prompt was stored before the kill: {stored}"
    );
    let answer = ingest(&server, json!([text(&sid, "d")])).await;
    assert_eq!(answer, json!({"accepted": 1, "ignored": 0}));
    let after = server.session(&sid).await;
    let d = after["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "d")
        .unwrap_or_else(|| panic!("the new message landed: {after}"))["seqId"]
        .as_u64()
        .unwrap();
    assert!(
        d > *seen.iter().max().unwrap(),
        "the new message's seqId {d} is above every seqId sent before the kill ({seen:?})"
    );
    server.kill().await;
}

/// A synthetic session, fed over HTTP, across a restart by `signal`.
async fn external_session_keeps_running(signal: Signal) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), NO_DEBOUNCE, "");
    let server = serve(&config, &data, &[]).await;
    let sid = server.start("ext", "synthetic", json!({})).await;
    // Durable: stored before the answer, so it outlives a SIGKILL too.
    let (status, _) = server
        .call(
            server
                .request(Method::POST, "/v1/sidecar/events?durable=true")
                .json(&json!([text(&sid, "before")])),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let server = restart(server, signal, &config, &data).await;
    // Reads answer as before the restart (issue 13 item 1): the project's session and the project list.
    let (status, current) = server
        .call(server.request(Method::GET, "/v1/projects/ext/session"))
        .await;
    assert_eq!(status, StatusCode::OK, "{signal}: {current}");
    assert_eq!(current["sessionId"], sid.as_str(), "{signal}: {current}");
    let (_, projects) = server
        .call(server.request(Method::GET, "/v1/projects"))
        .await;
    assert!(
        projects
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["projectId"] == "ext")),
        "{signal}: {projects}"
    );
    let s = server.session(&sid).await;
    assert_eq!(s["status"], "running", "{signal}: {s}");
    assert!(s.get("error").is_none_or(Value::is_null), "{signal}: {s}");
    let answer = ingest(&server, json!([text(&sid, "after")])).await;
    assert_eq!(
        answer,
        json!({"accepted": 1, "ignored": 0}),
        "{signal}: the sidecar's events land"
    );
    let s = server.session(&sid).await;
    let ids: Vec<&str> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.ends_with(&["before", "after"]), "{signal}: {ids:?}");
    let seqs: Vec<u64> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seqId"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{signal}: {seqs:?}");
    if signal == Signal::SIGTERM {
        // A clean shutdown stored everything it handed out: seqIds go on without a gap.
        assert_eq!(seqs, vec![1, 2, 3], "{s}");
    }
    // Still the sidecar's to finish.
    let status = json!({"event": "agent.status", "payload": {"sessionId": sid, "status": "done"}});
    assert_eq!(ingest(&server, status).await["accepted"], 1);
    server.kill().await;
}

#[tokio::test]
async fn an_external_session_keeps_running_across_a_sigterm() {
    external_session_keeps_running(Signal::SIGTERM).await;
}

#[tokio::test]
async fn an_external_session_keeps_running_across_a_sigkill() {
    external_session_keeps_running(Signal::SIGKILL).await;
}

/// Configuration with the fake Claude and Codex CLIs beside the synthetic provider.
fn cli_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let providers = format!(
        "[providers.claude]\nkind = \"claude\"\ncommand = [\"{}\"]\n\n\
         [providers.codex]\nkind = \"codex\"\ncommand = [\"{}\"]\n\n\
         [timers]\nstop_grace = \"300ms\"\n\n{extra}",
        fixture_bin("fake-claude"),
        fixture_bin("fake-codex"),
    );
    let path = dir.join("agent-store.toml");
    std::fs::write(
        &path,
        format!("[providers.synthetic]\nkind = \"synthetic\"\n\n{providers}\n"),
    )
    .unwrap();
    path
}

/// Starts a session of a fake CLI that prints its first line (naming its conversation) and then hangs,
/// and waits until the session shows that line.
async fn hanging_agent(
    server: &Server,
    project: &str,
    provider: &str,
    dir: &Path,
    options: Value,
) -> String {
    let mut options = options;
    options["extraEnv"] = json!({
        "FAKE_MODE": "hang",
        "FAKE_RECORD": dir.join(format!("{project}.record")).to_string_lossy(),
        "FAKE_PIDS": dir.join(format!("{project}.pids")).to_string_lossy(),
    });
    let sid = server.start(project, provider, options).await;
    eventually(PATIENCE, || async {
        let s = server.session(&sid).await;
        let n = s["messages"].as_array().map_or(0, Vec::len);
        (n >= 2).then_some(())
    })
    .await;
    // A durable ingest answers once all the session holds is stored, its record with the conversation id
    // the agent named included: what a SIGKILL leaves behind is then known.
    let flush = json!({"event": "agent.cost", "payload": {"sessionId": sid, "costUsd": 0, "inputTokens": 0, "outputTokens": 0}});
    let (status, body) = server
        .call(
            server
                .request(Method::POST, "/v1/sidecar/events?durable=true")
                .json(&flush),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sid
}

/// The argv of every run of a fake, from its record file.
fn argvs(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| serde_json::from_value(r.get("argv")?.clone()).ok())
        .collect()
}

/// Ends every process a fake wrote to its pid file (those a SIGKILLed server left behind).
fn reap(path: &Path) {
    for pid in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

async fn wait_runs(path: &Path, n: usize) -> Vec<Vec<String>> {
    eventually(PATIENCE, || async {
        let runs = argvs(path);
        (runs.len() >= n).then_some(runs)
    })
    .await
}

fn system_texts(s: &Value) -> Vec<String> {
    s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn child_agents_are_interrupted_by_default_and_resumed_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = cli_config(dir.path(), "");
    let server = serve(&config, &data, &[]).await;
    let plain = hanging_agent(&server, "plain", "claude", dir.path(), json!({})).await;
    let claude = hanging_agent(
        &server,
        "cl",
        "claude",
        dir.path(),
        json!({"resumeOnRestart": true, "model": "claude-sonnet-4-5"}),
    )
    .await;
    let codex = hanging_agent(
        &server,
        "cx",
        "codex",
        dir.path(),
        json!({"resumeOnRestart": true, "model": "gpt-5-codex"}),
    )
    .await;
    // The conversation ids are in the session records once stored: a status change stores them.
    let server = restart(server, Signal::SIGKILL, &config, &data).await;
    for p in ["plain", "cl", "cx"] {
        reap(&dir.path().join(format!("{p}.pids")));
    }

    let s = server.session(&plain).await;
    assert_eq!(s["status"], "error", "{s}");
    assert_eq!(s["error"], "Interrupted: service restarted");

    let runs = wait_runs(&dir.path().join("cl.record"), 2).await;
    let resumed = &runs[1];
    let at = resumed
        .iter()
        .position(|a| a == "--resume")
        .unwrap_or_else(|| panic!("claude resumed with --resume: {resumed:?}"));
    assert_eq!(resumed[at + 1], "fake-claude-session-1");
    assert!(
        resumed
            .windows(2)
            .any(|w| w == ["--model", "claude-sonnet-4-5"]),
        "{resumed:?}"
    );
    let s = eventually(PATIENCE, || async {
        let s = server.session(&claude).await;
        system_texts(&s)
            .iter()
            .any(|t| t == "Resumed after a service restart")
            .then_some(s)
    })
    .await;
    assert_eq!(s["status"], "running", "{s}");

    let runs = wait_runs(&dir.path().join("cx.record"), 2).await;
    let resumed = runs[1].join(" ");
    assert!(
        resumed.starts_with("exec --json --skip-git-repo-check --model gpt-5-codex")
            && resumed.contains(" resume fake-thread-1 -- Continue where you left off."),
        "codex resumed with exec resume <thread id>: {resumed}"
    );
    let s = server.session(&codex).await;
    assert!(
        system_texts(&s).contains(&"Resumed after a service restart".to_owned()),
        "{s}"
    );

    for p in ["cl", "cx"] {
        let (status, body) = server
            .call(server.request(Method::POST, &format!("/v1/projects/{p}/stop")))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    server.kill().await;
    for p in ["plain", "cl", "cx"] {
        reap(&dir.path().join(format!("{p}.pids")));
    }
}

#[tokio::test]
async fn resume_on_restart_from_the_configuration_and_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = cli_config(dir.path(), "[resume]\non_restart = \"resume\"\n");
    let server = serve(&config, &data, &[]).await;
    let sid = hanging_agent(&server, "cfg", "claude", dir.path(), json!({})).await;
    // SIGTERM: the service stops the agent and the session is still running in storage.
    let server = restart(server, Signal::SIGTERM, &config, &data).await;
    let record = dir.path().join("cfg.record");
    let runs = wait_runs(&record, 2).await;
    assert!(
        runs[1]
            .windows(2)
            .any(|w| w == ["--resume", "fake-claude-session-1"]),
        "{:?}",
        runs[1]
    );
    // Running: a resume on demand is refused.
    let path = "/v1/projects/cfg/session/resume";
    let (status, body) = server.call(server.request(Method::POST, path)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = server
        .call(server.request(Method::POST, "/v1/projects/cfg/stop"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Finished: resumed on demand, with the caller's prompt, the same conversation.
    let (status, body) = server
        .call(
            server
                .request(Method::POST, path)
                .json(&json!({"prompt": "and now the tests"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ok": true, "sessionId": sid}));
    let runs = wait_runs(&record, 3).await;
    assert!(
        runs[2]
            .windows(2)
            .any(|w| w == ["--resume", "fake-claude-session-1"]),
        "{:?}",
        runs[2]
    );
    let s = server.session(&sid).await;
    assert_eq!(s["status"], "running");
    let texts = system_texts(&s);
    assert!(
        texts.contains(&"Resumed on request".to_owned()),
        "{texts:?}"
    );
    let last_user = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap();
    assert_eq!(last_user["content"], "and now the tests");

    // No session at all: 404.
    let (status, body) = server
        .call(server.request(Method::POST, "/v1/projects/none/session/resume"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "No session for project");
    let (status, _) = server
        .call(server.request(Method::POST, "/v1/projects/cfg/stop"))
        .await;
    assert_eq!(status, StatusCode::OK);
    server.kill().await;
    reap(&dir.path().join("cfg.pids"));
}

/// Reads events until `done`; answers them all. Fails on an event id seen twice.
async fn read_until(
    live: &mut sse::Events,
    mut done: impl FnMut(&sse::Event) -> bool,
) -> Vec<sse::Event> {
    let events = live.until(|e| done(e)).await;
    let mut ids = std::collections::HashSet::new();
    for e in &events {
        if let Some(id) = &e.id {
            assert!(
                ids.insert(id.clone()),
                "event id {id} sent twice: {events:?}"
            );
        }
    }
    events
}

fn is_message(e: &sse::Event, session: &str, id: &str) -> bool {
    e.event == "session.messages"
        && e.data["sessionId"] == session
        && e.data["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == id))
}

/// (event, sessionId, message ids) of what a client was sent, for the assertions' messages.
fn summary(events: &[sse::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let ids: Vec<&str> = e.data["messages"]
                .as_array()
                .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
                .unwrap_or_default();
            format!(
                "{} {} {} {:?}",
                e.event,
                e.id.as_deref().unwrap_or("-"),
                e.data["sessionId"].as_str().unwrap_or(""),
                ids
            )
        })
        .collect()
}

#[tokio::test]
async fn a_client_away_across_a_restart_gets_every_event_it_missed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), Duration::from_millis(50), "");
    let server = serve(&config, &data, &[]).await;
    let a = server.start("dash-a", "synthetic", json!({})).await;
    let mut live = server.events("", None).await;
    ingest(&server, json!([text(&a, "a1")])).await;
    let seen = read_until(&mut live, |e| is_message(e, &a, "a1")).await;
    let last = seen
        .last()
        .unwrap()
        .id
        .clone()
        .expect("every event has an id");
    drop(live);

    // Away: more for a, a new session b, then a restart, then more for b.
    ingest(&server, json!([text(&a, "a2")])).await;
    let b = server.start("dash-b", "synthetic", json!({})).await;
    ingest(&server, json!([text(&b, "b1")])).await;
    let server = restart(server, Signal::SIGTERM, &config, &data).await;
    ingest(&server, json!([text(&b, "b2")])).await;

    let mut back = server.events("", Some(&last)).await;
    let mut missed = read_until(&mut back, |e| is_message(e, &b, "b2")).await;
    ingest(&server, json!([text(&b, "b3")])).await;
    missed.extend(read_until(&mut back, |e| is_message(e, &b, "b3")).await);
    let all = summary(&missed);
    assert!(
        missed.iter().all(|e| e.event != "reset"),
        "a clean restart replays: {all:#?}"
    );
    assert!(
        missed.iter().all(|e| e.id.is_some()),
        "every event has an id: {all:#?}"
    );
    assert!(
        missed.iter().any(|e| e.event == "session.status"
            && e.data["sessionId"] == b
            && e.data["status"] == "running"),
        "the new session's status: {all:#?}"
    );
    for (session, want) in [(&a, vec!["a2"]), (&b, vec!["b-user", "b1", "b2", "b3"])] {
        let mut ids = Vec::new();
        let mut seqs = Vec::new();
        for e in missed
            .iter()
            .filter(|e| e.event == "session.messages" && e.data["sessionId"] == **session)
        {
            for m in e.data["messages"].as_array().unwrap() {
                ids.push(m["id"].as_str().unwrap().to_owned());
                seqs.push(m["seqId"].as_u64().unwrap());
            }
        }
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{session}: in order, none twice: {seqs:?}"
        );
        let want: Vec<String> = want
            .into_iter()
            .map(|w| {
                if w == "b-user" {
                    format!("{b}-user-0")
                } else {
                    w.to_owned()
                }
            })
            .collect();
        assert_eq!(
            ids, want,
            "{session}: every message it missed, once: {all:#?}"
        );
    }
    server.kill().await;
}

#[tokio::test]
async fn a_client_back_after_a_sigkill_is_told_to_reset_then_gets_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), Duration::from_millis(50), "");
    let server = serve(&config, &data, &[]).await;
    let mut live = server.events("?projectId=kill-a", None).await;
    let a = server.start("kill-a", "synthetic", json!({})).await;
    ingest(&server, json!([text(&a, "a1")])).await;
    let seen = read_until(&mut live, |e| is_message(e, &a, "a1")).await;
    let status = seen
        .iter()
        .find(|e| e.event == "session.status")
        .expect("the status of the new session");
    let last = status.id.clone().expect("every event has an id");
    drop(live);
    let server = restart(server, Signal::SIGKILL, &config, &data).await;
    let mut back = server.events("?projectId=kill-a", Some(&last)).await;
    let first = back.next().await.expect("an event");
    assert_eq!(first.event, "reset", "{first:?}");
    assert!(first.data["reason"].as_str().is_some_and(|r| !r.is_empty()));
    ingest(&server, json!([text(&a, "a2")])).await;
    read_until(&mut back, |e| is_message(e, &a, "a2")).await;
    // An unknown id resets too; an empty one is no id at all.
    let mut unknown = server.events("?projectId=kill-a", Some("99.1")).await;
    assert_eq!(unknown.next().await.unwrap().event, "reset");
    let mut empty = server.events("?projectId=kill-a", Some("")).await;
    ingest(&server, json!([text(&a, "a3")])).await;
    let got = read_until(&mut empty, |e| is_message(e, &a, "a3")).await;
    assert!(
        got.iter().all(|e| e.event != "reset"),
        "{:?}",
        summary(&got)
    );
    server.kill().await;
}
