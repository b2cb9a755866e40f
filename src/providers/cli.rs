//! The runners for agents that are command-line programs (Claude Code, Codex): one process per run, its
//! stdout read line by line through the provider's adapter, and the run's end decided from what the stream
//! said and how the process exited.
//!
//! A run ends when the process exits. Once the agent has answered every prompt it was given, it gets
//! `stop_grace` to exit on its own before its group is terminated; when the leader exits, whatever it left
//! behind in its group is terminated too, so no run leaves an orphan.

use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::ChildStdout;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::claude_control::{may_be_control, ControlChannel};
use super::feed::{Feeder, NO_RESULT};
use super::lines::{Line, LineSplitter};
use super::process::{self, exit_error, Invocation, Spawned, StderrLog};
use super::turns::{Driver, Live, Notes, Run, RunEnd, RunProvider};
use super::{claude, codex, EventSink, ProviderError, Refusal, StartSpec};
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::messages::adapters::adapter_for;
use crate::messages::wire::UnixMs;

/// How many follow-ups may wait in a running Claude's input at once; more go to the next run.
const INPUT_QUEUE: usize = 16;
/// Control protocol answers waiting for a running Claude's stdin.
const CONTROL_QUEUE: usize = 64;
/// How long to wait for stderr to close after the process group is gone.
const STDERR_WAIT: Duration = Duration::from_millis(500);

/// Which command-line agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Claude,
    Codex,
}

/// A provider whose agent is a command-line program.
pub(crate) type CliProvider = RunProvider<CliDriver>;

pub(crate) struct CliDriver {
    agent: Agent,
    provider: String,
    command: Vec<String>,
    /// The program's name for error messages ("claude exited with status 1").
    program: String,
    max_line: usize,
    grace: Duration,
    /// Prices by model (built-in and `[pricing.<model>]`), for Codex, which reports tokens only.
    prices: std::collections::BTreeMap<String, crate::messages::policy::Price>,
}

impl CliDriver {
    /// The provider `name` configured as `provider` (of kind claude or codex).
    pub(crate) fn provider(
        name: &str,
        provider: &ProviderConfig,
        config: &Config,
    ) -> Result<CliProvider, String> {
        let agent = match provider.kind {
            ProviderKind::Claude => Agent::Claude,
            ProviderKind::Codex => Agent::Codex,
            other => return Err(format!("kind {other:?} is not a command-line agent")),
        };
        let program = provider
            .command
            .first()
            .map(|p| {
                Path::new(p)
                    .file_name()
                    .map_or(p.clone(), |f| f.to_string_lossy().into_owned())
            })
            .ok_or("command must name a program")?;
        Ok(RunProvider::new(CliDriver {
            agent,
            provider: name.to_owned(),
            command: provider.command.clone(),
            program,
            max_line: usize::try_from(config.limits.max_line.as_u64()).unwrap_or(usize::MAX),
            grace: config.timers.stop_grace,
            prices: crate::messages::policy::DEFAULT_PRICES
                .iter()
                .filter_map(|(m, _, _)| config.price(m).map(|p| (m.to_string(), p)))
                .chain(config.pricing.clone())
                .collect(),
        }))
    }
}

/// What a session keeps between its runs (its runner owns it).
#[derive(Default)]
pub(crate) struct CliMemory {
    /// The agent's own session (Claude) or thread (Codex) id, to resume.
    resume: Option<String>,
    /// Its stderr lines, over all its runs.
    stderr: StderrLog,
}

/// What a run tells its session's memory.
pub(crate) enum CliNote {
    /// The agent named its session (thread) id.
    Resume(String),
    /// Complete stderr lines, as they arrive.
    Stderr(Vec<Vec<u8>>),
}

impl Driver for CliDriver {
    type Memory = CliMemory;
    type Note = CliNote;

    fn stderr(&self, memory: &CliMemory) -> Option<(Vec<String>, Option<UnixMs>)> {
        Some(memory.stderr.snapshot())
    }

