//! The daemon's reportable state, shared between the loops (writers) and HTTP (reader).
//!
//! Why a lock around plain data: the loops update it a few times per poll and HTTP reads it on
//! scrape; contention is negligible, and a plain struct keeps `/status` a straight serialisation.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::decide::space::SpaceVerdict;
use crate::observe::Observation;
use crate::report::actions::{ActionLog, ActionRecord};
use crate::report::metrics::Metrics;

/// What the maintenance engine wants operators to see besides its actions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceReport {
    /// Whether this instance is the one that acts, and why (not).
    pub actor: bool,
    pub actor_reason: String,
    /// Reasons maintenance is refused right now (CORRUPT alarm, unhealthy member, disk space).
    pub blocked: Vec<String>,
    /// Why NOSPACE cannot be healed right now, with the numbers.
    pub heal_blocked: Option<String>,
    /// When NOSPACE was first seen in the current episode (Unix seconds).
    pub nospace_since: Option<f64>,
    /// The last compaction revision this instance made.
    pub compacted_revision: Option<i64>,
    pub dry_run: bool,
    /// A step that stops a member, while it runs on the server (e.g. "defragmentation of m1").
    pub in_flight: Option<String>,
    /// Voting members a heal went on without (they did not answer; the quorum did): not
    /// verified, each checked when it answers again.
    pub unverified: Vec<String>,
    /// Members this instance defragmented within the cool-down (member ID → Unix seconds):
    /// published with its candidacy, so the next actor honours the cool-down too.
    #[serde(skip)]
    pub defragmented: std::collections::BTreeMap<u64, u64>,
}

pub struct DaemonState {
    pub observation: Option<Arc<Observation>>,
    pub last_success: Option<Instant>,
    pub last_error: Option<String>,
    /// Last time the observation loop went round, successful or not (liveness).
    pub heartbeat: Instant,
    pub actions: ActionLog,
    pub maintenance: MaintenanceReport,
    /// The most written keys over the last minute and the last ten minutes, as the churn
    /// detector published them (a view: report is a sink and knows no diagnosis types).
    pub churn_last_minute: serde_json::Value,
    pub churn_last_ten_minutes: serde_json::Value,
    pub forecast: Forecast,
    pub space: SpaceReport,
    /// The local member's progress-notify interval and where it comes from.
    pub watch_progress: Option<crate::decide::watch_history::ProgressInterval>,
    /// The loop that ended unexpectedly (the daemon is stopping).
    pub failed_loop: Option<String>,
    /// Last time the engine went round (idle or acting): its liveness.
    pub engine_beat: Instant,
}

/// The controller as /status shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpaceReport {
    #[serde(flatten)]
    pub verdict: Option<SpaceVerdict>,
    /// Why the history kept is what it is.
    pub explanation: Option<String>,
    /// When live data alone is over the target: the biggest resources (as `analyze` lists them).
    pub largest_resources: serde_json::Value,
    /// And the quota that would hold it (bytes).
    pub suggested_quota: Option<u64>,
    /// Kept history against the members' watch progress notifications (and the etcd flag to
    /// set when it is below them).
    pub watch_history: Option<crate::decide::watch_history::WatchHistory>,
}

/// The growth forecast as shown in /status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Forecast {
    /// Growth of the largest member's db (bytes/s, least squares over the last hour).
    pub growth_bytes_per_second: Option<f64>,
    /// Seconds until the quota is reached; None when not growing or not enough data.
    pub seconds_until_quota: Option<f64>,
}

pub struct Shared {
    pub registry: Registry,
    pub metrics: Metrics,
    pub poll_interval: Duration,
    /// The longest one maintenance RPC may take (`--command-timeout`).
    pub command_timeout: Duration,
    pub state: RwLock<DaemonState>,
    /// Kubernetes Events (`--kubernetes-events`), set once at start; unset, nothing is recorded.
    pub events: std::sync::OnceLock<crate::report::events::EventSink>,
    /// Wakes the candidacy to publish this instance's word now rather than at its next
    /// renewal: a defragmentation's cool-down must reach the next actor before it acts.
    pub republish: tokio::sync::Notify,
}

