//! Handing leadership over before the leader's own defragmentation: to a caught-up follower
//! that is already defragmented, waiting until it leads, and then — as a lame duck, while the
//! new leader's instance still settles — defragmenting the old leader's own member.
//!
//! Why apart from the pass: the handover is the one step of a rolling defragmentation that
//! changes who leads, with its own waits and fall-backs; `rolling.rs` is the pass itself.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::decide::actor::{Basis, Fence};
use crate::decide::plan::{DefragStep, PlanCause, leader_transfer_target};
use crate::observe::Observation;

use super::pass::{RollOutcome, Stop, current_step};
use crate::engine::{Ctx, Engine};

/// What the leader's turn ended with.
pub(super) enum Leader {
    /// Defragment it here (in place while healing, or the dry run's simulation).
    DefragmentHere,
    /// Leadership moved: plan the pass again (the old leader is a follower now).
    Replan,
    /// The pass ends here.
    Ended(RollOutcome),
}

/// A follower may lag the leader's applied index by this much and still take leadership.
const MAX_TRANSFER_LAG: u64 = 1000;

impl Engine {
    /// The leader's turn: hand leadership to a caught-up, defragmented follower first. Beside
    /// the leader, the old actor then finishes its own member as a lame duck (see
    /// `lame_duck`); any other actor re-plans it as the follower it now is.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hand_over(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        step: &DefragStep,
        cause: PlanCause,
        fence: Fence,
        pending: &mut HashSet<u64>,
        done: &mut HashSet<u64>,
    ) -> Leader {
        let others: HashSet<u64> = pending
            .iter()
            .copied()
            .filter(|id| *id != step.member_id)
            .collect();
        let Some(target) = leader_transfer_target(obs, &others, done, MAX_TRANSFER_LAG) else {
            if cause == PlanCause::Rule {
                return Leader::Ended(RollOutcome::Stopped(format!(
                    "no healthy, caught-up, defragmented follower to take leadership from {}; \
                     not defragmenting the leader in place",
                    step.name
                )));
            }
            tracing::warn!(
                "no follower can take leadership from {}; healing defragments the leader in place (writes stall meanwhile)",
                step.name
            );
            return Leader::DefragmentHere;
        };
        let target_name = obs.member_name(target);
        if let Err(e) = ctx
            .act(self.cfg.dry_run)
            .move_leader(
                &step.endpoint,
                &step.name,
                target,
                &target_name,
                &format!("before defragmenting {}", step.name),
            )
            .await
        {
            return Leader::Ended(RollOutcome::Stopped(format!(
                "moving leadership failed: {e}"
            )));
        }
        if self.cfg.dry_run {
            return Leader::DefragmentHere; // nothing moved: the dry-run defrag follows
        }
        let moved = Instant::now();
        self.wait_for_leader(ctx, target).await;
        if fence.basis != Basis::BesideLeader {
            return Leader::Replan; // the old leader is a follower now
        }
        match self.lame_duck(ctx, step.member_id, cause, moved).await {
            Ok(true) => {
                pending.remove(&step.member_id);
                done.insert(step.member_id);
            }
            Ok(false) => {}
            Err(stop) => {
                if stop.defragmented {
                    done.insert(step.member_id);
                }
                return Leader::Ended(RollOutcome::Stopped(stop.why));
            }
        }
        Leader::Ended(RollOutcome::HandedOver(format!(
            "leadership moved to {target_name}; its instance carries on{}",
            if done.contains(&step.member_id) {
                format!(" ({} was defragmented before handing over)", step.name)
            } else {
                String::new()
            }
        )))
    }

    /// After handing leadership over, the old actor defragments its own (now follower) member
    /// at once: the new leader's instance settles for two polls before it stops a member, and
    /// its health gate fails while our member defragments — so the pass completes even when
    /// the new leader has no live etcd-upkeep beside it. Why this cannot overlap the new
    /// actor's first defragmentation: its settle period starts when it first sees itself lead
    /// (after `moved`) and lasts `settle`; our defrag RPC is sent before `moved + settle/2` —
    /// the deadline is checked again after the fresh look, right before sending — so it is
    /// running when the new actor's gate probes our member, and that gate stays closed until it
    /// ends. Too late: leave it. Ok(true) when it was defragmented and verified.
    pub(super) async fn lame_duck(
        &mut self,
        ctx: &Ctx<'_>,
        member_id: u64,
        cause: PlanCause,
        moved: Instant,
    ) -> Result<bool, Stop> {
        let window = self.cfg.settle / 2;
        if moved.elapsed() >= window {
            return Ok(false);
        }
        let Ok(now) = ctx.observe().await else {
            return Ok(false);
        };
        let Some(follower) = current_step(&now, member_id).filter(|_| moved.elapsed() < window)
        else {
            return Ok(false);
        };
        match self
            .defrag_and_verify(ctx, &now, &follower, cause, Some(moved + window))
            .await
        {
            Ok(()) => Ok(true),
            Err(stop) if stop.late => {
                tracing::info!("{}", stop.why);
                Ok(false)
            }
            Err(stop) => Err(stop),
        }
    }

    pub(super) async fn wait_for_leader(&self, ctx: &Ctx<'_>, target: u64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut shutdown = ctx.shutdown.clone();
        while Instant::now() < deadline {
            if let Ok(obs) = ctx.observe().await
                && obs.leader == Some(target)
            {
                return;
            }
            if shutdown.sleep(Duration::from_millis(200)).await {
                return;
            }
        }
    }
}
