//! A session read back for late events is offered to its project (`Revived`, by its router, which holds
//! the project's directory), which attaches it while it is in memory: the project's health hears what the
//! late events changed, because the session does not stop before the offer is settled (the order itself
//! is the session state's, tested without actix: session/state_tests.rs
//! `a_session_offered_to_its_project_stops_only_once_the_offer_is_settled`).

use super::test_support::{engine, event, eventually, finished, sessions_alive, text, until};

#[actix_rt::test]
async fn a_session_read_back_for_late_events_is_attached_by_its_project_in_memory() {
    let (engine, _dir) = engine().await;
    // Finished and stored: its actor stops, and the project (in its grace) keeps its id.
    let sid = finished(&engine, "v", &["a"]).await;

    // Tokens bring context pressure into the project's health.
    let cost = event(
        "agent.cost",
        serde_json::json!({"sessionId": sid, "costUsd": 0.5, "inputTokens": 100, "outputTokens": 20}),
    );
    let outcome = engine.ingest(vec![cost], true).await.unwrap();
    assert_eq!((outcome.accepted, outcome.ignored), (1, 0));

    // The offer reaches the project: it attaches the session, whose cost reaches its health.
    eventually(|| async {
        let health = engine.health().await.unwrap();
        let v = health.iter().find(|h| h.project_id == "v")?;
        v.context_pressure.filter(|p| *p > 0.0)
    })
    .await;
    // The offer settled, it lets go again.
    until(|| sessions_alive(&engine) == 0).await;
    engine.shutdown().await;
}

#[actix_rt::test]
async fn a_session_read_back_with_no_project_in_memory_lets_go_once_stored() {
    let (engine, _dir) = engine().await;
    let sid = finished(&engine, "w", &["a"]).await;
    // The project lets go of the session (a clear) and then stops: no project takes the offer.
    engine.clear_session("w").await.unwrap();
    until(|| {
        engine
            .metrics()
            .actors_alive
            .with_label_values(&["project"])
            .get()
            == 0
    })
    .await;
    engine.ingest(vec![text(&sid, "late")], true).await.unwrap();
    // The router drops the offer, which settles it: the session stops once its event is stored.
    until(|| sessions_alive(&engine) == 0).await;
    engine.shutdown().await;
}
