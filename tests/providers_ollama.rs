//! The Ollama runner against a fake Ollama on loopback (actix-web on 127.0.0.1:0) that serves
//! `/api/version` and streaming `/api/chat` answers chosen by the requested model, and records each request.

mod providers_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use agent_store::config::{ProviderConfig, ProviderKind};
use agent_store::messages::commands::{SettingsPatch, StartOptions};
use agent_store::messages::wire::{AgentStatus, MsgRole};
use agent_store::CommandError;
use bytes::Bytes;
use futures_util::stream;
use providers_support::*;
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Fake {
    requests: Arc<Mutex<Vec<Value>>>,
    /// Set when a slow stream was dropped: the client went away.
    dropped: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn chunk(content: &str, done: bool) -> Bytes {
    let mut v = json!({"model": "qwen3:8b", "created_at": "2025-05-01T10:00:00Z",
        "message": {"role": "assistant", "content": content}, "done": done});
    if done {
        v["done_reason"] = json!("stop");
        v["prompt_eval_count"] = json!(26);
        v["eval_count"] = json!(12);
        v["eval_duration"] = json!(240_000_000u64);
    }
    Bytes::from(format!("{v}\n"))
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": "0.6.8"}))
}

async fn chat(fake: web::Data<Fake>, body: web::Json<Value>) -> HttpResponse {
    fake.requests.lock().unwrap().push(body.0.clone());
    let ndjson = |chunks: Vec<Bytes>| {
        HttpResponse::Ok()
            .content_type("application/x-ndjson")
            .streaming(stream::iter(
                chunks.into_iter().map(Ok::<_, actix_web::Error>),
            ))
    };
    match body["model"].as_str().unwrap_or("") {
        "missing" => HttpResponse::NotFound().json(json!({"error": "model 'missing' not found"})),
        "errline" => ndjson(vec![
            chunk("Partial", false),
            Bytes::from("{\"error\":\"an error was encountered while running the model: unexpected EOF\"}\n"),
        ]),
        "phi3" => {
            let recorded = std::fs::read(shared(
                "ollama/semantic-kernel__chat_completion_test_response_stream.txt",
            ))
            .unwrap();
            ndjson(vec![Bytes::from(recorded)])
        }
        "slow" => {
            let flag = DropFlag(fake.dropped.clone());
            let chunks = stream::unfold((0u32, flag), |(n, flag)| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Ok::<_, actix_web::Error>(chunk(&format!("word{n} "), false)), (n + 1, flag)))
            });
            HttpResponse::Ok()
                .content_type("application/x-ndjson")
                .streaming(chunks)
        }
        _ => {
            let mut thinking = json!({"model": "qwen3:8b", "created_at": "2025-05-01T10:00:00Z",
                "message": {"role": "assistant", "content": "", "thinking": "The user greets me."},
                "done": false})
            .to_string();
            thinking.push('\n');
            ndjson(vec![
                Bytes::from(thinking),
                chunk("Hello", false),
                chunk(" there.", false),
                chunk("", true),
            ])
        }
    }
}

/// Starts the fake Ollama; returns its base URL.
fn serve(fake: Fake) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(fake.clone()))
            .route("/api/version", web::get().to(version))
            .route("/api/chat", web::post().to(chat))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    host
}

async fn harness(host: &str) -> Harness {
    let host = host.to_owned();
    start(move |c, _| {
        c.providers.insert(
            "ollama".into(),
            ProviderConfig {
                kind: ProviderKind::Ollama,
                command: vec![],
                default_model: Some("qwen3:8b".into()),
                host: Some(host),
                adapter: None,
                allow_bypass_permissions: false,
            },
        );
    })
    .await
}

