//! `/v1/projects/{projectId}/policy`: a project's agent policy (approvals, their timeout, budgets, the
//! stall rule), read and patched field by field.

use actix_web::{web, HttpResponse};

use super::errors::{ApiError, ErrorBody};
use super::extract::{Body, ProjectId};
use super::AppState;
use crate::messages::policy::{Policy, PolicyPatch};

type State = web::Data<AppState>;

#[utoipa::path(get, path = "/v1/projects/{projectId}/policy", operation_id = "getPolicy", tag = "control",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    responses(
        (status = 200, description = "The policy in force: what the project set, the configured defaults for the rest", body = Policy),
    ))]
pub async fn get(state: State, ProjectId(project): ProjectId) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.policy(&project)?))
}

#[utoipa::path(put, path = "/v1/projects/{projectId}/policy", operation_id = "setPolicy", tag = "control",
    params(("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$")),
    request_body = PolicyPatch,
    responses(
        (status = 200, description = "The policy in force after the change (stored)", body = Policy),
        (status = 400, description = "A field does not pass (named); nothing changed", body = ErrorBody),
    ))]
pub async fn put(
    state: State,
    ProjectId(project): ProjectId,
    Body(patch): Body<PolicyPatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.update_policy(&project, patch).await?))
}
