//! CORS for the origins listed in `server.allowed_origins`, by actix-cors: preflights answered, the
//! allowed origin echoed on answers. It is wrapped only when the list is set, so by default no answer
//! carries a CORS header and no page but the server's own can read one. Foreign origins never get here:
//! `guard` refuses them first (403), so actix-cors's own refusal is not relied on.

use actix_cors::Cors;
use actix_web::http::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::Method;

/// How long a browser may reuse a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: usize = 600;

pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allowed_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(PREFLIGHT_MAX_AGE);
    for origin in origins {
        cors = cors.allowed_origin(&origin.trim().trim_end_matches('/').to_ascii_lowercase());
    }
    cors
}
