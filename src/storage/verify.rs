//! `agent-store verify`: reads every row of a database file, checks each value's checksum and decoding and
//! that the indexes agree with the records, and lists what is damaged. The file is opened read-only (a
//! file that needs repair is looked at through a copy-on-write view), so verifying never changes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use redb::{ReadTransaction, ReadableTable};

use super::codec::{decode_batch, decode_record, upgrade_batch, upgrade_record, Visit};
use super::projects::{self, PROJECTS};
use super::schema::{
    self, MESSAGES, MESSAGE_INDEX, MESSAGE_LOG, PROJECT_INDEX, PROJECT_KEYS, PROJECT_MEMBERS,
    PROJECT_SESSIONS, RUNNING, SESSIONS,
};
use super::{SessionRecord, StorageError};
use crate::messages::wire::AgentStatus;

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub schema: u64,
    pub sessions: u64,
    pub batches: u64,
    pub messages: u64,
    pub damage: Vec<Damage>,
}

/// One damaged row or index entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    pub session_id: String,
    /// Which row: "session record", "message batch at seq N", "project index", "running index".
    pub what: String,
    pub message: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session {}: {}: {}",
            self.session_id, self.what, self.message
        )
    }
}

impl Damage {
    fn of(e: StorageError) -> Damage {
        match e {
            StorageError::Corrupt {
                session_id,
                what,
                message,
            } => Damage {
                session_id,
                what,
                message,
            },
            other => Damage {
                session_id: String::new(),
                what: "file".into(),
                message: other.to_string(),
            },
        }
    }

    fn index(session_id: &str, what: &str, message: impl Into<String>) -> Damage {
        Damage {
            session_id: session_id.to_owned(),
            what: what.to_owned(),
            message: message.into(),
        }
    }
}

/// Checks every row of the database at `path`. Errs only when the file cannot be read as an agent-store
/// database at all; damaged rows are in the report.
pub fn verify(path: &Path) -> Result<Report, StorageError> {
    if !path.exists() {
        return Err(StorageError::Open {
            path: path.display().to_string(),
            message: "no such file".into(),
        });
    }
    schema::look(path, |db| {
        let schema = schema::verify(db, path)?;
        let txn = db
            .begin_read()
            .map_err(|e| StorageError::Read(e.to_string()))?;
        let mut report = Report {
            schema,
            ..Report::default()
        };
        walk(&txn, &mut report).map_err(|e| StorageError::Read(e.to_string()))?;
        Ok(report)
    })
}

/// Every entry of the project index as (projectId, updatedAt, sessionId), in the schema's own layout;
/// from schema 4 on the index holds no timestamp.
fn project_entries(
    txn: &ReadTransaction,
    schema: u64,
) -> Result<Vec<(String, Option<i64>, String)>, redb::Error> {
    let mut out = Vec::new();
    match schema {
        ..=2 => {
            for row in txn.open_table(PROJECT_SESSIONS)?.iter()? {
                let (key, _) = row?;
                let (project, updated_at, id) = key.value();
                out.push((project.to_owned(), Some(updated_at), id.to_owned()));
            }
        }
        3 => {
            for row in txn.open_table(PROJECT_INDEX)?.iter()? {
                let (key, updated_at) = row?;
                let (project, id) = key.value();
                out.push((project.to_owned(), Some(updated_at.value()), id.to_owned()));
            }
        }
        4..=8 => {
            for row in txn.open_table(PROJECT_KEYS)?.iter()? {
                let (key, _) = row?;
                let (project, id) = key.value();
                out.push((project.to_owned(), None, id.to_owned()));
            }
        }
        _ => {
            for row in txn.open_table(PROJECT_MEMBERS)?.iter()? {
                let (key, _) = row?;
                let (project, id) = key.value();
                out.push((project.to_owned(), None, id.to_owned()));
            }
        }
    }
    Ok(out)
}

