//! The health gate: may maintenance touch the cluster right now?
//!
//! Why: defragmenting a member while another is down loses quorum; touching a CORRUPT cluster
//! can destroy the evidence or the last good copy. NOSPACE is let through — it is cluster-wide
//! and is exactly what healing must fix (a gate that refused it would refuse the cure). Any
//! alarm we do not know stops everything: when unsure, do nothing and say why.

use crate::etcd::AlarmKind;
use crate::observe::Observation;

/// One reason the gate is closed.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocker {
    CorruptAlarm {
        member: String,
    },
    UnknownAlarm {
        member: String,
    },
    /// A voting member did not answer Status or a linearizable read in time.
    Unhealthy {
        member: String,
        why: String,
    },
    /// A voting member is defragmenting for someone else: its read failed while its gRPC health
    /// service says NOT_SERVING, which etcd does only during a defragmentation with
    /// `StopGRPCServiceOnDefrag` on. Not a fault: wait for it, never a second one at once.
    Defragmenting {
        member: String,
    },
    /// A downgrade is enabled (`etcdctl downgrade enable`): members are about to be replaced by
    /// an older release. A cluster in the middle of a version change is no place to rewrite
    /// every member's file; defragmentation waits until the downgrade finishes or is cancelled.
    Downgrade {
        member: String,
        target: String,
    },
}

/// Why a linearizable read of the health gate failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeFailure {
    /// The member's gRPC health service reports NOT_SERVING: a defragmentation is running on it
    /// (etcd ≥ 3.5.13/3.6 with `StopGRPCServiceOnDefrag`).
    Defragmenting,
    /// Anything else: the read's own error.
    Failed(String),
}

/// One member's probe: `Ok` when the linearizable read answered.
pub type Probe = (u64, Result<(), ProbeFailure>);

impl Blocker {
    /// The `reason` label of `etcd_upkeep_maintenance_blocked`.
    pub fn reason(&self) -> &'static str {
        match self {
            Blocker::CorruptAlarm { .. } => "corrupt_alarm",
            Blocker::UnknownAlarm { .. } => "unknown_alarm",
            Blocker::Unhealthy { .. } => "unhealthy",
            Blocker::Defragmenting { .. } => "defragmenting",
            Blocker::Downgrade { .. } => "downgrade",
        }
    }
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::CorruptAlarm { member } => write!(
                f,
                "CORRUPT alarm on {member}: all maintenance stopped; inspect the member (etcdctl check \
                 hashkv / endpoint hashkv) and restore it from a healthy peer or a snapshot"
            ),
            Blocker::UnknownAlarm { member } => {
                write!(
                    f,
                    "unknown alarm on {member}: all maintenance stopped until it is understood"
                )
            }
            Blocker::Unhealthy { member, why } => {
                write!(f, "member {member} is not healthy: {why}")
            }
            Blocker::Defragmenting { member } => write!(
                f,
                "member {member} is defragmenting (its gRPC health reports NOT_SERVING, \
                 StopGRPCServiceOnDefrag): waiting for it to finish"
            ),
            Blocker::Downgrade { member, target } => write!(
                f,
                "a downgrade to {target} is enabled (Status of {member}): defragmentation paused \
                 until it completes or `etcdctl downgrade cancel`"
            ),
        }
    }
}

/// Alarms that stop all maintenance (everything except NOSPACE).
pub fn alarm_blockers(obs: &Observation) -> Vec<Blocker> {
    obs.alarms
        .iter()
        .filter_map(|a| {
            let member = obs.member_name(a.member_id);
            match a.kind {
                AlarmKind::NoSpace => None,
                AlarmKind::Corrupt => Some(Blocker::CorruptAlarm { member }),
                AlarmKind::Unknown => Some(Blocker::UnknownAlarm { member }),
            }
        })
        .collect()
}

