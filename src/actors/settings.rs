//! The settings the original kept in its settings table: how they are read from storage, patched and
//! written back, and the shared snapshot every start reads. Keys keep the original's snake_case names;
//! values are stored as text (JSON for provider_settings), as the original stored them.
//!
//! The supervisor alone changes them, one update at a time, and replaces the snapshot once an update is
//! stored, before it answers. Readers (each start, `GET /v1/settings`) take the snapshot without a round
//! trip to the supervisor: a start costs no message to it, and a read after an answered update sees it.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, RetentionConfig};
use crate::messages::commands::{Settings, SettingsPatch};

pub const PERMISSION_MODE: &str = "permission_mode";
pub const SYSTEM_PROMPT_TEMPLATE: &str = "system_prompt_template";
pub const DEFAULT_CWD: &str = "default_cwd";
pub const PROVIDER_SETTINGS: &str = "provider_settings";
pub const RETENTION_COUNT: &str = "session_retention_count";
pub const RETENTION_DAYS: &str = "session_retention_days";

/// The configured defaults, overridden by whatever storage holds. Unreadable stored values fall back to the
/// defaults, as the original's `parseInt(...) || 5` did.
pub fn load(config: &Config, stored: &[(String, String)]) -> Settings {
    let mut s = Settings {
        permission_mode: None,
        system_prompt_template: None,
        default_cwd: None,
        provider_settings: serde_json::Map::new(),
        session_retention_count: config.retention.count,
        session_retention_days: config.retention.days,
    };
    let text = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    for (key, value) in stored {
        match key.as_str() {
            PERMISSION_MODE => s.permission_mode = text(value),
            SYSTEM_PROMPT_TEMPLATE => s.system_prompt_template = text(value),
            DEFAULT_CWD => s.default_cwd = text(value),
            PROVIDER_SETTINGS => {
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(value) {
                    s.provider_settings = map;
                }
            }
            RETENTION_COUNT => {
                if let Ok(n) = value.trim().parse::<i64>() {
                    s.session_retention_count = RetentionConfig::clamped(n, 1).count;
                }
            }
            RETENTION_DAYS => {
                if let Ok(n) = value.trim().parse::<i64>() {
                    s.session_retention_days = RetentionConfig::clamped(1, n).days;
                }
            }
            _ => {}
        }
    }
    s
}

/// How old a session retention lets go, in milliseconds: `session_retention_days`.
pub fn retention_age_ms(s: &Settings) -> i64 {
    i64::from(s.session_retention_days) * 24 * 60 * 60 * 1000
}

/// The settings as last stored, shared by the supervisor (the one writer) and the engine (readers): an
/// `Arc` swapped atomically (arc-swap), so a reader never waits for a lock and never blocks the writer.
#[derive(Clone)]
pub struct SharedSettings(Arc<ArcSwap<Settings>>);

impl SharedSettings {
    pub fn new(settings: Settings) -> SharedSettings {
        SharedSettings(Arc::new(ArcSwap::from_pointee(settings)))
    }

    /// The settings now.
    pub fn get(&self) -> Arc<Settings> {
        self.0.load_full()
    }

    /// Replaces them (the supervisor, once an update is stored).
    pub fn set(&self, settings: Settings) {
        self.0.store(Arc::new(settings));
    }
}

/// The settings after `patch`, and the (key, stored text) pairs that changed. Retention is clamped like
/// the original's `setRetentionConfig`.
pub fn apply(current: &Settings, patch: SettingsPatch) -> (Settings, Vec<(String, String)>) {
    let mut next = current.clone();
    let mut writes = Vec::new();
    let mut text = |key: &str, slot: &mut Option<String>, value: Option<Option<String>>| {
        if let Some(v) = value {
            let v = v.filter(|s| !s.is_empty());
            writes.push((key.to_owned(), v.clone().unwrap_or_default()));
            *slot = v;
        }
    };
    text(
        PERMISSION_MODE,
        &mut next.permission_mode,
        patch.permission_mode,
    );
    text(
        SYSTEM_PROMPT_TEMPLATE,
        &mut next.system_prompt_template,
        patch.system_prompt_template,
    );
    text(DEFAULT_CWD, &mut next.default_cwd, patch.default_cwd);
    if let Some(map) = patch.provider_settings {
        writes.push((
            PROVIDER_SETTINGS.to_owned(),
            serde_json::Value::Object(map.clone()).to_string(),
        ));
        next.provider_settings = map;
    }
    if let Some(n) = patch.session_retention_count {
        next.session_retention_count = RetentionConfig::clamped(n, 1).count;
        writes.push((
            RETENTION_COUNT.to_owned(),
            next.session_retention_count.to_string(),
        ));
    }
    if let Some(n) = patch.session_retention_days {
        next.session_retention_days = RetentionConfig::clamped(1, n).days;
        writes.push((
            RETENTION_DAYS.to_owned(),
            next.session_retention_days.to_string(),
        ));
    }
    (next, writes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_settings_override_configured_defaults() {
        let config = Config::default();
        let s = load(&config, &[]);
        assert_eq!(
            (s.session_retention_count, s.session_retention_days),
            (5, 30)
        );
        let stored = vec![
            (RETENTION_COUNT.to_string(), "7".to_string()),
            (RETENTION_DAYS.to_string(), "garbage".to_string()),
            (
                PROVIDER_SETTINGS.to_string(),
                r#"{"claude":{"defaultModel":"m"}}"#.to_string(),
            ),
            (PERMISSION_MODE.to_string(), "plan".to_string()),
        ];
        let s = load(&config, &stored);
        assert_eq!(
            (s.session_retention_count, s.session_retention_days),
            (7, 30)
        );
        assert_eq!(s.provider_settings["claude"]["defaultModel"], "m");
        assert_eq!(s.permission_mode.as_deref(), Some("plan"));
    }

    #[test]
    fn patches_clamp_retention_and_report_what_to_store() {
        let s = load(&Config::default(), &[]);
        let patch: SettingsPatch = serde_json::from_str(
            r#"{"session_retention_count": 99, "session_retention_days": "0", "default_cwd": null}"#,
        )
        .unwrap();
        let (next, writes) = apply(&s, patch);
        assert_eq!(
            (next.session_retention_count, next.session_retention_days),
            (50, 1)
        );
        assert!(writes.contains(&(RETENTION_COUNT.into(), "50".into())));
        assert!(writes.contains(&(RETENTION_DAYS.into(), "1".into())));
        assert!(writes.contains(&(DEFAULT_CWD.into(), String::new())));
        assert_eq!(writes.len(), 3, "absent keys are left alone");
    }
}
