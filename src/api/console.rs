//! The ops console: `GET /` redirects to `/ui/`, which serves a single page for operators (projects by
//! attention, approvals, a session's messages live, actor metrics, top actors).
//!
//! Its three files are compiled into the binary (`include_str!`), so `cargo run` serves them with no build
//! step and no file on disk. They hold no data and need no token: everything the page shows it fetches
//! from `/v1` and `/metrics` with the operator's token, like any other client. The answers forbid framing
//! and any script, style or connection outside this origin.

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse, Route};

use super::errors::ApiError;

/// Where the page lives.
pub const UI: &str = "/ui/";

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// Same origin only; no inline script or style; never inside a frame (no clickjacking of the buttons).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's paths, all answered without a token (to GET and HEAD only).
const FILES: [&str; 5] = ["/", "/ui", UI, "/ui/console.js", "/ui/console.css"];

/// Registers `/`, `/ui` and the page's files. They stay out of the API route table and the OpenAPI
/// document: they are not API. Other methods get the API's JSON 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let page = |path: &'static str, route: Route| {
        web::resource(path).route(route).default_service(web::to(
            move |req: HttpRequest| async move {
                Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
                    method: req.method().to_string(),
                    path: req.path().to_owned(),
                    allow: "GET".into(),
                })
            },
        ))
    };
    cfg.service(page("/", web::get().to(to_ui)))
        .service(page("/ui", web::get().to(to_ui)))
        .service(page(
            UI,
            web::get().to(|| asset(INDEX, "text/html; charset=utf-8")),
        ))
        .service(page(
            "/ui/console.js",
            web::get().to(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        ))
        .service(page(
            "/ui/console.css",
            web::get().to(|| asset(STYLE, "text/css; charset=utf-8")),
        ));
}

/// Whether the request asks for one of the console's files, which need no token: exactly these paths, and
/// only to read them.
pub fn is_console_file(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD) && FILES.contains(&path)
}

async fn to_ui() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, UI))
        .finish()
}

async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Served from the binary: a new binary may bring new files, so the browser asks each time.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
