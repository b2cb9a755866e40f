//! agent-store: runs and keeps AI coding-agent sessions (Claude Code, Codex, Ollama) for many projects at
//! once, behind an HTTP API. See `docs/ARCHITECTURE.md` for the rooms and how a message travels.

pub mod actors;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod loadtest;
pub mod log_fields;
pub mod messages;
pub mod providers;
pub mod storage;
pub mod telemetry;
pub mod testkit;

pub use config::Config;
pub use engine::Engine;
pub use error::CommandError;
