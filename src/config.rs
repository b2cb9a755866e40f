//! Configuration: `config/default.toml` (or `--config FILE`), then environment overrides, then command-line
//! flags. Durations are humantime strings and sizes are human byte sizes, so the file reads as an operator
//! writes it ("15m", "16MiB"). Every key has a default, so an empty file is a valid configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

/// Why a configuration could not be used. Each names the file or the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration value for {key}: {message}")]
    Invalid { key: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub timers: TimerConfig,
    pub retention: RetentionConfig,
    pub limits: LimitsConfig,
    pub health: HealthConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[cluster]`: off unless enabled (`serve --cluster`); see `crate::cluster`.
    pub cluster: crate::cluster::ClusterConfig,
    pub resume: ResumeConfig,
    /// `[policy]`: every project's agent policy unless it sets its own (issue 15).
    pub policy: crate::messages::policy::PolicyDefaults,
    /// `[pricing.<model>]`: prices for providers that report tokens without cost, over the built-in ones.
    pub pricing: BTreeMap<String, crate::messages::policy::Price>,
}

/// `[resume]`: what a restart does to sessions whose agent was a child of the previous process.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResumeConfig {
    pub on_restart: OnRestart,
}

/// `resume.on_restart`: mark such sessions interrupted (error), or resume them with the provider's own
/// resume (a session's start option `resumeOnRestart: true` asks for the latter too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRestart {
    #[default]
    Interrupt,
    Resume,
}

/// `[health]`: context limits by model, for context pressure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Tokens a model holds when it is not listed in `context_limits`.
    pub default_context_limit: u64,
    /// model name → context window in tokens.
    pub context_limits: BTreeMap<String, u64>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            default_context_limit: 200_000,
            context_limits: BTreeMap::new(),
        }
    }
}

impl HealthConfig {
    pub fn context_limit(&self, model: &str) -> u64 {
        self.context_limits
            .get(model)
            .copied()
            .unwrap_or(self.default_context_limit)
            .max(1)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: String,
    pub max_body: ByteSize,
    pub auth_token: Option<String>,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// How long `/v1/events` can replay what a reconnecting client missed (src/actors/journal.rs).
    #[serde(with = "humantime_serde")]
    pub sse_replay_window: Duration,
    /// The most the replay journal holds, in memory and on disk; older events go first.
    pub sse_replay_bytes: ByteSize,
    /// How often an idle `/v1/events` stream sends a comment line, so proxies keep it open.
    #[serde(with = "humantime_serde")]
    pub sse_keep_alive: Duration,
    /// `Host` names (`name` for any port, or `name:port`) served besides the loopback ones. Without a
    /// token every other `Host` is refused (DNS rebinding); with a token, only when this list is set.
    pub allowed_hosts: Vec<String>,
    /// Page origins (`scheme://host[:port]`) that may call the API from a browser, answered with CORS
    /// headers. The server's own origin (the ops console) needs no entry.
    pub allowed_origins: Vec<String>,
    /// How long a request body may take to arrive in full; a slower one is refused with 408 and its
    /// connection closed, so a body that never finishes cannot hold a connection.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// redb's page cache. redb's own default is 1 GiB, which a store with many small sessions fills with
    /// pages it rarely reads again; the B-tree interior pages that every lookup touches fit in far less.
    pub cache_size: ByteSize,
    /// seqIds a session reserves durably at a time, ahead of use (src/actors/seq_block.rs).
    pub seq_block: u64,
    /// The longest writes nobody waits on wait for more before they commit, so that more share one commit
    /// (src/actors/persister/linger.rs); a write somebody waits on commits at once. Zero: never.
    #[serde(with = "humantime_serde")]
    pub commit_linger: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimerConfig {
    #[serde(with = "humantime_serde")]
    pub stall_after: Duration,
    #[serde(with = "humantime_serde")]
    pub persist_debounce: Duration,
    #[serde(with = "humantime_serde")]
    pub cleanup_grace: Duration,
    /// First retry delay after a failed storage write; doubles up to `persist_retry_max`.
    #[serde(with = "humantime_serde")]
    pub persist_retry: Duration,
    #[serde(with = "humantime_serde")]
    pub persist_retry_max: Duration,
    /// How long stopAgent waits after SIGTERM before SIGKILL.
    #[serde(with = "humantime_serde")]
    pub stop_grace: Duration,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub count: u32,
    pub days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_prompt_bytes: ByteSize,
    pub max_message_bytes: ByteSize,
    pub messages_in_memory: usize,
    pub max_line: ByteSize,
    /// Live events one subscriber may have waiting before it lags and resumes from storage.
    pub subscriber_buffer: usize,
    /// Bytes of live-event frames one subscriber may have waiting before it lags (frames are shared by
    /// every subscriber, so this bounds one subscriber's backlog, not a copy per subscriber).
    pub subscriber_buffer_bytes: ByteSize,
    /// Most keys a start request's `extraEnv` may hold.
    pub max_extra_env: usize,
    /// Most bytes (keys and values together) a start request's `extraEnv` may hold.
    pub max_extra_env_bytes: ByteSize,
    /// Bytes all sessions' in-memory message windows may hold together: past it, the stored messages of
    /// the least recently touched sessions are let go (reads of them go to storage). Messages not yet
    /// stored are never let go: when they alone fill it, plain ingests wait for storage, as past
    /// `messages_in_memory`. Each arbiter's sessions use an equal part of it.
    pub window_bytes: ByteSize,
    /// Raw message ids each session remembers, so that a retried ingest batch does not duplicate its
    /// messages (0: no deduplication). 8 bytes an id, plus the set's overhead.
    pub ingest_dedup_ids: usize,
    /// Stopped sessions whose agent's stderr stays readable (each at most 16 KiB; actors/stderr_kept.rs).
    pub stderr_kept: usize,
}

/// One `[providers.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub default_model: Option<String>,
    /// Ollama only: the server's base URL.
    #[serde(default)]
    pub host: Option<String>,
    /// Sidecar only: which adapter reads its `agent_event` payloads.
    #[serde(default)]
    pub adapter: Option<ProviderKind>,
    /// Whether a start may ask this provider to skip its permission checks (`bypassPermissions`, Codex's
    /// `danger-full-access`); refused with 403 otherwise.
    #[serde(default)]
    pub allow_bypass_permissions: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Claude,
    Codex,
    Ollama,
    Sidecar,
    Synthetic,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            timers: TimerConfig::default(),
            retention: RetentionConfig::default(),
            limits: LimitsConfig::default(),
            health: HealthConfig::default(),
            providers: default_providers(),
            cluster: crate::cluster::ClusterConfig::default(),
            resume: ResumeConfig::default(),
            policy: Default::default(),
            pricing: BTreeMap::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:7878".into(),
            max_body: ByteSize::mib(16),
            auth_token: None,
            workers: 0,
            sse_keep_alive: Duration::from_secs(15),
            sse_replay_window: Duration::from_secs(600),
            sse_replay_bytes: ByteSize::mib(8),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            body_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            cache_size: ByteSize::b(crate::storage::DEFAULT_CACHE_SIZE as u64),
            seq_block: 1000,
            commit_linger: Duration::from_millis(5),
        }
    }
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            stall_after: Duration::from_secs(15 * 60),
            persist_debounce: Duration::from_secs(2),
            cleanup_grace: Duration::from_secs(60),
            persist_retry: Duration::from_millis(100),
            persist_retry_max: Duration::from_secs(10),
            stop_grace: Duration::from_secs(5),
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { count: 5, days: 30 }
    }
}

