//! What each session was started with (its provider options, without the prompt), kept so that a session
//! whose agent was a child of a previous process can be resumed after a restart (src/actors/restart.rs).
//! The bytes are the engine's to encode; storage only keeps them, in their own table (created on open when
//! missing, no schema bump), and deletes them with the session.

use redb::{Table, TableDefinition, WriteTransaction};

use super::writer::write_error;
use super::{StorageError, Store};

/// sessionId → the encoded start of the session.
pub(super) const SESSION_STARTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("session_starts");

pub(super) fn open_table(
    txn: &WriteTransaction,
) -> Result<Table<'_, &'static str, &'static [u8]>, StorageError> {
    txn.open_table(SESSION_STARTS).map_err(write_error)
}

pub(super) fn put(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    session_id: &str,
    start: &[u8],
) -> Result<(), StorageError> {
    table.insert(session_id, start).map_err(write_error)?;
    Ok(())
}

pub(super) fn forget(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    session_id: &str,
) -> Result<(), StorageError> {
    table.remove(session_id).map_err(write_error)?;
    Ok(())
}

impl Store {
    /// The stored start of a session, if one was stored.
    pub fn session_start(&self, session_id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.read()?;
        let table = match txn.open_table(SESSION_STARTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StorageError::Read(e.to_string())),
        };
        let value = table
            .get(session_id)
            .map_err(|e| StorageError::Read(e.to_string()))?;
        Ok(value.map(|v| v.value().to_vec()))
    }
}
