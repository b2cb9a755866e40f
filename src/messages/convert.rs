//! PLACEHOLDER — the adapters helper replaces this file; the signatures are final.
use crate::messages::wire::{AgentMessage, RawMessage};

pub fn convert_raw_message(_raw: &RawMessage) -> Option<AgentMessage> {
    todo!()
}

pub fn init_model(_raw: &RawMessage) -> Option<String> {
    todo!()
}
