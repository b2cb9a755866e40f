//! The real `agent-store serve` binary for the reliability tests: started on a temp data dir and an
//! ephemeral loopback port with a configuration file the test writes, its log captured line by line, and
//! killed (SIGKILL), terminated (SIGTERM) or restarted on the same data dir.

#![allow(dead_code)] // each test binary uses its own part of this

pub mod sse;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Long enough for a slow, shared CI machine; only a failure ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn fixture_bin(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bin")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A running `agent-store serve`.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub pid: i32,
    /// Every log line so far (JSON), read from its stderr as it comes.
    pub log: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
    pub token: Option<String>,
}

/// Starts the binary with `config` (a TOML file) and `data_dir`, and waits for its "listening" line.
/// `env` is added to a clean environment (no AGENT_STORE_* or RUST_LOG from the caller).
pub async fn serve(config: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent-store"));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("AGENT_STORE_TOKEN")
        .env_remove("AGENT_STORE_BIND")
        .env_remove("AGENT_STORE_DATA_DIR")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the binary starts");
    let pid = child.id().expect("a pid") as i32;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let sink = log.clone();
    tokio::spawn(async move {
        let mut addr_tx = Some(addr_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listening") {
                let addr = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["addr"].as_str().map(str::to_owned));
                if let (Some(tx), Some(addr)) = (addr_tx.take(), addr) {
                    let _ = tx.send(addr);
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = tokio::time::timeout(PATIENCE, addr_rx)
        .await
        .expect("the server says where it listens in time")
        .unwrap_or_else(|_| {
            panic!(
                "the server ended before listening: {:?}",
                log.lock().unwrap()
            )
        });
    let token = env
        .iter()
        .find(|(k, _)| *k == "AGENT_STORE_TOKEN")
        .map(|(_, v)| v.to_string());
    Server {
        child,
        addr,
        pid,
        log,
        client: client(),
        token,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .expect("HTTP client")
}

/// A configuration file in `dir` with a short debounce, the synthetic provider and `extra` TOML.
pub fn write_config(dir: &Path, debounce: Duration, extra: &str) -> PathBuf {
    let path = dir.join("agent-store.toml");
    let text = format!(
        "[timers]\npersist_debounce = \"{}ms\"\n\n[providers.synthetic]\nkind = \"synthetic\"\n\n{extra}\n",
        debounce.as_millis()
    );
    std::fs::write(&path, text).expect("config written");
    path
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match &self.token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// Sends and reads the answer as JSON (Null when empty).
    pub async fn call(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Starts a session; panics unless the answer is 201.
    pub async fn start(&self, project: &str, provider: &str, options: Value) -> String {
        let body = json!({"provider": provider, "prompt": "go", "options": options});
        let path = format!("/v1/projects/{project}/sessions");
        let (status, answer) = self
            .call(self.request(reqwest::Method::POST, &path).json(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "start {project}: {answer}");
        answer["sessionId"].as_str().expect("sessionId").to_owned()
    }

    pub async fn session(&self, session_id: &str) -> Value {
        let path = format!("/v1/sessions/{session_id}");
        let (status, body) = self.call(self.request(reqwest::Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "session {session_id}: {body}");
        body
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid), signal).expect("signal sent");
    }

    /// Waits for the process to end; panics if it takes longer than `within`.
    pub async fn exit_within(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit within {within:?}"))
            .expect("wait")
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(mut self) {
        self.signal(Signal::SIGKILL);
        self.exit_within(PATIENCE).await;
    }

    /// SIGTERM; answers the exit status and how long the exit took.
    pub async fn terminate(&mut self, within: Duration) -> (std::process::ExitStatus, Duration) {
        let began = std::time::Instant::now();
        self.signal(Signal::SIGTERM);
        let status = self.exit_within(within).await;
        (status, began.elapsed())
    }

    /// The log so far, one line each.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// The text messages of one ingest batch: ids given, one `agent.message` event per session.
pub fn batch_events(sessions: &[String], ids: &[String]) -> Value {
    let events: Vec<Value> = sessions
        .iter()
        .map(|sid| {
            let messages: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "type": "text", "content": {"text": id}, "timestamp": 1_700_000_000_000i64}))
                .collect();
            json!({"event": "agent.message", "payload": {"sessionId": sid, "messages": messages}})
        })
        .collect();
    Value::Array(events)
}

/// The messages of a session body: (seqId, id).
pub fn stored(session: &Value) -> Vec<(u64, String)> {
    session["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["seqId"].as_u64().expect("seqId"),
                m["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

/// Pids of every process in process group `pgid` (read from /proc; zombies count as gone).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command: state, ppid, pgrp, ...
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first().is_some_and(|s| *s != "Z" && *s != "X")
                && fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
        })
        .collect()
}
