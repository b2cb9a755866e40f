//! Virtual-actor lifecycle (issue 12) and reads across a restart (issue 13, item 1), through a real engine
//! on a real redb file: a project actor lives while it has work or a timer, then stops and returns its
//! memory; a later read or command brings it back from storage.

mod engine_support;

use std::time::Duration;

use agent_store::error::CommandError;
use agent_store::messages::commands::Page;
use agent_store::messages::wire::AgentStatus;
use agent_store::testkit::recording::Call;
use engine_support::*;

fn alive(t: &TestEngine, actor: &str) -> f64 {
    sample(
        &t.engine.metrics_text(),
        "agent_store_actors_alive",
        &[("actor", actor)],
    )
}

async fn none_alive(t: &TestEngine) {
    eventually(PATIENCE, || async {
        (alive(t, "project") == 0.0 && alive(t, "session") == 0.0).then_some(())
    })
    .await;
}

/// Starts `n` projects, each with one finished session of 3 agent messages; answers their session ids.
async fn finished_projects(t: &TestEngine, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let sid = t.start_session(&format!("p{i}"), "go").await;
        t.send(vec![messages(&sid, text(3)), status(&sid, "done", None)])
            .await;
        ids.push(sid);
    }
    ids
}

#[actix_rt::test]
async fn project_actors_stop_after_the_grace_and_reads_after_a_restart_answer_as_before() {
    let t = start(|c| c.timers.cleanup_grace = Duration::from_millis(50)).await;
    let ids = finished_projects(&t, 20).await;
    none_alive(&t).await;
    // Let go in this process: as before, no current session (and no actor for the read).
    assert!(!t.engine.has_session("p0").await.unwrap());
    assert_eq!(
        t.engine
            .get_session("p0", Page::default())
            .await
            .unwrap_err(),
        CommandError::NoSession
    );
    assert_eq!(alive(&t, "project"), 0.0, "a read of a let-go project");

    let t = t.restart().await;
    // The list comes from storage's index, with each project's last session, and starts no actor.
    let listed = t.engine.projects().await.unwrap();
    assert_eq!(listed.len(), 20);
    for (i, p) in listed.iter().enumerate() {
        let want = ids
            .iter()
            .find(|s| s.starts_with(&format!("{}-", p.project_id)));
        assert_eq!(p.session_id.as_ref(), want, "project {i}");
        assert_eq!(p.status, Some(AgentStatus::Done));
    }
    assert_eq!(alive(&t, "project"), 0.0, "listing fans out to no actor");
    // A read brings the project back with its last session, as loadLastSession would.
    let s = t.engine.get_session("p3", Page::default()).await.unwrap();
    assert_eq!(
        (s.session_id.as_str(), s.status, s.messages.len()),
        (ids[3].as_str(), AgentStatus::Done, 4)
    );
    assert!(t.engine.has_session("p4").await.unwrap());
    // With nothing to do, the revived projects stop again, and read the same the next time.
    none_alive(&t).await;
    let again = t.engine.get_session("p3", Page::default()).await.unwrap();
    assert_eq!(again.messages, s.messages);
    none_alive(&t).await;
    assert!(
        t.engine.health().await.unwrap().is_empty(),
        "health asks only live projects"
    );
}

