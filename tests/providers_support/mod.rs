//! Shared setup for the provider runner tests: a real engine on a redb file in a temp dir, providers built by
//! `providers::from_config` pointing at the fake agents in `tests/fixtures/bin`, and helpers to read what the
//! fakes recorded and to check that their processes are gone.

#![allow(dead_code)]

#[path = "../support/wait.rs"]
mod wait;
#[allow(unused_imports)] // not every test crate waits
pub use wait::eventually;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_store::config::{Config, ProviderConfig, ProviderKind};
use agent_store::messages::commands::{Page, StartOptions, StartRequest};
use agent_store::messages::wire::{AgentSession, AgentStatus, MsgRole};
use agent_store::providers::{self, Providers};
use agent_store::Engine;
use tempfile::TempDir;

/// Long enough for a slow, shared CI machine; only a hang ever waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

pub fn fake(name: &str) -> String {
    fixture("bin").join(name).to_string_lossy().into_owned()
}

/// A recording from the shared transcript set, read where it lies (never copied into the repository).
/// Panics naming the path when it is missing (the set lives beside the checkout, in `../shared`).
pub fn shared(path: &str) -> PathBuf {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/transcripts")
        .join(path);
    assert!(
        full.exists(),
        "{}: missing; the shared transcripts must be checked out beside this repository",
        full.display()
    );
    full
}

pub struct Harness {
    pub engine: Engine,
    pub config: Config,
    pub dir: TempDir,
}

/// Test timers: a short stop grace, a short debounce, no stall and no cleanup during a test.
pub fn config(dir: &TempDir) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.path().join("data");
    config.timers.persist_debounce = Duration::from_millis(50);
    config.timers.stall_after = Duration::from_secs(3600);
    config.timers.cleanup_grace = Duration::from_secs(3600);
    config.timers.stop_grace = Duration::from_millis(400);
    config.providers.clear();
    config
        .providers
        .insert("claude".into(), cli(ProviderKind::Claude, "fake-claude"));
    config
        .providers
        .insert("codex".into(), cli(ProviderKind::Codex, "fake-codex"));
    config
}

fn cli(kind: ProviderKind, program: &str) -> ProviderConfig {
    ProviderConfig {
        kind,
        command: vec![fake(program)],
        default_model: None,
        host: None,
        adapter: None,
        allow_bypass_permissions: false,
    }
}

/// An engine with the providers of `config` (after `tweak`), built the way the service builds them.
pub async fn start(tweak: impl FnOnce(&mut Config, &Path)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    tweak(&mut config, dir.path());
    let providers = providers::from_config(&config).expect("providers build");
    start_with(config, dir, providers).await
}

pub async fn start_with(config: Config, dir: TempDir, providers: Providers) -> Harness {
    let engine = Engine::start(config.clone(), providers)
        .await
        .expect("engine starts");
    Harness {
        engine,
        config,
        dir,
    }
}

impl Harness {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// Starts a session of `provider` on `project` with extra environment for the fake agent.
    pub async fn start_session(
        &self,
        project: &str,
        provider: &str,
        prompt: &str,
        env: &[(&str, &str)],
    ) -> Result<String, agent_store::CommandError> {
        let options = StartOptions {
            extra_env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..StartOptions::default()
        };
        self.start_with_options(project, provider, prompt, options)
            .await
    }

    pub async fn start_with_options(
        &self,
        project: &str,
        provider: &str,
        prompt: &str,
        options: StartOptions,
    ) -> Result<String, agent_store::CommandError> {
        self.engine
            .start_agent(
                project,
                StartRequest {
                    provider: provider.into(),
                    prompt: prompt.into(),
                    options,
                },
            )
            .await
            .map(|s| s.session_id)
    }

    pub async fn session(&self, project: &str) -> AgentSession {
        self.engine
            .get_session(project, Page::default())
            .await
            .expect("the project has a session")
    }

    /// Waits until the project's session is done or error, and returns it.
    pub async fn finished(&self, project: &str) -> AgentSession {
        eventually(PATIENCE, || async {
            let s = self.session(project).await;
            s.status.is_finished().then_some(s)
        })
        .await
    }
}

/// The roles of a session's messages, in order.
pub fn roles(s: &AgentSession) -> Vec<MsgRole> {
    s.messages.iter().map(|m| m.role).collect()
}

pub fn assert_done(s: &AgentSession) {
    assert_eq!(s.status, AgentStatus::Done, "error: {:?}", s.error);
}

/// The JSON lines a fake recorded (`FAKE_RECORD`).
pub fn records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A fake may be writing its last line (its environment is large) while a test polls: only the
    // complete lines count.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).expect("a recorded JSON line"))
        .collect()
}

/// The argv of every invocation a fake recorded.
pub fn invocations(path: &Path) -> Vec<Vec<String>> {
    records(path)
        .iter()
        .filter_map(|r| r.get("argv"))
        .map(|a| serde_json::from_value(a.clone()).unwrap())
        .collect()
}

/// The pids a fake wrote to `FAKE_PIDS`.
pub fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether a process runs (a zombie waiting to be reaped by init counts as gone).
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits until the fake wrote `n` pids, and returns them.
pub async fn wait_pids(path: &Path, n: usize) -> Vec<i32> {
    eventually(PATIENCE, || async {
        let p = pids(path);
        (p.len() >= n).then_some(p)
    })
    .await
}

/// Asserts that none of `pids` runs any more.
pub fn assert_gone(pids: &[i32]) {
    for &pid in pids {
        assert!(!running(pid), "process {pid} is still running");
    }
}

/// The first line of `path` (a shared transcript) whose "type" is `kind`.
pub fn transcript_line(path: &Path, kind: &str) -> serde_json::Value {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} line in {}", path.display()))
}
