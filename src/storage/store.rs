//! PLACEHOLDER — the storage helper replaces this file.
use std::path::Path;

use super::{SessionRecord, StorageError, WriteOp};
use crate::messages::wire::{AgentMessage, UnixMs};

#[derive(Clone)]
pub struct Store {}

impl Store {
    pub fn open(_path: &Path) -> Result<Store, StorageError> {
        todo!()
    }
    pub fn apply(&self, _ops: &[WriteOp]) -> Result<(), StorageError> {
        todo!()
    }
    pub fn enforce_retention(
        &self,
        _project_id: &str,
        _keep: u32,
        _max_age_ms: i64,
        _now: UnixMs,
        _protect: &[String],
    ) -> Result<Vec<String>, StorageError> {
        todo!()
    }
    pub fn mark_interrupted(
        &self,
        _error: &str,
        _now: UnixMs,
    ) -> Result<Vec<SessionRecord>, StorageError> {
        todo!()
    }
    pub fn session(&self, _session_id: &str) -> Result<Option<SessionRecord>, StorageError> {
        todo!()
    }
    pub fn messages(
        &self,
        _session_id: &str,
        _after_seq: u64,
        _before_seq: Option<u64>,
        _limit: Option<usize>,
    ) -> Result<Vec<AgentMessage>, StorageError> {
        todo!()
    }
    pub fn last_session(&self, _project_id: &str) -> Result<Option<SessionRecord>, StorageError> {
        todo!()
    }
    pub fn project_sessions(&self, _project_id: &str) -> Result<Vec<SessionRecord>, StorageError> {
        todo!()
    }
    pub fn project_ids(&self) -> Result<Vec<String>, StorageError> {
        todo!()
    }
    pub fn settings(&self) -> Result<Vec<(String, String)>, StorageError> {
        todo!()
    }
    pub fn file_size(&self) -> u64 {
        todo!()
    }
}
impl Store {
    /// Lets go of the database file; later calls answer `StorageError::Closed`.
    pub fn close(&self) {
        todo!()
    }
}
