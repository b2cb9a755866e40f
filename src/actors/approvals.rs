//! Pending tool-permission requests (contract: "Agents under control", approvals): what agents asked and
//! nobody has answered yet, oldest first. A request becomes a `session.approval` live event and health
//! attention "awaiting approval"; its answer (over the API, or a denial at the project's
//! `approvalTimeout`) goes back to the waiting runner, becomes `session.approval.resolved` and a system
//! message in the session ("Allowed Bash: rm -rf build", "Denied Bash: <reason>").
//!
//! Pending requests live in memory only: they last as long as the agent process that waits for them.
//! When it ends (stopped, crashed, the service restarted), its requests are withdrawn; asking again is
//! the agent's business once it runs again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::control::Control;

use super::arbiters::project_of;
use crate::messages::commands::LiveEvent;
use crate::messages::project::SetAwaiting;
use crate::messages::wire::{now_ms, UnixMs};
use crate::providers::permissions::{Decision, PermissionRequest, Permissions};

/// A pending tool-permission request, as `GET /v1/approvals` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub session_id: String,
    pub project_id: String,
    pub request_id: String,
    pub tool_name: String,
    /// The tool's input as the agent asked for it.
    #[schema(value_type = Object)]
    pub input: Value,
    #[schema(value_type = i64)]
    pub created_at: UnixMs,
}

struct Pending {
    approval: Approval,
    answer: oneshot::Sender<Decision>,
}

/// Why an answer found nothing to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPending {
    /// Unknown, already answered, or withdrawn.
    Unknown,
}

/// The pending requests, in the order they were asked.
#[derive(Default)]
pub struct Approvals {
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    next: u64,
    pending: BTreeMap<u64, Pending>,
}

impl Approvals {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pending requests, oldest first; of one project when given.
    pub fn list(&self, project_id: Option<&str>) -> Vec<Approval> {
        self.book()
            .pending
            .values()
            .filter(|p| project_id.is_none_or(|id| p.approval.project_id == id))
            .map(|p| p.approval.clone())
            .collect()
    }

    /// How many requests of the session wait for an answer.
    pub(crate) fn count(&self, session_id: &str) -> usize {
        self.book()
            .pending
            .values()
            .filter(|p| p.approval.session_id == session_id)
            .count()
    }

    fn insert(&self, approval: Approval, answer: oneshot::Sender<Decision>) {
        let mut book = self.book();
        book.next += 1;
        let key = book.next;
        book.pending.insert(key, Pending { approval, answer });
    }

    fn take(&self, session_id: &str, request_id: &str) -> Option<Pending> {
        let mut book = self.book();
        let key = book
            .pending
            .iter()
            .find(|(_, p)| {
                p.approval.session_id == session_id && p.approval.request_id == request_id
            })
            .map(|(k, _)| *k)?;
        book.pending.remove(&key)
    }

    fn take_session(&self, session_id: &str) -> Vec<Pending> {
        let mut book = self.book();
        let keys: Vec<u64> = book
            .pending
            .iter()
            .filter(|(_, p)| p.approval.session_id == session_id)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| book.pending.remove(&k))
            .collect()
    }
}

/// What a tool call was about, in a few words: a command, a path, else its input cut short.
fn gist(tool: &str, input: &Value) -> String {
    let text = ["command", "file_path", "path", "url", "pattern"]
        .iter()
        .find_map(|k| input.get(*k).and_then(Value::as_str))
        .map_or_else(|| input.to_string(), str::to_owned);
    let cut: String = text.chars().take(200).collect();
    let ellipsis = if cut.len() < text.len() { "…" } else { "" };
    format!("{tool}: {cut}{ellipsis}")
}

impl Control {
    /// Registers a request and waits for its answer, or denies it at the project's `approvalTimeout`.
    pub async fn ask_permission(&self, request: PermissionRequest) -> Decision {
        let project_id = project_of(&request.session_id).to_owned();
        let timeout = self.policy(&project_id).approval_timeout;
        let approval = Approval {
            session_id: request.session_id.clone(),
            project_id: project_id.clone(),
            request_id: request.request_id.clone(),
            tool_name: request.tool_name,
            input: request.input,
            created_at: now_ms(),
        };
        let (tx, mut rx) = oneshot::channel();
        self.publish(LiveEvent::Control {
            project_id: project_id.clone(),
            event: "session.approval",
            data: serde_json::to_value(&approval).unwrap_or_default(),
        });
        self.approvals.insert(approval, tx);
        self.awaiting_changed(&request.session_id).await;
        match tokio::time::timeout(timeout, &mut rx).await {
            Ok(Ok(decision)) => decision,
            // Withdrawn (the agent cancelled it or is gone): nobody reads this answer.
            Ok(Err(_)) => Decision::Deny {
                message: "withdrawn".into(),
            },
            Err(_) => {
                let message = format!(
                    "no answer within {} (approvalTimeout)",
                    humantime::format_duration(timeout)
                );
                let decision = Decision::Deny { message };
                match self.resolve(
                    &request.session_id,
                    &request.request_id,
                    decision,
                    "timeout",
                ) {
                    Ok(()) => {}
                    // Answered at the same moment: that answer stands.
                    Err(NotPending::Unknown) => {}
                }
                rx.await.unwrap_or(Decision::Deny {
                    message: "withdrawn".into(),
                })
            }
        }
    }

