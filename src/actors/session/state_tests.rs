//! The session state machine's rules, without an actor.

use super::*;
use crate::messages::wire::MsgRole;
use crate::storage::{StorageError, WriteOp};

const RULES: Rules = Rules {
    messages_in_memory: 4,
    debounce: Duration::from_millis(100),
    retry: Duration::from_millis(10),
    retry_max: Duration::from_millis(40),
    seq_block: 1000,
};

fn record(status: AgentStatus) -> SessionRecord {
    SessionRecord::new("p-1", "p", "synthetic", status, 0)
}

fn message(text: &str) -> AgentMessage {
    AgentMessage {
        id: text.into(),
        seq_id: 0,
        role: MsgRole::Assistant,
        content: text.into(),
        tool: None,
        timestamp: 0,
    }
}

/// A session in `status` with nothing in its window; `persisted`: its record is in storage.
fn session(status: AgentStatus, persisted: bool, detached: bool) -> SessionState {
    SessionState::new(
        record(status),
        Vec::new(),
        persisted,
        detached,
        RULES.into(),
    )
}

fn stored(status: AgentStatus) -> SessionState {
    session(status, true, false)
}

/// A finished session read back for a late event, detached, and offered to its project (`Revived`).
fn offered() -> SessionState {
    let mut s = session(AgentStatus::Done, true, true);
    s.offered = true;
    s
}

/// The ops of the flush that `begin_flush` decides, given what the actor holds of the ceiling.
fn flush_ops(s: &mut SessionState, riding: &mut Option<u64>, hands_over: bool) -> Vec<WriteOp> {
    let FlushStep::Write(ops) = s.begin_flush(Instant::now(), riding, hands_over).0 else {
        panic!("expected a write");
    };
    ops
}

/// Flushes and completes the write with `result`.
fn flush(s: &mut SessionState, result: Result<(), StorageError>) -> AfterWrite {
    let now = Instant::now();
    flush_ops(s, &mut None, false);
    let (upto, retention) = s.queued();
    s.written(upto, retention, result, now).0
}

#[test]
fn the_first_change_arms_one_debounce_and_later_ones_none() {
    let mut s = stored(AgentStatus::Running);
    let now = Instant::now();
    s.push(message("a"));
    assert_eq!(s.changed(now), (Some(RULES.debounce), true));
    s.push(message("b"));
    assert_eq!(
        s.changed(now),
        (None, false),
        "the timer is not pushed back"
    );
    // The actor keeps no flag of its own: the state says whether its timer's handle is valid.
    assert!(s.take_timer(), "the debounce it asked for is armed");
    assert!(!s.take_timer(), "taken: cancelled once");
    let (FlushStep::Write(ops), _) = s.begin_flush(now, &mut None, false) else {
        panic!("expected a write");
    };
    let WriteOp::AppendEncoded(batch) = &ops[0] else {
        panic!("messages first, encoded by the session");
    };
    assert_eq!((batch.first_seq(), batch.len()), (1, 2));
    assert!(matches!(ops[1], WriteOp::PutSession(_)));
}

#[test]
fn the_window_budget_may_trim_stored_messages_only() {
    let now = Instant::now();
    let mut s = stored(AgentStatus::Running);
    s.push(message("a"));
    s.push(message("b"));
    let (FlushStep::Write(_), _) = s.begin_flush(now, &mut None, false) else {
        panic!("expected a write");
    };
    let (upto, retention) = s.queued();
    // Pushed while the write is in flight: not stored, whatever the write's outcome.
    s.push(message("c"));
    assert_eq!(s.stored_bytes(), 0, "nothing stored before the commit");
    s.trim_stored();
    assert_eq!(s.window().len(), 3);
    s.written(upto, retention, Ok(()), now);
    let third = s.window_bytes() / 3;
    assert_eq!(s.stored_bytes(), s.window_bytes() - third);
    s.trim_stored();
    let left: Vec<u64> = s.window().iter().map(|m| m.seq_id).collect();
    assert_eq!(left, [3], "only the unstored message stays");
    assert_eq!((s.stored_bytes(), s.window_bytes()), (0, third));
}

