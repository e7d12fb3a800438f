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
use std::time::Instant;

use crate::decide::actor::{Fence, fence_holds};
use crate::decide::integrity::Integrity;
use crate::decide::plan::{DefragStep, Plan, PlanCause};
use crate::etcd::FailureKind;
use crate::observe::Observation;
use crate::observe::probe::{Answer, wait_for_answer};

use super::handover::Leader;
use super::verify::{Reference, peer_of};
use crate::engine::{Ctx, Engine};

/// Why a member's step stopped the pass, and whether the member was defragmented by then.
pub(super) struct Stop {
    pub(super) why: String,
    pub(super) defragmented: bool,
    /// The RPC was not sent because its deadline passed (nothing happened).
    pub(super) late: bool,
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

/// The last pass stopped the log spoke of, without its figures: a pass stopped the same way
/// again is said at DEBUG.
#[derive(Debug, Default)]
pub(super) struct PassSaid(Option<String>);

impl PassSaid {
    /// Whether this outcome is worth an INFO line: anything but the same stop as last time.
    pub(super) fn say(&mut self, outcome: &RollOutcome) -> bool {
        let RollOutcome::Stopped(why) = outcome else {
            self.0 = None;
            return true;
        };
        let shape = crate::engine::guard::shape(why);
        let new = self.0.as_deref() != Some(shape.as_str());
        self.0 = Some(shape);
        new
    }
}

impl Engine {
    /// Runs `plan`; members defragmented (and verified) are added to `done`.
    pub(in crate::engine) async fn rolling_defrag(
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
                return RollOutcome::Stopped(why.to_string());
            }
            if let Err(why) = self.gate_before_member(ctx, &obs, plan.cause).await {
                return RollOutcome::Stopped(why.to_string());
            }
            let Some(step) = current_step(&obs, member_id) else {
                return RollOutcome::Stopped(format!(
                    "member {member_id:x} left the cluster or stopped answering"
                ));
            };
            if let Err(why) = self.disk_check(ctx, &obs, &step) {
                return RollOutcome::Stopped(why.to_string());
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
                self.rolling.defragmented(step.member_id, self.clock.now());
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

    /// Defragments one member and proves nothing was lost: the defrag (a client-side timeout
    /// makes the member busy until it answers), then the member answering, caught up, and
    /// hashing the same as a peer (alone: as itself before). `send_by`: the defrag RPC is not
    /// sent after it. `Err` is the reason the pass must stop.
    pub(super) async fn defrag_and_verify(
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
                self.guard
                    .member_busy(step.name.clone(), step.endpoint.clone(), self.clock.now());
                tracing::warn!(member = %step.name, "defragmentation of {} timed out on our side and may still run on the server; touching nothing else until it answers", step.name);
                let answer = wait_for_answer(
                    ctx.etcd,
                    &step.endpoint,
                    self.cfg.health_timeout,
                    Engine::busy_limit(ctx),
                    &mut shutdown,
                )
                .await;
                // Cut off or gone: the next tick's checks count it as down (`Engine::hold`),
                // and a heal goes on through the quorum without it.
                if answer == Answer::Unreachable {
                    return Err(Stop::before(format!(
                        "{} cannot be reached since its defragmentation timed out on our side; giving up this pass",
                        step.name
                    )));
                }
                if answer != Answer::Answered {
                    return Err(Stop::before(format!(
                        "{} has not answered for {}s since its defragmentation timed out on our side; giving up this pass (the next one decides; it counts as busy until it answers, as down if it answers nothing)",
                        step.name,
                        Engine::busy_limit(ctx).as_secs()
                    )));
                }
                self.guard.member_free();
            }
            Err(e) => {
                return Err(Stop::before(format!(
                    "defragmenting {} failed: {e}",
                    step.name
                )));
            }
        }
        self.note_defragmented(ctx, step.member_id);
        let outcome = self.verify_member(ctx, step, reference).await;
        super::record_integrity(ctx, &step.name, &outcome);
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
                    .map(|h| (revision, h));
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
}

fn voting_count(obs: &Observation) -> usize {
    obs.members.iter().filter(|m| !m.is_learner).count()
}

/// The step for `member_id` as the cluster is now (sizes and leadership may have changed).
pub(super) fn current_step(obs: &Observation, member_id: u64) -> Option<DefragStep> {
    crate::decide::plan::order(obs, PlanCause::Heal, &[member_id])
        .steps
        .into_iter()
        .next()
}
