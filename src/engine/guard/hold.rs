//! The checks before any step, a heal's included: no CORRUPT or unknown alarm, no member still
//! busy with a defragmentation that timed out on our side, and the members' data agrees.
//!
//! Why one place: the daemon's tick and the one-shot `heal` must refuse the same things. Before,
//! `heal` had an alarm gate of its own and skipped the busy member and the hash comparison; now
//! both go through `Engine::heal_step`, and only their fences differ.

use crate::decide::actor::Fence;
use crate::decide::gate::alarm_blockers;
use crate::etcd::FailureKind;
use crate::observe::Observation;

use crate::engine::{Ctx, Engine, HealOutcome};

/// Why nothing may be touched right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// Until a person acts: a CORRUPT or unknown alarm, members whose data differs.
    Blocked(String),
    /// For now: a member still busy with a defragmentation; the next tick looks again.
    Wait(String),
}

impl Engine {
    /// The checks before anything is touched, a heal's included, for the daemon's tick and the
    /// one-shot `heal` alike: no CORRUPT or unknown alarm, no member still busy with a
    /// defragmentation that timed out on our side, and the members' data agrees.
    pub async fn hold(&mut self, ctx: &Ctx<'_>, obs: &Observation) -> Option<Hold> {
        if let Some(hold) = self.may_touch(ctx, obs).await {
            return Some(hold);
        }
        let now = self.clock.now();
        if !self.members_agree(ctx, obs, now).await {
            return Some(Hold::Blocked(self.disagreement()));
        }
        None
    }

    /// One NOSPACE heal step after the same checks as every other step (`hold`): the daemon's
    /// tick and the one-shot `heal` both heal through here; only their fences differ.
    pub async fn heal_step(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        fence: Fence,
    ) -> HealOutcome {
        match self.hold(ctx, obs).await {
            Some(Hold::Blocked(why)) => HealOutcome::Blocked(why),
            Some(Hold::Wait(why)) => HealOutcome::Pending(why),
            None => self.heal(ctx, obs, fence).await,
        }
    }

    /// CORRUPT or unknown alarms, or a member still busy with a defragmentation that timed out
    /// on our side: touch nothing, not even to heal. (Members whose data differs: see
    /// `members_agree`.)
    pub(in crate::engine) async fn may_touch(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
    ) -> Option<Hold> {
        let blockers = alarm_blockers(obs);
        for reason in ["corrupt_alarm", "unknown_alarm"] {
            let messages = blockers
                .iter()
                .filter(|b| b.reason() == reason)
                .map(|b| b.to_string())
                .collect();
            self.guard.set_blocked(ctx, reason, messages);
        }
        if let Some(blocker) = blockers.first() {
            return Some(Hold::Blocked(blocker.to_string()));
        }
        if let Some(busy) = self.guard.busy.clone() {
            let name = &busy.name;
            if ctx
                .etcd
                .linearizable_read(&busy.endpoint, self.cfg.health_timeout)
                .await
                .is_ok()
            {
                tracing::info!(member = %name, "{name} answers again");
                self.guard.busy = None;
                return None;
            }
            // Not for ever: a member that answers nothing at all, not even Status, long after
            // its defragmentation timed out is down, not defragmenting, and the heal goes on
            // through the quorum without it. One that cannot even be connected to (refused, no
            // route, no TCP handshake: cut off or gone) is down from then on — whatever it
            // still does cannot reach the quorum — while one that accepts the connection and
            // answers nothing (frozen, or its Status waiting for its defragmentation) is waited
            // for. The health gate then decides: a heal goes on through the quorum, routine
            // work waits for the whole cluster.
            let status = ctx
                .etcd
                .status_within(&busy.endpoint, ctx.etcd.reachability_timeout())
                .await;
            let unreachable = status
                .as_ref()
                .is_err_and(|e| e.kind == FailureKind::Unreachable);
            if unreachable {
                tracing::warn!(member = %name, "{name} cannot be reached at all since its defragmentation timed out on our side: counting it as down (a heal goes on through the quorum without it)");
                self.guard.busy = None;
                return None;
            }
            if status.is_err()
                && self.clock.now() - busy.since >= Engine::busy_limit(ctx).as_secs_f64()
            {
                tracing::warn!(member = %name, "{name} has answered nothing for {}s since its defragmentation timed out on our side: counting it as down from now on (maintenance goes on through the quorum without it)", (self.clock.now() - busy.since) as u64);
                self.guard.busy = None;
                return None;
            }
            let why = format!(
                "{name} is still busy (a defragmentation that timed out on our side may still run); waiting"
            );
            tracing::info!(member = %name, "{why}");
            return Some(Hold::Wait(why));
        }
        None
    }

    /// How long a member whose defragmentation timed out on our side may stay busy before it is
    /// counted as down: ten command timeouts, at least 10 minutes (a multi-GiB defragmentation
    /// on a slow disk takes minutes; one that never comes back must not hold the actor).
    pub(in crate::engine) fn busy_limit(ctx: &Ctx<'_>) -> std::time::Duration {
        (ctx.etcd.command_timeout() * 10).max(std::time::Duration::from_secs(600))
    }
}
