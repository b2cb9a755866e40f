//! From a provider's stream lines to sidecar events for one session: parse each line once, hand it to the
//! provider's adapter, and turn what the adapter says into `agent.message` / `agent.cost` events. What ends
//! a run (`Finished`) and the provider's own session id are kept here for the runner to act on, not sent.
//!
//! Every runner (process, HTTP stream, sidecar) feeds through this, so "a non-JSON line is skipped and
//! counted" and "an over-long line becomes an error message" hold the same way for all of them.

use serde_json::{json, Value};

use super::lines::Line;
use crate::messages::adapters::{parse_line, Adapter, AdapterEvent, NotJson};
use crate::messages::wire::{now_ms, CostPayload, MessagePayload, RawMessage, SidecarEvent};

pub(crate) struct Feeder {
    session_id: String,
    adapter: Box<dyn Adapter>,
    /// How the run ended, as the adapter said; the last word wins.
    pub(crate) finished: Option<Result<(), String>>,
    /// The provider's own session or thread id, once the stream named it.
    pub(crate) provider_session: Option<String>,
    /// Lines that were not a JSON object (a CLI's progress text, a stray debug print).
    pub(crate) skipped: u64,
    /// Lines over the configured cap.
    pub(crate) too_long: u64,
    /// Finished events seen, for a run that serves several prompts.
    pub(crate) results: u64,
    /// Error messages this feeder made up, to give each its own id.
    notes: u64,
    events: Vec<AdapterEvent>,
    /// This run's id on its cost totals (see `CostPayload::run`), for agents that count from zero in
    /// every process.
    run: Option<u64>,
    /// The model's price, for an adapter that reports tokens without cost (Codex).
    price: Pricing,
}

/// What the feeder knows of the model's price.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pricing {
    /// The adapter reports cost itself.
    Reported,
    Known(crate::messages::policy::Price),
    /// No price is configured for this model: said once in the session.
    Unknown {
        model: String,
        said: bool,
    },
}

