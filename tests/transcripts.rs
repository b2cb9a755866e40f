//! Real provider recordings (`../shared/transcripts/{claude,codex,ollama}/`, see SOURCES.md there) through
//! the adapters and the conversion, as `agent-store convert` runs them.
//!
//! Every file in those folders is tested, including files added after this test was written: the counts
//! of each role are checked against counts this test computes on its own from the raw JSON (a tool_use
//! block is a tool call, a text block is an assistant message, ...), as are the costs, the provider
//! session ids and how each run ended. The files present when this was written also have their counts
//! pinned, checked by hand.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use agent_store::cli::convert::{transcript_to_messages, Transcript};
use agent_store::config::ProviderKind;
use agent_store::messages::adapters::AdapterEvent;
use agent_store::messages::wire::MsgRole;
use serde_json::Value;

/// How many messages of each role, and how the run's events went.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expected {
    roles: BTreeMap<&'static str, usize>,
    /// (cost_usd, input_tokens, output_tokens) of each Cost event, in order.
    costs: Vec<(f64, u64, u64)>,
    provider_sessions: Vec<String>,
    /// Whether each Finished event is Ok, in order (the exact error texts are checked where pinned).
    finished: Vec<bool>,
    skipped_lines: usize,
}

impl Expected {
    fn count(&mut self, role: &'static str) {
        self.add(role, 1);
    }

    fn add(&mut self, role: &'static str, n: usize) {
        *self.roles.entry(role).or_default() += n;
    }
}

fn transcripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/transcripts")
}

/// A transcript's text; a failure names the file.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file of one provider's folder, listed now.
fn files(provider: &str) -> Vec<PathBuf> {
    let dir = transcripts().join(provider);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: the shared transcripts are needed: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no transcripts", dir.display());
    files
}

