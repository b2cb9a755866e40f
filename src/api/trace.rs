//! One tracing span per request, carrying the route and, where the path has them, the `projectId` and
//! `sessionId`, so every log line a request causes can be found by project or session. It wraps each
//! resource (not the app) because only a matched resource knows its path parameters.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument;

/// `route` is the resource's path pattern, known when the resource is registered: asking the request for
/// it (`match_pattern`) assembled a new string on every call. The ids go into the span as it is made: each
/// field recorded afterwards is formatted by the log layer again.
pub async fn request_span(
    route: &'static str,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        projectId = req.match_info().get("projectId"),
        sessionId = req.match_info().get("sessionId"),
    );
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
            .with_label_values(&[route, class])
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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::mpsc;

    use actix_web::middleware::from_fn;
    use actix_web::{test, web, App, HttpResponse};

    use super::request_span;

    /// Each write of the log layer, sent to the test.
    #[derive(Clone)]
    struct Lines(mpsc::Sender<Vec<u8>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[actix_rt::test]
    async fn a_line_logged_inside_a_request_names_its_route_and_the_ids_in_its_path() {
        let (tx, rx) = mpsc::channel();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Lines(tx.clone()))
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        const PATH: &str = "/v1/projects/{projectId}/sessions";
        let app = test::init_service(
            App::new().service(
                web::resource(PATH)
                    .to(|| async {
                        tracing::warn!("inside");
                        HttpResponse::Ok().finish()
                    })
                    .wrap(from_fn(move |req, next| request_span(PATH, req, next))),
            ),
        )
        .await;
        let req = test::TestRequest::post()
            .uri("/v1/projects/p-1/sessions")
            .to_request();
        assert!(test::call_service(&app, req).await.status().is_success());
        let logged = String::from_utf8(rx.try_iter().flatten().collect()).unwrap();
        let line = logged
            .lines()
            .find(|l| l.contains("inside"))
            .unwrap_or_else(|| panic!("no line: {logged}"));
        assert!(
            line.contains(
                r#"request{method=POST route="/v1/projects/{projectId}/sessions" projectId="p-1"}"#
            ),
            "{line}"
        );
        assert!(!line.contains("sessionId"), "{line}");
    }
}
