//! Each provider adapter on the recorded transcripts in `../shared/transcripts` (read at bench time, never
//! copied): parse one stdout line into JSON and feed it to the adapter, as a runner does per line.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use agent_store::config::ProviderKind;
use agent_store::messages::adapters::adapter_for;

fn transcripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/transcripts")
}

/// The JSON lines of every recording of one provider. A file that is one JSON array (claude's
/// `--output-format json`) gives its elements as lines.
fn lines(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(transcripts().join(dir)) else {
        return out;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&text) {
            out.extend(items.iter().map(|v| v.to_string()));
            continue;
        }
        out.extend(
            text.lines()
                .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
                .map(str::to_owned),
        );
    }
    out
}

fn adapters(c: &mut Criterion) {
    let mut group = c.benchmark_group("adapter_parse_and_feed");
    for (name, kind) in [
        ("claude", ProviderKind::Claude),
        ("codex", ProviderKind::Codex),
        ("ollama", ProviderKind::Ollama),
    ] {
        let lines = lines(name);
        if lines.is_empty() {
            eprintln!("no {name} transcripts under {}", transcripts().display());
            continue;
        }
        let bytes: usize = lines.iter().map(String::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format!("{name} ({} lines)", lines.len()), |b| {
            b.iter(|| {
                let mut adapter = adapter_for(kind);
                let mut out = Vec::new();
                for line in &lines {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                        adapter.feed(&value, &mut out);
                    }
                }
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = adapters
}
criterion_main!(benches);
