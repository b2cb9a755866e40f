//! The mutations, inside one write transaction: every `WriteOp`, and the pieces retention and start-up
//! recovery are made of. Keeping the index invariants (one `project_sessions` key per record, a `running`
//! mark exactly for running records, no message rows without a record) in one place is what lets every
//! caller compose them freely within a transaction.

use std::fmt::Display;

use redb::{ReadableTable, Table, WriteTransaction};

use super::codec::{decode_record, encode_batch, encode_record};
use super::schema::{successor, MESSAGES, PROJECT_SESSIONS, RUNNING, SESSIONS, SETTINGS};
use super::{SessionRecord, StorageError, WriteOp};
use crate::messages::wire::{AgentStatus, SharedMessage};

/// The tables of one write transaction, opened once for all the ops applied in it.
pub(super) struct Writer<'t> {
    sessions: Table<'t, &'static str, &'static [u8]>,
    project_sessions: Table<'t, (&'static str, i64, &'static str), ()>,
    messages: Table<'t, (&'static str, u64), &'static [u8]>,
    running: Table<'t, &'static str, ()>,
    settings: Table<'t, &'static str, &'static str>,
}

pub(super) fn write_error(e: impl Display) -> StorageError {
    StorageError::Write(e.to_string())
}

impl<'t> Writer<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Writer<'t>, StorageError> {
        Ok(Writer {
            sessions: txn.open_table(SESSIONS).map_err(write_error)?,
            project_sessions: txn.open_table(PROJECT_SESSIONS).map_err(write_error)?,
            messages: txn.open_table(MESSAGES).map_err(write_error)?,
            running: txn.open_table(RUNNING).map_err(write_error)?,
            settings: txn.open_table(SETTINGS).map_err(write_error)?,
        })
    }

    pub(super) fn apply(&mut self, op: &WriteOp) -> Result<(), StorageError> {
        match op {
            WriteOp::PutSession(record) => self.put_session(record),
            WriteOp::AppendMessages {
                session_id,
                messages,
            } => self.append(session_id, messages),
            WriteOp::DeleteSession { session_id } => self.delete_session(session_id),
            WriteOp::DeleteProject { project_id } => {
                for (_, session_id) in self.project_index(project_id)? {
                    self.delete_session(&session_id)?;
                }
                Ok(())
            }
            WriteOp::PutSetting { key, value } => self
                .settings
                .insert(key.as_str(), value.as_str())
                .map(drop)
                .map_err(write_error),
        }
    }

    pub(super) fn record(&self, session_id: &str) -> Result<Option<SessionRecord>, StorageError> {
        match self.sessions.get(session_id).map_err(write_error)? {
            Some(v) => decode_record(session_id, v.value()).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn put_session(&mut self, r: &SessionRecord) -> Result<(), StorageError> {
        let id = r.session_id.as_str();
        if let Some(old) = self.record(id)? {
            if old.project_id != r.project_id || old.updated_at != r.updated_at {
                self.project_sessions
                    .remove((old.project_id.as_str(), old.updated_at, id))
                    .map_err(write_error)?;
            }
        }
        let bytes = encode_record(r)?;
        self.sessions
            .insert(id, bytes.as_slice())
            .map_err(write_error)?;
        self.project_sessions
            .insert((r.project_id.as_str(), r.updated_at, id), ())
            .map_err(write_error)?;
        if r.status == AgentStatus::Running {
            self.running.insert(id, ()).map_err(write_error)?;
        } else {
            self.running.remove(id).map_err(write_error)?;
        }
        Ok(())
    }

    fn append(&mut self, session_id: &str, messages: &[SharedMessage]) -> Result<(), StorageError> {
        let Some(first) = messages.first() else {
            return Ok(());
        };
        let bytes = encode_batch(session_id, messages)?;
        self.messages
            .insert((session_id, first.seq_id), bytes.as_slice())
            .map_err(write_error)?;
        Ok(())
    }

    pub(super) fn delete_session(&mut self, session_id: &str) -> Result<(), StorageError> {
        match self.record(session_id) {
            Ok(Some(old)) => {
                self.project_sessions
                    .remove((old.project_id.as_str(), old.updated_at, session_id))
                    .map_err(write_error)?;
            }
            Ok(None) => {}
            // An unreadable record must still be deletable: find its index key the slow way.
            Err(StorageError::Corrupt { .. }) => self
                .project_sessions
                .retain(|(_, _, id), ()| id != session_id)
                .map_err(write_error)?,
            Err(e) => return Err(e),
        }
        self.sessions.remove(session_id).map_err(write_error)?;
        self.running.remove(session_id).map_err(write_error)?;
        self.messages
            .retain_in((session_id, 0)..=(session_id, u64::MAX), |_, _| false)
            .map_err(write_error)?;
        Ok(())
    }

    /// The project's sessions as (updatedAt, sessionId), newest first.
    pub(super) fn project_index(
        &self,
        project_id: &str,
    ) -> Result<Vec<(i64, String)>, StorageError> {
        let end = successor(project_id);
        let range = self
            .project_sessions
            .range((project_id, i64::MIN, "")..(end.as_str(), i64::MIN, ""))
            .map_err(write_error)?;
        let mut out = Vec::new();
        for row in range.rev() {
            let (key, _) = row.map_err(write_error)?;
            let (_, updated_at, id) = key.value();
            out.push((updated_at, id.to_owned()));
        }
        Ok(out)
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
