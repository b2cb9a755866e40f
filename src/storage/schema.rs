//! The tables of the database file, its schema version, and the open that refuses what it must not touch.
//!
//! A file this build did not write (not redb, no version, a newer version) is refused before anything is
//! written to it: the first look is read-only, or, when redb would have to repair the file after a crash,
//! goes through a copy-on-write view whose writes are thrown away. A new file is built under a temporary
//! name and renamed into place, so a file at the real path always carries its schema version. An older
//! schema is migrated in place, in one transaction (src/storage/migrate.rs). A data dir whose marker says
//! it held a database is never given a new empty one (src/storage/guard.rs).

use std::fs::{self, File};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redb::{
    Builder, Database, DatabaseError, Durability, Key, ReadableDatabase, TableDefinition,
    TableError, Value,
};

use super::guard;
use super::migrate;
use super::overlay::CopyOnWrite;
use super::projects::PROJECTS;
use super::StorageError;

/// sessionId → encoded `SessionRecord`.
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (projectId, sessionId) → what the session was started with (src/storage/starts.rs; empty when nothing
/// was stored): a project's sessions. Written when a session is first stored (or moves project), never on
/// a record update: the few sessions of one project are put in retention order from their records when
/// read. The start rides in the entry because the entry is written once per session anyway: a table of
/// its own cost every start one more B-tree insert, in a tree of its own.
pub(super) const PROJECT_MEMBERS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("project_members");
/// Schema 4 to 8's index, (projectId, sessionId) → (), read only by the migration and verify.
pub(super) const PROJECT_KEYS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("project_keys");
/// Schema 3's index, (projectId, sessionId) → updatedAt, read only by the migration and verify.
pub(super) const PROJECT_INDEX: TableDefinition<(&str, &str), i64> =
    TableDefinition::new("project_index");
/// Schema 1 and 2's index, (projectId, updatedAt, sessionId) → (), read only by the migration and verify.
pub(super) const PROJECT_SESSIONS: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("project_sessions");
/// Every message batch row, by the order it was written: append position → one encoded batch. A new row
/// always lands at the end of this tree, so a commit of many sessions' batches writes a few new pages at
/// its right edge instead of copying a page (and its parents) in the middle for every session.
pub(super) const MESSAGE_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("message_log");
/// (sessionId, first seqId) → the row's position in `message_log`: a session's batches in seq order. Its
/// entries are small, so one page holds many.
pub(super) const MESSAGE_INDEX: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("message_index");
/// Schema 1 to 3's rows, (sessionId, first seqId) → one encoded batch, read only by the migration and
/// verify.
pub(super) const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
/// sessionId → () for every session whose stored status is running, so start-up need not scan records.
pub(super) const RUNNING: TableDefinition<&str, ()> = TableDefinition::new("running");
pub(super) const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(super) const SCHEMA_VERSION_KEY: &str = "schema_version";
/// The schema this build writes and reads. 2: every `sessions` and `messages` value carries a checksum.
/// 3: `project_index` replaces `project_sessions`. 4: `project_keys` replaces `project_index`, and
/// `message_log` with `message_index` replace `messages`. 5: a batch row may be packed with LZ4
/// (src/storage/codec.rs); an older build would take those rows for damaged ones. 6: `projects` holds
/// each project's summary (src/storage/projects.rs); an older build would leave it stale. 7: a batch row
/// may have a hand-written body (formats 4 and 5, src/storage/frame.rs); an older build would take those
/// rows for damaged ones. 8: a record may have a hand-written body (format 3, src/storage/record.rs), and
/// the event journal keeps a floor and may pack its runs (src/storage/journal.rs); an older build would
/// take those records and runs for damaged ones. 9: `project_members` replaces `project_keys` and
/// `session_starts` (each session's start is the value of its index entry); an older build would find
/// neither table it reads. 10: `projects` holds rows only for projects with two sessions or more (one
/// session is its own summary); an older build would miss the other projects in its lists. 11: a record
/// may hold a seqId ceiling (src/storage/record.rs, flag 4); an older build would take such a record for a
/// damaged one, and would miss the ceiling.
pub(super) const SCHEMA_VERSION: u64 = 11;
/// The oldest schema this build migrates from.
const OLDEST_SCHEMA: u64 = 1;

/// The first string past `s` and past every tuple key whose first element is `s`: nothing sorts between
/// `s` and `s` followed by NUL. Used as the exclusive end of a range over one project's or session's keys.
pub(super) fn successor(s: &str) -> String {
    let mut next = String::with_capacity(s.len() + 1);
    next.push_str(s);
    next.push('\0');
    next
}

/// Opens the database at `path`, creating it (and its directory) when there is none and the data dir never
/// held one, and migrating it when its schema is older.
pub(super) fn open(path: &Path, cache_size: usize) -> Result<Database, StorageError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .map_err(|e| open_error(path, format!("creating {}: {e}", dir.display())))?;
    }
    let db = match fs::metadata(path) {
        // An empty file holds nothing to lose; redb itself treats it as a place for a new database.
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_new(path, cache_size)?,
        Ok(m) if m.len() == 0 => create_new(path, cache_size)?,
        Err(e) => return Err(open_error(path, e)),
        Ok(_) => {
            let found = check(path)?;
            let db = Builder::new()
                .set_cache_size(cache_size)
                .open(path)
                .map_err(|e| open_error(path, e))?;
            if found < SCHEMA_VERSION {
                migrate::run(&db, found, path)?;
            }
            db
        }
    };
    guard::mark(path).map_err(|e| open_error(path, format!("writing its marker: {e}")))?;
    Ok(db)
}

