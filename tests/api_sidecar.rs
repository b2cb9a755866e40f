//! `POST /v1/sidecar/events`: one event, an array or NDJSON; all-or-nothing parsing with the failing index
//! or line named; message and body limits; durable ingest that survives a restart of the server.

mod common;

use common::{assert_error, cost_event, send, seq_ids, status_event, text_event, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[actix_web::test]
async fn one_event_an_array_and_ndjson_are_accepted_and_unknown_sessions_ignored() {
    let app = TestApp::spawn().await;
    let sid = app.start("ingest", "synthetic").await;

    let body = app.ingest(text_event(&sid, "a", "one")).await;
    assert_eq!(body, json!({"accepted": 1, "ignored": 0}));

    let body = app
        .ingest(json!([
            text_event(&sid, "b", "two"),
            cost_event(&sid, 0.5, 100, 20),
            text_event("ghost-1700000000000", "c", "nobody"),
        ]))
        .await;
    assert_eq!(body, json!({"accepted": 2, "ignored": 1}));

    let ndjson = format!(
        "{}\n\n{}\n",
        text_event(&sid, "d", "three"),
        text_event(&sid, "e", "four")
    );
    let (status, body) = send(
        app.post("/v1/sidecar/events")
            .header("Content-Type", "application/x-ndjson")
            .body(ndjson),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, json!({"accepted": 2, "ignored": 0}))
    );

    let session = app.session(&sid).await;
    let texts: Vec<_> = session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
    assert_eq!(session["costUsd"], 0.5);
    assert_eq!(session["inputTokens"], 100);
    app.stop().await;
}

#[actix_web::test]
async fn a_bad_event_names_its_index_or_line_and_nothing_of_the_batch_is_applied() {
    let app = TestApp::spawn().await;
    let sid = app.start("atomic", "synthetic").await;
    let before = app.session(&sid).await["messageCount"].clone();

    let batch = json!([
        text_event(&sid, "a", "one"),
        text_event(&sid, "b", "two"),
        status_event(&sid, "done"),
        {"event": "agent.message", "payload": {"sessionId": sid, "messages": [{"id": "x", "type": "text", "timestamp": "noon"}]}},
    ]);
    let (status, body) = send(app.post("/v1/sidecar/events").json(&batch)).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "events[3].payload.messages[0].timestamp",
    );

    let ndjson = format!(
        "{}\n{{\"event\": \"agent.status\"\n",
        text_event(&sid, "a", "one")
    );
    let (status, body) = send(
        app.post("/v1/sidecar/events")
            .header("Content-Type", "application/x-ndjson; charset=utf-8")
            .body(ndjson),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "line 2: malformed JSON",
    );

    let (status, body) = send(
        app.post("/v1/sidecar/events")
            .header("Content-Type", "application/json")
            .body("{\"event\": \"agent.message\", "),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "body: malformed JSON",
    );

    let (status, body) = send(
        app.post("/v1/sidecar/events")
            .json(&json!({"event": "agent.unknown", "payload": {}})),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "event: unknown variant",
    );

    let after = app.session(&sid).await;
    assert_eq!(after["messageCount"], before, "nothing applied: {after}");
    assert_eq!(after["status"], "running");
    app.stop().await;
}

#[actix_web::test]
async fn a_message_over_the_size_limit_is_refused_by_index() {
    let app = TestApp::spawn_with(|c| c.limits.max_message_bytes = common::big(1024)).await;
    let sid = app.start("sized", "synthetic").await;
    let big = "x".repeat(2000);
    let batch = json!([
        text_event(&sid, "a", "small"),
        json!({"event": "agent.message", "payload": {
        "sessionId": sid, "messages": [{"id": "b", "type": "text", "content": big, "timestamp": 1}]}})
    ]);
    let (status, body) = send(app.post("/v1/sidecar/events").json(&batch)).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "events[1].payload.messages[0].content: is 2000 bytes, over the limit of 1024",
    );
    assert_eq!(app.session(&sid).await["messageCount"], 1);
    app.stop().await;
}

#[actix_web::test]
async fn a_body_over_max_body_is_413_with_a_json_error() {
    let app = TestApp::spawn_with(|c| c.server.max_body = common::big(64 * 1024)).await;
    let sid = app.start("huge", "synthetic").await;
    let events: Vec<Value> = (0..200)
        .map(|i| text_event(&sid, &format!("m{i}"), &"y".repeat(1000)))
        .collect();
    let (status, body) = send(app.post("/v1/sidecar/events").json(&events)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body is larger than the limit of 65536 bytes",
    );
    // The same limit holds for every JSON body, including chunked ones with no Content-Length.
    let prompt = "z".repeat(100 * 1024);
    let (status, body) = send(
        app.post("/v1/projects/other/sessions")
            .json(&json!({"provider": "synthetic", "prompt": prompt})),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body is larger",
    );
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..100).map(|_| Ok("w".repeat(1024))).collect();
    let stream = futures_util::stream::iter(chunks);
    let (status, body) = send(
        app.post("/v1/sidecar/events")
            .header("Content-Type", "application/json")
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body is larger",
    );
    assert_eq!(app.session(&sid).await["messageCount"], 1);
    app.stop().await;
}

#[actix_web::test]
async fn durable_ingest_survives_a_restart_on_the_same_data_dir() {
    let mut app = TestApp::spawn().await;
    let sid = app.start("durable", "synthetic").await;
    let events: Vec<Value> = (0..10)
        .map(|i| text_event(&sid, &format!("m{i}"), &format!("kept {i}")))
        .collect();
    let body = app.ingest_durable(json!(events)).await;
    assert_eq!(body, json!({"accepted": 10, "ignored": 0}));
    let before = seq_ids(&app.session(&sid).await);
    assert_eq!(before.len(), 11);

    app.restart().await;
    let after = app.session(&sid).await;
    assert_eq!(seq_ids(&after), before);
    assert_eq!(after["messages"][10]["content"], "kept 9");
    assert_eq!(after["projectId"], "durable");
    app.stop().await;
}

#[actix_web::test]
async fn the_durable_parameter_is_checked() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.post("/v1/sidecar/events?durable=yes").json(&text_event(
        "p-1700000000000",
        "a",
        "x",
    )))
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "durable: must be true or false",
    );
    app.stop().await;
}
