//! The checks before every member of a rolling pass: the cluster is healthy enough to stop one
//! member (`decide::gate` over fresh probes), and the local disk has room for the copy a
//! defragmentation writes (`decide::disk`). Each owns its blocked reason.

use crate::decide::disk::disk_verdict;
use crate::decide::gate::{Degraded, gate};
use crate::decide::heal::unverified_members;
use crate::decide::plan::{DefragStep, PlanCause};
use crate::observe::Observation;
use crate::observe::probe::{free_disk_bytes, probe_health};

use super::{Ctx, Engine};

impl Engine {
    pub(super) async fn gate_before_member(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        cause: PlanCause,
    ) -> Result<(), String> {
        let probes = probe_health(ctx.etcd, obs, self.cfg.health_timeout).await;
        // Routine work waits for the whole cluster; healing and a file that must shrink go on
        // through a quorum (the members left out are named by the heal, see `note_unverified`).
        let degraded = match cause {
            PlanCause::Rule => Degraded::Refuse,
            PlanCause::Heal | PlanCause::Space => Degraded::QuorumSuffices,
        };
        let blockers = gate(obs, &probes, degraded);
        if blockers.is_empty() && degraded == Degraded::QuorumSuffices {
            let down = unverified_members(obs);
            if !down.is_empty() {
                tracing::info!(
                    "health gate: {} down; going on through the quorum that answers",
                    down.join(", ")
                );
            }
        }
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

    pub(super) fn disk_check(
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
}
