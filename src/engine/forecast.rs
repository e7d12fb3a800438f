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
