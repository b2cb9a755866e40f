//! The conversion against the original store's own code: every raw message of the recorded provider runs
//! (`../shared/transcripts`), plus the edge cases the JavaScript rules are subtle about, is given to the
//! original store (the seed reconstructed in `benches/original/`, run by Bun) and to
//! `convert_raw_message`; both must show the same message.
//!
//! This also keeps the benchmark baseline honest: the store the issue 16 comparison runs converts what it
//! is sent exactly as agent-store does.
//!
//! Needs `bun` on PATH (`npm i -g bun@1.4.5`); without it the test says so and passes, except under
//! `CI=true`, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agent_store::cli::convert::transcript_to_messages;
use agent_store::config::ProviderKind;
use agent_store::messages::adapters::AdapterEvent;
use agent_store::messages::convert::convert_raw_message;
use agent_store::messages::wire::RawMessage;
use serde_json::{json, Value};

fn bun() -> Option<PathBuf> {
    let found = Command::new("bun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(PathBuf::from("bun"));
    }
    let why = "bun is not on PATH (npm i -g bun@1.4.5): the original store cannot run";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// Every raw message the adapters make of the recorded runs.
fn recorded() -> Vec<RawMessage> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/transcripts");
    let mut raws = Vec::new();
    for (dir, kind) in [
        ("claude", ProviderKind::Claude),
        ("codex", ProviderKind::Codex),
        ("ollama", ProviderKind::Ollama),
    ] {
        let dir = root.join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: the shared transcripts are needed: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).expect("a transcript");
            let transcript = transcript_to_messages(kind, &text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            raws.extend(transcript.events.into_iter().filter_map(|e| match e {
                AdapterEvent::Message(raw) => Some(raw),
                _ => None,
            }));
        }
    }
    raws
}

fn raw(kind: &str, content: Value) -> RawMessage {
    RawMessage {
        id: format!("edge-{kind}"),
        kind: kind.into(),
        parent_id: None,
        content: content.into(),
        timestamp: 1_700_000_000_123,
    }
}

/// The cases where JavaScript's `String`, `JSON.stringify`, truthiness and UTF-16 lengths show through.
fn edge_cases() -> Vec<RawMessage> {
    let long_lines: Vec<String> = (1..=600).map(|i| format!("line {i}")).collect();
    vec![
        raw("text", json!({"text": 12.0})),
        raw("text", json!({"text": null})),
        raw("text", json!({"text": [1, null, "a", [2, 3]]})),
        raw("text", json!({"text": {"a": 1}})),
        raw("text", json!("a string, not an object")),
        raw("thinking", json!({"text": true})),
        raw("thinking", json!({})),
        raw(
            "tool_call",
            json!({"name": "Bash", "input": {"command": "é".repeat(90)}}),
        ),
        raw(
            "tool_call",
            json!({"name": "Bash", "input": {"command": "x".repeat(80)}}),
        ),
        raw(
            "tool_call",
            json!({"name": "Bash", "input": {"command": 7}}),
        ),
        raw(
            "tool_call",
            json!({"name": "Read", "input": {"path": "/a", "2": 1, "b": [], "1": {}}}),
        ),
        raw(
            "tool_call",
            json!({"name": "Edit", "input": {"file_path": "/f", "n": 1.5e300}}),
        ),
        raw("tool_call", json!({"name": null, "input": null})),
        raw("tool_call", json!({"name": 3, "input": 0})),
        raw("tool_call", json!({"input": "just a string"})),
        raw("tool_call", json!({"name": "Grep", "input": {}})),
        raw("tool_result", json!({"output": null})),
        raw(
            "tool_result",
            json!({"output": {"stdout": "ok", "code": 0}}),
        ),
        raw("tool_result", json!({"output": -0.5})),
        raw("tool_result", json!({"output": long_lines.join("\n")})),
        raw("tool_result", json!({"output": "x\n".repeat(500)})),
        raw(
            "init",
            json!({"model": "claude-opus-4-5", "sessionId": "abc"}),
        ),
        raw("init", json!({"model": ""})),
        raw("error", json!({"message": "boom"})),
        raw("error", json!({})),
        raw("compaction", json!({"text": "shown by nothing"})),
        raw("status", json!({})),
        raw("never-heard-of", json!({"text": "x"})),
    ]
}

/// What the original store appended for each raw message (`null`: nothing; `{threw}`: it threw).
fn original(bun: &Path, raws: &[RawMessage]) -> Vec<Value> {
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/original/convert-oracle.ts");
    let mut child = Command::new(bun)
        .arg(&oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bun starts");
    let input = serde_json::to_vec(raws).expect("raw messages serialise");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("the oracle ends");
    writer
        .join()
        .expect("writer thread")
        .expect("stdin written");
    assert!(
        out.status.success(),
        "the original store failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    assert_eq!(answers.len(), raws.len(), "one answer per raw message");
    answers
}

/// A message as both stores show it, less the seqId (each numbers its own session).
fn shown(mut message: Value) -> Value {
    if let Some(m) = message.as_object_mut() {
        m.remove("seqId");
    }
    message
}

#[test]
fn every_recorded_and_edge_case_message_converts_as_the_original_store_converts_it() {
    let Some(bun) = bun() else { return };
    let mut raws = recorded();
    let recorded_count = raws.len();
    assert!(
        recorded_count > 100,
        "only {recorded_count} recorded messages"
    );
    raws.extend(edge_cases());
    let answers = original(&bun, &raws);
    let mut compared = 0;
    for (raw, answer) in raws.into_iter().zip(answers) {
        let what = format!("{} {} {}", raw.kind, raw.id, raw.content);
        let kind = raw.kind.clone();
        let mine = convert_raw_message(raw).map(|m| serde_json::to_value(m).expect("serialises"));
        match (answer.get("threw"), mine) {
            // The original throws on a tool result without output (`undefined.split`) and loses the
            // batch; agent-store shows an empty result instead (src/messages/convert.rs).
            (Some(threw), Some(m)) if kind == "tool_result" => {
                assert_eq!(m["content"], "", "{what}: the original threw {threw}")
            }
            (Some(threw), _) => panic!("{what}: the original threw {threw}"),
            // Kinds agent-store's own adapters add, which the original does not know.
            (None, Some(_)) if matches!(kind.as_str(), "retry" | "notice") => {
                assert!(answer.is_null(), "{what}: {answer}")
            }
            (None, mine) => {
                assert_eq!(
                    mine.map(shown),
                    Some(shown(answer.clone())).filter(|a| !a.is_null()),
                    "{what}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > recorded_count / 2, "only {compared} compared");
}
