//! A finished session's seqId ceiling: its record's dropped by its last write, a `seq_ceilings` one left
//! in storage while its project holds it, taken over by the session's next actor, dropped when the
//! project lets go. Engine level, reading storage: the ceiling is not visible through the API.

use super::test_support::{engine, finished, sessions_alive, start, text, until};
use crate::messages::commands::Page;

/// A finished session that reserved past its first block (here 600 messages, over half of it: a block
/// reserved ahead in `seq_ceilings`) leaves that ceiling for its project; its record holds none.
#[actix_rt::test]
async fn a_finished_sessions_ceiling_waits_for_its_project_and_its_next_actor_continues_right_after(
) {
    let (engine, _dir) = engine().await;
    let block = engine.inner.config.storage.seq_block;
    let names: Vec<String> = (0..600).map(|i| format!("m{i}")).collect();
    let texts: Vec<&str> = names.iter().map(String::as_str).collect();
    // Finished and stored, its actor stops; the project (in its grace) still holds the session.
    let sid = finished(&engine, "c", &texts).await;
    let store = engine.inner.store.clone();
    let held = store.seq_ceiling(&sid).unwrap();
    assert!(
        held.is_some_and(|c| c > 1 + block),
        "the finish leaves the ceiling: {held:?}"
    );
    let record = store.session(&sid).unwrap().expect("stored");
    assert_eq!(
        record.seq_ceiling, 0,
        "the record's went with its last write"
    );

    // A late message: the actor read back takes the ceiling over and continues right after seqId 601.
    engine.ingest(vec![text(&sid, "late")], true).await.unwrap();
    until(|| sessions_alive(&engine) == 0).await;
    let s = engine.session(&sid, Page::default()).await.unwrap();
    assert_eq!(s.messages.last().map(|m| m.seq_id), Some(602));

    // The project lets go: the ceiling is dropped.
    engine.clear_session("c").await.unwrap();
    until(|| store.seq_ceiling(&sid).unwrap().is_none()).await;
    engine.shutdown().await;
}

/// A finished session whose only reservation was its first block, held by its record (schema 11), drops
/// it with its last write: nothing is left for its project to hold and release (no rewrite of the record
/// later), and a late message's actor reserves anew and continues right after the last stored seqId.
#[actix_rt::test]
async fn a_finished_sessions_first_block_goes_with_its_last_write() {
    let (engine, _dir) = engine().await;
    let sid = finished(&engine, "c", &["a", "b"]).await;
    let store = engine.inner.store.clone();
    assert_eq!(store.seq_ceiling(&sid).unwrap(), None);
    let record = store.session(&sid).unwrap().expect("stored");
    assert_eq!((record.seq_ceiling, record.last_seq), (0, 3));

    engine.ingest(vec![text(&sid, "late")], true).await.unwrap();
    until(|| sessions_alive(&engine) == 0).await;
    let s = engine.session(&sid, Page::default()).await.unwrap();
    let seqs: Vec<u64> = s.messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
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
