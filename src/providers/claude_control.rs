//! Claude Code's control protocol, the part a headless host must speak when the agent runs with
//! `--permission-prompt-tool stdio`: the agent writes `control_request` lines on stdout and waits for a
//! `control_response` line on stdin with the same `request_id`.
//!
//! ```text
//! ← {"type":"control_request","request_id":"r1","request":{"subtype":"can_use_tool","tool_name":"Bash",
//!    "input":{"command":"rm -rf build"},"permission_suggestions":[...],"tool_use_id":"toolu_1"}}
//! → {"type":"control_response","response":{"subtype":"success","request_id":"r1",
//!    "response":{"behavior":"allow","updatedInput":{"command":"rm -rf build"}}}}
//! → {"type":"control_response","response":{"subtype":"success","request_id":"r1",
//!    "response":{"behavior":"deny","message":"not on this machine"}}}
//! ← {"type":"control_cancel_request","request_id":"r1"}          (the agent no longer waits)
//! ```
//!
//! An allow always carries `updatedInput` (the requested input when the answer changes nothing), as the
//! Agent SDKs send it. Every other request subtype (`hook_callback`, `mcp_message`, anything newer) is
//! answered at once with `{"subtype":"error","request_id",…,"error":"…"}`, so the agent is never left
//! waiting for an answer this host will not give. Each permission request is answered from its own task,
//! so two at once (parallel tool calls) wait independently while the stream goes on being read.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::permissions::{Decision, PermissionRequest, Permissions};

/// Whether a stdout line may be part of the control protocol (cheap test before parsing it twice).
pub(crate) fn may_be_control(line: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"control_";
    line.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// Answers one session's control requests on its agent's stdin.
pub(crate) struct ControlChannel {
    pub(crate) session_id: String,
    /// Lines for the agent's stdin (written between prompts by the stdin writer).
    pub(crate) stdin: mpsc::Sender<Vec<u8>>,
    /// Who decides permissions; `None`: every permission request is refused as an error (the agent was
    /// not started with the stdio permission channel, so it should not ask).
    pub(crate) permissions: Option<Arc<dyn Permissions>>,
}

impl ControlChannel {
    /// Handles `line` if it is a control message; answers whether it was one (then it is not shown).
    pub(crate) fn handle(&self, line: &Value) -> bool {
        match line.get("type").and_then(Value::as_str) {
            Some("control_request") => {
                self.request(line);
                true
            }
            Some("control_cancel_request") => {
                if let (Some(p), Some(id)) = (&self.permissions, request_id(line)) {
                    p.withdraw(&self.session_id, &id);
                }
                true
            }
            // Answers to requests this host never sends.
            Some("control_response") => true,
            _ => false,
        }
    }

    fn request(&self, line: &Value) {
        let Some(request_id) = request_id(line) else {
            tracing::warn!(session = %self.session_id, "control_request without a request_id ignored");
            return;
        };
        let request = line.get("request").cloned().unwrap_or(Value::Null);
        let subtype = request.get("subtype").and_then(Value::as_str).unwrap_or("");
        let permissions = match (subtype, &self.permissions) {
            ("can_use_tool", Some(p)) => p.clone(),
            ("can_use_tool", None) => {
                self.send(error(
                    &request_id,
                    "this host has no permission prompt for the session",
                ));
                return;
            }
            (other, _) => {
                self.send(error(
                    &request_id,
                    &format!("agent-store does not handle control requests of subtype {other:?}"),
                ));
                return;
            }
        };
        let input = request.get("input").cloned().unwrap_or_else(|| json!({}));
        let ask = PermissionRequest {
            session_id: self.session_id.clone(),
            request_id: request_id.clone(),
            tool_name: request
                .get("tool_name")
                .and_then(Value::as_str)
                .unwrap_or("tool")
                .to_owned(),
            input: input.clone(),
        };
        let stdin = self.stdin.clone();
        tokio::spawn(async move {
            let decision = permissions.ask(ask).await;
            // The agent may be gone by now; then nobody waits for the answer.
            let _ = stdin.send(answer(&request_id, decision, input)).await;
        });
    }

    fn send(&self, line: Vec<u8>) {
        if self.stdin.try_send(line).is_err() {
            tracing::warn!(session = %self.session_id, "agent stdin full or closed; control answer dropped");
        }
    }
}

fn request_id(line: &Value) -> Option<String> {
    match line.get("request_id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn line_of(v: Value) -> Vec<u8> {
    let mut line = v.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// The `control_response` line for a permission decision.
pub(crate) fn answer(request_id: &str, decision: Decision, requested: Value) -> Vec<u8> {
    let response = match decision {
        Decision::Allow { updated_input } => json!({
            "behavior": "allow",
            "updatedInput": updated_input.unwrap_or(requested),
        }),
        Decision::Deny { message } => json!({"behavior": "deny", "message": message}),
    };
    line_of(json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    }))
}

/// The `control_response` line refusing a request.
pub(crate) fn error(request_id: &str, message: &str) -> Vec<u8> {
    line_of(json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": message},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: Vec<u8>) -> Value {
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn an_allow_carries_the_input_and_a_deny_its_message() {
        let v = parse(answer(
            "r1",
            Decision::Allow {
                updated_input: None,
            },
            json!({"command": "ls"}),
        ));
        assert_eq!(v["type"], "control_response");
        assert_eq!(v["response"]["subtype"], "success");
        assert_eq!(v["response"]["request_id"], "r1");
        assert_eq!(v["response"]["response"]["behavior"], "allow");
        assert_eq!(v["response"]["response"]["updatedInput"]["command"], "ls");
        let v = parse(answer(
            "r2",
            Decision::Deny {
                message: "no".into(),
            },
            json!({}),
        ));
        assert_eq!(
            v["response"]["response"],
            json!({"behavior": "deny", "message": "no"})
        );
    }

    #[tokio::test]
    async fn other_subtypes_are_refused_at_once_and_not_shown() {
        let (tx, mut rx) = mpsc::channel(4);
        let channel = ControlChannel {
            session_id: "p-1".into(),
            stdin: tx,
            permissions: None,
        };
        let line = json!({"type": "control_request", "request_id": "h1",
            "request": {"subtype": "hook_callback", "callback_id": "x"}});
        assert!(channel.handle(&line));
        let v = parse(rx.recv().await.unwrap());
        assert_eq!(v["response"]["subtype"], "error");
        assert_eq!(v["response"]["request_id"], "h1");
        assert!(v["response"]["error"]
            .as_str()
            .unwrap()
            .contains("hook_callback"));
        assert!(!channel.handle(&json!({"type": "assistant"})));
        assert!(may_be_control(br#"{"type":"control_request"}"#));
        assert!(!may_be_control(br#"{"type":"assistant"}"#));
    }
}
