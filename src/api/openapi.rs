//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]` attributes and the
//! wire types, served at `GET /v1/openapi.json`. A test keeps it equal to the route table and checks the
//! server's real answers against it (tests/api_openapi.rs).
//!
//! What the annotations cannot say is added here, once for every operation (`common_responses`): the
//! answers any route may give whatever its handler does (401 without the token, 403 from the browser guard,
//! 400 for a doubled `Authorization`, 413/415 on bodies, 503 when storage is down or the service stops), and
//! the bounds the derived body schemas do not carry. The `provider` enum is the configured providers, so it
//! is filled in when the document is served.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    approvals, cluster, cost, debug, events, health, ops, policy, projects, resume, sessions,
    settings, sidecar, ticket, AppState,
};
use crate::messages::commands::TopBy;

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
        resume::resume,
        projects::purge,
        projects::stall_threshold,
        sessions::get,
        sessions::stderr,
        sessions::purge,
        sidecar::ingest,
        settings::get,
        settings::update,
        events::stream,
        ticket::issue,
        health::all,
        health::attention,
        health::aggregates,
        debug::top,
        cluster::status,
        policy::get,
        policy::put,
        approvals::list,
        approvals::answer,
        cost::project,
        cost::all,
        document,
        ops::metrics,
        ops::healthz,
        ops::readyz,
    ),
    components(schemas(TopBy)),
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

/// The document with `provider` as any string (the configured names are filled in by `served`).
pub fn openapi() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    common_responses(&mut doc);
    body_bounds(&mut doc);
    doc
}

/// The document as served: `provider` is one of `providers`.
pub fn served(providers: &[String]) -> Value {
    let mut doc = openapi();
    let provider = &mut doc["components"]["schemas"]["StartRequest"]["properties"]["provider"];
    provider["enum"] = json!(providers);
    provider["description"] = json!("One of the providers configured on this server");
    doc
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// Adds the answers every operation can give, where the operation does not already declare them.
fn common_responses(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let open = op["security"] == json!([{}]);
            let body = op.get("requestBody").is_some();
            let engine = path.starts_with("/v1/") && path != "/v1/openapi.json";
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            let mut add = |status: &str, answer: Value| {
                responses.entry(status).or_insert(answer);
            };
            add(
                "400",
                error("A parameter, the body or a header is refused (`Authorization` given twice); the message names it"),
            );
            if !open {
                let mut unauthorized =
                    error("Missing or wrong bearer token (only when a token is configured)");
                unauthorized["headers"] =
                    json!({"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}});
                add("401", unauthorized);
            }
            add(
                "403",
                error("`Host` or `Origin` refused: without a token, Host must be a loopback name or address (or in \
                       server.allowed_hosts) and Origin this server's own (or in server.allowed_origins)"),
            );
            if body {
                add("413", error("The body is larger than server.max_body"));
                add("415", error("Content-Type: must be application/json"));
            }
            if engine {
                add(
                    "503",
                    error("Storage unavailable, or the service is shutting down"),
                );
            }
            sort_responses(responses);
        }
    }
}

/// Status codes in order, as a reader expects them.
fn sort_responses(responses: &mut Map<String, Value>) {
    let mut all: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(all);
}

/// What the body checks enforce that the derived schemas do not say: a prompt must hold a non-blank
/// character (its byte limit, `limits.max_prompt_bytes`, is a configuration value); directories are
/// absolute paths (that they exist is checked at start, and cannot be said here).
fn body_bounds(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    for name in ["StartRequest", "PromptRequest"] {
        let prompt = &mut schemas[name]["properties"]["prompt"];
        if prompt.is_object() {
            prompt["minLength"] = json!(1);
            prompt["pattern"] = json!("\\S");
        }
    }
    let options = &mut schemas["StartOptions"]["properties"];
    if options["cwd"].is_object() {
        options["cwd"]["pattern"] = json!("^/");
    }
    if options["additionalDirectories"]["items"].is_object() {
        options["additionalDirectories"]["items"]["pattern"] = json!("^/");
    }
}

#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openApiDocument", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn document(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(served(&state.provider_names))
}
