//! Test harness: the real app (engine, redb in a temp dir, HTTP server on an ephemeral loopback port)
//! started in-process through `api::run`, a real HTTP client, and a small Server-Sent Events reader.
//!
//! Providers: `synthetic` (runs nothing; sessions are fed through the sidecar endpoint) and `recording`
//! (`testkit::recording::Recording`, to see and fail what the engine asks of a provider).

#![allow(dead_code)] // each test file uses a different part of the harness

#[path = "../support/metrics.rs"]
mod metrics;
#[allow(unused_imports)] // not every test crate reads metrics
pub use metrics::sample;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agent_store::api::{self, RunningServer};
use agent_store::config::{Config, ProviderConfig, ProviderKind};
use agent_store::providers::{self, Providers};
use agent_store::testkit::recording::Recording;
use bytes::Bytes;
use bytesize::ByteSize;
use futures_util::{Stream, StreamExt};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

/// How long a test waits for something that should come at once, before failing instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What a test may change in the configuration before the server starts.
pub type Tweak = Box<dyn FnOnce(&mut Config)>;

pub struct TestApp {
    server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub recording: Recording,
    pub config: Config,
    /// The token requests carry (`None`: no Authorization header).
    pub token: Option<String>,
    pub dir: Arc<TempDir>,
}

/// The configuration every test starts from: both test providers, short timers, one HTTP worker.
pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.server.workers = 1;
    config.storage.data_dir = dir.path().to_owned();
    config.timers.persist_debounce = Duration::from_millis(20);
    config.timers.cleanup_grace = Duration::from_secs(600);
    config.providers.clear();
    for name in ["synthetic", "recording"] {
        config.providers.insert(
            name.into(),
            ProviderConfig {
                kind: ProviderKind::Synthetic,
                command: vec![],
                default_model: None,
                host: None,
                adapter: None,
                allow_bypass_permissions: false,
            },
        );
    }
    config
}

