//! The `agent-store` binary as an operator runs it. `serve`: configuration file, environment and flags, the
//! one start-up line, a token that never reaches the logs, SIGTERM ending it cleanly, and the refusal to
//! listen beyond loopback without a token. `convert`: a recorded transcript printed as messages. The
//! allocator's options.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

const SECRET: &str = "tok-3b8f0e1c-never-log-me";

fn serve(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-store"));
    command
        .arg("serve")
        .args(args)
        .env_remove("AGENT_STORE_TOKEN")
        .env_remove("AGENT_STORE_BIND")
        .env_remove("AGENT_STORE_DATA_DIR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads log lines until one contains `needle`; returns every line read.
async fn lines_until(
    lines: &mut tokio::io::Lines<BufReader<ChildStderr>>,
    needle: &str,
) -> Vec<String> {
    let mut read = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("a log line in time")
            .expect("readable stderr")
            .unwrap_or_else(|| panic!("stderr closed before {needle:?}: {read:#?}"));
        let found = line.contains(needle);
        read.push(line);
        if found {
            return read;
        }
    }
}

async fn get(addr: &str, path: &str, token: Option<&str>) -> reqwest::StatusCode {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = client.get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("an answer").status()
}

fn terminate(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id().expect("running") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal sent");
}

#[tokio::test]
async fn serve_starts_logs_one_json_start_line_without_the_token_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let mut child = serve(&[
        "--config",
        config,
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--log-format",
        "json",
    ])
    .env("AGENT_STORE_TOKEN", SECRET)
    .spawn()
    .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();

    let mut log = lines_until(&mut lines, "listening").await;
    let start: serde_json::Value =
        serde_json::from_str(log.last().unwrap()).expect("a JSON log line");
    let addr = start["addr"].as_str().expect("addr field").to_owned();
    let message = start["message"].as_str().unwrap();
    assert!(message.contains(&addr), "{message}");
    assert!(
        message.contains(data.path().to_str().unwrap()),
        "the line says where the data is: {message}"
    );
    assert!(data.path().join("agent-store.redb").exists());

    assert_eq!(get(&addr, "/healthz", None).await, 200);
    assert_eq!(get(&addr, "/v1/projects", None).await, 401);
    assert_eq!(get(&addr, "/v1/projects", Some(SECRET)).await, 200);

    terminate(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exits within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    while let Some(line) = lines.next_line().await.unwrap() {
        log.push(line);
    }
    let all = log.join("\n");
    assert!(!all.contains(SECRET), "the token reached the logs:\n{all}");
    let starts = log.iter().filter(|l| l.contains("listening")).count();
    assert_eq!(starts, 1, "{all}");
}

#[tokio::test]
async fn serve_logs_text_by_default_and_stops_on_sigint() {
    let data = tempfile::tempdir().unwrap();
    let mut child = serve(&[
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        data.path().to_str().unwrap(),
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .spawn()
    .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = lines_until(&mut lines, "listening").await;
    let line = log.last().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "{line}"
    );
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    assert!(
        line.contains(concat!("agent-store ", env!("CARGO_PKG_VERSION"))),
        "the line names the version: {line}"
    );
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    assert!(
        line.contains(&format!("config {config}")),
        "the line names the configuration file read: {line}"
    );

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exits within 10 s of SIGINT")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn serve_refuses_a_public_bind_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let output = serve(&[
        "--bind",
        "0.0.0.0:0",
        "--data-dir",
        data.path().to_str().unwrap(),
    ])
    .output()
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("AGENT_STORE_TOKEN"), "{stderr}");
}

#[tokio::test]
async fn serve_names_a_bad_configuration() {
    let output = serve(&["--config", "/nonexistent/agent-store.toml"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/agent-store.toml"), "{stderr}");
}

#[tokio::test]
async fn convert_prints_a_transcript_one_message_a_line() {
    let transcript = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/transcripts/claude/claude-agent-sdk-gleam__golden_basic_query.ndjson"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_agent-store"))
        .args(["convert", "--provider", "claude", transcript])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let messages: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert!(!messages.is_empty());
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m["seqId"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=messages.len() as u64).collect::<Vec<_>>());
    assert!(
        messages.iter().any(|m| m["role"] == "assistant"),
        "{stdout}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_agent-store"))
        .args(["convert", "--provider", "codex", "/nonexistent/t.jsonl"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/t.jsonl"), "{stderr}");
}

/// The binary's allocator hands pages unused for a second back to the system (src/main.rs `MALLOC_CONF`);
/// jemalloc's own statistics, printed at exit when asked, say which options it runs with.
#[cfg(feature = "jemalloc")]
#[tokio::test]
async fn the_allocator_returns_freed_pages_after_a_second() {
    let output = Command::new(env!("CARGO_BIN_EXE_agent-store"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let stats = String::from_utf8_lossy(&output.stderr);
    assert!(stats.contains("opt.dirty_decay_ms: 1000 ("), "{stats}");
}
