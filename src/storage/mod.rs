//! Durable state in one embedded redb file: session records, a per-project index, message batches,
//! settings and the schema version.
//!
//! The persister actor is the only writer (`Store::apply`, `Store::enforce_retention`, ...); readers open
//! their own read transactions, which redb serves concurrently from a consistent snapshot. Every call here
//! blocks on disk: call it from the persister thread or `spawn_blocking`, never from an arbiter.

mod codec;
mod error;
mod frame;
mod guard;
mod journal;
mod ledger;
mod migrate;
mod overlay;
mod projects;
mod record;
mod schema;
mod sequence;
mod starts;
mod store;
mod verify;
mod writer;

pub use error::StorageError;
pub use journal::StoredJournal;
pub use ledger::Spend;
pub use store::{Step, Store, DEFAULT_CACHE_SIZE};
pub use verify::{verify, Damage, Report};

use serde::{Deserialize, Serialize};

use crate::messages::wire::{AgentStatus, SharedMessage, UnixMs};

/// Everything about a session but its messages. Written at start, on every status change and with every
/// message flush, so the stored record never lags the stored messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: String,
    pub project_id: String,
    pub provider: String,
    pub status: AgentStatus,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub model: String,
    pub error: Option<String>,
    /// The first message's timestamp (the original's `createdAt`).
    pub created_at: UnixMs,
    /// The last message or status change: the retention order.
    pub updated_at: UnixMs,
    /// The highest seqId of the stored messages.
    pub last_seq: u64,
    /// How many messages are stored.
    pub message_count: u64,
    /// The provider's own session or thread id, for resuming a follow-up.
    pub provider_session_id: Option<String>,
    /// A seqId ceiling this write reserves (schema 11; 0: none): committed with the record, it holds as one
    /// committed in `seq_ceilings` does, and of the two the higher one counts (src/storage/sequence.rs).
    /// Storage only: not part of any answer.
    #[serde(skip)]
    pub seq_ceiling: u64,
}

impl SessionRecord {
    /// A session nothing has happened to yet, made at `at`: no model, cost, tokens, messages or error.
    pub fn new(
        session_id: &str,
        project_id: &str,
        provider: &str,
        status: AgentStatus,
        at: UnixMs,
    ) -> SessionRecord {
        SessionRecord {
            session_id: session_id.to_owned(),
            project_id: project_id.to_owned(),
            provider: provider.to_owned(),
            status,
            cost_usd: 0.0,
            input_tokens: 0,
            output_tokens: 0,
            model: String::new(),
            error: None,
            created_at: at,
            updated_at: at,
            last_seq: 0,
            message_count: 0,
            provider_session_id: None,
            seq_ceiling: 0,
        }
    }
}

/// A batch of messages in its stored form, checksum included.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    session_id: String,
    first_seq: u64,
    messages: u64,
    bytes: Vec<u8>,
}

impl EncodedBatch {
    /// Encodes `messages` (in seq order, not empty) as the row stored under (`session_id`, first seqId).
    pub fn encode(
        session_id: String,
        messages: &[SharedMessage],
    ) -> Result<EncodedBatch, StorageError> {
        let bytes = codec::encode_batch(&session_id, messages)?;
        Ok(EncodedBatch {
            first_seq: messages.first().map_or(0, |m| m.seq_id),
            messages: messages.len() as u64,
            session_id,
            bytes,
        })
    }

    /// The seqId of its first message: the row's key with the session id.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// How many messages the batch holds.
    pub fn len(&self) -> u64 {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }
}

/// One write. A list of them is applied in one transaction, in order.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Insert or replace the record, moving its project-index key when `updated_at` changed. Boxed: the
    /// record is ~200 bytes and every other op ≤ 64, and a write is a list of ops sized by its largest
    /// (a new session's first write is three, queued for the persister once per start). `AddSpend` is
    /// boxed for the same reason: a finishing session's spend, next to every other write's ops.
    PutSession(Box<SessionRecord>),
    /// One debounced batch of a session's messages, stored as one row keyed (sessionId, first seqId).
    AppendMessages {
        session_id: String,
        messages: Vec<SharedMessage>,
    },
    /// `AppendMessages` already encoded by its sender (a session actor, on its own arbiter), so the one
    /// writer thread only inserts bytes.
    AppendEncoded(EncodedBatch),
    /// The record, its index key and all its message rows.
    DeleteSession {
        session_id: String,
    },
    /// Every session of the project, as `DeleteSession`.
    DeleteProject {
        project_id: String,
    },
    PutSetting {
        key: String,
        value: String,
    },
    /// Raise the session's seqId ceiling to `ceiling` (src/storage/sequence.rs).
    ReserveSeq {
        session_id: String,
        ceiling: u64,
    },
    /// Keep what the session was started with (src/storage/starts.rs): in the session's project index
    /// entry, made by its record's first write, which the start is sent with (a start sent alone joins
    /// the stored record's entry; a session never stored has none to keep it in).
    PutStart {
        session_id: String,
        start: Vec<u8>,
    },
    /// One live event in the journal (src/storage/journal.rs).
    JournalAppend {
        epoch: u32,
        n: u64,
        entry: Vec<u8>,
    },
    /// Drop the journal's entries before (epoch, n).
    JournalPrune {
        epoch: u32,
        n: u64,
    },
    /// Drop the session's seqId ceiling if it is no higher than `ceiling`: everything it handed out is
    /// stored, so it may continue from its last stored seqId.
    ReleaseSeq {
        session_id: String,
        ceiling: u64,
    },
    /// Adds a session's spend to its (project, day, session) ledger row (storage/ledger.rs).
    AddSpend(Box<Spend>),
    /// A project's whole cost ledger: only a project purge with `?ledger=true` asks for it.
    DeleteLedger {
        project_id: String,
    },
    /// A project's policy as JSON; `None` removes it (every field back to the defaults).
    PutPolicy {
        project_id: String,
        policy: Option<String>,
    },
}

impl WriteOp {
    /// `PutSession` of `record`.
    pub fn put_session(record: SessionRecord) -> WriteOp {
        WriteOp::PutSession(Box::new(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every queued write is a list of ops each as large as the largest variant: 100,000 starts queued
    /// together held ~900 bytes each while the record was inline (stop 34's start-phase profile).
    #[test]
    fn a_write_op_is_no_larger_than_its_small_variants_need() {
        assert!(
            std::mem::size_of::<WriteOp>() <= 64,
            "WriteOp is {} bytes",
            std::mem::size_of::<WriteOp>()
        );
    }
}
