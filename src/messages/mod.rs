//! The values that travel between rooms: wire shapes (`wire`), commands and live events (`commands`), the
//! original store's raw-message conversion (`convert`), the provider stream adapters (`adapters`) and what
//! a batch of them says about an agent's progress (`progress`).

pub mod adapters;
pub mod commands;
pub mod convert;
pub mod cost;
pub mod numbers;
pub mod policy;
pub mod progress;
pub mod sse;
pub mod validate;
pub mod wire;
