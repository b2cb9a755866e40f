//! The ops console in a real headless Chromium, driven over WebDriver (chromedriver) against the real
//! server: the page loads, projects appear as sessions start, a message arrives live, older messages load
//! on scroll, the approvals panel says nothing waits, the charts and top actors fill in, and with a
//! token configured the page asks for it and then works. Each state is saved as a screenshot in
//! `target/console-screenshots/` for people to look at.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`, done by
//! `.ci/run`). Without them the tests skip with a message, except under `CI=true`, where they fail.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{text_event, TestApp, PATIENCE};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

const SECRET: &str = "browser-secret";

/// The first of `names` found on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (after saying why) when the test must skip.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = on_path(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        (c, d) => {
            let missing = [("chromium", c.is_none()), ("chromedriver", d.is_none())]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" and ");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{missing} not found on PATH, and CI=true: install chromium chromium-driver"
                );
            }
            eprintln!(
                "SKIPPED: {missing} not found on PATH (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// A chromedriver child on an ephemeral port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_driver(driver: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Ready once its status endpoint says so.
    let http = common::client();
    let ready = async {
        loop {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("chromedriver answers");
    driver
}

async fn browser(chromium: &Path, driver: &Driver, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        "--window-size=1400,1100",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium, "args": args}),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

async fn screenshot(c: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
}

/// Scrolls the message list to its top, which asks the page for the page before the oldest shown.
async fn scroll_messages_to_top(c: &Client) {
    c.execute(
        "const m = document.getElementById('messages'); m.scrollTop = 0; \
         m.dispatchEvent(new Event('scroll'));",
        vec![],
    )
    .await
    .expect("scroll");
}

#[actix_web::test]
async fn the_console_follows_projects_and_sessions_live() {
    let Some((chromium, driver_bin)) = browser_tools() else {
        return;
    };
    let app = TestApp::spawn().await;
    let driver = start_driver(&driver_bin).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&chromium, &driver, profile.path()).await;

    c.goto(&app.url("/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/ui/");
    // The approvals API answers: nothing waits yet.
    let approvals = wait_for(&c, "#approvals-state[data-state='none']").await;
    assert!(approvals.text().await.unwrap().contains("Nothing waiting"));
    wait_for(&c, "#stream-state[data-state='on']").await;
    wait_for(&c, "#projects-empty").await;
    screenshot(&c, "1-empty").await;

    // Sessions started after the page loaded appear through the live stream.
    let alpha = app.start("alpha", "synthetic").await;
    let beta = app.start("beta", "synthetic").await;
    wait_for(&c, "tr[data-project='alpha']").await;
    wait_for(&c, "tr[data-project='beta']").await;

    // A session view: the prompt, then a message posted by a sidecar arrives live.
    wait_for(&c, "tr[data-project='alpha']")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&c, ".message[data-seq='1']").await;
    app.ingest(text_event(&alpha, "m-live", "Hello from a sidecar"))
        .await;
    let live = wait_for(&c, ".message[data-seq='2']").await;
    assert!(live.text().await.unwrap().contains("Hello from a sidecar"));

    // The charts draw once two scrapes of /metrics are in; the top actors list the sessions.
    wait_for(&c, "#charts figure:nth-child(6) path.series").await;
    wait_for(&c, "#top tbody tr").await;
    screenshot(&c, "2-session-live").await;

    // Older pages on scroll: beta gets 120 messages; its view opens on the newest page.
    let batch: Vec<Value> = (0..120)
        .map(|i| text_event(&beta, &format!("b{i}"), &format!("message {i} of beta")))
        .collect();
    app.ingest(Value::Array(batch)).await;
    let last = app.session(&beta).await["lastSeqId"].as_u64().unwrap();
    wait_for(&c, "tr[data-project='beta']")
        .await
        .click()
        .await
        .unwrap();
    let mut oldest = last.saturating_sub(50) + 1;
    wait_for(&c, &format!(".message[data-seq='{oldest}']")).await;
    assert!(c
        .find(Locator::Css(".message[data-seq='1']"))
        .await
        .is_err());
    while oldest > 1 {
        scroll_messages_to_top(&c).await;
        oldest = oldest.saturating_sub(50).max(1);
        wait_for(&c, &format!(".message[data-seq='{oldest}']")).await;
    }
    let shown = c
        .find_all(Locator::Css("#messages .message"))
        .await
        .unwrap();
    assert_eq!(shown.len() as u64, last);
    screenshot(&c, "3-older-pages").await;

    c.close().await.unwrap();
    app.stop().await;
}

