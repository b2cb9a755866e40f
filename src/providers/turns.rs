//! The sessions of a provider that runs an agent per prompt (a CLI process, an HTTP stream): at most one
//! run per session at a time, follow-ups that arrive during a run handed to it when it takes input (Claude's
//! stdin) or queued for the next run, and exactly one `agent.status` when the last run ends — none after a
//! stop, because the engine itself records a stopped session.
//!
//! Runs report their end to the table, which starts the next queued prompt or sends the status. Starting a
//! run is synchronous (spawning a process or a task) and happens under the table's lock, so a run cannot end
//! before the table knows it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures_util::future::{join_all, BoxFuture};
use tokio::sync::mpsc;

use super::feed::status_event;
use super::{EventSink, Provider, ProviderError, StartSpec};
use crate::messages::wire::UnixMs;

/// Ended sessions whose memory (resume id, conversation) is kept for follow-ups; older ones are forgotten.
pub(crate) const IDLE_KEPT: usize = 256;

/// Runs one prompt of a session.
pub(crate) trait Driver: Send + Sync + 'static {
    /// What the provider keeps between runs of a session (a resume id, the conversation).
    type Memory: Default + Send + 'static;

    /// Starts a run: spawns what it needs and returns at once. The run calls `run.end` when it is over.
    fn launch(&self, run: Run<Self::Memory>) -> Result<Live, ProviderError>;

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

/// A table-driven provider: every `Provider` call of the CLI and Ollama runners, written once.
pub(crate) struct TableProvider<D: Driver> {
    table: Arc<Table<D>>,
}

impl<D: Driver> TableProvider<D> {
    pub(crate) fn new(driver: D) -> TableProvider<D> {
        TableProvider {
            table: Table::new(driver),
        }
    }
}

impl<D: Driver> Provider for TableProvider<D> {
    fn check(&self, requested: &StartSpec) -> Result<(), super::Refusal> {
        self.table.driver.check(requested)
    }

    fn start(
        &self,
        spec: StartSpec,
        sink: EventSink,
    ) -> BoxFuture<'static, Result<(), ProviderError>> {
        let table = self.table.clone();
        Box::pin(async move {
            table.driver.preflight().await?;
            table.start(spec, sink)
        })
    }

    fn accepts_prompt(&self, session_id: &str) -> Result<(), ProviderError> {
        self.table.accepts_prompt(session_id)
    }

    fn adopt(
        &self,
        spec: StartSpec,
        resume: super::Resume,
        sink: EventSink,
    ) -> Result<(), ProviderError> {
        self.table.adopt(spec, resume, sink)
    }

    fn stderr(&self, session_id: &str) -> Option<super::SessionStderr> {
        let memory = {
            let state = self.table.lock();
            state.slots.get(session_id)?.memory.clone()
        };
        let (lines, last_line_at) = self.table.driver.stderr(&lock(&memory))?;
        Some(super::SessionStderr {
            session_id: session_id.to_owned(),
            lines,
            last_line_at,
        })
    }

    fn prompt(
        &self,
        session_id: &str,
        prompt: String,
    ) -> BoxFuture<'static, Result<(), ProviderError>> {
        let (table, id) = (self.table.clone(), session_id.to_owned());
        Box::pin(async move { table.prompt(&id, prompt) })
    }

    fn stop(&self, session_id: &str) -> BoxFuture<'static, Result<(), ProviderError>> {
        let (table, id) = (self.table.clone(), session_id.to_owned());
        Box::pin(async move {
            table.stop(&id).await;
            Ok(())
        })
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let table = self.table.clone();
        Box::pin(async move { table.shutdown().await })
    }
}

/// One run to start.
pub(crate) struct Run<M> {
    pub spec: Arc<StartSpec>,
    pub sink: EventSink,
    pub prompt: String,
    /// False for the session's first prompt.
    pub follow_up: bool,
    pub memory: Arc<Mutex<M>>,
    pub end: RunEnd,
}

/// A started run, as the table holds it.
pub(crate) struct Live {
    /// Where a run that takes prompts while running receives them; a closed channel means "not any more".
    pub input: Option<mpsc::Sender<String>>,
    /// Stops the run and returns once it is gone; the run sends nothing after it is called.
    pub stop: Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>,
}

