//! A finished session's seqId ceiling while its project holds it: left in storage by the finish, taken
//! over by the session's next actor, dropped when the project lets go. Engine level, reading storage:
//! the ceiling is not visible through the API.

use super::test_support::{done, engine, sessions_alive, start, text, until};
use crate::messages::commands::Page;

#[actix_rt::test]
async fn a_finished_sessions_ceiling_waits_for_its_project_and_its_next_actor_continues_right_after(
) {
    let (engine, _dir) = engine().await;
    let sid = start(&engine, "c").await;
    let finish = vec![text(&sid, "a"), text(&sid, "b"), done(&sid)];
    engine.ingest(finish, false).await.unwrap();
    // Finished and stored, its actor stops; the project (in its grace) still holds the session.
    until(|| sessions_alive(&engine) == 0).await;
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
