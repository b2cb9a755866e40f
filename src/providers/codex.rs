//! How Codex is invoked: `codex exec --json` with the session's options as flags, the prompt as the last
//! argument (after `--`, so a prompt starting with `-` is not read as a flag) and stdin closed, because
//! `codex exec` would otherwise read piped stdin as extra context. A follow-up resumes the thread id from
//! `thread.started`: `codex exec --json [options] resume <thread_id> -- <prompt>` (the options belong to
//! `exec`, before `resume`).
//!
//! Options → flags (checked against the real `codex` 0.171.0's parser in tests/providers_real_cli.rs):
//! `cwd` → `--cd` (and the process's working directory), `model` → `--model`, `systemPrompt` →
//! `-c developer_instructions=...`, `permissionMode` → `--sandbox` by [`sandbox`], `extraEnv` → the
//! environment, `additionalDirectories` → `--add-dir` each. Always `--skip-git-repo-check`: the service
//! runs agents in directories the user chose, which need not be git repositories Codex was told to trust.
//! `maxTurns`, `claudeConfigDir` and `worktreeName` have no Codex equivalent (its `--worktree` takes no
//! name) and are refused.

use super::{claude, Refusal, StartSpec};

/// Codex's sandbox modes, which `permissionMode` may also name directly.
const SANDBOXES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// The `--sandbox` for a permission mode. `codex exec` never asks for approval, so a mode maps to what it
/// lets the agent do unasked:
///
/// | permissionMode                                   | `--sandbox`          |
/// |--------------------------------------------------|----------------------|
/// | none, `default`, `acceptEdits`, `auto`           | `workspace-write`    |
/// | `plan`, `dontAsk`                                | `read-only`          |
/// | `bypassPermissions`                              | `danger-full-access` |
/// | `read-only`, `workspace-write`, `danger-full-access` | itself           |
///
/// None for a mode that is neither Claude's nor Codex's.
pub(crate) fn sandbox(permission_mode: Option<&str>) -> Option<&'static str> {
    match permission_mode.filter(|m| !m.is_empty()) {
        None | Some("default" | "acceptEdits" | "auto") => Some("workspace-write"),
        Some("plan" | "dontAsk") => Some("read-only"),
        Some("bypassPermissions") => Some("danger-full-access"),
        Some(mode) => SANDBOXES.iter().find(|s| **s == mode).copied(),
    }
}

