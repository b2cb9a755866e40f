//! `/v1/approvals` and `/v1/sessions/{sessionId}/approvals/{requestId}`: agents' pending tool-permission
//! requests (projects with `approvals: "ask"`), and their answers.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::extract::{project_id, Body, Query, SessionId};
use super::projects::Done;
use super::AppState;
use crate::engine::Approval;
use crate::messages::numbers;
use crate::providers::permissions::Decision;

type State = web::Data<AppState>;

/// How long a deny message may be (it is shown to the agent and kept in the session).
const MAX_MESSAGE: usize = 4096;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// The body of `POST /v1/sessions/{sessionId}/approvals/{requestId}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalAnswer {
    pub decision: Verdict,
    /// Why (a deny's message to the agent; "denied over the API" when left out).
    #[schema(max_length = 4096)]
    pub message: Option<String>,
    /// An allow may run the tool with this input instead of the requested one.
    #[schema(value_type = Option<Object>)]
    pub updated_input: Option<serde_json::Value>,
}

impl ApprovalAnswer {
    fn decision(self) -> Result<Decision, ApiError> {
        if self.message.as_ref().is_some_and(|m| m.len() > MAX_MESSAGE) {
            return Err(ApiError::invalid(
                "message",
                format!("must be at most {MAX_MESSAGE} bytes"),
            ));
        }
        match self.decision {
            Verdict::Allow => {
                if self.updated_input.as_ref().is_some_and(|v| !v.is_object()) {
                    return Err(ApiError::invalid("updatedInput", "must be an object"));
                }
                Ok(Decision::Allow {
                    updated_input: self.updated_input,
                })
            }
            Verdict::Deny if self.updated_input.is_some() => Err(ApiError::invalid(
                "updatedInput",
                "only an allow carries an input",
            )),
            Verdict::Deny => Ok(Decision::Deny {
                message: numbers::bounded(
                    self.message
                        .filter(|m| !m.trim().is_empty())
                        .unwrap_or_else(|| "denied over the API".into()),
                    MAX_MESSAGE,
                ),
            }),
        }
    }
}

#[utoipa::path(get, path = "/v1/approvals", operation_id = "listApprovals", tag = "control",
    params(("projectId" = Option<String>, Query, description = "Only this project's", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "Pending tool-permission requests, oldest first", body = Vec<Approval>),
        (status = 400, description = "projectId is not a project id", body = ErrorBody),
    ))]
pub async fn list(state: State, query: Query) -> Result<HttpResponse, ApiError> {
    let project = query.text("projectId");
    if let Some(p) = project {
        project_id(p)?;
    }
    Ok(HttpResponse::Ok().json(state.engine.approvals(project)?))
}

#[utoipa::path(post, path = "/v1/sessions/{sessionId}/approvals/{requestId}", operation_id = "answerApproval", tag = "control",
    params(
        ("sessionId" = String, Path, description = "<projectId>-<unix ms>", pattern = r"^[A-Za-z0-9._-]{1,128}-[0-9]+$"),
        ("requestId" = String, Path, description = "The agent's id of the request, as listed"),
    ),
    request_body = ApprovalAnswer,
    responses(
        (status = 200, description = "Answered; the agent goes on", body = Done),
        (status = 400, description = "Bad body (the field is named)", body = ErrorBody),
        (status = 404, description = "Unknown, or already answered", body = ErrorBody),
        (status = 409, description = "The session no longer runs", body = ErrorBody),
    ))]
pub async fn answer(
    state: State,
    req: HttpRequest,
    SessionId(session): SessionId,
    Body(body): Body<ApprovalAnswer>,
) -> Result<HttpResponse, ApiError> {
    let request_id = req.match_info().get("requestId").unwrap_or_default();
    let decision = body.decision()?;
    state
        .engine
        .answer_approval(&session, request_id, decision)
        .await?;
    Ok(Done::response())
}