#[actix_rt::test]
async fn a_revived_project_takes_commands_and_keeps_its_seq_ids() {
    let t = start(|_| {}).await;
    let ids = finished_projects(&t, 1).await;
    let t = t.restart().await;
    t.engine.send_prompt("p0", "more".into()).await.unwrap();
    let s = t.engine.get_session("p0", Page::default()).await.unwrap();
    assert_eq!(s.session_id, ids[0]);
    assert_eq!(s.status, AgentStatus::Running);
    assert_eq!(
        s.messages.iter().map(|m| m.seq_id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // Running: the project keeps its actor.
    assert_eq!(alive(&t, "project"), 1.0);
    t.engine.stop_agent("p0").await.unwrap();
    // The stop's status reaches the project on its own: clear once the project knows it finished.
    eventually(PATIENCE, || async {
        t.engine.clear_session("p0").await.ok()
    })
    .await;
    none_alive(&t).await;
    assert!(
        !t.engine.has_session("p0").await.unwrap(),
        "cleared stays cleared while the process runs"
    );
    assert!(t.engine.load_last_session("p0").await.unwrap());
    assert!(t.engine.has_session("p0").await.unwrap());
}

#[actix_rt::test]
async fn reads_racing_a_project_going_idle_all_see_its_session() {
    let t = start(|_| {}).await;
    let ids = finished_projects(&t, 1).await;
    let t = t.restart().await;
    // Many rounds of concurrent reads, each revival stopping again under the next round's lookups.
    for _ in 0..20 {
        let reads = (0..16).map(|_| t.engine.get_session("p0", Page::default()));
        for read in futures_util::future::join_all(reads).await {
            let s = read.expect("every read finds the session");
            assert_eq!(
                (s.session_id.as_str(), s.messages.len()),
                (ids[0].as_str(), 4)
            );
        }
    }
    none_alive(&t).await;
}

#[actix_rt::test]
async fn a_purge_stops_the_project_actor() {
    let t = start(|_| {}).await;
    finished_projects(&t, 1).await;
    assert_eq!(alive(&t, "project"), 1.0, "within its cleanup grace");
    t.engine.purge_project("p0").await.unwrap();
    none_alive(&t).await;
    assert!(!t.engine.has_session("p0").await.unwrap());
    assert!(t.engine.projects().await.unwrap().is_empty());
}

/// Waits until no session actor is alive while every project keeps its actor (within its grace).
async fn sessions_let_go(t: &TestEngine, projects: f64) {
    eventually(PATIENCE, || async {
        (alive(t, "session") == 0.0 && alive(t, "project") == projects).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn a_finished_session_lets_its_actor_go_at_once_and_comes_back_for_events_reads_and_prompts()
{
    // A grace far longer than the test: the project holds its finished session throughout.
    let t = start(|c| c.timers.cleanup_grace = Duration::from_secs(3600)).await;
    let sid = t.start_session("v", "go").await;
    t.send(vec![messages(&sid, text(3)), status(&sid, "done", None)])
        .await;
    // Finished and stored: the session's actor stops without waiting for the grace; the project stays.
    sessions_let_go(&t, 1.0).await;
    // The project still names it as its current session, read from storage.
    assert!(t.engine.has_session("v").await.unwrap());
    let s = t.engine.get_session("v", Page::default()).await.unwrap();
    assert_eq!(
        (s.session_id.as_str(), s.status, s.messages.len()),
        (sid.as_str(), AgentStatus::Done, 4)
    );
    assert_eq!(alive(&t, "session"), 0.0, "a read brings no actor back");

    // A late event is applied (read back from storage), and the actor lets go again once stored.
    let late = vec![
        messages(
            &sid,
            vec![raw("late-1", "text", serde_json::json!({"text": "late"}))],
        ),
        cost(&sid, 0.5, 100, 20),
    ];
    let outcome = t.engine.ingest(late, true).await.unwrap();
    assert_eq!((outcome.accepted, outcome.ignored), (2, 0));
    sessions_let_go(&t, 1.0).await;
    let s = t.engine.get_session("v", Page::default()).await.unwrap();
    assert_eq!(
        (s.last_seq_id, s.messages.last().unwrap().content.as_str()),
        (5, "late")
    );
    assert_eq!((s.cost_usd, s.input_tokens), (0.5, 100));
    // The project, in its grace, hears what the late events changed (its health's context pressure comes
    // from the tokens), though no actor of the session was its own when they came.
    eventually(PATIENCE, || async {
        let health = t.engine.health().await.unwrap();
        let v = health.iter().find(|h| h.project_id == "v")?;
        v.context_pressure.filter(|p| *p > 0.0).map(|_| ())
    })
    .await;

    // A follow-up brings the actor back for the agent, with seqIds after the stored ones.
    t.engine.send_prompt("v", "more".into()).await.unwrap();
    let s = t.engine.get_session("v", Page::default()).await.unwrap();
    assert_eq!((s.status, s.last_seq_id), (AgentStatus::Running, 6));
    assert_eq!(alive(&t, "session"), 1.0, "running, it keeps its actor");
    t.send(vec![status(&sid, "done", None)]).await;
    sessions_let_go(&t, 1.0).await;
    // A stop of the finished session reaches its provider as before, without bringing the actor back.
    t.engine.stop_agent("v").await.unwrap();
    assert!(t
        .provider
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Prompt { prompt, .. } if prompt == "more")));
    assert_eq!(alive(&t, "session"), 0.0);

    // What it holds survives a restart unchanged.
    let t = t.restart().await;
    let s = t.engine.session(&sid, Page::default()).await.unwrap();
    assert_eq!((s.status, s.last_seq_id), (AgentStatus::Done, 6));
}

#[actix_rt::test]
async fn events_racing_a_session_letting_go_are_all_applied() {
    let t = start(|c| c.timers.cleanup_grace = Duration::from_secs(3600)).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(t.start_session(&format!("r{i}"), "go").await);
    }
    // Every session finishes while more events for it keep coming, each in a batch of its own, all at
    // once: many reach the router while their session is letting its actor go (and the router's queue is
    // long), which must hold them for the session rather than send them to an actor that stopped.
    let mut sends = Vec::new();
    for round in 0..6 {
        for sid in &ids {
            let events = match round {
                0 => vec![status(sid, "done", None)],
                _ => vec![messages(sid, text(1))],
            };
            sends.push(t.engine.ingest(events, false));
        }
    }
    for outcome in futures_util::future::join_all(sends).await {
        let outcome = outcome.unwrap();
        assert_eq!(
            (outcome.accepted, outcome.ignored),
            (1, 0),
            "an event was lost"
        );
    }
    sessions_let_go(&t, 100.0).await;
    for sid in &ids {
        let s = t.engine.session(sid, Page::default()).await.unwrap();
        assert_eq!(s.last_seq_id, 6, "{sid}: the prompt and five late messages");
    }
}
