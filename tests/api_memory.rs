//! Memory that no client can grow (safe defaults, issue 11 item 3), over real HTTP against the real server:
//! reads of ids that do not exist create no actor, and idle `/v1/events` subscribers hold bounded memory
//! however large the live events they are sent.

mod common;

use common::{send, TestApp};
use reqwest::StatusCode;
use serde_json::Value;

/// One sample of the server's `/metrics`, by name and labels.
async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app
        .get("/metrics")
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(prometheus_parse::Value::Counter(v))
        | Some(prometheus_parse::Value::Gauge(v))
        | Some(prometheus_parse::Value::Untyped(v)) => *v,
        other => panic!("{name}{labels:?} not found: {other:?}"),
    }
}

/// The resident memory of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// Every read a client can make of a project or session that does not exist.
async fn read_unknown(app: &TestApp, i: usize) {
    let project = format!("ghost-{i}");
    for path in [
        format!("/v1/projects/{project}/session"),
        format!("/v1/projects/{project}/sessions"),
        format!("/v1/sessions/{project}-1700000000000"),
    ] {
        let (status, body): (StatusCode, Value) = send(app.get(&path)).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::OK,
            "{path}: {status} {body}"
        );
        if status == StatusCode::OK {
            assert_eq!(body, serde_json::json!([]), "{path}");
        }
    }
    // Commands that only act on a current session are reads of it too.
    let (status, _) = send(app.post(&format!("/v1/projects/{project}/stop"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(app.delete(&format!("/v1/projects/{project}/session"))).await;
    assert!(status.is_success(), "{status}");
    let (status, body) = send(app.post(&format!("/v1/projects/{project}/session/restore"))).await;
    assert!(status.is_success(), "{status} {body}");
}

#[actix_web::test]
async fn reads_of_unknown_ids_create_no_actor_and_hold_no_memory() {
    let app = TestApp::spawn().await;
    let projects = || metric(&app, "agent_store_actors_alive", &[("actor", "project")]);
    // Every kind of read once per id, which also warms up the allocator and the connection pool.
    for i in 0..200 {
        read_unknown(&app, i).await;
    }
    assert_eq!(projects().await, 0.0, "no project actor for an unknown id");
    let before = rss();
    // Then the read a client makes most, for many more distinct ids, a few at a time.
    const READS: usize = 4_000;
    for chunk in (200..200 + READS).collect::<Vec<_>>().chunks(16) {
        let reads = chunk.iter().map(|i| {
            let request = app.get(&format!("/v1/projects/ghost-{i}/session"));
            async move { send(request).await.0 }
        });
        for status in futures_util::future::join_all(reads).await {
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
    }
    assert_eq!(
        projects().await,
        0.0,
        "{READS} distinct unknown projects read"
    );
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 8 << 20,
        "{READS} reads of unknown ids grew the server by {grown} bytes"
    );
    // A project that exists still has its actor, and reads find it.
    let sid = app.start("real", "synthetic").await;
    let (status, body) = send(app.get("/v1/projects/real/session")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sessionId"], sid);
    assert_eq!(projects().await, 1.0);
    app.stop().await;
}
