//! The sessions of a provider that runs an agent per prompt (a CLI process, an HTTP stream): one runner
//! per session, an actor (a task that owns the session's state and reads an inbox) whose handle the
//! session's actor holds. A runner runs at most one run at a time, hands follow-ups that arrive during a
//! run to it when it takes input (Claude's stdin) or queues them for the next run, and sends exactly one
//! `agent.status` when the last run ends — none after a stop, because the engine itself records a
//! stopped session.
//!
//! Runs report their end to their runner's inbox, which starts the next queued prompt or sends the
//! status. The provider keeps no table of sessions and takes no lock: a run is started (a process or a
//! task spawned) inside its runner, the only owner of its session's state. What a run learns that the
//! session keeps (the agent's resume id, the model's reply, stderr lines) reaches that state as a note
//! in the same inbox, before the run's end. A shutdown is a signal every runner listens to; the provider
//! waits until each one has stopped its run.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

use super::feed::status_event;
use super::{EventSink, Provider, ProviderError, Runner, SessionStderr, StartSpec};
use crate::messages::wire::UnixMs;

/// Ended sessions whose memory (resume id, conversation) a sidecar keeps for follow-ups; older ones are
/// forgotten.
pub(crate) const IDLE_KEPT: usize = 256;
/// Requests waiting in a runner's inbox before their senders wait.
const INBOX: usize = 16;
pub(crate) const SHUTTING_DOWN: &str = "the service is shutting down";

/// Runs one prompt of a session.
pub(crate) trait Driver: Send + Sync + 'static {
    /// What the provider keeps between runs of a session (a resume id, the conversation), owned by the
    /// session's runner.
    type Memory: Default + Send + 'static;
    /// What a run tells its runner to keep in that memory while it runs (see `Notes`).
    type Note: Send + 'static;

    /// Starts a run: spawns what it needs and returns at once. The run calls `run.end` when it is over.
    fn launch(
        &self,
        memory: &mut Self::Memory,
        run: Run<Self::Note>,
    ) -> Result<Live, ProviderError>;

    /// Keeps what a run noted in the session's memory.
    fn remember(&self, memory: &mut Self::Memory, note: Self::Note);

    /// Why a run of this driver cannot take a follow-up while it runs, if it cannot (one that takes no
    /// input and may not end soon, like a Codex run retrying forever); None queues it for the next run.
    fn busy_reason(&self) -> Option<String> {
        None
    }

    /// The stderr lines kept in a session's memory, if the driver keeps any.
    fn stderr(&self, _memory: &Self::Memory) -> Option<(Vec<String>, Option<UnixMs>)> {
        None
    }

    /// The options of a start request this driver cannot honour.
    fn check(&self, requested: &StartSpec) -> Result<(), super::Refusal>;

    /// Fills a new session memory from what a resumed session brings (a resume id, the history).
    fn seed(&self, memory: &mut Self::Memory, spec: &StartSpec, resume: super::Resume);

    /// Checked before a session starts (a server that must be reachable); nothing by default.
    fn preflight(&self) -> impl Future<Output = Result<(), ProviderError>> + Send {
        async { Ok(()) }
    }
}

/// A provider whose sessions each get a runner: every `Provider` call of the CLI and Ollama runners,
/// written once.
pub(crate) struct RunProvider<D: Driver> {
    shared: Arc<Shared<D>>,
}

struct Shared<D: Driver> {
    driver: D,
    /// Set once, by `shutdown`: every runner stops its run and ends; later starts are refused.
    closed: watch::Sender<bool>,
    /// How many runners are alive, for `shutdown` to wait on.
    alive: watch::Sender<usize>,
}

impl<D: Driver> RunProvider<D> {
    pub(crate) fn new(driver: D) -> RunProvider<D> {
        RunProvider {
            shared: Arc::new(Shared {
                driver,
                closed: watch::Sender::new(false),
                alive: watch::Sender::new(0),
            }),
        }
    }
}

