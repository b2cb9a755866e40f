//! The per-project summary (`projects` table, schema 6; schema 10 keeps rows only for projects with two
//! sessions or more): a project's most recently updated session, how many sessions it has, and a floor
//! under their `updatedAt`.
//!
//! It lets the project list and `last_session` read one record per project instead of every record, and
//! lets retention pass a project by without reading any record when it cannot let anything go (no more
//! sessions than it keeps, and none old enough to age out: every `updatedAt` is at or above the floor).
//!
//! A project with one session has no row: its summary is its index entry and its record (the latest is
//! that session, the count is 1, the floor its `updatedAt`), which every reader has at hand anyway. The
//! usual project (one agent) thus costs its start one B-tree insert less, in a tree of its own at a random
//! place; a row is made when a second session joins and removed when the project is back to one.
//!
//! It is kept off the flush path: a flush of a project's latest session (the usual case) reads the
//! summary and writes nothing. The row is written when a session is added or removed, when another
//! session becomes the latest, or when an `updatedAt` goes below the floor. Only a change that can make an
//! unknown session the latest (the latest one deleted, or its `updatedAt` moved back) reads the project's
//! records again.

use redb::{ReadableTable, Table, TableDefinition, Value};

use super::codec::record_place;
use super::schema::successor;

/// projectId → (latest sessionId, session count, floor of every session's updatedAt), for every project
/// with at least `ROW_FROM` sessions.
pub(super) const PROJECTS: TableDefinition<&str, (&str, u64, i64)> =
    TableDefinition::new("projects");

/// The fewest sessions a project has a row for; one with fewer has none (a single session summarises
/// itself).
pub(super) const ROW_FROM: u64 = 2;

/// One project's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Summary {
    /// The session with the highest (updatedAt, sessionId); empty when no record of the project decodes.
    pub latest: String,
    /// Sessions in the project index, damaged records included.
    pub sessions: u64,
    /// At or below every decodable record's updatedAt (`i64::MIN` when none decodes).
    pub floor: i64,
}

impl Summary {
    /// Whether retention with these rules can let none of the project's sessions go: no more of them than
    /// it keeps, and the oldest not past `max_age_ms` (a session with `updatedAt <= 0` never ages out, but
    /// a floor at or below 0 proves nothing about the others).
    pub(super) fn nothing_to_retain(&self, keep: u32, max_age_ms: i64, now: i64) -> bool {
        self.sessions <= u64::from(keep)
            && self.floor > 0
            && now.saturating_sub(self.floor) <= max_age_ms
    }
}

pub(super) type ProjectsTable<'t> = Table<'t, &'static str, (&'static str, u64, i64)>;

pub(super) fn get(
    table: &impl ReadableTable<&'static str, (&'static str, u64, i64)>,
    project_id: &str,
) -> Result<Option<Summary>, redb::StorageError> {
    Ok(table.get(project_id)?.map(|row| {
        let (latest, sessions, floor) = row.value();
        Summary {
            latest: latest.to_owned(),
            sessions,
            floor,
        }
    }))
}

/// Stores the project's summary as its row, or removes its row when it has fewer than `ROW_FROM`
/// sessions (`None`: none at all).
pub(super) fn put(
    table: &mut ProjectsTable<'_>,
    project_id: &str,
    s: Option<&Summary>,
) -> Result<(), redb::StorageError> {
    match s {
        Some(s) if s.sessions >= ROW_FROM => table
            .insert(project_id, (s.latest.as_str(), s.sessions, s.floor))
            .map(drop),
        _ => table.remove(project_id).map(drop),
    }
}

/// The ids of the project's first `n` sessions in the index (by session id).
pub(super) fn members<V: Value + 'static>(
    keys: &impl ReadableTable<(&'static str, &'static str), V>,
    project_id: &str,
    n: usize,
) -> Result<Vec<String>, redb::StorageError> {
    let end = successor(project_id);
    let mut out = Vec::new();
    for row in keys.range((project_id, "")..(end.as_str(), ""))?.take(n) {
        out.push(row?.0.value().1.to_owned());
    }
    Ok(out)
}

