//! Where each phase's CPU went: the store's process (`--server-pid`, or this process for an in-process
//! run) split by thread, and over HTTP the generator's own use beside it.
//!
//! The 100,000-session start is CPU-bound on two cores shared with the generator, so "setup took 3.2 s"
//! says little until it says who used the cores: the HTTP workers, the arbiters, the persister, the
//! generator. Reading it here, at the phase boundaries the run itself knows, makes that split a figure of
//! the report anyone can rerun rather than a script's.
//!
//! Everything is read from `/proc/<pid>/stat` and `/proc/<pid>/task/<tid>/{stat,status}`, in clock ticks
//! (10 ms): fine for phases of seconds, coarse for the in-process stream's ~0.1 s (cpu.rs reads that one
//! to the microsecond). A thread that ends within a phase is missing from the split (never from the
//! process's total); context switches are summed over the threads alive at the phase's end.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cpu::{clock_tick, parse_stat, Stat};

/// Threads listed by name in a phase; the rest are summed into one "others" row.
const LISTED: usize = 12;

/// One phase of the run and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `setup`, `stream` or `finish`.
    pub phase: String,
    pub wall_s: f64,
    /// The store's process (in-process: the whole process, generator included).
    pub server: Usage,
    /// This process when the store is another one (HTTP with `--server-pid`).
    pub generator: Option<Usage>,
}

/// A process's use over a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// User + system time, every thread included.
    pub cpu_s: f64,
    /// Minor + major page faults: fresh pages touched.
    pub page_faults: u64,
    /// Voluntary + involuntary, of the threads alive at the phase's end.
    pub context_switches: u64,
    /// The busiest threads, most CPU first, then one `others` row.
    pub threads: Vec<ThreadUse>,
}

/// One thread's use over a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadUse {
    /// The kernel's name of the thread (at most 15 bytes), with its id.
    pub name: String,
    pub cpu_s: f64,
    pub context_switches: u64,
}

/// The phase boundaries of one run.
pub struct PhaseClock {
    server: Option<Watched>,
    generator: Option<Watched>,
    phases: Vec<Phase>,
}

/// A process read at the last boundary.
struct Watched {
    pid: u32,
    at: Snapshot,
}

#[derive(Default)]
struct Snapshot {
    ticks: u64,
    faults: u64,
    /// tid → (name, ticks, context switches).
    threads: HashMap<u32, (String, u64, u64)>,
}

impl PhaseClock {
    /// Starts the first phase now. `server_pid` None: the store is in this process (`in_process`) or
    /// cannot be read (an HTTP target without a pid: only the generator is reported).
    pub fn start(server_pid: Option<u32>, in_process: bool) -> PhaseClock {
        let own = std::process::id();
        let watch = |pid: u32| {
            Some(Watched {
                pid,
                at: snapshot(pid)?,
            })
        };
        let server = match server_pid {
            Some(pid) => watch(pid),
            None if in_process => watch(own),
            None => None,
        };
        let generator = if in_process { None } else { watch(own) };
        PhaseClock {
            server,
            generator,
            phases: Vec::new(),
        }
    }

    /// Ends the phase that began at `started`, named `phase`; the next one begins now.
    pub fn end(&mut self, phase: &str, started: Instant) {
        let wall_s = started.elapsed().as_secs_f64();
        let server = self.server.as_mut().and_then(Watched::advance);
        let generator = self.generator.as_mut().and_then(Watched::advance);
        // Without a readable store there is nothing to split; the generator alone says little.
        if let Some(server) = server {
            self.phases.push(Phase {
                phase: phase.to_owned(),
                wall_s,
                server,
                generator,
            });
        }
    }

    pub fn finish(self) -> Vec<Phase> {
        self.phases
    }
}

