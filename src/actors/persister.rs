//! The persister: the only writer of the database, on its own OS thread so that an fsync never stalls an
//! arbiter.
//!
//! Writers queue jobs on a bounded channel. The thread blocks for the first job, takes whatever else is
//! already queued (up to `MAX_GROUP` jobs) and commits all the writes among them in one transaction: one
//! fsync for many sessions' batches (group commit). Each write's ack resolves only after that commit, so an
//! acked write is on disk. A group of writes that nobody waits on (`Commit::Soon`) may first wait a little
//! for more (`linger.rs`): fewer, larger commits; a write somebody waits on ends that wait. A project's retention rides with the write that finished one of its sessions
//! (`try_write_then_retain`), in the same transaction, so sessions finishing together share commits and
//! the finish costs one job; retention over every project, barriers and holds commit what was queued
//! before them first.
//!
//! A committed write's ops go back with its ack (`Written`), so that they are freed by the thread that made
//! them (a session's arbiter) rather than here: a thread freeing another's allocations sends them back to
//! the allocator's shared bins in bulk, and the other thread refills its own cache from there.
//!
//! The queue bound is the backpressure: `try_write` never waits and hands the ops back when the queue is
//! full, so the caller keeps them and retries instead of memory growing without bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::messages::wire::now_ms;
use crate::storage::{Step, StorageError, Store, WriteOp};

mod linger;

pub use self::linger::Linger;

/// Resolves when the write it belongs to is committed (or failed). A receive error means the persister
/// stopped without committing it: treat it as `StorageError::Closed`.
pub type Ack = oneshot::Receiver<Result<Written, StorageError>>;

/// A committed write, handed back with its ack.
#[derive(Debug)]
pub struct Written {
    /// The write's ops, dropped by the receiver: on the thread that allocated them, as a rule.
    _ops: Vec<WriteOp>,
    /// The sessions that the retention riding with the write deleted (see `try_write_then_retain`).
    pub evicted: Vec<String>,
}

/// Retention of one project (see `Store::enforce_retention`), applied right after the write it rides with,
/// in the same transaction. Running sessions (by stored status) are neither counted nor deleted.
#[derive(Debug, Clone)]
pub struct Retain {
    pub project_id: String,
    pub keep: u32,
    pub max_age_ms: i64,
}

/// Whether somebody waits for a write's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// A caller waits for the ack: the write joins the next commit, which starts at once.
    Now,
    /// Nobody waits for the ack: the write may wait up to the persister's linger for company.
    Soon,
}

#[derive(Debug)]
pub enum TryWriteError {
    /// The persister's queue is full: keep the ops and try again later (backpressure).
    Full(Vec<WriteOp>),
    Closed,
}

/// The most jobs committed together. Bounds the latency of the first ack in a group and the size of one
/// transaction.
const MAX_GROUP: usize = 4096;
// A lingering group must be able to reach the size that ends its wait.
const _: () = assert!(linger::ENOUGH <= MAX_GROUP);

/// What the persister has done so far, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PersisterStats {
    /// Jobs waiting in the queue.
    pub queued_jobs: usize,
    pub commits_ok: u64,
    pub commits_failed: u64,
    /// Message batch rows committed.
    pub rows_written: u64,
    /// Messages in those rows.
    pub messages_written: u64,
    /// How long the last commit (successful or not) took.
    pub last_commit: Duration,
}

#[derive(Default)]
struct Counters {
    commits_ok: AtomicU64,
    commits_failed: AtomicU64,
    rows_written: AtomicU64,
    messages_written: AtomicU64,
    last_commit_ns: AtomicU64,
    /// Where commit durations go, once metrics are attached.
    durations: std::sync::OnceLock<prometheus::Histogram>,
}

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

/// Keeps the persister held (see `PersisterHandle::hold`) while it lives.
pub struct HoldGuard {
    _release: std::sync::mpsc::Sender<()>,
}

enum Job {
    Write(Pending),
    /// Retention over every project, in one transaction.
    RetentionEverywhere {
        keep: u32,
        max_age_ms: i64,
        ack: Reply<Vec<String>>,
    },
    Barrier(Reply<()>),
    /// Commit what came before, then wait until the sender is dropped (a stuck disk, for tests).
    Hold(std::sync::mpsc::Receiver<()>),
    /// Commit what is queued, refuse anything new, and stop.
    Shutdown,
}

#[derive(Clone)]
pub struct PersisterHandle {
    jobs: mpsc::Sender<Job>,
    store: Store,
    counters: Arc<Counters>,
    /// Closed when the thread ends, however it ends.
    stopped: watch::Receiver<()>,
}

