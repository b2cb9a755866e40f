//! Agents under control with real runners (issue 15): the real engine runs `tests/fixtures/bin/
//! fake-claude-ask`, which speaks Claude's stdio permission channel as the real CLI does (control_request
//! `can_use_tool` on stdout, control_response on stdin), and the fake `claude` replaying result lines for
//! budgets and for cost over several runs. Approvals are answered through the engine, as the API does.

mod providers_support;

use std::path::Path;

use agent_store::config::{ProviderConfig, ProviderKind};
use agent_store::messages::policy::PolicyPatch;
use agent_store::messages::wire::{AgentSession, AgentStatus, MsgRole};
use agent_store::providers::permissions::Decision;
use agent_store::CommandError;
use providers_support::*;
use serde_json::{json, Value};

fn asking(config: &mut agent_store::config::Config, _: &Path) {
    config.providers.insert(
        "claude".into(),
        ProviderConfig {
            kind: ProviderKind::Claude,
            command: vec![fake("fake-claude-ask")],
            default_model: None,
            host: None,
            adapter: None,
            allow_bypass_permissions: false,
        },
    );
}

async fn policy(h: &Harness, project: &str, patch: Value) {
    let patch: PolicyPatch = serde_json::from_value(patch).unwrap();
    h.engine.update_policy(project, patch).await.unwrap();
}

/// Waits until `n` requests of the project wait for an answer; answers them, oldest first.
async fn pending(h: &Harness, project: &str, n: usize) -> Vec<agent_store::engine::Approval> {
    eventually(PATIENCE, || async {
        let list = h.engine.approvals(Some(project)).unwrap();
        (list.len() == n).then_some(list)
    })
    .await
}

fn texts(s: &AgentSession, role: MsgRole) -> Vec<String> {
    s.messages
        .iter()
        .filter(|m| m.role == role)
        .map(|m| m.content.clone())
        .collect()
}

/// The control_response lines the fake read on its stdin.
fn answers(record: &Path) -> Vec<Value> {
    records(record)
        .into_iter()
        .filter_map(|r| r.get("stdin").cloned())
        .filter(|v| v["type"] == "control_response")
        .collect()
}

#[actix_rt::test]
async fn an_allowed_request_runs_the_tool_with_the_updated_input() {
    let h = start(asking).await;
    policy(&h, "a", json!({"approvals": "ask"})).await;
    let record = h.path_str("record");
    let session = h
        .start_session("a", "claude", "clean up", &[("FAKE_RECORD", &record)])
        .await
        .unwrap();
    let [a] = &pending(&h, "a", 1).await[..] else {
        unreachable!()
    };
    assert_eq!(
        (a.session_id.as_str(), a.tool_name.as_str()),
        (session.as_str(), "Bash")
    );
    assert_eq!(a.input["command"], "rm -rf build");
    // The approval book answers at once; the project's health hears of the approval (and of the running
    // status it needs) through its session's reports, a moment later.
    eventually(PATIENCE, || async {
        let health = h.engine.health().await.unwrap();
        let mine = health.into_iter().find(|p| p.project_id == "a")?;
        (mine.attention_score, mine.attention_reason.as_deref())
            .eq(&(110, Some("awaiting approval")))
            .then_some(())
    })
    .await;

    let allow = Decision::Allow {
        updated_input: Some(json!({"command": "rm -rf build/tmp"})),
    };
    h.engine
        .answer_approval(&session, &a.request_id, allow.clone())
        .await
        .unwrap();
    assert_eq!(
        h.engine
            .answer_approval(&session, &a.request_id, allow)
            .await,
        Err(CommandError::ApprovalNotFound),
        "answered once"
    );
    let s = h.finished("a").await;
    assert_done(&s);
    assert!(texts(&s, MsgRole::ToolResult).contains(&"ran: rm -rf build/tmp".to_owned()));
    assert!(
        texts(&s, MsgRole::System).contains(&"Allowed Bash: rm -rf build".to_owned()),
        "{:?}",
        texts(&s, MsgRole::System)
    );
    let argv = invocations(Path::new(&record)).remove(0).join(" ");
    assert!(argv.contains("--permission-prompt-tool stdio"), "{argv}");
    let [answer] = &answers(Path::new(&record))[..] else {
        panic!("one answer")
    };
    assert_eq!(answer["response"]["subtype"], "success");
    assert_eq!(answer["response"]["request_id"], a.request_id.as_str());
    assert_eq!(answer["response"]["response"]["behavior"], "allow");
    assert_eq!(
        answer["response"]["response"]["updatedInput"]["command"],
        "rm -rf build/tmp"
    );
}

