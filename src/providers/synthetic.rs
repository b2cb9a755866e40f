//! The synthetic provider runs nothing. Its sessions are fed only through sidecar events posted from
//! outside (the load generator, or a sidecar living in another process), so a load test measures the
//! store and not an agent.

use futures_util::future::BoxFuture;

use super::{EventSink, Provider, ProviderError, StartSpec};

#[derive(Debug, Default, Clone, Copy)]
pub struct Synthetic;

impl Provider for Synthetic {
    fn start(
        &self,
        _spec: StartSpec,
        _sink: EventSink,
    ) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn prompt(
        &self,
        _session_id: &str,
        _prompt: String,
    ) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    /// Nothing runs here: the session's agent posts its events from outside, as before.
    fn adopt(
        &self,
        _spec: StartSpec,
        _resume: super::Resume,
        _sink: EventSink,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    fn stop(&self, _session_id: &str) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
}
