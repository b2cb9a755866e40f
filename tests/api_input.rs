//! Bad input on every endpoint answers 400 (or 404/405 for what is not a route) with a JSON error naming the
//! field, parameter or segment at fault, and no input brings the server down.

mod common;

use agent_store::api::endpoints;
use common::{assert_error, method, send, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

const START: &str = "/v1/projects/p/sessions";

#[actix_web::test]
async fn start_bodies_are_checked_field_by_field() {
    let app = TestApp::spawn_with(|c| c.limits.max_prompt_bytes = common::big(1024)).await;
    let cases = [
        (
            json!({"provider": "synthetic", "prompt": "x", "options": {"maxTurns": "ten"}}),
            "options.maxTurns: invalid type",
        ),
        (
            json!({"provider": "synthetic", "prompt": 5}),
            "prompt: invalid type",
        ),
        (
            json!({"provider": ["synthetic"], "prompt": "x"}),
            "provider: invalid type",
        ),
        (
            json!({"provider": "synthetic", "prompt": "x", "options": {"extraEnv": {"A": 1}}}),
            "options.extraEnv.A: invalid type",
        ),
        (json!({"prompt": "x"}), "body: missing field `provider`"),
        (json!({"provider": "synthetic", "prompt": ""}), "prompt: "),
        (
            json!({"provider": "synthetic", "prompt": "   "}),
            "prompt: ",
        ),
        (
            json!({"provider": "synthetic", "prompt": "x".repeat(2000)}),
            "prompt: ",
        ),
        (json!({"provider": "nope", "prompt": "x"}), "provider: "),
        (
            json!({"provider": "synthetic", "prompt": "x", "options": {"cwd": "relative/dir"}}),
            "options.cwd: ",
        ),
    ];
    for (body, prefix) in cases {
        let (status, answer) = send(app.post(START).json(&body)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, prefix);
    }

    let (status, answer) = send(app.post(START).json(&json!({
        "provider": "synthetic", "prompt": "x",
        "options": {"extraEnv": {"PATH_EXTRA": "ok", "CLAUDE_CONFIG_DIR": "/x", "ANTHROPIC_API_KEY": "k"}}
    })))
    .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "options.extraEnv: ",
    );
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("CLAUDE_CONFIG_DIR") && error.contains("ANTHROPIC_API_KEY"),
        "{error}"
    );
    assert!(!error.contains("PATH_EXTRA"), "{error}");

    let (status, answer) = send(app.post(START).json(&json!({
        "provider": "synthetic", "prompt": "x", "options": {"turns": 3}
    })))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `turns`"),
        "{answer}"
    );

    // Nothing was started by any of these.
    let (status, _) = send(app.get("/v1/projects/p/session")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[actix_web::test]
async fn malformed_json_is_refused_against_the_body() {
    let app = TestApp::spawn().await;
    for text in ["{\"provider\": ", "not json", "", "{} {}"] {
        let (status, answer) = send(
            app.post(START)
                .header("Content-Type", "application/json")
                .body(text),
        )
        .await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "body: ");
    }
    app.stop().await;
}

#[actix_web::test]
async fn prompt_bodies_are_checked() {
    let app = TestApp::spawn().await;
    app.start("p", "synthetic").await;
    let cases = [
        (json!({"prompt": 5}), "prompt: invalid type"),
        (json!({}), "body: missing field `prompt`"),
        (json!({"prompt": ""}), "prompt: "),
        (
            json!({"prompt": "x", "extra": 1}),
            "extra: unknown field `extra`",
        ),
    ];
    for (body, prefix) in cases {
        let (status, answer) = send(app.post("/v1/projects/p/prompt").json(&body)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, prefix);
    }
    app.stop().await;
}

/// Every route with a path parameter, with that parameter replaced by `value` (already percent-encoded).
fn routes_with(param: &str, value: &str) -> Vec<(Method, String)> {
    endpoints()
        .into_iter()
        .filter(|e| e.path.contains(param))
        .map(|e| (method(&e.method), e.path.replace(param, value)))
        .collect()
}

#[actix_web::test]
async fn invalid_ids_in_the_path_are_named_on_every_route() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(129);
    for bad in ["bad%20id", "a%2Fb", "caf%C3%A9", long.as_str()] {
        let routes = routes_with("{projectId}", bad);
        assert!(routes.len() >= 8);
        for (m, path) in routes {
            let (status, answer) = send(app.request(m, &path).json(&json!({"prompt": "x"}))).await;
            assert_error(status, &answer, StatusCode::BAD_REQUEST, "projectId: ");
        }
    }
    for bad in ["nodash", "p-12x", "a%20b-17"] {
        for (m, path) in routes_with("{sessionId}", bad) {
            let (status, answer) = send(app.request(m, &path)).await;
            assert_error(status, &answer, StatusCode::BAD_REQUEST, "sessionId: ");
        }
    }
    app.stop().await;
}

#[actix_web::test]
async fn paging_parameters_are_named_when_they_do_not_parse() {
    let app = TestApp::spawn().await;
    let sid = app.start("p", "synthetic").await;
    for base in [
        "/v1/projects/p/session".to_owned(),
        format!("/v1/sessions/{sid}"),
    ] {
        for (query, prefix) in [
            ("afterSeq=-1", "afterSeq: "),
            ("afterSeq=x", "afterSeq: "),
            ("limit=many", "limit: "),
            ("limit=0", "limit: "),
        ] {
            let (status, answer) = send(app.get(&format!("{base}?{query}"))).await;
            assert_error(status, &answer, StatusCode::BAD_REQUEST, prefix);
        }
    }
    app.stop().await;
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let (status, answer) = send(app.get("/v1/nope")).await;
    assert_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        "no route for GET /v1/nope",
    );
    let (status, answer) = send(app.request(Method::PATCH, "/v1/settings")).await;
    assert_error(
        status,
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method PATCH is not allowed",
    );
    app.stop().await;
}

#[actix_web::test]
async fn no_body_brings_the_server_down() {
    let app = TestApp::spawn().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let garbage: Vec<Vec<u8>> = vec![
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"\"text\"".to_vec(),
        b"{\"provider\": null, \"prompt\": null}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        deep.into_bytes(),
        b"{\"event\": \"agent.message\", \"payload\": {\"sessionId\": \"p-1\", \"messages\": [{\"id\": 1}]}}".to_vec(),
        b"1e999999".to_vec(),
    ];
    let writable: Vec<_> = endpoints()
        .into_iter()
        .filter(|e| matches!(e.method.as_str(), "POST" | "PUT"))
        .collect();
    for e in &writable {
        let path = e
            .path
            .replace("{projectId}", "fuzz")
            .replace("{sessionId}", "fuzz-1700000000000");
        for body in &garbage {
            let (status, answer) =
                send(app.request(method(&e.method), &path).body(body.clone())).await;
            assert!(
                status.as_u16() < 500,
                "{} {path}: {status} {answer}",
                e.method
            );
            if !status.is_success() {
                assert_eq!(answer["ok"], false, "{} {path}: {answer}", e.method);
            }
        }
    }
    let (status, _) = send(app.get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
