//! `/v1/sessions/{sessionId}`: any live or stored session by id, paged, and its purge.

mod common;

use common::{assert_error, send, seq_ids, status_event, text_event, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn a_session_is_found_by_id_live_and_after_it_left_its_project() {
    let app = TestApp::spawn().await;
    let sid = app.start("by-id", "synthetic").await;
    app.ingest(json!([
        text_event(&sid, "a", "one"),
        text_event(&sid, "b", "two")
    ]))
    .await;
    let live = app.session(&sid).await;
    assert_eq!(live["projectId"], "by-id");
    assert_eq!(live["status"], "running");
    let seqs = seq_ids(&live);
    assert_eq!(seqs.len(), 3);

    let (status, page) =
        send(app.get(&format!("/v1/sessions/{sid}?afterSeq={}&limit=1", seqs[0]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seq_ids(&page), [seqs[1]]);

    // Done, detached from its project: still readable from storage.
    app.ingest_durable(json!([status_event(&sid, "done")]))
        .await;
    let (status, _) = send(app.delete("/v1/projects/by-id/session")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stored = app.session(&sid).await;
    assert_eq!(stored["status"], "done");
    assert_eq!(seq_ids(&stored), seqs);
    app.stop().await;
}

#[actix_web::test]
async fn an_unknown_session_is_404_and_a_purged_one_is_gone() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.get("/v1/sessions/nobody-1700000000000")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "Session not found");

    let sid = app.start("purge-me", "synthetic").await;
    app.ingest_durable(json!([
        text_event(&sid, "a", "x"),
        status_event(&sid, "done")
    ]))
    .await;
    let (status, body) = send(app.delete(&format!("/v1/sessions/{sid}"))).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, json!(null)));
    let (status, body) = send(app.get(&format!("/v1/sessions/{sid}"))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "Session not found");
    let (_, history) = send(app.get("/v1/projects/purge-me/sessions")).await;
    assert_eq!(history, json!([]));
    app.stop().await;
}