    /// Answers a pending request; `by` says who ("api", "timeout").
    pub fn resolve(
        &self,
        session_id: &str,
        request_id: &str,
        decision: Decision,
        by: &str,
    ) -> Result<(), NotPending> {
        let pending = self
            .approvals
            .take(session_id, request_id)
            .ok_or(NotPending::Unknown)?;
        let a = &pending.approval;
        let (word, text) = match &decision {
            Decision::Allow { .. } => {
                ("allow", format!("Allowed {}", gist(&a.tool_name, &a.input)))
            }
            Decision::Deny { message } => ("deny", format!("Denied {}: {message}", a.tool_name)),
        };
        let metric = if by == "timeout" { "timeout" } else { word };
        self.metrics.approvals.with_label_values(&[metric]).inc();
        self.system_message(
            session_id,
            format!("{session_id}-approval-{request_id}"),
            text,
        );
        self.publish_resolved(a, word, by);
        // The runner may be gone (then `ended` withdraws the rest); nothing waits for this answer then.
        let _ = pending.answer.send(decision);
        self.spawn_awaiting(session_id);
        Ok(())
    }

    /// `session.approval.resolved`: how a request ended and who ended it.
    fn publish_resolved(&self, a: &Approval, decision: &str, by: &str) {
        self.publish(LiveEvent::Control {
            project_id: a.project_id.clone(),
            event: "session.approval.resolved",
            data: json!({
                "sessionId": a.session_id,
                "projectId": a.project_id,
                "requestId": a.request_id,
                "decision": decision,
                "by": by,
            }),
        });
    }

    /// Withdraws requests (the agent cancelled one, or ended): resolved as "cancelled".
    fn withdraw_all(&self, pending: Vec<Pending>, by: &str) {
        for p in &pending {
            let a = &p.approval;
            self.metrics
                .approvals
                .with_label_values(&["cancelled"])
                .inc();
            self.publish_resolved(a, "cancelled", by);
        }
    }

    /// Tells the session's project how many requests of the session wait (health attention).
    async fn awaiting_changed(&self, session_id: &str) {
        let count = self.approvals.count(session_id);
        if let Some(project) = self.project(project_of(session_id)).await {
            project.do_send(SetAwaiting {
                session_id: session_id.to_owned(),
                count,
            });
        }
    }
}

impl Permissions for Control {
    fn ask(&self, request: PermissionRequest) -> BoxFuture<'static, Decision> {
        match self.me() {
            Some(me) => Box::pin(async move { me.ask_permission(request).await }),
            None => Box::pin(async {
                Decision::Deny {
                    message: "the service is shutting down".into(),
                }
            }),
        }
    }

    fn withdraw(&self, session_id: &str, request_id: &str) {
        if let Some(p) = self.approvals.take(session_id, request_id) {
            self.withdraw_all(vec![p], "agent");
            self.spawn_awaiting(session_id);
        }
    }

    fn ended(&self, session_id: &str) {
        let pending = self.approvals.take_session(session_id);
        if !pending.is_empty() {
            self.withdraw_all(pending, "agent ended");
            self.spawn_awaiting(session_id);
        }
    }
}

impl Control {
    fn spawn_awaiting(&self, session_id: &str) {
        if let Some(me) = self.me() {
            let session_id = session_id.to_owned();
            tokio::spawn(async move { me.awaiting_changed(&session_id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gist_names_the_command_or_the_path() {
        assert_eq!(
            gist("Bash", &json!({"command": "rm -rf build"})),
            "Bash: rm -rf build"
        );
        assert_eq!(
            gist("Edit", &json!({"file_path": "/a/b.rs", "old_string": "x"})),
            "Edit: /a/b.rs"
        );
        assert!(gist("X", &json!({"q": "y".repeat(500)})).ends_with('…'));
    }

    #[test]
    fn pending_requests_list_oldest_first_and_leave_once_taken() {
        let a = Approvals::default();
        for (s, r) in [("p-1", "r1"), ("q-1", "r1"), ("p-1", "r2")] {
            let (tx, _rx) = oneshot::channel();
            a.insert(
                Approval {
                    session_id: s.into(),
                    project_id: project_of(s).into(),
                    request_id: r.into(),
                    tool_name: "Bash".into(),
                    input: json!({}),
                    created_at: 0,
                },
                tx,
            );
        }
        let ids: Vec<_> = a.list(None).into_iter().map(|x| x.request_id).collect();
        assert_eq!(ids, ["r1", "r1", "r2"]);
        assert_eq!(a.list(Some("p")).len(), 2);
        assert!(a.take("p-1", "r1").is_some());
        assert!(a.take("p-1", "r1").is_none(), "answered once");
        assert_eq!(a.take_session("p-1").len(), 1);
        assert_eq!(a.list(None).len(), 1);
    }
}
