//! The sidecar's table: one task per sidecar provider that owns everything the sidecar's sessions share —
//! the session table, the process (its stdin, its group) and the restart count — and is reached only
//! through its inbox. Starts, follow-ups and stops are messages to it; the sidecar's stdout is read in the
//! same loop, so routing a line to its session takes no lock, and a line is handled after every message
//! that came before it (a session registered before its first `agent_event` arrives).
//!
//! The task outlives the sidecar's process: a crashed sidecar is restarted here after a backoff, and the
//! ended sessions stay known (their provider session id, for a follow-up's resume) while the sidecar is
//! down. It ends when the provider and every runner are gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdout;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::session::Session;
use super::{Phase, Shared};
use crate::providers::feed::status_event;
use crate::providers::lines::{Line, LineSplitter};
use crate::providers::process::{self, Group, Invocation, Spawned, StderrTail};
use crate::providers::turns::{forget_idle, IDLE_KEPT};
use crate::providers::{EventSink, ProviderError, SidecarEvent};

/// The error of a session whose sidecar died under it.
const SIDECAR_CRASHED: &str = "Sidecar crashed";
/// Lines waiting for the sidecar's stdin.
const INPUT_QUEUE: usize = 256;
/// How long the sidecar's stderr may stay open after it exited, for the log line.
const STDERR_WAIT: Duration = Duration::from_millis(500);

/// What the table is asked.
pub(super) enum Ask {
    /// Spawn the sidecar; the caller has moved the phase from `Down` to `Starting`.
    Spawn(oneshot::Sender<Result<(), ProviderError>>),
    /// A new session and the `query` line of its first prompt.
    Register {
        session: Box<Session>,
        query: Value,
        reply: oneshot::Sender<Result<(), ProviderError>>,
    },
    /// A follow-up for a known session.
    Prompt {
        id: String,
        prompt: String,
        reply: oneshot::Sender<Result<(), ProviderError>>,
    },
    /// Asks the sidecar to stop a session's run; the answer is the sidecar's confirmation to come, or
    /// None when the session runs nothing.
    Stop {
        id: String,
        reply: oneshot::Sender<Option<oneshot::Receiver<()>>>,
    },
    /// A stop is over (confirmed or not): whatever the sidecar says about that run from now on is not sent.
    Stopped { id: String },
    /// The service is shutting down (the phase says so already): end the sidecar and forget the sessions.
    Shutdown(oneshot::Sender<()>),
}

/// The sidecar process while it runs.
struct Process {
    stdout: ChildStdout,
    stderr: StderrTail,
    exit: tokio::sync::watch::Receiver<Option<std::process::ExitStatus>>,
    splitter: LineSplitter,
    began: Instant,
}

pub(super) struct Table {
    shared: Arc<Shared>,
    sessions: HashMap<String, Session>,
    input: Option<mpsc::Sender<String>>,
    group: Option<Group>,
    process: Option<Process>,
    /// Restarts in a row (reset after a stable run or a fresh spawn).
    restarts: u32,
    /// When the next restart is due, while waiting out a backoff.
    restart_at: Option<Instant>,
}

/// What woke the table.
enum Woken {
    Ask(Option<Ask>),
    Read(std::io::Result<usize>),
    Restart,
}

impl Table {
    pub(super) fn new(shared: Arc<Shared>) -> Table {
        Table {
            shared,
            sessions: HashMap::new(),
            input: None,
            group: None,
            process: None,
            restarts: 0,
            restart_at: None,
        }
    }

