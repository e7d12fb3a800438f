//! The checks before every member of a rolling pass: the cluster is healthy enough to stop one
//! member (`decide::gate` over fresh probes), and the local disk has room for the copy a
//! defragmentation writes (`decide::disk`). Each owns its blocked reason.

use crate::decide::disk::{NoRoom, copy_bytes, published_free, room_on};
use crate::decide::gate::{Degraded, gate};
use crate::decide::heal::unverified_members;
use crate::decide::plan::{DefragStep, PlanCause};
use crate::observe::Observation;
use crate::observe::probe::{DiskError, free_disk_bytes, probe_health};

use crate::engine::{Ctx, Engine};

/// Why the next member of a pass is not defragmented now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The health gate's blockers, each a line for a person.
    #[error("health gate closed: {}", .0.join("; "))]
    GateClosed(Vec<String>),
    #[error(transparent)]
    NoRoom(#[from] NoRoom),
    /// The local `--data-dir` could not be asked: nothing is started without knowing.
    #[error(transparent)]
    Disk(#[from] DiskError),
}

impl Engine {
    pub(in crate::engine) async fn gate_before_member(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        cause: PlanCause,
    ) -> Result<(), Refused> {
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
        // Alarms are the tick's to report; the gate owns the rest, each under its own reason (a
        // member defragmenting for someone else or a downgrade is no fault, and says so).
        for reason in ["unhealthy", "defragmenting", "downgrade"] {
            let these: Vec<String> = blockers
                .iter()
                .filter(|b| b.reason() == reason)
                .map(|b| b.to_string())
                .collect();
            self.guard.set_blocked(ctx, reason, these);
        }
        if blockers.is_empty() {
            return Ok(());
        }
        let why = Refused::GateClosed(blockers.iter().map(|b| b.to_string()).collect());
        tracing::warn!("{why}");
        Err(why)
    }

    /// The last check before a member's defragmentation RPC: room on its volume (see
    /// `room_for`). A refusal is reported under `disk_space`; a pass of the heal clears it when
    /// it finds room again (`heal_round`).
    pub(in crate::engine) fn disk_check(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        step: &DefragStep,
    ) -> Result<(), Refused> {
        let verdict = self.room_for(obs, step.member_id);
        if let Err(why) = &verdict {
            self.guard
                .set_blocked(ctx, "disk_space", vec![why.to_string()]);
        }
        verdict
    }

    /// Whether `member`'s volume has room for the copy a defragmentation writes: the local
    /// member's mounted `--data-dir`, else what the sidecar beside it published. Where nobody
    /// knows (deployed etcd: no sidecar beside the members), it says so once and goes on, as
    /// before there was a check.
    pub(in crate::engine) fn room_for(
        &mut self,
        obs: &Observation,
        member: u64,
    ) -> Result<(), Refused> {
        let name = obs.member_name(member);
        let copy = copy_bytes(obs);
        if let (Some(dir), true) = (&self.cfg.data_dir, obs.local_member == Some(member)) {
            let free = free_disk_bytes(dir)?;
            return Ok(room_on(&name, free, copy)?);
        }
        if let Some(free) = published_free(obs, member) {
            return Ok(room_on(&name, free, copy)?);
        }
        if self.guard.disk_unknown_first(member) {
            tracing::info!(
                member = %name,
                "{name}'s free disk is not known (no sidecar beside it publishes it, or it has no --data-dir): defragmenting it without that check"
            );
        }
        Ok(())
    }
}