fn create_new(path: &Path, cache_size: usize) -> Result<Database, StorageError> {
    guard::refuse_if_marked(path)?;
    create(path, cache_size)
}

/// Builds a fresh database beside `path`, then moves it into place.
fn create(path: &Path, cache_size: usize) -> Result<Database, StorageError> {
    let tmp = creating_path(path)?;
    // A leftover is ours from a run that died while creating: it never held data.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(open_error(&tmp, e)),
        _ => {}
    }
    let db = Builder::new()
        .create(&tmp)
        .map_err(|e| open_error(&tmp, e))?;
    init(&db).map_err(|e| open_error(&tmp, e))?;
    db.close().map_err(|e| open_error(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| open_error(path, e))?;
    // The rename is only durable once the directory entry is.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| open_error(path, e))?;
    Builder::new()
        .set_cache_size(cache_size)
        .open(path)
        .map_err(|e| open_error(path, e))
}

fn creating_path(path: &Path) -> Result<PathBuf, StorageError> {
    let mut name = path
        .file_name()
        .ok_or_else(|| open_error(path, "the path names no file"))?
        .to_os_string();
    name.push(".creating");
    Ok(path.with_file_name(name))
}

fn init(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        txn.open_table(SESSIONS)?;
        txn.open_table(PROJECT_MEMBERS)?;
        txn.open_table(PROJECTS)?;
        txn.open_table(MESSAGE_LOG)?;
        txn.open_table(MESSAGE_INDEX)?;
        txn.open_table(RUNNING)?;
        txn.open_table(SETTINGS)?;
        txn.open_table(META)?
            .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
    }
    txn.commit()?;
    Ok(())
}

/// Looks at an existing file without changing a byte of it; answers its schema version.
pub(super) fn check(path: &Path) -> Result<u64, StorageError> {
    look(path, |db| verify(db, path))
}

/// Runs `f` on a read-only view of an existing file, without changing a byte of it.
pub(super) fn look<T>(
    path: &Path,
    f: impl FnOnce(&dyn ReadableDatabase) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    // redb trusts a cleanly closed file and may panic on one altered outside it; that is a damaged file.
    let looked = panic::catch_unwind(AssertUnwindSafe(|| {
        match Builder::new().open_read_only(path) {
            Ok(db) => f(&db),
            Err(DatabaseError::RepairAborted) => {
                let file = File::open(path).map_err(|e| open_error(path, e))?;
                let view = CopyOnWrite::new(file).map_err(|e| open_error(path, e))?;
                let db = Builder::new()
                    .create_with_backend(view)
                    .map_err(|e| refused(path, e))?;
                f(&db)
            }
            Err(e) => Err(refused(path, e)),
        }
    }));
    looked.unwrap_or_else(|_| Err(damaged(path, "redb panicked while reading the file")))
}

/// Checks the schema version and that every table is there; answers the version.
pub(super) fn verify(db: &dyn ReadableDatabase, path: &Path) -> Result<u64, StorageError> {
    let txn = db.begin_read().map_err(|e| damaged(path, e))?;
    let meta = txn.open_table(META).map_err(|e| table_error(path, e))?;
    let found = meta
        .get(SCHEMA_VERSION_KEY)
        .map_err(|e| damaged(path, e))?
        .map(|v| v.value())
        .ok_or_else(|| damaged(path, "the meta table has no schema_version"))?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::NewerSchema {
            path: path.display().to_string(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: SCHEMA_VERSION as u32,
        });
    }
    if found < OLDEST_SCHEMA {
        return Err(damaged(path, format!("unknown schema_version {found}")));
    }
    has_table(&txn, SESSIONS, path)?;
    match found {
        ..=2 => has_table(&txn, PROJECT_SESSIONS, path)?,
        3 => has_table(&txn, PROJECT_INDEX, path)?,
        4..=8 => has_table(&txn, PROJECT_KEYS, path)?,
        _ => has_table(&txn, PROJECT_MEMBERS, path)?,
    }
    if found < 4 {
        has_table(&txn, MESSAGES, path)?;
    } else {
        has_table(&txn, MESSAGE_LOG, path)?;
        has_table(&txn, MESSAGE_INDEX, path)?;
    }
    if found >= 6 {
        has_table(&txn, PROJECTS, path)?;
    }
    has_table(&txn, RUNNING, path)?;
    has_table(&txn, SETTINGS, path)?;
    Ok(found)
}

fn has_table<K: Key + 'static, V: Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
    path: &Path,
) -> Result<(), StorageError> {
    txn.open_table(def)
        .map(drop)
        .map_err(|e| table_error(path, e))
}

fn table_error(path: &Path, e: TableError) -> StorageError {
    match e {
        TableError::TableDoesNotExist(name) => damaged(path, format!("no {name} table")),
        other => damaged(path, other),
    }
}

/// Why a first look at an existing file failed: the file's fault, or the machine's.
fn refused(path: &Path, e: DatabaseError) -> StorageError {
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            open_error(path, "already open, by this or another process")
        }
        // redb reports a file that is not redb (InvalidData) or shorter than its header promises
        // (UnexpectedEof) as I/O errors; those are the file's fault, the others the machine's.
        DatabaseError::Storage(redb::StorageError::Io(err))
            if !matches!(
                err.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            open_error(path, err)
        }
        other => damaged(path, other),
    }
}

fn open_error(path: &Path, message: impl ToString) -> StorageError {
    StorageError::Open {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn damaged(path: &Path, message: impl ToString) -> StorageError {
    StorageError::Damaged {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}
