//! When the growth forecast calls for maintenance, how much history to keep, and when to look
//! again.
//!
//! Why these numbers: the apiserver keeps ~5 minutes of history for its watchers, so that is the
//! most we keep; but a sync loop's last 5 minutes may not fit under the quota, so never more than
//! half the time left. After acting, look again before a third of the remaining time has passed
//! (at least 30 s apart, at most 10 minutes).

use std::time::Duration;

/// Whether forecast-driven maintenance is due: a forecast exists, it is within the horizon
/// (`None`: forecasting is off), and the hold-off after the previous run has passed.
pub fn forecast_due(
    eta: Option<f64>,
    horizon: Option<Duration>,
    now: f64,
    hold_until: f64,
) -> bool {
    match (eta, horizon) {
        (Some(eta), Some(horizon)) => eta < horizon.as_secs_f64() && now >= hold_until,
        _ => false,
    }
}

/// Seconds of history to keep when compacting early.
pub fn history_to_keep(eta: f64) -> f64 {
    (eta / 2.0).clamp(10.0, 300.0)
}

/// Seconds until the next forecast-driven check.
pub fn recheck_after(eta: f64) -> f64 {
    (eta / 3.0).clamp(30.0, 600.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_only_within_the_horizon_and_after_the_hold_off() {
        let hour = Some(Duration::from_secs(3600));
        assert!(forecast_due(Some(600.0), hour, 100.0, 50.0));
        assert!(!forecast_due(Some(7200.0), hour, 100.0, 50.0)); // beyond the horizon
        assert!(!forecast_due(Some(600.0), hour, 100.0, 200.0)); // holding off
        assert!(!forecast_due(None, hour, 100.0, 0.0)); // not growing
        assert!(!forecast_due(Some(1.0), None, 100.0, 0.0)); // forecasting off
    }

    #[test]
    fn history_and_recheck_scale_with_the_time_left() {
        assert_eq!(history_to_keep(3000.0), 300.0); // plenty of time: the apiserver's 5 minutes
        assert_eq!(history_to_keep(130.0), 65.0); // a fast sync loop: half the time left
        assert_eq!(history_to_keep(4.0), 10.0);
        assert_eq!(recheck_after(130.0), 43.333333333333336);
        assert_eq!(recheck_after(10.0), 30.0);
        assert_eq!(recheck_after(100_000.0), 600.0);
    }
}
