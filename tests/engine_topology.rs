//! Defects of the actor topology (issue 12), each through a real engine with real redb storage: what a
//! concurrent or late caller sees must be what a sequential one would.

mod engine_support;

use agent_store::messages::commands::{Page, SettingsPatch};
use agent_store::messages::wire::AgentStatus;
use agent_store::testkit::recording::Call;
use engine_support::*;

#[actix_rt::test]
async fn concurrent_settings_updates_both_stay_in_memory_and_in_storage() {
    let t = start(|_| {}).await;
    let mode = SettingsPatch {
        permission_mode: Some(Some("plan".into())),
        ..SettingsPatch::default()
    };
    let cwd = SettingsPatch {
        default_cwd: Some(Some("/srv/work".into())),
        ..SettingsPatch::default()
    };
    let (a, b) = tokio::join!(
        t.engine.update_settings(mode),
        t.engine.update_settings(cwd)
    );
    a.unwrap();
    b.unwrap();
    let now = t.engine.settings().await.unwrap();
    assert_eq!(now.permission_mode.as_deref(), Some("plan"));
    assert_eq!(now.default_cwd.as_deref(), Some("/srv/work"));
    let t = t.restart().await;
    let stored = t.engine.settings().await.unwrap();
    assert_eq!(stored, now, "storage holds what memory holds");
}

#[actix_rt::test]
async fn a_stop_during_a_start_stops_the_agent_once_it_has_started() {
    let t = start(|_| {}).await;
    t.provider
        .delay_start(Some(std::time::Duration::from_millis(300)));
    let starting = t
        .engine
        .start_agent("racy", request("claude", "go", Default::default()));
    let stopping = async {
        // Sent once the provider has been asked to start, while its start is still in flight.
        eventually(PATIENCE, || async {
            (!t.provider.calls().is_empty()).then_some(())
        })
        .await;
        let stopped = t.engine.stop_agent("racy").await;
        // What the provider had been asked when the stop was answered (the order in which `join!` polls
        // the two answers says nothing, so it is read here).
        (stopped, t.provider.calls().len())
    };
    let (started, (stopped, calls_when_stopped)) = tokio::join!(starting, stopping);
    let sid = started.expect("the start succeeds").session_id;
    stopped.expect("the stop succeeds");
    assert_eq!(
        calls_when_stopped, 2,
        "the stop is answered after the agent it stops has started and been stopped"
    );
    let calls = t.provider.calls();
    assert!(
        matches!(calls.as_slice(), [Call::Start(_), Call::Stop { session_id }] if *session_id == sid),
        "{calls:?}"
    );
    let session = t
        .engine
        .get_session("racy", Default::default())
        .await
        .unwrap();
    assert_eq!(session.status, AgentStatus::Done);
}

/// Session actors alive now, from the engine's metrics.
fn sessions_alive(t: &TestEngine) -> f64 {
    sample(
        &t.engine.metrics_text(),
        "agent_store_actors_alive",
        &[("actor", "session")],
    )
}

#[actix_rt::test]
async fn events_after_the_cleanup_grace_bring_the_session_back_and_apply() {
    let t = start(|c| c.timers.cleanup_grace = std::time::Duration::from_millis(50)).await;
    let sid = t.start_session("late", "go").await;
    t.send(vec![messages(&sid, text(2)), status(&sid, "done", None)])
        .await;
    // The grace passes, the project lets the session go, and its actor stops once stored.
    eventually(PATIENCE, || async {
        (sessions_alive(&t) == 0.0).then_some(())
    })
    .await;

    let late = vec![
        messages(
            &sid,
            vec![raw(
                "late-1",
                "text",
                serde_json::json!({"text": "late words"}),
            )],
        ),
        cost(&sid, 0.75, 300, 40),
        status(&sid, "error", Some("late failure")),
    ];
    let outcome = t.engine.ingest(late, true).await.unwrap();
    assert_eq!((outcome.accepted, outcome.ignored), (3, 0));
    let s = t.engine.session(&sid, Default::default()).await.unwrap();
    assert_eq!(s.last_seq_id, 4);
    assert_eq!(s.messages.last().unwrap().content, "late words");
    assert_eq!(
        (s.cost_usd, s.input_tokens, s.output_tokens),
        (0.75, 300, 40)
    );
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(s.error.as_deref(), Some("late failure"));
    // Stored, it lets go again; a restart reads back what the late events said.
    eventually(PATIENCE, || async {
        (sessions_alive(&t) == 0.0).then_some(())
    })
    .await;
    let t = t.restart().await;
    let stored = t.engine.session(&sid, Default::default()).await.unwrap();
    assert_eq!(stored.last_seq_id, 4);
    assert_eq!(stored.cost_usd, 0.75);
    // Ids of sessions that never existed are still ignored, and bring nothing up.
    let ghost = t
        .engine
        .ingest(vec![messages("ghost-1700000000000", text(1))], false)
        .await
        .unwrap();
    assert_eq!((ghost.accepted, ghost.ignored), (0, 1));
    assert_eq!(sessions_alive(&t), 0.0);
}

