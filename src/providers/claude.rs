//! How Claude Code is invoked: `claude -p` speaking stream-json both ways, the session's options as flags,
//! and each prompt written to stdin as a stream-json user message. Claude keeps reading stdin while it
//! works, so a follow-up during a run joins that run; a follow-up after it resumes Claude's own session id
//! (`--resume`) in a new process.
//!
//! Options → flags (checked against the real `claude` 2.1.197's parser in tests/providers_real_cli.rs):
//! `cwd` → the process's working directory, `model` → `--model`, `systemPrompt` → `--system-prompt`,
//! `maxTurns` → `--max-turns`, `permissionMode` → `--permission-mode` (Claude's own modes only),
//! `claudeConfigDir` → `CLAUDE_CONFIG_DIR`, `extraEnv` → the environment, `additionalDirectories` →
//! `--add-dir` each, `worktreeName` → `--worktree NAME`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, Notify};

use super::{Refusal, StartSpec};

/// The values `claude --permission-mode` accepts.
pub(crate) const PERMISSION_MODES: [&str; 6] = [
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "default",
    "dontAsk",
    "plan",
];

/// What Claude cannot honour: a permission mode that is not one of its own (a Codex sandbox name).
pub(crate) fn check(spec: &StartSpec, provider: &str) -> Result<(), Refusal> {
    match spec.permission_mode.as_deref().filter(|m| !m.is_empty()) {
        Some(mode) if !PERMISSION_MODES.contains(&mode) => Err(Refusal::new(
            "options.permissionMode",
            format!(
                "{mode:?} is not a permission mode of provider {provider} (claude accepts {})",
                PERMISSION_MODES.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// The flags for one run; `resume` is Claude's session id from an earlier run's init message.
pub(crate) fn args(spec: &StartSpec, resume: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-p",
        "--output-format",
        "stream-json",
        "--input-format",
        "stream-json",
        "--verbose",
    ]
    .map(String::from)
    .to_vec();
    let mut flag = |name: &str, value: &str| {
        args.push(name.into());
        args.push(value.into());
    };
    if !spec.model.is_empty() {
        flag("--model", &spec.model);
    }
    if let Some(n) = spec.max_turns {
        flag("--max-turns", &n.to_string());
    }
    if let Some(mode) = spec.permission_mode.as_deref().filter(|m| !m.is_empty()) {
        flag("--permission-mode", mode);
    }
    if let Some(prompt) = spec.system_prompt.as_deref().filter(|p| !p.is_empty()) {
        flag("--system-prompt", prompt);
    }
    for dir in &spec.additional_directories {
        flag("--add-dir", dir);
    }
    if let Some(name) = spec.worktree_name.as_deref().filter(|n| !n.is_empty()) {
        flag("--worktree", name);
    }
    if let Some(id) = resume {
        flag("--resume", id);
    }
    if spec.ask_permissions {
        // Tool-permission requests come as control_request lines (src/providers/claude_control.rs).
        flag("--permission-prompt-tool", "stdio");
    }
    if let Some(usd) = spec.max_budget_usd {
        flag("--max-budget-usd", &format!("{usd}"));
    }
    args
}

/// The validated extra environment, and `CLAUDE_CONFIG_DIR` for a session with its own Claude account.
pub(crate) fn env(spec: &StartSpec) -> BTreeMap<String, String> {
    let mut env = spec.extra_env.clone();
    if let Some(dir) = spec.claude_config_dir.as_deref().filter(|d| !d.is_empty()) {
        env.insert("CLAUDE_CONFIG_DIR".into(), dir.into());
    }
    env
}

/// A prompt as one stream-json input line.
fn user_message(prompt: &str) -> Vec<u8> {
    let message = serde_json::json!({
        "type": "user",
        "message": {"role": "user", "content": [{"type": "text", "text": prompt}]},
    });
    let mut line = message.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Writes prompts (and control protocol answers) to the agent's stdin until told to close it; closing
/// stdin lets the agent exit once it has answered what it has.
pub(crate) async fn write_prompts(
    mut stdin: ChildStdin,
    first: String,
    mut prompts: mpsc::Receiver<String>,
    mut control: mpsc::Receiver<Vec<u8>>,
    close: Arc<Notify>,
    outstanding: Arc<AtomicU32>,
) {
    if stdin.write_all(&user_message(&first)).await.is_err() {
        return;
    }
    let mut answering = true;
    loop {
        tokio::select! {
            line = control.recv(), if answering => match line {
                Some(line) => {
                    if stdin.write_all(&line).await.is_err() {
                        break;
                    }
                }
                None => answering = false,
            },
            prompt = prompts.recv() => match prompt {
                Some(prompt) => {
                    outstanding.fetch_add(1, Ordering::SeqCst);
                    if stdin.write_all(&user_message(&prompt)).await.is_err() {
                        break;
                    }
                }
                // Closed and drained: prompts sent before the close are written, later ones go to a new run.
                None => break,
            },
            _ = close.notified() => prompts.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_becomes_its_flag() {
        let spec = StartSpec {
            model: "claude-sonnet-4-5".into(),
            max_turns: Some(7),
            permission_mode: Some("acceptEdits".into()),
            system_prompt: Some("Be brief.".into()),
            additional_directories: vec!["/a".into(), "/b".into()],
            claude_config_dir: Some("/home/x/.claude-work".into()),
            worktree_name: Some("fix-1".into()),
            extra_env: [("FOO".to_string(), "1".to_string())].into(),
            ..StartSpec::default()
        };
        let args = args(&spec, Some("sess-1")).join(" ");
        assert_eq!(
            args,
            "-p --output-format stream-json --input-format stream-json --verbose \
             --model claude-sonnet-4-5 --max-turns 7 --permission-mode acceptEdits \
             --system-prompt Be brief. --add-dir /a --add-dir /b --worktree fix-1 --resume sess-1"
        );
        let env = env(&spec);
        assert_eq!(env["CLAUDE_CONFIG_DIR"], "/home/x/.claude-work");
        assert_eq!(env["FOO"], "1");
    }

    #[test]
    fn only_claude_s_own_permission_modes_pass() {
        for mode in PERMISSION_MODES {
            let spec = StartSpec {
                permission_mode: Some(mode.into()),
                ..StartSpec::default()
            };
            assert!(check(&spec, "claude").is_ok(), "{mode}");
        }
        let spec = StartSpec {
            permission_mode: Some("workspace-write".into()),
            ..StartSpec::default()
        };
        let refusal = check(&spec, "claude").unwrap_err();
        assert_eq!(refusal.option, "options.permissionMode");
        assert!(refusal.message.contains("provider claude"), "{refusal}");
    }

    #[test]
    fn the_prompt_is_a_stream_json_user_message_line() {
        let line = user_message("fix \"it\"\nplease");
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "user");
        assert_eq!(v["message"]["role"], "user");
        assert_eq!(v["message"]["content"][0]["text"], "fix \"it\"\nplease");
    }
}
