//! Agent processes: spawned each in its own process group, so that stopping an agent also stops every tool
//! process it started (a shell, a test run, a dev server), and no orphan outlives a stop, a run's end or the
//! service's shutdown.
//!
//! A waiter task owns the child and reaps it as soon as it exits, whatever the reader of its output is
//! doing; a stderr task owns the last few KiB for the exit error (handed over when the reader asks), and
//! hands each complete line to whoever keeps the session's [`StderrLog`] (its runner: readable while the
//! agent runs; never parsed as events).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures_util::future::BoxFuture;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ProviderError;

/// How much of stderr is kept for error messages.
const STDERR_KEPT: usize = 8 * 1024;
/// How much of that tail an error message shows.
const STDERR_SHOWN: usize = 2000;
/// How often a stop looks whether the group is gone.
const POLL: Duration = Duration::from_millis(20);

/// The last lines an agent wrote to stderr, over all runs of its session: at most `STDERR_LOG_BYTES`
/// of them, each cut at `STDERR_LINE_BYTES`. A line is a sign of life, not progress.
#[derive(Debug, Default)]
pub(crate) struct StderrLog {
    lines: VecDeque<String>,
    bytes: usize,
    /// When the last line arrived, in Unix ms.
    last_line_at: Option<crate::messages::wire::UnixMs>,
}

/// What a session's stderr log holds at most, in bytes.
pub(crate) const STDERR_LOG_BYTES: usize = 16 * 1024;
/// Longer stderr lines are cut to this many bytes.
pub(crate) const STDERR_LINE_BYTES: usize = 1024;

/// Takes a process's complete stderr lines (raw, each at most `STDERR_LINE_BYTES`) as they arrive; the
/// session's runner keeps them in its `StderrLog`.
pub(crate) type StderrLines = Box<dyn FnMut(Vec<Vec<u8>>) -> BoxFuture<'static, ()> + Send>;

impl StderrLog {
    pub(crate) fn push(&mut self, line: &[u8]) {
        let mut text = String::from_utf8_lossy(line).trim_end().to_owned();
        if text.is_empty() {
            return;
        }
        if text.len() > STDERR_LINE_BYTES {
            let mut cut = STDERR_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        self.bytes += text.len();
        self.lines.push_back(text);
        while self.bytes > STDERR_LOG_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
        self.last_line_at = Some(crate::messages::wire::now_ms());
    }

    /// The lines kept, oldest first, and when the last one arrived.
    pub(crate) fn snapshot(&self) -> (Vec<String>, Option<crate::messages::wire::UnixMs>) {
        (self.lines.iter().cloned().collect(), self.last_line_at)
    }
}

/// What to run: `program args...` in `cwd` with `env` added to the service's environment.
pub(crate) struct Invocation {
    /// The configured command: the program and any leading arguments.
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Whether the agent reads stdin (else it gets /dev/null).
    pub stdin: bool,
    /// The provider's configured name, for "configure providers.NAME.command".
    pub provider: String,
    /// Where stderr's lines go as they arrive, if anywhere.
    pub stderr_log: Option<StderrLines>,
}

/// A running agent process and the ends of its pipes.
pub(crate) struct Spawned {
    pub group: Group,
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    pub stderr: StderrTail,
    /// Becomes `Some` once the process exited and was reaped.
    pub exit: watch::Receiver<Option<ExitStatus>>,
}

/// Starts the process in a new process group. Must run inside a tokio runtime.
pub(crate) fn spawn(inv: Invocation) -> Result<Spawned, ProviderError> {
    let Some((program, leading)) = inv.command.split_first() else {
        return Err(format!(
            "providers.{}.command must name a program",
            inv.provider
        ));
    };
    if let Some(cwd) = &inv.cwd {
        // Checked first: a missing cwd fails the spawn with the same ENOENT as a missing program.
        if !Path::new(cwd).is_dir() {
            return Err(format!("cwd: {cwd} is not a directory"));
        }
    }
    let mut cmd = Command::new(program);
    cmd.args(leading)
        .args(&inv.args)
        // The service's own secret is not the agent's business: agents run tools that print their env.
        .env_remove(crate::config::TOKEN_ENV)
        .envs(&inv.env)
        .stdin(if inv.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A reader that panics must not leave the agent running.
        .kill_on_drop(true);
    if let Some(cwd) = &inv.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_error(program, &inv.provider, e))?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .filter(|&id| id > 1)
        .ok_or_else(|| format!("{program} exited before it could be watched"))?;
    let group = Group(Pid::from_raw(pid));
    let stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("{program}: no stdout pipe"))?;
    let stderr = StderrTail::start(child.stderr.take(), inv.stderr_log);
    let (exit_tx, exit) = watch::channel(None);
    let metrics = super::metrics::provider_metrics();
    metrics.started(&inv.provider);
    let provider = inv.provider.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        match status {
            Ok(status) => {
                metrics.exited(&provider, &status);
                let _ = exit_tx.send(Some(status));
            }
            Err(e) => tracing::error!(pid, error = %e, "cannot wait for agent process"),
        }
    });
    Ok(Spawned {
        group,
        stdin,
        stdout,
        stderr,
        exit,
    })
}