#[actix_rt::test]
async fn a_denied_request_tells_the_agent_why_and_the_session_says_so() {
    let h = start(asking).await;
    policy(&h, "d", json!({"approvals": "ask"})).await;
    let session = h
        .start_session("d", "claude", "clean up", &[])
        .await
        .unwrap();
    let [a] = &pending(&h, "d", 1).await[..] else {
        unreachable!()
    };
    let deny = Decision::Deny {
        message: "not on this machine".into(),
    };
    h.engine
        .answer_approval(&session, &a.request_id, deny)
        .await
        .unwrap();
    let s = h.finished("d").await;
    assert_done(&s);
    assert!(texts(&s, MsgRole::System).contains(&"Denied Bash: not on this machine".to_owned()));
    assert!(texts(&s, MsgRole::ToolResult)
        .iter()
        .any(|t| t.contains("not on this machine")));
}

#[actix_rt::test]
async fn an_unanswered_request_is_denied_at_the_timeout() {
    let h = start(asking).await;
    policy(
        &h,
        "t",
        json!({"approvals": "ask", "approvalTimeout": "300ms"}),
    )
    .await;
    h.start_session("t", "claude", "clean up", &[])
        .await
        .unwrap();
    let s = h.finished("t").await;
    assert_done(&s);
    let system = texts(&s, MsgRole::System);
    assert!(
        system.contains(&"Denied Bash: no answer within 300ms (approvalTimeout)".to_owned()),
        "{system:?}"
    );
    assert!(h.engine.approvals(None).unwrap().is_empty());
}

