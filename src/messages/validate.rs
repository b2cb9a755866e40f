//! Input rules shared by every entrance (HTTP, in-process handle, load generator): ids, prompts, extraEnv,
//! cwd, the sizes of start options and settings, and the permission modes that skip an agent's checks.
//! Each refusal names the field, so a caller can fix its request without guessing.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::CommandError;
use crate::messages::commands::{SettingsPatch, StartOptions};

/// extraEnv keys with these prefixes would let a caller reconfigure the provider itself (credentials, config
/// dirs), so they are refused. The original dropped them with a console warning; here the call fails.
pub const BLOCKED_ENV_PREFIXES: [&str; 4] = ["CLAUDE", "CODEX", "OLLAMA", "ANTHROPIC_"];

/// extraEnv keys (compared in upper case) that change how the agent or a program it runs loads code, which
/// configuration it reads, or where it connects: with one of them a caller could run code of its choosing
/// or read the agent's traffic whatever permission mode the session has.
const BLOCKED_ENV_NAMES: [&str; 48] = [
    // where programs are found and which shell start-up files run
    "PATH",
    "HOME",
    "SHELL",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    "ZDOTDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CONFIG_DIRS",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "GIT_PAGER",
    "BROWSER",
    // interpreters' code loading
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "RUBYLIB",
    "RUBYOPT",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "DOTNET_STARTUP_HOOKS",
    "GLIBC_TUNABLES",
    "GCONV_PATH",
    "LOCPATH",
    // whom TLS and git trust, and how git reaches a remote
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
];

/// Prefixes (upper case) of the same kinds: the dynamic loader, git's own configuration and helper
/// programs, npm's configuration (its registry), where the OpenAI client connects.
const BLOCKED_ENV_NAME_PREFIXES: [&str; 8] = [
    "LD_",
    "DYLD_",
    "GIT_CONFIG",
    "GIT_EXEC_PATH",
    "GIT_PROXY",
    "NPM_CONFIG_",
    "OPENAI_BASE",
    "OPENAI_API_BASE",
];

/// Suffixes (upper case): proxies (`HTTPS_PROXY`, `all_proxy`, ...) and CA bundles (`AWS_CA_BUNDLE`).
const BLOCKED_ENV_NAME_SUFFIXES: [&str; 2] = ["_PROXY", "_CA_BUNDLE"];

/// Start options and settings that are names, paths or modes: a few KiB is plenty, and every one of them
/// ends up on an agent's command line.
pub const MAX_SMALL_TEXT: usize = 4096;

/// Linux refuses a single command-line argument longer than this (`MAX_ARG_STRLEN`, 32 pages), and a
/// system prompt is passed as one: a longer one would make every start fail ("Argument list too long").
pub const MAX_ARGUMENT_BYTES: usize = 128 * 1024 - 1;

/// Permission modes that skip an agent's permission checks: Claude's `bypassPermissions`, Codex's sandbox
/// `danger-full-access` and its `--dangerously-bypass-approvals-and-sandbox` (alias `--yolo`). Compared
/// without case, and without leading dashes.
const BYPASS_PERMISSION_MODES: [&str; 4] = [
    "bypasspermissions",
    "danger-full-access",
    "dangerously-bypass-approvals-and-sandbox",
    "yolo",
];

/// The configured bounds of an `extraEnv`.
#[derive(Debug, Clone, Copy)]
pub struct EnvLimits {
    /// `limits.max_extra_env`: keys.
    pub max_keys: usize,
    /// `limits.max_extra_env_bytes`: keys and values together.
    pub max_bytes: usize,
}

/// Longest project id, in bytes (all allowed characters are ASCII).
pub const MAX_PROJECT_ID: usize = 128;