impl<D: Driver> Provider for RunProvider<D> {
    fn check(&self, requested: &StartSpec) -> Result<(), super::Refusal> {
        self.shared.driver.check(requested)
    }

    fn start(
        &self,
        mut spec: StartSpec,
        sink: EventSink,
    ) -> BoxFuture<'static, Result<Box<dyn Runner>, ProviderError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            shared.driver.preflight().await?;
            // The runner keeps the spec for follow-ups, which bring their own prompt: the first one (up
            // to limits.max_prompt_bytes) need not stay in memory with it.
            let prompt = std::mem::take(&mut spec.prompt);
            let handle =
                RunnerTask::spawn(&shared, spec, sink, D::Memory::default(), Some(prompt))?;
            Ok(Box::new(handle) as Box<dyn Runner>)
        })
    }

    /// A runner with no run, its memory seeded from `resume`: the next prompt continues the conversation.
    fn adopt(
        &self,
        mut spec: StartSpec,
        resume: super::Resume,
        sink: EventSink,
    ) -> Result<Box<dyn Runner>, ProviderError> {
        spec.prompt.clear();
        let mut memory = D::Memory::default();
        self.shared.driver.seed(&mut memory, &spec, resume);
        let handle = RunnerTask::spawn(&self.shared, spec, sink, memory, None)?;
        Ok(Box::new(handle))
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        Box::pin(async move {
            shared.closed.send_replace(true);
            let mut alive = shared.alive.subscribe();
            let _ = alive.wait_for(|n| *n == 0).await;
        })
    }
}

/// One run to start.
pub(crate) struct Run<N> {
    pub spec: Arc<StartSpec>,
    pub sink: EventSink,
    pub prompt: String,
    /// False for the session's first prompt.
    pub follow_up: bool,
    /// Where the run sends what the session's memory keeps.
    pub notes: Notes<N>,
    pub end: RunEnd,
}

/// A run's way to its runner's memory: each note is a message in the runner's inbox, so it is kept
/// before the run's end (sent after it) is handled. Weak, like the runner's own handle on its inbox: a
/// note never keeps a runner alive.
pub(crate) struct Notes<N> {
    runner: mpsc::WeakSender<Ask<N>>,
}

impl<N> Clone for Notes<N> {
    fn clone(&self) -> Notes<N> {
        Notes {
            runner: self.runner.clone(),
        }
    }
}

impl<N: Send + 'static> Notes<N> {
    /// Waits for room in the runner's inbox; a note for a runner that has ended is dropped.
    pub(crate) async fn send(&self, note: N) {
        if let Some(runner) = self.runner.upgrade() {
            let _ = runner.send(Ask::Note(note)).await;
        }
    }
}

/// A started run, as its runner holds it.
pub(crate) struct Live {
    /// Where a run that takes prompts while running receives them; a closed channel means "not any more".
    pub input: Option<mpsc::Sender<String>>,
    /// Stops the run and returns once it is gone; the run sends nothing after it is called.
    pub stop: Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>,
}

/// Tells the runner that a run is over and how it went.
pub(crate) struct RunEnd {
    on_end: Box<dyn FnOnce(Result<(), String>) -> BoxFuture<'static, ()> + Send>,
}

impl RunEnd {
    pub(crate) async fn finish(self, outcome: Result<(), String>) {
        (self.on_end)(outcome).await
    }
}

/// What a runner is asked.
enum Ask<N> {
    CanTake(oneshot::Sender<Result<(), ProviderError>>),
    Prompt(String, oneshot::Sender<Result<(), ProviderError>>),
    Stop(oneshot::Sender<()>),
    Stderr(oneshot::Sender<Option<(Vec<String>, Option<UnixMs>)>>),
    /// Something a run learnt, for the session's memory.
    Note(N),
    /// A run is over (sent by its `RunEnd`); runs of an earlier generation were stopped and are ignored.
    Ended {
        gen: u64,
        outcome: Result<(), String>,
    },
}