#[actix_rt::test]
async fn two_requests_at_once_wait_and_are_answered_independently() {
    let h = start(asking).await;
    policy(&h, "two", json!({"approvals": "ask"})).await;
    let record = h.path_str("record");
    let session = h
        .start_session(
            "two",
            "claude",
            "go",
            &[("FAKE_ASK", "2"), ("FAKE_RECORD", &record)],
        )
        .await
        .unwrap();
    let list = pending(&h, "two", 2).await;
    assert_eq!(list[0].input["command"], "rm -rf build", "oldest first");
    assert_eq!(list[1].input["command"], "ls -N");
    // The second first: each answer reaches its own request.
    h.engine
        .answer_approval(
            &session,
            &list[1].request_id,
            Decision::Allow {
                updated_input: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        pending(&h, "two", 1).await[0].request_id,
        list[0].request_id
    );
    h.engine
        .answer_approval(
            &session,
            &list[0].request_id,
            Decision::Deny {
                message: "keep the build".into(),
            },
        )
        .await
        .unwrap();
    let s = h.finished("two").await;
    assert_done(&s);
    let results = texts(&s, MsgRole::ToolResult);
    assert!(results.contains(&"ran: ls -N".to_owned()), "{results:?}");
    assert!(
        results.iter().any(|r| r.contains("keep the build")),
        "{results:?}"
    );
    assert_eq!(answers(Path::new(&record)).len(), 2);
}

#[actix_rt::test]
async fn an_answer_after_the_agent_stopped_is_a_conflict_and_nothing_stays_pending() {
    let h = start(asking).await;
    policy(&h, "s", json!({"approvals": "ask"})).await;
    let pids = h.path_str("pids");
    let session = h
        .start_session("s", "claude", "go", &[("FAKE_PIDS", &pids)])
        .await
        .unwrap();
    let [a] = &pending(&h, "s", 1).await[..] else {
        unreachable!()
    };
    h.engine.stop_agent("s").await.unwrap();
    assert_gone(&wait_pids(Path::new(&pids), 1).await);
    eventually(PATIENCE, || async {
        h.engine.approvals(None).unwrap().is_empty().then_some(())
    })
    .await;
    assert_eq!(h.finished("s").await.status, AgentStatus::Done);
    let allow = Decision::Allow {
        updated_input: None,
    };
    assert_eq!(
        h.engine
            .answer_approval(&session, &a.request_id, allow)
            .await,
        Err(CommandError::SessionEnded)
    );
    let health = h.engine.health().await.unwrap();
    let mine = health.iter().find(|p| p.project_id == "s").unwrap();
    assert_ne!(mine.attention_reason.as_deref(), Some("awaiting approval"));
}

#[actix_rt::test]
async fn a_restart_in_between_leaves_nothing_pending_and_the_answer_finds_the_session_ended() {
    let h = start(asking).await;
    policy(&h, "r", json!({"approvals": "ask"})).await;
    let pids = h.path_str("pids");
    let session = h
        .start_session("r", "claude", "go", &[("FAKE_PIDS", &pids)])
        .await
        .unwrap();
    let request = pending(&h, "r", 1).await[0].request_id.clone();
    let Harness {
        engine,
        config,
        dir,
    } = h;
    engine.shutdown().await;
    assert_gone(&wait_pids(&dir.path().join("pids"), 1).await);
    let providers = agent_store::providers::from_config(&config).unwrap();
    let h = start_with(config, dir, providers).await;
    assert!(h.engine.approvals(None).unwrap().is_empty());
    // The policy was stored: the project still asks.
    assert_eq!(
        serde_json::to_value(h.engine.policy("r").unwrap()).unwrap()["approvals"],
        "ask"
    );
    assert_eq!(
        h.engine
            .answer_approval(
                &session,
                &request,
                Decision::Allow {
                    updated_input: None
                }
            )
            .await,
        Err(CommandError::SessionEnded)
    );
}

#[actix_rt::test]
async fn other_control_requests_are_refused_at_once_and_auto_asks_nothing() {
    let h = start(asking).await;
    policy(&h, "o", json!({"approvals": "ask"})).await;
    let record = h.path_str("record");
    let session = h
        .start_session(
            "o",
            "claude",
            "go",
            &[("FAKE_OTHER", "1"), ("FAKE_RECORD", &record)],
        )
        .await
        .unwrap();
    let [a] = &pending(&h, "o", 1).await[..] else {
        unreachable!()
    };
    let hook = records(Path::new(&record))
        .into_iter()
        .find_map(|r| r.get("hook_answer").cloned())
        .expect("the hook_callback was answered");
    assert_eq!(hook["subtype"], "error");
    assert!(hook["error"].as_str().unwrap().contains("hook_callback"));
    h.engine
        .answer_approval(
            &session,
            &a.request_id,
            Decision::Allow {
                updated_input: None,
            },
        )
        .await
        .unwrap();
    assert_done(&h.finished("o").await);

    // approvals "auto" (the default): no permission channel, nothing asked.
    let auto = h.path_str("auto");
    h.start_session("auto", "claude", "go", &[("FAKE_RECORD", &auto)])
        .await
        .unwrap();
    assert_done(&h.finished("auto").await);
    let argv = invocations(Path::new(&auto)).remove(0).join(" ");
    assert!(!argv.contains("--permission-prompt-tool"), "{argv}");
}

/// A copy of the recorded Claude session whose `result` line reports `cost` USD.
fn transcript_costing(h: &Harness, name: &str, cost: f64) -> String {
    let text = std::fs::read_to_string(fixture("claude/session.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if v["type"] == "result" {
                v["total_cost_usd"] = json!(cost);
            }
            v.to_string()
        })
        .collect();
    let path = h.path(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.to_string_lossy().into_owned()
}

#[actix_rt::test]
async fn each_claude_run_counts_from_zero_and_the_session_and_ledger_add_them_up() {
    let h = start(|_, _| {}).await;
    let transcript = transcript_costing(&h, "costly.jsonl", 0.3);
    let record = h.path_str("record");
    h.start_session(
        "runs",
        "claude",
        "first",
        &[("FAKE_TRANSCRIPT", &transcript), ("FAKE_RECORD", &record)],
    )
    .await
    .unwrap();
    assert_done(&h.finished("runs").await);
    // The follow-up resumes in a new process, whose total_cost_usd starts again from zero.
    h.engine.send_prompt("runs", "second".into()).await.unwrap();
    let s = eventually(PATIENCE, || async {
        let s = h.session("runs").await;
        (s.status == AgentStatus::Done && invocations(Path::new(&record)).len() == 2).then_some(s)
    })
    .await;
    assert!((s.cost_usd - 0.6).abs() < 1e-9, "{}", s.cost_usd);
    h.engine.flush().await.unwrap();
    let ledger = h.engine.project_cost("runs", None, None).await.unwrap();
    assert!((ledger.total_usd - s.cost_usd).abs() < 1e-9, "{ledger:?}");
    assert_eq!(ledger.input_tokens, s.input_tokens);
}

#[actix_rt::test]
async fn a_claude_result_over_the_session_budget_stops_it_and_the_cli_gets_its_own_guard() {
    let h = start(|_, _| {}).await;
    policy(&h, "bc", json!({"budget": {"sessionUsd": 0.05}})).await;
    let transcript = transcript_costing(&h, "costly.jsonl", 0.08);
    let record = h.path_str("record");
    h.start_session(
        "bc",
        "claude",
        "go",
        &[
            ("FAKE_TRANSCRIPT", &transcript),
            ("FAKE_RECORD", &record),
            ("FAKE_MODE", "stay"),
        ],
    )
    .await
    .unwrap();
    let s = h.finished("bc").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(
        s.error.as_deref(),
        Some("Budget exceeded: $0.08 of $0.05 (session)")
    );
    let argv = invocations(Path::new(&record)).remove(0).join(" ");
    assert!(argv.contains("--max-budget-usd 0.05"), "{argv}");
    let health = h.engine.health().await.unwrap();
    let mine = health.iter().find(|p| p.project_id == "bc").unwrap();
    assert_eq!(mine.attention_reason.as_deref(), Some("budget exceeded"));
}

#[actix_rt::test]
async fn codex_tokens_are_priced_from_the_configuration_or_said_to_have_no_price() {
    let h = start(|c, _| {
        c.pricing.insert(
            "house-model".into(),
            agent_store::messages::policy::Price {
                input_per_mtok: 2.0,
                output_per_mtok: 10.0,
            },
        );
    })
    .await;
    let options = |model: &str| agent_store::messages::commands::StartOptions {
        model: Some(model.into()),
        ..Default::default()
    };
    // The recorded turn: 5000 input tokens (4000 of them cached, counted at the input price), 120 output.
    h.start_with_options("priced", "codex", "go", options("house-model"))
        .await
        .unwrap();
    let s = h.finished("priced").await;
    assert_done(&s);
    assert!(
        (s.cost_usd - (5000.0 * 2.0 + 120.0 * 10.0) / 1e6).abs() < 1e-12,
        "{}",
        s.cost_usd
    );
    h.start_with_options("builtin", "codex", "go", options("gpt-5"))
        .await
        .unwrap();
    let s = h.finished("builtin").await;
    assert!(
        (s.cost_usd - (5000.0 * 1.25 + 120.0 * 10.0) / 1e6).abs() < 1e-12,
        "{}",
        s.cost_usd
    );

    h.start_with_options("unpriced", "codex", "go", options("mystery-1"))
        .await
        .unwrap();
    let s = h.finished("unpriced").await;
    assert_done(&s);
    assert_eq!((s.cost_usd, s.input_tokens), (0.0, 5000));
    let said: Vec<_> = texts(&s, MsgRole::System)
        .into_iter()
        .filter(|t| t.starts_with("No price is known for model \"mystery-1\""))
        .collect();
    assert_eq!(said.len(), 1, "{:?}", texts(&s, MsgRole::System));
}
