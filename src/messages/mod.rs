//! The values that travel between rooms: wire shapes (`wire`), commands and live events (`commands`), the
//! original store's raw-message conversion (`convert`) and the provider stream adapters (`adapters`).

pub mod adapters;
pub mod commands;
pub mod convert;
pub mod numbers;
pub mod validate;
pub mod wire;
