//! `/v1/health…`: which project needs a human now. The engine computes each project's health (in cluster
//! mode every node's, merged: src/api/cluster.rs); these handlers only select and count.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::errors::{ApiError, ErrorBody};
use super::extract::Query;
use super::AppState;
use crate::messages::wire::{ActivityState, ProjectHealth};

/// How many projects `/v1/health/attention` lists unless `limit` says otherwise.
const DEFAULT_ATTENTION_LIMIT: usize = 5;

/// Counts over every known project.
#[derive(Debug, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aggregates {
    pub running: usize,
    pub idle: usize,
    pub stalled: usize,
    pub total_burn_rate_per_hour: f64,
}

impl Aggregates {
    fn of(health: &[ProjectHealth]) -> Aggregates {
        let mut totals = Aggregates::default();
        for h in health {
            match h.activity_state {
                ActivityState::Running => totals.running += 1,
                ActivityState::Idle => totals.idle += 1,
                ActivityState::Stalled => totals.stalled += 1,
                ActivityState::Inactive => {}
            }
            totals.total_burn_rate_per_hour += h.burn_rate_per_hour;
        }
        totals
    }
}

type State = web::Data<AppState>;

#[utoipa::path(get, path = "/v1/health", operation_id = "listHealth", tag = "health",
    responses(
        (status = 200, description = "Every project's health (in cluster mode, of every node), highest attentionScore first", body = Vec<ProjectHealth>),
        (status = 503, description = "Cluster mode: NATS did not say which nodes are live", body = ErrorBody),
    ))]
pub async fn all(state: State) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(super::cluster::health(&state).await?))
}

#[utoipa::path(get, path = "/v1/health/attention", operation_id = "listAttention", tag = "health",
    params(("limit" = Option<u64>, Query, description = "At most this many (default 5)", minimum = 1)),
    responses(
        (status = 200, description = "Projects with attentionScore above 0, highest first", body = Vec<ProjectHealth>),
        (status = 400, description = "limit does not parse", body = ErrorBody),
        (status = 503, description = "Cluster mode: NATS did not say which nodes are live", body = ErrorBody),
    ))]
pub async fn attention(state: State, query: Query) -> Result<HttpResponse, ApiError> {
    let limit = query.count("limit")?.unwrap_or(DEFAULT_ATTENTION_LIMIT);
    let needy: Vec<ProjectHealth> = super::cluster::health(&state)
        .await?
        .into_iter()
        .filter(|h| h.attention_score > 0)
        .take(limit)
        .collect();
    Ok(HttpResponse::Ok().json(needy))
}

#[utoipa::path(get, path = "/v1/health/aggregates", operation_id = "healthAggregates", tag = "health",
    responses(
        (status = 200, description = "Counts by activity state and the summed burn rate (in cluster mode, over every node)", body = Aggregates),
        (status = 503, description = "Cluster mode: NATS did not say which nodes are live", body = ErrorBody),
    ))]
pub async fn aggregates(state: State) -> Result<HttpResponse, ApiError> {
    let health = super::cluster::health(&state).await?;
    Ok(HttpResponse::Ok().json(Aggregates::of(&health)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(state: ActivityState, burn: f64) -> ProjectHealth {
        ProjectHealth {
            burn_rate_per_hour: burn,
            stall_threshold_ms: 900_000,
            ..ProjectHealth::quiet("p", state)
        }
    }

    #[test]
    fn aggregates_count_states_and_sum_burn_rates() {
        let health = [
            project(ActivityState::Running, 1.5),
            project(ActivityState::Running, 0.5),
            project(ActivityState::Idle, 0.0),
            project(ActivityState::Stalled, 0.25),
            project(ActivityState::Inactive, 0.0),
        ];
        let totals = Aggregates::of(&health);
        assert_eq!((totals.running, totals.idle, totals.stalled), (2, 1, 1));
        assert_eq!(totals.total_burn_rate_per_hour, 2.25);
        let json = serde_json::to_value(&totals).unwrap();
        assert_eq!(json["totalBurnRatePerHour"], 2.25);
    }
}