impl RetentionConfig {
    /// The original's `setRetentionConfig`: count within 1..=50, days within 1..=365.
    pub fn clamped(count: i64, days: i64) -> RetentionConfig {
        RetentionConfig {
            count: count.clamp(1, 50) as u32,
            days: days.clamp(1, 365) as u32,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_prompt_bytes: ByteSize::mib(1),
            max_message_bytes: ByteSize::mib(4),
            messages_in_memory: 1000,
            max_line: ByteSize::mib(16),
            subscriber_buffer: 1024,
            subscriber_buffer_bytes: ByteSize::mib(8),
            max_extra_env: 64,
            max_extra_env_bytes: ByteSize::kib(64),
            window_bytes: ByteSize::mib(40),
            ingest_dedup_ids: 1000,
            stderr_kept: 256,
        }
    }
}

fn default_providers() -> BTreeMap<String, ProviderConfig> {
    let mut p = BTreeMap::new();
    p.insert(
        "claude".into(),
        ProviderConfig {
            kind: ProviderKind::Claude,
            command: vec!["claude".into()],
            default_model: Some("claude-opus-4-5".into()),
            host: None,
            adapter: None,
            allow_bypass_permissions: false,
        },
    );
    p.insert(
        "codex".into(),
        ProviderConfig {
            kind: ProviderKind::Codex,
            command: vec!["codex".into()],
            default_model: None,
            host: None,
            adapter: None,
            allow_bypass_permissions: false,
        },
    );
    p.insert(
        "ollama".into(),
        ProviderConfig {
            kind: ProviderKind::Ollama,
            command: vec![],
            default_model: Some("qwen3:8b".into()),
            host: Some("http://127.0.0.1:11434".into()),
            adapter: None,
            allow_bypass_permissions: false,
        },
    );
    p
}