fn spawn_error(program: &str, provider: &str, e: std::io::Error) -> ProviderError {
    let hint = format!("(configure providers.{provider}.command)");
    match e.kind() {
        std::io::ErrorKind::NotFound if program.contains('/') => {
            format!("{program} not found {hint}")
        }
        std::io::ErrorKind::NotFound => format!("{program} not found on PATH {hint}"),
        std::io::ErrorKind::PermissionDenied => format!("{program} is not executable {hint}"),
        _ => format!("cannot start {program}: {e} {hint}"),
    }
}

/// An agent's process group; its id is the leader's pid. Linux does not hand out a pid that is still some
/// group's id, so signalling the group is safe for as long as any member of it is left.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Group(Pid);

impl Group {
    pub(crate) fn id(self) -> i32 {
        self.0.as_raw()
    }

    /// Whether any process of the group is left.
    pub(crate) fn alive(self) -> bool {
        killpg(self.0, None).is_ok()
    }

    /// SIGTERM to every process of the group, SIGKILL to what is left after `grace`; returns once the
    /// group is empty. The leader is reaped by its waiter task meanwhile.
    pub(crate) async fn terminate(self, grace: Duration) {
        if !self.alive() {
            return;
        }
        let _ = killpg(self.0, Signal::SIGTERM);
        if self.wait_gone(Instant::now() + grace).await {
            return;
        }
        tracing::warn!(pgid = self.id(), "agent ignored SIGTERM; sending SIGKILL");
        let _ = killpg(self.0, Signal::SIGKILL);
        // SIGKILL cannot be ignored; this bound only guards against zombies nobody reaps.
        if !self
            .wait_gone(Instant::now() + Duration::from_secs(2))
            .await
        {
            tracing::error!(
                pgid = self.id(),
                "agent process group still present after SIGKILL"
            );
        }
    }

