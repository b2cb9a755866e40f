//! `GET /v1/debug/top`: the busiest actors with their project and session ids, the place for per-project
//! detail that metric labels must not carry (like Erlang's recon).

use actix_web::{web, HttpResponse};

use super::errors::{ApiError, ErrorBody};
use super::extract::Query;
use super::AppState;
use crate::messages::commands::{TopBy, TopEntry};

const DEFAULT_LIMIT: usize = 10;
/// More than this is not a "top" any more, and each entry costs the supervisor a sort.
const MAX_LIMIT: usize = 1000;

#[utoipa::path(get, path = "/v1/debug/top", operation_id = "debugTop", tag = "operations",
    params(
        ("by" = Option<TopBy>, Query, description = "mailbox (default), messages or memory"),
        ("limit" = Option<u64>, Query, description = "At most this many, 1..=1000 (default 10)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The busiest actors, busiest first", body = Vec<TopEntry>),
        (status = 400, description = "by or limit does not parse", body = ErrorBody),
    ))]
pub async fn top(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, ApiError> {
    let by = match query.text("by") {
        None | Some("mailbox") => TopBy::Mailbox,
        Some("messages") => TopBy::Messages,
        Some("memory") => TopBy::Memory,
        Some(other) => {
            return Err(ApiError::invalid(
                "by",
                format!("must be mailbox, messages or memory, got {other:?}"),
            ))
        }
    };
    let limit = query.count("limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::invalid(
            "limit",
            format!("must be at most {MAX_LIMIT}"),
        ));
    }
    Ok(HttpResponse::Ok().json(state.engine.debug_top(by, limit).await?))
}
