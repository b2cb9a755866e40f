//! Process hygiene of the command-line runners: every agent in its own process group, SIGTERM then SIGKILL
//! on stop, and no process of the group left after a stop, after a run ends or after shutdown. The fakes
//! write their pids (and a child's) to a file; the tests look them up in /proc.

mod providers_support;

use agent_store::messages::wire::AgentStatus;
use providers_support::*;

#[actix_rt::test]
async fn stop_terminates_the_agent_and_its_children() {
    let h = start(|_, _| {}).await;
    let pids_file = h.path_str("pids");
    h.start_session(
        "p1",
        "claude",
        "go",
        &[("FAKE_MODE", "hang,child"), ("FAKE_PIDS", &pids_file)],
    )
    .await
    .unwrap();
    let pids = wait_pids(&h.path("pids"), 2).await;
    assert!(pids.iter().all(|&p| running(p)));

    h.engine.stop_agent("p1").await.unwrap();
    assert_gone(&pids);
    // The engine records the stop; the runner adds no error for the killed process.
    tokio::time::sleep(h.config.timers.stop_grace).await;
    let s = h.session("p1").await;
    assert_eq!(s.status, AgentStatus::Done);
    assert_eq!(s.error, None);
}

#[actix_rt::test]
async fn an_agent_that_ignores_sigterm_is_killed_after_the_grace() {
    let h = start(|_, _| {}).await;
    let pids_file = h.path_str("pids");
    // The child inherits the ignored SIGTERM: the whole group needs SIGKILL.
    h.start_session(
        "p1",
        "claude",
        "go",
        &[
            ("FAKE_MODE", "hang,ignore-term,child"),
            ("FAKE_PIDS", &pids_file),
        ],
    )
    .await
    .unwrap();
    let pids = wait_pids(&h.path("pids"), 2).await;
    // Still there a while after SIGTERM would have ended a well-behaved agent.
    let stopping = h.engine.stop_agent("p1");
    let check = async {
        tokio::time::sleep(h.config.timers.stop_grace / 2).await;
        pids.iter().all(|&p| running(p))
    };
    let (stopped, alive_during_grace) = tokio::join!(stopping, check);
    stopped.unwrap();
    assert!(
        alive_during_grace,
        "SIGTERM is ignored until the grace ends"
    );
    assert_gone(&pids);
}

#[actix_rt::test]
async fn a_finished_run_leaves_no_process_behind() {
    let h = start(|_, _| {}).await;
    let pids_file = h.path_str("pids");
    h.start_session(
        "p1",
        "claude",
        "go",
        &[("FAKE_MODE", "child"), ("FAKE_PIDS", &pids_file)],
    )
    .await
    .unwrap();
    assert_done(&h.finished("p1").await);
    let pids = pids(&h.path("pids"));
    assert_eq!(pids.len(), 2);
    assert_gone(&pids);
}

#[actix_rt::test]
async fn an_agent_that_stays_after_its_last_answer_is_ended_and_the_run_is_done() {
    let h = start(|_, _| {}).await;
    let pids_file = h.path_str("pids");
    h.start_session(
        "p1",
        "claude",
        "go",
        &[("FAKE_MODE", "stay"), ("FAKE_PIDS", &pids_file)],
    )
    .await
    .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    assert_gone(&pids(&h.path("pids")));
}

#[actix_rt::test]
async fn shutdown_stops_every_running_agent() {
    let h = start(|_, _| {}).await;
    let pids_file = h.path_str("pids");
    for (project, provider) in [("p1", "claude"), ("p2", "codex"), ("p3", "claude")] {
        h.start_session(
            project,
            provider,
            "go",
            &[("FAKE_MODE", "hang"), ("FAKE_PIDS", &pids_file)],
        )
        .await
        .unwrap();
    }
    let pids = wait_pids(&h.path("pids"), 3).await;
    h.engine.shutdown().await;
    assert_gone(&pids);
}

#[actix_rt::test]
async fn purging_a_running_session_stops_its_agent() {
    let h = start(|_, _| {}).await;
    let pids_file = h.path_str("pids");
    let session_id = h
        .start_session(
            "p1",
            "claude",
            "go",
            &[("FAKE_MODE", "hang,child"), ("FAKE_PIDS", &pids_file)],
        )
        .await
        .unwrap();
    let pids = wait_pids(&h.path("pids"), 2).await;
    h.engine.purge_session(&session_id).await.unwrap();
    // The runner is a child of the session: it and its agent go with the session.
    eventually(PATIENCE, || async {
        pids.iter().all(|&p| !running(p)).then_some(())
    })
    .await;
}
