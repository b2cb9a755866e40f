//! Storage that fails loudly, on real redb files: a damaged row is reported with its session and never
//! served, `verify` lists it, a file from the previous schema is migrated whole, a database file that
//! vanishes or is replaced stops commits until it is back, and a data dir that held a database is never
//! given a new empty one.

mod storage_support;

use std::path::{Path, PathBuf};

use agent_store::messages::wire::AgentStatus;
use agent_store::storage::{verify, StorageError, Store, WriteOp};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use storage_support::{append, latest_sessions, put, record, seqs};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PROJECT_MEMBERS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("project_members");
const PROJECT_KEYS: TableDefinition<(&str, &str), ()> = TableDefinition::new("project_keys");
const SESSION_STARTS: TableDefinition<&str, &[u8]> = TableDefinition::new("session_starts");
const PROJECTS: TableDefinition<&str, (&str, u64, i64)> = TableDefinition::new("projects");

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("agent-store.redb")
}

/// Changes every occurrence of `needle` in the file (redb keeps old copies of pages it has not reused),
/// so the live row is certainly hit; the change keeps the bytes valid UTF-8.
fn flip_every(path: &Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        bytes[at + i] ^= 0x01;
        hits += 1;
        at += i + needle.len();
    }
    std::fs::write(path, bytes).unwrap();
    hits
}

fn schema_version(path: &Path) -> u64 {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let v = txn
        .open_table(META)
        .unwrap()
        .get("schema_version")
        .unwrap()
        .unwrap()
        .value();
    v
}

#[test]
fn a_flipped_byte_in_a_message_row_is_reported_with_its_session_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).unwrap();
    let mut batch = append("victim", 1..=3);
    if let WriteOp::AppendMessages { messages, .. } = &mut batch {
        let mut m = (*messages[1]).clone();
        m.content = "NEEDLE-in-a-stored-row".into();
        messages[1] = std::sync::Arc::new(m);
    }
    store
        .apply(&[
            put("victim", "p", AgentStatus::Done, 1),
            batch,
            put("bystander", "p", AgentStatus::Done, 2),
            append("bystander", 1..=3),
        ])
        .unwrap();
    drop(store);
    assert!(flip_every(&path, b"NEEDLE") >= 1);

    let store = Store::open(&path).unwrap();
    let err = store.messages("victim", 0, None, None).unwrap_err();
    match &err {
        StorageError::Corrupt {
            session_id, what, ..
        } => assert_eq!(
            (session_id.as_str(), what.as_str()),
            ("victim", "message batch at seq 1")
        ),
        other => panic!("not reported as damaged: {other:?}"),
    }
    assert!(err.to_string().contains("session victim"), "{err}");
    assert_eq!(store.corrupt_rows(), 1);
    // The rest of the file is served as before.
    assert_eq!(
        seqs(&store.messages("bystander", 0, None, None).unwrap()),
        [1, 2, 3]
    );
    assert!(store.session("victim").unwrap().is_some());
    drop(store);

    let report = verify(&path).unwrap();
    assert_eq!((report.schema, report.sessions, report.batches), (11, 2, 2));
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    assert_eq!(report.damage[0].session_id, "victim");
    assert_eq!(
        report.damage[0].to_string(),
        "session victim: message batch at seq 1: checksum mismatch"
    );
}

#[test]
fn a_flipped_byte_in_a_session_record_is_reported_and_verify_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).unwrap();
    let mut r = record("rec", "p", AgentStatus::Done, 1);
    r.model = "NEEDLE-model".into();
    store.apply(&[WriteOp::put_session(r)]).unwrap();
    drop(store);
    assert!(flip_every(&path, b"NEEDLE") >= 1);

    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.session("rec"),
        Err(StorageError::Corrupt { ref session_id, .. }) if session_id == "rec"
    ));
    assert!(matches!(
        store.project_sessions("p"),
        Err(StorageError::Corrupt { .. })
    ));
    assert_eq!(store.corrupt_rows(), 2);
    drop(store);
    let report = verify(&path).unwrap();
    assert_eq!(
        report
            .damage
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        ["session rec: session record: checksum mismatch"]
    );
}

