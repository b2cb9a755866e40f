//! What the supervisor is told, by the engine: settings updates. Starts, look-ups and purges go to the
//! project's router, which holds its arbiter's project directory, and the reports over every project
//! (lists, health, flush, the busiest actors) are the engine's asks of every router
//! (src/messages/router.rs, src/engine/reads.rs).

use actix::prelude::*;

use crate::error::CommandError;
use crate::messages::commands::{Settings, SettingsPatch};

/// PUT /v1/settings: persisted first, then applied; retention changes are enforced on every project at once.
/// Updates run one at a time, each patching the settings the previous one left: two concurrent updates of
/// different keys both stay, in memory as in storage.
#[derive(Message)]
#[rtype(result = "Result<Settings, CommandError>")]
pub struct UpdateSettings(pub SettingsPatch);