#[actix_rt::test]
async fn a_retried_ingest_batch_adds_no_duplicates() {
    let t = start(|_| {}).await;
    let sid = t.start_session("retry", "go").await;
    let batch = vec![messages(&sid, text(5)), cost(&sid, 0.5, 10, 20)];
    t.engine.ingest(batch.clone(), true).await.unwrap();
    // The client did not see the answer (a timeout, a 503) and sends the same batch again.
    let again = t.engine.ingest(batch.clone(), true).await.unwrap();
    assert_eq!(
        again.accepted, 2,
        "routed as before; the repeated messages are dropped"
    );
    let s = t
        .engine
        .get_session("retry", Page::default())
        .await
        .unwrap();
    assert_eq!(
        s.messages.iter().map(|m| m.seq_id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6],
        "the prompt and five messages, once"
    );
    assert_eq!(s.cost_usd, 0.5);
    // A batch with one new message among repeats applies only the new one; repeats within one batch
    // count once too.
    let mut mixed = text(1);
    let MessagesOf(old) = MessagesOf::of(&batch[0]);
    mixed.extend(old.into_iter().take(2));
    mixed.push(mixed[0].clone());
    t.engine
        .ingest(vec![messages(&sid, mixed)], true)
        .await
        .unwrap();
    let s = t
        .engine
        .get_session("retry", Page::default())
        .await
        .unwrap();
    assert_eq!(s.messages.len(), 7);
    assert_eq!(
        sample(
            &t.engine.metrics_text(),
            "agent_store_duplicate_messages_total",
            &[]
        ),
        8.0
    );
    // After a restart the stored messages are what they were: nothing was written twice.
    let t = t.restart().await;
    let stored = t.engine.session(&sid, Page::default()).await.unwrap();
    assert_eq!(stored.messages.len(), 7);
}

/// The raw messages of an `agent.message` event.
struct MessagesOf(Vec<agent_store::messages::wire::RawMessage>);

impl MessagesOf {
    fn of(event: &agent_store::messages::wire::SidecarEvent) -> MessagesOf {
        match event {
            agent_store::messages::wire::SidecarEvent::Message(p) => MessagesOf(p.messages.clone()),
            _ => panic!("not a message event"),
        }
    }
}

/// A start whose agent runs outside this process (a sidecar, here `synthetic`) answers without waiting for
/// its record's commit, so many starts are not one commit wait each; the record joins the next group
/// commit. An agent of this process still starts only once its record is stored (a crash then finds it as
/// "Interrupted").
#[actix_rt::test]
async fn a_start_of_an_outside_agent_does_not_wait_for_its_record_to_commit() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = test_config(&dir);
    let recording = agent_store::testkit::recording::Recording::new();
    let mut providers = agent_store::providers::Providers::new();
    providers.insert("claude", std::sync::Arc::new(recording.clone()));
    providers.insert(
        "synthetic",
        std::sync::Arc::new(agent_store::providers::synthetic::Synthetic),
    );
    let engine = agent_store::Engine::start(config, providers).await.unwrap();
    let hold = engine.hold_persister().await.unwrap();

    // Storage takes nothing while held: a start that waited for its commit would never answer.
    let outside = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        engine.start_agent("outside", request("synthetic", "go", Default::default())),
    )
    .await
    .expect("the start answered while storage was held")
    .unwrap()
    .session_id;
    let child = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .start_agent("child", request("claude", "go", Default::default()))
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !child.is_finished() && recording.calls().is_empty(),
        "an agent of this process does not start before its record is stored"
    );

    drop(hold);
    child.await.unwrap().unwrap();
    engine.flush().await.unwrap();
    let history = engine.project_sessions("outside").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].session_id, outside);
    engine.shutdown().await;
}

