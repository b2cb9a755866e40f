//! Which request a stream worker sends next, and when: the run's requests in order, each at its slot of
//! an optional rate (messages per second), none once the deadline (if any) has passed.
//!
//! The stream phase keeps `concurrency` requests in flight with that many long-lived workers, each taking
//! the next request from this one schedule when its last is answered. A worker is what a semaphore permit
//! and a task per request were before: one request at a time, without a task spawned, a permit taken and
//! a join handle reaped for each of the run's requests (in-process, the generator's thread spends a
//! quarter of the stream's CPU, and this was part of it).

use std::time::{Duration, Instant};

use super::plan::{Layout, Request};

/// The run's requests, handed out one at a time.
pub struct Schedule {
    layout: Layout,
    requests: Box<dyn Iterator<Item = Request> + Send>,
    start: Instant,
    deadline: Option<Instant>,
    /// Messages per second; 0 for as fast as answers come.
    rate: f64,
    /// Messages in the requests handed out so far.
    scheduled: u64,
}

/// A request and when to send it (None: now).
pub type Slot = (Request, Option<Instant>);

impl Schedule {
    pub fn new(layout: Layout, start: Instant, rate: f64, duration: Option<Duration>) -> Schedule {
        Schedule {
            layout,
            requests: Box::new(layout.requests()),
            start,
            deadline: duration.map(|d| start + d),
            rate,
            scheduled: 0,
        }
    }

    /// The next request and its slot; None once every request was handed out or the deadline passed.
    pub fn next_at(&mut self, now: impl FnOnce() -> Instant) -> Option<Slot> {
        if self.deadline.is_some_and(|d| now() >= d) {
            return None;
        }
        let req = self.requests.next()?;
        let at = (self.rate > 0.0)
            .then(|| self.start + Duration::from_secs_f64(self.scheduled as f64 / self.rate));
        self.scheduled += self.layout.request_messages(&req) as u64;
        Some((req, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_is_handed_out_once_in_order_without_a_rate() {
        let layout = Layout::new(3, 20, 10, 10);
        let mut schedule = Schedule::new(layout, Instant::now(), 0.0, None);
        let mut got = Vec::new();
        while let Some((req, at)) = schedule.next_at(Instant::now) {
            assert_eq!(at, None);
            got.push(req);
        }
        assert_eq!(got, layout.requests().collect::<Vec<_>>());
    }

    #[test]
    fn a_rate_spaces_the_slots_by_the_messages_before_them() {
        // 10 messages a request at 100 messages/s: a request every 100 ms.
        let start = Instant::now();
        let mut schedule = Schedule::new(Layout::new(4, 10, 10, 10), start, 100.0, None);
        let slots: Vec<_> = std::iter::from_fn(|| schedule.next_at(|| start))
            .map(|(_, at)| at.expect("a slot").duration_since(start))
            .collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(slots, [ms(0), ms(100), ms(200), ms(300)]);
    }

    #[test]
    fn nothing_is_handed_out_once_the_deadline_has_passed() {
        let start = Instant::now();
        let mut schedule = Schedule::new(
            Layout::new(4, 10, 10, 10),
            start,
            0.0,
            Some(Duration::from_secs(1)),
        );
        assert!(schedule.next_at(|| start).is_some());
        assert!(schedule
            .next_at(|| start + Duration::from_secs(1))
            .is_none());
    }
}
