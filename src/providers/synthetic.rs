//! The synthetic provider runs nothing. Its sessions are fed only through sidecar events posted from
//! outside (the load generator, or a sidecar living in another process), so a load test measures the
//! store and not an agent.

use futures_util::future::BoxFuture;

use super::{EventSink, Provider, ProviderError, Runner, StartSpec};

#[derive(Debug, Default, Clone, Copy)]
pub struct Synthetic;

/// Nothing runs: a follow-up and a stop have nothing to reach.
struct Nothing;

impl Runner for Nothing {
    fn prompt(&self, _prompt: String) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn keeps_nothing(&self) -> bool {
        true
    }
}

impl Provider for Synthetic {
    fn start(
        &self,
        _spec: StartSpec,
        _sink: EventSink,
    ) -> BoxFuture<'static, Result<Box<dyn Runner>, ProviderError>> {
        Box::pin(async { Ok(Box::new(Nothing) as Box<dyn Runner>) })
    }

    /// Nothing runs here: the session's agent posts its events from outside, as before.
    fn adopt(
        &self,
        _spec: StartSpec,
        _resume: super::Resume,
        _sink: EventSink,
    ) -> Result<Box<dyn Runner>, ProviderError> {
        Ok(Box::new(Nothing))
    }

    /// A session kept across a restart is fed from outside as before.
    fn unknown(&self, _session_id: &str) -> Box<dyn Runner> {
        Box::new(Nothing)
    }

    fn runs_outside(&self) -> bool {
        true
    }
}
