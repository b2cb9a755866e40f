//! Defects of the actor topology (issue 12), each through a real engine with real redb storage: what a
//! concurrent or late caller sees must be what a sequential one would.

mod engine_support;

use agent_store::messages::commands::SettingsPatch;
use agent_store::messages::wire::AgentStatus;
use agent_store::providers::recording::Call;
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
    let order = std::cell::RefCell::new(Vec::new());
    let starting = async {
        let started = t
            .engine
            .start_agent("racy", request("claude", "go", Default::default()))
            .await;
        order.borrow_mut().push("started");
        started
    };
    let stopping = async {
        // Sent once the provider has been asked to start, while its start is still in flight.
        eventually(std::time::Duration::from_secs(5), || async {
            (!t.provider.calls().is_empty()).then_some(())
        })
        .await;
        let stopped = t.engine.stop_agent("racy").await;
        order.borrow_mut().push("stopped");
        stopped
    };
    let (started, stopped) = tokio::join!(starting, stopping);
    let sid = started.expect("the start succeeds").session_id;
    stopped.expect("the stop succeeds");
    assert_eq!(
        *order.borrow(),
        ["started", "stopped"],
        "the stop is answered after the agent it stops has started"
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
