//! Operations endpoints: `/healthz` (the process serves), `/readyz` (storage can commit and actors up) and
//! `/metrics` (the engine's Prometheus text exposition).

use actix_web::{web, HttpResponse};

use super::errors::ErrorBody;
use super::projects::Done;
use super::AppState;

#[utoipa::path(get, path = "/healthz", operation_id = "healthz", security(()), tag = "operations",
    responses((status = 200, description = "The process serves", body = Done)))]
pub async fn healthz() -> HttpResponse {
    Done::response()
}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz", security(()), tag = "operations",
    responses(
        (status = 200, description = "Storage can commit and actors up", body = Done),
        (status = 503, description = "Not ready: the engine is not up, or storage cannot commit (a failed commit such as a full disk, until one succeeds; the database file deleted or replaced)", body = ErrorBody),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.engine.readiness() {
        Ok(()) => Done::response(),
        Err(why) => HttpResponse::ServiceUnavailable().json(ErrorBody {
            ok: false,
            error: format!("not ready: {why}"),
            session_id: None,
        }),
    }
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition of the actor, ingest, persistence and provider metrics", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.engine.metrics_text())
}
