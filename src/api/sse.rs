//! `Last-Event-ID` as `/v1/events` reads it back (the frames themselves are `messages::sse`).

use super::errors::ApiError;

/// `Last-Event-ID: <sessionId>:<seqId>`, as `session.messages` frames carry it.
pub fn parse_last_event_id(value: &str) -> Result<(String, u64), ApiError> {
    let refuse = || ApiError::invalid("Last-Event-ID", "must be <sessionId>:<seqId>");
    let (session, seq) = value.trim().rsplit_once(':').ok_or_else(refuse)?;
    super::extract::session_id(session).map_err(|_| refuse())?;
    let seq = seq.parse::<u64>().map_err(|_| refuse())?;
    Ok((session.to_owned(), seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_ids_are_read_back() {
        assert_eq!(
            parse_last_event_id("my.app-1700000000000:42").unwrap(),
            ("my.app-1700000000000".to_owned(), 42)
        );
        for bad in ["", "p-1", "p-1:", "p-1:x", ":4", "p 1-2:3", "p-1:-1"] {
            let e = parse_last_event_id(bad).unwrap_err();
            assert!(e.to_string().starts_with("Last-Event-ID: "), "{bad:?}");
        }
    }
}
