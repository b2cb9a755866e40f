//! Migrations of an older database file to this build's schema, run once at open, in one durable
//! transaction: a crash half-way leaves the file at its old version, and the next open starts again.
//!
//! - 1 → 2: every `sessions` and `messages` value gets a checksum (src/storage/codec.rs). A value is
//!   rewritten only once it decodes whole; one that does not is left as it was, so that reads and
//!   `agent-store verify` report it as the damaged row it is instead of it being sealed as good.
//! - 2 → 3: `project_sessions` ((projectId, updatedAt, sessionId) → ()) becomes `project_index`
//!   ((projectId, sessionId) → updatedAt), so that updating a record needs no read of the old one.
//! - 3 → 4: `project_keys` replaces `project_index`, and `message_log` with `message_index` replace
//!   `messages`.
//! - 4 → 5: batch rows written from now on may be packed (format 3). Nothing is rewritten: plain rows
//!   stay readable as they are; the new version only keeps older builds, which cannot unpack, away.
//! - 5 → 6: `projects` gets every project's summary (src/storage/projects.rs), computed from its index
//!   keys and records: the one time every record is read for it.
//! - 6 → 7: batch rows written from now on have a hand-written body (formats 4 and 5); they are not
//!   rewritten, as for 4 → 5: the version keeps older builds, which cannot read them, away. The event
//!   journal's entries move to `event_journal_runs`, each a run of one (src/storage/journal.rs).
//! - 7 → 8: records written from now on have a hand-written body (format 3, src/storage/record.rs); a
//!   record of format 2 is rewritten by its next update, not here: the version keeps older builds, which
//!   cannot read format 3, away. Each journal run gets a first byte saying whether it is packed (runs
//!   written from now on may be); the journal's floor (`event_journal_floor`) is made by its first prune.
//! - 8 → 9: `project_members` replaces `project_keys` and `session_starts`: each index entry takes its
//!   session's stored start as its value (empty when none was stored: a session of a build before starts
//!   were kept); a start whose session has no index entry goes with its table.
//! - 9 → 10: the summary rows of projects with fewer than two sessions go (src/storage/projects.rs: such
//!   a project's index entry and record are its summary).
//! - 10 → 11: records written from now on may hold a seqId ceiling (src/storage/sequence.rs). Nothing is
//!   rewritten: a record without one reads as holding none, and the ceilings in `seq_ceilings` stay where
//!   they are; the version only keeps older builds, which would take such records for damaged ones, away.

use std::ops::Bound;
use std::path::Path;

use redb::{Database, Durability, ReadableTable, WriteTransaction};

use super::codec::{upgrade_batch, upgrade_record};
use super::projects::{self, PROJECTS};
use super::schema::{
    MESSAGES, MESSAGE_INDEX, MESSAGE_LOG, META, PROJECT_INDEX, PROJECT_KEYS, PROJECT_MEMBERS,
    PROJECT_SESSIONS, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SESSIONS,
};
use super::starts::SESSION_STARTS;
use super::{journal, StorageError};

/// Rows read before they are written back, so that a large table is never held in memory at once.
const CHUNK: usize = 256;