/// Which members the gate may do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degraded {
    /// Every voting member must answer (rule-driven passes: routine work waits for a whole
    /// cluster).
    Refuse,
    /// A minority of voting members may be down — no Status at all — while the others are a
    /// quorum and all answer (healing NOSPACE, or a file that must shrink before it comes).
    /// Why that is safe: a defragmentation stops the member's apply, not its raft log, so the
    /// leader still commits with the defragmenting member's acknowledgements. A member that
    /// answers Status but fails the linearizable read still closes the gate: it may be
    /// defragmenting for someone else, and two at once is what the gate exists to prevent.
    QuorumSuffices,
}

/// The full gate before a defragmentation: alarms, no downgrade under way, every voting member
/// answered Status, and every voting member answered a linearizable read (`probes`: member id →
/// result of the read). With
/// [`Degraded::QuorumSuffices`], members that gave no Status are left out while the rest are a
/// quorum.
pub fn gate(obs: &Observation, probes: &[Probe], degraded: Degraded) -> Vec<Blocker> {
    let mut blockers = alarm_blockers(obs);
    // One downgrade is cluster-wide; the first member that reports it is named.
    if let Some((member, target)) = obs.members.iter().find_map(|m| {
        let target = m.status.as_ref()?.downgrade_target.clone()?;
        Some((m.name.clone(), target))
    }) {
        blockers.push(Blocker::Downgrade { member, target });
    }
    let voting = obs.members.iter().filter(|m| !m.is_learner).count();
    let answering = obs
        .members
        .iter()
        .filter(|m| !m.is_learner && m.in_quorum())
        .count();
    let skip_down =
        degraded == Degraded::QuorumSuffices && answering >= crate::decide::heal::quorum(voting);
    for member in obs.members.iter().filter(|m| !m.is_learner) {
        let probe = probes.iter().find(|(id, _)| *id == member.id);
        // Defragmenting for someone else answers neither Status nor reads, yet it is not down:
        // two members at once is what the gate exists to prevent.
        if let Some((_, Err(ProbeFailure::Defragmenting))) = probe {
            blockers.push(Blocker::Defragmenting {
                member: member.name.clone(),
            });
            continue;
        }
        // Out of the quorum: down, or answering from its own state with no leader (cut off
        // from the majority). Neither is defragmenting for someone else.
        if !member.in_quorum() && skip_down {
            continue;
        }
        if member.status.is_none() {
            blockers.push(Blocker::Unhealthy {
                member: member.name.clone(),
                why: member.error.clone().unwrap_or_else(|| "no status".into()),
            });
            continue;
        }
        match probe {
            Some((_, Ok(()))) | Some((_, Err(ProbeFailure::Defragmenting))) => {}
            Some((_, Err(ProbeFailure::Failed(why)))) => blockers.push(Blocker::Unhealthy {
                member: member.name.clone(),
                why: format!("linearizable read failed: {why}"),
            }),
            None => blockers.push(Blocker::Unhealthy {
                member: member.name.clone(),
                why: "not probed".into(),
            }),
        }
    }
    blockers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    fn failed(why: &str) -> Result<(), ProbeFailure> {
        Err(ProbeFailure::Failed(why.into()))
    }

    fn all_ok(n: u64) -> Vec<Probe> {
        (1..=n).map(|id| (id, Ok(()))).collect()
    }

    #[test]
    fn nospace_passes_the_gate() {
        let obs = with_alarm(cluster(&[(10, 5); 3], 100), 2, AlarmKind::NoSpace);
        assert!(gate(&obs, &all_ok(3), Degraded::Refuse).is_empty());
    }

    #[test]
    fn corrupt_and_unknown_alarms_block() {
        let obs = with_alarm(cluster(&[(10, 5); 3], 100), 2, AlarmKind::Corrupt);
        let blockers = gate(&obs, &all_ok(3), Degraded::Refuse);
        assert_eq!(blockers.len(), 1);
        assert_eq!(blockers[0].reason(), "corrupt_alarm");
        assert!(blockers[0].to_string().contains("m1"));
        let obs = with_alarm(cluster(&[(10, 5); 3], 100), 1, AlarmKind::Unknown);
        assert_eq!(
            gate(&obs, &all_ok(3), Degraded::Refuse)[0].reason(),
            "unknown_alarm"
        );
    }

    #[test]
    fn a_silent_or_unprobed_member_blocks_but_learners_do_not_count() {
        let mut obs = cluster(&[(10, 5); 3], 100);
        let mut probes = all_ok(3);
        probes[2].1 = failed("timeout");
        assert_eq!(
            gate(&obs, &probes, Degraded::Refuse)[0].reason(),
            "unhealthy"
        );

        obs.members[1].status = None;
        obs.members[1].error = Some("connection refused".into());
        let blockers = gate(&obs, &all_ok(3), Degraded::Refuse);
        assert!(blockers[0].to_string().contains("connection refused"));

        let mut obs = cluster(&[(10, 5); 3], 100);
        obs.members[2].is_learner = true;
        assert!(gate(&obs, &all_ok(2), Degraded::Refuse).is_empty());
    }

    #[test]
    fn a_minority_down_passes_only_where_a_quorum_suffices() {
        let mut obs = cluster(&[(10, 5); 3], 100);
        obs.members[2].status = None;
        obs.members[2].error = Some("connection refused".into());
        let mut probes = all_ok(3);
        probes[2].1 = failed("connection refused");
        assert_eq!(gate(&obs, &probes, Degraded::Refuse).len(), 1);
        assert!(gate(&obs, &probes, Degraded::QuorumSuffices).is_empty());
        // A member that answers Status but not the read may be defragmenting: still closed.
        let mut busy = probes.clone();
        busy[1].1 = failed("deadline exceeded");
        assert_eq!(gate(&obs, &busy, Degraded::QuorumSuffices).len(), 1);
        // Two of three down: no quorum, closed.
        obs.members[1].status = None;
        assert_eq!(gate(&obs, &probes, Degraded::QuorumSuffices).len(), 2);
    }

    /// StopGRPCServiceOnDefrag: a member whose read fails while its gRPC health says NOT_SERVING
    /// is defragmenting, not faulty. The gate waits for it under its own reason, in every mode.
    #[test]
    fn a_member_not_serving_is_defragmenting_not_unhealthy() {
        let mut obs = cluster(&[(10, 5); 3], 100);
        let mut probes = all_ok(3);
        probes[1].1 = Err(ProbeFailure::Defragmenting);
        for degraded in [Degraded::Refuse, Degraded::QuorumSuffices] {
            let blockers = gate(&obs, &probes, degraded);
            assert_eq!(blockers.len(), 1);
            assert_eq!(blockers[0].reason(), "defragmenting");
            assert!(blockers[0].to_string().contains("m1 is defragmenting"));
        }
        // A defragmenting member answers no Status either: still not "down", even where a
        // quorum would suffice.
        obs.members[1].status = None;
        obs.members[1].error = Some("no answer within 1s".into());
        let blockers = gate(&obs, &probes, Degraded::QuorumSuffices);
        assert_eq!(blockers.len(), 1);
        assert_eq!(blockers[0].reason(), "defragmenting");
    }

    /// `etcdctl downgrade enable`: defragmentation pauses, naming the target, whatever the cause.
    #[test]
    fn an_enabled_downgrade_pauses_defragmentation() {
        let mut obs = cluster(&[(10, 5); 3], 100);
        obs.members[0].status.as_mut().unwrap().downgrade_target = Some("3.5.0".into());
        for degraded in [Degraded::Refuse, Degraded::QuorumSuffices] {
            let blockers = gate(&obs, &all_ok(3), degraded);
            assert_eq!(blockers.len(), 1);
            assert_eq!(blockers[0].reason(), "downgrade");
            assert!(blockers[0].to_string().contains("downgrade to 3.5.0"));
        }
    }
}
