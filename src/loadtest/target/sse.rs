//! A small Server-Sent Events reader: splits a byte stream into events (`event:` name, `data:` lines) as
//! `GET /v1/events` sends them. Only what the load generator needs; comments and `id:`/`retry:` fields are
//! skipped.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Accumulates chunks and yields complete events.
#[derive(Default)]
pub struct SseReader {
    buf: Vec<u8>,
}

impl SseReader {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event in what was pushed, if any.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let (end, sep) = find_blank_line(&self.buf)?;
            let block: Vec<u8> = self.buf.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut ev = SseEvent::default();
            let mut has_data = false;
            for line in text.lines() {
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => ev.event = value.to_owned(),
                    "data" => {
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            if has_data {
                if ev.event.is_empty() {
                    ev.event = "message".into();
                }
                return Some(ev);
            }
        }
    }
}

/// Where the first blank line (event end) starts, and the length of the separator.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks() {
        let mut r = SseReader::default();
        r.push(b": keep-alive\n\nevent: session.messages\nid: s-1:3\ndata: {\"a\"");
        assert_eq!(r.next_event(), None);
        r.push(b":1}\n\nevent: lagged\r\ndata: {\"missed\":2}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(
            r.next_event(),
            Some(SseEvent {
                event: "session.messages".into(),
                data: "{\"a\":1}".into()
            })
        );
        let lagged = r.next_event().expect("second event");
        assert_eq!(
            (lagged.event.as_str(), lagged.data.as_str()),
            ("lagged", "{\"missed\":2}")
        );
        let plain = r.next_event().expect("third event");
        assert_eq!(
            (plain.event.as_str(), plain.data.as_str()),
            ("message", "x\ny")
        );
        assert_eq!(r.next_event(), None);
    }
}