impl Shared {
    /// Records a Kubernetes Event when they are on; never waits (see `report::events`).
    pub fn event(&self, reason: crate::report::events::EventReason, about: &str, message: String) {
        if let Some(sink) = self.events.get() {
            sink.record(reason, about, message);
        }
    }

    pub fn new(poll_interval: Duration, command_timeout: Duration) -> Arc<Shared> {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        Arc::new(Shared {
            registry,
            metrics,
            poll_interval,
            command_timeout,
            events: std::sync::OnceLock::new(),
            republish: tokio::sync::Notify::new(),
            state: RwLock::new(DaemonState {
                observation: None,
                last_success: None,
                last_error: None,
                heartbeat: Instant::now(),
                actions: ActionLog::default(),
                maintenance: MaintenanceReport::default(),
                churn_last_minute: serde_json::Value::Array(Vec::new()),
                churn_last_ten_minutes: serde_json::Value::Array(Vec::new()),
                forecast: Forecast::default(),
                space: SpaceReport::default(),
                watch_progress: None,
                failed_loop: None,
                engine_beat: Instant::now(),
            }),
        })
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, DaemonState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, DaemonState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record_action(&self, record: ActionRecord) {
        self.write().actions.push(record);
    }

    pub fn is_ready(&self) -> bool {
        is_ready(self.read().last_success, Instant::now(), self.poll_interval)
    }

    /// Every loop alive: none ended, the observation loop went round, and the engine did —
    /// allowing the engine one maintenance RPC more (`--command-timeout`: a defragmentation
    /// holds it that long at most). Err names the loop.
    pub fn liveness(&self) -> Result<(), NotLive> {
        let state = self.read();
        let now = Instant::now();
        if let Some(failed) = &state.failed_loop {
            return Err(NotLive::Ended(failed.clone()));
        }
        if !is_live(state.heartbeat, now, self.poll_interval) {
            return Err(NotLive::ObservationStalled);
        }
        let engine_quiet = now.saturating_duration_since(state.engine_beat);
        if !is_live(
            state.engine_beat + engine_quiet.min(self.command_timeout),
            now,
            self.poll_interval,
        ) {
            return Err(NotLive::EngineStalled);
        }
        Ok(())
    }
}

/// Why `/healthz` answers 503: a loop ended (the daemon is stopping) or stalled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotLive {
    #[error("{0}")]
    Ended(String),
    #[error("the observation loop stalled")]
    ObservationStalled,
    #[error("the maintenance engine stalled")]
    EngineStalled,
}

/// Ready: an observation succeeded within the last 3 poll intervals.
pub fn is_ready(last_success: Option<Instant>, now: Instant, poll: Duration) -> bool {
    last_success.is_some_and(|t| now.saturating_duration_since(t) <= poll * 3)
}

/// Live: the observation loop went round recently. Generous on purpose (a round may wait on
/// several timeouts): liveness is for a wedged process, not a slow etcd.
pub fn is_live(heartbeat: Instant, now: Instant, poll: Duration) -> bool {
    now.saturating_duration_since(heartbeat) <= (poll * 10).max(Duration::from_secs(120))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_window_is_three_polls() {
        let poll = Duration::from_secs(5);
        let t0 = Instant::now();
        assert!(!is_ready(None, t0, poll));
        assert!(is_ready(Some(t0), t0 + Duration::from_secs(15), poll));
        assert!(!is_ready(Some(t0), t0 + Duration::from_secs(16), poll));
    }

    #[test]
    fn liveness_is_generous() {
        let poll = Duration::from_secs(5);
        let t0 = Instant::now();
        assert!(is_live(t0, t0 + Duration::from_secs(100), poll));
        assert!(!is_live(t0, t0 + Duration::from_secs(121), poll));
    }
}
