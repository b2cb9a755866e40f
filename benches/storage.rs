//! Storage on a real redb file in a temp dir, one bench per operation: `Store::apply` with `AppendMessages`
//! batches (each call is one durable transaction, so one fsync), shaped as the persister sends them — one
//! busy session, or many sessions' debounced batches grouped in one commit; updating many sessions'
//! records in one commit (a flush's bookkeeping, and finishing sessions); retention across many projects,
//! project by project and in one commit; the project list and one project's last session (start and
//! restore); encoding a batch (done by the session actor before the persister gets it); reading a
//! 100,000-message session back, whole and one page of it; and the live-event journal's appends and prunes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use agent_store::messages::wire::{AgentMessage, AgentStatus, MsgRole, SharedMessage};
use agent_store::storage::{EncodedBatch, SessionRecord, Spend, Step, Store, WriteOp};

fn message(seq_id: u64, bytes: usize) -> SharedMessage {
    Arc::new(AgentMessage {
        id: format!("m-{seq_id}"),
        seq_id,
        role: if seq_id % 2 == 0 {
            MsgRole::ToolResult
        } else {
            MsgRole::Assistant
        },
        content: "x".repeat(bytes),
        tool: None,
        timestamp: 1_700_000_000_000 + seq_id as i64,
    })
}

fn record(session_id: &str, last_seq: u64) -> SessionRecord {
    let at = 1_700_000_000_000;
    SessionRecord {
        updated_at: at + last_seq as i64,
        last_seq,
        message_count: last_seq,
        ..SessionRecord::new(
            session_id,
            &format!("p-{session_id}"),
            "synthetic",
            AgentStatus::Running,
            at,
        )
    }
}

/// One commit: `sessions` sessions each appending `per_session` messages after `seq`, with their records.
fn ops(sessions: usize, per_session: usize, seq: u64, bytes: usize) -> Vec<WriteOp> {
    let mut ops = Vec::with_capacity(sessions * 2);
    for s in 0..sessions {
        let id = format!("s{s}-1700000000000");
        let messages = (1..=per_session as u64)
            .map(|i| message(seq + i, bytes))
            .collect();
        ops.push(WriteOp::AppendMessages {
            session_id: id.clone(),
            messages,
        });
        ops.push(WriteOp::put_session(record(&id, seq + per_session as u64)));
    }
    ops
}

/// `ops` with each batch encoded beforehand, as session actors hand them to the persister
/// (`WriteOp::AppendEncoded`): what is left is the writer thread's own work.
fn encoded_ops(sessions: usize, per_session: usize, seq: u64, bytes: usize) -> Vec<WriteOp> {
    ops(sessions, per_session, seq, bytes)
        .into_iter()
        .map(|op| match op {
            WriteOp::AppendMessages {
                session_id,
                messages,
            } => WriteOp::AppendEncoded(EncodedBatch::encode(session_id, &messages).unwrap()),
            other => other,
        })
        .collect()
}

type MakeOps = fn(usize, usize, u64, usize) -> Vec<WriteOp>;

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_apply");
    let encoded: MakeOps = encoded_ops;
    let plain: MakeOps = ops;
    for (name, sessions, per_session, bytes, make) in [
        ("1 session x 100 msgs, 300 B", 1, 100, 300, plain),
        ("100 sessions x 10 msgs, 300 B", 100, 10, 300, plain),
        ("100 sessions x 10 msgs, 3 KB", 100, 10, 3000, plain),
        ("1000 sessions x 10 msgs, 300 B", 1000, 10, 300, plain),
        (
            "1000 sessions x 10 msgs, 300 B, encoded",
            1000,
            10,
            300,
            encoded,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bench.redb")).unwrap();
        group.throughput(Throughput::Elements((sessions * per_session) as u64));
        let mut seq = 0u64;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let batch = make(sessions, per_session, seq, bytes);
                    seq += per_session as u64;
                    let t = Instant::now();
                    store.apply(&batch).unwrap();
                    spent += t.elapsed();
                }
                spent
            })
        });
        store.close();
    }
    group.finish();
}

/// A store holding `sessions` running sessions of their own project each, with one stored batch.
fn populated(sessions: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.redb")).unwrap();
    store.apply(&ops(sessions, 10, 0, 300)).unwrap();
    (dir, store)
}

/// Records rewritten in one commit, as a group commit carries them: every flush's updated record (new
/// updatedAt, still running), and sessions finishing (status done).
fn records(c: &mut Criterion) {
    const SESSIONS: usize = 1000;
    let mut group = c.benchmark_group("store_records");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    for (name, status) in [
        ("1000 records updated", AgentStatus::Running),
        ("1000 sessions finished", AgentStatus::Done),
    ] {
        let (_dir, store) = populated(SESSIONS);
        let mut tick = 100u64;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    tick += 1;
                    let batch: Vec<WriteOp> = (0..SESSIONS)
                        .map(|s| {
                            let mut r = record(&format!("s{s}-1700000000000"), tick);
                            r.status = status;
                            WriteOp::put_session(r)
                        })
                        .collect();
                    let t = Instant::now();
                    store.apply(&batch).unwrap();
                    spent += t.elapsed();
                }
                spent
            })
        });
        store.close();
    }
    group.finish();
}