/// Project ids: 1–128 characters of letters, digits, `.`, `_`, `-`.
pub fn project_id(id: &str) -> Result<(), CommandError> {
    if id.is_empty() || id.len() > MAX_PROJECT_ID {
        return Err(CommandError::invalid(
            "projectId",
            format!("must be 1 to {MAX_PROJECT_ID} characters"),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(CommandError::invalid(
            "projectId",
            format!("may hold only letters, digits, '.', '_' and '-' (found {bad:?})"),
        ));
    }
    Ok(())
}

/// Session ids are `<projectId>-<unix ms>`; anything that could not be one is refused before a lookup.
pub fn session_id(id: &str) -> Result<(), CommandError> {
    let valid = id.len() <= MAX_PROJECT_ID + 21
        && id.rsplit_once('-').is_some_and(|(p, ms)| {
            !p.is_empty() && !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit())
        })
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(CommandError::invalid(
            "sessionId",
            "must be <projectId>-<unix ms>",
        ))
    }
}

/// A prompt must say something and fit the configured limit.
pub fn prompt(field: &str, prompt: &str, max_bytes: u64) -> Result<(), CommandError> {
    if prompt.trim().is_empty() {
        return Err(CommandError::invalid(field, "must not be empty"));
    }
    if prompt.len() as u64 > max_bytes {
        return Err(CommandError::invalid(
            field,
            format!("is {} bytes, over the limit of {max_bytes}", prompt.len()),
        ));
    }
    Ok(())
}

