//! `/v1/settings`: the original's keys, partial updates, clamped retention applied at once, persistence
//! across a restart, and type errors named by key.

mod common;

use common::{assert_error, send, status_event, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn settings_have_the_original_keys_and_defaults() {
    let app = TestApp::spawn().await;
    let (status, settings) = send(app.get("/v1/settings")).await;
    assert_eq!(status, StatusCode::OK);
    let mut keys: Vec<_> = settings.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "default_cwd",
            "permission_mode",
            "provider_settings",
            "session_retention_count",
            "session_retention_days",
            "system_prompt_template"
        ]
    );
    assert_eq!(settings["session_retention_count"], 5);
    assert_eq!(settings["session_retention_days"], 30);
    app.stop().await;
}

#[actix_web::test]
async fn a_put_changes_only_what_it_names_clamps_retention_and_persists() {
    let mut app = TestApp::spawn().await;
    let (status, after) = send(app.put("/v1/settings").json(&json!({
        "permission_mode": "plan",
        "default_cwd": "/srv/work",
        "provider_settings": {"ollama": {"num_ctx": 8192}},
        "session_retention_count": 80,
        "session_retention_days": "0",
    })))
    .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["permission_mode"], "plan");
    assert_eq!(after["default_cwd"], "/srv/work");
    assert_eq!(after["provider_settings"]["ollama"]["num_ctx"], 8192);
    assert_eq!(after["session_retention_count"], 50);
    assert_eq!(after["session_retention_days"], 1);

    let (_, after) = send(
        app.put("/v1/settings")
            .json(&json!({"permission_mode": null})),
    )
    .await;
    assert_eq!(after["permission_mode"], json!(null));
    assert_eq!(after["default_cwd"], "/srv/work", "untouched keys stay");

    app.restart().await;
    let (_, settings) = send(app.get("/v1/settings")).await;
    assert_eq!(settings, after);
    app.stop().await;
}

#[actix_web::test]
async fn a_lower_retention_count_applies_at_once() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let sid = app.start("kept", "synthetic").await;
        app.ingest_durable(json!([status_event(&sid, "done")]))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (_, history) = send(app.get("/v1/projects/kept/sessions")).await;
    assert_eq!(history.as_array().unwrap().len(), 3);
    let (status, _) = send(
        app.put("/v1/settings")
            .json(&json!({"session_retention_count": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = send(app.get("/v1/projects/kept/sessions")).await;
    let after = after.as_array().unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        after[0]["sessionId"], history[0]["sessionId"],
        "the newest is kept"
    );
    app.stop().await;
}

#[actix_web::test]
async fn bad_settings_are_named_by_key() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({"session_retention_count": "many"}),
            "session_retention_count: ",
        ),
        (
            json!({"session_retention_days": [1]}),
            "session_retention_days: ",
        ),
        (
            json!({"provider_settings": 5}),
            "provider_settings: invalid type",
        ),
        (
            json!({"permission_mode": 3}),
            "permission_mode: invalid type",
        ),
    ];
    for (body, prefix) in cases {
        let (status, answer) = send(app.put("/v1/settings").json(&body)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, prefix);
    }
    let (status, answer) = send(app.put("/v1/settings").json(&json!({"colour": "blue"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{answer}"
    );
    let (_, settings) = send(app.get("/v1/settings")).await;
    assert_eq!(settings["session_retention_count"], 5, "nothing applied");
    app.stop().await;
}
