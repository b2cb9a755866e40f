//! The session's stall clock, as a plain type: silence of a running session past its threshold is a
//! stall. The session actor owns the one timer this asks for, re-armed only when it fires early, so a busy
//! session does not create a timer per message; the clock also counts the stalls resumed since the last
//! progress (`stall.action = "resume"`). Tested here without an actor.

use std::time::{Duration, Instant};

/// The stall clock: silence of a running session past `after` is a stall. One timer per session,
/// re-armed only when it fires early, so a busy session does not create a timer per message.
pub struct StallClock {
    last_activity: Instant,
    /// The threshold in milliseconds, rounded up so it never fires early (`Duration` is 16 bytes, 4
    /// here: every live session's task carries the clock, 24 bytes with the two fields below, which left
    /// the task 8 bytes under its 1,024-byte class). Saturates at ~49 days, far past any stall threshold.
    after_ms: u32,
    /// Stalls resumed since the last progress (`stall.action = "resume"`); saturates.
    resumes: u16,
    armed: bool,
}

/// What a stall timer that fired means.
#[derive(Debug, PartialEq)]
pub enum StallCheck {
    /// Not running any more, or disarmed meanwhile.
    Quiet,
    /// Silent for the whole threshold.
    Stalled,
    /// Activity came meanwhile: look again after this long.
    Rearm(Duration),
}

impl StallClock {
    pub fn new(after: Duration, now: Instant) -> StallClock {
        StallClock {
            last_activity: now,
            after_ms: millis(after),
            armed: false,
            resumes: 0,
        }
    }

    /// Progress: stall resumes are counted from zero again.
    pub fn progressed(&mut self) {
        self.resumes = 0;
    }

    /// A stall under `stall.action = "resume"`: true (and counted) while fewer than `max` stalls were
    /// resumed since the last progress; false when resuming has not helped and the agent is to be stopped.
    pub fn resume_again(&mut self, max: u32) -> bool {
        let again = u32::from(self.resumes) < max;
        if again {
            self.resumes = self.resumes.saturating_add(1);
        }
        again
    }

    pub fn after(&self) -> Duration {
        Duration::from_millis(self.after_ms.into())
    }

    /// Activity at `at`: the timer to arm, if none is and the session runs (the whole threshold from `at`;
    /// the caller subtracts what has passed since).
    pub fn touch(&mut self, at: Instant, running: bool) -> Option<Duration> {
        self.last_activity = at;
        (running && !self.armed).then(|| {
            self.armed = true;
            self.after()
        })
    }

    /// The session finished, or the actor is about to replace its timer: true when one was armed (its
    /// handle is valid, and the actor cancels it; the actor keeps no flag of its own beside this one).
    pub fn take_armed(&mut self) -> bool {
        std::mem::take(&mut self.armed)
    }

    pub fn fired(&mut self, now: Instant, running: bool) -> StallCheck {
        self.armed = false;
        if !running {
            return StallCheck::Quiet;
        }
        let (idle, after) = (
            now.saturating_duration_since(self.last_activity),
            self.after(),
        );
        if idle >= after {
            StallCheck::Stalled
        } else {
            self.armed = true;
            StallCheck::Rearm(after - idle)
        }
    }

    /// A new threshold: the actor cancels its timer and arms the returned one, if running.
    pub fn set_after(&mut self, after: Duration, now: Instant, running: bool) -> Option<Duration> {
        self.after_ms = millis(after);
        self.arm(now, running)
    }

    /// The timer to arm, if the session runs, for what is left of the threshold since the last activity
    /// (or since the clock began). Not counted as activity. The caller holds no timer (it cancelled it, or
    /// the actor has just started).
    pub fn arm(&mut self, now: Instant, running: bool) -> Option<Duration> {
        self.armed = running;
        running.then(|| {
            self.after()
                .saturating_sub(now.saturating_duration_since(self.last_activity))
        })
    }
}

