//! The live-event journal on disk: what `/v1/events` can replay to a client that reconnects, across a
//! restart too (src/actors/journal.rs owns what an entry means; storage keeps opaque bytes).
//!
//! Each run of the service is an epoch, numbered from 1 and opened at start-up. Entries are numbered
//! (epoch, n) in publication order. An epoch is marked clean once a shutdown has stored all of its entries;
//! a client whose last event belongs to an epoch that did not end cleanly (the process was killed) may have
//! missed events that never reached the disk, so it is told to `reset`. Old entries are pruned by number, so
//! the journal stays within the configured window and bytes. Both tables are created on open when missing.
//!
//! Entries numbered one after another in one transaction are stored as one row (a run), keyed by the first
//! one's number (schema 7): the broadcaster hands over every event of the last few milliseconds at once,
//! and one event per ingested batch made one B-tree insert each — as many inserts as the message rows
//! themselves (stop 24's profile: 15 % of the writer thread). A run is its entries one after another, each
//! as a field of src/storage/frame.rs (its length, a LEB128 varint, then its bytes), after a byte saying
//! whether they are packed with LZ4 (schema 8): a run of many sessions' events repeats their keys and ids,
//! and packed it is a fraction of the bytes the commit writes (finishing 100,000 sessions, the journal's
//! runs were two thirds of what the writer wrote).
//!
//! A prune deletes only the runs that lie wholly before its cut and stores the cut as the journal's floor;
//! the run the cut falls inside stays as it is, and reads leave out what is below the floor. Storing that
//! run again from the cut on cost a rewrite of hundreds of entries every few milliseconds once the journal
//! was full (stop 25's profile: 4.7 % of the writer thread); the floor is one small row.

use std::borrow::Cow;

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::codec;
use super::frame::{self, Reader};
use super::writer::write_error;
use super::{StorageError, Store};

/// (epoch, n) → a run of entries, the first numbered n.
pub(super) const EVENT_RUNS: TableDefinition<(u32, u64), &[u8]> =
    TableDefinition::new("event_journal_runs");
/// Schema 6's table, (epoch, n) → one entry, read only by the migration.
pub(super) const EVENT_JOURNAL: TableDefinition<(u32, u64), &[u8]> =
    TableDefinition::new("event_journal");
/// () → (epoch, n): the last prune's cut. Entries below it are pruned, even those still stored in the run
/// the cut fell inside. Created by the first prune; a journal without it was never pruned inside a run.
pub(super) const JOURNAL_FLOOR: TableDefinition<(), (u32, u64)> =
    TableDefinition::new("event_journal_floor");
/// epoch → 1 once it ended cleanly (every entry stored), 0 while it runs or when it was cut off.
pub(super) const JOURNAL_EPOCHS: TableDefinition<u32, u8> = TableDefinition::new("journal_epochs");

pub(super) type JournalTable<'t> = Table<'t, (u32, u64), &'static [u8]>;

/// A run's first byte (schema 8): its entries follow as they are, or packed (src/storage/codec.rs's
/// `pack_onto`: the length, then the LZ4 block). Schema 7's runs had no such byte; the migration adds it.
const PLAIN_RUN: u8 = 0;
const PACKED_RUN: u8 = 1;

pub(super) fn open_table(txn: &WriteTransaction) -> Result<JournalTable<'_>, StorageError> {
    txn.open_table(EVENT_RUNS).map_err(write_error)
}

/// Entries of one transaction waiting to be stored as one row: they are numbered one after another.
pub(super) struct Run {
    epoch: u32,
    first: u64,
    next: u64,
    bytes: Vec<u8>,
}

impl Run {
    fn new(epoch: u32, n: u64) -> Run {
        Run {
            epoch,
            first: n,
            next: n,
            bytes: Vec::new(),
        }
    }

    fn push(&mut self, entry: &[u8]) {
        frame::field(&mut self.bytes, entry);
        self.next += 1;
    }

    pub(super) fn store(self, table: &mut JournalTable<'_>) -> Result<(), StorageError> {
        table
            .insert((self.epoch, self.first), self.value().as_slice())
            .map(drop)
            .map_err(write_error)
    }

