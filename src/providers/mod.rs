//! Providers run agents. The engine sees only the `Provider` trait: start a session, send it a follow-up,
//! stop it. What a provider's agent says comes back through an `EventSink` as ordinary sidecar events, so a
//! runner and an external sidecar posting to `/v1/sidecar/events` travel the same path.

mod claude;
mod claude_control;
mod cli;
mod codex;
mod feed;
mod lines;
pub mod metrics;
mod ollama;
pub mod permissions;
mod process;
mod sidecar;
pub mod synthetic;
mod turns;

use cli::CliDriver;
use ollama::OllamaDriver;
pub use sidecar::{Backoff, SidecarProvider};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::Recipient;
use futures_util::future::BoxFuture;

use crate::messages::commands::Ingest;
use crate::messages::wire::SidecarEvent;

/// Everything a provider needs to start one session; the engine has already filled defaults from settings
/// and configuration and validated `extra_env`. Stored with the session (without the prompt and the ids), so
/// that it can be resumed after a restart (src/actors/restart.rs).
///
/// Serialized, a field left at its default is left out (and read back as its default, `serde(default)`):
/// every session's start is stored, and most of its fields are unset, so the whole form was ~400 bytes of
/// keys and nulls for a few bytes of values.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StartSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prompt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claude_config_dir: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_directories: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree_name: Option<String>,
    /// `provider_settings[provider]` from the settings (e.g. ollama's `num_ctx`, `think`), or null.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub provider_settings: serde_json::Value,
    /// Resume this session with the provider's own resume after a service restart (`resumeOnRestart`).
    #[serde(skip_serializing_if = "is_false")]
    pub resume_on_restart: bool,
    /// The project's policy asks for tool permissions over the API (Claude: the stdio permission channel).
    #[serde(skip_serializing_if = "is_false")]
    pub ask_permissions: bool,
    /// The project's session budget, which an agent that can enforce one itself is given as a second
    /// guard (Claude: `--max-budget-usd`, per run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a provider is given to take a session back that it no longer runs (after a restart, or on
/// demand): the provider's own conversation id and the session's history, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resume {
    /// Claude's session id or Codex's thread id, as the agent named it.
    pub conversation: Option<String>,
    /// (role, text) of the user and assistant messages, for a provider that resends the history (Ollama).
    pub history: Vec<(crate::messages::wire::MsgRole, String)>,
}

/// What a provider failed to do, in words for the user ("claude not found on PATH ...").
pub type ProviderError = String;

/// The last lines a session's agent wrote to stderr (all its runs), readable while it runs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStderr {
    pub session_id: String,
    /// Oldest first; at most 16 KiB of them, each line cut at 1 KiB.
    pub lines: Vec<String>,
    /// When the last line arrived (Unix ms): a sign of life, which is not progress.
    #[schema(value_type = Option<i64>)]
    pub last_line_at: Option<crate::messages::wire::UnixMs>,
}

/// A start option the provider cannot honour (contract: "Safe defaults": refused, never dropped).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{option}: {message}")]
pub struct Refusal {
    /// The option's path in the start body (`options.maxTurns`).
    pub option: &'static str,
    /// Why, naming the provider.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(option: &'static str, message: String) -> Refusal {
        Refusal { option, message }
    }
}

pub trait Provider: Send + Sync + 'static {
    /// Refuses the options of a start request this provider cannot honour. `requested` holds only what
    /// the request itself gave (defaults from settings are not the caller's to answer for).
    fn check(&self, _requested: &StartSpec) -> Result<(), Refusal> {
        Ok(())
    }
    /// Starts the agent. Returns once it runs (or failed to) with its runner, which the session's actor
    /// keeps; the agent's output then flows through `sink`.
    fn start(
        &self,
        spec: StartSpec,
        sink: EventSink,
    ) -> BoxFuture<'static, Result<Box<dyn Runner>, ProviderError>>;
    /// Takes back a session this provider does not run now, so that its runner's next `prompt`
    /// continues the conversation (the provider's own resume); starts nothing by itself.
    fn adopt(
        &self,
        spec: StartSpec,
        _resume: Resume,
        _sink: EventSink,
    ) -> Result<Box<dyn Runner>, ProviderError> {
        Err(format!(
            "provider {} cannot resume a session",
            spec.provider
        ))
    }
    /// The runner of a session this provider did not start in this process (one read back from
    /// storage): nothing to stop, and a follow-up is refused, as the provider does not know the session.
    fn unknown(&self, session_id: &str) -> Box<dyn Runner> {
        Box::new(Unknown(session_id.to_owned()))
    }
    /// Stops every agent of this provider and returns once they are gone: the service is shutting down.
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    /// Whether its agents run outside this process (a sidecar posting over HTTP), so that nothing a start
    /// does here outlives a crash: such a start answers without waiting for its record's commit.
    fn runs_outside(&self) -> bool {
        false
    }
}

