//! The growth forecast, as the engine publishes it: metric, /status, and one warning when the
//! quota is forecast within `--forecast-horizon`. It informs people; the space controller acts
//! on its own measurements.

use std::time::Duration;

use crate::observe::Observation;
use crate::report::state::Forecast;
use crate::units::format_bytes;

use super::{Ctx, Engine};

impl Engine {
    /// Records the largest member's size and publishes the forecast; warns once when the quota
    /// is forecast within `--forecast-horizon` (the space controller acts on its own numbers).
    pub(super) fn forecast(&mut self, ctx: &Ctx<'_>, obs: &Observation, now: f64) {
        let Some(largest) = obs
            .members
            .iter()
            .filter_map(|m| m.status.as_ref().map(|s| s.db_size))
            .max()
        else {
            return;
        };
        self.growth.record(now, largest, obs.revision);
        let eta = self.growth.seconds_until(obs.quota.bytes);
        let slope = self.growth.slope();
        let metrics = &ctx.shared.metrics;
        metrics
            .seconds_until_quota
            .set(eta.unwrap_or(f64::INFINITY));
        metrics.growth_bytes_per_second.set(slope.unwrap_or(0.0));
        ctx.shared.write().forecast = Forecast {
            growth_bytes_per_second: slope,
            seconds_until_quota: eta,
        };
        let within = matches!((eta, self.cfg.forecast_horizon), (Some(eta), Some(h)) if eta < h.as_secs_f64());
        if within && !self.forecast_warned {
            tracing::warn!(
                seconds_until_quota = eta,
                "the db grows {}/min and reaches the {} quota in ~{} (within --forecast-horizon)",
                format_bytes((slope.unwrap_or(0.0) * 60.0) as u64),
                format_bytes(obs.quota.bytes),
                humantime::format_duration(Duration::from_secs(eta.unwrap_or(0.0) as u64))
            );
        }
        self.forecast_warned = within;
    }
}
