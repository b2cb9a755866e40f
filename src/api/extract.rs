//! Input at the edge: request bodies read under the size limit and parsed with the path of the failing
//! field, id path segments, and query parameters. Every refusal is an `ApiError` whose message names the
//! field, parameter or segment at fault, so no handler sees unchecked input and no input can panic.

use std::collections::HashMap;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::errors::ApiError;
use super::AppState;
use crate::messages::commands::Page;
use crate::messages::validate;

/// Reads the whole body, refusing it as soon as it is known to exceed `limit` (by its Content-Length, or
/// while it streams in) so an oversized body is never buffered whole, and refusing it (408, connection
/// closed) when it has not arrived in full within `server.body_timeout`, so a client that stops sending
/// midway cannot hold the connection and the buffer.
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let after = AppState::of(req).body_timeout;
    tokio::time::timeout(after, read_body_within(req, payload, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout { after })?
}

async fn read_body_within(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // A body that arrives as one chunk (most do) is that chunk: no copy.
    let first = match payload.next().await {
        None => return Ok(Bytes::new()),
        Some(chunk) => chunk.map_err(|e| ApiError::invalid("body", e))?,
    };
    if first.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let Some(second) = payload.next().await else {
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).clamp(first.len(), limit));
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        let chunk = chunk.map_err(|e| ApiError::invalid("body", e))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
        next = payload.next().await;
    }
    Ok(body.freeze())
}

/// Parses a JSON request body into `T`. A type error names the path of the field (`options.maxTurns:
/// invalid type ...`); malformed text and errors about the whole document are reported against `body`.
pub fn parse_json<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    parse_json_at(text).map_err(|e| e.into_api_error("body", ""))
}

/// Why a JSON document did not parse into the wanted type, and where.
#[derive(Debug)]
pub struct JsonError {
    /// The path of the failing value (`payload.messages[0].timestamp`, `[3].event`), or `.` for the
    /// document as a whole.
    pub path: String,
    /// The text is not JSON at all (as opposed to JSON of the wrong shape).
    pub malformed: bool,
    pub message: String,
}

impl JsonError {
    /// `<prefix><path>: <message>` for a shape error inside the document, `<whole>: <message>` for the
    /// document itself.
    pub fn into_api_error(self, whole: &str, prefix: &str) -> ApiError {
        if self.malformed {
            ApiError::invalid(whole, format!("malformed JSON: {}", self.message))
        } else if self.path == "." {
            ApiError::invalid(whole, self.message)
        } else if prefix.is_empty() && self.path.starts_with('[') {
            // A struct read from an array (serde allows it): name the element of the document.
            ApiError::invalid(format!("{whole}{}", self.path), self.message)
        } else {
            ApiError::invalid(format!("{prefix}{}", self.path), self.message)
        }
    }
}

/// Parses one JSON document (and nothing after it) into `T`, keeping the path of a failure.
///
/// Valid input is parsed once, by serde_json alone: tracking the path wraps every value of the document
/// (and copies every object key), which cost a sixth of the server's CPU on the ingest path. Only a
/// document that fails is read again with the path tracked, to name the field; both reads run the same
/// `Deserialize` code, so they agree on whether it fails.
///
/// The text's UTF-8 is checked once, whole, and then parsed as a `str`: read from bytes, serde_json checks
/// each string of the document on its own, a call per string (an ingest body is mostly strings). Text that
/// is not UTF-8 goes straight to the tracked read, from bytes, which names where it breaks.
pub fn parse_json_at<T: DeserializeOwned>(text: &[u8]) -> Result<T, JsonError> {
    match std::str::from_utf8(text).map(serde_json::from_str) {
        Ok(Ok(value)) => Ok(value),
        _ => parse_json_tracked(text),
    }
}

/// The slow read of a document that failed: the path of the failing value is kept.
fn parse_json_tracked<T: DeserializeOwned>(text: &[u8]) -> Result<T, JsonError> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError {
            path: ".".into(),
            malformed: false,
            message: "is empty; expected JSON".into(),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        JsonError {
            path,
            malformed: inner.is_syntax() || inner.is_eof(),
            message: inner.to_string(),
        }
    })?;
    de.end().map_err(|e| JsonError {
        path: ".".into(),
        malformed: true,
        message: e.to_string(),
    })?;
    Ok(value)
}

/// A JSON request body of type `T`, read under `server.max_body`.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Body<T>, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let limit = AppState::of(&req).max_body;
            let bytes = read_body(&req, &mut payload, limit).await?;
            parse_json(&bytes).map(Body)
        })
    }
}

/// The `{projectId}` path segment, checked against the contract: 1–128 of `[A-Za-z0-9._-]`.
pub struct ProjectId(pub String);

impl FromRequest for ProjectId {
    type Error = ApiError;
    type Future = Ready<Result<ProjectId, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req.match_info().get("projectId").unwrap_or_default();
        ready(project_id(id).map(|()| ProjectId(id.to_owned())))
    }
}

/// The `{sessionId}` path segment: `<projectId>-<unix ms>`.
pub struct SessionId(pub String);

impl FromRequest for SessionId {
    type Error = ApiError;
    type Future = Ready<Result<SessionId, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req.match_info().get("sessionId").unwrap_or_default();
        ready(session_id(id).map(|()| SessionId(id.to_owned())))
    }
}

/// Project ids: 1–128 characters of letters, digits, `.`, `_`, `-` (the engine's own rule).
pub fn project_id(id: &str) -> Result<(), ApiError> {
    validate::project_id(id).map_err(ApiError::from)
}

