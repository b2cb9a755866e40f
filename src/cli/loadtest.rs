//! `agent-store loadtest`: the command line of the load generator (`crate::loadtest`). Turns flags into a
//! target and options, runs, prints the summary on stderr.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::config::Config;
use crate::loadtest::{self, LoadtestError, Options, Report, Sizes, TargetSpec};

/// Drive a running server or an in-process engine with many projects' agent messages, measure it, and
/// check that nothing was lost.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// Base URL of a running server, e.g. http://127.0.0.1:7878; or the nodes of a cluster, comma-separated,
    /// which requests then take in turn.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "in_process",
        conflicts_with = "in_process"
    )]
    pub target: Option<String>,
    /// Bearer token for the server.
    #[arg(long, env = "AGENT_STORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Run an engine in this process instead of calling a server.
    #[arg(long)]
    pub in_process: bool,
    /// Data directory of the in-process engine (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub data_dir: Option<PathBuf>,
    /// Configuration of the in-process engine (timers, limits); default: built-in defaults.
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub config: Option<PathBuf>,
    /// Projects, each with one session.
    #[arg(long, default_value_t = 1000)]
    pub projects: usize,
    /// Messages per project.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Messages per ingest request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Messages per agent.message event (one session's share of a request).
    #[arg(long, default_value_t = 10)]
    pub per_event: usize,
    /// Messages per second over all projects; 0 = as fast as it goes.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop streaming after this long (e.g. 30s), even if messages remain.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Ingest durably: each request is answered once committed.
    #[arg(long)]
    pub durable: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Message content sizes.
    #[arg(long, value_enum, default_value_t = Sizes::Realistic)]
    pub sizes: Sizes,
    /// Do not subscribe to the live stream (no e2e_ms): measures ingest without a live reader to feed.
    #[arg(long)]
    pub no_live: bool,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Draw throughput and latency over time here.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The server's process id, to read its peak memory (else /metrics is sampled).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// No progress and no summary on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadtestArgs {
    fn target_spec(&self) -> Result<TargetSpec, LoadtestError> {
        if self.in_process {
            let config = match &self.config {
                Some(path) => Config::from_file(path).map_err(|e| LoadtestError::Invalid {
                    field: "config",
                    message: e.to_string(),
                })?,
                None => Config::default(),
            };
            return Ok(TargetSpec::InProcess {
                config: Box::new(config),
                data_dir: self.data_dir.clone(),
            });
        }
        let invalid = |message: String| LoadtestError::Invalid {
            field: "target",
            message,
        };
        let raw = self
            .target
            .as_deref()
            .ok_or_else(|| invalid("give a server URL, or --in-process".into()))?;
        let mut urls = Vec::new();
        for raw in raw.split(',').map(str::trim) {
            let url =
                Url::parse(raw).map_err(|e| invalid(format!("{raw:?} is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(format!(
                    "{raw:?} must be an http:// or https:// URL"
                )));
            }
            urls.push(url);
        }
        let url = urls.remove(0);
        Ok(TargetSpec::Http {
            url,
            others: urls,
            token: self.token.clone().filter(|t| !t.is_empty()),
            server_pid: self.server_pid,
        })
    }

    fn options(&self) -> Options {
        Options {
            projects: self.projects,
            messages: self.messages,
            batch: self.batch,
            per_event: self.per_event,
            rate: self.rate,
            duration: self.duration,
            durable: self.durable,
            concurrency: self.concurrency,
            sizes: self.sizes,
            live: !self.no_live,
            report: self.report.clone(),
            plot: self.plot.clone(),
            quiet: self.quiet,
            before_check: None,
        }
    }
}

/// Runs the load test the flags describe and prints its summary on stderr (unless `--quiet`). A failed
/// loss check or failed requests answer an error that still carries the report.
pub async fn run(args: LoadtestArgs) -> Result<Report, LoadtestError> {
    let result = loadtest::run(args.target_spec()?, args.options()).await;
    if !args.quiet {
        match &result {
            Ok(report) => eprintln!("{}", report.summary()),
            Err(e) => {
                if let Some(report) = e.report() {
                    eprintln!("{}", report.summary());
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn parse(args: &[&str]) -> Result<LoadtestArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn needs_exactly_one_target() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--in-process", "--target", "http://127.0.0.1:1"]).is_err());
        assert!(parse(&["--target", "http://x", "--data-dir", "d"]).is_err());
        let a = parse(&["--in-process", "--projects", "5", "--duration", "2s"]).unwrap();
        assert_eq!((a.projects, a.duration), (5, Some(Duration::from_secs(2))));
    }

    #[test]
    fn bad_target_url_names_the_flag() {
        let a = parse(&["--target", "127.0.0.1:7878"]).unwrap();
        let e = a.target_spec().err().expect("refused");
        assert!(e.to_string().starts_with("--target:"), "{e}");
        let a = parse(&["--target", "ftp://127.0.0.1/"]).unwrap();
        assert!(a.target_spec().is_err());
    }

    #[tokio::test]
    async fn zero_counts_are_refused_by_name() {
        let a = parse(&["--in-process", "--batch", "0", "--quiet"]).unwrap();
        let e = run(a).await.expect_err("refused");
        assert_eq!(e.to_string(), "--batch: must be at least 1");
        let a = parse(&["--in-process", "--rate=-1", "--quiet"]).unwrap();
        let e = run(a).await.expect_err("refused");
        assert!(e.to_string().starts_with("--rate:"), "{e}");
    }
}