/// Retention applied to every project: 1,000 projects of 5 finished sessions, keeping 3 (so each pass
/// deletes 2 per project; the deleted ones are written again before the next). "1000 projects" commits
/// project by project (the name older builds' figures carry); "everywhere" is what a settings change
/// does, one commit; "nothing to let go" keeps 5, so no project has anything to delete.
fn retention(c: &mut Criterion) {
    const PROJECTS: usize = 1000;
    let mut group = c.benchmark_group("store_retention");
    group.throughput(Throughput::Elements(PROJECTS as u64));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.redb")).unwrap();
    let fill = |store: &Store| {
        let mut batch = Vec::new();
        for p in 0..PROJECTS {
            for s in 0..5u64 {
                let mut r = record(&format!("p{p}-s{s}"), s + 1);
                r.project_id = format!("p{p}");
                r.status = AgentStatus::Done;
                batch.push(WriteOp::put_session(r));
            }
        }
        store.apply(&batch).unwrap();
    };
    let projects: Vec<String> = (0..PROJECTS).map(|p| format!("p{p}")).collect();
    group.bench_function("1000 projects", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                fill(&store);
                let t = Instant::now();
                let dropped = retain_all(&store, &projects);
                spent += t.elapsed();
                assert_eq!(dropped, 2 * PROJECTS);
            }
            spent
        })
    });
    group.bench_function("1000 projects everywhere", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                fill(&store);
                let t = Instant::now();
                let dropped = store.enforce_retention_everywhere(3, i64::MAX, 0).unwrap();
                spent += t.elapsed();
                assert_eq!(dropped.len(), 2 * PROJECTS);
            }
            spent
        })
    });
    fill(&store);
    group.bench_function("1000 projects everywhere, nothing to let go", |b| {
        b.iter(|| {
            let dropped = store.enforce_retention_everywhere(5, i64::MAX, 0).unwrap();
            assert!(dropped.is_empty());
        })
    });
    group.finish();
    // The project list (`GET /v1/projects` at start-up and in reports): each project's latest session.
    let mut group = c.benchmark_group("store_projects");
    group.throughput(Throughput::Elements(PROJECTS as u64));
    group.bench_function("1000 projects x 5 sessions, latest of each", |b| {
        b.iter(|| assert_eq!(store.last_sessions().unwrap().len(), PROJECTS))
    });
    // A project's current session, read when it starts or is restored.
    group.bench_function("last session of each of 1000 projects, one by one", |b| {
        b.iter(|| {
            for p in &projects {
                assert!(store.last_session(p).unwrap().is_some());
            }
        })
    });
    group.finish();
    store.close();
}

/// Retention over `projects`, one durable transaction per project.
fn retain_all(store: &Store, projects: &[String]) -> usize {
    projects
        .iter()
        .map(|p| store.enforce_retention(p, 3, i64::MAX, 0).unwrap().len())
        .sum()
}

/// Sessions finishing as the persister commits them: each session's final record (status done), then the
/// retention its finish asks for, all in one group commit (`Store::apply_steps`).
fn finish(c: &mut Criterion) {
    const SESSIONS: usize = 1000;
    let mut group = c.benchmark_group("store_finish");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    let (_dir, store) = populated(SESSIONS);
    let projects: Vec<String> = (0..SESSIONS)
        .map(|s| format!("p-s{s}-1700000000000"))
        .collect();
    let mut tick = 100u64;
    group.bench_function("1000 sessions finished, retention each", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    tick += 1;
                    finish_round(&store, &projects, tick, false)
                })
                .sum()
        })
    });
    // The same finish with the cost each session reports as it ends: one new cost-ledger row per session.
    group.bench_function(
        "1000 sessions finished with their cost, retention each",
        |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        tick += 1;
                        finish_round(&store, &projects, tick, true)
                    })
                    .sum()
            })
        },
    );
    group.finish();
    store.close();
}

/// One round of the finish benches: one session per project stored running, then (timed) all finished in
/// one group commit with the retention each finish asks for. `with_cost`: each finish also adds the
/// session's first cost-ledger row, as a session that reports its cost as it ends does.
fn finish_round(store: &Store, projects: &[String], tick: u64, with_cost: bool) -> Duration {
    let id = |s: usize| format!("s{s}-1700000000000");
    let running: Vec<WriteOp> = (0..projects.len())
        .map(|s| WriteOp::put_session(record(&id(s), tick)))
        .collect();
    store.apply(&running).unwrap();
    let mut done = Vec::with_capacity(2 * projects.len());
    for s in 0..projects.len() {
        let mut r = record(&id(s), tick + 1);
        r.status = AgentStatus::Done;
        if with_cost {
            r.cost_usd = 0.02;
            done.push(WriteOp::AddSpend(Box::new(Spend {
                project_id: r.project_id.clone(),
                // A new row each round, as every finishing session's first spend is.
                day: format!("2026-01-01 {tick}"),
                session_id: id(s),
                usd: 0.02,
                input_tokens: 4000,
                output_tokens: 1000,
            })));
        }
        done.push(WriteOp::put_session(r));
    }
    let t = Instant::now();
    let mut steps = vec![Step::Write(&done)];
    steps.extend(projects.iter().map(|p| Step::Retain {
        project_id: p,
        keep: 3,
        max_age_ms: i64::MAX,
    }));
    store.apply_steps(&steps, 0).unwrap();
    t.elapsed()
}

