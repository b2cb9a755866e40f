//! The ops console's HTTP side: `/` leads to the page, the page's files need no token and carry a strict
//! content security policy, and `/v1/events` accepts a single-use ticket instead of the token, only there.
//! (The page itself is driven in a real browser by `tests/console_browser.rs`.)

mod common;

use common::{assert_error, client, send, TestApp};
use reqwest::StatusCode;

const SECRET: &str = "console-secret";

#[actix_web::test]
async fn the_root_leads_to_the_console_whose_files_need_no_token() {
    let app = TestApp::spawn_with(|c| c.server.auth_token = Some(SECRET.into())).await;
    let bare = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = bare.get(app.url("/")).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::FOUND);
    assert_eq!(root.headers()["location"], "/ui/");

    for (path, kind) in [
        ("/ui/", "text/html"),
        ("/ui/console.js", "text/javascript"),
        ("/ui/console.css", "text/css"),
    ] {
        let answer = bare.get(app.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let headers = answer.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    // The files hold no data: the API behind them still wants the token.
    let (status, body) = send(bare.get(app.url("/v1/projects"))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "missing or wrong");
    // Only the console's own files, and only to read them.
    let (status, body) = send(bare.get(app.url("/ui/nothing-here"))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "missing or wrong");
    let (status, body) = send(bare.post(app.url("/ui/")).json(&serde_json::json!({}))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "missing or wrong");
    let (status, body) = send(app.post("/ui/").json(&serde_json::json!({}))).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method POST");
    let (status, body) = send(app.get("/ui/nothing-here")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "no route");
    app.stop().await;
}

#[actix_web::test]
async fn a_ticket_opens_one_event_stream_and_nothing_else() {
    let app = TestApp::spawn_with(|c| c.server.auth_token = Some(SECRET.into())).await;
    let anonymous = client();

    let (status, body) = send(anonymous.post(app.url("/v1/events/ticket"))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "missing or wrong");
    let (status, body) = send(anonymous.get(app.url("/v1/events?ticket=0123"))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "missing or wrong");

    let ticket = |body: &serde_json::Value| body["ticket"].as_str().unwrap().to_owned();
    let (status, body) = send(app.post("/v1/events/ticket")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expiresInMs"], 60_000);
    let first = ticket(&body);
    assert_eq!(first.len(), 64);

    // Not a token: another route refuses it.
    let (status, _) = send(anonymous.get(app.url(&format!("/v1/projects?ticket={first}")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let stream = anonymous
        .get(app.url(&format!("/v1/events?ticket={first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    drop(stream);

    // Single use.
    let (status, _) = send(anonymous.get(app.url(&format!("/v1/events?ticket={first}")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Offered to another route, a ticket is refused there and stays good for the stream.
    let (_, body) = send(app.post("/v1/events/ticket")).await;
    let second = ticket(&body);
    let (status, _) = send(anonymous.get(app.url(&format!("/v1/projects?ticket={second}")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stream = anonymous
        .get(app.url(&format!("/v1/events?ticket={second}")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    drop(stream);
    app.stop().await;
}
