//! Operations endpoints: `/healthz` (the process serves), `/readyz` (storage open and actors up) and
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
        (status = 200, description = "Storage open and actors up", body = Done),
        (status = 503, description = "Not ready", body = ErrorBody),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.engine.is_ready() {
        Done::response()
    } else {
        HttpResponse::ServiceUnavailable().json(ErrorBody {
            ok: false,
            error: "not ready: storage or actors are not up".into(),
            session_id: None,
        })
    }
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition of the actor, ingest, persistence and provider metrics", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.engine.metrics_text())
}
