//! How often the local member sends watch progress notifications, measured on a watch of our
//! own.
//!
//! Why measure: etcd does not report its `--watch-progress-notify-interval` (no API, no metric),
//! and the history the apiserver needs follows from it (`decide::watch_history`). A watch that
//! asks for progress notifications on a key nobody writes gets one every interval (plus up to a
//! tenth of jitter, fixed per stream): etcd's watch stream ticks at that interval and notifies
//! every such watcher that saw no event since the last tick. The first notification comes one
//! tick after the stream opens, so one is enough to measure; later ones only confirm it.
//!
//! Until the first one the interval is unknown: etcd's default is assumed, or the time the
//! watch has been silent when that is longer (a member set to an hour is not taken for ten
//! minutes); what is certain meanwhile is the silence itself (`at_least_seconds`), and only
//! that may make the history kept "below" (`decide::watch_history`). A restarted stream measures afresh (the member may have restarted with another
//! flag) and the last measurement stands meanwhile.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::mono_now;
use crate::decide::watch_history::{
    ETCD_DEFAULT_INTERVAL_SECONDS, IntervalSource, ProgressInterval,
};
use crate::etcd::WatchMessage;
use crate::observe::{Snapshot, backoff, next_snapshot};
use crate::report::state::Shared;
use crate::shutdown::Shutdown;

/// The key watched. Nothing writes it (etcd-upkeep's own keys are elsewhere); if something did,
/// a tick with an event sends no notification, and the shortest gap still measures.
pub const PROBE_KEY: &str = "/etcd-upkeep/progress-notify-probe";

/// How often the estimate is re-published while no notification comes (the silent watch
/// lengthens an assumed interval).
const REPUBLISH_EVERY: Duration = Duration::from_secs(5);

/// Gaps between notifications on the current stream; the estimate is the shortest of the last
/// few (a tick with an event on the probe key skips one, never shortens one).
#[derive(Debug, Default, Clone)]
pub struct IntervalMeter {
    stream_since: Option<f64>,
    last_notified: Option<f64>,
    gaps: VecDeque<f64>,
    measured: Option<f64>,
}

const GAPS_KEPT: usize = 4;

impl IntervalMeter {
    /// A new stream opened at `now`: its ticks start from here.
    pub fn stream_started(&mut self, now: f64) {
        self.stream_since = Some(now);
        self.last_notified = None;
        self.gaps.clear();
    }

    /// The stream is gone (no silence to count until the next one opens).
    pub fn stream_ended(&mut self) {
        self.stream_since = None;
        self.last_notified = None;
    }

    /// A progress notification arrived at `now`.
    pub fn notified(&mut self, now: f64) {
        if let Some(since) = self.last_notified.or(self.stream_since) {
            self.gaps.push_back(now - since);
            while self.gaps.len() > GAPS_KEPT {
                self.gaps.pop_front();
            }
            self.measured = self.gaps.iter().copied().reduce(f64::min);
        }
        self.last_notified = Some(now);
    }

    /// What is known at `now`.
    pub fn interval(&self, now: f64) -> ProgressInterval {
        match self.measured {
            Some(seconds) => ProgressInterval {
                seconds,
                source: IntervalSource::Measured,
                at_least_seconds: seconds,
            },
            None => {
                let silent = self.stream_since.map_or(0.0, |since| now - since);
                ProgressInterval {
                    seconds: ETCD_DEFAULT_INTERVAL_SECONDS.max(silent),
                    source: IntervalSource::Assumed,
                    at_least_seconds: silent,
                }
            }
        }
    }
}

