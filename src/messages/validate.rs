//! Input rules shared by every entrance (HTTP, in-process handle, load generator): ids, prompts, extraEnv
//! and cwd. Each refusal names the field, so a caller can fix its request without guessing.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::CommandError;

/// extraEnv keys with these prefixes would let a caller reconfigure the provider itself (credentials, config
/// dirs), so they are refused. The original dropped them with a console warning; here the call fails.
pub const BLOCKED_ENV_PREFIXES: [&str; 4] = ["CLAUDE", "CODEX", "OLLAMA", "ANTHROPIC_"];

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

/// Refuses every provider-prefixed key at once, naming them all.
pub fn extra_env(env: Option<&BTreeMap<String, String>>) -> Result<(), CommandError> {
    let Some(env) = env else { return Ok(()) };
    let refused: Vec<&str> = env
        .keys()
        .filter(|k| BLOCKED_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(String::as_str)
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(CommandError::invalid(
            "options.extraEnv",
            format!(
                "provider-prefixed keys are not allowed: {}",
                refused.join(", ")
            ),
        ))
    }
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
            CommandError::Invalid { field, .. } => field,
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
        let msg = extra_env(Some(&env)).unwrap_err().to_string();
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
        assert!(extra_env(Some(&env)).is_ok());
        // "ANTHROPIC" without the underscore is not a provider prefix in the original list.
        env.insert("ANTHROPICX".to_string(), "x".to_string());
        assert!(extra_env(Some(&env)).is_ok());
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
