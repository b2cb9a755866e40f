//! The redb store on real files: reopening, refusing files it must not touch, paging and dedupe of message
//! rows, retention, start-up recovery and deletes.

mod storage_support;

use std::path::Path;
use std::process::Command;

use agent_store::messages::wire::AgentStatus;
use agent_store::storage::{StorageError, Store, WriteOp};
use redb::{Database, ReadableDatabase, TableDefinition};
use storage_support::{append, latest_sessions, message, put, record, seqs};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data/agent-store.redb")).unwrap();
    (dir, store)
}

fn session_ids(store: &Store, project: &str) -> Vec<String> {
    let records = store.project_sessions(project).unwrap();
    records.into_iter().map(|r| r.session_id).collect()
}

/// Rewrites the schema version of a closed store file with redb directly, as a newer build would.
fn set_schema_version(path: &Path, version: u64) -> Database {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert("schema_version", version)
        .unwrap();
    txn.commit().unwrap();
    db
}

#[test]
fn everything_written_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/agent-store.redb");
    let store = Store::open(&path).unwrap();
    let mut rec = record("s1", "p1", AgentStatus::Done, 50);
    rec.error = Some("boom".into());
    rec.last_seq = 4;
    rec.message_count = 4;
    store
        .apply(&[
            WriteOp::put_session(rec.clone()),
            append("s1", 1..=4),
            put("s2", "p2", AgentStatus::Idle, 10),
            WriteOp::PutSetting {
                key: "session_retention_count".into(),
                value: "7".into(),
            },
        ])
        .unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.session("s1").unwrap(), Some(rec.clone()));
    let stored = store.messages("s1", 0, None, None).unwrap();
    assert_eq!(stored, (1..=4).map(message).collect::<Vec<_>>());
    assert_eq!(store.last_session("p1").unwrap(), Some(rec));
    assert_eq!(store.project_ids().unwrap(), vec!["p1", "p2"]);
    assert_eq!(
        store.settings().unwrap(),
        vec![("session_retention_count".to_owned(), "7".to_owned())]
    );
    assert!(store.file_size() > 0);
    assert_eq!(store.session("missing").unwrap(), None);
}

#[test]
fn a_file_from_a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    drop(Store::open(&path).unwrap());
    drop(set_schema_version(&path, 12));
    let before = std::fs::read(&path).unwrap();

    let err = Store::open(&path)
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(
            err,
            StorageError::NewerSchema {
                found: 12,
                supported: 11,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the refused file changed"
    );
}

#[test]
fn files_that_are_not_agent_store_databases_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();

    let text = dir.path().join("notes.redb");
    std::fs::write(
        &text,
        "these are someone's notes, not a database\n".repeat(200),
    )
    .unwrap();
    // A redb file of some other program: no meta table.
    let foreign = dir.path().join("foreign.redb");
    {
        let db = Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<u64, u64> = TableDefinition::new("other");
        txn.open_table(other).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }

    // One of ours, cut short.
    let truncated = dir.path().join("truncated.redb");
    drop(Store::open(&truncated).unwrap());
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();

    for path in [&text, &foreign, &truncated] {
        let before = std::fs::read(path).unwrap();
        let err = Store::open(path).err().expect("must be refused");
        assert!(
            matches!(err, StorageError::Damaged { .. }),
            "{path:?}: {err:?}"
        );
        assert!(std::fs::read(path).unwrap() == before, "{path:?} changed");
    }
}

/// A process that dies without closing its database leaves a file redb must repair on the next open,
/// and repairing writes. The child run of this test makes such a file with the schema version it is given.
const UNCLEAN_CHILD: &str = "AGENT_STORE_TEST_UNCLEAN_CHILD";

