//! The Ollama runner: a streaming `POST {host}/api/chat` per prompt, read through the Ollama adapter. Ollama
//! keeps no conversation of its own, so the runner keeps it (the system prompt, the user prompts and the
//! assistant replies) and sends all of it again with each follow-up. A session's first start checks
//! `GET {host}/api/version`, so an unreachable server is a start error naming the host, not a run that
//! fails later.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::feed::{Feeder, NO_RESULT};
use super::lines::LineSplitter;
use super::turns::{Driver, Live, Notes, Run, RunProvider};
use super::{EventSink, ProviderError, Refusal, SidecarEvent, StartSpec};
use crate::config::{Config, ProviderKind};
use crate::messages::adapters::adapter_for;

/// How long the health check and connecting may take; a stream itself may run as long as the model talks.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an error response body is read.
const ERROR_BODY_MAX: usize = 64 * 1024;

pub(crate) type OllamaProvider = RunProvider<OllamaDriver>;

pub(crate) struct OllamaDriver {
    client: reqwest::Client,
    /// The base URL without a trailing slash.
    host: String,
    max_line: usize,
}

impl OllamaDriver {
    pub(crate) fn provider(host: &str, config: &Config) -> Result<OllamaProvider, String> {
        let url = reqwest::Url::parse(host).map_err(|e| format!("host {host:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("host {host:?}: must be an http:// or https:// URL"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(RunProvider::new(OllamaDriver {
            client,
            host: host.trim_end_matches('/').to_owned(),
            max_line: usize::try_from(config.limits.max_line.as_u64()).unwrap_or(usize::MAX),
        }))
    }
}

impl OllamaDriver {
    async fn health(&self) -> Result<(), ProviderError> {
        let url = format!("{}/api/version", self.host);
        let unreachable =
            |e: &dyn std::fmt::Display| format!("ollama not reachable at {}: {e}", self.host);
        let response = self
            .client
            .get(&url)
            .timeout(CONNECT_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(&causes(&e)))?;
        if !response.status().is_success() {
            return Err(unreachable(&format!(
                "/api/version answered {}",
                response.status()
            )));
        }
        Ok(())
    }
}

impl Driver for OllamaDriver {
    /// The conversation so far, as `/api/chat` messages.
    type Memory = Vec<Value>;
    /// The model's reply, once its stream is over.
    type Note = String;

    fn remember(&self, conversation: &mut Vec<Value>, reply: String) {
        conversation.push(json!({"role": "assistant", "content": reply}));
    }

    fn check(&self, requested: &StartSpec) -> Result<(), Refusal> {
        check(requested)
    }

    /// Ollama keeps no conversation: a resumed session's history is sent again with its next prompt.
    fn seed(&self, memory: &mut Vec<Value>, spec: &StartSpec, resume: crate::providers::Resume) {
        use crate::messages::wire::MsgRole;
        if let Some(system) = spec.system_prompt.as_deref().filter(|s| !s.is_empty()) {
            memory.push(json!({"role": "system", "content": system}));
        }
        for (role, text) in resume.history {
            let role = match role {
                MsgRole::User => "user",
                MsgRole::Assistant => "assistant",
                _ => continue,
            };
            memory.push(json!({"role": role, "content": text}));
        }
    }

    /// An unreachable server is a start error naming the host, not a run that fails later.
    fn preflight(&self) -> impl std::future::Future<Output = Result<(), ProviderError>> + Send {
        self.health()
    }

    fn launch(
        &self,
        conversation: &mut Vec<Value>,
        run: Run<String>,
    ) -> Result<Live, ProviderError> {
        if conversation.is_empty() {
            if let Some(system) = run.spec.system_prompt.as_deref().filter(|s| !s.is_empty()) {
                conversation.push(json!({"role": "system", "content": system}));
            }
        }
        conversation.push(json!({"role": "user", "content": run.prompt}));
        let body = request_body(&run.spec, conversation);
        let silenced = Arc::new(AtomicBool::new(false));
        let stream = Stream {
            client: self.client.clone(),
            host: self.host.clone(),
            max_line: self.max_line,
            feeder: Feeder::new(&run.spec.session_id, adapter_for(ProviderKind::Ollama)),
            sink: run.sink,
            silenced: silenced.clone(),
            notes: run.notes,
        };
        let end = run.end;
        let task = tokio::spawn(async move {
            let outcome = stream.run(body).await;
            end.finish(outcome).await;
        });
        Ok(Live {
            input: None,
            stop: Box::new(move || {
                silenced.store(true, Ordering::SeqCst);
                // Dropping the response closes the connection, which is how Ollama is told to stop.
                task.abort();
                Box::pin(async move {
                    let _ = task.await;
                })
            }),
        })
    }
}

/// Ollama takes a model and a system prompt (the first message of the conversation); it runs no tools,
/// reads no files and starts no process, so every other start option is refused.
fn check(spec: &StartSpec) -> Result<(), Refusal> {
    let given = [
        ("options.cwd", spec.cwd.is_some()),
        ("options.maxTurns", spec.max_turns.is_some()),
        ("options.permissionMode", spec.permission_mode.is_some()),
        ("options.claudeConfigDir", spec.claude_config_dir.is_some()),
        ("options.extraEnv", !spec.extra_env.is_empty()),
        (
            "options.additionalDirectories",
            !spec.additional_directories.is_empty(),
        ),
        ("options.worktreeName", spec.worktree_name.is_some()),
    ];
    match given.into_iter().find(|(_, given)| *given) {
        Some((option, _)) => Err(Refusal::new(
            option,
            format!(
                "provider {} (ollama) cannot honour it: Ollama only generates text (model and systemPrompt apply)",
                spec.provider
            ),
        )),
        None => Ok(()),
    }
}

