//! The persister thread on real files: group commit, backpressure, ordering of retention and barriers,
//! shutdown, isolation of a bad write, lingering for company (and not when somebody waits, even for an
//! empty write), and durability of acked writes across a SIGKILL.

mod storage_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use agent_store::actors::persister::{Ack, Commit, Linger, PersisterHandle, Retain, TryWriteError};
use agent_store::messages::wire::AgentStatus;
use agent_store::storage::{StorageError, Store, WriteOp};
use redb::{Database, TableDefinition};
use storage_support::{append, put, record, seqs};

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("agent-store.redb")).unwrap();
    (dir, store)
}

fn session_write(session: &str, project: &str, updated_at: i64) -> Vec<WriteOp> {
    vec![
        put(session, project, AgentStatus::Done, updated_at),
        append(session, 1..=3),
    ]
}

fn session_of(ops: &[WriteOp]) -> &str {
    match &ops[0] {
        WriteOp::PutSession(r) => &r.session_id,
        other => panic!("unexpected op {other:?}"),
    }
}

async fn committed(ack: Ack) -> Result<(), StorageError> {
    ack.await.unwrap_or(Err(StorageError::Closed)).map(drop)
}

#[tokio::test]
async fn concurrent_writes_share_commits() {
    let (_dir, store) = fresh();
    let persister = PersisterHandle::spawn(store.clone(), 10_000);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let persister = persister.clone();
            std::thread::spawn(move || {
                (0..125)
                    .map(|i| {
                        let session = format!("w{w}-s{i}");
                        let project = format!("p{w}");
                        persister
                            .try_write(session_write(&session, &project, i))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for writer in writers {
        for ack in writer.join().unwrap() {
            committed(ack).await.unwrap();
        }
    }

    let stats = persister.stats();
    assert!(stats.commits_ok < 1000, "no grouping: {stats:?}");
    assert_eq!(stats.commits_failed, 0);
    assert_eq!(stats.rows_written, 1000);
    assert_eq!(stats.messages_written, 3000);
    assert_eq!(stats.queued_jobs, 0);
    assert_eq!(store.project_ids().unwrap().len(), 8);
    for w in 0..8 {
        assert_eq!(store.project_sessions(&format!("p{w}")).unwrap().len(), 125);
        for i in 0..125 {
            let messages = store
                .messages(&format!("w{w}-s{i}"), 0, None, None)
                .unwrap();
            assert_eq!(seqs(&messages), [1, 2, 3]);
        }
    }
}

#[tokio::test]
async fn a_full_queue_hands_the_ops_back() {
    let (_dir, store) = fresh();
    let persister = PersisterHandle::spawn(store.clone(), 1);
    // A large first batch keeps the thread busy committing while the queue fills.
    let mut acks = vec![persister
        .try_write(vec![append("big", 1..=20_000)])
        .unwrap()];
    let mut returned = None;
    for i in 0..100_000 {
        match persister.try_write(session_write(&format!("s{i}"), "p", i)) {
            Ok(ack) => acks.push(ack),
            Err(TryWriteError::Full(ops)) => {
                returned = Some((i, ops));
                break;
            }
            Err(TryWriteError::Closed) => panic!("closed"),
        }
    }
    let (i, ops) = returned.expect("a queue of one never filled");
    assert_eq!(
        session_of(&ops),
        format!("s{i}"),
        "the refused ops come back whole"
    );
    assert_eq!(ops.len(), 2);

    // The caller kept them; once there is room they go through.
    persister.write(ops).await.unwrap();
    for ack in acks {
        committed(ack).await.unwrap();
    }
    for k in 0..=i {
        assert!(
            store.session(&format!("s{k}")).unwrap().is_some(),
            "s{k} lost"
        );
    }
    assert_eq!(store.messages("big", 0, None, None).unwrap().len(), 20_000);
}

#[tokio::test]
async fn shutdown_commits_what_is_queued_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    let store = Store::open(&path).unwrap();
    let persister = PersisterHandle::spawn(store.clone(), 1000);
    let acks: Vec<Ack> = (0..200)
        .map(|i| {
            persister
                .try_write(session_write(&format!("s{i}"), "p", i))
                .unwrap()
        })
        .collect();
    persister.shutdown().await;
    for mut ack in acks {
        assert_eq!(
            ack.try_recv().unwrap().map(drop),
            Ok(()),
            "resolved by the time shutdown returns"
        );
    }

    assert!(matches!(
        persister.try_write(session_write("late", "p", 1)),
        Err(TryWriteError::Closed)
    ));
    assert_eq!(
        persister.write(session_write("late", "p", 1)).await,
        Err(StorageError::Closed)
    );
    assert_eq!(persister.barrier().await, Err(StorageError::Closed));
    persister.shutdown().await; // a second shutdown returns too

    // The thread let go of the file: it reopens at once, with everything in it.
    drop(persister);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.project_sessions("p").unwrap().len(), 200);
    assert_eq!(store.session("late").unwrap(), None);
}

#[tokio::test]
async fn retention_and_barriers_wait_for_the_writes_before_them() {
    let (_dir, store) = fresh();
    let persister = PersisterHandle::spawn(store.clone(), 100);
    let acks: Vec<Ack> = (1..=4)
        .map(|i| {
            persister
                .try_write(session_write(&format!("s{i}"), "p", i))
                .unwrap()
        })
        .collect();
    // Queued behind the writes: it must see all four sessions.
    let retained = persister
        .try_write_then_retain(Vec::new(), Some(retain("p", 2)), Commit::Now)
        .unwrap();
    let evicted = retained.await.unwrap().unwrap().evicted;
    assert_eq!(evicted, ["s2", "s1"]);
    for ack in acks {
        committed(ack).await.unwrap();
    }

    let acks: Vec<Ack> = (5..=7)
        .map(|i| {
            persister
                .try_write(session_write(&format!("s{i}"), "p", i))
                .unwrap()
        })
        .collect();
    persister.barrier().await.unwrap();
    for mut ack in acks {
        assert_eq!(
            ack.try_recv().unwrap().map(drop),
            Ok(()),
            "committed before the barrier answered"
        );
    }
    let ids: Vec<String> = store
        .project_sessions("p")
        .unwrap()
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(ids, ["s7", "s6", "s5", "s4", "s3"]);
}

fn retain(project: &str, keep: u32) -> Retain {
    Retain {
        project_id: project.to_owned(),
        keep,
        max_age_ms: i64::MAX,
    }
}

/// 1,000 sessions finishing together: their final records and the retention riding with each finish are
/// a commit or two, not one commit per finish.
#[tokio::test]
async fn sessions_finishing_together_share_commits_with_their_retention() {
    const PROJECTS: usize = 1000;
    let (_dir, store) = fresh();
    // Each project holds an older finished session that retention (keep 1) lets go once the new one is in.
    let old: Vec<WriteOp> = (0..PROJECTS)
        .map(|p| put(&format!("old{p}"), &format!("p{p}"), AgentStatus::Done, 1))
        .collect();
    store.apply(&old).unwrap();
    let persister = PersisterHandle::spawn(store.clone(), 4 * PROJECTS);
    let hold = persister.hold().await.unwrap();
    let commits_before = persister.stats().commits_ok;
    let acks: Vec<Ack> = (0..PROJECTS)
        .map(|p| {
            let project = format!("p{p}");
            let finish = session_write(&format!("new{p}"), &project, 2);
            persister
                .try_write_then_retain(finish, Some(retain(&project, 1)), Commit::Now)
                .unwrap()
        })
        .collect();
    // Every finish is queued behind the hold when it is released.
    drop(hold);
    let evicted = futures_util::future::join_all(
        acks.into_iter()
            .map(|ack| async { ack.await.unwrap().map(|w| w.evicted) }),
    )
    .await;

    let commits = persister.stats().commits_ok - commits_before;
    assert!(
        commits <= 2,
        "{commits} commits for {PROJECTS} finishes and their retention"
    );
    for (p, evicted) in evicted.into_iter().enumerate() {
        assert_eq!(evicted.unwrap(), [format!("old{p}")]);
        let kept: Vec<String> = store
            .project_sessions(&format!("p{p}"))
            .unwrap()
            .into_iter()
            .map(|r| r.session_id)
            .collect();
        assert_eq!(kept, [format!("new{p}")]);
    }
}

#[tokio::test]
async fn one_bad_write_does_not_fail_the_writes_grouped_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    drop(Store::open(&path).unwrap());
    // A stored record this build cannot decode: putting that session again fails.
    {
        let sessions: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let mut table = txn.open_table(sessions).unwrap();
        table.insert("bad", [200u8, 0].as_slice()).unwrap();
        drop(table);
        txn.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let persister = PersisterHandle::spawn(store.clone(), 100);

    // The slow first write makes the next ones queue up and share a group.
    let first = persister
        .try_write(vec![append("big", 1..=20_000)])
        .unwrap();
    let before = persister
        .try_write(session_write("before", "p", 1))
        .unwrap();
    let bad = persister.try_write(session_write("bad", "p", 2)).unwrap();
    let after = persister.try_write(session_write("after", "p", 3)).unwrap();

    committed(first).await.unwrap();
    assert_eq!(committed(before).await, Ok(()));
    assert!(matches!(
        committed(bad).await,
        Err(StorageError::Corrupt { .. })
    ));
    assert_eq!(committed(after).await, Ok(()));
    assert!(persister.stats().commits_failed >= 1);
    assert!(store.session("before").unwrap().is_some());
    assert!(store.session("after").unwrap().is_some());
}

/// The child run of `acked_writes_survive_a_kill` writes through a persister until it is killed, printing
/// `acked <session> <last seq>` after each ack.
const CRASH_CHILD: &str = "AGENT_STORE_TEST_CRASH_CHILD";

/// Longer than any test runs: a group that waits out the linger fails its test by the patience below.
const FOREVER: Duration = Duration::from_secs(3600);
/// What a test allows for work that takes milliseconds; a passing test never waits it out.
const PATIENCE: Duration = Duration::from_secs(20);

/// A persister whose groups wait for `enough` writes and no longer than `FOREVER`: what ends a group's
/// wait early in these tests is a write somebody waits on.
fn lingering(store: &Store, enough: usize) -> PersisterHandle {
    let linger = Linger {
        wait: FOREVER,
        enough,
    };
    PersisterHandle::spawn_lingering(store.clone(), 100, linger)
}

#[tokio::test]
async fn writes_nobody_waits_on_linger_to_share_a_commit() {
    let (_dir, store) = fresh();
    let persister = lingering(&store, 3);
    let first = persister
        .try_write_soon(session_write("s1", "p", 1))
        .unwrap();
    // Taken off the queue alone: without a linger it would be committed on its own now.
    tokio::time::timeout(PATIENCE, async {
        while persister.stats().queued_jobs > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the persister takes the first write");
    // It waits until the group holds three.
    let mut acks: Vec<Ack> = (2..=3)
        .map(|i| {
            persister
                .try_write_soon(session_write(&format!("s{i}"), "p", i))
                .unwrap()
        })
        .collect();
    acks.push(first);
    for ack in acks {
        tokio::time::timeout(PATIENCE, committed(ack))
            .await
            .expect("the group commits once it holds enough jobs")
            .unwrap();
    }
    assert_eq!(persister.stats().commits_ok, 1);
    assert_eq!(store.project_sessions("p").unwrap().len(), 3);
}

#[tokio::test]
async fn a_write_somebody_waits_on_does_not_linger() {
    let (_dir, store) = fresh();
    let persister = lingering(&store, 1000);
    let soon = persister
        .try_write_soon(session_write("soon", "p", 1))
        .unwrap();
    let now = persister.try_write(session_write("now", "p", 2)).unwrap();
    // The waited write ends the wait, for the lingering one too.
    for ack in [now, soon] {
        tokio::time::timeout(PATIENCE, committed(ack))
            .await
            .expect("a waited write commits at once")
            .unwrap();
    }
    // So does a barrier, and a durable write through `write`.
    let soon = persister
        .try_write_soon(session_write("soon2", "p", 3))
        .unwrap();
    tokio::time::timeout(PATIENCE, persister.barrier())
        .await
        .expect("a barrier does not wait out the linger")
        .unwrap();
    committed(soon).await.unwrap();
    let soon = persister
        .try_write_soon(session_write("soon3", "p", 4))
        .unwrap();
    tokio::time::timeout(PATIENCE, persister.write(session_write("durable", "p", 5)))
        .await
        .expect("a durable write does not wait out the linger")
        .unwrap();
    committed(soon).await.unwrap();
    assert_eq!(store.project_sessions("p").unwrap().len(), 5);
}

/// An empty write somebody waits on is how a session's first batch says it waits for the write that is
/// already queued (src/actors/session/riders.rs): it ends that write's wait for company, and alone in a
/// group it costs no transaction.
#[tokio::test]
async fn an_empty_waited_write_ends_the_wait_and_alone_commits_nothing() {
    let (_dir, store) = fresh();
    let persister = lingering(&store, 1000);
    let soon = persister
        .try_write_soon(session_write("soon", "p", 1))
        .unwrap();
    let nudge = persister.try_write(Vec::new()).unwrap();
    for ack in [nudge, soon] {
        tokio::time::timeout(PATIENCE, committed(ack))
            .await
            .expect("an empty waited write ends the wait")
            .unwrap();
    }
    assert_eq!(persister.stats().commits_ok, 1);
    committed(persister.try_write(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        persister.stats().commits_ok,
        1,
        "an empty write alone commits nothing"
    );
    assert_eq!(store.project_sessions("p").unwrap().len(), 1);
}

fn write_until_killed(path: &Path) -> ! {
    let persister = PersisterHandle::spawn(Store::open(path).unwrap(), 64);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let persister = persister.clone();
            std::thread::spawn(move || {
                let session = format!("s{w}");
                let mut next = 1u64;
                loop {
                    let last = next + 9;
                    let mut rec = record(&session, "p", AgentStatus::Running, last as i64);
                    rec.last_seq = last;
                    rec.message_count = last;
                    let mut ops = vec![append(&session, next..=last), WriteOp::put_session(rec)];
                    let ack = loop {
                        match persister.try_write(ops) {
                            Ok(ack) => break ack,
                            Err(TryWriteError::Full(back)) => {
                                ops = back;
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            Err(TryWriteError::Closed) => panic!("persister closed"),
                        }
                    };
                    match ack.blocking_recv() {
                        Ok(Ok(_)) => println!("acked {session} {last}"),
                        other => panic!("write failed: {other:?}"),
                    }
                    next = last + 1;
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
    std::process::exit(1);
}

#[test]
fn acked_writes_survive_a_kill() {
    if let Ok(path) = std::env::var(CRASH_CHILD) {
        write_until_killed(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["acked_writes_survive_a_kill", "--exact", "--nocapture"])
        .env(CRASH_CHILD, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut record_ack = |line: &str| {
        let mut words = line.split_whitespace();
        if let (Some("acked"), Some(session), Some(Ok(seq))) = (
            words.next(),
            words.next(),
            words.next().map(str::parse::<u64>),
        ) {
            let max = acked.entry(session.to_owned()).or_default();
            *max = (*max).max(seq);
            return true;
        }
        false
    };
    let mut seen = 0;
    while seen < 80 {
        let line = lines.next().expect("the child stopped early").unwrap();
        seen += usize::from(record_ack(&line));
    }
    // std's kill is SIGKILL: no destructor, no flush, no clean close.
    child.kill().unwrap();
    // Acks printed before the kill landed are acks too (a torn last line is not parsed).
    for line in lines.map_while(Result::ok) {
        record_ack(&line);
    }
    child.wait().unwrap();
    assert!(!acked.is_empty());

    assert!(
        matches!(
            redb::ReadOnlyDatabase::open(&path).err(),
            Some(redb::DatabaseError::RepairAborted)
        ),
        "the kill should have left a file that was not closed"
    );
    let store = Store::open(&path).expect("a killed writer's file opens");
    for (session, max_acked) in &acked {
        let stored = seqs(&store.messages(session, 0, None, None).unwrap());
        let highest = stored.last().copied().unwrap_or(0);
        assert!(
            highest >= *max_acked,
            "{session}: acked {max_acked}, stored {highest}"
        );
        assert_eq!(
            stored,
            (1..=highest).collect::<Vec<_>>(),
            "{session}: gaps or duplicates"
        );
        // Record and rows were committed together: the record never lags or leads the rows.
        let rec = store.session(session).unwrap().unwrap();
        assert_eq!(rec.last_seq, highest, "{session}: record and rows disagree");
    }
    drop(store);
    assert!(
        redb::ReadOnlyDatabase::open(&path).is_ok(),
        "repaired and closed cleanly"
    );
}
