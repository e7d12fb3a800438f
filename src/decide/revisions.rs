//! When each revision was current: the clock the space controller compacts by.
//!
//! Why its own log: the controller keeps "the last N seconds" of history, and N changes with
//! the pressure — from the configured 30 minutes down to seconds — so it needs the revision of
//! every poll, not the coarse samples of periodic compaction. It also tells how old the kept
//! history is (`age_of` the last compacted revision), which the live-data estimate rests on.
//! Bounded: at most one sample a second, none older than the window.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct RevisionLog {
    /// (seconds since the epoch, store revision), oldest first.
    samples: VecDeque<(f64, i64)>,
    window: f64,
}

impl RevisionLog {
    /// A log that remembers `window` seconds (the longest history ever kept, plus margin).
    pub fn new(window: f64) -> RevisionLog {
        RevisionLog {
            samples: VecDeque::new(),
            window,
        }
    }

    pub fn record(&mut self, now: f64, revision: i64) {
        if self.samples.back().is_some_and(|(t, _)| now - t < 1.0) {
            return;
        }
        self.samples.push_back((now, revision));
        // Keep one sample older than the window, so "the revision `window` ago" stays known.
        while self.samples.len() > 2 && now - self.samples[1].0 > self.window {
            self.samples.pop_front();
        }
    }

    /// The store revision as it was `age` seconds before `now` (the newest sample at least that
    /// old); None while the log is younger than that.
    pub fn revision_at(&self, now: f64, age: f64) -> Option<i64> {
        self.samples
            .iter()
            .rev()
            .find(|(t, _)| now - t >= age)
            .map(|(_, r)| *r)
    }

    /// How long ago `revision` became current (the first sample that had reached it); None when
    /// it is older than the log. An upper bound on nothing: it may be younger by one sample.
    pub fn age_of(&self, now: f64, revision: i64) -> Option<f64> {
        let first = self.samples.front()?;
        if first.1 > revision {
            return None; // older than anything we saw
        }
        self.samples
            .iter()
            .find(|(_, r)| *r >= revision)
            .map(|(t, _)| now - t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_by_age_and_ages_by_revision() {
        let mut log = RevisionLog::new(100.0);
        for s in 0..50 {
            log.record(1000.0 + s as f64 * 2.0, 10 + s * 10); // a revision every 0.2 s
        }
        let now = 1098.0;
        assert_eq!(log.revision_at(now, 0.0), Some(500));
        assert_eq!(log.revision_at(now, 10.0), Some(450));
        assert_eq!(log.revision_at(now, 500.0), None, "older than the log");
        assert_eq!(log.age_of(now, 450), Some(10.0));
        assert_eq!(
            log.age_of(now, 455),
            Some(8.0),
            "first sample that reached it"
        );
        assert_eq!(log.age_of(now, 5), None);
        assert_eq!(log.age_of(now, 900), None, "not reached yet");
    }

    #[test]
    fn bounded_by_time_and_by_one_sample_a_second() {
        let mut log = RevisionLog::new(60.0);
        for i in 0..100_000 {
            log.record(i as f64 * 0.1, i);
        }
        assert!(log.samples.len() <= 62, "{}", log.samples.len());
        assert!(log.revision_at(9999.9, 60.0).is_some());
    }
}
