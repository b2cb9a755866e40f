//! The mutations, inside one write transaction: every `WriteOp`, and the pieces retention and start-up
//! recovery are made of. Keeping the index invariants (one `project_members` entry per record, holding its
//! start; a `running` mark exactly for running records; no message rows without a record) in one place is
//! what lets every caller compose them freely within a transaction.
//!
//! A record update (every flush of a busy session) touches only the `sessions` row: the value it replaces
//! says whether the project or the running state changed, and only then are those indexes written. Fewer
//! B-tree pages copied per commit is what the writer's pace is made of. The project's summary
//! (src/storage/projects.rs) is read on such an update and written only when it changes; a project's
//! first session writes none (a project has a summary row only from its second session on).

use std::fmt::Display;

use redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{decode_record, encode_batch, encode_record, record_place};
use super::projects::{self, ProjectsTable, Summary, PROJECTS};
use super::schema::{
    successor, MESSAGE_INDEX, MESSAGE_LOG, PROJECT_MEMBERS, RUNNING, SESSIONS, SETTINGS,
};
use super::{journal, sequence, starts};
use super::{EncodedBatch, SessionRecord, StorageError, WriteOp};
use crate::messages::wire::{AgentStatus, SharedMessage, UnixMs};

/// What retention keeps of a project's sessions (see `Store::enforce_retention`).
pub(super) struct Retention {
    pub keep: u32,
    pub max_age_ms: i64,
    pub now: UnixMs,
}

/// The tables of one write transaction, opened once for all the ops applied in it.
pub(super) struct Writer<'t> {
    sessions: Table<'t, &'static str, &'static [u8]>,
    /// (projectId, sessionId) → the session's start.
    members: starts::MembersTable<'t>,
    /// Each project's latest session, session count and updatedAt floor.
    projects: ProjectsTable<'t>,
    log: Table<'t, u64, &'static [u8]>,
    batches: Table<'t, (&'static str, u64), u64>,
    /// Where the next message row goes in `log`: past the last one.
    next_row: u64,
    running: Table<'t, &'static str, ()>,
    settings: Table<'t, &'static str, &'static str>,
    /// The tables of sessions' seqId ceilings and the event journal, opened on first use: most
    /// transactions touch neither.
    txn: &'t WriteTransaction,
    ceilings: Option<Table<'t, &'static str, u64>>,
    journal: Option<journal::JournalTable<'t>>,
    /// Journal entries not yet stored: consecutive ones become one row (src/storage/journal.rs).
    journal_run: Option<journal::Run>,
    /// The cost ledger and policies (storage/ledger.rs).
    ledger: super::ledger::LedgerWriter<'t>,
}

/// The starts sent in `ops` whose session's record the same ops write (the first start of each session),
/// sorted by session: those ride in the entry the record's write makes. Sorted lists rather than a hash
/// map and set: nearly every job that carries a start is a new session's first write, of a few ops, and
/// building two hashed collections for it was ~3 % of the persister's work on a start. A job of many
/// sessions (start-up adoption writes every adopted record in one) still costs no scan of the job per op;
/// a job without a start (every flush after a session's first) allocates nothing.
struct RidingStarts<'a>(Vec<(&'a str, &'a [u8])>);

impl<'a> RidingStarts<'a> {
    fn of(ops: &'a [WriteOp]) -> RidingStarts<'a> {
        let mut starts: Vec<(&str, &[u8])> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::PutStart { session_id, start } => {
                    Some((session_id.as_str(), start.as_slice()))
                }
                _ => None,
            })
            .collect();
        if starts.is_empty() {
            return RidingStarts(starts);
        }
        // A stable sort keeps each session's starts in their order, and `dedup_by` keeps the first.
        starts.sort_by(|a, b| a.0.cmp(b.0));
        starts.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut recorded: Vec<&str> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::PutSession(r) => Some(r.session_id.as_str()),
                _ => None,
            })
            .collect();
        recorded.sort_unstable();
        starts.retain(|(id, _)| recorded.binary_search(id).is_ok());
        RidingStarts(starts)
    }

    /// The start riding with `session_id`'s record, if one does.
    fn get(&self, session_id: &str) -> Option<&'a [u8]> {
        let at = self
            .0
            .binary_search_by(|(id, _)| (*id).cmp(session_id))
            .ok()?;
        Some(self.0[at].1)
    }
}

pub(super) fn write_error(e: impl Display) -> StorageError {
    StorageError::Write(e.to_string())
}

