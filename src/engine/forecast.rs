//! The growth forecast, as the engine publishes it: metric, /status, and one warning when the
//! quota is forecast within `--forecast-horizon`. It informs people; the space controller acts
//! on its own measurements.

use std::time::Duration;

use crate::observe::Observation;
use crate::report::state::Forecast;
use crate::units::format_bytes;

use crate::diagnose::forecast::GrowthSamples;

use super::{Ctx, Engine};

/// The growth forecast's memory: the largest member's size over time, and whether the warning
/// was given for the current approach to the quota.
#[derive(Debug, Default)]
pub struct GrowthWatch {
    samples: GrowthSamples,
    warned: bool,
}

/// What one observation tells about growth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    pub slope: Option<f64>,
    pub seconds_until_quota: Option<f64>,
    /// Within the horizon and not said yet for this approach: warn now.
    pub warn: bool,
}

impl GrowthWatch {
    /// Records the largest member's size at `now`; None when no member reported one.
    pub fn observe(
        &mut self,
        obs: &Observation,
        now: f64,
        horizon: Option<Duration>,
    ) -> Option<Growth> {
        let largest = obs
            .members
            .iter()
            .filter_map(|m| m.status.as_ref().map(|s| s.db_size))
            .max()?;
        self.samples.record(now, largest, obs.revision);
        let eta = self.samples.seconds_until(obs.quota.bytes);
        let within = matches!((eta, horizon), (Some(eta), Some(h)) if eta < h.as_secs_f64());
        let warn = within && !self.warned;
        self.warned = within;
        Some(Growth {
            slope: self.samples.slope(),
            seconds_until_quota: eta,
            warn,
        })
    }
}

impl Engine {
    /// Records the largest member's size and publishes the forecast; warns once when the quota
    /// is forecast within `--forecast-horizon` (the space controller acts on its own numbers).
    pub(super) fn forecast(&mut self, ctx: &Ctx<'_>, obs: &Observation, now: f64) {
        let Some(growth) = self.growth.observe(obs, now, self.cfg.forecast_horizon) else {
            return;
        };
        let (eta, slope) = (growth.seconds_until_quota, growth.slope);
        let metrics = &ctx.shared.metrics;
        metrics
            .seconds_until_quota
            .set(eta.unwrap_or(f64::INFINITY));
        metrics.growth_bytes_per_second.set(slope.unwrap_or(0.0));
        ctx.shared.write().forecast = Forecast {
            growth_bytes_per_second: slope,
            seconds_until_quota: eta,
        };
        if growth.warn {
            tracing::warn!(
                seconds_until_quota = eta,
                "the db grows {}/min and reaches the {} quota in ~{} (within --forecast-horizon)",
                format_bytes((slope.unwrap_or(0.0) * 60.0) as u64),
                format_bytes(obs.quota.bytes),
                humantime::format_duration(Duration::from_secs(eta.unwrap_or(0.0) as u64))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::decide::fixtures::{MIB, cluster};

    /// The largest member at `size` MiB of a 100 MiB quota.
    fn at(size: u64) -> Observation {
        cluster(&[(size * MIB, size * MIB), (MIB, MIB)], 100 * MIB)
    }

    #[test]
    fn the_warning_is_given_once_per_approach_to_the_quota() {
        let clock = Clock::manual(0.0);
        let horizon = Some(Duration::from_secs(3600));
        let mut watch = GrowthWatch::default();
        let mut warned_at = Vec::new();
        // 1 MiB every 3 s: the quota is minutes away, within the hour's horizon.
        for size in 10..20 {
            let growth = watch
                .observe(&at(size), clock.now(), horizon)
                .expect("sizes known");
            if growth.warn {
                warned_at.push(size);
            }
            clock.advance(Duration::from_secs(3));
        }
        assert_eq!(
            warned_at,
            vec![14],
            "once, as soon as there are enough samples"
        );
        // A defragmentation halves the file: no longer approaching; then growth again.
        for _ in 0..30 {
            let growth = watch
                .observe(&at(5), clock.now(), horizon)
                .expect("sizes known");
            assert!(!growth.warn);
            clock.advance(Duration::from_secs(3));
        }
        let warned_again = (5..40).any(|size| {
            clock.advance(Duration::from_secs(3));
            watch
                .observe(&at(size), clock.now(), horizon)
                .is_some_and(|g| g.warn)
        });
        assert!(warned_again, "a new approach is said again");
    }

    #[test]
    fn without_a_horizon_or_a_size_there_is_nothing_to_say() {
        let mut watch = GrowthWatch::default();
        let mut unknown = at(10);
        unknown.members.iter_mut().for_each(|m| m.status = None);
        assert_eq!(watch.observe(&unknown, 0.0, None), None);
        for t in 0..10 {
            let growth = watch.observe(&at(10 + t), f64::from(t as u32) * 3.0, None);
            assert!(!growth.expect("sizes known").warn, "no --forecast-horizon");
        }
    }
}
