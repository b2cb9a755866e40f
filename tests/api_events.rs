//! `GET /v1/events` over real HTTP: event names and shapes, the project filter, keep-alive comments,
//! `Last-Event-ID` resume after a reconnect, a lagging subscriber, and streams ending when the server stops.

mod common;

use std::time::Duration;

use common::{assert_error, cost_event, send, seq_ids, status_event, text_event, Frame, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[actix_web::test]
async fn live_events_carry_the_contract_names_and_shapes() {
    let app = TestApp::spawn().await;
    let mut events = app.events("", None).await;
    let sid = app.start("live", "synthetic").await;

    app.ingest(json!([text_event(&sid, "t1", "hello there")]))
        .await;
    // The prompt's message may come first; wait for the text.
    let data = loop {
        let (_, data) = events.next_named("session.messages").await;
        let messages = data["messages"].as_array().unwrap();
        if messages.iter().any(|m| m["content"] == "hello there") {
            break data;
        }
    };
    assert_eq!(data["sessionId"], sid);
    assert_eq!(data["projectId"], "live");
    let last = data["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"], "hello there");
    assert_eq!(last["role"], "assistant");

    app.ingest(json!([
        cost_event(&sid, 1.25, 1000, 200),
        status_event(&sid, "done")
    ]))
    .await;
    let (mut cost, mut done, mut notification) = (None, None, None);
    while cost.is_none() || done.is_none() || notification.is_none() {
        let (name, _, data) = events.next_event().await;
        match name.as_str() {
            "session.cost" => cost = Some(data),
            "session.status" if data["status"] == "done" => done = Some(data),
            "notification" => notification = Some(data),
            _ => {}
        }
    }
    assert_eq!(
        cost.unwrap(),
        json!({"sessionId": sid, "projectId": "live", "costUsd": 1.25, "inputTokens": 1000, "outputTokens": 200})
    );
    assert_eq!(
        done.unwrap(),
        json!({"sessionId": sid, "projectId": "live", "status": "done"})
    );
    assert_eq!(
        notification.unwrap(),
        json!({"projectId": "live", "message": "Agent completed on live", "variant": "success"})
    );
    app.stop().await;
}

#[actix_web::test]
async fn session_messages_ids_name_the_session_and_last_seq() {
    let app = TestApp::spawn().await;
    let sid = app.start("ids", "synthetic").await;
    let mut events = app.events("?projectId=ids", None).await;
    app.ingest(json!([text_event(&sid, "a", "one")])).await;
    let last = app.session(&sid).await["lastSeqId"].as_u64().unwrap();
    // messages_until checks every frame's id against its last seqId.
    let seen = events.messages_until(&sid, last).await;
    assert_eq!(seen, [last]);
    app.stop().await;
}

