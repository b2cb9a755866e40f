//! The app-wide checks every request passes before its route, in one middleware: the browser guard
//! (`guard`), then, unless CORS sits between them, the token (`auth`). Each check is a plain function of the
//! request; one middleware makes them in order, so a request's future is boxed once for all of them, not
//! once per check. The order of refusal is theirs: a foreign Host or Origin (403) before a missing token
//! (401). With `server.allowed_origins` set, CORS answers preflights (which carry no token) after the
//! guard and before the token, so the token is then checked by `auth::require_token` inside CORS.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;

use super::{auth, AppState};

/// Every request passes `Guard::check`, then (with `with_token`) the token check, before anything else.
pub async fn admit(
    with_token: bool,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let refused = match AppState::of(req.request())
        .guard
        .check(req.path(), req.headers())
    {
        Err(e) => Some(e),
        Ok(()) if with_token => auth::refusal(&req),
        Ok(()) => None,
    };
    match refused {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(e) => {
            let response = e.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}
