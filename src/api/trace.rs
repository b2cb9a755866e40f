//! One tracing span per request, carrying the route and, where the path has them, the `projectId` and
//! `sessionId`, so every log line a request causes can be found by project or session. It wraps each
//! resource (not the app) because only a matched resource knows its path parameters.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::field::Empty;
use tracing::Instrument;

pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Built once: actix assembles the pattern into a new string on every call.
    let route = req.match_pattern().unwrap_or_else(|| "-".into());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = route.as_str(),
        projectId = Empty,
        sessionId = Empty,
    );
    if let Some(id) = req.match_info().get("projectId") {
        span.record("projectId", id);
    }
    if let Some(id) = req.match_info().get("sessionId") {
        span.record("sessionId", id);
    }
    let started = Instant::now();
    let state = req
        .app_data::<actix_web::web::Data<super::AppState>>()
        .cloned();
    let result = next.call(req).instrument(span.clone()).await;
    if let (Some(state), Ok(res)) = (state, &result) {
        let class = match res.status().as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        state
            .engine
            .metrics()
            .http_requests
            .with_label_values(&[&route, class])
            .inc();
    }
    let _entered = span.enter();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(res) if res.status().is_server_error() => {
            tracing::warn!(status = res.status().as_u16(), elapsed_ms, "request failed")
        }
        Ok(res) => tracing::debug!(status = res.status().as_u16(), elapsed_ms, "request done"),
        Err(e) => tracing::warn!(error = %e, elapsed_ms, "request failed"),
    }
    result
}