fn leave_unclean_file(path: &Path, version: u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["a_crashed_file_is_repaired_only_when_it_is_ours", "--exact"])
        .env(UNCLEAN_CHILD, format!("{version}:{}", path.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    assert!(
        matches!(
            redb::ReadOnlyDatabase::open(path).err(),
            Some(redb::DatabaseError::RepairAborted)
        ),
        "the child should have left a file that needs repair"
    );
}

#[test]
fn a_crashed_file_is_repaired_only_when_it_is_ours() {
    if let Ok(spec) = std::env::var(UNCLEAN_CHILD) {
        let (version, path) = spec.split_once(':').unwrap();
        let path = Path::new(path);
        let store = Store::open(path).unwrap();
        store
            .apply(&[put("s1", "p1", AgentStatus::Done, 5), append("s1", 1..=3)])
            .unwrap();
        drop(store);
        let db = set_schema_version(path, version.parse().unwrap());
        // Exit without closing: no destructor runs, as if the process had been killed.
        std::mem::forget(db);
        std::process::exit(0);
    }

    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.redb");
    leave_unclean_file(&newer, 12);
    let before = std::fs::read(&newer).unwrap();
    let err = Store::open(&newer)
        .err()
        .expect("a newer schema must be refused");
    assert!(
        matches!(err, StorageError::NewerSchema { found: 12, .. }),
        "{err:?}"
    );
    assert!(
        std::fs::read(&newer).unwrap() == before,
        "the refused file was repaired"
    );

    let ours = dir.path().join("ours.redb");
    leave_unclean_file(&ours, 11);
    let store = Store::open(&ours).unwrap();
    assert_eq!(
        seqs(&store.messages("s1", 0, None, None).unwrap()),
        [1, 2, 3]
    );
    drop(store);
    assert!(
        redb::ReadOnlyDatabase::open(&ours).is_ok(),
        "closed cleanly after repair"
    );
}

#[test]
fn paging_reads_across_rows_and_drops_duplicate_seqs() {
    let (_dir, store) = fresh();
    store
        .apply(&[
            put("s", "p", AgentStatus::Running, 1),
            append("s", 1..=10),
            append("s", 11..=20),
            // A retried write that was in fact committed: its batch overlaps the row before it.
            append("s", 16..=25),
            append("s", 26..=30),
            // Neighbouring keys must not bleed into "s".
            append("s-other", 1..=40),
            append("r", 1..=40),
            append("s", 31..=31),
        ])
        .unwrap();
    // An empty batch writes no row.
    store
        .apply(&[WriteOp::AppendMessages {
            session_id: "s".into(),
            messages: Vec::new(),
        }])
        .unwrap();

    let all = store.messages("s", 0, None, None).unwrap();
    assert_eq!(seqs(&all), (1..=31).collect::<Vec<_>>());
    assert_eq!(all[2], message(3), "fields survive the round trip");

    // Starts inside the row keyed 11, and again inside the duplicated row keyed 16.
    assert_eq!(
        seqs(&store.messages("s", 13, None, Some(5)).unwrap()),
        [14, 15, 16, 17, 18]
    );
    assert_eq!(
        seqs(&store.messages("s", 17, None, Some(4)).unwrap()),
        [18, 19, 20, 21]
    );
    assert_eq!(
        seqs(&store.messages("s", 10, Some(17), None).unwrap()),
        [11, 12, 13, 14, 15, 16]
    );
    assert_eq!(
        seqs(&store.messages("s", 24, Some(28), Some(10)).unwrap()),
        [25, 26, 27]
    );
    assert!(store.messages("s", 31, None, None).unwrap().is_empty());
    assert!(store.messages("s", 5, Some(6), None).unwrap().is_empty());
    assert!(store.messages("s", 0, None, Some(0)).unwrap().is_empty());
    assert!(store.messages("nobody", 0, None, None).unwrap().is_empty());

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.messages("s", after, None, Some(7)).unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq_id;
        paged.extend(seqs(&page));
    }
    assert_eq!(paged, (1..=31).collect::<Vec<_>>());
}

#[test]
fn a_long_session_restores_whole() {
    let (_dir, store) = fresh();
    let rows: Vec<WriteOp> = (0..1000u64)
        .map(|i| append("long", i * 100 + 1..=i * 100 + 100))
        .collect();
    store.apply(&rows).unwrap();
    let restored = store.messages("long", 0, None, None).unwrap();
    assert_eq!(restored.len(), 100_000);
    assert!(restored.windows(2).all(|w| w[1].seq_id == w[0].seq_id + 1));
    assert_eq!(restored[99_999], message(100_000));
}

