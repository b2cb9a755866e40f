//! What the fuzz targets share: how hostile bytes reach the code under test, the way the service itself
//! would feed them. Each function must never panic, whatever `data` holds; the targets call one each.

use agent_store::api::parse_batch;
use agent_store::config::ProviderKind;
use agent_store::messages::adapters::{adapter_for, parse_line, AdapterEvent};
use agent_store::messages::convert::convert_raw_message;
use agent_store::messages::wire::{RawMessage, SidecarEvent};

/// A provider's stdout: every line goes through `parse_line` into one adapter instance (adapters keep
/// state across lines, so a whole stream is one input), then each raw message it makes is converted as
/// the session would, and shown as the API would show it.
pub fn provider_stream(kind: ProviderKind, data: &[u8]) {
    let mut adapter = adapter_for(kind);
    let mut events = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        // Runners hand adapters only JSON objects, but an adapter must cope with any value.
        if let Ok(value) = parse_line(line) {
            adapter.feed(&value, &mut events);
        }
    }
    for event in events {
        if let AdapterEvent::Message(raw) = event {
            show(raw);
        }
    }
}

/// A raw message as a sidecar posts it: JSON text into `RawMessage`, then `convert_raw_message`.
pub fn raw_message(data: &[u8]) {
    if let Ok(raw) = serde_json::from_slice::<RawMessage>(data) {
        show(raw);
    }
}

/// A sidecar ingest body. The first byte picks the content type (bit 0: NDJSON) and the per-message
/// limit (bit 1: 64 bytes, so the size checks run; else 4 MiB); the rest is the body. Whatever is
/// accepted is converted as the sessions would convert it; a refusal must name where the fault is.
pub fn ingest_body(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let ndjson = mode & 1 == 1;
    let limit = if mode & 2 == 2 { 64 } else { 4 << 20 };
    match parse_batch(body, ndjson, limit) {
        Ok(events) => {
            for event in events {
                if let SidecarEvent::Message(payload) = event {
                    payload.messages.into_iter().for_each(show);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "a refusal says why"),
    }
}

/// Converts one raw message and serialises what the store would show, as the API and storage do.
fn show(raw: RawMessage) {
    if let Some(message) = convert_raw_message(raw) {
        let text = serde_json::to_string(&message).expect("an AgentMessage always serialises");
        assert!(!text.is_empty());
    }
}
