//! The space controller, run every tick: measure, decide the history to keep, compact to it, and
//! defragment only when the file itself must shrink.
//!
//! Why every tick and not in episodes: a sync loop writes history continuously, so the history
//! must be cut continuously — a db compacted every poll stops growing (bbolt reuses the freed
//! pages), one compacted in bursts reaches the quota between them. The decision itself is
//! `decide::space` (pure); the controller gathers its inputs (the largest member's bytes in use,
//! how old the kept history is, the rate of new history from the churn watch) and publishes the
//! verdict (log on change, metrics, /status); the engine runs the two mutations it calls for.
//!
//! Across a handover nothing pauses: every instance samples the revisions and the rate, so the
//! new leader's instance compacts from its first tick (compaction needs no settling; see
//! `decide::actor`). Only a defragmentation waits for the settle period.
//!
//! The controller's state and decisions are [`controller::SpaceController`]; this file is what
//! the engine does with them: the compaction it asks for, and a defragmentation when the file
//! must shrink.

mod controller;
mod space_summary;
mod watch_history;

pub use controller::SpaceController;

use std::collections::HashSet;

use crate::decide::actor::Fence;
use crate::decide::plan::{PlanCause, order, reclaimable};
use crate::decide::space::{SpaceVerdict, must_shrink};
use crate::observe::Observation;
use crate::units::format_bytes;

use super::{Ctx, Engine};

impl Engine {
    /// Compacts to what the controller asks for, through the one fenced compaction.
    pub(super) async fn compact_for_space(
        &mut self,
        ctx: &Ctx<'_>,
        fence: Fence,
        space: Option<&SpaceVerdict>,
        periodic_target: Option<i64>,
        now: f64,
    ) {
        let last = self.compaction.last_compacted();
        if let Some(asked) = self.space.compaction(now, space, periodic_target, last) {
            let done = self
                .compact(
                    ctx,
                    fence,
                    asked.revision,
                    &asked.why,
                    asked.keeps.is_some(),
                )
                .await;
            if let (true, Some(keeps)) = (done, asked.keeps) {
                self.space.compacted(keeps);
            }
        }
        if let Some(line) = self.space.summary_due(now) {
            tracing::info!(
                compactions = line.compactions,
                least_history_seconds = line.least_keep_seconds,
                peak_quota_ratio = line.peak_ratio,
                "{line}"
            );
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