impl PersisterHandle {
    /// Starts the persister thread, the only writer of `store`, with a queue of `capacity` requests.
    pub fn spawn(store: Store, capacity: usize) -> PersisterHandle {
        Self::spawn_lingering(store, capacity, Linger::OFF)
    }

    /// `spawn`, with groups of writes nobody waits on waiting for company as `linger` says.
    pub fn spawn_lingering(store: Store, capacity: usize, linger: Linger) -> PersisterHandle {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let (stopped_tx, stopped) = watch::channel(());
        let counters = Arc::new(Counters::default());
        let thread_store = store.clone();
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("persister".into())
            .spawn(move || {
                // Locals drop in reverse: waiters learn of the end only after the thread's store clone is
                // gone, so a caller that drops its own handles next can reopen the file at once.
                let _stopped = stopped_tx;
                let store = thread_store;
                let counters = thread_counters;
                let _report = PanicReport;
                run(&store, queue, &counters, linger);
            })
            .expect("the OS refused to start the persister thread");
        PersisterHandle {
            jobs,
            store,
            counters,
            stopped,
        }
    }

    /// Drops a session's seqId ceiling, every seqId handed out under it being stored, so its next actor
    /// continues right after the last stored one. Queued without waiting and not awaited: a full queue
    /// leaves the ceiling, which that actor then skips past (a gap, never a reuse).
    pub fn release_seq(&self, session_id: String, ceiling: u64) {
        let _ = self.try_write_soon(vec![WriteOp::ReleaseSeq {
            session_id,
            ceiling,
        }]);
    }

    /// Queues a write without waiting; the ack resolves after its group commit, which starts at once.
    pub fn try_write(&self, ops: Vec<WriteOp>) -> Result<Ack, TryWriteError> {
        self.try_write_then_retain(ops, None, Commit::Now)
    }

    /// `try_write` of a write nobody waits on: it may linger for company (`Commit::Soon`).
    pub fn try_write_soon(&self, ops: Vec<WriteOp>) -> Result<Ack, TryWriteError> {
        self.try_write_then_retain(ops, None, Commit::Soon)
    }

    /// `try_write`, then `retain` in the same transaction: the ack's `Written::evicted` says what it let go.
    /// `commit`: whether somebody waits for the ack (else the write may linger for company).
    pub fn try_write_then_retain(
        &self,
        ops: Vec<WriteOp>,
        retain: Option<Retain>,
        commit: Commit,
    ) -> Result<Ack, TryWriteError> {
        let permit = match self.jobs.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(())) => return Err(TryWriteError::Full(ops)),
            Err(mpsc::error::TrySendError::Closed(())) => return Err(TryWriteError::Closed),
        };
        let (ack, acked) = oneshot::channel();
        permit.send(Job::Write(Pending {
            ops,
            retain,
            ack,
            commit,
        }));
        Ok(acked)
    }

    /// Queues a write, waiting for queue space, and waits for its commit.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StorageError> {
        self.call(|ack| {
            Job::Write(Pending {
                ops,
                retain: None,
                ack,
                commit: Commit::Now,
            })
        })
        .await
        .map(drop)
    }

    /// Applies retention to every project in storage, in one transaction; answers the evicted session ids.
    pub async fn enforce_retention_everywhere(
        &self,
        keep: u32,
        max_age_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        self.call(|ack| Job::RetentionEverywhere {
            keep,
            max_age_ms,
            ack,
        })
        .await
    }

    /// Resolves once everything queued before it is committed; answers the error if the writes queued
    /// just before it (since the previous commit) failed.
    pub async fn barrier(&self) -> Result<(), StorageError> {
        self.call(Job::Barrier).await
    }

    /// Commits what is queued, then stops the thread and waits for it. Later writes answer Closed.
    pub async fn shutdown(&self) {
        // If the queue is already closed the thread is stopping or gone; either way, wait for its end.
        let _ = self.jobs.send(Job::Shutdown).await;
        let mut stopped = self.stopped.clone();
        while stopped.changed().await.is_ok() {}
    }

    /// Stops the persister after what is queued now, until the returned guard is dropped: writes queue up
    /// behind it as they would behind a stuck disk. For tests of backpressure and metrics.
    pub async fn hold(&self) -> Result<HoldGuard, StorageError> {
        let (release, wait) = std::sync::mpsc::channel();
        self.jobs
            .send(Job::Hold(wait))
            .await
            .map_err(|_| StorageError::Closed)?;
        Ok(HoldGuard { _release: release })
    }

    /// Records every commit's duration in `histogram` from now on (the first call wins).
    pub fn observe_commits(&self, histogram: prometheus::Histogram) {
        let _ = self.counters.durations.set(histogram);
    }

    pub fn stats(&self) -> PersisterStats {
        let c = &self.counters;
        PersisterStats {
            queued_jobs: self.jobs.max_capacity() - self.jobs.capacity(),
            commits_ok: c.commits_ok.load(Ordering::Relaxed),
            commits_failed: c.commits_failed.load(Ordering::Relaxed),
            rows_written: c.rows_written.load(Ordering::Relaxed),
            messages_written: c.messages_written.load(Ordering::Relaxed),
            last_commit: Duration::from_nanos(c.last_commit_ns.load(Ordering::Relaxed)),
        }
    }

    /// The store the persister writes, for reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StorageError> {
        let permit = self
            .jobs
            .reserve()
            .await
            .map_err(|_| StorageError::Closed)?;
        let (reply, replied) = oneshot::channel();
        permit.send(job(reply));
        replied.await.unwrap_or(Err(StorageError::Closed))
    }
}