/// One session's agent, as its session's actor holds it: follow-ups, the stop and the stderr lines are
/// asked of it, never of the provider by session id, so a provider keeps no table of sessions. For the
/// command-line agents and Ollama it is an actor of its own (turns.rs); dropping it lets a run in
/// progress finish and report its end, and starts nothing more.
pub trait Runner: Send + 'static {
    /// Whether a follow-up can reach the agent now; Err says why not (asked before the prompt is stored,
    /// so that one that cannot be delivered is refused rather than kept and dropped).
    fn accepts_prompt(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
    /// Sends a follow-up prompt to the agent.
    fn prompt(&self, prompt: String) -> BoxFuture<'static, Result<(), ProviderError>>;
    /// Stops the agent; returns once it is gone.
    fn stop(&self) -> BoxFuture<'static, Result<(), ProviderError>>;
    /// The agent's stderr lines, if it runs a process.
    fn stderr(&self) -> BoxFuture<'static, Option<SessionStderr>> {
        Box::pin(async { None })
    }
    /// Whether dropping this runner loses nothing: it holds no process, conversation or stderr, and its
    /// provider's `unknown` runner answers as it does. A finished session holding such a runner (or none)
    /// lets its actor go once stored, and is brought back from storage when needed.
    fn keeps_nothing(&self) -> bool {
        false
    }
}

/// The runner of a session its provider does not know (see `Provider::unknown`).
struct Unknown(String);

impl Runner for Unknown {
    fn prompt(&self, _prompt: String) -> BoxFuture<'static, Result<(), ProviderError>> {
        let why = format!("session {} is not known to this provider", self.0);
        Box::pin(async move { Err(why) })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn keeps_nothing(&self) -> bool {
        true
    }
}

/// Where a provider delivers its agents' events: its project's router's ingest, awaited, so a flood of provider
/// output slows the provider's reader instead of growing a mailbox.
#[derive(Clone)]
pub struct EventSink {
    ingest: Recipient<Ingest>,
    /// Who answers agents' tool-permission requests (the engine's approvals), if anyone.
    permissions: Option<Arc<dyn permissions::Permissions>>,
}

/// The engine is gone (shutting down); the provider should stop reading.
#[derive(Debug, thiserror::Error)]
#[error("the engine is shutting down")]
pub struct SinkClosed;

impl EventSink {
    pub fn new(ingest: Recipient<Ingest>) -> EventSink {
        EventSink {
            ingest,
            permissions: None,
        }
    }

    /// The same sink, with `permissions` answering agents' tool-permission requests.
    pub fn with_permissions(mut self, permissions: Arc<dyn permissions::Permissions>) -> EventSink {
        self.permissions = Some(permissions);
        self
    }

    pub fn permissions(&self) -> Option<Arc<dyn permissions::Permissions>> {
        self.permissions.clone()
    }

    pub async fn emit(&self, events: Vec<SidecarEvent>) -> Result<(), SinkClosed> {
        if events.is_empty() {
            return Ok(());
        }
        let (ingest, answer) = Ingest::new(events, false, false);
        // Not held for room in the router's mailbox: awaiting the answer keeps one batch in flight.
        self.ingest.do_send(ingest);
        answer.await.map(|_| ()).map_err(|_| SinkClosed)
    }
}

/// The providers of this service by name, as configured under `[providers.NAME]`. Cheap to clone: every
/// session's actor holds one, to reach its provider.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: Arc<HashMap<String, Arc<dyn Provider>>>,
}

impl Providers {
    pub fn new() -> Providers {
        Providers::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, provider: Arc<dyn Provider>) {
        Arc::make_mut(&mut self.by_name).insert(name.into(), provider);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Provider>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.by_name.values()
    }
}

/// Why the configured providers could not be built.
#[derive(Debug, thiserror::Error)]
#[error("provider {name}: {message}")]
pub struct BuildError {
    pub name: String,
    pub message: String,
}

/// Builds every `[providers.NAME]` of the configuration: the Claude and Codex command-line runners, the
/// Ollama HTTP runner, sidecars (with the adapter their events are read by) and the synthetic provider.
pub fn from_config(config: &crate::config::Config) -> Result<Providers, BuildError> {
    use crate::config::ProviderKind;
    let mut providers = Providers::new();
    for (name, p) in &config.providers {
        let error = |message: String| BuildError {
            name: name.clone(),
            message,
        };
        let provider: Arc<dyn Provider> = match p.kind {
            ProviderKind::Claude | ProviderKind::Codex => {
                Arc::new(CliDriver::provider(name, p, config).map_err(error)?)
            }
            ProviderKind::Ollama => {
                let host = p
                    .host
                    .as_deref()
                    .ok_or_else(|| error("host is required for kind = \"ollama\"".into()))?;
                Arc::new(OllamaDriver::provider(host, config).map_err(error)?)
            }
            ProviderKind::Sidecar => {
                Arc::new(SidecarProvider::new(name, p, config, Backoff::default()).map_err(error)?)
            }
            ProviderKind::Synthetic => Arc::new(synthetic::Synthetic),
        };
        providers.insert(name.clone(), provider);
    }
    Ok(providers)
}
