//! `agent-store convert --provider claude|codex|ollama FILE`: what the store would show for a recorded
//! provider transcript, one JSON `AgentMessage` a line, through the same adapter and conversion a live
//! run goes through. Useful to check a new CLI version's output before it reaches a session.
//!
//! Input forms, told apart by content rather than file name: one JSON value per line (Claude
//! `stream-json`, Codex `exec --json`, Ollama chunks), where lines that are not JSON (a warning, a
//! truncated last line) are skipped and counted; one JSON array of events (Claude's older `--output-format
//! json`, usually pretty-printed over many lines); one JSON object (a non-streamed Ollama response).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::ProviderKind;
use crate::messages::adapters::{adapter_for, parse_line, Adapter, AdapterEvent, NotJson};
use crate::messages::convert::convert_raw_message;
use crate::messages::wire::AgentMessage;

/// A converted transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// What the store would show, seqIds 1..n as a session would assign them.
    pub messages: Vec<AgentMessage>,
    /// Everything the adapter said, raw messages included (cost, status, end of run ...).
    pub events: Vec<AdapterEvent>,
    /// Non-blank lines that were not JSON (blank lines are not counted).
    pub skipped_lines: usize,
}

/// Why a transcript could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{}: cannot read the transcript: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}provider kind {provider} has no transcript format of its own; convert with --provider claude, codex or ollama",
        in_file(path.as_deref())
    )]
    Unsupported {
        provider: &'static str,
        path: Option<PathBuf>,
    },
    #[error("{}: cannot write the converted messages: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

/// Converts a transcript's text with the adapter of `kind` (claude, codex or ollama).
pub fn transcript_to_messages(kind: ProviderKind, text: &str) -> Result<Transcript, ConvertError> {
    let mut adapter = native_adapter(kind).map_err(|provider| ConvertError::Unsupported {
        provider,
        path: None,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut events = Vec::new();
    let mut skipped_lines = 0;
    // A whole-file parse only succeeds for the one-value forms: NDJSON of two or more lines fails at the
    // end of its first line, cheaply, and is then read line by line.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => {
            for item in &items {
                adapter.feed(item, &mut events);
            }
        }
        Ok(value) => adapter.feed(&value, &mut events),
        Err(_) => {
            for line in text.lines() {
                match parse_line(line) {
                    Ok(value) => adapter.feed(&value, &mut events),
                    Err(NotJson::Blank) => {}
                    Err(NotJson::Invalid(_)) => skipped_lines += 1,
                }
            }
        }
    }
    let mut messages: Vec<AgentMessage> = Vec::new();
    for event in &events {
        if let AdapterEvent::Message(raw) = event {
            // The transcript keeps its events, so each is converted from a copy.
            if let Some(mut message) = convert_raw_message(raw.clone()) {
                message.seq_id = messages.len() as u64 + 1;
                messages.push(message);
            }
        }
    }
    Ok(Transcript {
        messages,
        events,
        skipped_lines,
    })
}

/// Converts the transcript at `path` and prints its messages to `out`, one JSON object a line.
///
/// The file is read as UTF-8; invalid bytes become U+FFFD (a line they break is then skipped as not JSON).
pub fn run(
    kind: ProviderKind,
    path: &Path,
    out: &mut dyn Write,
) -> Result<Transcript, ConvertError> {
    native_adapter(kind).map_err(|provider| ConvertError::Unsupported {
        provider,
        path: Some(path.to_owned()),
    })?;
    let bytes = std::fs::read(path).map_err(|source| ConvertError::Read {
        path: path.to_owned(),
        source,
    })?;
    let transcript = transcript_to_messages(kind, &String::from_utf8_lossy(&bytes))?;
    let write_error = |source| ConvertError::Write {
        path: path.to_owned(),
        source,
    };
    for message in &transcript.messages {
        serde_json::to_writer(&mut *out, message).map_err(|e| write_error(e.into()))?;
        out.write_all(b"\n").map_err(write_error)?;
    }
    out.flush().map_err(write_error)?;
    Ok(transcript)
}