#[test]
fn put_session_moves_the_index_key_and_tracks_running() {
    let (_dir, store) = fresh();
    store
        .apply(&[put("a", "p", AgentStatus::Running, 10)])
        .unwrap();
    store
        .apply(&[put("b", "p", AgentStatus::Done, 20)])
        .unwrap();
    assert_eq!(session_ids(&store, "p"), ["b", "a"]);

    store
        .apply(&[put("a", "p", AgentStatus::Done, 30)])
        .unwrap();
    assert_eq!(
        session_ids(&store, "p"),
        ["a", "b"],
        "one key per session, moved"
    );
    assert_eq!(store.last_session("p").unwrap().unwrap().session_id, "a");
    // No longer running: recovery leaves it alone.
    assert!(store
        .mark_interrupted("interrupted", 99)
        .unwrap()
        .is_empty());

    // A session moved to another project leaves the first one.
    store
        .apply(&[put("b", "q", AgentStatus::Done, 20)])
        .unwrap();
    assert_eq!(session_ids(&store, "p"), ["a"]);
    assert_eq!(session_ids(&store, "q"), ["b"]);
}

#[test]
fn running_sessions_are_marked_interrupted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    let store = Store::open(&path).unwrap();
    store
        .apply(&[
            put("r1", "p", AgentStatus::Running, 10),
            put("r2", "q", AgentStatus::Running, 20),
            put("d", "p", AgentStatus::Done, 30),
        ])
        .unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    let mut marked = store
        .mark_interrupted("Interrupted by restart", 1000)
        .unwrap();
    marked.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    assert_eq!(marked.len(), 2);
    for r in &marked {
        assert_eq!(r.status, AgentStatus::Error);
        assert_eq!(r.error.as_deref(), Some("Interrupted by restart"));
        assert_eq!(r.updated_at, 1000);
        assert_eq!(store.session(&r.session_id).unwrap().as_ref(), Some(r));
    }
    assert_eq!(
        store.session("d").unwrap().unwrap().status,
        AgentStatus::Done
    );
    // The index moved with updated_at.
    assert_eq!(session_ids(&store, "p"), ["r1", "d"]);
    assert!(store.mark_interrupted("again", 2000).unwrap().is_empty());
}

#[test]
fn retention_keeps_the_newest_the_young_and_the_running() {
    let (_dir, store) = fresh();
    let day = 24 * 3600 * 1000;
    let now = 100 * day;
    store
        .apply(&[
            put("running-old", "p", AgentStatus::Running, now - 90 * day),
            put("newest", "p", AgentStatus::Done, now - day),
            put("second", "p", AgentStatus::Error, now - 2 * day),
            put("third", "p", AgentStatus::Idle, now - 3 * day),
            put("fourth", "p", AgentStatus::Done, now - 4 * day),
            put("other-project", "q", AgentStatus::Done, 1),
            append("third", 1..=5),
            append("fourth", 1..=5),
        ])
        .unwrap();

    let mut dropped = store.enforce_retention("p", 2, 30 * day, now).unwrap();
    dropped.sort();
    assert_eq!(dropped, ["fourth", "third"]);
    assert_eq!(
        session_ids(&store, "p"),
        ["newest", "second", "running-old"]
    );
    for gone in ["third", "fourth"] {
        assert_eq!(store.session(gone).unwrap(), None);
        assert!(store.messages(gone, 0, None, None).unwrap().is_empty());
    }

    // By age: a two-day limit drops "second" even though the count would keep it.
    let dropped = store.enforce_retention("p", 5, 2 * day - 1, now).unwrap();
    assert_eq!(dropped, ["second"]);
    assert_eq!(session_ids(&store, "p"), ["newest", "running-old"]);
    assert_eq!(session_ids(&store, "q"), ["other-project"]);
}

#[test]
fn retention_ranks_old_sessions_before_dropping_them_by_age() {
    // As the original: rank by recency first (an aged-out session still takes a rank), then drop by age.
    let (_dir, store) = fresh();
    store
        .apply(&[
            put("old", "p", AgentStatus::Done, 10),
            put("older", "p", AgentStatus::Done, 5),
            put("no-timestamp", "p", AgentStatus::Done, 0),
        ])
        .unwrap();
    let dropped = store.enforce_retention("p", 2, 1, 1000).unwrap();
    // "old" and "older" are too old; "no-timestamp" never ages but is ranked third.
    assert_eq!(dropped, ["old", "older", "no-timestamp"]);
    assert!(session_ids(&store, "p").is_empty());
}

