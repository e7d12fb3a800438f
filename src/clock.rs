//! Time, in the two kinds a daemon needs: a monotonic clock for every duration it decides on,
//! and the wall clock only for what people read.
//!
//! Why: a wall clock can be stepped (NTP after a VM resume, a wrong RTC, a person). Durations
//! taken from it go wrong both ways — stepped back by Δ after a disarm, every observation looked
//! older than the disarm for Δ and the engine skipped each tick while `/healthz` said 200;
//! stepped forward past the retention, the periodic compactor took seconds-old revisions for
//! 30-minute-old ones and compacted history that should have been kept. So every decision reads
//! [`Clock::now`], seconds on one monotonic line shared by the whole process (every
//! [`Clock::system`] and [`mono_now`] agree), and tests hand a [`Clock::manual`] to drive time
//! instead of sleeping. [`wall_now`] is for logs, `/status` and action records only.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the engine and its components read time.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    System,
    /// Driven by a test: seconds on its own line.
    Manual(Arc<Mutex<f64>>),
}

impl Clock {
    /// The process's monotonic clock.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// A clock that stands still until [`Clock::advance`] moves it (tests).
    pub fn manual(start_seconds: f64) -> Clock {
        Clock(Source::Manual(Arc::new(Mutex::new(start_seconds))))
    }

    /// Monotonic seconds: only differences mean anything.
    pub fn now(&self) -> f64 {
        match &self.0 {
            Source::System => mono_now(),
            Source::Manual(at) => *at.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(at) = &self.0 {
            *at.lock().unwrap_or_else(|p| p.into_inner()) += by.as_secs_f64();
        }
    }
}

/// Seconds since this process first asked, from `Instant` (never stepped).
pub fn mono_now() -> f64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Seconds since the Unix epoch, for people (logs, `/status`, action records); never for a
/// duration that decides anything.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(100.0);
        assert_eq!(clock.now(), 100.0);
        clock.advance(Duration::from_secs(31 * 60));
        assert_eq!(clock.now(), 100.0 + 31.0 * 60.0);
        let shared = clock.clone();
        shared.advance(Duration::from_millis(500));
        assert_eq!(clock.now(), 1960.5);
    }

    #[test]
    fn the_system_clock_is_one_line_that_never_goes_back() {
        let a = Clock::system().now();
        let b = mono_now();
        let c = Clock::system().now();
        assert!(a <= b && b <= c);
        assert!(wall_now() > 1.7e9);
    }
}
