//! One tracing span per request, carrying the route and, where the path has them, the `projectId` and
//! `sessionId`, so every log line a request causes can be found by project or session. It wraps each
//! resource (not the app) because only a matched resource knows its path parameters, and each resource's
//! wrapper knows its own route: nothing is looked up or built per request to name it.

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{IntCounter, IntCounterVec};
use tracing::Instrument;

/// The status classes `http_requests_total` counts by, in the order of [`class_of`]'s index.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One resource's route and its request counters by status class. The counters are resolved from the
/// metrics' vector on the resource's first request (the metrics live in the app's state, which the route
/// table is built without) and kept: a request then counts without the vector's lock or a label hash.
/// Each worker builds its own app, so a `Traced` is never shared between threads.
#[derive(Clone)]
pub struct Traced {
    route: &'static str,
    counters: Rc<OnceCell<[IntCounter; 5]>>,
}

impl Traced {
    pub fn new(route: &'static str) -> Self {
        Self {
            route,
            counters: Rc::default(),
        }
    }

    fn count(&self, requests: &IntCounterVec, status: u16) {
        let counters = self
            .counters
            .get_or_init(|| CLASSES.map(|class| requests.with_label_values(&[self.route, class])));
        counters[class_of(status)].inc();
    }
}

/// The index in [`CLASSES`] of a status code; anything outside 1xx–4xx counts as a server error.
fn class_of(status: u16) -> usize {
    match status {
        100..=499 => usize::from(status / 100 - 1),
        _ => 4,
    }
}

/// The ids go into the span as it is made: each field recorded afterwards is formatted by the log layer
/// again.
pub async fn request_span(
    traced: Traced,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = traced.route,
        projectId = req.match_info().get("projectId"),
        sessionId = req.match_info().get("sessionId"),
    );
    let started = Instant::now();
    let state = req
        .app_data::<actix_web::web::Data<super::AppState>>()
        .cloned();
    let result = next.call(req).instrument(span.clone()).await;
    if let (Some(state), Ok(res)) = (state, &result) {
        traced.count(&state.engine.metrics().http_requests, res.status().as_u16());
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
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::{web, App, HttpResponse};

    use prometheus::Opts;

    use super::*;

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
            .fmt_fields(crate::log_fields::PlainFields)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        const PATH: &str = "/v1/projects/{projectId}/sessions";
        let app = init_service(
            App::new().service(
                web::resource(PATH)
                    .to(|| async {
                        tracing::warn!("inside");
                        HttpResponse::Ok().finish()
                    })
                    .wrap(from_fn(move |req, next| {
                        request_span(Traced::new(PATH), req, next)
                    })),
            ),
        )
        .await;
        let req = TestRequest::post()
            .uri("/v1/projects/p-1/sessions")
            .to_request();
        assert!(call_service(&app, req).await.status().is_success());
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

    #[test]
    fn status_codes_fall_in_their_class_and_the_rest_count_as_server_errors() {
        let cases = [
            (101, "1xx"),
            (200, "2xx"),
            (204, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
        ];
        for (status, class) in cases {
            assert_eq!(CLASSES[class_of(status)], class, "{status}");
        }
        for status in [500, 503, 599, 0, 99, 600] {
            assert_eq!(CLASSES[class_of(status)], "5xx", "{status}");
        }
    }

    #[test]
    fn a_resource_counts_under_its_own_route_and_the_status_class() {
        let requests =
            IntCounterVec::new(Opts::new("requests", "test"), &["route", "status"]).unwrap();
        let traced = Traced::new("/v1/projects/{projectId}/sessions");
        let copy = traced.clone();
        traced.count(&requests, 201);
        copy.count(&requests, 201);
        traced.count(&requests, 422);
        let get = |class| {
            requests
                .with_label_values(&["/v1/projects/{projectId}/sessions", class])
                .get()
        };
        assert_eq!((get("2xx"), get("4xx"), get("5xx")), (2, 1, 0));
    }
}