#[test]
fn deleting_a_project_or_a_session_removes_every_trace() {
    let (_dir, store) = fresh();
    store
        .apply(&[
            put("p1", "p", AgentStatus::Running, 1),
            put("p2", "p", AgentStatus::Done, 2),
            put("q1", "q", AgentStatus::Done, 3),
            append("p1", 1..=3),
            append("p2", 1..=3),
            append("q1", 1..=3),
        ])
        .unwrap();

    store
        .apply(&[WriteOp::DeleteProject {
            project_id: "p".into(),
        }])
        .unwrap();
    assert_eq!(store.project_ids().unwrap(), ["q"]);
    assert_eq!(store.last_session("p").unwrap(), None);
    for gone in ["p1", "p2"] {
        assert_eq!(store.session(gone).unwrap(), None);
        assert!(store.messages(gone, 0, None, None).unwrap().is_empty());
    }
    assert!(
        store.mark_interrupted("x", 5).unwrap().is_empty(),
        "running mark removed"
    );
    assert_eq!(
        seqs(&store.messages("q1", 0, None, None).unwrap()),
        [1, 2, 3]
    );

    store
        .apply(&[WriteOp::DeleteSession {
            session_id: "q1".into(),
        }])
        .unwrap();
    assert!(store.project_ids().unwrap().is_empty());
    assert!(store.messages("q1", 0, None, None).unwrap().is_empty());
}

#[test]
fn a_failed_apply_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    let store = Store::open(&path).unwrap();
    store.apply(&[put("a", "p", AgentStatus::Done, 1)]).unwrap();
    drop(store);
    corrupt_record(&path, "a");
    let store = Store::open(&path).unwrap();

    // A record that cannot be decoded makes the next put of that session fail...
    let err = store
        .apply(&[
            put("b", "p", AgentStatus::Done, 2),
            put("a", "p", AgentStatus::Done, 3),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { session_id, .. } if session_id == "a"),
        "{err:?}"
    );
    assert!(matches!(
        store.session("a"),
        Err(StorageError::Corrupt { .. })
    ));
    // ...and the op before it in the same transaction is not applied either.
    assert_eq!(store.session("b").unwrap(), None);
    // An unreadable session can still be deleted, index key included.
    store
        .apply(&[WriteOp::DeleteSession {
            session_id: "a".into(),
        }])
        .unwrap();
    assert!(store.project_ids().unwrap().is_empty());
}

/// Overwrites a stored record of a closed store file with bytes of an unknown format.
fn corrupt_record(path: &Path, session: &str) {
    let sessions: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(sessions)
        .unwrap()
        .insert(session, [200u8, 1, 2, 3].as_slice())
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_store_is_shared_across_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Store>();
    let (_dir, store) = fresh();
    store
        .apply(&[put("s", "p", AgentStatus::Done, 1), append("s", 1..=50)])
        .unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || store.messages("s", 0, None, None).unwrap().len())
        })
        .collect();
    store.apply(&[append("s", 51..=60)]).unwrap();
    for r in readers {
        let n = r.join().unwrap();
        assert!(
            n == 50 || n == 60,
            "a reader sees one snapshot, not a torn one: {n}"
        );
    }
}

#[test]
fn meta_holds_schema_version_eleven() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    drop(Store::open(&path).unwrap());
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let version = txn
        .open_table(META)
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap()
        .value();
    assert_eq!(version, 11);
}

#[test]
fn sessions_reads_several_records_in_the_order_asked() {
    let (_dir, store) = fresh();
    store
        .apply(&[
            put("a-1", "a", AgentStatus::Done, 10),
            put("b-1", "b", AgentStatus::Running, 20),
        ])
        .unwrap();

    let ids = ["b-1", "nobody", "a-1", "b-1"].map(String::from);
    let read: Vec<Option<(String, AgentStatus)>> = store
        .sessions(&ids)
        .unwrap()
        .into_iter()
        .map(|r| r.map(|r| (r.session_id, r.status)))
        .collect();
    assert_eq!(
        read,
        [
            Some(("b-1".to_owned(), AgentStatus::Running)),
            None,
            Some(("a-1".to_owned(), AgentStatus::Done)),
            Some(("b-1".to_owned(), AgentStatus::Running)),
        ]
    );
    // Each is what the one-record read gives.
    let one = store.session("a-1").unwrap().unwrap();
    let together = store
        .sessions(&["a-1".to_owned()])
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(one, together);
    assert_eq!(store.sessions(&[]).unwrap(), []);
}