#[actix_rt::test]
async fn a_session_streams_to_done_and_a_follow_up_sends_the_conversation_again() {
    let fake = Fake::default();
    let h = harness(&serve(fake.clone())).await;
    h.engine
        .update_settings(SettingsPatch {
            provider_settings: Some(
                json!({"ollama": {"num_ctx": 8192, "think": true}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..SettingsPatch::default()
        })
        .await
        .unwrap();
    let options = StartOptions {
        system_prompt: Some("Be kind.".into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "ollama", "hi", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    assert_eq!(s.model, "qwen3:8b");
    assert!(s.messages.iter().any(|m| m.role == MsgRole::Thinking));
    let reply: String = s
        .messages
        .iter()
        .filter(|m| m.role == MsgRole::Assistant)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(reply, "Hello there.");
    assert_eq!((s.input_tokens, s.output_tokens), (26, 12));

    h.engine.send_prompt("p1", "more".into()).await.unwrap();
    eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status == AgentStatus::Done && fake.requests.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests[0]["model"], "qwen3:8b");
    assert_eq!(requests[0]["stream"], true);
    assert_eq!(requests[0]["options"]["num_ctx"], 8192);
    assert_eq!(requests[0]["think"], true);
    assert_eq!(
        requests[1]["messages"],
        json!([
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello there."},
            {"role": "user", "content": "more"},
        ])
    );
}

#[actix_rt::test]
async fn a_real_recorded_stream_without_a_final_newline_runs_to_done() {
    let h = harness(&serve(Fake::default())).await;
    let options = StartOptions {
        model: Some("phi3".into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "ollama", "hi", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_done(&s);
    assert_eq!((s.input_tokens, s.output_tokens), (10, 239));
}

#[actix_rt::test]
async fn an_error_status_ends_the_session_in_error_with_ollamas_message() {
    let h = harness(&serve(Fake::default())).await;
    let options = StartOptions {
        model: Some("missing".into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "ollama", "hi", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(
        s.error.as_deref(),
        Some("ollama answered 404 Not Found: model 'missing' not found")
    );
}

#[actix_rt::test]
async fn an_error_line_inside_the_stream_ends_the_session_in_error() {
    let h = harness(&serve(Fake::default())).await;
    let options = StartOptions {
        model: Some("errline".into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "ollama", "hi", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert!(s.error.unwrap().contains("unexpected EOF"));
}

#[actix_rt::test]
async fn an_unreachable_server_is_a_start_error_naming_the_host() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("http://127.0.0.1:{port}");
    let h = harness(&host).await;
    let err = h
        .start_session("p1", "ollama", "hi", &[])
        .await
        .unwrap_err();
    let CommandError::ProviderFailed { error, .. } = err else {
        panic!("{err:?}");
    };
    assert!(
        error.starts_with(&format!("ollama not reachable at {host}: ")),
        "{error}"
    );
}

#[actix_rt::test]
async fn stop_closes_the_stream() {
    let fake = Fake::default();
    let h = harness(&serve(fake.clone())).await;
    let options = StartOptions {
        model: Some("slow".into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "ollama", "talk", options)
        .await
        .unwrap();
    eventually(PATIENCE, || async {
        (!fake.requests.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.engine.stop_agent("p1").await.unwrap();
    eventually(PATIENCE, || async {
        fake.dropped.load(Ordering::SeqCst).then_some(())
    })
    .await;
    let s = h.session("p1").await;
    assert_eq!(s.status, AgentStatus::Done);
    assert_eq!(s.error, None);
}

#[actix_rt::test]
async fn a_session_resumed_after_a_restart_sends_its_history_again() {
    let fake = Fake::default();
    let host = serve(fake.clone());
    let h = harness(&host).await;
    let options = StartOptions {
        system_prompt: Some("Be kind.".into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "ollama", "hi", options)
        .await
        .unwrap();
    assert_done(&h.finished("p1").await);
    // A new engine on the same data: the provider remembers nothing, storage does.
    h.engine.shutdown().await;
    let Harness { config, dir, .. } = h;
    let providers = agent_store::providers::from_config(&config).unwrap();
    let h = start_with(config, dir, providers).await;
    let started = h
        .engine
        .resume_session("p1", Some("more".into()))
        .await
        .unwrap();
    eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status == AgentStatus::Done && fake.requests.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(
        requests[1]["messages"],
        json!([
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello there."},
            {"role": "user", "content": "more"},
        ])
    );
    let s = h.session("p1").await;
    assert_eq!(s.session_id, started.session_id);
    assert!(s
        .messages
        .iter()
        .any(|m| m.role == MsgRole::System && m.content == "Resumed on request"));
}
