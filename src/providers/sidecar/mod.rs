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
//!
//! The sessions, the process and the restarts belong to one task, the sidecar's table (table.rs), which
//! also reads the sidecar's stdout; the provider and each session's runner are handles that send it
//! messages, so nothing here takes a lock. The phase (down, starting, ready, ...) is a watch channel the
//! table sets and starts wait on.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

use super::feed::Feeder;
use super::turns::SHUTTING_DOWN;
use super::{EventSink, Provider, ProviderError, Runner, StartSpec};
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::messages::adapters::adapter_for;

mod backoff;
mod session;
mod table;

pub use backoff::Backoff;
use session::Session;
use table::{Ask, Table};
/// Messages waiting in the table's inbox before their senders wait.
const INBOX: usize = 64;

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

/// What the provider and its runners hold: the configuration and phase (shared with the table) and the
/// table's inbox, opened by the first start.
struct Inner {
    shared: Arc<Shared>,
    table: OnceLock<mpsc::Sender<Ask>>,
}

/// The sidecar as configured, and its phase; the table holds this, not `Inner`, so that it ends once the
/// last handle on its inbox is gone.
struct Shared {
    name: String,
    command: Vec<String>,
    adapter: ProviderKind,
    max_line: usize,
    grace: Duration,
    backoff: Backoff,
    phase: watch::Sender<Phase>,
}

impl Shared {
    fn phase(&self) -> Phase {
        *self.phase.borrow()
    }
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
                shared: Arc::new(Shared {
                    name: name.to_owned(),
                    command: provider.command.clone(),
                    adapter,
                    max_line: usize::try_from(config.limits.max_line.as_u64())
                        .unwrap_or(usize::MAX),
                    grace: config.timers.stop_grace,
                    backoff,
                    phase: watch::Sender::new(Phase::Down),
                }),
                table: OnceLock::new(),
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
            let feeder = Feeder::new(&id, adapter_for(inner.shared.adapter));
            let session = Session::new(spec, sink, feeder);
            let query = session.query(inner.shared.adapter, &prompt);
            inner
                .ask(|reply| Ask::Register {
                    session: Box::new(session),
                    query,
                    reply,
                })
                .await??;
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
            inner.shared.phase.send_replace(Phase::ShutDown);
            // A sidecar never started has no table to tell.
            if inner.table.get().is_some() {
                let _ = inner.ask(Ask::Shutdown).await;
            }
        })
    }
}

/// One session of the sidecar, as its session's actor holds it: follow-ups and the stop are messages to
/// the table, which writes them as lines on the one sidecar's stdin.
struct SidecarRunner {
    inner: Arc<Inner>,
    id: String,
}

impl Runner for SidecarRunner {
    fn prompt(&self, prompt: String) -> BoxFuture<'static, Result<(), ProviderError>> {
        let (inner, id) = (self.inner.clone(), self.id.clone());
        Box::pin(async move {
            inner.ready().await?;
            inner.ask(|reply| Ask::Prompt { id, prompt, reply }).await?
        })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        let (inner, id) = (self.inner.clone(), self.id.clone());
        Box::pin(async move {
            if inner.table.get().is_none() {
                return Ok(()); // nothing was ever started
            }
            let grace = inner.shared.grace;
            let confirmed = async {
                let asked = inner.ask(|reply| Ask::Stop {
                    id: id.clone(),
                    reply,
                });
                match asked.await {
                    Ok(Some(confirmed)) => {
                        let _ = confirmed.await;
                        true
                    }
                    _ => false,
                }
            };
            match tokio::time::timeout(grace, confirmed).await {
                Ok(false) => return Ok(()), // it ran nothing
                Ok(true) => {}
                Err(_) => tracing::warn!(
                    sidecar = %inner.shared.name, session = %id,
                    "sidecar did not confirm the stop"
                ),
            }
            let _ = inner.table().send(Ask::Stopped { id }).await;
            Ok(())
        })
    }
}

impl Inner {
    /// The table's inbox; the first call starts the table.
    fn table(&self) -> &mpsc::Sender<Ask> {
        self.table.get_or_init(|| {
            let (tx, inbox) = mpsc::channel(INBOX);
            tokio::spawn(Table::new(self.shared.clone()).run(inbox));
            tx
        })
    }

    /// Asks the table; Err once it is gone.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Ask,
    ) -> Result<T, ProviderError> {
        let (reply, answer) = oneshot::channel();
        let gone = || format!("sidecar {} is gone", self.shared.name);
        self.table().send(make(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    /// Waits until the sidecar is ready, spawning it first if it is down.
    async fn ready(&self) -> Result<(), ProviderError> {
        let shared = &self.shared;
        let mut phase = shared.phase.subscribe();
        // Only one caller may bring a down sidecar up.
        let claimed = shared.phase.send_if_modified(|p| {
            let down = *p == Phase::Down;
            if down {
                *p = Phase::Starting;
            }
            down
        });
        if claimed {
            // A failed spawn put the phase back to Down.
            self.ask(Ask::Spawn).await??;
        }
        // A start during a restart's backoff waits for it rather than failing at once.
        let settled = phase.wait_for(|p| matches!(p, Phase::Ready | Phase::Down | Phase::ShutDown));
        let reached = match tokio::time::timeout(shared.backoff.ready_timeout, settled).await {
            Ok(Ok(p)) => *p,
            _ => shared.phase(),
        };
        let name = &shared.name;
        match reached {
            Phase::Ready => Ok(()),
            Phase::Starting => Err(format!("sidecar {name} did not become ready")),
            Phase::Restarting => Err(format!("sidecar {name} is restarting after a crash")),
            Phase::Down => Err(format!("sidecar {name} keeps crashing; not restarted")),
            Phase::ShutDown => Err(SHUTTING_DOWN.into()),
        }
    }
}
