//! Contract test: every route is called, with good and bad input, with and without the token, on a real
//! server; each answer's status must be one the document declares for that operation, and its body must
//! validate against the schema declared for that status (or be empty when none is). Every documented
//! operation must have been called, and have answered both a success and an error.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::common::{text_event, TestApp};
use super::valid::resolve;

const TOKEN: &str = "contract-token";

/// One call: the documented operation (method and path template), the concrete path and query, the body.
struct Call {
    method: Method,
    template: &'static str,
    path: String,
    body: Option<Body>,
    token: bool,
    headers: Vec<(&'static str, &'static str)>,
}

enum Body {
    Json(Value),
    Raw(&'static str, &'static str),
}

fn call(method: Method, template: &'static str, path: impl Into<String>) -> Call {
    Call {
        method,
        template,
        path: path.into(),
        body: None,
        token: true,
        headers: Vec::new(),
    }
}

impl Call {
    fn json(mut self, body: Value) -> Call {
        self.body = Some(Body::Json(body));
        self
    }
    fn raw(mut self, content_type: &'static str, body: &'static str) -> Call {
        self.body = Some(Body::Raw(content_type, body));
        self
    }
    fn anonymous(mut self) -> Call {
        self.token = false;
        self
    }
    fn header(mut self, name: &'static str, value: &'static str) -> Call {
        self.headers.push((name, value));
        self
    }
}

/// Pointer-escapes one segment (`/v1/x` → `~1v1~1x`).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Checks one answer against the document; returns the status.
fn check_answer(doc: &Value, c: &Call, status: StatusCode, content_type: &str, body: &[u8]) {
    let what = format!("{} {} -> {status}", c.method, c.path);
    let method = c.method.as_str().to_lowercase();
    let op = &doc["paths"][c.template][&method];
    assert!(
        op.is_object(),
        "{what}: {} {} is not documented",
        c.method,
        c.template
    );
    let code = status.as_str();
    let declared = &op["responses"][code];
    assert!(
        declared.is_object(),
        "{what}: status {code} is not declared (declared: {:?}); body {}",
        op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(body)
    );
    let Some(content) = declared["content"].as_object() else {
        assert!(body.is_empty(), "{what}: a body where none is declared");
        return;
    };
    let kind = content_type.split(';').next().unwrap_or_default().trim();
    let media = content
        .iter()
        .find(|(declared, _)| declared.split(';').next().unwrap_or_default().trim() == kind)
        .map(|(_, media)| media)
        .unwrap_or_else(|| {
            panic!(
                "{what}: content type {kind:?} is not declared ({:?})",
                content.keys()
            )
        });
    if kind != "application/json" {
        return;
    }
    let instance: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(body)));
    // The whole document is the root, so the schema's `$ref`s resolve; the schema itself is referenced.
    let mut root = doc.clone();
    let pointer = format!(
        "#/paths/{}/{method}/responses/{code}/content/{}/schema",
        escape(c.template),
        escape(kind)
    );
    assert!(resolve(doc, &pointer).is_some(), "{pointer}");
    assert!(media["schema"].is_object());
    // A `$ref` is a URI: the braces of path templates are percent-encoded in its fragment.
    root["$ref"] = json!(pointer.replace('{', "%7B").replace('}', "%7D"));
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("{what}: the declared schema does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the body does not match the declared schema:\n{}\nbody: {instance:#}",
        errors.join("\n")
    );
}

