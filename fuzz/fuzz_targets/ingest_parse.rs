//! The sidecar ingest parser (`POST /v1/sidecar/events`) on arbitrary bodies: one event, a JSON array or
//! NDJSON, with a small or a large per-message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agent_store_fuzz::ingest_body(data));