impl<'t> Writer<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Writer<'t>, StorageError> {
        let log = txn.open_table(MESSAGE_LOG).map_err(write_error)?;
        let next_row = match log.last().map_err(write_error)? {
            Some((position, _)) => position.value() + 1,
            None => 0,
        };
        Ok(Writer {
            log,
            batches: txn.open_table(MESSAGE_INDEX).map_err(write_error)?,
            next_row,
            sessions: txn.open_table(SESSIONS).map_err(write_error)?,
            members: txn.open_table(PROJECT_MEMBERS).map_err(write_error)?,
            projects: txn.open_table(PROJECTS).map_err(write_error)?,
            running: txn.open_table(RUNNING).map_err(write_error)?,
            settings: txn.open_table(SETTINGS).map_err(write_error)?,
            txn,
            ceilings: None,
            journal: None,
            journal_run: None,
            ledger: super::ledger::LedgerWriter::open(txn)?,
        })
    }

    /// Applies one sender's ops in order. A session's start and its record in the same list are one
    /// write: the start becomes the value of the index entry that the record's first write makes.
    pub(super) fn apply_ops(&mut self, ops: &[WriteOp]) -> Result<(), StorageError> {
        let riding = RidingStarts::of(ops);
        for op in ops {
            match op {
                WriteOp::PutSession(r) => self.put_session(r, riding.get(&r.session_id))?,
                WriteOp::PutStart { session_id, .. } if riding.get(session_id).is_some() => {}
                op => self.apply(op)?,
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &WriteOp) -> Result<(), StorageError> {
        match op {
            WriteOp::PutSession(record) => self.put_session(record, None),
            WriteOp::AppendMessages {
                session_id,
                messages,
            } => self.append(session_id, messages),
            WriteOp::AppendEncoded(batch) => self.append_encoded(batch),
            WriteOp::DeleteSession { session_id } => self.delete_session(session_id),
            WriteOp::DeleteProject { project_id } => {
                for session_id in self.project_ids_of(project_id)? {
                    self.remove_session(&session_id)?;
                }
                self.summary_rebuild(project_id)
            }
            WriteOp::PutSetting { key, value } => self
                .settings
                .insert(key.as_str(), value.as_str())
                .map(drop)
                .map_err(write_error),
            WriteOp::ReserveSeq {
                session_id,
                ceiling,
            } => sequence::reserve(self.ceilings()?, session_id, *ceiling),
            WriteOp::PutStart { session_id, start } => self.put_start(session_id, start),
            WriteOp::ReleaseSeq {
                session_id,
                ceiling,
            } => {
                sequence::release(self.ceilings()?, session_id, *ceiling)?;
                self.release_record_ceiling(session_id, *ceiling)
            }
            WriteOp::JournalAppend { epoch, n, entry } => {
                let mut run = self.journal_run.take();
                let appended = journal::append(self.journal()?, &mut run, *epoch, *n, entry);
                self.journal_run = run;
                appended
            }
            WriteOp::JournalPrune { epoch, n } => {
                self.store_journal_run()?;
                let txn = self.txn;
                journal::prune(self.journal()?, txn, *epoch, *n)
            }
            WriteOp::AddSpend(spend) => self.ledger.add(spend),
            WriteOp::DeleteLedger { project_id } => self.ledger.delete_project(project_id),
            WriteOp::PutPolicy { project_id, policy } => {
                self.ledger.put_policy(project_id, policy.as_deref())
            }
        }
    }

    /// Stores what the transaction still holds back; call before committing it.
    pub(super) fn finish(mut self) -> Result<(), StorageError> {
        self.store_journal_run()
    }

    fn store_journal_run(&mut self) -> Result<(), StorageError> {
        match self.journal_run.take() {
            Some(run) => run.store(self.journal()?),
            None => Ok(()),
        }
    }

    /// Drops every seqId ceiling (see `Store::release_seq_ceilings`): the table's, and those records hold
    /// (found by a pass over every record's head; a damaged record is left to `verify`).
    pub(super) fn release_ceilings(&mut self) -> Result<(), StorageError> {
        sequence::release_all(self.ceilings()?)?;
        let mut holding = Vec::new();
        for row in self.sessions.iter().map_err(write_error)? {
            let (id, value) = row.map_err(write_error)?;
            let id = id.value();
            if record_place(id, value.value()).is_ok_and(|p| p.seq_ceiling != 0) {
                holding.push(id.to_owned());
            }
        }
        for id in holding {
            self.release_record_ceiling(&id, u64::MAX)?;
        }
        Ok(())
    }

    /// Drops the ceiling the session's record holds unless it is higher than `ceiling`: the record is
    /// written again without it (its place unchanged, so no index is touched).
    fn release_record_ceiling(
        &mut self,
        session_id: &str,
        ceiling: u64,
    ) -> Result<(), StorageError> {
        let Some(value) = self.sessions.get(session_id).map_err(write_error)? else {
            return Ok(());
        };
        // The head alone says whether there is anything to drop; the record is decoded only then, from
        // the same read.
        let held = record_place(session_id, value.value())?.seq_ceiling;
        if held == 0 || held > ceiling {
            return Ok(());
        }
        let mut r = decode_record(session_id, value.value())?;
        drop(value);
        r.seq_ceiling = 0;
        let bytes = encode_record(&r)?;
        self.sessions
            .insert(session_id, bytes.as_slice())
            .map(drop)
            .map_err(write_error)
    }

    fn ceilings(&mut self) -> Result<&mut Table<'t, &'static str, u64>, StorageError> {
        if self.ceilings.is_none() {
            self.ceilings = Some(sequence::open_table(self.txn)?);
        }
        Ok(self.ceilings.as_mut().expect("opened above"))
    }

    pub(super) fn journal(&mut self) -> Result<&mut journal::JournalTable<'t>, StorageError> {
        if self.journal.is_none() {
            self.journal = Some(journal::open_table(self.txn)?);
        }
        Ok(self.journal.as_mut().expect("opened above"))
    }

    /// Opens the next journal epoch (see `Store::journal_open`).
    pub(super) fn journal_begin_epoch(&mut self) -> Result<u32, StorageError> {
        journal::begin_epoch(self.txn)
    }

    pub(super) fn journal_end_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        journal::end_epoch(self.txn, epoch)
    }

    pub(super) fn record(&self, session_id: &str) -> Result<Option<SessionRecord>, StorageError> {
        match self.sessions.get(session_id).map_err(write_error)? {
            Some(v) => decode_record(session_id, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Writes the record without reading it first: the value it replaces comes back from the insert, and
    /// only its place (project, running state, updatedAt) is looked at. The project index is written only
    /// for a new session or one that moved project (taking its start along), or when `start` is given for
    /// a stored session; the running mark only when the running state changed, the project's summary only
    /// when it changed.
    pub(super) fn put_session(
        &mut self,
        r: &SessionRecord,
        start: Option<&[u8]>,
    ) -> Result<(), StorageError> {
        let id = r.session_id.as_str();
        let running = r.status == AgentStatus::Running;
        let bytes = encode_record(r)?;
        // `before`: None for a new session, else the project it moved from (if it did), whether it was
        // running and its updatedAt.
        let before = match self
            .sessions
            .insert(id, bytes.as_slice())
            .map_err(write_error)?
        {
            // A damaged old value fails the put (and so the transaction): it is reported, not papered over.
            Some(old) => {
                let place = record_place(id, old.value())?;
                let moved = (place.project != r.project_id).then(|| place.project.to_owned());
                Some((moved, place.running, place.updated_at))
            }
            None => None,
        };
        let was_running = before.as_ref().is_some_and(|b| b.1);
        match before {
            Some((None, _, old_at)) => {
                if let Some(start) = start {
                    starts::put(&mut self.members, &r.project_id, id, start)?;
                }
                self.summary_touched(&r.project_id, id, old_at, r.updated_at)?
            }
            Some((Some(old_project), ..)) => {
                let kept = starts::take(&mut self.members, &old_project, id)?;
                self.summary_removed(&old_project, id)?;
                self.index_new(r, start.unwrap_or(&kept))?;
            }
            None => self.index_new(r, start.unwrap_or_default())?,
        }
        if running && !was_running {
            self.running.insert(id, ()).map_err(write_error)?;
        } else if was_running && !running {
            self.running.remove(id).map_err(write_error)?;
        }
        Ok(())
    }

    /// A start sent without its record: kept in the stored record's index entry. A start of a session
    /// never stored has no entry to go in, and nothing to resume: it is not kept.
    fn put_start(&mut self, session_id: &str, start: &[u8]) -> Result<(), StorageError> {
        let Some(value) = self.sessions.get(session_id).map_err(write_error)? else {
            tracing::debug!(session_id, "a start without a stored record is not kept");
            return Ok(());
        };
        let project = record_place(session_id, value.value())?.project.to_owned();
        drop(value);
        starts::put(&mut self.members, &project, session_id, start)
    }

    /// A session new to its project: its index entry (holding its start), and the project's summary
    /// counts it. A project's first session is its own summary: no row is written for it.
    fn index_new(&mut self, r: &SessionRecord, start: &[u8]) -> Result<(), StorageError> {
        let (project, id) = (r.project_id.as_str(), r.session_id.as_str());
        starts::put(&mut self.members, project, id, start)?;
        let summary = match self.summary(project)? {
            // No row: the project had one session at most. With a second one it gets its row, made from
            // both records.
            None => {
                let alone = projects::members(&self.members, project, 2)
                    .map_err(write_error)?
                    .len()
                    < 2;
                return if alone {
                    Ok(())
                } else {
                    self.summary_rebuild(project)
                };
            }
            Some(mut s) => {
                s.sessions += 1;
                s.floor = s.floor.min(r.updated_at);
                match self.later_than_latest(id, r.updated_at, &s.latest)? {
                    Some(true) => id.clone_into(&mut s.latest),
                    Some(false) => {}
                    None => return self.summary_rebuild(project),
                }
                s
            }
        };
        projects::put(&mut self.projects, project, Some(&summary)).map_err(write_error)
    }

    /// A session of the project updated from `old_at` to `at`. The usual case, the project's latest
    /// session moving forward, reads the summary and writes nothing.
    fn summary_touched(
        &mut self,
        project: &str,
        id: &str,
        old_at: i64,
        at: i64,
    ) -> Result<(), StorageError> {
        // The usual cases, looked at on the borrowed row: no summary (and no string) is built for them.
        match self.projects.get(project).map_err(write_error)? {
            // No row: the session is its project's only one, and so its own summary.
            None => return Ok(()),
            Some(row) => {
                let (latest, ..) = row.value();
                if latest == id && at >= old_at {
                    return Ok(());
                }
            }
        }
        let Some(mut s) = self.summary(project)? else {
            return Ok(());
        };
        if s.latest == id {
            // Still the latest while it moves forward (and so still above the floor); moved back, another
            // session may now be later.
            return if at >= old_at {
                Ok(())
            } else {
                self.summary_rebuild(project)
            };
        }
        let before = s.clone();
        s.floor = s.floor.min(at);
        match self.later_than_latest(id, at, &s.latest)? {
            Some(true) => id.clone_into(&mut s.latest),
            Some(false) => {}
            None => return self.summary_rebuild(project),
        }
        if s == before {
            return Ok(());
        }
        projects::put(&mut self.projects, project, Some(&s)).map_err(write_error)
    }

    /// A session left the project (its index key is already gone). Down to one session, the project's
    /// row goes.
    fn summary_removed(&mut self, project: &str, id: &str) -> Result<(), StorageError> {
        match self.summary(project)? {
            // No row: the project had that one session, and now has none.
            None => Ok(()),
            Some(mut s) if s.latest != id && s.sessions > 1 => {
                s.sessions -= 1;
                projects::put(&mut self.projects, project, Some(&s)).map_err(write_error)
            }
            // The latest went (or the last one): the next latest is found from the records.
            _ => self.summary_rebuild(project),
        }
    }

    /// The project's summary computed again from its index keys and records (its row removed when it has
    /// one session or none).
    fn summary_rebuild(&mut self, project: &str) -> Result<(), StorageError> {
        let s = projects::summarize(&self.members, &self.sessions, project).map_err(write_error)?;
        projects::put(&mut self.projects, project, s.as_ref()).map_err(write_error)
    }

    /// The project's row (`None`: the project has one session at most).
    fn summary(&self, project: &str) -> Result<Option<Summary>, StorageError> {
        projects::get(&self.projects, project).map_err(write_error)
    }

    /// Whether (`at`, `id`) comes after the summary's latest session; `None` when that session's record is
    /// gone or damaged, so the summary must be rebuilt to know.
    fn later_than_latest(
        &self,
        id: &str,
        at: i64,
        latest: &str,
    ) -> Result<Option<bool>, StorageError> {
        if latest.is_empty() {
            return Ok(None);
        }
        let Some(value) = self.sessions.get(latest).map_err(write_error)? else {
            return Ok(None);
        };
        Ok(record_place(latest, value.value())
            .ok()
            .map(|p| (at, id) > (p.updated_at, latest)))
    }

    fn append(&mut self, session_id: &str, messages: &[SharedMessage]) -> Result<(), StorageError> {
        let Some(first) = messages.first() else {
            return Ok(());
        };
        let bytes = encode_batch(session_id, messages)?;
        self.append_row(session_id, first.seq_id, &bytes)
    }

    fn append_encoded(&mut self, batch: &EncodedBatch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.append_row(&batch.session_id, batch.first_seq, &batch.bytes)
    }

    /// Appends the row at the end of the log and indexes it. A batch written again under the same first
    /// seqId (a retried flush whose first commit did land) replaces the row it was.
    fn append_row(
        &mut self,
        session_id: &str,
        first_seq: u64,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let position = self.next_row;
        self.log.insert(position, bytes).map_err(write_error)?;
        self.next_row += 1;
        let replaced = self
            .batches
            .insert((session_id, first_seq), position)
            .map_err(write_error)?
            .map(|old| old.value());
        if let Some(old) = replaced {
            self.log.remove(old).map_err(write_error)?;
        }
        Ok(())
    }

    /// The record, its index key, its marks and all its message rows; the project's summary follows.
    pub(super) fn delete_session(&mut self, session_id: &str) -> Result<(), StorageError> {
        for project in self.remove_session(session_id)? {
            self.summary_removed(&project, session_id)?;
        }
        Ok(())
    }

    /// `delete_session` but for the summary; answers the projects whose index held the session.
    fn remove_session(&mut self, session_id: &str) -> Result<Vec<String>, StorageError> {
        let projects = match self.record(session_id) {
            Ok(Some(old)) => {
                self.members
                    .remove((old.project_id.as_str(), session_id))
                    .map_err(write_error)?;
                vec![old.project_id]
            }
            Ok(None) => Vec::new(),
            // An unreadable record must still be deletable: find its index keys the slow way.
            Err(StorageError::Corrupt { .. }) => {
                let mut found = Vec::new();
                self.members
                    .retain(|(project, id), _| {
                        let hit = id == session_id;
                        if hit {
                            found.push(project.to_owned());
                        }
                        !hit
                    })
                    .map_err(write_error)?;
                found
            }
            Err(e) => return Err(e),
        };
        self.sessions.remove(session_id).map_err(write_error)?;
        self.running.remove(session_id).map_err(write_error)?;
        sequence::forget(self.ceilings()?, session_id)?;
        let rows = self
            .batches
            .range((session_id, 0)..=(session_id, u64::MAX))
            .map_err(write_error)?
            .map(|row| row.map(|(_, position)| position.value()))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(write_error)?;
        for position in rows {
            self.log.remove(position).map_err(write_error)?;
        }
        self.batches
            .retain_in((session_id, 0)..=(session_id, u64::MAX), |_, _| false)
            .map_err(write_error)?;
        Ok(projects)
    }

    /// The ids of the project's sessions, damaged records included.
    fn project_ids_of(&self, project_id: &str) -> Result<Vec<String>, StorageError> {
        let end = successor(project_id);
        let range = self
            .members
            .range((project_id, "")..(end.as_str(), ""))
            .map_err(write_error)?;
        let mut out = Vec::new();
        for row in range {
            let (key, _) = row.map_err(write_error)?;
            out.push(key.value().1.to_owned());
        }
        Ok(out)
    }

    /// The project's sessions as (updatedAt, sessionId), newest first. The timestamps come from the
    /// records; a record that does not decode is left out (neither counted nor deleted by retention: reads
    /// and `agent-store verify` report it).
    pub(super) fn project_index(
        &self,
        project_id: &str,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let mut out = Vec::new();
        for id in self.project_ids_of(project_id)? {
            self.dated(&id, &mut out)?;
        }
        newest_first(&mut out);
        Ok(out)
    }

    /// Pushes (updatedAt, id) of the session's record, if it has one that decodes.
    fn dated(&self, id: &str, out: &mut Vec<(i64, String)>) -> Result<(), StorageError> {
        let Some(value) = self.sessions.get(id).map_err(write_error)? else {
            return Ok(());
        };
        // Only its updatedAt: the place is decoded without allocating the record's strings.
        match record_place(id, value.value()) {
            Ok(place) => out.push((place.updated_at, id.to_owned())),
            Err(StorageError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Deletes what `rule` lets go of one project's sessions; answers their ids.
    pub(super) fn retain_project(
        &mut self,
        project_id: &str,
        rule: &Retention,
    ) -> Result<Vec<String>, StorageError> {
        let summary = projects::of(&self.projects, &self.members, &self.sessions, project_id)
            .map_err(write_error)?;
        if summary
            .as_ref()
            .is_some_and(|s| s.nothing_to_retain(rule.keep, rule.max_age_ms, rule.now))
        {
            return Ok(Vec::new());
        }
        let dropped = self.victims(self.project_index(project_id)?, rule)?;
        if dropped.is_empty() {
            return Ok(dropped);
        }
        // The summaries are updated once at the end, not per session: deleting the newest sessions one by
        // one would rebuild the project's summary (reading its records) after each of them.
        let mut others = std::collections::BTreeSet::new();
        for id in &dropped {
            others.extend(self.remove_session(id)?);
        }
        others.remove(project_id);
        let gone = u64::try_from(dropped.len()).unwrap_or(u64::MAX);
        match summary {
            Some(mut s) if s.sessions > gone && !dropped.contains(&s.latest) => {
                s.sessions -= gone;
                projects::put(&mut self.projects, project_id, Some(&s)).map_err(write_error)?;
            }
            _ => self.summary_rebuild(project_id)?,
        }
        for project in others {
            self.summary_rebuild(&project)?;
        }
        Ok(dropped)
    }

    /// `retain_project` for every project, in one transaction: the summaries say which projects may have
    /// something to let go, and only those projects' records are read, but for the projects of one
    /// session, whose record is their summary.
    pub(super) fn retain_everywhere(
        &mut self,
        rule: &Retention,
    ) -> Result<Vec<String>, StorageError> {
        let mut candidates = self.single_candidates(rule)?;
        for row in self.projects.iter().map_err(write_error)? {
            let (project, summary) = row.map_err(write_error)?;
            let (latest, sessions, floor) = summary.value();
            let summary = Summary {
                latest: latest.to_owned(),
                sessions,
                floor,
            };
            if !summary.nothing_to_retain(rule.keep, rule.max_age_ms, rule.now) {
                candidates.push(project.value().to_owned());
            }
        }
        candidates.sort_unstable();
        let mut dropped = Vec::new();
        for project in candidates {
            dropped.extend(self.retain_project(&project, rule)?);
        }
        Ok(dropped)
    }

    /// The projects of one session (those without a row) that `rule` may let something go of: one pass
    /// over the project index, which names each one's session, and that session's record read.
    fn single_candidates(&self, rule: &Retention) -> Result<Vec<String>, StorageError> {
        let mut candidates = Vec::new();
        for (project, only) in projects::all(&self.members).map_err(write_error)? {
            let Some(id) = only else {
                continue;
            };
            let summary = projects::single(&self.sessions, &id).map_err(write_error)?;
            if !summary.nothing_to_retain(rule.keep, rule.max_age_ms, rule.now) {
                candidates.push(project);
            }
        }
        Ok(candidates)
    }

    /// Of one project's sessions, newest first: running ones (by stored status) are neither counted nor
    /// let go; of the rest, those from rank `keep` on go, and so does any older than
    /// `max_age_ms` (a session with no timestamp, `updated_at <= 0`, never ages out).
    fn victims(
        &self,
        sessions: Vec<(i64, String)>,
        rule: &Retention,
    ) -> Result<Vec<String>, StorageError> {
        let mut rank = 0u64;
        let mut dropped = Vec::new();
        for (updated_at, id) in sessions {
            if self.is_running(&id)? {
                continue;
            }
            let too_old = updated_at > 0 && rule.now.saturating_sub(updated_at) > rule.max_age_ms;
            if rank >= u64::from(rule.keep) || too_old {
                dropped.push(id);
            }
            rank += 1;
        }
        Ok(dropped)
    }

    pub(super) fn is_running(&self, session_id: &str) -> Result<bool, StorageError> {
        Ok(self.running.get(session_id).map_err(write_error)?.is_some())
    }

    pub(super) fn running_ids(&self) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        for row in self.running.iter().map_err(write_error)? {
            let (key, _) = row.map_err(write_error)?;
            out.push(key.value().to_owned());
        }
        Ok(out)
    }

    /// Drops a `running` mark that has no record behind it.
    pub(super) fn unmark_running(&mut self, session_id: &str) -> Result<(), StorageError> {
        self.running
            .remove(session_id)
            .map(drop)
            .map_err(write_error)
    }
}

/// Retention order: newest `updatedAt` first, ties by session id, highest first (the order of schema 2's
/// timestamped keys read backwards).
pub(super) fn newest_first(sessions: &mut [(i64, String)]) {
    sessions.sort_unstable_by(|a, b| b.cmp(a));
}
