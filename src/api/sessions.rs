//! `/v1/sessions/{sessionId}`: any live or stored session by id, its agent's stderr, and its purge.

use actix_web::{web, HttpResponse};

use super::errors::{ApiError, ErrorBody};
use super::extract::{Query, SessionId};
use super::AppState;
use crate::messages::wire::AgentSession;
use crate::providers::SessionStderr;

#[utoipa::path(get, path = "/v1/sessions/{sessionId}", operation_id = "getSessionById", tag = "sessions",
    params(
        ("sessionId" = String, Path, description = "<projectId>-<unix ms>", max_length = 149, pattern = r"^[A-Za-z0-9._-]+-[0-9]+$"),
        ("afterSeq" = Option<u64>, Query, description = "Only messages with a higher seqId"),
        ("limit" = Option<u64>, Query, description = "At most this many messages", minimum = 1),
    ),
    responses(
        (status = 200, description = "The session", body = AgentSession),
        (status = 400, description = "sessionId, afterSeq or limit does not parse", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    SessionId(id): SessionId,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let session = state.engine.session(&id, query.page()?).await?;
    Ok(HttpResponse::Ok().json(session))
}

#[utoipa::path(get, path = "/v1/sessions/{sessionId}/stderr", operation_id = "getSessionStderr", tag = "sessions",
    params(("sessionId" = String, Path, description = "<projectId>-<unix ms>", max_length = 149, pattern = r"^[A-Za-z0-9._-]+-[0-9]+$")),
    responses(
        (status = 200, description = "The last lines the session's agent wrote to stderr (none for providers that run no process per session)", body = SessionStderr),
        (status = 400, description = "sessionId does not parse", body = ErrorBody),
        (status = 404, description = "Session not found", body = ErrorBody),
    ))]
pub async fn stderr(
    state: web::Data<AppState>,
    SessionId(id): SessionId,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.session_stderr(&id).await?))
}

#[utoipa::path(delete, path = "/v1/sessions/{sessionId}", operation_id = "purgeSession", tag = "sessions",
    params(("sessionId" = String, Path, description = "<projectId>-<unix ms>", max_length = 149, pattern = r"^[A-Za-z0-9._-]+-[0-9]+$")),
    responses(
        (status = 204, description = "The session is gone, from memory and storage"),
        (status = 400, description = "sessionId does not parse", body = ErrorBody),
    ))]
pub async fn purge(
    state: web::Data<AppState>,
    SessionId(id): SessionId,
) -> Result<HttpResponse, ApiError> {
    state.engine.purge_session(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}