#[actix_web::test]
async fn every_answer_is_one_the_document_declares() {
    let app = TestApp::spawn_with(|c| {
        c.server.auth_token = Some(TOKEN.into());
        // With a token the Origin check applies once the list is set: a listed one, so others get 403.
        c.server.allowed_origins = vec!["http://tool.example".into()];
        // A Claude that asks for a tool permission, so that an approval can be answered.
        c.providers.insert(
            "asker".into(),
            agent_store::config::ProviderConfig {
                kind: agent_store::config::ProviderKind::Claude,
                command: vec![concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/bin/fake-claude-ask"
                )
                .into()],
                default_model: None,
                host: None,
                adapter: None,
                allow_bypass_permissions: false,
            },
        );
    })
    .await;
    let doc = {
        let response = app.get("/v1/openapi.json").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()
    };
    // The served document lists the configured providers.
    assert_eq!(
        doc["components"]["schemas"]["StartRequest"]["properties"]["provider"]["enum"],
        json!(["asker", "recording", "synthetic"])
    );

    let running = app.start("c1", "synthetic").await;
    app.ingest(text_event(&running, "m1", "hello")).await;
    app.start("c2", "synthetic").await;
    let session_of_c1 = format!("/v1/sessions/{running}");
    // One pending approval (agents under control).
    let ask = app
        .client
        .put(app.url("/v1/projects/c5/policy"))
        .bearer_auth(TOKEN)
        .json(&json!({"approvals": "ask"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ask.status(), StatusCode::OK);
    let asking = app.start("c5", "asker").await;
    let deadline = std::time::Instant::now() + super::common::PATIENCE;
    let request_id = loop {
        let list: Value = app
            .client
            .get(app.url("/v1/approvals?projectId=c5"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = list[0]["requestId"].as_str() {
            break id.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let answer = format!("/v1/sessions/{asking}/approvals/{request_id}");
    let start = |p: &str| format!("/v1/projects/{p}/sessions");
    let good_start = json!({"provider": "synthetic", "prompt": "hi"});
    use Method as M;

    let calls = vec![
        call(M::GET, "/v1/projects", "/v1/projects"),
        call(M::GET, "/v1/projects", "/v1/projects").anonymous(),
        call(M::GET, "/v1/projects", "/v1/projects").header("Authorization", "Bearer wrong"),
        call(M::GET, "/v1/projects", "/v1/projects").header("Origin", "http://evil.example"),
        call(M::GET, "/v1/projects", "/v1/projects").header("Authorization", "Bearer again"),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("c3")).json(good_start.clone()),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("c1")).json(good_start.clone()),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("c4"))
            .json(json!({"provider": "nope", "prompt": "hi"})),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("c4"))
            .json(json!({"provider": "synthetic", "prompt": " "})),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("c4")).raw("application/json", "{"),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("c4")).raw("text/plain", "hi"),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("bad%20id")).json(good_start.clone()),
        call(M::POST, "/v1/projects/{projectId}/sessions", start("c4"))
            .json(good_start.clone())
            .anonymous(),
        call(M::GET, "/v1/projects/{projectId}/sessions", "/v1/projects/c1/sessions"),
        call(M::GET, "/v1/projects/{projectId}/sessions", "/v1/projects/a:b/sessions"),
        call(M::POST, "/v1/projects/{projectId}/stop", "/v1/projects/c2/stop"),
        call(M::POST, "/v1/projects/{projectId}/stop", "/v1/projects/none/stop"),
        call(M::POST, "/v1/projects/{projectId}/prompt", "/v1/projects/c1/prompt")
            .json(json!({"prompt": "more"})),
        call(M::POST, "/v1/projects/{projectId}/prompt", "/v1/projects/c1/prompt")
            .json(json!({"prompt": ""})),
        call(M::POST, "/v1/projects/{projectId}/prompt", "/v1/projects/none/prompt")
            .json(json!({"prompt": "more"})),
        call(M::GET, "/v1/projects/{projectId}/session", "/v1/projects/c1/session"),
        call(M::GET, "/v1/projects/{projectId}/session", "/v1/projects/c1/session?afterSeq=1&limit=1"),
        call(M::GET, "/v1/projects/{projectId}/session", "/v1/projects/c1/session?limit=0"),
        call(M::GET, "/v1/projects/{projectId}/session", "/v1/projects/c1/session?afterSeq=-1"),
        call(M::GET, "/v1/projects/{projectId}/session", "/v1/projects/none/session"),
        call(M::DELETE, "/v1/projects/{projectId}/session", "/v1/projects/c1/session"),
        call(M::DELETE, "/v1/projects/{projectId}/session", "/v1/projects/c2/session"),
        call(M::POST, "/v1/projects/{projectId}/session/restore", "/v1/projects/c2/session/restore"),
        call(M::POST, "/v1/projects/{projectId}/session/restore", "/v1/projects/a b/session/restore"),
        call(M::POST, "/v1/projects/{projectId}/session/resume", "/v1/projects/c2/session/resume")
            .json(json!({"prompt": 5})),
        call(M::POST, "/v1/projects/{projectId}/session/resume", "/v1/projects/c2/session/resume")
            .json(json!({"prompt": "again"})),
        call(M::POST, "/v1/projects/{projectId}/session/resume", "/v1/projects/c2/session/resume"),
        call(M::POST, "/v1/projects/{projectId}/session/resume", "/v1/projects/none/session/resume"),
        call(M::PUT, "/v1/projects/{projectId}/stall-threshold", "/v1/projects/c1/stall-threshold")
            .json(json!({"stallAfter": "20m"})),
        call(M::PUT, "/v1/projects/{projectId}/stall-threshold", "/v1/projects/c1/stall-threshold")
            .json(json!({"stallAfter": null})),
        call(M::PUT, "/v1/projects/{projectId}/stall-threshold", "/v1/projects/c1/stall-threshold")
            .json(json!({"stallAfter": "0s"})),
        call(M::PUT, "/v1/projects/{projectId}/stall-threshold", "/v1/projects/c1/stall-threshold")
            .json(json!({})),
        call(M::DELETE, "/v1/projects/{projectId}", "/v1/projects/c9"),
        call(M::DELETE, "/v1/projects/{projectId}", "/v1/projects/a:b"),
        call(M::GET, "/v1/sessions/{sessionId}", session_of_c1.clone()),
        call(M::GET, "/v1/sessions/{sessionId}", format!("{session_of_c1}?afterSeq=0&limit=1")),
        call(M::GET, "/v1/sessions/{sessionId}", format!("{session_of_c1}?limit=x")),
        call(M::GET, "/v1/sessions/{sessionId}", "/v1/sessions/nodash"),
        call(M::GET, "/v1/sessions/{sessionId}", "/v1/sessions/p-1700000000000"),
        call(M::GET, "/v1/sessions/{sessionId}/stderr", format!("{session_of_c1}/stderr")),
        call(M::GET, "/v1/sessions/{sessionId}/stderr", "/v1/sessions/p-1700000000000/stderr"),
        call(M::GET, "/v1/sessions/{sessionId}/stderr", "/v1/sessions/p-/stderr"),
        call(M::DELETE, "/v1/sessions/{sessionId}", "/v1/sessions/p-1700000000000"),
        call(M::DELETE, "/v1/sessions/{sessionId}", "/v1/sessions/p-"),
        call(M::POST, "/v1/sidecar/events", "/v1/sidecar/events").json(text_event(&running, "m2", "x")),
        call(M::POST, "/v1/sidecar/events", "/v1/sidecar/events?durable=true")
            .json(json!([text_event(&running, "m3", "y"), text_event("gone-1", "m4", "z")])),
        call(M::POST, "/v1/sidecar/events", "/v1/sidecar/events").raw(
            "application/x-ndjson",
            "{\"event\": \"agent.status\", \"payload\": {\"sessionId\": \"gone-1\", \"status\": \"done\"}}\n",
        ),
        call(M::POST, "/v1/sidecar/events", "/v1/sidecar/events").json(json!({"event": 1})),
        call(M::POST, "/v1/sidecar/events", "/v1/sidecar/events?durable=maybe").json(json!([])),
        call(M::GET, "/v1/settings", "/v1/settings"),
        call(M::GET, "/v1/settings", "/v1/settings").anonymous(),
        call(M::PUT, "/v1/settings", "/v1/settings").json(json!({"session_retention_count": 3})),
        call(M::PUT, "/v1/settings", "/v1/settings").json(json!({"nope": 1})),
        call(M::GET, "/v1/events", "/v1/events?projectId=c1"),
        call(M::GET, "/v1/events", "/v1/events?projectId=a%20b"),
        call(M::GET, "/v1/events", "/v1/events").header("Last-Event-ID", "garbage"),
        call(M::GET, "/v1/events", "/v1/events?ticket=abc").anonymous(),
        call(M::POST, "/v1/events/ticket", "/v1/events/ticket"),
        call(M::POST, "/v1/events/ticket", "/v1/events/ticket").anonymous(),
        call(M::GET, "/v1/health", "/v1/health"),
        call(M::GET, "/v1/health", "/v1/health").anonymous(),
        call(M::GET, "/v1/health/attention", "/v1/health/attention?limit=3"),
        call(M::GET, "/v1/health/attention", "/v1/health/attention?limit=0"),
        call(M::GET, "/v1/health/aggregates", "/v1/health/aggregates"),
        call(M::GET, "/v1/health/aggregates", "/v1/health/aggregates").anonymous(),
        call(M::GET, "/v1/debug/top", "/v1/debug/top?by=memory&limit=5"),
        call(M::GET, "/v1/debug/top", "/v1/debug/top?by=size"),
        call(M::GET, "/v1/debug/top", "/v1/debug/top?limit=1001"),
        call(M::GET, "/v1/openapi.json", "/v1/openapi.json"),
        call(M::GET, "/v1/openapi.json", "/v1/openapi.json").anonymous(),
        call(M::GET, "/v1/cluster", "/v1/cluster"),
        call(M::GET, "/v1/cluster", "/v1/cluster").anonymous(),
        call(M::GET, "/metrics", "/metrics"),
        call(M::GET, "/metrics", "/metrics").anonymous(),
        call(M::GET, "/healthz", "/healthz").anonymous(),
        call(M::GET, "/readyz", "/readyz").anonymous(),
        call(M::GET, "/v1/projects/{projectId}/policy", "/v1/projects/c1/policy"),
        call(M::GET, "/v1/projects/{projectId}/policy", "/v1/projects/a:b/policy"),
        call(M::PUT, "/v1/projects/{projectId}/policy", "/v1/projects/c1/policy")
            .json(json!({"budget": {"dailyUsd": 100}, "stall": {"action": "interrupt"}})),
        call(M::PUT, "/v1/projects/{projectId}/policy", "/v1/projects/c1/policy")
            .json(json!({"budget": {"sessionUsd": -1}})),
        call(M::GET, "/v1/approvals", "/v1/approvals"),
        call(M::GET, "/v1/approvals", "/v1/approvals?projectId=a%20b"),
        call(M::POST, "/v1/sessions/{sessionId}/approvals/{requestId}", answer.clone())
            .json(json!({"decision": "maybe"})),
        call(M::POST, "/v1/sessions/{sessionId}/approvals/{requestId}", answer.clone())
            .json(json!({"decision": "allow"})),
        call(M::POST, "/v1/sessions/{sessionId}/approvals/{requestId}", answer)
            .json(json!({"decision": "deny"})),
        call(M::GET, "/v1/projects/{projectId}/cost", "/v1/projects/c1/cost?from=2026-01-01"),
        call(M::GET, "/v1/projects/{projectId}/cost", "/v1/projects/c1/cost?to=tomorrow"),
        call(M::GET, "/v1/cost", "/v1/cost"),
        call(M::GET, "/v1/cost", "/v1/cost?from=01-01-2026"),
        call(M::DELETE, "/v1/projects/{projectId}", "/v1/projects/c1?ledger=maybe"),
        call(M::DELETE, "/v1/projects/{projectId}", "/v1/projects/c1?ledger=true"),
    ];

    let mut answered: BTreeMap<(String, &str), BTreeSet<u16>> = BTreeMap::new();
    for c in &calls {
        let mut request = app.client.request(c.method.clone(), app.url(&c.path));
        if c.token {
            request = request.bearer_auth(TOKEN);
        }
        for (name, value) in &c.headers {
            request = request.header(*name, *value);
        }
        request = match &c.body {
            Some(Body::Json(v)) => request.json(v),
            Some(Body::Raw(kind, text)) => request.header("Content-Type", *kind).body(*text),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{}",
                c.path
            );
        }
        // An event stream never ends: its status and type are the answer.
        let body = if content_type.starts_with("text/event-stream") {
            Vec::new()
        } else {
            response.bytes().await.unwrap().to_vec()
        };
        if content_type.starts_with("text/event-stream") {
            let op = &doc["paths"][c.template]["get"]["responses"]["200"]["content"];
            assert!(op.get("text/event-stream").is_some());
        } else {
            check_answer(&doc, c, status, &content_type, &body);
        }
        answered
            .entry((c.method.to_string(), c.template))
            .or_default()
            .insert(status.as_u16());
    }

    // Every documented operation was called, and answered a success and an error (the probes and the
    // document itself have no error to give but the guard's).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let key = (method.to_uppercase(), path.as_str());
            let statuses = answered
                .iter()
                .find(|((m, p), _)| *m == key.0 && *p == key.1)
                .map(|(_, s)| s)
                .unwrap_or_else(|| panic!("{method} {path} was not called"));
            // A node alone has no cluster to show; tests/cluster_nodes.rs checks a cluster node's 200
            // against this document.
            assert!(
                statuses.iter().any(|s| *s < 300) || path == "/v1/cluster",
                "{method} {path}: no success in {statuses:?}"
            );
            if !["/healthz", "/readyz"].contains(&path.as_str()) {
                assert!(
                    statuses.iter().any(|s| *s >= 400),
                    "{method} {path}: no error in {statuses:?}"
                );
            }
        }
    }

    // A method a path does not serve: 405, with the error body.
    let response = app
        .client
        .patch(app.url("/v1/projects"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ok"], false);
    app.stop().await;
}
