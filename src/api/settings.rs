//! `/v1/settings`: the original's settings under their snake_case keys. A PUT changes only the keys it
//! names (`null` clears a text setting); the engine persists it and applies retention at once.

use actix_web::{web, HttpResponse};

use super::errors::{ApiError, ErrorBody};
use super::extract::Body;
use super::AppState;
use crate::messages::commands::{Settings, SettingsPatch};

#[utoipa::path(get, path = "/v1/settings", operation_id = "getSettings", tag = "settings",
    responses((status = 200, description = "All settings", body = Settings)))]
pub async fn get(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.settings().await?))
}

#[utoipa::path(put, path = "/v1/settings", operation_id = "updateSettings", tag = "settings",
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "The settings after the update; retention clamped to count 1..=50, days 1..=365", body = Settings),
        (status = 400, description = "A key is unknown or of the wrong type (named)", body = ErrorBody),
    ))]
pub async fn update(
    state: web::Data<AppState>,
    Body(patch): Body<SettingsPatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.engine.update_settings(patch).await?))
}
