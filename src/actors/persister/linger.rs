//! How long the persister waits for company before it commits writes that nobody waits on.
//!
//! A commit costs fixed work however few writes it holds: the transaction's bookkeeping, every B-tree
//! page it touched written anew, an fsync. A write whose caller waits for its ack (a durable ingest, a
//! start whose agent runs in this process, a seqId reservation an ingest waits for) is committed at once,
//! as always. A write nobody waits on (a synthetic session's first record, the replay journal, a debounced
//! flush, a seqId block reserved ahead of need) may wait up to `wait` for more writes, so that many of them
//! share one commit. The first write that somebody waits on ends the wait for the whole group.
//!
//! A plain type so that the decision is tested without a thread.

use std::time::{Duration, Instant};

/// When a group of writes nobody waits on commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    /// The longest such a group waits for more jobs, from its first one; zero: it never waits.
    pub wait: Duration,
    /// A group of this many jobs commits at once.
    pub enough: usize,
}

impl Linger {
    /// Groups commit as soon as the persister takes them (what was queued meanwhile joins them).
    pub const OFF: Linger = Linger {
        wait: Duration::ZERO,
        enough: 0,
    };

    /// Waits up to `wait`, or until `ENOUGH` jobs.
    pub fn up_to(wait: Duration) -> Linger {
        Linger {
            wait,
            enough: ENOUGH,
        }
    }

    /// How much longer a group of `jobs` jobs, taken since `since`, waits for more; `None`: commit now.
    /// `waited`: someone waits for one of them (or a job that is not a write is among them).
    pub fn left(
        &self,
        jobs: usize,
        waited: bool,
        since: Instant,
        now: Instant,
    ) -> Option<Duration> {
        if waited || jobs >= self.enough {
            return None;
        }
        let left = (since + self.wait).checked_duration_since(now)?;
        (!left.is_zero()).then_some(left)
    }
}

/// Jobs that commit without waiting any longer: past a few hundred writes a commit's fixed work is a small
/// part of it, and a larger group only holds its first writes back longer.
pub(super) const ENOUGH: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn off_never_waits() {
        let now = Instant::now();
        assert_eq!(Linger::OFF.left(1, false, now, now), None);
    }

    #[test]
    fn unwaited_writes_wait_until_the_deadline() {
        let linger = Linger::up_to(5 * MS);
        let since = Instant::now();
        assert_eq!(linger.left(1, false, since, since), Some(5 * MS));
        assert_eq!(linger.left(7, false, since, since + 2 * MS), Some(3 * MS));
        assert_eq!(linger.left(7, false, since, since + 5 * MS), None);
        assert_eq!(linger.left(7, false, since, since + 6 * MS), None);
    }

    #[test]
    fn a_waited_write_ends_the_wait() {
        let linger = Linger::up_to(5 * MS);
        let since = Instant::now();
        assert_eq!(linger.left(1, true, since, since), None);
        assert_eq!(linger.left(300, true, since, since + MS), None);
    }

    #[test]
    fn enough_jobs_end_the_wait() {
        let linger = Linger {
            wait: 5 * MS,
            enough: 3,
        };
        let since = Instant::now();
        assert_eq!(linger.left(2, false, since, since), Some(5 * MS));
        assert_eq!(linger.left(3, false, since, since), None);
    }
}
