//! `agent-store loadtest`: a load generator for the store, with the measurements and the loss check that
//! tell whether it keeps up.
//!
//! A run starts one synthetic session per project, streams agent messages (text, thinking, tool calls and
//! results, in realistic sizes) through sidecar ingest, finishes each session (status done, then cost),
//! and then checks that every acknowledged message is stored exactly once. Against an engine in this
//! process it also restarts the engine on the written data and times start-up and a session's restore.
//!
//! The rooms: `options` (what is asked, what fails), `plan` (how messages are cut into requests, and what
//! happened to each), `content` and `payload` (what a request says), `target` (in-process engine or HTTP
//! server) and `local` (the in-process engine's data and restart), `driver` (the phases), `schedule`
//! (which request a stream worker sends next), `probes` (end-to-end and persist-lag latency), `phases`
//! (CPU and page faults per phase, each thread named) and `cpu` (how a process is read for them),
//! `memory`, `stats`, `verify` (the loss check), `report`, `progress` and `plot`.

mod content;
mod cpu;
mod driver;
mod local;
mod memory;
mod options;
mod payload;
mod phases;
mod plan;
mod plot;
mod probes;
mod progress;
mod report;
mod schedule;
mod stats;
mod target;
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use content::Sizes;
pub use options::{BeforeCheck, CheckContext, LoadtestError, Options, TargetSpec};
pub use phases::{Phase, ThreadUse, Usage};
pub use report::{Report, Restart, RunSettings};
pub use stats::{Percentiles, TimelinePoint};
pub use target::{EngineHost, TargetError};
pub use verify::LossSummary;

use crate::messages::wire::now_ms;
use driver::Run;
use memory::MemoryProbe;
use plan::{Layout, Ledger};
use probes::PersistProbe;
use progress::Progress;
use stats::Stats;