/// The runner of one session: the only owner of its state.
struct RunnerTask<D: Driver> {
    shared: Arc<Shared<D>>,
    spec: Arc<StartSpec>,
    sink: EventSink,
    memory: D::Memory,
    /// The current run and its generation.
    run: Option<(u64, Live)>,
    next_gen: u64,
    pending: VecDeque<String>,
    /// Its own inbox, for the runs it starts to report their end (weak: the inbox closes once the
    /// handle is dropped and no run is left to report).
    me: mpsc::WeakSender<Ask<D::Note>>,
}

/// Counts a runner out when it ends, however it ends.
struct Alive<D: Driver>(Arc<Shared<D>>);

impl<D: Driver> Drop for Alive<D> {
    fn drop(&mut self) {
        self.0.alive.send_modify(|n| *n -= 1);
    }
}

impl<D: Driver> RunnerTask<D> {
    /// Starts a session's runner, with its first run when `first` is a prompt; Err if that run cannot
    /// start (nothing is left behind then).
    fn spawn(
        shared: &Arc<Shared<D>>,
        spec: StartSpec,
        sink: EventSink,
        memory: D::Memory,
        first: Option<String>,
    ) -> Result<Handle<D::Note>, ProviderError> {
        if *shared.closed.borrow() {
            return Err(SHUTTING_DOWN.into());
        }
        let (tx, inbox) = mpsc::channel(INBOX);
        let session_id = spec.session_id.clone();
        let mut task = RunnerTask {
            shared: shared.clone(),
            spec: Arc::new(spec),
            sink,
            memory,
            run: None,
            next_gen: 0,
            pending: VecDeque::new(),
            me: tx.downgrade(),
        };
        if let Some(prompt) = first {
            task.launch(prompt, false)?;
        }
        shared.alive.send_modify(|n| *n += 1);
        tokio::spawn(task.serve(inbox));
        Ok(Handle { tx, session_id })
    }

    async fn serve(mut self, mut inbox: mpsc::Receiver<Ask<D::Note>>) {
        let _alive = Alive(self.shared.clone());
        let mut closed = self.shared.closed.subscribe();
        loop {
            let ask = tokio::select! {
                ask = inbox.recv() => match ask {
                    Some(ask) => ask,
                    // No handle and no run left: nothing can reach this session's agent any more.
                    None => return,
                },
                _ = closed.wait_for(|closed| *closed) => break,
            };
            self.handle(ask).await;
        }
        // Shutting down.
        self.pending.clear();
        if let Some((_, live)) = self.run.take() {
            (live.stop)().await;
        }
    }

    async fn handle(&mut self, ask: Ask<D::Note>) {
        match ask {
            Ask::CanTake(reply) => {
                let _ = reply.send(self.can_take());
            }
            Ask::Prompt(prompt, reply) => {
                let _ = reply.send(self.prompt(prompt));
            }
            Ask::Stop(reply) => {
                self.pending.clear();
                if let Some((_, live)) = self.run.take() {
                    (live.stop)().await;
                }
                let _ = reply.send(());
            }
            Ask::Stderr(reply) => {
                let _ = reply.send(self.shared.driver.stderr(&self.memory));
            }
            Ask::Note(note) => self.shared.driver.remember(&mut self.memory, note),
            Ask::Ended { gen, outcome } => self.ended(gen, outcome).await,
        }
    }

    /// Err when the run takes no input and the driver will not queue for it, or its input is full.
    fn can_take(&self) -> Result<(), ProviderError> {
        let Some((_, live)) = &self.run else {
            return Ok(()); // not running: the prompt starts a run
        };
        match &live.input {
            Some(input) if input.capacity() == 0 => Err(format!(
                "the agent has {} follow-ups waiting already; send this one once it answered them",
                input.max_capacity()
            )),
            Some(_) => Ok(()),
            None => self.shared.driver.busy_reason().map_or(Ok(()), Err),
        }
    }

