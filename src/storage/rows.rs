//! `session_rows` (schema 9): each session's record and the index of its message batches, side by side in
//! one B-tree.
//!
//! Until schema 8 the record (`sessions`, by session id) and the batch index (`message_index`, by session
//! id and first seqId) were two trees, so every flush of a session copied a leaf (and the branches above
//! it) in each: two random leaves a flush, on top of the message log's right edge. Here a batch's index
//! entry is keyed (sessionId, first seqId) and the record (sessionId, `RECORD`), which sorts after every
//! seqId: the newest index entry sits right before the record, in the same leaf as a rule, and a flush's
//! two inserts copy that one leaf once per transaction.

use std::ops::RangeInclusive;

use redb::TableDefinition;

use super::StorageError;

/// (sessionId, first seqId) → the batch row's position in `message_log` (u64, little endian);
/// (sessionId, `RECORD`) → the encoded `SessionRecord`.
pub(super) const SESSION_ROWS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("session_rows");

/// The second part of a record's key: above every seqId a session hands out.
pub(super) const RECORD: u64 = u64::MAX;

/// The key of the session's record.
pub(super) fn record_key(session_id: &str) -> (&str, u64) {
    (session_id, RECORD)
}

/// The keys of the session's batch index entries: everything of it but its record.
pub(super) fn batches_of(session_id: &str) -> RangeInclusive<(&str, u64)> {
    (session_id, 0)..=(session_id, RECORD - 1)
}

/// Every key of the session: its index entries and its record.
pub(super) fn all_of(session_id: &str) -> RangeInclusive<(&str, u64)> {
    (session_id, 0)..=(session_id, RECORD)
}

/// The log position an index entry holds; a value of another length is a damaged entry.
pub(super) fn position_of(
    session_id: &str,
    first_seq: u64,
    value: &[u8],
) -> Result<u64, StorageError> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_le_bytes)
        .map_err(|_| StorageError::Corrupt {
            session_id: session_id.to_owned(),
            what: format!("message batch at seq {first_seq}"),
            message: format!(
                "its index entry holds {} bytes, not a log position",
                value.len()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_sorts_after_its_batches_and_before_the_next_session() {
        assert!(("s", 1) < record_key("s") && record_key("s") < ("s\0", 0));
        assert!(batches_of("s").contains(&("s", RECORD - 1)));
        assert!(!batches_of("s").contains(&record_key("s")));
        assert!(all_of("s").contains(&record_key("s")));
    }

    #[test]
    fn an_index_entry_holds_a_position_or_is_damaged() {
        assert_eq!(position_of("s", 1, &7u64.to_le_bytes()).unwrap(), 7);
        assert!(matches!(
            position_of("s", 1, &[1, 2, 3]),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
