//! `agent-store loadtest`: a load generator for the store, with the measurements and the loss check that
//! tell whether it keeps up.
//!
//! A run starts one synthetic session per project, streams agent messages (text, thinking, tool calls and
//! results, in realistic sizes) through sidecar ingest, finishes each session (status done, then cost),
//! and then checks that every acknowledged message is stored exactly once. Against an engine in this
//! process it also restarts the engine on the written data and times start-up and a session's restore.
//!
//! The rooms: `plan` (how messages are cut into requests, and what happened to each), `content` and
//! `payload` (what a request says), `target` (in-process engine or HTTP server), `driver` (the phases),
//! `probes` (end-to-end and persist-lag latency), `stats`, `verify` (the loss check), `report`,
//! `progress` and `plot`.

mod content;
mod driver;
mod payload;
mod plan;
mod plot;
mod probes;
mod progress;
mod report;
mod stats;
mod target;
mod verify;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use reqwest::Url;

pub use content::Sizes;
pub use report::{Report, Restart, RunSettings};
pub use stats::{Percentiles, TimelinePoint};
pub use target::{EngineHost, TargetError};
pub use verify::LossSummary;

use crate::config::Config;
use crate::engine::Engine;
use crate::messages::wire::now_ms;
use driver::Run;
use plan::{Layout, Ledger};
use probes::PersistProbe;
use progress::Progress;
use target::{proc_memory, Http, InProcess, Target};

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
    fn validate(&self) -> Result<(), LoadtestError> {
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

/// The in-process engine with what it needs to be restarted.
struct Local {
    config: Config,
    host: EngineHost,
    _temp: Option<tempfile::TempDir>,
}

async fn open(
    spec: TargetSpec,
    pool: usize,
) -> Result<(Target, Option<Local>, Option<u32>), LoadtestError> {
    match spec {
        TargetSpec::InProcess { config, data_dir } => {
            let mut config = *config;
            let temp = match data_dir {
                Some(dir) => {
                    config.storage.data_dir = dir;
                    None
                }
                None => {
                    let temp =
                        tempfile::tempdir().map_err(|e| LoadtestError::Engine(e.to_string()))?;
                    config.storage.data_dir = temp.path().to_owned();
                    Some(temp)
                }
            };
            let host = EngineHost::start(config.clone())
                .await
                .map_err(LoadtestError::Engine)?;
            let target = Target::InProcess(InProcess::new(host.engine().clone()));
            Ok((
                target,
                Some(Local {
                    config,
                    host,
                    _temp: temp,
                }),
                None,
            ))
        }
        TargetSpec::Http {
            url,
            token,
            server_pid,
        } => Ok((Target::Http(Http::new(url, token, pool)?), None, server_pid)),
    }
}

/// Restarts the engine on the run's data and times start-up, one restore and one full read.
async fn restart(
    local: Local,
    project_id: &str,
    session_id: &str,
) -> Result<(Target, Local, Restart), LoadtestError> {
    let Local {
        config,
        host,
        _temp,
    } = local;
    host.shutdown().await;
    let begun = Instant::now();
    let host = EngineHost::start(config.clone())
        .await
        .map_err(LoadtestError::Engine)?;
    while !host.engine().is_ready() && begun.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready_ms = ms(begun.elapsed());
    let engine = host.engine().clone();
    let t = Instant::now();
    engine
        .load_last_session(project_id)
        .await
        .map_err(|source| TargetError::Engine {
            what: format!("restoring the session of {project_id}"),
            source,
        })?;
    let restore_ms = ms(t.elapsed());
    let target = Target::InProcess(InProcess::new(engine));
    let t = Instant::now();
    let messages = target.messages(session_id).await?;
    let restart = Restart {
        ready_ms,
        restore_ms,
        read_ms: ms(t.elapsed()),
        session_messages: messages.len() as u64,
    };
    Ok((
        target,
        Local {
            config,
            host,
            _temp,
        },
        restart,
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs a load test and answers its report. A run whose loss check fails, or whose requests failed,
/// answers `LoadtestError::Loss` / `RequestsFailed` carrying the report (already written to `--report`).
pub async fn run(spec: TargetSpec, mut opts: Options) -> Result<Report, LoadtestError> {
    opts.validate()?;
    let mut progress = Progress::new(opts.quiet);
    let target_url = match &spec {
        TargetSpec::Http { url, .. } => Some(url.to_string()),
        TargetSpec::InProcess { .. } => None,
    };
    let (target, mut local, server_pid) = open(spec, opts.concurrency).await?;
    let target = Arc::new(target);
    let mode = target.mode();

    let tag = format!("{:x}", now_ms());
    let project_ids: Arc<Vec<String>> = Arc::new(
        (0..opts.projects)
            .map(|p| format!("lt-{tag}-{p}"))
            .collect(),
    );
    let setup_started = Instant::now();
    let sessions =
        driver::start_sessions(&target, &project_ids, opts.concurrency, &mut progress).await?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    progress.note(&format!(
        "{} sessions started in {setup_s:.2}s",
        sessions.len()
    ));
    let sessions = Arc::new(sessions);

    let layout = Layout::new(opts.projects, opts.messages, opts.per_event, opts.batch);
    let ledger = Arc::new(Ledger::new(layout, Instant::now()));
    let stats = Arc::new(stats::Stats::new());
    let watcher = target
        .watch(probes::e2e_handler(
            ledger.clone(),
            stats.clone(),
            &sessions,
        ))
        .await?;
    let (persist, poller) = PersistProbe::start(
        target.clone(),
        sessions.clone(),
        project_ids.clone(),
        stats.clone(),
    )
    .await;

    // Over HTTP without a pid, the server's memory comes from /metrics, sampled once a second.
    let metrics_peak = Arc::new(AtomicU64::new(0));
    let metrics_sampler = match (target.as_ref(), server_pid) {
        (Target::Http(_), None) => {
            let (target, peak) = (target.clone(), metrics_peak.clone());
            Some(tokio::spawn(async move {
                loop {
                    if let Target::Http(h) = target.as_ref() {
                        if let Some(rss) = h.metrics_rss().await {
                            peak.fetch_max(rss, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }))
        }
        _ => None,
    };

    let run = Arc::new(Run {
        target: target.clone(),
        content: content::Content::new(opts.sizes),
        layout,
        sessions: sessions.clone(),
        ledger: ledger.clone(),
        stats: stats.clone(),
        persist: Some(persist),
        durable: opts.durable,
        concurrency: opts.concurrency,
        rate: opts.rate,
        duration: opts.duration,
    });
    let stream = run.stream(&mut progress).await;
    progress.note(&format!(
        "{} messages acknowledged in {:.2}s",
        stats::Stats::get(&stats.acked),
        stream.as_secs_f64()
    ));
    run.finish(&mut progress).await;
    target.flush().await?;
    poller.finish(Duration::from_secs(5)).await;
    // Let the live stream deliver what is still in flight before it is closed.
    let mut last = u64::MAX;
    for _ in 0..20 {
        let now = stats.e2e().samples;
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();

    let (rss_peak, rss_end, rss_source) = match (&local, server_pid) {
        (Some(_), _) => (
            proc_memory(None, "VmHWM"),
            proc_memory(None, "VmRSS"),
            "VmHWM of this process (engine and generator)".to_owned(),
        ),
        (None, Some(pid)) => (
            proc_memory(Some(pid), "VmHWM"),
            proc_memory(Some(pid), "VmRSS"),
            format!("VmHWM of server pid {pid}"),
        ),
        (None, None) => {
            if let Target::Http(h) = target.as_ref() {
                if let Some(rss) = h.metrics_rss().await {
                    metrics_peak.fetch_max(rss, Ordering::Relaxed);
                }
            }
            let peak = metrics_peak.load(Ordering::Relaxed);
            if peak > 0 {
                (
                    Some(peak),
                    None,
                    "max of /metrics process_resident_memory_bytes, sampled every second"
                        .to_owned(),
                )
            } else {
                (None, None, "unavailable: give --server-pid".to_owned())
            }
        }
    };
    if let Some(task) = metrics_sampler {
        task.abort();
    }
    drop(run);

    let (check_target, restart_report, engine) = match local.take() {
        Some(l) => {
            let (t, l, r) = restart(l, &project_ids[0], &sessions[0]).await?;
            let engine = l.host.engine().clone();
            local = Some(l);
            (Arc::new(t), Some(r), Some(engine))
        }
        None => (target.clone(), None, None),
    };
    if let Some(hook) = opts.before_check.take() {
        hook(CheckContext {
            engine,
            project_ids: project_ids.to_vec(),
            session_ids: sessions.to_vec(),
        })
        .await;
    }
    let loss_check = verify::check_all(
        &check_target,
        &ledger,
        &sessions,
        opts.concurrency,
        &mut progress,
    )
    .await;
    progress.finish();
    if let Some(l) = local {
        l.host.shutdown().await;
    }

    let acked = stats::Stats::get(&stats.acked);
    let report = Report {
        settings: RunSettings {
            mode: mode.to_owned(),
            target: target_url,
            projects: opts.projects,
            messages_per_project: opts.messages,
            batch: opts.batch,
            per_event: layout.per_event,
            concurrency: opts.concurrency,
            rate: opts.rate,
            duration_s: opts.duration.map(|d| d.as_secs_f64()),
            durable: opts.durable,
            sizes: format!("{:?}", opts.sizes).to_lowercase(),
        },
        sent: stats::Stats::get(&stats.sent),
        acked,
        stored: loss_check.stored,
        requests: stats::Stats::get(&stats.requests),
        errors: stats::Stats::get(&stats.errors),
        retries: stats::Stats::get(&stats.retries),
        ignored: stats::Stats::get(&stats.ignored),
        bytes_sent: stats::Stats::get(&stats.bytes),
        setup_s,
        stream_s: stream.as_secs_f64(),
        messages_per_s: acked as f64 / stream.as_secs_f64().max(1e-9),
        latency_ms: stats.latency(),
        e2e_ms: stats.e2e(),
        e2e_lagged: stats::Stats::get(&stats.lagged),
        persist_lag_ms: stats.persist(),
        persist_lag_method: format!(
            "poll the stored record's messageCount of up to {} sampled projects every 5 ms after each ack",
            probes::PERSIST_SAMPLES
        ),
        rss_peak_bytes: rss_peak,
        rss_source,
        rss_end_bytes: rss_end,
        restart: restart_report,
        loss_check,
        last_error: stats.last_error(),
        timeline: stats.timeline(),
    };
    if let Some(path) = &opts.report {
        report.write_json(path).map_err(|e| LoadtestError::Output {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    if let Some(path) = &opts.plot {
        let title = format!(
            "{} projects × {} messages, {mode}",
            opts.projects, opts.messages
        );
        plot::write_svg(path, &title, &report.timeline).map_err(|message| {
            LoadtestError::Output {
                path: path.clone(),
                message,
            }
        })?;
    }
    if !report.loss_check.passed {
        return Err(LoadtestError::Loss(Box::new(report)));
    }
    if report.errors > 0 {
        return Err(LoadtestError::RequestsFailed(Box::new(report)));
    }
    Ok(report)
}
