//! What a run is asked to do (`Options`, `TargetSpec`), the hook a test may put before the loss check,
//! and why a run fails (`LoadtestError`).

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::Url;

use super::content::Sizes;
use super::report::Report;
use super::target::TargetError;
use crate::config::Config;
use crate::engine::Engine;

/// What to put under load.
pub enum TargetSpec {
    /// An engine in this process, on `config` (its `storage.data_dir` is replaced by `data_dir`, or by a
    /// temporary directory removed afterwards).
    InProcess {
        config: Box<Config>,
        data_dir: Option<PathBuf>,
    },
    /// A running server.
    Http {
        url: Url,
        /// The other nodes of a cluster, taken in turn with `url`.
        others: Vec<Url>,
        token: Option<String>,
        /// Read the server's peak memory from `/proc/<pid>/status`; else from `/metrics` if exported.
        server_pid: Option<u32>,
    },
}

/// Handed to `Options::before_check` once everything is written, before the loss check reads it back.
pub struct CheckContext {
    /// The in-process engine (restarted on the run's data); None over HTTP.
    pub engine: Option<Engine>,
    pub project_ids: Vec<String>,
    pub session_ids: Vec<String>,
}

/// Runs between writing and checking, e.g. to make a test remove a session and see the check fail.
pub type BeforeCheck = Box<dyn FnOnce(CheckContext) -> BoxFuture<'static, ()> + Send>;

/// How hard and how long to push.
pub struct Options {
    pub projects: usize,
    pub messages: usize,
    /// Messages per ingest request.
    pub batch: usize,
    /// Messages per `agent.message` event (grown when there are too few projects to fill a batch).
    pub per_event: usize,
    /// Messages per second over all projects; 0 = as fast as it goes.
    pub rate: f64,
    /// Stop streaming after this long even if messages remain.
    pub duration: Option<Duration>,
    /// Ingest with `durable`: each answer waits for the commit.
    pub durable: bool,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub sizes: Sizes,
    /// Subscribe to the live stream to measure `e2e_ms` (one more subscriber for the store to feed).
    pub live: bool,
    pub report: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub quiet: bool,
    pub before_check: Option<BeforeCheck>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            projects: 1000,
            messages: 100,
            batch: 100,
            per_event: 10,
            rate: 0.0,
            duration: None,
            durable: false,
            concurrency: 64,
            sizes: Sizes::Realistic,
            live: true,
            report: None,
            plot: None,
            quiet: false,
            before_check: None,
        }
    }
}

/// Why a run could not be made, or failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    #[error("--{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the in-process engine could not start: {0}")]
    Engine(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot write {path}: {message}")]
    Output { path: PathBuf, message: String },
    #[error("loss check failed: {} missing, {} duplicated, {} unexpected", .0.loss_check.missing, .0.loss_check.duplicated, .0.loss_check.unexpected)]
    Loss(Box<Report>),
    #[error("{} ingest requests failed; last error: {}", .0.errors, .0.last_error.as_deref().unwrap_or("none"))]
    RequestsFailed(Box<Report>),
}

impl LoadtestError {
    /// The report of a run that completed but failed its checks.
    pub fn report(&self) -> Option<&Report> {
        match self {
            LoadtestError::Loss(r) | LoadtestError::RequestsFailed(r) => Some(r),
            _ => None,
        }
    }
}

impl Options {
    pub(super) fn validate(&self) -> Result<(), LoadtestError> {
        let invalid = |field, message: &str| {
            Err(LoadtestError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        for (field, value) in [
            ("projects", self.projects),
            ("messages", self.messages),
            ("batch", self.batch),
            ("per-event", self.per_event),
            ("concurrency", self.concurrency),
        ] {
            if value == 0 {
                return invalid(field, "must be at least 1");
            }
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return invalid("rate", "must be a number of messages per second, 0 or more");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return invalid("duration", "must be above zero");
        }
        Ok(())
    }
}
