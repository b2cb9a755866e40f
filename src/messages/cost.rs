//! The cost ledger as the API shows it (`GET /v1/projects/{id}/cost`, `GET /v1/cost`): ledger rows
//! (storage/ledger.rs, one per project, day and session) summed per day and per project.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::CommandError;
use crate::storage::Spend;

/// What a project spent on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayCost {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A project's spend over a range of days; kept when retention or a purge deletes its sessions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCost {
    pub project_id: String,
    pub total_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Sessions that spent within the range.
    pub sessions: u64,
    /// Oldest first.
    pub days: Vec<DayCost>,
}

/// Every project's spend over a range of days, with the total.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    pub total_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub sessions: u64,
    pub projects: Vec<ProjectCost>,
}

/// A `from`/`to` query value: a UTC day `YYYY-MM-DD`.
pub fn day_param(field: &str, value: Option<&str>) -> Result<Option<String>, CommandError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let ok = v.len() == 10 && humantime::parse_rfc3339(&format!("{v}T00:00:00Z")).is_ok();
    if !ok {
        return Err(CommandError::invalid(
            field,
            format!("must be a day as YYYY-MM-DD, got {v:?}"),
        ));
    }
    Ok(Some(v.to_owned()))
}

/// One project's rows (all of one project) summed.
pub fn project_cost(project_id: &str, rows: &[Spend]) -> ProjectCost {
    let mut days: BTreeMap<&str, DayCost> = BTreeMap::new();
    let mut sessions = BTreeSet::new();
    for r in rows {
        sessions.insert(r.session_id.as_str());
        let d = days.entry(r.day.as_str()).or_insert_with(|| DayCost {
            day: r.day.clone(),
            usd: 0.0,
            input_tokens: 0,
            output_tokens: 0,
        });
        d.usd += r.usd;
        d.input_tokens = d.input_tokens.saturating_add(r.input_tokens);
        d.output_tokens = d.output_tokens.saturating_add(r.output_tokens);
    }
    let days: Vec<DayCost> = days.into_values().collect();
    ProjectCost {
        project_id: project_id.to_owned(),
        total_usd: days.iter().map(|d| d.usd).sum(),
        input_tokens: days.iter().fold(0, |n, d| n.saturating_add(d.input_tokens)),
        output_tokens: days
            .iter()
            .fold(0, |n, d| n.saturating_add(d.output_tokens)),
        sessions: sessions.len() as u64,
        days,
    }
}

/// Rows of any projects, summed per project and in total.
pub fn report(rows: &[Spend]) -> CostReport {
    let mut by_project: BTreeMap<&str, Vec<Spend>> = BTreeMap::new();
    for r in rows {
        by_project
            .entry(r.project_id.as_str())
            .or_default()
            .push(r.clone());
    }
    let projects: Vec<ProjectCost> = by_project
        .iter()
        .map(|(p, rows)| project_cost(p, rows))
        .collect();
    CostReport {
        total_usd: projects.iter().map(|p| p.total_usd).sum(),
        input_tokens: projects
            .iter()
            .fold(0, |n, p| n.saturating_add(p.input_tokens)),
        output_tokens: projects
            .iter()
            .fold(0, |n, p| n.saturating_add(p.output_tokens)),
        sessions: projects.iter().map(|p| p.sessions).sum(),
        projects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: &str, day: &str, s: &str, usd: f64) -> Spend {
        Spend {
            project_id: p.into(),
            day: day.into(),
            session_id: s.into(),
            usd,
            input_tokens: 1,
            output_tokens: 2,
        }
    }

    #[test]
    fn rows_sum_per_day_per_project_and_count_sessions_once() {
        let rows = [
            row("a", "2026-01-01", "a-1", 1.0),
            row("a", "2026-01-02", "a-1", 0.5),
            row("a", "2026-01-02", "a-2", 0.25),
            row("b", "2026-01-02", "b-1", 2.0),
        ];
        let r = report(&rows);
        assert_eq!(r.total_usd, 3.75);
        assert_eq!(r.sessions, 3);
        let a = &r.projects[0];
        assert_eq!((a.sessions, a.days.len(), a.total_usd), (2, 2, 1.75));
        assert_eq!(a.days[1].input_tokens, 2);
    }

    #[test]
    fn days_must_be_calendar_days() {
        assert_eq!(
            day_param("from", Some("2026-02-28")).unwrap().as_deref(),
            Some("2026-02-28")
        );
        for bad in ["2026-02-30", "yesterday", "2026-2-1"] {
            let e = day_param("from", Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with("from: "), "{e}");
        }
    }
}