pub(super) fn run(db: &Database, from: u64, path: &Path) -> Result<(), StorageError> {
    let failed = |e: redb::Error| StorageError::Open {
        path: path.display().to_string(),
        message: format!("migrating from schema {from} to {SCHEMA_VERSION}: {e}"),
    };
    let mut damaged = 0usize;
    let steps = |txn: &WriteTransaction, damaged: &mut usize| -> Result<(), redb::Error> {
        if from < 2 {
            *damaged += checksums(txn)?;
        }
        if from < 4 {
            project_keys(txn, from)?;
            message_log(txn)?;
        }
        if from < 6 {
            project_summaries(txn)?;
        }
        if from < 7 {
            journal::migrate(txn)?;
        } else if from == 7 {
            journal::mark_runs(txn)?;
        }
        if from < 9 {
            project_members(txn)?;
        }
        if from < 10 {
            single_summaries(txn)?;
        }
        txn.open_table(META)?
            .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
        Ok(())
    };
    let mut txn = db.begin_write().map_err(|e| failed(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| failed(e.into()))?;
    steps(&txn, &mut damaged).map_err(failed)?;
    txn.commit().map_err(|e| failed(e.into()))?;
    tracing::info!(path = %path.display(), from, to = SCHEMA_VERSION, damaged, "database migrated");
    Ok(())
}

/// 1 → 2. Answers how many rows were left as they were for being damaged.
fn checksums(txn: &WriteTransaction) -> Result<usize, redb::Error> {
    let mut damaged = 0;
    let mut sessions = txn.open_table(SESSIONS)?;
    let mut after: Option<String> = None;
    loop {
        let start = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut chunk = Vec::new();
        let mut last = None;
        for row in sessions
            .range::<&str>((start, Bound::Unbounded))?
            .take(CHUNK)
        {
            let (key, value) = row?;
            let id = key.value();
            match upgrade_record(id, value.value()) {
                Ok(Some(bytes)) => chunk.push((id.to_owned(), bytes)),
                Ok(None) => {}
                Err(e) => damaged += left_damaged(&e),
            }
            last = Some(id.to_owned());
        }
        let Some(last) = last else { break };
        for (id, bytes) in &chunk {
            sessions.insert(id.as_str(), bytes.as_slice())?;
        }
        after = Some(last);
    }

    let mut messages = txn.open_table(MESSAGES)?;
    let mut after: Option<(String, u64)> = None;
    loop {
        let start = match &after {
            Some((id, seq)) => Bound::Excluded((id.as_str(), *seq)),
            None => Bound::Unbounded,
        };
        let mut chunk = Vec::new();
        let mut last = None;
        for row in messages
            .range::<(&str, u64)>((start, Bound::Unbounded))?
            .take(CHUNK)
        {
            let (key, value) = row?;
            let (id, seq) = key.value();
            match upgrade_batch(id, seq, value.value()) {
                Ok(Some(bytes)) => chunk.push((id.to_owned(), seq, bytes)),
                Ok(None) => {}
                Err(e) => damaged += left_damaged(&e),
            }
            last = Some((id.to_owned(), seq));
        }
        let Some(last) = last else { break };
        for (id, seq, bytes) in &chunk {
            messages.insert((id.as_str(), *seq), bytes.as_slice())?;
        }
        after = Some(last);
    }
    Ok(damaged)
}

/// 1, 2 or 3 → 4: the project index keeps its (projectId, sessionId) pairs, and nothing else.
fn project_keys(txn: &WriteTransaction, from: u64) -> Result<(), redb::Error> {
    let mut keys = txn.open_table(PROJECT_KEYS)?;
    if from < 3 {
        for row in txn.open_table(PROJECT_SESSIONS)?.iter()? {
            let (key, _) = row?;
            let (project, _, id) = key.value();
            keys.insert((project, id), ())?;
        }
        drop(keys);
        txn.delete_table(PROJECT_SESSIONS)?;
    } else {
        for row in txn.open_table(PROJECT_INDEX)?.iter()? {
            let (key, _) = row?;
            let (project, id) = key.value();
            keys.insert((project, id), ())?;
        }
        drop(keys);
        txn.delete_table(PROJECT_INDEX)?;
    }
    Ok(())
}

/// 1, 2 or 3 → 4: message rows move to the log, in key order, each indexed by its old key.
fn message_log(txn: &WriteTransaction) -> Result<(), redb::Error> {
    {
        let old = txn.open_table(MESSAGES)?;
        let mut log = txn.open_table(MESSAGE_LOG)?;
        let mut index = txn.open_table(MESSAGE_INDEX)?;
        for (position, row) in (0u64..).zip(old.iter()?) {
            let (key, value) = row?;
            log.insert(position, value.value())?;
            index.insert(key.value(), position)?;
        }
    }
    txn.delete_table(MESSAGES)?;
    Ok(())
}

/// 5 → 6 (and anything older, after the steps above): each project's summary.
fn project_summaries(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let keys = txn.open_table(PROJECT_KEYS)?;
    let sessions = txn.open_table(SESSIONS)?;
    let mut summaries = txn.open_table(PROJECTS)?;
    let mut projects: Vec<String> = Vec::new();
    for row in keys.iter()? {
        let (key, _) = row?;
        let project = key.value().0;
        if projects.last().is_none_or(|last| last != project) {
            projects.push(project.to_owned());
        }
    }
    for project in &projects {
        if let Some(summary) = projects::summarize(&keys, &sessions, project)? {
            projects::put(&mut summaries, project, Some(&summary))?;
        }
    }
    Ok(())
}

/// 8 → 9 (and anything older, after the steps above): each index entry with its session's start.
fn project_members(txn: &WriteTransaction) -> Result<(), redb::Error> {
    {
        let keys = txn.open_table(PROJECT_KEYS)?;
        // Missing in a file no session was started in since starts were kept: opened empty.
        let starts = txn.open_table(SESSION_STARTS)?;
        let mut members = txn.open_table(PROJECT_MEMBERS)?;
        for row in keys.iter()? {
            let (key, _) = row?;
            let (project, id) = key.value();
            let start = starts.get(id)?;
            members.insert((project, id), start.as_ref().map_or(&[][..], |s| s.value()))?;
        }
    }
    txn.delete_table(PROJECT_KEYS)?;
    txn.delete_table(SESSION_STARTS)?;
    Ok(())
}

/// 9 → 10 (and anything older, after the steps above): no summary row for a project of one session.
fn single_summaries(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let members = txn.open_table(PROJECT_MEMBERS)?;
    let mut summaries = txn.open_table(PROJECTS)?;
    let mut single = Vec::new();
    for row in summaries.iter()? {
        let project = row?.0.value().to_owned();
        if (projects::members(&members, &project, 2)?.len() as u64) < projects::ROW_FROM {
            single.push(project);
        }
    }
    for project in &single {
        summaries.remove(project.as_str())?;
    }
    Ok(())
}

/// Logs a row the migration leaves as it was; counts it.
fn left_damaged(e: &StorageError) -> usize {
    tracing::error!(error = %e, "damaged row left unmigrated; `agent-store verify` lists it");
    1
}