/// Session ids: `<projectId>-<unix ms>`.
pub fn session_id(id: &str) -> Result<(), ApiError> {
    validate::session_id(id).map_err(ApiError::from)
}

/// The query string, decoded. Parameters this API does not know are ignored, as browsers and proxies add
/// their own; the known ones are parsed strictly and named when they do not parse.
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query_string: &str) -> Result<Query, ApiError> {
        web::Query::<HashMap<String, String>>::from_query(query_string)
            .map(|q| Query(q.into_inner()))
            .map_err(|e| ApiError::invalid("query", e))
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A non-negative integer parameter.
    pub fn integer(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.text(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::invalid(name, format!("must be a non-negative integer, got {v:?}"))
                })
            })
            .transpose()
    }

    /// A positive count parameter.
    pub fn count(&self, name: &str) -> Result<Option<usize>, ApiError> {
        match self.integer(name)? {
            None => Ok(None),
            Some(0) => Err(ApiError::invalid(name, "must be at least 1")),
            Some(n) => usize::try_from(n)
                .map(Some)
                .map_err(|_| ApiError::invalid(name, "is too large")),
        }
    }

    /// `true` or `false`; absent is false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ApiError::invalid(
                name,
                format!("must be true or false, got {v:?}"),
            )),
        }
    }

    /// `afterSeq` and `limit`, the message page of a session.
    pub fn page(&self) -> Result<Page, ApiError> {
        Ok(Page {
            after_seq: self.integer("afterSeq")?,
            limit: self.count("limit")?,
        })
    }
}

impl FromRequest for Query {
    type Error = ApiError;
    type Future = Ready<Result<Query, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Query::parse(req.query_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::commands::StartRequest;

    fn message(e: ApiError) -> String {
        use actix_web::ResponseError;
        assert_eq!(e.status_code(), 400, "{e}");
        e.to_string()
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let e = parse_json::<StartRequest>(
            br#"{"provider":"claude","prompt":"hi","options":{"maxTurns":"ten"}}"#,
        )
        .unwrap_err();
        let m = message(e);
        assert!(m.starts_with("options.maxTurns: invalid type"), "{m}");
        let m = message(parse_json::<StartRequest>(br#"{"provider":1,"prompt":"x"}"#).unwrap_err());
        assert!(m.starts_with("provider: invalid type"), "{m}");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let m = message(parse_json::<StartRequest>(br#"{"prompt":"x"}"#).unwrap_err());
        assert!(m.contains("missing field `provider`"), "{m}");
        let m = message(
            parse_json::<StartRequest>(br#"{"provider":"a","prompt":"x","options":{"turns":1}}"#)
                .unwrap_err(),
        );
        assert!(m.contains("unknown field `turns`"), "{m}");
    }

    #[test]
    fn malformed_empty_and_trailing_text_are_refused_against_the_body() {
        for text in [
            &b"{\"provider\":"[..],
            b"",
            b"  ",
            b"{\"provider\":\"a\",\"prompt\":\"x\"} x",
        ] {
            let m = message(parse_json::<StartRequest>(text).unwrap_err());
            assert!(m.starts_with("body: "), "{m}");
        }
        let m = message(parse_json::<StartRequest>(b"[1]").unwrap_err());
        assert!(m.starts_with("body[0]: invalid type"), "{m}");
        let m = message(parse_json::<StartRequest>(b"7").unwrap_err());
        assert!(m.starts_with("body: invalid type"), "{m}");
    }

    #[test]
    fn project_ids_follow_the_contract() {
        assert!(project_id("my-app_1.0").is_ok());
        assert!(project_id(&"a".repeat(128)).is_ok());
        for bad in ["", &"a".repeat(129), "a/b", "ä", "a b", "a:b"] {
            let m = message(project_id(bad).unwrap_err());
            assert!(m.starts_with("projectId: "), "{bad:?}: {m}");
        }
    }

    #[test]
    fn session_ids_are_project_dash_millis() {
        assert!(session_id("my-app-1700000000000").is_ok());
        for bad in ["", "nodash", "-17", "p-", "p-12x", "p q-1"] {
            let m = message(session_id(bad).unwrap_err());
            assert!(m.starts_with("sessionId: "), "{bad:?}: {m}");
        }
    }

    #[test]
    fn query_parameters_are_named_when_they_do_not_parse() {
        let q = Query::parse("afterSeq=3&limit=10&other=x").unwrap();
        assert_eq!(
            q.page().unwrap(),
            Page {
                after_seq: Some(3),
                limit: Some(10)
            }
        );
        let m = message(Query::parse("afterSeq=-1").unwrap().page().unwrap_err());
        assert!(m.starts_with("afterSeq: "), "{m}");
        let m = message(Query::parse("limit=abc").unwrap().page().unwrap_err());
        assert!(m.starts_with("limit: "), "{m}");
        let m = message(Query::parse("limit=0").unwrap().page().unwrap_err());
        assert!(m.starts_with("limit: "), "{m}");
        assert!(Query::parse("durable=true")
            .unwrap()
            .flag("durable")
            .unwrap());
        assert!(!Query::parse("").unwrap().flag("durable").unwrap());
        let m = message(
            Query::parse("durable=yes")
                .unwrap()
                .flag("durable")
                .unwrap_err(),
        );
        assert!(m.starts_with("durable: "), "{m}");
    }
}