/// A start costs the persister one job: what it was started with (for a resume) and its first seqId
/// reservation ride with the session's first record write until one commits. They used to be jobs of their
/// own, and the start's was given up when the persister's queue was full (4,096 jobs; three a start), so
/// a session started in a burst against a slow disk could never be resumed.
#[actix_rt::test]
async fn a_start_made_while_the_persisters_queue_is_full_keeps_what_it_was_started_with() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = test_config(&dir);
    let path = config.database_path();
    let mut providers = agent_store::providers::Providers::new();
    providers.insert(
        "synthetic",
        std::sync::Arc::new(agent_store::providers::synthetic::Synthetic),
    );
    let engine = agent_store::Engine::start(config, providers).await.unwrap();
    let hold = engine.hold_persister().await.unwrap();

    // More starts than the held queue takes at three jobs a start (synthetic starts answer while it is held).
    let mut ids = Vec::new();
    for chunk in 0..30 {
        let starts = (0..50).map(|i| {
            let engine = engine.clone();
            async move {
                engine
                    .start_agent(
                        &format!("burst-{chunk}-{i}"),
                        request("synthetic", "go", Default::default()),
                    )
                    .await
                    .unwrap()
                    .session_id
            }
        });
        ids.extend(futures_util::future::join_all(starts).await);
    }
    drop(hold);
    engine.flush().await.unwrap();
    engine.shutdown().await;

    let store = agent_store::storage::Store::open(&path).unwrap();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| store.session_start(id).unwrap().is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} sessions have no stored start, e.g. {:?}",
        missing.len(),
        ids.len(),
        missing.first()
    );
    assert!(ids.iter().all(|id| store.session(id).unwrap().is_some()));
}

/// A start reaches its project in one message to the project's router, which holds the directory of its
/// arbiter's projects and hands the start on, on the same thread; the project answers the caller itself.
/// Before, every start and every look-up went to the supervisor on the control arbiter first: at 100,000
/// starts, a thread hop each more and the busiest switcher of the start. The supervisor handles nothing of
/// it now, nor of a command's look-up (the stop below).
#[actix_rt::test]
async fn a_start_goes_to_its_projects_router_once_and_never_to_the_supervisor() {
    let t = start(|_| {}).await;
    for i in 0..3 {
        t.start_session(&format!("hop-{i}"), "go").await;
    }
    // A second start of a project with an actor (its first session stopped): the same one message.
    t.engine.stop_agent("hop-0").await.unwrap();
    // The stop's status reaches the project on its own; the session reports it before it answers reads.
    eventually(PATIENCE, || async {
        let s = t.engine.get_session("hop-0", Page::default()).await.ok()?;
        (s.status != AgentStatus::Running).then_some(())
    })
    .await;
    t.start_session("hop-0", "again").await;

    let text = t.engine.metrics_text();
    let by_supervisor = sum(
        &text,
        "agent_store_messages_handled_total",
        &[("actor", "supervisor")],
    );
    assert_eq!(
        by_supervisor, 0.0,
        "the supervisor handled messages: {text}"
    );
    assert_eq!(handled(&text, "router", "StartIn"), 4.0, "{text}");
    assert!(
        handled(&text, "router", "FindProject") >= 1.0,
        "the stop's look-up"
    );
    assert_eq!(
        handled(&text, "router", "Project"),
        0.0,
        "no lookup before a start"
    );
    assert_eq!(handled(&text, "project", "StartSession"), 4.0);
    let history = t.engine.project_sessions("hop-0").await.unwrap();
    assert_eq!(history.len(), 2, "both starts of hop-0 made a session");
}

#[actix_rt::test]
async fn a_health_poll_asks_each_live_project_for_its_health_alone() {
    let t = start(|_| {}).await;
    for i in 0..3 {
        t.start_session(&format!("polled-{i}"), "go").await;
    }
    let health = t.engine.health().await.unwrap();
    let mut polled: Vec<&str> = health.iter().map(|h| h.project_id.as_str()).collect();
    polled.sort();
    assert_eq!(polled, ["polled-0", "polled-1", "polled-2"]);

    let text = t.engine.metrics_text();
    assert_eq!(handled(&text, "project", "ReportHealth"), 3.0, "{text}");
    assert_eq!(
        handled(&text, "project", "Summarize"),
        0.0,
        "no project summary is built for a health poll"
    );
}

#[actix_rt::test]
async fn a_project_list_gathers_each_live_projects_summary_on_one_channel() {
    let t = start(|_| {}).await;
    for i in 0..3 {
        t.start_session(&format!("listed-{i}"), "go").await;
    }
    let listed = t.engine.projects().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|p| p.project_id.as_str()).collect();
    assert_eq!(ids, ["listed-0", "listed-1", "listed-2"]);
    assert!(listed.iter().all(|p| p.session_id.is_some()), "{listed:?}");

    let text = t.engine.metrics_text();
    assert_eq!(
        handled(&text, "project", "ReportSummary"),
        3.0,
        "each live project reports once: {text}"
    );
}
