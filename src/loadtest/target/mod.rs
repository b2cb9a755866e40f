//! What the generator drives: an engine in this process or a server over HTTP. Both answer the same few
//! questions (start a session, ingest a request, stream live messages, read what storage holds), so the
//! driver, the probes and the loss check do not care which one they talk to.

mod http;
mod in_process;
mod sse;
mod starter;

pub use http::Http;
pub use in_process::{EngineHost, InProcess};

use crate::error::CommandError;

use super::payload::Outgoing;

/// Why a target could not do what was asked. Each names what was being done.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: {source}")]
    Connect {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    /// The server refused for load (HTTP 429 or 503) and applied nothing: safe to send again.
    #[error("{what}: the server is busy (HTTP {status})")]
    Busy { what: String, status: u16 },
    #[error("{what}: {source}")]
    Engine {
        what: String,
        #[source]
        source: CommandError,
    },
    #[error("{what}: unexpected answer: {message}")]
    Decode { what: String, message: String },
}

impl TargetError {
    pub fn is_busy(&self) -> bool {
        matches!(self, TargetError::Busy { .. })
    }

    /// What a non-success answer means: busy (HTTP 429 or 503, nothing applied, safe to send again) or a
    /// refusal, carrying the start of its body (the API's `{"ok":false,"error"}`).
    fn answered(what: &str, status: u16, body: &[u8]) -> TargetError {
        if status == 429 || status == 503 {
            return TargetError::Busy {
                what: what.to_owned(),
                status,
            };
        }
        TargetError::Status {
            what: what.to_owned(),
            status,
            body: String::from_utf8_lossy(body).chars().take(500).collect(),
        }
    }

    /// An answer, or a setting, that could not be read as expected.
    fn decode(what: &str, e: impl std::fmt::Display) -> TargetError {
        TargetError::Decode {
            what: what.to_owned(),
            message: e.to_string(),
        }
    }
}

/// What an ingest request was answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestAck {
    pub accepted: usize,
    /// Events for sessions the target does not hold: their messages are not stored.
    pub ignored: usize,
}

/// Something the live stream said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveItem<'a> {
    Message {
        session_id: &'a str,
        id: &'a str,
    },
    /// The subscriber fell behind and missed this many events.
    Lagged(u64),
}

/// A stored message, as much of it as the loss check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq_id: u64,
    pub id: String,
}

/// The thing under load.
pub enum Target {
    InProcess(InProcess),
    Http(Http),
}

impl Target {
    pub fn mode(&self) -> &'static str {
        match self {
            Target::InProcess(_) => "in-process",
            Target::Http(_) => "http",
        }
    }

    pub async fn ingest(
        &self,
        out: &Outgoing<'_>,
        durable: bool,
    ) -> Result<(IngestAck, usize), TargetError> {
        match self {
            Target::InProcess(t) => t.ingest(out, durable).await,
            Target::Http(t) => t.ingest(out, durable).await,
        }
    }

    /// Follows the live stream of every project, calling `on` for each item, until the task is aborted.
    pub async fn watch<F>(&self, on: F) -> Result<tokio::task::JoinHandle<()>, TargetError>
    where
        F: FnMut(LiveItem<'_>) + Send + 'static,
    {
        match self {
            Target::InProcess(t) => t.watch(on).await,
            Target::Http(t) => t.watch(on).await,
        }
    }

    /// How many messages storage holds for each `(project, session)`, in order (None: no stored record
    /// yet). In-process this is one storage read for all of them.
    pub async fn stored_counts(
        &self,
        sessions: &[(&str, &str)],
    ) -> Result<Vec<Option<u64>>, TargetError> {
        match self {
            Target::InProcess(t) => t.stored_counts(sessions).await,
            Target::Http(t) => t.stored_counts(sessions).await,
        }
    }

    /// Commits everything accepted so far. Over HTTP the finishing events are sent durable instead.
    pub async fn flush(&self) -> Result<(), TargetError> {
        match self {
            Target::InProcess(t) => t.flush().await,
            Target::Http(_) => Ok(()),
        }
    }

    /// Every message of the session, in seq order, as the target answers them.
    pub async fn messages(&self, session_id: &str) -> Result<Vec<StoredMessage>, TargetError> {
        match self {
            Target::InProcess(t) => t.messages(session_id).await,
            Target::Http(t) => t.messages(session_id).await,
        }
    }
}

/// Reads `VmHWM` (peak resident set) or `VmRSS` of a process from `/proc/<pid>/status`, in bytes.
pub fn proc_memory(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_peak_memory() {
        let rss = proc_memory(None, "VmRSS").expect("linux /proc");
        let hwm = proc_memory(None, "VmHWM").expect("linux /proc");
        // Not hwm >= rss: the kernel updates VmHWM lazily, so a growing process may show less.
        assert!(rss > 0 && hwm > 0);
        assert_eq!(proc_memory(Some(u32::MAX), "VmHWM"), None);
    }
}
