//! The space controller, run every tick: measure, decide the history to keep, compact to it, and
//! defragment only when the file itself must shrink.
//!
//! Why every tick and not in episodes: a sync loop writes history continuously, so the history
//! must be cut continuously — a db compacted every poll stops growing (bbolt reuses the freed
//! pages), one compacted in bursts reaches the quota between them. The decision itself is
//! `decide::space` (pure); this file gathers its inputs (the largest member's bytes in use, how
//! old the kept history is, the rate of new history from the churn watch), publishes the verdict
//! (log on change, metrics, /status), and runs the two mutations it calls for.
//!
//! Across a handover nothing pauses: every instance samples the revisions and the rate, so the
//! new leader's instance compacts from its first tick (compaction needs no settling; see
//! `decide::actor`). Only a defragmentation waits for the settle period.

use std::collections::HashSet;
use std::sync::Arc;

use crate::decide::actor::Fence;
use crate::decide::plan::{PlanCause, order, reclaimable};
use crate::decide::space::{
    CompactTo, Limit, SpaceInputs, SpaceVerdict, compaction_target, must_shrink, space_verdict,
};
use crate::diagnose::analyze::scan;
use crate::observe::Observation;
use crate::report::state::Shared;
use crate::units::format_bytes;

use super::{Ctx, Engine};

/// What the controller last logged, so it speaks once per change.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    limit: Limit,
    keep_seconds: f64,
    live_over_target: bool,
    /// The sync loop named with the verdict, if any.
    sync_loop: Option<String>,
}

/// A live-data scan is at most this frequent (it reads the whole keyspace).
const SCAN_EVERY_SECONDS: f64 = 1800.0;

impl Engine {
    /// Measures and decides; publishes the verdict. None when the controller is off.
    pub(super) fn space_verdict(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        now: f64,
    ) -> Option<SpaceVerdict> {
        let policy = self.cfg.space?;
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
        let last = self.compaction.last_compacted;
        let inputs = SpaceInputs {
            quota: obs.quota.bytes,
            in_use,
            history_age: (last > 0)
                .then(|| self.revisions.age_of(now, last))
                .flatten(),
            history_rate: self.history_rate.rates().map(|r| r.history),
        };
        let verdict = space_verdict(&policy, &inputs);
        self.publish_space(ctx, obs, &verdict);
        Some(verdict)
    }

    fn publish_space(&mut self, ctx: &Ctx<'_>, obs: &Observation, verdict: &SpaceVerdict) {
        let policy = self.cfg.space.expect("controller on");
        let metrics = &ctx.shared.metrics;
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
            let mut state = ctx.shared.write();
            state.space.verdict = Some(verdict.clone());
            state.space.explanation = Some(explanation.clone());
            state.space.suggested_quota = suggested;
            if !verdict.live_over_target {
                state.space.largest_resources = serde_json::Value::Array(Vec::new());
            }
        }

        self.say_space(ctx, obs, verdict, &explanation, suggested);
    }

    /// The log, once per change of the decision: why the history shrank (and the sync loop
    /// behind it), or that live data is over the target (with the quota to set).
    fn say_space(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        verdict: &SpaceVerdict,
        explanation: &str,
        suggested: Option<u64>,
    ) {
        let policy = self.cfg.space.expect("controller on");
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
        let changed = self.space_said.as_ref().is_none_or(|before| {
            before.limit != said.limit
                || before.live_over_target != said.live_over_target
                || (before.sync_loop != said.sync_loop && said.limit != Limit::Retention)
                || (said.keep_seconds / before.keep_seconds - 1.0).abs() > 0.5
        });
        // Standby instances decide too (they may act next), but only the actor speaks.
        let acting = ctx.shared.read().maintenance.actor;
        if !changed || !acting {
            return;
        }
        let first = self.space_said.is_none();
        self.space_said = Some(said);
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
            self.count_live_data(ctx, obs);
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
    fn count_live_data(&mut self, ctx: &Ctx<'_>, obs: &Observation) {
        let now = self.clock.now();
        if now - self.live_scan_at < SCAN_EVERY_SECONDS {
            return;
        }
        let Some(endpoint) = crate::decide::endpoints::local_endpoint(obs) else {
            return;
        };
        self.live_scan_at = now;
        let etcd = Arc::clone(ctx.etcd);
        let shared: Arc<Shared> = Arc::clone(ctx.shared);
        tokio::spawn(async move {
            match scan(&etcd, &endpoint, "", 50_000).await {
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

    /// Compacts to the history the controller keeps (every tick while under pressure) or, with
    /// room to spare, to the periodic target. Never backwards, never the same revision twice.
    pub(super) async fn compact_for_space(
        &mut self,
        ctx: &Ctx<'_>,
        fence: Fence,
        space: Option<&SpaceVerdict>,
        periodic_target: Option<i64>,
        now: f64,
    ) {
        let pressured = space.filter(|v| v.limit != Limit::Retention).and_then(|v| {
            let revision = self.revisions.revision_at(now, v.keep_seconds)?;
            Some((revision, v))
        });
        let last = self.compaction.last_compacted;
        match compaction_target(pressured.map(|(r, _)| r), periodic_target, last) {
            Some(CompactTo::Space(target)) => {
                let verdict = pressured
                    .map(|(_, v)| v)
                    .expect("space target has a verdict");
                let why = format!(
                    "space controller: the last {:.0}s of history kept ({})",
                    verdict.keep_seconds,
                    verdict.limit.as_str()
                );
                self.compact(ctx, fence, target, &why).await;
            }
            Some(CompactTo::Periodic(target)) => {
                let why = "periodic compaction keeps the configured history";
                self.compact(ctx, fence, target, why).await;
            }
            None => {}
        }
    }

    /// Defragments the members whose file must shrink (near the quota with real space free),
    /// rolling and leader last. Returns true when a pass ran.
    pub(super) async fn shrink_pass(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        fence: Fence,
        space: &SpaceVerdict,
    ) -> bool {
        let target = self.cfg.space.map(|s| s.target).unwrap_or(1.0);
        let members: Vec<u64> = obs
            .members
            .iter()
            .filter(|m| !m.is_learner && reclaimable(m))
            .filter(|m| {
                m.status.as_ref().is_some_and(|s| {
                    must_shrink(s.db_size, s.db_size_in_use, obs.quota.bytes, target)
                })
            })
            .map(|m| m.id)
            .collect();
        if members.is_empty() {
            return false;
        }
        let plan = order(obs, PlanCause::Space, &members);
        tracing::warn!(
            members = ?plan.steps.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "space controller: the db file is near the {} quota while only {} is in use; defragmenting to give the space back (rolling, leader last)",
            format_bytes(obs.quota.bytes),
            format_bytes(space.live_bytes.unwrap_or(0).max(
                plan.steps.iter().map(|s| s.db_size_in_use).max().unwrap_or(0)
            )),
        );
        let outcome = self
            .rolling_defrag(ctx, plan, fence, &mut HashSet::new())
            .await;
        tracing::info!(?outcome, "space defragmentation pass ended");
        true
    }
}
