//! The growth forecast: when will the db reach the quota at the current rate?
//!
//! Why least squares over the last hour: one sample is noise (a defrag halves the size, a
//! compaction frees pages that the next writes reuse); the slope of the last hour's samples is
//! what predicts an outage. etcd's own mixin alert uses `predict_linear` over 4 h for the same
//! reason. A forecast under `--forecast-horizon` triggers maintenance before NOSPACE.

use std::collections::VecDeque;

const WINDOW_SECONDS: f64 = 3600.0;
const MAX_SAMPLES: usize = 1200; // one per 3 s
/// Fewer samples or a shorter span than this gives no forecast.
const MIN_SAMPLES: usize = 5;
const MIN_SPAN_SECONDS: f64 = 12.0;

#[derive(Debug, Clone, Default)]
pub struct GrowthSamples {
    /// (seconds, largest member db size, revision), oldest first.
    samples: VecDeque<(f64, f64, i64)>,
}

impl GrowthSamples {
    pub fn record(&mut self, now: f64, db_size: u64, revision: i64) {
        // Keep at most MAX_SAMPLES over the window: skip samples closer than window/MAX.
        if self
            .samples
            .back()
            .is_some_and(|(t, _, _)| now - t < WINDOW_SECONDS / MAX_SAMPLES as f64)
        {
            return;
        }
        self.samples.push_back((now, db_size as f64, revision));
        while self
            .samples
            .front()
            .is_some_and(|(t, _, _)| now - t > WINDOW_SECONDS)
        {
            self.samples.pop_front();
        }
    }

    /// Forget the history (after maintenance changed the size abruptly).
    pub fn reset(&mut self) {
        self.samples.clear();
    }

    /// Bytes per second of growth (least-squares slope), when there is enough data.
    pub fn slope(&self) -> Option<f64> {
        let n = self.samples.len();
        if n < MIN_SAMPLES {
            return None;
        }
        let (t0, t1) = (self.samples.front()?.0, self.samples.back()?.0);
        if t1 - t0 < MIN_SPAN_SECONDS {
            return None;
        }
        let mean_t = self.samples.iter().map(|s| s.0 - t0).sum::<f64>() / n as f64;
        let mean_y = self.samples.iter().map(|s| s.1).sum::<f64>() / n as f64;
        let (mut num, mut den) = (0.0, 0.0);
        for (t, y, _) in &self.samples {
            let dt = t - t0 - mean_t;
            num += dt * (y - mean_y);
            den += dt * dt;
        }
        (den > 0.0).then(|| num / den)
    }

    /// Seconds until the largest member reaches `quota`; None when not growing (or unknown).
    pub fn seconds_until(&self, quota: u64) -> Option<f64> {
        let slope = self.slope()?;
        if slope <= 0.0 {
            return None;
        }
        let current = self.samples.back()?.1;
        Some(((quota as f64 - current) / slope).max(0.0))
    }

    /// The newest revision seen at least `age` seconds ago; None while history is younger.
    pub fn revision_about(&self, now: f64, age: f64) -> Option<i64> {
        self.samples
            .iter()
            .rev()
            .find(|(t, _, _)| now - t >= age)
            .map(|s| s.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_growth_gives_the_right_order_of_magnitude() {
        let mut g = GrowthSamples::default();
        // 1 MiB per 10 s from 10 MiB, quota 100 MiB: 90 MiB left at 0.1 MiB/s → 900 s.
        for i in 0..30 {
            g.record(i as f64 * 10.0, (10 << 20) + i * (1 << 20), i as i64 * 100);
        }
        let eta = g.seconds_until(100 << 20).unwrap();
        assert!((eta - 610.0).abs() < 20.0, "{eta}"); // 39 MiB reached at t=290: 61 MiB left
    }

    #[test]
    fn flat_or_shrinking_gives_none() {
        let mut g = GrowthSamples::default();
        for i in 0..30 {
            g.record(i as f64 * 10.0, 50 << 20, 1);
        }
        assert_eq!(g.seconds_until(100 << 20), None);
        let mut g = GrowthSamples::default();
        for i in 0..30 {
            g.record(i as f64 * 10.0, (80 << 20) - i * 1000, 1);
        }
        assert_eq!(g.seconds_until(100 << 20), None);
    }

    #[test]
    fn too_little_data_gives_none_and_history_is_bounded() {
        let mut g = GrowthSamples::default();
        g.record(0.0, 1, 1);
        g.record(5.0, 2, 2);
        assert_eq!(g.slope(), None);
        for i in 0..100_000 {
            g.record(i as f64, i, i as i64);
        }
        assert!(g.samples.len() <= MAX_SAMPLES + 1);
        assert_eq!(g.revision_about(99_999.0, 300.0), Some(99_698)); // samples every 3 s from t=5
        assert_eq!(g.revision_about(99_999.0, 7200.0), None); // older than the window: unknown
    }
}
