//! Storage that fails loudly, over HTTP against the real server on real redb files: a database file that
//! vanishes while serving makes durable ingest and `/readyz` answer 503 (and recovers when the same file
//! is back), a restart never starts an empty database where one was, and a damaged row answers 503 naming
//! its session, is counted in `/metrics` and is listed by `agent-store verify`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{send, status_event, text_event, TestApp, PATIENCE};
use reqwest::StatusCode;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agent-store");

async fn spawn_in(data_dir: &Path) -> TestApp {
    let dir = data_dir.to_owned();
    TestApp::spawn_with(move |c| {
        c.storage.data_dir = dir;
        c.timers.persist_retry = Duration::from_millis(20);
        c.timers.persist_retry_max = Duration::from_millis(100);
    })
    .await
}

async fn readyz(app: &TestApp) -> (StatusCode, Value) {
    send(app.get("/readyz")).await
}

/// Polls until the stored record of `project`'s newest session counts `count` messages.
async fn stored_count_reaches(app: &TestApp, project: &str, count: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, stored) = send(app.get(&format!("/v1/projects/{project}/sessions"))).await;
        if stored[0]["messageCount"] == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not stored: {stored}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the binary, killing it if it does not end within PATIENCE.
fn run_bin(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "agent-store {args:?} did not end: {:?}",
                child.wait_with_output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[actix_web::test]
async fn a_database_file_gone_while_serving_answers_503_until_the_same_file_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_in(dir.path()).await;
    let db = app.config.database_path();
    let sid = app.start("gone", "synthetic").await;
    app.ingest_durable(text_event(&sid, "m1", "before")).await;
    assert_eq!(readyz(&app).await.0, StatusCode::OK);

    let aside = dir.path().join("aside.redb");
    std::fs::rename(&db, &aside).unwrap();
    let (status, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let why = body["error"].as_str().unwrap();
    assert!(
        why.contains("storage cannot commit") && why.contains("was deleted"),
        "{body}"
    );
    let (status, body) = send(
        app.post("/v1/sidecar/events?durable=true")
            .json(&text_event(&sid, "m2", "durable")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("was deleted"),
        "{body}"
    );
    // Plain ingest is still accepted and kept in memory, and no new database appears.
    app.ingest(text_event(&sid, "m3", "plain")).await;
    assert!(!db.exists(), "a new empty database was created");

    std::fs::rename(&aside, &db).unwrap();
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    // The prompt and the three messages, the refused durable one included: nothing accepted is lost.
    stored_count_reaches(&app, "gone", 4).await;
    app.ingest_durable(text_event(&sid, "m4", "after")).await;
    let s = app.session(&sid).await;
    assert_eq!(common::seq_ids(&s), [1, 2, 3, 4, 5]);
    app.stop().await;
}

#[actix_web::test]
async fn a_deleted_database_file_stops_durable_ingest_and_the_restart_refuses_to_start_empty() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_in(dir.path()).await;
    let db = app.config.database_path();
    let sid = app.start("deleted", "synthetic").await;
    app.ingest_durable(text_event(&sid, "m1", "kept")).await;

    std::fs::remove_file(&db).unwrap();
    let (status, body) = send(
        app.post("/v1/sidecar/events?durable=true")
            .json(&text_event(&sid, "m2", "lost?")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(readyz(&app).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!db.exists());
    app.stop().await;

    let data_dir = dir.path().to_str().unwrap();
    let out = run_bin(&[
        "serve",
        "--config",
        "config/default.toml",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        data_dir,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("is missing") && stderr.contains("agent-store.redb.created"),
        "{stderr}"
    );
    assert!(!db.exists(), "a new empty database was created");
}

#[actix_web::test]
async fn a_damaged_row_answers_503_naming_its_session_is_counted_and_verify_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_in(dir.path()).await;
    let db = app.config.database_path();
    let sid = app.start("damaged", "synthetic").await;
    let other = app.start("sound", "synthetic").await;
    app.ingest_durable(Value::Array(vec![
        text_event(&sid, "m1", "NEEDLE stored once"),
        status_event(&sid, "done"),
        status_event(&other, "done"),
    ]))
    .await;
    app.stop().await;

    // Every copy of the text (redb may keep stale pages): the live row is certainly among them.
    let mut bytes = std::fs::read(&db).unwrap();
    let mut flipped = 0;
    for i in 0..bytes.len().saturating_sub(6) {
        if &bytes[i..i + 6] == b"NEEDLE" {
            bytes[i] ^= 0x01; // 'N' becomes 'O': still valid UTF-8, so only the checksum can tell.
            flipped += 1;
        }
    }
    assert!(flipped > 0, "the row was not found in the file");
    std::fs::write(&db, bytes).unwrap();

    let app = spawn_in(dir.path()).await;
    let (status, body) = send(app.get(&format!("/v1/sessions/{sid}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("session {sid}")) && error.contains("checksum mismatch"),
        "{body}"
    );
    // The other session is served, and the disk is not what is wrong: still ready.
    assert_eq!(
        send(app.get(&format!("/v1/sessions/{other}"))).await.0,
        StatusCode::OK
    );
    assert_eq!(readyz(&app).await.0, StatusCode::OK);
    let (_, metrics) = {
        let response = app.get("/metrics").send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    };
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("agent_store_storage_corrupt_rows_total "))
        .unwrap_or_else(|| panic!("no corrupt rows counter:\n{metrics}"));
    assert!(count.trim().parse::<f64>().unwrap() >= 1.0, "{count}");
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(gauge("agent_store_storage_writable"), 1.0);
    assert_eq!(
        gauge("agent_store_redb_cache_size_bytes"),
        app.config.storage.cache_size.as_u64() as f64
    );
    assert!(
        gauge("agent_store_redb_cache_used_bytes") > 0.0,
        "the reads went through the cache"
    );
    app.stop().await;

    let out = run_bin(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "verify passed a damaged file: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "damaged: session {sid}: message batch at seq 2: checksum mismatch"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(&format!("session {other}")), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 damaged"),
        "{out:?}"
    );
}

#[test]
fn verify_passes_a_sound_file() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().to_owned();
    std::fs::copy(
        "tests/fixtures/storage/schema1.redb",
        data.join("agent-store.redb"),
    )
    .unwrap();
    let out = run_bin(&["verify", "--data-dir", data.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("schema 1, 2 sessions") && stdout.contains(", 0 damaged"),
        "{stdout}"
    );
}
