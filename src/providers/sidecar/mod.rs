//! A sidecar: one long-lived process per provider, speaking the original runners' NDJSON stdio protocol and
//! serving many sessions at once.
//!
//! In (one JSON object a line on its stdin): `{"type":"query", sessionId, provider, prompt, cwd, model, ...}`,
//! `{"type":"stop", sessionId}`, `{"type":"ping"}`. Out: `ready`, `pong`, `agent_started`,
//! `agent_event` (`{"type":"agent_event", sessionId, event}` where `event` is one native provider line, read
//! by the configured adapter), `agent_stopped`, `agent_error`.
//!
//! A sidecar that dies takes its running sessions with it (they end in error "Sidecar crashed") and is
//! restarted with exponential backoff; one that keeps dying is given up after `Backoff::tries` restarts,
//! until a later start asks for it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::feed::{status_event, Feeder};
use super::lines::{Line, LineSplitter};
use super::process::{self, Group, Invocation, Spawned};
use super::turns::{forget_idle, IDLE_KEPT};
use super::{EventSink, Provider, ProviderError, Runner, SidecarEvent, StartSpec};
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::messages::adapters::adapter_for;

mod backoff;
mod session;

pub use backoff::Backoff;
use session::Session;

/// The error of a session whose sidecar died under it.
const SIDECAR_CRASHED: &str = "Sidecar crashed";
/// Lines waiting for the sidecar's stdin.
const INPUT_QUEUE: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not running: never started, or given up after too many crashes.
    Down,
    /// Spawned, not yet `ready`.
    Starting,
    Ready,
    /// Waiting out a backoff delay after a crash.
    Restarting,
    ShutDown,
}

pub struct SidecarProvider {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    command: Vec<String>,
    adapter: ProviderKind,
    max_line: usize,
    grace: Duration,
    backoff: Backoff,
    phase: watch::Sender<Phase>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    input: Option<mpsc::Sender<String>>,
    group: Option<Group>,
    sessions: HashMap<String, Session>,
}

impl SidecarProvider {
    pub(crate) fn new(
        name: &str,
        provider: &ProviderConfig,
        config: &Config,
        backoff: Backoff,
    ) -> Result<SidecarProvider, String> {
        let adapter = match provider.adapter {
            Some(kind @ (ProviderKind::Claude | ProviderKind::Codex | ProviderKind::Ollama)) => {
                kind
            }
            _ => return Err("adapter must be claude, codex or ollama".into()),
        };
        if provider.command.is_empty() {
            return Err("command must name a program".into());
        }
        Ok(SidecarProvider {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                command: provider.command.clone(),
                adapter,
                max_line: usize::try_from(config.limits.max_line.as_u64()).unwrap_or(usize::MAX),
                grace: config.timers.stop_grace,
                backoff,
                phase: watch::Sender::new(Phase::Down),
                state: Mutex::default(),
            }),
        })
    }

    /// The sidecar `name` as configured, restarted after a crash as `backoff` says (tests shorten it).
    pub fn from_config(
        name: &str,
        config: &Config,
        backoff: Backoff,
    ) -> Result<SidecarProvider, super::BuildError> {
        let error = |message: String| super::BuildError {
            name: name.to_owned(),
            message,
        };
        let provider = config
            .providers
            .get(name)
            .ok_or_else(|| error("is not configured".into()))?;
        SidecarProvider::new(name, provider, config, backoff).map_err(error)
    }
}

impl Provider for SidecarProvider {
    fn start(
        &self,
        spec: StartSpec,
        sink: EventSink,
    ) -> BoxFuture<'static, Result<Box<dyn Runner>, ProviderError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            inner.ready().await?;
            let mut spec = spec;
            let prompt = std::mem::take(&mut spec.prompt);
            let id = spec.session_id.clone();
            let feeder = Feeder::new(&id, adapter_for(inner.adapter));
            let session = Session::new(spec, sink, feeder);
            let query = session.query(inner.adapter, &prompt);
            {
                let mut state = inner.lock();
                state.sessions.insert(id.clone(), session);
                let sent = inner.send(&state, query);
                if sent.is_err() {
                    state.sessions.remove(&id);
                }
                sent?;
            }
            Ok(Box::new(SidecarRunner { inner, id }) as Box<dyn Runner>)
        })
    }

    fn unknown(&self, session_id: &str) -> Box<dyn Runner> {
        Box::new(SidecarRunner {
            inner: self.inner.clone(),
            id: session_id.to_owned(),
        })
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            inner.phase.send_replace(Phase::ShutDown);
            let group = {
                let mut state = inner.lock();
                state.input = None; // closing stdin lets a well-behaved sidecar exit by itself
                state.sessions.clear();
                state.group.take()
            };
            if let Some(group) = group {
                group.terminate(inner.grace).await;
            }
        })
    }
}

