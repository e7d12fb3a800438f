//! How fast new history arrives: bytes of versions superseded by updates and deletes, apart from
//! bytes of newly created keys (live data).
//!
//! Why the split: only superseded versions are history that compaction can free. A sync loop
//! rewrites the same object, so everything it writes becomes history; a workload that creates
//! objects grows live data, which no compaction frees. Counting both alike would blame history
//! for live growth (and compact harder for nothing).
//!
//! The churn watch counts (it already sees every write, with `version == 1` marking a create);
//! the engine samples the totals each tick and takes the rate over the last 10 s and the last
//! minute, the larger of the two: quick to see a loop start, slow to forget it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Totals written by the churn watch, read by the engine. Lock-free: the watch adds once per
/// watch response.
#[derive(Debug, Default)]
pub struct WriteTotals {
    superseded_bytes: AtomicU64,
    created_bytes: AtomicU64,
    /// True once the watch has delivered its first response (until then the rate is unknown).
    watching: AtomicBool,
}

impl WriteTotals {
    pub fn add(&self, superseded_bytes: u64, created_bytes: u64) {
        self.superseded_bytes
            .fetch_add(superseded_bytes, Ordering::Relaxed);
        self.created_bytes
            .fetch_add(created_bytes, Ordering::Relaxed);
        self.watching.store(true, Ordering::Relaxed);
    }

    /// Marks the watch as running (even before any write arrives).
    pub fn started(&self) {
        self.watching.store(true, Ordering::Relaxed);
    }

    /// (superseded, created) bytes so far; None while no watch has run.
    pub fn totals(&self) -> Option<(u64, u64)> {
        self.watching.load(Ordering::Relaxed).then(|| {
            (
                self.superseded_bytes.load(Ordering::Relaxed),
                self.created_bytes.load(Ordering::Relaxed),
            )
        })
    }
}

const WINDOWS: [f64; 2] = [10.0, 60.0];

/// Rates from samples of the totals.
#[derive(Debug, Clone, Default)]
pub struct HistoryRate {
    /// (seconds, superseded total, created total), oldest first, the last minute or so.
    samples: VecDeque<(f64, u64, u64)>,
}

/// Bytes per second over the sampled windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub history: f64,
    pub created: f64,
}

impl HistoryRate {
    pub fn record(&mut self, now: f64, superseded: u64, created: u64) {
        self.samples.push_back((now, superseded, created));
        let oldest = WINDOWS[WINDOWS.len() - 1];
        while self.samples.len() > 2 && now - self.samples[1].0 >= oldest {
            self.samples.pop_front();
        }
    }

    /// The larger rate of the last 10 s and the last minute (each over what was sampled of it).
    pub fn rates(&self) -> Option<Rates> {
        let newest = *self.samples.back()?;
        let mut best: Option<Rates> = None;
        for window in WINDOWS {
            let Some(oldest) = self
                .samples
                .iter()
                .find(|(t, _, _)| newest.0 - t <= window + 0.5)
                .filter(|(t, _, _)| newest.0 - t >= 1.0)
            else {
                continue;
            };
            let span = newest.0 - oldest.0;
            let r = Rates {
                history: newest.1.saturating_sub(oldest.1) as f64 / span,
                created: newest.2.saturating_sub(oldest.2) as f64 / span,
            };
            best = Some(match best {
                None => r,
                Some(b) => Rates {
                    history: b.history.max(r.history),
                    created: b.created.max(r.created),
                },
            });
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_unknown_until_a_watch_runs() {
        let totals = WriteTotals::default();
        assert_eq!(totals.totals(), None);
        totals.started();
        assert_eq!(totals.totals(), Some((0, 0)));
        totals.add(100, 7);
        assert_eq!(totals.totals(), Some((100, 7)));
    }

    #[test]
    fn quick_to_see_a_loop_start_and_slow_to_forget_it() {
        let mut rate = HistoryRate::default();
        let mut superseded = 0;
        // 60 s idle, then 2 MB/s for 30 s, then idle again.
        for s in 0..=200 {
            if (60..90).contains(&s) {
                superseded += 2_000_000;
            }
            rate.record(s as f64, superseded, 0);
            let r = rate.rates().map(|r| r.history).unwrap_or(0.0);
            if s == 59 {
                assert_eq!(r, 0.0);
            }
            if s == 65 {
                assert!(r > 1_000_000.0, "seen within seconds: {r}");
            }
            if s == 120 {
                assert!(r > 500_000.0, "remembered for a minute: {r}");
            }
            if s == 200 {
                assert_eq!(r, 0.0, "forgotten after a minute");
            }
        }
    }

    #[test]
    fn one_sample_gives_no_rate_and_memory_is_bounded() {
        let mut rate = HistoryRate::default();
        rate.record(0.0, 0, 0);
        assert_eq!(rate.rates(), None);
        for s in 0..10_000 {
            rate.record(s as f64 * 0.5, s, s);
        }
        assert!(rate.samples.len() <= 122);
        let r = rate.rates().unwrap();
        assert!((r.history - 2.0).abs() < 0.01 && (r.created - 2.0).abs() < 0.01);
    }
}
