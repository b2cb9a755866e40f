//! Routing through the actors: `Engine::ingest` in-process (supervisor → session actors → persister, with
//! persistence on and the default debounce), on batches shaped as the load generator sends them — ten
//! sessions' events of ten messages each per call — across many live sessions.
//!
//! Beside the default configuration, the same ingest with the raw-id deduplication off
//! (`limits.ingest_dedup_ids = 0`) and with a seqId block no session uses up (`storage.seq_block`), so one
//! run shows what each costs on the ingest path (issue 16).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

use agent_store::config::Config;
use agent_store::loadtest::EngineHost;
use agent_store::messages::commands::StartRequest;
use agent_store::messages::wire::{MessagePayload, RawMessage, SidecarEvent};

const PER_EVENT: usize = 10;
const EVENTS: usize = 10;

fn batch(sessions: &[String], call: u64) -> Vec<SidecarEvent> {
    let first = (call as usize * EVENTS) % sessions.len();
    (0..EVENTS)
        .map(|e| {
            let messages = (0..PER_EVENT)
                .map(|i| {
                    let (kind, content) = match i % 4 {
                        0 => (
                            "text",
                            json!({"text": "the agent explains what it changed and why"}),
                        ),
                        1 => (
                            "thinking",
                            json!({"text": "the test fails because the index is stale"}),
                        ),
                        2 => (
                            "tool_call",
                            json!({"name": "Bash", "input": {"command": "cargo test"}}),
                        ),
                        _ => (
                            "tool_result",
                            json!({"output": "test result: ok. 12 passed; 0 failed"}),
                        ),
                    };
                    RawMessage {
                        id: format!("c{call}-{e}-{i}"),
                        kind: kind.into(),
                        parent_id: None,
                        content: content.into(),
                        timestamp: 1_700_000_000_000,
                    }
                })
                .collect();
            SidecarEvent::Message(MessagePayload {
                session_id: sessions[(first + e) % sessions.len()].clone(),
                messages,
            })
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    let mut group = c.benchmark_group("engine_ingest");
    group.throughput(Throughput::Elements((PER_EVENT * EVENTS) as u64));
    // (sessions, label, what the variant changes in the default configuration)
    type Variant = (usize, &'static str, fn(&mut Config));
    let variants: [Variant; 4] = [
        (100, "", |_| {}),
        (1000, "", |_| {}),
        (1000, ", dedup off", |c| c.limits.ingest_dedup_ids = 0),
        (1000, ", seqId block 1M", |c| {
            c.storage.seq_block = 1_000_000
        }),
    ];
    for (sessions, label, tweak) in variants {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_owned();
        tweak(&mut config);
        let (host, ids) = rt.block_on(async {
            let host = EngineHost::start(config).await.unwrap();
            let mut ids = Vec::with_capacity(sessions);
            for p in 0..sessions {
                let req = StartRequest {
                    provider: "synthetic".into(),
                    prompt: "bench".into(),
                    options: Default::default(),
                };
                let project = format!("bench-{sessions}-{p}");
                ids.push(
                    host.engine()
                        .start_agent(&project, req)
                        .await
                        .unwrap()
                        .session_id,
                );
            }
            (host, ids)
        });
        let engine = host.engine().clone();
        let mut call = 0u64;
        group.bench_function(
            format!("{sessions} sessions, 100 msgs per call{label}"),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let batches: Vec<_> = (0..iters).map(|i| batch(&ids, call + i)).collect();
                        call += iters;
                        let t = Instant::now();
                        for events in batches {
                            engine.ingest(events, false).await.unwrap();
                        }
                        t.elapsed()
                    })
                })
            },
        );
        rt.block_on(host.shutdown());
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = ingest
}
criterion_main!(benches);
