//! Property: retention never removes a running session.
//!
//! In storage: whatever a project's sessions are (statuses, ages, how many) and whatever the limits,
//! `enforce_retention` keeps every running session, and of the rest exactly the newest `keep` that are
//! young enough.
//!
//! In the engine: whatever mix of starts, finishes, follow-up prompts, restores and retention changes runs
//! concurrently over a few projects, a session that is running stays, in memory and in storage. Each
//! project also holds finished sessions stored by a clock running ahead (updated in the future), so a
//! running session is not simply kept for being the newest.

mod engine_support;
mod storage_support;

use std::time::Duration;

use agent_store::messages::commands::{Page, SettingsPatch};
use agent_store::messages::wire::AgentStatus;
use agent_store::storage::Store;
use proptest::prelude::*;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const NOW: i64 = 1_800_000_000_000;

fn status() -> impl Strategy<Value = AgentStatus> {
    prop::sample::select(vec![
        AgentStatus::Running,
        AgentStatus::Idle,
        AgentStatus::Done,
        AgentStatus::Error,
    ])
}

/// Sessions as (status, age in days — 0 means no timestamp).
fn sessions() -> impl Strategy<Value = Vec<(AgentStatus, i64)>> {
    prop::collection::vec((status(), 0i64..12), 1..14)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn storage_retention_keeps_running_sessions(
        sessions in sessions(),
        keep in 0u32..6,
        max_days in 1i64..10,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        for (i, (status, age)) in sessions.iter().enumerate() {
            let id = format!("p-{i}");
            // Distinct timestamps, so "newest" is well defined; age 0 stands for "no timestamp".
            let updated_at = if *age == 0 { 0 } else { NOW - age * DAY_MS - i as i64 };
            store
                .apply(&[storage_support::put(&id, "p", *status, updated_at)])
                .unwrap();
        }
        let dropped = store
            .enforce_retention("p", keep, max_days * DAY_MS, NOW)
            .unwrap();

        // The model: running sessions stay and are not ranked; the rest newest first.
        let mut ranked: Vec<(i64, String)> = Vec::new();
        for (i, (status, age)) in sessions.iter().enumerate() {
            if *status != AgentStatus::Running {
                let updated_at = if *age == 0 { 0 } else { NOW - age * DAY_MS - i as i64 };
                ranked.push((updated_at, format!("p-{i}")));
            }
        }
        ranked.sort_by(|a, b| b.cmp(a));
        let mut expected: Vec<String> = ranked
            .iter()
            .enumerate()
            .filter(|(rank, (at, _))| {
                *rank as u32 >= keep || (*at > 0 && NOW - at > max_days * DAY_MS)
            })
            .map(|(_, (_, id))| id.clone())
            .collect();
        let mut dropped_sorted = dropped.clone();
        dropped_sorted.sort();
        expected.sort();
        prop_assert_eq!(dropped_sorted, expected);
        for (i, (status, _)) in sessions.iter().enumerate() {
            let id = format!("p-{i}");
            let kept = store.session(&id).unwrap().is_some();
            prop_assert_eq!(kept, !dropped.contains(&id));
            if *status == AgentStatus::Running {
                prop_assert!(kept, "{} ({:?}) was removed", id, status);
            }
        }
    }
}

/// What the engine is asked to do, each step's operations running concurrently.
#[derive(Debug, Clone)]
enum Op {
    /// Start a session on project n (refused if one runs).
    Start(usize),
    /// The agent of project n's session says done or error.
    Finish(usize, bool),
    /// A follow-up prompt to project n (sets its session running again).
    Prompt(usize),
    /// loadLastSession on project n.
    Restore(usize),
    /// Clear project n's finished session.
    Clear(usize),
    /// New retention limits: count, days.
    Retention(i64, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..2).prop_map(Op::Start),
        3 => (0usize..2, any::<bool>()).prop_map(|(p, ok)| Op::Finish(p, ok)),
        2 => (0usize..2).prop_map(Op::Prompt),
        1 => (0usize..2).prop_map(Op::Restore),
        1 => (0usize..2).prop_map(Op::Clear),
        2 => (1i64..3, 1i64..3).prop_map(|(c, d)| Op::Retention(c, d)),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..4), 2..7)
}