    fn prompt(&mut self, prompt: String) -> Result<(), ProviderError> {
        let Some((_, live)) = &self.run else {
            return self.launch(prompt, true);
        };
        let rejected = match &live.input {
            Some(input) => input.try_send(prompt).err().map(|e| match e {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
            }),
            None => Some(prompt),
        };
        if let Some(prompt) = rejected {
            self.pending.push_back(prompt);
        }
        Ok(())
    }

    fn launch(&mut self, prompt: String, follow_up: bool) -> Result<(), ProviderError> {
        let me = self.me.upgrade().ok_or(SHUTTING_DOWN)?;
        let gen = self.next_gen;
        self.next_gen += 1;
        let end = RunEnd {
            on_end: Box::new(move |outcome| {
                Box::pin(async move {
                    let _ = me.send(Ask::Ended { gen, outcome }).await;
                })
            }),
        };
        let run = Run {
            spec: self.spec.clone(),
            sink: self.sink.clone(),
            prompt,
            follow_up,
            notes: Notes {
                runner: self.me.clone(),
            },
            end,
        };
        let live = self.shared.driver.launch(&mut self.memory, run)?;
        self.run = Some((gen, live));
        Ok(())
    }

    /// A run is over: start the next queued prompt, or tell the engine how the session ended.
    async fn ended(&mut self, gen: u64, outcome: Result<(), String>) {
        if !matches!(self.run, Some((g, _)) if g == gen) {
            return; // stopped: the engine already knows
        }
        self.run = None;
        let mut outcome = outcome;
        if let Some(next) = self.pending.pop_front() {
            match self.launch(next, true) {
                Ok(()) => return,
                Err(e) => outcome = Err(e),
            }
        }
        self.pending.clear();
        let _ = self
            .sink
            .emit(vec![status_event(&self.spec.session_id, &outcome)])
            .await;
    }
}

/// What the session's actor holds of its runner.
struct Handle<N> {
    tx: mpsc::Sender<Ask<N>>,
    session_id: String,
}

impl<N: Send + 'static> Handle<N> {
    /// Asks the runner; None once it has ended (the service is shutting down).
    fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Ask<N>,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let tx = self.tx.clone();
        let ask = make(reply);
        async move {
            tx.send(ask).await.ok()?;
            answer.await.ok()
        }
    }
}

impl<N: Send + 'static> Runner for Handle<N> {
    fn accepts_prompt(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        let asked = self.ask(Ask::CanTake);
        Box::pin(async move { asked.await.unwrap_or(Err(SHUTTING_DOWN.into())) })
    }

    fn prompt(&self, prompt: String) -> BoxFuture<'static, Result<(), ProviderError>> {
        let asked = self.ask(|reply| Ask::Prompt(prompt, reply));
        Box::pin(async move { asked.await.unwrap_or(Err(SHUTTING_DOWN.into())) })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        let asked = self.ask(Ask::Stop);
        Box::pin(async move {
            asked.await;
            Ok(())
        })
    }

    fn stderr(&self) -> BoxFuture<'static, Option<SessionStderr>> {
        let asked = self.ask(Ask::Stderr);
        let session_id = self.session_id.clone();
        Box::pin(async move {
            let (lines, last_line_at) = asked.await??;
            Some(SessionStderr {
                session_id,
                lines,
                last_line_at,
            })
        })
    }
}

/// Removes the entries idle the longest so that at most `keep` idle ones remain.
pub(crate) fn forget_idle<T>(
    entries: &mut HashMap<String, T>,
    idle_since: impl Fn(&T) -> Option<Instant>,
    keep: usize,
) {
    let mut idle: Vec<(Instant, String)> = entries
        .iter()
        .filter_map(|(id, e)| idle_since(e).map(|t| (t, id.clone())))
        .collect();
    if idle.len() <= keep {
        return;
    }
    idle.sort();
    let excess = idle.len() - keep;
    for (_, id) in idle.into_iter().take(excess) {
        entries.remove(&id);
    }
}
