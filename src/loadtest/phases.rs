//! Where each phase's CPU went: the store's process (`--server-pid`, or this process for an in-process
//! run) split by thread, and over HTTP the generator's own use beside it.
//!
//! The 100,000-session start is CPU-bound on two cores shared with the generator, so "setup took 3.2 s"
//! says little until it says who used the cores: the HTTP workers, the arbiters, the persister, the
//! generator. Reading it here, at the phase boundaries the run itself knows, makes that split a figure of
//! the report anyone can rerun rather than a script's.
//!
//! The threads are read from `/proc/<pid>/task/<tid>/{stat,status}`, in clock ticks (10 ms): fine for
//! phases of seconds. The in-process store's totals and the generator's thread are read to the
//! microsecond (cpu.rs), so the in-process stream's ~0.1 s is measured finely; the report's
//! `cpu_stream_s`, `cpu_stream_generator_s` and `page_faults_stream` are the stream phase's figures. A
//! thread that ends within a phase is missing from the split (never from the process's total); context
//! switches are summed over the threads alive at the phase's end.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cpu::{clock_tick, snapshot, Process, Snapshot};

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
    /// In-process: of `server.cpu_s`, the generator's thread (its requests, the engine's entry, the live
    /// watcher, the persist probe); the rest is the engine's threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_thread_cpu_s: Option<f64>,
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
    process: Process,
    at: Snapshot,
}

impl PhaseClock {
    /// Starts the first phase now. `server_pid` None: the store is in this process (`in_process`) or
    /// cannot be read (an HTTP target without a pid: only the generator is reported).
    pub fn start(server_pid: Option<u32>, in_process: bool) -> PhaseClock {
        let watch = |process: Process| {
            Some(Watched {
                process,
                at: snapshot(process)?,
            })
        };
        let server = match server_pid {
            Some(pid) => watch(Process::Other(pid)),
            None if in_process => watch(Process::This),
            None => None,
        };
        let generator = if in_process {
            None
        } else {
            watch(Process::This)
        };
        PhaseClock {
            server,
            generator,
            phases: Vec::new(),
        }
    }

    /// The next phase begins now: what ran since the last boundary (the probes' start between setup
    /// and stream) is in no phase.
    pub fn begin(&mut self) {
        for watched in [&mut self.server, &mut self.generator]
            .into_iter()
            .flatten()
        {
            watched.advance();
        }
    }

    /// Ends the phase that began at `started`, named `phase`; the next one begins now. The store's use
    /// over it, if the store is readable.
    pub fn end(&mut self, phase: &str, started: Instant) -> Option<&Phase> {
        let wall_s = started.elapsed().as_secs_f64();
        let server = self.server.as_mut().and_then(Watched::advance);
        let generator = self.generator.as_mut().and_then(Watched::advance);
        // Without a readable store there is nothing to split; the generator alone says little.
        let (server, generator_thread) = server?;
        self.phases.push(Phase {
            phase: phase.to_owned(),
            wall_s,
            server,
            generator: generator.map(|(usage, _)| usage),
            generator_thread_cpu_s: generator_thread.map(|t| t.as_secs_f64()),
        });
        self.phases.last()
    }

    pub fn finish(self) -> Vec<Phase> {
        self.phases
    }
}

/// Where the report's stream CPU and page faults come from.
pub fn cpu_source(server_pid: Option<u32>, in_process: bool) -> String {
    match server_pid {
        Some(pid) => format!("user + system time and page faults of server pid {pid}"),
        None if in_process => {
            "user + system time (to the microsecond) and page faults of this process (engine and generator)"
                .into()
        }
        None => "unavailable: give --server-pid for an HTTP target".into(),
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
    /// The use since the last boundary, which becomes this one, and the calling thread's (this process).
    fn advance(&mut self) -> Option<(Usage, Option<Duration>)> {
        let now = snapshot(self.process)?;
        let usage = used(&self.at, &now);
        let this_thread = now
            .ended
            .this_thread
            .zip(self.at.begun.this_thread)
            .map(|(now, then)| now.saturating_sub(then));
        self.at = now;
        Some((usage, this_thread))
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
        cpu_s: after
            .ended
            .cpu
            .saturating_sub(before.begun.cpu)
            .as_secs_f64(),
        page_faults: after.ended.faults.saturating_sub(before.begun.faults),
        context_switches,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            snapshot(Process::This)
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
    fn in_process_the_generators_thread_is_split_from_the_rest() {
        let mut clock = PhaseClock::start(None, true);
        let started = Instant::now();
        // The other thread works until it has used 50 ms of CPU by its own count; this one waits in join.
        std::thread::spawn(|| {
            let started = snapshot(Process::This).unwrap().ended.this_thread.unwrap();
            let mut x = 0u64;
            while snapshot(Process::This).is_some_and(|now| {
                now.ended.this_thread.unwrap() - started < Duration::from_millis(50)
            }) {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
        })
        .join()
        .expect("the worker ends");
        let phase = clock.end("stream", started).expect("in-process: readable");
        let thread = phase.generator_thread_cpu_s.expect("this thread is read");
        assert!(
            phase.server.cpu_s - thread >= 0.05,
            "process {}s, this thread {thread}s",
            phase.server.cpu_s
        );
    }

    #[test]
    fn what_runs_between_phases_is_in_neither() {
        let mut clock = PhaseClock::start(None, true);
        clock.end("setup", Instant::now());
        // This thread works 50 ms by its own count after one phase and before the next.
        let own = || snapshot(Process::This).unwrap().ended.this_thread.unwrap();
        let between = own();
        let mut x = 0u64;
        while own() - between < Duration::from_millis(50) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        clock.begin();
        let stream = clock.end("stream", Instant::now()).unwrap();
        let thread = stream.generator_thread_cpu_s.unwrap();
        assert!(thread < 0.05, "{thread}s of this thread's 50 ms counted");
    }

    #[test]
    fn another_process_has_no_generator_thread_figure() {
        let mut clock = PhaseClock::start(Some(std::process::id()), false);
        let phase = clock.end("stream", Instant::now()).expect("readable");
        assert!(phase.generator_thread_cpu_s.is_none());
        assert!(phase.generator.is_some());
    }

    #[test]
    fn an_unreadable_store_reports_no_phases() {
        let mut clock = PhaseClock::start(None, false);
        clock.end("setup", Instant::now());
        assert!(clock.finish().is_empty());
    }
}