/// Refuses an `extraEnv` that reconfigures the provider (its prefixes) or what the agent loads and where
/// it connects (the names above), is not representable in an environment (a NUL, or `=` in a key), or is
/// over the configured size. The refused keys are all named at once.
pub fn extra_env(
    env: Option<&BTreeMap<String, String>>,
    limits: EnvLimits,
) -> Result<(), CommandError> {
    const FIELD: &str = "options.extraEnv";
    let Some(env) = env else { return Ok(()) };
    if env.len() > limits.max_keys {
        return Err(CommandError::invalid(
            FIELD,
            format!(
                "{} keys, over the limit of {} (limits.max_extra_env)",
                env.len(),
                limits.max_keys
            ),
        ));
    }
    let bytes: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > limits.max_bytes {
        return Err(CommandError::invalid(
            FIELD,
            format!(
                "{bytes} bytes, over the limit of {} (limits.max_extra_env_bytes)",
                limits.max_bytes
            ),
        ));
    }
    if let Some((key, _)) = env
        .iter()
        .find(|(k, v)| k.is_empty() || k.contains(['\0', '=']) || v.contains('\0'))
    {
        return Err(CommandError::invalid(
            FIELD,
            format!("{key:?}: a key must be non-empty without NUL or '=', a value without NUL"),
        ));
    }
    let provider: Vec<&str> = env
        .keys()
        .filter(|k| BLOCKED_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(String::as_str)
        .collect();
    if !provider.is_empty() {
        return Err(CommandError::invalid(
            FIELD,
            format!(
                "provider-prefixed keys are not allowed: {}",
                provider.join(", ")
            ),
        ));
    }
    let loading: Vec<&str> = env
        .keys()
        .filter(|k| changes_loading_or_connection(k))
        .map(String::as_str)
        .collect();
    if !loading.is_empty() {
        return Err(CommandError::invalid(
            FIELD,
            format!(
                "keys that change how programs load or where they connect are not allowed: {}",
                loading.join(", ")
            ),
        ));
    }
    Ok(())
}

fn changes_loading_or_connection(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    BLOCKED_ENV_NAMES.contains(&key.as_str())
        || BLOCKED_ENV_NAME_PREFIXES.iter().any(|p| key.starts_with(p))
        || BLOCKED_ENV_NAME_SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// A permission mode that skips the agent's permission checks is refused unless the provider's
/// configuration allows it (`providers.<name>.allow_bypass_permissions`). `field` names where the mode
/// came from (the start option, or the `permission_mode` setting it fell back to).
pub fn permission_mode(
    field: &str,
    mode: Option<&str>,
    provider: &str,
    allowed: bool,
) -> Result<(), CommandError> {
    let Some(mode) = mode else { return Ok(()) };
    let normal = mode.trim().trim_start_matches('-').to_ascii_lowercase();
    if allowed || !BYPASS_PERMISSION_MODES.contains(&normal.as_str()) {
        return Ok(());
    }
    Err(CommandError::Forbidden {
        field: field.into(),
        message: format!(
            "{mode:?} skips the agent's permission checks; set \
             providers.{provider}.allow_bypass_permissions = true to allow it"
        ),
    })
}

/// A text that must stay under `max` bytes.
fn at_most(field: &str, text: Option<&str>, max: usize) -> Result<(), CommandError> {
    match text {
        Some(t) if t.len() > max => Err(CommandError::invalid(
            field,
            format!("is {} bytes, over the limit of {max}", t.len()),
        )),
        _ => Ok(()),
    }
}

/// The longest system prompt: `limits.max_prompt_bytes`, and never over one command-line argument.
pub fn max_system_prompt(max_prompt_bytes: u64) -> usize {
    usize::try_from(max_prompt_bytes)
        .unwrap_or(usize::MAX)
        .min(MAX_ARGUMENT_BYTES)
}

/// The sizes of a start's text options (cwd and extraEnv have their own rules).
pub fn start_options(o: &StartOptions, max_prompt_bytes: u64) -> Result<(), CommandError> {
    at_most(
        "options.systemPrompt",
        o.system_prompt.as_deref(),
        max_system_prompt(max_prompt_bytes),
    )?;
    for (field, text) in [
        ("options.cwd", &o.cwd),
        ("options.model", &o.model),
        ("options.permissionMode", &o.permission_mode),
        ("options.claudeConfigDir", &o.claude_config_dir),
        ("options.worktreeName", &o.worktree_name),
    ] {
        at_most(field, text.as_deref(), MAX_SMALL_TEXT)?;
    }
    let dirs = o.additional_directories.as_deref().unwrap_or_default();
    if dirs.len() > MAX_ADDITIONAL_DIRECTORIES {
        return Err(CommandError::invalid(
            "options.additionalDirectories",
            format!(
                "{} entries, over the limit of {MAX_ADDITIONAL_DIRECTORIES}",
                dirs.len()
            ),
        ));
    }
    for (i, dir) in dirs.iter().enumerate() {
        at_most(
            &format!("options.additionalDirectories[{i}]"),
            Some(dir),
            MAX_SMALL_TEXT,
        )?;
    }
    Ok(())
}

/// Directories a start may add besides its cwd; each becomes two command-line arguments.
pub const MAX_ADDITIONAL_DIRECTORIES: usize = 64;

/// The most a `provider_settings` setting may hold, as JSON text: it is stored and sent with every
/// settings read.
pub const MAX_PROVIDER_SETTINGS_BYTES: usize = 64 * 1024;

/// The sizes of a settings update: the system prompt template as a system prompt, the other texts small.
pub fn settings(patch: &SettingsPatch, max_prompt_bytes: u64) -> Result<(), CommandError> {
    at_most(
        "system_prompt_template",
        patch
            .system_prompt_template
            .as_ref()
            .and_then(Option::as_deref),
        max_system_prompt(max_prompt_bytes),
    )?;
    at_most(
        "permission_mode",
        patch.permission_mode.as_ref().and_then(Option::as_deref),
        MAX_SMALL_TEXT,
    )?;
    at_most(
        "default_cwd",
        patch.default_cwd.as_ref().and_then(Option::as_deref),
        MAX_SMALL_TEXT,
    )?;
    if let Some(map) = &patch.provider_settings {
        let text = serde_json::to_string(map).unwrap_or_default();
        at_most(
            "provider_settings",
            Some(&text),
            MAX_PROVIDER_SETTINGS_BYTES,
        )?;
    }
    Ok(())
}

/// A working directory must be an existing absolute directory.
pub fn cwd(field: &str, cwd: &str) -> Result<(), CommandError> {
    let path = Path::new(cwd);
    if !path.is_absolute() {
        return Err(CommandError::invalid(
            field,
            format!("{cwd:?} is not an absolute path"),
        ));
    }
    if !path.is_dir() {
        return Err(CommandError::invalid(
            field,
            format!("{cwd:?} is not an existing directory"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: CommandError) -> String {
        match e {
            CommandError::Invalid { field, .. } | CommandError::Forbidden { field, .. } => field,
            other => panic!("not an input error: {other:?}"),
        }
    }

    #[test]
    fn project_ids_follow_the_contract() {
        assert!(project_id("my-app_1.0").is_ok());
        assert!(project_id(&"a".repeat(128)).is_ok());
        assert_eq!(field(project_id("").unwrap_err()), "projectId");
        assert_eq!(
            field(project_id(&"a".repeat(129)).unwrap_err()),
            "projectId"
        );
        assert_eq!(field(project_id("a/b").unwrap_err()), "projectId");
        assert_eq!(field(project_id("ä").unwrap_err()), "projectId");
    }

    #[test]
    fn session_ids_are_project_dash_millis() {
        assert!(session_id("my-app-1700000000000").is_ok());
        assert!(session_id("my-app").is_err());
        assert!(session_id("-17").is_err());
        assert!(session_id("a b-17").is_err());
    }

    #[test]
    fn extra_env_refusal_names_every_refused_key() {
        let mut env = BTreeMap::new();
        env.insert("CLAUDE_CONFIG_DIR".to_string(), "x".to_string());
        env.insert("ANTHROPIC_API_KEY".to_string(), "x".to_string());
        env.insert("OLLAMA_HOST".to_string(), "x".to_string());
        env.insert("CODEX_HOME".to_string(), "x".to_string());
        env.insert("PATH_EXTRA".to_string(), "ok".to_string());
        let msg = extra_env(Some(&env), LIMITS).unwrap_err().to_string();
        for k in [
            "CLAUDE_CONFIG_DIR",
            "ANTHROPIC_API_KEY",
            "OLLAMA_HOST",
            "CODEX_HOME",
        ] {
            assert!(msg.contains(k), "{msg}");
        }
        assert!(!msg.contains("PATH_EXTRA"));
        assert!(msg.starts_with("options.extraEnv"));
        env.retain(|k, _| k == "PATH_EXTRA");
        assert!(extra_env(Some(&env), LIMITS).is_ok());
        // "ANTHROPIC" without the underscore is not a provider prefix in the original list.
        env.insert("ANTHROPICX".to_string(), "x".to_string());
        assert!(extra_env(Some(&env), LIMITS).is_ok());
    }

    const LIMITS: EnvLimits = EnvLimits {
        max_keys: 64,
        max_bytes: 64 * 1024,
    };

    fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn extra_env_refuses_what_changes_loading_or_connections() {
        for key in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "NODE_OPTIONS",
            "NODE_EXTRA_CA_CERTS",
            "HTTPS_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "no_proxy",
            "PATH",
            "HOME",
            "PYTHONPATH",
            "BASH_ENV",
            "ENV",
            "SSL_CERT_FILE",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_GLOBAL",
            "npm_config_registry",
            "AWS_CA_BUNDLE",
            "OPENAI_BASE_URL",
            "GLIBC_TUNABLES",
        ] {
            let e = extra_env(Some(&env_of(&[(key, "x"), ("FINE", "1")])), LIMITS).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("options.extraEnv: "), "{msg}");
            assert!(msg.contains(key) && !msg.contains("FINE"), "{key}: {msg}");
        }
        for fine in [
            "RUST_LOG",
            "GIT_AUTHOR_NAME",
            "TERM",
            "LANG",
            "MY_PATH_HINT",
            "PATHS",
        ] {
            assert!(
                extra_env(Some(&env_of(&[(fine, "x")])), LIMITS).is_ok(),
                "{fine}"
            );
        }
    }

    #[test]
    fn extra_env_keys_and_values_must_fit_an_environment() {
        for (k, v) in [("A\0B", "x"), ("A=B", "x"), ("", "x"), ("A", "x\0y")] {
            let e = extra_env(Some(&env_of(&[(k, v)])), LIMITS).unwrap_err();
            assert_eq!(field(e), "options.extraEnv", "{k:?}={v:?}");
        }
        assert!(extra_env(Some(&env_of(&[("A", "x=y")])), LIMITS).is_ok());
    }

    #[test]
    fn extra_env_is_bounded_in_keys_and_bytes() {
        let many: BTreeMap<String, String> =
            (0..65).map(|i| (format!("K{i}"), "v".into())).collect();
        let msg = extra_env(Some(&many), LIMITS).unwrap_err().to_string();
        assert!(
            msg.contains("65 keys") && msg.contains("limits.max_extra_env"),
            "{msg}"
        );
        let big = env_of(&[("BIG", &"x".repeat(64 * 1024))]);
        let msg = extra_env(Some(&big), LIMITS).unwrap_err().to_string();
        assert!(msg.contains("limits.max_extra_env_bytes"), "{msg}");
    }

    #[test]
    fn bypass_modes_need_the_providers_opt_in() {
        for mode in [
            "bypassPermissions",
            "BypassPermissions",
            "danger-full-access",
            "--dangerously-bypass-approvals-and-sandbox",
            "yolo",
        ] {
            let e =
                permission_mode("options.permissionMode", Some(mode), "claude", false).unwrap_err();
            assert!(matches!(e, CommandError::Forbidden { .. }), "{mode}");
            let msg = e.to_string();
            assert!(msg.starts_with("options.permissionMode: "), "{msg}");
            assert!(
                msg.contains("providers.claude.allow_bypass_permissions"),
                "{msg}"
            );
            assert!(permission_mode("options.permissionMode", Some(mode), "claude", true).is_ok());
        }
        for mode in [None, Some("acceptEdits"), Some("plan"), Some("default")] {
            assert!(permission_mode("permission_mode", mode, "codex", false).is_ok());
        }
    }

    #[test]
    fn start_options_and_settings_are_bounded_naming_the_field() {
        let o = StartOptions {
            system_prompt: Some("x".repeat(200 * 1024)),
            ..StartOptions::default()
        };
        assert_eq!(
            field(start_options(&o, 1024 * 1024).unwrap_err()),
            "options.systemPrompt"
        );
        let o = StartOptions {
            system_prompt: Some("x".repeat(2000)),
            ..StartOptions::default()
        };
        assert_eq!(
            field(start_options(&o, 1000).unwrap_err()),
            "options.systemPrompt"
        );
        assert!(start_options(&o, 4000).is_ok());
        let o = StartOptions {
            model: Some("m".repeat(MAX_SMALL_TEXT + 1)),
            ..StartOptions::default()
        };
        assert_eq!(field(start_options(&o, 4000).unwrap_err()), "options.model");

        let patch = SettingsPatch {
            system_prompt_template: Some(Some("x".repeat(200 * 1024))),
            ..SettingsPatch::default()
        };
        assert_eq!(
            field(settings(&patch, 1024 * 1024).unwrap_err()),
            "system_prompt_template"
        );
        let patch = SettingsPatch {
            default_cwd: Some(Some("/".repeat(MAX_SMALL_TEXT + 1))),
            ..SettingsPatch::default()
        };
        assert_eq!(field(settings(&patch, 1024).unwrap_err()), "default_cwd");
        let patch = SettingsPatch {
            system_prompt_template: Some(Some("be brief".into())),
            permission_mode: Some(None),
            ..SettingsPatch::default()
        };
        assert!(settings(&patch, 1024).is_ok());
    }

    #[test]
    fn prompts_must_say_something_within_the_limit() {
        assert_eq!(field(prompt("prompt", "  \n", 10).unwrap_err()), "prompt");
        assert_eq!(
            field(prompt("prompt", "hello world", 5).unwrap_err()),
            "prompt"
        );
        assert!(prompt("prompt", "hi", 5).is_ok());
    }

    #[test]
    fn cwd_must_be_an_existing_absolute_directory() {
        assert!(cwd("options.cwd", "relative/dir").is_err());
        assert!(cwd("options.cwd", "/definitely/not/here").is_err());
        assert!(cwd("options.cwd", &std::env::temp_dir().to_string_lossy()).is_ok());
    }
}