/// Command-line and environment overrides, applied over the file.
/// The environment variable that carries the auth token. Agent processes never inherit it.
pub const TOKEN_ENV: &str = "AGENT_STORE_TOKEN";

/// `storage.commit_linger` at most: a write nobody waits on still holds its session's memory until it
/// commits.
const MAX_COMMIT_LINGER: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub auth_token: Option<String>,
}

impl Overrides {
    /// `AGENT_STORE_BIND`, `AGENT_STORE_DATA_DIR`, `AGENT_STORE_TOKEN`.
    pub fn from_env() -> Overrides {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Overrides {
            bind: var("AGENT_STORE_BIND"),
            data_dir: var("AGENT_STORE_DATA_DIR").map(PathBuf::from),
            auth_token: var(TOKEN_ENV),
        }
    }

    /// `other` wins where it says something.
    pub fn or(self, other: Overrides) -> Overrides {
        Overrides {
            bind: other.bind.or(self.bind),
            data_dir: other.data_dir.or(self.data_dir),
            auth_token: other.auth_token.or(self.auth_token),
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text. Providers named in the text replace the built-in ones of the same
    /// name; the others stay.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn apply(&mut self, overrides: Overrides) {
        if let Some(bind) = overrides.bind {
            self.server.bind = bind;
        }
        if let Some(dir) = overrides.data_dir {
            self.storage.data_dir = dir;
        }
        if let Some(token) = overrides.auth_token {
            self.server.auth_token = Some(token);
        }
    }

    /// Checks what serde cannot: ranges and the fields each provider kind needs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        self.bind_addr()?;
        if self.storage.commit_linger > MAX_COMMIT_LINGER {
            return Err(invalid("storage.commit_linger", "must be at most 1s"));
        }
        if self.storage.seq_block == 0 {
            return Err(invalid("storage.seq_block", "must be at least 1"));
        }
        if self.timers.persist_debounce.is_zero() {
            return Err(invalid("timers.persist_debounce", "must be above zero"));
        }
        if self.server.sse_keep_alive.is_zero() {
            return Err(invalid("server.sse_keep_alive", "must be above zero"));
        }
        if self.server.body_timeout.is_zero() {
            return Err(invalid("server.body_timeout", "must be above zero"));
        }
        for origin in &self.server.allowed_origins {
            if !crate::api::is_origin(origin) {
                return Err(ConfigError::Invalid {
                    key: "server.allowed_origins".into(),
                    message: format!("{origin:?} is not an origin (scheme://host[:port])"),
                });
            }
        }
        self.cluster.validate()?;
        if self.timers.stall_after.is_zero() {
            return Err(invalid("timers.stall_after", "must be above zero"));
        }
        if !(1..=50).contains(&self.retention.count) {
            return Err(invalid("retention.count", "must be within 1..=50"));
        }
        if !(1..=365).contains(&self.retention.days) {
            return Err(invalid("retention.days", "must be within 1..=365"));
        }
        if self.limits.messages_in_memory == 0 {
            return Err(invalid("limits.messages_in_memory", "must be at least 1"));
        }
        if let Err(message) = self.policy.check() {
            return Err(invalid("policy", &message));
        }
        for (model, price) in &self.pricing {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            if !ok(price.input_per_mtok) || !ok(price.output_per_mtok) {
                return Err(invalid(
                    &format!("pricing.{model}"),
                    "prices must be numbers >= 0",
                ));
            }
        }
        if let Some(token) = &self.server.auth_token {
            if token.trim().is_empty() {
                return Err(invalid("server.auth_token", "must not be empty"));
            }
        }
        for (name, p) in &self.providers {
            let key = |field: &str| format!("providers.{name}.{field}");
            match p.kind {
                ProviderKind::Claude | ProviderKind::Codex | ProviderKind::Sidecar
                    if p.command.is_empty() =>
                {
                    return Err(invalid(&key("command"), "must name a program"));
                }
                ProviderKind::Ollama if p.host.is_none() => {
                    return Err(invalid(&key("host"), "is required for kind = \"ollama\""));
                }
                ProviderKind::Sidecar if p.adapter.is_none() => {
                    return Err(invalid(
                        &key("adapter"),
                        "is required for kind = \"sidecar\"",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.bind.parse().map_err(|e| ConfigError::Invalid {
            key: "server.bind".into(),
            message: format!("{:?} is not an address:port ({e})", self.server.bind),
        })
    }

    /// Where the redb file lives.
    pub fn database_path(&self) -> PathBuf {
        self.storage.data_dir.join("agent-store.redb")
    }

    /// The default model of a provider from its configuration. Claude falls back to the original's
    /// "claude-opus-4-5"; other providers without one leave the choice to the agent (empty).
    /// What `model` costs: `[pricing.<model>]`, else the built-in price, else unknown.
    pub fn price(&self, model: &str) -> Option<crate::messages::policy::Price> {
        self.pricing.get(model).copied().or_else(|| {
            crate::messages::policy::DEFAULT_PRICES
                .iter()
                .find(|(m, _, _)| *m == model)
                .map(|&(_, input, output)| crate::messages::policy::Price {
                    input_per_mtok: input,
                    output_per_mtok: output,
                })
        })
    }

    pub fn default_model(&self, provider: &str) -> String {
        match self.providers.get(provider) {
            Some(p) => p.default_model.clone().unwrap_or_else(|| match p.kind {
                ProviderKind::Claude => "claude-opus-4-5".into(),
                _ => String::new(),
            }),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_default_file_matches_built_in_defaults() {
        let text = include_str!("../config/default.toml");
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:7878");
        assert_eq!(c.server.max_body, ByteSize::mib(16));
        assert_eq!(c.storage.cache_size, Config::default().storage.cache_size);
        assert_eq!(c.storage.cache_size, ByteSize::mib(8));
        assert_eq!(
            c.server.sse_replay_bytes,
            Config::default().server.sse_replay_bytes
        );
        assert_eq!(c.server.sse_replay_bytes, ByteSize::mib(8));
        assert_eq!(c.timers.stall_after, Duration::from_secs(900));
        assert_eq!(c.timers.persist_debounce, Duration::from_secs(2));
        assert_eq!(c.timers.cleanup_grace, Duration::from_secs(60));
        assert_eq!((c.retention.count, c.retention.days), (5, 30));
        assert_eq!(c.default_model("claude"), "claude-opus-4-5");
        assert_eq!(c.default_model("ollama"), "qwen3:8b");
        assert_eq!(c.providers["synthetic"].kind, ProviderKind::Synthetic);
        let d = crate::messages::policy::PolicyDefaults::default();
        assert_eq!(c.policy.approvals, d.approvals);
        assert_eq!(c.policy.approval_timeout, d.approval_timeout);
        assert_eq!(c.policy.stall_action, d.stall_action);
        assert_eq!(c.policy.stall_nudge, d.stall_nudge);
        assert_eq!(c.policy.stall_resumes, d.stall_resumes);
        // The listed prices are the built-in ones.
        for (model, input, output) in crate::messages::policy::DEFAULT_PRICES {
            let p = c.pricing[*model];
            assert_eq!(
                (p.input_per_mtok, p.output_per_mtok),
                (*input, *output),
                "{model}"
            );
            assert_eq!(Config::default().price(model), Some(p));
        }
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_named() {
        let e = Config::from_toml("[timers]\nstall_afterr = \"1m\"").unwrap_err();
        assert!(e.to_string().contains("stall_afterr"), "{e}");
        let e = Config::from_toml("[timers]\nstall_after = \"soon\"").unwrap_err();
        assert!(e.to_string().contains("stall_after"), "{e}");
        let e = Config::from_toml("[retention]\ncount = 0").unwrap_err();
        assert!(e.to_string().contains("retention.count"), "{e}");
        let e = Config::from_toml("[storage]\ncache_size = \"lots\"").unwrap_err();
        assert!(e.to_string().contains("cache_size"), "{e}");
        let c = Config::from_toml("[storage]\ncache_size = \"32MiB\"").unwrap();
        assert_eq!(c.storage.cache_size, ByteSize::mib(32));
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut c = Config::default();
        c.apply(Overrides {
            bind: Some("127.0.0.1:9000".into()),
            data_dir: Some("/tmp/x".into()),
            auth_token: Some("t".into()),
        });
        assert_eq!(c.bind_addr().unwrap().port(), 9000);
        assert_eq!(c.database_path(), PathBuf::from("/tmp/x/agent-store.redb"));
        assert_eq!(c.server.auth_token.as_deref(), Some("t"));
    }

    #[test]
    fn retention_is_clamped_like_the_original() {
        let r = RetentionConfig::clamped(0, 1000);
        assert_eq!((r.count, r.days), (1, 365));
        let r = RetentionConfig::clamped(80, -3);
        assert_eq!((r.count, r.days), (50, 1));
    }
}
