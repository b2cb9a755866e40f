//! The in-process target: an engine on its own thread, driven through the `Engine` handle.
//!
//! The engine lives in an actix `System` on a dedicated thread (`EngineHost`), so the generator can run on
//! any tokio runtime — the caller's, multi-threaded or not — and the engine's arbiters are the same as in
//! `serve`. The handle's calls are channel sends, which work from any thread.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{IngestAck, LiveItem, StoredMessage, TargetError};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::CommandError;
use crate::loadtest::payload::Outgoing;
use crate::messages::commands::{LiveEvent, Page, StartRequest};
use crate::providers::{synthetic::Synthetic, Providers};

/// The provider name sessions are started with.
pub const PROVIDER: &str = "synthetic";

/// An engine running in an actix system on its own thread. Shut it down to flush and close storage.
pub struct EngineHost {
    engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineHost {
    /// Starts an engine with `config` and the synthetic provider registered as `synthetic`.
    pub async fn start(config: Config) -> Result<EngineHost, String> {
        let mut providers = Providers::new();
        providers.insert(PROVIDER, Arc::new(Synthetic));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("loadtest-engine".into())
            .spawn(move || {
                actix::System::new().block_on(async move {
                    match Engine::start(config, providers).await {
                        Ok(engine) => {
                            let _ = ready_tx.send(Ok(engine.clone()));
                            // Dropping the host without shutdown also lands here.
                            let _ = stop_rx.await;
                            engine.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                    actix::System::current().stop();
                })
            })
            .map_err(|e| format!("cannot start the engine thread: {e}"))?;
        let engine = ready_rx
            .await
            .map_err(|_| "the engine thread ended before the engine started".to_owned())??;
        Ok(EngineHost {
            engine,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Flushes, closes storage and waits for the engine's thread to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for EngineHost {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn stored(m: &crate::messages::wire::SharedMessage) -> StoredMessage {
    StoredMessage {
        seq_id: m.seq_id,
        id: m.id.clone(),
    }
}

/// The engine handle as a load target.
pub struct InProcess {
    engine: Engine,
}

fn engine_error(what: impl Into<String>) -> impl FnOnce(CommandError) -> TargetError {
    let what = what.into();
    move |source| TargetError::Engine { what, source }
}

impl InProcess {
    pub fn new(engine: Engine) -> InProcess {
        InProcess { engine }
    }

    pub async fn start_session(&self, project_id: &str) -> Result<String, TargetError> {
        let req = StartRequest {
            provider: PROVIDER.into(),
            prompt: format!("load test of {project_id}"),
            options: Default::default(),
        };
        self.engine
            .start_agent(project_id, req)
            .await
            .map(|s| s.session_id)
            .map_err(engine_error(format!("starting a session for {project_id}")))
    }

    pub async fn ingest(
        &self,
        out: &Outgoing<'_>,
        durable: bool,
    ) -> Result<(IngestAck, usize), TargetError> {
        let events = out.events();
        let outcome = self
            .engine
            .ingest(events, durable)
            .await
            .map_err(engine_error("ingest"))?;
        let ack = IngestAck {
            accepted: outcome.accepted,
            ignored: outcome.ignored,
        };
        Ok((ack, 0))
    }

    pub async fn watch<F>(&self, mut on: F) -> Result<tokio::task::JoinHandle<()>, TargetError>
    where
        F: FnMut(LiveItem<'_>) + Send + 'static,
    {
        let mut sub = self
            .engine
            .subscribe(None)
            .await
            .map_err(engine_error("subscribing to live events"))?;
        Ok(tokio::spawn(async move {
            while let Some(event) = sub.recv().await {
                match event {
                    LiveEvent::Messages {
                        session_id,
                        messages,
                        ..
                    } => {
                        for m in messages.iter() {
                            on(LiveItem::Message {
                                session_id: &session_id,
                                id: &m.id,
                            });
                        }
                    }
                    LiveEvent::Lagged { missed, .. } => on(LiveItem::Lagged(missed)),
                    _ => {}
                }
            }
        }))
    }

    pub async fn flush(&self) -> Result<(), TargetError> {
        self.engine.flush().await.map_err(engine_error("flushing"))
    }

    /// The stored message counts of `(project, session)` pairs, read together in one storage read (by
    /// session id alone).
    pub async fn stored_counts(
        &self,
        sessions: &[(&str, &str)],
    ) -> Result<Vec<Option<u64>>, TargetError> {
        let ids = sessions.iter().map(|(_, s)| (*s).to_owned()).collect();
        let stored = self
            .engine
            .stored_sessions(ids)
            .await
            .map_err(engine_error(format!("{} stored sessions", sessions.len())))?;
        Ok(stored
            .into_iter()
            .map(|s| s.map(|s| s.message_count))
            .collect())
    }

    pub async fn messages(&self, session_id: &str) -> Result<Vec<StoredMessage>, TargetError> {
        const PAGE: usize = 10_000;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = Page {
                after_seq: Some(after),
                limit: Some(PAGE),
            };
            let session = self
                .engine
                .session(session_id, page)
                .await
                .map_err(engine_error(format!("reading session {session_id}")))?;
            // A page that does not move forward would loop for ever; what it held is checked anyway.
            let Some(last) = session.messages.last().filter(|m| m.seq_id > after) else {
                out.extend(session.messages.iter().map(stored));
                break;
            };
            after = last.seq_id;
            out.extend(session.messages.iter().map(stored));
            if after >= session.last_seq_id {
                break;
            }
        }
        Ok(out)
    }
}
