//! Bearer-token authentication on every route but the probes, and the refusal to listen beyond loopback
//! without a token.

mod common;

use agent_store::api::{self, endpoints, ServeError};
use agent_store::providers::Providers;
use common::{method, send, test_config, TestApp};
use reqwest::StatusCode;

const TOKEN: &str = "correct horse battery staple";

fn concrete(path: &str) -> String {
    path.replace("{projectId}", "auth-p")
        .replace("{sessionId}", "auth-p-1700000000000")
}

#[actix_web::test]
async fn every_route_but_the_probes_needs_the_token() {
    let mut app = TestApp::spawn_with(|c| c.server.auth_token = Some(TOKEN.into())).await;
    let open = ["/healthz", "/readyz"];
    for e in endpoints() {
        let path = concrete(e.path);
        if open.contains(&e.path) {
            continue;
        }
        for presented in [None, Some("wrong"), Some("correct horse battery stapl")] {
            app.token = presented.map(str::to_owned);
            let (status, body) = send(app.request(method(&e.method), &path)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {path} with {presented:?}",
                e.method
            );
            assert_eq!(body["ok"], false);
            assert_eq!(body["error"], "missing or wrong bearer token");
        }
        app.token = Some(TOKEN.into());
        let response = app.request(method(&e.method), &path).send().await.unwrap();
        assert_ne!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{} {path}",
            e.method
        );
    }
    // Another scheme with the right secret is still refused.
    let response = app
        .client
        .get(app.url("/v1/projects"))
        .header("Authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    app.token = None;
    for path in open {
        let (status, body) = send(app.get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn without_a_token_nothing_is_asked() {
    let app = TestApp::spawn().await;
    let (status, _) = send(app.get("/v1/projects")).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[actix_web::test]
async fn a_non_loopback_bind_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.server.bind = "0.0.0.0:0".into();
    let error = match api::run(config, Providers::new()).await {
        Err(e) => e,
        Ok(_) => panic!("the server started on 0.0.0.0 without a token"),
    };
    assert!(matches!(error, ServeError::Exposed { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("0.0.0.0:0") && text.contains("auth_token"),
        "{text}"
    );
}