async fn apply(t: &engine_support::TestEngine, op: Op) {
    use engine_support::*;
    let project = |p: usize| format!("ret{p}");
    // Refusals (already running, no session, running on clear) are part of the interleaving, not failures.
    match op {
        Op::Start(p) => {
            let req = request("claude", "go", Default::default());
            let _ = t.engine.start_agent(&project(p), req).await;
        }
        Op::Finish(p, ok) => {
            if let Ok(s) = t.engine.get_session(&project(p), Page::default()).await {
                let (st, err) = if ok {
                    ("done", None)
                } else {
                    ("error", Some("boom"))
                };
                let _ = t
                    .engine
                    .ingest(vec![status(&s.session_id, st, err)], false)
                    .await;
            }
        }
        Op::Prompt(p) => {
            let _ = t.engine.send_prompt(&project(p), "more".into()).await;
        }
        Op::Restore(p) => {
            let _ = t.engine.load_last_session(&project(p)).await;
        }
        Op::Clear(p) => {
            let _ = t.engine.clear_session(&project(p)).await;
        }
        Op::Retention(count, days) => {
            let patch = SettingsPatch {
                session_retention_count: Some(count),
                session_retention_days: Some(days),
                ..SettingsPatch::default()
            };
            t.engine.update_settings(patch).await.expect("settings");
        }
    }
}

/// The session running on each project now, if any.
async fn running(t: &engine_support::TestEngine) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for p in 0..2 {
        let s = t
            .engine
            .get_session(&format!("ret{p}"), Page::default())
            .await;
        out.push(
            s.ok()
                .filter(|s| s.status == AgentStatus::Running)
                .map(|s| s.session_id),
        );
    }
    out
}

/// A session that was running before a step, on a project the step did not finish or clear, is still the
/// project's running session afterwards, served and stored.
async fn assert_running_kept(
    t: &engine_support::TestEngine,
    before: &[Option<String>],
    ops: &[Op],
    step: usize,
) {
    t.engine.flush().await.expect("flush");
    let after = running(t).await;
    for (p, was) in before.iter().enumerate() {
        let Some(sid) = was else { continue };
        let ended = ops
            .iter()
            .any(|op| matches!(op, Op::Finish(q, _) | Op::Clear(q) if *q == p));
        if ended {
            continue;
        }
        assert_eq!(
            after[p].as_ref(),
            Some(sid),
            "step {step}: {sid} still runs"
        );
        let stored = t.engine.project_sessions(&format!("ret{p}")).await.unwrap();
        assert!(
            stored.iter().any(|r| r.session_id == *sid),
            "step {step}: running {sid} is stored"
        );
        let by_id = t.engine.session(sid, Page::default()).await;
        assert!(by_id.is_ok(), "step {step}: running {sid} is served");
    }
}

/// Finished sessions from a clock `ahead` ms in the future, written before the engine opens the file.
fn seed_future_sessions(config: &agent_store::Config, ahead: &[i64]) {
    let store = Store::open(&config.database_path()).unwrap();
    let now = agent_store::messages::wire::now_ms();
    for p in 0..2 {
        for (i, ms) in ahead.iter().enumerate() {
            let id = format!("ret{p}-{}", now + ms + i as i64);
            let record = storage_support::put(&id, &format!("ret{p}"), AgentStatus::Done, now + ms);
            store.apply(&[record]).unwrap();
        }
    }
    store.close();
}

fn run_engine_case(steps: Vec<Vec<Op>>, ahead: Vec<i64>) {
    actix_rt::System::new().block_on(async move {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let mut config = engine_support::test_config(&dir);
        config.timers.persist_debounce = Duration::from_millis(5);
        seed_future_sessions(&config, &ahead);
        let provider = agent_store::testkit::recording::Recording::new();
        let t = engine_support::start_with(config, dir, provider).await;
        for (i, ops) in steps.into_iter().enumerate() {
            let before = running(&t).await;
            futures_util::future::join_all(ops.iter().cloned().map(|op| apply(&t, op))).await;
            assert_running_kept(&t, &before, &ops, i).await;
            // Session ids are `<project>-<unix ms>`: a start in the same millisecond would reuse one.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        t.engine.shutdown().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_never_evicts_a_running_session(
        steps in steps(),
        ahead in prop::collection::vec(60_000i64..DAY_MS, 1..4),
    ) {
        run_engine_case(steps, ahead);
    }
}
