//! The OpenAPI 3 document of the API, generated from the handlers' `#[utoipa::path]` attributes and the
//! wire types, served at `GET /v1/openapi.json`. A test keeps it equal to the route table.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{debug, events, health, ops, projects, sessions, settings, sidecar};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agent-store",
        description = "Runs and keeps AI coding-agent sessions for many projects at once. Every error is \
                       a non-2xx status with {\"ok\": false, \"error\": \"<message>\"}; when a token is \
                       configured, every route but /healthz and /readyz needs `Authorization: Bearer <token>`."
    ),
    paths(
        projects::list,
        projects::start,
        projects::history,
        projects::stop,
        projects::prompt,
        projects::current,
        projects::clear,
        projects::restore,
        projects::purge,
        projects::stall_threshold,
        sessions::get,
        sessions::stderr,
        sessions::purge,
        sidecar::ingest,
        settings::get,
        settings::update,
        events::stream,
        health::all,
        health::attention,
        health::aggregates,
        debug::top,
        document,
        ops::metrics,
        ops::healthz,
        ops::readyz,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, as served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openApiDocument", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}
