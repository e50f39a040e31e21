//! The engine's notion of "now": the wall clock, the event stream's own time,
//! or a simulated clock that starts at a given instant and runs at a rate.
//!
//! Triage deadlines are days long. Tests and outside harnesses cannot wait
//! days, so every deadline decision (alert `detected_at`, SLA due dates,
//! escalations, silent sources) reads this clock instead of the system's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How the clock runs. Serde form of the `[clock]` config section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// `system`, `event-time` or `simulated`.
    pub mode: ClockMode,
    /// Simulated mode: the first instant (RFC 3339). Default: the real now.
    pub start: Option<DateTime<Utc>>,
    /// Simulated mode: simulated seconds per real second.
    pub rate: f64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            mode: ClockMode::System,
            start: None,
            rate: 1.0,
        }
    }
}

/// Which time the engine's [`Clock`] reads; the `mode` key of `[clock]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// The system clock.
    #[default]
    System,
    /// The latest time seen on the input: event times, alert detection
    /// times and triage update times. Replays decide deadlines as they would
    /// have been decided live.
    EventTime,
    /// `start` plus the real time elapsed since start-up, times `rate`.
    Simulated,
}

/// A shared clock. Cheap to clone; all clones read the same time.
#[derive(Debug, Clone)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    mode: ClockMode,
    start: DateTime<Utc>,
    started: Instant,
    rate: f64,
    /// Event-time mode: the latest time observed, in milliseconds since the epoch.
    latest_ms: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The wall clock: now is `Utc::now()`.
    pub fn system() -> Clock {
        Clock::new(ClockMode::System, None, 1.0)
    }

    /// Follows observed event time; before anything is observed, `start` (or the epoch).
    pub fn event_time(start: Option<DateTime<Utc>>) -> Clock {
        Clock::new(ClockMode::EventTime, start, 1.0)
    }

    /// Starts at `start` and runs `rate` times faster than real time.
    pub fn simulated(start: DateTime<Utc>, rate: f64) -> Clock {
        Clock::new(ClockMode::Simulated, Some(start), rate)
    }

    /// The clock a `[clock]` section describes. A rate that is not a positive
    /// number runs at 1.0.
    pub fn from_config(cfg: &ClockConfig) -> Clock {
        Clock::new(cfg.mode, cfg.start, cfg.rate)
    }

    fn new(mode: ClockMode, start: Option<DateTime<Utc>>, rate: f64) -> Clock {
        let start = start.unwrap_or_else(|| match mode {
            ClockMode::EventTime => DateTime::<Utc>::UNIX_EPOCH,
            _ => Utc::now(),
        });
        Clock(Arc::new(Inner {
            mode,
            start,
            started: Instant::now(),
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                1.0
            },
            latest_ms: AtomicI64::new(start.timestamp_millis()),
        }))
    }

    /// The engine's now.
    pub fn now(&self) -> DateTime<Utc> {
        let inner = &self.0;
        match inner.mode {
            ClockMode::System => Utc::now(),
            ClockMode::EventTime => {
                DateTime::from_timestamp_millis(inner.latest_ms.load(Ordering::Relaxed))
                    .unwrap_or(inner.start)
            }
            ClockMode::Simulated => {
                let elapsed = inner.started.elapsed().as_secs_f64() * inner.rate;
                let ms = (elapsed * 1000.0).min(i64::MAX as f64 / 2.0) as i64;
                inner
                    .start
                    .checked_add_signed(chrono::Duration::milliseconds(ms))
                    .unwrap_or(inner.start)
            }
        }
    }

    /// False for an event-time clock that has not seen any time yet (its
    /// now is only a placeholder then).
    pub fn is_running(&self) -> bool {
        self.0.mode != ClockMode::EventTime
            || self.0.latest_ms.load(Ordering::Relaxed) != self.0.start.timestamp_millis()
    }

    /// Records a time seen on the input. Only the event-time clock moves,
    /// and only forward.
    pub fn observe(&self, time: DateTime<Utc>) {
        if self.0.mode == ClockMode::EventTime {
            self.0
                .latest_ms
                .fetch_max(time.timestamp_millis(), Ordering::Relaxed);
        }
    }

    /// When something that happened at `event_time` is detected: in
    /// event-time mode the event's own time, so replays are deterministic
    /// whatever the order in which detection threads see events.
    pub fn detected_at(&self, event_time: DateTime<Utc>) -> DateTime<Utc> {
        match self.0.mode {
            ClockMode::EventTime => event_time,
            _ => self.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test instant")
    }

    #[test]
    fn the_event_time_clock_moves_forward_only() {
        let clock = Clock::event_time(None);
        assert!(!clock.is_running());
        clock.observe(at("2026-11-20T10:00:00Z"));
        assert!(clock.is_running());
        clock.observe(at("2026-11-20T09:00:00Z"));
        assert_eq!(clock.now(), at("2026-11-20T10:00:00Z"));
        clock.observe(at("2026-11-21T00:00:00Z"));
        assert_eq!(clock.now(), at("2026-11-21T00:00:00Z"));
        assert_eq!(
            clock.detected_at(at("2026-11-19T00:00:00Z")),
            at("2026-11-19T00:00:00Z")
        );
    }

    #[test]
    fn the_simulated_clock_starts_at_its_start_and_runs_at_its_rate() {
        let clock = Clock::simulated(at("2026-11-20T10:00:00Z"), 3600.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = clock.now();
        // 20 ms real at 3600x is at least 72 s simulated.
        assert!(now >= at("2026-11-20T10:01:12Z"), "{now}");
        assert!(now < at("2026-11-20T12:00:00Z"), "{now}");
        clock.observe(at("2030-01-01T00:00:00Z"));
        assert!(
            clock.now() < at("2026-11-20T12:00:00Z"),
            "observe does not move it"
        );
    }

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let clock = Clock::system();
        let before = Utc::now();
        let now = clock.now();
        assert!(now >= before && now <= Utc::now());
    }
}
