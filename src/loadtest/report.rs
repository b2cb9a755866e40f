//! The result of a run: what was sent, how fast, how long each stage took, how much memory the store
//! used, and whether anything was lost. Written as JSON with `--report` and summarised on stderr.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::phases::Phase;
use super::stats::{Percentiles, TimelinePoint};
use super::verify::LossSummary;

/// How the run was set up, echoed so a report file stands on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub mode: String,
    pub target: Option<String>,
    pub projects: usize,
    pub messages_per_project: usize,
    pub batch: usize,
    /// Messages per `agent.message` event as actually cut (see `Layout`).
    pub per_event: usize,
    pub concurrency: usize,
    /// Messages per second asked for; 0 = as fast as it goes.
    pub rate: f64,
    pub duration_s: Option<f64>,
    pub durable: bool,
    pub sizes: String,
    /// Whether a live subscriber (the e2e probe) was fed during the run.
    pub live: bool,
}

/// What happened after the in-process engine was restarted on the run's data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Restart {
    /// From `Engine::start` until it answers ready.
    pub ready_ms: f64,
    /// `loadLastSession` of the first project: its session back in memory.
    pub restore_ms: f64,
    /// Reading every message of that session back from storage.
    pub read_ms: f64,
    /// How many messages that session holds.
    pub session_messages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub settings: RunSettings,
    /// Messages put into ingest requests, answered or not.
    pub sent: u64,
    /// Messages in requests the target acknowledged.
    pub acked: u64,
    /// Generated messages found in storage by the loss check.
    pub stored: u64,
    pub requests: u64,
    /// Requests that failed (after retrying busy answers).
    pub errors: u64,
    /// Busy answers (429/503) retried.
    pub retries: u64,
    /// Events the target ignored (unknown session).
    pub ignored: u64,
    /// Request body bytes sent (HTTP only).
    pub bytes_sent: u64,
    /// Starting every session.
    pub setup_s: f64,
    /// Streaming messages, from the first request to the last answer.
    pub stream_s: f64,
    /// Finishing every session (durable status and cost) and flushing storage.
    pub finish_s: f64,
    /// Acknowledged messages per second of the stream phase.
    pub messages_per_s: f64,
    /// Acknowledged messages per second from the first request until every session was finished and
    /// storage flushed: the rate at which the store made messages durable, not only accepted them.
    pub stored_per_s: f64,
    /// Per ingest request, send to answer.
    pub latency_ms: Percentiles,
    /// Ingest to seen on the live stream, per chunk (its first message).
    pub e2e_ms: Percentiles,
    /// Events the live subscriber missed (lagged), which took their samples with them.
    pub e2e_lagged: u64,
    /// Ingest acknowledged to visible in storage, on sampled projects.
    pub persist_lag_ms: Percentiles,
    pub persist_lag_method: String,
    /// CPU time the store used during the stream phase (its `phases` entry's, src/loadtest/phases.rs).
    pub cpu_stream_s: Option<f64>,
    /// In-process: of `cpu_stream_s`, the generator's thread (its requests, the engine's entry, the live
    /// watcher, the persist probe); the rest is the engine's threads.
    #[serde(default)]
    pub cpu_stream_generator_s: Option<f64>,
    /// `cpu_stream_s` over the stream phase's wall time: how many cores were busy on average.
    pub cores_busy: Option<f64>,
    /// Page faults (minor + major) of the same process over the stream phase: fresh pages touched, so
    /// the memory the stream newly took; exact where CPU time is noisy.
    #[serde(default)]
    pub page_faults_stream: Option<u64>,
    /// Where `cpu_stream_s` and `page_faults_stream` come from.
    pub cpu_source: String,
    /// Setup, stream and finish: the store's CPU split by thread, and the generator's beside it over
    /// HTTP (src/loadtest/phases.rs). Empty when the store's process cannot be read.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Peak resident memory of the store.
    pub rss_peak_bytes: Option<u64>,
    /// Where `rss_peak_bytes` comes from.
    pub rss_source: String,
    /// Resident memory once every session was finished and flushed (in-process only).
    pub rss_end_bytes: Option<u64>,
    /// In-process only: restarting on the written data.
    pub restart: Option<Restart>,
    pub loss_check: LossSummary,
    pub last_error: Option<String>,
    /// Once a second during the stream phase.
    pub timeline: Vec<TimelinePoint>,
}

impl Report {
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }

    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let mib =
            |b: Option<u64>| b.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        let l = &self.latency_ms;
        let loss = &self.loss_check;
        let mut s = format!(
            "{} projects × {} messages ({}): {} acked of {} sent in {:.2}s → {:.0} messages/s ({} requests, {} errors, {} retries)\n\
             request latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             live stream e2e ms: p50 {:.2}  p99 {:.2}  ({} samples, {} lagged)\n\
             persist lag ms:     p50 {:.2}  p99 {:.2}  ({} samples)\n\
             finishing and flushing every session: {:.2}s ({:.0} messages/s stored, end to end)\n\
             cpu while streaming: {} ({})\n\
             memory: peak {} ({}), after the run {}\n",
            self.settings.projects,
            self.settings.messages_per_project,
            self.settings.mode,
            self.acked,
            self.sent,
            self.stream_s,
            self.messages_per_s,
            self.requests,
            self.errors,
            self.retries,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            self.e2e_ms.p50,
            self.e2e_ms.p99,
            self.e2e_ms.samples,
            self.e2e_lagged,
            self.persist_lag_ms.p50,
            self.persist_lag_ms.p99,
            self.persist_lag_ms.samples,
            self.finish_s,
            self.stored_per_s,
            match (self.cpu_stream_s, self.cores_busy) {
                (Some(s), Some(cores)) => format!(
                    "{s:.3}s{}, {cores:.2} cores busy, {} page faults",
                    self.cpu_stream_generator_s
                        .map_or(String::new(), |g| format!(" (generator thread {g:.3}s)")),
                    self.page_faults_stream.unwrap_or(0)
                ),
                _ => "n/a".into(),
            },
            self.cpu_source,
            mib(self.rss_peak_bytes),
            self.rss_source,
            mib(self.rss_end_bytes),
        );
        for p in &self.phases {
            s += &p.summary();
            s.push('\n');
        }
        if let Some(r) = &self.restart {
            s += &format!(
                "restart: ready in {:.1} ms; first session ({} messages) restored in {:.1} ms, read back in {:.1} ms\n",
                r.ready_ms, r.session_messages, r.restore_ms, r.read_ms
            );
        }
        s += &format!(
            "loss check: {} — {} sessions, {} expected, {} stored, {} missing, {} duplicated, {} unexpected",
            if loss.passed { "passed" } else { "FAILED" },
            loss.sessions_checked,
            loss.expected,
            loss.stored,
            loss.missing,
            loss.duplicated,
            loss.unexpected
        );
        for e in &loss.examples {
            s += &format!("\n  {e}");
        }
        s
    }
}
