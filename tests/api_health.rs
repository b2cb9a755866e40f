//! `/v1/health…` and the operations endpoints `/healthz`, `/readyz`, `/metrics`, and the names the
//! service gives its threads for an operator's `top -H`.

mod common;

use common::{assert_error, send, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn health_lists_every_project_and_attention_only_those_needing_it() {
    let app = TestApp::spawn().await;
    app.start("calm", "synthetic").await;
    app.recording.fail_start(Some("cannot start"));
    let (status, _) = send(
        app.post("/v1/projects/broken/sessions")
            .json(&json!({"provider": "recording", "prompt": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    let (status, health) = send(app.get("/v1/health")).await;
    assert_eq!(status, StatusCode::OK);
    let health = health.as_array().unwrap();
    let ids: Vec<_> = health
        .iter()
        .map(|h| h["projectId"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"calm") && ids.contains(&"broken"), "{ids:?}");
    let scores: Vec<_> = health
        .iter()
        .map(|h| h["attentionScore"].as_u64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "highest first: {scores:?}"
    );
    for key in [
        "activityState",
        "idleDurationMs",
        "burnRatePerHour",
        "attentionScore",
    ] {
        assert!(health[0].get(key).is_some(), "{key} in {}", health[0]);
    }

    let (status, needy) = send(app.get("/v1/health/attention?limit=1")).await;
    assert_eq!(status, StatusCode::OK);
    let needy = needy.as_array().unwrap();
    assert!(needy.len() <= 1);
    assert!(needy
        .iter()
        .all(|h| h["attentionScore"].as_u64().unwrap() > 0));

    let (status, body) = send(app.get("/v1/health/attention?limit=lots")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "limit: ");
    app.stop().await;
}

#[actix_web::test]
async fn aggregates_count_projects_by_state() {
    let app = TestApp::spawn().await;
    app.start("one", "synthetic").await;
    app.start("two", "synthetic").await;
    let (status, totals) = send(app.get("/v1/health/aggregates")).await;
    assert_eq!(status, StatusCode::OK);
    let count = |k: &str| {
        totals[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {totals}"))
    };
    assert_eq!(
        count("running") + count("idle") + count("stalled"),
        2,
        "{totals}"
    );
    assert!(totals["totalBurnRatePerHour"].is_number());
    app.stop().await;
}

#[actix_web::test]
async fn probes_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.get("/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    let (status, body) = send(app.get("/readyz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));

    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    let text = response.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("# TYPE agent_store_")),
        "{text}"
    );
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    for sample in samples {
        let value = sample.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "sample {sample:?}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn the_services_threads_are_named_by_what_they_run() {
    let app = TestApp::spawn().await;
    // An answered request: its worker has built its app, and the engine is up.
    let (status, _) = send(app.get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    // The server runs in this test process: its threads are this process's.
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .collect();
    for name in [
        "http-worker",
        "engine-0",
        "control",
        "publisher",
        "persister",
    ] {
        assert!(names.iter().any(|n| n == name), "no {name} in {names:?}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn a_project_stall_threshold_is_set_over_the_api_and_a_stall_asks_for_attention() {
    let app = TestApp::spawn().await;
    app.start("sleepy", "synthetic").await;
    let path = "/v1/projects/sleepy/stall-threshold";
    let (status, health) = send(app.put(path).json(&json!({"stallAfter": "20m"}))).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["projectId"], "sleepy");
    assert_eq!(health["stallThresholdMs"], 1_200_000);
    let (_, health) = send(app.put(path).json(&json!({"stallAfter": null}))).await;
    assert_eq!(
        health["stallThresholdMs"], 900_000,
        "back to timers.stall_after"
    );

    for (body, prefix) in [
        (json!({"stallAfter": "soon"}), "stallAfter: "),
        (
            json!({"stallAfter": "0s"}),
            "stallAfter: must be above zero",
        ),
        (json!({"stallAfter": 5}), "stallAfter: "),
        (json!({}), "body: missing field `stallAfter`"),
    ] {
        let (status, answer) = send(app.put(path).json(&body)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, prefix);
    }

    let (status, _) = send(app.put(path).json(&json!({"stallAfter": "100ms"}))).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let (_, needy) = send(app.get("/v1/health/attention")).await;
        if let Some(top) = needy.as_array().unwrap().first() {
            if top["projectId"] == "sleepy" && top["activityState"] == "stalled" {
                assert_eq!(top["attentionScore"], 100, "{top}");
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never stalled: {needy}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[actix_web::test]
async fn debug_top_lists_the_busiest_actors() {
    let app = TestApp::spawn().await;
    let sid = app.start("busy", "synthetic").await;
    app.ingest(json!([common::text_event(&sid, "a", "x")]))
        .await;
    let (status, top) = send(app.get("/v1/debug/top?by=messages&limit=2")).await;
    assert_eq!(status, StatusCode::OK, "{top}");
    let top = top.as_array().unwrap();
    assert!(!top.is_empty() && top.len() <= 2, "{top:?}");
    assert!(top.iter().any(|e| e["projectId"] == "busy"), "{top:?}");
    for key in ["actor", "mailboxDepth", "messagesHandled", "memoryBytes"] {
        assert!(top[0].get(key).is_some(), "{key} in {}", top[0]);
    }
    for (query, prefix) in [
        ("by=cpu", "by: "),
        ("limit=5000", "limit: "),
        ("limit=0", "limit: "),
    ] {
        let (status, body) = send(app.get(&format!("/v1/debug/top?{query}"))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, prefix);
    }
    app.stop().await;
}
