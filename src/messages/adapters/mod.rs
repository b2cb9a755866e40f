//! PLACEHOLDER — the adapters helper replaces this file; the public types below are final.
use crate::config::ProviderKind;
use crate::messages::wire::RawMessage;

/// One thing a provider's stream said, in the store's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum AdapterEvent {
    /// A raw message for `agent.message` (text, thinking, tool_call, tool_result, init, error, status,
    /// compaction, cost ...), converted later by `convert::convert_raw_message`.
    Message(RawMessage),
    /// Totals so far, for `agent.cost` (never a per-line sum).
    Cost {
        cost_usd: f64,
        input_tokens: u64,
        output_tokens: u64,
    },
    /// The provider's own session or thread id, for resuming a follow-up.
    ProviderSession(String),
    /// The run ended: Ok → status done, Err(message) → status error.
    Finished(Result<(), String>),
}

/// Reads one provider's native stream, one parsed JSON value (one stdout line or one HTTP chunk) at a time.
pub trait Adapter: Send {
    fn feed(&mut self, value: &serde_json::Value, out: &mut Vec<AdapterEvent>);
}

/// The adapter for a provider kind (claude, codex, ollama).
#[allow(unused_variables)]
pub fn adapter_for(kind: ProviderKind) -> Box<dyn Adapter> {
    todo!()
}
