//! `/v1/projects/{projectId}/cost` and `/v1/cost`: spend from the cost ledger, which outlives the
//! sessions it was recorded for.

use actix_web::{web, HttpResponse};

use super::errors::{ApiError, ErrorBody};
use super::extract::{ProjectId, Query};
use super::AppState;
use crate::messages::cost::{CostReport, ProjectCost};

type State = web::Data<AppState>;

#[utoipa::path(get, path = "/v1/projects/{projectId}/cost", operation_id = "getProjectCost", tag = "control",
    params(
        ("projectId" = String, Path, description = "1–128 of [A-Za-z0-9._-]", pattern = r"^[A-Za-z0-9._-]{1,128}$"),
        ("from" = Option<String>, Query, description = "First UTC day, YYYY-MM-DD", pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        ("to" = Option<String>, Query, description = "Last UTC day, YYYY-MM-DD (inclusive)", pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    ),
    responses(
        (status = 200, description = "The project's spend per day; kept when retention or a purge deletes sessions", body = ProjectCost),
        (status = 400, description = "from or to is not a day", body = ErrorBody),
    ))]
pub async fn project(
    state: State,
    ProjectId(project): ProjectId,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let cost = state
        .engine
        .project_cost(&project, query.text("from"), query.text("to"))
        .await?;
    Ok(HttpResponse::Ok().json(cost))
}

#[utoipa::path(get, path = "/v1/cost", operation_id = "getCost", tag = "control",
    params(
        ("from" = Option<String>, Query, description = "First UTC day, YYYY-MM-DD", pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        ("to" = Option<String>, Query, description = "Last UTC day, YYYY-MM-DD (inclusive)", pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    ),
    responses(
        (status = 200, description = "Every project's spend, with the total", body = CostReport),
        (status = 400, description = "from or to is not a day", body = ErrorBody),
    ))]
pub async fn all(state: State, query: Query) -> Result<HttpResponse, ApiError> {
    let cost = state
        .engine
        .cost(query.text("from"), query.text("to"))
        .await?;
    Ok(HttpResponse::Ok().json(cost))
}