#[test]
fn a_flush_asked_for_during_a_write_runs_once_it_completes() {
    let mut s = stored(AgentStatus::Running);
    let now = Instant::now();
    s.push(message("a"));
    let FlushStep::Write(_) = s.begin_flush(now, &mut None, false).0 else {
        panic!()
    };
    let (upto, retention) = s.queued();
    s.push(message("b"));
    assert!(matches!(
        s.begin_flush(now, &mut None, false).0,
        FlushStep::Later
    ));
    assert_eq!(
        s.changed(now).0,
        None,
        "no timer while a write is in flight"
    );
    let (after, _) = s.written(upto, retention, Ok(()), now);
    assert_eq!(after.next, Next::Flush);
    assert!(!s.is_clean());
}

#[test]
fn a_change_after_a_write_arms_the_debounce_again() {
    let mut s = stored(AgentStatus::Running);
    let now = Instant::now();
    s.push(message("a"));
    let FlushStep::Write(_) = s.begin_flush(now, &mut None, false).0 else {
        panic!()
    };
    let (upto, retention) = s.queued();
    s.push(message("b"));
    let (after, _) = s.written(upto, retention, Ok(()), now);
    assert_eq!(after.next, Next::Debounce(RULES.debounce));
    assert_eq!(after.clean_after, None, "still dirty");
}

#[test]
fn a_failed_write_keeps_everything_and_retries_with_backoff() {
    let mut s = stored(AgentStatus::Running);
    let now = Instant::now();
    s.push(message("a"));
    let (tx, mut rx) = oneshot::channel();
    s.wait_for_flush(tx);
    let FlushStep::Write(_) = s.begin_flush(now, &mut None, false).0 else {
        panic!()
    };
    let (upto, retention) = s.queued();
    let (after, err) = s.written(upto, retention, Err(StorageError::Closed), now);
    assert!(err.is_some());
    assert_eq!(after.next, Next::Retry(RULES.retry));
    assert!(rx.try_recv().unwrap().is_err(), "the durable caller learns");
    s.take_timer();
    assert_eq!(
        flush(&mut s, Err(StorageError::Closed)).next,
        Next::Retry(RULES.retry * 2)
    );
    s.take_timer();
    flush(&mut s, Err(StorageError::Closed));
    s.take_timer();
    assert_eq!(
        flush(&mut s, Err(StorageError::Closed)).next,
        Next::Retry(RULES.retry_max),
        "backoff is capped"
    );
    s.take_timer();
    // The retry writes the same message again, and then the session is clean.
    let FlushStep::Write(ops) = s.begin_flush(now, &mut None, false).0 else {
        panic!()
    };
    assert!(matches!(&ops[0], WriteOp::AppendEncoded(batch) if batch.len() == 1));
    let (upto, retention) = s.queued();
    let (after, _) = s.written(upto, retention, Ok(()), now);
    assert!(s.is_clean());
    assert!(after.clean_after.is_some());
    assert_eq!(s.backoff(), None);
}

