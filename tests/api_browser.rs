//! A hostile web page, as a browser would send its requests: cross-origin (`Origin: http://evil.example`),
//! "simple" bodies that need no preflight (`text/plain`, forms, typeless blobs), and DNS rebinding (a
//! foreign `Host` such as `evil.example:7878`). Every route refuses them, nothing is started or changed,
//! and no answer carries a CORS header. The server's own origin (its ops console), listed origins and
//! listed hosts pass; listed origins get real CORS preflight answers.

mod common;

use agent_store::api::endpoints;
use common::{assert_error, method, send, TestApp};
use reqwest::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const EVIL: &str = "http://evil.example";
const START: &str = "/v1/projects/victim/sessions";
const TOKEN: &str = "browser-test-token";

fn concrete(path: &str) -> String {
    path.replace("{projectId}", "victim")
        .replace("{sessionId}", "victim-1700000000000")
}

fn start_body() -> String {
    json!({"provider": "recording", "prompt": "rm -rf ~",
        "options": {"permissionMode": "acceptEdits", "additionalDirectories": ["/"]}})
    .to_string()
}

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .map(|k| k.to_string())
        .collect()
}

/// Nothing the page asked for happened: no provider call, no session, settings as they were.
async fn assert_untouched(app: &TestApp, settings_before: &Value) {
    assert!(
        app.recording.calls().is_empty(),
        "{:?}",
        app.recording.calls()
    );
    let (status, _) = send(app.get("/v1/projects/victim/session")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, settings) = send(app.get("/v1/settings")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&settings, settings_before);
}

#[actix_web::test]
async fn a_cross_origin_page_cannot_start_an_agent_or_change_anything() {
    let app = TestApp::spawn().await;
    let (_, settings_before) = send(app.get("/v1/settings")).await;
    let hostile_bodies: [(&str, Option<&str>, String); 5] = [
        (START, Some("text/plain;charset=UTF-8"), start_body()),
        (START, None, start_body()),
        (
            START,
            Some("application/x-www-form-urlencoded"),
            "a=b".into(),
        ),
        (START, Some("application/json"), start_body()),
        (
            "/v1/settings",
            Some("text/plain"),
            json!({"permission_mode": "bypassPermissions"}).to_string(),
        ),
    ];
    for (path, kind, body) in &hostile_bodies {
        let request_method = if *path == START {
            Method::POST
        } else {
            Method::PUT
        };
        let mut request = app
            .request(request_method, path)
            .header(ORIGIN, EVIL)
            .body(body.clone());
        if let Some(kind) = kind {
            request = request.header(CONTENT_TYPE, *kind);
        }
        let response = request.send().await.unwrap();
        assert!(
            cors_headers(response.headers()).is_empty(),
            "{path} {kind:?}"
        );
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_error(status, &answer, StatusCode::FORBIDDEN, "Origin: ");
    }
    // The preflight a browser sends before a JSON POST: refused, so the POST itself never leaves it.
    let response = app
        .request(Method::OPTIONS, START)
        .header(ORIGIN, EVIL)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(cors_headers(response.headers()).is_empty());
    assert_untouched(&app, &settings_before).await;
    app.stop().await;
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_refused_even_without_an_origin() {
    let app = TestApp::spawn().await;
    let (_, settings_before) = send(app.get("/v1/settings")).await;
    for kind in [
        None,
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut request = app.post(START).body(start_body());
        if let Some(kind) = kind {
            request = request.header(CONTENT_TYPE, kind);
        }
        let (status, answer) = send(request).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type: must be application/json",
        );
    }
    let (status, answer) = send(
        app.post("/v1/sidecar/events")
            .header(CONTENT_TYPE, "text/plain")
            .body("{}"),
    )
    .await;
    assert_error(
        status,
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type: must be application/json or application/x-ndjson",
    );
    assert_untouched(&app, &settings_before).await;
    app.stop().await;
}

