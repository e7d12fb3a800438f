//! The rolling defragmentation: one member at a time, never two at once.
//!
//! Before each member: the fence (this instance still acts, same leader and term), the health
//! gate (every voting member answers a linearizable read; no alarm but NOSPACE), and — for the
//! local member when `--data-dir` is mounted — free disk for the copy. The leader goes last,
//! after leadership moved to a caught-up follower that is already defragmented. After each
//! member: it answers again, its applied index caught up, and its `HashKV` at its current
//! revision equals a peer's (alone: its own from before the defrag) — proof that nothing was lost.
//! A defrag that timed out on our side keeps running on the server (etcd ignores the request
//! context), so the member counts as busy until it answers again; nothing else starts meanwhile.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::decide::actor::{Basis, Fence, fence_holds};
use crate::decide::integrity::Integrity;
use crate::decide::plan::{DefragStep, Plan, PlanCause, leader_transfer_target};
use crate::etcd::FailureKind;
use crate::observe::Observation;
use crate::observe::probe::wait_until_answering;

use super::verify::{Reference, peer_of};
use super::{Ctx, Engine};

/// Why a member's step stopped the pass, and whether the member was defragmented by then.
pub(super) struct Stop {
    why: String,
    defragmented: bool,
    /// The RPC was not sent because its deadline passed (nothing happened).
    late: bool,
}

impl Stop {
    fn before(why: String) -> Stop {
        Stop {
            why,
            defragmented: false,
            late: false,
        }
    }

    fn after(why: String) -> Stop {
        Stop {
            why,
            defragmented: true,
            late: false,
        }
    }

    fn late(why: String) -> Stop {
        Stop {
            why,
            defragmented: false,
            late: true,
        }
    }
}

/// What the leader's turn ended with.
enum Leader {
    /// Defragment it here (in place while healing, or the dry run's simulation).
    DefragmentHere,
    /// Leadership moved: plan the pass again (the old leader is a follower now).
    Replan,
    /// The pass ends here.
    Ended(RollOutcome),
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RollOutcome {
    /// Every member of the plan was defragmented and verified.
    Completed,
    /// Leadership moved to another member; that member's instance carries on.
    HandedOver(String),
    /// Stopped before finishing, with the reason (gate closed, fence broken, failure).
    Stopped(String),
}

/// A follower may lag the leader's applied index by this much and still take leadership.
const MAX_TRANSFER_LAG: u64 = 1000;

impl Engine {
    /// Runs `plan`; members defragmented (and verified) are added to `done`.
    pub(super) async fn rolling_defrag(
        &mut self,
        ctx: &Ctx<'_>,
        plan: Plan,
        fence: Fence,
        done: &mut HashSet<u64>,
    ) -> RollOutcome {
        let mut pending: HashSet<u64> = plan.steps.iter().map(|s| s.member_id).collect();
        let shutdown = ctx.shutdown.clone();
        while let Some(member_id) = self.next_member(&plan, &pending) {
            if shutdown.is_requested() {
                return RollOutcome::Stopped("shutting down".into());
            }
            ctx.beat();
            // Fresh look before every member (in a dry run, as the real pass would see it).
            let obs = match ctx.observe().await {
                Ok(obs) => self.projected(obs, done),
                Err(e) => return RollOutcome::Stopped(format!("cannot observe the cluster: {e}")),
            };
            if let Err(why) = fence_holds(fence, self.cfg.act_when, &obs) {
                tracing::info!("{why}");
                return RollOutcome::Stopped(why);
            }
            if let Err(why) = self.gate_before_member(ctx, &obs, plan.cause).await {
                return RollOutcome::Stopped(why);
            }
            let Some(step) = current_step(&obs, member_id) else {
                return RollOutcome::Stopped(format!(
                    "member {member_id:x} left the cluster or stopped answering"
                ));
            };
            if let Err(why) = self.disk_check(ctx, &obs, &step) {
                return RollOutcome::Stopped(why);
            }

            if step.is_leader && self.cfg.move_leader && voting_count(&obs) > 1 {
                match self
                    .hand_over(ctx, &obs, &step, plan.cause, fence, &mut pending, done)
                    .await
                {
                    Leader::DefragmentHere => {}
                    Leader::Replan => continue,
                    Leader::Ended(outcome) => return outcome,
                }
            }

            if self.cfg.dry_run {
                ctx.act(true)
                    .defragment(&step, plan.cause.as_str())
                    .await
                    .ok();
                // The cool-down applies to simulated defrags too, so the plan is not re-printed
                // every poll.
                self.last_defrag.insert(step.member_id, self.clock.now());
                pending.remove(&step.member_id);
                done.insert(step.member_id);
                continue;
            }

            if let Err(stop) = self
                .defrag_and_verify(ctx, &obs, &step, plan.cause, None)
                .await
            {
                if stop.defragmented {
                    done.insert(step.member_id);
                }
                return RollOutcome::Stopped(stop.why);
            }
            pending.remove(&step.member_id);
            done.insert(step.member_id);
        }
        RollOutcome::Completed
    }