#[actix_web::test]
async fn a_project_filter_keeps_other_projects_out() {
    let app = TestApp::spawn().await;
    let mut events = app.events("?projectId=mine", None).await;
    let other = app.start("theirs", "synthetic").await;
    app.ingest(json!([text_event(&other, "x", "not for me")]))
        .await;
    let mine = app.start("mine", "synthetic").await;
    app.ingest(json!([text_event(&mine, "y", "for me")])).await;

    loop {
        let (name, _, data) = events.next_event().await;
        if name == "lagged" {
            continue;
        }
        let project = data["projectId"].as_str().unwrap_or_default().to_owned();
        assert_eq!(project, "mine", "{name} {data}");
        if name == "session.messages"
            && data["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["content"] == "for me")
        {
            break;
        }
    }
    app.stop().await;
}

#[actix_web::test]
async fn an_idle_stream_sends_keep_alive_comments() {
    let app = TestApp::spawn_with(|c| c.server.sse_keep_alive = Duration::from_millis(100)).await;
    let mut events = app.events("", None).await;
    let mut comments = Vec::new();
    while comments.len() < 3 {
        match events.next_frame().await.expect("the stream goes on") {
            Frame::Comment(text) => comments.push(text),
            Frame::Event { .. } => {}
        }
    }
    assert_eq!(comments[0], "connected");
    assert_eq!(comments[1..], ["keep-alive", "keep-alive"]);
    app.stop().await;
}

#[actix_web::test]
async fn a_reconnect_with_last_event_id_resumes_without_gaps_or_duplicates() {
    let app = TestApp::spawn().await;
    let sid = app.start("resume", "synthetic").await;
    let mut events = app.events("?projectId=resume", None).await;
    let first: Vec<Value> = (0..3)
        .map(|i| text_event(&sid, &format!("a{i}"), &format!("first {i}")))
        .collect();
    app.ingest(json!(first)).await;
    let upto = app.session(&sid).await["lastSeqId"].as_u64().unwrap();
    events.messages_until(&sid, upto).await;
    drop(events);

    // Missed while disconnected.
    let missed: Vec<Value> = (0..4)
        .map(|i| text_event(&sid, &format!("b{i}"), &format!("missed {i}")))
        .collect();
    app.ingest_durable(json!(missed)).await;
    let session = app.session(&sid).await;
    let all = seq_ids(&session);
    let expected: Vec<u64> = all.iter().copied().filter(|s| *s > upto).collect();
    assert_eq!(expected.len(), 4);

    let mut events = app
        .events("?projectId=resume", Some(&format!("{sid}:{upto}")))
        .await;
    let resumed = events.messages_until(&sid, *expected.last().unwrap()).await;
    assert_eq!(resumed, expected);

    // Then live, continuing where the backlog ended.
    app.ingest(json!([text_event(&sid, "c", "live again")]))
        .await;
    let next = events
        .messages_until(&sid, expected.last().unwrap() + 1)
        .await;
    assert_eq!(next, [expected.last().unwrap() + 1]);
    app.stop().await;
}

#[actix_web::test]
async fn a_lagging_subscriber_gets_lagged_then_every_missed_message_from_storage() {
    // A small subscriber buffer, so that fewer messages make it lag.
    let app = TestApp::spawn_with(|c| c.limits.subscriber_buffer = 16).await;
    lag_then_catch_up(app).await;
}

#[actix_web::test]
async fn a_subscriber_lags_once_its_waiting_frames_pass_the_byte_budget() {
    // Room for any number of events, but only 256 KiB of them: the bytes bound the buffer.
    let app = TestApp::spawn_with(|c| {
        c.limits.subscriber_buffer = 1_000_000;
        c.limits.subscriber_buffer_bytes = bytesize::ByteSize::kib(256);
    })
    .await;
    lag_then_catch_up(app).await;
}

/// 1,500 messages of 16 KiB to a subscriber that does not read until they are all in: it must get
/// `lagged`, then every message exactly once, the missed ones read back from storage.
async fn lag_then_catch_up(app: TestApp) {
    let sid = app.start("flood", "synthetic").await;
    let start_seq = app.session(&sid).await["lastSeqId"].as_u64().unwrap();
    // Subscribed, but not reading: the kernel buffers fill, then the subscriber's bounded buffer.
    let mut events = app.events("?projectId=flood", None).await;
    let text = "z".repeat(16 * 1024);
    const MESSAGES: usize = 1500;
    for i in 0..MESSAGES {
        let (status, body) = send(app.post("/v1/sidecar/events").json(&text_event(
            &sid,
            &format!("m{i}"),
            &text,
        )))
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let last = app.session(&sid).await["lastSeqId"].as_u64().unwrap();
    assert_eq!(last, start_seq + MESSAGES as u64);

    let mut seen: Vec<u64> = Vec::new();
    let mut missed = 0;
    while seen.last() != Some(&last) {
        let (name, id, data) = events.next_event().await;
        match name.as_str() {
            "lagged" => {
                let n = data["missed"].as_u64().expect("missed count");
                assert!(n > 0, "{data}");
                missed += n;
            }
            "session.messages" => {
                let seqs = seq_ids(&data);
                assert_eq!(
                    id,
                    Some(format!("{sid}:{}", seqs.last().unwrap())),
                    "the id names the last seqId"
                );
                seen.extend(seqs);
            }
            _ => {}
        }
    }
    assert!(missed > 0, "the subscriber should have lagged");
    let expected: Vec<u64> = (start_seq + 1..=last).collect();
    assert_eq!(seen.len(), expected.len(), "no duplicates, no gaps");
    assert_eq!(seen, expected);
    app.stop().await;
}

#[actix_web::test]
async fn bad_filters_and_resume_ids_are_named() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.get("/v1/events?projectId=a%2Fb")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "projectId: ");
    let (status, body) = send(app.get("/v1/events").header("Last-Event-ID", "garbage")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "Last-Event-ID: ");
    app.stop().await;
}

#[actix_web::test]
async fn streams_end_when_the_server_stops() {
    let app = TestApp::spawn().await;
    let mut events = app.events("", None).await;
    assert_eq!(
        events.next_frame().await,
        Some(Frame::Comment("connected".into()))
    );
    let stopping = actix_rt::spawn(app.stop());
    while let Some(frame) = events.next_frame().await {
        assert!(matches!(frame, Frame::Comment(_)), "{frame:?}");
    }
    stopping.await.unwrap();
}

/// A subscriber that lagged also gets the status, cost and notification events it missed (from the
/// journal), each once, in order with the messages of their session.
#[actix_web::test]
async fn a_lagging_subscriber_gets_the_status_and_cost_events_it_missed_too() {
    let app = TestApp::spawn_with(|c| c.limits.subscriber_buffer = 16).await;
    let sid = app.start("lagcost", "synthetic").await;
    let mut events = app.events("?projectId=lagcost", None).await;
    // Not reading: the buffer fills and the events after it are dropped for this subscriber.
    // 12 MB: more than the socket buffers on the way hold, so the subscriber's own buffer fills.
    let text = "z".repeat(30 * 1024);
    for batch in 0..8 {
        let events: Vec<Value> = (0..50)
            .map(|i| text_event(&sid, &format!("m{batch}-{i}"), &text))
            .collect();
        app.ingest(json!(events)).await;
    }
    app.ingest(cost_event(&sid, 0.5, 10, 20)).await;
    app.ingest(text_event(&sid, "last", "after the cost")).await;
    let last = app.session(&sid).await["lastSeqId"].as_u64().unwrap();

    let (mut lagged, mut costs, mut ids) = (false, 0, std::collections::HashSet::new());
    let mut seqs: Vec<u64> = Vec::new();
    let mut cost_after = None;
    let mut seen = Vec::new();
    while seqs.last() != Some(&last) {
        let (name, id, data) = events.next_event().await;
        seen.push(format!("{name} {}", id.as_deref().unwrap_or_default()));
        if let Some(id) = id {
            assert!(ids.insert(id.clone()), "{name} {id} sent twice");
        }
        match name.as_str() {
            "lagged" => lagged = true,
            "session.cost" => {
                assert_eq!(data["costUsd"], 0.5);
                costs += 1;
                cost_after = seqs.last().copied();
            }
            "session.messages" => seqs.extend(seq_ids(&data)),
            _ => {}
        }
    }
    assert!(lagged, "the subscriber lagged");
    assert_eq!(costs, 1, "the missed cost event, once: {seen:?}");
    assert_eq!(
        cost_after,
        Some(last - 1),
        "in its place: after the 400 messages, before the last one"
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    app.stop().await;
}
