//! A finished session's seqId ceiling while its project holds it: left in storage by the finish, taken
//! over by the session's next actor, dropped when the project lets go. Engine level, reading storage:
//! the ceiling is not visible through the API.

use super::test_support::{engine, finished, sessions_alive, start, text, until};
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

/// A new session's first batch, come before its first record write committed, waits for that write and
/// the seqId reservation riding with it, rather than sending a reservation of its own: the stored ceiling
/// is the riding one (a block past the prompt), not one a block past the batch.
#[actix_rt::test]
async fn a_new_sessions_first_batch_waits_for_the_reservation_riding_with_its_first_write() {
    let (engine, _dir) = engine().await;
    let block = engine.inner.config.storage.seq_block;
    let hold = engine.hold_persister().await.unwrap();
    let sid = start(&engine, "r").await;
    let batch = {
        let engine = engine.clone();
        let sid = sid.clone();
        actix_rt::spawn(async move {
            engine
                .ingest(vec![text(&sid, "a"), text(&sid, "b")], false)
                .await
        })
    };
    // Queued behind the hold: the session's first write, then what the batch sent for its wait.
    until(|| engine.inner.persister.stats().queued_jobs >= 2).await;
    drop(hold);
    batch.await.unwrap().unwrap();
    let store = engine.inner.store.clone();
    // The prompt took seqId 1 before the reservation rode; a reservation of the batch's own was 1,003.
    assert_eq!(store.seq_ceiling(&sid).unwrap(), Some(1 + block));
    // Schema 11: the record holds it, reserved by its own write (no `seq_ceilings` row of its own).
    let record = store.session(&sid).unwrap().expect("stored");
    assert_eq!(record.seq_ceiling, 1 + block);
    let s = engine.session(&sid, Page::default()).await.unwrap();
    let seqs: Vec<u64> = s.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, [1, 2, 3]);
    engine.shutdown().await;
}