/// One session of the sidecar, as its session's actor holds it: follow-ups and the stop are lines on
/// the one sidecar's stdin, which serves every session.
struct SidecarRunner {
    inner: Arc<Inner>,
    id: String,
}

impl Runner for SidecarRunner {
    fn prompt(&self, prompt: String) -> BoxFuture<'static, Result<(), ProviderError>> {
        let (inner, id) = (self.inner.clone(), self.id.clone());
        Box::pin(async move {
            inner.ready().await?;
            let mut state = inner.lock();
            let adapter = inner.adapter;
            let Some(session) = state.sessions.get_mut(&id) else {
                return Err(format!("session {id} is not known to this provider"));
            };
            let query = session.query(adapter, &prompt);
            session.running = true;
            session.idle_since = None;
            session.feeder.finished = None;
            inner.send(&state, query)
        })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        let (inner, id) = (self.inner.clone(), self.id.clone());
        Box::pin(async move {
            let confirmed = {
                let mut state = inner.lock();
                let Some(session) = state.sessions.get_mut(&id).filter(|s| s.running) else {
                    return Ok(());
                };
                let (tx, rx) = oneshot::channel();
                session.stopping = Some(tx);
                let _ = inner.send(&state, json!({"type": "stop", "sessionId": id}));
                rx
            };
            if tokio::time::timeout(inner.grace, confirmed).await.is_err() {
                tracing::warn!(sidecar = %inner.name, session = %id, "sidecar did not confirm the stop");
            }
            // Whatever the sidecar says about this run from now on is not sent.
            if let Some(session) = inner.lock().sessions.get_mut(&id) {
                session.running = false;
                session.stopping = None;
                session.idle_since = Some(std::time::Instant::now());
            }
            Ok(())
        })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the sidecar is ready, spawning it first if it is down.
    async fn ready(self: &Arc<Self>) -> Result<(), ProviderError> {
        let mut phase = self.phase.subscribe();
        // Only one caller may bring a down sidecar up.
        let claimed = self.phase.send_if_modified(|p| {
            let down = *p == Phase::Down;
            if down {
                *p = Phase::Starting;
            }
            down
        });
        if claimed {
            match self.spawn() {
                Ok(spawned) => drop(tokio::spawn(self.clone().supervise(spawned))),
                Err(e) => {
                    self.phase.send_replace(Phase::Down);
                    return Err(e);
                }
            }
        }
        // A start during a restart's backoff waits for it rather than failing at once.
        let settled = phase.wait_for(|p| matches!(p, Phase::Ready | Phase::Down | Phase::ShutDown));
        let reached = match tokio::time::timeout(self.backoff.ready_timeout, settled).await {
            Ok(Ok(p)) => *p,
            _ => *self.phase.borrow(),
        };
        match reached {
            Phase::Ready => Ok(()),
            Phase::Starting => Err(format!("sidecar {} did not become ready", self.name)),
            Phase::Restarting => Err(format!("sidecar {} is restarting after a crash", self.name)),
            Phase::Down => Err(format!(
                "sidecar {} keeps crashing; not restarted",
                self.name
            )),
            Phase::ShutDown => Err("the service is shutting down".into()),
        }
    }

    fn spawn(&self) -> Result<Spawned, ProviderError> {
        let spawned = process::spawn(&Invocation {
            command: self.command.clone(),
            args: Vec::new(),
            cwd: None,
            env: Default::default(),
            stdin: true,
            provider: self.name.clone(),
            // A sidecar serves many sessions: its stderr is no one session's.
            stderr_log: None,
        })?;
        tracing::info!(sidecar = %self.name, pgid = spawned.group.id(), "sidecar started");
        Ok(spawned)
    }

    fn send(&self, state: &State, message: Value) -> Result<(), ProviderError> {
        let input = state
            .input
            .as_ref()
            .ok_or_else(|| format!("sidecar {} is not running", self.name))?;
        input
            .try_send(message.to_string())
            .map_err(|_| format!("sidecar {} is not taking input", self.name))
    }

