//! The route table: every method and path the API serves, in one list. The app is built from it, and the
//! OpenAPI test compares it with the document, so a route cannot be served without being documented (nor
//! documented without being served).

use actix_web::http::Method;
use actix_web::middleware::{from_fn, Compress, Condition};
use actix_web::{web, HttpRequest, HttpResponse, Route};

use super::errors::ApiError;
use super::{
    approvals, cluster, cost, debug, events, health, openapi, ops, policy, projects, resume,
    sessions, settings, sidecar, ticket, trace,
};

/// The live event stream: never compressed, because a compressor holds back small frames.
pub const EVENTS_PATH: &str = "/v1/events";

/// One served route.
pub struct Endpoint {
    pub method: Method,
    /// In actix and OpenAPI syntax alike: `/v1/projects/{projectId}/session`.
    pub path: &'static str,
    route: fn() -> Route,
}

fn endpoint(method: Method, path: &'static str, route: fn() -> Route) -> Endpoint {
    Endpoint {
        method,
        path,
        route,
    }
}

/// Every route of the API.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/v1/projects", || web::route().to(projects::list)),
        endpoint(M::POST, "/v1/projects/{projectId}/sessions", || {
            web::route().to(projects::start)
        }),
        endpoint(M::GET, "/v1/projects/{projectId}/sessions", || {
            web::route().to(projects::history)
        }),
        endpoint(M::POST, "/v1/projects/{projectId}/stop", || {
            web::route().to(projects::stop)
        }),
        endpoint(M::POST, "/v1/projects/{projectId}/prompt", || {
            web::route().to(projects::prompt)
        }),
        endpoint(M::GET, "/v1/projects/{projectId}/session", || {
            web::route().to(projects::current)
        }),
        endpoint(M::DELETE, "/v1/projects/{projectId}/session", || {
            web::route().to(projects::clear)
        }),
        endpoint(M::POST, "/v1/projects/{projectId}/session/restore", || {
            web::route().to(projects::restore)
        }),
        endpoint(M::POST, "/v1/projects/{projectId}/session/resume", || {
            web::route().to(resume::resume)
        }),
        endpoint(M::PUT, "/v1/projects/{projectId}/stall-threshold", || {
            web::route().to(projects::stall_threshold)
        }),
        endpoint(M::DELETE, "/v1/projects/{projectId}", || {
            web::route().to(projects::purge)
        }),
        endpoint(M::GET, "/v1/sessions/{sessionId}", || {
            web::route().to(sessions::get)
        }),
        endpoint(M::GET, "/v1/sessions/{sessionId}/stderr", || {
            web::route().to(sessions::stderr)
        }),
        endpoint(M::DELETE, "/v1/sessions/{sessionId}", || {
            web::route().to(sessions::purge)
        }),
        endpoint(M::POST, "/v1/sidecar/events", || {
            web::route().to(sidecar::ingest)
        }),
        endpoint(M::GET, "/v1/settings", || web::route().to(settings::get)),
        endpoint(M::PUT, "/v1/settings", || web::route().to(settings::update)),
        endpoint(M::GET, EVENTS_PATH, || web::route().to(events::stream)),
        endpoint(M::POST, "/v1/events/ticket", || {
            web::route().to(ticket::issue)
        }),
        endpoint(M::GET, "/v1/health", || web::route().to(health::all)),
        endpoint(M::GET, "/v1/health/attention", || {
            web::route().to(health::attention)
        }),
        endpoint(M::GET, "/v1/health/aggregates", || {
            web::route().to(health::aggregates)
        }),
        endpoint(M::GET, "/v1/debug/top", || web::route().to(debug::top)),
        endpoint(M::GET, "/v1/cluster", || web::route().to(cluster::status)),
        // Agents under control (issue 15).
        endpoint(M::GET, "/v1/projects/{projectId}/policy", || {
            web::route().to(policy::get)
        }),
        endpoint(M::PUT, "/v1/projects/{projectId}/policy", || {
            web::route().to(policy::put)
        }),
        endpoint(M::GET, "/v1/approvals", || web::route().to(approvals::list)),
        endpoint(
            M::POST,
            "/v1/sessions/{sessionId}/approvals/{requestId}",
            || web::route().to(approvals::answer),
        ),
        endpoint(M::GET, "/v1/projects/{projectId}/cost", || {
            web::route().to(cost::project)
        }),
        endpoint(M::GET, "/v1/cost", || web::route().to(cost::all)),
        endpoint(M::GET, "/v1/openapi.json", || {
            web::route().to(openapi::document)
        }),
        endpoint(M::GET, "/metrics", || web::route().to(ops::metrics)),
        endpoint(M::GET, "/healthz", || web::route().to(ops::healthz)),
        endpoint(M::GET, "/readyz", || web::route().to(ops::readyz)),
    ]
}

