//! What the fuzz targets share: how hostile bytes reach the code under test, the way the service itself
//! would feed them. Each function must never panic, whatever `data` holds; the targets call one each.

use agent_store::config::ProviderKind;
use agent_store::messages::adapters::{adapter_for, parse_line, AdapterEvent};
use agent_store::messages::convert::convert_raw_message;
use agent_store::messages::wire::RawMessage;

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
    for event in &events {
        if let AdapterEvent::Message(raw) = event {
            show(raw);
        }
    }
}

/// A raw message as a sidecar posts it: JSON text into `RawMessage`, then `convert_raw_message`.
pub fn raw_message(data: &[u8]) {
    if let Ok(raw) = serde_json::from_slice::<RawMessage>(data) {
        show(&raw);
    }
}

/// Converts one raw message and serialises what the store would show, as the API and storage do.
fn show(raw: &RawMessage) {
    if let Some(message) = convert_raw_message(raw) {
        let text = serde_json::to_string(&message).expect("an AgentMessage always serialises");
        assert!(!text.is_empty());
    }
}