/// The file's JSON values, read here without the crate: a whole JSON array or object, else one value a
/// line, counting the non-blank lines that are not JSON.
fn raw_values(text: &str) -> (Vec<Value>, usize) {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => (items, 0),
        Ok(value) => (vec![value], 0),
        Err(_) => {
            let mut values = Vec::new();
            let mut skipped = 0;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str(line) {
                    Ok(v) => values.push(v),
                    Err(_) => skipped += 1,
                }
            }
            (values, skipped)
        }
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn n(v: Option<&Value>, key: &str) -> u64 {
    v.and_then(|v| v.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Claude `system` subtypes shown as a system message (besides init).
const CLAUDE_SHOWN_SUBTYPES: [&str; 4] = [
    "api_retry",
    "compact_boundary",
    "task_started",
    "task_notification",
];

fn expected_claude(values: &[Value]) -> Expected {
    let mut e = Expected::default();
    // The text of a synthetic API-error reply, which the failed result repeats (shown once).
    let mut api_error: Option<String> = None;
    for v in values {
        match s(v, "type") {
            Some("system") if s(v, "subtype") == Some("init") => {
                e.count("system");
                e.provider_sessions
                    .extend(s(v, "session_id").map(String::from));
            }
            Some("system")
                if CLAUDE_SHOWN_SUBTYPES.contains(&s(v, "subtype").unwrap_or(""))
                    || (s(v, "subtype") == Some("status") && s(v, "status").is_some()) =>
            {
                e.count("system")
            }
            Some("assistant") if v.get("error").is_some_and(|x| !x.is_null()) => {
                e.count("system");
                let texts: Vec<&str> = v["message"]["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| s(b, "text"))
                    .collect();
                api_error = Some(texts.join("\n"));
            }
            Some("assistant") => {
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    match s(block, "type") {
                        Some("text") => e.count("assistant"),
                        Some("thinking") => e.count("thinking"),
                        Some("tool_use" | "server_tool_use" | "mcp_tool_use") => {
                            e.count("tool-call")
                        }
                        _ => {}
                    }
                }
            }
            Some("user") => {
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    if s(block, "type") == Some("tool_result") {
                        e.count("tool-result");
                    }
                }
            }
            Some("result") => {
                let usage = v.get("usage");
                if v.get("total_cost_usd").is_some() || usage.is_some() {
                    let input = n(usage, "input_tokens")
                        + n(usage, "cache_creation_input_tokens")
                        + n(usage, "cache_read_input_tokens");
                    let cost = v["total_cost_usd"].as_f64().unwrap_or(0.0);
                    e.costs.push((cost, input, n(usage, "output_tokens")));
                }
                let failed =
                    v["is_error"] == Value::Bool(true) || s(v, "subtype") != Some("success");
                if failed && api_error.take().as_deref() != s(v, "result") {
                    e.count("system");
                }
                e.finished.push(!failed);
            }
            _ => {}
        }
    }
    e
}

const CODEX_TOOL_ITEMS: [&str; 5] = [
    "command_execution",
    "file_change",
    "mcp_tool_call",
    "web_search",
    "todo_list",
];

fn expected_codex(values: &[Value]) -> Expected {
    let mut e = Expected::default();
    let (mut tools, mut tools_done, mut done) = (HashSet::new(), HashSet::new(), HashSet::new());
    let (mut input, mut output) = (0, 0);
    let mut last_error: Option<String> = None;
    for v in values {
        match s(v, "type") {
            Some("thread.started") => {
                e.count("system");
                e.provider_sessions
                    .extend(s(v, "thread_id").map(String::from));
            }
            // Usage is the thread's running total.
            Some("turn.completed") => {
                input = n(v.get("usage"), "input_tokens").max(input);
                output = n(v.get("usage"), "output_tokens").max(output);
                e.costs.push((0.0, input, output));
                e.finished.push(true);
            }
            // The error an `error` line just showed is not shown again.
            Some("turn.failed") => {
                if last_error.take().as_deref() != s(&v["error"], "message") {
                    e.count("system");
                }
                e.finished.push(false);
            }
            Some("error") => {
                e.count("system");
                let text = s(v, "message").unwrap_or_default();
                if !text.starts_with("Reconnecting...") {
                    last_error = Some(text.to_owned());
                }
            }
            Some(phase) if phase.starts_with("item.") => {
                let item = &v["item"];
                let (id, kind) = (
                    s(item, "id").unwrap_or_default(),
                    s(item, "type").unwrap_or_default(),
                );
                let completed = phase == "item.completed";
                if CODEX_TOOL_ITEMS.contains(&kind) {
                    tools.insert(id);
                    if completed {
                        tools_done.insert(id);
                    }
                } else if completed && done.insert(id) {
                    match kind {
                        "agent_message" => e.count("assistant"),
                        "reasoning" => e.count("thinking"),
                        "error" => e.count("system"),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    e.add("tool-call", tools.len());
    e.add("tool-result", tools_done.len());
    e
}

fn expected_ollama(values: &[Value]) -> Expected {
    let mut e = Expected::default();
    let (mut input, mut output) = (0, 0);
    for v in values {
        if v.get("error").is_some_and(|e| !e.is_null()) {
            e.count("system");
            e.finished.push(false);
            continue;
        }
        let message = &v["message"];
        if s(message, "thinking").is_some_and(|t| !t.is_empty()) {
            e.count("thinking");
        }
        if s(message, "content").is_some_and(|t| !t.is_empty()) {
            e.count("assistant");
        }
        e.add(
            "tool-call",
            message["tool_calls"].as_array().map_or(0, Vec::len),
        );
        if v["done"] == Value::Bool(true) {
            input += n(Some(v), "prompt_eval_count");
            output += n(Some(v), "eval_count");
            e.costs.push((0.0, input, output));
            e.finished.push(true);
        }
    }
    e
}

/// What the conversion actually produced, in the same terms.
fn actual(t: &Transcript) -> Expected {
    let mut a = Expected {
        skipped_lines: t.skipped_lines,
        ..Expected::default()
    };
    for m in &t.messages {
        a.count(m.role.as_str());
    }
    for event in &t.events {
        match event {
            AdapterEvent::Cost {
                cost_usd,
                input_tokens,
                output_tokens,
            } => a.costs.push((*cost_usd, *input_tokens, *output_tokens)),
            AdapterEvent::ProviderSession(id) => a.provider_sessions.push(id.clone()),
            AdapterEvent::Finished(result) => a.finished.push(result.is_ok()),
            AdapterEvent::Message(_) => {}
        }
    }
    a
}

fn convert(kind: ProviderKind, path: &Path) -> Transcript {
    let text = read(path);
    transcript_to_messages(kind, &text)
        .unwrap_or_else(|e| panic!("{}: conversion failed: {e}", path.display()))
}

/// Converts every file of a provider's folder and compares it with the independent reading.
fn check_all(provider: &str, kind: ProviderKind, expect: fn(&[Value]) -> Expected) {
    for path in files(provider) {
        let text = read(&path);
        let (values, skipped) = raw_values(&text);
        let mut expected = expect(&values);
        expected.skipped_lines = skipped;
        expected.roles.retain(|_, n| *n > 0);
        let t = convert(kind, &path);
        assert_eq!(actual(&t), expected, "{}", path.display());
        assert!(
            !t.messages.iter().any(|m| m.role == MsgRole::User),
            "{}",
            path.display()
        );
        let ids: HashSet<&str> = t.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids.len(),
            t.messages.len(),
            "{}: message ids repeat",
            path.display()
        );
        let seq: Vec<u64> = t.messages.iter().map(|m| m.seq_id).collect();
        assert_eq!(
            seq,
            (1..=t.messages.len() as u64).collect::<Vec<_>>(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn every_claude_transcript_converts_as_its_raw_json_says() {
    check_all("claude", ProviderKind::Claude, expected_claude);
}

#[test]
fn every_codex_transcript_converts_as_its_raw_json_says() {
    check_all("codex", ProviderKind::Codex, expected_codex);
}

#[test]
fn every_ollama_transcript_converts_as_its_raw_json_says() {
    check_all("ollama", ProviderKind::Ollama, expected_ollama);
}

/// (provider folder, file, [assistant, thinking, tool-call, tool-result, system]) counted by hand.
const PINNED: [(&str, &str, [usize; 5]); 10] = [
    (
        "claude",
        "claude-agent-sdk-gleam__golden_basic_query.ndjson",
        [1, 0, 0, 0, 1],
    ),
    (
        "claude",
        "happy-cli__sample-error-edit-and-multi-edit.json",
        [4, 0, 3, 3, 1],
    ),
    (
        "claude",
        "obers_ui__014042a4__subagents_qa_review.jsonl",
        // system: init, 3 task_started, 3 task_notification.
        [1, 3, 69, 69, 7],
    ),
    (
        "claude",
        "obers_ui__2fe20a88__subagents_api_error_EAI_AGAIN.jsonl",
        // The one text is Claude's synthetic "API Error" reply, shown once as a system message (not
        // again for the result); system: init, task_started, task_notification, the API error.
        [0, 5, 34, 34, 4],
    ),
    ("codex", "agentcmd__stream-output-2.jsonl", [1, 1, 1, 1, 1]),
    ("codex", "agentcmd__stream-output-3.jsonl", [1, 1, 1, 1, 1]),
    ("codex", "agentcmd__stream-output-5.jsonl", [1, 2, 1, 1, 1]),
    (
        "codex",
        "agentcmd__stream-output-multi-1.jsonl",
        [0, 0, 0, 0, 1],
    ),
    (
        "ollama",
        "semantic-kernel__chat_completion_multiple_function_calls_test_response.txt",
        [0, 0, 5, 0, 0],
    ),
    (
        "ollama",
        "semantic-kernel__chat_completion_test_response_stream.txt",
        [5, 0, 0, 0, 0],
    ),
];

fn kind_of(provider: &str) -> ProviderKind {
    match provider {
        "claude" => ProviderKind::Claude,
        "codex" => ProviderKind::Codex,
        _ => ProviderKind::Ollama,
    }
}

fn load(provider: &str, file: &str) -> Transcript {
    convert(kind_of(provider), &transcripts().join(provider).join(file))
}

#[test]
fn the_known_transcripts_give_the_role_counts_checked_by_hand() {
    let roles = [
        MsgRole::Assistant,
        MsgRole::Thinking,
        MsgRole::ToolCall,
        MsgRole::ToolResult,
        MsgRole::System,
    ];
    for (provider, file, counts) in PINNED {
        let t = load(provider, file);
        let got: Vec<usize> = roles
            .iter()
            .map(|r| t.messages.iter().filter(|m| m.role == *r).count())
            .collect();
        assert_eq!(got, counts, "{provider}/{file}");
        assert_eq!(t.skipped_lines, 0, "{provider}/{file}");
    }
}

fn costs(t: &Transcript) -> Vec<(f64, u64, u64)> {
    actual(t).costs
}

#[test]
fn claude_costs_are_the_result_line_totals_not_a_sum_over_lines() {
    // input = input_tokens + cache_creation_input_tokens + cache_read_input_tokens of the result line.
    let cases = [
        (
            "claude-agent-sdk-gleam__golden_basic_query.ndjson",
            (0.1354875, 10 + 21570, 25),
        ),
        (
            "happy-cli__sample-error-edit-and-multi-edit.json",
            (0.20190135, 27 + 1499 + 72909, 851),
        ),
        (
            "obers_ui__2fe20a88__subagents_api_error_EAI_AGAIN.jsonl",
            (0.5552176, 6 + 57185 + 157738, 6154),
        ),
    ];
    for (file, cost) in cases {
        assert_eq!(costs(&load("claude", file)), [cost], "{file}");
    }
}

#[test]
fn the_eai_again_run_ends_in_an_error() {
    let t = load(
        "claude",
        "obers_ui__2fe20a88__subagents_api_error_EAI_AGAIN.jsonl",
    );
    let text = "API Error: Unable to connect to API (EAI_AGAIN)";
    assert_eq!(
        t.events.last(),
        Some(&AdapterEvent::Finished(Err(text.into())))
    );
    let last = t.messages.last().expect("messages");
    assert_eq!(
        (last.role, last.content.as_str()),
        (MsgRole::System, &*format!("Error: {text}"))
    );
}

#[test]
fn the_truncated_codex_capture_never_finishes() {
    let t = load("codex", "agentcmd__stream-output-multi-1.jsonl");
    assert!(
        !t.events
            .iter()
            .any(|e| matches!(e, AdapterEvent::Finished(_))),
        "{:?}",
        t.events
    );
    assert_eq!(
        actual(&t).provider_sessions,
        ["019a2d7b-c0ed-75a0-8908-de832785d47f"]
    );
}

#[test]
fn subagent_messages_keep_their_parent_tool_use() {
    let t = load("claude", "obers_ui__014042a4__subagents_qa_review.jsonl");
    let parents: BTreeSet<&str> = t
        .events
        .iter()
        .filter_map(|e| match e {
            AdapterEvent::Message(raw) => raw.parent_id.as_deref(),
            _ => None,
        })
        .collect();
    // Three Task subagents (SOURCES.md).
    assert_eq!(parents.len(), 3, "{parents:?}");
}