#[test]
fn verify_finds_nothing_in_a_sound_file_and_refuses_what_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).unwrap();
    store
        .apply(&[
            put("a", "p", AgentStatus::Running, 1),
            append("a", 1..=10),
            append("a", 11..=12),
        ])
        .unwrap();
    drop(store);
    let report = verify(&path).unwrap();
    assert!(report.damage.is_empty(), "{:?}", report.damage);
    assert_eq!(
        (report.sessions, report.batches, report.messages),
        (1, 2, 12)
    );

    assert!(verify(&dir.path().join("absent.redb")).is_err());
    let text = dir.path().join("text.redb");
    std::fs::write(&text, "not a database\n".repeat(100)).unwrap();
    assert!(matches!(verify(&text), Err(StorageError::Damaged { .. })));
}

/// `tests/fixtures/storage/schema1.redb` was written by the build before checksums (schema 1, commit
/// c627bd9), `schema2.redb` by the first build with them (schema 2, commit 535487b), `schema3.redb` by
/// main at 96ec071 (schema 3, before the message log and the index without timestamps), `schema5.redb`
/// by main at 2d770dd (schema 5, before the project summaries), `schema6.redb` by the release binary of
/// d54c1c8 (schema 6, batch bodies through postcard; its storage code is main 0077a55's), `schema7.redb` by
/// the release binary of 7a1dd54 (schema 7, records through postcard; /tmp/agent-store-final25b, started
/// with synthetic sessions over HTTP), `schema8.redb` by the release binary of main b6d82d0 (schema 8,
/// starts in `session_starts`; by `tests/fixtures/storage/make-schema8.sh`), `schema9.redb` by the release
/// binary of main d507b02 (schema 9, a summary row for every project; by `make-schema9.sh`), `schema10.redb`
/// by the release binary of main ff701fe (schema 10, before records held seqId ceilings; by
/// `make-schema10.sh`), the same way: project alpha's session done with two assistant messages and a cost, project beta's started after it.
fn migrates_whole(fixture: &str, schema: u64, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    std::fs::copy(fixture, &path).unwrap();
    let before = verify(&path).unwrap();
    assert_eq!(before.schema, schema);
    assert!(before.damage.is_empty(), "{:?}", before.damage);

    let store = Store::open(&path).unwrap();
    let alpha = store.last_session("alpha").unwrap().expect("alpha kept");
    assert_eq!(alpha.status, AgentStatus::Done);
    assert_eq!(
        (alpha.cost_usd, alpha.input_tokens, alpha.output_tokens),
        (0.5, 10, 20)
    );
    let messages = store.messages(&alpha.session_id, 0, None, None).unwrap();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["hello", text, "second"]);
    let beta = store.last_session("beta").unwrap().expect("beta kept");
    assert_eq!(store.project_ids().unwrap(), ["alpha", "beta"]);
    let lasts = latest_sessions(&store);
    assert_eq!(
        lasts,
        [
            ("alpha".to_owned(), alpha.session_id.clone()),
            ("beta".to_owned(), beta.session_id.clone())
        ]
    );
    // Written after the migration: read back through the checksum, and the index entry updated in place.
    let mut moved = alpha.clone();
    moved.updated_at = beta.updated_at + 1;
    store
        .apply(&[
            append(&alpha.session_id, 4..=5),
            WriteOp::put_session(moved),
        ])
        .unwrap();
    assert_eq!(
        store
            .messages(&alpha.session_id, 3, None, None)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.project_sessions("alpha").unwrap().len(), 1);
    drop(store);

    assert_eq!(schema_version(&path), 11);
    let after = verify(&path).unwrap();
    assert_eq!((after.schema, after.sessions), (11, before.sessions));
    assert_eq!(after.messages, before.messages + 2);
    assert!(after.damage.is_empty(), "{:?}", after.damage);
}

#[test]
fn a_schema_one_file_from_the_build_before_checksums_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema1.redb",
        1,
        "schema one text ✓",
    );
}

#[test]
fn a_schema_two_file_from_the_build_before_the_append_layout_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema2.redb",
        2,
        "schema two text ✓",
    );
}

#[test]
fn a_schema_three_file_from_main_before_the_message_log_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema3.redb",
        3,
        "schema three text ✓",
    );
}

#[test]
fn a_schema_five_file_from_main_before_the_project_summaries_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema5.redb",
        5,
        "schema five text ✓",
    );
}

#[test]
fn a_schema_six_file_from_main_before_the_hand_written_batches_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema6.redb",
        6,
        "schema six text ✓",
    );
}

