//! The cost ledger and the project policies: two tables of their own, apart from the sessions, so that
//! retention and session purges never touch them (only a project purge with `?ledger=true` deletes a
//! project's ledger). They are created by the first write transaction that opens them, so a database of an
//! earlier build gains them without a schema bump; a read before that sees them empty.
//!
//! Ledger rows are keyed (projectId, day, sessionId) → what that session spent that UTC day, so one row
//! per session and day: a project's spend over a range of days, and how many sessions made it, is one
//! range read. Each value carries a CRC-32 of its key and body, as the session rows do.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, TableError};

use super::store::Store;
use super::StorageError;

/// (projectId, day "YYYY-MM-DD", sessionId) → format byte, checksum, usd f64, input u64, output u64.
pub(super) const LEDGER: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("cost_ledger");
/// projectId → format byte, checksum, the project's `StoredPolicy` as JSON.
pub(super) const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");

const FORMAT: u8 = 1;
const HEADER: usize = 5;

/// What one session spent on one day of one project (a ledger row, or a change to add to one).
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    pub project_id: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub session_id: String,
    pub usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

fn checksum(key: &[&str], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for part in key {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    h.update(body);
    h.finalize()
}

fn seal(key: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(FORMAT);
    out.extend_from_slice(&checksum(key, body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn open<'v>(key: &[&str], value: &'v [u8], what: &str) -> Result<&'v [u8], StorageError> {
    let corrupt = |message: &str| StorageError::Corrupt {
        session_id: key.last().copied().unwrap_or_default().to_owned(),
        what: what.to_owned(),
        message: message.to_owned(),
    };
    if value.len() < HEADER || value[0] != FORMAT {
        return Err(corrupt("unknown layout"));
    }
    let body = &value[HEADER..];
    let stored = u32::from_le_bytes([value[1], value[2], value[3], value[4]]);
    if stored != checksum(key, body) {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(body)
}

fn encode_spend(key: &[&str], usd: f64, input: u64, output: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&usd.to_le_bytes());
    body.extend_from_slice(&input.to_le_bytes());
    body.extend_from_slice(&output.to_le_bytes());
    seal(key, &body)
}

fn decode_spend(key: &[&str], value: &[u8]) -> Result<(f64, u64, u64), StorageError> {
    let body = open(key, value, "cost ledger row")?;
    let word = |i: usize| -> Result<[u8; 8], StorageError> {
        body.get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StorageError::Corrupt {
                session_id: key.last().copied().unwrap_or_default().to_owned(),
                what: "cost ledger row".into(),
                message: "too short".into(),
            })
    };
    Ok((
        f64::from_le_bytes(word(0)?),
        u64::from_le_bytes(word(1)?),
        u64::from_le_bytes(word(2)?),
    ))
}

fn write_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Write(e.to_string())
}

fn read_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::Read(e.to_string())
}

/// The two tables inside a write transaction.
pub(super) struct LedgerWriter<'t> {
    pub(super) ledger: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    pub(super) policies: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> LedgerWriter<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<LedgerWriter<'t>, StorageError> {
        Ok(LedgerWriter {
            ledger: txn.open_table(LEDGER).map_err(write_error)?,
            policies: txn.open_table(POLICIES).map_err(write_error)?,
        })
    }

    /// Adds `s` to its row. The spend is written first, unread: a session's first spend of a day (every
    /// finish that reports its cost once) is one walk of the tree, not a read and then a write. Only when
    /// the insert replaced a row is the sum written over it (its leaf is already this transaction's copy).
    pub(super) fn add(&mut self, s: &Spend) -> Result<(), StorageError> {
        let key = [s.project_id.as_str(), s.day.as_str(), s.session_id.as_str()];
        let bytes = encode_spend(&key, s.usd, s.input_tokens, s.output_tokens);
        let before = match self
            .ledger
            .insert((key[0], key[1], key[2]), bytes.as_slice())
            .map_err(write_error)?
        {
            // A damaged row fails the write (and so the transaction, which undoes the insert).
            Some(old) => Some(decode_spend(&key, old.value())?),
            None => None,
        };
        let Some((usd, input, output)) = before else {
            return Ok(());
        };
        let bytes = encode_spend(
            &key,
            usd + s.usd,
            input.saturating_add(s.input_tokens),
            output.saturating_add(s.output_tokens),
        );
        self.ledger
            .insert((key[0], key[1], key[2]), bytes.as_slice())
            .map_err(write_error)?;
        Ok(())
    }

    pub(super) fn delete_project(&mut self, project_id: &str) -> Result<(), StorageError> {
        let end = super::schema::successor(project_id);
        self.ledger
            .retain_in((project_id, "", "")..(end.as_str(), "", ""), |_, _| false)
            .map_err(write_error)
    }

    pub(super) fn put_policy(
        &mut self,
        project_id: &str,
        json: Option<&str>,
    ) -> Result<(), StorageError> {
        match json {
            Some(json) => {
                let bytes = seal(&[project_id], json.as_bytes());
                self.policies
                    .insert(project_id, bytes.as_slice())
                    .map_err(write_error)?;
            }
            None => {
                self.policies.remove(project_id).map_err(write_error)?;
            }
        }
        Ok(())
    }
}

