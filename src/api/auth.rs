//! Bearer-token authentication. When `server.auth_token` is set, every request but the process probes
//! (`/healthz`, `/readyz`) must carry `Authorization: Bearer <token>`. The comparison runs in constant time
//! so the answer's timing says nothing about how much of a guess was right; the token is never logged.
//! Two `Authorization` headers are refused (400) whatever the configuration: which one a proxy or a
//! framework would pick differs, so neither is trusted.
//!
//! No token is needed for the ops console's static files (`/`, `/ui/…`), which hold no data, and the live stream
//! `/v1/events`, which also accepts a single-use `?ticket=` (see `ticket.rs`) because a browser's
//! `EventSource` cannot send a header.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::ResponseError;
use subtle::ConstantTimeEq;

use super::console::is_console_file;
use super::errors::ApiError;
use super::routes::EVENTS_PATH;
use super::{AppState, Query};

/// Paths that answer without a token: orchestrators probe them without credentials.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The token check as a middleware of its own, inside CORS when `server.allowed_origins` is set
/// (preflights carry no token); without CORS, `admission` makes it after the guard's.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match refusal(&req) {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(e) => {
            let response = e.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

/// Why the request may not go on, if it may not: two `Authorization` headers (400), or no valid token
/// where one is configured (401).
pub fn refusal(req: &ServiceRequest) -> Option<ApiError> {
    if req.headers().get_all(AUTHORIZATION).nth(1).is_some() {
        return Some(ApiError::invalid(
            "Authorization",
            "is given more than once",
        ));
    }
    let state = AppState::of(req.request());
    let allowed = match &state.auth_token {
        None => true,
        Some(_)
            if OPEN_PATHS.contains(&req.path()) || is_console_file(req.method(), req.path()) =>
        {
            true
        }
        Some(token) => {
            let presented = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer);
            match presented {
                Some(p) => token_matches(p, token),
                None if req.path() == EVENTS_PATH => Query::parse(req.query_string())
                    .ok()
                    .and_then(|q| q.text("ticket").map(|t| state.tickets.redeem(t)))
                    .unwrap_or(false),
                None => false,
            }
        }
    };
    (!allowed).then_some(ApiError::Unauthorized)
}

/// The credentials of a `Bearer` authorization header (the scheme is case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// The configured token as it is compared: surrounding whitespace (a newline left by `echo` into a file or
/// an environment variable) would lock every client out, so it is trimmed, with a warning.
pub fn configured_token(token: Option<&str>) -> Option<String> {
    let token = token?;
    let trimmed = token.trim();
    if trimmed.len() != token.len() {
        tracing::warn!(
            "server.auth_token has surrounding whitespace; it is used without it ({} bytes trimmed)",
            token.len() - trimmed.len()
        );
    }
    Some(trimmed.to_owned())
}

/// Constant time in the content; a length mismatch is refused at once, which reveals only the length.
fn token_matches(presented: &str, token: &str) -> bool {
    presented.as_bytes().ct_eq(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_are_read_from_the_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn the_configured_token_is_trimmed() {
        assert_eq!(
            configured_token(Some(" s3cret\n")).as_deref(),
            Some("s3cret")
        );
        assert_eq!(configured_token(Some("s3cret")).as_deref(), Some("s3cret"));
        assert_eq!(configured_token(None), None);
    }

    #[test]
    fn only_the_exact_token_matches() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret!", "s3cret"));
        assert!(!token_matches("S3cret", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }
}