/// The waiters and the backoff live in a box made when someone waits or a write fails; it goes once
/// nobody waits and a write succeeded, so a session that waited once does not hold it for good.
#[test]
fn the_waiters_box_is_made_when_needed_and_let_go_once_empty() {
    let mut s = stored(AgentStatus::Running);
    assert!(s.waits.is_none(), "a new session holds none");
    s.push(message("a"));
    let (tx, mut rx) = oneshot::channel();
    s.wait_for_flush(tx);
    assert!(s.awaited() && s.waits.is_some());
    assert_eq!(
        flush(&mut s, Err(StorageError::Closed)).next,
        Next::Retry(RULES.retry)
    );
    assert!(rx.try_recv().unwrap().is_err());
    assert!(s.waits.is_some(), "the backoff is kept for the next retry");
    s.take_timer();
    flush(&mut s, Ok(()));
    assert!(
        s.is_clean() && s.waits.is_none(),
        "nobody waits, no backoff"
    );
    let (tx, mut rx) = oneshot::channel();
    s.wait_for_flush(tx);
    assert!(matches!(
        s.begin_flush(Instant::now(), &mut None, false).0,
        FlushStep::Clean { .. }
    ));
    assert!(rx.try_recv().unwrap().is_ok());
    assert!(s.waits.is_none(), "answered at once, gone at once");
}

#[test]
fn plain_deliveries_over_the_memory_bound_wait_for_storage() {
    let mut s = stored(AgentStatus::Running);
    let now = Instant::now();
    for i in 0..5 {
        s.push(message(&i.to_string()));
    }
    assert!(s.over_memory_bound());
    let (tx, mut rx) = oneshot::channel();
    s.wait_for_room(tx);
    let FlushStep::Write(_) = s.begin_flush(now, &mut None, false).0 else {
        panic!()
    };
    let (upto, retention) = s.queued();
    assert!(rx.try_recv().is_err(), "held while the write is in flight");
    s.written(upto, retention, Ok(()), now);
    assert!(rx.try_recv().unwrap().is_ok());
    assert_eq!(s.window().len(), RULES.messages_in_memory, "window trimmed");
}

#[test]
fn a_finished_status_asks_for_retention_after_its_commit_and_empties_the_window() {
    let mut s = stored(AgentStatus::Running);
    s.push(message("a"));
    s.record.status = AgentStatus::Done;
    s.status_changed(AgentStatus::Done);
    let after = flush(&mut s, Ok(()));
    assert!(after.retention);
    assert!(
        s.window().is_empty(),
        "a finished session's reads go to storage"
    );
    assert_eq!(s.window_bytes(), 0);
}

#[test]
fn a_retention_whose_write_failed_runs_after_the_retry() {
    let mut s = stored(AgentStatus::Running);
    s.record.status = AgentStatus::Done;
    s.status_changed(AgentStatus::Done);
    assert!(!flush(&mut s, Err(StorageError::Closed)).retention);
    s.take_timer();
    assert!(flush(&mut s, Ok(())).retention);
}

#[test]
fn a_let_go_session_stops_once_stored_and_not_before() {
    let mut s = stored(AgentStatus::Done);
    s.push(message("late"));
    assert!(!s.detach(), "a message waits for storage");
    assert_eq!(flush(&mut s, Ok(())).next, Next::Stop);

    let mut clean = stored(AgentStatus::Done);
    assert!(clean.detach());
    // A let-go session whose flush has nothing to write may stop too.
    assert!(matches!(
        clean.begin_flush(Instant::now(), &mut None, false).0,
        FlushStep::Clean { stop: true }
    ));
    let mut running = stored(AgentStatus::Running);
    assert!(!running.detach(), "a running session never stops by itself");
}

#[test]
fn a_finished_session_holding_nothing_stops_once_its_finish_is_stored() {
    let mut s = stored(AgentStatus::Running);
    s.let_go_when_finished = true;
    s.push(message("last words"));
    s.status_changed(AgentStatus::Done);
    s.record.status = AgentStatus::Done;
    assert!(!s.may_stop(), "its finish waits for storage");
    assert_eq!(flush(&mut s, Ok(())).next, Next::Stop);
    assert!(s.may_stop());

    // Brought back for a command: it stays until it runs again (or its project lets it go).
    s.held = true;
    assert!(!s.may_stop());
    s.status_changed(AgentStatus::Running);
    assert!(!s.held, "running again, the hold is over");

    // A flush asked of a clean, finished session does not stop it (only one its project let go of).
    let mut clean = stored(AgentStatus::Done);
    clean.let_go_when_finished = true;
    assert!(matches!(
        clean.begin_flush(Instant::now(), &mut None, false).0,
        FlushStep::Clean { stop: false }
    ));
    // A runner that keeps something (a conversation, a process) keeps the actor until the project lets go.
    let mut kept = stored(AgentStatus::Error);
    kept.push(message("x"));
    assert_eq!(flush(&mut kept, Ok(())).next, Next::Nothing);
}

