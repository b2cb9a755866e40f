//! The command lines the runners build, given to the REAL `claude` and `codex` (the npm packages
//! `@anthropic-ai/claude-code` and `@openai/codex`, versions pinned in .ci/run): every start option set,
//! the agent pointed at a loopback server that answers 401. A run that gets as far as asking that server
//! has had its whole command line accepted by the CLI's own parser (a flag it did not know would have
//! ended it with a usage error first); what the server received shows the options took effect.
//!
//! Each test skips with a message when its CLI is not on PATH, and fails instead when `CI=true`.

mod providers_support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use agent_store::messages::commands::StartOptions;
use agent_store::messages::wire::{AgentStatus, MsgRole};
use providers_support::*;
use serde_json::json;

/// The program on PATH, or None (a failure under CI).
fn installed(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let why = format!(
            "{program} is not on PATH: install it with `npm install -g @anthropic-ai/claude-code@2.1.197 @openai/codex@0.171.0`"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
    }
    found
}

/// What the loopback API received: one (path, body) per request.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, String)>>>);

impl Received {
    fn bodies(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }
}

/// Answers every request 401 the way each API does, and records it. Returns its base URL.
fn serve_401(received: Received) -> String {
    async fn answer(
        req: HttpRequest,
        body: web::Bytes,
        received: web::Data<Received>,
    ) -> HttpResponse {
        let path = req.path().to_owned();
        let text = String::from_utf8_lossy(&body).into_owned();
        received.0.lock().unwrap().push((path.clone(), text));
        let error = if path.contains("/responses") {
            json!({"error": {"message": "Incorrect API key provided: dummy.", "type": "invalid_request_error", "code": "invalid_api_key"}})
        } else {
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        };
        HttpResponse::Unauthorized().json(error)
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(received.clone()))
            .default_service(web::to(answer))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    url
}

fn dir(root: &Path, name: &str) -> String {
    let path = root.join(name);
    std::fs::create_dir_all(&path).unwrap();
    path.to_string_lossy().into_owned()
}

/// A git repository with one commit, for Claude's `--worktree`.
fn git_repo(path: &str) {
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(path)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "init"]);
}

#[actix_rt::test]
async fn claude_parses_every_option_the_runner_maps() {
    let Some(claude) = installed("claude") else {
        return;
    };
    let received = Received::default();
    let api = serve_401(received.clone());
    let scratch = tempfile::tempdir().unwrap();
    let home = dir(scratch.path(), "home");
    let config_dir = dir(scratch.path(), "claude-config");
    let work = dir(scratch.path(), "work");
    let extra = dir(scratch.path(), "extra");
    git_repo(&work);
    let h = start(move |c, _| {
        // The environment only a test may set (extraEnv refuses provider-prefixed keys): `env` runs
        // the real claude with a private HOME, a dummy key, the loopback API and no retries.
        let command = [
            "env".to_owned(),
            format!("HOME={home}"),
            "ANTHROPIC_API_KEY=sk-ant-dummy".into(),
            format!("ANTHROPIC_BASE_URL={api}"),
            "CLAUDE_CODE_MAX_RETRIES=0".into(),
            claude.to_string_lossy().into_owned(),
        ];
        c.providers.get_mut("claude").unwrap().command = command.to_vec();
    })
    .await;
    let options = StartOptions {
        cwd: Some(work.clone()),
        model: Some("claude-sonnet-4-5".into()),
        system_prompt: Some("Answer in haiku, marker Q7X.".into()),
        max_turns: Some(3),
        permission_mode: Some("acceptEdits".into()),
        claude_config_dir: Some(config_dir.clone()),
        extra_env: Some([("AGENT_STORE_TEST".to_string(), "1".to_string())].into()),
        additional_directories: Some(vec![extra]),
        worktree_name: Some("fix-1".into()),
        resume_on_restart: None,
    };
    // The project's policy adds the stdio permission channel and the CLI's own budget guard
    // (`--permission-prompt-tool stdio --max-budget-usd 1.5`): the real parser must take them too.
    let policy =
        serde_json::from_value(json!({"approvals": "ask", "budget": {"sessionUsd": 1.5}})).unwrap();
    h.engine.update_policy("p1", policy).await.unwrap();
    h.start_with_options("p1", "claude", "Say hello.", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    // It got as far as the API: the command line parsed, and the run failed on the 401 alone.
    assert_eq!(s.status, AgentStatus::Error);
    assert_eq!(
        s.error.as_deref(),
        Some("Invalid API key · Fix external API key")
    );
    let errors: Vec<&str> = s
        .messages
        .iter()
        .filter(|m| m.content.contains("Invalid API key"))
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        errors,
        ["Error: Invalid API key · Fix external API key"],
        "shown once, as an error"
    );
    assert_eq!(s.model, "claude-sonnet-4-5");
    let asked = received.bodies();
    assert!(
        asked
            .iter()
            .any(|(path, body)| path.ends_with("/v1/messages")
                && body.contains("Q7X")
                && body.contains("\"model\":\"claude-sonnet-4-5\"")),
        "the system prompt and the model reach the API: {:?}",
        asked.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    // --worktree fix-1 made Claude's worktree; CLAUDE_CONFIG_DIR got its files.
    assert!(Path::new(&work).join(".claude/worktrees/fix-1").is_dir());
    assert!(std::fs::read_dir(&config_dir).unwrap().next().is_some());

    // A follow-up is `--resume <session id>`, as a resume after a restart or a stall is: the real claude
    // takes it, finds the conversation it stored, and asks the API again with the new prompt.
    let before = received.bodies().len();
    h.engine
        .send_prompt("p1", "And again, marker R8Y.".into())
        .await
        .unwrap();
    let s = eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status.is_finished() && received.bodies().len() > before).then_some(s)
    })
    .await;
    assert_eq!(
        s.error.as_deref(),
        Some("Invalid API key · Fix external API key")
    );
    let asked = received.bodies();
    assert!(
        asked[before..]
            .iter()
            .any(|(path, body)| path.ends_with("/v1/messages")
                && body.contains("R8Y")
                && body.contains("Say hello.")),
        "the resumed conversation (the first prompt too) reaches the API with the follow-up"
    );
}