#[actix_web::test]
async fn with_a_token_the_console_asks_for_it_then_works() {
    let Some((chromium, driver_bin)) = browser_tools() else {
        return;
    };
    let app = TestApp::spawn_with(|c| c.server.auth_token = Some(SECRET.into())).await;
    app.start("gamma", "synthetic").await;
    let driver = start_driver(&driver_bin).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&chromium, &driver, profile.path()).await;

    c.goto(&app.url("/ui/")).await.unwrap();
    let panel = wait_for(&c, "#token-panel:not([hidden])").await;
    assert!(panel.is_displayed().await.unwrap());
    assert!(c
        .find(Locator::Css("tr[data-project='gamma']"))
        .await
        .is_err());
    screenshot(&c, "4-token-asked").await;

    // A wrong token is refused and asked for again.
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys("wrong")
        .await
        .unwrap();
    c.find(Locator::Id("token-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#token-error:not([hidden])").await;

    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(SECRET)
        .await
        .unwrap();
    c.find(Locator::Id("token-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "tr[data-project='gamma']").await;
    wait_for(&c, "#stream-state[data-state='on']").await;
    assert!(!c
        .find(Locator::Id("token-panel"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());
    // The live stream works with the ticket the page traded its token for.
    app.start("delta", "synthetic").await;
    wait_for(&c, "tr[data-project='delta']").await;
    wait_for(&c, "#approvals-state[data-state='none']").await;
    wait_for(&c, "#charts figure:nth-child(6) path.series").await;
    screenshot(&c, "5-token-entered").await;

    c.close().await.unwrap();
    app.stop().await;
}

#[actix_web::test]
async fn the_console_shows_a_pending_approval_and_answers_it() {
    let Some((chromium, driver_bin)) = browser_tools() else {
        return;
    };
    let app = TestApp::spawn_with(|c| {
        // A Claude that asks for a tool permission the way the real CLI does.
        c.providers.insert(
            "asker".into(),
            agent_store::config::ProviderConfig {
                kind: agent_store::config::ProviderKind::Claude,
                command: vec![concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/bin/fake-claude-ask"
                )
                .into()],
                default_model: None,
                host: None,
                adapter: None,
                allow_bypass_permissions: false,
            },
        );
    })
    .await;
    let (status, _) = common::send(
        app.put("/v1/projects/ask/policy")
            .json(&serde_json::json!({"approvals": "ask"})),
    )
    .await;
    assert!(status.is_success());
    let driver = start_driver(&driver_bin).await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&chromium, &driver, profile.path()).await;
    c.goto(&app.url("/")).await.unwrap();
    wait_for(&c, "#approvals-state[data-state='none']").await;

    // The agent asks: the live `session.approval` event brings it into the panel.
    let session = app.start("ask", "asker").await;
    let item = wait_for(&c, "#approvals li[data-request]").await;
    let text = item.text().await.unwrap();
    assert!(
        text.contains("ask") && text.contains("Bash") && text.contains("rm -rf build"),
        "{text}"
    );
    screenshot(&c, "6-approval-pending").await;
    item.find(Locator::Css("button.allow"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#approvals-state[data-state='none']").await;
    // The agent got the answer and finished.
    let deadline = std::time::Instant::now() + common::PATIENCE;
    loop {
        let s = app.session(&session).await;
        if s["status"] == "done" {
            let said = s["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["role"] == "system" && m["content"] == "Allowed Bash: rm -rf build");
            assert!(said, "{s}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not finish: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    screenshot(&c, "7-approval-answered").await;
    c.close().await.unwrap();
    app.stop().await;
}