    /// The leader's turn: hand leadership to a caught-up, defragmented follower first. Beside
    /// the leader, the old actor then finishes its own member as a lame duck (see
    /// `lame_duck`); any other actor re-plans it as the follower it now is.
    #[allow(clippy::too_many_arguments)]
    async fn hand_over(
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
    async fn lame_duck(
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

    /// Defragments one member and proves nothing was lost: the defrag (a client-side timeout
    /// makes the member busy until it answers), then the member answering, caught up, and
    /// hashing the same as a peer (alone: as itself before). `send_by`: the defrag RPC is not
    /// sent after it. `Err` is the reason the pass must stop.
    async fn defrag_and_verify(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        step: &DefragStep,
        cause: PlanCause,
        send_by: Option<Instant>,
    ) -> Result<(), Stop> {
        let mut shutdown = ctx.shutdown.clone();
        let reference = self.reference_for(ctx, obs, step).await?;
        if send_by.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Stop::late(format!(
                "the window to defragment {} before the new actor settles has passed; leaving it to the new actor",
                step.name
            )));
        }
        match ctx.act(false).defragment(step, cause.as_str()).await {
            Ok(_) => {}
            Err(e) if e.kind == FailureKind::Timeout => {
                self.busy = Some(super::Busy {
                    name: step.name.clone(),
                    endpoint: step.endpoint.clone(),
                    since: Instant::now(),
                });
                tracing::warn!(member = %step.name, "defragmentation of {} timed out on our side and may still run on the server; touching nothing else until it answers", step.name);
                let answered = wait_until_answering(
                    ctx.etcd,
                    &step.endpoint,
                    self.cfg.health_timeout,
                    Engine::busy_limit(ctx),
                    &mut shutdown,
                )
                .await;
                if !answered {
                    return Err(Stop::before(format!(
                        "{} has not answered for {}s since its defragmentation timed out on our side; giving up this pass (the next one decides; it counts as busy until it answers, as down if it answers nothing)",
                        step.name,
                        Engine::busy_limit(ctx).as_secs()
                    )));
                }
                self.busy = None;
            }
            Err(e) => {
                return Err(Stop::before(format!(
                    "defragmenting {} failed: {e}",
                    step.name
                )));
            }
        }
        self.last_defrag.insert(step.member_id, self.clock.now());
        let outcome = self.verify_member(ctx, step, reference).await;
        self.record_integrity(ctx, &step.name, &outcome);
        match outcome {
            Integrity::Verified(_) => Ok(()),
            Integrity::Mismatch(why) => {
                let message = format!(
                    "integrity check after defragmenting {} failed: {why}; all maintenance stopped while the members disagree",
                    step.name
                );
                self.cluster_disagrees(ctx, message.clone());
                Err(Stop::after(message))
            }
            // Not proven either way (an RPC failed, a peer lags): the member was defragmented,
            // but the pass stops; the next one starts from a fresh look.
            Integrity::Unverifiable(why) => Err(Stop::after(format!(
                "could not verify {} after its defragmentation: {why}; stopping this pass",
                step.name
            ))),
        }
    }

    /// What the member will be compared with after its defrag (see `verify::Reference`).
    async fn reference_for(
        &self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        step: &DefragStep,
    ) -> Result<Reference, Stop> {
        match peer_of(obs, step.member_id) {
            Some((id, _)) => Ok(Reference::Peer { id }),
            // Alone, the member's own hash from before is the only thing to compare with.
            None => {
                let revision = obs
                    .member(step.member_id)
                    .and_then(|m| m.status.as_ref())
                    .map(|s| s.revision)
                    .unwrap_or(obs.revision);
                let before = ctx
                    .etcd
                    .hash_kv(&step.endpoint, revision)
                    .await
                    .map(|h| (revision, h))
                    .map_err(|e| e.to_string());
                // The hash stopped the member's apply for its whole scan: let the queued writes
                // through before the defrag stops it again.
                if !self.caught_up(ctx, step).await {
                    return Err(Stop::before(format!(
                        "{} did not catch up within 60s after its KV hash; not defragmenting it",
                        step.name
                    )));
                }
                let alone = obs.members.iter().filter(|m| !m.is_learner).count() <= 1;
                Ok(Reference::Before { before, alone })
            }
        }
    }

    /// Followers first: the next pending member in plan order, the leader only when it is the
    /// last one left (leadership may have moved since the plan was made; order re-checks it).
    fn next_member(&self, plan: &Plan, pending: &HashSet<u64>) -> Option<u64> {
        plan.steps
            .iter()
            .map(|s| s.member_id)
            .find(|id| pending.contains(id))
    }

    async fn wait_for_leader(&self, ctx: &Ctx<'_>, target: u64) {
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

fn voting_count(obs: &Observation) -> usize {
    obs.members.iter().filter(|m| !m.is_learner).count()
}

/// The step for `member_id` as the cluster is now (sizes and leadership may have changed).
fn current_step(obs: &Observation, member_id: u64) -> Option<DefragStep> {
    crate::decide::plan::order(obs, PlanCause::Heal, &[member_id])
        .steps
        .into_iter()
        .next()
}
