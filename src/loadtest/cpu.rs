//! How a process's use is read at a phase boundary (phases.rs does the arithmetic): its CPU time and
//! page faults, every thread's CPU time and context switches, and, for this process, the calling
//! thread's CPU time.
//!
//! Another process (`--server-pid`, or the generator when the store is another) is read from
//! `/proc/<pid>/stat` and `/proc/<pid>/task/<tid>/{stat,status}`, in clock ticks (10 ms here), which is
//! all it offers without ptrace. This process's totals are read with `getrusage` instead, whose sum of
//! user and system time is the scheduler's runtime to the microsecond: the in-process 1,000 × 100 run
//! streams in ~0.2 CPU-s, about 20 ticks, so a tick count could not tell two builds apart by less than
//! ~5 %. Its per-thread split stays in ticks (only `/proc` has it).
//!
//! Page faults are read beside the CPU time. Each is a fresh page touched, so they count the memory a
//! phase newly took; they are exact where CPU time is noisy (in the in-process run's profile, faulting in
//! and zeroing fresh pages was about a third of the stream's CPU).
//!
//! In-process, the calling thread is read on its own too (`RUSAGE_THREAD`): the loadtest's
//! current-thread runtime runs the generator there (its requests, the engine's entry that splits each
//! batch over the routers, the live watcher and the persist probe), so the process's figure splits into
//! the generator's thread and the engine's threads.

use std::collections::HashMap;
use std::time::Duration;

/// A process's use so far, read at a phase boundary.
///
/// Its totals are read twice: before the threads (where the phase that ends here ends) and after them
/// (where the next one begins). Reading every thread's files takes this thread a few milliseconds in a
/// process with a blocking pool of a hundred threads, a few per cent of the in-process stream: read
/// once, it would count in one of the phases.
pub(super) struct Snapshot {
    pub ended: Totals,
    pub begun: Totals,
    /// tid → (name, ticks, context switches).
    pub threads: HashMap<u32, (String, u64, u64)>,
}

/// A process's totals at one instant.
#[derive(Debug, Clone, Copy)]
pub(super) struct Totals {
    /// User + system time, every thread included (ended ones too).
    pub cpu: Duration,
    /// Minor + major page faults.
    pub faults: u64,
    /// This process only: the calling thread's user + system time, to the microsecond.
    pub this_thread: Option<Duration>,
}

/// The process a snapshot reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Process {
    /// This one: totals to the microsecond, and the calling thread's.
    This,
    /// Another, by pid: `/proc` only, in ticks.
    Other(u32),
}

/// The process's use so far, or None if it is gone.
pub(super) fn snapshot(process: Process) -> Option<Snapshot> {
    let pid = match process {
        Process::This => std::process::id(),
        Process::Other(pid) => pid,
    };
    let ended = totals(process)?;
    let threads = threads(pid)?;
    Some(Snapshot {
        ended,
        begun: totals(process)?,
        threads,
    })
}

/// The process's totals now.
fn totals(process: Process) -> Option<Totals> {
    match process {
        Process::This => {
            let (cpu, faults) = own_totals()?;
            Some(Totals {
                cpu,
                faults,
                this_thread: this_thread_cpu(),
            })
        }
        Process::Other(pid) => {
            let Stat { ticks, faults } =
                parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
            Some(Totals {
                cpu: clock_tick()?.checked_mul(u32::try_from(ticks).ok()?)?,
                faults,
                this_thread: None,
            })
        }
    }
}

/// Every live thread of `pid`: tid → (name, ticks, context switches).
fn threads(pid: u32) -> Option<HashMap<u32, (String, u64, u64)>> {
    let mut threads = HashMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read: it is left out, as one ended before.
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        if let (Some(name), Some(Stat { ticks, .. })) = (stat_name(&stat), parse_stat(&stat)) {
            threads.insert(tid, (name.to_owned(), ticks, switches(&status)));
        }
    }
    Some(threads)
}

/// How long one clock tick is (1/CLK_TCK s, 10 ms on Linux): the unit of `/proc`'s CPU times.
pub(super) fn clock_tick() -> Option<Duration> {
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let per_second = u32::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs(1) / per_second)
}

/// User + system time of this process, every thread included (ended ones too), to the microsecond,
/// and its page faults.
fn own_totals() -> Option<(Duration, u64)> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let faults = u64::try_from(usage.minor_page_faults()).ok()?
        + u64::try_from(usage.major_page_faults()).ok()?;
    Some((
        micros(usage.user_time())? + micros(usage.system_time())?,
        faults,
    ))
}

/// User + system time of the calling thread so far, to the microsecond.
fn this_thread_cpu() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
    Some(micros(usage.user_time())? + micros(usage.system_time())?)
}

