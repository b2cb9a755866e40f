//! Defects of the actor topology (issue 12), each through a real engine with real redb storage: what a
//! concurrent or late caller sees must be what a sequential one would.

mod engine_support;

use agent_store::messages::commands::SettingsPatch;
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
