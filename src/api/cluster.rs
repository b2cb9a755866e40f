//! The HTTP side of cluster mode: `GET /v1/cluster` (this node, the partitions it holds, the nodes it
//! knows of; 404 naming the switch on a node not in cluster mode), the middleware that forwards a
//! request about a project owned by another node to that node, and the project and health lists, which in
//! cluster mode cover every node. The cluster logic is in `crate::cluster`.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use super::errors::{ApiError, ErrorBody};
use super::extract::read_body;
use super::AppState;
use crate::cluster::{forward, Cluster, ClusterError, ClusterStatus, Route};
use crate::engine::project_of_session;
use crate::messages::commands::ProjectSummary;
use crate::messages::wire::ProjectHealth;

#[utoipa::path(get, path = "/v1/cluster", operation_id = "clusterStatus", tag = "cluster",
    responses(
        (status = 200, description = "This node, the partitions it holds, and every node it knows of", body = ClusterStatus),
        (status = 404, description = "This node does not run in cluster mode", body = ErrorBody),
        (status = 503, description = "NATS did not answer", body = ErrorBody),
    ))]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(HttpResponse::NotFound().json(ErrorBody {
            ok: false,
            error: "cluster mode is off (serve --cluster, or [cluster] enabled = true)".into(),
            session_id: None,
        }));
    };
    let status = cluster
        .status()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(status))
}

/// `GET /v1/projects`: every project of the cluster in cluster mode, this node's alone otherwise.
pub async fn projects(state: &AppState) -> Result<Vec<ProjectSummary>, ApiError> {
    let local = state.engine.projects().await?;
    match &state.cluster {
        Some(cluster) => cluster.projects(local).await.map_err(unavailable),
        None => Ok(local),
    }
}

/// `GET /v1/health…`: every project's health in the cluster in cluster mode, this node's otherwise.
pub async fn health(state: &AppState) -> Result<Vec<ProjectHealth>, ApiError> {
    let local = state.engine.health().await?;
    match &state.cluster {
        Some(cluster) => cluster.health(local).await.map_err(unavailable),
        None => Ok(local),
    }
}

fn unavailable(e: ClusterError) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

/// In cluster mode (the only mode it is wrapped in), answers a request about a project this node does not
/// own by forwarding it to the node that does (`cluster::forward`); everything else goes on to the route.
/// Runs after authentication, and the owner authenticates the forwarded request again.
pub async fn forward_foreign(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = AppState::of(req.request());
    let max_body = state.max_body;
    let (Some(cluster), Some(project)) = (state.cluster.clone(), project_in_path(req.path()))
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let forwarded = req.headers().contains_key(forward::FORWARDED_HEADER);
    let holder = if forwarded {
        None
    } else {
        match route(&cluster, &project).await {
            Ok(Route::Local) => None,
            Ok(Route::Remote(holder)) => Some(holder),
            Err(e) => {
                let response = ApiError::Unavailable(e.to_string()).error_response();
                return Ok(req.into_response(response).map_into_right_body());
            }
        }
    };
    let Some(holder) = holder else {
        // Answered here: a read first waits for the batches acknowledged before it to be applied. One that
        // cannot wait long enough is refused (retryable) rather than answered without acknowledged data.
        if req.method() == actix_web::http::Method::GET && !cluster.caught_up(&project).await {
            let response = ApiError::Unavailable(format!(
                "project {project}: ingest acknowledged for it is not applied yet on its owner; retry"
            ))
            .error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let (http, mut payload) = req.into_parts();
    let answer = async {
        let body = read_body(&http, &mut payload, max_body).await?;
        let request = forward::Forward {
            method: http.method().to_string(),
            path: http
                .uri()
                .path_and_query()
                .map_or_else(|| http.path().to_owned(), |pq| pq.as_str().to_owned()),
            headers: http
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body,
        };
        cluster
            .forward(&holder.node_id, request)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))
    }
    .await;
    let response = match answer {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = HttpResponse::build(status);
            if let Some(content_type) = answer.content_type {
                response.insert_header((CONTENT_TYPE, content_type));
            }
            response.body(answer.body)
        }
        Err(e) => e.error_response(),
    };
    Ok(ServiceResponse::new(http, response).map_into_right_body())
}

/// The owner of a project, waiting out a takeover (no holder) for up to two lease TTLs.
async fn route(cluster: &Cluster, project: &str) -> Result<Route, ClusterError> {
    let deadline = tokio::time::Instant::now() + cluster.config().lease_ttl * 2;
    loop {
        match cluster.route(project).await {
            Err(ClusterError::NoOwner { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The project a path is about: `/v1/projects/{projectId}[/...]`, or the project of the session in
/// `/v1/sessions/{sessionId}[/...]`. The live stream is not forwarded (it is not one answer).
fn project_in_path(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    if parts.next() != Some("v1") {
        return None;
    }
    match (parts.next(), parts.next()) {
        (Some("projects"), Some(project)) if !project.is_empty() => Some(project.to_owned()),
        (Some("sessions"), Some(session)) => project_of_session(session).map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::project_in_path;

    #[test]
    fn the_project_of_a_path() {
        assert_eq!(
            project_in_path("/v1/projects/p1/session").as_deref(),
            Some("p1")
        );
        assert_eq!(project_in_path("/v1/projects/p1").as_deref(), Some("p1"));
        assert_eq!(
            project_in_path("/v1/sessions/my-p-1700000000000/stderr").as_deref(),
            Some("my-p")
        );
        assert_eq!(project_in_path("/v1/projects"), None);
        assert_eq!(project_in_path("/v1/events"), None);
        assert_eq!(project_in_path("/v1/cluster"), None);
    }
}
