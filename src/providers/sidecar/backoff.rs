//! How a crashed sidecar is restarted: exponential backoff with a cap, a bounded number of tries in a row,
//! and a fresh count for a sidecar that had been running stably.

use std::time::Duration;

/// How a crashed sidecar is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first restart; each further one doubles it.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Restarts in a row before giving up.
    pub tries: u32,
    /// A sidecar that ran this long before it died starts a fresh count.
    pub stable_after: Duration,
    /// How long a start waits for a new sidecar to say `ready`.
    pub ready_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            tries: 5,
            stable_after: Duration::from_secs(5 * 60),
            ready_timeout: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before restart number `n` (from 1).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_up_to_the_cap() {
        let b = Backoff::default();
        let delays: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.delay(200), Duration::from_secs(30));
    }
}
