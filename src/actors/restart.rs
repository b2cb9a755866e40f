//! What a restart does to the sessions that were running when the previous process ended, and when a
//! session is resumed with its provider's own resume (the resume itself is the engine's:
//! src/engine/resume.rs).
//!
//! - A session whose agent lives outside this process (the `synthetic` provider: a sidecar posting over
//!   HTTP, a load generator) was not cut off by the restart: it stays running and its events keep landing.
//! - A session whose agent was a child of the previous process (Claude, Codex, Ollama, a stdio sidecar) lost
//!   it: it is marked error "Interrupted: service restarted". When `resume.on_restart = "resume"`, or the
//!   session was started with `resumeOnRestart`, it is then resumed: the provider takes it back with the
//!   conversation id it named (Claude `--resume <session id>`, Codex `exec resume <thread id>`) or, for
//!   Ollama, the history, and the session gets the system message "Resumed after a service restart" and a
//!   prompt to go on.
//! - `POST /v1/projects/{id}/session/resume` does the same on demand for a finished session.
//! - A session stopped by its stall under `stall.action = "resume"` (issue 14) is resumed the same way,
//!   with the nudge prompt `policy.stall_nudge` and the system message "Resumed after a stall".
//!
//! What a resume needs is stored with the session: what it was started with (src/storage/starts.rs, written
//! before its agent starts) and the provider's conversation id (the session record, from the agent's init
//! message).

use std::collections::HashSet;

use crate::config::{Config, OnRestart, ProviderKind};
use crate::messages::wire::now_ms;
use crate::providers::StartSpec;
use crate::storage::{SessionRecord, StorageError, Store, WriteOp};

/// The error a session that was running when the process died is left with.
pub const INTERRUPTED: &str = "Interrupted: service restarted";

/// The system message a session resumed after a restart gets.
pub const RESUMED_AFTER_RESTART: &str = "Resumed after a service restart";
/// The system message a session resumed on demand gets.
pub const RESUMED_ON_REQUEST: &str = "Resumed on request";
/// The system message a session resumed after its stall stopped it gets.
pub const RESUMED_AFTER_STALL: &str = "Resumed after a stall";
/// The prompt a resumed session's agent is given when the caller gave none.
pub const RESUME_PROMPT: &str = "Continue where you left off.";

/// Why a session is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Restart,
    Request,
    Stall,
}

/// The configured providers whose agents run outside this process.
pub fn external_providers(config: &Config) -> HashSet<String> {
    config
        .providers
        .iter()
        .filter(|(_, p)| p.kind == ProviderKind::Synthetic)
        .map(|(name, _)| name.clone())
        .collect()
}

/// What start-up recovery did.
pub struct Recovery {
    /// The sessions it marked error "Interrupted: service restarted" (subscribers are told).
    pub interrupted: Vec<SessionRecord>,
    /// Those of them to resume, as (projectId, sessionId).
    pub resume: Vec<(String, String)>,
}

/// Start-up recovery, on the freshly opened store: sessions whose agent was a child of the previous
/// process become error "Interrupted: service restarted"; some are then to be resumed.
pub fn recover(store: &Store, config: &Config) -> Result<Recovery, StorageError> {
    let external = external_providers(config);
    let interrupted =
        store.mark_interrupted_where(INTERRUPTED, now_ms(), |r| !external.contains(&r.provider))?;
    if !interrupted.is_empty() {
        tracing::warn!(
            count = interrupted.len(),
            "sessions interrupted by the last shutdown"
        );
    }
    let mut resume = Vec::new();
    for record in &interrupted {
        let wanted = config.resume.on_restart == OnRestart::Resume
            || stored_start(store, record)?.is_some_and(|s| s.resume_on_restart);
        if wanted {
            resume.push((record.project_id.clone(), record.session_id.clone()));
        }
    }
    Ok(Recovery {
        interrupted,
        resume,
    })
}

