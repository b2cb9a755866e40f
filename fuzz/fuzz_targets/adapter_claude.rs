//! The claude adapter on arbitrary provider output: lines of JSON or anything else, fed to one instance.
#![no_main]

use agent_store::config::ProviderKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agent_store_fuzz::provider_stream(ProviderKind::Claude, data));
