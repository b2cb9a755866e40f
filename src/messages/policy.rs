//! A project's agent policy (contract: "Agents under control"): how tool permissions are decided, when an
//! unanswered one is denied, what the project may spend, and what a stall does. What a project stores is
//! only what it set (`StoredPolicy`, every field optional); the policy in force fills the rest from the
//! configured defaults (`[policy]`), so a changed default reaches every project that did not override it.
//!
//! `PUT /v1/projects/{id}/policy` takes a `PolicyPatch`: a field left out stays as it is, a field set to
//! `null` returns to the default. Each field is checked on its own and a refusal names it.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::CommandError;

/// How a Claude session's tool-permission requests are decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The permission mode decides, as without a policy.
    #[default]
    Auto,
    /// Each request waits for an answer over the API (`GET /v1/approvals`).
    Ask,
}

/// What a stalled session (no progress for `stall.after`) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StallAction {
    /// A warning notification and attention; the agent goes on.
    #[default]
    Notify,
    /// The agent is stopped with status error "Stalled: no progress for <N> min".
    Interrupt,
    /// The agent is stopped and resumed with its provider's own resume and a nudge prompt
    /// (`policy.stall_nudge`); after `policy.stall_resumes` resumes with no progress between them, it is
    /// stopped as with `interrupt`.
    Resume,
}

/// `[policy]`: the defaults of every project's policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyDefaults {
    pub approvals: ApprovalMode,
    #[serde(with = "humantime_serde")]
    pub approval_timeout: Duration,
    /// Most a session may spend, in USD; none: no limit.
    pub session_usd: Option<f64>,
    /// Most a project may spend in one UTC day, in USD; none: no limit.
    pub daily_usd: Option<f64>,
    pub stall_action: StallAction,
    /// The prompt a session stalled under `stall.action = "resume"` is resumed with.
    pub stall_nudge: String,
    /// How many stall resumes in a row, with no progress between them, before a stall interrupts instead.
    pub stall_resumes: u32,
}

/// The built-in `policy.stall_nudge`.
pub const STALL_NUDGE: &str =
    "You have made no progress for a while. If something blocks you, say what it is; \
otherwise continue with the task.";

impl Default for PolicyDefaults {
    fn default() -> Self {
        PolicyDefaults {
            approvals: ApprovalMode::Auto,
            approval_timeout: Duration::from_secs(600),
            session_usd: None,
            daily_usd: None,
            stall_action: StallAction::Notify,
            stall_nudge: STALL_NUDGE.into(),
            stall_resumes: 3,
        }
    }
}

impl PolicyDefaults {
    /// Refuses defaults no project could live with (a zero timeout, a negative budget).
    pub fn check(&self) -> Result<(), String> {
        if self.stall_nudge.trim().is_empty() {
            return Err("policy.stall_nudge: must not be empty".into());
        }
        if self.approval_timeout.is_zero() {
            return Err("policy.approval_timeout: must be above zero".into());
        }
        for (key, v) in [
            ("policy.session_usd", self.session_usd),
            ("policy.daily_usd", self.daily_usd),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(format!("{key}: must be a number above 0"));
            }
        }
        Ok(())
    }
}

/// What one project set; `None` means the configured default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPolicy {
    pub approvals: Option<ApprovalMode>,
    #[serde(with = "humantime_serde", default)]
    pub approval_timeout: Option<Duration>,
    pub session_usd: Option<f64>,
    pub daily_usd: Option<f64>,
    #[serde(with = "humantime_serde", default)]
    pub stall_after: Option<Duration>,
    pub stall_action: Option<StallAction>,
}

/// The budget in force; a limit of `null` is none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub session_usd: Option<f64>,
    pub daily_usd: Option<f64>,
}

/// The stall rule in force.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stall {
    /// A humantime duration ("15m").
    #[serde(serialize_with = "human")]
    #[schema(value_type = String, example = "15m")]
    pub after: Duration,
    pub action: StallAction,
}