/// A write that joins the next group commit, with the retention riding with it.
struct Pending {
    ops: Vec<WriteOp>,
    retain: Option<Retain>,
    ack: Reply<Written>,
    commit: Commit,
}

impl Job {
    /// Whether the group holding this job commits without lingering: a write somebody waits on, and every
    /// job that is not a write (each commits what came before it first).
    fn now(&self) -> bool {
        match self {
            Job::Write(write) => write.commit == Commit::Now,
            _ => true,
        }
    }
}

impl Pending {
    fn steps(&self) -> impl Iterator<Item = Step<'_>> {
        let retain = self.retain.as_ref().map(|r| Step::Retain {
            project_id: &r.project_id,
            keep: r.keep,
            max_age_ms: r.max_age_ms,
        });
        std::iter::once(Step::Write(&self.ops)).chain(retain)
    }

    fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.retain.is_none()
    }

    /// Committed: the ops go back to the sender with what its retention let go.
    fn done(self, evicted: Vec<String>) {
        let _ = self.ack.send(Ok(Written {
            _ops: self.ops,
            evicted,
        }));
    }

    fn fail(self, e: StorageError) {
        let _ = self.ack.send(Err(e));
    }
}

/// The thread's loop. Returns when every handle is gone or after a shutdown, with the queue drained.
///
/// If anything in here panics, unwinding drops every pending ack and the queue itself, so each waiting
/// writer sees its ack fail (Closed) and later writes are refused: no ack is silently lost.
fn run(store: &Store, mut queue: mpsc::Receiver<Job>, counters: &Counters, linger: Linger) {
    // Only for waiting on the queue with a deadline (the linger); commits run on this thread as ever.
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("the persister's timer could not start");
    let mut pending: Vec<Pending> = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        let since = Instant::now();
        let mut group = Group::default();
        group.take(first, &mut queue);
        while !group.held {
            let Some(left) = linger.left(group.jobs.len(), group.now, since, Instant::now()) else {
                break;
            };
            // Built inside the runtime: a timeout needs its timer.
            match timer.block_on(async { tokio::time::timeout(left, queue.recv()).await }) {
                Ok(Some(job)) => group.take(job, &mut queue),
                // The wait is over, or every handle is gone: commit what there is.
                Ok(None) | Err(_) => break,
            }
        }
        for job in group.jobs {
            match job {
                Job::Write(write) => pending.push(write),
                Job::RetentionEverywhere {
                    keep,
                    max_age_ms,
                    ack,
                } => {
                    // Each write's ack carries its own outcome; retention answers only its own.
                    let _ = commit(store, &mut pending, counters);
                    let evicted = store.enforce_retention_everywhere(keep, max_age_ms, now_ms());
                    let _ = ack.send(evicted);
                }
                Job::Barrier(ack) => {
                    let _ = ack.send(commit(store, &mut pending, counters));
                }
                Job::Hold(release) => {
                    let _ = commit(store, &mut pending, counters);
                    // Returns when the guard is dropped (its sender disconnects).
                    let _ = release.recv();
                }
                Job::Shutdown => {
                    // What is already queued is still committed: `blocking_recv` drains it, then ends.
                    queue.close();
                }
            }
        }
        let _ = commit(store, &mut pending, counters);
    }
}

/// The jobs the persister took for its next commit.
#[derive(Default)]
struct Group {
    jobs: Vec<Job>,
    /// A hold is among them: what comes after it must stay queued, as behind a stuck disk.
    held: bool,
    /// One of them commits without lingering (`Job::now`).
    now: bool,
}

