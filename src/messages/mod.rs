//! The values that travel between rooms: wire shapes (`wire`), commands and live events (`commands`), the
//! original store's raw-message conversion (`convert`), the provider stream adapters (`adapters`) and what
//! a batch of them says about an agent's progress (`progress`). The actors' protocol is here too, one file
//! per receiving actor (`project`, `router`, `supervisor`): what a child tells its parent travels as these
//! messages through handles the parent gave it, so no actor names its parent's type. Nothing here knows
//! an actor (tests/architecture.rs).

pub mod adapters;
pub mod agent_message;
pub mod commands;
pub mod convert;
pub mod cost;
pub mod gather;
pub mod json_node;
pub mod json_text;
pub mod numbers;
pub mod policy;
pub mod progress;
pub mod project;
pub mod raw_content;
pub mod raw_kind;
pub mod router;
pub mod session;
pub mod sse;
pub mod supervisor;
pub mod validate;
pub mod wire;