    /// The row: packed when that saves an eighth or more (events of one kind repeat their keys and ids).
    fn value(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(1 + self.bytes.len());
        value.push(PACKED_RUN);
        if !codec::pack_onto(&self.bytes, &mut value) {
            value[0] = PLAIN_RUN;
            value.extend_from_slice(&self.bytes);
        }
        value
    }
}

/// Adds the entry to `run`, storing the run first when the entry does not follow it.
pub(super) fn append(
    table: &mut JournalTable<'_>,
    run: &mut Option<Run>,
    epoch: u32,
    n: u64,
    entry: &[u8],
) -> Result<(), StorageError> {
    if let Some(open) = run.take_if(|r| r.epoch != epoch || r.next != n) {
        open.store(table)?;
    }
    run.get_or_insert_with(|| Run::new(epoch, n)).push(entry);
    Ok(())
}

/// Prunes every entry before (epoch, n): deletes the runs wholly before it and raises the floor to it. The
/// last run of the same epoch that starts before the cut may hold entries at or past it, so it stays.
pub(super) fn prune(
    table: &mut JournalTable<'_>,
    txn: &WriteTransaction,
    epoch: u32,
    n: u64,
) -> Result<(), StorageError> {
    let straddling = match table.range(..(epoch, n)).map_err(write_error)?.next_back() {
        Some(row) => Some(row.map_err(write_error)?.0.value()).filter(|&(e, _)| e == epoch),
        None => None,
    };
    let cut = straddling.unwrap_or((epoch, n));
    table.retain_in(..cut, |_, _| false).map_err(write_error)?;
    txn.open_table(JOURNAL_FLOOR)
        .map_err(write_error)?
        .insert((), (epoch, n))
        .map(drop)
        .map_err(write_error)
}

/// 6 → 7: each entry of schema 6's journal becomes a run of one.
pub(super) fn migrate(txn: &WriteTransaction) -> Result<(), redb::Error> {
    {
        let old = txn.open_table(EVENT_JOURNAL)?;
        let mut runs = txn.open_table(EVENT_RUNS)?;
        for row in old.iter()? {
            let (key, value) = row?;
            let (epoch, n) = key.value();
            let mut run = Run::new(epoch, n);
            run.push(value.value());
            runs.insert((epoch, n), run.value().as_slice())?;
        }
    }
    txn.delete_table(EVENT_JOURNAL)?;
    Ok(())
}

/// 7 → 8: each run gets its first byte (plain); a run is packed only when it is written.
pub(super) fn mark_runs(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut runs = txn.open_table(EVENT_RUNS)?;
    let mut all = Vec::new();
    for row in runs.iter()? {
        let (key, value) = row?;
        let mut marked = Vec::with_capacity(1 + value.value().len());
        marked.push(PLAIN_RUN);
        marked.extend_from_slice(value.value());
        all.push((key.value(), marked));
    }
    // The journal holds at most its byte budget (`server.sse_replay_bytes`), so this is a few MiB at most.
    for (key, value) in all {
        runs.insert(key, value.as_slice())?;
    }
    Ok(())
}

/// The entries of a stored run, unpacked when packed.
fn run_body(value: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    match value.split_first() {
        Some((&PLAIN_RUN, entries)) => Ok(Cow::Borrowed(entries)),
        Some((&PACKED_RUN, packed)) => codec::unpack(packed).map(Cow::Owned),
        Some((other, _)) => Err(format!("unknown run format {other}")),
        None => Err("an empty run".into()),
    }
}

/// The entries of a run, in order; an error, and nothing after it, for a run cut short.
fn entries(run: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> {
    let mut reader = Reader::new(run);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || reader.is_empty() {
            return None;
        }
        let entry = reader.field();
        failed = entry.is_err();
        Some(entry)
    })
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
        let floor = match txn.open_table(JOURNAL_FLOOR) {
            Ok(table) => table
                .get(())
                .map_err(|e| read(e.into()))?
                .map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(read(e.into())),
        };
        let floor = floor.unwrap_or((0, 0));
        let journal = txn.open_table(EVENT_RUNS).map_err(|e| read(e.into()))?;
        let mut bytes = 0;
        'runs: for row in journal.iter().map_err(|e| read(e.into()))?.rev() {
            let (key, value) = row.map_err(|e| read(e.into()))?;
            let (epoch, first) = key.value();
            let body = match run_body(value.value()) {
                Ok(body) => body,
                Err(e) => {
                    tracing::warn!(epoch, n = first, error = %e, "damaged journal row");
                    continue;
                }
            };
            let mut run = Vec::new();
            for (n, entry) in (first..).zip(entries(&body)) {
                match entry {
                    // Pruned: the run the last prune fell inside.
                    Ok(_) if (epoch, n) < floor => {}
                    Ok(entry) => run.push(((epoch, n), entry)),
                    // What comes after the damage is lost; a client asking for it is told to reset.
                    Err(e) => {
                        tracing::warn!(epoch, n, error = %e, "damaged journal row");
                        break;
                    }
                }
            }
            for (key, entry) in run.into_iter().rev() {
                bytes += entry.len();
                if bytes > max_bytes {
                    break 'runs;
                }
                out.entries.push((key, entry.to_vec()));
            }
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
    txn.open_table(EVENT_RUNS).map_err(write_error)?;
    Ok(epoch)
}

