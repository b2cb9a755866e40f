//! Operations endpoints: `/healthz` (the process serves), `/readyz` (storage open and actors up) and
//! `/metrics` (Prometheus text; the full actor metrics come with their own issue).

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
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let ready = u8::from(state.engine.is_ready());
    let body = format!(
        "# HELP agent_store_up Whether the service is serving.\n\
         # TYPE agent_store_up gauge\n\
         agent_store_up 1\n\
         # HELP agent_store_ready Whether storage is open and the actors are up.\n\
         # TYPE agent_store_ready gauge\n\
         agent_store_ready {ready}\n"
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
