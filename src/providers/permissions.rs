//! The seam between a runner whose agent asks for tool permissions (Claude's stdio permission channel) and
//! the engine that has them answered (`actors::approvals`). The runner knows the protocol; the engine knows
//! the pending list, the timeout and who answered. Kept as a trait so a runner can be tested without an
//! engine and the engine without a runner.

use futures_util::future::BoxFuture;
use serde_json::Value;

/// The answer to a tool-permission request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run the tool, with this input instead of the requested one when given.
    Allow { updated_input: Option<Value> },
    /// Do not run it; the agent is told why.
    Deny { message: String },
}

/// One tool-permission request of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionRequest {
    pub session_id: String,
    /// The agent's own id of the request, unique within the session.
    pub request_id: String,
    pub tool_name: String,
    pub input: Value,
}

pub trait Permissions: Send + Sync + 'static {
    /// Waits for the answer (or the timeout, which denies).
    fn ask(&self, request: PermissionRequest) -> BoxFuture<'static, Decision>;
    /// The agent withdrew one request (it no longer waits for the answer).
    fn withdraw(&self, session_id: &str, request_id: &str);
    /// The session's agent process is gone: whatever it asked is no longer waited for.
    fn ended(&self, session_id: &str);
}
