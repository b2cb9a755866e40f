//! The load generator against a real server on a loopback port (the app started by `tests/common`, real
//! redb in a temp dir), with a bearer token: a run passes the loss check with live-stream and persist
//! samples; a session deleted before the check fails it; a wrong token stops the run at the first call.

mod common;

use agent_store::loadtest::{self, CheckContext, LoadtestError, Options, Sizes, TargetSpec};
use common::TestApp;
use reqwest::{StatusCode, Url};

const TOKEN: &str = "loadtest-secret";

async fn app() -> TestApp {
    TestApp::spawn_with(|c| c.server.auth_token = Some(TOKEN.into())).await
}

fn spec(app: &TestApp, token: &str) -> TargetSpec {
    TargetSpec::Http {
        url: Url::parse(&app.url("/")).unwrap(),
        others: Vec::new(),
        token: Some(token.into()),
        // The server runs in this test process.
        server_pid: Some(std::process::id()),
    }
}

fn small() -> Options {
    Options {
        projects: 12,
        messages: 30,
        batch: 40,
        per_event: 5,
        concurrency: 4,
        quiet: true,
        ..Options::default()
    }
}

#[actix_web::test]
async fn run_over_http_stores_everything_once() {
    let app = app().await;
    let report = loadtest::run(spec(&app, TOKEN), small())
        .await
        .expect("the run passes");
    assert_eq!(report.settings.mode, "http");
    assert_eq!((report.acked, report.stored, report.errors), (360, 360, 0));
    assert!(report.loss_check.passed, "{:?}", report.loss_check);
    assert!(
        report.bytes_sent > 360 * 100,
        "bodies carry realistic contents"
    );
    assert!(
        report.e2e_ms.samples > 0,
        "no message matched on GET /v1/events"
    );
    assert!(
        report.persist_lag_ms.samples > 0,
        "no persist sample resolved"
    );
    assert!(report.rss_peak_bytes.is_some_and(|b| b > 0));
    assert!(report.restart.is_none());
    // Each phase's CPU, the server's by thread and the generator's beside it.
    let phases: Vec<_> = report.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(phases, ["setup", "stream", "finish"]);
    for p in &report.phases {
        let generator = p.generator.as_ref().expect("the generator's own use");
        assert!(p.wall_s > 0.0 && generator.cpu_s >= 0.0, "{p:?}");
        assert!(!p.server.threads.is_empty(), "{p:?}");
    }

    // The sessions really are finished, with their cost, in the server's storage.
    let sessions = app.get("/v1/projects").send().await.unwrap();
    assert_eq!(sessions.status(), StatusCode::OK);
    let projects: serde_json::Value = sessions.json().await.unwrap();
    let done = projects
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "done")
        .count();
    assert_eq!(done, 12);
    app.stop().await;
}

#[actix_web::test]
async fn deleted_session_fails_the_loss_check() {
    let app = app().await;
    let (client, base) = (app.client.clone(), app.url(""));
    let opts = Options {
        sizes: Sizes::Small,
        before_check: Some(Box::new(move |ctx: CheckContext| {
            Box::pin(async move {
                let resp = client
                    .delete(format!("{base}/v1/sessions/{}", ctx.session_ids[0]))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .expect("delete");
                assert_eq!(resp.status(), StatusCode::NO_CONTENT);
            })
        })),
        ..small()
    };
    let err = loadtest::run(spec(&app, TOKEN), opts)
        .await
        .expect_err("a deleted session is a loss");
    let LoadtestError::Loss(report) = err else {
        panic!("expected a loss, got {err}");
    };
    assert_eq!(report.loss_check.missing, 30, "{:?}", report.loss_check);
    assert_eq!(report.loss_check.unreadable, 1);
    app.stop().await;
}

#[actix_web::test]
async fn wrong_token_stops_at_the_first_call() {
    let app = app().await;
    let err = loadtest::run(spec(&app, "not-the-token"), small())
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 401") && text.contains("/sessions"),
        "{text}"
    );
    app.stop().await;
}
