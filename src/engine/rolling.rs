//! The rolling defragmentation: one member at a time, never two at once.
//!
//! Before each member: the fence (this instance still acts, same leader and term), the health
//! gate (every voting member answers a linearizable read; no alarm but NOSPACE), and — for the
//! local member when `--data-dir` is mounted — free disk for the copy. The leader goes last,
//! after leadership moved to a caught-up follower that is already defragmented. After each
//! member: it answers again, its applied index caught up, and its `HashKV` at a fixed revision
//! equals its own from before the defrag and a peer's — proof that nothing was lost.
//! A defrag that timed out on our side keeps running on the server (etcd ignores the request
//! context), so the member counts as busy until it answers again; nothing else starts meanwhile.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::decide::actor::{Basis, Fence, fence_holds};
use crate::decide::disk::disk_verdict;
use crate::decide::gate::gate;
use crate::decide::plan::{DefragStep, Plan, PlanCause, leader_transfer_target};
use crate::etcd::{FailureKind, KvHash};
use crate::observe::probe::{free_disk_bytes, probe_health, wait_until_answering};
use crate::observe::{Observation, unix_now};

use super::{Ctx, Engine};

/// Why a member's integrity check did not pass.
#[derive(Debug, Clone, PartialEq)]
enum VerifyFailure {
    /// Different KV hashes over the same range: data differs. Stops all maintenance.
    Mismatch(String),
    /// The comparison could not be made; nothing is known to be wrong.
    Unverifiable(String),
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
            // Fresh look before every member.
            let obs = match ctx.observe().await {
                Ok(obs) => obs,
                Err(e) => return RollOutcome::Stopped(format!("cannot observe the cluster: {e}")),
            };
            if let Err(why) = fence_holds(fence, self.cfg.act_when, &obs) {
                tracing::info!("{why}");
                return RollOutcome::Stopped(why);
            }
            if let Err(why) = self.gate_before_member(ctx, &obs).await {
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
                let others: HashSet<u64> = pending
                    .iter()
                    .copied()
                    .filter(|id| *id != step.member_id)
                    .collect();
                match leader_transfer_target(&obs, &others, done, MAX_TRANSFER_LAG) {
                    Some(target) => {
                        let target_name = obs.member_name(target);
                        if let Err(e) = ctx
                            .act(self.cfg.dry_run)
                            .move_leader(&step.endpoint, &step.name, target, &target_name)
                            .await
                        {
                            return RollOutcome::Stopped(format!("moving leadership failed: {e}"));
                        }
                        // In a dry run nothing moved: fall through to the dry-run defrag below.
                        if !self.cfg.dry_run {
                            let moved = std::time::Instant::now();
                            self.wait_for_leader(ctx, target).await;
                            if fence.basis != Basis::BesideLeader {
                                continue; // the old leader is a follower now; re-plan it.
                            }
                            // Lame duck: the new leader's instance settles for two polls before
                            // acting, and its health gate fails while our member defragments, so
                            // we finish our own member now — the pass completes even when the new
                            // leader has no live etcd-upkeep beside it. Too late: leave it.
                            if moved.elapsed() < self.cfg.settle / 2
                                && let Ok(now) = ctx.observe().await
                                && let Some(follower) = current_step(&now, step.member_id)
                            {
                                if let Err(why) = self
                                    .defrag_and_verify(ctx, &now, &follower, plan.cause)
                                    .await
                                {
                                    return RollOutcome::Stopped(why);
                                }
                                pending.remove(&step.member_id);
                                done.insert(step.member_id);
                            }
                            return RollOutcome::HandedOver(format!(
                                "leadership moved to {target_name}; its instance carries on{}",
                                if done.contains(&step.member_id) {
                                    format!(" ({} was defragmented before handing over)", step.name)
                                } else {
                                    String::new()
                                }
                            ));
                        }
                    }
                    None if plan.cause == PlanCause::Rule => {
                        return RollOutcome::Stopped(format!(
                            "no healthy, caught-up, defragmented follower to take leadership from {}; \
                             not defragmenting the leader in place",
                            step.name
                        ));
                    }
                    None => tracing::warn!(
                        "no follower can take leadership from {}; healing defragments the leader in place (writes stall meanwhile)",
                        step.name
                    ),
                }
            }

            if self.cfg.dry_run {
                ctx.act(true)
                    .defragment(&step, plan.cause.as_str())
                    .await
                    .ok();
                // The cool-down applies to simulated defrags too, so the plan is not re-printed
                // every poll.
                self.last_defrag.insert(step.member_id, unix_now());
                pending.remove(&step.member_id);
                done.insert(step.member_id);
                continue;
            }