#[test]
fn a_session_offered_to_its_project_stops_only_once_the_offer_is_settled() {
    let mut s = offered();
    s.let_go_when_finished = true;
    s.push(message("late"));
    assert_eq!(
        flush(&mut s, Ok(())).next,
        Next::Nothing,
        "stored, it still waits for its project's answer"
    );
    assert!(!s.may_stop());
    assert!(!s.detach(), "a let-go does not end the wait either");
    assert!(matches!(
        s.begin_flush(Instant::now(), &mut None, false).0,
        FlushStep::Clean { stop: false }
    ));
    assert!(s.offer_settled(), "settled and stored: it may stop");

    // Settled while a write is in flight: that write's commit stops it.
    let mut s = offered();
    s.push(message("late"));
    let FlushStep::Write(_) = s.begin_flush(Instant::now(), &mut None, false).0 else {
        panic!("expected a write");
    };
    let (upto, retention) = s.queued();
    assert!(!s.offer_settled(), "its write is not committed yet");
    let next = s.written(upto, retention, Ok(()), Instant::now()).0.next;
    assert_eq!(next, Next::Stop);
}

#[test]
fn a_new_session_starts_dirty_with_its_first_message_unpersisted() {
    let mut first = message("prompt");
    first.seq_id = 1;
    let mut r = record(AgentStatus::Running);
    r.last_seq = 1;
    let s = SessionState::new(r, vec![Arc::new(first)], false, false, RULES.into());
    assert!(!s.is_clean());
}

#[test]
fn stopping_answers_every_waiter() {
    let mut s = stored(AgentStatus::Running);
    s.push(message("a"));
    let (durable, mut d) = oneshot::channel();
    let (plain, mut p) = oneshot::channel();
    s.wait_for_flush(durable);
    s.wait_for_room(plain);
    assert!(s.note_dirty(Instant::now()));
    assert!(s.stopping(), "stopped dirty");
    assert_eq!(d.try_recv().unwrap(), Err(CommandError::SessionNotFound));
    assert_eq!(p.try_recv().unwrap(), Ok(()));
}

#[test]
fn a_seqid_gap_skipped_while_a_write_is_in_flight_is_not_counted_as_unstored() {
    // Revived after a crash: its previous life reserved seqIds up to 120 but stored only up to 0.
    let mut s = stored(AgentStatus::Running);
    s.seq.restored(Some(120));
    let now = Instant::now();
    // A status change is written first, and while that write is in flight a message skips the gap.
    s.record_changed();
    let FlushStep::Write(_) = s.begin_flush(now, &mut None, false).0 else {
        panic!("expected a write");
    };
    let (upto, retention) = s.queued();
    let first = s.push(message("after the crash"));
    assert_eq!(
        first.seq_id, 121,
        "continues above the previous life's ceiling"
    );
    s.written(upto, retention, Ok(()), now);
    // Only the one message awaits storage: the skipped seqIds were never messages.
    let FlushStep::Write(ops) = s.begin_flush(now, &mut None, false).0 else {
        panic!("the message is written");
    };
    let appended: Vec<(u64, u64)> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::AppendEncoded(batch) => Some((batch.first_seq(), batch.len())),
            _ => None,
        })
        .collect();
    assert_eq!(appended, [(121, 1)], "the one message, alone");
    let (upto, retention) = s.queued();
    assert_eq!(upto, 121);
    s.written(upto, retention, Ok(()), now);
    assert!(matches!(
        s.begin_flush(now, &mut None, false).0,
        FlushStep::Clean { stop: false }
    ));
}

