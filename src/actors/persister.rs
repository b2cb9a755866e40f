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
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::storage::{StorageError, Store, WriteOp};

mod linger;
mod thread;

pub use self::linger::Linger;
use self::thread::{run, PanicReport, Pending};

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
