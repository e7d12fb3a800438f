//! The space controller's own state and decisions: the revisions' clock, the rate of new
//! history, the verdict of each tick (published to metrics and /status), what it last said, the
//! ten-minute summary, the background count of live data, and the history kept against the
//! members' progress notifications.
//!
//! Why a component: nothing else in the engine reads or writes any of it. The engine hands it
//! the observation and the revision of the last compaction, asks it for the verdict and for the
//! revision to compact to, runs that compaction itself (the fenced one every caller goes
//! through), and tells it what was done.

use std::sync::Arc;

use tokio::sync::watch;

use crate::decide::revisions::RevisionLog;
use crate::decide::space::{
    CompactTo, Limit, SpaceInputs, SpacePolicy, SpaceVerdict, compaction_target, space_verdict,
};
use crate::diagnose::analyze::live_data;
use crate::diagnose::churn::ChurnEntry;
use crate::diagnose::history_rate::{HistoryRate, WriteTotals};
use crate::observe::Observation;
use crate::report::state::Shared;
use crate::units::format_bytes;

use super::super::Ctx;
use super::space_summary::{SpaceSummary, SummaryLine};
use super::watch_history::WatchHistoryReport;

/// What the controller last logged, so it speaks once per change.
#[derive(Debug, Clone, PartialEq)]
struct Said {
    limit: Limit,
    keep_seconds: f64,
    live_over_target: bool,
    /// The sync loop named with the verdict, if any.
    sync_loop: Option<String>,
}

/// A live-data scan is at most this frequent (it reads the whole keyspace).
const SCAN_EVERY_SECONDS: f64 = 1800.0;

/// The space controller (None policy: off; it then decides nothing).
pub struct SpaceController {
    policy: Option<SpacePolicy>,
    /// When each revision was current (the controller compacts by age).
    revisions: RevisionLog,
    /// What the churn watch counted, and the rate of new history derived from it.
    write_totals: Option<Arc<WriteTotals>>,
    history_rate: HistoryRate,
    /// The churn watch's top list of the last minute (to name the sync loop behind history).
    churn_top: Option<watch::Receiver<Arc<Vec<ChurnEntry>>>>,
    /// Kept history against the members' progress notifications (None: not known, `heal`).
    watch_history: Option<WatchHistoryReport>,
    /// What it last said (limit, seconds kept, live over target), to log changes only.
    said: Option<Said>,
    /// What its routine compactions added up to (one INFO line per 10 minutes).
    summary: SpaceSummary,
    /// When live data was last counted by resource (monotonic seconds).
    live_scan_at: f64,
    /// The background count of live data by resource, if one runs: owned here, so it is
    /// cancelled with the engine.
    live_scan: tokio::task::JoinSet<()>,
}

/// A compaction the controller asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionAsked {
    pub revision: i64,
    pub why: String,
    /// Seconds of history it keeps, when it is the controller's own (not the periodic one).
    pub keeps: Option<f64>,
}

impl SpaceController {
    pub fn new(policy: Option<SpacePolicy>) -> SpaceController {
        SpaceController {
            // Long enough for the longest history the controller keeps (the retention).
            revisions: RevisionLog::new(
                policy
                    .map(|s| s.retention + 60.0)
                    .unwrap_or(0.0)
                    .min(4.0 * 3600.0),
            ),
            policy,
            write_totals: None,
            history_rate: HistoryRate::default(),
            churn_top: None,
            watch_history: None,
            said: None,
            summary: SpaceSummary::default(),
            live_scan_at: f64::NEG_INFINITY,
            live_scan: tokio::task::JoinSet::new(),
        }
    }

    /// What the churn watch publishes: the bytes it counted (the history rate) and its top list.
    pub fn with_churn_watch(
        &mut self,
        totals: Arc<WriteTotals>,
        top: watch::Receiver<Arc<Vec<ChurnEntry>>>,
    ) {
        self.write_totals = Some(totals);
        self.churn_top = Some(top);
    }

    /// Where the members' progress-notify interval is published.
    pub fn with_progress_notify(
        &mut self,
        interval: watch::Receiver<crate::decide::watch_history::ProgressInterval>,
    ) {
        self.watch_history = Some(WatchHistoryReport::new(interval));
    }