fn micros(t: nix::sys::time::TimeVal) -> Option<Duration> {
    Some(Duration::from_micros(
        u64::try_from(t.tv_sec()).ok()? * 1_000_000 + u64::try_from(t.tv_usec()).ok()?,
    ))
}

/// What `/proc/<pid>/stat` (or a thread's `/proc/<pid>/task/<tid>/stat`) says of its use.
#[derive(Debug, PartialEq)]
struct Stat {
    /// utime + stime, in clock ticks.
    ticks: u64,
    /// minflt + majflt.
    faults: u64,
}

/// minflt + majflt (fields 10 and 12) and utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line.
/// The command name (field 2) is in parentheses and may hold spaces, so fields are counted after its
/// closing parenthesis.
fn parse_stat(stat: &str) -> Option<Stat> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().take(13).collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        ticks: field(14)? + field(15)?,
        faults: field(10)? + field(12)?,
    })
}

/// The name between the first `(` and the last `)` of a stat line (it may hold either).
fn stat_name(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

/// voluntary + nonvoluntary context switches of a `status` file.
fn switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Snapshot {
        snapshot(Process::This).expect("this process is readable")
    }

    #[test]
    fn ticks_and_faults_are_read_past_a_name_with_spaces() {
        let stat =
            "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 7 3 9 250 37 0 0 20 0 9 0 100 0";
        let read = Stat {
            ticks: 287,
            faults: 103,
        };
        assert_eq!(parse_stat(stat), Some(read));
    }

    #[test]
    fn a_threads_name_is_read_whole_even_with_parentheses_and_spaces() {
        let stat =
            "77 (actix-rt|system) S 1 77 77 0 -1 4194560 100 7 3 9 250 37 0 0 20 0 9 0 100 0";
        assert_eq!(stat_name(stat), Some("actix-rt|system"));
        let odd =
            "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 7 3 9 250 37 0 0 20 0 9 0 100 0";
        assert_eq!(stat_name(odd), Some("my (odd) name"));
    }

    #[test]
    fn both_kinds_of_context_switch_are_counted() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t5\n";
        assert_eq!(switches(status), 17);
    }

    #[test]
    fn the_fresh_pages_this_process_touches_are_counted() {
        let before = own();
        // 64 MiB written byte by byte: 16,384 pages, far more than any allocator keeps touched and free.
        let touched = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = own();
        drop(touched);
        assert!(
            after.ended.faults - before.begun.faults >= 1_000,
            "{} page faults",
            after.ended.faults - before.begun.faults
        );
    }

    #[test]
    fn this_process_is_read_finer_than_a_clock_tick() {
        // A clock tick is 1/CLK_TCK s (10 ms on Linux): counted in ticks, the first change seen is a
        // whole tick. Read finely, it is what ran between two readings, a few microseconds.
        let tick = clock_tick().expect("CLK_TCK");
        let cpu = || own_totals().expect("this process is readable").0;
        let mut last = cpu();
        let step = loop {
            let now = cpu();
            if now > last {
                break now - last;
            }
            last = now;
        };
        assert!(
            step < tick,
            "the first change seen is {step:?}, a tick is {tick:?}"
        );
    }

    #[test]
    fn another_threads_work_counts_for_the_process_and_not_for_this_thread() {
        let before = own();
        // The other thread works until it has used 50 ms of CPU by its own count; this one waits in join.
        std::thread::spawn(|| {
            let mut x = 0u64;
            while this_thread_cpu().is_some_and(|t| t < Duration::from_millis(50)) {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
        })
        .join()
        .expect("the worker ends");
        let after = own();
        let process = after.ended.cpu - before.begun.cpu;
        let thread = after.ended.this_thread.unwrap() - before.begun.this_thread.unwrap();
        assert!(
            process.saturating_sub(thread) >= Duration::from_millis(50),
            "process {process:?}, this thread {thread:?}"
        );
    }

    #[test]
    fn another_process_is_read_in_ticks_without_a_thread_figure() {
        // This process read as another would be (its pid, through /proc).
        let other = snapshot(Process::Other(std::process::id())).expect("/proc/<pid> is readable");
        let tick = clock_tick().expect("CLK_TCK");
        assert!(other.ended.this_thread.is_none());
        assert_eq!(
            other.ended.cpu.as_nanos() % tick.as_nanos(),
            0,
            "{:?}",
            other.ended
        );
        assert!(!other.threads.is_empty());
    }

    #[test]
    fn a_process_that_is_gone_is_not_read() {
        // Above the kernel's largest pid (pid_max is at most 2^22).
        assert!(snapshot(Process::Other(u32::MAX)).is_none());
    }
}