/// Registers one resource per path, with a JSON 405 (and `Allow`) for the methods it does not serve.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let endpoints = endpoints();
    for path in resource_paths(&endpoints) {
        let mut resource = web::resource(path);
        let mut allow = Vec::new();
        for e in endpoints.iter().filter(|e| e.path == path) {
            resource = resource.route((e.route)().method(e.method.clone()));
            allow.push(e.method.as_str());
        }
        let allow = allow.join(", ");
        let traced = trace::Traced::new(path);
        cfg.service(
            resource
                .default_service(web::to(move |req: HttpRequest| {
                    method_not_allowed(req, allow.clone())
                }))
                .wrap(Condition::new(path != EVENTS_PATH, Compress::default()))
                .wrap(from_fn(move |req, next| {
                    trace::request_span(traced.clone(), req, next)
                })),
        );
    }
}

/// The paths every session's traffic takes, tried first: a sidecar's batches and a session's start.
const HOT_PATHS: [&str; 2] = ["/v1/sidecar/events", "/v1/projects/{projectId}/sessions"];

/// Each path once, in the order actix tries them: the hot paths, then the static ones, then those with a
/// `{parameter}`. actix tries a request against each resource in turn (a static path by comparison, a
/// parameterised one by a regex, ~370 instructions a try, as many as a start's other work in the worker
/// when the start route came 17th). No path is matched by another's pattern, so the order changes which
/// route answers no request, only what it costs to find it.
fn resource_paths(endpoints: &[Endpoint]) -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for e in endpoints {
        if !paths.contains(&e.path) {
            paths.push(e.path);
        }
    }
    // A stable sort: within each kind the list's order stays.
    paths.sort_by_key(|path| (!HOT_PATHS.contains(path), path.contains('{')));
    paths
}

/// The app's fallback: a JSON 404 instead of actix's empty one.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

async fn method_not_allowed(req: HttpRequest, allow: String) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        allow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_paths_are_tried_first_then_the_static_ones() {
        let paths = resource_paths(&endpoints());
        assert_eq!(paths[..HOT_PATHS.len()], HOT_PATHS, "{paths:?}");
        let rest = &paths[HOT_PATHS.len()..];
        let first_dynamic = rest.iter().position(|p| p.contains('{')).unwrap();
        assert!(
            rest[first_dynamic..].iter().all(|p| p.contains('{')),
            "{paths:?}"
        );
    }

    #[test]
    fn no_request_path_is_matched_by_two_resources_so_the_order_changes_no_answer() {
        let paths = resource_paths(&endpoints());
        // Two paths match a common request path if they have as many segments and each pair of segments
        // is the same word or holds a parameter (one segment, any text but `/`).
        let overlap = |a: &str, b: &str| {
            let (a, b): (Vec<_>, Vec<_>) = (a.split('/').collect(), b.split('/').collect());
            a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|(x, y)| x == y || x.starts_with('{') || y.starts_with('{'))
        };
        for (i, a) in paths.iter().enumerate() {
            for b in &paths[i + 1..] {
                assert!(!overlap(a, b), "{a} and {b} match a common request path");
            }
            // And each path is what actix's pattern matches: a request path made from it finds it.
            let concrete = a
                .split('/')
                .map(|seg| if seg.starts_with('{') { "p-1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            assert!(
                actix_web::dev::ResourceDef::new(*a).is_match(&concrete),
                "{a}"
            );
        }
    }
}