fn walk(txn: &ReadTransaction, report: &mut Report) -> Result<(), redb::Error> {
    // A schema 1 file has no checksums yet: its values are checked the way the migration will take them.
    let old = report.schema < 2;
    let mut records: HashMap<String, Option<SessionRecord>> = HashMap::new();
    for row in txn.open_table(SESSIONS)?.iter()? {
        let (key, value) = row?;
        let id = key.value();
        report.sessions += 1;
        let decoded = if old {
            upgrade_record(id, value.value())
                .and_then(|new| decode_record(id, new.as_deref().unwrap_or(value.value())))
        } else {
            decode_record(id, value.value())
        };
        match decoded {
            Ok(r) => records.insert(id.to_owned(), Some(r)),
            Err(e) => {
                report.damage.push(Damage::of(e));
                records.insert(id.to_owned(), None)
            }
        };
    }

    let entries = project_entries(txn, report.schema)?;
    if report.schema >= 6 {
        summaries(txn, report, &records, &entries)?;
    }
    let mut indexed: HashMap<String, u32> = HashMap::new();
    for (project, updated_at, id) in entries {
        let (project, id) = (project.as_str(), id.as_str());
        *indexed.entry(id.to_owned()).or_default() += 1;
        match records.get(id) {
            None => report.damage.push(Damage::index(
                id,
                "project index",
                format!("indexed under project {project} but has no record"),
            )),
            Some(Some(r))
                if r.project_id != project || updated_at.is_some_and(|u| u != r.updated_at) =>
            {
                let at = updated_at.map_or(String::new(), |u| format!(", {u}"));
                report.damage.push(Damage::index(
                    id,
                    "project index",
                    format!(
                        "indexed as ({project}{at}), the record says ({}, {})",
                        r.project_id, r.updated_at
                    ),
                ))
            }
            _ => {}
        }
    }
    for (id, r) in &records {
        match indexed.get(id).copied().unwrap_or(0) {
            1 => {}
            0 if r.is_some() => report.damage.push(Damage::index(
                id,
                "project index",
                "the record has no index entry",
            )),
            0 => {}
            n => report.damage.push(Damage::index(
                id,
                "project index",
                format!("{n} index entries"),
            )),
        }
    }

    let running = txn.open_table(RUNNING)?;
    for row in running.iter()? {
        let (key, _) = row?;
        let id = key.value();
        if let Some(Some(r)) = records.get(id) {
            if r.status != AgentStatus::Running {
                report.damage.push(Damage::index(
                    id,
                    "running index",
                    "marked running but the record is not",
                ));
            }
        }
    }
    for (id, r) in &records {
        if matches!(r, Some(r) if r.status == AgentStatus::Running)
            && running.get(id.as_str())?.is_none()
        {
            report.damage.push(Damage::index(
                id,
                "running index",
                "the record is running but not marked",
            ));
        }
    }

    if report.schema < 4 {
        for row in txn.open_table(MESSAGES)?.iter()? {
            let (key, value) = row?;
            let (id, first_seq) = key.value();
            batch(report, &records, id, first_seq, Some(value.value()));
        }
    } else {
        let log = txn.open_table(MESSAGE_LOG)?;
        let mut indexed = HashSet::new();
        for row in txn.open_table(MESSAGE_INDEX)?.iter()? {
            let (key, position) = row?;
            let (id, first_seq) = key.value();
            let value = log.get(position.value())?;
            batch(
                report,
                &records,
                id,
                first_seq,
                value.as_ref().map(|v| v.value()),
            );
            indexed.insert(position.value());
        }
        for row in log.iter()? {
            let (position, _) = row?;
            if !indexed.contains(&position.value()) {
                report.damage.push(Damage::index(
                    "",
                    &format!("message log row {}", position.value()),
                    "no session's index points at it",
                ));
            }
        }
    }
    report
        .damage
        .sort_by(|a, b| (&a.session_id, &a.what).cmp(&(&b.session_id, &b.what)));
    Ok(())
}

/// What a project's summary must say: its sessions, the latest decodable (updatedAt, id), the lowest
/// decodable updatedAt.
type Expected<'a> = (u64, Option<(i64, &'a str)>, Option<i64>);