    /// Measures and decides; publishes the verdict. None when the controller is off.
    /// `last_compacted`: the revision of the last compaction (any caller's), which dates the
    /// history kept.
    pub fn verdict(
        &mut self,
        shared: &Shared,
        obs: &Observation,
        now: f64,
        last_compacted: i64,
    ) -> Option<SpaceVerdict> {
        let policy = self.policy?;
        self.revisions.record(now, obs.revision);
        if let Some((superseded, created)) = self.write_totals.as_ref().and_then(|t| t.totals()) {
            self.history_rate.record(now, superseded, created);
        }
        let in_use = obs
            .members
            .iter()
            .filter(|m| !m.is_learner)
            .filter_map(|m| m.status.as_ref().map(|s| s.db_size_in_use))
            .max()?;
        let last = last_compacted;
        let inputs = SpaceInputs {
            quota: obs.quota.bytes,
            in_use,
            history_age: (last > 0)
                .then(|| self.revisions.age_of(now, last))
                .flatten(),
            history_rate: self.history_rate.rates().map(|r| r.history),
        };
        let verdict = space_verdict(&policy, &inputs);
        self.summary
            .saw(now, in_use as f64 / obs.quota.bytes.max(1) as f64);
        self.publish(shared, &verdict);
        if let Some(report) = &mut self.watch_history {
            report.publish(shared, obs, &policy, &verdict);
        }
        Some(verdict)
    }

    fn publish(&mut self, shared: &Shared, verdict: &SpaceVerdict) {
        let policy = self.policy.expect("controller on");
        let metrics = &shared.metrics;
        metrics.history_retention_seconds.set(verdict.keep_seconds);
        metrics.space_pressure.set(verdict.pressure);
        metrics.space_target_bytes.set(verdict.target_bytes as i64);
        metrics
            .history_bytes_per_second
            .set(verdict.history_bytes_per_second.unwrap_or(0.0));
        if let Some(live) = verdict.live_bytes {
            metrics.live_data_bytes.set(live as i64);
        }
        metrics
            .live_data_over_target
            .set(i64::from(verdict.live_over_target));
        let explanation = verdict.explain(&policy);
        let suggested = verdict
            .live_bytes
            .filter(|_| verdict.live_over_target)
            .map(|live| crate::decide::heal::suggest_quota(live, policy.target));
        {
            let mut state = shared.write();
            state.space.verdict = Some(verdict.clone());
            state.space.explanation = Some(explanation.clone());
            state.space.suggested_quota = suggested;
            if !verdict.live_over_target {
                state.space.largest_resources = serde_json::Value::Array(Vec::new());
            }
        }
    }

    /// The log, once per change of the decision: why the history shrank (and the sync loop
    /// behind it), or that live data is over the target (with the quota to set).
    /// Only the actor speaks (standby instances decide too, as they may act next): the tick
    /// calls this once it knows this instance acts.
    pub fn say(&mut self, ctx: &Ctx<'_>, obs: &Observation, verdict: &SpaceVerdict, now: f64) {
        if let Some(report) = &mut self.watch_history {
            report.say();
        }
        let policy = self.policy.expect("controller on");
        let explanation = verdict.explain(&policy);
        let suggested = verdict
            .live_bytes
            .filter(|_| verdict.live_over_target)
            .map(|live| crate::decide::heal::suggest_quota(live, policy.target));
        let sync_loop = self
            .churn_top
            .as_ref()
            .and_then(|top| top.borrow().iter().find(|e| e.sync_loop).cloned());
        let said = Said {
            limit: verdict.limit,
            keep_seconds: verdict.keep_seconds,
            live_over_target: verdict.live_over_target,
            sync_loop: sync_loop.as_ref().map(|l| l.key.clone()),
        };
        let changed = self.said.as_ref().is_none_or(|before| {
            before.limit != said.limit
                || before.live_over_target != said.live_over_target
                || (before.sync_loop != said.sync_loop && said.limit != Limit::Retention)
                || (said.keep_seconds / before.keep_seconds - 1.0).abs() > 0.5
        });
        if !changed {
            return;
        }
        let first = self.said.is_none();
        self.said = Some(said);
        if verdict.live_over_target {
            let live = format_bytes(verdict.live_bytes.unwrap_or(0));
            tracing::error!(
                live_bytes = verdict.live_bytes,
                target_bytes = verdict.target_bytes,
                suggested_quota = suggested,
                "live data ({live}) is over the space target {} ({:.0}% of the {} quota): compaction cannot free live data, so NOSPACE will follow as it grows. Raise --quota-backend-bytes to at least {} on etcd (and etcd-upkeep), or delete objects; the biggest resources follow once counted (/status → space.largest_resources, or `etcd-upkeep analyze`)",
                format_bytes(verdict.target_bytes),
                policy.target * 100.0,
                format_bytes(obs.quota.bytes),
                format_bytes(suggested.unwrap_or(0)),
            );
            ctx.shared.event(
                crate::report::events::EventReason::LiveDataOverTarget,
                "live data",
                format!(
                    "live data ({live}) is over the space target {}: compaction cannot free it. Raise the quota to at least {} or delete objects (the biggest resources: etcd-upkeep's /status, space.largest_resources)",
                    format_bytes(verdict.target_bytes),
                    format_bytes(suggested.unwrap_or(0)),
                ),
            );
            self.count_live_data(ctx, obs, now);
        } else if verdict.limit == Limit::Retention {
            if !first {
                tracing::info!("space controller: {explanation}");
            }
        } else {
            let sync_loop = sync_loop
                .map(|l| {
                    format!(
                        "; the history comes from a sync loop: {} rewritten {:.0} times a minute (check {})",
                        l.key,
                        l.writes_per_minute,
                        l.vcluster_hint.as_deref().unwrap_or("its controller")
                    )
                })
                .unwrap_or_default();
            tracing::warn!(
                keep_seconds = verdict.keep_seconds,
                limit = verdict.limit.as_str(),
                pressure = verdict.pressure,
                history_bytes_per_second = verdict.history_bytes_per_second,
                live_bytes = verdict.live_bytes,
                "space controller: {explanation}{sync_loop}"
            );
        }
    }

