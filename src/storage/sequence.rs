//! Durable seqId ceilings: the sequence blocks each session reserves ahead of use.
//!
//! A session hands out seqIds only at or below a ceiling that is already committed here (the way a database
//! hands out sequence values from blocks it reserved), so a process killed before its messages were stored
//! never gives their seqIds to other messages after the restart: a revived session continues above its
//! ceiling. The row lives in its own table, created on open when missing (no schema bump), and is deleted
//! with the session. A clean shutdown, after every message is stored, drops the ceilings, so sessions
//! continue right after their last stored seqId.
//!
//! From schema 11 a ceiling may also be held by the session's record (`SessionRecord::seq_ceiling`),
//! reserved by the record's write itself: a new session's first reservation then costs no insert in this
//! table at a random place. Of the two, the higher one holds; a release drops either when no higher.

use redb::{Table, TableDefinition, WriteTransaction};

use super::codec::record_place;
use super::schema::SESSIONS;
use super::writer::write_error;
use super::{StorageError, Store};

/// sessionId → the highest seqId the session may hand out without reserving more.
pub(super) const SEQ_CEILINGS: TableDefinition<&str, u64> = TableDefinition::new("seq_ceilings");

pub(super) fn open_table(
    txn: &WriteTransaction,
) -> Result<Table<'_, &'static str, u64>, StorageError> {
    txn.open_table(SEQ_CEILINGS).map_err(write_error)
}

/// Raises the session's ceiling to `ceiling` (never lowers it: reservations may commit out of order).
/// Inserted first and the higher one put back in that rare case: one walk down the tree for the usual
/// one (every session's start reserves, and a ceiling only rises after).
pub(super) fn reserve(
    table: &mut Table<'_, &'static str, u64>,
    session_id: &str,
    ceiling: u64,
) -> Result<(), StorageError> {
    let replaced = table
        .insert(session_id, ceiling)
        .map_err(write_error)?
        .map(|v| v.value());
    if let Some(higher) = replaced.filter(|c| *c > ceiling) {
        table.insert(session_id, higher).map_err(write_error)?;
    }
    Ok(())
}

/// Drops the session's ceiling unless a later reservation raised it past `ceiling`. Removed first and put
/// back in that rare case: one walk down the tree for the common one (every finishing session releases).
pub(super) fn release(
    table: &mut Table<'_, &'static str, u64>,
    session_id: &str,
    ceiling: u64,
) -> Result<(), StorageError> {
    let removed = table
        .remove(session_id)
        .map_err(write_error)?
        .map(|v| v.value());
    if let Some(raised) = removed.filter(|c| *c > ceiling) {
        table.insert(session_id, raised).map_err(write_error)?;
    }
    Ok(())
}

/// Drops every ceiling (see `Store::release_seq_ceilings`).
pub(super) fn release_all(table: &mut Table<'_, &'static str, u64>) -> Result<(), StorageError> {
    table.retain(|_, _| false).map_err(write_error)
}

pub(super) fn forget(
    table: &mut Table<'_, &'static str, u64>,
    session_id: &str,
) -> Result<(), StorageError> {
    table.remove(session_id).map_err(write_error)?;
    Ok(())
}

impl Store {
    /// The session's committed seqId ceiling, if it reserved one that a clean shutdown did not release:
    /// the higher of its row here and its record's.
    pub fn seq_ceiling(&self, session_id: &str) -> Result<Option<u64>, StorageError> {
        let txn = self.read()?;
        let sessions = txn.open_table(SESSIONS).map_err(read_error)?;
        let in_record = match sessions.get(session_id).map_err(read_error)? {
            Some(value) => record_place(session_id, value.value())?.seq_ceiling,
            None => 0,
        };
        let in_table = match txn.open_table(SEQ_CEILINGS) {
            Ok(table) => table
                .get(session_id)
                .map_err(read_error)?
                .map_or(0, |v| v.value()),
            // A database no session reserved in yet (a file from an older build, opened read-only).
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(read_error(e)),
        };
        Ok(Some(in_record.max(in_table)).filter(|c| *c != 0))
    }

    /// Drops every ceiling: call only when every seqId handed out is in a stored message (a clean shutdown
    /// after its final flush), so sessions continue right after their last stored message.
    pub fn release_seq_ceilings(&self) -> Result<(), StorageError> {
        self.write(|w| w.release_ceilings())
    }
}

fn read_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Read(e.to_string())
}