/// Each project's summary against its index entries and records: the count of sessions, the latest of
/// the records that decode, and a floor at or below every `updatedAt`; and no summary of a project
/// without sessions (nor, from schema 10, of one with a single session). A latest whose record is damaged or missing is reported once, as that record.
fn summaries(
    txn: &ReadTransaction,
    report: &mut Report,
    records: &HashMap<String, Option<SessionRecord>>,
    entries: &[(String, Option<i64>, String)],
) -> Result<(), redb::Error> {
    let mut expected: BTreeMap<&str, Expected> = BTreeMap::new();
    let indexed: HashSet<(&str, &str)> = entries
        .iter()
        .map(|(project, _, id)| (project.as_str(), id.as_str()))
        .collect();
    for (project, _, id) in entries {
        let e = expected.entry(project.as_str()).or_default();
        e.0 += 1;
        if let Some(Some(r)) = records.get(id) {
            e.1 = e.1.max(Some((r.updated_at, id.as_str())));
            e.2 = Some(e.2.map_or(r.updated_at, |f| f.min(r.updated_at)));
        }
    }
    let table = txn.open_table(PROJECTS)?;
    // Schema 10 keeps rows only for projects of two sessions or more.
    let row_from = if report.schema >= 10 {
        projects::ROW_FROM
    } else {
        1
    };
    let mut damage = |project: &str, message: String| {
        report.damage.push(Damage::index(
            "",
            "project summary",
            format!("project {project}: {message}"),
        ))
    };
    for (project, (sessions, latest, floor)) in &expected {
        if *sessions < row_from {
            if projects::get(&table, project)?.is_some() {
                damage(project, format!("has {sessions} session but a summary"));
            }
            continue;
        }
        let Some(s) = projects::get(&table, project)? else {
            damage(project, "has sessions but no summary".into());
            continue;
        };
        let latest = latest.map_or("", |(_, id)| id);
        let damaged_latest = indexed.contains(&(*project, s.latest.as_str()))
            && !matches!(records.get(&s.latest), Some(Some(_)));
        if s.sessions != *sessions {
            damage(
                project,
                format!("counts {} sessions, the index {sessions}", s.sessions),
            );
        }
        if s.latest != latest && !damaged_latest {
            damage(
                project,
                format!("names {:?} the latest, the records {latest:?}", s.latest),
            );
        }
        if floor.is_some_and(|f| s.floor > f) {
            damage(
                project,
                format!("floor {} is above a session's updatedAt", s.floor),
            );
        }
    }
    for row in table.iter()? {
        let (project, _) = row?;
        if !expected.contains_key(project.value()) {
            damage(project.value(), "summarised but has no sessions".into());
        }
    }
    Ok(())
}

/// Checks one message batch row (`None`: the index points at a row that is not there).
fn batch(
    report: &mut Report,
    records: &HashMap<String, Option<SessionRecord>>,
    id: &str,
    first_seq: u64,
    value: Option<&[u8]>,
) {
    report.batches += 1;
    let what = || format!("message batch at seq {first_seq}");
    if !records.contains_key(id) {
        report
            .damage
            .push(Damage::index(id, &what(), "no session record"));
    }
    let Some(value) = value else {
        report.damage.push(Damage::index(
            id,
            &what(),
            "its row is missing from the message log",
        ));
        return;
    };
    let mut count = 0u64;
    let visit = |_| {
        count += 1;
        Visit::Skip
    };
    // A schema 1 file has no checksums yet: its values are checked the way the migration will take them.
    let decoded = if report.schema < 2 {
        upgrade_batch(id, first_seq, value).and_then(|new| {
            let bytes = new.as_deref().unwrap_or(value);
            decode_batch(id, first_seq, bytes, visit, &mut Vec::new())
        })
    } else {
        decode_batch(id, first_seq, value, visit, &mut Vec::new())
    };
    match decoded {
        Ok(()) => report.messages += count,
        Err(e) => report.damage.push(Damage::of(e)),
    }
}
