//! `/v1/health…` and the operations endpoints `/healthz`, `/readyz`, `/metrics`.

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
    assert!(text.lines().any(|l| l == "agent_store_up 1"), "{text}");
    assert!(text.lines().any(|l| l == "agent_store_ready 1"), "{text}");
    app.stop().await;
}