    fn remember(&self, memory: &mut CliMemory, note: CliNote) {
        match note {
            CliNote::Resume(id) => memory.resume = Some(id),
            CliNote::Stderr(lines) => lines.iter().for_each(|line| memory.stderr.push(line)),
        }
    }

    /// `codex exec` reads no input once started, and a run that cannot reach its API retries for as long
    /// as it likes: a follow-up kept for "after the run" may never be delivered.
    fn busy_reason(&self) -> Option<String> {
        (self.agent == Agent::Codex).then(|| {
            format!(
                "{} takes no input while it runs: send the follow-up once the run is over (or stop it)",
                self.program
            )
        })
    }

    fn seed(&self, memory: &mut CliMemory, _spec: &StartSpec, resume: super::Resume) {
        memory.resume = resume.conversation;
    }

    fn check(&self, requested: &StartSpec) -> Result<(), Refusal> {
        match self.agent {
            Agent::Claude => claude::check(requested, &self.provider),
            Agent::Codex => codex::check(requested, &self.provider),
        }
    }

    fn launch(&self, memory: &mut CliMemory, run: Run<CliNote>) -> Result<Live, ProviderError> {
        let resume = if run.follow_up {
            memory.resume.clone()
        } else {
            None
        };
        let stderr_notes = run.notes.clone();
        let spec = &run.spec;
        let (args, env) = match self.agent {
            Agent::Claude => (claude::args(spec, resume.as_deref()), claude::env(spec)),
            Agent::Codex => (
                codex::args(spec, &run.prompt, resume.as_deref()),
                spec.extra_env.clone(),
            ),
        };
        let mut spawned = process::spawn(Invocation {
            command: self.command.clone(),
            args,
            cwd: spec.cwd.clone(),
            env,
            stdin: self.agent == Agent::Claude,
            provider: self.provider.clone(),
            stderr_log: Some(Box::new(move |lines| {
                let notes = stderr_notes.clone();
                Box::pin(async move { notes.send(CliNote::Stderr(lines)).await })
            })),
        })?;
        tracing::info!(
            session = %spec.session_id,
            pgid = spawned.group.id(),
            resume = resume.as_deref().unwrap_or(""),
            "{} started",
            self.program
        );
        let outstanding = Arc::new(AtomicU32::new(1));
        let close = Arc::new(Notify::new());
        let mut control = None;
        let input = spawned.stdin.take().map(|stdin| {
            let (tx, rx) = mpsc::channel(INPUT_QUEUE);
            let (answers, answers_rx) = mpsc::channel(CONTROL_QUEUE);
            control = Some(ControlChannel {
                session_id: spec.session_id.clone(),
                stdin: answers,
                permissions: run.sink.permissions().filter(|_| spec.ask_permissions),
            });
            tokio::spawn(claude::write_prompts(
                stdin,
                run.prompt.clone(),
                rx,
                answers_rx,
                close.clone(),
                outstanding.clone(),
            ));
            tx
        });
        let feeder = Feeder::new(&spec.session_id, adapter_for(self.agent.kind()));
        let feeder = match self.agent {
            // Every Claude process counts its cost from zero: a follow-up's run adds to the session's.
            Agent::Claude => feeder.per_run(),
            // Codex reports the thread's running token totals and no price.
            Agent::Codex => {
                let model = if spec.model.is_empty() {
                    "(codex's default model)"
                } else {
                    spec.model.as_str()
                };
                feeder.priced(model, self.prices.get(model).copied())
            }
        };
        let silenced = Arc::new(AtomicBool::new(false));
        let group = spawned.group;
        let reader = Reader {
            program: self.program.clone(),
            max_line: self.max_line,
            grace: self.grace,
            feeder,
            control,
            sink: run.sink,
            notes: run.notes,
            outstanding,
            close,
            silenced: silenced.clone(),
        };
        tokio::spawn(reader.run(spawned, run.end));
        let grace = self.grace;
        Ok(Live {
            input,
            stop: Box::new(move || {
                silenced.store(true, Ordering::SeqCst);
                Box::pin(group.terminate(grace))
            }),
        })
    }
}