#[test]
fn last_sessions_lists_every_project_with_what_last_session_gives() {
    let (_dir, store) = fresh();
    store
        .apply(&[
            put("a-old", "a", AgentStatus::Done, 10),
            put("a-new", "a", AgentStatus::Running, 30),
            put("a-mid", "a", AgentStatus::Error, 20),
            // A tie on updatedAt: the higher session id is the newer, as in `project_sessions`.
            put("b-1", "b", AgentStatus::Done, 5),
            put("b-2", "b", AgentStatus::Done, 5),
            put("c-only", "c", AgentStatus::Idle, 1),
        ])
        .unwrap();

    let listed: Vec<(String, Option<String>)> = store
        .last_sessions()
        .unwrap()
        .into_iter()
        .map(|(p, r)| (p, r.map(|r| r.session_id)))
        .collect();
    let one_by_one: Vec<(String, Option<String>)> = store
        .project_ids()
        .unwrap()
        .into_iter()
        .map(|p| {
            let last = store.last_session(&p).unwrap().map(|r| r.session_id);
            (p, last)
        })
        .collect();
    assert_eq!(listed, one_by_one);
    assert_eq!(
        listed,
        [
            ("a".to_owned(), Some("a-new".to_owned())),
            ("b".to_owned(), Some("b-2".to_owned())),
            ("c".to_owned(), Some("c-only".to_owned())),
        ]
    );
}

/// The `projects` table's rows as (projectId, latest, sessions), read from the closed file.
fn summary_rows(path: &Path) -> Vec<(String, String, u64)> {
    const PROJECTS: TableDefinition<&str, (&str, u64, i64)> = TableDefinition::new("projects");
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(PROJECTS).unwrap();
    let rows = redb::ReadableTable::iter(&table).unwrap();
    rows.map(|row| {
        let (project, summary) = row.unwrap();
        let (latest, sessions, _) = summary.value();
        (project.value().to_owned(), latest.to_owned(), sessions)
    })
    .collect()
}

/// Schema 10: a project of one session is its own summary, so its start writes no `projects` row; the
/// second session makes the row, and going back to one session removes it. The reads answer the same
/// throughout.
#[test]
fn a_project_has_a_summary_row_only_while_it_has_two_sessions_or_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent-store.redb");
    let reopen = || Store::open(&path).unwrap();

    let store = reopen();
    store
        .apply(&[put("a1", "a", AgentStatus::Running, 10)])
        .unwrap();
    store
        .apply(&[put("b1", "b", AgentStatus::Done, 11)])
        .unwrap();
    // A flush of the only session, forward and back in time.
    store
        .apply(&[put("a1", "a", AgentStatus::Done, 12)])
        .unwrap();
    store
        .apply(&[put("b1", "b", AgentStatus::Done, 5)])
        .unwrap();
    assert_eq!(store.project_ids().unwrap(), ["a", "b"]);
    assert_eq!(
        latest_sessions(&store),
        [("a".into(), "a1".into()), ("b".into(), "b1".into())]
    );
    drop(store);
    assert_eq!(summary_rows(&path), []);

    let store = reopen();
    store
        .apply(&[put("a2", "a", AgentStatus::Done, 20)])
        .unwrap();
    assert_eq!(
        store.last_session("a").unwrap().map(|r| r.session_id),
        Some("a2".into())
    );
    drop(store);
    assert_eq!(summary_rows(&path), [("a".into(), "a2".into(), 2)]);

    let store = reopen();
    store
        .apply(&[WriteOp::DeleteSession {
            session_id: "a2".into(),
        }])
        .unwrap();
    assert_eq!(
        store.last_session("a").unwrap().map(|r| r.session_id),
        Some("a1".into())
    );
    // A session moving to a project of one makes that project's row, and leaves its own project empty.
    store
        .apply(&[put("b1", "a", AgentStatus::Done, 30)])
        .unwrap();
    assert_eq!(store.project_ids().unwrap(), ["a"]);
    drop(store);
    assert_eq!(summary_rows(&path), [("a".into(), "b1".into(), 2)]);
    let report = agent_store::storage::verify(&path).unwrap();
    assert!(report.damage.is_empty(), "{:?}", report.damage);
}

