//! The stall action `resume` (issue 14, contract "Agents under control"): a session that makes no
//! progress for `stall.after` is stopped and resumed with its provider's own resume and the nudge prompt,
//! until `policy.stall_resumes` resumes in a row brought no progress; then the next stall stops it as
//! `interrupt` does. The real engine runs the fake CLIs replaying what the real ones print with no network
//! (tests/fixtures/{claude,codex}/offline.jsonl: Claude's `api_retry` lines, Codex's "Reconnecting…"
//! errors), so the agents retry and never progress; what each run was given is read from the fakes' argv
//! and stdin records.

mod providers_support;

use std::path::Path;

use agent_store::messages::policy::PolicyPatch;
use agent_store::messages::wire::{AgentSession, AgentStatus, MsgRole};
use providers_support::*;
use serde_json::{json, Value};

const RESUMES: u32 = 2;

fn few_resumes(config: &mut agent_store::config::Config, _: &Path) {
    config.policy.stall_resumes = RESUMES;
}

fn texts(s: &AgentSession, role: MsgRole) -> Vec<String> {
    s.messages
        .iter()
        .filter(|m| m.role == role)
        .map(|m| m.content.clone())
        .collect()
}

async fn stall(h: &Harness, project: &str, after: &str) {
    let patch: PolicyPatch =
        serde_json::from_value(json!({"stall": {"after": after, "action": "resume"}})).unwrap();
    h.engine.update_policy(project, patch).await.unwrap();
}

fn resumes(s: &AgentSession) -> usize {
    texts(s, MsgRole::System)
        .iter()
        .filter(|t| *t == "Resumed after a stall")
        .count()
}

/// Drives a session through the stall resumes, each step synchronised on what the session or the fake
/// shows; answers the recorded argv of every run and the session as it ended.
///
/// 1. Once the agent named its conversation and retried, a stall of 1s under `resume`.
/// 2. At the first resume the threshold becomes 1h, so the resumed process lives until it recorded how
///    it was started (a stall could otherwise stop it before its interpreter got that far).
/// 3. Then 300ms again: it stalls, is resumed once more, stalls, and is stopped for good.
async fn resumed_until_it_stops(
    h: &Harness,
    project: &str,
    record: &Path,
) -> (Vec<Vec<String>>, AgentSession) {
    eventually(PATIENCE, || async {
        let s = h.session(project).await;
        s.messages
            .iter()
            .any(|m| m.content.contains("Reconnecting") || m.content.starts_with("API retry"))
            .then_some(())
    })
    .await;
    stall(h, project, "1s").await;
    eventually(PATIENCE, || async {
        (resumes(&h.session(project).await) >= 1).then_some(())
    })
    .await;
    stall(h, project, "1h").await;
    eventually(PATIENCE, || async {
        (invocations(record).len() >= 2).then_some(())
    })
    .await;
    let s = h.session(project).await;
    assert_eq!(
        (s.status, s.error.as_deref()),
        (AgentStatus::Running, None),
        "resumed: running again, the stall's error cleared"
    );
    stall(h, project, "300ms").await;
    let last = format!("Stalled: no progress for 0 min (resumes without progress: {RESUMES})");
    let s = eventually(PATIENCE, || async {
        let s = h.session(project).await;
        (s.status == AgentStatus::Error && s.error.as_deref() == Some(last.as_str())).then_some(s)
    })
    .await;
    (invocations(record), s)
}

/// The session says each resume, and its user messages after the first prompt are the nudges.
fn assert_resumed_in_the_session(s: &AgentSession, nudge: &str) {
    assert_eq!(
        resumes(s),
        RESUMES as usize,
        "{:?}",
        texts(s, MsgRole::System)
    );
    let users = texts(s, MsgRole::User);
    assert_eq!(users.len(), 1 + RESUMES as usize, "{users:?}");
    assert!(users[1..].iter().all(|u| u == nudge), "{users:?}");
}

