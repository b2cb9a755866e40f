//! Logging: tracing to stderr, human-readable by default (its fields written by [`PlainFields`]) or one
//! JSON object a line for machines. The level comes from `RUST_LOG` (default: `info`, with actix-server's
//! own start-up chatter at `warn` so that the service says where it listens in one line), so an operator
//! can turn one module up without a rebuild.
//! Also the names of the service's threads, which `top -H`, `perf` and the load test's per-thread split
//! show.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::log_fields::PlainFields;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot install the log subscriber: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber. Fails if one is already installed.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.fmt_fields(PlainFields).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| TelemetryError(e.to_string()))
}

/// Names the calling thread (the kernel keeps 15 bytes). actix names every arbiter and HTTP worker
/// `actix-rt|system:0|arbiter:N`, which the kernel cuts to `actix-rt|system` for all of them alike, so
/// without this an operator (or a profile) cannot tell the engine's threads from the HTTP workers.
pub fn name_this_thread(name: &str) {
    if let Ok(name) = std::ffi::CString::new(name) {
        // Naming is a courtesy to observers: a kernel that refuses it changes nothing else.
        let _ = nix::sys::prctl::set_name(&name);
    }
}
