//! The members a heal left out, and the files left behind: a heal that went on through a quorum
//! names the members it did not verify, looks at them again once they answer, and a member that
//! comes back with a file far over its line is defragmented on its own.
//!
//! Why apart from the episode (`heal.rs`): these outlive the NOSPACE episode; they are what a
//! degraded cluster leaves to do after the alarm is gone.

use std::collections::HashSet;

use crate::decide::actor::Fence;
use crate::decide::heal::unverified_members;
use crate::decide::plan::{PlanCause, order};
use crate::observe::Observation;
use crate::units::format_bytes;

use crate::engine::{Ctx, Engine};

impl Engine {
    /// A heal through the quorum: name the voting members it goes on without, once per change,
    /// in the log and /status. They stay named after the disarm until they answer again.
    pub(in crate::engine) fn note_unverified(&mut self, ctx: &Ctx<'_>, obs: &Observation) {
        let down = unverified_members(obs);
        self.episode.set_left_out(
            obs.members
                .iter()
                .filter(|m| !m.is_learner && !m.in_quorum())
                .map(|m| m.id)
                .collect(),
        );
        let mut state = ctx.shared.write();
        if state.maintenance.unverified != down {
            if !down.is_empty() {
                tracing::warn!(
                    unverified = ?down,
                    "healing through the quorum that answers: {} did not answer and cannot be verified; each is checked when it answers again",
                    down.join(", ")
                );
            }
            state.maintenance.unverified = down;
        }
    }

    /// The members a heal went on without, once they answer again: say so (the defragmentation
    /// of a file left behind is `decide::heal::files_left_behind`, whichever instance acts).
    pub(in crate::engine) fn recheck_unverified(&mut self, ctx: &Ctx<'_>, obs: &Observation) {
        if !self.episode.any_left_out() {
            return;
        }
        let line = (self.cfg.disarm_threshold * obs.quota.bytes as f64) as u64;
        let back = self
            .episode
            .back(|id| obs.member(id).is_none_or(|m| m.in_quorum()));
        for id in back {
            let Some(status) = obs.member(id).and_then(|m| m.status.as_ref()) else {
                continue; // it left the cluster
            };
            let name = obs.member_name(id);
            tracing::info!(member = %name, "{name} answers again: its file is {} (the disarm line is {})", format_bytes(status.db_size), format_bytes(line));
        }
        if !self.episode.any_left_out() {
            ctx.shared.write().maintenance.unverified.clear();
        }
    }

    /// Defragments members whose file was left behind over the line (`files_left_behind`):
    /// rolling, as a heal is, so the gate goes on through a quorum.
    pub(in crate::engine) async fn defragment_left_behind(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        fence: Fence,
        members: &[u64],
    ) {
        let plan = order(obs, PlanCause::Heal, members);
        tracing::warn!(
            members = ?plan.steps.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "{} over the disarm line while the other members are far below it (history they gave up, e.g. a member back from being down): defragmenting before its next write raises NOSPACE",
            plan.steps.iter().map(|s| format!("{} ({})", s.name, format_bytes(s.db_size))).collect::<Vec<_>>().join(", ")
        );
        let outcome = self
            .rolling_defrag(ctx, plan, fence, &mut HashSet::new())
            .await;
        tracing::info!(?outcome, "defragmentation of the files left behind ended");
    }
}
