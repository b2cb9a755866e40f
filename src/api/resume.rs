//! `POST /v1/projects/{projectId}/session/resume`: resume the project's interrupted or finished session with
//! its provider's own resume (src/actors/restart.rs). The body is optional: `{"prompt"}` is what the agent
//! is told to go on with; without one it gets a default.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::extract::{parse_json, read_body, ProjectId};
use super::projects::StartedBody;
use super::AppState;

/// The optional body of `POST /v1/projects/{projectId}/session/resume`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// What the resumed agent is told; "Continue where you left off." when left out.
    #[schema(min_length = 1)]
    pub prompt: Option<String>,
}

#[utoipa::path(post, path = "/v1/projects/{projectId}/session/resume", operation_id = "resumeSession", tag = "projects",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    request_body(content = Option<ResumeRequest>, description = "Optional: the prompt the agent goes on with"),
    responses(
        (status = 200, description = "Resumed: the session runs again, with the system message \"Resumed on request\" and the prompt", body = StartedBody),
        (status = 404, description = "No session for project", body = ErrorBody),
        (status = 409, description = "Session already running, or the session cannot be resumed (named why)", body = ErrorBody),
    ))]
pub async fn resume(
    state: web::Data<AppState>,
    ProjectId(project): ProjectId,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut payload = payload.into_inner();
    let bytes = read_body(&req, &mut payload, state.max_body).await?;
    let body: ResumeRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        ResumeRequest::default()
    } else {
        parse_json(&bytes)?
    };
    let started = state.engine.resume_session(&project, body.prompt).await?;
    Ok(HttpResponse::Ok().json(StartedBody {
        ok: true,
        session_id: started.session_id,
    }))
}
