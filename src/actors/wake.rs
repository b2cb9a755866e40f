//! When an actor must wake up to notice that time alone changed something (a project's idle session turning
//! stalled). A plain type, so the rule is unit-tested without actix: a timer is armed only when none is
//! armed or the armed one would fire too late. A deadline that moves later (every event of a busy session
//! moves it) keeps the armed timer: it fires early, the actor recomputes and arms once for the remainder.
//! So a batch of n events costs n comparisons, not n cancellations and n new timers.

use std::time::Instant;

#[derive(Debug, Default)]
pub struct Wake {
    /// When the armed timer fires, if one is armed.
    armed: Option<Instant>,
}

impl Wake {
    /// The actor wants to be woken at `deadline` (None: it need not be). Answers `Some(at)` when a timer
    /// must be armed for `at`, replacing the armed one if any; `None` when the armed timer does.
    pub fn want(&mut self, deadline: Option<Instant>) -> Option<Instant> {
        let at = deadline?;
        match self.armed {
            Some(armed) if armed <= at => None,
            _ => {
                self.armed = Some(at);
                Some(at)
            }
        }
    }

    /// The armed timer fired (or was cancelled): none is armed now.
    pub fn fired(&mut self) {
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_deadline_moving_later_arms_no_new_timer() {
        let t0 = Instant::now();
        let mut wake = Wake::default();
        let mut arms = 0;
        for i in 0..100_000u64 {
            if wake
                .want(Some(t0 + Duration::from_millis(60_000 + i)))
                .is_some()
            {
                arms += 1;
            }
        }
        assert_eq!(arms, 1, "one timer for a whole batch of activity");
        // It fires early; the actor re-arms once for the deadline as it is now.
        wake.fired();
        assert_eq!(
            wake.want(Some(t0 + Duration::from_millis(160_000))),
            Some(t0 + Duration::from_millis(160_000))
        );
    }

    #[test]
    fn an_earlier_deadline_rearms_and_none_keeps_what_is_armed() {
        let t0 = Instant::now();
        let mut wake = Wake::default();
        let late = t0 + Duration::from_secs(600);
        let soon = t0 + Duration::from_secs(5);
        assert_eq!(wake.want(Some(late)), Some(late));
        // A lower stall threshold brings the deadline forward: the armed timer would be too late.
        assert_eq!(wake.want(Some(soon)), Some(soon));
        assert_eq!(wake.want(None), None);
        assert_eq!(wake.want(Some(late)), None, "the armed timer fires first");
    }
}
