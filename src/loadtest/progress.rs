//! Progress on stderr: an indicatif bar with live throughput and error count when stderr is a terminal,
//! a plain line every few seconds otherwise (CI logs, redirected output), nothing when quiet.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

enum Display {
    Bar(ProgressBar),
    /// `unsaid`: the latest state, when it was not printed (throttled), so the phase's end still shows.
    Plain {
        last: Option<Instant>,
        unsaid: Option<String>,
    },
    Quiet,
}

pub struct Progress {
    display: Display,
    phase: String,
    total: u64,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let display = if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bar(ProgressBar::with_draw_target(
                None,
                ProgressDrawTarget::stderr(),
            ))
        } else {
            Display::Plain {
                last: None,
                unsaid: None,
            }
        };
        Progress {
            display,
            phase: String::new(),
            total: 0,
        }
    }

    /// Starts a phase counting up to `total` items (`unit`: "sessions", "messages", ...).
    pub fn phase(&mut self, name: &str, total: u64, unit: &str) {
        self.flush_plain();
        self.phase = name.to_owned();
        self.total = total;
        match &mut self.display {
            Display::Bar(bar) => {
                bar.reset();
                bar.set_length(total);
                bar.set_position(0);
                let template = format!(
                    "{{prefix:>8}} [{{elapsed_precise}}] {{wide_bar}} {{human_pos}}/{{human_len}} {unit} {{msg}}"
                );
                if let Ok(style) = ProgressStyle::with_template(&template) {
                    bar.set_style(style);
                }
                bar.set_prefix(name.to_owned());
                bar.set_message("");
            }
            Display::Plain { last, .. } => *last = None,
            Display::Quiet => {}
        }
    }

    fn flush_plain(&mut self) {
        if let Display::Plain { unsaid, .. } = &mut self.display {
            if let Some(line) = unsaid.take() {
                eprintln!("{line}");
            }
        }
    }

    /// Shows `done` of the phase's total, the current rate per second and the errors so far.
    pub fn update(&mut self, done: u64, rate: f64, errors: u64) {
        match &mut self.display {
            Display::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{rate:.0}/s, {errors} errors"));
            }
            Display::Plain { last, unsaid } => {
                let line = format!(
                    "loadtest {}: {done}/{} ({rate:.0}/s, {errors} errors)",
                    self.phase, self.total
                );
                if last.is_some_and(|t| t.elapsed() < PLAIN_EVERY) {
                    *unsaid = Some(line);
                    return;
                }
                *last = Some(Instant::now());
                *unsaid = None;
                eprintln!("{line}");
            }
            Display::Quiet => {}
        }
    }

    /// A line outside the bar (a phase result, a warning).
    pub fn note(&mut self, line: &str) {
        self.flush_plain();
        match &self.display {
            Display::Bar(bar) => bar.println(line),
            Display::Plain { .. } => eprintln!("loadtest: {line}"),
            Display::Quiet => {}
        }
    }

    pub fn finish(&mut self) {
        self.flush_plain();
        if let Display::Bar(bar) = &self.display {
            bar.finish_and_clear();
        }
    }
}