#[test]
fn a_schema_seven_file_from_main_before_the_hand_written_records_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema7.redb",
        7,
        "schema seven text ✓",
    );
}

#[test]
fn a_schema_eight_file_from_main_before_the_starts_in_the_project_index_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema8.redb",
        8,
        "schema eight text ✓",
    );
}

#[test]
fn a_schema_nine_file_from_main_before_the_single_session_projects_lost_their_rows_is_migrated_whole(
) {
    migrates_whole(
        "tests/fixtures/storage/schema9.redb",
        9,
        "schema nine text ✓",
    );
}

#[test]
fn a_schema_ten_file_from_main_before_records_held_seq_ceilings_is_migrated_whole() {
    migrates_whole(
        "tests/fixtures/storage/schema10.redb",
        10,
        "schema ten text ✓",
    );
}

/// Schema 9 kept a summary row for every project; 10 keeps none for a project of one session. The
/// fixture's two projects have one session each: their rows go, and their reads stay.
#[test]
fn a_schema_nine_file_keeps_no_summary_row_of_a_project_of_one_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    std::fs::copy("tests/fixtures/storage/schema9.redb", &path).unwrap();
    let rows = |path: &Path| {
        let db = redb::ReadOnlyDatabase::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        txn.open_table(PROJECTS).unwrap().len().unwrap()
    };
    assert_eq!(rows(&path), 2);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.project_ids().unwrap(), ["alpha", "beta"]);
    let beta = store.last_session("beta").unwrap().expect("beta kept");
    assert_eq!(beta.status, AgentStatus::Running);
    drop(store);
    assert_eq!(rows(&path), 0);
}

/// Schema 8 kept each session's start in `session_starts`; 9 keeps it in the session's project index
/// entry. The fixture's starts (alpha's with no option, beta's with a model and a system prompt) read
/// back the same after the migration, and both old tables are gone.
#[test]
fn a_schema_eight_file_keeps_its_sessions_starts_in_the_project_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    std::fs::copy("tests/fixtures/storage/schema8.redb", &path).unwrap();
    let store = Store::open(&path).unwrap();
    let start = |project: &str| {
        let id = store.last_session(project).unwrap().unwrap().session_id;
        let bytes = store.session_start(&id).unwrap().expect("start kept");
        String::from_utf8(bytes).unwrap()
    };
    assert_eq!(start("alpha"), r#"{"provider":"synthetic"}"#);
    assert_eq!(
        start("beta"),
        r#"{"provider":"synthetic","model":"fixture-model","system_prompt":"be brief"}"#
    );
    drop(store);

    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(txn.open_table(PROJECT_MEMBERS).unwrap().len().unwrap(), 2);
    assert!(txn.open_table(PROJECT_KEYS).is_err(), "project_keys kept");
    assert!(
        txn.open_table(SESSION_STARTS).is_err(),
        "session_starts kept"
    );
}

#[test]
fn retention_everywhere_matches_retention_project_by_project() {
    let fill = |store: &Store| {
        let mut ops = Vec::new();
        for p in 0..20 {
            for s in 0..5i64 {
                let status = if s == 0 {
                    AgentStatus::Running
                } else {
                    AgentStatus::Done
                };
                ops.push(WriteOp::put_session(record(
                    &format!("p{p}-s{s}"),
                    &format!("p{p}"),
                    status,
                    100 + s,
                )));
            }
        }
        store.apply(&ops).unwrap();
    };
    let (one, all) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (by_project, everywhere) = (
        Store::open(&db_in(&one)).unwrap(),
        Store::open(&db_in(&all)).unwrap(),
    );
    fill(&by_project);
    fill(&everywhere);
    let mut expected = Vec::new();
    for p in by_project.project_ids().unwrap() {
        expected.extend(by_project.enforce_retention(&p, 2, i64::MAX, 0).unwrap());
    }
    let mut got = everywhere
        .enforce_retention_everywhere(2, i64::MAX, 0)
        .unwrap();
    expected.sort();
    got.sort();
    // Running s0 and the two newest done of each project stay.
    assert_eq!(got.len(), 20 * 2);
    assert_eq!(got, expected);
    for p in 0..20 {
        let p = format!("p{p}");
        let left = |s: &Store| {
            s.project_sessions(&p)
                .unwrap()
                .into_iter()
                .map(|r| r.session_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(left(&everywhere), left(&by_project));
    }
}

#[test]
fn a_vanished_database_file_stops_commits_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).unwrap();
    store
        .apply(&[put("s", "p", AgentStatus::Running, 1), append("s", 1..=2)])
        .unwrap();
    assert_eq!(store.writable(), Ok(()));

    let aside = dir.path().join("aside.redb");
    std::fs::rename(&path, &aside).unwrap();
    let why = store.writable().unwrap_err();
    assert!(why.contains("was deleted"), "{why}");
    let err = store.apply(&[append("s", 3..=4)]).unwrap_err();
    assert!(matches!(err, StorageError::FileGone { .. }), "{err:?}");
    assert!(!path.exists(), "no new database appears at the path");

    // Another file in its place is not the database this process opened.
    std::fs::write(&path, b"someone else's file").unwrap();
    assert!(store.writable().unwrap_err().contains("was replaced"));
    assert!(matches!(
        store.apply(&[append("s", 3..=4)]),
        Err(StorageError::FileGone { .. })
    ));
    std::fs::remove_file(&path).unwrap();

    // The same file back: commits resume, and nothing refused was half applied.
    std::fs::rename(&aside, &path).unwrap();
    assert_eq!(store.writable(), Ok(()));
    store.apply(&[append("s", 3..=4)]).unwrap();
    assert_eq!(store.writable(), Ok(()));
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        seqs(&store.messages("s", 0, None, None).unwrap()),
        [1, 2, 3, 4]
    );
}