/// A process-wide unique run id.
pub(crate) fn next_run() -> u64 {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Feeder {
    pub(crate) fn new(session_id: &str, adapter: Box<dyn Adapter>) -> Feeder {
        Feeder {
            session_id: session_id.to_owned(),
            adapter,
            finished: None,
            provider_session: None,
            skipped: 0,
            too_long: 0,
            results: 0,
            notes: 0,
            events: Vec::new(),
            run: None,
            price: Pricing::Reported,
        }
    }

    /// Tags this feeder's cost totals as one run's (each process of a CLI agent counts from zero).
    pub(crate) fn per_run(mut self) -> Feeder {
        self.run = Some(next_run());
        self
    }

    /// Prices token counts the adapter reports without cost.
    pub(crate) fn priced(
        mut self,
        model: &str,
        price: Option<crate::messages::policy::Price>,
    ) -> Feeder {
        self.price = match price {
            Some(p) => Pricing::Known(p),
            None => Pricing::Unknown {
                model: model.to_owned(),
                said: false,
            },
        };
        self
    }

    /// One stdout line or stream chunk; returns the events to send for it.
    pub(crate) fn line(&mut self, line: Line, max_line: usize) -> Vec<SidecarEvent> {
        self.line_with(line, max_line, |_| {})
    }

    /// As `line`, and shows the parsed value to `inspect` first (Ollama keeps the reply text).
    pub(crate) fn line_with(
        &mut self,
        line: Line,
        max_line: usize,
        inspect: impl FnOnce(&Value),
    ) -> Vec<SidecarEvent> {
        match line {
            Line::Full(bytes) => match parse_line(&bytes) {
                Ok(value) if value.is_object() => {
                    inspect(&value);
                    self.value(&value)
                }
                Err(NotJson::Blank) => Vec::new(),
                _ => {
                    self.skipped += 1;
                    super::metrics::provider_metrics().skipped_lines.inc();
                    Vec::new()
                }
            },
            Line::TooLong { len } => {
                self.too_long += 1;
                let message = format!(
                    "skipped a provider output line of {len} bytes: longer than limits.max_line ({max_line} bytes)"
                );
                vec![self.error_message(message)]
            }
        }
    }

    /// One already-parsed native value (a sidecar's `agent_event` payload).
    pub(crate) fn value(&mut self, value: &Value) -> Vec<SidecarEvent> {
        self.adapter.feed(value, &mut self.events);
        let mut out = Vec::new();
        let mut messages = Vec::new();
        for event in self.events.drain(..) {
            match event {
                AdapterEvent::Message(raw) => messages.push(raw),
                AdapterEvent::Cost {
                    cost_usd,
                    input_tokens,
                    output_tokens,
                } => {
                    let cost_usd = match &mut self.price {
                        Pricing::Known(p) if cost_usd == 0.0 => p.cost(input_tokens, output_tokens),
                        Pricing::Unknown { model, said }
                            if !*said && input_tokens + output_tokens > 0 =>
                        {
                            *said = true;
                            let text = format!(
                                "No price is known for model {model:?}: its tokens are counted, its cost is not \
                                 (add [pricing.\"{model}\"] input_per_mtok/output_per_mtok to the configuration)"
                            );
                            self.notes += 1;
                            messages.push(notice(&self.session_id, self.notes, text));
                            cost_usd
                        }
                        _ => cost_usd,
                    };
                    flush(&self.session_id, &mut messages, &mut out);
                    out.push(SidecarEvent::Cost(CostPayload {
                        session_id: self.session_id.clone(),
                        cost_usd,
                        input_tokens,
                        output_tokens,
                        run: self.run,
                    }));
                }
                AdapterEvent::ProviderSession(id) => self.provider_session = Some(id),
                AdapterEvent::Finished(result) => {
                    self.results += 1;
                    self.finished = Some(result);
                }
            }
        }
        flush(&self.session_id, &mut messages, &mut out);
        out
    }

    /// An error shown in the session as a system message; it does not end the run.
    pub(crate) fn error_message(&mut self, message: String) -> SidecarEvent {
        self.notes += 1;
        let now = now_ms();
        SidecarEvent::Message(MessagePayload {
            session_id: self.session_id.clone(),
            messages: vec![RawMessage {
                id: format!("{}-runner-{now}-{}", self.session_id, self.notes),
                kind: "error".into(),
                parent_id: None,
                content: json!({ "message": message }).into(),
                timestamp: now,
            }],
        })
    }
}

/// A system message from the runner, the `n`th it made up.
fn notice(session_id: &str, n: u64, message: String) -> RawMessage {
    let now = now_ms();
    RawMessage {
        id: format!("{session_id}-runner-{now}-{n}"),
        kind: "notice".into(),
        parent_id: None,
        content: json!({ "message": message }).into(),
        timestamp: now,
    }
}

fn flush(session_id: &str, messages: &mut Vec<RawMessage>, out: &mut Vec<SidecarEvent>) {
    if !messages.is_empty() {
        out.push(SidecarEvent::Message(MessagePayload {
            session_id: session_id.to_owned(),
            messages: std::mem::take(messages),
        }));
    }
}

/// `agent.status` for the end of a run.
pub(crate) fn status_event(session_id: &str, outcome: &Result<(), String>) -> SidecarEvent {
    use crate::messages::wire::StatusPayload;
    SidecarEvent::Status(match outcome {
        Ok(()) => StatusPayload {
            session_id: session_id.to_owned(),
            status: "done".into(),
            error: None,
        },
        Err(e) => StatusPayload {
            session_id: session_id.to_owned(),
            status: "error".into(),
            error: Some(e.clone()),
        },
    })
}

/// The error of a stream that ended without the adapter seeing its end.
pub(crate) const NO_RESULT: &str = "Agent exited without a result";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stand-in adapter: `{"text"}` → a text message, `{"session"}` → provider session,
    /// `{"cost"}` → cost, `{"done": true|"error"}` → finished.
    pub(crate) struct Toy;

    impl Adapter for Toy {
        fn feed(&mut self, v: &Value, out: &mut Vec<AdapterEvent>) {
            if let Some(t) = v.get("text").and_then(Value::as_str) {
                out.push(AdapterEvent::Message(RawMessage {
                    id: t.to_owned(),
                    kind: "text".into(),
                    parent_id: None,
                    content: json!({ "text": t }).into(),
                    timestamp: 1,
                }));
            }
            if let Some(s) = v.get("session").and_then(Value::as_str) {
                out.push(AdapterEvent::ProviderSession(s.to_owned()));
            }
            if let Some(c) = v.get("cost").and_then(Value::as_f64) {
                out.push(AdapterEvent::Cost {
                    cost_usd: c,
                    input_tokens: 1,
                    output_tokens: 2,
                });
            }
            match v.get("done") {
                Some(Value::Bool(true)) => out.push(AdapterEvent::Finished(Ok(()))),
                Some(Value::String(e)) => out.push(AdapterEvent::Finished(Err(e.clone()))),
                _ => {}
            }
        }
    }

    fn line(s: &str) -> Line {
        Line::Full(s.as_bytes().to_vec())
    }

    #[test]
    fn messages_of_one_line_travel_in_one_event_and_cost_separately() {
        let mut f = Feeder::new("p-1", Box::new(Toy));
        let out = f.line(line(r#"{"text":"hi","cost":0.5}"#), 100);
        assert_eq!(out.len(), 2);
        match &out[0] {
            SidecarEvent::Message(p) => {
                assert_eq!(p.session_id, "p-1");
                assert_eq!(p.messages[0].content["text"], "hi");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&out[1], SidecarEvent::Cost(c) if c.cost_usd == 0.5));
    }

    #[test]
    fn tokens_without_cost_are_priced_or_said_once_to_have_no_price() {
        let price = crate::messages::policy::Price {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        };
        let mut f = Feeder::new("p-1", Box::new(Toy))
            .per_run()
            .priced("m", Some(price));
        let out = f.line(line(r#"{"cost":0}"#), 100);
        let SidecarEvent::Cost(c) = &out[0] else {
            panic!("{out:?}")
        };
        assert!((c.cost_usd - 5e-6).abs() < 1e-12, "1 in + 2 out tokens");
        assert!(c.run.is_some());
        let mut f = Feeder::new("p-1", Box::new(Toy)).priced("odd", None);
        let out = f.line(line(r#"{"cost":0}"#), 100);
        let SidecarEvent::Message(m) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(m.messages[0].kind, "notice");
        assert!(m.messages[0].content["message"]
            .as_str()
            .unwrap()
            .contains("\"odd\""));
        assert_eq!(f.line(line(r#"{"cost":0}"#), 100).len(), 1, "said once");
    }

    #[test]
    fn non_json_lines_are_counted_not_fed_and_blank_lines_ignored() {
        let mut f = Feeder::new("p-1", Box::new(Toy));
        assert!(f.line(line("Loading model..."), 100).is_empty());
        assert!(f.line(line("42"), 100).is_empty());
        assert!(f.line(line("   "), 100).is_empty());
        assert_eq!(f.skipped, 2);
        assert_eq!(f.line(line(r#"{"text":"x"}"#), 100).len(), 1);
    }

    #[test]
    fn an_over_long_line_becomes_an_error_message_naming_the_limit() {
        let mut f = Feeder::new("p-1", Box::new(Toy));
        let out = f.line(Line::TooLong { len: 5000 }, 100);
        match &out[..] {
            [SidecarEvent::Message(p)] => {
                assert_eq!(p.messages[0].kind, "error");
                let m = p.messages[0].content["message"].as_str().unwrap();
                assert!(m.contains("5000") && m.contains("limits.max_line"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(f.too_long, 1);
        assert!(f.finished.is_none());
    }

    #[test]
    fn the_end_and_the_provider_session_are_kept_not_sent() {
        let mut f = Feeder::new("p-1", Box::new(Toy));
        assert!(f.line(line(r#"{"session":"abc"}"#), 100).is_empty());
        assert!(f.line(line(r#"{"done":"boom"}"#), 100).is_empty());
        assert_eq!(f.provider_session.as_deref(), Some("abc"));
        assert_eq!(f.finished, Some(Err("boom".into())));
        assert_eq!(f.results, 1);
    }
}