impl Group {
    /// Takes `job`, then whatever else is queued already (up to `MAX_GROUP` jobs, and never past a hold).
    fn take(&mut self, job: Job, queue: &mut mpsc::Receiver<Job>) {
        let mut next = Some(job);
        while let Some(job) = next.take() {
            self.held = matches!(job, Job::Hold(_));
            self.now |= job.now();
            self.jobs.push(job);
            if self.jobs.len() < MAX_GROUP && !self.held {
                next = queue.try_recv().ok();
            }
        }
    }
}

/// Commits `pending` in one transaction and resolves their acks. Answers Ok if every job committed.
///
/// If the group fails and holds more than one job, each is retried alone: an error the machine causes
/// (a full disk) fails them all again, but one write that cannot be applied (say, a record that no longer
/// decodes) must not fail every other session's writes forever.
fn commit(
    store: &Store,
    pending: &mut Vec<Pending>,
    counters: &Counters,
) -> Result<(), StorageError> {
    if pending.is_empty() {
        return Ok(());
    }
    // Writes of nothing (a first batch's nudge, session/seq.rs) only end a wait for company: alone in a
    // group they cost no transaction and no fsync.
    if pending.iter().all(Pending::is_empty) {
        for job in pending.drain(..) {
            job.done(Vec::new());
        }
        return Ok(());
    }
    let steps: Vec<Step<'_>> = pending.iter().flat_map(Pending::steps).collect();
    let all = timed(counters, &steps, || store.apply_steps(&steps, now_ms()));
    drop(steps);
    match all {
        Ok(evicted) => {
            // One list per `Step::Retain`, in order: the jobs that carried one take theirs.
            let mut evicted = evicted.into_iter();
            for job in pending.drain(..) {
                let mine = match job.retain {
                    Some(_) => evicted.next().unwrap_or_default(),
                    None => Vec::new(),
                };
                job.done(mine);
            }
            Ok(())
        }
        // A lone job's commit was the job on its own already.
        Err(e) if pending.len() == 1 => {
            let job = pending.pop().expect("one job");
            settle(store, job, counters, Err(e))
        }
        Err(_) => {
            let mut first_error = None;
            for job in pending.drain(..) {
                if let Err(e) = commit_alone(store, job, counters) {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        }
    }
}

/// Commits one job on its own.
fn commit_alone(store: &Store, job: Pending, counters: &Counters) -> Result<(), StorageError> {
    let steps: Vec<Step<'_>> = job.steps().collect();
    let result = timed(counters, &steps, || store.apply_steps(&steps, now_ms()));
    drop(steps);
    settle(store, job, counters, result)
}

/// Answers a job whose own commit came to `result`. A retention that fails does not fail the write it rode
/// with: the write is committed without it, and the project's retention runs again when one of its
/// sessions next finishes.
fn settle(
    store: &Store,
    job: Pending,
    counters: &Counters,
    result: Result<Vec<Vec<String>>, StorageError>,
) -> Result<(), StorageError> {
    let result = match result {
        Err(e) if job.retain.is_some() => {
            tracing::warn!(error = %e, "retention failed; it runs again when a session of the project ends");
            let steps = [Step::Write(&job.ops)];
            timed(counters, &steps, || store.apply_steps(&steps, now_ms()))
        }
        other => other,
    };
    match result {
        Ok(mut evicted) => {
            job.done(evicted.pop().unwrap_or_default());
            Ok(())
        }
        Err(e) => {
            job.fail(e.clone());
            Err(e)
        }
    }
}

/// Runs one commit, recording its duration, its outcome and, when it succeeded, what it wrote.
fn timed<T>(
    counters: &Counters,
    steps: &[Step<'_>],
    apply: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let started = Instant::now();
    let result = apply();
    let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counters.last_commit_ns.store(took, Ordering::Relaxed);
    if let Some(h) = counters.durations.get() {
        h.observe(started.elapsed().as_secs_f64());
    }
    if result.is_err() {
        counters.commits_failed.fetch_add(1, Ordering::Relaxed);
        return result;
    }
    counters.commits_ok.fetch_add(1, Ordering::Relaxed);
    for step in steps {
        let Step::Write(ops) = step else { continue };
        for op in ops.iter() {
            let messages = match op {
                WriteOp::AppendMessages { messages, .. } => messages.len() as u64,
                WriteOp::AppendEncoded(batch) => batch.len(),
                _ => 0,
            };
            if messages > 0 {
                counters.rows_written.fetch_add(1, Ordering::Relaxed);
                counters
                    .messages_written
                    .fetch_add(messages, Ordering::Relaxed);
            }
        }
    }
    result
}

/// Logs a panic of the persister thread; the acks it held are answered by being dropped.
struct PanicReport;

impl Drop for PanicReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                "the persister thread panicked; pending and later writes answer Closed"
            );
        }
    }
}
