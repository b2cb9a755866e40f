//! Metrics counted at the edges, outside the actors: ingest batches the HTTP API refuses, HTTP requests by
//! route and status class, and provider processes (alive, exits by outcome, skipped output lines). Driven
//! through the real server and real fake-agent processes; the values must equal the workload.

mod common;
mod providers_support;

use agent_store::messages::wire::AgentStatus;
use common::TestApp;
use serde_json::json;

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus exposition");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map_or(0.0, |s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[actix_rt::test]
async fn refused_batches_and_requests_are_counted_by_reason_and_route() {
    let app = TestApp::spawn_with(|c| c.server.max_body = bytesize::ByteSize::kib(4)).await;
    let ok = app
        .post("/v1/sidecar/events")
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let bad = app
        .post("/v1/sidecar/events")
        .json(&json!([{"event": "agent.nonsense", "payload": {}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let big = app
        .post("/v1/sidecar/events")
        .header("content-type", "application/json")
        .body(vec![b' '; 8 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let text = app.metrics_text().await;
    assert_eq!(
        sample(
            &text,
            "agent_store_events_rejected_total",
            &[("reason", "invalid")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "agent_store_events_rejected_total",
            &[("reason", "body")]
        ),
        1.0
    );
    let route = ("route", "/v1/sidecar/events");
    assert_eq!(
        sample(
            &text,
            "agent_store_http_requests_total",
            &[route, ("status", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "agent_store_http_requests_total",
            &[route, ("status", "4xx")]
        ),
        2.0
    );
    app.stop().await;
}

#[actix_rt::test]
async fn provider_processes_are_counted_alive_and_by_exit() {
    let h = providers_support::start(|_, _| {}).await;
    let before = h.engine.metrics_text();
    let exits = |t: &str, outcome| {
        sample(
            t,
            "agent_store_provider_exits_total",
            &[("provider", "claude"), ("outcome", outcome)],
        )
    };
    let skipped = |t: &str| sample(t, "agent_store_provider_skipped_lines_total", &[]);
    h.start_session("ok", "claude", "hi", &[("FAKE_MODE", "garbage")])
        .await
        .unwrap();
    assert_eq!(h.finished("ok").await.status, AgentStatus::Done);
    h.start_session("bad", "claude", "hi", &[("FAKE_MODE", "crash")])
        .await
        .unwrap();
    assert_eq!(h.finished("bad").await.status, AgentStatus::Error);
    // A session's status can come before its process is reaped: wait for both exits and no process left.
    let alive = |t: &str| {
        sample(
            t,
            "agent_store_provider_processes_alive",
            &[("provider", "claude")],
        )
    };
    let after = providers_support::eventually(std::time::Duration::from_secs(20), || async {
        let t = h.engine.metrics_text();
        let counted = exits(&t, "failure") > exits(&before, "failure")
            && exits(&t, "success") > exits(&before, "success")
            && alive(&t) == 0.0;
        counted.then_some(t)
    })
    .await;
    assert_eq!(exits(&after, "success") - exits(&before, "success"), 1.0);
    assert_eq!(exits(&after, "failure") - exits(&before, "failure"), 1.0);
    assert!(
        skipped(&after) > skipped(&before),
        "garbage lines are counted"
    );
    h.engine.shutdown().await;
}
