//! A small reader of the real server's `/v1/events` stream: frames as (event, id, data).

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::{Server, PATIENCE};

pub struct Events {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

/// One event: its name, its id (if any) and its data.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

impl Server {
    /// Opens `/v1/events{query}`, with `Last-Event-ID` when given.
    pub async fn events(&self, query: &str, last_event_id: Option<&str>) -> Events {
        let mut request = self.request(reqwest::Method::GET, &format!("/v1/events{query}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the event stream opens");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        Events {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
        }
    }
}

impl Events {
    /// The next event (comments skipped); None when the stream ended. Panics if none comes in time.
    pub async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(PATIENCE, self.read())
            .await
            .expect("an event in time")
    }

    /// The next event, or None when the stream ended (a killed server), however long that takes.
    pub async fn next_or_end(&mut self) -> Option<Event> {
        self.read().await
    }

    async fn read(&mut self) -> Option<Event> {
        loop {
            if let Some(at) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..at + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 frame");
                let (mut event, mut id, mut data) = (None, None, String::new());
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if let Some(event) = event {
                    let data = serde_json::from_str(&data).expect("JSON data");
                    return Some(Event { event, id, data });
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Reads events until `done` says so; answers all of them.
    pub async fn until(&mut self, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let e = self.next().await.expect("the stream goes on");
            let stop = done(&e);
            seen.push(e);
            if stop {
                return seen;
            }
        }
    }
}

/// The seqIds of a `session.messages` event.
pub fn seq_ids(e: &Event) -> Vec<u64> {
    e.data["messages"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["seqId"].as_u64()).collect())
        .unwrap_or_default()
}
