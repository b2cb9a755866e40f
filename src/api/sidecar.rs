//! `POST /v1/sidecar/events`: events from sidecars living outside this process. The body is one event, a
//! JSON array of events, or NDJSON. The whole batch is parsed and checked before anything is applied, so a
//! 400 (naming the failing index or line) leaves no trace; `?durable=true` answers only after the batch is
//! committed to storage.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Ref, Schema};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::errors::{ApiError, ErrorBody};
use super::extract::{parse_json_at, read_body, JsonError, Query};
use super::AppState;
use crate::messages::commands::IngestOutcome;
use crate::messages::wire::SidecarEvent;

/// The JSON body's shape for the OpenAPI document: one event or an array of events. Only documented here;
/// `parse_batch` reads the body so that an error can name the failing index.
pub struct SidecarBody;

impl PartialSchema for SidecarBody {
    fn schema() -> RefOr<Schema> {
        let event = || Ref::from_schema_name(SidecarEvent::name());
        OneOfBuilder::new()
            .item(event())
            .item(ArrayBuilder::new().items(event()))
            .description(Some("One event, or a JSON array of events"))
            .into()
    }
}

impl ToSchema for SidecarBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((SidecarEvent::name().into(), SidecarEvent::schema()));
        SidecarEvent::schemas(schemas);
    }
}

#[utoipa::path(post, path = "/v1/sidecar/events", operation_id = "ingestSidecarEvents", tag = "sidecar",
    params(("durable" = Option<bool>, Query, description = "Answer only after the batch is committed to storage")),
    request_body(description = "One event, a JSON array of events, or NDJSON (one event a line)",
        content((SidecarBody = "application/json"), (String = "application/x-ndjson"))),
    responses(
        (status = 202, description = "Routed; events for sessions this service does not hold are counted as ignored", body = IngestOutcome),
        (status = 400, description = "The failing index or line, and nothing of the batch applied", body = ErrorBody),
        (status = 413, description = "Over server.max_body", body = ErrorBody),
    ))]
pub async fn ingest(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: Query,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let durable = query.flag("durable")?;
    let mut payload = payload.into_inner();
    let reject = |reason: &str| {
        state
            .engine
            .metrics()
            .events_rejected
            .with_label_values(&[reason])
            .inc()
    };
    let body = read_body(&req, &mut payload, state.max_body)
        .await
        .inspect_err(|_| reject("body"))?;
    let events = parse_batch(&body, is_ndjson(&req), state.max_message_bytes)
        .inspect_err(|_| reject("invalid"))?;
    let outcome = if events.is_empty() {
        IngestOutcome::default()
    } else if let Some(cluster) = &state.cluster {
        // Cluster mode: stored in JetStream (every replica) before the 202; the owners apply it.
        cluster.ingest(events).await.map_err(|e| {
            reject("unavailable");
            ApiError::Unavailable(e.to_string())
        })?
    } else {
        state
            .engine
            .ingest(events, durable)
            .await
            .inspect_err(|_| reject("unavailable"))?
    };
    Ok(HttpResponse::Accepted().json(outcome))
}

fn is_ndjson(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-ndjson"))
}

/// Parses a whole batch, or refuses it naming the first event at fault.
pub fn parse_batch(
    body: &[u8],
    ndjson: bool,
    max_message_bytes: usize,
) -> Result<Vec<SidecarEvent>, ApiError> {
    // Content as received is part of the body, so a body within the limit cannot hold a message over it.
    let check_sizes = body.len() > max_message_bytes;
    if ndjson {
        let mut events = Vec::new();
        for (i, line) in body.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let at = || format!("line {}", i + 1);
            let event = parse_json_at::<SidecarEvent>(line)
                .map_err(|e| e.into_api_error(&at(), &format!("{}: ", at())))?;
            if check_sizes {
                check_message_sizes(&event, max_message_bytes, || format!("{}: ", at()))?;
            }
            events.push(event);
        }
        if events.is_empty() {
            return Err(ApiError::invalid(
                "body",
                "is empty; expected NDJSON events",
            ));
        }
        return Ok(events);
    }
    let is_array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if is_array {
        let events = parse_json_at::<Vec<SidecarEvent>>(body).map_err(array_error)?;
        if check_sizes {
            for (i, event) in events.iter().enumerate() {
                check_message_sizes(event, max_message_bytes, || format!("events[{i}]."))?;
            }
        }
        Ok(events)
    } else {
        let event =
            parse_json_at::<SidecarEvent>(body).map_err(|e| e.into_api_error("body", ""))?;
        if check_sizes {
            check_message_sizes(&event, max_message_bytes, String::new)?;
        }
        Ok(vec![event])
    }
}

/// Names the failing element of an array: `events[3].payload.sessionId: ...`, or `events[3]: malformed
/// JSON ...` when the text itself breaks inside element 3.
fn array_error(e: JsonError) -> ApiError {
    if e.malformed {
        if let Some(index) = e.path.strip_prefix('[').and_then(|p| p.split(']').next()) {
            return ApiError::invalid(
                format!("events[{index}]"),
                format!("malformed JSON: {}", e.message),
            );
        }
    }
    e.into_api_error("body", "events")
}

/// `at` names the event in an error (its prefix), and is only written for one.
fn check_message_sizes(
    event: &SidecarEvent,
    limit: usize,
    at: impl Fn() -> String,
) -> Result<(), ApiError> {
    let SidecarEvent::Message(payload) = event else {
        return Ok(());
    };
    for (j, message) in payload.messages.iter().enumerate() {
        let size = content_size(&message.content);
        if size > limit {
            return Err(ApiError::invalid(
                format!("{}payload.messages[{j}].content", at()),
                format!("is {size} bytes, over the limit of {limit}"),
            ));
        }
    }
    Ok(())
}

