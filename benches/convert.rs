//! `convert_raw_message` on the four message kinds a session mostly sees, in realistic sizes: the per-message
//! cost every ingested message pays in its session actor.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;

use agent_store::messages::convert::convert_raw_message;
use agent_store::messages::wire::RawMessage;

fn raw(kind: &str, content: serde_json::Value) -> RawMessage {
    RawMessage {
        id: "m-1".into(),
        kind: kind.into(),
        parent_id: None,
        content: content.into(),
        timestamp: 1_700_000_000_000,
    }
}

fn messages() -> Vec<(&'static str, RawMessage)> {
    let prose = |n: usize| "the agent reads the file and writes a test\n".repeat(n / 43 + 1);
    vec![
        ("text", raw("text", json!({"text": prose(1700)}))),
        ("thinking", raw("thinking", json!({"text": prose(1300)}))),
        (
            "tool_call_bash",
            raw(
                "tool_call",
                json!({"name": "Bash", "input": {"command": "cargo test --all-targets"}}),
            ),
        ),
        (
            "tool_call_edit",
            raw(
                "tool_call",
                json!({"name": "Edit", "input": {"file_path": "/w/src/a.rs", "old_string": prose(200), "new_string": prose(200)}}),
            ),
        ),
        (
            "tool_result",
            raw("tool_result", json!({"output": prose(8600)})),
        ),
        (
            "tool_result_long",
            raw("tool_result", json!({"output": prose(60_000)})),
        ),
    ]
}

fn convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert_raw_message");
    group.throughput(Throughput::Elements(1));
    for (name, message) in messages() {
        group.bench_function(name, |b| {
            b.iter_batched(
                || message.clone(),
                convert_raw_message,
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = convert
}
criterion_main!(benches);
