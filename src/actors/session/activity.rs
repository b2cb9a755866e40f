//! What a session tells its project about its batches of messages, and when: only what changes what the
//! project shows. The project shows the tool in flight, a provider's retry reason and a tool called over
//! and over; it reads the time of the last progress from the session's mailbox stats
//! (`MailboxStats::progressed`). A busy agent's batches mostly change none of that, and each report was a
//! message, a mailbox count and a health computation in the project: ~4.5 % of the ingest's CPU.
//!
//! The loop detector lives here, with the calls: the project is told when a loop begins and ends.
//!
//! Stalled → idle is news the project publishes when it hears of the progress, so a batch after a quiet
//! spell is always reported: the project can only show the session stalled after a whole stall threshold
//! without progress, and the session reports any progress that comes half a threshold or more after its
//! previous one.

use std::time::Duration;

use crate::messages::project::{call_digest, Activity};
use crate::messages::wire::AgentStatus;

/// The same tool call (name and input) this many times in a row is "looping: <tool>".
const LOOP_REPEATS: u32 = 5;

/// One step of a batch, in order, as the fold reads it.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// A tool call (its name, if it has one), with its (stringified) input.
    Call {
        name: Option<&'a str>,
        input: &'a str,
    },
    /// A tool's result: the tool in flight finished.
    Result,
}

/// The low bits of `ActivityFold::call` that count the call's repeats (saturating at 7).
const REPEAT_BITS: u64 = 0b111;
const _: () = assert!(
    LOOP_REPEATS as u64 <= REPEAT_BITS,
    "a loop must be countable"
);

/// What the project was last told (as far as it shows), and the loop detector. Two words, not four:
/// every live session carries them, and its task sits at the top of its allocation class.
#[derive(Debug, Default)]
pub struct ActivityFold {
    /// The tool the project shows in flight as `tool_digest` (0: none), and in the lowest bit whether it
    /// shows a retry reason (until progress).
    shown: u64,
    /// The last tool call: its `call_digest` with the lowest bits (`REPEAT_BITS`) replaced by how many
    /// times in a row it was made (0: no call yet).
    call: u64,
}

impl ActivityFold {
    /// Folds one batch in: the report its project needs, or None when the batch changes nothing the
    /// project shows. `since_progress`: how long since the session's previous progress (None: none yet);
    /// `stall_after`: the session's stall threshold.
    pub fn fold<'a>(
        &mut self,
        steps: impl Iterator<Item = Step<'a>>,
        progress: bool,
        retrying: Option<String>,
        since_progress: Option<Duration>,
        stall_after: Duration,
    ) -> Option<Activity> {
        let was_looping = self.repeats() >= LOOP_REPEATS;
        // A loop that ended and began again within the batch (another call looping) is a change too.
        let mut loop_restarted = false;
        let mut last: Option<Step<'a>> = None;
        let mut last_call = None;
        for step in steps {
            if let Step::Call { name, input } = step {
                let digest = call_digest(name.unwrap_or_default(), input) & !REPEAT_BITS;
                let repeats = self.repeats();
                if repeats > 0 && self.call & !REPEAT_BITS == digest {
                    self.call = digest | (repeats as u64 + 1).min(REPEAT_BITS);
                } else {
                    loop_restarted |= repeats >= LOOP_REPEATS;
                    self.call = digest | 1;
                }
                last_call = name;
            }
            last = Some(step);
        }
        let looping = if self.repeats() >= LOOP_REPEATS {
            (!was_looping || loop_restarted).then(|| Some(last_call.unwrap_or_default().to_owned()))
        } else {
            was_looping.then_some(None)
        };
        let tool = last.map(|step| match step {
            Step::Call { name, .. } => name,
            Step::Result => None,
        });
        let mut changed = looping.is_some();
        if progress {
            if let Some(tool) = tool {
                let shown = tool.map_or(0, tool_digest);
                changed |= shown != self.shown & !1;
                self.shown = shown | (self.shown & 1);
            }
            // Progress ends a retry.
            changed |= self.shown & 1 == 1;
            self.shown &= !1;
            let quiet = since_progress.is_none_or(|gap| gap >= stall_after / 2);
            changed |= quiet;
        }
        if retrying.is_some() {
            changed = true;
            self.shown |= 1;
        }
        changed.then(|| Activity {
            tool: tool.map(|t| t.map(str::to_owned)),
            progress,
            retrying,
            looping,
        })
    }

    /// The session's status changed: its project clears the tool in flight and the retry reason of a
    /// session that is not running (`HealthTracker::set_status`).
    pub fn status_changed(&mut self, status: AgentStatus) {
        if status != AgentStatus::Running {
            self.shown = 0;
        }
    }

    fn repeats(&self) -> u32 {
        (self.call & REPEAT_BITS) as u32
    }

    /// A project attached the session: it starts from what a new session shows (no tool, no retry), and
    /// the loop detector starts over; the report tells the project so.
    pub fn attached(&mut self) -> Activity {
        *self = ActivityFold::default();
        Activity {
            looping: Some(None),
            ..Activity::default()
        }
    }
}

