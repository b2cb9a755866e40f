//! `deploy/`: the Prometheus alert rules pass `promtool check rules`, and every agent-store metric the rules
//! and the Grafana dashboard query is one the server really exports (read from a live `/metrics` after some
//! traffic; a labelled family that has no sample yet must be the name the code registers), so a renamed
//! metric cannot leave a silent panel or an alert that never fires.
//!
//! promtool comes from Debian's `prometheus` package (installed by `.ci/run`); without it the rules check
//! skips with a message, except under `CI=true`, where it fails.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{send, status_event, text_event, TestApp};
use reqwest::StatusCode;
use serde_json::json;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

fn read(file: &str) -> String {
    let path = deploy(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `agent_store_*` or `process_*` metric name in `text`, histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &text[i..];
        let starts_name = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_name && (rest.starts_with("agent_store_") || rest.starts_with("process_")) {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = &rest[..len];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    names
}

/// A labelled family shows in /metrics only once a child has a value (a dropped message, an agent process):
/// such a name must at least be the one the code registers.
fn registered_without_samples(name: &str) -> bool {
    let source = |file: &str| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .unwrap_or_default()
    };
    let short = name.strip_prefix("agent_store_").unwrap_or(name);
    source("src/actors/metrics.rs").contains(&format!("\"{short}\""))
        || source("src/providers/metrics.rs").contains(&format!("\"{name}\""))
}

#[actix_web::test]
async fn the_dashboard_and_the_alerts_query_only_exported_metrics() {
    let app = TestApp::spawn().await;
    // Traffic that makes every labelled family show up: sessions, messages, a commit, a rejected batch, a
    // dead letter, a finished session.
    let session = app.start("deploy", "synthetic").await;
    app.ingest_durable(json!([text_event(&session, "m1", "hello")]))
        .await;
    app.ingest(json!(text_event("deploy-1", "m2", "for nobody")))
        .await;
    let (status, _) = send(app.post("/v1/sidecar/events").json(&json!({"event": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.ingest_durable(status_event(&session, "done")).await;
    let (status, exposition) = {
        let response = app.get("/metrics").send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    let exported: BTreeSet<String> = exposition
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(str::to_owned)
        .collect();
    assert!(
        exported.contains("agent_store_mailbox_depth"),
        "{exposition}"
    );

    let dashboard = read("grafana/agent-store.json");
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert_eq!(parsed["uid"], "agent-store");
    for (file, text) in [
        ("grafana/agent-store.json", dashboard.as_str()),
        (
            "prometheus/alerts.yml",
            read("prometheus/alerts.yml").as_str(),
        ),
    ] {
        let named = metric_names(text);
        assert!(!named.is_empty(), "{file} names no metric");
        let unknown: Vec<_> = named
            .iter()
            .filter(|n| !exported.contains(*n) && !registered_without_samples(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} queries metrics /metrics does not export: {unknown:?}"
        );
    }
    app.stop().await;
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = deploy("prometheus/alerts.yml");
    let output = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("promtool not found on PATH, and CI=true: install prometheus");
            }
            eprintln!("SKIPPED: promtool not found on PATH (apt-get install prometheus)");
            return;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    assert!(
        output.status.success(),
        "promtool check rules {}:\n{}{}",
        rules.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
