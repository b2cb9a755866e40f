//! Every way a request can fail, and the one body shape they all answer with: `{"ok": false, "error": ...}`
//! (plus `sessionId` when a provider could not start a session that now exists in status error).
//!
//! Handlers return `ApiError`; the status code is chosen here and nowhere else, so the mapping from engine
//! errors to HTTP is written once and tested once.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::CommandError;

/// Why a request failed, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The engine refused or failed the command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// Bad input caught at the edge; the message starts with the field, parameter, index or line at fault.
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    /// `allow` lists the path's methods, for the `Allow` header.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: String,
    },
    /// A request a web page could have made (foreign `Host` or `Origin`); the message starts with the header.
    #[error("{0}")]
    Forbidden(String),
    #[error("Content-Type: must be application/json{}", if *.ndjson_too { " or application/x-ndjson" } else { "" })]
    UnsupportedMediaType { ndjson_too: bool },
    #[error("body: not received in full within {}", humantime::format_duration(*.after))]
    BodyTimeout { after: std::time::Duration },
    /// Something the server needs is missing (the condition is named).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// Bad input named by `field`, in the same `field: message` form the engine uses.
    pub fn invalid(field: impl std::fmt::Display, message: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(format!("{field}: {message}"))
    }

    /// Refused whoever asks, named by the header or field at fault.
    pub fn forbidden(field: impl std::fmt::Display, message: impl std::fmt::Display) -> ApiError {
        ApiError::Forbidden(format!("{field}: {message}"))
    }
}

/// The error body of every non-2xx answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Always false.
    pub ok: bool,
    /// What went wrong; names the offending field or the condition.
    pub error: String,
    /// Only when a provider could not start: the session that now exists in status error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Command(e) => match e {
                CommandError::NoSession
                | CommandError::SessionNotFound
                | CommandError::ApprovalNotFound => StatusCode::NOT_FOUND,
                CommandError::SessionEnded
                | CommandError::StartInProgress
                | CommandError::AlreadyRunning
                | CommandError::SessionRunning
                | CommandError::Undeliverable(_) => StatusCode::CONFLICT,
                CommandError::Invalid { .. } => StatusCode::BAD_REQUEST,
                CommandError::Forbidden { .. } => StatusCode::FORBIDDEN,
                CommandError::ProviderFailed { .. } | CommandError::Provider(_) => {
                    StatusCode::BAD_GATEWAY
                }
                CommandError::Storage(_)
                | CommandError::ShuttingDown
                | CommandError::Unrecorded(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let session_id = match self {
            ApiError::Command(CommandError::ProviderFailed { session_id, .. }) => {
                Some(session_id.clone())
            }
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
            }
            // The rest of the body may still be on its way; the connection cannot be reused.
            ApiError::BodyTimeout { .. } => {
                response.force_close();
            }
            _ => {}
        }
        response.json(ErrorBody {
            ok: false,
            error: self.to_string(),
            session_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn answer(e: ApiError) -> (u16, serde_json::Value) {
        let response = e.error_response();
        let status = response.status().as_u16();
        let bytes = response.into_body().try_into_bytes().unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn engine_errors_map_to_the_contract_statuses_and_strings() {
        let cases = [
            (CommandError::NoSession, 404, "No session for project"),
            (CommandError::SessionNotFound, 404, "Session not found"),
            (
                CommandError::StartInProgress,
                409,
                "Session start already in progress",
            ),
            (CommandError::AlreadyRunning, 409, "Session already running"),
            (
                CommandError::SessionRunning,
                409,
                "Session is running; stop it before clearing",
            ),
            (
                CommandError::invalid("prompt", "must not be empty"),
                400,
                "prompt: must not be empty",
            ),
            (CommandError::Provider("gone".into()), 502, "gone"),
            (
                CommandError::Undeliverable("codex is busy".into()),
                409,
                "codex is busy",
            ),
            (
                CommandError::Storage("disk full".into()),
                503,
                "storage unavailable: disk full",
            ),
            (
                CommandError::ShuttingDown,
                503,
                "the service is shutting down",
            ),
        ];
        for (error, status, text) in cases {
            let (got, body) = answer(error.into());
            assert_eq!(got, status, "{text}");
            assert_eq!(body["ok"], false);
            assert_eq!(body["error"], text);
            assert!(body.get("sessionId").is_none());
        }
    }

    #[test]
    fn a_failed_provider_start_names_the_session() {
        let (status, body) = answer(
            CommandError::ProviderFailed {
                session_id: "p-1".into(),
                error: "claude not found".into(),
            }
            .into(),
        );
        assert_eq!(status, 502);
        assert_eq!(body["error"], "claude not found");
        assert_eq!(body["sessionId"], "p-1");
    }

    #[test]
    fn edge_errors_answer_json_too() {
        let (status, body) = answer(ApiError::PayloadTooLarge { limit: 10 });
        assert_eq!(status, 413);
        assert_eq!(
            body["error"],
            "request body is larger than the limit of 10 bytes"
        );
        let (status, body) = answer(ApiError::Unauthorized);
        assert_eq!(status, 401);
        assert_eq!(body["ok"], false);
        let (status, body) = answer(ApiError::invalid("afterSeq", "must be a number"));
        assert_eq!(status, 400);
        assert_eq!(body["error"], "afterSeq: must be a number");
        let (status, body) = answer(ApiError::UnsupportedMediaType { ndjson_too: false });
        assert_eq!(status, 415);
        assert_eq!(body["error"], "Content-Type: must be application/json");
        let (status, body) = answer(ApiError::forbidden("Origin", "\"x\" is not listed"));
        assert_eq!(status, 403);
        assert_eq!(body["error"], "Origin: \"x\" is not listed");
        let after = std::time::Duration::from_secs(30);
        let (status, body) = answer(ApiError::BodyTimeout { after });
        assert_eq!(status, 408);
        assert_eq!(body["error"], "body: not received in full within 30s");
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_methods() {
        let response = ApiError::MethodNotAllowed {
            method: "PATCH".into(),
            path: "/v1/settings".into(),
            allow: "GET, PUT".into(),
        }
        .error_response();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers().get("allow").unwrap(), "GET, PUT");
    }
}