#[actix_rt::test]
async fn codex_parses_every_option_the_runner_maps_at_start_and_on_resume() {
    let Some(codex) = installed("codex") else {
        return;
    };
    let received = Received::default();
    let api = serve_401(received.clone());
    let scratch = tempfile::tempdir().unwrap();
    let home = dir(scratch.path(), "home");
    let codex_home = dir(scratch.path(), "home/.codex");
    let work = dir(scratch.path(), "work");
    let extra = dir(scratch.path(), "extra");
    let h = start(move |c, _| {
        // A private HOME and CODEX_HOME, and a model provider on the loopback API without retries,
        // as `-c` overrides before the runner's own `exec ...` arguments.
        let command = [
            "env".to_owned(),
            format!("HOME={home}"),
            format!("CODEX_HOME={codex_home}"),
            "LOOP_KEY=sk-dummy".into(),
            codex.to_string_lossy().into_owned(),
            "-c".into(),
            "model_provider=\"loop\"".into(),
            "-c".into(),
            "model_providers.loop.name=\"loop\"".into(),
            "-c".into(),
            format!("model_providers.loop.base_url=\"{api}/v1\""),
            "-c".into(),
            "model_providers.loop.env_key=\"LOOP_KEY\"".into(),
            "-c".into(),
            "model_providers.loop.request_max_retries=0".into(),
            "-c".into(),
            "model_providers.loop.stream_max_retries=0".into(),
        ];
        c.providers.get_mut("codex").unwrap().command = command.to_vec();
    })
    .await;
    let options = StartOptions {
        cwd: Some(work),
        model: Some("gpt-5-codex".into()),
        system_prompt: Some("Answer in haiku, marker Q7X.".into()),
        permission_mode: Some("plan".into()),
        additional_directories: Some(vec![extra]),
        extra_env: Some([("AGENT_STORE_TEST".to_string(), "1".to_string())].into()),
        ..StartOptions::default()
    };
    h.start_with_options("p1", "codex", "Say hello.", options)
        .await
        .unwrap();
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    let error = s.error.clone().unwrap_or_default();
    assert!(error.contains("401 Unauthorized"), "{error}");
    let shown = s
        .messages
        .iter()
        .filter(|m| m.role == MsgRole::System && m.content.contains("401 Unauthorized"))
        .count();
    assert_eq!(shown, 1, "the error and turn.failed are one message");
    let first = received.bodies();
    assert!(
        first
            .iter()
            .any(|(path, body)| path.ends_with("/v1/responses")
                && body.contains("Q7X")
                && body.contains("\"model\":\"gpt-5-codex\"")),
        "developer_instructions and the model reach the API"
    );
    // A follow-up resumes the thread: `exec [options] resume <thread> -- prompt` parses too.
    h.engine
        .send_prompt("p1", "And again.".into())
        .await
        .unwrap();
    eventually(PATIENCE, || async {
        let s = h.session("p1").await;
        (s.status.is_finished() && received.bodies().len() > first.len()).then_some(())
    })
    .await;
    let s = h.finished("p1").await;
    assert_eq!(s.status, AgentStatus::Error);
    assert!(s.error.unwrap_or_default().contains("401 Unauthorized"));
}

#[actix_rt::test]
async fn the_real_parsers_reject_what_they_do_not_know() {
    // The check above means something only if an unknown flag does end the run before the API.
    let (Some(claude), Some(codex)) = (installed("claude"), installed("codex")) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    for (program, args) in [
        (&claude, vec!["-p", "--no-such-flag", "x"]),
        (
            &codex,
            vec!["exec", "--json", "resume", "t", "--sandbox", "read-only"],
        ),
    ] {
        let out = std::process::Command::new(program)
            .args(&args)
            .env("HOME", scratch.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{program:?} {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("unknown option") || stderr.contains("unexpected argument"),
            "{program:?} {args:?}: {stderr}"
        );
    }
}
