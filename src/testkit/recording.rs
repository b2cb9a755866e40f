//! A provider that runs nothing and remembers every call, and fails a call when told to. Tests of the engine
//! and the API use it to see exactly what the engine asked of a provider; it is public so that integration
//! tests and embedders can use it too.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use crate::providers::{EventSink, Provider, ProviderError, Runner, StartSpec};

/// One call the engine made.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Start(Box<StartSpec>),
    Prompt { session_id: String, prompt: String },
    Stop { session_id: String },
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    fail_start: Option<String>,
    fail_stop: Option<String>,
    start_delay: Option<std::time::Duration>,
    sinks: Vec<(String, EventSink)>,
}

/// Cloneable: every clone shares the same record.
#[derive(Clone, Default)]
pub struct Recording {
    state: Arc<Mutex<State>>,
}

impl Recording {
    pub fn new() -> Recording {
        Recording::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The next starts fail with `error` until cleared with `None`.
    pub fn fail_start(&self, error: Option<&str>) {
        self.lock().fail_start = error.map(str::to_owned);
    }

    /// The next stops fail with `error` until cleared with `None`.
    pub fn fail_stop(&self, error: Option<&str>) {
        self.lock().fail_stop = error.map(str::to_owned);
    }

    /// Starts take this long before answering, to hold a project in "starting".
    pub fn delay_start(&self, delay: Option<std::time::Duration>) {
        self.lock().start_delay = delay;
    }

    /// The sink a started session was given, to play the agent's side in a test.
    pub fn sink(&self, session_id: &str) -> Option<EventSink> {
        self.lock()
            .sinks
            .iter()
            .find(|(id, _)| id == session_id)
            .map(|(_, s)| s.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves a usable record behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Provider for Recording {
    fn start(
        &self,
        spec: StartSpec,
        sink: EventSink,
    ) -> BoxFuture<'static, Result<Box<dyn Runner>, ProviderError>> {
        let session_id = spec.session_id.clone();
        let (delay, result) = {
            let mut s = self.lock();
            s.sinks.push((spec.session_id.clone(), sink));
            s.calls.push(Call::Start(Box::new(spec)));
            (s.start_delay, s.fail_start.clone().map_or(Ok(()), Err))
        };
        let runner = self.unknown(&session_id);
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            result.map(|()| runner)
        })
    }

    /// Every session's follow-ups and stops are recorded, whether or not it started here.
    fn unknown(&self, session_id: &str) -> Box<dyn Runner> {
        Box::new(Recorded {
            session_id: session_id.to_owned(),
            record: self.clone(),
        })
    }
}

/// A session's runner: records what it is asked.
struct Recorded {
    session_id: String,
    record: Recording,
}

impl Runner for Recorded {
    fn prompt(&self, prompt: String) -> BoxFuture<'static, Result<(), ProviderError>> {
        self.record.lock().calls.push(Call::Prompt {
            session_id: self.session_id.clone(),
            prompt,
        });
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        let result = {
            let mut s = self.record.lock();
            s.calls.push(Call::Stop {
                session_id: self.session_id.clone(),
            });
            s.fail_stop.clone().map_or(Ok(()), Err)
        };
        Box::pin(async move { result })
    }

    /// It is what `unknown` gives for the session: a session holding it lets its actor go once finished.
    fn keeps_nothing(&self) -> bool {
        true
    }
}
