//! The persister's thread: its loop takes the first job and whatever else is queued, commits the writes
//! among them as one group (lingering first when nobody waits on them, `linger.rs`), answers each ack after
//! the commit, and runs retention, barriers, holds and the shutdown in queue order. The handle that queues
//! these jobs is `super::PersisterHandle`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{Commit, Counters, Job, Linger, Reply, Retain, Written, MAX_GROUP};
use crate::messages::wire::now_ms;
use crate::storage::{Step, StorageError, Store, WriteOp};

/// A write that joins the next group commit, with the retention riding with it.
pub(super) struct Pending {
    pub(super) ops: Vec<WriteOp>,
    pub(super) retain: Option<Retain>,
    pub(super) ack: Reply<Written>,
    pub(super) commit: Commit,
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
pub(super) fn run(
    store: &Store,
    mut queue: mpsc::Receiver<Job>,
    counters: &Counters,
    linger: Linger,
) {
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
pub(super) struct PanicReport;

impl Drop for PanicReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                "the persister thread panicked; pending and later writes answer Closed"
            );
        }
    }
}
