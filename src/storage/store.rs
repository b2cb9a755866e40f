//! `Store`: the handle to the database file. Writes run in one durable transaction per call; reads run in
//! their own read transactions, concurrently with each other and with the writer.

use std::fmt::Display;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable};

use super::codec::{decode_batch, decode_record, Visit};
use super::guard::Guard;
use super::projects::{self, PROJECTS};
use super::schema::{
    self, successor, MESSAGE_INDEX, MESSAGE_LOG, PROJECT_MEMBERS, SESSIONS, SETTINGS,
};
use super::writer::{write_error, Retention, Writer};
use super::{SessionRecord, StorageError, WriteOp};
use crate::messages::wire::{AgentMessage, AgentStatus, UnixMs};

/// One piece of a group commit (`Store::apply_steps`).
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Writes, as `Store::apply`.
    Write(&'a [WriteOp]),
    /// Retention of one project, as `Store::enforce_retention`.
    Retain {
        project_id: &'a str,
        keep: u32,
        max_age_ms: i64,
    },
}

/// A cheap, cloneable handle to the open database, usable from any thread.
///
/// The database sits behind a lock so that `close` can let go of the file while clones of the handle live
/// on (an engine restarted in the same process must be able to open it again), and so that a database
/// that hit an I/O error can be opened again (see `Slot::Failed`); every call takes the lock just long
/// enough to clone an `Arc`.
#[derive(Clone)]
pub struct Store {
    db: Arc<RwLock<Slot>>,
    path: Arc<PathBuf>,
    cache_size: usize,
    guard: Arc<Guard>,
}

/// The page cache of a store opened with `Store::open`, and the `storage.cache_size` default.
pub const DEFAULT_CACHE_SIZE: usize = 8 << 20;

enum Slot {
    Open(Arc<Database>),
    /// A write hit an I/O error (a full disk): redb then refuses every transaction, reads included,
    /// until the file is opened again. The next call reopens it (which repairs it) once no transaction
    /// still holds the old instance; until then calls answer the error and the persister retries.
    Failed,
    Closed,
}

fn read_error(e: impl Display) -> StorageError {
    StorageError::Read(e.to_string())
}