#[test]
fn a_message_costs_the_window_at_least_its_allocations() {
    // The shared allocation is the Arc's two counts and the message; a tool call adds its box.
    let shared = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<AgentMessage>();
    let plain = message("hello");
    assert!(approx_size(&plain) as usize >= shared + plain.id.len() + "hello".len());
    let call = AgentMessage {
        tool: ToolFields::boxed(Some("Bash".into()), Some("{}".into()), None),
        ..message("ls")
    };
    let boxed = shared + std::mem::size_of::<ToolFields>();
    assert!(approx_size(&call) as usize >= boxed + call.id.len() + "ls".len() + "Bash{}".len());
}

fn stored_ceiling(ops: &[WriteOp]) -> u64 {
    match ops.iter().find(|op| matches!(op, WriteOp::PutSession(_))) {
        Some(WriteOp::PutSession(r)) => r.seq_ceiling,
        _ => panic!("no record in {ops:?}"),
    }
}

fn releases(ops: &[WriteOp]) -> Vec<u64> {
    ops.iter()
        .filter_map(|op| match op {
            WriteOp::ReleaseSeq { ceiling, .. } => Some(*ceiling),
            _ => None,
        })
        .collect()
}

/// A new session whose first reservation rides in its record (seq.rs `first_reservation`).
fn riding_first_reservation(detached: bool) -> (SessionState, Option<u64>) {
    let mut s = session(AgentStatus::Running, false, detached);
    let ceiling = s.seq_prefetch().expect("a first block");
    s.record.seq_ceiling = ceiling;
    (s, Some(ceiling))
}

#[test]
fn a_write_that_is_not_the_last_keeps_the_ceiling_and_its_riding_reservation() {
    let (mut s, mut riding) = riding_first_reservation(false);
    let ceiling = riding.unwrap();
    let ops = flush_ops(&mut s, &mut riding, false);
    assert_eq!(
        stored_ceiling(&ops),
        ceiling,
        "the record holds the first block"
    );
    assert_eq!(riding, Some(ceiling), "it rides until the write commits");
    assert!(releases(&ops).is_empty() && !s.seq.released());
}

#[test]
fn the_last_write_stores_the_record_without_its_ceiling_and_the_riding_reservation_is_not_made() {
    let (mut s, mut riding) = riding_first_reservation(true);
    s.status_changed(AgentStatus::Done);
    s.record.status = AgentStatus::Done;
    assert!(s.stops_once_stored());
    let ops = flush_ops(&mut s, &mut riding, false);
    assert_eq!(stored_ceiling(&ops), 0);
    assert_eq!(s.record.seq_ceiling, 0);
    assert_eq!(
        riding, None,
        "taken: the record that held it goes without it"
    );
    assert!(
        !s.seq.covered_once_reserved(0, 1),
        "no reservation in flight"
    );
    assert!(s.seq.released(), "nothing more is handed out under it");
    assert!(
        releases(&ops).is_empty(),
        "no `seq_ceilings` row to release: the record held the only ceiling"
    );
}

#[test]
fn the_last_write_releases_a_seq_ceilings_row_unless_the_router_holds_it() {
    let last = |hands_over: bool, detached: bool| {
        let mut s = session(AgentStatus::Done, false, detached);
        s.let_go_when_finished = true;
        s.seq.reserving_in_table();
        s.seq.committed(1000);
        let ops = flush_ops(&mut s, &mut None, hands_over);
        (releases(&ops), s.seq.released(), stored_ceiling(&ops))
    };
    assert_eq!(last(false, true), (vec![1000], true, 0), "released with it");
    assert_eq!(
        last(true, false),
        (vec![], false, 0),
        "left for the router to hold for the project"
    );
}