impl Phase {
    /// One line: the store's CPU and its three busiest threads, then the generator's.
    pub fn summary(&self) -> String {
        let busiest: Vec<String> = self
            .server
            .threads
            .iter()
            .take(3)
            .map(|t| format!("{} {:.2}s", t.name, t.cpu_s))
            .collect();
        let mut line = format!(
            "cpu in {} ({:.2}s): store {:.2}s, {} switches ({})",
            self.phase,
            self.wall_s,
            self.server.cpu_s,
            self.server.context_switches,
            busiest.join(", ")
        );
        if let Some(g) = &self.generator {
            line += &format!("; generator {:.2}s", g.cpu_s);
        }
        line
    }
}

impl Watched {
    /// The use since the last boundary, which becomes this one.
    fn advance(&mut self) -> Option<Usage> {
        let now = snapshot(self.pid)?;
        let usage = used(&self.at, &now);
        self.at = now;
        Some(usage)
    }
}

/// What changed from `before` to `after`.
fn used(before: &Snapshot, after: &Snapshot) -> Usage {
    // Linux's 10 ms should the system not say.
    let tick = clock_tick().map_or(0.01, |t| t.as_secs_f64());
    let mut threads: Vec<ThreadUse> = after
        .threads
        .iter()
        .map(|(tid, (name, ticks, switches))| {
            // A thread born within the phase counts from nothing.
            let (ticks0, switches0) = before.threads.get(tid).map_or((0, 0), |(_, t, s)| (*t, *s));
            ThreadUse {
                name: format!("{name} ({tid})"),
                cpu_s: ticks.saturating_sub(ticks0) as f64 * tick,
                context_switches: switches.saturating_sub(switches0),
            }
        })
        .filter(|t| t.cpu_s > 0.0 || t.context_switches > 0)
        .collect();
    threads.sort_by(|a, b| b.cpu_s.total_cmp(&a.cpu_s).then(a.name.cmp(&b.name)));
    let context_switches = threads.iter().map(|t| t.context_switches).sum();
    if threads.len() > LISTED {
        let rest = threads.split_off(LISTED);
        threads.push(ThreadUse {
            name: format!("others ({} threads)", rest.len()),
            cpu_s: rest.iter().map(|t| t.cpu_s).sum(),
            context_switches: rest.iter().map(|t| t.context_switches).sum(),
        });
    }
    Usage {
        cpu_s: after.ticks.saturating_sub(before.ticks) as f64 * tick,
        page_faults: after.faults.saturating_sub(before.faults),
        context_switches,
        threads,
    }
}

/// The process's totals and every thread's, or None if the process is gone.
fn snapshot(pid: u32) -> Option<Snapshot> {
    let Stat { ticks, faults } =
        parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
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
    Some(Snapshot {
        ticks,
        faults,
        threads,
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
    fn a_busy_thread_of_this_process_is_named_in_its_phase() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let mut clock = PhaseClock::start(None, true);
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let busy = std::thread::Builder::new()
            .name("phase-test-busy".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
            })
            .unwrap();
        // The kernel counts in ticks: the phase ends once it has counted the busy thread two.
        let busy_ticks = || {
            snapshot(std::process::id())
                .unwrap()
                .threads
                .into_values()
                .find(|(name, _, _)| name == "phase-test-busy")
                .map_or(0, |(_, ticks, _)| ticks)
        };
        while busy_ticks() < 2 {
            std::thread::yield_now();
        }
        // Read while the thread is alive: one that ended is missing from the split.
        clock.end("setup", started);
        stop.store(true, Ordering::Relaxed);
        busy.join().unwrap();
        let phases = clock.finish();
        assert_eq!(phases.len(), 1);
        let setup = &phases[0];
        assert_eq!(setup.phase, "setup");
        assert!(setup.generator.is_none(), "in-process: one process");
        assert!(setup.server.cpu_s >= 0.02, "{:?}", setup.server);
        assert!(
            setup
                .server
                .threads
                .iter()
                .any(|t| t.name.starts_with("phase-test-busy") && t.cpu_s >= 0.02),
            "{:?}",
            setup.server.threads
        );
    }

    #[test]
    fn an_unreadable_store_reports_no_phases() {
        let mut clock = PhaseClock::start(None, false);
        clock.end("setup", Instant::now());
        assert!(clock.finish().is_empty());
    }
}
