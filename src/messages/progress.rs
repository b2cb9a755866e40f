//! What a batch of an agent's raw messages says about its progress: the stall clock and health count only
//! what moves the work forward (contract: "Agents under control"), so a provider retrying its API, or
//! repeating an error, keeps a session alive in the eyes of a reader but not busy in the eyes of health.

use crate::messages::wire::RawMessage;

/// Raw kinds that move the work forward: the model said or thought something, or a tool ran.
const PROGRESS_KINDS: [&str; 4] = ["text", "thinking", "tool_call", "tool_result"];

/// What one batch says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// Something in the batch moved the work forward.
    pub progress: bool,
    /// The provider is retrying, and why ("401 authentication_failed"): the last retry of the batch
    /// after its last progress, if any.
    pub retrying: Option<String>,
}

/// Reads a batch in order: a retry after the last progress means the agent is retrying now.
pub fn signals(raws: &[RawMessage]) -> Signals {
    let mut out = Signals::default();
    for raw in raws {
        if PROGRESS_KINDS.contains(&raw.kind.as_str()) {
            out.progress = true;
            out.retrying = None;
        } else if raw.kind == "retry" {
            let reason = raw
                .content
                .get("reason")
                .or_else(|| raw.content.get("message"))
                .and_then(|r| r.as_str())
                .filter(|r| !r.is_empty())
                .unwrap_or("unknown");
            out.retrying = Some(reason.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(kind: &str, content: serde_json::Value) -> RawMessage {
        RawMessage {
            id: kind.into(),
            kind: kind.into(),
            parent_id: None,
            content: content.into(),
            timestamp: 1,
        }
    }

    #[test]
    fn retries_errors_and_status_are_not_progress() {
        let batch = [
            raw("init", json!({})),
            raw("status", json!({})),
            raw("error", json!({"message": "x"})),
            raw("retry", json!({"reason": "401 authentication_failed"})),
        ];
        assert_eq!(
            signals(&batch),
            Signals {
                progress: false,
                retrying: Some("401 authentication_failed".into())
            }
        );
    }

    #[test]
    fn progress_after_a_retry_ends_the_retrying() {
        let batch = [
            raw("retry", json!({"message": "Reconnecting... 1/5"})),
            raw("text", json!({"text": "hi"})),
        ];
        assert_eq!(
            signals(&batch),
            Signals {
                progress: true,
                retrying: None
            }
        );
        assert_eq!(
            signals(&[raw("retry", json!({"message": "Reconnecting... 1/5"}))]).retrying,
            Some("Reconnecting... 1/5".into())
        );
    }
}
