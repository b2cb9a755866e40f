//! A session read back for late events is offered to its project (`Revived`, through the supervisor),
//! which attaches it while it is in memory: the project's health hears what the late events changed
//! however long the offer takes, because the session does not stop before the offer is settled. The
//! supervisor is held (its arbiter blocked) to order the messages by hand: without the wait, the session
//! stores its late events and asks to stop before the project's `Attach` can reach it.

use super::test_support::{engine, event, eventually, finished, sessions_alive, text, until};
use crate::actors::router::FindSession;

/// Blocks the supervisor's arbiter until the answer is dropped or sent.
async fn hold_the_supervisor(engine: &super::Engine) -> std::sync::mpsc::Sender<()> {
    let (held, holding) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    engine.inner.control_arbiter.spawn(async move {
        let _ = held.send(());
        let _ = released.recv();
    });
    holding.await.unwrap();
    release
}

#[actix_rt::test]
async fn a_session_read_back_for_late_events_waits_for_its_projects_attach_before_it_stops() {
    let (engine, _dir) = engine().await;
    // Finished and stored: its actor stops, and the project (in its grace) keeps its id.
    let sid = finished(&engine, "v", &["a"]).await;

    let release = hold_the_supervisor(&engine).await;
    // Tokens bring context pressure into the project's health.
    let cost = event(
        "agent.cost",
        serde_json::json!({"sessionId": sid, "costUsd": 0.5, "inputTokens": 100, "outputTokens": 20}),
    );
    let outcome = engine.ingest(vec![cost], true).await.unwrap();
    assert_eq!((outcome.accepted, outcome.ignored), (1, 0));
    // Stored and answered. Had it asked its router to stop (`MayRetire`, sent as the write committed,
    // before the answer), the router would have dropped its route before it handles this look-up.
    let routed = engine
        .router("v")
        .send(FindSession {
            session_id: sid.clone(),
        })
        .await
        .unwrap();
    assert!(
        routed.is_some(),
        "the session read back waits for its project's answer before it asks to stop"
    );

    drop(release);
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
    // The supervisor drops the offer, which settles it: the session stops once its event is stored.
    until(|| sessions_alive(&engine) == 0).await;
    engine.shutdown().await;
}