            if let Err(why) = self.defrag_and_verify(ctx, &obs, &step, plan.cause).await {
                return RollOutcome::Stopped(why);
            }
            pending.remove(&step.member_id);
            done.insert(step.member_id);
        }
        RollOutcome::Completed
    }

    /// Defragments one member and proves nothing was lost: KV hash at a fixed revision before,
    /// the defrag (a client-side timeout makes the member busy until it answers), then the
    /// member answering, caught up, and hashing the same as before and as a peer. `Err` is the
    /// reason the pass must stop.
    async fn defrag_and_verify(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        step: &DefragStep,
        cause: PlanCause,
    ) -> Result<(), String> {
        let mut shutdown = ctx.shutdown.clone();
        let peer = peer_of(obs, step.member_id);
        // The member's own KV hash at its own revision, to compare after the defrag.
        let revision = obs
            .member(step.member_id)
            .and_then(|m| m.status.as_ref())
            .map(|s| s.revision)
            .unwrap_or(obs.revision);
        let before = ctx
            .etcd
            .hash_kv(&step.endpoint, revision)
            .await
            .ok()
            .map(|h| (revision, h));
        match ctx.act(false).defragment(step, cause.as_str()).await {
            Ok(_) => {}
            Err(e) if e.kind == FailureKind::Timeout => {
                self.busy = Some((step.name.clone(), step.endpoint.clone()));
                tracing::warn!(member = %step.name, "defragmentation of {} timed out on our side and may still run on the server; touching nothing else until it answers", step.name);
                let answered = wait_until_answering(
                    ctx.etcd,
                    &step.endpoint,
                    self.cfg.health_timeout,
                    Duration::MAX / 4,
                    &mut shutdown,
                )
                .await;
                if !answered {
                    return Err(format!("{} busy; stopping", step.name));
                }
                self.busy = None;
            }
            Err(e) => return Err(format!("defragmenting {} failed: {e}", step.name)),
        }
        self.last_defrag.insert(step.member_id, unix_now());
        match self.verify_member(ctx, step, peer, before).await {
            Ok(()) => Ok(()),
            Err(VerifyFailure::Mismatch(why)) => {
                let message = format!(
                    "integrity check after defragmenting {} failed: {why}; all maintenance stopped",
                    step.name
                );
                self.integrity_failure = Some(message.clone());
                self.set_blocked(ctx, "hash_mismatch", vec![message.clone()]);
                Err(message)
            }
            // Not proven either way (an RPC failed, a peer lags): stop this pass, look again later.
            Err(VerifyFailure::Unverifiable(why)) => {
                let message = format!(
                    "could not verify {} after its defragmentation: {why}; stopping this pass",
                    step.name
                );
                tracing::warn!("{message}");
                Err(message)
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

    async fn gate_before_member(&mut self, ctx: &Ctx<'_>, obs: &Observation) -> Result<(), String> {
        let probes = probe_health(ctx.etcd, obs, self.cfg.health_timeout).await;
        let blockers = gate(obs, &probes);
        // Alarms are the tick's to report; the gate owns "unhealthy".
        let unhealthy: Vec<String> = blockers
            .iter()
            .filter(|b| b.reason() == "unhealthy")
            .map(|b| b.to_string())
            .collect();
        self.set_blocked(ctx, "unhealthy", unhealthy);
        if blockers.is_empty() {
            return Ok(());
        }
        let messages: Vec<String> = blockers.iter().map(|b| b.to_string()).collect();
        let why = format!("health gate closed: {}", messages.join("; "));
        tracing::warn!("{why}");
        Err(why)
    }

    fn disk_check(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        step: &DefragStep,
    ) -> Result<(), String> {
        let Some(dir) = &self.cfg.data_dir else {
            return Ok(());
        };
        if obs.local_member != Some(step.member_id) {
            return Ok(()); // The mounted data dir is the local member's; others' disks are not visible.
        }
        let verdict = free_disk_bytes(dir).and_then(|free| disk_verdict(free, step.db_size_in_use));
        self.set_blocked(
            ctx,
            "disk_space",
            verdict.clone().err().into_iter().collect(),
        );
        verdict
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

    /// After a defrag: the member answers and has caught up; its KV hash at its pre-defrag
    /// revision is unchanged; and at its current revision it equals the most caught-up peer's.
    /// Only different hashes over the same compacted range are a `Mismatch`; a failed or
    /// impossible comparison (a revision compacted meanwhile, a peer lagging) is `Unverifiable`.
    async fn verify_member(
        &self,
        ctx: &Ctx<'_>,
        step: &DefragStep,
        peer: Option<(u64, String)>,
        before: Option<(i64, KvHash)>,
    ) -> Result<(), VerifyFailure> {
        use VerifyFailure::{Mismatch, Unverifiable};
        let mut shutdown = ctx.shutdown.clone();
        if !wait_until_answering(
            ctx.etcd,
            &step.endpoint,
            self.cfg.health_timeout,
            ctx.etcd.command_timeout(),
            &mut shutdown,
        )
        .await
        {
            return Err(Unverifiable(format!("{} did not answer again", step.name)));
        }
        // Caught up: its applied index reaches the leader's raft index as it was just now.
        let target_index = match ctx.observe().await {
            Ok(obs) => obs
                .leader
                .and_then(|l| obs.member(l))
                .and_then(|m| m.status.as_ref())
                .map(|s| s.raft_index),
            Err(_) => None,
        };
        let caught_up = self
            .wait_for(&mut shutdown, || async {
                match (target_index, ctx.etcd.status(&step.endpoint).await) {
                    (Some(target), Ok(s)) => s.raft_applied_index >= target,
                    (None, Ok(_)) => true,
                    _ => false,
                }
            })
            .await;
        if !caught_up {
            return Err(Unverifiable(format!(
                "{} did not catch up with the leader within 60s",
                step.name
            )));
        }
        // 1. Unchanged by the defrag.
        if let Some((revision, before)) = before {
            match ctx.etcd.hash_kv(&step.endpoint, revision).await {
                Ok(after)
                    if after.compact_revision == before.compact_revision
                        && after.hash != before.hash =>
                {
                    return Err(Mismatch(format!(
                        "{}'s KV hash at revision {revision} changed across the defragmentation ({:x} → {:x})",
                        step.name, before.hash, after.hash
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind == FailureKind::Compacted => {
                    tracing::info!(member = %step.name, "revision {revision} was compacted meanwhile; relying on the peer comparison");
                }
                Err(e) => return Err(Unverifiable(e.to_string())),
            }
        }
        // 2. Equal to a peer at the member's current revision, once the peer has reached it.
        let Some((peer_id, peer_endpoint)) = peer else {
            tracing::info!(member = %step.name, "integrity verified: KV hash unchanged by the defragmentation (no peer to compare)");
            return Ok(());
        };
        let revision = ctx
            .etcd
            .status(&step.endpoint)
            .await
            .map_err(|e| Unverifiable(e.to_string()))?
            .revision;
        let peer_ready = self
            .wait_for(&mut shutdown, || async {
                ctx.etcd
                    .status(&peer_endpoint)
                    .await
                    .is_ok_and(|s| s.revision >= revision)
            })
            .await;
        if !peer_ready {
            return Err(Unverifiable(format!(
                "peer {peer_id:x} did not reach revision {revision} within 60s"
            )));
        }
        let ours = ctx
            .etcd
            .hash_kv(&step.endpoint, revision)
            .await
            .map_err(|e| Unverifiable(e.to_string()))?;
        let theirs = ctx
            .etcd
            .hash_kv(&peer_endpoint, revision)
            .await
            .map_err(|e| Unverifiable(e.to_string()))?;
        if ours.compact_revision == theirs.compact_revision && ours.hash != theirs.hash {
            return Err(Mismatch(format!(
                "{}'s KV hash at revision {revision} ({:x}) differs from peer {peer_id:x}'s ({:x})",
                step.name, ours.hash, theirs.hash
            )));
        }
        tracing::info!(member = %step.name, revision, hash = ours.hash, "integrity verified: KV hash unchanged by the defragmentation and equal to a peer's at revision {revision}");
        Ok(())
    }

    /// Polls `check` every 200 ms for up to 60 s; false on timeout or shutdown.
    async fn wait_for<F, Fut>(&self, shutdown: &mut crate::shutdown::Shutdown, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if check().await {
                return true;
            }
            if Instant::now() >= deadline || shutdown.sleep(Duration::from_millis(200)).await {
                return false;
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

/// The voting member, other than `member_id`, that is furthest ahead, to compare hashes with.
fn peer_of(obs: &Observation, member_id: u64) -> Option<(u64, String)> {
    obs.members
        .iter()
        .filter(|m| m.id != member_id && !m.is_learner)
        .filter_map(|m| m.status.as_ref().map(|s| (m, s.revision)))
        .max_by_key(|(m, revision)| (*revision, m.id))
        .map(|(m, _)| (m.id, m.endpoint.clone()))
}

#[cfg(test)]
mod tests {
    use super::peer_of;
    use crate::decide::fixtures::cluster;

    #[test]
    fn the_peer_is_the_most_caught_up_other_member() {
        let mut obs = cluster(&[(1, 1); 3], 100);
        // m2 was frozen: its revision lags far behind (the case that once looked like corruption).
        obs.members[2].status.as_mut().unwrap().revision = 3;
        obs.members[1].status.as_mut().unwrap().revision = 900;
        assert_eq!(peer_of(&obs, 1).map(|p| p.0), Some(2));
        obs.members[1].status = None;
        assert_eq!(peer_of(&obs, 1).map(|p| p.0), Some(3));
        assert_eq!(peer_of(&cluster(&[(1, 1)], 100), 1), None);
    }
}