/// A tool's name as `ActivityFold::shown` holds it: never 0 (no tool), lowest bit clear.
fn tool_digest(name: &str) -> u64 {
    (call_digest(name, "") & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(600);
    const BUSY: Option<Duration> = Some(Duration::from_millis(5));

    fn call(name: &'static str, input: &'static str) -> Step<'static> {
        Step::Call {
            name: Some(name),
            input,
        }
    }

    /// A fold whose session has made its first progress (always reported).
    fn busy() -> ActivityFold {
        let mut fold = ActivityFold::default();
        assert!(fold
            .fold(std::iter::empty(), true, None, None, STALL)
            .is_some_and(|a| a.progress));
        fold
    }

    /// A batch moments after the previous one.
    fn turn(fold: &mut ActivityFold, steps: &[Step<'static>]) -> Option<Activity> {
        fold.fold(steps.iter().copied(), true, None, BUSY, STALL)
    }

    #[test]
    fn a_batch_that_changes_nothing_shown_is_not_reported() {
        let mut fold = busy();
        assert_eq!(turn(&mut fold, &[]), None);
        let steps = [
            call("Bash", "ls"),
            Step::Result,
            call("Read", "a"),
            Step::Result,
        ];
        let started = turn(&mut fold, &steps[..1]).expect("a tool started");
        assert_eq!(started.tool, Some(Some("Bash".into())));
        assert_eq!(
            turn(&mut fold, &steps[2..3]).unwrap().tool,
            Some(Some("Read".into()))
        );
        assert_eq!(turn(&mut fold, &steps[2..3]), None, "the same tool still");
        assert_eq!(turn(&mut fold, &steps).unwrap().tool, Some(None));
        assert_eq!(
            turn(&mut fold, &steps),
            None,
            "calls that end in their results"
        );
        // A batch without progress (an init, a notice) changes nothing either.
        assert_eq!(
            fold.fold(std::iter::empty(), false, None, BUSY, STALL),
            None
        );
    }

    #[test]
    fn progress_after_half_a_stall_threshold_is_reported() {
        let after = |gap| busy().fold(std::iter::empty(), true, None, Some(gap), STALL);
        assert_eq!(after(STALL / 2 - Duration::from_millis(1)), None);
        assert!(
            after(STALL / 2).is_some(),
            "the project may show it stalled"
        );
        assert!(after(STALL * 3).is_some());
    }

    #[test]
    fn retries_are_reported_and_the_progress_that_ends_them() {
        let mut fold = busy();
        let retry = fold.fold(std::iter::empty(), false, Some("429".into()), BUSY, STALL);
        assert_eq!(retry.unwrap().retrying.as_deref(), Some("429"));
        assert!(turn(&mut fold, &[]).is_some(), "progress clears the reason");
        assert_eq!(turn(&mut fold, &[]), None);
    }

    #[test]
    fn the_same_call_repeated_begins_a_loop_and_another_call_ends_it() {
        let mut fold = busy();
        let bash = [call("Bash", "ls"), Step::Result];
        for _ in 1..LOOP_REPEATS {
            assert_eq!(turn(&mut fold, &bash), None);
        }
        let begun = turn(&mut fold, &bash).expect("the fifth call in a row");
        assert_eq!(begun.looping, Some(Some("Bash".into())));
        assert_eq!(turn(&mut fold, &bash), None, "still looping");
        // The same tool with another input is not the same call.
        let other = [call("Bash", "ls -la"), Step::Result];
        assert_eq!(turn(&mut fold, &other).unwrap().looping, Some(None));
        // Calls of one batch count as calls of many; a loop of another call within it is a new loop.
        let five_reads = [call("Read", "a"); LOOP_REPEATS as usize];
        assert_eq!(
            turn(&mut fold, &five_reads).unwrap().looping,
            Some(Some("Read".into()))
        );
        let five_greps = [call("Grep", "x"); LOOP_REPEATS as usize];
        assert_eq!(
            turn(&mut fold, &five_greps).unwrap().looping,
            Some(Some("Grep".into()))
        );
    }

    #[test]
    fn a_session_that_stops_running_and_runs_again_reports_its_tool_again() {
        let mut fold = busy();
        turn(&mut fold, &[call("Bash", "ls")]);
        fold.status_changed(AgentStatus::Done);
        assert!(
            turn(&mut fold, &[call("Bash", "ls")]).is_some(),
            "the project cleared the tool when the session stopped"
        );
        let told = fold.attached();
        assert_eq!(told.looping, Some(None), "the loop detector starts over");
        assert!(turn(&mut fold, &[call("Bash", "ls")]).is_some());
    }
}