    /// Counts the keyspace by resource in the background (at most every 30 minutes), so the
    /// live-data report can name what to delete or the quota it needs.
    fn count_live_data(&mut self, ctx: &Ctx<'_>, obs: &Observation, now: f64) {
        // The last count's task, if it ended, is reaped; one still running is left to finish.
        while self.live_scan.try_join_next().is_some() {}
        if now - self.live_scan_at < SCAN_EVERY_SECONDS || !self.live_scan.is_empty() {
            return;
        }
        let Some(endpoint) = crate::decide::endpoints::local_endpoint(obs) else {
            return;
        };
        self.live_scan_at = now;
        let etcd = Arc::clone(ctx.etcd);
        let shared: Arc<Shared> = Arc::clone(ctx.shared);
        let mut shutdown = ctx.shutdown.clone();
        // Owned by the engine (dropped, hence cancelled, with it) and cut short on shutdown: a
        // whole-keyspace read must not outlive the daemon's 20 s to stop.
        self.live_scan.spawn(async move {
            let counted = tokio::select! {
                counted = live_data(&etcd, &endpoint) => counted,
                _ = shutdown.requested() => return,
            };
            match counted {
                Ok(breakdown) => {
                    let mut resources = breakdown.resources();
                    resources.truncate(5);
                    let named: Vec<String> = resources
                        .iter()
                        .map(|r| {
                            format!(
                                "{} ({} objects, {})",
                                r.resource,
                                r.count,
                                format_bytes(r.bytes)
                            )
                        })
                        .collect();
                    tracing::warn!("the biggest resources in etcd: {}", named.join(", "));
                    shared.write().space.largest_resources =
                        serde_json::to_value(&resources).unwrap_or_default();
                }
                Err(e) => tracing::warn!("counting live data by resource failed: {e}"),
            }
        });
    }

    /// The revision to compact to: the history the controller keeps (every tick while under
    /// pressure) or, with room to spare, the periodic target. Never backwards, never the same
    /// revision twice.
    pub fn compaction(
        &self,
        now: f64,
        verdict: Option<&SpaceVerdict>,
        periodic_target: Option<i64>,
        last_compacted: i64,
    ) -> Option<CompactionAsked> {
        let pressured = verdict
            .filter(|v| v.limit != Limit::Retention)
            .and_then(|v| {
                let revision = self.revisions.revision_at(now, v.keep_seconds)?;
                Some((revision, v))
            });
        match compaction_target(pressured.map(|(r, _)| r), periodic_target, last_compacted)? {
            CompactTo::Space(revision) => {
                let verdict = pressured.map(|(_, v)| v)?;
                Some(CompactionAsked {
                    revision,
                    why: format!(
                        "space controller: the last {:.0}s of history kept ({})",
                        verdict.keep_seconds,
                        verdict.limit.as_str()
                    ),
                    keeps: Some(verdict.keep_seconds),
                })
            }
            CompactTo::Periodic(revision) => Some(CompactionAsked {
                revision,
                why: "periodic compaction keeps the configured history".into(),
                keeps: None,
            }),
        }
    }

    /// A compaction of its own went through, keeping `keep_seconds`.
    pub fn compacted(&mut self, keep_seconds: f64) {
        self.summary.compacted(keep_seconds);
    }

    /// The ten-minute summary, when one is due.
    pub fn summary_due(&mut self, now: f64) -> Option<SummaryLine> {
        self.summary.due(now)
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