    /// Serves the sidecar until it dies, then restarts it with backoff; gives up after too many crashes.
    async fn supervise(self: Arc<Self>, first: Spawned) {
        let mut spawned = Some(first);
        let mut restarts = 0;
        loop {
            let began = Instant::now();
            if let Some(process) = spawned.take() {
                self.serve(process).await;
            }
            if *self.phase.borrow() == Phase::ShutDown {
                return;
            }
            self.crashed().await;
            if began.elapsed() >= self.backoff.stable_after {
                restarts = 0;
            }
            if restarts >= self.backoff.tries {
                tracing::error!(sidecar = %self.name, restarts, "sidecar keeps crashing; giving up");
                self.phase.send_replace(Phase::Down);
                return;
            }
            restarts += 1;
            crate::providers::metrics::provider_metrics()
                .sidecar_restarts
                .with_label_values(&[&self.name])
                .inc();
            self.phase.send_replace(Phase::Restarting);
            tokio::time::sleep(self.backoff.delay(restarts)).await;
            if *self.phase.borrow() == Phase::ShutDown {
                return;
            }
            match self.spawn() {
                Ok(process) => {
                    spawned = Some(process);
                    self.phase.send_replace(Phase::Starting);
                }
                Err(e) => {
                    tracing::error!(sidecar = %self.name, error = %e, "cannot restart sidecar")
                }
            }
        }
    }

    /// Reads the sidecar's output until it exits; the group is gone when this returns.
    async fn serve(&self, process: Spawned) {
        let Spawned {
            group,
            stdin,
            mut stdout,
            stderr,
            exit,
        } = process;
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        if let Some(stdin) = stdin {
            tokio::spawn(write_lines(stdin, rx));
        }
        let _ = tx.try_send(json!({"type": "ping"}).to_string());
        {
            let mut state = self.lock();
            state.input = Some(tx);
            state.group = Some(group);
        }
        // A shutdown that came between the spawn and now found no group to end.
        if *self.phase.borrow() == Phase::ShutDown {
            group.terminate(self.grace).await;
        }
        let mut splitter = LineSplitter::new(self.max_line);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut lines = Vec::new();
        while let Ok(n) = stdout.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            splitter.push(&chunk[..n], &mut lines);
            for line in lines.drain(..) {
                self.envelope(line).await;
            }
        }
        if let Some(line) = splitter.finish() {
            self.envelope(line).await;
        }
        {
            let mut state = self.lock();
            state.input = None;
            state.group = None;
        }
        group.terminate(self.grace).await;
        let status = (*exit.borrow()).map(|s| s.to_string()).unwrap_or_default();
        let tail = stderr.text(Duration::from_millis(500)).await;
        tracing::warn!(sidecar = %self.name, %status, stderr = %tail, "sidecar exited");
    }

    /// One line of the sidecar's output.
    async fn envelope(&self, line: Line) {
        let Line::Full(bytes) = line else {
            tracing::warn!(sidecar = %self.name, "sidecar line over limits.max_line skipped");
            return;
        };
        let Ok(message) = serde_json::from_slice::<Value>(&bytes) else {
            tracing::debug!(sidecar = %self.name, "non-JSON sidecar line skipped");
            return;
        };
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
        if matches!(kind, "ready" | "pong") {
            self.phase.send_if_modified(|p| {
                let starting = *p == Phase::Starting;
                if starting {
                    *p = Phase::Ready;
                }
                starting
            });
            return;
        }
        let Some(id) = message.get("sessionId").and_then(Value::as_str) else {
            return;
        };
        let (sink, events) = {
            let mut state = self.lock();
            let Some(session) = state.sessions.get_mut(id).filter(|s| s.running) else {
                return;
            };
            let events = match kind {
                "agent_event" => session.event(message.get("event")),
                "agent_stopped" | "agent_error" => match session.end(kind, &message) {
                    Some(outcome) => vec![status_event(id, &outcome)],
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            let sink = session.sink.clone();
            if !session.running {
                forget_idle(&mut state.sessions, |s| s.idle_since, IDLE_KEPT);
            }
            (sink, events)
        };
        if !events.is_empty() {
            let _ = sink.emit(events).await;
        }
    }

    /// The sidecar died: its running sessions end in error.
    async fn crashed(&self) {
        let ended: Vec<(EventSink, SidecarEvent)> = {
            let mut state = self.lock();
            state
                .sessions
                .iter_mut()
                .filter(|(_, s)| s.running)
                .filter_map(|(id, s)| {
                    s.running = false;
                    s.idle_since = Some(std::time::Instant::now());
                    match s.stopping.take() {
                        Some(stop) => {
                            let _ = stop.send(());
                            None
                        }
                        None => Some((
                            s.sink.clone(),
                            status_event(id, &Err(SIDECAR_CRASHED.into())),
                        )),
                    }
                })
                .collect()
        };
        for (sink, event) in ended {
            let _ = sink.emit(vec![event]).await;
        }
    }
}

async fn write_lines(mut stdin: tokio::process::ChildStdin, mut lines: mpsc::Receiver<String>) {
    while let Some(mut line) = lines.recv().await {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
}