/// The policy in force for a project: what it set, the configured defaults for the rest.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub approvals: ApprovalMode,
    #[serde(serialize_with = "human")]
    #[schema(value_type = String, example = "10m")]
    pub approval_timeout: Duration,
    pub budget: Budget,
    pub stall: Stall,
}

fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

impl Policy {
    /// `stored` over `defaults`; `stall_after` is the configured `timers.stall_after`.
    pub fn resolve(
        stored: &StoredPolicy,
        defaults: &PolicyDefaults,
        stall_after: Duration,
    ) -> Policy {
        Policy {
            approvals: stored.approvals.unwrap_or(defaults.approvals),
            approval_timeout: stored.approval_timeout.unwrap_or(defaults.approval_timeout),
            budget: Budget {
                session_usd: stored.session_usd.or(defaults.session_usd),
                daily_usd: stored.daily_usd.or(defaults.daily_usd),
            },
            stall: Stall {
                after: stored.stall_after.unwrap_or(stall_after),
                action: stored.stall_action.unwrap_or(defaults.stall_action),
            },
        }
    }
}

/// A field of a patch: absent (unchanged), `null` (back to the default) or a value.
type Field<T> = Option<Option<T>>;

/// Present fields become `Some`, so that `null` (`Some(None)`) differs from absent (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Field<T>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `PUT /v1/projects/{projectId}/policy`: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ApprovalMode>)]
    pub approvals: Field<ApprovalMode>,
    /// A humantime duration ("10m"), above zero.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "10m")]
    pub approval_timeout: Field<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<BudgetPatch>)]
    pub budget: Field<BudgetPatch>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<StallPatch>)]
    pub stall: Field<StallPatch>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetPatch {
    /// USD above 0.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub session_usd: Field<serde_json::Value>,
    /// USD above 0, per UTC day.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub daily_usd: Field<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StallPatch {
    /// A humantime duration ("15m"), above zero.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "15m")]
    pub after: Field<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<StallAction>)]
    pub action: Field<StallAction>,
}

fn duration(field: &str, text: &str) -> Result<Duration, CommandError> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| CommandError::invalid(field, format!("not a duration ({e}), e.g. \"10m\"")))?;
    if d.is_zero() {
        return Err(CommandError::invalid(field, "must be above zero"));
    }
    Ok(d)
}

fn usd(field: &str, v: &serde_json::Value) -> Result<f64, CommandError> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x > 0.0 && x <= 1e9 => Ok(x),
        _ => Err(CommandError::invalid(
            field,
            format!("must be a number of USD above 0, got {v}"),
        )),
    }
}

/// Sets `slot` from a patch field: absent keeps it, null clears it, a value is checked by `parse`.
fn apply<T, U>(
    slot: &mut Option<U>,
    field: Field<T>,
    parse: impl FnOnce(T) -> Result<U, CommandError>,
) -> Result<(), CommandError> {
    match field {
        None => {}
        Some(None) => *slot = None,
        Some(Some(v)) => *slot = Some(parse(v)?),
    }
    Ok(())
}

impl PolicyPatch {
    /// `stored` with this patch applied; the first field that does not pass is named in the error and
    /// nothing changes.
    pub fn apply_to(self, stored: &StoredPolicy) -> Result<StoredPolicy, CommandError> {
        let mut next = stored.clone();
        apply(&mut next.approvals, self.approvals, Ok)?;
        apply(&mut next.approval_timeout, self.approval_timeout, |t| {
            duration("approvalTimeout", &t)
        })?;
        match self.budget {
            None => {}
            Some(None) => {
                next.session_usd = None;
                next.daily_usd = None;
            }
            Some(Some(b)) => {
                apply(&mut next.session_usd, b.session_usd, |v| {
                    usd("budget.sessionUsd", &v)
                })?;
                apply(&mut next.daily_usd, b.daily_usd, |v| {
                    usd("budget.dailyUsd", &v)
                })?;
            }
        }
        match self.stall {
            None => {}
            Some(None) => {
                next.stall_after = None;
                next.stall_action = None;
            }
            Some(Some(s)) => {
                apply(&mut next.stall_after, s.after, |t| {
                    duration("stall.after", &t)
                })?;
                apply(&mut next.stall_action, s.action, Ok)?;
            }
        }
        Ok(next)
    }
}

