//! The live-event journal on disk: what `/v1/events` can replay to a client that reconnects, across a
//! restart too (src/actors/journal.rs owns what an entry means; storage keeps opaque bytes).
//!
//! Each run of the service is an epoch, numbered from 1 and opened at start-up. Entries are keyed
//! (epoch, n) in publication order. An epoch is marked clean once a shutdown has stored all of its entries;
//! a client whose last event belongs to an epoch that did not end cleanly (the process was killed) may have
//! missed events that never reached the disk, so it is told to `reset`. Old entries are pruned by key, so
//! the journal stays within the configured window and bytes. Both tables are created on open when missing
//! (no schema bump).

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::writer::write_error;
use super::{StorageError, Store};

/// (epoch, n) → an encoded entry.
pub(super) const EVENT_JOURNAL: TableDefinition<(u32, u64), &[u8]> =
    TableDefinition::new("event_journal");
/// epoch → 1 once it ended cleanly (every entry stored), 0 while it runs or when it was cut off.
pub(super) const JOURNAL_EPOCHS: TableDefinition<u32, u8> = TableDefinition::new("journal_epochs");

pub(super) type JournalTable<'t> = Table<'t, (u32, u64), &'static [u8]>;

pub(super) fn open_table(txn: &WriteTransaction) -> Result<JournalTable<'_>, StorageError> {
    txn.open_table(EVENT_JOURNAL).map_err(write_error)
}

pub(super) fn append(
    table: &mut JournalTable<'_>,
    epoch: u32,
    n: u64,
    entry: &[u8],
) -> Result<(), StorageError> {
    table.insert((epoch, n), entry).map_err(write_error)?;
    Ok(())
}

/// Deletes every entry before (epoch, n).
pub(super) fn prune(table: &mut JournalTable<'_>, epoch: u32, n: u64) -> Result<(), StorageError> {
    table
        .retain_in(..(epoch, n), |_, _| false)
        .map_err(write_error)
}

/// What start-up reads back of the journal.
#[derive(Debug, Default)]
pub struct StoredJournal {
    /// This run's epoch.
    pub epoch: u32,
    /// The stored entries, oldest first: ((epoch, n), bytes). At most `max_bytes` of them, the newest.
    pub entries: Vec<((u32, u64), Vec<u8>)>,
    /// Earlier epochs that ended cleanly.
    pub clean: Vec<u32>,
}

impl Store {
    /// Opens a new epoch (durably, before any event of it is published) and reads back the newest stored
    /// entries, up to `max_bytes` of them.
    pub fn journal_open(&self, max_bytes: usize) -> Result<StoredJournal, StorageError> {
        let epoch = self.write(|w| w.journal_begin_epoch())?;
        let txn = self.read()?;
        let read = |e: redb::Error| StorageError::Read(e.to_string());
        let mut out = StoredJournal {
            epoch,
            ..StoredJournal::default()
        };
        let epochs = txn.open_table(JOURNAL_EPOCHS).map_err(|e| read(e.into()))?;
        for row in epochs.iter().map_err(|e| read(e.into()))? {
            let (e, clean) = row.map_err(|e| read(e.into()))?;
            if clean.value() == 1 {
                out.clean.push(e.value());
            }
        }
        let journal = txn.open_table(EVENT_JOURNAL).map_err(|e| read(e.into()))?;
        let mut bytes = 0;
        for row in journal.iter().map_err(|e| read(e.into()))?.rev() {
            let (key, value) = row.map_err(|e| read(e.into()))?;
            bytes += value.value().len();
            if bytes > max_bytes {
                break;
            }
            out.entries.push((key.value(), value.value().to_vec()));
        }
        out.entries.reverse();
        Ok(out)
    }

    /// Marks `epoch` clean: call once all of its entries are stored (a shutdown, after the last write).
    pub fn journal_close(&self, epoch: u32) -> Result<(), StorageError> {
        self.write(|w| w.journal_end_epoch(epoch))
    }
}

/// The epoch bookkeeping, inside a write transaction.
pub(super) fn begin_epoch(txn: &WriteTransaction) -> Result<u32, StorageError> {
    let mut epochs = txn.open_table(JOURNAL_EPOCHS).map_err(write_error)?;
    let last = epochs
        .last()
        .map_err(write_error)?
        .map_or(0, |(e, _)| e.value());
    let epoch = last + 1;
    epochs.insert(epoch, 0).map_err(write_error)?;
    // Created here, so that a read finds it before the first entry is written.
    txn.open_table(EVENT_JOURNAL).map_err(write_error)?;
    Ok(epoch)
}

pub(super) fn end_epoch(txn: &WriteTransaction, epoch: u32) -> Result<(), StorageError> {
    let mut epochs = txn.open_table(JOURNAL_EPOCHS).map_err(write_error)?;
    epochs.insert(epoch, 1).map_err(write_error)?;
    Ok(())
}