impl Agent {
    fn kind(self) -> ProviderKind {
        match self {
            Agent::Claude => ProviderKind::Claude,
            Agent::Codex => ProviderKind::Codex,
        }
    }
}

/// Reads one run's stdout and decides how the run ended.
struct Reader {
    program: String,
    max_line: usize,
    grace: Duration,
    feeder: Feeder,
    /// Claude's control protocol (tool-permission requests) on this run's stdin.
    control: Option<ControlChannel>,
    sink: EventSink,
    /// The session's memory, in its runner.
    notes: Notes<CliNote>,
    /// Prompts given to the agent and not yet answered.
    outstanding: Arc<AtomicU32>,
    /// Asks the stdin writer to close stdin.
    close: Arc<Notify>,
    /// Set by a stop (or when the engine is gone): nothing more is sent.
    silenced: Arc<AtomicBool>,
}

impl Reader {
    async fn run(mut self, spawned: Spawned, end: RunEnd) {
        let Spawned {
            group,
            mut stdout,
            stderr,
            mut exit,
            ..
        } = spawned;
        let mut splitter = LineSplitter::new(self.max_line);
        let mut chunk = vec![0u8; 64 * 1024];
        // Set once every prompt is answered: the agent should exit by then.
        let mut linger: Option<Instant> = None;
        let mut eof = false;
        while !self.silenced.load(Ordering::SeqCst) {
            let read = tokio::select! {
                read = stdout.read(&mut chunk) => read,
                _ = exit.wait_for(Option::is_some) => break,
                _ = tokio::time::sleep_until(linger.unwrap_or_else(Instant::now)), if linger.is_some() => {
                    if self.outstanding.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    linger = None; // a follow-up slipped in before stdin closed
                    continue;
                }
            };
            match read {
                Ok(0) | Err(_) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.take(&mut splitter, &chunk[..n], &mut linger).await;
                }
            }
        }
        if eof {
            // Stdout closed: the exit is near, unless the agent hangs after its last answer.
            let exited = exit.wait_for(Option::is_some);
            match linger {
                Some(deadline) => drop(tokio::time::timeout_at(deadline, exited).await),
                None => drop(exited.await),
            }
        }
        // Still running here means it overstayed its last answer (or was stopped): not its failure.
        let lingered = exit.borrow().is_none();
        group.terminate(self.grace).await;
        if !eof {
            self.drain(&mut stdout, &mut splitter, &mut chunk, &mut linger)
                .await;
        }
        if let Some(line) = splitter.finish() {
            let events = self.feeder.line(line, self.max_line);
            self.note_results(&mut linger).await;
            self.emit(events).await;
        }
        let status = exit.wait_for(Option::is_some).await.ok().and_then(|s| *s);
        // Nothing of this process waits for an answer any more.
        if let Some(c) = &self.control {
            if let Some(p) = &c.permissions {
                p.ended(&c.session_id);
            }
        }
        let tail = stderr.text(STDERR_WAIT).await;
        if self.feeder.skipped > 0 || self.feeder.too_long > 0 {
            tracing::warn!(
                program = %self.program,
                skipped = self.feeder.skipped,
                too_long = self.feeder.too_long,
                "non-JSON or over-long stdout lines were skipped"
            );
        }
        let outcome = outcome(
            self.feeder.finished.take(),
            self.outstanding.load(Ordering::SeqCst) == 0,
            if lingered {
                Exit::Ended
            } else {
                Exit::Status(status)
            },
            || match status {
                Some(status) => exit_error(&self.program, status, &tail),
                None => format!("{} ended and could not be waited for", self.program),
            },
        );
        end.finish(outcome).await;
    }

    /// After the group is gone, what is left in the pipe; bounded in case a process escaped the group.
    async fn drain(
        &mut self,
        stdout: &mut ChildStdout,
        splitter: &mut LineSplitter,
        chunk: &mut [u8],
        linger: &mut Option<Instant>,
    ) {
        while !self.silenced.load(Ordering::SeqCst) {
            match tokio::time::timeout(self.grace, stdout.read(chunk)).await {
                Ok(Ok(n)) if n > 0 => self.take(splitter, &chunk[..n], linger).await,
                _ => break,
            }
        }
    }

    async fn take(
        &mut self,
        splitter: &mut LineSplitter,
        bytes: &[u8],
        linger: &mut Option<Instant>,
    ) {
        let mut lines = Vec::new();
        splitter.push(bytes, &mut lines);
        for line in lines {
            if self.control_line(&line) {
                continue;
            }
            let events = self.feeder.line(line, self.max_line);
            self.note_results(linger).await;
            self.emit(events).await;
        }
    }

    /// Answers a control protocol line (claude_control.rs); whether it was one.
    fn control_line(&self, line: &Line) -> bool {
        let (Some(control), Line::Full(bytes)) = (&self.control, line) else {
            return false;
        };
        if !may_be_control(bytes) {
            return false;
        }
        serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| control.handle(&v))
    }

    /// Keeps the provider's session id and counts answered prompts; closes stdin after the last answer.
    async fn note_results(&mut self, linger: &mut Option<Instant>) {
        if let Some(id) = self.feeder.provider_session.take() {
            self.notes.send(CliNote::Resume(id)).await;
        }
        while self.feeder.results > 0 {
            self.feeder.results -= 1;
            let before = self
                .outstanding
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if before == Ok(1) {
                self.close.notify_one();
                *linger = Some(Instant::now() + self.grace);
            }
        }
    }

    async fn emit(&mut self, events: Vec<super::SidecarEvent>) {
        if events.is_empty() || self.silenced.load(Ordering::SeqCst) {
            return;
        }
        if self.sink.emit(events).await.is_err() {
            // The engine is gone: stop reading; the group is terminated on the way out.
            self.silenced.store(true, Ordering::SeqCst);
        }
    }
}