    async fn wait_gone(self, deadline: Instant) -> bool {
        loop {
            if !self.alive() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The last few KiB an agent wrote to stderr, owned by the task reading it.
/// `None` when the agent's stderr was not piped.
pub(crate) struct StderrTail(Option<TailReader>);

struct TailReader {
    task: JoinHandle<VecDeque<u8>>,
    /// Asks the task to hand over what it kept now, stderr closed or not.
    hand_over: mpsc::Sender<()>,
}

impl StderrTail {
    fn start(
        stderr: Option<tokio::process::ChildStderr>,
        mut log: Option<StderrLines>,
    ) -> StderrTail {
        let Some(mut stderr) = stderr else {
            return StderrTail(None);
        };
        let (hand_over, mut asked) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let mut kept = VecDeque::with_capacity(STDERR_KEPT);
            let mut chunk = [0u8; 4096];
            let mut lines = super::lines::LineSplitter::new(STDERR_LINE_BYTES);
            let mut complete = Vec::new();
            loop {
                let n = tokio::select! {
                    read = stderr.read(&mut chunk) => match read {
                        Ok(n) if n > 0 => n,
                        _ => break,
                    },
                    Some(()) = asked.recv() => return kept,
                };
                kept.extend(&chunk[..n]);
                let excess = kept.len().saturating_sub(STDERR_KEPT);
                kept.drain(..excess);
                if let Some(log) = &mut log {
                    lines.push(&chunk[..n], &mut complete);
                    // The log's keeper may be slow: a hand-over does not wait for it.
                    tokio::select! {
                        () = log_lines(log, &mut complete) => {}
                        Some(()) = asked.recv() => return kept,
                    }
                }
            }
            if let Some(log) = &mut log {
                complete.extend(lines.finish());
                tokio::select! {
                    () = log_lines(log, &mut complete) => {}
                    Some(()) = asked.recv() => {}
                }
            }
            kept
        });
        StderrTail(Some(TailReader { task, hand_over }))
    }

    /// The tail, trimmed, once stderr closed (or after `wait` if something keeps it open).
    pub(crate) async fn text(self, wait: Duration) -> String {
        let Some(TailReader {
            mut task,
            hand_over,
        }) = self.0
        else {
            return String::new();
        };
        let kept = match tokio::time::timeout(wait, &mut task).await {
            Ok(kept) => kept.unwrap_or_default(),
            Err(_) => {
                let _ = hand_over.try_send(());
                task.await.unwrap_or_default()
            }
        };
        let bytes: Vec<u8> = kept.into_iter().collect();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let start = text
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| text.len() - i <= STDERR_SHOWN)
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

/// Hands complete lines to the log's keeper; an over-long one becomes a note of its length.
async fn log_lines(log: &mut StderrLines, lines: &mut Vec<super::lines::Line>) {
    if lines.is_empty() {
        return;
    }
    let batch = lines
        .drain(..)
        .map(|line| match line {
            super::lines::Line::Full(bytes) => bytes,
            super::lines::Line::TooLong { len } => {
                format!("(a stderr line of {len} bytes, not kept)").into_bytes()
            }
        })
        .collect();
    log(batch).await;
}

/// "claude exited with status 3: <stderr tail>".
pub(crate) fn exit_error(program: &str, status: ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("{program} exited with status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("{program} was killed by {s}"),
            Err(_) => format!("{program} was killed by signal {sig}"),
        },
        (None, None) => format!("{program} ended: {status}"),
    };
    if stderr.is_empty() {
        how
    } else {
        format!("{how}: {stderr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation {
            command: vec!["sh".into(), "-c".into(), script.into()],
            args: vec![],
            cwd: None,
            env: BTreeMap::new(),
            stdin: false,
            provider: "test".into(),
            stderr_log: None,
        }
    }

    #[tokio::test]
    async fn stderr_lines_reach_the_log_bounded_in_bytes_while_the_process_runs() {
        let (tx, mut batches) = mpsc::unbounded_channel::<Vec<Vec<u8>>>();
        let mut inv = sh("echo one >&2; printf 'two\\nthree' >&2; read x");
        inv.stdin = true;
        inv.stderr_log = Some(Box::new(move |lines| {
            let _ = tx.send(lines);
            Box::pin(async {})
        }));
        let p = spawn(inv).unwrap();
        let mut log = StderrLog::default();
        // The complete lines arrive while the process still runs (it waits for stdin).
        while log.snapshot().0 != ["one", "two"] {
            let batch = tokio::time::timeout(Duration::from_secs(10), batches.recv())
                .await
                .expect("stderr lines while the process runs")
                .unwrap();
            batch.iter().for_each(|line| log.push(line));
        }
        drop(p.stdin);
        p.stderr.text(Duration::from_secs(5)).await;
        while let Some(batch) = batches.recv().await {
            batch.iter().for_each(|line| log.push(line));
        }
        assert_eq!(
            log.snapshot().0,
            ["one", "two", "three"],
            "the unterminated last line too"
        );
        assert!(log.snapshot().1.is_some());

        let mut log = StderrLog::default();
        let line = vec![b'x'; STDERR_LINE_BYTES * 3];
        for _ in 0..100 {
            log.push(&line);
        }
        let (lines, _) = log.snapshot();
        assert!(lines.iter().map(String::len).sum::<usize>() <= STDERR_LOG_BYTES);
        assert!(lines[0].len() <= STDERR_LINE_BYTES + '…'.len_utf8());
    }

    #[tokio::test]
    async fn a_missing_program_names_itself_and_the_setting() {
        let mut inv = sh("");
        inv.command = vec!["no-such-agent-binary".into()];
        inv.provider = "claude".into();
        let e = spawn(inv).err().unwrap();
        assert_eq!(
            e,
            "no-such-agent-binary not found on PATH (configure providers.claude.command)"
        );
        let mut inv = sh("true");
        inv.cwd = Some("/definitely/not/here".into());
        assert!(spawn(inv).err().unwrap().starts_with("cwd: "));
    }

    #[tokio::test]
    async fn the_stderr_tail_and_exit_status_make_the_error() {
        let mut p = spawn(sh("echo starting >&2; echo 'bad token' >&2; exit 3")).unwrap();
        p.exit.wait_for(Option::is_some).await.unwrap();
        let status = p.exit.borrow().unwrap();
        let tail = p.stderr.text(Duration::from_secs(5)).await;
        assert_eq!(
            exit_error("claude", status, &tail),
            "claude exited with status 3: starting\nbad token"
        );
    }

    #[tokio::test]
    async fn terminate_kills_the_whole_group_even_when_sigterm_is_ignored() {
        let p = spawn(sh("trap '' TERM; sleep 30 & trap '' TERM; wait")).unwrap();
        let group = p.group;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(group.alive());
        group.terminate(Duration::from_millis(300)).await;
        assert!(!group.alive());
    }
}