/// Follows the local member's notifications and publishes the interval, until shutdown.
pub async fn run(
    publish: watch::Sender<ProgressInterval>,
    mut latest: watch::Receiver<Option<Snapshot>>,
    shared: std::sync::Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let mut meter = IntervalMeter::default();
    let mut said: Option<f64> = None;
    let mut failures = 0u32;
    let poll = shared.poll_interval;
    while let Some(snapshot) = next_snapshot(&mut latest, &mut shutdown).await {
        let Some(endpoint) = crate::decide::endpoints::local_endpoint(&snapshot.observation) else {
            if shutdown.sleep(poll).await {
                return;
            }
            continue;
        };
        let mut subscription = match snapshot.etcd.watch_progress(&endpoint, PROBE_KEY).await {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!("progress-notify watch could not start: {e}; retrying");
                }
                if shutdown.sleep(backoff(poll, failures)).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        meter.stream_started(mono_now());
        let mut republish = tokio::time::interval(REPUBLISH_EVERY);
        let failed = loop {
            let message = tokio::select! {
                m = subscription.next() => m,
                _ = republish.tick() => {
                    share(&publish, &shared, meter.interval(mono_now()));
                    continue;
                }
                _ = shutdown.requested() => return,
            };
            match message {
                Ok(Some(WatchMessage::Progress { .. })) => {
                    meter.notified(mono_now());
                    let interval = meter.interval(mono_now());
                    share(&publish, &shared, interval);
                    say(&mut said, interval, &endpoint);
                }
                Ok(Some(
                    WatchMessage::Created
                    | WatchMessage::Events(_)
                    | WatchMessage::Compacted { .. },
                )) => {}
                Ok(Some(WatchMessage::Canceled(reason))) => {
                    tracing::info!("progress-notify watch ended by etcd ({reason}); restarting");
                    break false;
                }
                Ok(None) => break false,
                Err(e) => {
                    tracing::debug!("progress-notify watch failed: {e}; restarting");
                    break true;
                }
            }
        };
        meter.stream_ended();
        failures += u32::from(failed);
        if shutdown.sleep(backoff(poll, failures.max(1))).await {
            return;
        }
    }
}

/// To the engine (the history it keeps) and to /status and the candidacy (which say it).
pub fn share(
    publish: &watch::Sender<ProgressInterval>,
    shared: &Shared,
    interval: ProgressInterval,
) {
    publish.send_replace(interval);
    shared
        .metrics
        .watch_progress_notify_interval_seconds
        .set(interval.seconds);
    shared.write().watch_progress = Some(interval);
}

/// One INFO line when the interval is first measured or changes by more than a tenth (etcd's
/// jitter), not one per notification.
fn say(said: &mut Option<f64>, interval: ProgressInterval, endpoint: &str) {
    if said.is_some_and(|s| (interval.seconds / s - 1.0).abs() <= 0.1) {
        return;
    }
    *said = Some(interval.seconds);
    tracing::info!(
        endpoint,
        interval_seconds = interval.seconds,
        "etcd sends watch progress notifications every {:.1}s (measured on etcd-upkeep's own watch)",
        interval.seconds
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notification_after_the_stream_opens_measures_the_interval() {
        let mut m = IntervalMeter::default();
        m.stream_started(100.0);
        let before = m.interval(110.0);
        assert_eq!(before.source, IntervalSource::Assumed);
        assert_eq!(before.seconds, 600.0);
        assert_eq!(before.at_least_seconds, 10.0);
        m.notified(121.0);
        assert_eq!(
            m.interval(122.0),
            ProgressInterval {
                seconds: 21.0,
                source: IntervalSource::Measured,
                at_least_seconds: 21.0,
            }
        );
    }

    #[test]
    fn a_skipped_tick_does_not_lengthen_the_interval() {
        let mut m = IntervalMeter::default();
        m.stream_started(0.0);
        m.notified(20.5);
        // A write to the probe key: the next tick sends nothing; the one after does.
        m.notified(61.5);
        m.notified(82.0);
        assert_eq!(m.interval(83.0).seconds, 20.5);
    }

    #[test]
    fn a_silent_watch_lengthens_the_assumed_interval_and_a_restart_measures_afresh() {
        let mut m = IntervalMeter::default();
        m.stream_started(0.0);
        assert_eq!(m.interval(900.0).seconds, 900.0);
        assert_eq!(m.interval(900.0).source, IntervalSource::Assumed);
        m.notified(3600.0);
        assert_eq!(m.interval(3601.0).seconds, 3600.0);
        // The member restarts with 20 s: the hour stands until the new stream's first tick.
        m.stream_ended();
        m.stream_started(4000.0);
        assert_eq!(m.interval(4010.0).seconds, 3600.0);
        m.notified(4020.0);
        assert_eq!(m.interval(4021.0).seconds, 20.0);
    }
}
