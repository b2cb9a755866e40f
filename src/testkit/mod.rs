//! Test doubles for the integration tests (and embedders' tests): parts the service itself never builds
//! from its configuration. They stand in for a provider to see what the engine asks of it, so they may
//! keep shared state the way a test reads it (a lock); the providers the service runs take none
//! (tests/architecture.rs).

pub mod recording;
