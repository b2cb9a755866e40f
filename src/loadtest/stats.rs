//! Counters and latency histograms shared by every task of a run, plus the once-a-second timeline the
//! plot is drawn from. Histograms record microseconds (hdrhistogram, 3 significant digits) behind short
//! mutexes: a request records one value, so contention stays far below the cost of the request itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// How many values were recorded.
    pub samples: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            samples: h.len(),
        }
    }
}

/// One point of the timeline: what the last interval did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the stream phase began, at the end of the interval.
    pub t_s: f64,
    pub messages_per_s: f64,
    /// Ingest request latency in the interval, in ms.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h; values beyond saturate rather than fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// Everything measured while the run goes.
pub struct Stats {
    latency: Mutex<Histogram<u64>>,
    interval: Mutex<Histogram<u64>>,
    e2e: Mutex<Histogram<u64>>,
    persist: Mutex<Histogram<u64>>,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub bytes: AtomicU64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
    pub ignored: AtomicU64,
    pub lagged: AtomicU64,
    last_error: Mutex<Option<String>>,
    timeline: Mutex<Timeline>,
}

#[derive(Default)]
struct Timeline {
    points: Vec<TimelinePoint>,
    last_acked: u64,
    last_errors: u64,
    last_t: f64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicked recorder leaves a histogram that is still valid; keep measuring.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            latency: Mutex::new(histogram()),
            interval: Mutex::new(histogram()),
            e2e: Mutex::new(histogram()),
            persist: Mutex::new(histogram()),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            last_error: Mutex::new(None),
            timeline: Mutex::new(Timeline::default()),
        }
    }

    pub fn record_latency(&self, d: Duration) {
        let us = micros(d);
        lock(&self.latency).saturating_record(us);
        lock(&self.interval).saturating_record(us);
    }

    pub fn record_e2e(&self, d: Duration) {
        lock(&self.e2e).saturating_record(micros(d));
    }

    pub fn record_persist(&self, d: Duration) {
        lock(&self.persist).saturating_record(micros(d));
    }

    pub fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = Some(message);
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn latency(&self) -> Percentiles {
        Percentiles::of(&lock(&self.latency))
    }

    pub fn e2e(&self) -> Percentiles {
        Percentiles::of(&lock(&self.e2e))
    }

    pub fn persist(&self) -> Percentiles {
        Percentiles::of(&lock(&self.persist))
    }

    /// Closes the current interval at `t_s` seconds into the stream phase and answers its point.
    pub fn tick(&self, t_s: f64) -> TimelinePoint {
        let interval = {
            let mut h = lock(&self.interval);
            let p = Percentiles::of(&h);
            h.reset();
            p
        };
        let (acked, errors) = (Stats::get(&self.acked), Stats::get(&self.errors));
        let mut tl = lock(&self.timeline);
        let dt = (t_s - tl.last_t).max(1e-3);
        let point = TimelinePoint {
            t_s,
            messages_per_s: (acked - tl.last_acked) as f64 / dt,
            p50_ms: interval.p50,
            p90_ms: interval.p90,
            p99_ms: interval.p99,
            errors: errors - tl.last_errors,
        };
        tl.points.push(point);
        (tl.last_acked, tl.last_errors, tl.last_t) = (acked, errors, t_s);
        point
    }

    /// Seconds since the last tick (or the start).
    pub fn since_tick(&self, t_s: f64) -> f64 {
        t_s - lock(&self.timeline).last_t
    }

    pub fn timeline(&self) -> Vec<TimelinePoint> {
        lock(&self.timeline).points.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds() {
        let stats = Stats::new();
        for ms in 1..=100 {
            stats.record_latency(Duration::from_millis(ms));
        }
        let p = stats.latency();
        assert_eq!(p.samples, 100);
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.p99 - 99.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.1, "{p:?}");
        assert_eq!(stats.e2e(), Percentiles::default());
    }

    #[test]
    fn tick_reports_the_interval_rate_and_resets_it() {
        let stats = Stats::new();
        Stats::add(&stats.acked, 500);
        stats.record_latency(Duration::from_millis(4));
        let first = stats.tick(0.5);
        assert_eq!(first.messages_per_s, 1000.0);
        assert!((first.p50_ms - 4.0).abs() < 0.01);
        Stats::add(&stats.acked, 100);
        let second = stats.tick(1.5);
        assert_eq!(second.messages_per_s, 100.0);
        assert_eq!(second.p50_ms, 0.0);
        assert_eq!(stats.timeline().len(), 2);
        assert_eq!(stats.latency().samples, 1);
    }
}