/// A project of one session has no summary row, so retention over every project reads its record to
/// know its age: an old one goes, a young one and a running one stay, as project by project.
#[test]
fn retention_everywhere_lets_an_old_project_of_one_session_go_by_its_record() {
    let (_dir, store) = fresh();
    store
        .apply(&[
            put("old", "p-old", AgentStatus::Done, 1),
            put("young", "p-young", AgentStatus::Done, 35),
            put("running", "p-running", AgentStatus::Running, 1),
            put("two-1", "p-two", AgentStatus::Done, 2),
            put("two-2", "p-two", AgentStatus::Done, 36),
        ])
        .unwrap();
    let dropped = store.enforce_retention_everywhere(5, 10, 40).unwrap();
    assert_eq!(dropped, ["old", "two-1"]);
    assert_eq!(
        store.project_ids().unwrap(),
        ["p-running", "p-two", "p-young"]
    );
    assert_eq!(
        store.enforce_retention("p-young", 5, 4, 40).unwrap(),
        ["young"]
    );
    assert_eq!(store.project_ids().unwrap(), ["p-running", "p-two"]);
}

/// A write to the project summaries (schema 6), as the store takes them.
#[derive(Debug, Clone)]
enum SummaryOp {
    /// Session n (of 6) put in project p (of 3) at updatedAt t, running or not.
    Put(usize, usize, i64, bool),
    Delete(usize),
    DeleteProject(usize),
    /// Retention of project p keeping k, with an age limit of d time units.
    Retain(usize, u32, i64),
    RetainEverywhere(u32, i64),
}

fn summary_op() -> impl proptest::strategy::Strategy<Value = SummaryOp> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0usize..6, 0usize..3, -2i64..40, any::<bool>())
            .prop_map(|(s, p, t, r)| SummaryOp::Put(s, p, t, r)),
        2 => (0usize..6).prop_map(SummaryOp::Delete),
        1 => (0usize..3).prop_map(SummaryOp::DeleteProject),
        2 => (0usize..3, 0u32..4, 1i64..40).prop_map(|(p, k, d)| SummaryOp::Retain(p, k, d)),
        1 => (0u32..4, 1i64..40).prop_map(|(k, d)| SummaryOp::RetainEverywhere(k, d)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Whatever is written, moved, deleted or let go by retention, the reads served from the project
    /// summaries (`last_session`, `last_sessions`, `project_ids`) answer what the records themselves say
    /// (the newest by (updatedAt, sessionId) of each project), and verify finds the summaries sound.
    #[test]
    fn the_project_summaries_answer_what_the_records_say(
        ops in proptest::collection::vec(summary_op(), 1..40),
    ) {
        let (dir, store) = fresh();
        let now = 40;
        for op in ops {
            let project = |p: usize| format!("p{p}");
            match op {
                SummaryOp::Put(s, p, t, running) => {
                    let status = if running { AgentStatus::Running } else { AgentStatus::Done };
                    store.apply(&[put(&format!("s{s}"), &project(p), status, t)]).unwrap();
                }
                SummaryOp::Delete(s) => store
                    .apply(&[WriteOp::DeleteSession { session_id: format!("s{s}") }])
                    .unwrap(),
                SummaryOp::DeleteProject(p) => store
                    .apply(&[WriteOp::DeleteProject { project_id: project(p) }])
                    .unwrap(),
                SummaryOp::Retain(p, keep, age) => {
                    store.enforce_retention(&project(p), keep, age, now).unwrap();
                }
                SummaryOp::RetainEverywhere(keep, age) => {
                    store.enforce_retention_everywhere(keep, age, now).unwrap();
                }
            }
            let mut with_sessions = Vec::new();
            for p in 0..3 {
                let all = store.project_sessions(&project(p)).unwrap();
                let newest = all.first().map(|r| r.session_id.clone());
                let last = store.last_session(&project(p)).unwrap().map(|r| r.session_id);
                proptest::prop_assert_eq!(last, newest.clone(), "project {}", p);
                if let Some(newest) = newest {
                    with_sessions.push((project(p), newest));
                }
            }
            let ids: Vec<String> = with_sessions.iter().map(|(p, _)| p.clone()).collect();
            proptest::prop_assert_eq!(store.project_ids().unwrap(), ids);
            let lasts = latest_sessions(&store);
            proptest::prop_assert_eq!(lasts, with_sessions);
        }
        let path = dir.path().join("data/agent-store.redb");
        drop(store);
        let report = agent_store::storage::verify(&path).unwrap();
        proptest::prop_assert!(report.damage.is_empty(), "{:?}", report.damage);
    }
}