/// Every project in the index, sorted, with its session's id when it has only one (and so no row): one
/// pass over the index.
pub(super) fn all<V: Value + 'static>(
    keys: &impl ReadableTable<(&'static str, &'static str), V>,
) -> Result<Vec<(String, Option<String>)>, redb::StorageError> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for row in keys.iter()? {
        let (key, _) = row?;
        let (project, id) = key.value();
        match out.last_mut() {
            Some((p, only)) if p == project => *only = None,
            _ => out.push((project.to_owned(), Some(id.to_owned()))),
        }
    }
    Ok(out)
}

/// The project's summary: its row, or, when it has none (one session at most), the one its index and
/// record make.
pub(super) fn of<V: Value + 'static>(
    table: &impl ReadableTable<&'static str, (&'static str, u64, i64)>,
    keys: &impl ReadableTable<(&'static str, &'static str), V>,
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
    project_id: &str,
) -> Result<Option<Summary>, redb::StorageError> {
    match get(table, project_id)? {
        Some(s) => Ok(Some(s)),
        None => summarize(keys, sessions, project_id),
    }
}

/// The summary of a project whose only session is `id` (one without a row, as `all` finds it): that
/// session's record, read without another range over the index. The same answer as `summarize` gives
/// such a project.
pub(super) fn single(
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Summary, redb::StorageError> {
    let updated_at = sessions
        .get(id)?
        .and_then(|value| record_place(id, value.value()).ok().map(|p| p.updated_at));
    Ok(match updated_at {
        Some(updated_at) => Summary {
            latest: id.to_owned(),
            sessions: 1,
            floor: updated_at,
        },
        None => Summary {
            latest: String::new(),
            sessions: 1,
            floor: i64::MIN,
        },
    })
}

/// The project's summary computed from its index keys (schema 4's or 9's index) and records; `None` when
/// it has no session. A record that does not decode is counted but neither the latest nor under the floor.
pub(super) fn summarize<V: Value + 'static>(
    keys: &impl ReadableTable<(&'static str, &'static str), V>,
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
    project_id: &str,
) -> Result<Option<Summary>, redb::StorageError> {
    let end = successor(project_id);
    let mut summary = Summary {
        latest: String::new(),
        sessions: 0,
        floor: i64::MIN,
    };
    let mut latest_at = i64::MIN;
    let mut floor: Option<i64> = None;
    for row in keys.range((project_id, "")..(end.as_str(), ""))? {
        let (key, _) = row?;
        let id = key.value().1;
        summary.sessions += 1;
        let Some(value) = sessions.get(id)? else {
            continue;
        };
        let Ok(place) = record_place(id, value.value()) else {
            continue;
        };
        floor = Some(floor.map_or(place.updated_at, |f| f.min(place.updated_at)));
        if (place.updated_at, id) > (latest_at, summary.latest.as_str()) {
            latest_at = place.updated_at;
            id.clone_into(&mut summary.latest);
        }
    }
    summary.floor = floor.unwrap_or(i64::MIN);
    Ok((summary.sessions > 0).then_some(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(sessions: u64, floor: i64) -> Summary {
        Summary {
            latest: "s".into(),
            sessions,
            floor,
        }
    }

    #[test]
    fn retention_passes_a_project_by_only_when_nothing_can_go() {
        let day = 86_400_000;
        let now = 100 * day;
        assert!(summary(3, now - day).nothing_to_retain(3, 2 * day, now));
        // One more session than it keeps.
        assert!(!summary(4, now - day).nothing_to_retain(3, 2 * day, now));
        // The oldest may be past the age limit.
        assert!(!summary(2, now - 3 * day).nothing_to_retain(3, 2 * day, now));
        // A floor at or below 0 (a session without timestamp) says nothing about the others.
        assert!(!summary(2, 0).nothing_to_retain(3, i64::MAX, now));
        assert!(!summary(2, i64::MIN).nothing_to_retain(3, i64::MAX, now));
    }
}
