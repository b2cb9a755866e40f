//! A finished session's seqId ceiling while its project holds it: left in storage by the finish, taken
//! over by the session's next actor, dropped when the project lets go. Engine level, reading storage:
//! the ceiling is not visible through the API.

use super::test_support::{engine, finished, sessions_alive, text, until};
use crate::messages::commands::Page;

#[actix_rt::test]
async fn a_finished_sessions_ceiling_waits_for_its_project_and_its_next_actor_continues_right_after(
) {
    let (engine, _dir) = engine().await;
    // Finished and stored, its actor stops; the project (in its grace) still holds the session.
    let sid = finished(&engine, "c", &["a", "b"]).await;
    let store = engine.inner.store.clone();
    let held = store.seq_ceiling(&sid).unwrap();
    assert!(
        held.is_some_and(|c| c > 3),
        "the finish leaves the ceiling: {held:?}"
    );

    // A late message: the actor read back takes the ceiling over and continues right after seqId 3.
    engine.ingest(vec![text(&sid, "late")], true).await.unwrap();
    until(|| sessions_alive(&engine) == 0).await;
    let s = engine.session(&sid, Page::default()).await.unwrap();
    let seqs: Vec<u64> = s.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);

    // The project lets go: the ceiling is dropped.
    engine.clear_session("c").await.unwrap();
    until(|| store.seq_ceiling(&sid).unwrap().is_none()).await;
    engine.shutdown().await;
}
