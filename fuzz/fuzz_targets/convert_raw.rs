//! `convert_raw_message` on arbitrary RawMessage JSON, as a sidecar might post it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agent_store_fuzz::raw_message(data));
