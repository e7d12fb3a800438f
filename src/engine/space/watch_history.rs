//! The space controller's word to the kube-apiserver's side: the history it keeps against the
//! members' watch progress notifications, on the gauges and /status every tick, and one INFO
//! line when it falls below them and one when it recovers.
//!
//! The comparison is `decide::watch_history` (pure); the interval comes from
//! `observe::progress_notify` (or the flag). Every instance publishes (a standby may act next);
//! only the actor logs, once per change, so a cluster says it once.

use tokio::sync::watch;

use crate::decide::space::{SpacePolicy, SpaceVerdict};
use crate::decide::watch_history::{ProgressInterval, WatchHistory, watch_history};
use crate::observe::Observation;
use crate::report::state::Shared;

/// The interval's source and what was last decided and said.
#[derive(Debug)]
pub struct WatchHistoryReport {
    interval: watch::Receiver<ProgressInterval>,
    /// The last comparison (its `below` is the hysteresis of the next).
    last: Option<WatchHistory>,
    /// What the actor last logged: below (true) or not.
    said: Option<bool>,
}

impl WatchHistoryReport {
    pub fn new(interval: watch::Receiver<ProgressInterval>) -> WatchHistoryReport {
        WatchHistoryReport {
            interval,
            last: None,
            said: None,
        }
    }

    /// Compares the history the verdict keeps with the interval and publishes it.
    pub fn publish(
        &mut self,
        shared: &Shared,
        obs: &Observation,
        policy: &SpacePolicy,
        verdict: &SpaceVerdict,
    ) {
        let interval = *self.interval.borrow();
        let version = local_version(obs);
        let was_below = self.last.as_ref().is_some_and(|l| l.below);
        let compared = watch_history(
            verdict.keep_seconds,
            interval,
            policy.floor,
            version,
            was_below,
        );
        let metrics = &shared.metrics;
        metrics
            .history_over_watch_progress_interval
            .set(verdict.keep_seconds / interval.seconds.max(1e-3));
        shared.write().space.watch_history = Some(compared.clone());
        self.last = Some(compared);
    }

    /// The actor's line, once per change (none for a first look that is fine).
    pub fn say(&mut self) {
        let Some(last) = &self.last else { return };
        if self.said == Some(last.below) || (self.said.is_none() && !last.below) {
            self.said = Some(last.below);
            return;
        }
        self.said = Some(last.below);
        if let Some(advice) = &last.advice {
            tracing::info!(
                kept_seconds = last.kept_seconds,
                interval_seconds = last.interval_seconds,
                interval_source = last.interval_source.as_str(),
                flag = last.flag,
                recommended = %last.recommended,
                "{advice}"
            );
        } else {
            tracing::info!(
                kept_seconds = last.kept_seconds,
                interval_seconds = last.interval_seconds,
                "kept history is back above the members' watch progress-notify interval ({:.0}s kept, notifications every {:.0}s): kube-apiserver's watch cache can read its revisions again",
                last.kept_seconds,
                last.interval_seconds
            );
        }
    }
}

/// The local member's etcd version (another's while it does not answer): it spells the flag.
fn local_version(obs: &Observation) -> &str {
    obs.local_member
        .and_then(|id| obs.member(id))
        .and_then(|m| m.status.as_ref())
        .or_else(|| obs.members.iter().find_map(|m| m.status.as_ref()))
        .map_or("", |s| s.version.as_str())
}