#[test]
fn releasing_a_seq_ceiling_drops_it_unless_a_later_reservation_raised_it() {
    let (_dir, store) = fresh();
    let reserve = |ceiling| WriteOp::ReserveSeq {
        session_id: "s".into(),
        ceiling,
    };
    let release = |ceiling| WriteOp::ReleaseSeq {
        session_id: "s".into(),
        ceiling,
    };
    store.apply(&[reserve(100)]).unwrap();
    // A release of an older ceiling (its reservation was raised since) keeps the raised one.
    store.apply(&[release(50)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(100));
    store.apply(&[release(100)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), None);
    // Releasing what is not there is not an error.
    store.apply(&[release(100)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), None);
}

#[test]
fn a_reservation_committed_out_of_order_never_lowers_the_ceiling() {
    let (_dir, store) = fresh();
    let reserve = |ceiling| WriteOp::ReserveSeq {
        session_id: "s".into(),
        ceiling,
    };
    store.apply(&[reserve(100)]).unwrap();
    store.apply(&[reserve(50)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(100));
    // Within one transaction too.
    store.apply(&[reserve(200), reserve(150)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(200));
    store.apply(&[reserve(250)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(250));
}

/// Schema 11: a record may hold a seqId ceiling, reserved by its own write. It reads back like one in
/// `seq_ceilings` (the higher of the two holds), survives a reopen, and a release drops it unless it is
/// higher than the ceiling released, leaving the record otherwise as it was.
#[test]
fn a_ceiling_held_by_the_record_holds_like_a_reserved_one_and_goes_with_its_release() {
    let (dir, store) = fresh();
    let with_ceiling = |ceiling| {
        let mut r = record("s", "p", AgentStatus::Running, 10);
        r.seq_ceiling = ceiling;
        WriteOp::put_session(r)
    };
    let release = |ceiling| WriteOp::ReleaseSeq {
        session_id: "s".into(),
        ceiling,
    };
    store.apply(&[with_ceiling(1_000)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(1_000));
    // A reservation in the table above it counts; one below it does not lower it.
    store
        .apply(&[WriteOp::ReserveSeq {
            session_id: "s".into(),
            ceiling: 500,
        }])
        .unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(1_000));
    drop(store);
    let store = Store::open(&dir.path().join("data/agent-store.redb")).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(1_000));
    // Releasing a lower ceiling drops the table's row, not the record's higher one.
    store.apply(&[release(500)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), Some(1_000));
    store.apply(&[release(1_000)]).unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), None);
    let kept = store.session("s").unwrap().expect("the record stays");
    assert_eq!(kept, record("s", "p", AgentStatus::Running, 10));
    assert_eq!(store.project_ids().unwrap(), ["p"]);
}

/// A clean shutdown's release drops the ceilings records hold too.
#[test]
fn releasing_every_ceiling_drops_those_records_hold() {
    let (_dir, store) = fresh();
    let mut held = record("s", "p", AgentStatus::Running, 10);
    held.seq_ceiling = 1_000;
    store
        .apply(&[
            WriteOp::put_session(held),
            put("t", "p", AgentStatus::Done, 11),
        ])
        .unwrap();
    store.release_seq_ceilings().unwrap();
    assert_eq!(store.seq_ceiling("s").unwrap(), None);
    assert_eq!(
        store.session("s").unwrap(),
        Some(record("s", "p", AgentStatus::Running, 10))
    );
}
