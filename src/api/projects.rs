//! `/v1/projects…`: the per-project commands of the original store (startAgent, stopAgent, sendPrompt,
//! getSession, clearSession, loadLastSession, purgeProjectSessions), the project listings and a project's
//! own stall threshold. Each handler checks its input, makes one engine call and shapes the answer.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::extract::{Body, ProjectId, Query};
use super::AppState;
use crate::messages::commands::{ProjectSummary, SessionSummary, StartRequest};
use crate::messages::wire::{AgentSession, ProjectHealth};

/// `{"ok": true}`: the command was carried out.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

impl Done {
    pub fn response() -> HttpResponse {
        HttpResponse::Ok().json(Done { ok: true })
    }
}

/// The answer to a successful start.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartedBody {
    pub ok: bool,
    pub session_id: String,
}

/// The body of `POST /v1/projects/{projectId}/prompt`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptRequest {
    pub prompt: String,
}

/// Whether `loadLastSession` found a stored session to restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct Restored {
    pub restored: bool,
}

/// The body of `PUT /v1/projects/{projectId}/stall-threshold`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StallThreshold {
    /// A duration such as `"20m"` or `"90s"`; `null` returns to `timers.stall_after`.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "20m", required = true,
        pattern = r"^ *([0-9]+ *[a-zA-Zµ]+ *)+$")]
    pub stall_after: Option<std::time::Duration>,
}

type State = web::Data<AppState>;

#[utoipa::path(get, path = "/v1/projects", operation_id = "listProjects", tag = "projects",
    responses(
        (status = 200, description = "Known projects with their current session id, status and health (in cluster mode, of every node)", body = Vec<ProjectSummary>),
        (status = 503, description = "Cluster mode: NATS did not say which nodes are live", body = ErrorBody),
    ))]
pub async fn list(state: State) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(super::cluster::projects(&state).await?))
}

#[utoipa::path(post, path = "/v1/projects/{projectId}/sessions", operation_id = "startAgent", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    request_body = StartRequest,
    responses(
        (status = 201, description = "Started", body = StartedBody),
        (status = 400, description = "Bad body, unknown provider, empty prompt, refused extraEnv keys (named)", body = ErrorBody),
        (status = 409, description = "Session start already in progress / Session already running", body = ErrorBody),
        (status = 502, description = "The provider could not start; the session exists in status error", body = ErrorBody),
    ))]
pub async fn start(
    state: State,
    ProjectId(project): ProjectId,
    Body(request): Body<StartRequest>,
) -> Result<HttpResponse, ApiError> {
    let started = state.engine.start_agent(&project, request).await?;
    Ok(HttpResponse::Created().json(StartedBody {
        ok: true,
        session_id: started.session_id,
    }))
}

#[utoipa::path(get, path = "/v1/projects/{projectId}/sessions", operation_id = "listProjectSessions", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "Stored sessions of the project, newest first, without messages", body = Vec<SessionSummary>),
    ))]
pub async fn history(
    state: State,
    ProjectId(project): ProjectId,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.project_sessions(&project).await?))
}

#[utoipa::path(post, path = "/v1/projects/{projectId}/stop", operation_id = "stopAgent", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "Stopped", body = Done),
        (status = 404, description = "No session for project", body = ErrorBody),
        (status = 502, description = "The provider refused", body = ErrorBody),
    ))]
pub async fn stop(state: State, ProjectId(project): ProjectId) -> Result<HttpResponse, ApiError> {
    state.engine.stop_agent(&project).await?;
    Ok(Done::response())
}

#[utoipa::path(post, path = "/v1/projects/{projectId}/prompt", operation_id = "sendPrompt", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    request_body = PromptRequest,
    responses(
        (status = 200, description = "Sent", body = Done),
        (status = 400, description = "Bad body or empty prompt", body = ErrorBody),
        (status = 404, description = "No session for project", body = ErrorBody),
        (status = 502, description = "The provider refused", body = ErrorBody),
    ))]
pub async fn prompt(
    state: State,
    ProjectId(project): ProjectId,
    Body(request): Body<PromptRequest>,
) -> Result<HttpResponse, ApiError> {
    state.engine.send_prompt(&project, request.prompt).await?;
    Ok(Done::response())
}

#[utoipa::path(get, path = "/v1/projects/{projectId}/session", operation_id = "getSession", tag = "projects",
    params(
        ("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$"),
        ("afterSeq" = Option<u64>, Query, description = "Only messages with a higher seqId"),
        ("limit" = Option<u64>, Query, description = "At most this many messages", minimum = 1),
    ),
    responses(
        (status = 200, description = "The project's current session", body = AgentSession),
        (status = 400, description = "afterSeq or limit does not parse", body = ErrorBody),
        (status = 404, description = "No session for project", body = ErrorBody),
    ))]
pub async fn current(
    state: State,
    ProjectId(project): ProjectId,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let session = state.engine.get_session(&project, query.page()?).await?;
    Ok(HttpResponse::Ok().json(session))
}

#[utoipa::path(delete, path = "/v1/projects/{projectId}/session", operation_id = "clearSession", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 204, description = "Cleared (or there was nothing to clear)"),
        (status = 409, description = "The session is running", body = ErrorBody),
    ))]
pub async fn clear(state: State, ProjectId(project): ProjectId) -> Result<HttpResponse, ApiError> {
    state.engine.clear_session(&project).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/v1/projects/{projectId}/session/restore", operation_id = "loadLastSession", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "Whether a stored session became the current one", body = Restored),
    ))]
pub async fn restore(
    state: State,
    ProjectId(project): ProjectId,
) -> Result<HttpResponse, ApiError> {
    let restored = state.engine.load_last_session(&project).await?;
    Ok(HttpResponse::Ok().json(Restored { restored }))
}

#[utoipa::path(delete, path = "/v1/projects/{projectId}", operation_id = "purgeProjectSessions", tag = "projects",
    params(
        ("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$"),
        ("ledger" = Option<bool>, Query, description = "Also delete the project's cost ledger (kept by default)"),
    ),
    responses(
        (status = 204, description = "Every session of the project is gone, from memory and storage"),
        (status = 400, description = "ledger is not true or false", body = ErrorBody),
    ))]
pub async fn purge(
    state: State,
    ProjectId(project): ProjectId,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let ledger = query.flag("ledger")?;
    state.engine.purge_project(&project).await?;
    if ledger {
        state.engine.purge_ledger(&project).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(put, path = "/v1/projects/{projectId}/stall-threshold", operation_id = "setStallThreshold", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    request_body = StallThreshold,
    responses(
        (status = 200, description = "The project's health under its new threshold", body = ProjectHealth),
        (status = 400, description = "stallAfter is not a duration above zero", body = ErrorBody),
    ))]
pub async fn stall_threshold(
    state: State,
    ProjectId(project): ProjectId,
    Body(body): Body<StallThreshold>,
) -> Result<HttpResponse, ApiError> {
    let health = state
        .engine
        .set_stall_threshold(&project, body.stall_after)
        .await?;
    Ok(HttpResponse::Ok().json(health))
}
