//! What each session was started with (its provider options, without the prompt), kept so that a session
//! whose agent was a child of a previous process can be resumed after a restart (src/actors/restart.rs).
//! The bytes are the engine's to encode; storage only keeps them, as the value of the session's entry in
//! the project index (`project_members`, schema 9), which its first record write makes anyway: one insert
//! per start instead of two, in one tree instead of two. The entry goes with the session, so the start
//! does too. Schema 8 and older kept starts in a table of their own (`session_starts`), read only by the
//! migration.

use redb::{Table, TableDefinition};

use super::codec::record_place;
use super::schema::{PROJECT_MEMBERS, SESSIONS};
use super::writer::write_error;
use super::{StorageError, Store};

/// Schema 8's table, sessionId → the encoded start of the session, read only by the migration.
pub(super) const SESSION_STARTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("session_starts");

pub(super) type MembersTable<'t> = Table<'t, (&'static str, &'static str), &'static [u8]>;

/// The session's index entry, holding `start` (empty: none stored).
pub(super) fn put(
    members: &mut MembersTable<'_>,
    project_id: &str,
    session_id: &str,
    start: &[u8],
) -> Result<(), StorageError> {
    members
        .insert((project_id, session_id), start)
        .map_err(write_error)?;
    Ok(())
}

/// Removes the session's index entry; answers the start it held, for the session's new entry.
pub(super) fn take(
    members: &mut MembersTable<'_>,
    project_id: &str,
    session_id: &str,
) -> Result<Vec<u8>, StorageError> {
    let old = members
        .remove((project_id, session_id))
        .map_err(write_error)?;
    Ok(old.map(|v| v.value().to_vec()).unwrap_or_default())
}

fn read_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Read(e.to_string())
}

impl Store {
    /// The stored start of a session, if one was stored. Found through its record's project.
    pub fn session_start(&self, session_id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.read()?;
        let sessions = txn.open_table(SESSIONS).map_err(read_error)?;
        let Some(record) = sessions.get(session_id).map_err(read_error)? else {
            return Ok(None);
        };
        let place = self.checked_row(record_place(session_id, record.value()))?;
        let members = txn.open_table(PROJECT_MEMBERS).map_err(read_error)?;
        let start = members
            .get((place.project, session_id))
            .map_err(read_error)?;
        Ok(start
            .map(|v| v.value().to_vec())
            .filter(|bytes| !bytes.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableTableMetadata, TableError};

    use super::*;
    use crate::messages::wire::AgentStatus;
    use crate::storage::{SessionRecord, WriteOp};

    fn put(id: &str, project: &str) -> WriteOp {
        WriteOp::put_session(SessionRecord {
            last_seq: 1,
            message_count: 1,
            ..SessionRecord::new(id, project, "synthetic", AgentStatus::Running, 1)
        })
    }

    fn start(id: &str, bytes: &str) -> WriteOp {
        WriteOp::PutStart {
            session_id: id.into(),
            start: bytes.as_bytes().to_vec(),
        }
    }

    fn stored(store: &Store, id: &str) -> Option<String> {
        let bytes = store.session_start(id).unwrap()?;
        Some(String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn a_start_written_with_its_record_is_the_value_of_its_project_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        // As a new session sends them: the record, then its start among the riders.
        store.apply(&[put("s", "p"), start("s", "{}")]).unwrap();
        assert_eq!(stored(&store, "s").as_deref(), Some("{}"));
        let txn = store.read_txn().unwrap();
        let members = txn.open_table(PROJECT_MEMBERS).unwrap();
        assert_eq!(members.get(("p", "s")).unwrap().unwrap().value(), b"{}");
        assert_eq!(members.len().unwrap(), 1);
        assert!(
            matches!(
                txn.open_table(SESSION_STARTS),
                Err(TableError::TableDoesNotExist(_))
            ),
            "a table of its own was written"
        );
    }

    #[test]
    fn a_start_goes_where_its_session_goes_and_needs_a_stored_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        // Sent on its own, before the session is stored: nothing to keep it with.
        store.apply(&[start("s", "{\"a\":1}")]).unwrap();
        assert_eq!(stored(&store, "s"), None);
        // A record stored without one has none; one sent later joins it.
        store.apply(&[put("s", "p")]).unwrap();
        assert_eq!(stored(&store, "s"), None);
        store.apply(&[start("s", "{\"a\":2}")]).unwrap();
        assert_eq!(stored(&store, "s").as_deref(), Some("{\"a\":2}"));
        // The session moves project: its start moves with it.
        store.apply(&[put("s", "q")]).unwrap();
        assert_eq!(stored(&store, "s").as_deref(), Some("{\"a\":2}"));
        assert_eq!(store.project_sessions("p").unwrap(), []);
        store
            .apply(&[WriteOp::DeleteSession {
                session_id: "s".into(),
            }])
            .unwrap();
        assert_eq!(stored(&store, "s"), None);
        let txn = store.read_txn().unwrap();
        assert_eq!(txn.open_table(PROJECT_MEMBERS).unwrap().len().unwrap(), 0);
    }
}