/// The adapter of a kind that has a native stream format, else the kind's name.
fn native_adapter(kind: ProviderKind) -> Result<Box<dyn Adapter>, &'static str> {
    match kind {
        ProviderKind::Claude | ProviderKind::Codex | ProviderKind::Ollama => Ok(adapter_for(kind)),
        ProviderKind::Sidecar => Err("sidecar"),
        ProviderKind::Synthetic => Err("synthetic"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::wire::MsgRole;

    const CLAUDE_INIT: &str =
        r#"{"type":"system","subtype":"init","session_id":"s","model":"m","uuid":"u1"}"#;
    const CLAUDE_TEXT: &str = r#"{"type":"assistant","message":{"id":"msg","content":[{"type":"text","text":"hi"}]},"uuid":"u2"}"#;

    fn roles(t: &Transcript) -> Vec<MsgRole> {
        t.messages.iter().map(|m| m.role).collect()
    }

    #[test]
    fn ndjson_skips_and_counts_non_json_and_a_truncated_last_line() {
        let text =
            format!("{CLAUDE_INIT}\n\nWarning: not json\n{CLAUDE_TEXT}\n{{\"type\":\"assist");
        let t = transcript_to_messages(ProviderKind::Claude, &text).unwrap();
        assert_eq!(roles(&t), [MsgRole::System, MsgRole::Assistant]);
        assert_eq!(t.skipped_lines, 2);
        let seq: Vec<u64> = t.messages.iter().map(|m| m.seq_id).collect();
        assert_eq!(seq, [1, 2]);
    }

    #[test]
    fn a_pretty_printed_array_of_events_is_read_whole() {
        let events: Vec<Value> = [CLAUDE_INIT, CLAUDE_TEXT]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let text = serde_json::to_string_pretty(&events).unwrap();
        let t = transcript_to_messages(ProviderKind::Claude, &text).unwrap();
        assert_eq!(roles(&t), [MsgRole::System, MsgRole::Assistant]);
        assert_eq!(t.skipped_lines, 0);
    }

    #[test]
    fn a_single_pretty_printed_object_is_one_value() {
        let text = "{\n  \"message\": {\"role\": \"assistant\", \"content\": \"Hi\"},\n  \"done\": true\n}";
        let t = transcript_to_messages(ProviderKind::Ollama, text).unwrap();
        assert_eq!(roles(&t), [MsgRole::Assistant]);
        assert_eq!(t.events.last(), Some(&AdapterEvent::Finished(Ok(()))));
    }

    #[test]
    fn an_ollama_generate_stream_converts_like_a_chat_stream() {
        let text = [
            r#"{"model":"llama3","created_at":"2025-01-01T00:00:00Z","response":"Hel","done":false}"#,
            r#"{"model":"llama3","created_at":"2025-01-01T00:00:01Z","response":"lo","done":false}"#,
            r#"{"model":"llama3","created_at":"2025-01-01T00:00:02Z","response":"","done":true,"eval_count":2}"#,
        ]
        .join("\n");
        let t = transcript_to_messages(ProviderKind::Ollama, &text).unwrap();
        assert_eq!(roles(&t), [MsgRole::Assistant, MsgRole::Assistant]);
        let texts: Vec<&str> = t.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["Hel", "lo"]);
        assert_eq!(t.events.last(), Some(&AdapterEvent::Finished(Ok(()))));
    }

    #[test]
    fn an_empty_transcript_has_no_messages() {
        let t = transcript_to_messages(ProviderKind::Codex, "").unwrap();
        assert_eq!(
            (t.messages.len(), t.events.len(), t.skipped_lines),
            (0, 0, 0)
        );
    }

    #[test]
    fn sidecar_and_synthetic_are_refused_with_the_file_named() {
        let err = transcript_to_messages(ProviderKind::Sidecar, "{}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("provider kind sidecar has no transcript"),
            "{err}"
        );
        let mut out = Vec::new();
        let err = run(ProviderKind::Synthetic, Path::new("/x/t.jsonl"), &mut out).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/x/t.jsonl: provider kind synthetic"),
            "{err}"
        );
    }

    #[test]
    fn run_prints_one_message_a_line_with_seq_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, format!("{CLAUDE_INIT}\n{CLAUDE_TEXT}\n")).unwrap();
        let mut out = Vec::new();
        let t = run(ProviderKind::Claude, &path, &mut out).unwrap();
        let printed: Vec<AgentMessage> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(printed, t.messages);
        assert_eq!(printed[1].seq_id, 2);
        assert_eq!(printed[1].content, "hi");
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.jsonl");
        let err = run(ProviderKind::Codex, &path, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, ConvertError::Read { .. }));
        assert!(
            err.to_string().contains("missing.jsonl: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn a_write_failure_is_an_error_naming_the_file() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, CLAUDE_TEXT).unwrap();
        let err = run(ProviderKind::Claude, &path, &mut Broken).unwrap_err();
        assert!(matches!(err, ConvertError::Write { .. }), "{err}");
        assert!(err.to_string().contains("t.jsonl: cannot write"), "{err}");
    }
}
