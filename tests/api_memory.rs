//! Memory that no client can grow (safe defaults, issue 11 item 3), over real HTTP against the real server:
//! reads of ids that do not exist create no actor, and idle `/v1/events` subscribers hold bounded memory
//! however large the live events they are sent.

mod common;

use common::{sample, send, seq_ids, text_event, SseClient, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One sample of the server's `/metrics`, by name and labels.
async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app.metrics_text().await;
    sample(&text, name, labels)
}

/// The tests here measure the resident memory of the whole process, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The app with all sessions' windows held to `budget` bytes together (`limits.window_bytes`).
async fn with_window_bytes(budget: u64) -> TestApp {
    TestApp::spawn_with(|c| c.limits.window_bytes = bytesize::ByteSize::b(budget)).await
}

/// The resident memory of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// Every read a client can make of a project or session that does not exist.
async fn read_unknown(app: &TestApp, i: usize) {
    let project = format!("ghost-{i}");
    for path in [
        format!("/v1/projects/{project}/session"),
        format!("/v1/projects/{project}/sessions"),
        format!("/v1/sessions/{project}-1700000000000"),
    ] {
        let (status, body): (StatusCode, Value) = send(app.get(&path)).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::OK,
            "{path}: {status} {body}"
        );
        if status == StatusCode::OK {
            assert_eq!(body, serde_json::json!([]), "{path}");
        }
    }
    // Commands that only act on a current session are reads of it too.
    let (status, _) = send(app.post(&format!("/v1/projects/{project}/stop"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(app.delete(&format!("/v1/projects/{project}/session"))).await;
    assert!(status.is_success(), "{status}");
    let (status, body) = send(app.post(&format!("/v1/projects/{project}/session/restore"))).await;
    assert!(status.is_success(), "{status} {body}");
}

#[actix_web::test]
async fn reads_of_unknown_ids_create_no_actor_and_hold_no_memory() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn().await;
    let projects = || metric(&app, "agent_store_actors_alive", &[("actor", "project")]);
    // Every kind of read once per id, which also warms up the allocator and the connection pool.
    for i in 0..200 {
        read_unknown(&app, i).await;
    }
    assert_eq!(projects().await, 0.0, "no project actor for an unknown id");
    let before = rss();
    // Then the read a client makes most, for many more distinct ids, a few at a time.
    const READS: usize = 4_000;
    for chunk in (200..200 + READS).collect::<Vec<_>>().chunks(16) {
        let reads = chunk.iter().map(|i| {
            let request = app.get(&format!("/v1/projects/ghost-{i}/session"));
            async move { send(request).await.0 }
        });
        for status in futures_util::future::join_all(reads).await {
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
    }
    assert_eq!(
        projects().await,
        0.0,
        "{READS} distinct unknown projects read"
    );
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 8 << 20,
        "{READS} reads of unknown ids grew the server by {grown} bytes"
    );
    // A project that exists still has its actor, and reads find it.
    let sid = app.start("real", "synthetic").await;
    let (status, body) = send(app.get("/v1/projects/real/session")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sessionId"], sid);
    assert_eq!(projects().await, 1.0);
    app.stop().await;
}

/// Three batches of four 1 MiB messages to `session` (each frame about 4 MiB), then a marker message to
/// `marker`; answers once `watcher` has the marker. Live events reach subscribers in the order they were
/// published, so by then every subscriber has been offered all three frames.
async fn three_big_batches(app: &TestApp, session: &str, marker: &str, watcher: &mut SseClient) {
    let text = "y".repeat(1 << 20);
    for batch in 0..3 {
        let events: Vec<Value> = (0..4)
            .map(|i| text_event(session, &format!("b{batch}-{i}"), &text))
            .collect();
        app.ingest(json!(events)).await;
    }
    let note = format!("after {session}");
    app.ingest(json!([text_event(marker, &note, &note)])).await;
    loop {
        let (_, data) = watcher.next_named("session.messages").await;
        if data["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["content"] == note.as_str()))
        {
            return;
        }
    }
}

#[actix_web::test]
async fn idle_subscribers_share_one_copy_of_each_large_event() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn().await;
    let marker = app.start("marker", "synthetic").await;
    let mut watcher = app.events("?projectId=marker", None).await;
    // A first round without idle subscribers grows what any ingest grows (storage cache, allocator).
    let warm = app.start("warm", "synthetic").await;
    three_big_batches(&app, &warm, &marker, &mut watcher).await;
    // Subscribed and never read: each stream's server side fills its socket, then waits.
    const IDLE: usize = 64;
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(app.events("", None).await);
    }
    let before = rss();
    let big = app.start("big", "synthetic").await;
    three_big_batches(&app, &big, &marker, &mut watcher).await;
    let grown = rss().saturating_sub(before);
    // Framed or copied per subscriber, the three batches would cost 64 × 4 MiB at least; shared, the
    // session's window and a few frames.
    assert!(
        grown < 96 << 20,
        "{IDLE} idle subscribers of 3 × 4 MiB grew the server by {} MiB",
        grown >> 20
    );
    drop(idle);
    app.stop().await;
}

#[actix_web::test]
async fn message_windows_stay_within_window_bytes_and_reads_still_return_everything() {
    let _serial = SERIAL.lock().await;
    const BUDGET: u64 = 4 << 20;
    let app = with_window_bytes(BUDGET).await;
    // 16 sessions × 40 messages of 64 KiB: 40 MiB, ten times the budget, each session far below the
    // per-session count bound (`messages_in_memory`), which alone would keep all of it in memory.
    const SESSIONS: usize = 16;
    const ROUNDS: usize = 4;
    let text = "w".repeat(64 << 10);
    let mut sessions = Vec::new();
    for p in 0..SESSIONS {
        sessions.push(app.start(&format!("win{p}"), "synthetic").await);
    }
    for round in 0..ROUNDS {
        for sid in &sessions {
            let events: Vec<Value> = (0..10)
                .map(|i| text_event(sid, &format!("r{round}-{i}"), &text))
                .collect();
            app.ingest_durable(json!(events)).await;
        }
    }
    // A session handles a trim before any later read of it (one mailbox, in order), so once every
    // session was read, every trim asked for during the writes is done.
    for sid in &sessions {
        let session = app.session(sid).await;
        let messages = session["messages"].as_array().expect("messages");
        assert_eq!(
            messages.len(),
            1 + 10 * ROUNDS,
            "{sid}: every message read back"
        );
        assert!(
            messages[1..].iter().all(|m| m["content"] == text.as_str()),
            "{sid}: contents read back whole"
        );
        assert_eq!(
            seq_ids(&session),
            (1..=(1 + 10 * ROUNDS) as u64).collect::<Vec<_>>()
        );
    }
    let budget = metric(&app, "agent_store_window_budget_bytes", &[]).await;
    let used = metric(&app, "agent_store_window_used_bytes", &[]).await;
    let trims = metric(&app, "agent_store_window_trims_total", &[]).await;
    assert_eq!(budget, BUDGET as f64);
    assert!(
        used <= budget,
        "windows hold {used} bytes, over the {budget}-byte budget"
    );
    assert!(trims > 0.0, "40 MiB written without a trim");
    app.stop().await;
}

#[actix_web::test]
async fn a_burst_not_yet_stored_is_written_early_and_let_go_when_windows_pass_window_bytes() {
    let _serial = SERIAL.lock().await;
    const BUDGET: u64 = 4 << 20;
    // A debounce no test outlives: the messages below are stored before it only if the budget asks.
    let app = TestApp::spawn_with(|c| {
        c.limits.window_bytes = bytesize::ByteSize::b(BUDGET);
        c.timers.persist_debounce = std::time::Duration::from_secs(3600);
    })
    .await;
    // 8 sessions × 20 messages of 64 KiB, accepted without waiting for storage: 10 MiB, 2.5 × the budget,
    // under every per-session bound, so nothing else would write them before the debounce.
    const SESSIONS: usize = 8;
    const MESSAGES: usize = 20;
    let text = "b".repeat(64 << 10);
    let mut sessions = Vec::new();
    for p in 0..SESSIONS {
        sessions.push(app.start(&format!("burst{p}"), "synthetic").await);
    }
    for sid in &sessions {
        let events: Vec<Value> = (0..MESSAGES)
            .map(|i| text_event(sid, &format!("b{i}"), &text))
            .collect();
        app.ingest(json!(events)).await;
    }
    // The sessions asked to flush write their batches, and the next reclaim lets those go.
    let mut used = f64::MAX;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while used > BUDGET as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "windows still hold {used} bytes of unstored messages, over the {BUDGET}-byte budget"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        used = metric(&app, "agent_store_window_used_bytes", &[]).await;
    }
    // Storage has what was let go: every session reads back whole, from redb where its window gave way.
    for sid in &sessions {
        let session = app.session(sid).await;
        let messages = session["messages"].as_array().expect("messages");
        assert_eq!(
            messages.len(),
            1 + MESSAGES,
            "{sid}: every message read back"
        );
        assert!(
            messages[1..].iter().all(|m| m["content"] == text.as_str()),
            "{sid}: contents read back whole"
        );
    }
    assert!(metric(&app, "agent_store_window_trims_total", &[]).await > 0.0);
    app.stop().await;
}