/// `d` in milliseconds, rounded up, saturating.
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_clock_arms_once_and_rearms_for_the_rest_when_activity_came() {
        let t0 = Instant::now();
        let after = Duration::from_secs(60);
        let mut c = StallClock::new(after, t0);
        assert_eq!(c.touch(t0, true), Some(after));
        assert_eq!(c.touch(t0 + Duration::from_secs(30), true), None);
        assert_eq!(
            c.fired(t0 + after, true),
            StallCheck::Rearm(Duration::from_secs(30))
        );
        assert_eq!(
            c.fired(t0 + Duration::from_secs(90), true),
            StallCheck::Stalled
        );
        assert_eq!(c.fired(t0, false), StallCheck::Quiet);
        assert_eq!(c.touch(t0, false), None, "no timer for a finished session");
    }

    #[test]
    fn a_started_session_counts_its_silence_from_when_it_was_made_not_from_its_start() {
        let t0 = Instant::now();
        let after = Duration::from_secs(60);
        let mut c = StallClock::new(after, t0);
        // Its project counted it from t0 or later: the clock must not fire after the project's health turned.
        assert_eq!(
            c.arm(t0 + Duration::from_millis(5), true),
            Some(after - Duration::from_millis(5))
        );
        assert_eq!(c.touch(t0 + Duration::from_secs(1), true), None, "armed");
        assert_eq!(
            c.fired(t0 + after, true),
            StallCheck::Rearm(Duration::from_secs(1))
        );
        let mut finished = StallClock::new(after, t0);
        assert_eq!(finished.arm(t0, false), None);
        assert!(!finished.take_armed(), "no timer for a finished session");
    }

    #[test]
    fn the_stall_clock_says_whether_the_actor_holds_a_timer_to_cancel() {
        let t0 = Instant::now();
        let after = Duration::from_secs(60);
        let mut c = StallClock::new(after, t0);
        assert!(!c.take_armed(), "none armed yet");
        assert_eq!(c.touch(t0, true), Some(after));
        assert!(c.take_armed(), "the timer `touch` asked for");
        assert!(!c.take_armed(), "taken: cancelled once");
        assert_eq!(
            c.touch(t0, true),
            Some(after),
            "taken: the next activity arms again"
        );
        assert_eq!(c.fired(t0 + after / 2, true), StallCheck::Rearm(after / 2));
        assert!(c.take_armed(), "rearmed when it fired early");
        assert_eq!(c.fired(t0 + after, false), StallCheck::Quiet);
        assert!(!c.take_armed(), "a timer that fired is gone");
    }

    #[test]
    fn a_new_stall_threshold_counts_the_silence_so_far() {
        let t0 = Instant::now();
        let mut c = StallClock::new(Duration::from_secs(60), t0);
        c.touch(t0, true);
        assert_eq!(
            c.set_after(Duration::from_secs(100), t0 + Duration::from_secs(40), true),
            Some(Duration::from_secs(60))
        );
        assert_eq!(c.set_after(Duration::from_secs(10), t0, false), None);
    }

    #[test]
    fn a_stall_threshold_is_whole_milliseconds_rounded_up_saturating_at_49_days() {
        let t0 = Instant::now();
        let c = StallClock::new(Duration::from_micros(1_500), t0);
        assert_eq!(
            c.after(),
            Duration::from_millis(2),
            "rounded up: it never fires early"
        );
        let mut c = StallClock::new(Duration::from_secs(300), t0);
        assert_eq!(c.after(), Duration::from_secs(300));
        c.set_after(Duration::from_secs(100 * 24 * 3600), t0, false);
        assert_eq!(
            c.after(),
            Duration::from_millis(u32::MAX.into()),
            "saturates at ~49.7 days: a longer threshold fires then"
        );
    }

    #[test]
    fn stall_resumes_stop_after_the_limit_until_progress_comes() {
        let mut c = StallClock::new(Duration::from_secs(60), Instant::now());
        assert!(c.resume_again(2));
        assert!(c.resume_again(2));
        assert!(!c.resume_again(2), "two resumes brought nothing: stop");
        c.progressed();
        assert!(c.resume_again(2), "progress since: resume again");
        assert!(!StallClock::new(Duration::from_secs(1), Instant::now()).resume_again(0));
    }
}
