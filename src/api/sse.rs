//! `Last-Event-ID` as `/v1/events` reads it back (the frames themselves are `messages::sse`): `<epoch>.<n>`
//! as every event carries it (src/actors/journal.rs), or `<sessionId>:<seqId>` as `session.messages`
//! frames carry it (v1). An empty one means none.

use super::errors::ApiError;
use crate::engine::LastEventId;

pub fn parse_last_event_id(value: &str) -> Result<Option<LastEventId>, ApiError> {
    let refuse = |why: &str| ApiError::invalid("Last-Event-ID", why);
    let parsed = LastEventId::parse(value).map_err(refuse)?;
    if let Some(LastEventId::Session { session_id, .. }) = &parsed {
        super::extract::session_id(session_id)
            .map_err(|_| refuse("must be <sessionId>:<seqId> or <epoch>.<n>"))?;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EventId;

    #[test]
    fn last_event_ids_are_read_back() {
        assert_eq!(
            parse_last_event_id("my.app-1700000000000:42").unwrap(),
            Some(LastEventId::Session {
                session_id: "my.app-1700000000000".to_owned(),
                seq: 42
            })
        );
        assert_eq!(
            parse_last_event_id("4.17").unwrap(),
            Some(LastEventId::Event(EventId { epoch: 4, n: 17 }))
        );
        assert_eq!(parse_last_event_id("").unwrap(), None);
        assert_eq!(parse_last_event_id("  ").unwrap(), None);
        for bad in [
            "p-1", "p-1:", "p-1:x", ":4", "p 1-2:3", "p-1:-1", "4.x", "x.4",
        ] {
            let e = parse_last_event_id(bad).unwrap_err();
            assert!(e.to_string().starts_with("Last-Event-ID: "), "{bad:?}");
        }
    }
}