/// How the process went away.
#[derive(Debug, Clone, Copy)]
enum Exit {
    /// It exited by itself, with this status (None if it could not be waited for).
    Status(Option<ExitStatus>),
    /// The runner ended it after its last answer.
    Ended,
}

/// A run's end from what the stream said and how the process went: the adapter's verdict when it gave
/// one for every prompt and the process did not fail, else the exit status, else "no result".
fn outcome(
    finished: Option<Result<(), String>>,
    answered: bool,
    exit: Exit,
    exit_error: impl FnOnce() -> String,
) -> Result<(), String> {
    let exited_ok = match exit {
        Exit::Ended => true,
        Exit::Status(status) => status.is_some_and(|s| s.success()),
    };
    match finished {
        Some(Err(e)) => Err(e),
        Some(Ok(())) if answered && exited_ok => Ok(()),
        _ if !exited_ok => Err(exit_error()),
        _ => Err(NO_RESULT.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn status(code: i32) -> Exit {
        Exit::Status(Some(ExitStatus::from_raw(code << 8)))
    }

    fn run(finished: Option<Result<(), String>>, answered: bool, exit: Exit) -> Result<(), String> {
        outcome(finished, answered, exit, || "crashed".into())
    }

    #[test]
    fn a_result_and_a_clean_exit_is_done() {
        assert_eq!(run(Some(Ok(())), true, status(0)), Ok(()));
        assert_eq!(run(Some(Ok(())), true, Exit::Ended), Ok(()));
    }

    #[test]
    fn the_adapters_error_wins_over_the_exit_status() {
        assert_eq!(
            run(Some(Err("api".into())), true, status(1)),
            Err("api".into())
        );
    }

    #[test]
    fn a_failed_exit_is_an_error_even_after_a_result() {
        assert_eq!(run(Some(Ok(())), true, status(1)), Err("crashed".into()));
        assert_eq!(run(None, false, status(3)), Err("crashed".into()));
        assert_eq!(run(None, false, Exit::Status(None)), Err("crashed".into()));
    }

    #[test]
    fn a_clean_exit_without_an_answer_to_every_prompt_is_no_result() {
        assert_eq!(run(None, false, status(0)), Err(NO_RESULT.into()));
        // Answered the first prompt, not the follow-up written to its stdin.
        assert_eq!(run(Some(Ok(())), false, status(0)), Err(NO_RESULT.into()));
    }
}
