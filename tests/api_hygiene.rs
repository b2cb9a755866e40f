//! What an agent may be given, and HTTP hygiene, over HTTP against the real server:
//!
//! - permission modes that skip an agent's checks need the provider's `allow_bypass_permissions`;
//! - `extraEnv` refuses what changes how programs load or where they connect, what an environment cannot
//!   hold (NUL, `=` in a key), and more than the configured keys and bytes;
//! - start options and settings are bounded, naming the field; a status error from an agent is cut, not
//!   refused;
//! - a body that never finishes is dropped after `server.body_timeout`; two `Authorization` headers are
//!   refused; the configured token is trimmed; 405 answers carry `Allow`; integer fields accept `5.0` and
//!   refuse `5.5`; cost must be finite and ≥ 0; token counts saturate.

mod common;

use std::time::Duration;

use agent_store::api::endpoints;
use agent_store::testkit::recording::Call;
use common::{assert_error, cost_event, send, status_event, TestApp, PATIENCE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const START: &str = "/v1/projects/p/sessions";

fn start(options: Value) -> Value {
    json!({"provider": "recording", "prompt": "hi", "options": options})
}

/// The permission mode the provider was started with, from the last start call.
fn started_mode(app: &TestApp) -> Option<String> {
    app.recording.calls().iter().rev().find_map(|c| match c {
        Call::Start(spec) => Some(spec.permission_mode.clone()),
        _ => None,
    })?
}

#[actix_web::test]
async fn skipping_permission_checks_needs_the_providers_opt_in() {
    let app = TestApp::spawn().await;
    for mode in [
        "bypassPermissions",
        "danger-full-access",
        "--dangerously-bypass-approvals-and-sandbox",
    ] {
        let (status, body) = send(
            app.post(START)
                .json(&start(json!({"permissionMode": mode}))),
        )
        .await;
        assert_error(
            status,
            &body,
            StatusCode::FORBIDDEN,
            "options.permissionMode: ",
        );
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("providers.recording.allow_bypass_permissions"),
            "{error}"
        );
    }
    // A default set in the settings is held to the same rule, named as the setting.
    let (status, _) = send(
        app.put("/v1/settings")
            .json(&json!({"permission_mode": "bypassPermissions"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(app.post(START).json(&start(json!({})))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "permission_mode: ");
    assert!(app.recording.calls().is_empty());
    // Ordinary modes pass.
    let (status, body) = send(
        app.post(START)
            .json(&start(json!({"permissionMode": "acceptEdits"}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(started_mode(&app).as_deref(), Some("acceptEdits"));
    app.stop().await;

    let app = TestApp::spawn_with(|c| {
        c.providers
            .get_mut("recording")
            .expect("the recording provider")
            .allow_bypass_permissions = true;
    })
    .await;
    let (status, body) = send(
        app.post(START)
            .json(&start(json!({"permissionMode": "bypassPermissions"}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(started_mode(&app).as_deref(), Some("bypassPermissions"));
    app.stop().await;
}

#[actix_web::test]
async fn extra_env_is_refused_by_name_shape_and_size_naming_the_field() {
    let app = TestApp::spawn_with(|c| c.limits.max_extra_env = 8).await;
    let mut cases: Vec<Value> = [
        "LD_PRELOAD",
        "NODE_OPTIONS",
        "NODE_EXTRA_CA_CERTS",
        "HTTPS_PROXY",
        "https_proxy",
        "PATH",
        "HOME",
        "PYTHONPATH",
        "BASH_ENV",
        "GIT_SSH_COMMAND",
        "DYLD_INSERT_LIBRARIES",
    ]
    .iter()
    .map(|k| json!({ *k: "/tmp/x" }))
    .collect();
    cases.push(json!({"A\u{0}B": "x"}));
    cases.push(json!({"A=B": "x"}));
    cases.push(json!({"A": "x\u{0}y"}));
    cases.push(Value::Object(
        (0..9).map(|i| (format!("K{i}"), json!("v"))).collect(),
    ));
    cases.push(json!({"BIG": "x".repeat(64 * 1024)}));
    for env in cases {
        let (status, body) = send(app.post(START).json(&start(json!({"extraEnv": env})))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "options.extraEnv: ");
    }
    assert!(app.recording.calls().is_empty());
    let (status, body) = send(app.post(START).json(&start(
        json!({"extraEnv": {"RUST_LOG": "debug", "GIT_AUTHOR_NAME": "A"}}),
    )))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.stop().await;
}

#[actix_web::test]
async fn settings_and_start_options_are_bounded_naming_the_field() {
    let app = TestApp::spawn().await;
    let (_, before) = send(app.get("/v1/settings")).await;
    let huge = "x".repeat(200 * 1024);
    for (patch, field) in [
        (
            json!({"system_prompt_template": huge}),
            "system_prompt_template: ",
        ),
        (json!({"default_cwd": "/".repeat(5000)}), "default_cwd: "),
        (
            json!({"permission_mode": "m".repeat(5000)}),
            "permission_mode: ",
        ),
    ] {
        let (status, body) = send(app.put("/v1/settings").json(&patch)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, field);
    }
    let (_, after) = send(app.get("/v1/settings")).await;
    assert_eq!(before, after);
    for (options, field) in [
        (json!({"systemPrompt": huge}), "options.systemPrompt: "),
        (json!({"model": "m".repeat(5000)}), "options.model: "),
    ] {
        let (status, body) = send(app.post(START).json(&start(options))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, field);
    }
    assert!(app.recording.calls().is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn a_megabyte_status_error_is_cut_with_a_marker_not_refused() {
    let app = TestApp::spawn().await;
    let sid = app.start("p", "synthetic").await;
    let mut event = status_event(&sid, "error");
    event["payload"]["error"] = json!("E".repeat(1024 * 1024));
    app.ingest_durable(event).await;
    let session = app.session(&sid).await;
    assert_eq!(session["status"], "error");
    let error = session["error"].as_str().unwrap();
    assert!(error.len() <= 8 * 1024, "{}", error.len());
    assert!(error.starts_with("EEEE") && error.ends_with("… [truncated]"));
    app.stop().await;
}

#[actix_web::test]
async fn numbers_are_checked_naming_the_field() {
    let app = TestApp::spawn().await;
    // JSON Schema integers: 5.0 is one, 5.5 is not.
    let (status, body) = send(app.post(START).json(&start(json!({"maxTurns": 5.0})))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    match app.recording.calls().first() {
        Some(Call::Start(spec)) => assert_eq!(spec.max_turns, Some(5)),
        other => panic!("no start: {other:?}"),
    }
    let (status, body) = send(
        app.post("/v1/projects/q/sessions")
            .json(&start(json!({"maxTurns": 5.5}))),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "options.maxTurns: ");
    let (status, body) = send(
        app.put("/v1/settings")
            .json(&json!({"session_retention_count": 7.0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session_retention_count"], 7);
    let (status, body) = send(
        app.put("/v1/settings")
            .json(&json!({"session_retention_days": 7.5})),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "session_retention_days: ",
    );

    let sid = app.start("c", "synthetic").await;
    app.ingest_durable(json!([cost_event(&sid, 0.5, 10, 20)]))
        .await;
    for (cost, field) in [
        (json!(-0.01), "events[0].payload.costUsd: "),
        (json!("1"), "events[0].payload.costUsd: "),
    ] {
        let event = json!([{"event": "agent.cost", "payload": {"sessionId": sid, "costUsd": cost,
            "inputTokens": 1, "outputTokens": 1}}]);
        let (status, body) = send(app.post("/v1/sidecar/events").json(&event)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, field);
    }
    let event = json!([{"event": "agent.cost", "payload": {"sessionId": sid, "costUsd": 1,
        "inputTokens": 1.5, "outputTokens": 1}}]);
    let (status, body) = send(app.post("/v1/sidecar/events").json(&event)).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "events[0].payload.inputTokens: ",
    );
    // Nothing of the refused batches landed.
    let session = app.session(&sid).await;
    assert_eq!(
        (
            &session["costUsd"],
            &session["inputTokens"],
            &session["outputTokens"]
        ),
        (&json!(0.5), &json!(10), &json!(20))
    );
    // Token counts at the top of their range add up without wrapping or panicking.
    let event = json!({"event": "agent.cost", "payload": {"sessionId": sid, "costUsd": 2.0,
        "inputTokens": u64::MAX, "outputTokens": 3.0}});
    app.ingest_durable(event).await;
    let session = app.session(&sid).await;
    assert_eq!(session["inputTokens"], json!(u64::MAX));
    assert_eq!(session["outputTokens"], 3);
    let (status, health) = send(app.get("/v1/health")).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    app.stop().await;
}

#[actix_web::test]
async fn method_not_allowed_answers_carry_allow() {
    let app = TestApp::spawn().await;
    let all = endpoints();
    let mut paths: Vec<&str> = all.iter().map(|e| e.path).collect();
    paths.dedup();
    for path in paths {
        let mut served: Vec<&str> = all
            .iter()
            .filter(|e| e.path == path)
            .map(|e| e.method.as_str())
            .collect();
        let concrete = path
            .replace("{projectId}", "p")
            .replace("{sessionId}", "p-1700000000000");
        let response = app.request(Method::PATCH, &concrete).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let allow = response.headers()["allow"].to_str().unwrap().to_owned();
        let mut listed: Vec<&str> = allow.split(", ").collect();
        listed.sort_unstable();
        served.sort_unstable();
        assert_eq!(listed, served, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ok"], false);
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_repeated_authorization_header_is_refused() {
    for token in [None, Some("hygiene-token")] {
        let app = TestApp::spawn_with(|c| c.server.auth_token = token.map(str::to_owned)).await;
        let bearer = format!("Bearer {}", token.unwrap_or("x"));
        let (status, body) = send(
            app.client
                .get(app.url("/v1/projects"))
                .header("Authorization", &bearer)
                .header("Authorization", "Bearer other"),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "Authorization: ");
        // Either order: neither is trusted.
        let (status, _) = send(
            app.client
                .get(app.url("/v1/projects"))
                .header("Authorization", "Bearer other")
                .header("Authorization", &bearer),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        app.stop().await;
    }
}

#[actix_web::test]
async fn the_configured_token_is_trimmed() {
    let mut app =
        TestApp::spawn_with(|c| c.server.auth_token = Some("  s3cret-token\n".into())).await;
    app.token = Some("s3cret-token".into());
    let (status, _) = send(app.get("/v1/projects")).await;
    assert_eq!(status, StatusCode::OK);
    app.token = Some("s3cret".into());
    let (status, _) = send(app.get("/v1/projects")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Sends headers and half of a declared body over a raw connection, then nothing; returns all the server
/// sent until it closed the connection.
async fn half_a_body(app: &TestApp, method: &str, path: &str, content_type: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
         Content-Length: 1000\r\n\r\n{{\"provider\": \"recording\", "
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer))
        .await
        .expect("the server drops the connection in time")
        .expect("a readable answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_web::test]
async fn a_body_that_never_finishes_is_dropped_after_the_body_timeout() {
    let app = TestApp::spawn_with(|c| c.server.body_timeout = Duration::from_millis(300)).await;
    for (method, path, kind) in [
        ("POST", START, "application/json"),
        ("POST", "/v1/sidecar/events", "application/x-ndjson"),
        ("PUT", "/v1/settings", "application/json"),
    ] {
        let answer = half_a_body(&app, method, path, kind).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.contains("body: not received in full within 300ms"),
            "{path}: {answer}"
        );
    }
    // A route that does not read a body answers at once, and closes the connection rather than wait
    // for the rest (`half_a_body` returns only once the server closed it).
    let answer = half_a_body(&app, "POST", "/v1/projects/p/stop", "application/json").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(app.recording.calls().is_empty());
    // The server goes on serving.
    let (status, _) = send(app.get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