/// A content's size: a string's bytes, or the length of any other value written as JSON.
fn content_size(content: &crate::messages::wire::RawContent) -> usize {
    if let Some(s) = content.as_str() {
        return s.len();
    }
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, content);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    fn message(e: ApiError) -> String {
        match e {
            ApiError::BadRequest(m) => m,
            other => panic!("not a bad request: {other:?}"),
        }
    }

    fn event(session: &str, text: &str) -> String {
        format!(
            r#"{{"event":"agent.message","payload":{{"sessionId":"{session}","messages":[{{"id":"m","type":"text","content":"{text}","timestamp":1}}]}}}}"#
        )
    }

    #[test]
    fn one_event_an_array_and_ndjson_all_parse() {
        let one = parse_batch(event("p-1", "hi").as_bytes(), false, LIMIT).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].session_id(), "p-1");

        let array = format!(
            "[{}, {}, {}]",
            event("p-1", "a"),
            r#"{"event":"agent.status","payload":{"sessionId":"p-2","status":"done"}}"#,
            r#"{"event":"agent.cost","payload":{"sessionId":"p-3","costUsd":0.5,"inputTokens":3,"outputTokens":4}}"#
        );
        let events = parse_batch(array.as_bytes(), false, LIMIT).unwrap();
        let kinds: Vec<_> = events.iter().map(SidecarEvent::kind).collect();
        assert_eq!(kinds, ["agent.message", "agent.status", "agent.cost"]);

        let ndjson = format!("{}\n\n{}\r\n", event("p-1", "a"), event("p-2", "b"));
        let events = parse_batch(ndjson.as_bytes(), true, LIMIT).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].session_id(), "p-2");
    }

    #[test]
    fn an_array_error_names_the_index_and_field() {
        let array = format!(
            "[{}, {}, {}, {}]",
            event("p", "a"),
            event("p", "b"),
            event("p", "c"),
            r#"{"event":"agent.status","payload":{"status":"done"}}"#
        );
        let m = message(parse_batch(array.as_bytes(), false, LIMIT).unwrap_err());
        assert!(m.starts_with("events[3]"), "{m}");
        assert!(m.contains("sessionId"), "{m}");

        let wrong_type = format!(
            "[{}, {}]",
            event("p", "a"),
            r#"{"event":"agent.cost","payload":{"sessionId":"p","costUsd":"lots","inputTokens":1,"outputTokens":1}}"#
        );
        let m = message(parse_batch(wrong_type.as_bytes(), false, LIMIT).unwrap_err());
        assert!(
            m.starts_with("events[1].payload.costUsd: invalid type"),
            "{m}"
        );

        let unknown = r#"[{"event":"agent.bogus","payload":{}}]"#;
        let m = message(parse_batch(unknown.as_bytes(), false, LIMIT).unwrap_err());
        assert!(m.starts_with("events[0]"), "{m}");
        assert!(m.contains("agent.bogus"), "{m}");

        let broken = format!("[{}, {{\"event\": ", event("p", "a"));
        let m = message(parse_batch(broken.as_bytes(), false, LIMIT).unwrap_err());
        assert!(m.starts_with("events[1]: malformed JSON"), "{m}");
    }

    #[test]
    fn an_ndjson_error_names_the_line() {
        let body = format!("{}\n{}\n\nnot json\n", event("p", "a"), event("p", "b"));
        let m = message(parse_batch(body.as_bytes(), true, LIMIT).unwrap_err());
        assert!(m.starts_with("line 4: malformed JSON"), "{m}");
        let body = format!(
            "{}\n{{\"event\":\"agent.message\",\"payload\":{{\"sessionId\":7,\"messages\":[]}}}}\n",
            event("p", "a")
        );
        let m = message(parse_batch(body.as_bytes(), true, LIMIT).unwrap_err());
        assert!(
            m.starts_with("line 2: payload.sessionId: invalid type"),
            "{m}"
        );
    }

    #[test]
    fn empty_and_malformed_bodies_are_refused() {
        for (body, ndjson) in [("", false), ("  \n", true), ("{", false), ("7", false)] {
            let m = message(parse_batch(body.as_bytes(), ndjson, LIMIT).unwrap_err());
            assert!(m.starts_with("body: "), "{body:?}: {m}");
        }
        let m = message(parse_batch(b"[1,", false, LIMIT).unwrap_err());
        assert!(m.starts_with("events[0]: invalid type"), "{m}");
        assert!(parse_batch(b"[]", false, LIMIT).unwrap().is_empty());
    }

    #[test]
    fn an_oversized_message_is_named_by_index() {
        let big = "x".repeat(300);
        let array = format!("[{}, {}]", event("p", "small"), event("p", &big));
        let m = message(parse_batch(array.as_bytes(), false, 256).unwrap_err());
        assert_eq!(
            m,
            "events[1].payload.messages[0].content: is 300 bytes, over the limit of 256"
        );
        let ndjson = format!("{}\n{}", event("p", "small"), event("p", &big));
        let m = message(parse_batch(ndjson.as_bytes(), true, 256).unwrap_err());
        assert!(
            m.starts_with("line 2: payload.messages[0].content: is 300"),
            "{m}"
        );
        let object_content = serde_json::json!({"text": big}).into();
        assert!(content_size(&object_content) > 300);
    }
}