/// Refuses the options Codex cannot honour, naming the option and the provider.
pub(crate) fn check(spec: &StartSpec, provider: &str) -> Result<(), Refusal> {
    let none = |option: &'static str, why: &str| {
        Err(Refusal::new(
            option,
            format!("provider {provider} (codex) cannot honour it: {why}"),
        ))
    };
    if spec.max_turns.is_some() {
        return none("options.maxTurns", "codex exec has no turn limit");
    }
    if spec
        .claude_config_dir
        .as_deref()
        .is_some_and(|d| !d.is_empty())
    {
        return none(
            "options.claudeConfigDir",
            "it is Claude's; Codex reads CODEX_HOME (set it in extraEnv)",
        );
    }
    if spec.worktree_name.as_deref().is_some_and(|n| !n.is_empty()) {
        return none(
            "options.worktreeName",
            "codex exec --worktree creates a worktree but takes no name",
        );
    }
    let mode = spec.permission_mode.as_deref();
    if sandbox(mode).is_none() {
        return Err(Refusal::new(
            "options.permissionMode",
            format!(
                "{:?} is not a permission mode provider {provider} (codex) knows (one of {}, or a sandbox: {})",
                mode.unwrap_or(""),
                claude::PERMISSION_MODES.join(", "),
                SANDBOXES.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The arguments of one run; `resume` is the thread id of an earlier run. Options the spec holds that
/// `check` refuses are not mapped (a spec reaching here passed it).
pub(crate) fn args(spec: &StartSpec, prompt: &str, resume: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["exec", "--json", "--skip-git-repo-check"]
        .map(String::from)
        .to_vec();
    let mut flag = |name: &str, value: &str| {
        args.push(name.into());
        args.push(value.into());
    };
    // An empty model leaves the choice to Codex's own configuration.
    if !spec.model.is_empty() {
        flag("--model", &spec.model);
    }
    if let Some(cwd) = &spec.cwd {
        flag("--cd", cwd);
    }
    if let Some(sandbox) = sandbox(spec.permission_mode.as_deref()) {
        flag("--sandbox", sandbox);
    }
    for dir in &spec.additional_directories {
        flag("--add-dir", dir);
    }
    if let Some(text) = spec.system_prompt.as_deref().filter(|p| !p.is_empty()) {
        // `-c` values are TOML; a JSON string literal is a valid TOML basic string.
        let literal = serde_json::Value::from(text).to_string();
        flag("-c", &format!("developer_instructions={literal}"));
    }
    if let Some(thread) = resume {
        args.push("resume".into());
        args.push(thread.into());
    }
    args.push("--".into());
    args.push(prompt.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_resume_put_the_options_before_the_subcommand() {
        let spec = StartSpec {
            model: "gpt-5-codex".into(),
            cwd: Some("/work/p".into()),
            permission_mode: Some("plan".into()),
            additional_directories: vec!["/data".into()],
            system_prompt: Some("Be \"brief\".\n".into()),
            ..StartSpec::default()
        };
        let options = "exec --json --skip-git-repo-check --model gpt-5-codex --cd /work/p \
                       --sandbox read-only --add-dir /data -c developer_instructions=\"Be \\\"brief\\\".\\n\"";
        assert_eq!(
            args(&spec, "-list files", None).join(" "),
            format!("{options} -- -list files")
        );
        assert_eq!(
            args(&spec, "again", Some("th-1")).join(" "),
            format!("{options} resume th-1 -- again")
        );
    }

    #[test]
    fn the_sandbox_follows_the_documented_table() {
        for (mode, want) in [
            (None, Some("workspace-write")),
            (Some(""), Some("workspace-write")),
            (Some("default"), Some("workspace-write")),
            (Some("acceptEdits"), Some("workspace-write")),
            (Some("auto"), Some("workspace-write")),
            (Some("plan"), Some("read-only")),
            (Some("dontAsk"), Some("read-only")),
            (Some("bypassPermissions"), Some("danger-full-access")),
            (Some("read-only"), Some("read-only")),
            (Some("danger-full-access"), Some("danger-full-access")),
            (Some("yolo"), None),
        ] {
            assert_eq!(sandbox(mode), want, "{mode:?}");
        }
    }

    #[test]
    fn options_without_a_codex_equivalent_are_refused_by_name() {
        let refused = |spec: StartSpec| check(&spec, "codex").unwrap_err();
        let r = refused(StartSpec {
            max_turns: Some(3),
            ..StartSpec::default()
        });
        assert_eq!(r.option, "options.maxTurns");
        assert!(r.message.contains("provider codex"), "{r}");
        for (spec, option) in [
            (
                StartSpec {
                    claude_config_dir: Some("/c".into()),
                    ..StartSpec::default()
                },
                "options.claudeConfigDir",
            ),
            (
                StartSpec {
                    worktree_name: Some("w".into()),
                    ..StartSpec::default()
                },
                "options.worktreeName",
            ),
            (
                StartSpec {
                    permission_mode: Some("yolo".into()),
                    ..StartSpec::default()
                },
                "options.permissionMode",
            ),
        ] {
            assert_eq!(refused(spec).option, option);
        }
        let fine = StartSpec {
            permission_mode: Some("acceptEdits".into()),
            additional_directories: vec!["/d".into()],
            system_prompt: Some("s".into()),
            ..StartSpec::default()
        };
        assert!(check(&fine, "codex").is_ok());
    }
}
