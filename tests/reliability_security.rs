//! Security end to end, beyond the API's own tests (`api_auth`, `api_input`, `api_binary`):
//!
//! - the bearer token guards every path and method: each path of the OpenAPI document and of the route
//!   table, with every method, in spellings that might slip past an exact-path check, and paths that are
//!   no route at all, answer 401 JSON without the token or with a wrong one; only `/healthz` and
//!   `/readyz` answer without it, and the ops console's files (`/`, `/ui/…`) to GET;
//! - the token reaches neither the logs (the real binary at `RUST_LOG=trace`, serving requests with the
//!   right and a wrong token) nor the agents the service starts (their environment);
//! - every route that takes a body refuses one over `server.max_body` with 413; prompts over the limit,
//!   and a cwd that is not an existing absolute directory, are refused naming the field;
//! - no agent process (nor its children) outlives a stop or a shutdown of the real binary.

mod common;
mod reliability_support;

use std::path::Path;
use std::time::Duration;

use agent_store::api::endpoints;
use common::{assert_error, send, TestApp};
use reliability_support::{fixture_bin, group_members, serve, write_config, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "rel-7d1c5e2a-secret-token";
const WRONG: &str = "rel-wrong-guess-4b9e";
const OPEN: [&str; 2] = ["/healthz", "/readyz"];
/// The ops console's files: open to GET, nothing else.
const CONSOLE: [&str; 5] = ["/", "/ui", "/ui/", "/ui/console.js", "/ui/console.css"];

fn concrete(path: &str) -> String {
    path.replace("{projectId}", "sec-p")
        .replace("{sessionId}", "sec-p-1700000000000")
}

/// Spellings of a path that an exact-path check might treat differently from the router.
fn variants(path: &str) -> Vec<String> {
    let mut out = vec![
        path.to_owned(),
        format!("{path}/"),
        format!("/{path}"),
        format!("{path}?token={TOKEN}"),
        path.to_uppercase(),
    ];
    // A percent-encoded letter routes like the letter itself.
    if let Some(i) = path.find(|c: char| c.is_ascii_lowercase()) {
        let c = path.as_bytes()[i];
        out.push(format!("{}%{:02X}{}", &path[..i], c, &path[i + 1..]));
    }
    out
}

#[actix_web::test]
async fn every_path_and_method_needs_the_token_but_the_probes() {
    let mut app = TestApp::spawn_with(|c| c.server.auth_token = Some(TOKEN.into())).await;
    let (status, doc) = send(app.get("/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let mut paths: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths in the OpenAPI document")
        .keys()
        .cloned()
        .collect();
    for e in endpoints() {
        if !paths.iter().any(|p| p == e.path) {
            paths.push(e.path.to_owned());
        }
    }
    assert!(paths.len() >= 20, "{paths:?}");
    paths.extend(
        [
            "/v1",
            "/v1/",
            "/v1/nope",
            "/v1/projects/x/nope",
            "/metrics/x",
            "/",
        ]
        .map(String::from),
    );

    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    let mut checked = 0;
    for path in &paths {
        for spelling in variants(&concrete(path)) {
            let open = OPEN.contains(&spelling.split('?').next().unwrap_or_default());
            for m in &methods {
                for presented in [None, Some(WRONG)] {
                    app.token = presented.map(str::to_owned);
                    // The ops console's files (GET only) hold no data and need no token.
                    if *m == Method::GET
                        && CONSOLE.contains(&spelling.split('?').next().unwrap_or_default())
                    {
                        let answer = app.request(m.clone(), &spelling).send().await.unwrap();
                        assert_ne!(answer.status(), StatusCode::UNAUTHORIZED, "{m} {spelling}");
                        checked += 1;
                        continue;
                    }
                    let (status, body) =
                        send(app.request(m.clone(), &spelling).json(&json!({}))).await;
                    checked += 1;
                    if open {
                        assert_ne!(status, StatusCode::UNAUTHORIZED, "{m} {spelling}");
                        continue;
                    }
                    assert_error(
                        status,
                        &body,
                        StatusCode::UNAUTHORIZED,
                        "missing or wrong bearer token",
                    );
                }
            }
        }
    }
    app.token = None;
    for path in OPEN {
        let (status, _) = send(app.get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path} without a token");
    }
    eprintln!("{checked} unauthenticated requests refused or open as they should be");
    app.stop().await;
}

#[actix_web::test]
async fn every_operation_with_a_body_refuses_one_over_the_limit() {
    let limit = 32 * 1024;
    let app = TestApp::spawn_with(|c| c.server.max_body = common::big(limit)).await;
    app.start("sec-p", "synthetic").await;
    let (_, doc) = send(app.get("/v1/openapi.json")).await;
    // Every documented operation that takes a body, so that a new one cannot escape the limit.
    let mut with_body = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (m, operation) in operations.as_object().expect("operations") {
            if operation.get("requestBody").is_some() {
                let m = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
                with_body.push((m, concrete(path)));
            }
        }
    }
    assert!(with_body.len() >= 5, "{with_body:?}");
    let body = json!({"prompt": "p".repeat(limit + 1), "provider": "synthetic"});
    for (m, path) in with_body {
        let (status, answer) = send(app.request(m.clone(), &path).json(&body)).await;
        assert_error(
            status,
            &answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger",
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn prompts_and_cwds_are_checked_at_every_entry() {
    let app = TestApp::spawn_with(|c| c.limits.max_prompt_bytes = common::big(1024)).await;
    app.start("sec-p", "synthetic").await;
    let (status, body) = send(
        app.post("/v1/projects/sec-p/prompt")
            .json(&json!({"prompt": "q".repeat(1025)})),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "prompt: ");

    let file = app.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap().to_owned();
    for cwd in ["/nonexistent/dir", file.as_str(), "", "./here"] {
        let (status, body) = send(app.post("/v1/projects/sec-q/sessions").json(&json!({
            "provider": "synthetic", "prompt": "go", "options": {"cwd": cwd}
        })))
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "options.cwd: ");
    }
    let (status, _) = send(app.get("/v1/projects/sec-q/session")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was started");
    app.stop().await;
}

/// A configuration whose `claude` provider is the fake agent, with a short stop grace.
fn fake_claude_config(dir: &Path) -> std::path::PathBuf {
    write_config(
        dir,
        Duration::from_millis(50),
        &format!(
            "[providers.claude]\nkind = \"claude\"\ncommand = [\"{}\"]\n",
            fixture_bin("fake-claude")
        ),
    )
}

/// Sets `timers.stop_grace` in a configuration written by `fake_claude_config`.
fn with_stop_grace(config: &Path, grace: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace(
        "[timers]\n",
        &format!("[timers]\nstop_grace = \"{grace}\"\n"),
    );
    std::fs::write(config, text).unwrap();
}

async fn start_fake(server: &Server, project: &str, env: Value) -> String {
    server
        .start(project, "claude", json!({"extraEnv": env}))
        .await
}

/// Waits until `path` holds at least `n` pids (the fake writes its own, then its child's).
async fn pids(path: &Path, n: usize) -> Vec<i32> {
    let deadline = tokio::time::Instant::now() + reliability_support::PATIENCE;
    loop {
        let pids: Vec<i32> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.len() >= n {
            return pids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fake agent did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_reaches_neither_the_logs_nor_the_agents() {
    let dir = tempfile::tempdir().unwrap();
    let config = fake_claude_config(dir.path());
    let data = dir.path().join("data");
    let mut server = serve(
        &config,
        &data,
        &[("AGENT_STORE_TOKEN", TOKEN), ("RUST_LOG", "trace")],
    )
    .await;
    let record = dir.path().join("record.jsonl");
    let sid = start_fake(
        &server,
        "sec-log",
        json!({"FAKE_RECORD": record.to_str().unwrap()}),
    )
    .await;
    // Requests with the right token, a wrong one, and the token where it does not belong.
    server.session(&sid).await;
    let (status, _) = server
        .call(
            server
                .client
                .get(server.url("/v1/projects"))
                .bearer_auth(WRONG),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call(
            server
                .client
                .get(server.url(&format!("/v1/nope?token={TOKEN}"))),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.call(server.request(Method::GET, "/metrics")).await;
    assert_eq!(status, StatusCode::OK);

    // The agent ran with the service's environment, less the token.
    let deadline = tokio::time::Instant::now() + reliability_support::PATIENCE;
    let env = loop {
        let recorded = std::fs::read_to_string(&record).unwrap_or_default();
        if let Some(env) = recorded
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v.get("env").cloned())
        {
            break env;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fake agent did not record"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        env.get("FAKE_RECORD").is_some(),
        "extraEnv reached the agent"
    );
    assert!(
        !env.to_string().contains(TOKEN),
        "the agent's environment holds the service's token"
    );

    let (status, _) = server.terminate(Duration::from_secs(10)).await;
    assert!(status.success());
    let log = server.log_text();
    assert!(log.lines().count() > 20, "trace logging is on: {log}");
    assert!(!log.contains(TOKEN), "the token reached the logs");
    assert!(
        !log.contains(WRONG),
        "a presented (wrong) token reached the logs"
    );
}

/// A token written with a trailing newline (`echo token > file`) is used without it, with a warning that
/// does not show it, instead of locking every client out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_surrounding_whitespace_is_trimmed_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), Duration::from_millis(50), "");
    let padded = format!(" {TOKEN}\n");
    let mut server = serve(
        &config,
        &dir.path().join("data"),
        &[("AGENT_STORE_TOKEN", &padded)],
    )
    .await;
    server.token = Some(TOKEN.into());
    let (status, body) = server
        .call(server.request(Method::GET, "/v1/projects"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.token = Some(WRONG.into());
    let (status, _) = server
        .call(server.request(Method::GET, "/v1/projects"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.terminate(Duration::from_secs(10)).await;
    assert!(status.success());
    let log = server.log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("auth_token"))
        .unwrap_or_else(|| panic!("no warning about the trimmed token: {log}"));
    assert!(warning.contains("trimmed"), "{warning}");
    assert!(!log.contains(TOKEN), "the token reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_outlives_a_stop_or_a_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let config = fake_claude_config(dir.path());
    with_stop_grace(&config, "300ms");
    let data = dir.path().join("data");
    let mut server = serve(&config, &data, &[]).await;
    // Agents that ignore SIGTERM, keep running after their answer and start a child of their own.
    let mut groups = Vec::new();
    for project in ["sec-stop", "sec-shut1", "sec-shut2"] {
        let file = dir.path().join(format!("{project}.pids"));
        start_fake(
            &server,
            project,
            json!({"FAKE_MODE": "ignore-term,stay,child", "FAKE_PIDS": file.to_str().unwrap()}),
        )
        .await;
        let pids = pids(&file, 2).await;
        assert_eq!(
            group_members(pids[0]).len(),
            2,
            "{project}: the agent and its child run in the agent's group"
        );
        groups.push(pids[0]);
    }

    let (status, body) = server
        .call(server.request(Method::POST, "/v1/projects/sec-stop/stop"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        group_members(groups[0]),
        Vec::<i32>::new(),
        "the stopped agent's group is gone when stop answers"
    );

    let (status, took) = server.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    for pgid in &groups[1..] {
        assert_eq!(
            group_members(*pgid),
            Vec::<i32>::new(),
            "agent group {pgid} outlived the shutdown ({took:?})"
        );
    }
}
