//! An agent-store node as an operator runs it: the real binary, `serve --cluster` with a configuration file
//! naming its NATS servers, its own data directory, on an ephemeral loopback port read from its start-up
//! line. Signals reach it as they would a real process (SIGKILL, SIGSTOP, SIGCONT); it is killed on drop.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Node {
    pub id: String,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    child: Child,
    pub client: reqwest::Client,
    _dir: TempDir,
}

/// What a node is started with.
pub struct NodeConfig<'a> {
    pub nats_url: &'a str,
    pub partitions: u32,
    pub lease_ttl_secs: u64,
    pub replicas: usize,
    /// How often an owner snapshots its partitions (`cluster.snapshot_interval`).
    pub snapshot_interval_secs: u64,
    /// More `[cluster]` lines, as TOML.
    pub extra: &'a str,
}

impl Node {
    pub async fn start(id: &str, config: &NodeConfig<'_>) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("node.toml");
        let text = format!(
            r#"
[server]
bind = "127.0.0.1:0"
workers = 2
[storage]
data_dir = "{data}"
[timers]
persist_debounce = "20ms"
[providers.synthetic]
kind = "synthetic"
[providers.claude]
kind = "claude"
command = ["{fake_claude}"]
[cluster]
enabled = true
nats_url = "{nats}"
node_id = "{id}"
partitions = {partitions}
lease_ttl = "{ttl}s"
replicas = {replicas}
forward_timeout = "10s"
snapshot_interval = "{snapshot}s"
stream_max_bytes = "64MiB"     # JetStream refuses a stream larger than its store may grow (75% of free disk)
{extra}
"#,
            data = dir.path().join("data").display(),
            fake_claude = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/bin/fake-claude"
            ),
            nats = config.nats_url,
            partitions = config.partitions,
            ttl = config.lease_ttl_secs,
            replicas = config.replicas,
            snapshot = config.snapshot_interval_secs,
            extra = config.extra,
        );
        std::fs::write(&file, text).expect("config written");
        let mut child = Command::new(env!("CARGO_BIN_EXE_agent-store"))
            .args(["serve", "--cluster", "--config"])
            .arg(&file)
            .env_remove("AGENT_STORE_TOKEN")
            .env_remove("AGENT_STORE_BIND")
            .env_remove("AGENT_STORE_DATA_DIR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("readable stderr")
                    .unwrap_or_else(|| panic!("node {id} exited before listening"));
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("node {id} did not listen in time"));
        // Keep draining its log so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node {
            id: id.into(),
            url,
            child,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.child.id().expect("running") as i32);
        kill(pid, signal).expect("signal sent");
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.answer(self.client.get(format!("{}{path}", self.url)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.answer(self.client.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.answer(self.client.delete(format!("{}{path}", self.url)))
            .await
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The partitions this node says it holds (`GET /v1/cluster`).
    pub async fn partitions(&self) -> Vec<u32> {
        let (status, view) = self.get("/v1/cluster").await;
        assert_eq!(status, StatusCode::OK, "{view}");
        view["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u32)
            .collect()
    }

    /// One sample of the node's `/metrics`, or 0.
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}