fn stored_start(store: &Store, record: &SessionRecord) -> Result<Option<StartSpec>, StorageError> {
    Ok(store
        .session_start(&record.session_id)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// What a session was started with, stored for resuming it: written with the session's first record
/// (src/actors/session.rs, `Riders`), so a stored session always has its start. Its prompt (the session's
/// first message) and its ids (the record's, and the row's key) are left out: taken out for the encode and
/// put back, so nothing is cloned. A reader takes the ids from the record (src/engine/resume.rs); a start
/// stored whole by an earlier build reads the same.
pub fn start_op(spec: &mut StartSpec) -> Option<WriteOp> {
    let prompt = std::mem::take(&mut spec.prompt);
    let session_id = std::mem::take(&mut spec.session_id);
    let project_id = std::mem::take(&mut spec.project_id);
    let encoded = serde_json::to_vec(&*spec);
    (spec.prompt, spec.session_id, spec.project_id) = (prompt, session_id, project_id);
    match encoded {
        Ok(start) => Some(WriteOp::PutStart {
            session_id: spec.session_id.clone(),
            start,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a session's start: it cannot be resumed after a restart");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(spec: &mut StartSpec) -> Vec<u8> {
        match start_op(spec) {
            Some(WriteOp::PutStart { session_id, start }) => {
                assert_eq!(session_id, spec.session_id);
                start
            }
            _ => panic!("no start op"),
        }
    }

    #[test]
    fn a_start_is_stored_without_its_prompt_its_ids_or_what_is_left_at_its_default() {
        let mut spec = StartSpec {
            session_id: "p-1700000000000".into(),
            project_id: "p".into(),
            provider: "synthetic".into(),
            prompt: "go".into(),
            ..StartSpec::default()
        };
        let before = spec.clone();
        assert_eq!(stored(&mut spec), br#"{"provider":"synthetic"}"#);
        assert_eq!(spec, before, "taken out for the encode and put back");
    }

    #[test]
    fn a_stored_start_reads_back_whether_stored_compact_or_whole_by_an_earlier_build() {
        let mut full = StartSpec {
            session_id: "p-1".into(),
            project_id: "p".into(),
            provider: "claude".into(),
            prompt: "go".into(),
            cwd: Some("/w".into()),
            model: "m".into(),
            system_prompt: Some("be brief".into()),
            max_turns: Some(3),
            permission_mode: Some("plan".into()),
            claude_config_dir: Some("/c".into()),
            extra_env: [("K".to_owned(), "v".to_owned())].into(),
            additional_directories: vec!["/d".into()],
            worktree_name: Some("wt".into()),
            provider_settings: serde_json::json!({"num_ctx": 8192}),
            resume_on_restart: true,
            ask_permissions: true,
            max_budget_usd: Some(1.5),
        };
        let read: StartSpec = serde_json::from_slice(&stored(&mut full)).unwrap();
        let without = |s: &StartSpec| StartSpec {
            session_id: String::new(),
            project_id: String::new(),
            prompt: String::new(),
            ..s.clone()
        };
        assert_eq!(read, without(&full));
        // What main stored before (every field, nulls included, the ids with them).
        let whole = br#"{"session_id":"p-1","project_id":"p","provider":"synthetic","prompt":"","cwd":null,"model":"","system_prompt":null,"max_turns":null,"permission_mode":null,"claude_config_dir":null,"extra_env":{},"additional_directories":[],"worktree_name":null,"provider_settings":null,"resume_on_restart":true,"ask_permissions":false,"max_budget_usd":null}"#;
        let old: StartSpec = serde_json::from_slice(whole).unwrap();
        assert_eq!(
            old,
            StartSpec {
                session_id: "p-1".into(),
                project_id: "p".into(),
                provider: "synthetic".into(),
                resume_on_restart: true,
                ..StartSpec::default()
            }
        );
    }
}