#[test]
fn a_missing_database_is_refused_when_the_data_dir_held_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    drop(Store::open(&path).unwrap());
    std::fs::remove_file(&path).unwrap();

    let err = Store::open(&path)
        .err()
        .expect("must refuse to start empty");
    assert!(matches!(err, StorageError::Missing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("agent-store.redb.created"), "{text}");
    assert!(!path.exists(), "nothing created");
    // An emptied file is as good as missing.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StorageError::Missing { .. })
    ));

    // Told to start again (the marker removed), it does.
    std::fs::remove_file(dir.path().join("agent-store.redb.created")).unwrap();
    drop(Store::open(&path).unwrap());
    assert!(dir.path().join("agent-store.redb.created").exists());
}

/// Schema 4 (main before packed rows) stored every batch plain, byte for byte as this build stores a small
/// one; marking such a file 4, with its project index as schema 4 to 8 kept it (`project_keys`), gives
/// what main wrote. It opens as 10 with no row rewritten, its plain rows read beside the packed ones written
/// after, and verify finds nothing wrong.
#[test]
fn a_schema_four_file_opens_as_ten_and_reads_its_plain_rows_beside_packed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).unwrap();
    store
        .apply(&[put("a", "p", AgentStatus::Done, 1), append("a", 1..=3)])
        .unwrap();
    drop(store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("schema_version", 4)
            .unwrap();
        {
            let members = txn.open_table(PROJECT_MEMBERS).unwrap();
            let mut keys = txn.open_table(PROJECT_KEYS).unwrap();
            for row in members.iter().unwrap() {
                let (key, _) = row.unwrap();
                keys.insert(key.value(), ()).unwrap();
            }
        }
        txn.delete_table(PROJECT_MEMBERS).unwrap();
        txn.commit().unwrap();
    }
    let before = verify(&path).unwrap();
    assert_eq!((before.schema, before.messages), (4, 3));

    let store = Store::open(&path).unwrap();
    let long: Vec<_> = (4..=23)
        .map(|seq| {
            let mut m = storage_support::message(seq);
            m.content = format!("{seq}: read src/lib.rs, nothing to change there. ").repeat(30);
            std::sync::Arc::new(m)
        })
        .collect();
    store
        .apply(&[WriteOp::AppendMessages {
            session_id: "a".into(),
            messages: long.clone(),
        }])
        .unwrap();
    let all = store.messages("a", 0, None, None).unwrap();
    assert_eq!(seqs(&all), (1..=23).collect::<Vec<_>>());
    assert_eq!(all[0], storage_support::message(1));
    assert!(all[3..].iter().zip(&long).all(|(got, sent)| got == &**sent));
    drop(store);

    assert_eq!(schema_version(&path), 11);
    let after = verify(&path).unwrap();
    assert!(after.damage.is_empty(), "{:?}", after.damage);
    assert_eq!((after.schema, after.batches, after.messages), (11, 2, 23));
}