#[actix_web::test]
async fn plain_ingests_wait_for_storage_once_unstored_messages_fill_window_bytes() {
    let _serial = SERIAL.lock().await;
    const BUDGET: u64 = 4 << 20;
    let app = with_window_bytes(BUDGET).await;
    // One session, 16 plain batches of 10 messages of 64 KiB: 10 MiB, 2.5 × the budget, and 160 messages,
    // far below the per-session count bound (`messages_in_memory`), which alone would take all of it.
    const BATCHES: usize = 16;
    const BATCH_BYTES: u64 = 10 * (64 << 10);
    let text = "u".repeat(64 << 10);
    let sid = app.start("unstored", "synthetic").await;
    // The start's first write (its record and first seqId reservation) is stored before storage is held:
    // a batch that found the session without seqIds would wait for the reservation, not for room, and no
    // wait for room would ever be counted.
    app.server().engine().flush().await.expect("start stored");
    let hold = app
        .server()
        .engine()
        .hold_persister()
        .await
        .expect("persister held");

    // While storage takes nothing, the batches past the budget cannot be answered: the client stalls.
    let batches: Vec<_> = (0..BATCHES)
        .map(|b| {
            let events: Vec<Value> = (0..10)
                .map(|i| text_event(&sid, &format!("u{b}-{i}"), &text))
                .collect();
            app.post("/v1/sidecar/events").json(&events)
        })
        .collect();
    let client = tokio::spawn(async move {
        for (b, request) in batches.into_iter().enumerate() {
            let (status, body): (StatusCode, Value) = send(request).await;
            assert_eq!(status, StatusCode::ACCEPTED, "batch {b}: {body}");
        }
    });
    // The server counts each batch it holds for room. From the first, the client (one batch at a time)
    // waits for an answer that only storage can give: it must not finish while storage is held.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while metric(&app, "agent_store_window_waits_total", &[]).await < 1.0 {
        assert!(
            !client.is_finished(),
            "all {BATCHES} batches were answered while storage took nothing"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no batch was held for room"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !client.is_finished(),
        "a batch held for room was answered while storage took nothing"
    );
    let used = metric(&app, "agent_store_window_used_bytes", &[]).await;
    assert!(
        used <= (BUDGET + BATCH_BYTES) as f64,
        "windows hold {used} unstored bytes, past the {BUDGET}-byte budget by more than one batch"
    );

    // Storage back: every batch is answered, and every message is there.
    drop(hold);
    client.await.expect("client");
    let session = app.session(&sid).await;
    assert_eq!(
        seq_ids(&session),
        (1..=(1 + 10 * BATCHES) as u64).collect::<Vec<_>>()
    );
    app.stop().await;
}