#[actix_web::test]
async fn every_route_refuses_a_foreign_origin_and_a_rebound_host() {
    let app = TestApp::spawn().await;
    let (_, settings_before) = send(app.get("/v1/settings")).await;
    let port = app.addr.port();
    let rebound_host = format!("evil.example:{port}");
    let rebound_origin = format!("http://evil.example:{port}");
    for e in endpoints() {
        let path = concrete(e.path);
        // DNS rebinding: the page is same-origin with itself, and names itself in Host.
        let response = app
            .request(method(&e.method), &path)
            .header(HOST, &rebound_host)
            .header(ORIGIN, &rebound_origin)
            .header(CONTENT_TYPE, "text/plain")
            .body(start_body())
            .send()
            .await
            .unwrap();
        assert!(cors_headers(response.headers()).is_empty(), "{path}");
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_error(status, &answer, StatusCode::FORBIDDEN, "Host: ");
        assert!(
            answer["error"].as_str().unwrap().contains("evil.example"),
            "{answer}"
        );
        // A foreign host alone, as a GET with no Origin (an <img> or a rebound page's navigation).
        let (status, answer) = send(
            app.request(method(&e.method), &path)
                .header(HOST, "evil.example:7878"),
        )
        .await;
        assert_error(status, &answer, StatusCode::FORBIDDEN, "Host: ");
        // Cross-origin, to the right host: fetch() and EventSource carry the page's Origin.
        let (status, answer) =
            send(app.request(method(&e.method), &path).header(ORIGIN, EVIL)).await;
        assert_error(status, &answer, StatusCode::FORBIDDEN, "Origin: ");
    }
    // Paths that are no route are guarded too.
    let (status, answer) = send(app.get("/v1/nope").header(ORIGIN, EVIL)).await;
    assert_error(status, &answer, StatusCode::FORBIDDEN, "Origin: ");
    assert_untouched(&app, &settings_before).await;
    app.stop().await;
}

#[actix_web::test]
async fn loopback_names_and_the_servers_own_origin_are_served_without_cors_headers() {
    let app = TestApp::spawn().await;
    let port = app.addr.port();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_owned(),
    ] {
        let response = app
            .get("/v1/projects")
            .header(HOST, &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
        assert!(cors_headers(response.headers()).is_empty());
    }
    // The ops console served by this binary: Origin is the server's own, and it may start an agent.
    let own = format!("http://127.0.0.1:{port}");
    let response = app
        .post(START)
        .header(ORIGIN, &own)
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"provider": "recording", "prompt": "hi"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(cors_headers(response.headers()).is_empty());
    assert_eq!(app.recording.calls().len(), 1);
    let response = app
        .get("/v1/events")
        .header(ORIGIN, &own)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(cors_headers(response.headers()).is_empty());
    drop(response);
    app.stop().await;
}

#[actix_web::test]
async fn listed_origins_get_cors_answers_and_listed_hosts_are_served() {
    let app = TestApp::spawn_with(|c| {
        c.server.allowed_origins = vec!["http://localhost:5173".into()];
        c.server.allowed_hosts = vec!["agents.lan".into()];
    })
    .await;
    let ui = "http://localhost:5173";
    let preflight = app
        .request(Method::OPTIONS, START)
        .header(ORIGIN, ui)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], ui);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("content-type") && headers.contains("authorization"),
        "{headers}"
    );

    let response = app
        .post(START)
        .header(ORIGIN, ui)
        .json(&json!({"provider": "recording", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["access-control-allow-origin"], ui);

    // Another origin still gets nothing.
    let response = app
        .get("/v1/projects")
        .header(ORIGIN, "http://localhost:5174")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(cors_headers(response.headers()).is_empty());

    let (status, _) = send(app.get("/v1/projects").header(HOST, "agents.lan:7878")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(app.get("/v1/projects").header(HOST, "other.lan:7878")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "Host: ");
    app.stop().await;
}

#[actix_web::test]
async fn with_a_token_the_lists_apply_once_set() {
    // No lists: a foreign Host or Origin reaches the token check, which a page cannot pass.
    let mut app = TestApp::spawn_with(|c| c.server.auth_token = Some(TOKEN.into())).await;
    app.token = None;
    let (status, _) = send(
        app.post(START)
            .header(HOST, "evil.example:7878")
            .header(ORIGIN, EVIL)
            .json(&json!({"provider": "recording", "prompt": "hi"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.token = Some(TOKEN.into());
    let (status, _) = send(
        app.get("/v1/projects")
            .header(HOST, "agents.example:7878")
            .header(ORIGIN, "https://ops.example"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(app.recording.calls().is_empty());
    app.stop().await;

    // Lists set: they apply even with the right token.
    let app = TestApp::spawn_with(|c| {
        c.server.auth_token = Some(TOKEN.into());
        c.server.allowed_hosts = vec!["agents.example".into()];
        c.server.allowed_origins = vec!["https://ops.example".into()];
    })
    .await;
    let (status, _) = send(
        app.get("/v1/projects")
            .header(HOST, "agents.example:7878")
            .header(ORIGIN, "https://ops.example"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(app.get("/v1/projects").header(HOST, "evil.example")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "Host: ");
    let (status, body) = send(app.get("/v1/projects").header(ORIGIN, EVIL)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "Origin: ");
    app.stop().await;
}