    pub(super) async fn run(mut self, mut inbox: mpsc::Receiver<Ask>) {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let woken = {
                let process = &mut self.process;
                let chunk = &mut chunk;
                let restart_at = self.restart_at;
                let read = async move {
                    match process {
                        Some(p) => p.stdout.read(chunk).await,
                        None => std::future::pending().await,
                    }
                };
                let restart = async move {
                    match restart_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ask = inbox.recv() => Woken::Ask(ask),
                    read = read => Woken::Read(read),
                    () = restart => Woken::Restart,
                }
            };
            match woken {
                Woken::Ask(Some(ask)) => self.handle(ask).await,
                // The provider and every runner are gone.
                Woken::Ask(None) => break,
                Woken::Read(Ok(n)) if n > 0 => {
                    let mut lines = Vec::new();
                    if let Some(p) = &mut self.process {
                        p.splitter.push(&chunk[..n], &mut lines);
                    }
                    for line in lines {
                        self.envelope(line).await;
                    }
                }
                Woken::Read(_) => self.exited().await,
                Woken::Restart => self.restart().await,
            }
        }
        self.close().await;
    }

    /// Closes the sidecar's stdin (a well-behaved sidecar exits by itself) and ends its process group.
    async fn close(&mut self) {
        self.input = None;
        if let Some(group) = self.group.take() {
            group.terminate(self.shared.grace).await;
        }
    }

    async fn handle(&mut self, ask: Ask) {
        match ask {
            Ask::Spawn(reply) => {
                let spawned = self.spawn_fresh();
                let _ = reply.send(spawned);
            }
            Ask::Register {
                session,
                query,
                reply,
            } => {
                let id = session.spec.session_id.clone();
                self.sessions.insert(id.clone(), *session);
                let sent = self.send(query);
                if sent.is_err() {
                    self.sessions.remove(&id);
                }
                let _ = reply.send(sent);
            }
            Ask::Prompt { id, prompt, reply } => {
                let _ = reply.send(self.prompt(&id, &prompt));
            }
            Ask::Stop { id, reply } => {
                let _ = reply.send(self.stop(&id));
            }
            Ask::Stopped { id } => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.running = false;
                    session.stopping = None;
                    session.idle_since = Some(std::time::Instant::now());
                }
            }
            Ask::Shutdown(reply) => {
                self.restart_at = None;
                self.sessions.clear();
                self.close().await;
                let _ = reply.send(());
            }
        }
    }

    fn prompt(&mut self, id: &str, prompt: &str) -> Result<(), ProviderError> {
        let adapter = self.shared.adapter;
        let Some(session) = self.sessions.get_mut(id) else {
            return Err(format!("session {id} is not known to this provider"));
        };
        let query = session.query(adapter, prompt);
        session.running = true;
        session.idle_since = None;
        session.feeder.finished = None;
        self.send(query)
    }

    fn stop(&mut self, id: &str) -> Option<oneshot::Receiver<()>> {
        let session = self.sessions.get_mut(id).filter(|s| s.running)?;
        let (tx, rx) = oneshot::channel();
        session.stopping = Some(tx);
        let _ = self.send(json!({"type": "stop", "sessionId": id}));
        Some(rx)
    }

    fn send(&self, message: Value) -> Result<(), ProviderError> {
        let name = &self.shared.name;
        let input = self
            .input
            .as_ref()
            .ok_or_else(|| format!("sidecar {name} is not running"))?;
        input
            .try_send(message.to_string())
            .map_err(|_| format!("sidecar {name} is not taking input"))
    }

    /// A spawn asked for by a start (the sidecar was down): the restart count starts over.
    fn spawn_fresh(&mut self) -> Result<(), ProviderError> {
        if self.shared.phase() == Phase::ShutDown {
            return Err(super::SHUTTING_DOWN.into());
        }
        self.restarts = 0;
        self.restart_at = None;
        match self.spawn() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.phase.send_replace(Phase::Down);
                Err(e)
            }
        }
    }

    fn spawn(&mut self) -> Result<(), ProviderError> {
        let Spawned {
            group,
            stdin,
            stdout,
            stderr,
            exit,
        } = process::spawn(Invocation {
            command: self.shared.command.clone(),
            args: Vec::new(),
            cwd: None,
            env: Default::default(),
            stdin: true,
            provider: self.shared.name.clone(),
            // A sidecar serves many sessions: its stderr is no one session's.
            stderr_log: None,
        })?;
        tracing::info!(sidecar = %self.shared.name, pgid = group.id(), "sidecar started");
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        if let Some(stdin) = stdin {
            tokio::spawn(write_lines(stdin, rx));
        }
        let _ = tx.try_send(json!({"type": "ping"}).to_string());
        self.input = Some(tx);
        self.group = Some(group);
        self.process = Some(Process {
            stdout,
            stderr,
            exit,
            splitter: LineSplitter::new(self.shared.max_line),
            began: Instant::now(),
        });
        Ok(())
    }

    /// The backoff is over: spawn the sidecar again, or count a failed spawn as one more crash.
    async fn restart(&mut self) {
        self.restart_at = None;
        if self.shared.phase() == Phase::ShutDown {
            return;
        }
        match self.spawn() {
            Ok(()) => {
                self.shared.phase.send_replace(Phase::Starting);
            }
            Err(e) => {
                tracing::error!(sidecar = %self.shared.name, error = %e, "cannot restart sidecar");
                self.after_crash(Instant::now()).await;
            }
        }
    }

    /// The sidecar's stdout closed: it is gone (or going). Ends its group, fails its running sessions and
    /// schedules a restart unless the service is shutting down.
    async fn exited(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        if let Some(line) = process.splitter.finish() {
            self.envelope(line).await;
        }
        self.close().await;
        let status = (*process.exit.borrow())
            .map(|s| s.to_string())
            .unwrap_or_default();
        let tail = process.stderr.text(STDERR_WAIT).await;
        tracing::warn!(sidecar = %self.shared.name, %status, stderr = %tail, "sidecar exited");
        if self.shared.phase() == Phase::ShutDown {
            return;
        }
        self.after_crash(process.began).await;
    }

    /// Fails the running sessions and waits out a backoff before the next restart; gives up after too
    /// many crashes in a row.
    async fn after_crash(&mut self, began: Instant) {
        self.crashed().await;
        let backoff = &self.shared.backoff;
        if began.elapsed() >= backoff.stable_after {
            self.restarts = 0;
        }
        if self.restarts >= backoff.tries {
            tracing::error!(sidecar = %self.shared.name, restarts = self.restarts, "sidecar keeps crashing; giving up");
            self.shared.phase.send_replace(Phase::Down);
            return;
        }
        self.restarts += 1;
        crate::providers::metrics::provider_metrics()
            .sidecar_restarts
            .with_label_values(&[&self.shared.name])
            .inc();
        self.shared.phase.send_replace(Phase::Restarting);
        self.restart_at = Some(Instant::now() + backoff.delay(self.restarts));
    }

    /// One line of the sidecar's output.
    async fn envelope(&mut self, line: Line) {
        let name = &self.shared.name;
        let Line::Full(bytes) = line else {
            tracing::warn!(sidecar = %name, "sidecar line over limits.max_line skipped");
            return;
        };
        let Ok(message) = serde_json::from_slice::<Value>(&bytes) else {
            tracing::debug!(sidecar = %name, "non-JSON sidecar line skipped");
            return;
        };
        let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
        if matches!(kind, "ready" | "pong") {
            self.shared.phase.send_if_modified(|p| {
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
        let Some(session) = self.sessions.get_mut(id).filter(|s| s.running) else {
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
            forget_idle(&mut self.sessions, |s| s.idle_since, IDLE_KEPT);
        }
        if !events.is_empty() {
            let _ = sink.emit(events).await;
        }
    }

    /// The sidecar died: its running sessions end in error (a session being stopped just ends).
    async fn crashed(&mut self) {
        let ended: Vec<(EventSink, SidecarEvent)> = self
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
            .collect();
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