#[actix_rt::test]
async fn a_stalled_claude_is_resumed_with_its_conversation_and_the_nudge_until_that_stops_helping()
{
    let h = start(few_resumes).await;
    // The real CLI with no network: its init line, then api_retry lines, and no result while it waits.
    let retrying = h.path("retrying.jsonl");
    let recorded = std::fs::read_to_string(fixture("claude/offline.jsonl")).unwrap();
    let lines: Vec<&str> = recorded
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["type"] == "system")
        .collect();
    std::fs::write(&retrying, lines.join("\n") + "\n").unwrap();
    let conversation = serde_json::from_str::<Value>(lines[0]).unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (record, pid_file) = (h.path("record"), h.path("pids"));
    h.start_session(
        "cl",
        "claude",
        "fix the build",
        &[
            ("FAKE_TRANSCRIPT", &retrying.to_string_lossy()),
            ("FAKE_RECORD", &record.to_string_lossy()),
            ("FAKE_PIDS", &pid_file.to_string_lossy()),
        ],
    )
    .await
    .unwrap();

    let (runs, s) = resumed_until_it_stops(&h, "cl", &record).await;
    let nudge = &h.config.policy.stall_nudge;
    assert_resumed_in_the_session(&s, nudge);
    assert!(!runs[0].contains(&"--resume".to_owned()), "{:?}", runs[0]);
    for run in &runs[1..] {
        assert!(
            run.windows(2)
                .any(|w| w == ["--resume", conversation.as_str()]),
            "resumed with Claude's own resume of its conversation: {run:?}"
        );
    }
    // Each process was given its prompt as a stream-json user message: the task, then the nudge.
    let prompts: Vec<String> = records(&record)
        .iter()
        .filter_map(|r| r.get("stdin"))
        .map(|m| {
            m["message"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(prompts[0], "fix the build");
    assert!(prompts.len() >= 2, "{prompts:?}");
    assert!(prompts[1..].iter().all(|p| p == nudge), "{prompts:?}");
    // Every run was stopped: none is left behind.
    assert_gone(&pids(&pid_file));
}

#[actix_rt::test]
async fn a_stalled_codex_is_resumed_with_exec_resume_and_the_nudge_as_its_prompt() {
    let h = start(few_resumes).await;
    let (record, pid_file) = (h.path("record"), h.path("pids"));
    let offline = fixture("codex/offline.jsonl");
    // The real codex with no network: "Reconnecting…" forever, never ending on its own.
    h.start_session(
        "cx",
        "codex",
        "fix the build",
        &[
            ("FAKE_TRANSCRIPT", &offline.to_string_lossy()),
            ("FAKE_MODE", "linger"),
            ("FAKE_RECORD", &record.to_string_lossy()),
            ("FAKE_PIDS", &pid_file.to_string_lossy()),
        ],
    )
    .await
    .unwrap();

    let (runs, s) = resumed_until_it_stops(&h, "cx", &record).await;
    let nudge = &h.config.policy.stall_nudge;
    assert_resumed_in_the_session(&s, nudge);
    let thread = "01a2270c-2d8a-71f0-820e-11b34e18cca7";
    for run in &runs[1..] {
        let argv = run.join(" ");
        assert!(
            argv.starts_with("exec --json --skip-git-repo-check")
                && argv.ends_with(&format!(" resume {thread} -- {nudge}")),
            "resumed with `exec resume <thread> -- <nudge>`: {argv}"
        );
    }
    assert_gone(&pids(&pid_file));
}

#[actix_rt::test]
async fn a_stalled_session_that_cannot_be_resumed_stays_stopped_and_says_why() {
    let h = start(few_resumes).await;
    // Retries from a Claude that never printed its init line: it never named a conversation to resume.
    let retrying = h.path("no-init.jsonl");
    let recorded = std::fs::read_to_string(fixture("claude/offline.jsonl")).unwrap();
    let lines: Vec<&str> = recorded
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["subtype"] == "api_retry")
        .collect();
    std::fs::write(&retrying, lines.join("\n") + "\n").unwrap();
    let record = h.path("record");
    let session = h
        .start_session(
            "nc",
            "claude",
            "fix the build",
            &[
                ("FAKE_TRANSCRIPT", &retrying.to_string_lossy()),
                ("FAKE_RECORD", &record.to_string_lossy()),
            ],
        )
        .await
        .unwrap();
    eventually(PATIENCE, || async {
        let s = h.session("nc").await;
        s.messages
            .iter()
            .any(|m| m.content.starts_with("API retry"))
            .then_some(())
    })
    .await;
    stall(&h, "nc", "300ms").await;
    let why = format!(
        "Not resumed after the stall: session {session} cannot be resumed: its agent never named its conversation"
    );
    let s = eventually(PATIENCE, || async {
        let s = h.session("nc").await;
        texts(&s, MsgRole::System).contains(&why).then_some(s)
    })
    .await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(s.error.as_deref(), Some("Stalled: no progress for 0 min"));
    assert_eq!(resumes(&s), 0);
    assert_eq!(invocations(&record).len(), 1, "nothing was started again");
}

#[actix_rt::test]
async fn a_session_waiting_for_a_tool_approval_is_not_stopped_by_its_stall() {
    let h = start(|c, _| {
        c.providers.get_mut("claude").unwrap().command = vec![fake("fake-claude-ask")];
    })
    .await;
    let ask: PolicyPatch = serde_json::from_value(json!({"approvals": "ask"})).unwrap();
    h.engine.update_policy("ap", ask).await.unwrap();
    let session = h
        .start_session("ap", "claude", "clean up", &[])
        .await
        .unwrap();
    let request = eventually(PATIENCE, || async {
        h.engine.approvals(Some("ap")).unwrap().pop()
    })
    .await;
    // It waits for a person: the stall comes, and the session says why it is left alone.
    stall(&h, "ap", "300ms").await;
    let said = "No progress for 0 min while a tool-permission request waits for an answer: \
                left to approvalTimeout, not resumed";
    let s = eventually(PATIENCE, || async {
        let s = h.session("ap").await;
        texts(&s, MsgRole::System)
            .iter()
            .any(|t| t == said)
            .then_some(s)
    })
    .await;
    assert_eq!(s.status, AgentStatus::Running);
    let allow = agent_store::providers::permissions::Decision::Allow {
        updated_input: None,
    };
    h.engine
        .answer_approval(&session, &request.request_id, allow)
        .await
        .expect("the agent still waits for the answer");
    let s = h.finished("ap").await;
    assert_eq!(s.status, AgentStatus::Done, "{:?}", s.error);
    assert_eq!(resumes(&s), 0);
}