/// A table this build creates on its first write: absent until then, and read as empty.
fn opened<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StorageError> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(read_error(e)),
    }
}

impl Store {
    /// Ledger rows of one project (or all), for days within `from..=to` (inclusive, `YYYY-MM-DD`).
    pub fn spend(
        &self,
        project_id: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<Spend>, StorageError> {
        let txn = self.read_txn()?;
        let Some(table) = opened(&txn, LEDGER)? else {
            return Ok(Vec::new());
        };
        let end = project_id.map(super::schema::successor);
        let rows = match (project_id, &end) {
            (Some(p), Some(end)) => table.range((p, "", "")..(end.as_str(), "", "")),
            _ => table.iter(),
        }
        .map_err(read_error)?;
        let mut out = Vec::new();
        for row in rows {
            let (k, v) = row.map_err(read_error)?;
            let (project, day, session) = k.value();
            if from.is_some_and(|f| day < f) || to.is_some_and(|t| day > t) {
                continue;
            }
            let key = [project, day, session];
            let (usd, input_tokens, output_tokens) =
                self.checked_row(decode_spend(&key, v.value()))?;
            out.push(Spend {
                project_id: project.to_owned(),
                day: day.to_owned(),
                session_id: session.to_owned(),
                usd,
                input_tokens,
                output_tokens,
            });
        }
        Ok(out)
    }

    /// What each project spent on `day`: the daily budgets' starting point after a restart.
    pub fn spend_on(&self, day: &str) -> Result<BTreeMap<String, f64>, StorageError> {
        let mut out = BTreeMap::new();
        for s in self.spend(None, Some(day), Some(day))? {
            *out.entry(s.project_id).or_insert(0.0) += s.usd;
        }
        Ok(out)
    }

    /// Every project's stored policy, as JSON.
    pub fn policies(&self) -> Result<Vec<(String, String)>, StorageError> {
        let txn = self.read_txn()?;
        let Some(table) = opened(&txn, POLICIES)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(read_error)? {
            let (k, v) = row.map_err(read_error)?;
            let project = k.value();
            let body = self.checked_row(open(&[project], v.value(), "policy"))?;
            out.push((
                project.to_owned(),
                String::from_utf8_lossy(body).into_owned(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::WriteOp;

    fn spend(project: &str, day: &str, session: &str, usd: f64) -> WriteOp {
        WriteOp::AddSpend(Box::new(Spend {
            project_id: project.into(),
            day: day.into(),
            session_id: session.into(),
            usd,
            input_tokens: 10,
            output_tokens: 1,
        }))
    }

    #[test]
    fn rows_add_up_per_session_and_day_and_a_project_delete_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        assert!(store.spend(None, None, None).unwrap().is_empty());
        store
            .apply(&[
                spend("a", "2026-01-01", "a-1", 0.5),
                spend("a", "2026-01-01", "a-1", 0.25),
                spend("a", "2026-01-02", "a-1", 1.0),
                spend("ab", "2026-01-01", "ab-1", 2.0),
            ])
            .unwrap();
        let a = store.spend(Some("a"), None, None).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].usd, a[0].input_tokens), (0.75, 20));
        // A later transaction adds to the stored row too.
        store
            .apply(&[spend("a", "2026-01-02", "a-1", 0.5)])
            .unwrap();
        let day = store.spend(Some("a"), Some("2026-01-02"), None).unwrap();
        assert_eq!(day.len(), 1);
        assert_eq!((day[0].usd, day[0].input_tokens), (1.5, 20));
        assert_eq!(store.spend_on("2026-01-01").unwrap()["ab"], 2.0);
        store
            .apply(&[WriteOp::DeleteLedger {
                project_id: "a".into(),
            }])
            .unwrap();
        assert!(store.spend(Some("a"), None, None).unwrap().is_empty());
        assert_eq!(store.spend(None, None, None).unwrap().len(), 1);
    }

    #[test]
    fn policies_are_stored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        store
            .apply(&[WriteOp::PutPolicy {
                project_id: "p".into(),
                policy: Some("{\"approvals\":\"ask\"}".into()),
            }])
            .unwrap();
        assert_eq!(
            store.policies().unwrap(),
            vec![("p".to_owned(), "{\"approvals\":\"ask\"}".to_owned())]
        );
        store
            .apply(&[WriteOp::PutPolicy {
                project_id: "p".into(),
                policy: None,
            }])
            .unwrap();
        assert!(store.policies().unwrap().is_empty());
    }
}