/// The runtime a run goes on. An in-process engine gets its own actix system and arbiters; its generator
/// then runs on this one thread, whose tasks wake no other worker to steal them (a tenth of an in-process
/// run's CPU went to tokio's wake-ups between two workers), and with timers but no I/O driver: parked on a
/// condition variable, the thread is woken by a syscall only when it sleeps, where the I/O driver's
/// wake-up writes its eventfd for every answer an engine hands over. Over HTTP the requests' bodies and
/// sockets take a multi-threaded runtime with I/O.
pub fn runtime(in_process: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if in_process {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
}

/// Runs a load test and answers its report. A run whose loss check fails, or whose requests failed,
/// answers `LoadtestError::Loss` / `RequestsFailed` carrying the report (already written to `--report`).
pub async fn run(spec: TargetSpec, mut opts: Options) -> Result<Report, LoadtestError> {
    opts.validate()?;
    let mut progress = Progress::new(opts.quiet);
    let target_url = match &spec {
        TargetSpec::Http { url, others, .. } => Some(
            std::iter::once(url)
                .chain(others)
                .map(reqwest::Url::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        TargetSpec::InProcess { .. } => None,
    };
    let (target, local, server_pid) = local::open(spec, opts.concurrency).await?;
    let target = Arc::new(target);

    // Setup: one session per project, under ids no earlier run used.
    let tag = format!("{:x}", now_ms());
    let project_ids: Arc<Vec<String>> = Arc::new(
        (0..opts.projects)
            .map(|p| format!("lt-{tag}-{p}"))
            .collect(),
    );
    let in_process = matches!(target.as_ref(), target::Target::InProcess(_));
    let mut phases = phases::PhaseClock::start(server_pid, in_process);
    let setup_started = Instant::now();
    let sessions =
        driver::start_sessions(&target, &project_ids, opts.concurrency, &mut progress).await?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    phases.end("setup", setup_started);
    progress.note(&format!(
        "{} sessions started in {setup_s:.2}s",
        sessions.len()
    ));
    let sessions = Arc::new(sessions);

    // Probes, then the stream and finish phases.
    let layout = Layout::new(opts.projects, opts.messages, opts.per_event, opts.batch);
    let ledger = Arc::new(Ledger::new(layout, Instant::now()));
    let stats = Arc::new(Stats::new());
    // The live probe is one more subscriber the store must feed; `live: false` measures ingest alone.
    let watcher = if opts.live {
        let handler = probes::e2e_handler(ledger.clone(), stats.clone(), &sessions);
        Some(target.watch(handler).await?)
    } else {
        None
    };
    let (persist, poller) = PersistProbe::start(
        target.clone(),
        sessions.clone(),
        project_ids.clone(),
        stats.clone(),
    )
    .await;
    let memory = MemoryProbe::start(&target, server_pid);
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
    phases.begin();
    let stream_started = Instant::now();
    let stream = run.stream(&mut progress).await;
    let cpu = phases.end("stream", stream_started).cloned();
    progress.note(&format!(
        "{} messages acknowledged in {:.2}s",
        Stats::get(&stats.acked),
        stream.as_secs_f64()
    ));
    let finish_started = Instant::now();
    run.finish(&mut progress).await;
    target.flush().await?;
    let finish_s = finish_started.elapsed().as_secs_f64();
    phases.end("finish", finish_started);
    poller.finish(Duration::from_secs(5)).await;
    if let Some(watcher) = watcher {
        probes::drain_live(&stats).await;
        watcher.abort();
    }
    let memory = memory.finish(&target).await;
    drop(run);

    // In-process: restart on the written data. Then the hook, and the loss check.
    let (check_target, restart, local) = match local {
        Some(l) => {
            let (t, l, r) = local::restart(l, &project_ids[0], &sessions[0]).await?;
            (Arc::new(t), Some(r), Some(l))
        }
        None => (target.clone(), None, None),
    };
    if let Some(hook) = opts.before_check.take() {
        hook(CheckContext {
            engine: local.as_ref().map(|l| l.host.engine().clone()),
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

    let acked = Stats::get(&stats.acked);
    let report = Report {
        settings: RunSettings {
            mode: target.mode().to_owned(),
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
            live: opts.live,
        },
        sent: Stats::get(&stats.sent),
        acked,
        stored: loss_check.stored,
        requests: Stats::get(&stats.requests),
        errors: Stats::get(&stats.errors),
        retries: Stats::get(&stats.retries),
        ignored: Stats::get(&stats.ignored),
        bytes_sent: Stats::get(&stats.bytes),
        setup_s,
        stream_s: stream.as_secs_f64(),
        finish_s,
        messages_per_s: acked as f64 / stream.as_secs_f64().max(1e-9),
        stored_per_s: acked as f64 / (stream.as_secs_f64() + finish_s).max(1e-9),
        latency_ms: stats.latency(),
        e2e_ms: stats.e2e(),
        e2e_lagged: Stats::get(&stats.lagged),
        persist_lag_ms: stats.persist(),
        persist_lag_method: probes::PERSIST_METHOD.to_owned(),
        cpu_stream_s: cpu.as_ref().map(|p| p.server.cpu_s),
        cpu_stream_generator_s: cpu.as_ref().and_then(|p| p.generator_thread_cpu_s),
        cores_busy: cpu
            .as_ref()
            .map(|p| p.server.cpu_s / stream.as_secs_f64().max(1e-9)),
        page_faults_stream: cpu.as_ref().map(|p| p.server.page_faults),
        cpu_source: phases::cpu_source(server_pid, in_process),
        phases: phases.finish(),
        rss_peak_bytes: memory.peak,
        rss_source: memory.source,
        rss_end_bytes: memory.end,
        restart,
        loss_check,
        last_error: stats.last_error(),
        timeline: stats.timeline(),
    };
    write_outputs(&report, &opts)?;
    if !report.loss_check.passed {
        return Err(LoadtestError::Loss(Box::new(report)));
    }
    if report.errors > 0 {
        return Err(LoadtestError::RequestsFailed(Box::new(report)));
    }
    Ok(report)
}

/// `--report` and `--plot`.
fn write_outputs(report: &Report, opts: &Options) -> Result<(), LoadtestError> {
    let failed = |path: &std::path::Path, message: String| LoadtestError::Output {
        path: path.to_owned(),
        message,
    };
    if let Some(path) = &opts.report {
        report
            .write_json(path)
            .map_err(|e| failed(path, e.to_string()))?;
    }
    if let Some(path) = &opts.plot {
        let s = &report.settings;
        let title = format!(
            "{} projects × {} messages, {}",
            s.projects, s.messages_per_project, s.mode
        );
        plot::write_svg(path, &title, &report.timeline).map_err(|m| failed(path, m))?;
    }
    Ok(())
}