impl Store {
    /// Opens or creates the database at `path`. A file that is not an agent-store database, or was written
    /// by a newer one, is refused and left exactly as it was.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        Store::open_with_cache(path, DEFAULT_CACHE_SIZE)
    }

    /// `open` with a page cache of `cache_size` bytes.
    pub fn open_with_cache(path: &Path, cache_size: usize) -> Result<Store, StorageError> {
        let db = schema::open(path, cache_size)?;
        Ok(Store {
            db: Arc::new(RwLock::new(Slot::Open(Arc::new(db)))),
            path: Arc::new(path.to_path_buf()),
            cache_size,
            guard: Arc::new(Guard::new(path)?),
        })
    }

    /// Ok if storage can commit, as far as is known without writing: the file is the one opened and the
    /// last commit did not fail for the machine's reasons (a full disk, a read-only or vanished file).
    /// Costs a lock and a `stat`: cheap enough for every readiness probe.
    pub fn writable(&self) -> Result<(), String> {
        if matches!(
            &*self.db.read().unwrap_or_else(|p| p.into_inner()),
            Slot::Closed
        ) {
            return Err(StorageError::Closed.to_string());
        }
        self.guard.status()
    }

    /// Counts damaged rows in `counter` too from now on (the first call wins).
    pub fn observe_corrupt_rows(&self, counter: prometheus::IntCounter) {
        self.guard.observe_corrupt_rows(counter);
    }

    /// How many damaged rows (checksum or decoding failures) reads have met since the open.
    pub fn corrupt_rows(&self) -> u64 {
        self.guard.corrupt_rows()
    }

    /// Applies `ops` in order, in one transaction that is durable when this returns.
    pub fn apply(&self, ops: &[WriteOp]) -> Result<(), StorageError> {
        self.apply_all([ops])
    }

    /// Applies several lists of ops, in order, in one durable transaction: one fsync for all of them.
    pub fn apply_all<'a>(
        &self,
        lists: impl IntoIterator<Item = &'a [WriteOp]>,
    ) -> Result<(), StorageError> {
        self.write(|w| {
            for ops in lists {
                w.apply_ops(ops)?;
            }
            Ok(())
        })
    }

    /// Applies `steps` in order, in one durable transaction: one fsync for many sessions' writes and for
    /// the retention their finishes asked for. Answers, for each `Step::Retain` in order, the sessions it
    /// deleted. On an error nothing of any step is applied.
    pub fn apply_steps(
        &self,
        steps: &[Step<'_>],
        now: UnixMs,
    ) -> Result<Vec<Vec<String>>, StorageError> {
        self.write(|w| {
            let mut evicted = Vec::new();
            for step in steps {
                match step {
                    Step::Write(ops) => w.apply_ops(ops)?,
                    Step::Retain {
                        project_id,
                        keep,
                        max_age_ms,
                    } => {
                        let rule = Retention {
                            keep: *keep,
                            max_age_ms: *max_age_ms,
                            now,
                        };
                        evicted.push(w.retain_project(project_id, &rule)?);
                    }
                }
            }
            Ok(evicted)
        })
    }

    /// Deletes the project's sessions that retention lets go, and answers their ids. Running sessions
    /// (by stored status) are neither counted nor deleted. Of the rest, ranked
    /// newest first by `updated_at`, those from rank `keep` on go, and so does any older than `max_age_ms`
    /// (a session with no timestamp, `updated_at <= 0`, never ages out, as in the original store).
    pub fn enforce_retention(
        &self,
        project_id: &str,
        keep: u32,
        max_age_ms: i64,
        now: UnixMs,
    ) -> Result<Vec<String>, StorageError> {
        let rule = Retention {
            keep,
            max_age_ms,
            now,
        };
        self.write(|w| w.retain_project(project_id, &rule))
    }

    /// `enforce_retention` for every project, in one transaction (one fsync) and one pass over the index:
    /// what a change of the retention settings does.
    pub fn enforce_retention_everywhere(
        &self,
        keep: u32,
        max_age_ms: i64,
        now: UnixMs,
    ) -> Result<Vec<String>, StorageError> {
        let rule = Retention {
            keep,
            max_age_ms,
            now,
        };
        self.write(|w| w.retain_everywhere(&rule))
    }

    /// Start-up recovery: every session stored as running was cut off by the previous process's end. Each
    /// becomes status error with `error`, updated at `now`; the updated records are returned.
    pub fn mark_interrupted(
        &self,
        error: &str,
        now: UnixMs,
    ) -> Result<Vec<SessionRecord>, StorageError> {
        self.mark_interrupted_where(error, now, |_| true)
    }

    /// `mark_interrupted` for the running sessions `cut_off` picks; the others stay running (their agent
    /// lives outside this process and was not cut off by its end).
    pub fn mark_interrupted_where(
        &self,
        error: &str,
        now: UnixMs,
        cut_off: impl Fn(&SessionRecord) -> bool,
    ) -> Result<Vec<SessionRecord>, StorageError> {
        self.write(|w| {
            let mut out = Vec::new();
            for id in w.running_ids()? {
                let mut r = match w.record(&id) {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        w.unmark_running(&id)?;
                        continue;
                    }
                    // Left as it is, for reads and `agent-store verify` to report; the rest recover.
                    Err(e @ StorageError::Corrupt { .. }) => {
                        self.guard.corrupt(e);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if !cut_off(&r) {
                    continue;
                }
                r.status = AgentStatus::Error;
                r.error = Some(error.to_owned());
                r.updated_at = now;
                w.put_session(&r, None)?;
                out.push(r);
            }
            Ok(out)
        })
    }

    pub fn session(&self, session_id: &str) -> Result<Option<SessionRecord>, StorageError> {
        self.session_in(&self.read()?, session_id)
    }

    /// Several sessions' records in one read transaction, in the order asked (`None` for an unknown id).
    pub fn sessions(
        &self,
        session_ids: &[String],
    ) -> Result<Vec<Option<SessionRecord>>, StorageError> {
        let txn = self.read()?;
        session_ids
            .iter()
            .map(|id| self.session_in(&txn, id))
            .collect()
    }

    /// Counts and logs the damaged row a read met.
    fn checked<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        result.map_err(|e| self.guard.corrupt(e))
    }

    /// The session's stored messages with `after_seq < seqId` (and `seqId < before_seq`), in seq order, at
    /// most `limit` of them. A seqId stored twice (a batch rewritten after a retried write) counts once.
    pub fn messages(
        &self,
        session_id: &str,
        after_seq: u64,
        before_seq: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<AgentMessage>, StorageError> {
        let first_wanted = after_seq.saturating_add(1);
        let limit = limit.unwrap_or(usize::MAX);
        if limit == 0 || before_seq.is_some_and(|b| b <= first_wanted) {
            return Ok(Vec::new());
        }
        let txn = self.read()?;
        let table = txn.open_table(MESSAGE_INDEX).map_err(read_error)?;
        let log = txn.open_table(MESSAGE_LOG).map_err(read_error)?;
        // The row holding `first_wanted` may start before it: begin at the last row starting at or before.
        let start = match table
            .range((session_id, 0)..=(session_id, first_wanted))
            .map_err(read_error)?
            .next_back()
        {
            Some(row) => row.map_err(read_error)?.0.value().1,
            None => 0,
        };
        let end = match before_seq {
            Some(b) => Bound::Excluded((session_id, b)),
            None => Bound::Included((session_id, u64::MAX)),
        };
        let rows = table
            .range((Bound::Included((session_id, start)), end))
            .map_err(read_error)?;

        let mut out = Vec::new();
        // Rows are in first-seq order and seqs rise within a row, so a seq at or below the last one taken
        // is a duplicate.
        let mut last = after_seq;
        let mut taken = 0usize;
        for row in rows {
            let (key, position) = row.map_err(read_error)?;
            let first_seq = key.value().1;
            let Some(value) = log.get(position.value()).map_err(read_error)? else {
                return Err(self.guard.corrupt(StorageError::Corrupt {
                    session_id: session_id.to_owned(),
                    what: format!("message batch at seq {first_seq}"),
                    message: "its row is missing from the message log".into(),
                }));
            };
            let visit = |seq: u64| {
                if seq <= last || before_seq.is_some_and(|b| seq >= b) {
                    Visit::Skip
                } else if taken == limit {
                    Visit::Stop
                } else {
                    taken += 1;
                    last = seq;
                    Visit::Take
                }
            };
            self.checked(decode_batch(
                session_id,
                first_seq,
                value.value(),
                visit,
                &mut out,
            ))?;
            if taken == limit {
                break;
            }
        }
        Ok(out)
    }

    /// The project's most recently updated session, whatever its status: the one its summary names, or
    /// its only one (a project of one session has no summary row).
    pub fn last_session(&self, project_id: &str) -> Result<Option<SessionRecord>, StorageError> {
        let txn = self.read()?;
        let summaries = txn.open_table(PROJECTS).map_err(read_error)?;
        match projects::get(&summaries, project_id).map_err(read_error)? {
            Some(s) if !s.latest.is_empty() => self.session_in(&txn, &s.latest),
            Some(_) => Ok(None),
            None => {
                let index = txn.open_table(PROJECT_MEMBERS).map_err(read_error)?;
                match projects::members(&index, project_id, 1)
                    .map_err(read_error)?
                    .first()
                {
                    Some(id) => self.session_in(&txn, id),
                    None => Ok(None),
                }
            }
        }
    }

    /// The project's sessions, most recently updated first (ties: the higher session id first).
    pub fn project_sessions(&self, project_id: &str) -> Result<Vec<SessionRecord>, StorageError> {
        let txn = self.read()?;
        let index = txn.open_table(PROJECT_MEMBERS).map_err(read_error)?;
        let end = successor(project_id);
        let mut out = Vec::new();
        for row in index
            .range((project_id, "")..(end.as_str(), ""))
            .map_err(read_error)?
        {
            let (key, _) = row.map_err(read_error)?;
            if let Some(r) = self.session_in(&txn, key.value().1)? {
                out.push(r);
            }
        }
        out.sort_unstable_by(|a, b| {
            (b.updated_at, &b.session_id).cmp(&(a.updated_at, &a.session_id))
        });
        Ok(out)
    }

    /// Every project that has a stored session, sorted, with its most recently updated session (as
    /// `last_session` gives it): one pass over the project index, one record read per project (and one
    /// summary row per project of more than one session).
    pub fn last_sessions(&self) -> Result<Vec<(String, Option<SessionRecord>)>, StorageError> {
        let txn = self.read()?;
        let summaries = txn.open_table(PROJECTS).map_err(read_error)?;
        let mut out = Vec::new();
        for (project, only) in self.projects_in(&txn)? {
            let record = match only {
                Some(id) => self.session_in(&txn, &id)?,
                None => match projects::get(&summaries, &project).map_err(read_error)? {
                    Some(s) if !s.latest.is_empty() => self.session_in(&txn, &s.latest)?,
                    _ => None,
                },
            };
            out.push((project, record));
        }
        Ok(out)
    }

    /// Every project that has a stored session, sorted.
    pub fn project_ids(&self) -> Result<Vec<String>, StorageError> {
        let txn = self.read()?;
        Ok(self
            .projects_in(&txn)?
            .into_iter()
            .map(|(project, _)| project)
            .collect())
    }

    /// Every project in the index, sorted, with its session's id when it has only one.
    fn projects_in(
        &self,
        txn: &ReadTransaction,
    ) -> Result<Vec<(String, Option<String>)>, StorageError> {
        let index = txn.open_table(PROJECT_MEMBERS).map_err(read_error)?;
        projects::all(&index).map_err(read_error)
    }

    pub fn settings(&self) -> Result<Vec<(String, String)>, StorageError> {
        let txn = self.read()?;
        let table = txn.open_table(SETTINGS).map_err(read_error)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(read_error)? {
            let (k, v) = row.map_err(read_error)?;
            out.push((k.value().to_owned(), v.value().to_owned()));
        }
        Ok(out)
    }

    /// Bytes in redb's page cache now (0 while the database is not open).
    pub fn cache_used(&self) -> usize {
        match &*self.db.read().unwrap_or_else(|p| p.into_inner()) {
            Slot::Open(db) => db.cache_stats().used_bytes(),
            _ => 0,
        }
    }

    /// The size of the database file in bytes (0 if it cannot be read).
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(self.path.as_path())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    fn db(&self) -> Result<Arc<Database>, StorageError> {
        match &*self
            .db
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
        {
            Slot::Open(db) => return Ok(db.clone()),
            Slot::Closed => return Err(StorageError::Closed),
            Slot::Failed => {}
        }
        let mut slot = self
            .db
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*slot {
            Slot::Open(db) => Ok(db.clone()),
            Slot::Closed => Err(StorageError::Closed),
            Slot::Failed => {
                // Only the file that was opened is opened again, never a new or replaced one.
                self.guard.check_file()?;
                // Fails (the file is still open) while a transaction holds the old instance: try later.
                let db = Arc::new(schema::open(&self.path, self.cache_size)?);
                tracing::info!(path = %self.path.display(), "database reopened after an I/O error");
                *slot = Slot::Open(db.clone());
                Ok(db)
            }
        }
    }

    /// Lets go of the database file; later calls answer `StorageError::Closed`. Transactions already
    /// running finish first.
    pub fn close(&self) {
        *self
            .db
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Slot::Closed;
    }

    /// After a failed write: if redb now refuses everything for an earlier I/O error, let go of `db` so
    /// that the next call opens the file again.
    fn check_io_failure(&self, db: &Arc<Database>) {
        let latched = matches!(
            db.begin_write(),
            Err(redb::TransactionError::Storage(
                redb::StorageError::PreviousIo
            ))
        );
        if !latched {
            return;
        }
        let mut slot = self
            .db
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if matches!(&*slot, Slot::Open(open) if Arc::ptr_eq(open, db)) {
            tracing::warn!(path = %self.path.display(), "storage I/O error; the database will be reopened");
            *slot = Slot::Failed;
        }
    }

    pub(super) fn read(&self) -> Result<ReadTransaction, StorageError> {
        self.db()?.begin_read().map_err(read_error)
    }

    /// A read transaction, for the other tables' files (storage/ledger.rs).
    pub(super) fn read_txn(&self) -> Result<ReadTransaction, StorageError> {
        self.read()
    }

    /// A damaged row read by another table's file is counted and reported like a session's.
    pub(super) fn checked_row<T>(
        &self,
        result: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.checked(result)
    }

    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let result = self.db().and_then(|db| {
            let result = Self::write_in(&db, &self.guard, f);
            if result.is_err() {
                self.check_io_failure(&db);
            }
            result
        });
        self.guard.record(&result);
        result
    }

    fn write_in<T>(
        db: &Database,
        guard: &Guard,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut txn = db.begin_write().map_err(write_error)?;
        txn.set_durability(Durability::Immediate)
            .map_err(write_error)?;
        // On any error the transaction is dropped, which aborts it: nothing is half applied.
        let mut writer = Writer::open(&txn)?;
        let out = f(&mut writer)?;
        writer.finish()?;
        // A commit to a deleted or replaced file would be lost at the next open: refuse it.
        guard.check_file()?;
        txn.commit().map_err(write_error)?;
        Ok(out)
    }

    fn session_in(
        &self,
        txn: &ReadTransaction,
        session_id: &str,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let sessions = txn.open_table(SESSIONS).map_err(read_error)?;
        let value = sessions.get(session_id).map_err(read_error)?;
        self.checked(
            value
                .map(|v| decode_record(session_id, v.value()))
                .transpose(),
        )
    }
}