/// `/api/chat` with the model, the conversation and the session's Ollama settings (`num_ctx`, `think`).
fn request_body(spec: &StartSpec, conversation: &[Value]) -> Value {
    let mut body = json!({
        "model": spec.model,
        "messages": conversation,
        "stream": true,
    });
    let settings = &spec.provider_settings;
    if let Some(num_ctx) = settings.get("num_ctx").filter(|v| v.is_number()) {
        let mut options = Map::new();
        options.insert("num_ctx".into(), num_ctx.clone());
        body["options"] = Value::Object(options);
    }
    if let Some(think) = settings
        .get("think")
        .filter(|v| v.is_boolean() || v.is_string())
    {
        body["think"] = think.clone();
    }
    body
}

struct Stream {
    client: reqwest::Client,
    host: String,
    max_line: usize,
    feeder: Feeder,
    sink: EventSink,
    silenced: Arc<AtomicBool>,
    /// The conversation, in the session's runner: the reply is added to it.
    notes: Notes<String>,
}

impl Stream {
    async fn run(mut self, body: Value) -> Result<(), String> {
        let url = format!("{}/api/chat", self.host);
        let response = self
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("ollama request to {} failed: {}", self.host, causes(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(error_response(status, response).await);
        }
        let mut reply = String::new();
        let mut error_line: Option<String> = None;
        let mut splitter = LineSplitter::new(self.max_line);
        let mut body = response.bytes_stream();
        let mut failure = None;
        loop {
            let chunk = match body.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    failure = Some(format!(
                        "ollama stream from {} failed: {}",
                        self.host,
                        causes(&e)
                    ));
                    break;
                }
                None => break,
            };
            let mut lines = Vec::new();
            splitter.push(&chunk, &mut lines);
            for line in lines {
                self.line(line, &mut reply, &mut error_line).await;
            }
        }
        if let Some(line) = splitter.finish() {
            self.line(line, &mut reply, &mut error_line).await;
        }
        if !reply.is_empty() {
            self.notes.send(reply).await;
        }
        match (self.feeder.finished.take(), failure, error_line) {
            (Some(result), _, _) => result,
            (None, Some(failure), _) => Err(failure),
            (None, None, Some(error)) => Err(error),
            (None, None, None) => Err(NO_RESULT.into()),
        }
    }

    async fn line(
        &mut self,
        line: super::lines::Line,
        reply: &mut String,
        error: &mut Option<String>,
    ) {
        let events = self.feeder.line_with(line, self.max_line, |v| {
            if let Some(text) = v.pointer("/message/content").and_then(Value::as_str) {
                reply.push_str(text);
            }
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                *error = Some(e.to_owned());
            }
        });
        self.emit(events).await;
    }

    async fn emit(&mut self, events: Vec<SidecarEvent>) {
        if events.is_empty() || self.silenced.load(Ordering::SeqCst) {
            return;
        }
        if self.sink.emit(events).await.is_err() {
            self.silenced.store(true, Ordering::SeqCst);
        }
    }
}

/// "ollama answered 404 Not Found: model 'x' not found", from the `{"error"}` body when there is one.
async fn error_response(status: reqwest::StatusCode, response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_MAX - body.len())]);
        if body.len() >= ERROR_BODY_MAX {
            break;
        }
    }
    let detail = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    if detail.is_empty() {
        format!("ollama answered {status}")
    } else {
        format!("ollama answered {status}: {detail}")
    }
}

/// An error and its causes, "a: b: c": reqwest's own message alone rarely says what went wrong.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_model_and_system_prompt_are_honoured() {
        let spec = StartSpec {
            provider: "local".into(),
            model: "m".into(),
            system_prompt: Some("s".into()),
            ..StartSpec::default()
        };
        assert!(check(&spec).is_ok());
        let refused = check(&StartSpec {
            max_turns: Some(2),
            ..spec.clone()
        })
        .unwrap_err();
        assert_eq!(refused.option, "options.maxTurns");
        assert!(refused.message.contains("provider local"), "{refused}");
        let refused = check(&StartSpec {
            additional_directories: vec!["/x".into()],
            ..spec
        })
        .unwrap_err();
        assert_eq!(refused.option, "options.additionalDirectories");
    }

    #[test]
    fn settings_become_options_and_think() {
        let spec = StartSpec {
            model: "qwen3:8b".into(),
            provider_settings: json!({"num_ctx": 8192, "think": true, "defaultModel": "x"}),
            ..StartSpec::default()
        };
        let body = request_body(&spec, &[json!({"role": "user", "content": "hi"})]);
        assert_eq!(body["model"], "qwen3:8b");
        assert_eq!(body["stream"], true);
        assert_eq!(body["options"]["num_ctx"], 8192);
        assert_eq!(body["think"], true);
        assert_eq!(body["messages"][0]["content"], "hi");
        let plain = request_body(&StartSpec::default(), &[]);
        assert!(plain.get("options").is_none() && plain.get("think").is_none());
    }
}