/// Tells the table that a run is over and how it went.
pub(crate) struct RunEnd {
    on_end: Box<dyn FnOnce(Result<(), String>) -> BoxFuture<'static, ()> + Send>,
}

impl RunEnd {
    pub(crate) async fn finish(self, outcome: Result<(), String>) {
        (self.on_end)(outcome).await
    }
}

struct Slot<M> {
    spec: Arc<StartSpec>,
    sink: EventSink,
    memory: Arc<Mutex<M>>,
    /// The current run and its number; runs of a stopped generation are ignored when they end.
    run: Option<(u64, Live)>,
    pending: VecDeque<String>,
    idle_since: Option<Instant>,
}

struct State<M> {
    slots: HashMap<String, Slot<M>>,
    next_gen: u64,
    closed: bool,
}

pub(crate) struct Table<D: Driver> {
    driver: D,
    state: Mutex<State<D::Memory>>,
}

impl<D: Driver> Table<D> {
    pub(crate) fn new(driver: D) -> Arc<Table<D>> {
        Arc::new(Table {
            driver,
            state: Mutex::new(State {
                slots: HashMap::new(),
                next_gen: 0,
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<D::Memory>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn start(
        self: &Arc<Self>,
        mut spec: StartSpec,
        sink: EventSink,
    ) -> Result<(), ProviderError> {
        let mut state = self.lock();
        if state.closed {
            return Err("the service is shutting down".into());
        }
        if state
            .slots
            .get(&spec.session_id)
            .is_some_and(|s| s.run.is_some())
        {
            return Err(format!("session {} is already running", spec.session_id));
        }
        // The kept spec serves follow-ups, which bring their own prompt: the first one (up to
        // limits.max_prompt_bytes) need not stay in memory with it.
        let prompt = std::mem::take(&mut spec.prompt);
        let slot = Slot {
            spec: Arc::new(spec),
            sink,
            memory: Arc::default(),
            run: None,
            pending: VecDeque::new(),
            idle_since: None,
        };
        let id = slot.spec.session_id.clone();
        state.slots.insert(id.clone(), slot);
        if let Err(e) = self.launch(&mut state, &id, prompt, false) {
            state.slots.remove(&id);
            return Err(e);
        }
        Ok(())
    }

    /// Takes a session back with no run: its memory seeded from `resume` unless the table still holds
    /// it (a session stopped earlier in this process keeps what it learnt), so the next prompt continues.
    pub(crate) fn adopt(
        &self,
        mut spec: StartSpec,
        resume: super::Resume,
        sink: EventSink,
    ) -> Result<(), ProviderError> {
        let mut state = self.lock();
        if state.closed {
            return Err("the service is shutting down".into());
        }
        if let Some(slot) = state.slots.get_mut(&spec.session_id) {
            if slot.run.is_some() {
                return Err(format!("session {} is already running", spec.session_id));
            }
            slot.sink = sink;
            return Ok(());
        }
        spec.prompt.clear();
        let mut memory = D::Memory::default();
        self.driver.seed(&mut memory, &spec, resume);
        let id = spec.session_id.clone();
        state.slots.insert(
            id,
            Slot {
                spec: Arc::new(spec),
                sink,
                memory: Arc::new(Mutex::new(memory)),
                run: None,
                pending: VecDeque::new(),
                idle_since: Some(Instant::now()),
            },
        );
        Ok(())
    }

    /// Err when the session's run takes no input and the driver will not queue for it, or its input is
    /// full.
    pub(crate) fn accepts_prompt(&self, session_id: &str) -> Result<(), ProviderError> {
        let state = self.lock();
        let Some((_, live)) = state.slots.get(session_id).and_then(|s| s.run.as_ref()) else {
            return Ok(()); // not running: the prompt starts a run
        };
        match &live.input {
            Some(input) if input.capacity() == 0 => Err(format!(
                "the agent has {} follow-ups waiting already; send this one once it answered them",
                input.max_capacity()
            )),
            Some(_) => Ok(()),
            None => self.driver.busy_reason().map_or(Ok(()), Err),
        }
    }

    pub(crate) fn prompt(
        self: &Arc<Self>,
        session_id: &str,
        prompt: String,
    ) -> Result<(), ProviderError> {
        let mut state = self.lock();
        let Some(slot) = state.slots.get_mut(session_id) else {
            return Err(format!(
                "session {session_id} is not known to this provider"
            ));
        };
        match &slot.run {
            Some((_, live)) => {
                let rejected = match &live.input {
                    Some(input) => input.try_send(prompt).err().map(|e| match e {
                        mpsc::error::TrySendError::Full(p)
                        | mpsc::error::TrySendError::Closed(p) => p,
                    }),
                    None => Some(prompt),
                };
                if let Some(prompt) = rejected {
                    slot.pending.push_back(prompt);
                }
                Ok(())
            }
            None => self.launch(&mut state, session_id, prompt, true),
        }
    }

    /// Stops the session's run, forgets its queued prompts, and returns once the run is gone.
    pub(crate) async fn stop(&self, session_id: &str) {
        let live = {
            let mut state = self.lock();
            state.slots.get_mut(session_id).and_then(|slot| {
                slot.pending.clear();
                slot.idle_since = Some(Instant::now());
                slot.run.take()
            })
        };
        if let Some((_, live)) = live {
            (live.stop)().await;
        }
    }

    /// Stops every run; later starts are refused.
    pub(crate) async fn shutdown(&self) {
        let lives: Vec<Live> = {
            let mut state = self.lock();
            state.closed = true;
            state
                .slots
                .drain()
                .filter_map(|(_, mut slot)| slot.run.take().map(|(_, live)| live))
                .collect()
        };
        join_all(lives.into_iter().map(|live| (live.stop)())).await;
    }

    fn launch(
        self: &Arc<Self>,
        state: &mut State<D::Memory>,
        session_id: &str,
        prompt: String,
        follow_up: bool,
    ) -> Result<(), ProviderError> {
        let gen = state.next_gen;
        state.next_gen += 1;
        let Some(slot) = state.slots.get_mut(session_id) else {
            return Err(format!(
                "session {session_id} is not known to this provider"
            ));
        };
        let table = Arc::downgrade(self);
        let id = session_id.to_owned();
        let end = RunEnd {
            on_end: Box::new(move |outcome| {
                Box::pin(async move {
                    if let Some(table) = table.upgrade() {
                        table.ended(&id, gen, outcome).await;
                    }
                })
            }),
        };
        let live = self.driver.launch(Run {
            spec: slot.spec.clone(),
            sink: slot.sink.clone(),
            prompt,
            follow_up,
            memory: slot.memory.clone(),
            end,
        })?;
        slot.run = Some((gen, live));
        slot.idle_since = None;
        Ok(())
    }

    /// A run is over: start the next queued prompt, or tell the engine how the session ended.
    async fn ended(self: &Arc<Self>, session_id: &str, gen: u64, outcome: Result<(), String>) {
        let (sink, outcome) = {
            let mut state = self.lock();
            let Some(slot) = state.slots.get_mut(session_id) else {
                return;
            };
            if !matches!(slot.run, Some((g, _)) if g == gen) {
                return; // stopped: the engine already knows
            }
            slot.run = None;
            let next = slot.pending.pop_front();
            let mut outcome = outcome;
            if let Some(next) = next {
                match self.launch(&mut state, session_id, next, true) {
                    Ok(()) => return,
                    Err(e) => outcome = Err(e),
                }
            }
            let Some(slot) = state.slots.get_mut(session_id) else {
                return;
            };
            slot.pending.clear();
            slot.idle_since = Some(Instant::now());
            let sink = slot.sink.clone();
            forget_oldest_idle(&mut state.slots);
            (sink, outcome)
        };
        let _ = sink.emit(vec![status_event(session_id, &outcome)]).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn forget_oldest_idle<M>(slots: &mut HashMap<String, Slot<M>>) {
    forget_idle(slots, |s| s.idle_since, IDLE_KEPT);
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
