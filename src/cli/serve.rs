//! `agent-store serve`: reads the configuration (file, then environment, then flags), starts the engine
//! and the HTTP server, logs one line saying its version, where it listens, which configuration file it
//! read and where its data is, and on SIGINT or SIGTERM stops accepting, flushes storage and returns within
//! the shutdown budget.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::{self, ServeError};
use crate::config::{Config, ConfigError, Overrides};
use crate::providers::{self, BuildError};
use crate::telemetry::{self, LogFormat, TelemetryError};

/// Read when `--config` is not given. Without it, the built-in defaults (the same values) apply.
pub const DEFAULT_CONFIG: &str = "config/default.toml";

/// A stop must be done within 10 s of the signal; this leaves room for the process to exit.
const STOP_BUDGET: Duration = Duration::from_secs(9);

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Configuration file [default: config/default.toml, or built-in defaults when it is absent]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on, e.g. 127.0.0.1:7878 (overrides server.bind and AGENT_STORE_BIND)
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Directory of the redb file (overrides storage.data_dir and AGENT_STORE_DATA_DIR)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Join the cluster configured in [cluster] (NATS JetStream); see docs/CLUSTER.md
    #[arg(long)]
    pub cluster: bool,
    /// Log lines for people (text) or machines (json)
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Why `serve` ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeFailed {
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Providers(#[from] BuildError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot listen for signals: {0}")]
    Signal(std::io::Error),
    #[error("shutdown did not finish within {} s", STOP_BUDGET.as_secs())]
    StopTimeout,
}

/// The configuration file `serve` reads: `--config`, else `config/default.toml` when it exists, else none
/// (the built-in defaults).
pub fn config_file(args: &ServeArgs) -> Option<PathBuf> {
    match &args.config {
        Some(path) => Some(path.clone()),
        None if Path::new(DEFAULT_CONFIG).exists() => Some(PathBuf::from(DEFAULT_CONFIG)),
        None => None,
    }
}

/// The configuration `serve` runs with: the file, then the environment (`env`), then the flags.
pub fn load_config(args: &ServeArgs, env: Overrides) -> Result<Config, ConfigError> {
    let mut config = match config_file(args) {
        Some(path) => Config::from_file(&path)?,
        None => Config::default(),
    };
    config.apply(env.or(Overrides {
        bind: args.bind.clone(),
        data_dir: args.data_dir.clone(),
        auth_token: None,
    }));
    if args.cluster {
        config.cluster.enabled = true;
    }
    config.validate()?;
    Ok(config)
}

/// Runs the service until SIGINT or SIGTERM. Call inside an actix `System`.
pub async fn run(args: ServeArgs) -> Result<(), ServeFailed> {
    telemetry::init(args.log_format)?;
    let config = load_config(&args, Overrides::from_env())?;
    let config_source = match config_file(&args) {
        Some(path) => std::path::absolute(&path)
            .unwrap_or(path)
            .display()
            .to_string(),
        None => "none (built-in defaults)".to_owned(),
    };
    let providers = providers::from_config(&config)?;
    let database = config.database_path();
    let database = std::path::absolute(&database).unwrap_or(database);
    let auth = if config.server.auth_token.is_some() {
        "bearer token required"
    } else {
        "no auth token"
    };
    // Listen before announcing the address, so a signal sent as soon as the line appears is not lost.
    let signals = Signals::listen().map_err(ServeFailed::Signal)?;
    let running = api::run(config, providers).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        addr = %running.addr(),
        config = %config_source,
        data = %database.display(),
        "agent-store {} listening on http://{} ({auth}), config {config_source}, data in {}",
        env!("CARGO_PKG_VERSION"),
        running.addr(),
        database.display()
    );

    let signal = signals.wait().await;
    tracing::info!(signal, "stopping: no new requests, flushing storage");
    tokio::time::timeout(STOP_BUDGET, running.stop())
        .await
        .map_err(|_| ServeFailed::StopTimeout)?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT, caught from the moment `listen` returns.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(line: &[&str]) -> ServeArgs {
        Cli::try_parse_from(std::iter::once("serve").chain(line.iter().copied()))
            .unwrap()
            .serve
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nbind = \"127.0.0.1:1000\"\n[storage]\ndata_dir = \"from-file\"\n",
        )
        .unwrap();
        let config_flag = file.to_str().unwrap();
        let env = Overrides {
            bind: Some("127.0.0.1:2000".into()),
            data_dir: Some("from-env".into()),
            auth_token: Some("tok".into()),
        };

        let c = load_config(&args(&["--config", config_flag]), Overrides::default()).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:1000");
        assert_eq!(c.storage.data_dir, PathBuf::from("from-file"));

        let c = load_config(&args(&["--config", config_flag]), env.clone()).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:2000");
        assert_eq!(c.storage.data_dir, PathBuf::from("from-env"));
        assert_eq!(c.server.auth_token.as_deref(), Some("tok"));

        let flags = args(&[
            "--config",
            config_flag,
            "--bind",
            "127.0.0.1:3000",
            "--data-dir",
            "flag",
        ]);
        let c = load_config(&flags, env).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:3000");
        assert_eq!(c.storage.data_dir, PathBuf::from("flag"));
    }

    #[test]
    fn a_bad_file_or_flag_is_named() {
        let e = load_config(
            &args(&["--config", "/nonexistent/x.toml"]),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
        let e = load_config(&args(&["--bind", "nowhere"]), Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("server.bind"), "{e}");
        assert!(Cli::try_parse_from(["serve", "--log-format", "xml"]).is_err());
        assert_eq!(args(&["--log-format", "json"]).log_format, LogFormat::Json);
    }
}