fn providers_for(config: &Config, recording: &Recording) -> Providers {
    let mut providers = providers::from_config(config).expect("test providers build");
    providers.insert("recording", Arc::new(recording.clone()));
    providers
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Starts the app with the test configuration changed by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = test_config(&dir);
        tweak(&mut config);
        let recording = Recording::new();
        let server = api::run(config.clone(), providers_for(&config, &recording))
            .await
            .expect("the app starts");
        let token = config.server.auth_token.clone();
        TestApp {
            addr: server.addr(),
            server: Some(server),
            client: client(),
            recording,
            config,
            token,
            dir,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("the server runs")
    }

    /// Stops the server (flushing storage) and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let server = api::run(
            self.config.clone(),
            providers_for(&self.config, &self.recording),
        )
        .await
        .expect("the app restarts");
        self.addr = server.addr();
        self.server = Some(server);
        self.client = client();
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request to `path`, carrying the app's token when it has one.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// The server's `/metrics` text (read samples with `metrics::sample`).
    pub async fn metrics_text(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Starts a session of `provider` for `project`; panics unless the answer is 201.
    pub async fn start(&self, project: &str, provider: &str) -> String {
        let (status, body) = send(
            self.post(&format!("/v1/projects/{project}/sessions"))
                .json(&json!({"provider": provider, "prompt": "hello"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "start {project}: {body}");
        assert_eq!(body["ok"], true);
        body["sessionId"]
            .as_str()
            .expect("sessionId in the start answer")
            .to_owned()
    }

    /// Posts sidecar events (one value: an event or an array); panics unless the answer is 202.
    pub async fn ingest(&self, events: Value) -> Value {
        self.ingest_at("/v1/sidecar/events", events).await
    }

    /// As `ingest`, answering only once the batch is committed.
    pub async fn ingest_durable(&self, events: Value) -> Value {
        self.ingest_at("/v1/sidecar/events?durable=true", events)
            .await
    }

    async fn ingest_at(&self, path: &str, events: Value) -> Value {
        let (status, body) = send(self.post(path).json(&events)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "ingest: {body}");
        body
    }

    /// Opens `/v1/events` (with `query`, e.g. `?projectId=p`, and an optional `Last-Event-ID`).
    pub async fn events(&self, query: &str, last_event_id: Option<&str>) -> SseClient {
        let mut request = self.get(&format!("/v1/events{query}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("the event stream opens in time")
            .expect("the event stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseClient::new(response)
    }

    /// `GET /v1/sessions/{session_id}`; panics unless the answer is 200.
    pub async fn session(&self, session_id: &str) -> Value {
        let (status, body) = send(self.get(&format!("/v1/sessions/{session_id}"))).await;
        assert_eq!(status, StatusCode::OK, "session {session_id}: {body}");
        body
    }
}

/// The route table's method (actix's `http` crate) as the client's.
pub fn method(m: &actix_web::http::Method) -> Method {
    Method::from_bytes(m.as_str().as_bytes()).expect("a standard method")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// Sends a request and reads the answer as JSON (`Value::Null` for an empty body).
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = tokio::time::timeout(PATIENCE, request.send())
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"))
    };
    (status, body)
}

/// Asserts a JSON error answer: the status, `ok: false`, and an error text starting with `prefix`.
pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode, prefix: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(prefix),
        "error {error:?} should start with {prefix:?}"
    );
}

/// A text message event for a session (`agent.message` with one raw `text` message).
pub fn text_event(session_id: &str, id: &str, text: &str) -> Value {
    json!({"event": "agent.message", "payload": {"sessionId": session_id, "messages": [
        {"id": id, "type": "text", "content": {"text": text}, "timestamp": 1_700_000_000_000i64}
    ]}})
}

pub fn status_event(session_id: &str, status: &str) -> Value {
    json!({"event": "agent.status", "payload": {"sessionId": session_id, "status": status}})
}

pub fn cost_event(session_id: &str, cost: f64, input: u64, output: u64) -> Value {
    json!({"event": "agent.cost", "payload": {"sessionId": session_id, "costUsd": cost,
        "inputTokens": input, "outputTokens": output}})
}

/// The seqIds of a session body's messages.
pub fn seq_ids(session: &Value) -> Vec<u64> {
    session["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seqId"].as_u64().expect("seqId"))
        .collect()
}

pub fn big(bytes: usize) -> ByteSize {
    ByteSize::b(bytes as u64)
}

/// One frame of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Comment(String),
    Event {
        event: String,
        id: Option<String>,
        data: Value,
    },
}

/// Reads an SSE response frame by frame.
pub struct SseClient {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>>>>,
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no frame end, so a large frame arriving in many small
    /// chunks is scanned once, not once per chunk.
    scanned: usize,
}

impl SseClient {
    fn new(response: reqwest::Response) -> SseClient {
        SseClient {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
            scanned: 0,
        }
    }

    /// The next frame, or `None` when the server ended the stream.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(PATIENCE, self.read_frame())
            .await
            .expect("a frame in time")
    }

    async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            let from = self.scanned.saturating_sub(1);
            if let Some(at) = self.buffer[from..].windows(2).position(|w| w == b"\n\n") {
                let end = from + at;
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                self.scanned = 0;
                return Some(parse_frame(&String::from_utf8(block).expect("UTF-8 frame")));
            }
            self.scanned = self.buffer.len();
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => panic!("event stream broke: {e}"),
                None => return None,
            }
        }
    }

    /// The next event, skipping comments. Panics if the stream ends or nothing but comments comes in time.
    pub async fn next_event(&mut self) -> (String, Option<String>, Value) {
        let next = async {
            loop {
                match self.read_frame().await.expect("the stream goes on") {
                    Frame::Comment(_) => continue,
                    Frame::Event { event, id, data } => return (event, id, data),
                }
            }
        };
        tokio::time::timeout(PATIENCE, next)
            .await
            .expect("an event in time")
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str) -> (Option<String>, Value) {
        loop {
            let (event, id, data) = self.next_event().await;
            if event == name {
                return (id, data);
            }
        }
    }

    /// Collects `session.messages` seqIds of `session` until `last` has arrived; panics on a duplicate.
    pub async fn messages_until(&mut self, session: &str, last: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        let collect = async {
            while seen.last() != Some(&last) {
                let (id, data) = self.next_named("session.messages").await;
                if data["sessionId"] != session {
                    continue;
                }
                let seqs = seq_ids(&data);
                let want = format!("{session}:{}", seqs.last().expect("non-empty"));
                assert_eq!(id.as_deref(), Some(want.as_str()));
                for s in seqs {
                    assert!(!seen.contains(&s), "seqId {s} sent twice");
                    seen.push(s);
                }
            }
        };
        tokio::time::timeout(PATIENCE, collect)
            .await
            .unwrap_or_else(|_| panic!("seqId {last} of {session} did not come in time"));
        seen
    }
}

fn parse_frame(block: &str) -> Frame {
    let mut event = None;
    let mut id = None;
    let mut data = String::new();
    let mut comment = None;
    for line in block.lines() {
        if let Some(text) = line.strip_prefix(':') {
            comment = Some(text.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
    match (event, comment) {
        (Some(event), _) => Frame::Event {
            event,
            id,
            data: serde_json::from_str(&data).expect("JSON data"),
        },
        (None, Some(text)) => Frame::Comment(text),
        (None, None) => panic!("a frame with neither event nor comment: {block:?}"),
    }
}