pub(super) fn end_epoch(txn: &WriteTransaction, epoch: u32) -> Result<(), StorageError> {
    let mut epochs = txn.open_table(JOURNAL_EPOCHS).map_err(write_error)?;
    epochs.insert(epoch, 1).map_err(write_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;
    use crate::storage::WriteOp;

    fn append(epoch: u32, n: u64) -> WriteOp {
        WriteOp::JournalAppend {
            epoch,
            n,
            entry: format!("entry {epoch}.{n}").into_bytes(),
        }
    }

    fn keys(stored: &StoredJournal) -> Vec<(u32, u64)> {
        stored.entries.iter().map(|(k, _)| *k).collect()
    }

    fn rows(store: &Store) -> Vec<(u32, u64)> {
        let txn = store.read().unwrap();
        let table = txn.open_table(EVENT_RUNS).unwrap();
        table
            .iter()
            .unwrap()
            .map(|row| row.unwrap().0.value())
            .collect()
    }

    #[test]
    fn consecutive_entries_are_one_row_and_read_back_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.redb")).unwrap();
        assert_eq!(store.journal_open(1 << 20).unwrap().epoch, 1);
        // 1..=3 follow each other; 7 does not; 8 follows 7 but in the next transaction.
        store
            .apply(&[append(1, 1), append(1, 2), append(1, 3), append(1, 7)])
            .unwrap();
        store.apply(&[append(1, 8)]).unwrap();
        assert_eq!(rows(&store), [(1, 1), (1, 7), (1, 8)]);

        let stored = store.journal_open(1 << 20).unwrap();
        assert_eq!(stored.epoch, 2);
        assert_eq!(keys(&stored), [(1, 1), (1, 2), (1, 3), (1, 7), (1, 8)]);
        assert_eq!(stored.entries[1].1, b"entry 1.2");
        // The byte limit keeps the newest entries, counted one by one, not row by row.
        let newest = store.journal_open("entry 1.1".len() * 3).unwrap();
        assert_eq!(keys(&newest), [(1, 3), (1, 7), (1, 8)]);
    }

    #[test]
    fn a_prune_inside_a_run_keeps_its_later_entries_without_storing_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.redb")).unwrap();
        store.journal_open(1 << 20).unwrap();
        let mut ops: Vec<WriteOp> = (1..=5).map(|n| append(1, n)).collect();
        ops.extend((1..=5).map(|n| append(2, n)));
        store.apply(&ops).unwrap();
        // Appended and pruned in one transaction: the run is stored before the prune looks at it.
        store
            .apply(&[
                append(2, 6),
                WriteOp::JournalPrune { epoch: 2, n: 3 },
                append(2, 7),
            ])
            .unwrap();
        // Epoch 1's run went whole; epoch 2's first run holds the cut, so it stays as it was stored.
        assert_eq!(rows(&store), [(2, 1), (2, 6), (2, 7)]);
        let stored = store.journal_open(1 << 20).unwrap();
        assert_eq!(keys(&stored), [(2, 3), (2, 4), (2, 5), (2, 6), (2, 7)]);
        assert_eq!(stored.entries[0].1, b"entry 2.3");
        // A later cut past that run deletes it.
        store
            .apply(&[WriteOp::JournalPrune { epoch: 2, n: 7 }])
            .unwrap();
        assert_eq!(rows(&store), [(2, 6), (2, 7)]);
        assert_eq!(keys(&store.journal_open(1 << 20).unwrap()), [(2, 7)]);
        store
            .apply(&[WriteOp::JournalPrune { epoch: 5, n: 0 }])
            .unwrap();
        assert!(rows(&store).is_empty());
        assert!(store.journal_open(1 << 20).unwrap().entries.is_empty());
    }

    #[test]
    fn a_damaged_run_gives_the_entries_before_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.redb")).unwrap();
        store.journal_open(1 << 20).unwrap();
        store
            .write(|w| {
                // "ab", then a length of 9 with two bytes behind it.
                w.journal()?
                    .insert((1, 1), &[PLAIN_RUN, 2, b'a', b'b', 9, b'c', b'd'][..])
                    .map_err(write_error)?;
                Ok(())
            })
            .unwrap();
        let stored = store.journal_open(1 << 20).unwrap();
        assert_eq!(stored.entries, [((1, 1), b"ab".to_vec())]);
        // A prune inside it keeps what can be read.
        store
            .apply(&[WriteOp::JournalPrune { epoch: 1, n: 2 }])
            .unwrap();
        assert!(store.journal_open(1 << 20).unwrap().entries.is_empty());
    }

    #[test]
    fn a_large_run_is_stored_packed_and_an_unreadable_one_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.redb")).unwrap();
        store.journal_open(1 << 20).unwrap();
        let ops: Vec<WriteOp> = (1..=100).map(|n| append(1, n)).collect();
        store.apply(&ops).unwrap();
        store.apply(&[append(1, 101)]).unwrap();
        let stored = |key| {
            let txn = store.read().unwrap();
            let table = txn.open_table(EVENT_RUNS).unwrap();
            let value = table.get(key).unwrap().unwrap().value().to_vec();
            value
        };
        let packed = stored((1, 1));
        assert_eq!(packed[0], PACKED_RUN);
        let plain: usize = (1..=100).map(|n| format!("entry 1.{n}").len() + 1).sum();
        assert!(packed.len() * 2 < plain, "{} of {plain}", packed.len());
        // One entry gains nothing from packing.
        assert_eq!(stored((1, 101))[0], PLAIN_RUN);
        let all = store.journal_open(1 << 20).unwrap();
        assert_eq!(keys(&all), (1..=101).map(|n| (1, n)).collect::<Vec<_>>());
        assert_eq!(all.entries[41].1, b"entry 1.42");

        // A run that does not unpack is left out; the others still read.
        let mut damaged = packed.clone();
        damaged[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        store
            .write(|w| {
                w.journal()?
                    .insert((1, 1), damaged.as_slice())
                    .map_err(write_error)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(keys(&store.journal_open(1 << 20).unwrap()), [(1, 101)]);
    }

    #[test]
    fn schema_seven_runs_get_their_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("old.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            // Schema 7's run: its entries as fields, nothing before them.
            let mut runs = txn.open_table(EVENT_RUNS).unwrap();
            runs.insert((3, 9), &[2, b'a', b'b', 1, b'c'][..]).unwrap();
        }
        mark_runs(&txn).unwrap();
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let runs = txn.open_table(EVENT_RUNS).unwrap();
        let value = runs.get((3, 9)).unwrap().unwrap();
        let body = run_body(value.value()).unwrap();
        let got: Vec<&[u8]> = entries(&body).map(Result::unwrap).collect();
        assert_eq!(got, [&b"ab"[..], b"c"]);
    }

    #[test]
    fn schema_six_entries_become_runs_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("old.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut old = txn.open_table(EVENT_JOURNAL).unwrap();
            old.insert((1, 4), &b"four"[..]).unwrap();
            old.insert((2, 1), &[0u8; 200][..]).unwrap();
        }
        migrate(&txn).unwrap();
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        assert!(txn.open_table(EVENT_JOURNAL).is_err());
        let runs = txn.open_table(EVENT_RUNS).unwrap();
        let mut all = Vec::new();
        for row in runs.iter().unwrap() {
            let (key, value) = row.unwrap();
            let body = run_body(value.value()).unwrap();
            let run: Vec<Vec<u8>> = entries(&body).map(|e| e.unwrap().to_vec()).collect();
            all.push((key.value(), run));
        }
        assert_eq!(
            all,
            [
                ((1, 4), vec![b"four".to_vec()]),
                ((2, 1), vec![vec![0u8; 200]])
            ]
        );
    }
}