fn read_back(c: &mut Criterion) {
    const MESSAGES: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.redb")).unwrap();
    // As the persister writes a busy session: one row per debounced batch of 100.
    for batch in 0..MESSAGES / 100 {
        let mut one = ops(1, 100, batch * 100, 300);
        one.truncate(1);
        store.apply(&one).unwrap();
    }
    store
        .apply(&[WriteOp::put_session(record("s0-1700000000000", MESSAGES))])
        .unwrap();
    let mut group = c.benchmark_group("store_read");
    group.throughput(Throughput::Elements(MESSAGES));
    group.bench_function("100k-message session", |b| {
        b.iter(|| {
            let m = store.messages("s0-1700000000000", 0, None, None).unwrap();
            assert_eq!(m.len() as u64, MESSAGES);
        })
    });
    // A reader paging through it (`GET .../messages?after=&limit=`): 100 messages from the middle.
    group.throughput(Throughput::Elements(100));
    group.bench_function("page of 100 from the middle", |b| {
        b.iter(|| {
            let m = store
                .messages("s0-1700000000000", MESSAGES / 2 + 50, None, Some(100))
                .unwrap();
            assert_eq!(m.len(), 100);
        })
    });
    group.finish();
    store.close();
}

/// Text-like content of `bytes` bytes (words from a small vocabulary, varied by `seq`): packs the way
/// agent output does, unlike one repeated byte.
fn prose(seq: u64, bytes: usize) -> String {
    const WORDS: [&str; 12] = [
        "the ",
        "index ",
        "fails ",
        "because ",
        "cargo ",
        "test ",
        "src/storage/writer.rs ",
        "returns ",
        "an ",
        "error ",
        "when ",
        "42 ",
    ];
    let mut out = String::with_capacity(bytes + 24);
    let mut i = seq as usize;
    while out.len() < bytes {
        out.push_str(WORDS[(i * 7 + i / 5) % WORDS.len()]);
        i += 1;
    }
    out.truncate(bytes);
    out
}

/// Encoding one flush's batch in its stored form (the body, then LZ4 when it pays, and the checksum): the
/// session actor does it before handing the batch to the persister.
fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_encode");
    for (name, count, bytes) in [
        ("100 msgs, 300 B", 100u64, 300),
        ("30 msgs, 100 B", 30, 100),
        ("10 msgs, 3 KB", 10, 3000),
    ] {
        let batch: Vec<SharedMessage> = (1..=count)
            .map(|seq| {
                let mut m = (*message(seq, 0)).clone();
                m.content = prose(seq, bytes);
                Arc::new(m)
            })
            .collect();
        group.throughput(Throughput::Elements(count));
        group.bench_function(name, |b| {
            b.iter(|| EncodedBatch::encode("s0-1700000000000".into(), &batch).unwrap())
        });
    }
    group.finish();
}

/// The broadcaster's journal of live events, as it hands it over every few milliseconds: one commit of
/// 1,000 consecutive events of ~60 bytes (one per ingested batch in a busy second).
fn journal(c: &mut Criterion) {
    const EVENTS: u64 = 1000;
    let mut group = c.benchmark_group("store_journal");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.redb")).unwrap();
    group.throughput(Throughput::Elements(EVENTS));
    let appends = |from: u64| -> Vec<WriteOp> {
        (from..from + EVENTS)
            .map(|n| WriteOp::JournalAppend {
                epoch: 1,
                n,
                entry: format!("{{\"s\":\"p{n}-1700000000000\",\"upto\":{n}}}").into_bytes(),
            })
            .collect()
    };
    let mut n = 0u64;
    group.bench_function("append 1000 events in one commit", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let ops = appends(n);
                n += EVENTS;
                let t = Instant::now();
                store.apply(&ops).unwrap();
                spent += t.elapsed();
            }
            spent
        })
    });
    // A full journal: every save also prunes, and the cut falls inside the previous save's run.
    group.bench_function("append 1000 events and prune inside the last run", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut ops = appends(n);
                ops.push(WriteOp::JournalPrune {
                    epoch: 1,
                    n: n - EVENTS / 2,
                });
                n += EVENTS;
                let t = Instant::now();
                store.apply(&ops).unwrap();
                spent += t.elapsed();
            }
            spent
        })
    });
    group.finish();
    store.close();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = apply, records, retention, finish, read_back, encode, journal
}
criterion_main!(benches);