/// `[pricing.<model>]`: what a model costs, for providers that report tokens without a price (Codex).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million input tokens (cached input is counted at this price too).
    pub input_per_mtok: f64,
    /// USD per million output tokens.
    pub output_per_mtok: f64,
}

impl Price {
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_mtok + output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

/// Built-in prices (USD per million tokens, OpenAI's list prices); `[pricing.<model>]` overrides them and
/// adds others. Listed in config/default.toml.
pub const DEFAULT_PRICES: &[(&str, f64, f64)] = &[
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-codex", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("o3", 2.0, 8.0),
    ("o4-mini", 1.1, 4.4),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: &str) -> PolicyPatch {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn absent_keeps_null_resets_and_values_are_checked_field_by_field() {
        let stored = StoredPolicy {
            approvals: Some(ApprovalMode::Ask),
            daily_usd: Some(5.0),
            ..StoredPolicy::default()
        };
        let next = patch(r#"{"budget": {"sessionUsd": 2.5}}"#)
            .apply_to(&stored)
            .unwrap();
        assert_eq!(next.approvals, Some(ApprovalMode::Ask));
        assert_eq!((next.session_usd, next.daily_usd), (Some(2.5), Some(5.0)));
        let next = patch(r#"{"approvals": null, "budget": {"dailyUsd": null}}"#)
            .apply_to(&next)
            .unwrap();
        assert_eq!((next.approvals, next.daily_usd), (None, None));
        assert_eq!(next.session_usd, Some(2.5));

        for (body, field) in [
            (r#"{"budget": {"sessionUsd": -1}}"#, "budget.sessionUsd"),
            (r#"{"budget": {"dailyUsd": "lots"}}"#, "budget.dailyUsd"),
            (r#"{"approvalTimeout": "soon"}"#, "approvalTimeout"),
            (r#"{"stall": {"after": "0s"}}"#, "stall.after"),
        ] {
            let err = patch(body).apply_to(&stored).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{field}: ")), "{body}: {err}");
        }
        let next = patch(r#"{"stall": {"action": "resume"}}"#)
            .apply_to(&stored)
            .unwrap();
        assert_eq!(next.stall_action, Some(StallAction::Resume));
    }

    #[test]
    fn the_policy_in_force_fills_what_the_project_left_from_the_defaults() {
        let defaults = PolicyDefaults {
            daily_usd: Some(20.0),
            ..PolicyDefaults::default()
        };
        let stored = StoredPolicy {
            session_usd: Some(1.0),
            stall_action: Some(StallAction::Interrupt),
            ..StoredPolicy::default()
        };
        let p = Policy::resolve(&stored, &defaults, Duration::from_secs(900));
        assert_eq!(p.budget.session_usd, Some(1.0));
        assert_eq!(p.budget.daily_usd, Some(20.0));
        assert_eq!(p.stall.after, Duration::from_secs(900));
        assert_eq!(p.stall.action, StallAction::Interrupt);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["approvalTimeout"], "10m");
        assert_eq!(json["stall"]["after"], "15m");
        assert_eq!(json["approvals"], "auto");
    }

    #[test]
    fn a_price_is_per_million_tokens() {
        let p = Price {
            input_per_mtok: 1.25,
            output_per_mtok: 10.0,
        };
        assert!((p.cost(1_000_000, 100_000) - 2.25).abs() < 1e-12);
    }
}
