//! The CPU time the store used during the stream phase, so a throughput figure says how many of the
//! machine's cores it took: user + system time of this process (an in-process engine, the generator
//! included) or of `--server-pid`, read before and after. An HTTP run without a pid has no process to read
//! and reports none.
//!
//! This process is read with `getrusage`, whose sum of user and system time is the scheduler's runtime
//! to the microsecond. `/proc/<pid>/stat` counts in clock ticks (10 ms here), which is all another
//! process offers without reading every thread: the in-process 1,000 × 100 run streams in ~0.2 CPU-s,
//! about 20 ticks, so the tick count could not tell two builds apart by less than ~5 %.

use std::time::Duration;

/// A reading taken when the stream phase starts.
pub struct CpuProbe {
    pid: Option<u32>,
    at_start: Option<Duration>,
}

/// CPU time over the stream phase and what it was measured on.
pub struct CpuUse {
    pub seconds: Option<f64>,
    pub source: String,
}

impl CpuProbe {
    /// `pid` None: this process. `readable` false: nothing to read (an HTTP target without a pid).
    pub fn start(pid: Option<u32>, readable: bool) -> CpuProbe {
        CpuProbe {
            pid,
            at_start: readable.then(|| cpu_time(pid)).flatten(),
        }
    }

    pub fn finish(self) -> CpuUse {
        let used = self
            .at_start
            .and_then(|start| Some(cpu_time(self.pid)?.saturating_sub(start)));
        CpuUse {
            seconds: used.map(|d| d.as_secs_f64()),
            source: match (used, self.pid) {
                (None, _) => "unavailable: give --server-pid for an HTTP target".into(),
                (Some(_), None) => {
                    "user + system time of this process (engine and generator), to the microsecond"
                        .into()
                }
                (Some(_), Some(pid)) => format!("user + system time of server pid {pid}"),
            },
        }
    }
}

/// User + system time of `pid` (None: this process) so far, every thread included.
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let Some(pid) = pid else {
        return own_cpu_time();
    };
    let ticks = parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let per_second = u64::try_from(per_second).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// User + system time of this process, every thread included (ended ones too), to the microsecond.
fn own_cpu_time() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let micros = |t: nix::sys::time::TimeVal| {
        Some(u64::try_from(t.tv_sec()).ok()? * 1_000_000 + u64::try_from(t.tv_usec()).ok()?)
    };
    let total = micros(usage.user_time()).zip(micros(usage.system_time()));
    total.map(|(user, system)| Duration::from_micros(user + system))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its closing parenthesis.
fn parse_stat(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_read_past_a_name_with_spaces() {
        let stat =
            "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 100 0";
        assert_eq!(parse_stat(stat), Some(287));
    }

    #[test]
    fn this_process_is_read_while_it_works() {
        let probe = CpuProbe::start(None, true);
        let before = probe.at_start.expect("/proc/self/stat is readable");
        // Works until the kernel has counted a tick more (its clock is coarse), not for a set time.
        let mut x = 0u64;
        while cpu_time(None).is_some_and(|now| now <= before) {
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
        let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map(|t| Duration::from_secs_f64(1.0 / t as f64))
            .expect("CLK_TCK");
        let mut last = cpu_time(None).expect("this process is readable");
        let step = loop {
            let now = cpu_time(None).expect("this process is readable");
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
    fn nothing_to_read_says_so() {
        let used = CpuProbe::start(Some(1), false).finish();
        assert_eq!(used.seconds, None);
        assert!(used.source.contains("--server-pid"));
    }
}
