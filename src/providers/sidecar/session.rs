//! One session served by a sidecar: the `query` lines sent for its prompts, and its share of the sidecar's
//! output — `agent_event`s read through its own adapter, and the `agent_stopped` / `agent_error` that end a
//! run.

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::config::ProviderKind;
use crate::messages::wire::SidecarEvent;
use crate::providers::feed::{Feeder, NO_RESULT};
use crate::providers::{EventSink, StartSpec};

pub(super) struct Session {
    pub spec: StartSpec,
    pub sink: EventSink,
    pub feeder: Feeder,
    /// The provider's own session id, to resume with a follow-up.
    pub provider_session: Option<String>,
    pub running: bool,
    /// A stop waiting for the sidecar to confirm.
    pub stopping: Option<oneshot::Sender<()>>,
    pub idle_since: Option<std::time::Instant>,
}

impl Session {
    pub fn new(spec: StartSpec, sink: EventSink, feeder: Feeder) -> Session {
        Session {
            spec,
            sink,
            feeder,
            provider_session: None,
            running: true,
            stopping: None,
            idle_since: None,
        }
    }

    /// The `query` line for a prompt; a follow-up names the provider session to resume.
    pub fn query(&self, adapter: ProviderKind, prompt: &str) -> Value {
        let spec = &self.spec;
        let provider = match adapter {
            ProviderKind::Codex => "codex",
            ProviderKind::Ollama => "ollama",
            _ => "claude",
        };
        let mut q = json!({
            "type": "query",
            "sessionId": spec.session_id,
            "provider": provider,
            "prompt": prompt,
            "model": spec.model,
        });
        let optional = [
            ("cwd", spec.cwd.as_ref().map(|v| json!(v))),
            (
                "systemPrompt",
                spec.system_prompt.as_ref().map(|v| json!(v)),
            ),
            ("maxTurns", spec.max_turns.map(|v| json!(v))),
            (
                "permissionMode",
                spec.permission_mode.as_ref().map(|v| json!(v)),
            ),
            (
                "claudeConfigDir",
                spec.claude_config_dir.as_ref().map(|v| json!(v)),
            ),
            (
                "worktreeName",
                spec.worktree_name.as_ref().map(|v| json!(v)),
            ),
            (
                "extraEnv",
                (!spec.extra_env.is_empty()).then(|| json!(spec.extra_env)),
            ),
            (
                "additionalDirectories",
                (!spec.additional_directories.is_empty())
                    .then(|| json!(spec.additional_directories)),
            ),
            (
                "providerSettings",
                (!spec.provider_settings.is_null()).then(|| spec.provider_settings.clone()),
            ),
            (
                "resumeSessionId",
                self.provider_session.as_ref().map(|v| json!(v)),
            ),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                q[key] = value;
            }
        }
        q
    }

    /// An `agent_event`: one native provider line, as an object or as its JSON text.
    pub fn event(&mut self, event: Option<&Value>) -> Vec<SidecarEvent> {
        let parsed;
        let event = match event {
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(v) => {
                    parsed = v;
                    &parsed
                }
                Err(_) => {
                    self.feeder.skipped += 1;
                    return Vec::new();
                }
            },
            Some(v @ Value::Object(_)) => v,
            _ => return Vec::new(),
        };
        let events = self.feeder.value(event);
        if let Some(id) = self.feeder.provider_session.take() {
            self.provider_session = Some(id);
        }
        events
    }

    /// `agent_stopped` / `agent_error`: how the run ended, or nothing when it was stopped on request.
    pub fn end(&mut self, kind: &str, message: &Value) -> Option<Result<(), String>> {
        self.running = false;
        self.idle_since = Some(std::time::Instant::now());
        if let Some(stop) = self.stopping.take() {
            let _ = stop.send(());
            return None;
        }
        let finished = self.feeder.finished.take();
        Some(if kind == "agent_error" {
            let text = ["error", "message"]
                .iter()
                .find_map(|k| message.get(*k).and_then(Value::as_str))
                .unwrap_or("the sidecar reported an error");
            Err(text.to_owned())
        } else {
            match (finished, message.get("exitCode").and_then(Value::as_i64)) {
                (Some(result), _) => result,
                (None, Some(code)) if code != 0 => Err(format!("agent exited with status {code}")),
                (None, _) => Err(NO_RESULT.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::commands::Ingest;
    use crate::providers::feed::tests::Toy;
    use actix::prelude::*;

    /// A sink nobody reads: these tests never emit.
    struct Nobody;
    impl Actor for Nobody {
        type Context = Context<Self>;
    }
    impl Handler<Ingest> for Nobody {
        type Result = ();
        fn handle(&mut self, _: Ingest, _: &mut Context<Self>) {}
    }

    fn session(spec: StartSpec) -> Session {
        let sink = EventSink::new(Nobody.start().recipient());
        let feeder = Feeder::new(&spec.session_id, Box::new(Toy));
        Session::new(spec, sink, feeder)
    }

    #[actix_rt::test]
    async fn a_query_carries_the_session_options_and_then_the_resume_id() {
        let mut s = session(StartSpec {
            session_id: "p-1".into(),
            model: "m".into(),
            cwd: Some("/w".into()),
            max_turns: Some(3),
            ..StartSpec::default()
        });
        let q = s.query(ProviderKind::Codex, "first");
        assert_eq!(q["type"], "query");
        assert_eq!(q["sessionId"], "p-1");
        assert_eq!(q["provider"], "codex");
        assert_eq!(q["prompt"], "first");
        assert_eq!(q["cwd"], "/w");
        assert_eq!(q["maxTurns"], 3);
        assert!(q.get("systemPrompt").is_none() && q.get("resumeSessionId").is_none());

        s.event(Some(&json!(r#"{"session":"th-9"}"#)));
        assert_eq!(
            s.query(ProviderKind::Codex, "again")["resumeSessionId"],
            "th-9"
        );
    }

    #[actix_rt::test]
    async fn a_run_ends_as_its_stream_said_or_as_the_sidecar_reports() {
        let mut s = session(StartSpec::default());
        s.event(Some(&json!({"done": true})));
        assert_eq!(s.end("agent_stopped", &json!({})), Some(Ok(())));
        assert!(!s.running);

        assert_eq!(
            s.end("agent_stopped", &json!({"exitCode": 1})),
            Some(Err("agent exited with status 1".into()))
        );
        assert_eq!(
            s.end("agent_stopped", &json!({})),
            Some(Err(NO_RESULT.into()))
        );
        assert_eq!(
            s.end("agent_error", &json!({"error": "overloaded"})),
            Some(Err("overloaded".into()))
        );
    }

    #[actix_rt::test]
    async fn a_requested_stop_ends_the_run_without_a_status() {
        let mut s = session(StartSpec::default());
        let (tx, rx) = oneshot::channel();
        s.stopping = Some(tx);
        assert_eq!(s.end("agent_stopped", &json!({})), None);
        assert!(rx.await.is_ok());
    }
}
