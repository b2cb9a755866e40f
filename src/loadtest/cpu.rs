//! The CPU time the store used during the stream phase, so a throughput figure says how many of the
//! machine's cores it took: user + system time of this process (an in-process engine, the generator
//! included) or of `--server-pid`, read before and after. An HTTP run without a pid has no process to read
//! and reports none.
//!
//! This process is read with `getrusage`, whose sum of user and system time is the scheduler's runtime
//! to the microsecond. `/proc/<pid>/stat` counts in clock ticks (10 ms here), which is all another
//! process offers without reading every thread: the in-process 1,000 × 100 run streams in ~0.2 CPU-s,
//! about 20 ticks, so the tick count could not tell two builds apart by less than ~5 %.
//!
//! The page faults of the same interval are read beside it (`getrusage`'s, or `/proc/<pid>/stat`'s
//! minor + major counts). Each is a fresh page touched, so they count the memory the stream newly took.
//! They are exact where CPU time is noisy: in the in-process run's profile, faulting in and zeroing
//! fresh pages was about a third of the stream's CPU.
//!
//! In-process, the thread that starts and finishes the probe is also read on its own (`getrusage`'s
//! `RUSAGE_THREAD`): the loadtest's current-thread runtime runs the generator there (its requests, the
//! engine's entry that splits each batch over the routers, the live watcher and the persist probe), so
//! the process's figure splits into the generator's thread and the engine's threads.

use std::time::Duration;

/// A reading taken when the stream phase starts.
pub struct CpuProbe {
    pid: Option<u32>,
    at_start: Option<Reading>,
    /// This thread's CPU time at the start (in-process only).
    thread_at_start: Option<Duration>,
}

/// What a process used so far: CPU time and page faults, every thread included.
#[derive(Debug, Clone, Copy)]
struct Reading {
    cpu: Duration,
    faults: u64,
}

/// CPU time and page faults over the stream phase, and what they were measured on.
pub struct CpuUse {
    pub seconds: Option<f64>,
    /// Of `seconds`, what the thread that read the probe used (in-process: the generator's thread).
    pub thread_seconds: Option<f64>,
    pub page_faults: Option<u64>,
    pub source: String,
}

impl CpuProbe {
    /// `pid` None: this process. `readable` false: nothing to read (an HTTP target without a pid).
    pub fn start(pid: Option<u32>, readable: bool) -> CpuProbe {
        CpuProbe {
            pid,
            at_start: readable.then(|| reading(pid)).flatten(),
            thread_at_start: pid.is_none().then(thread_cpu).flatten(),
        }
    }

    pub fn finish(self) -> CpuUse {
        let used = self.at_start.and_then(|start| {
            let now = reading(self.pid)?;
            Some(Reading {
                cpu: now.cpu.saturating_sub(start.cpu),
                faults: now.faults.saturating_sub(start.faults),
            })
        });
        let thread_used = self
            .thread_at_start
            .zip(thread_cpu())
            .map(|(start, now)| now.saturating_sub(start).as_secs_f64());
        CpuUse {
            seconds: used.map(|u| u.cpu.as_secs_f64()),
            thread_seconds: used.and(thread_used),
            page_faults: used.map(|u| u.faults),
            source: match (used, self.pid) {
                (None, _) => "unavailable: give --server-pid for an HTTP target".into(),
                (Some(_), None) => {
                    "user + system time (to the microsecond) and page faults of this process (engine and generator)"
                        .into()
                }
                (Some(_), Some(pid)) => format!("user + system time and page faults of server pid {pid}"),
            },
        }
    }
}

/// User + system time and page faults of `pid` (None: this process) so far, every thread included.
fn reading(pid: Option<u32>) -> Option<Reading> {
    let Some(pid) = pid else {
        return own_reading();
    };
    let stat = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    Some(Reading {
        cpu: clock_tick()?.mul_f64(stat.ticks as f64),
        faults: stat.faults,
    })
}

/// How long one clock tick is (1/CLK_TCK s, 10 ms on Linux): the unit of `/proc`'s CPU times.
pub(super) fn clock_tick() -> Option<Duration> {
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let per_second = u32::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs(1) / per_second)
}

/// User + system time of this process, every thread included (ended ones too), to the microsecond,
/// and its page faults.
fn own_reading() -> Option<Reading> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let faults = u64::try_from(usage.minor_page_faults()).ok()?
        + u64::try_from(usage.major_page_faults()).ok()?;
    Some(Reading {
        cpu: micros(usage.user_time())? + micros(usage.system_time())?,
        faults,
    })
}

/// User + system time of the calling thread so far, to the microsecond.
fn thread_cpu() -> Option<Duration> {
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
pub(super) struct Stat {
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    /// minflt + majflt.
    pub faults: u64,
}

/// minflt + majflt (fields 10 and 12) and utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line.
/// The command name (field 2) is in parentheses and may hold spaces, so fields are counted after its
/// closing parenthesis.
pub(super) fn parse_stat(stat: &str) -> Option<Stat> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().take(13).collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        ticks: field(14)? + field(15)?,
        faults: field(10)? + field(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_fresh_pages_this_process_touches_are_counted() {
        let probe = CpuProbe::start(None, true);
        // 64 MiB written byte by byte: 16,384 pages, far more than any allocator keeps touched and free.
        let touched = std::hint::black_box(vec![1u8; 64 << 20]);
        let used = probe.finish();
        drop(touched);
        assert!(
            used.page_faults.is_some_and(|f| f >= 1_000),
            "{:?} page faults",
            used.page_faults
        );
    }

    #[test]
    fn this_process_is_read_while_it_works() {
        let probe = CpuProbe::start(None, true);
        let before = probe.at_start.expect("/proc/self/stat is readable");
        // Works until the kernel has counted a tick more (its clock is coarse), not for a set time.
        let mut x = 0u64;
        while reading(None).is_some_and(|now| now.cpu <= before.cpu) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let used = probe.finish();
        assert!(used.seconds.is_some_and(|s| s > 0.0), "{}", used.source);
    }

    #[test]
    fn this_process_is_read_finer_than_a_clock_tick() {
        // A clock tick is 1/CLK_TCK s (10 ms on Linux): counted in ticks, the first change seen is a
        // whole tick. Read finely, it is what ran between two readings, a few microseconds.
        let tick = clock_tick().expect("CLK_TCK");
        let cpu = || reading(None).expect("this process is readable").cpu;
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
        let probe = CpuProbe::start(None, true);
        // The other thread works until it has used 50 ms of CPU by its own count; this one waits in join.
        std::thread::spawn(|| {
            let mut x = 0u64;
            while thread_cpu().is_some_and(|t| t < Duration::from_millis(50)) {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
        })
        .join()
        .expect("the worker ends");
        let used = probe.finish();
        let (process, thread) = (used.seconds.unwrap(), used.thread_seconds.unwrap());
        assert!(
            process - thread >= 0.05,
            "process {process}s, this thread {thread}s"
        );
    }

    #[test]
    fn another_process_has_no_thread_figure() {
        let used = CpuProbe::start(Some(std::process::id()), true).finish();
        assert!(used.seconds.is_some() && used.thread_seconds.is_none());
    }

    #[test]
    fn nothing_to_read_says_so() {
        let used = CpuProbe::start(Some(1), false).finish();
        assert_eq!(used.seconds, None);
        assert!(used.source.contains("--server-pid"));
    }
}
